//! `cargo xtask test`: everything CI runs, in the order that fails fastest:
//! shellcheck on the VM's shell scripts, formatting, clippy, `cargo test`,
//! then every boot test.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    app::compose,
    base::{exec, project::Project, ui},
    disk::Format,
    run::{
        boot::VmOpts,
        test_boot::{self, Restart},
    },
    vm::method::Method,
};

pub fn run(sh: &Shell, project: &Project, vm: VmOpts) -> Result<()> {
    shellcheck(sh, project)?;
    let checks = [
        ("cargo fmt --check", "formatting: run `cargo fmt --all`"),
        ("cargo clippy", "clippy"),
        ("cargo test --workspace", "unit and snapshot tests"),
    ];
    for (what, context) in checks {
        let step = ui::step(what);
        let command = match what {
            "cargo fmt --check" => cmd!(sh, "cargo fmt --all --check"),
            "cargo clippy" => cmd!(sh, "cargo clippy --workspace --all-targets --locked -- -D warnings"),
            _ => cmd!(sh, "cargo test --workspace --locked"),
        };
        exec::run(exec::clean_cargo_env(command)).context(context)?;
        step.done();
    }
    let app = crate::building::apps::default_app(project)?;
    let boot = |method, unreachable_registry| test_boot::Options {
        method,
        registry: None,
        unreachable_registry,
        timeout: None,
        hosts: vec![],
        restart: None,
        expect_after_restart: None,
        vm: vm.clone(),
    };
    test_boot::run(sh, project, &boot(None, false), &app)?;
    test_boot::run(sh, project, &boot(Some(Method::Native), false), &app)?;
    test_boot::run(sh, project, &boot(Some(Method::Static), false), &app)?;
    // The static VM as a host boots it: the same checks, from its disk
    // images (SeaBIOS + syslinux from a qcow2 virtio disk, OVMF + the unified
    // kernel image from a raw GPT disk) and from its ISO as a CD-ROM.
    // Deployable formats are release VMs: each boot also checks that no shell
    // started on the console.
    let release = Project::new(project.install)?.into_release();
    for format in FORMATS {
        let mut args = boot(Some(Method::Static), false);
        args.vm.format = format;
        test_boot::run(sh, &release, &args, &app)?;
    }
    test_boot::run(sh, project, &boot(Some(Method::Dynamic), false), &app)?;
    test_boot::run(sh, project, &boot(Some(Method::Dynamic), true), &app)?;
    // A third routed site merged over the default file (compose's own -f merge):
    // its own build context, page and Host rule, converted like the others.
    let load = |files: &[&str]| {
        let source = compose::Source {
            files: files.iter().map(|f| project.root.join(f)).collect(),
            ..Default::default()
        };
        crate::building::apps::load(project, &source)
    };
    let three = load(&[compose::DEFAULT, THIRD_SITE])?;
    test_boot::run(sh, project, &boot(Some(Method::Native), false), &three)?;
    // Start order, health, restarts and named volumes under the native runner.
    let ordered = load(&[ORDERED])?;
    test_boot::run(sh, project, &boot(Some(Method::Native), false), &ordered)?;
    // The second app: Python on the python:3.11-slim stand-in, its own published
    // port, a bind-mounted file it serves.
    let second = load(&[SECOND_APP])?;
    test_boot::run(sh, project, &boot(Some(Method::Static), false), &second)?;
    test_boot::run(sh, project, &boot(Some(Method::Dynamic), false), &second)?;
    test_boot::run(sh, project, &boot(Some(Method::Native), false), &second)?;
    // The plain VM's app: nginx routing by Host in traefik's place, whose
    // Host names only `--host` can tell (they are in nginx's configuration).
    let nginx_router = load(&[NGINX_ROUTER])?;
    let hosts = ["a.localhost", "b.localhost"].map(String::from).to_vec();
    for method in [Method::Static, Method::Native] {
        let options = test_boot::Options {
            hosts: hosts.clone(),
            ..boot(Some(method), false)
        };
        test_boot::run(sh, project, &options, &nginx_router)?;
    }
    // What the stand-ins and the methods must carry as Docker does: secrets and
    // configs (owner and mode included), nginx configured by its templates and
    // by envsubst from bash, and a layer that deletes files of its base.
    let secrets = load(&[SECRETS])?;
    test_boot::run(sh, project, &boot(Some(Method::Static), false), &secrets)?;
    test_boot::run(sh, project, &boot(Some(Method::Native), false), &secrets)?;
    let templates = load(&[NGINX_TEMPLATES])?;
    test_boot::run(sh, project, &boot(Some(Method::Native), false), &templates)?;
    let whiteouts = load(&[WHITEOUTS])?;
    test_boot::run(sh, project, &boot(Some(Method::Static), false), &whiteouts)?;
    // Images from a registry (`--images registry`): one no stand-in resembles,
    // pushed to a registry on this machine, gzip and zstd, pulled by digest.
    crate::run::pulls::run(sh, project, &|method| boot(Some(method), false))?;
    // The node stand-in: `FROM node:20`, npm installing from the registry in a
    // RUN step, the app run as the image's `node` user.
    let node_app = load(&[NODE_APP])?;
    test_boot::run(sh, project, &boot(Some(Method::Static), false), &node_app)?;
    test_boot::run(sh, project, &boot(Some(Method::Native), false), &node_app)?;
    // A web app with its database and cache (postgres with its password from a
    // compose secret, redis): a 2xx means a request reached both.
    let webdb = load(&[WEB_DB])?;
    for method in [Method::Static, Method::Native] {
        test_boot::run(sh, project, &boot(Some(method), false), &webdb)?;
    }
    // Named volumes on the data disk: booted, stopped cleanly through the
    // ACPI power button, booted again on the same disk, the count the first
    // boot committed is there.
    // And after a power cut (QEMU killed) once the count was committed.
    let volumes = load(&[VOLUMES])?;
    for (method, restart) in [
        (Method::Static, Restart::Clean),
        (Method::Native, Restart::Clean),
        (Method::Native, Restart::Kill),
    ] {
        let options = test_boot::Options {
            restart: Some(restart),
            expect_after_restart: Some(VOLUMES_SAID.into()),
            ..boot(Some(method), false)
        };
        test_boot::run(sh, project, &options, &volumes)?;
    }
    // The mongo stand-in (FerretDB on SQLite) with its root user from
    // MONGO_INITDB_ROOT_*: a 2xx means a document was written and read back.
    let mongo_app = load(&[MONGO_APP])?;
    test_boot::run(sh, project, &boot(Some(Method::Static), false), &mongo_app)?;
    // The php:apache stand-in built on by a Dockerfile that runs
    // docker-php-ext-install, reading a row from mariadb: a 2xx means mod_php,
    // mysqli and PDO reached the database.
    let php_mysql = load(&[PHP_MYSQL])?;
    test_boot::run(sh, project, &boot(Some(Method::Static), false), &php_mysql)?;
    // A Dockerfile written for Alpine (apk, busybox's adduser) on the python
    // stand-in's emulation of them: the build is the test, so one method.
    let alpine = load(&[ALPINE_PY])?;
    test_boot::run(sh, project, &boot(Some(Method::Static), false), &alpine)?;
    // The Java stand-ins: a multi-stage build, its jar made by Maven (plugins
    // from Maven Central) on `maven:3-eclipse-temurin-17`, run on
    // `eclipse-temurin:17-jre`. Static only: a JVM under TCG is slow to start,
    // and the suite must stay within CI's limit (native passes too, by hand).
    let java_app = load(&[JAVA_APP])?;
    test_boot::run(sh, project, &boot(Some(Method::Static), false), &java_app)?;
    // The uvicorn-gunicorn-fastapi stand-in: its /start.sh finds /app/main.py
    // and serves it with gunicorn's uvicorn workers (FastAPI from PyPI, locked
    // by hash in its recipe). Static only, for CI's time (native passes too).
    let fastapi_app = load(&[FASTAPI_APP])?;
    test_boot::run(sh, project, &boot(Some(Method::Static), false), &fastapi_app)?;
    // A service that exits after the app came up: the boot test stops at the
    // compose runner's line, with the status and the service's last output.
    let exits = load(&[EXITS])?;
    match test_boot::run(sh, project, &boot(Some(Method::Static), false), &exits) {
        Err(e) if format!("{e:#}").contains(EXITS_SAID) => ui::note(format!("{EXITS}: stopped at `{EXITS_SAID}`")),
        Err(e) => return Err(e).context(format!("{EXITS}: want the boot to stop at `{EXITS_SAID}`")),
        Ok(()) => bail!("{EXITS}: the boot passed, but its worker service exits with status 3"),
    }
    // A release VM as kernel+initrd (`--release`): the app serves, and
    // nothing starts a shell on its console.
    test_boot::run(sh, &release, &boot(Some(Method::Static), false), &app)?;
    checked_in_files_unchanged(sh, project)
}

