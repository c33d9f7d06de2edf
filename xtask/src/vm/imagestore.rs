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
//! character device 0/0 for a deleted file, an xattr for an opaque directory.

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
    vm::{packed, parts},
};

const DOCKER: &str = "var/lib/docker";

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

/// The cached lz4 segment of one layer (building it if missing); returns its
/// path and the layer tar's size.
fn layer_segment(sh: &Shell, project: &Project, tarball: &Path, member: &str, chain: &str) -> Result<(PathBuf, u64)> {
    let dir = project.cache_path("layers");
    fs::create_dir_all(&dir)?;
    let segment = dir.join(format!("{chain}.sqfs.cpio.lz4"));
    let size_file = dir.join(format!("{chain}.size"));
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
    overlay_whiteouts(&diff).with_context(|| format!("layer {member} of {}", tarball.display()))?;
    let image = work.join("diff.sqfs");
    // Times 0, so the same layer gives the same bytes (the packed initrds' options).
    let opts = packed::SQUASHFS_OPTS;
    exec::run(cmd!(sh, "mksquashfs {diff} {image} {opts...}"))?;
    let cpio = work.join("segment.cpio");
    let mut w = Writer::new(std::io::BufWriter::new(fs::File::create(&cpio)?));
    for (path, perm) in [
        ("var", 0o755),
        ("var/lib", 0o755),
        (DOCKER, 0o710),
        ("var/lib/docker/overlay2", 0o710),
    ] {
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
/// driver stacks the layers with, wants instead a character device 0/0 named
/// NAME and the directory's `trusted.overlay.opaque` xattr set to `y`: what
/// dockerd makes of them when it unpacks a layer itself. Convert the layer
/// unpacked in `dir` so; both survive mksquashfs. Returns how many it converted.
fn overlay_whiteouts(dir: &Path) -> Result<usize> {
    let mut converted = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == OPAQUE {
            fs::remove_file(&path)?;
            set_xattr(dir, "trusted.overlay.opaque", b"y")?;
            converted += 1;
        } else if let Some(deleted) = name.strip_prefix(".wh.") {
            fs::remove_file(&path)?;
            make_whiteout(&dir.join(deleted))?;
            converted += 1;
        } else if entry.file_type()?.is_dir() {
            converted += overlay_whiteouts(&path)?;
        }
    }
    Ok(converted)
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

/// Set extended attribute `name` of `path` (not following a symlink).
fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<()> {
    let c = c_path(path)?;
    let n = std::ffi::CString::new(name).expect("no NUL");
    // SAFETY: lsetxattr(2) with NUL-terminated strings and a buffer of `value.len()` bytes.
    let rc = unsafe { libc::lsetxattr(c.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("setting {name} on {}", path.display()));
    }
    Ok(())
}

/// Write `out`: the `base` initrd `linuxkit build` made (packed as lz4, see `packed`),
/// then the image store of every image `app` uses (from its tarball in dist/images/).
pub fn initrd(sh: &Shell, project: &Project, app: &App, base: &Path, out: &Path) -> Result<()> {
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
        for (layer, member) in image.layers.iter_mut().zip(&members) {
            let (segment, size) = layer_segment(sh, project, &tarball, member, &layer.chain)?;
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
    sizes.push(parts::Part::new("image store metadata", metadata.len() as u64));
    if out.is_file() && fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str()) {
        ui::cached_with(
            format!("{} (base initrd + image store)", project.rel(out).display()),
            Some(parts::summary(&sizes)),
        );
        return Ok(());
    }
    let step = ui::step(format!(
        "{}: base initrd + image store of {} image(s), {} layer segment(s)",
        project.rel(out).display(),
        images.len(),
        segments.len()
    ));
    let _ = fs::remove_file(&stamp_path);
    let partial = out.with_extension("partial");
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
        // The small uncompressed metadata archive first, then the lz4 run:
        // the base and the layers.
        append(&mut f, &mut metadata.as_slice(), true)?;
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
    Ok(())
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

    /// Deleted files and opaque directories as overlayfs takes them (needs root,
    /// as unpacking a layer does).
    #[test]
    fn layers_that_delete_files_get_overlayfs_whiteouts() {
        let tmp = TestDir::new("wh");
        fs::create_dir_all(tmp.join("etc/conf.d")).unwrap();
        fs::write(tmp.join("etc/kept"), "").unwrap();
        fs::write(tmp.join("etc/.wh.gone"), "").unwrap();
        fs::write(tmp.join("etc/conf.d/.wh..wh..opq"), "").unwrap();
        fs::write(tmp.join("etc/conf.d/new.conf"), "").unwrap();
        assert_eq!(overlay_whiteouts(&tmp).unwrap(), 2);
        let gone = fs::symlink_metadata(tmp.join("etc/gone")).unwrap();
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        assert!(gone.file_type().is_char_device() && gone.rdev() == 0, "{gone:?}");
        assert!(!tmp.join("etc/.wh.gone").exists());
        assert!(!tmp.join("etc/conf.d/.wh..wh..opq").exists());
        assert!(tmp.join("etc/conf.d/new.conf").exists() && tmp.join("etc/kept").exists());
        let mut value = [0u8; 8];
        let c = c_path(&tmp.join("etc/conf.d")).unwrap();
        let n = std::ffi::CString::new("trusted.overlay.opaque").unwrap();
        // SAFETY: lgetxattr(2) into a buffer of its length.
        let len = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        assert_eq!(&value[..len.max(0) as usize], b"y");
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
