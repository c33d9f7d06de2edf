//! Making a format's image from a VM's kernel, initrd and command line, with
//! host programs only (no loop mounts, no root needed beyond apt): `mkfs.fat`
//! and `mcopy` fill a FAT filesystem in a file, `syslinux --install` makes it
//! boot from BIOS, `objcopy` joins systemd's EFI stub, the kernel, the initrd
//! and the command line into one unified kernel image for UEFI, `sfdisk`
//! writes the partition table onto the disk file, `qemu-img convert` makes
//! qcow2 and `xorriso` the ISO. Everything is made in a scratch folder and
//! renamed into dist/ at the end: dist/ never holds half an image.

use std::{
    fs,
    io::{Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    base::{exec, files, project::Project, ui},
    disk::{
        format::{EFI_STUB, SYSLINUX_MBR},
        layout::{self, Disk},
        limits::{self, Sizes},
        Firmware, Format, Medium,
    },
    vm::{linuxkit::Artifacts, memory, packed::ROOTS_IN_INITRD},
};

/// What the assembly does: part of every image's stamp, so a change here remakes it.
const RECIPE: &str = "disk v1: FAT32, syslinux 6 MBR, systemd-stub UKI, El Torito UEFI";

/// A VM as `linuxkit build` (and the method's packing) left it.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The VM's name (`compose-static`): images are `dist/NAME-…`.
    pub vm: &'a str,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub cmdline: &'a str,
    /// The VM's roots disk, if its initrd does not hold the services' root
    /// filesystems: the image carries them in its initrd (a cpio archive
    /// before the initrd's own, [`initrd_with_roots`]).
    pub roots: Option<&'a Path>,
}

impl<'a> Input<'a> {
    /// The bytes of the roots disk that `format`'s initrd carries: a CD's
    /// all of them, a disk's none (they are in a partition of their own).
    pub fn roots_in_initrd(&self, format: Format) -> Result<u64> {
        Ok(match (self.roots, format.medium()) {
            (Some(roots), Some(Medium::Cdrom)) => fs::metadata(roots)?.len(),
            _ => 0,
        })
    }

    /// VM `vm` as `built`.
    pub fn of(vm: &'a str, built: &'a Artifacts) -> Input<'a> {
        Input {
            vm,
            kernel: &built.kernel,
            initrd: &built.initrd,
            cmdline: &built.cmdline,
            roots: built.roots.as_deref(),
        }
    }
}

/// Make `format` of `input` in dist/ (unless it is there, made from the
/// same input), after checking the format's limits; says its size and
/// returns its path. `None` for `kernel+initrd`, which is already there.
pub fn build(sh: &Shell, project: &Project, format: Format, input: &Input) -> Result<Option<PathBuf>> {
    let Some(name) = format.file_name(input.vm) else {
        return Ok(None);
    };
    let roots = input.roots_in_initrd(format)?;
    let sizes = Sizes {
        kernel: fs::metadata(input.kernel)?.len(),
        initrd: fs::metadata(input.initrd)?.len() + roots,
        cmdline: input.cmdline.len() as u64,
    };
    let problems = limits::check(format, sizes);
    if !problems.is_empty() {
        bail!("{} cannot be made as {format}:\n  {}", input.vm, problems.join("\n  "));
    }
    let out = project.dist.join(&name);
    let stamp_path = project.dist.join(format!(".{name}.stamp"));
    let stamp = format!(
        "{RECIPE}\n{format}\n{}\n{}\ncmdline {}\nroots {}\n",
        file_id(input.kernel)?,
        file_id(input.initrd)?,
        input.cmdline,
        input.roots.map(file_id).transpose()?.unwrap_or_default()
    );
    let unpacked = unpacked(project, input.initrd)?;
    let need = unpacked.map(|u| memory::min_memory(sizes.initrd, u + roots));
    let memory = need.map_or(String::new(), |m| {
        format!(", needs {m} MiB of memory or more to unpack its initrd")
    });
    if out.is_file() && fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str()) {
        ui::cached(format!("{} ({format})", project.rel(&out).display()));
    } else {
        let step = ui::step(format!(
            "{} ({format}: {})",
            project.rel(&out).display(),
            format.describe()
        ));
        let _ = fs::remove_file(&stamp_path);
        let scratch = Scratch::new(&project.dist, &name)?;
        make(sh, format, input, &scratch)?;
        fs::rename(&scratch.partial, &out).with_context(|| format!("moving the image to {}", out.display()))?;
        files::write_atomic(&stamp_path, stamp.as_bytes())?;
        step.done();
    }
    ui::note(format!(
        "{}: {} MB ({format}{memory})",
        project.rel(&out).display(),
        fs::metadata(&out)?.len().div_ceil(1_000_000)
    ));
    Ok(Some(out))
}

