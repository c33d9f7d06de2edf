//! Debian packages as image root filesystems: unpacked with mmdebstrap (the
//! `extract` variant: dependencies resolved, nothing configured), then given
//! what a configured system would have (merged /usr, base users, the usual
//! directories) and tarred for a recipe's `ADD rootfs.tar /`.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::{symlink, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    base::{exec, files, lock::Deb, pins::ImagePins, project::Project, ui},
    building::lock,
};

/// Package -> the licenses its Debian copyright file names.
pub type Licenses = BTreeMap<String, Vec<String>>;

/// An image's root filesystem from its pins: exactly the packages pins.lock
/// locks for image `name`, unpacked (or, for the `minbase` variant, a
/// configured Debian system with them installed), each .deb checked against
/// its locked sha256. Returns the version of every package in it, and the
/// licenses each package's copyright file names.
pub fn image_tree(
    sh: &Shell,
    project: &Project,
    name: &str,
    pins: &ImagePins,
    tree: &Path,
) -> Result<(BTreeMap<String, String>, Licenses)> {
    let suite = project.pins.suite_of(pins);
    let mirror = &project.pins.debian.mirror;
    let locked = project.lock.image(name)?;
    // Every package at its locked version, the dependencies too: apt has
    // nothing left to choose.
    let include = format!(
        "--include={}",
        locked
            .iter()
            .map(|d| format!("{}={}", d.package, d.version))
            .collect::<Vec<_>>()
            .join(",")
    );
    let configured = pins.variant.as_deref() == Some("minbase");
    let variant = if configured {
        "--variant=minbase"
    } else {
        "--variant=extract"
    };
    let work = tree.with_extension("lock");
    fs::create_dir_all(&work)?;
    // The essential packages mmdebstrap picks itself: pinned by apt preferences.
    let prefs = work.join("pins-lock.pref");
    fs::write(&prefs, lock::apt_preferences(locked))?;
    let setup = format!("copy-in {} /etc/apt/preferences.d", prefs.display());
    // What apt downloaded, listed while the .debs are still in its archive
    // folder (after the essential set is unpacked, and at the end).
    let downloads = work.join("downloads.sha256");
    let _ = fs::remove_file(&downloads);
    let list = format!(
        "find \"$1/var/cache/apt/archives\" -maxdepth 1 -name '*.deb' -exec sha256sum {{}} + >> '{}'",
        downloads.display()
    );
    let hooks = [format!("--extract-hook={list}")]
        .into_iter()
        .chain(configured.then(|| format!("--customize-hook={list}")));
    let excludes = ["doc", "man", "info", "locale", "lintian", "bash-completion"]
        .map(|d| format!("--dpkgopt=path-exclude=/usr/share/{d}/*"))
        .into_iter()
        // Man pages a package keeps in its own folder go too (a JDK's, Maven's):
        // its postinst has update-alternatives link them into
        // /usr/share/man/man1, a folder the exclusion above keeps from
        // existing, which fails; a page that is not there is not linked.
        // Only the Java images have files in these folders.
        .chain(["/usr/lib/jvm/*/man/*", "/usr/share/maven/man/*"].map(|p| format!("--dpkgopt=path-exclude={p}")))
        // Each package's copyright file: its licenses, for the SBOM (read below, then removed).
        .chain(["--dpkgopt=path-include=/usr/share/doc/*/copyright".to_string()])
        // glibc's character set converters (iconv): nothing in the VM uses them
        // (8 MB per image). Base images for apps keep them, as Debian has them.
        .chain((!configured).then(|| "--dpkgopt=path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*".to_string()));
    // apt's lists stay until the versions are read (then they go, below).
    exec::run(
        cmd!(
            sh,
            "mmdebstrap --mode=root {variant} --skip=cleanup/apt/lists --setup-hook={setup} {hooks...} {include} {excludes...} {suite} {tree} {mirror}"
        )
        .env("SOURCE_DATE_EPOCH", project.lock.source_date_epoch.to_string()),
    )
    .with_context(|| format!("unpacking Debian {suite} packages {} (as locked in pins.lock)", pins.packages.join(" ")))?;
    let listing = fs::read_to_string(&downloads).with_context(|| format!("reading {}", downloads.display()))?;
    let checked = lock::check_downloads(&listing, locked).with_context(|| format!("image {name}"))?;
    ui::note(format!(
        "{checked} Debian packages, each the version and sha256 pins.lock locks"
    ));
    fs::remove_dir_all(&work)?;
    empty_dev(tree)?;
    let licenses = take_licenses(tree, locked)?;
    let versions = package_versions(tree);
    for path in &pins.remove {
        let path = tree.join(path.trim_start_matches('/'));
        if path.is_dir() {
            fs::remove_dir_all(&path)?;
        } else if path.exists() {
            fs::remove_file(&path)?;
        }
    }
    if configured {
        // A Debian system as an image has it: apt's package lists are fetched
        // by whoever installs more (`apt-get update`), not carried.
        for dir in ["var/lib/apt/lists", "var/cache/apt"] {
            let path = tree.join(dir);
            if path.exists() {
                fs::remove_dir_all(&path)?;
                fs::create_dir_all(&path)?;
            }
        }
        return Ok((versions, licenses));
    }
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
    // What is in the tree, for `dpkg-query --admindir=…/var/lib/dpkg`.
    fs::create_dir_all(tree.join("var/lib/dpkg"))?;
    fs::write(tree.join("var/lib/dpkg/status"), lock::dpkg_status(locked))?;
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
    Ok((versions, licenses))
}

