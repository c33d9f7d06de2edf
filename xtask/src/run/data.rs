//! The data disk that keeps a compose app's named volumes from one boot to
//! the next: a raw file on the host, attached to the VM as a virtio disk,
//! which the VM formats when blank and mounts under its volumes
//! (images/data/data-disk). `run-*` keeps one per compose project and
//! method, as `docker compose` keeps a project's volumes until `down -v`;
//! each `test-boot` starts from a new, empty one. `cargo xtask volumes`
//! lists and removes them (run::volumes); what it decides is here.

use std::{
    fs,
    io::Read,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::{bail, Context, Result};

use crate::vm::method::Method;

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
    Ok(folder()?.join(format!("{project}-{method}.img")))
}

/// The folder of [`default_path`]'s disks, which `volumes` lists.
pub fn folder() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("neither $HOME nor $XDG_DATA_HOME is set")?)
            .join(".local/share"),
    };
    Ok(base.join("linuxkit-compose/volumes"))
}

/// The method's part of a data disk's name: `static`, `dynamic`, `native`.
pub fn method_name(method: Method) -> &'static str {
    method.vm_name().trim_start_matches("compose-")
}

/// The compose project and method whose disk [`default_path`] names
/// `file_name`, or None for a name it never makes (a file copied into the
/// folder by hand). A project name may hold `-` itself; a method never does.
pub fn owner(file_name: &str) -> Option<(&str, &str)> {
    let (project, method) = file_name.strip_suffix(".img")?.rsplit_once('-')?;
    let known = [Method::Static, Method::Dynamic, Method::Native]
        .iter()
        .any(|m| method_name(*m) == method);
    (known && !project.is_empty()).then_some((project, method))
}

/// A data disk file on the host, as `volumes` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Disk {
    pub path: PathBuf,
    /// Compose project and method, from its name (see [`owner`]).
    pub owner: Option<(String, String)>,
    /// Bytes it takes on the host: its blocks, as the file is sparse.
    pub allocated: u64,
    /// Its length: the size of the disk the VM sees.
    pub apparent: u64,
    pub modified: SystemTime,
}

impl Disk {
    /// The disk file at `path`. Only a regular file is one: never a folder,
    /// a device or a symlink (removing a link would free nothing, and its
    /// target is not ours to judge).
    pub fn at(path: &Path) -> Result<Disk> {
        let meta = fs::symlink_metadata(path).with_context(|| format!("reading data disk {}", path.display()))?;
        if !meta.file_type().is_file() {
            bail!("data disk {}: not a regular file", path.display());
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        Ok(Disk {
            path: path.to_path_buf(),
            owner: owner(name).map(|(p, m)| (p.to_string(), m.to_string())),
            allocated: meta.blocks() * 512,
            apparent: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        })
    }
}

/// Every data disk in `dir`: its `*.img` regular files, by name. None when
/// the folder does not exist (no `run-*` has made one yet).
pub fn list(dir: &Path) -> Result<Vec<Disk>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut disks = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && path.extension().is_some_and(|e| e == "img") {
            disks.push(Disk::at(&path)?);
        }
    }
    disks.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(disks)
}

/// Which of the folder's disks `volumes rm` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// One compose project's, or every disk (`--all`) when None.
    pub project: Option<String>,
    /// One method's (`--method`), or every method's when None.
    pub method: Option<String>,
}

impl Selection {
    /// The disks of `disks` this selection names. A disk not named as
    /// [`default_path`] names them belongs to no project: only a plain
    /// `--all` takes it.
    pub fn chosen<'a>(&self, disks: &'a [Disk]) -> Vec<&'a Disk> {
        disks
            .iter()
            .filter(|d| match &d.owner {
                Some((project, method)) => {
                    self.project.as_ref().is_none_or(|p| p == project)
                        && self.method.as_ref().is_none_or(|m| m == method)
                }
                None => self.project.is_none() && self.method.is_none(),
            })
            .collect()
    }
}

/// The ext4 label the VM gives a data disk it formats (images/data/data-disk).
const LABEL: &[u8] = b"compose-data";

/// Is `head` (a file's first MiB, or all of a shorter one) the start of a data
/// disk: blank, as the VM finds a new one, or an ext2/3/4 file system labelled
/// compose-data, as the VM leaves it? Anything else is not ours to remove.
pub fn is_data_disk(head: &[u8]) -> bool {
    if head.iter().all(|b| *b == 0) {
        return true;
    }
    // The superblock is 1024 bytes in: its magic at 0x38, its label at 0x78.
    let Some(sb) = head.get(1024..1024 + 0x88) else {
        return false;
    };
    let label = &sb[0x78..0x88];
    sb[0x38..0x3a] == [0x53, 0xef] && label.starts_with(LABEL) && label[LABEL.len()..].iter().all(|b| *b == 0)
}

