//! A compose VM's base initrd, packed for a small image and a fast boot: what
//! `linuxkit build` wrote (gzip), rewritten as one legacy lz4 cpio in which
//! - each service's root filesystem (`containers/services/NAME/lower`, the
//!   read-only lower layer of its overlay) is a squashfs image (zstd), which
//!   the init's `rc.init` loop-mounts on it before any container starts: the
//!   engine, runner and their libraries (280 MB) travel as 80 MB and stay
//!   compressed in the VM's memory, where the kernel would otherwise unpack
//!   every byte into the initramfs. With [`Layout::PerService`] each has an
//!   image of its own beside its directory (`lower.sqfs`); with
//!   [`Layout::Shared`] they are one image, `containers/lower.sqfs`, each
//!   under its name, so a file several services carry is stored once (two
//!   nginx sites share all but their page) — but its readers share one small
//!   block cache: measured 16 MB smaller and as fast for the native VM, 4 MB
//!   smaller and ~0.8 s slower for the static one (BENCHMARKS.md);
//! - the kernel modules are only those the VM loads (the `modules` onboot
//!   image's list, what the kernel asks for on its own, and squashfs/loop),
//!   stored uncompressed: Debian ships them xz-compressed, and unpacking xz
//!   in the guest's kernel is slow under emulation (the initrd is compressed
//!   as a whole anyway).
//!
//! Onboot containers (read-only bind of their rootfs, into which runc creates
//! mount points) stay plain directories; they are small.
//!
//! The squashfs images are cached by their content (`<cache>/squashfs`): the
//! engine's and the runner's root filesystems are the same for every app, so
//! a new compose file (which is part of the base initrd) costs an unpack and a
//! repack, not another minute of zstd-19.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::base::{exec, project::Project, ui};

/// What the packing does: part of every output's stamp, so a change here remakes it.
const FORMAT: &str = "squashfs zstd-19 1M lower, times 0; modules trimmed, uncompressed; v4";

/// mksquashfs's options for every image (part of the cache key): file and
/// filesystem times are 0, so an image is made of its files alone.
pub const SQUASHFS_OPTS: [&str; 13] = [
    "-noappend",
    "-quiet",
    "-no-progress",
    "-comp",
    "zstd",
    "-Xcompression-level",
    "19",
    "-b",
    "1048576",
    "-all-time",
    "0",
    "-mkfs-time",
    "0",
];

/// How the services' root filesystems are packed (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    PerService,
    Shared,
}

/// Modules the kernel requests on its own once the engine runs (iptables-nft's
/// xt matches and NAT chain, conntrack netlink, xfrm, the AES driver) and the
/// ones `rc.init` loads to mount the squashfs images.
const ALSO_LOADED: &[&str] = &[
    "nft_compat",
    "nft_chain_nat",
    "xt_nat",
    "xt_tcpudp",
    "nf_conntrack_netlink",
    "xfrm_user",
    "aesni_intel",
    "loop",
    "squashfs",
    // The native method's nftables rules: NAT, masquerade, `fib daddr type local`.
    "nft_nat",
    "nft_masq",
    "nft_fib_ipv4",
];

/// The modules the `modules` onboot image loads: its Dockerfile's `CMD [...]`.
pub fn onboot_modules(dockerfile: &str) -> Result<Vec<String>> {
    let line = dockerfile
        .lines()
        .find(|l| l.starts_with("CMD "))
        .context("images/modules/Dockerfile: no CMD line")?;
    let list: Vec<String> = serde_json::from_str(line.trim_start_matches("CMD ").trim())
        .context("images/modules/Dockerfile: CMD is not a JSON list")?;
    Ok(list)
}

