//! The static VM's app images as a ready Docker image store, appended to the
//! VM's initrd as cpio segments: the engine finds the images in
//! /var/lib/docker when it starts, so nothing is `docker load`ed at boot (a load
//! hashes, copies and unpacks every layer again, ~15 MB/s under TCG) and no
//! tarball sits in RAM.
//!
//! The store is Docker's own on-disk layout for the overlay2 graph driver:
//! - `image/overlay2/imagedb/content/sha256/<image id>`: the image config, verbatim;
//! - `image/overlay2/layerdb/sha256/<chain id>/{diff,size,cache-id,parent}`;
//! - `image/overlay2/repositories.json`: name:tag -> image id;
//! - `overlay2/<cache id>/{diff/,link,lower,work/}` and `overlay2/l/<link> -> ../<cache id>/diff`.
//!
//! Each layer's `diff/` travels as a squashfs image (`diff.sqfs`, zstd inside),
//! which the engine's start script loop-mounts on `diff/`: the layer stays
//! compressed in the VM's memory (the root is a tmpfs that also has to hold
//! everything the engine writes), instead of unpacked in full. One cpio segment
//! per layer (lz4, the kernel's fastest decompressor here), cached by chain ID,
//! so an edit to one app rebuilds one small segment; one small uncompressed
//! segment for the metadata. A layer that deletes files of the layers below it
//! (Docker's tar marks them `.wh.*`) gets them as overlayfs wants them: a
//! character device 0/0 for a deleted file; an opaque directory (emptied,
//! then filled again) as a 0/0 device for each entry the layers below have in
//! it, since the overlayfs xattr for it (`trusted.overlay.*`) cannot be set
//! in the user namespace an ordinary user builds in.

use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::{
    app::compose::{self, App},
    base::{exec, files, project::Project, reference::Reference, ui},
    building::cpio::{Meta, Writer},
    vm::{memory, packed, parts},
};

const DOCKER: &str = "var/lib/docker";
/// The folders above the layers' (`overlay2/<cache id>`), with the engine's modes.
const OVERLAY_PARENTS: [(&str, u32); 4] = [
    ("var", 0o755),
    ("var/lib", 0o755),
    (DOCKER, 0o710),
    ("var/lib/docker/overlay2", 0o710),
];

/// An image as the store records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `name:tag`
    pub reference: String,
    /// The config JSON, byte for byte (its SHA-256 is the image ID).
    pub config: Vec<u8>,
    pub layers: Vec<Layer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Hex digests: the layer's own (uncompressed tar) and its chain ID.
    pub diff: String,
    pub chain: String,
    /// Size of the layer tar in bytes.
    pub size: u64,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Chain IDs from diff IDs (hex): the first is its diff ID, each next is
/// sha256("sha256:<parent chain> sha256:<diff>").
pub fn chain_ids(diffs: &[String]) -> Vec<String> {
    let mut chains: Vec<String> = Vec::new();
    for diff in diffs {
        let chain = match chains.last() {
            None => diff.clone(),
            Some(parent) => sha256_hex(format!("sha256:{parent} sha256:{diff}").as_bytes()),
        };
        chains.push(chain);
    }
    chains
}

/// The overlay2 short link name of a layer (Docker makes 26 random [A-Z0-9]).
fn link_id(chain: &str) -> String {
    chain[..26].to_uppercase()
}