/// Leave the tree's /dev an empty folder. As root, mmdebstrap fills it with
/// device nodes (console, null, tty, …); in the user namespace an ordinary
/// user builds in, no device node can be made and it leaves /dev empty. The
/// engine and crun mount a /dev of their own over the image's, so the nodes
/// are never seen: every image carries an empty /dev, and a user's build is
/// the same bytes as root's.
fn empty_dev(tree: &Path) -> Result<()> {
    let dev = tree.join("dev");
    let Ok(entries) = fs::read_dir(&dev) else { return Ok(()) };
    for entry in entries {
        let path = entry?.path();
        let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        }
        .with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// Package -> the licenses its copyright file names (machine-readable
/// copyright files only); the files are then removed, so the image holds what
/// it held without them.
fn take_licenses(tree: &Path, locked: &[Deb]) -> Result<Licenses> {
    let doc = tree.join("usr/share/doc");
    let mut out = BTreeMap::new();
    for deb in locked {
        let file = doc.join(&deb.package).join("copyright");
        if let Ok(text) = fs::read_to_string(&file) {
            let licenses = copyright_licenses(&text);
            if !licenses.is_empty() {
                out.insert(deb.package.clone(), licenses);
            }
        }
    }
    if let Ok(entries) = fs::read_dir(&doc) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                fs::remove_dir_all(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
        }
    }
    Ok(out)
}