/// A file's identity for a stamp: path, size and modification time.
fn file_id(path: &Path) -> Result<String> {
    let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mtime = meta.modified()?.duration_since(UNIX_EPOCH)?.as_nanos();
    Ok(format!("{} {} {mtime}", path.display(), meta.len()))
}

/// How many bytes `initrd` unpacks to (see [`memory::unpacked_size`]),
/// remembered beside it by size and mtime (`None`: a compression it does not
/// measure). Reading a 150 MB initrd takes a second.
pub fn unpacked(project: &Project, initrd: &Path) -> Result<Option<u64>> {
    let name = initrd.file_name().unwrap_or_default().to_string_lossy();
    let memo = project.dist.join(format!(".{name}.unpacked"));
    let id = file_id(initrd)?;
    let id = id.split_once(' ').map_or(id.as_str(), |(_, rest)| rest).to_string();
    if let Some(size) = fs::read_to_string(&memo)
        .ok()
        .and_then(|t| t.strip_prefix(&format!("{id} "))?.trim().parse().ok())
    {
        return Ok(Some(size));
    }
    let data = fs::read(initrd).with_context(|| format!("reading {}", initrd.display()))?;
    match memory::unpacked_size(&data) {
        Ok(size) => {
            let _ = fs::create_dir_all(&project.dist).and_then(|()| fs::write(&memo, format!("{id} {size}\n")));
            Ok(Some(size))
        }
        Err(why) => {
            ui::note(format!("{}: unpacked size unknown ({why})", initrd.display()));
            Ok(None)
        }
    }
}

/// A scratch folder and the partial output beside the final one, both gone
/// when this is dropped (the partial output is renamed away on success).
struct Scratch {
    work: PathBuf,
    partial: PathBuf,
}

impl Scratch {
    fn new(dist: &Path, name: &str) -> Result<Scratch> {
        let work = dist.join(format!(".disk-{name}"));
        let partial = dist.join(format!("{name}.partial"));
        if work.exists() {
            fs::remove_dir_all(&work)?;
        }
        let _ = fs::remove_file(&partial);
        fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        Ok(Scratch { work, partial })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.work);
        let _ = fs::remove_file(&self.partial);
    }
}

fn make(sh: &Shell, format: Format, input: &Input, scratch: &Scratch) -> Result<()> {
    let work = &scratch.work;
    // A disk carries the roots in a partition of their own; a CD, in the initrd.
    let joined = work.join("initrd.img");
    let cdrom = format.medium() == Some(Medium::Cdrom);
    let input = &match input.roots {
        Some(roots) if cdrom => {
            initrd_with_roots(input.initrd, roots, &joined)?;
            Input {
                initrd: &joined,
                roots: None,
                ..input.clone()
            }
        }
        _ => input.clone(),
    };
    let firmware = format.firmware().expect("an image format");
    let fat = work.join("fat.img");
    match firmware {
        Firmware::Bios => bios_fat(sh, input, work, &fat)?,
        Firmware::Efi => {
            let uki = work.join("BOOTX64.EFI");
            unified_kernel_image(sh, input, work, &uki)?;
            let size = layout::fat_size(&[fs::metadata(&uki)?.len()]);
            mkfs(sh, &fat, size)?;
            exec::run(cmd!(sh, "mmd -i {fat} ::/EFI ::/EFI/BOOT")).context("making \\EFI\\BOOT")?;
            exec::run(cmd!(sh, "mcopy -m -i {fat} {uki} ::/EFI/BOOT/BOOTX64.EFI")).context("copying BOOTX64.EFI")?;
        }
    }
    match format.medium().expect("an image format") {
        Medium::Disk { qcow2: false } => disk(sh, firmware, &fat, input.roots, &scratch.partial),
        Medium::Disk { qcow2: true } => {
            let raw = work.join("disk.img");
            disk(sh, firmware, &fat, input.roots, &raw)?;
            qcow2(sh, &raw, &scratch.partial)
        }
        Medium::Cdrom => iso(sh, input, work, &fat, &scratch.partial),
    }
}

