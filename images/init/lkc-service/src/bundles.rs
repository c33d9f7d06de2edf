//! Finding the OCI bundles LinuxKit wrote under /containers/<kind> and
//! putting them in run order (by directory name, so `000-a` before `001-b`).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// A bundle directory and the container name the runtime gets (its basename).
#[derive(Debug, PartialEq)]
pub struct Bundle {
    pub name: String,
    pub dir: PathBuf,
}

/// Sort bundles by name (byte order) and drop hidden entries.
pub fn order(mut bundles: Vec<Bundle>) -> Vec<Bundle> {
    bundles.retain(|b| !b.name.starts_with('.'));
    bundles.sort_by(|a, b| a.name.cmp(&b.name));
    bundles
}

/// The bundles in `dir`, in run order. A missing `dir` yields none; an
/// unreadable one is an error. Non-directories and non-UTF-8 names are skipped.
pub fn list(dir: &Path) -> Result<Vec<Bundle>, String> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("read {}: {e}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("read {}: {e}", dir.display()))?;
        let path = entry.path();
        match entry.file_name().into_string() {
            Ok(name) if path.is_dir() => found.push(Bundle { name, dir: path }),
            _ => {}
        }
    }
    Ok(order(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(b: &[Bundle]) -> Vec<&str> {
        b.iter().map(|b| b.name.as_str()).collect()
    }

    #[test]
    fn orders_by_name_and_skips_hidden() {
        let mk = |n: &str| Bundle {
            name: n.into(),
            dir: PathBuf::from("/c").join(n),
        };
        let got = order(vec![mk("010-z"), mk(".tmp"), mk("002-b"), mk("001-c"), mk("sshd")]);
        assert_eq!(names(&got), ["001-c", "002-b", "010-z", "sshd"]);
        assert_eq!(got[0].dir, PathBuf::from("/c/001-c"));
    }

    #[test]
    fn lists_only_directories_in_order() {
        let root = std::env::temp_dir().join(format!("lkc-bundles-{}", std::process::id()));
        for d in ["001-mount", "000-sysctl", "002-dhcp"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("000-notadir"), "x").unwrap();
        let got = list(&root);
        fs::remove_dir_all(&root).unwrap();
        let got = got.unwrap();
        assert_eq!(names(&got), ["000-sysctl", "001-mount", "002-dhcp"]);
        assert_eq!(got[1].dir, root.join("001-mount"));
    }

    #[test]
    fn missing_dir_is_empty() {
        assert_eq!(list(Path::new("/nonexistent/lkc/containers")), Ok(Vec::new()));
    }
}
