//! Files written whole or not at all, and the one content hasher: what a
//! folder of inputs holds, hashed, decides whether what is built from it is
//! current (image tags, app image labels).

use std::{fs, io::Write, os::unix::fs::PermissionsExt, path::Path};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// One file of a tree: its path relative to the tree, whether it is
/// executable, and its bytes (a symlink: its target).
pub type TreeFile = (String, bool, Vec<u8>);

/// Every file under `dir`, sorted by path; a `target/` folder (cargo's
/// output) is not an input.
pub fn tree_files(dir: &Path) -> Result<Vec<TreeFile>> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<TreeFile>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path)?;
        let rel = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
        if meta.is_dir() {
            if rel != "target" {
                walk(base, &path, out)?;
            }
        } else if meta.file_type().is_symlink() {
            out.push((
                rel,
                false,
                fs::read_link(&path)?.to_string_lossy().into_owned().into_bytes(),
            ));
        } else {
            out.push((rel, meta.permissions().mode() & 0o111 != 0, fs::read(&path)?));
        }
    }
    Ok(())
}

/// The first `bytes` bytes, in hex, of a SHA-256 over `prefix` and `files`
/// (each path, mode and content).
pub fn content_hash(prefix: &str, files: &[TreeFile], bytes: usize) -> String {
    let mut h = Sha256::new();
    h.update(prefix);
    for (path, exec, data) in files {
        h.update(format!("{path}\0{exec}\0{}\0", data.len()));
        h.update(data);
    }
    h.finalize().iter().take(bytes).map(|b| format!("{b:02x}")).collect()
}

/// [`write_atomic`], unless `path` already holds `contents` (its mtime then stays,
/// and so does everything built from it). Returns whether it wrote.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> Result<bool> {
    if fs::read(path).ok().as_deref() == Some(contents) {
        return Ok(false);
    }
    write_atomic(path, contents)?;
    Ok(true)
}

/// Write `contents` to `path` through a temporary file, so a reader never sees half of it.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("partial");
    let mut f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
