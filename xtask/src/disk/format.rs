//! The output formats of a VM build (`--format`), what each is written as in
//! dist/, and how a host boots it: which firmware, from which medium.

use std::fmt;

/// A VM build's output (`--format`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Format {
    /// The kernel and the initrd, booted by QEMU's `-kernel`/`-initrd`.
    #[default]
    #[value(name = "kernel+initrd")]
    KernelInitrd,
    /// A raw disk (MBR): a FAT partition with syslinux, the kernel and the initrd; BIOS boot.
    RawBios,
    /// A raw disk (GPT): an EFI system partition holding one unified kernel image; UEFI boot.
    RawEfi,
    /// `raw-bios` as a qcow2 disk.
    Qcow2Bios,
    /// `raw-efi` as a qcow2 disk.
    Qcow2Efi,
    /// An ISO 9660 image: El Torito UEFI boot from a CD, or (its GPT) from a USB stick.
    IsoEfi,
}

/// The firmware a format boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS, QEMU's default: syslinux from the MBR.
    Bios,
    /// UEFI (Debian's OVMF): \EFI\BOOT\BOOTX64.EFI from the EFI system partition.
    Efi,
}

/// What the image is to a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// A disk, attached as a virtio disk; `qcow2` or raw.
    Disk { qcow2: bool },
    /// A CD-ROM (SATA).
    Cdrom,
}

/// Every format, in the order the help and the README list them.
pub const ALL: [Format; 6] = [
    Format::KernelInitrd,
    Format::RawBios,
    Format::RawEfi,
    Format::Qcow2Bios,
    Format::Qcow2Efi,
    Format::IsoEfi,
];

/// UEFI firmware (Debian's `ovmf`): the code, read-only, and the variable
/// store each boot gets a copy of. Declared in pins.yml `debian.host_packages`.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// syslinux's MBR boot code (Debian's `syslinux`).
pub const SYSLINUX_MBR: &str = "/usr/lib/SYSLINUX/mbr.bin";
/// systemd's EFI stub, which a unified kernel image is made from (Debian's `systemd-boot-efi`).
pub const EFI_STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

impl Format {
    /// `None` for the kernel and initrd, which no firmware boots as they are.
    pub fn firmware(self) -> Option<Firmware> {
        match self {
            Format::KernelInitrd => None,
            Format::RawBios | Format::Qcow2Bios => Some(Firmware::Bios),
            Format::RawEfi | Format::Qcow2Efi | Format::IsoEfi => Some(Firmware::Efi),
        }
    }

    pub fn medium(self) -> Option<Medium> {
        match self {
            Format::KernelInitrd => None,
            Format::RawBios | Format::RawEfi => Some(Medium::Disk { qcow2: false }),
            Format::Qcow2Bios | Format::Qcow2Efi => Some(Medium::Disk { qcow2: true }),
            Format::IsoEfi => Some(Medium::Cdrom),
        }
    }

    /// The file it is written to in dist/ (`vm`: `compose-static`), as
    /// LinuxKit names its own: `NAME-bios.img`, `NAME-efi.iso` …
    pub fn file_name(self, vm: &str) -> Option<String> {
        let suffix = match self {
            Format::KernelInitrd => return None,
            Format::RawBios => "bios.img",
            Format::RawEfi => "efi.img",
            Format::Qcow2Bios => "bios.qcow2",
            Format::Qcow2Efi => "efi.qcow2",
            Format::IsoEfi => "efi.iso",
        };
        Some(format!("{vm}-{suffix}"))
    }

    /// Host programs and files (pins.yml `debian.host_packages`) that make it.
    pub fn build_programs(self) -> &'static [&'static str] {
        match self {
            Format::KernelInitrd => &[],
            Format::RawBios => &["mkfs.fat", "mcopy", "sfdisk", "syslinux", SYSLINUX_MBR],
            Format::Qcow2Bios => &["mkfs.fat", "mcopy", "sfdisk", "syslinux", SYSLINUX_MBR, "qemu-img"],
            Format::RawEfi => &["mkfs.fat", "mcopy", "sfdisk", "objcopy", "objdump", EFI_STUB],
            Format::Qcow2Efi => &[
                "mkfs.fat", "mcopy", "sfdisk", "objcopy", "objdump", EFI_STUB, "qemu-img",
            ],
            Format::IsoEfi => &["mkfs.fat", "mcopy", "objcopy", "objdump", EFI_STUB, "xorriso"],
        }
    }

    /// Host files a boot needs besides QEMU (the UEFI firmware).
    pub fn boot_files(self) -> &'static [&'static str] {
        match self.firmware() {
            Some(Firmware::Efi) => &[OVMF_CODE, OVMF_VARS],
            _ => &[],
        }
    }

    /// What it is, for the line that names the file.
    pub fn describe(self) -> &'static str {
        match self {
            Format::KernelInitrd => "kernel and initrd",
            Format::RawBios => "raw disk, MBR, FAT partition with syslinux; BIOS boot",
            Format::RawEfi => "raw disk, GPT, EFI system partition with a unified kernel image; UEFI boot",
            Format::Qcow2Bios => "qcow2 disk of raw-bios; BIOS boot",
            Format::Qcow2Efi => "qcow2 disk of raw-efi; UEFI boot",
            Format::IsoEfi => "ISO 9660, El Torito UEFI boot image (and a GPT for USB sticks); UEFI boot",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use clap::ValueEnum;
        f.write_str(self.to_possible_value().expect("no skipped variants").get_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_files_and_firmware() {
        let rows: Vec<String> = ALL
            .iter()
            .map(|f| {
                format!(
                    "{f}: {:?} {:?} {:?}",
                    f.file_name("compose-static"),
                    f.firmware(),
                    f.medium()
                )
            })
            .collect();
        insta::assert_snapshot!(rows.join("\n"));
    }

    /// Every file and program a format needs is one pins.yml says how to install.
    #[test]
    fn every_program_is_pinned() {
        let project = crate::base::project::for_tests();
        for f in ALL {
            for program in f.build_programs().iter().chain(f.boot_files()) {
                assert!(
                    project.pins.debian.host_packages.contains_key(*program),
                    "{f}: {program} has no Debian package in pins.yml"
                );
            }
        }
    }
}
