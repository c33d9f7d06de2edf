//! The VM's own images in the local profile: one recipe folder per image under
//! `images/`, its Debian packages unpacked by mmdebstrap, built by buildah
//! (daemonless), and imported into the project's LinuxKit cache.
//!
//! An image's tag is a hash of everything it is made from (its recipe folder, its
//! pins, the Debian suite), so the tag alone says whether the cache is current.

use std::{
    collections::BTreeSet,
    fs,
    os::unix::fs::{symlink, PermissionsExt},
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    base::{
        exec,
        files::{self, TreeFile},
        project::Project,
        ui,
    },
    building::{gotools, oci},
};

/// Registry part of every image this project builds. Not a real registry: the
/// name only says "built here", so no stand-in ever carries an upstream name.
pub const REGISTRY: &str = "linuxkit-compose.local";

/// Bump when the way images are assembled changes, so every tag changes with it.
const RECIPE_FORMAT: &str = "3";

/// The files an image's Dockerfile may ADD/COPY besides its own recipe files.
const ROOTFS_TAR: &str = "rootfs.tar";

pub fn reference(name: &str, tag: &str) -> String {
    format!("{REGISTRY}/{name}:{tag}")
}

/// The tag of image `name` as its recipe and pins stand now.
pub fn tag(project: &Project, name: &str) -> Result<String> {
    let dir = recipe_dir(project, name);
    if !dir.join("Dockerfile").is_file() {
        bail!(
            "{}: no Dockerfile in the image recipe folder",
            project.rel(&dir.join("Dockerfile")).display()
        );
    }
    let recipe = files::tree_files(&dir).with_context(|| format!("reading {}", project.rel(&dir).display()))?;
    let image = project.pins.image(name)?;
    let mut pins = format!(
        "suite={}\npackages={}\n",
        project.pins.debian.suite,
        image.packages.join(",")
    );
    for tool in &image.go {
        let t = project.pins.go_tool(tool)?;
        pins += &format!("go={tool} {}@{} {}\n", t.module, t.version, t.package);
    }
    Ok(content_tag(name, &recipe, &pins))
}

fn recipe_dir(project: &Project, name: &str) -> PathBuf {
    project.root.join("images").join(name)
}

/// The first 12 hex digits of a SHA-256 over the recipe's name, files and pins.
pub fn content_tag(name: &str, files: &[TreeFile], pins: &str) -> String {
    files::content_hash(&format!("format={RECIPE_FORMAT}\nname={name}\n{pins}"), files, 6)
}

/// Make sure image `name` is in the LinuxKit cache, building it if its tag is
/// not; returns its reference.
pub fn ensure(sh: &Shell, project: &Project, name: &str) -> Result<String> {
    ensure_present(sh, project, name, false)
}

/// Like [`ensure`], for an image used as a base by app Dockerfiles: it must be in
/// buildah's storage as well as in the LinuxKit cache.
pub fn ensure_in_buildah(sh: &Shell, project: &Project, name: &str) -> Result<String> {
    ensure_present(sh, project, name, true)
}

fn ensure_present(sh: &Shell, project: &Project, name: &str, in_buildah: bool) -> Result<String> {
    let reference = reference(name, &tag(project, name)?);
    let present = oci::cache_has(&project.linuxkit_cache(), &reference)?
        && (!in_buildah || buildah_read(sh, project, &["inspect", "--type", "image", &reference]).is_some());
    if present {
        // Said once per command: app images share their base.
        static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
        if SAID.lock().unwrap_or_else(|e| e.into_inner()).insert(reference.clone()) {
            ui::cached(format!("image {reference}"));
        }
        return Ok(reference);
    }
    let step = ui::step(format!("image {reference}"));
    build(sh, project, name, &reference).with_context(|| format!("building image {name} (recipe images/{name})"))?;
    step.done_with("built");
    Ok(reference)
}