/// At `out`: `initrd` with the roots disk's image in it, as the file
/// `rc.init` mounts ([`ROOTS_IN_INITRD`]), in an uncompressed cpio
/// archive before the initrd's own (the kernel unpacks them one after the
/// other; a squashfs image does not compress further). An image boots from
/// one disk or CD, whose firmware loads the kernel and the initrd: this is
/// what the VM then unpacks, as a kernel+initrd boot of a VM small enough
/// would.
pub fn initrd_with_roots(initrd: &Path, roots: &Path, out: &Path) -> Result<()> {
    use crate::building::cpio::{Meta, Writer};
    let mut file =
        std::io::BufWriter::new(fs::File::create(out).with_context(|| format!("creating {}", out.display()))?);
    let mut cpio = Writer::new(&mut file);
    let size = fs::metadata(roots)?.len();
    let mut image = fs::File::open(roots).with_context(|| format!("reading {}", roots.display()))?;
    cpio.file(ROOTS_IN_INITRD, Meta::file(0o644), size, &mut image)?;
    cpio.finish()?;
    std::io::copy(&mut fs::File::open(initrd)?, &mut file)?;
    file.into_inner()?.sync_all()?;
    Ok(())
}

/// A FAT32 filesystem of `size` bytes in a new file.
fn mkfs(sh: &Shell, fat: &Path, size: u64) -> Result<()> {
    let kib = (size / 1024).to_string();
    exec::run(cmd!(sh, "mkfs.fat -C -F 32 -n LINUXKIT -i 4c4b4331 {fat} {kib}")).context("making the FAT filesystem")
}

/// The BIOS image's filesystem: the kernel, the initrd, syslinux.cfg and syslinux.
fn bios_fat(sh: &Shell, input: &Input, work: &Path, fat: &Path) -> Result<()> {
    let (kernel, initrd) = (input.kernel, input.initrd);
    let size = layout::fat_size(&[fs::metadata(kernel)?.len(), fs::metadata(initrd)?.len(), 64 * 1024]);
    mkfs(sh, fat, size)?;
    let cfg = work.join("syslinux.cfg");
    fs::write(&cfg, layout::syslinux_cfg(input.cmdline))?;
    let (k, i) = (format!("::/{}", layout::KERNEL), format!("::/{}", layout::INITRD));
    exec::run(cmd!(sh, "mcopy -m -i {fat} {kernel} {k}")).context("copying the kernel")?;
    exec::run(cmd!(sh, "mcopy -m -i {fat} {initrd} {i}")).context("copying the initrd")?;
    exec::run(cmd!(sh, "mcopy -i {fat} {cfg} ::/syslinux.cfg")).context("copying syslinux.cfg")?;
    exec::run(cmd!(sh, "syslinux --install {fat}")).context("installing syslinux")
}

