//! `cargo xtask volumes` through the real binary, on a data folder of its own
//! (`XDG_DATA_HOME`): the listing, what `rm` removes and says, a disk a VM
//! holds (an OFD lock, as QEMU takes) refused with nothing removed, and
//! nothing built: no VM, no image, nothing in the cache but the compose tool.

use std::{
    fs,
    io::{Seek, SeekFrom, Write},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

mod common;
#[path = "../src/base/testdir.rs"]
mod testdir;

use common::{the_error, user_cache};
use testdir::TestDir;

const GIB: u64 = 1 << 30;

/// A scratch data home, cache and compose app (project `shop`).
struct Setup {
    dir: TestDir,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = TestDir::new(&format!("volumes-{name}"));
        // The cache holds the host's docker-compose (which reads the app's
        // file to name its project) and nothing else: the user's copy.
        fs::create_dir_all(dir.join("cache")).unwrap();
        std::os::unix::fs::symlink(user_cache().join("tools"), dir.join("cache/tools")).unwrap();
        fs::create_dir_all(dir.join("shop")).unwrap();
        fs::write(
            dir.join("shop/docker-compose.yml"),
            "name: shop\nservices:\n  web:\n    image: python:3.11-slim\n    volumes: [\"data:/data\"]\nvolumes:\n  data:\n",
        )
        .unwrap();
        fs::create_dir_all(dir.join("data/linuxkit-compose/volumes")).unwrap();
        Setup { dir }
    }

    fn folder(&self) -> PathBuf {
        self.dir.join("data/linuxkit-compose/volumes")
    }

    fn compose(&self) -> PathBuf {
        self.dir.join("shop/docker-compose.yml")
    }

    /// `cargo xtask ARGS`: exit success, stdout, stderr. Quick, as nothing is built.
    fn xtask(&self, args: &[&str]) -> (bool, String, String) {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .arg("--no-install")
            .env("LINUXKIT_COMPOSE_CACHE", self.dir.join("cache"))
            .env("XDG_DATA_HOME", self.dir.join("data"))
            .output()
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{args:?} took {:?}",
            started.elapsed()
        );
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    /// The cache holds what reading a compose file needs, nothing built.
    fn assert_nothing_built(&self) {
        let mut made: Vec<String> = fs::read_dir(self.dir.join("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !["tools", "lock"].contains(&n.as_str()))
            .collect();
        made.sort();
        assert!(made.is_empty(), "volumes built something: {made:?}");
    }
}

/// A sparse disk file of `gib` GiB with `used` bytes written at its start.
fn disk(path: &Path, gib: u64, used: usize) {
    let mut file = fs::File::create(path).unwrap();
    file.set_len(gib * GIB).unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.write_all(&vec![0xa5; used]).unwrap();
}

/// Open `path` as QEMU does: a shared lock on one of its permission bytes,
/// held while the file stays open.
fn hold_like_qemu(path: &Path) -> fs::File {
    let qemu = fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    // SAFETY: a zeroed `flock` is valid; every field used is set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_RDLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 101;
    lock.l_len = 1;
    // SAFETY: fcntl(2) F_OFD_SETLK on an open descriptor with a valid `flock`.
    assert_eq!(unsafe { libc::fcntl(qemu.as_raw_fd(), libc::F_OFD_SETLK, &lock) }, 0);
    qemu
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn volumes_lists_and_removes_an_apps_disks() {
    let s = Setup::new("rm");
    let folder = s.folder();
    let compose = s.compose();
    let compose = compose.to_str().unwrap();

    let (ok, out, err) = s.xtask(&["volumes"]);
    assert!(ok, "{err}");
    assert!(out.contains("no data disks in"), "{out}");

    disk(&folder.join("shop-native.img"), 8, 3 << 20);
    disk(&folder.join("shop-static.img"), 2, 0);
    disk(&folder.join("other-app-native.img"), 1, 4096);
    fs::write(folder.join("notes.txt"), "not a disk").unwrap();

    let (ok, out, err) = s.xtask(&["volumes", "ls"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "a header, three disks, a total:\n{out}");
    assert!(lines[0].starts_with("PROJECT "), "{out}");
    let row = |file: &str| {
        *lines
            .iter()
            .find(|l| l.ends_with(file))
            .unwrap_or_else(|| panic!("{file}:\n{out}"))
    };
    let native = row("/shop-native.img");
    assert!(native.starts_with("shop "), "{native}");
    assert!(native.contains(" native "), "{native}");
    assert!(
        native.contains("3.0 MiB") && native.contains("8.0 GiB"),
        "on the host, and as a disk: {native}"
    );
    assert!(native.contains(" no "), "not in use: {native}");
    assert!(row("/other-app-native.img").starts_with("other-app "), "{out}");
    assert!(row("/shop-static.img").contains("0 B"), "sparse and empty: {out}");
    assert!(!out.contains("notes.txt"), "{out}");
    // Aligned: the paths start in one column.
    let at: Vec<usize> = lines[1..4].iter().map(|l| l.find('/').unwrap()).collect();
    assert!(at.iter().all(|c| *c == at[0]), "{out}");

    // `down -v` for one method: the app's native disk only.
    let (ok, out, err) = s.xtask(&["volumes", "rm", "--method", "native", "-f", compose]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("removing {}", folder.join("shop-native.img").display())),
        "{out}"
    );
    assert!(out.contains("3.0 MiB on the host"), "{out}");
    assert_eq!(out.matches("removing ").count(), 1, "{out}");
    assert_eq!(names(&folder), ["notes.txt", "other-app-native.img", "shop-static.img"]);

    // Again: nothing of that method left, a plain note.
    let (ok, out, err) = s.xtask(&["volumes", "rm", "--method", "native", "-f", compose]);
    assert!(ok, "{err}");
    assert!(
        out.contains("no data disk of compose project shop for the native method"),
        "{out}"
    );

    // A disk a VM holds: refused, naming it, and nothing removed.
    let held = folder.join("shop-static.img");
    let qemu = hold_like_qemu(&held);
    let (ok, out, _) = s.xtask(&["volumes"]);
    assert!(ok);
    let static_row = out
        .lines()
        .find(|l| l.ends_with("/shop-static.img"))
        .unwrap()
        .to_string();
    assert!(static_row.contains("yes"), "shown in use: {static_row}");
    disk(&folder.join("shop-dynamic.img"), 1, 0);
    let (ok, out, err) = s.xtask(&["volumes", "rm", "-f", compose]);
    assert!(!ok, "must refuse:\n{out}{err}");
    let error = the_error(&err);
    assert!(error.contains(&held.display().to_string()), "{error}");
    assert!(error.contains("in use by a running VM"), "{error}");
    assert!(!out.contains("removing"), "{out}");
    assert!(folder.join("shop-dynamic.img").exists(), "nothing removed");
    assert!(held.exists());
    drop(qemu);

    // Every method of the app once it stopped; the other app's stays.
    let (ok, out, err) = s.xtask(&["volumes", "rm", "-f", compose]);
    assert!(ok, "{err}");
    assert_eq!(out.matches("removing ").count(), 2, "{out}");
    assert_eq!(names(&folder), ["notes.txt", "other-app-native.img"]);

    // --all: every disk, and only disks.
    let (ok, out, err) = s.xtask(&["volumes", "rm", "--all"]);
    assert!(ok, "{err}");
    assert!(out.contains("other-app-native.img"), "{out}");
    assert_eq!(names(&folder), ["notes.txt"]);
    let (ok, out, err) = s.xtask(&["volumes", "rm", "--all"]);
    assert!(ok, "{err}");
    assert!(out.contains("no data disks in"), "{out}");
    s.assert_nothing_built();
}

/// `volumes rm PATH`: a `--data-disk` file anywhere, if it is one.
#[test]
fn a_disk_by_path_and_only_a_disk() {
    let s = Setup::new("path");
    let mine = s.dir.join("mine.img");
    disk(&mine, 1, 0);
    let (ok, out, err) = s.xtask(&["volumes", "rm", mine.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("removing {}", mine.display())), "{out}");
    assert!(!mine.exists());
    let (ok, out, err) = s.xtask(&["volumes", "rm", mine.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("nothing to remove"), "{out}");

    // A file that is no data disk, a folder, a symlink: each refused, each kept.
    let text = s.dir.join("notes.img");
    fs::write(&text, "the user's notes").unwrap();
    let link = s.dir.join("link.img");
    disk(&s.dir.join("target.img"), 1, 0);
    std::os::unix::fs::symlink(s.dir.join("target.img"), &link).unwrap();
    for (path, want) in [
        (&text, "is not a data disk"),
        (&s.folder(), "not a regular file"),
        (&link, "not a regular file"),
    ] {
        let (ok, _, err) = s.xtask(&["volumes", "rm", path.to_str().unwrap()]);
        assert!(!ok, "{} must be refused", path.display());
        let error = the_error(&err);
        assert!(
            error.contains(want) && error.contains(&path.display().to_string()),
            "{error}"
        );
        assert!(fs::symlink_metadata(path).is_ok(), "{} kept", path.display());
    }
    assert!(s.dir.join("target.img").exists());

    // Held by a VM: refused.
    disk(&mine, 1, 0);
    let qemu = hold_like_qemu(&mine);
    let (ok, _, err) = s.xtask(&["volumes", "rm", mine.to_str().unwrap()]);
    assert!(!ok);
    assert!(the_error(&err).contains("in use by a running VM"), "{err}");
    assert!(mine.exists());
    drop(qemu);
    s.assert_nothing_built();
}