fn build(sh: &Shell, project: &Project, name: &str, reference: &str) -> Result<()> {
    let work = project.cache_path("build").join(name);
    if work.exists() {
        sh.remove_path(&work)?;
    }
    let context = work.join("context");
    let tree = work.join("tree");
    sh.create_dir(&context)?;
    let recipe = recipe_dir(project, name);
    exec::run(cmd!(sh, "cp -a {recipe}/. {context}/"))?;

    let pins = project.pins.image(name)?;
    debian_tree(sh, project, &pins.packages, &tree)?;
    match name {
        "kernel" => kernel_files(sh, &tree, &context)?,
        _ => tar_dir(sh, &tree, &context.join(ROOTFS_TAR))?,
    }
    for tool in &pins.go {
        let binary = gotools::ensure(sh, project, tool)?;
        sh.copy_file(&binary, context.join(binary.file_name().unwrap()))?;
    }
    if name == "init" {
        let service = guest_service(sh, project)?;
        sh.copy_file(&service, context.join("service"))?;
    }

    buildah_build(sh, project, &context, reference)?;
    let layout = work.join("oci");
    buildah(
        sh,
        project,
        &["push", "--quiet", reference, &format!("oci:{}", layout.display())],
    )?;
    oci::import(sh, project, &layout, reference)?;
    sh.remove_path(&work)?;
    Ok(())
}