/// systemd's EFI stub with the kernel, initrd and command line as sections.
fn unified_kernel_image(sh: &Shell, input: &Input, work: &Path, out: &Path) -> Result<()> {
    let osrel = work.join("os-release");
    fs::write(
        &osrel,
        format!(
            "ID=linuxkit\nNAME=linuxkit-compose\nPRETTY_NAME=\"linuxkit-compose {}\"\n",
            input.vm
        ),
    )?;
    let cmdline = work.join("cmdline");
    fs::write(&cmdline, input.cmdline)?;
    let stub = EFI_STUB;
    let objdump = exec::read(cmd!(sh, "objdump -h {stub}")).context("reading the EFI stub's sections")?;
    let end = layout::sections_end(&objdump).with_context(|| format!("objdump -h {stub} lists no sections"))?;
    let len = |p: &Path| fs::metadata(p).map(|m| m.len());
    let (sections, _) = layout::uki_sections(
        end,
        len(&osrel)?,
        len(&cmdline)?,
        len(input.kernel)?,
        len(input.initrd)?,
    );
    let mut args: Vec<String> = Vec::new();
    for (section, file) in sections.iter().zip([&osrel, &cmdline, input.kernel, input.initrd]) {
        args.push("--add-section".into());
        args.push(format!("{}={}", section.name, file.display()));
        args.push("--change-section-vma".into());
        args.push(format!("{}={:#x}", section.name, section.vma));
    }
    exec::run(cmd!(sh, "objcopy {args...} {stub} {out}")).context("making the unified kernel image (objcopy)")
}

/// A disk image at `out`: the partition table, then the FAT filesystem in
/// its partition (and for BIOS, syslinux's boot code in the MBR), and the
/// roots image in the next one.
fn disk(sh: &Shell, firmware: Firmware, fat: &Path, roots: Option<&Path>, out: &Path) -> Result<()> {
    let roots_size = roots.map(fs::metadata).transpose()?.map(|m| m.len());
    let d: Disk = layout::disk(firmware, fs::metadata(fat)?.len(), roots_size);
    let mut file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    file.set_len(d.size)?;
    let script = out.with_extension("sfdisk");
    fs::write(&script, layout::sfdisk_script(&d))?;
    exec::run(cmd!(
        sh,
        "bash -c 'sfdisk --no-reread --no-tell-kernel \"$0\" < \"$1\"' {out} {script}"
    ))
    .context("writing the partition table (sfdisk)")?;
    fs::remove_file(&script)?;
    file.seek(SeekFrom::Start(d.partition_start))?;
    let copied = std::io::copy(&mut fs::File::open(fat)?, &mut file)?;
    if copied != d.partition_size {
        bail!(
            "the FAT filesystem is {copied} bytes, its partition {}",
            d.partition_size
        );
    }
    if let (Some(roots), Some((start, _))) = (roots, d.roots) {
        file.seek(SeekFrom::Start(start))?;
        std::io::copy(&mut fs::File::open(roots)?, &mut file)?;
    }
    if firmware == Firmware::Bios {
        let mbr = fs::read(SYSLINUX_MBR).with_context(|| format!("reading {SYSLINUX_MBR}"))?;
        // The boot code only: the partition table (from byte 440) stays.
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&mbr[..mbr.len().min(440)])?;
    }
    file.sync_all()?;
    Ok(())
}

/// `raw` as qcow2 at `out`, checked with `qemu-img info`.
fn qcow2(sh: &Shell, raw: &Path, out: &Path) -> Result<()> {
    exec::run(cmd!(sh, "qemu-img convert -f raw -O qcow2 {raw} {out}")).context("converting to qcow2")?;
    let info = exec::read(cmd!(sh, "qemu-img info --output=json {out}")).context("qemu-img info")?;
    let info: serde_json::Value = serde_json::from_str(&info).context("qemu-img info's JSON")?;
    let raw_size = fs::metadata(raw)?.len();
    if info["format"] != "qcow2" || info["virtual-size"].as_u64() != Some(raw_size) {
        bail!(
            "qemu-img info disagrees with the qcow2 image: format {}, virtual size {} (want qcow2, {raw_size})",
            info["format"],
            info["virtual-size"]
        );
    }
    Ok(())
}

