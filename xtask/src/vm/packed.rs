//! A compose VM's base initrd, packed for a small image and a fast boot: what
//! `linuxkit build` wrote (gzip), rewritten as one legacy lz4 cpio in which
//! - each container's read-only root filesystem is a squashfs image (zstd),
//!   which the init's `rc.init` loop-mounts in place before any container
//!   starts: the engine, runner and their libraries (280 MB) travel as 80 MB
//!   and stay compressed in the VM's memory, where the kernel would otherwise
//!   unpack every byte into the initramfs. That is every service's and onboot
//!   container's `lower` (the read-only lower layer of its overlay), and the
//!   `rootfs` of a read-only container whose mount points all exist in it
//!   (nothing can create one on a squashfs image). With [`Layout::PerService`]
//!   each has an image of its own beside its directory (`lower.sqfs`,
//!   `rootfs.sqfs`); with [`Layout::Shared`] they are one image,
//!   `containers/lower.sqfs`, laid out as `containers/` is (`onboot/NAME/lower`,
//!   `services/NAME/lower`, …), so a file several containers carry is stored
//!   once (two nginx sites share all but their page; the native VM's network
//!   tools share libc, OpenSSL and busybox with the app), and as one inode
//!   (hard links), so the VM decompresses and caches it once — but its readers
//!   share one small block cache: measured 16 MB smaller and as fast for the
//!   native VM, 4 MB smaller and ~0.8 s slower for the static one
//!   (BENCHMARKS.md);
//! - the kernel modules are only those the VM loads (the `modules` onboot
//!   image's list, what the kernel asks for on its own, and squashfs/loop),
//!   stored uncompressed: Debian ships them xz-compressed, and unpacking xz
//!   in the guest's kernel is slow under emulation (the initrd is compressed
//!   as a whole anyway).
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

use crate::{
    base::{exec, files, project::Project, ui},
    vm::{memory, parts},
};

/// How much of the cache's squashfs images (`<cache>/squashfs`) and image
/// store layers (`<cache>/layers`) to keep, each: the least recently used go
/// first, never one the running build used. Every edit of an app makes new
/// ones (the native VM's shared image is ~50 MB), so without a cap they grow
/// with every build.
pub const CACHE_CAP: u64 = 2 << 30;

/// What the packing does: part of every output's stamp, so a change here remakes it.
const FORMAT: &str = "squashfs zstd-19 1M lower and read-only rootfs, times 0, identical files linked (shared), on a disk of its own where too big to unpack; modules trimmed, uncompressed; v7";

/// mksquashfs's options for every image (part of the cache key): file and
/// filesystem times are 0, so an image is made of its files alone.
pub const SQUASHFS_OPTS: [&str; 13] = squashfs_opts("1048576");

/// [`SQUASHFS_OPTS`] with another block size (bytes, a power of two).
pub const fn squashfs_opts(block: &'static str) -> [&'static str; 13] {
    [
        "-noappend",
        "-quiet",
        "-no-progress",
        "-comp",
        "zstd",
        "-Xcompression-level",
        "19",
        "-b",
        block,
        "-all-time",
        "0",
        "-mkfs-time",
        "0",
    ]
}

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

/// Where a VM's shared image of the containers' roots goes ([`Layout::Shared`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roots {
    /// Always in the initrd: one file boots.
    InInitrd,
    /// On a read-only disk of its own (`NAME-roots.img` beside the initrd)
    /// when, in the initrd, the VM would need more than this many MiB to
    /// unpack it ([`memory::min_memory`]): an initrd's files stay in memory
    /// for as long as the VM runs, its compressed copy beside them while it
    /// unpacks, where a disk's are read into the page cache as they are
    /// used, and dropped from it when memory is short.
    DiskAbove(u32),
}

/// What [`pack`] made: the initrd, and the roots disk if the roots went on one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub initrd: PathBuf,
    pub roots: Option<PathBuf>,
}

/// In an initrd whose container filesystems are on a roots disk: the disk's
/// first bytes (its squashfs superblock, which names the image's size and
/// tables), by which `rc.init` finds it and mounts it on /run/roots.
pub const SUPERBLOCK_IN_INITRD: &str = "roots.sqfs.superblock";
/// Where an initrd carries the roots disk's image itself (an image booted
/// from a CD): `rc.init` mounts it on /run/roots as it would the disk.
pub const ROOTS_IN_INITRD: &str = "roots.sqfs";
/// How many bytes of the image [`SUPERBLOCK_IN_INITRD`] holds.
pub const SUPERBLOCK_LEN: usize = 96;