/// Package -> version: what dpkg installed, else what apt's lists offered
/// (an unpacked tree has no dpkg status).
fn package_versions(tree: &Path) -> BTreeMap<String, String> {
    let mut texts = vec![fs::read_to_string(tree.join("var/lib/dpkg/status")).unwrap_or_default()];
    if let Ok(lists) = fs::read_dir(tree.join("var/lib/apt/lists")) {
        for entry in lists.flatten() {
            if entry.file_name().to_string_lossy().ends_with("_Packages") {
                texts.push(fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
    }
    let mut versions = BTreeMap::new();
    for text in texts {
        for (package, version) in stanzas(&text) {
            versions.entry(package).or_insert(version);
        }
    }
    versions
}

/// Field `name` of one stanza of a Debian control file (a Packages index, a
/// dpkg status), its value trimmed; continuation lines are not read.
pub fn control_field(stanza: &str, name: &str) -> Option<String> {
    stanza
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
        .map(|v| v.trim().to_string())
}

/// (Package, Version) of every stanza of a dpkg status or apt Packages file.
fn stanzas(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| control_field(stanza, name);
        if let (Some(p), Some(v)) = (field("Package"), field("Version")) {
            out.push((p, v));
        }
    }
    out
}

/// Where host tool `name` (pins.yml `debian.tools`) is once unpacked: its
/// package's folder in the cache, and the program in it.
pub(crate) fn tool_place(project: &Project, name: &str) -> Result<(PathBuf, PathBuf)> {
    let pin = project.pins.debian_tool(name)?;
    let debian = &project.pins.debian;
    let key = files::content_hash(
        &format!(
            "suite={}\nmirror={}\npackage={}\n",
            debian.suite, debian.mirror, pin.package
        ),
        &[],
        6,
    );
    let dir = project
        .cache_path("tools")
        .join(format!("{}-{}-{key}", pin.package, debian.suite));
    let program = dir.join(&pin.path);
    Ok((dir, program))
}

/// Host tool `name` if it is unpacked already. It is only ever renamed into
/// place whole, so this needs no cache lock: a command that only reads
/// (`volumes rm` reading the compose file) does not wait for a build.
pub fn unpacked_tool(project: &Project, name: &str) -> Result<Option<PathBuf>> {
    let (_, program) = tool_place(project, name)?;
    Ok(program.is_file().then_some(program))
}

/// The path of host tool `name` (pins.yml `debian.tools`): its package is
/// unpacked once per suite and mirror into the cache, outside the repository.
pub fn tool(sh: &Shell, project: &Project, name: &str) -> Result<PathBuf> {
    let pin = project.pins.debian_tool(name)?;
    let debian = &project.pins.debian;
    let (dir, program) = tool_place(project, name)?;
    if program.is_file() {
        return Ok(program);
    }
    let step = ui::step(format!(
        "{name} (Debian {} package {}, for the host)",
        debian.suite, pin.package
    ));
    let partial = dir.with_extension("partial");
    if partial.exists() {
        fs::remove_dir_all(&partial)?;
    }
    fs::create_dir_all(partial.parent().expect("under the cache"))?;
    let (suite, mirror, include) = (&debian.suite, &debian.mirror, format!("--include={}", pin.package));
    exec::run(cmd!(
        sh,
        "mmdebstrap --mode=root --variant=extract {include} {suite} {partial} {mirror}"
    ))
    .with_context(|| format!("unpacking Debian {suite} package {}", pin.package))?;
    if !partial.join(&pin.path).is_file() {
        bail!(
            "Debian {suite} package {} has no {} (pins.yml `debian.tools.{name}`)",
            pin.package,
            pin.path
        );
    }
    fs::rename(&partial, &dir)?;
    step.done_with("unpacked");
    Ok(program)
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

/// `dir` as a tar: sorted, root-owned, no time after `epoch` (SOURCE_DATE_EPOCH).
pub fn tar_dir(sh: &Shell, dir: &Path, out: &Path, epoch: u64) -> Result<()> {
    let mtime = format!("--mtime=@{epoch}");
    exec::run(cmd!(
        sh,
        "tar --numeric-owner --owner=0 --group=0 --sort=name {mtime} --clamp-mtime -C {dir} -cf {out} ."
    ))?;
    Ok(())
}

/// The licenses a machine-readable Debian copyright file names (each
/// `License:` field's first line, once each, in order); nothing for free-form files.
fn copyright_licenses(text: &str) -> Vec<String> {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
    if !(first.starts_with("Format:") && first.contains("copyright-format")) {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("License:") {
            let value = value.trim().to_string();
            if !value.is_empty() && !out.contains(&value) {
                out.push(value);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::TestDir;

    #[test]
    fn licenses_from_machine_readable_copyright_only() {
        let dep5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n\
                    Files: *\nLicense: GPL-2+\n\nFiles: x\nLicense: BSD-3-clause\n text\n\nLicense: GPL-2+\n full\n";
        assert_eq!(copyright_licenses(dep5), ["GPL-2+", "BSD-3-clause"]);
        assert!(copyright_licenses("This is free software.\nLicense: GPL\n").is_empty());
    }

    #[test]
    fn versions_from_dpkg_and_apt_stanzas() {
        let text = "Package: python3\nStatus: install ok installed\nVersion: 3.11.2-1+b1\n\nPackage: nginx-light\nVersion: 1.26.3-3\nDescription: x\n y\n";
        assert_eq!(
            stanzas(text),
            [
                ("python3".to_string(), "3.11.2-1+b1".to_string()),
                ("nginx-light".to_string(), "1.26.3-3".to_string())
            ]
        );
    }

    #[test]
    fn merge_usr_links_and_moves() {
        let tmp = TestDir::new("merge");
        fs::create_dir_all(tmp.join("bin")).unwrap();
        fs::write(tmp.join("bin/sh"), "x").unwrap();
        merge_usr(&tmp).unwrap();
        for d in ["bin", "sbin", "lib", "lib64"] {
            assert_eq!(fs::read_link(tmp.join(d)).unwrap(), Path::new(&format!("usr/{d}")));
        }
        assert_eq!(fs::read_to_string(tmp.join("usr/bin/sh")).unwrap(), "x");
        merge_usr(&tmp).unwrap(); // idempotent
    }
}
