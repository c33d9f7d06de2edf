//! What a disk image is made of, decided from sizes alone: the FAT
//! filesystem's size, where its partition starts and the partition table
//! (as an `sfdisk` script), syslinux's configuration, and where each section
//! of a unified kernel image goes (as `objcopy` arguments).

use crate::disk::Firmware;

pub const SECTOR: u64 = 512;
pub const MIB: u64 = 1 << 20;
/// The partition starts 1 MiB in (sector 2048), as partitioning tools align it.
pub const PARTITION_START: u64 = MIB;
/// FAT32 wants at least 65525 clusters: with 512-byte clusters, about 33 MiB.
const FAT_MIN: u64 = 40 * MIB;

/// Fixed identifiers, so the same inputs give the same disk.
const MBR_ID: &str = "0x4c4b4331";
const GPT_ID: &str = "4C494E55-584B-4954-2D43-4F4D504F5345";
const ESP_UUID: &str = "4C494E55-584B-4954-2D45-535000000001";
/// The GPT type of an EFI system partition.
const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// The GPT type of a Linux filesystem, and the roots partition's own UUID.
const LINUX_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
const ROOTS_UUID: &str = "4C494E55-584B-4954-2D52-4F4F54530001";

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// Bytes of a FAT32 filesystem that holds files of `sizes`: each rounded to
/// a 4 KiB cluster, 2% and 8 MiB for the two FATs, directories and syslinux,
/// whole MiB, at least what FAT32 needs.
pub fn fat_size(sizes: &[u64]) -> u64 {
    let data: u64 = sizes.iter().map(|s| round_up(*s, 4096)).sum();
    round_up((data + data / 50 + 8 * MIB).max(FAT_MIN), MIB)
}

/// A disk with a partition holding the FAT filesystem, and one holding the
/// VM's roots disk (a squashfs image) if it has one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Disk {
    /// Bytes, a whole number of MiB.
    pub size: u64,
    /// `dos` (MBR, for BIOS) or `gpt` (for UEFI).
    pub label: &'static str,
    /// The partition's first byte and its length (the FAT filesystem's).
    pub partition_start: u64,
    pub partition_size: u64,
    /// The roots partition's first byte and its length (whole MiB), after the FAT one.
    pub roots: Option<(u64, u64)>,
}

/// BIOS: MBR, the FAT partition active (SeaBIOS and syslinux's MBR boot
/// from it). UEFI: GPT, the FAT partition an EFI system partition, and a
/// MiB at the end for the GPT's backup copy. A roots image of `roots` bytes
/// gets a second partition (Linux's type), which the VM finds by the image's
/// first bytes.
pub fn disk(firmware: Firmware, fat: u64, roots: Option<u64>) -> Disk {
    let (label, tail) = match firmware {
        Firmware::Bios => ("dos", 0),
        Firmware::Efi => ("gpt", MIB),
    };
    let roots = roots.map(|bytes| (PARTITION_START + fat, round_up(bytes, MIB)));
    Disk {
        size: PARTITION_START + fat + roots.map_or(0, |(_, size)| size) + tail,
        label,
        partition_start: PARTITION_START,
        partition_size: fat,
        roots,
    }
}

/// The `sfdisk` script that writes `disk`'s partition table.
pub fn sfdisk_script(disk: &Disk) -> String {
    let (start, sectors) = (disk.partition_start / SECTOR, disk.partition_size / SECTOR);
    let roots = disk.roots.map(|(start, size)| (start / SECTOR, size / SECTOR));
    match disk.label {
        "dos" => {
            let mut script = format!(
                "label: dos\nlabel-id: {MBR_ID}\nunit: sectors\n\
                 start={start}, size={sectors}, type=c, bootable\n"
            );
            if let Some((start, sectors)) = roots {
                script += &format!("start={start}, size={sectors}, type=83\n");
            }
            script
        }
        _ => {
            let mut script = format!(
                "label: gpt\nlabel-id: {GPT_ID}\nunit: sectors\nfirst-lba: 34\n\
                 start={start}, size={sectors}, type={ESP_TYPE}, uuid={ESP_UUID}, name=\"EFI system\"\n"
            );
            if let Some((start, sectors)) = roots {
                script += &format!(
                    "start={start}, size={sectors}, type={LINUX_TYPE}, uuid={ROOTS_UUID}, name=\"compose roots\"\n"
                );
            }
            script
        }
    }
}

/// Names of the kernel and initrd on the BIOS image's FAT filesystem.
pub const KERNEL: &str = "kernel";
pub const INITRD: &str = "initrd.img";

/// syslinux.cfg: boot the kernel at once, with `cmdline`.
pub fn syslinux_cfg(cmdline: &str) -> String {
    format!(
        "# Written by cargo xtask: boots the LinuxKit VM at once.\n\
         DEFAULT linux\nPROMPT 0\nTIMEOUT 0\n\
         LABEL linux\n  LINUX /{KERNEL}\n  INITRD /{INITRD}\n  APPEND {cmdline}\n"
    )
}

/// A section added to systemd's EFI stub, and where it is loaded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Section {
    pub name: &'static str,
    pub size: u64,
    pub vma: u64,
}

