//! The data disk that keeps a compose app's named volumes from one boot to
//! the next: a raw file on the host, attached to the VM as a virtio disk,
//! which the VM formats when blank and mounts under its volumes
//! (images/data/data-disk). `run-*` keeps one per compose project and
//! method, as `docker compose` keeps a project's volumes until `down -v`;
//! each `test-boot` starts from a new, empty one.

use std::{
    fs,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

/// The size of a new data disk unless `--data-size` says otherwise. The
/// file is sparse: it takes on the host only what the volumes hold.
pub const DEFAULT_GIB: u64 = 8;

const GIB: u64 = 1 << 30;

/// A data disk ready for a VM.
#[derive(Debug)]
pub struct DataDisk {
    pub path: PathBuf,
    /// Made now (empty): the VM formats it at boot.
    pub created: bool,
    /// Bytes of the disk `fresh` removed first (what its volumes held).
    pub removed: Option<u64>,
}

/// Where `run-*` keeps the data disk of compose project `project` under
/// `method` (`static`, `dynamic`, `native`): `$XDG_DATA_HOME/linuxkit-compose/volumes/`
/// (`~/.local/share/...` without it), outside the repository, as a user's
/// data is.
pub fn default_path(project: &str, method: &str) -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("neither $HOME nor $XDG_DATA_HOME is set")?)
            .join(".local/share"),
    };
    Ok(base
        .join("linuxkit-compose/volumes")
        .join(format!("{project}-{method}.img")))
}

/// The data disk at `path`, made (sparse, `gib` GiB) if missing; `fresh`:
/// remove what is there first, to start from empty volumes. A disk another
/// VM has open is an error, before anything boots.
pub fn prepare(path: &Path, gib: u64, fresh: bool) -> Result<DataDisk> {
    if gib == 0 {
        bail!("--data-size: a data disk needs at least 1 GiB");
    }
    if path.exists() {
        if !path.is_file() {
            bail!("data disk {}: not a file", path.display());
        }
        if let Some(holder) = in_use(path)? {
            bail!(
                "data disk {} is in use by another VM ({holder}): stop it first, or give this one another --data-disk",
                path.display()
            );
        }
        if !fresh {
            return Ok(DataDisk {
                path: path.to_path_buf(),
                created: false,
                removed: None,
            });
        }
    }
    let removed = path.exists().then(|| used_bytes(path));
    if removed.is_some() {
        fs::remove_file(path).with_context(|| format!("removing data disk {}", path.display()))?;
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = fs::File::create_new(path).with_context(|| format!("creating data disk {}", path.display()))?;
    file.set_len(gib * GIB)
        .with_context(|| format!("sizing data disk {} to {gib} GiB", path.display()))?;
    Ok(DataDisk {
        path: path.to_path_buf(),
        created: true,
        removed,
    })
}

/// Does a QEMU hold `path` open? QEMU takes open file description locks on
/// bytes 100 to 299 of every image it opens (one byte per permission it
/// uses or refuses to share); a write lock over them conflicts with any.
/// Returns who holds one, as far as the kernel says.
pub fn in_use(path: &Path) -> Result<Option<String>> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: a zeroed `flock` is a valid value; every field used is set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 100;
    lock.l_len = 200;
    // SAFETY: fcntl(2) F_OFD_GETLK on an open descriptor with a valid `flock`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("checking locks on {}", path.display()));
    }
    Ok(
        (lock.l_type != libc::F_UNLCK as libc::c_short).then(|| match lock.l_pid {
            // Open file description locks have no owner process.
            pid if pid > 0 => format!("process {pid}"),
            _ => "a process holds its image lock".to_string(),
        }),
    )
}

/// Bytes the disk file takes on the host (it is sparse), for the user.
pub fn used_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).map(|m| m.blocks() * 512).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lkc-data-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_disk_is_made_once_kept_after_and_emptied_on_request() {
        let dir = scratch("keep");
        let path = dir.join("volumes/app-static.img");
        let made = prepare(&path, 1, false).unwrap();
        assert!(made.created);
        assert_eq!(made.removed, None);
        assert_eq!(fs::metadata(&path).unwrap().len(), GIB);
        assert!(used_bytes(&path) < GIB, "sparse");
        fs::write(&path, b"the volumes").unwrap();
        let again = prepare(&path, 1, false).unwrap();
        assert!(!again.created);
        assert_eq!(fs::read(&path).unwrap(), b"the volumes");
        let fresh = prepare(&path, 2, true).unwrap();
        assert!(fresh.created);
        assert!(fresh.removed.is_some(), "says it removed the old disk");
        assert_eq!(fs::metadata(&path).unwrap().len(), 2 * GIB);
        assert!(prepare(&path, 0, false).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    /// As QEMU does: a shared lock on one permission byte. The disk is then
    /// in use, and neither reused nor emptied.
    #[test]
    fn a_disk_another_vm_holds_is_refused() {
        let dir = scratch("held");
        let path = dir.join("data.img");
        prepare(&path, 1, false).unwrap();
        assert_eq!(in_use(&path).unwrap(), None);
        let qemu = fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        // SAFETY: as in `in_use`.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_RDLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        lock.l_start = 101;
        lock.l_len = 1;
        // SAFETY: as in `in_use`.
        assert_eq!(unsafe { libc::fcntl(qemu.as_raw_fd(), libc::F_OFD_SETLK, &lock) }, 0);
        assert!(in_use(&path).unwrap().is_some());
        let e = prepare(&path, 1, true).unwrap_err().to_string();
        assert!(e.contains("is in use by another VM"), "{e}");
        assert!(path.exists());
        drop(qemu);
        assert_eq!(in_use(&path).unwrap(), None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn default_place_is_per_project_and_method() {
        let p = default_path("shop", "static").unwrap();
        assert!(
            p.ends_with("linuxkit-compose/volumes/shop-static.img"),
            "{}",
            p.display()
        );
    }
}