/// The first bytes of the squashfs image `image` that the initrd keeps
/// ([`SUPERBLOCK_IN_INITRD`]).
pub fn superblock(image: &Path) -> Result<Vec<u8>> {
    let mut bytes = vec![0; SUPERBLOCK_LEN];
    std::io::Read::read_exact(&mut fs::File::open(image)?, &mut bytes)
        .with_context(|| format!("reading the superblock of {}", image.display()))?;
    Ok(bytes)
}

/// Say what the roots disk `disk` holds (`what`) and, where known, why it
/// is not in the initrd: `(need, limit)`, the memory the initrd would need
/// with it and the method's.
pub fn say_roots_disk(project: &Project, disk: &Path, what: &str, why: Option<(u32, u32)>) -> Result<()> {
    let why = why.map_or(String::new(), |(need, limit)| {
        format!("; in the initrd they would need --memory {need}, over {limit}")
    });
    ui::note(format!(
        "{} ({} MB): {what}, on a read-only disk of their own{why}",
        project.rel(disk).display(),
        fs::metadata(disk)?.len() / 1_000_000
    ));
    Ok(())
}

/// What the native VM's roots disk holds, as [`say_roots_disk`] says it.
const SERVICES_ROOTS: &str = "the services' root filesystems";

/// The roots disk of the packed initrd `out` (`dist/NAME-initrd.img` ->
/// `dist/NAME-roots.img`).
pub fn roots_path(out: &Path) -> PathBuf {
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    let vm = name.strip_suffix("-initrd.img").unwrap_or(&name);
    out.with_file_name(format!("{vm}-roots.img"))
}

/// Write `out` from `base` (remade when the base or this packing changes),
/// every root in the initrd.
pub fn pack(sh: &Shell, project: &Project, base: &Path, out: &Path, layout: Layout) -> Result<PathBuf> {
    Ok(pack_with(sh, project, base, out, layout, Roots::InInitrd)?.initrd)
}

