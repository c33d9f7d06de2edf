//! Where things live: the repository, `dist/`, the cache outside the repository,
//! the pins, and whether the xtask may install missing host packages.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::pins::Pins;

/// Environment variable that moves the cache (Go tools, Debian trees, image
/// builds, the LinuxKit cache). Default: `$XDG_CACHE_HOME/linuxkit-compose`.
pub const CACHE_ENV: &str = "LINUXKIT_COMPOSE_CACHE";

pub struct Project {
    pub root: PathBuf,
    pub dist: PathBuf,
    pub cache: PathBuf,
    pub pins: Pins,
    /// May the xtask `apt-get install` a missing host package?
    pub install: bool,
}

impl Project {
    pub fn new(root: PathBuf, install: bool) -> Result<Project> {
        let pins = Pins::load(&root)?;
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
            install,
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
}

/// This repository as the tests see it: its pins and recipes, and a cache
/// directory nothing in a unit test may create.
#[cfg(test)]
pub fn for_tests() -> Project {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    Project {
        dist: root.join("dist"),
        cache: root.join("target/no-cache-in-unit-tests"),
        pins: Pins::load(&root).unwrap(),
        root,
        install: false,
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
