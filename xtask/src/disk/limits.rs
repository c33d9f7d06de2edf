//! The limits a VM must fit, checked before anything is assembled or booted:
//! the format's own (FAT32 and ISO 9660 file sizes, the PE image size of a
//! unified kernel image, the boot protocol's 32-bit initrd size, the kernel
//! command line's length). Each problem says which limit, by how much, and
//! what to change. The VM's memory is checked by [`crate::vm::memory`].

use crate::disk::{layout, Firmware, Format, Medium};

const GIB4: u64 = 1 << 32;
const MIB: u64 = 1 << 20;
/// x86's COMMAND_LINE_SIZE: the kernel drops what is past it.
const CMDLINE_MAX: u64 = 2048;

/// What the limits are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub kernel: u64,
    pub initrd: u64,
    pub cmdline: u64,
}

use crate::vm::memory::mib;

/// A difference, in bytes below a MiB.
fn amount(bytes: u64) -> String {
    if bytes < MIB {
        format!("{bytes} bytes")
    } else {
        mib(bytes)
    }
}

/// `what` is `size`, over `limit` (named `which`) by the difference.
fn over(what: &str, size: u64, which: &str, limit: u64, change: &str) -> Option<String> {
    (size > limit).then(|| {
        format!(
            "{what} is {} bytes: {which} is {} bytes, {} over; {change}",
            size,
            limit,
            amount(size - limit)
        )
    })
}

const SMALLER: &str =
    "make the initrd smaller (fewer or smaller images; the dynamic method pulls them at boot instead)";

/// Every limit of `format` that a VM of `sizes` breaks, all at once.
pub fn check(format: Format, sizes: Sizes) -> Vec<String> {
    let mut problems = Vec::new();
    problems.extend(over(
        "the kernel command line",
        sizes.cmdline,
        "the kernel's COMMAND_LINE_SIZE (x86)",
        CMDLINE_MAX - 1,
        "pass fewer or shorter parameters",
    ));
    let Some(firmware) = format.firmware() else {
        return problems;
    };
    problems.extend(over(
        "the initrd",
        sizes.initrd,
        "the boot protocol's initrd size field (32-bit, as syslinux and the EFI stub fill it)",
        GIB4 - 1,
        SMALLER,
    ));
    match firmware {
        Firmware::Bios => {
            for (name, size) in [("the kernel", sizes.kernel), ("the initrd", sizes.initrd)] {
                problems.extend(over(
                    &format!("{name} (a file on the FAT32 partition)"),
                    size,
                    "FAT32's largest file",
                    GIB4 - 1,
                    SMALLER,
                ));
            }
        }
        Firmware::Efi => {
            let (_, image) = layout::uki_sections(STUB_ROOM, 4096, sizes.cmdline, sizes.kernel, sizes.initrd);
            problems.extend(over(
                "the unified kernel image (stub, kernel, initrd, command line)",
                image,
                "a PE32+ image's largest size (SizeOfImage is 32-bit), and FAT32's largest file",
                GIB4 - 1,
                SMALLER,
            ));
            if format.medium() == Some(Medium::Cdrom) {
                let fat = layout::fat_size(&[image]);
                problems.extend(over(
                    "the El Torito boot image (the FAT filesystem holding it)",
                    fat,
                    "an ISO 9660 file's largest single extent",
                    GIB4 - 1,
                    SMALLER,
                ));
            }
        }
    }
    // Only the first of the 32-bit limits tells the user something new.
    problems.dedup();
    problems
}

/// What the stub's own sections take, at most (systemd 252's end at 0x19134).
const STUB_ROOM: u64 = 0x100000;

#[cfg(test)]
mod tests {
    use super::*;

    const STATIC: Sizes = Sizes {
        kernel: 11_737_024,
        initrd: 145_000_000,
        cmdline: 32,
    };

    #[test]
    fn the_projects_vms_fit_every_format() {
        for f in crate::disk::format::ALL {
            assert_eq!(check(f, STATIC), Vec::<String>::new(), "{f}");
        }
    }

    /// Past 4 GiB each format names its own limit, by how much, and what to do.
    #[test]
    fn a_5_gib_initrd_names_each_formats_limit() {
        let big = Sizes {
            initrd: 5 << 30,
            ..STATIC
        };
        let said = |f| check(f, big).join("\n");
        assert_eq!(check(Format::KernelInitrd, big), Vec::<String>::new());
        let bios = said(Format::RawBios);
        assert!(
            bios.contains("FAT32's largest file is 4294967295 bytes, 1024.0 MiB over"),
            "{bios}"
        );
        assert!(bios.contains("32-bit, as syslinux"), "{bios}");
        assert!(bios.contains("make the initrd smaller"), "{bios}");
        let efi = said(Format::RawEfi);
        assert!(efi.contains("PE32+ image's largest size"), "{efi}");
        assert!(said(Format::IsoEfi).contains("ISO 9660 file's largest single extent"));
        assert!(!efi.contains("ISO 9660"), "{efi}");
    }

    #[test]
    fn a_long_command_line_is_refused_in_every_format() {
        let long = Sizes {
            cmdline: 3000,
            ..STATIC
        };
        for f in crate::disk::format::ALL {
            let said = check(f, long).join("\n");
            assert!(said.contains("COMMAND_LINE_SIZE"), "{f}: {said}");
            assert!(said.contains("is 2047 bytes, 953 bytes over"), "{said}");
        }
    }
}