/// Write `out` from `base` (remade when the base or this packing changes),
/// its shared roots image where `roots` says.
pub fn pack_with(
    sh: &Shell,
    project: &Project,
    base: &Path,
    out: &Path,
    layout: Layout,
    roots: Roots,
) -> Result<Packed> {
    let stamp_path = out.with_extension("stamp");
    let roots_disk = roots_path(out);
    let meta = fs::metadata(base)?;
    let dockerfile = fs::read_to_string(project.root.join("images/modules/Dockerfile"))?;
    let mut wanted = onboot_modules(&dockerfile)?;
    wanted.extend(ALSO_LOADED.iter().map(|m| m.to_string()));
    let stamp = format!(
        "{FORMAT} {layout:?} {roots:?}\n{} {:?}\nmodules {}\n",
        meta.len(),
        meta.modified()?,
        wanted.join(" ")
    );
    // The stamp's last line says where the roots went: `roots BYTES` on a
    // disk of that size, `roots initrd` in the initrd.
    let recorded = fs::read_to_string(&stamp_path).ok();
    if let Some(placed) = recorded.as_deref().and_then(|r| r.strip_prefix(stamp.as_str())) {
        let roots = match placed.trim_end().strip_prefix("roots ") {
            Some("initrd") => Some(None),
            Some(bytes) => bytes
                .parse::<u64>()
                .ok()
                .filter(|b| fs::metadata(&roots_disk).is_ok_and(|m| m.len() == *b))
                .map(|_| Some(roots_disk.clone())),
            None => None,
        };
        if let (true, Some(roots)) = (out.is_file(), roots) {
            let sizes = parts::read(out)?;
            ui::cached_with(
                format!("{} (packed)", project.rel(out).display()),
                (!sizes.is_empty()).then(|| parts::summary(&sizes)),
            );
            if let Some(disk) = &roots {
                say_roots_disk(project, disk, SERVICES_ROOTS, None)?;
            }
            return Ok(Packed {
                initrd: out.to_path_buf(),
                roots,
            });
        }
    }
    let step = ui::step(format!(
        "packing {} (squashfs container filesystems, trimmed modules, lz4)",
        project.rel(base).display()
    ));
    let _ = fs::remove_file(&stamp_path);
    let _ = fs::remove_file(&roots_disk);
    let work = out.with_extension("work");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;
    unpack(sh, "gzip -dc", base, &work).context("unpacking the base initrd")?;
    trim_modules(sh, &work, &wanted)?;
    let cache = project.cache_path("squashfs");
    pack_lowers(sh, &cache, &work, layout)?;
    let mut sizes = squashfs_parts(&work.join("containers"))?;
    files::prune_least_recent(&cache, CACHE_CAP, files::run_started())?;
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
    cpio_lz4(sh, &work, &partial)?;
    let shared = work.join("containers/lower.sqfs");
    let mut placed = None;
    if let (Roots::DiskAbove(limit), true) = (roots, shared.is_file()) {
        let size = fs::metadata(&partial)?.len();
        let unpacked = memory::unpacked_size(&fs::read(&partial)?).map_err(anyhow::Error::msg)?;
        let need = memory::min_memory(size, unpacked);
        if need > limit {
            let disk = roots_disk.with_extension("partial");
            fs::rename(&shared, &disk)?;
            let superblock = superblock(&disk)?;
            let (containers, kept) = (work.join("containers"), work.join(SUPERBLOCK_IN_INITRD));
            fs::write(&kept, superblock)?;
            exec::run(cmd!(sh, "touch -h -d {epoch} {work} {containers} {kept}"))?;
            cpio_lz4(sh, &work, &partial)?;
            fs::rename(&disk, &roots_disk)?;
            placed = Some((roots_disk.clone(), need));
        }
    }
    fs::remove_dir_all(&work)?;
    if placed.is_some() {
        // Not in the initrd: the summary names what is.
        sizes.retain(|p| p.name != SHARED_PART);
    }
    let size = fs::metadata(&partial)?.len();
    let images: u64 = sizes.iter().map(|p| p.bytes).sum();
    sizes.push(parts::Part::new(
        "init, kernel modules and the rest",
        size.saturating_sub(images),
    ));
    let _ = fs::remove_file(parts::path_of(out));
    fs::rename(&partial, out)?;
    parts::write(out, &sizes)?;
    let where_roots = match &placed {
        Some((disk, _)) => format!("roots {}\n", fs::metadata(disk)?.len()),
        None => "roots initrd\n".into(),
    };
    fs::write(&stamp_path, stamp + &where_roots)?;
    step.done();
    ui::note(format!("{} ({} MB)", project.rel(out).display(), size / 1_000_000));
    ui::note(parts::summary(&sizes));
    if let (Some((disk, need)), Roots::DiskAbove(limit)) = (&placed, roots) {
        say_roots_disk(project, disk, SERVICES_ROOTS, Some((*need, limit)))?;
    }
    Ok(Packed {
        initrd: out.to_path_buf(),
        roots: placed.map(|(disk, _)| disk),
    })
}

/// The parts file's name for the shared roots image.
const SHARED_PART: &str = "every container's root (shared)";

/// Unpack the cpio archive `archive`, decompressed by `decompress` (`gzip
/// -dc`, `lz4 -dc`), into the folder `into`.
pub fn unpack(sh: &Shell, decompress: &str, archive: &Path, into: &Path) -> Result<()> {
    // pipefail: a failed decompression must not pass for an empty archive.
    exec::run(
        cmd!(
            sh,
            "bash -o pipefail -c 'cd \"$1\" && $2 \"$0\" | cpio -idmu --quiet --no-absolute-filenames' {archive} {into} {decompress}"
        )
        .env("LC_ALL", "C"),
    )
    .with_context(|| format!("unpacking {}", archive.display()))
}

/// `work` as an initrd at `out`: one cpio archive, legacy lz4 (which the
/// kernel unpacks fastest).
fn cpio_lz4(sh: &Shell, work: &Path, out: &Path) -> Result<()> {
    // Sorted, so every directory comes before what it holds.
    exec::run(
        cmd!(
            sh,
            "bash -o pipefail -c 'cd \"$1\" && find . | sort | cpio -o -H newc --quiet --renumber-inodes --ignore-devno | lz4 -l -q > \"$0\"' {out} {work}"
        )
        .env("LC_ALL", "C"),
    )
    .context("packing the initrd")
}