/// An ISO whose El Torito UEFI boot image is the FAT filesystem (a file of
/// the ISO, so the firmware finds it inside the volume), with a GPT naming
/// the same bytes an EFI system partition, for USB sticks.
fn iso(sh: &Shell, input: &Input, work: &Path, fat: &Path, out: &Path) -> Result<()> {
    let root = work.join("iso");
    fs::create_dir_all(root.join("boot"))?;
    fs::rename(fat, root.join("boot/efi.img"))?;
    let volume = input.vm.to_uppercase().replace('-', "_");
    exec::run(cmd!(
        sh,
        "xorriso -as mkisofs -o {out} -V {volume} -e boot/efi.img -no-emul-boot -efi-boot-part --efi-boot-image {root}"
    ))
    .context("making the ISO (xorriso)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::TestDir;

    /// A project whose dist/ is a fresh temporary folder.
    fn scratch_project(name: &str) -> Project {
        let root = std::env::temp_dir().join(format!("lkc-disk-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("dist")).unwrap();
        Project {
            dist: root.join("dist"),
            ..crate::base::project::for_tests()
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A 5 GiB initrd (a sparse file) is refused for a disk format before
    /// any program runs, naming FAT32's limit, and dist/ gets nothing.
    #[test]
    fn a_vm_over_the_formats_limits_is_refused_before_anything_is_made() {
        let project = scratch_project("limits");
        let (kernel, initrd) = (project.dist.join("vm-kernel"), project.dist.join("vm-initrd.img"));
        fs::write(&kernel, "k").unwrap();
        fs::File::create(&initrd).unwrap().set_len(5 << 30).unwrap();
        let before = listing(&project.dist);
        let sh = Shell::new().unwrap();
        let input = Input {
            vm: "vm",
            kernel: &kernel,
            initrd: &initrd,
            cmdline: "console=ttyS0",
            roots: None,
        };
        let err = format!("{:#}", build(&sh, &project, Format::RawBios, &input).unwrap_err());
        assert!(err.starts_with("vm cannot be made as raw-bios:"), "{err}");
        assert!(
            err.contains("FAT32's largest file is 4294967295 bytes, 1024.0 MiB over"),
            "{err}"
        );
        assert_eq!(listing(&project.dist), before, "nothing written to dist/");
        // kernel+initrd has no such limit: nothing to make.
        assert!(build(&sh, &project, Format::KernelInitrd, &input).unwrap().is_none());
        fs::remove_dir_all(project.dist.parent().unwrap()).unwrap();
    }

    fn run(args: &[&str]) -> String {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .unwrap_or_else(|e| panic!("{}: {e} (`cargo xtask doctor --fix` installs it)", args[0]));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every image format made from a small kernel and initrd with the real
    /// host tools (`cargo xtask doctor` lists them), then taken apart: the
    /// partition table, the boot code, the files each firmware reads, and the
    /// command line inside.
    #[test]
    fn images_hold_what_their_firmware_boots() {
        let project = scratch_project("formats");
        let (kernel, initrd) = (project.dist.join("vm-kernel"), project.dist.join("vm-initrd.img"));
        fs::write(&kernel, vec![0x4b; 300_000]).unwrap();
        fs::write(&initrd, vec![0x49; 700_000]).unwrap();
        let sh = Shell::new().unwrap();
        let cmdline = "console=ttyS0 panic=1 linuxkit_compose.registry=10.0.2.2:5000";
        let input = Input {
            vm: "vm",
            kernel: &kernel,
            initrd: &initrd,
            cmdline,
            roots: None,
        };
        let built = |f| build(&sh, &project, f, &input).unwrap().unwrap();
        let part = |img: &Path| format!("{}@@{}", img.display(), layout::PARTITION_START);

        let bios = built(Format::RawBios);
        let table: serde_json::Value = serde_json::from_str(&run(&["sfdisk", "-J", bios.to_str().unwrap()])).unwrap();
        let p = &table["partitiontable"];
        assert_eq!(
            (p["label"].as_str(), p["partitions"][0]["start"].as_u64()),
            (Some("dos"), Some(2048))
        );
        assert_eq!(p["partitions"][0]["bootable"], true);
        let disk = fs::read(&bios).unwrap();
        assert_eq!(
            disk[..440],
            fs::read(SYSLINUX_MBR).unwrap()[..440],
            "syslinux's MBR code"
        );
        let files = run(&["mdir", "-a", "-b", "-i", &part(&bios), "::/"]);
        for f in ["::/kernel", "::/initrd.img", "::/syslinux.cfg", "::/ldlinux.sys"] {
            assert!(files.lines().any(|l| l.eq_ignore_ascii_case(f)), "{f} not in {files}");
        }
        let cfg = run(&["mtype", "-i", &part(&bios), "::/syslinux.cfg"]);
        assert!(cfg.contains(&format!("APPEND {cmdline}\n")), "{cfg}");

        let efi = built(Format::RawEfi);
        let table: serde_json::Value = serde_json::from_str(&run(&["sfdisk", "-J", efi.to_str().unwrap()])).unwrap();
        let p = &table["partitiontable"];
        assert_eq!(p["label"], "gpt");
        assert_eq!(p["partitions"][0]["type"], "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        let uki = project.dist.join("BOOTX64.EFI");
        run(&[
            "mcopy",
            "-i",
            &part(&efi),
            "::/EFI/BOOT/BOOTX64.EFI",
            uki.to_str().unwrap(),
        ]);
        for (section, want) in [
            (".cmdline", cmdline.as_bytes().to_vec()),
            (".initrd", fs::read(&initrd).unwrap()),
        ] {
            let out = project.dist.join("section");
            run(&[
                "objcopy",
                "-O",
                "binary",
                "--only-section",
                section,
                uki.to_str().unwrap(),
                out.to_str().unwrap(),
            ]);
            assert!(fs::read(&out).unwrap() == want, "{section} of BOOTX64.EFI");
        }

        let qcow2 = built(Format::Qcow2Bios);
        let info = run(&["qemu-img", "info", "--output=json", qcow2.to_str().unwrap()]);
        let info: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(info["format"], "qcow2");
        assert_eq!(info["virtual-size"].as_u64(), Some(fs::metadata(&bios).unwrap().len()));

        let iso = built(Format::IsoEfi);
        let report = run(&["xorriso", "-indev", iso.to_str().unwrap(), "-report_el_torito", "plain"]);
        assert!(report.contains("UEFI") && report.contains("/boot/efi.img"), "{report}");
        let table: serde_json::Value = serde_json::from_str(&run(&["sfdisk", "-J", iso.to_str().unwrap()])).unwrap();
        let types: Vec<&str> = table["partitiontable"]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["type"].as_str())
            .collect();
        assert!(
            types.contains(&"C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
            "an ESP for USB sticks: {types:?}"
        );

        // Made again from the same input: cached, not rebuilt.
        let mtime = fs::metadata(&efi).unwrap().modified().unwrap();
        built(Format::RawEfi);
        assert_eq!(fs::metadata(&efi).unwrap().modified().unwrap(), mtime);
        let leftovers: Vec<String> = listing(&project.dist)
            .into_iter()
            .filter(|n| n.contains("partial") || n.starts_with(".disk-"))
            .collect();
        assert_eq!(leftovers, Vec::<String>::new());
        fs::remove_dir_all(project.dist.parent().unwrap()).unwrap();
    }

    /// A VM with a roots disk: a disk image holds it, byte for byte, in a
    /// second partition after the FAT one, and its initrd is the VM's own;
    /// an ISO (booted as a CD, which the VM does not read) has it in its
    /// initrd, as `roots.sqfs` in a cpio archive before the VM's
    /// own initrd, which the kernel unpacks next.
    #[test]
    fn roots_go_in_a_partition_of_a_disk_and_the_initrd_of_a_cd() {
        let project = scratch_project("roots");
        let dist = &project.dist;
        let (kernel, initrd, roots) = (
            dist.join("vm-kernel"),
            dist.join("vm-initrd.img"),
            dist.join("vm-roots.img"),
        );
        fs::write(&kernel, vec![0x4b; 300_000]).unwrap();
        let mut own = crate::building::cpio::Writer::new(Vec::new());
        own.bytes("init", crate::building::cpio::Meta::file(0o755), b"#!/bin/sh\n")
            .unwrap();
        fs::write(&initrd, own.finish().unwrap()).unwrap();
        let image: Vec<u8> = (0..3 * 1024 * 1024 + 4096).map(|i| (i % 251) as u8).collect();
        fs::write(&roots, &image).unwrap();
        let sh = Shell::new().unwrap();
        let input = Input {
            vm: "vm",
            kernel: &kernel,
            initrd: &initrd,
            cmdline: "console=ttyS0",
            roots: Some(&roots),
        };
        let built = |f| build(&sh, &project, f, &input).unwrap().unwrap();

        let bios = built(Format::RawBios);
        let table: serde_json::Value = serde_json::from_str(&run(&["sfdisk", "-J", bios.to_str().unwrap()])).unwrap();
        let second = &table["partitiontable"]["partitions"][1];
        assert_eq!(second["type"], "83");
        let start = second["start"].as_u64().unwrap() * layout::SECTOR;
        let disk = fs::read(&bios).unwrap();
        assert!(
            disk[start as usize..][..image.len()] == image[..],
            "the roots partition's bytes"
        );
        let fat = format!("{}@@{}", bios.display(), layout::PARTITION_START);
        let on_fat = dist.join("fat-initrd");
        run(&["mcopy", "-i", &fat, "::/initrd.img", on_fat.to_str().unwrap()]);
        assert_eq!(
            fs::read(&on_fat).unwrap(),
            fs::read(&initrd).unwrap(),
            "the VM's own initrd"
        );

        let iso = built(Format::IsoEfi);
        let (efi, uki, joined) = (dist.join("efi.img"), dist.join("BOOTX64.EFI"), dist.join("joined"));
        run(&[
            "xorriso",
            "-osirrox",
            "on",
            "-indev",
            iso.to_str().unwrap(),
            "-extract",
            "/boot/efi.img",
            efi.to_str().unwrap(),
        ]);
        run(&[
            "mcopy",
            "-i",
            efi.to_str().unwrap(),
            "::/EFI/BOOT/BOOTX64.EFI",
            uki.to_str().unwrap(),
        ]);
        run(&[
            "objcopy",
            "-O",
            "binary",
            "--only-section",
            ".initrd",
            uki.to_str().unwrap(),
            joined.to_str().unwrap(),
        ]);
        let out = dist.join("unpacked");
        fs::create_dir_all(&out).unwrap();
        // cpio reads the first archive; the VM's own follows it.
        let listed = run(&[
            "cpio",
            "-idv",
            "--quiet",
            "-D",
            out.to_str().unwrap(),
            "-F",
            joined.to_str().unwrap(),
        ]);
        assert_eq!(fs::read(out.join(ROOTS_IN_INITRD)).unwrap(), image, "{listed}");
        let bytes = fs::read(&joined).unwrap();
        assert!(bytes.ends_with(&fs::read(&initrd).unwrap()));
        assert_eq!(
            memory::unpacked_size(&bytes).unwrap(),
            memory::unpacked_size(&fs::read(&initrd).unwrap()).unwrap()
                + (bytes.len() - fs::metadata(&initrd).unwrap().len() as usize) as u64,
            "the kernel unpacks both archives"
        );
        fs::remove_dir_all(project.dist.parent().unwrap()).unwrap();
    }

    /// A failed assembly leaves neither its scratch folder nor a partial image.
    #[test]
    fn scratch_leaves_nothing_behind() {
        let dist = TestDir::new("scratch");
        {
            let s = Scratch::new(&dist, "vm-efi.img").unwrap();
            fs::write(s.work.join("fat.img"), "half").unwrap();
            fs::write(&s.partial, "half a disk").unwrap();
        }
        assert_eq!(fs::read_dir(&dist).unwrap().count(), 0, "dist/ holds no leftovers");
    }
}