/// [`is_data_disk`] of the file at `path`.
pub fn holds_data_disk(path: &Path) -> Result<bool> {
    let mut head = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(1 << 20).read_to_end(&mut head))
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(is_data_disk(&head))
}

/// Take `path` from any VM to come: a write lock on QEMU's permission
/// bytes, held while the returned file is open, so a `run-*` starting now
/// cannot open it and write to a disk about to go. None when a VM (or
/// anything else) already holds a lock there: it is in use.
pub fn claim(path: &Path) -> Result<Option<fs::File>> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: as in `in_use`.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 100;
    lock.l_len = 200;
    // SAFETY: fcntl(2) F_OFD_SETLK on an open descriptor with a valid `flock`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) } == 0 {
        return Ok(Some(file));
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(None),
        _ => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// `bytes` for a person: B, KiB, MiB, GiB, TiB (binary, as `--data-size`
/// is in GiB), one decimal from KiB up.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `rows` as lines, each column as wide as its widest cell (two spaces
/// between), the last one not padded (a path: it can be long).
pub fn table(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
                }
            }
            line
        })
        .collect()
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
        let qemu = hold_like_qemu(&path);
        assert!(in_use(&path).unwrap().is_some());
        let e = prepare(&path, 1, true).unwrap_err().to_string();
        assert!(e.contains("is in use by another VM"), "{e}");
        assert!(path.exists());
        drop(qemu);
        // A process another test thread is starting may hold a copy of the
        // descriptor (and so the lock) from its fork until its exec: wait
        // that out rather than fail on it.
        let freed = (0..250).any(|_| {
            let free = in_use(&path).unwrap().is_none();
            if !free {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            free
        });
        assert!(freed, "the lock outlived its descriptor");
        fs::remove_dir_all(dir).unwrap();
    }

    /// What QEMU takes on a disk it opens: a shared lock on one permission byte.
    fn hold_like_qemu(path: &Path) -> fs::File {
        let qemu = fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        // SAFETY: as in `in_use`.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_RDLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        lock.l_start = 101;
        lock.l_len = 1;
        // SAFETY: as in `in_use`.
        assert_eq!(unsafe { libc::fcntl(qemu.as_raw_fd(), libc::F_OFD_SETLK, &lock) }, 0);
        qemu
    }

    #[test]
    fn file_names_say_project_and_method() {
        assert_eq!(owner("shop-native.img"), Some(("shop", "native")));
        assert_eq!(
            owner("linuxkit-compose-static.img"),
            Some(("linuxkit-compose", "static")),
            "a project name holds dashes"
        );
        assert_eq!(owner("a-b-dynamic.img"), Some(("a-b", "dynamic")));
        for other in [
            "backup.img",
            "shop-qemu.img",
            "-static.img",
            "shop-native.img.partial",
            "shop-native.raw",
            "shop-native",
        ] {
            assert_eq!(owner(other), None, "{other}");
        }
        let name = default_path("my-app", method_name(Method::Dynamic)).unwrap();
        let name = name.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            owner(name),
            Some(("my-app", "dynamic")),
            "reads what default_path writes"
        );
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1024), "1.0 KiB");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 20), "3.0 MiB");
        assert_eq!(size(8 * GIB), "8.0 GiB");
        assert_eq!(size(5000 * GIB), "4.9 TiB");
        assert_eq!(size(u64::MAX), "16777216.0 TiB");
    }

    #[test]
    fn columns_line_up_but_the_last() {
        let rows = [
            vec!["PROJECT".to_string(), "SIZE".into(), "PATH".into()],
            vec![
                "linuxkit-compose".into(),
                "8.0 GiB".into(),
                "/a/linuxkit-compose-static.img".into(),
            ],
            vec!["shop".into(), "0 B".into(), "/a/shop-native.img".into()],
        ];
        assert_eq!(
            table(&rows),
            [
                "PROJECT           SIZE     PATH",
                "linuxkit-compose  8.0 GiB  /a/linuxkit-compose-static.img",
                "shop              0 B      /a/shop-native.img",
            ]
        );
        assert!(table(&[]).is_empty());
    }

    /// The folder's `*.img` regular files, with their blocks and length;
    /// nothing else in it, and no folder at all is no disks.
    #[test]
    fn the_folder_lists_its_disk_files_only() {
        let dir = scratch("list");
        assert_eq!(list(&dir).unwrap(), [], "no folder yet");
        fs::create_dir_all(dir.join("folder.img")).unwrap();
        fs::write(dir.join("notes.txt"), "not a disk").unwrap();
        prepare(&dir.join("shop-native.img"), 2, false).unwrap();
        prepare(&dir.join("backup.img"), 1, false).unwrap();
        fs::write(dir.join("linuxkit-compose-static.img"), vec![1u8; 1 << 20]).unwrap();
        std::os::unix::fs::symlink(dir.join("backup.img"), dir.join("link-static.img")).unwrap();
        let disks = list(&dir).unwrap();
        let names: Vec<_> = disks.iter().map(|d| d.path.file_name().unwrap().to_owned()).collect();
        assert_eq!(names, ["backup.img", "linuxkit-compose-static.img", "shop-native.img"]);
        assert_eq!(disks[0].owner, None);
        assert_eq!(disks[2].owner, Some(("shop".into(), "native".into())));
        assert_eq!((disks[2].apparent, disks[2].allocated), (2 * GIB, 0), "sparse, empty");
        assert_eq!(disks[1].apparent, 1 << 20);
        assert!(disks[1].allocated >= 1 << 20, "written: {}", disks[1].allocated);
        assert!(
            Disk::at(&dir.join("link-static.img")).is_err(),
            "a symlink is not a disk"
        );
        assert!(Disk::at(&dir.join("folder.img")).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    /// `rm -f app.yml` takes the project's disks (every method's, or one);
    /// `--all` every disk, even one named by hand, unless a method narrows it.
    #[test]
    fn rm_chooses_by_project_and_method() {
        let disk = |name: &str| Disk {
            path: PathBuf::from(format!("/v/{name}")),
            owner: owner(name).map(|(p, m)| (p.into(), m.into())),
            allocated: 0,
            apparent: GIB,
            modified: SystemTime::UNIX_EPOCH,
        };
        let disks = [
            disk("backup.img"),
            disk("shop-native.img"),
            disk("shop-static.img"),
            disk("shop-old-static.img"),
            disk("web-native.img"),
        ];
        let chosen = |project: Option<&str>, method: Option<&str>| -> Vec<String> {
            let selection = Selection {
                project: project.map(String::from),
                method: method.map(String::from),
            };
            selection
                .chosen(&disks)
                .iter()
                .map(|d| d.path.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(chosen(Some("shop"), None), ["shop-native.img", "shop-static.img"]);
        assert_eq!(chosen(Some("shop"), Some("native")), ["shop-native.img"]);
        assert_eq!(chosen(Some("shop-old"), None), ["shop-old-static.img"]);
        assert_eq!(chosen(Some("shop"), Some("dynamic")), Vec::<String>::new());
        assert_eq!(chosen(Some("nobody"), None), Vec::<String>::new());
        assert_eq!(chosen(None, Some("native")), ["shop-native.img", "web-native.img"]);
        assert_eq!(chosen(None, None).len(), disks.len());
    }

    /// A blank file or the VM's compose-data file system; nothing else.
    #[test]
    fn only_a_data_disk_is_one() {
        assert!(is_data_disk(&[]));
        assert!(is_data_disk(&[0; 4096]));
        let ext4 = |label: &[u8]| {
            let mut head = vec![0u8; 4096];
            head[1024 + 0x38..1024 + 0x3a].copy_from_slice(&[0x53, 0xef]);
            head[1024 + 0x78..1024 + 0x78 + label.len()].copy_from_slice(label);
            head
        };
        assert!(is_data_disk(&ext4(b"compose-data")));
        assert!(!is_data_disk(&ext4(b"compose-data2")));
        assert!(!is_data_disk(&ext4(b"rootfs")));
        assert!(!is_data_disk(b"[package]\nname = \"xtask\"\n"));
        let mut not_ext = ext4(b"compose-data");
        not_ext[1024 + 0x38] = 0;
        assert!(!is_data_disk(&not_ext));
    }

    /// A disk QEMU holds cannot be claimed; one claimed shows as in use, so a
    /// `run-*` starting meanwhile refuses it.
    #[test]
    fn a_claim_keeps_vms_off_and_yields_to_one() {
        let dir = scratch("claim");
        let path = dir.join("shop-static.img");
        prepare(&path, 1, false).unwrap();
        let qemu = hold_like_qemu(&path);
        assert!(claim(&path).unwrap().is_none(), "a VM holds it");
        drop(qemu);
        let claimed = claim(&path).unwrap().expect("free now");
        assert!(in_use(&path).unwrap().is_some());
        assert!(prepare(&path, 1, false).is_err(), "run-* keeps off");
        drop(claimed);
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