/// The squashfs images under `containers` as parts of the initrd, named by
/// their container (`services/docker`), the shared image as what it holds.
fn squashfs_parts(containers: &Path) -> Result<Vec<parts::Part>> {
    let mut found = Vec::new();
    if !containers.is_dir() {
        return Ok(found);
    }
    for kind in fs::read_dir(containers)? {
        let kind = kind?.path();
        if kind.extension().is_some_and(|e| e == "sqfs") {
            found.push(parts::Part::new(SHARED_PART, fs::metadata(&kind)?.len()));
            continue;
        }
        if !kind.is_dir() {
            continue;
        }
        for container in fs::read_dir(&kind)? {
            let container = container?.path();
            for image in ["lower.sqfs", "rootfs.sqfs"] {
                if let Ok(meta) = fs::metadata(container.join(image)) {
                    let name = container.strip_prefix(containers).unwrap_or(&container);
                    found.push(parts::Part::new(name.display().to_string(), meta.len()));
                }
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Every container's read-only root filesystem (see the module's doc) as a
/// squashfs image, per `layout`; the directory stays, empty, as the mount point.
fn pack_lowers(sh: &Shell, cache: &Path, work: &Path, layout: Layout) -> Result<()> {
    let containers = work.join("containers");
    let lowers = read_only_roots(&containers)?;
    let squash = |from: &Path, image: &Path| squash_cached(sh, cache, from, image);
    match layout {
        Layout::PerService => {
            for root in lowers {
                let dir = containers.join(&root);
                squash(&dir, &dir.with_extension("sqfs"))?;
                fs::remove_dir_all(&dir)?;
                fs::create_dir(&dir)?;
            }
        }
        Layout::Shared if !lowers.is_empty() => {
            let stage = containers.join(".lower");
            for root in lowers {
                let (dir, staged) = (containers.join(&root), stage.join(&root));
                fs::create_dir_all(staged.parent().unwrap())?;
                fs::rename(&dir, &staged)?;
                fs::create_dir(&dir)?;
            }
            link_identical_files(&stage)?;
            squash(&stage, &containers.join("lower.sqfs"))?;
            fs::remove_dir_all(&stage)?;
        }
        Layout::Shared => {}
    }
    Ok(())
}

/// Make the regular files under `root` that are the same (bytes, mode, owner,
/// no extended attributes) hard links of one file, the first by path; returns
/// how many names now share another's inode. mksquashfs stores identical
/// files' data once anyway, but as separate inodes, and the page cache is per
/// inode: in the VM each copy (the two nginx sites' libraries, the libc and
/// libcrypto of the network tools and of the app) was decompressed and held
/// in memory again. One inode is decompressed once. The roots are read-only
/// lower layers, so no container can write through a link: a write copies
/// the file up into its own upper layer.
fn link_identical_files(root: &Path) -> Result<usize> {
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;
    // Candidates by size, mode and owner (uid, gid), each with its inode: only
    // files alike in all of these are hashed.
    type Shape = (u64, u32, u32, u32);
    let mut by_shape: BTreeMap<Shape, Vec<(PathBuf, u64)>> = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let meta = fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                dirs.push(path);
            } else if meta.is_file() && meta.len() > 0 && !has_xattrs(&path)? {
                by_shape
                    .entry((meta.len(), meta.mode(), meta.uid(), meta.gid()))
                    .or_default()
                    .push((path, meta.ino()));
            }
        }
    }
    let mut linked = 0;
    for mut files in by_shape.into_values().filter(|f| f.len() > 1) {
        files.sort();
        // The first file (by path) with each content, and its inode.
        let mut first_of: BTreeMap<String, (PathBuf, u64)> = BTreeMap::new();
        for (path, ino) in files {
            let digest = files::sha256(&path)?;
            let Some((first, first_ino)) = first_of.get(&digest) else {
                first_of.insert(digest, (path, ino));
                continue;
            };
            if *first_ino == ino {
                continue;
            }
            let tmp = path.with_file_name(format!(".lkc-link-{}", std::process::id()));
            if fs::symlink_metadata(&tmp).is_ok() {
                bail!("{} is in the way of linking {}", tmp.display(), path.display());
            }
            fs::hard_link(first, &tmp).with_context(|| format!("linking {}", path.display()))?;
            fs::rename(&tmp, &path)?;
            linked += 1;
        }
    }
    Ok(linked)
}