/// A unified kernel image: sections `.osrel`, `.cmdline`, `.linux` and
/// `.initrd` placed after the stub's own (which end at `stub_end`), each on
/// its own page, the kernel and initrd 2 MiB aligned. The image's size in
/// memory is the last section's end.
pub fn uki_sections(stub_end: u64, osrel: u64, cmdline: u64, kernel: u64, initrd: u64) -> (Vec<Section>, u64) {
    let mut at = stub_end;
    let mut out = Vec::new();
    for (name, size, align) in [
        (".osrel", osrel, 4096),
        (".cmdline", cmdline, 4096),
        (".linux", kernel, 2 * MIB),
        (".initrd", initrd, 2 * MIB),
    ] {
        let vma = round_up(at, align);
        out.push(Section { name, size, vma });
        at = vma + size;
    }
    (out, at)
}

/// The end of the last section `objdump -h` lists (its VMA plus its size).
pub fn sections_end(objdump: &str) -> Option<u64> {
    objdump
        .lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // Idx Name Size VMA LMA File-off Algn
            if cols.len() == 7 && cols[0].parse::<u32>().is_ok() {
                let size = u64::from_str_radix(cols[2], 16).ok()?;
                let vma = u64::from_str_radix(cols[3], 16).ok()?;
                Some(vma + size)
            } else {
                None
            }
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_holds_its_files_with_room_for_the_fats() {
        // The static VM's kernel and initrd.
        let fat = fat_size(&[11_737_024, 145_000_000]);
        assert_eq!(fat % MIB, 0);
        assert!(fat > 11_737_024 + 145_000_000 + 4 * MIB, "{fat}");
        assert!(fat < 180 * MIB, "{fat}");
        assert_eq!(fat_size(&[1000]), 40 * MIB, "FAT32's minimum");
    }

    #[test]
    fn bios_disk_is_mbr_with_an_active_fat_partition() {
        let d = disk(Firmware::Bios, 100 * MIB, None);
        assert_eq!(d.size, 101 * MIB);
        insta::assert_snapshot!(sfdisk_script(&d));
    }

    /// A roots image gets a partition of its own after the FAT one, in whole
    /// MiB, before the backup GPT.
    #[test]
    fn roots_get_a_partition_after_the_fat_one() {
        let bios = disk(Firmware::Bios, 100 * MIB, Some(10 * MIB + 4096));
        assert_eq!(bios.roots, Some((101 * MIB, 11 * MIB)));
        assert_eq!(bios.size, 112 * MIB);
        assert!(
            sfdisk_script(&bios).ends_with("start=206848, size=22528, type=83\n"),
            "{}",
            sfdisk_script(&bios)
        );
        let efi = disk(Firmware::Efi, 100 * MIB, Some(10 * MIB));
        assert_eq!(efi.size, 112 * MIB, "1 MiB after the roots for the backup GPT");
        insta::assert_snapshot!(sfdisk_script(&efi));
    }

    #[test]
    fn efi_disk_is_gpt_with_an_esp_and_room_for_the_backup_table() {
        let d = disk(Firmware::Efi, 100 * MIB, None);
        assert_eq!(
            d.size,
            102 * MIB,
            "1 MiB before the ESP, 1 MiB after for the backup GPT"
        );
        insta::assert_snapshot!(sfdisk_script(&d));
    }

    #[test]
    fn syslinux_boots_the_kernel_with_the_cmdline() {
        insta::assert_snapshot!(syslinux_cfg("console=ttyS0 panic=1 loglevel=5"));
    }

    /// Sections never overlap, whatever the sizes, and the kernel and initrd
    /// start on 2 MiB boundaries.
    #[test]
    fn uki_sections_do_not_overlap() {
        let (sections, end) = uki_sections(0x19134, 40, 32, 11_737_024, 145_000_000);
        insta::assert_yaml_snapshot!(sections);
        for pair in sections.windows(2) {
            assert!(pair[0].vma + pair[0].size <= pair[1].vma, "{pair:?}");
        }
        assert_eq!(sections[2].vma % (2 * MIB), 0);
        assert_eq!(sections[3].vma % (2 * MIB), 0);
        assert_eq!(end, sections[3].vma + 145_000_000);
    }

    #[test]
    fn stub_end_from_objdump() {
        let objdump = "
/usr/lib/systemd/boot/efi/linuxx64.efi.stub:     file format pei-x86-64

Sections:
Idx Name          Size      VMA               LMA               File off  Algn
  0 .text         0000bff0  0000000000004000  0000000000004000  00000400  2**4
                  CONTENTS, ALLOC, LOAD, READONLY, CODE
  6 .sbat         000000e2  0000000000019000  0000000000019000  00011000  2**2
                  CONTENTS, ALLOC, LOAD, READONLY, DATA
  7 .sdmagic      00000034  0000000000019100  0000000000019100  00011200  2**2
                  CONTENTS, ALLOC, LOAD, READONLY, DATA
";
        assert_eq!(sections_end(objdump), Some(0x19134));
        assert_eq!(sections_end("no sections"), None);
    }
}