/// Unpack Debian `packages` (with their dependencies, unconfigured) into `tree`
/// and give it the merged-/usr links and the users its programs expect.
fn debian_tree(sh: &Shell, project: &Project, packages: &[String], tree: &Path) -> Result<()> {
    let debian = &project.pins.debian;
    let (suite, mirror) = (&debian.suite, &debian.mirror);
    let include = format!("--include={}", packages.join(","));
    let excludes = ["doc", "man", "info", "locale", "lintian", "bash-completion"]
        .map(|d| format!("--dpkgopt=path-exclude=/usr/share/{d}/*"));
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

fn tar_dir(sh: &Shell, dir: &Path, out: &Path) -> Result<()> {
    exec::run(cmd!(sh, "tar --numeric-owner --sort=name -C {dir} -cf {out} ."))?;
    Ok(())
}

/// LinuxKit's kernel image shape: `kernel` (the bzImage) and `kernel.tar` (the
/// modules, unpacked into the VM's root) at the image root.
fn kernel_files(sh: &Shell, tree: &Path, context: &Path) -> Result<()> {
    let boot = tree.join("boot");
    let vmlinuz = fs::read_dir(&boot)
        .with_context(|| {
            format!(
                "{} missing: is the kernel package in pins.yml `images.kernel`?",
                boot.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("the kernel package has no /boot/vmlinuz-*")?;
    let version = vmlinuz
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_string();
    ui::note(format!("kernel {version}"));
    sh.copy_file(&vmlinuz, context.join("kernel"))?;
    // The package ships no modules.dep (its postinst makes it): make it here.
    exec::run(cmd!(sh, "depmod -b {tree} {version}")).context("depmod")?;
    let kernel_tar = context.join("kernel.tar");
    // The parents need entries of their own: the kernel's initramfs unpacker
    // creates no missing directories, and would drop every module without them.
    exec::run(cmd!(sh, "tar --numeric-owner --sort=name -C {tree} -cf {kernel_tar} --no-recursion usr usr/lib --recursion usr/lib/modules"))?;
    Ok(())
}

/// The init image's `service` program (images/init/lkc-service), built static for the VM.
fn guest_service(sh: &Shell, project: &Project) -> Result<PathBuf> {
    let step = ui::step("the VM's service runner (images/init/lkc-service)");
    let target_dir = project.root.join("target/guest");
    exec::run(
        exec::clean_cargo_env(cmd!(
            sh,
            "cargo build --release --locked -p lkc-service --target x86_64-unknown-linux-gnu"
        ))
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", &target_dir),
    )
    .context("building images/init/lkc-service")?;
    step.done_with("built");
    Ok(target_dir.join("x86_64-unknown-linux-gnu/release/service"))
}

fn buildah_build(sh: &Shell, project: &Project, context: &Path, reference: &str) -> Result<()> {
    let context = context.to_str().context("non-UTF-8 path")?;
    let file = format!("{context}/Dockerfile");
    buildah(
        sh,
        project,
        &[
            "bud",
            "--quiet",
            "--isolation",
            "chroot",
            "--timestamp",
            "0",
            "-f",
            &file,
            "-t",
            reference,
            context,
        ],
    )
}

/// Run buildah on the project's own storage (vfs: no kernel overlay support needed).
pub fn buildah(sh: &Shell, project: &Project, args: &[&str]) -> Result<()> {
    exec::run(buildah_cmd(sh, project, args)).with_context(|| format!("buildah {}", args.first().unwrap_or(&"")))
}

/// [`buildah`] as a question: its standard output if it succeeds.
pub fn buildah_read(sh: &Shell, project: &Project, args: &[&str]) -> Option<String> {
    exec::probe(buildah_cmd(sh, project, args))
}

fn buildah_cmd<'a>(sh: &'a Shell, project: &Project, args: &[&str]) -> xshell::Cmd<'a> {
    let store = project.cache_path("buildah");
    let (root, runroot) = (store.join("root"), store.join("run"));
    cmd!(
        sh,
        "buildah --root {root} --runroot {runroot} --storage-driver vfs {args...}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, exec: bool, body: &str) -> TreeFile {
        (path.to_string(), exec, body.as_bytes().to_vec())
    }

    #[test]
    fn tag_changes_with_every_input() {
        let files = vec![
            file("Dockerfile", false, "FROM scratch\n"),
            file("init", true, "#!/bin/sh\n"),
        ];
        let base = content_tag("init", &files, "packages=busybox-static");
        assert_eq!(base.len(), 12);
        assert_eq!(
            base,
            content_tag("init", &files, "packages=busybox-static"),
            "deterministic"
        );

        let mut edited = files.clone();
        edited[1].2 = b"#!/bin/sh\necho\n".to_vec();
        let mut chmod = files.clone();
        chmod[1].1 = false;
        let mut renamed = files.clone();
        renamed[1].0 = "init2".into();
        for (what, tag) in [
            ("content", content_tag("init", &edited, "packages=busybox-static")),
            ("mode", content_tag("init", &chmod, "packages=busybox-static")),
            ("path", content_tag("init", &renamed, "packages=busybox-static")),
            ("pins", content_tag("init", &files, "packages=busybox")),
            ("name", content_tag("getty", &files, "packages=busybox-static")),
        ] {
            assert_ne!(base, tag, "changing the {what} must change the tag");
        }
    }

    #[test]
    fn repo_recipes_have_tags() {
        let project = crate::base::project::for_tests();
        for name in project.pins.images.keys() {
            let tag = tag(&project, name).unwrap();
            assert!(tag.chars().all(|c| c.is_ascii_hexdigit()), "{name}: {tag}");
        }
    }

    /// An image that carries a Go tool is rebuilt when that tool's pin moves,
    /// and only then: images without it keep their tags.
    #[test]
    fn go_pins_are_part_of_the_tags_that_use_them() {
        let project = crate::base::project::for_tests();
        let before = (tag(&project, "traefik").unwrap(), tag(&project, "nginx").unwrap());
        for change in ["version", "module", "package"] {
            let mut moved = crate::base::project::for_tests();
            let tool = moved.pins.go.get_mut("traefik").unwrap();
            match change {
                "version" => tool.version = "v3.6.13".into(),
                "module" => tool.module = "example.com/fork/traefik/v3".into(),
                _ => tool.package = "./cmd/other".into(),
            }
            assert_ne!(
                tag(&moved, "traefik").unwrap(),
                before.0,
                "go.traefik.{change} must retag traefik"
            );
            assert_eq!(
                tag(&moved, "nginx").unwrap(),
                before.1,
                "go.traefik.{change} must not retag nginx"
            );
        }
    }

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