/// The metadata segment: every image's config, layer records and overlay2
/// bookkeeping, and the name -> ID table. Pure: the same images give the same bytes.
pub fn metadata_segment(images: &[Image]) -> Result<Vec<u8>> {
    enum Entry {
        Dir(u32),
        File(u32, Vec<u8>),
        Link(String),
    }
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut dir = |path: String, perm: u32| {
        entries.entry(path).or_insert(Entry::Dir(perm));
    };
    for (path, perm) in [
        ("var", 0o755),
        ("var/lib", 0o755),
        (DOCKER, 0o710),
        ("image", 0o700),
        ("image/overlay2", 0o700),
        ("image/overlay2/imagedb", 0o700),
        ("image/overlay2/imagedb/content", 0o700),
        ("image/overlay2/imagedb/content/sha256", 0o700),
        ("image/overlay2/layerdb", 0o700),
        ("image/overlay2/layerdb/sha256", 0o700),
        ("overlay2", 0o710),
        ("overlay2/l", 0o700),
    ] {
        let full = if path.starts_with("var") {
            path.to_string()
        } else {
            format!("{DOCKER}/{path}")
        };
        dir(full, perm);
    }
    let mut files: Vec<(String, Entry)> = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for image in images {
        let id = sha256_hex(&image.config);
        files.push((
            format!("{DOCKER}/image/overlay2/imagedb/content/sha256/{id}"),
            Entry::File(0o600, image.config.clone()),
        ));
        // The engine's reference store keys familiar names: no `docker.io/library/`.
        let reference = Reference::parse(&image.reference).map_err(|e| anyhow!("image `{}` {e}", image.reference))?;
        repositories
            .entry(reference.familiar_name())
            .or_default()
            .insert(reference.familiar(), format!("sha256:{id}"));
        let mut lower: Vec<String> = Vec::new();
        for (i, layer) in image.layers.iter().enumerate() {
            let db = format!("{DOCKER}/image/overlay2/layerdb/sha256/{}", layer.chain);
            let cache = format!("{DOCKER}/overlay2/{}", layer.chain);
            files.push((
                format!("{db}/diff"),
                Entry::File(0o644, format!("sha256:{}", layer.diff).into()),
            ));
            files.push((format!("{db}/size"), Entry::File(0o644, layer.size.to_string().into())));
            files.push((format!("{db}/cache-id"), Entry::File(0o644, layer.chain.clone().into())));
            files.push((
                format!("{cache}/link"),
                Entry::File(0o644, link_id(&layer.chain).into()),
            ));
            files.push((
                format!("{DOCKER}/overlay2/l/{}", link_id(&layer.chain)),
                Entry::Link(format!("../{}/diff", layer.chain)),
            ));
            if i > 0 {
                let parent = &image.layers[i - 1].chain;
                files.push((
                    format!("{db}/parent"),
                    Entry::File(0o644, format!("sha256:{parent}").into()),
                ));
                files.push((format!("{cache}/lower"), Entry::File(0o644, lower.join(":").into())));
                files.push((format!("{cache}/work"), Entry::Dir(0o700)));
            }
            files.push((db, Entry::Dir(0o755)));
            files.push((cache, Entry::Dir(0o710)));
            lower.insert(0, format!("l/{}", link_id(&layer.chain)));
        }
    }
    let repositories = json!({ "Repositories": repositories });
    files.push((
        format!("{DOCKER}/image/overlay2/repositories.json"),
        Entry::File(0o600, serde_json::to_vec(&repositories)?),
    ));
    for (path, entry) in files {
        entries.entry(path).or_insert(entry);
    }
    let mut w = Writer::new(Vec::new());
    for (path, entry) in &entries {
        match entry {
            Entry::Dir(perm) => w.node(path, Meta::dir(*perm))?,
            Entry::File(perm, data) => w.bytes(path, Meta::file(*perm), data)?,
            Entry::Link(target) => w.symlink(path, target)?,
        }
    }
    w.finish()
}

fn tar_member(tarball: &Path, member: &str) -> Result<Vec<u8>> {
    let sh = Shell::new()?;
    let out = exec::read(cmd!(sh, "tar -xOf {tarball} {member}"))
        .with_context(|| format!("{}: no {member}", tarball.display()))?;
    Ok(out.into_bytes())
}

/// An image's record and its layers' tar members, from a docker-archive tarball.
fn read_tarball(tarball: &Path, reference: &str) -> Result<(Image, Vec<String>)> {
    let manifest: Value = serde_json::from_slice(&tar_member(tarball, "manifest.json")?)?;
    let entry = &manifest[0];
    let config_path = entry["Config"].as_str().context("manifest.json: no Config")?;
    let members: Vec<String> = entry["Layers"]
        .as_array()
        .context("manifest.json: no Layers")?
        .iter()
        .map(|l| {
            l.as_str()
                .map(str::to_string)
                .context("manifest.json: a layer is not a path")
        })
        .collect::<Result<_>>()?;
    let config = tar_member(tarball, config_path)?;
    let parsed: Value = serde_json::from_slice(&config)?;
    let diffs: Vec<String> = parsed["rootfs"]["diff_ids"]
        .as_array()
        .context("image config: no rootfs.diff_ids")?
        .iter()
        .map(|d| {
            d.as_str()
                .and_then(|d| d.strip_prefix("sha256:"))
                .map(str::to_string)
                .context("image config: a diff ID is not sha256:…")
        })
        .collect::<Result<_>>()?;
    if diffs.len() != members.len() {
        bail!(
            "{}: {} layers but {} diff IDs",
            tarball.display(),
            members.len(),
            diffs.len()
        );
    }
    let layers = chain_ids(&diffs)
        .into_iter()
        .zip(diffs)
        .map(|(chain, diff)| Layer { diff, chain, size: 0 })
        .collect();
    Ok((
        Image {
            reference: reference.to_string(),
            config,
            layers,
        },
        members,
    ))
}

/// Bump when a layer's segment is made differently (2: opaque directories as
/// whiteouts; 3: 128 KiB blocks).
const SEGMENT_FORMAT: &str = "f3";

