//! Where things live: the repository, `dist/`, the cache outside the repository,
//! the pins, and whether the xtask may install missing host packages.

use std::{
    fs,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::{Context, Result};

use crate::base::{lock::Lock, origin::Images, pins::Pins, ui};

/// The repository: the workspace that holds xtask/. The one place that says so.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}

/// Environment variable that moves the cache (Go tools, Debian trees, image
/// builds, the LinuxKit cache). Default: `$XDG_CACHE_HOME/linuxkit-compose`.
pub const CACHE_ENV: &str = "LINUXKIT_COMPOSE_CACHE";

pub struct Project {
    pub root: PathBuf,
    pub dist: PathBuf,
    pub cache: PathBuf,
    pub pins: Pins,
    /// pins.lock: the exact Debian packages each image is made from.
    pub lock: Lock,
    /// May the xtask `apt-get install` a missing host package?
    pub install: bool,
    /// `--release`: VMs without a shell on their console, built into dist/release/.
    pub release: bool,
    /// `--images`: where the app's images come from.
    pub images: Images,
}

impl Project {
    /// This project for `--release` builds: VMs without a console shell,
    /// written to dist/release/.
    pub fn into_release(mut self) -> Project {
        self.release = true;
        self.dist = self.dist.join("release");
        self
    }

    pub fn new(install: bool) -> Result<Project> {
        let root = root();
        let pins = Pins::load(&root)?;
        let lock = Lock::load(&root)?;
        let cache = cache_dir(
            std::env::var_os(CACHE_ENV).map(PathBuf::from),
            std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )?;
        Ok(Project {
            dist: root.join("dist"),
            root,
            cache,
            pins,
            lock,
            install,
            release: false,
            images: Images::Local,
        })
    }

    pub fn cache_path(&self, rel: &str) -> PathBuf {
        self.cache.join(rel)
    }

    /// The LinuxKit image cache (an OCI image layout) that `linuxkit build` reads.
    pub fn linuxkit_cache(&self) -> PathBuf {
        self.cache_path("linuxkit")
    }

    pub fn rel<'a>(&self, path: &'a Path) -> &'a Path {
        path.strip_prefix(&self.root).unwrap_or(path)
    }

    /// Exclusive use of the cache and of dist/'s build outputs while building:
    /// a second `cargo xtask` (another terminal, another checkout on the same
    /// cache) waits here instead of writing the same files. Re-entrant within
    /// this process; released when the last guard drops. Boots run unlocked:
    /// they use private links to their kernel and initrd .
    pub fn lock(&self) -> Result<BuildLock> {
        let mut held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if held.0 == 0 {
            fs::create_dir_all(&self.cache).with_context(|| format!("creating {}", self.cache.display()))?;
            let path = self.cache.join("lock");
            let file = match try_lock(&path)? {
                Some(file) => file,
                None => {
                    ui::note(format!(
                        "waiting for another cargo xtask to finish building (it holds {})",
                        path.display()
                    ));
                    let file = open_for_lock(&path)?;
                    flock(&file, libc::LOCK_EX)?;
                    file
                }
            };
            held.1 = Some(file);
        }
        held.0 += 1;
        Ok(BuildLock(()))
    }
}

/// How many [`BuildLock`]s this process holds, and the locked file.
static LOCK: Mutex<(usize, Option<fs::File>)> = Mutex::new((0, None));

/// Held while building; see [`Project::lock`].
pub struct BuildLock(());

impl Drop for BuildLock {
    fn drop(&mut self) {
        let mut held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        held.0 -= 1;
        if held.0 == 0 {
            // Closing the file releases the lock.
            held.1 = None;
        }
    }
}

/// `path`, created if need be, locked (flock) for as long as the returned
/// file is open; `None` if another open file holds it.
pub fn try_lock(path: &Path) -> Result<Option<fs::File>> {
    let file = open_for_lock(path)?;
    Ok(flock(&file, libc::LOCK_EX | libc::LOCK_NB)?.then_some(file))
}

fn open_for_lock(path: &Path) -> Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// flock(2); false if `LOCK_NB` was given and another holder has it.
fn flock(file: &fs::File, op: libc::c_int) -> Result<bool> {
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.kind() == std::io::ErrorKind::WouldBlock {
        return Ok(false);
    }
    Err(err).context("flock")
}

/// This repository as the tests see it: its pins and recipes, and a cache
/// directory nothing in a unit test may create.
#[cfg(test)]
pub fn for_tests() -> Project {
    let root = root();
    Project {
        dist: root.join("dist"),
        cache: root.join("target/no-cache-in-unit-tests"),
        pins: Pins::load(&root).unwrap(),
        lock: Lock::load(&root).unwrap(),
        root,
        install: false,
        release: false,
        images: Images::Local,
    }
}

fn cache_dir(explicit: Option<PathBuf>, xdg: Option<PathBuf>, home: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = explicit.filter(|d| !d.as_os_str().is_empty()) {
        return Ok(dir);
    }
    let base = match xdg.filter(|d| d.is_absolute()) {
        Some(xdg) => xdg,
        None => home
            .context("neither $HOME nor $XDG_CACHE_HOME is set: set $LINUXKIT_COMPOSE_CACHE")?
            .join(".cache"),
    };
    Ok(base.join("linuxkit-compose"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::TestDir;

    /// The build lock is a real lock on the cache: another process cannot take
    /// it while it is held (`flock -n` stands in for a second `cargo xtask`),
    /// and can as soon as the last guard is dropped.
    #[test]
    fn build_lock_excludes_other_processes() {
        let cache = TestDir::new("lock");
        let project = Project {
            cache: cache.to_path_buf(),
            ..for_tests()
        };
        let other_can_lock = || {
            std::process::Command::new("flock")
                .args(["-n", "-E", "99"])
                .arg(cache.join("lock"))
                .arg("true")
                .status()
                .unwrap()
                .code()
                != Some(99)
        };
        let outer = project.lock().unwrap();
        let inner = project.lock().unwrap(); // re-entrant: no self-deadlock
        assert!(!other_can_lock(), "another process took the lock while it was held");
        drop(inner);
        assert!(!other_can_lock(), "released while a guard was still alive");
        drop(outer);
        assert!(other_can_lock(), "still locked after the last guard");
    }

    #[test]
    fn cache_dir_precedence() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(cache_dir(p("/c"), p("/x"), p("/h")).unwrap(), Path::new("/c"));
        assert_eq!(
            cache_dir(None, p("/x"), p("/h")).unwrap(),
            Path::new("/x/linuxkit-compose")
        );
        assert_eq!(
            cache_dir(None, None, p("/h")).unwrap(),
            Path::new("/h/.cache/linuxkit-compose")
        );
        // XDG says relative paths are invalid and must be ignored.
        assert_eq!(
            cache_dir(None, p("rel"), p("/h")).unwrap(),
            Path::new("/h/.cache/linuxkit-compose")
        );
        assert!(cache_dir(None, None, None).is_err());
    }
}