/// Whether `path` has any extended attribute (a file capability, say).
fn has_xattrs(path: &Path) -> Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a NUL-terminated path and a null buffer of size 0: the call only
    // returns the size the list of names would need.
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOTSUP) {
            return Ok(false);
        }
        return Err(e).with_context(|| format!("listing the extended attributes of {}", path.display()));
    }
    Ok(n > 0)
}

/// The read-only roots under `containers` (`KIND/NAME/lower` or
/// `KIND/NAME/rootfs`, relative, sorted): each container's non-empty `lower`;
/// without one, its `rootfs` if its config.json makes it read-only and every
/// mount point exists in it or lies under another mount.
fn read_only_roots(containers: &Path) -> Result<Vec<PathBuf>> {
    let mut roots = Vec::new();
    if !containers.is_dir() {
        return Ok(roots);
    }
    for kind in fs::read_dir(containers)? {
        let kind = kind?;
        if !kind.file_type()?.is_dir() {
            continue;
        }
        for container in fs::read_dir(kind.path())? {
            let container = container?.path();
            let rel = |leaf: &str| {
                PathBuf::from(kind.file_name())
                    .join(container.file_name().unwrap())
                    .join(leaf)
            };
            let lower = container.join("lower");
            if lower.is_dir() {
                if fs::read_dir(&lower)?.next().is_some() {
                    roots.push(rel("lower"));
                }
            } else if read_only_with_mount_points(&container)? {
                roots.push(rel("rootfs"));
            }
        }
    }
    roots.sort();
    Ok(roots)
}