/// Write `out` from `base` (remade when the base or this packing changes).
pub fn pack(sh: &Shell, project: &Project, base: &Path, out: &Path, layout: Layout) -> Result<PathBuf> {
    let stamp_path = out.with_extension("stamp");
    let meta = fs::metadata(base)?;
    let dockerfile = fs::read_to_string(project.root.join("images/modules/Dockerfile"))?;
    let mut wanted = onboot_modules(&dockerfile)?;
    wanted.extend(ALSO_LOADED.iter().map(|m| m.to_string()));
    let stamp = format!(
        "{FORMAT} {layout:?}\n{} {:?}\nmodules {}\n",
        meta.len(),
        meta.modified()?,
        wanted.join(" ")
    );
    if out.is_file() && fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str()) {
        ui::cached(format!("{} (packed)", project.rel(out).display()));
        return Ok(out.to_path_buf());
    }
    let step = ui::step(format!(
        "packing {} (squashfs service filesystems, trimmed modules, lz4)",
        project.rel(base).display()
    ));
    let _ = fs::remove_file(&stamp_path);
    let work = out.with_extension("work");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;
    // pipefail: a failed gunzip must not pass for an empty archive.
    exec::run(
        cmd!(
            sh,
            "bash -o pipefail -c 'cd \"$1\" && gzip -dc \"$0\" | cpio -idmu --quiet --no-absolute-filenames' {base} {work}"
        )
        .env("LC_ALL", "C"),
    )
    .context("unpacking the base initrd")?;
    trim_modules(sh, &work, &wanted)?;
    pack_lowers(sh, &project.cache_path("squashfs"), &work, layout)?;
    // Same inputs, same bytes: what depmod and the moves above wrote carries
    // the wall clock; every time after the lock's SOURCE_DATE_EPOCH is clamped to it.
    let epoch = format!("@{}", project.lock.source_date_epoch);
    let each = "{}";
    exec::run(cmd!(
        sh,
        "find {work} -newermt {epoch} -exec touch -h -d {epoch} {each} +"
    ))
    .context("clamping file times to SOURCE_DATE_EPOCH")?;
    let partial = out.with_extension("partial");
    // Sorted, so every directory comes before what it holds.
    exec::run(
        cmd!(
            sh,
            "bash -o pipefail -c 'cd \"$1\" && find . | sort | cpio -o -H newc --quiet --renumber-inodes --ignore-devno | lz4 -l -q > \"$0\"' {partial} {work}"
        )
        .env("LC_ALL", "C"),
    )
    .context("packing the initrd")?;
    fs::remove_dir_all(&work)?;
    fs::rename(&partial, out)?;
    fs::write(&stamp_path, stamp)?;
    step.done();
    ui::note(format!(
        "{} ({} MB)",
        project.rel(out).display(),
        fs::metadata(out)?.len() / 1_000_000
    ));
    Ok(out.to_path_buf())
}

/// Each service's non-empty `lower` as a squashfs image, per `layout`.
fn pack_lowers(sh: &Shell, cache: &Path, work: &Path, layout: Layout) -> Result<()> {
    let services = work.join("containers/services");
    let mut lowers = Vec::new();
    if services.is_dir() {
        for entry in fs::read_dir(&services)? {
            let entry = entry?;
            let lower = entry.path().join("lower");
            if lower.is_dir() && fs::read_dir(&lower)?.next().is_some() {
                lowers.push((entry.file_name(), lower));
            }
        }
    }
    let squash = |from: &Path, image: &Path| squash_cached(sh, cache, from, image);
    match layout {
        Layout::PerService => {
            for (_, lower) in lowers {
                squash(&lower, &lower.with_extension("sqfs"))?;
                fs::remove_dir_all(&lower)?;
                fs::create_dir(&lower)?;
            }
        }
        Layout::Shared if !lowers.is_empty() => {
            let stage = work.join("containers/.lower");
            fs::create_dir_all(&stage)?;
            for (name, lower) in lowers {
                fs::rename(&lower, stage.join(name))?;
                fs::create_dir(&lower)?;
            }
            squash(&stage, &work.join("containers/lower.sqfs"))?;
            fs::remove_dir_all(&stage)?;
        }
        Layout::Shared => {}
    }
    Ok(())
}

/// `image`: a squashfs image of `from`, made once per content. The key is a
/// hash of the options and of a tar stream of the tree (names, types, modes,
/// owners, link targets and bytes; not times, which the image does not keep).
fn squash_cached(sh: &Shell, cache: &Path, from: &Path, image: &Path) -> Result<()> {
    let opts = SQUASHFS_OPTS.join(" ");
    let hashed = exec::read(
        cmd!(
            sh,
            "bash -o pipefail -c '(echo \"$1\"; tar --sort=name --numeric-owner --xattrs --mtime=@0 --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C \"$0\" -cf - .) | sha256sum' {from} {opts}"
        )
        .env("LC_ALL", "C"),
    )
    .with_context(|| format!("hashing {}", from.display()))?;
    let key = hashed.split_whitespace().next().unwrap_or_default();
    if key.len() != 64 {
        bail!("sha256sum printed {hashed:?} for {}", from.display());
    }
    fs::create_dir_all(cache)?;
    let cached = cache.join(format!("{key}.sqfs"));
    if !cached.is_file() {
        let partial = cached.with_extension("partial");
        let _ = fs::remove_file(&partial);
        exec::run(cmd!(sh, "mksquashfs {from} {partial} {SQUASHFS_OPTS...}"))
            .with_context(|| format!("mksquashfs {}", from.display()))?;
        fs::rename(&partial, &cached)?;
    }
    let _ = fs::remove_file(image);
    if fs::hard_link(&cached, image).is_err() {
        fs::copy(&cached, image).with_context(|| format!("copying {}", cached.display()))?;
    }
    Ok(())
}