/// A layer's squashfs options: the packed initrds' (zstd-19, times 0, so the
/// same layer gives the same bytes) with 128 KiB blocks, not their 1 MiB. The
/// guest kernel reads a small file of a 1 MiB-block image about five times
/// slower: reading vuejs's `node_modules` (113 MB in 22,762 files) cold took
/// 152 s at 1 MiB and 29 s at 128 KiB under TCG (lz4 at 1 MiB: 130 s), for a
/// 9% larger image. Containers read their image a few files at a time, and
/// the engine copies a whole folder of it into each anonymous volume.
const LAYER_SQUASHFS_OPTS: [&str; 13] = packed::squashfs_opts("131072");

/// The cached lz4 segment of layer `index` of the image in `tarball`
/// (`members`: its layers' tar members), building it if missing; returns its
/// path and the layer tar's size.
fn layer_segment(
    sh: &Shell,
    project: &Project,
    tarball: &Path,
    members: &[String],
    index: usize,
    chain: &str,
) -> Result<(PathBuf, u64)> {
    let member = &members[index];
    let dir = project.cache_path("layers");
    fs::create_dir_all(&dir)?;
    let segment = dir.join(format!("{chain}.{SEGMENT_FORMAT}.sqfs.cpio.lz4"));
    let size_file = dir.join(format!("{chain}.{SEGMENT_FORMAT}.size"));
    if let (true, Ok(size)) = (segment.is_file(), fs::read_to_string(&size_file)) {
        if let Ok(size) = size.trim().parse() {
            files::touch(&segment)?;
            files::touch(&size_file)?;
            return Ok((segment, size));
        }
    }
    let step = ui::step(format!("image store layer {}", &chain[..12]));
    let work = dir.join(format!("{chain}.tmp"));
    if work.exists() {
        sh.remove_path(&work)?;
    }
    let diff = work.join("diff");
    fs::create_dir_all(&diff)?;
    exec::run(cmd!(sh, "tar -xf {tarball} -C {work} {member}"))?;
    let layer_tar = work.join(member);
    let size = fs::metadata(&layer_tar)?.len();
    exec::run(cmd!(
        sh,
        "tar --numeric-owner --same-permissions -xf {layer_tar} -C {diff}"
    ))?;
    fs::remove_file(&layer_tar)?;
    let context = || format!("layer {member} of {}", tarball.display());
    let (_, opaque) = overlay_whiteouts(&diff, "").with_context(context)?;
    if !opaque.is_empty() {
        let lower = Lower::of(sh, tarball, &members[..index]).with_context(context)?;
        for dir in &opaque {
            hide_lower(&diff, &lower, dir).with_context(context)?;
        }
    }
    let image = work.join("diff.sqfs");
    let opts = LAYER_SQUASHFS_OPTS;
    exec::run(cmd!(sh, "mksquashfs {diff} {image} {opts...}"))?;
    let cpio = work.join("segment.cpio");
    let mut w = Writer::new(std::io::BufWriter::new(fs::File::create(&cpio)?));
    for (path, perm) in OVERLAY_PARENTS {
        w.node(path, Meta::dir(perm))?;
    }
    let cache = format!("{DOCKER}/overlay2/{chain}");
    w.node(&cache, Meta::dir(0o710))?;
    w.node(&format!("{cache}/diff"), Meta::dir(0o755))?;
    let image_size = fs::metadata(&image)?.len();
    w.file(
        &format!("{cache}/diff.sqfs"),
        Meta::file(0o600),
        image_size,
        &mut fs::File::open(&image)?,
    )?;
    w.finish()?.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let partial = segment.with_extension("partial");
    exec::run(cmd!(sh, "lz4 -l -9 -q -f {cpio} {partial}"))?;
    fs::rename(&partial, &segment)?;
    fs::write(&size_file, size.to_string())?;
    sh.remove_path(&work)?;
    step.done();
    Ok((segment, size))
}

/// What marks a directory opaque in Docker's layer tars.
const OPAQUE: &str = ".wh..wh..opq";

/// Docker's layer tars mark deletions as AUFS did: `.wh.NAME` deletes NAME of
/// the layers below, and `.wh..wh..opq` makes its directory opaque (the
/// layers below add nothing to it). overlayfs, which the engine's overlay2
/// driver stacks the layers with, wants a character device 0/0 named NAME
/// for a deleted file: made here for each `.wh.NAME` of the layer unpacked in
/// `root` (under `rel`). The opaque markers go too; their directories (paths
/// relative to `root`) are returned for [`hide_lower`]. Returns how many
/// deletions were converted.
fn overlay_whiteouts(root: &Path, rel: &str) -> Result<(usize, Vec<String>)> {
    let (mut converted, mut opaque) = (0, Vec::new());
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == OPAQUE {
            fs::remove_file(&path)?;
            opaque.push(rel.to_string());
        } else if let Some(deleted) = name.strip_prefix(".wh.") {
            fs::remove_file(&path)?;
            make_whiteout(&path.with_file_name(deleted))?;
            converted += 1;
        } else if entry.file_type()?.is_dir() {
            let (n, o) = overlay_whiteouts(root, &join(rel, &name))?;
            converted += n;
            opaque.extend(o);
        }
    }
    Ok((converted, opaque))
}