/// The builds above rewrite the checked-in files they are generated into
/// (linuxkit/*.yml, README.md's key table) when those are stale: in a git
/// checkout, a difference means someone forgot `cargo xtask yaml`.
fn checked_in_files_unchanged(sh: &Shell, project: &Project) -> Result<()> {
    let root = &project.root;
    if !root.join(".git").exists() {
        return Ok(());
    }
    let changed = exec::read(cmd!(sh, "git -C {root} status --porcelain -- linuxkit README.md"))?;
    if !changed.trim().is_empty() {
        anyhow::bail!(
            "the build rewrote checked-in files, which were stale: run `cargo xtask yaml` and commit the result:\n{changed}"
        );
    }
    Ok(())
}

/// The folder whose shell scripts are checked: the VM's own, in its images.
const SCRIPTS: &str = "images";

/// Run shellcheck on every shell script under images/ (the init scripts, the
/// services' start scripts): a finding fails the suite before anything is
/// built, with shellcheck's findings, one line each, as the error.
fn shellcheck(sh: &Shell, project: &Project) -> Result<()> {
    let step = ui::step("shellcheck images/");
    let scripts = shell_scripts(&project.root, Path::new(SCRIPTS))?;
    let count = scripts.len();
    if scripts.is_empty() {
        // shellcheck without files prints its usage and fails.
        step.done_with("no scripts");
        return Ok(());
    }
    // The shell is at the project's root: the findings name the scripts as images/….
    let out = exec::output(cmd!(sh, "shellcheck --format=gcc {scripts...}")).context("shellcheck did not start")?;
    if !out.trim().is_empty() {
        bail!(
            "shellcheck has findings in the VM's shell scripts (fix them, or silence one with a \
             `# shellcheck disable=SCnnnn` line saying why):\n{}",
            out.trim_end()
        );
    }
    step.done_with(format!("{count} scripts"));
    Ok(())
}