/// Whether the bundle at `container` has a read-only, non-empty `rootfs` in
/// which the runtime needs to create nothing: each mount's destination exists
/// in it, or lies under another mount's destination (/dev/pts in /dev's tmpfs).
fn read_only_with_mount_points(container: &Path) -> Result<bool> {
    let rootfs = container.join("rootfs");
    let Ok(config) = fs::read(container.join("config.json")) else {
        return Ok(false);
    };
    if !rootfs.is_dir() || fs::read_dir(&rootfs)?.next().is_none() {
        return Ok(false);
    }
    let config: serde_json::Value = serde_json::from_slice(&config)
        .with_context(|| format!("{}: not JSON", container.join("config.json").display()))?;
    if config["root"]["readonly"] != true {
        return Ok(false);
    }
    let destinations: Vec<&str> = config["mounts"]
        .as_array()
        .map(|mounts| mounts.iter().filter_map(|m| m["destination"].as_str()).collect())
        .unwrap_or_default();
    let covered = |dest: &str| {
        destinations
            .iter()
            .any(|other| *other != dest && Path::new(dest).starts_with(other))
    };
    Ok(destinations
        .iter()
        .all(|dest| covered(dest) || fs::symlink_metadata(rootfs.join(dest.trim_start_matches('/'))).is_ok()))
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
    if cached.is_file() {
        files::touch(&cached)?;
    } else {
        let partial = cached.with_extension("partial");
        let _ = fs::remove_file(&partial);
        exec::run(cmd!(sh, "mksquashfs {from} {partial} {SQUASHFS_OPTS...}"))
            .with_context(|| format!("mksquashfs {}", from.display()))?;
        fs::rename(&partial, &cached)?;
    }
    // A copy, not a hard link: the packing then sets the image's time to the
    // lock's, and the cache entry's time must stay when it was last used.
    let _ = fs::remove_file(image);
    fs::copy(&cached, image).with_context(|| format!("copying {}", cached.display()))?;
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
    use crate::base::testdir::TestDir;

    #[test]
    fn the_modules_image_list_is_read_from_its_cmd() {
        let root = crate::base::project::root();
        let dockerfile = fs::read_to_string(root.join("images/modules/Dockerfile")).unwrap();
        let list = onboot_modules(&dockerfile).unwrap();
        assert!(list.contains(&"virtio_net".to_string()), "{list:?}");
        assert!(list.contains(&"overlay".to_string()), "{list:?}");
        assert!(onboot_modules("FROM scratch\n").is_err());
    }

    /// Which roots become squashfs images: non-empty lowers of every kind of
    /// container; a read-only rootfs only when no mount point is missing.
    #[test]
    fn read_only_roots_are_lowers_and_complete_read_only_rootfs() {
        let tmp = TestDir::new("roots");
        let bundle = |rel: &str, config: &str, dirs: &[&str]| {
            let dir = tmp.join(rel);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("config.json"), config).unwrap();
            for d in dirs {
                fs::create_dir_all(dir.join(d)).unwrap();
            }
        };
        let ro = r#"{"root": {"path": "rootfs", "readonly": true},
            "mounts": [{"destination": "/dev"}, {"destination": "/dev/pts"}, {"destination": "/usr/lib/modules"}]}"#;
        bundle(
            "onboot/000-modules",
            ro,
            &["rootfs/dev", "rootfs/usr/lib/modules", "rootfs/bin"],
        );
        bundle("onboot/001-missing", ro, &["rootfs/dev", "rootfs/bin"]);
        let rw = r#"{"root": {"path": "rootfs", "readonly": false}, "mounts": []}"#;
        bundle("onboot/002-writable", rw, &["rootfs/bin"]);
        bundle("onboot/003-netns", rw, &["lower/usr/bin", "rootfs", "tmp"]);
        bundle("services/web", rw, &["lower/etc", "rootfs"]);
        bundle("services/empty", rw, &["lower", "rootfs"]);
        let roots = read_only_roots(&tmp).unwrap();
        let roots: Vec<_> = roots.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            roots,
            [
                "onboot/000-modules/rootfs",
                "onboot/003-netns/lower",
                "services/web/lower"
            ]
        );
    }

    /// Identical files of different containers become one inode in the
    /// image (one page cache in the VM); a file that differs in mode, bytes
    /// or extended attributes keeps its own.
    #[test]
    fn identical_files_share_one_inode_in_the_image() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let tmp = TestDir::new("links");
        let tree = tmp.join("tree");
        let lib = |container: &str| tree.join(format!("services/{container}/lower/usr/lib/libx.so"));
        for c in ["a", "b", "c", "d"] {
            fs::create_dir_all(lib(c).parent().unwrap()).unwrap();
            fs::write(lib(c), "the same library").unwrap();
        }
        fs::set_permissions(lib("c"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(lib("d"), "another  library").unwrap(); // same size, other bytes
        fs::write(tree.join("services/a/lower/usr/lib/empty"), "").unwrap();
        fs::write(tree.join("services/b/lower/usr/lib/empty"), "").unwrap();
        let tagged = tree.join("services/e/lower/libx.so");
        fs::create_dir_all(tagged.parent().unwrap()).unwrap();
        fs::write(&tagged, "the same library").unwrap();
        let c = std::ffi::CString::new(tagged.to_str().unwrap()).unwrap();
        // SAFETY: NUL-terminated name and path, a 1-byte value.
        let has_xattr = unsafe { libc::setxattr(c.as_ptr(), c"user.lkc".as_ptr(), b"1".as_ptr().cast(), 1, 0) } == 0;

        assert_eq!(link_identical_files(&tree).unwrap(), 1);
        assert_eq!(
            link_identical_files(&tree).unwrap(),
            0,
            "a second pass links nothing more"
        );

        let sh = Shell::new().unwrap();
        let image = tmp.join("lower.sqfs");
        squash_cached(&sh, &tmp.join("cache"), &tree, &image).unwrap();
        let out = tmp.join("out");
        cmd!(sh, "unsquashfs -quiet -no-progress -d {out} {image}")
            .run()
            .unwrap();
        let ino = |rel: &str| fs::metadata(out.join(rel)).unwrap().ino();
        let lib_a = ino("services/a/lower/usr/lib/libx.so");
        assert_eq!(ino("services/b/lower/usr/lib/libx.so"), lib_a);
        assert_ne!(ino("services/c/lower/usr/lib/libx.so"), lib_a, "another mode");
        assert_ne!(ino("services/d/lower/usr/lib/libx.so"), lib_a, "other bytes");
        assert_ne!(
            ino("services/a/lower/usr/lib/empty"),
            ino("services/b/lower/usr/lib/empty")
        );
        if has_xattr {
            assert_ne!(ino("services/e/lower/libx.so"), lib_a, "extended attributes");
        }
    }

    /// The same files give the same image from the cache, whatever their
    /// times; other bytes or another mode give another image.
    #[test]
    fn squashfs_images_are_cached_by_content() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = TestDir::new("squash");
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
    }
}