/// `dir/name`, or `name` at the top.
fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// What the layers below one hold, after their own deletions: each path and
/// whether it is a directory.
#[derive(Debug, Default)]
struct Lower(BTreeMap<String, bool>);

impl Lower {
    /// The layers `members` of `tarball`, bottom first, listed by tar.
    fn of(sh: &Shell, tarball: &Path, members: &[String]) -> Result<Lower> {
        let mut lower = Lower::default();
        for member in members {
            let listing = exec::read(cmd!(
                sh,
                "bash -o pipefail -c 'tar -xOf \"$0\" \"$1\" | tar --quoting-style=literal -tf -' {tarball} {member}"
            ))
            .with_context(|| format!("listing layer {member}"))?;
            lower.apply(&listing.lines().collect::<Vec<_>>());
        }
        Ok(lower)
    }

    /// Stack one more layer (its `tar -t` names; a directory's ends in `/`):
    /// its deletions apply to what is below it, then its files are added.
    fn apply(&mut self, names: &[&str]) {
        let clean = |n: &str| n.trim_start_matches("./").trim_end_matches('/').to_string();
        for name in names.iter().map(|n| clean(n)) {
            let (dir, base) = name.rsplit_once('/').unwrap_or(("", &name));
            if base == OPAQUE {
                self.remove_under(dir);
            } else if let Some(deleted) = base.strip_prefix(".wh.") {
                let path = join(dir, deleted);
                self.0.remove(&path);
                self.remove_under(&path);
            }
        }
        for raw in names {
            let name = clean(raw);
            let base = name.rsplit('/').next().unwrap_or(&name);
            if name.is_empty() || base.starts_with(".wh.") {
                continue;
            }
            let mut parent = name.as_str();
            while let Some((up, _)) = parent.rsplit_once('/') {
                self.0.insert(up.to_string(), true);
                parent = up;
            }
            self.0.insert(name.clone(), raw.ends_with('/'));
        }
    }

    fn remove_under(&mut self, dir: &str) {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.0.retain(|path, _| !path.starts_with(&prefix));
    }

    /// The entries right under `dir`: name and whether it is a directory.
    fn children<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a str, bool)> + 'a {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let start = prefix.clone();
        self.0
            .range(start..)
            .take_while({
                let prefix = prefix.clone();
                move |(path, _)| path.starts_with(&prefix)
            })
            .filter_map(move |(path, is_dir)| {
                let rest = &path[prefix.len()..];
                (!rest.contains('/')).then_some((rest, *is_dir))
            })
    }
}

/// Make opaque directory `dir` of the layer unpacked in `root` hide what the
/// layers below have in it: a whiteout for each entry of theirs it does not
/// have itself, and the same inside each directory it has where they have one
/// too (overlayfs would merge the two). Returns how many whiteouts it made.
fn hide_lower(root: &Path, lower: &Lower, dir: &str) -> Result<usize> {
    let mut made = 0;
    for (name, lower_is_dir) in lower.children(dir) {
        let rel = join(dir, name);
        let path = root.join(&rel);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                make_whiteout(&path)?;
                made += 1;
            }
            Ok(m) if m.is_dir() && lower_is_dir => made += hide_lower(root, lower, &rel)?,
            Ok(_) => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    Ok(made)
}

fn c_path(path: &Path) -> Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{}: a NUL in the name", path.display()))
}

/// overlayfs's whiteout: a character device 0/0 at `path`.
fn make_whiteout(path: &Path) -> Result<()> {
    let c = c_path(path)?;
    // SAFETY: mknod(2) with a NUL-terminated path; it touches nothing else.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("making the whiteout {}", path.display()));
    }
    Ok(())
}