/// Keep only `wanted` and their dependencies under usr/lib/modules/VERSION/kernel,
/// then remake modules.dep for what is left.
fn trim_modules(sh: &Shell, root: &Path, wanted: &[String]) -> Result<()> {
    let modules = root.join("usr/lib/modules");
    let Some(version) = fs::read_dir(&modules)
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
    else {
        return Ok(());
    };
    let dir = modules.join(&version);
    let mut keep: BTreeSet<PathBuf> = BTreeSet::new();
    for module in wanted {
        let out = exec::read(cmd!(sh, "modprobe -d {root} -S {version} --show-depends {module}"))
            .with_context(|| format!("kernel module {module}: not in the kernel's modules"))?;
        for line in out.lines() {
            // "insmod /ROOT/lib/modules/VERSION/kernel/….ko.xz" or "builtin NAME"
            if let Some(path) = line.strip_prefix("insmod ") {
                let path = path.split_whitespace().next().unwrap_or_default();
                let rel = path
                    .split_once(&format!("/modules/{version}/"))
                    .map(|(_, rel)| rel)
                    .with_context(|| format!("modprobe printed an unexpected path: {path}"))?;
                keep.insert(PathBuf::from(rel));
            }
        }
    }
    let kernel = dir.join("kernel");
    let kept = dir.join("kernel.kept");
    for rel in &keep {
        let to = dir.join("kernel.kept").join(rel.strip_prefix("kernel")?);
        fs::create_dir_all(to.parent().unwrap())?;
        fs::rename(dir.join(rel), &to)?;
    }
    fs::remove_dir_all(&kernel)?;
    if keep.is_empty() {
        bail!("no kernel module kept");
    }
    fs::rename(&kept, &kernel)?;
    let compressed: Vec<PathBuf> = keep
        .iter()
        .map(|rel| dir.join(rel))
        .filter(|p| p.extension().is_some_and(|e| e == "xz"))
        .collect();
    if !compressed.is_empty() {
        exec::run(cmd!(sh, "xz -d {compressed...}")).context("unpacking the kernel modules")?;
    }
    exec::run(cmd!(sh, "depmod -b {root} {version}")).context("depmod")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_modules_image_list_is_read_from_its_cmd() {
        let root = crate::base::project::root();
        let dockerfile = fs::read_to_string(root.join("images/modules/Dockerfile")).unwrap();
        let list = onboot_modules(&dockerfile).unwrap();
        assert!(list.contains(&"virtio_net".to_string()), "{list:?}");
        assert!(list.contains(&"overlay".to_string()), "{list:?}");
        assert!(onboot_modules("FROM scratch\n").is_err());
    }

    /// The same files give the same image from the cache, whatever their
    /// times; other bytes or another mode give another image.
    #[test]
    fn squashfs_images_are_cached_by_content() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = std::env::temp_dir().join(format!("lkc-squash-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let (tree, cache) = (tmp.join("tree"), tmp.join("cache"));
        fs::create_dir_all(tree.join("bin")).unwrap();
        fs::write(tree.join("bin/tool"), "#!/bin/sh\necho one\n").unwrap();
        let sh = Shell::new().unwrap();
        let image = |name: &str| {
            let out = tmp.join(name);
            squash_cached(&sh, &cache, &tree, &out).unwrap();
            fs::read(out).unwrap()
        };
        let first = image("1.sqfs");
        assert_eq!(&first[..4], b"hsqs", "not a squashfs image");
        fs::write(tree.join("bin/tool"), "#!/bin/sh\necho one\n").unwrap(); // new mtime, same bytes
        assert_eq!(image("2.sqfs"), first);
        assert_eq!(fs::read_dir(&cache).unwrap().count(), 1, "made twice");
        fs::set_permissions(tree.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        let executable = image("3.sqfs");
        assert_ne!(executable, first);
        fs::write(tree.join("bin/tool"), "#!/bin/sh\necho two\n").unwrap();
        assert_ne!(image("4.sqfs"), executable);
        assert_eq!(fs::read_dir(&cache).unwrap().count(), 3);
        fs::remove_dir_all(&tmp).unwrap();
    }
}
