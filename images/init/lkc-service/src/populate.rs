//! Filling a service's empty volumes from its image before it starts
//! (annotation `org.linuxkit-compose.populate`), as Docker does when it first
//! mounts a new volume into a container: the image's files under the mount
//! point are copied into the volume, and the volume's folder takes the owner
//! and mode of the image's folder. A database image relies on the second
//! part: postgres's `/var/lib/postgresql/data` belongs to `postgres`, so a
//! service that runs as that user (`user: postgres`) may initialize it. A
//! volume that holds anything already is left as it is.

use crate::annotations::{config_json, Annotations};
use crate::runtime::nullable;
use lkc_contract::POPULATE;
use serde::Deserialize;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Deserialize, Default)]
struct Root {
    #[serde(default)]
    path: String,
}

/// The parts of the bundle's config.json this module reads.
#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    root: Root,
    #[serde(default, deserialize_with = "nullable")]
    mounts: Vec<crate::runtime::Mount>,
}

/// Fill each empty volume the annotation names from the bundle's root
/// filesystem; one console line per volume filled. Errors name the service
/// and the mount point.
pub fn populate(bundle: &Path, name: &str, annotations: &Annotations) -> Result<(), String> {
    let Some(text) = annotations.get(POPULATE) else {
        return Ok(());
    };
    let targets: Vec<String> = serde_json::from_str(text).map_err(|e| format!("annotation {POPULATE}: {e}"))?;
    let config: Config = config_json(bundle)?;
    let rootfs = bundle.join(&config.root.path);
    for target in &targets {
        let Some(mount) = config.mounts.iter().find(|m| &m.destination == target) else {
            return Err(format!(
                "volume {target}: no mount there in {}/config.json",
                bundle.display()
            ));
        };
        let from = rootfs.join(target.trim_start_matches('/'));
        let copied = fill(&from, Path::new(&mount.source)).map_err(|e| format!("volume {target}: {e}"))?;
        if let Some(files) = copied {
            crate::log(&format!(
                "{name}: volume {target} filled from the image ({files} entries, owner and mode of its folder)"
            ));
        }
    }
    Ok(())
}

/// Copy `from` (a folder of the image) into the volume folder `to` if `to`
/// is empty: its entries, then its owner and mode. None when nothing was
/// done (`to` holds something, or the image has no folder there).
fn fill(from: &Path, to: &Path) -> Result<Option<usize>, String> {
    let mut entries = fs::read_dir(to).map_err(|e| format!("reading {}: {e}", to.display()))?;
    if entries.next().is_some() {
        return Ok(None);
    }
    let meta = match fs::symlink_metadata(from) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", from.display())),
    };
    let count = copy_entries(from, to)?;
    owner_and_mode(to, &meta)?;
    Ok(Some(count))
}

/// Copy the entries of folder `from` into `to` (which exists), recursively:
/// folders, regular files and symbolic links, each with its owner and mode.
/// Other kinds (devices, sockets, pipes) have no place in a volume's first
/// contents and are left out.
fn copy_entries(from: &Path, to: &Path) -> Result<usize, String> {
    let at = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let mut count = 0;
    for entry in fs::read_dir(from).map_err(|e| at(from, e))? {
        let entry = entry.map_err(|e| at(from, e))?;
        let (src, dst): (PathBuf, PathBuf) = (entry.path(), to.join(entry.file_name()));
        let meta = fs::symlink_metadata(&src).map_err(|e| at(&src, e))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            fs::create_dir(&dst).map_err(|e| at(&dst, e))?;
            count += copy_entries(&src, &dst)?;
        } else if kind.is_file() {
            fs::copy(&src, &dst).map_err(|e| at(&dst, e))?;
        } else if kind.is_symlink() {
            symlink(fs::read_link(&src).map_err(|e| at(&src, e))?, &dst).map_err(|e| at(&dst, e))?;
        } else {
            continue;
        }
        owner_and_mode(&dst, &meta)?;
        count += 1;
    }
    Ok(count)
}

/// Give `path` the owner of `meta`, and its mode unless it is a link (after
/// the owner: chown clears the set-id bits).
fn owner_and_mode(path: &Path, meta: &fs::Metadata) -> Result<(), String> {
    let at = |e: std::io::Error| format!("{}: {e}", path.display());
    lchown(path, Some(meta.uid()), Some(meta.gid())).map_err(at)?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(at)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lkc-populate-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// A bundle whose image has /var/lib/db (mode 1777, a file, a folder and
    /// a link in it) and /empty, with volume folders mounted on both and on a
    /// path the image lacks.
    fn bundle(tag: &str) -> (PathBuf, Annotations) {
        let d = dir(tag);
        let data = d.join("rootfs/var/lib/db");
        fs::create_dir_all(data.join("conf.d")).unwrap();
        fs::write(data.join("conf.d/a.conf"), "a = 1\n").unwrap();
        fs::set_permissions(data.join("conf.d/a.conf"), fs::Permissions::from_mode(0o600)).unwrap();
        symlink("conf.d/a.conf", data.join("current")).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o1777)).unwrap();
        fs::create_dir_all(d.join("rootfs/empty")).unwrap();
        fs::set_permissions(d.join("rootfs/empty"), fs::Permissions::from_mode(0o700)).unwrap();
        for v in ["db", "empty", "missing"] {
            fs::create_dir_all(d.join("volumes").join(v)).unwrap();
        }
        let mounts: Vec<String> = [("db", "/var/lib/db"), ("empty", "/empty"), ("missing", "/srv")]
            .iter()
            .map(|(v, t)| {
                format!(
                    r#"{{"destination":"{t}","type":"bind","source":"{}","options":["rbind","rw"]}}"#,
                    d.join("volumes").join(v).display()
                )
            })
            .collect();
        fs::write(
            d.join("config.json"),
            format!(r#"{{"root":{{"path":"rootfs"}},"mounts":[{}]}}"#, mounts.join(",")),
        )
        .unwrap();
        let a = Annotations::from([(POPULATE.to_string(), r#"["/var/lib/db","/empty","/srv"]"#.to_string())]);
        (d, a)
    }

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn an_empty_volume_takes_the_images_files_owner_and_mode() {
        let (d, a) = bundle("fill");
        populate(&d, "db", &a).unwrap();
        let v = d.join("volumes/db");
        assert_eq!(mode(&v), 0o1777);
        assert_eq!(fs::read_to_string(v.join("conf.d/a.conf")).unwrap(), "a = 1\n");
        assert_eq!(mode(&v.join("conf.d/a.conf")), 0o600);
        assert_eq!(fs::read_link(v.join("current")).unwrap(), Path::new("conf.d/a.conf"));
        // An empty image folder still gives its mode; a path the image lacks, nothing.
        assert_eq!(mode(&d.join("volumes/empty")), 0o700);
        assert_eq!(fs::read_dir(d.join("volumes/missing")).unwrap().count(), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_volume_that_holds_anything_is_left_as_it_is() {
        let (d, a) = bundle("keep");
        let v = d.join("volumes/db");
        fs::write(v.join("PG_VERSION"), "17\n").unwrap();
        let before = mode(&v);
        populate(&d, "db", &a).unwrap();
        assert!(!v.join("conf.d").exists());
        assert_eq!(mode(&v), before);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_target_without_a_mount_names_it() {
        let (d, _) = bundle("nomount");
        let a = Annotations::from([(POPULATE.to_string(), r#"["/nowhere"]"#.to_string())]);
        let e = populate(&d, "db", &a).unwrap_err();
        assert!(e.starts_with("volume /nowhere: no mount there in"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }
}