/// Write `out`: the `base` initrd `linuxkit build` made (packed as lz4, see `packed`),
/// then the image store of every image `app` uses (from its tarball in dist/images/).
/// Where, with every layer in it, the initrd would need more than `roots`
/// MiB to unpack, the layers' images go on a roots disk instead (returned):
/// see [`roots_disk`].
pub fn initrd(
    sh: &Shell,
    project: &Project,
    app: &App,
    base: &Path,
    out: &Path,
    roots: u32,
) -> Result<Option<PathBuf>> {
    let base = &packed::pack(
        sh,
        project,
        base,
        &base.with_extension("lz4"),
        packed::Layout::PerService,
    )?;
    let mut images: Vec<Image> = Vec::new();
    let mut segments: Vec<PathBuf> = Vec::new();
    // The base's parts, then each image's layers (a layer two images share counts for the first).
    let mut sizes = parts::read(base)?;
    if sizes.is_empty() {
        sizes.push(parts::Part::new("the base initrd", fs::metadata(base)?.len()));
    }
    for reference in app.images() {
        let tarball = project
            .dist
            .join("images")
            .join(compose::tarball_name(reference.as_str()));
        let (mut image, members) = read_tarball(&tarball, reference.as_str())?;
        let mut own = 0;
        for (index, layer) in image.layers.iter_mut().enumerate() {
            let (segment, size) = layer_segment(sh, project, &tarball, &members, index, &layer.chain)?;
            layer.size = size;
            if !segments.contains(&segment) {
                own += fs::metadata(&segment)?.len();
                segments.push(segment);
            }
        }
        sizes.push(parts::Part::new(format!("image {reference}"), own));
        images.push(image);
    }
    files::prune_least_recent(&project.cache_path("layers"), packed::CACHE_CAP, files::run_started())?;
    let metadata = metadata_segment(&images)?;
    // What the output is made of: skip the copy when nothing changed.
    let base_meta = fs::metadata(base)?;
    let mut stamp = format!(
        "base {} {} {:?}\nmetadata {}\n",
        base.display(),
        base_meta.len(),
        base_meta.modified()?,
        sha256_hex(&metadata)
    );
    for s in &segments {
        stamp += &format!("segment {}\n", s.display());
    }
    let stamp_path = out.with_extension("stamp");
    let disk = packed::roots_path(out);
    sizes.push(parts::Part::new("image store metadata", metadata.len() as u64));
    // Where the layers go: on a disk of their own when the initrd would not
    // unpack in `roots` MiB with them.
    let mut initrd_size = metadata.len() as u64;
    let mut unpacked = metadata.len() as u64;
    for file in std::iter::once(base).chain(&segments) {
        let bytes = fs::read(file)?;
        initrd_size += bytes.len() as u64;
        unpacked += memory::unpacked_size(&bytes).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    }
    let need = memory::min_memory(initrd_size, unpacked);
    let on_disk = need > roots;
    stamp += &format!("roots above {roots} MiB: {on_disk}\n");
    let cached = out.is_file()
        && fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str())
        && (!on_disk || disk.is_file());
    if on_disk {
        // Not in the initrd: the summary names what is.
        sizes.retain(|p| !p.name.starts_with("image "));
    }
    let disk_note = |disk: &Path| packed::say_roots_disk(project, disk, "the image layers", Some((need, roots)));
    if cached {
        ui::cached_with(
            format!("{} (base initrd + image store)", project.rel(out).display()),
            Some(parts::summary(&sizes)),
        );
        if on_disk {
            disk_note(&disk)?;
        }
        return Ok(on_disk.then_some(disk));
    }
    let step = ui::step(format!(
        "{}: base initrd + image store of {} image(s), {} layer segment(s)",
        project.rel(out).display(),
        images.len(),
        segments.len()
    ));
    let _ = fs::remove_file(&stamp_path);
    let _ = fs::remove_file(&disk);
    let partial = out.with_extension("partial");
    let layers = if on_disk {
        roots_disk(sh, &segments, &disk)?
    } else {
        Vec::new()
    };
    let segments = if on_disk { Vec::new() } else { segments };
    {
        let mut f = std::io::BufWriter::new(fs::File::create(&partial)?);
        let mut offset = 0u64;
        let mut append =
            |f: &mut std::io::BufWriter<fs::File>, bytes: &mut dyn std::io::Read, pad: bool| -> Result<()> {
                // Archives start 4-byte aligned (the kernel skips zero padding
                // between them), except inside the run of lz4 segments: the
                // kernel reads those as one legacy lz4 stream, where padding
                // would be read as a chunk length.
                let pad = if pad { (4 - offset % 4) % 4 } else { 0 };
                f.write_all(&[0u8; 3][..pad as usize])?;
                offset += pad + std::io::copy(bytes, f)?;
                Ok(())
            };
        // The small uncompressed metadata archive first (and with the
        // layers on a disk, what stands for them), then the lz4 run: the
        // base and the layers.
        append(&mut f, &mut metadata.as_slice(), true)?;
        if !layers.is_empty() {
            append(&mut f, &mut layers.as_slice(), true)?;
        }
        append(&mut f, &mut fs::File::open(base)?, true)?;
        for s in &segments {
            append(&mut f, &mut fs::File::open(s)?, false)?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    fs::rename(&partial, out)?;
    parts::write(out, &sizes)?;
    files::write_atomic(&stamp_path, stamp.as_bytes())?;
    step.done();
    ui::note(format!(
        "{} ({} MB)",
        project.rel(out).display(),
        fs::metadata(out)?.len() / 1_000_000
    ));
    ui::note(parts::summary(&sizes));
    if on_disk {
        disk_note(&disk)?;
    }
    Ok(on_disk.then_some(disk))
}

/// Where the roots disk has the layers' images: `LAYERS_ON_DISK/<cache id>/diff.sqfs`,
/// which the engine's start script mounts on the layer's `diff/`.
const LAYERS_ON_DISK: &str = "docker-layers";

/// The layers of `segments` on a roots disk at `disk`: a squashfs image of
/// their images (stored as they are: each is compressed already), and the
/// cpio archive the initrd gets in their place: each layer's `diff/` mount
/// point and the disk's superblock, by which `rc.init` finds it.
fn roots_disk(sh: &Shell, segments: &[PathBuf], disk: &Path) -> Result<Vec<u8>> {
    let work = disk.with_extension("work");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    let (unpack, tree) = (work.join("unpack"), work.join("tree"));
    let layers = tree.join(LAYERS_ON_DISK);
    fs::create_dir_all(&layers)?;
    let mut caches = Vec::new();
    for segment in segments {
        fs::create_dir_all(&unpack)?;
        packed::unpack(sh, "lz4 -dc", segment, &unpack)?;
        let overlay = unpack.join(DOCKER).join("overlay2");
        for entry in fs::read_dir(&overlay)? {
            let cache = entry?.file_name().to_string_lossy().into_owned();
            fs::create_dir_all(layers.join(&cache))?;
            fs::rename(
                overlay.join(&cache).join("diff.sqfs"),
                layers.join(&cache).join("diff.sqfs"),
            )?;
            caches.push(cache);
        }
        fs::remove_dir_all(&unpack)?;
    }
    let partial = disk.with_extension("partial");
    let _ = fs::remove_file(&partial);
    exec::run(cmd!(
        sh,
        "mksquashfs {tree} {partial} -noappend -quiet -no-progress -noI -noId -noD -noF -noX -all-root -all-time 0 -mkfs-time 0"
    ))
    .context("making the image layers' disk (mksquashfs)")?;
    fs::remove_dir_all(&work)?;
    let superblock = packed::superblock(&partial)?;
    fs::rename(&partial, disk)?;
    let mut w = Writer::new(Vec::new());
    w.bytes(packed::SUPERBLOCK_IN_INITRD, Meta::file(0o644), &superblock)?;
    for (path, perm) in OVERLAY_PARENTS {
        w.node(path, Meta::dir(perm))?;
    }
    caches.sort();
    caches.dedup();
    for cache in &caches {
        w.node(&format!("{DOCKER}/overlay2/{cache}"), Meta::dir(0o710))?;
        w.node(&format!("{DOCKER}/overlay2/{cache}/diff"), Meta::dir(0o755))?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use crate::base::testdir::TestDir;

    /// repositories.json as the engine writes it: familiar names, `latest`
    /// when no tag is written.
    #[test]
    fn references_as_the_engine_keys_them() {
        let keys = |reference: &str| {
            let image = Image {
                reference: reference.into(),
                config: b"{}".to_vec(),
                layers: vec![],
            };
            let seg = metadata_segment(&[image]).unwrap();
            let text = String::from_utf8_lossy(&seg);
            let json = &text[text.find("{\"Repositories\"").unwrap()..];
            let value: Value = serde_json::Deserializer::from_str(json)
                .into_iter()
                .next()
                .unwrap()
                .unwrap();
            let repos = value["Repositories"].as_object().unwrap();
            let (name, refs) = repos.iter().next().unwrap();
            (name.clone(), refs.as_object().unwrap().keys().next().unwrap().clone())
        };
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(keys("sample-backend"), pair("sample-backend", "sample-backend:latest"));
        assert_eq!(keys("docker.io/library/nginx:1"), pair("nginx", "nginx:1"));
        assert_eq!(keys("me/app:v1"), pair("me/app", "me/app:v1"));
        assert_eq!(
            keys("linuxkit-compose.local/app-a:1"),
            pair("linuxkit-compose.local/app-a", "linuxkit-compose.local/app-a:1")
        );
        assert_eq!(
            keys("localhost:5000/x"),
            pair("localhost:5000/x", "localhost:5000/x:latest")
        );
        let err = metadata_segment(&[Image {
            reference: "a:".into(),
            config: vec![],
            layers: vec![],
        }])
        .unwrap_err();
        assert_eq!(err.to_string(), "image `a:` has an invalid tag ``");
    }

    use super::*;

    /// Deleted files and opaque directories as overlayfs takes them: a
    /// whiteout (character device 0/0) for each deleted file, and for each
    /// entry of the layers below that an opaque directory hides, down into
    /// the directories both have; nothing for what the layer adds again or
    /// the layers below never had. Needs no privilege (an ordinary user's
    /// build runs it in a user namespace).
    #[test]
    fn layers_that_delete_files_get_overlayfs_whiteouts() {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let tmp = TestDir::new("wh");
        fs::create_dir_all(tmp.join("etc/conf.d/sub")).unwrap();
        fs::write(tmp.join("etc/kept"), "").unwrap();
        fs::write(tmp.join("etc/.wh.gone"), "").unwrap();
        fs::write(tmp.join("etc/conf.d/.wh..wh..opq"), "").unwrap();
        fs::write(tmp.join("etc/conf.d/new.conf"), "").unwrap();
        fs::write(tmp.join("etc/conf.d/sub/mine"), "").unwrap();
        let (converted, opaque) = overlay_whiteouts(&tmp, "").unwrap();
        assert_eq!((converted, opaque.clone()), (1, vec!["etc/conf.d".to_string()]));
        let mut lower = Lower::default();
        lower.apply(&[
            "etc/",
            "etc/gone",
            "etc/conf.d/",
            "etc/conf.d/old.conf",
            "etc/conf.d/new.conf",
        ]);
        lower.apply(&[
            "./etc/conf.d/sub/",
            "./etc/conf.d/sub/theirs",
            "./etc/conf.d/.wh.new.conf",
        ]);
        assert_eq!(hide_lower(&tmp, &lower, "etc/conf.d").unwrap(), 2);
        let whiteout =
            |p: &str| fs::symlink_metadata(tmp.join(p)).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0);
        assert!(whiteout("etc/gone") && whiteout("etc/conf.d/old.conf") && whiteout("etc/conf.d/sub/theirs"));
        assert!(!tmp.join("etc/.wh.gone").exists());
        assert!(!tmp.join("etc/conf.d/.wh..wh..opq").exists());
        for kept in ["etc/conf.d/new.conf", "etc/kept", "etc/conf.d/sub/mine"] {
            assert!(fs::symlink_metadata(tmp.join(kept)).unwrap().is_file(), "{kept}");
        }
    }

    #[test]
    fn the_layers_below_apply_their_own_deletions() {
        let mut lower = Lower::default();
        lower.apply(&["a/", "a/x", "a/y/", "a/y/z", "b"]);
        lower.apply(&["a/.wh.y", "a/.wh..wh..opq", "a/w", "c/d/e"]);
        let top: Vec<_> = lower.children("").collect();
        assert_eq!(top, [("a", true), ("b", false), ("c", true)]);
        assert_eq!(lower.children("a").collect::<Vec<_>>(), [("w", false)]);
        assert_eq!(lower.children("c/d").collect::<Vec<_>>(), [("e", false)]);
    }

    /// A layer's segment is an lz4 cpio holding the layer as a zstd squashfs
    /// with 128 KiB blocks (the guest kernel reads a small file of a
    /// 1 MiB-block image about five times slower), at the path the engine's
    /// start script mounts; the files come back out of it unchanged.
    #[test]
    fn a_layer_travels_as_a_128k_block_squashfs() {
        let tmp = TestDir::new("segment");
        let layer = tmp.join("layer");
        fs::create_dir_all(layer.join("app")).unwrap();
        let big: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        fs::write(layer.join("app/big"), &big).unwrap();
        fs::write(layer.join("app/small"), "hello\n").unwrap();
        let sh = Shell::new().unwrap();
        fs::create_dir_all(tmp.join("save/0123")).unwrap();
        let layer_tar = tmp.join("save/0123/layer.tar");
        cmd!(sh, "tar --numeric-owner -cf {layer_tar} -C {layer} .")
            .run()
            .unwrap();
        let tarball = tmp.join("image.tar");
        let save = tmp.join("save");
        cmd!(sh, "tar -cf {tarball} -C {save} 0123/layer.tar").run().unwrap();
        let project = Project {
            cache: tmp.join("cache"),
            ..crate::base::project::for_tests()
        };
        let chain = "c".repeat(64);
        let members = ["0123/layer.tar".to_string()];
        let (segment, size) = layer_segment(&sh, &project, &tarball, &members, 0, &chain).unwrap();
        assert_eq!(size, fs::metadata(&layer_tar).unwrap().len(), "the layer tar's size");

        let cpio = cmd!(sh, "lz4 -d -c {segment}").output().unwrap().stdout;
        let path = format!("var/lib/docker/overlay2/{chain}/diff.sqfs\0");
        let name = cpio.windows(path.len()).position(|w| w == path.as_bytes());
        let start = name.expect("no diff.sqfs in the segment") + path.len();
        let at = start
            + cpio[start..]
                .windows(4)
                .position(|w| w == b"hsqs")
                .expect("no squashfs");
        let u32_at = |o: usize| u32::from_le_bytes(cpio[at + o..at + o + 4].try_into().unwrap());
        let u16_at = |o: usize| u16::from_le_bytes(cpio[at + o..at + o + 2].try_into().unwrap());
        assert_eq!(u32_at(12), 128 * 1024, "block size");
        assert_eq!(u16_at(20), 6, "compressor (6: zstd)");
        let used = u64::from_le_bytes(cpio[at + 40..at + 48].try_into().unwrap()) as usize;
        let image = tmp.join("diff.sqfs");
        fs::write(&image, &cpio[at..at + used]).unwrap();
        let out = tmp.join("out");
        cmd!(sh, "unsquashfs -quiet -no-progress -d {out} {image}")
            .run()
            .unwrap();
        assert_eq!(fs::read(out.join("app/big")).unwrap(), big);
        assert_eq!(fs::read_to_string(out.join("app/small")).unwrap(), "hello\n");
    }

    /// With the layers on a roots disk: the disk holds each layer's image
    /// byte for byte where the engine's start script looks for it, and the
    /// archive the initrd gets in their place has each layer's mount point
    /// and the disk's first bytes, by which rc.init finds it.
    #[test]
    fn layers_on_a_roots_disk() {
        let tmp = TestDir::new("layers-disk");
        let sh = Shell::new().unwrap();
        let chain = "d".repeat(64);
        let image: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let mut w = Writer::new(Vec::new());
        w.node(&format!("{DOCKER}/overlay2/{chain}/diff"), Meta::dir(0o755))
            .unwrap();
        w.bytes(
            &format!("{DOCKER}/overlay2/{chain}/diff.sqfs"),
            Meta::file(0o600),
            &image,
        )
        .unwrap();
        let cpio = tmp.join("segment.cpio");
        fs::write(&cpio, w.finish().unwrap()).unwrap();
        let segment = tmp.join("segment.cpio.lz4");
        cmd!(sh, "lz4 -l -q {cpio} {segment}").run().unwrap();
        let disk = tmp.join("vm-roots.img");

        let archive = roots_disk(&sh, &[segment], &disk).unwrap();

        let out = tmp.join("out");
        cmd!(sh, "unsquashfs -quiet -no-progress -d {out} {disk}")
            .run()
            .unwrap();
        let on_disk = out.join(LAYERS_ON_DISK).join(&chain).join("diff.sqfs");
        assert_eq!(fs::read(on_disk).unwrap(), image);
        let listed = tmp.join("initrd");
        fs::create_dir_all(&listed).unwrap();
        let initrd_part = tmp.join("part.cpio");
        fs::write(&initrd_part, &archive).unwrap();
        cmd!(sh, "cpio -idm --quiet -D {listed} -F {initrd_part}")
            .run()
            .unwrap();
        let superblock = fs::read(listed.join(packed::SUPERBLOCK_IN_INITRD)).unwrap();
        assert_eq!(superblock[..], fs::read(&disk).unwrap()[..packed::SUPERBLOCK_LEN]);
        assert!(listed.join(format!("{DOCKER}/overlay2/{chain}/diff")).is_dir());
        assert!(!listed.join(format!("{DOCKER}/overlay2/{chain}/diff.sqfs")).exists());
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let chains = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chains[0], a);
        assert_eq!(chains[1], sha256_hex(format!("sha256:{a} sha256:{b}").as_bytes()));
    }

    #[test]
    fn metadata_names_every_layer_and_image() {
        let diffs = ["1".repeat(64), "2".repeat(64)];
        let chains = chain_ids(&diffs);
        let layer = |i: usize| Layer {
            diff: diffs[i].clone(),
            chain: chains[i].clone(),
            size: 10,
        };
        let image = Image {
            reference: "linuxkit-compose.local/app-a:1".into(),
            config: b"{}".to_vec(),
            layers: vec![layer(0), layer(1)],
        };
        let seg = metadata_segment(std::slice::from_ref(&image)).unwrap();
        assert_eq!(seg, metadata_segment(&[image]).unwrap(), "reproducible");
        let text = String::from_utf8_lossy(&seg);
        let id = sha256_hex(b"{}");
        for want in [
            format!("var/lib/docker/image/overlay2/imagedb/content/sha256/{id}"),
            format!("var/lib/docker/image/overlay2/layerdb/sha256/{}/parent", chains[1]),
            format!("sha256:{}", chains[0]),
            format!("var/lib/docker/overlay2/{}/lower", chains[1]),
            format!("l/{}", link_id(&chains[0])),
            format!("../{}/diff", chains[0]),
            format!("\"linuxkit-compose.local/app-a:1\":\"sha256:{id}\""),
        ] {
            assert!(text.contains(&want), "missing {want}");
        }
        assert!(
            !text.contains(&format!("layerdb/sha256/{}/parent", chains[0])),
            "a base layer has no parent"
        );
    }
}
