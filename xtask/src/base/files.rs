//! Files written whole or not at all, and the content hashers: what a folder
//! of inputs holds, hashed, decides whether what is built from it is current
//! (image tags, app image labels); a file's SHA-256 checks downloads and names
//! artifacts and blobs.

use std::{
    fs,
    io::{Read, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::{bail, Context, Result};
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
    hex(&h.finalize()[..bytes])
}

/// The hex SHA-256 of a file, read in pieces.
pub fn sha256(path: &Path) -> Result<String> {
    digest::<Sha256>(path)
}

/// The hex SHA-512 of a file (npm's tarball hash), read in pieces.
pub fn sha512(path: &Path) -> Result<String> {
    digest::<sha2::Sha512>(path)
}

fn digest<D: Digest>(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = D::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 (RFC 4648, `=` padding optional), as npm's integrity
/// hashes are written.
pub fn base64_decode(text: &str) -> Result<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let digits = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in digits.bytes() {
        let value = ALPHABET
            .iter()
            .position(|&a| a == c)
            .with_context(|| format!("`{}` is not base64", char::from(c)))?;
        acc = ((acc << 6) | value as u32) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if digits.len() % 4 == 1 {
        bail!("`{text}` is not base64: its length");
    }
    Ok(out)
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

/// When this xtask started: cache entries used since then are this run's.
pub fn run_started() -> SystemTime {
    static STARTED: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();
    *STARTED.get_or_init(SystemTime::now)
}

/// Mark the cache entry `path` as used now (its modification time), for
/// [`prune_least_recent`].
pub fn touch(path: &Path) -> Result<()> {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .with_context(|| format!("touching {}", path.display()))
}

/// Keep the cache folder `dir` (content-addressed files, each [`touch`]ed when
/// used) under `cap` bytes: the least recently used files go first, and none
/// used since `since` (the running build's) goes. Returns what it removed.
pub fn prune_least_recent(dir: &Path, cap: u64, since: SystemTime) -> Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() {
            entries.push((meta.modified()?, meta.len(), entry.path()));
        }
    }
    // Most recently used first; what is past the cap after them goes.
    entries.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
    let mut kept = 0u64;
    let mut removed = Vec::new();
    for (used, size, path) in entries {
        if used >= since || kept + size <= cap {
            kept += size;
            continue;
        }
        fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        removed.push(path);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_as_npm_writes_integrity() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("Zg==").unwrap(), b"f");
        assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
        assert_eq!(hex(&base64_decode("3q2+7w==").unwrap()), "deadbeef");
        assert!(base64_decode("Zm9v!").is_err());
        assert!(base64_decode("Zm9vY").is_err());
    }

    use super::*;
    use crate::base::testdir::TestDir;
    use std::time::Duration;

    #[test]
    fn the_least_recently_used_go_past_the_cap_but_not_this_builds() {
        let dir = TestDir::new("prune");
        let start = SystemTime::now() - Duration::from_secs(3600);
        let file = |name: &str, size: usize, hours_ago: u64| {
            let path = dir.join(name);
            fs::write(&path, vec![0u8; size]).unwrap();
            let used = SystemTime::now() - Duration::from_secs(hours_ago * 3600);
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(used)
                .unwrap();
        };
        file("old", 400, 48);
        file("older", 400, 72);
        file("recent", 400, 24);
        // Used by this build: kept even though it alone passes the cap.
        file("this-build", 1500, 0);
        fs::create_dir(dir.join("work.tmp")).unwrap();
        let removed = prune_least_recent(&dir, 1000, start).unwrap();
        let names: Vec<_> = removed.iter().map(|p| p.file_name().unwrap().to_owned()).collect();
        assert_eq!(names, ["recent", "old", "older"]);

        file("a", 300, 10);
        file("b", 300, 20);
        file("c", 300, 30);
        fs::remove_file(dir.join("this-build")).unwrap();
        let removed = prune_least_recent(&dir, 700, start).unwrap();
        assert_eq!(removed, [dir.join("c")], "the two most recent fit");
        touch(&dir.join("b")).unwrap();
        let removed = prune_least_recent(&dir, 300, start).unwrap();
        assert_eq!(removed, [dir.join("a")], "touched: used by this build");
    }
}