/// The shell scripts under `root`/`dir`, as paths relative to `root`, sorted:
/// files named `*.sh`, and files whose `#!` line runs a shell. A `target/`
/// folder (cargo's output) and symbolic links are not looked into.
fn shell_scripts(root: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let full = root.join(&dir);
        for entry in fs::read_dir(&full).with_context(|| format!("reading {}", full.display()))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let rel = dir.join(entry.file_name());
            if kind.is_dir() && entry.file_name() != "target" {
                pending.push(rel);
            } else if kind.is_file() {
                // The `#!` line is all that is needed of the file.
                let mut head = Vec::new();
                fs::File::open(entry.path())
                    .and_then(|f| f.take(256).read_to_end(&mut head))
                    .with_context(|| format!("reading {}", entry.path().display()))?;
                if is_shell_script(&entry.file_name().to_string_lossy(), &head) {
                    out.push(rel);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Is a file named `name` that starts with `head` a shell script? `*.sh`, or
/// a `#!` line naming sh, bash, dash, ksh or ash, directly or through `env`
/// or `busybox` (`#!/usr/bin/env bash`, `#!/bin/busybox sh`).
fn is_shell_script(name: &str, head: &[u8]) -> bool {
    if name.ends_with(".sh") {
        return true;
    }
    let Some(line) = head.strip_prefix(b"#!") else {
        return false;
    };
    let line = String::from_utf8_lossy(line);
    let mut words = line.lines().next().unwrap_or_default().split_whitespace();
    let base = |w: &str| w.rsplit('/').next().unwrap_or(w).to_string();
    let mut program = words.next().map(base);
    while matches!(program.as_deref(), Some("env" | "busybox")) {
        program = words.next().map(base);
    }
    matches!(program.as_deref(), Some("sh" | "bash" | "dash" | "ksh" | "ash"))
}

/// The image formats the static VM is booted as, besides kernel+initrd.
pub const FORMATS: [Format; 3] = [Format::Qcow2Bios, Format::RawEfi, Format::IsoEfi];

/// The repository's second example app.
const SECOND_APP: &str = "compose/hello-py.yml";
/// An app whose services wait for each other (completed, healthy) and restart.
const ORDERED: &str = "compose/ordered.yml";
/// A third routed site for the default app.
const THIRD_SITE: &str = "compose/third-site.yml";
/// The default app with nginx as its Host router (the plain VM's app).
const NGINX_ROUTER: &str = "compose/nginx-router.yml";
/// Secrets and configs from a file and inline, with owners and modes.
const SECRETS: &str = "compose/secrets.yml";
/// nginx configured from the environment, by templates and by envsubst.
const NGINX_TEMPLATES: &str = "compose/nginx-templates.yml";
/// An image that deletes files of its base.
const WHITEOUTS: &str = "compose/whiteouts.yml";
/// An express app on the node stand-in.
const NODE_APP: &str = "compose/node-app.yml";
/// A web app with postgres and redis behind it.
const WEB_DB: &str = "compose/webdb.yml";
/// A Python app with the mongo stand-in behind it.
const MONGO_APP: &str = "compose/mongo-app.yml";
/// A PHP page on `php:8-apache` with mariadb behind it.
const PHP_MYSQL: &str = "compose/php-mysql.yml";
/// A Dockerfile for `python:3.7-alpine` (apk, adduser -D, USER 1000).
const ALPINE_PY: &str = "compose/alpine-py.yml";
/// A Maven-built Java app on the maven and eclipse-temurin stand-ins.
const JAVA_APP: &str = "compose/java-app.yml";
/// A FastAPI app on the uvicorn-gunicorn-fastapi stand-in.
const FASTAPI_APP: &str = "compose/fastapi-app.yml";
/// An app whose worker fails after the app came up.
const EXITS: &str = "compose/exits.yml";
/// A counter of boots kept on a named volume, and what its second boot says.
const VOLUMES: &str = "compose/volumes.yml";
const VOLUMES_SAID: &str = "boots: 2";
/// What the compose runner says of it, which the boot test must stop at.
const EXITS_SAID: &str = "compose: service worker exited with status 3";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::TestDir;

    #[test]
    fn shell_scripts_by_name_or_by_their_interpreter() {
        for (name, head) in [
            ("getty.sh", ""),
            ("init", "#!/bin/sh\nset -e\n"),
            ("rc", "#!/bin/bash -eu\n"),
            ("start", "#!/usr/bin/env sh\n"),
            ("docker-start", "#!/usr/bin/busybox sh\n"),
            ("init", "#! /bin/busybox sh"),
            ("udhcpc.script", "#!/bin/dash\n"),
        ] {
            assert!(is_shell_script(name, head.as_bytes()), "{name}: {head:?}");
        }
        for (name, head) in [
            ("Dockerfile", "FROM scratch\n"),
            ("serve.py", "#!/usr/bin/env python3\n"),
            ("traefik", "\x7fELF\x02\x01"),
            ("run", "#!/usr/bin/busybox httpd\n"),
            ("notes", "# #!/bin/sh\n"),
            ("shell.rs", "#![allow(dead_code)]\n"),
        ] {
            assert!(!is_shell_script(name, head.as_bytes()), "{name}: {head:?}");
        }
    }

    #[test]
    fn scripts_are_found_in_every_folder_but_cargo_output() {
        let root = TestDir::new("scripts");
        let file = |rel: &str, text: &str| {
            let path = root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        };
        file("images/init/rc.init", "#!/bin/sh\n");
        file("images/init/Dockerfile", "FROM scratch\n");
        file("images/getty/getty.sh", "echo\n");
        file("images/crun/etc/init.d/010-onboot", "#!/bin/sh\n");
        file("images/init/lkc-service/target/debug/build.sh", "#!/bin/sh\n");
        file("images/init/lkc-service/src/main.rs", "fn main() {}\n");
        file("images/empty", "");
        std::os::unix::fs::symlink("rc.init", root.join("images/init/rc.link")).unwrap();
        let found = shell_scripts(&root, Path::new("images")).unwrap();
        assert_eq!(
            found,
            [
                "images/crun/etc/init.d/010-onboot",
                "images/getty/getty.sh",
                "images/init/rc.init"
            ]
            .map(PathBuf::from)
        );
    }
}
