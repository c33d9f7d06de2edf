//! Debian packages as image root filesystems: unpacked with mmdebstrap (the
//! `extract` variant: dependencies resolved, nothing configured), then given
//! what a configured system would have (merged /usr, base users, the usual
//! directories) and tarred for a recipe's `ADD rootfs.tar /`.

use std::{
    fs,
    os::unix::fs::{symlink, PermissionsExt},
    path::Path,
};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::base::{exec, project::Project};

/// Unpack Debian `packages` (with their dependencies, unconfigured) into `tree`
/// and give it the merged-/usr links and the users its programs expect.
pub fn tree(sh: &Shell, project: &Project, packages: &[String], tree: &Path) -> Result<()> {
    let debian = &project.pins.debian;
    let (suite, mirror) = (&debian.suite, &debian.mirror);
    let include = format!("--include={}", packages.join(","));
    let excludes = ["doc", "man", "info", "locale", "lintian", "bash-completion"]
        .map(|d| format!("--dpkgopt=path-exclude=/usr/share/{d}/*"))
        .into_iter()
        // glibc's character set converters (iconv): nothing in the VM uses them (8 MB per image).
        .chain(["--dpkgopt=path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*".to_string()]);
    exec::run(cmd!(
        sh,
        "mmdebstrap --mode=root --variant=extract {include} {excludes...} {suite} {tree} {mirror}"
    ))
    .with_context(|| format!("unpacking Debian {suite} packages {}", packages.join(" ")))?;
    merge_usr(tree)?;
    base_users(tree)?;
    if !tree.join("var/run").exists() {
        fs::create_dir_all(tree.join("var"))?;
        symlink("../run", tree.join("var/run"))?;
    }
    // mmdebstrap leaves apt's and dpkg's own state behind; the image needs none of it.
    for leftover in [
        "etc/apt",
        "etc/dpkg",
        "var/lib/apt",
        "var/cache/apt",
        "var/lib/dpkg",
        "var/log/apt",
    ] {
        let path = tree.join(leftover);
        if path.exists() {
            fs::remove_dir_all(&path)?;
        }
    }
    for leftover in ["var/log/dpkg.log", "var/log/alternatives.log"] {
        let _ = fs::remove_file(tree.join(leftover));
    }
    // The directories Debian's base-files would provide.
    for (dir, mode) in [
        ("tmp", 0o1777),
        ("var/tmp", 0o1777),
        ("run", 0o755),
        ("root", 0o700),
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
    ] {
        let path = tree.join(dir);
        fs::create_dir_all(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// `bin sbin lib lib64` as links into `usr/`, as on any current Debian system.
/// The extract variant runs no maintainer scripts, so nobody else makes them.
pub fn merge_usr(tree: &Path) -> Result<()> {
    for dir in ["bin", "sbin", "lib", "lib64"] {
        let top = tree.join(dir);
        let under_usr = tree.join("usr").join(dir);
        fs::create_dir_all(&under_usr)?;
        let meta = fs::symlink_metadata(&top);
        if meta.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
            continue;
        }
        if meta.is_ok() {
            // A package still shipping files in /bin (say): move them under /usr.
            for entry in fs::read_dir(&top)? {
                let entry = entry?;
                fs::rename(entry.path(), under_usr.join(entry.file_name()))?;
            }
            fs::remove_dir(&top)?;
        }
        symlink(format!("usr/{dir}"), &top)?;
    }
    Ok(())
}

/// The accounts Debian's base-passwd would create that the image programs use.
fn base_users(tree: &Path) -> Result<()> {
    let etc = tree.join("etc");
    fs::create_dir_all(&etc)?;
    let files = [
        ("passwd", "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
        ("group", "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n"),
    ];
    for (file, contents) in files {
        let path = etc.join(file);
        if !path.exists() {
            fs::write(&path, contents)?;
        }
    }
    Ok(())
}

pub fn tar_dir(sh: &Shell, dir: &Path, out: &Path) -> Result<()> {
    exec::run(cmd!(sh, "tar --numeric-owner --sort=name -C {dir} -cf {out} ."))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_usr_links_and_moves() {
        let tmp = std::env::temp_dir().join(format!("lkc-merge-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(tmp.join("bin")).unwrap();
        fs::write(tmp.join("bin/sh"), "x").unwrap();
        merge_usr(&tmp).unwrap();
        for d in ["bin", "sbin", "lib", "lib64"] {
            assert_eq!(fs::read_link(tmp.join(d)).unwrap(), Path::new(&format!("usr/{d}")));
        }
        assert_eq!(fs::read_to_string(tmp.join("usr/bin/sh")).unwrap(), "x");
        merge_usr(&tmp).unwrap(); // idempotent
        fs::remove_dir_all(&tmp).unwrap();
    }
}
