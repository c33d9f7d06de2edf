//! `cargo xtask test`: everything CI runs, in the order that fails fastest:
//! shellcheck on the VM's shell scripts, formatting, clippy, `cargo test`,
//! `go test` of this repository's Go programs, then every boot test.

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
    building::{gotools, host},
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
    go_tests(sh, project)?;
    let app = crate::building::apps::default_app(project)?;
    let boot = |method, unreachable_registry| test_boot::Options {
        method,
        registry: None,
        unreachable_registry,
        timeout: None,
        hosts: vec![],
        ports: vec![],
        gets: vec![],
        restart: None,
        expect_after_restart: None,
        data_disk: None,
        vm: vm.clone(),
    };
    // The smoke VM, then the default app: static as kernel+initrd, and as a
    // host boots it (disk images and ISO below), and dynamic. Its native boot
    // is the three-site one below, which runs the same app and one more site.
    test_boot::run(sh, project, &boot(None, false), &app)?;
    test_boot::run(sh, project, &boot(Some(Method::Static), false), &app)?;
    // The static VM as a host boots it: the same checks, from its disk
    // images (SeaBIOS + syslinux from a qcow2 virtio disk, OVMF + the unified
    // kernel image from a raw GPT disk) and from its ISO as a CD-ROM. These
    // are release VMs (`--release`): each boot also checks that no shell
    // started on the console.
    let release = Project::new(project.install)?.into_release();
    for format in FORMATS {
        let mut args = boot(Some(Method::Static), false);
        args.vm.format = format;
        test_boot::run(sh, &release, &args, &app)?;
    }
    test_boot::run(sh, project, &boot(Some(Method::Dynamic), false), &app)?;
    test_boot::run(sh, project, &boot(Some(Method::Dynamic), true), &app)?;
    // Compose files merged in order (`-f`), as project `name` (`-p`) if given.
    let load_as = |name: Option<&str>, files: &[&str]| {
        let source = compose::Source {
            files: files.iter().map(|f| project.root.join(f)).collect(),
            project_name: name.map(String::from),
            ..Default::default()
        };
        crate::building::apps::load(project, &source)
    };
    let load = |files: &[&str]| load_as(None, files);
    // The apps made of stand-ins boot in the memory the default app needs
    // (README: 512 MiB native, 1 GiB static and dynamic), not the suite's 3 GiB.
    let lean = |method| {
        let mut options = boot(Some(method), false);
        options.vm.memory = options.vm.memory.min(method.memory());
        options
    };
    // A third routed site merged over the default file (compose's own -f merge):
    // its own build context, page and Host rule, converted like the others.
    let three = load(&[compose::DEFAULT, THIRD_SITE])?;
    test_boot::run(sh, project, &boot(Some(Method::Native), false), &three)?;
    // Start order, health, restarts and named volumes under the native runner.
    let ordered = load(&[ORDERED])?;
    test_boot::run(sh, project, &boot(Some(Method::Native), false), &ordered)?;
    // The plain VM's app: nginx routing by Host in traefik's place, whose
    // Host names only `--host` can tell (they are in nginx's configuration).
    let nginx_router = load(&[NGINX_ROUTER])?;
    let options = test_boot::Options {
        hosts: ["a.localhost", "b.localhost"].map(String::from).to_vec(),
        ..boot(Some(Method::Native), false)
    };
    test_boot::run(sh, project, &options, &nginx_router)?;
    // What the stand-ins and the methods must carry as Docker does, as one
    // app (compose's -f merge; each file boots alone too) under static and
    // native, every published port answering: the Python app with its
    // bind-mounted file, built from a Dockerfile as `docker init` writes it;
    // secrets and configs (owner and mode included); nginx
    // configured by its templates and by envsubst from bash; a layer that
    // deletes files of its base; Dockerfiles written for Alpine (apk,
    // busybox's adduser) on the python and alpine stand-ins, one waiting for
    // the other's BusyBox wget healthcheck; express installed by npm in a RUN
    // step on `node:22-alpine` (the Node.js 24 stand-in), its TypeScript run
    // by `node index.ts` as the image's `node` user.
    let features = load_as(Some("features"), &FEATURES)?;
    test_boot::run(sh, project, &lean(Method::Static), &features)?;
    test_boot::run(sh, project, &lean(Method::Native), &features)?;
    // An app on a full tag (`node:20`, its compilers in the image) under
    // native in 512 MiB: its initrd would not unpack there (the boot stopped
    // at "Initramfs unpacking failed: write error"), so the services' roots
    // go on a read-only disk of their own, which the VM finds and mounts.
    let addon = load(&[NODE_ADDON])?;
    test_boot::run(sh, project, &lean(Method::Native), &addon)?;
    // Images from a registry (`--images registry`): one no stand-in resembles,
    // pushed to a registry on this machine, gzip and zstd, pulled by digest.
    crate::run::pulls::run(sh, project, &|method| boot(Some(method), false))?;
    // A web app with its database and cache (postgres with its password from a
    // compose secret, redis): a 2xx means a request reached both. Booted
    // twice on one data disk under native, QEMU killed after the first boot's
    // page (a power cut): each database must still hold what it acknowledged.
    // Under dynamic, with a clean stop: the VM pulls all three images at
    // its first boot onto the data disk, where its engine keeps its whole
    // store; the second boot has them, and starts without the first boot's
    // containers.
    let webdb = load(&[WEB_DB])?;
    let options = test_boot::Options {
        restart: Some(Restart::Kill),
        expect_after_restart: Some(WEB_DB_SAID.into()),
        ..lean(Method::Native)
    };
    test_boot::run(sh, project, &options, &webdb)?;
    let options = test_boot::Options {
        restart: Some(Restart::Clean),
        expect_after_restart: Some(WEB_DB_SAID.into()),
        ..lean(Method::Dynamic)
    };
    let timings = test_boot::run(sh, project, &options, &webdb)?;
    second_boot_says(WEB_DB, Method::Dynamic, &timings, CONTAINERS_REMOVED)?;
    // An app on a full tag under dynamic in 1 GiB: its pulled images unpack
    // onto the data disk (in the VM's memory, the pull did not finish).
    test_boot::run(sh, project, &lean(Method::Dynamic), &addon)?;
    // Named volumes on the data disk: booted, stopped cleanly through the
    // ACPI power button (the counter ignores SIGTERM: the stop must end at
    // its grace period), booted again on the same disk, the counts the first
    // boot committed are there (on a named volume, and in a project folder
    // bound read-write), and the anonymous volume is new (the first
    // boot's, on the data disk, is removed at the second boot, and said).
    let volumes = load(&[VOLUMES])?;
    for (method, removed) in [
        (Method::Static, ANONYMOUS_REMOVED),
        (Method::Native, NATIVE_ANONYMOUS_REMOVED),
    ] {
        let options = test_boot::Options {
            restart: Some(Restart::Clean),
            expect_after_restart: Some(VOLUMES_SAID.into()),
            ..boot(Some(method), false)
        };
        let timings = test_boot::run(sh, project, &options, &volumes)?;
        second_boot_says(VOLUMES, method, &timings, removed)?;
    }
    // A data disk that holds something else is never formatted: the VM
    // says what it found and starts no compose service.
    foreign_disk_refused(sh, project, &boot(Some(Method::Native), false), &volumes)?;
    // The runtimes and databases of the sample apps, as one static app:
    // a Python app on the mongo stand-in (FerretDB) with its root user from
    // MONGO_INITDB_ROOT_* (a 2xx means a document was written and read back);
    // a page on the php:apache stand-in built by docker-php-ext-install,
    // reading a row from mariadb through mysqli and PDO; a multi-stage Maven
    // build on `maven:3-eclipse-temurin-17` run on `eclipse-temurin:17-jre`;
    // the uvicorn-gunicorn-fastapi stand-in's /start.sh serving /app/main.py;
    // a Go app built on golang:1.22-alpine, run on alpine:3.20, counting its
    // visits in postgres:16-alpine; express on node:20 (the full stand-in)
    // with bcrypt 5, whose native addon npm builds with node-gyp, g++ and the
    // image's own Node.js headers (a 2xx means the addon checked a password);
    // pika publishing to `rabbitmq:3-management-alpine` as the user
    // RABBITMQ_DEFAULT_* made (a 2xx means the message came back), its
    // management UI answering.
    let runtimes = load_as(Some("runtimes"), &RUNTIMES)?;
    // At the suite's memory: the images' layers go on the roots disk (in the
    // initrd they would need 2.7 GiB), but the services (a JVM, MariaDB, two
    // PostgreSQL servers, RabbitMQ, FerretDB, ...) need more than 1 GiB once
    // they run.
    test_boot::run(sh, project, &boot(Some(Method::Static), false), &runtimes)?;
    // A service that exits after the app came up: the boot test stops at the
    // runner's line, with the status and the service's last output; not at
    // the exit of a service its restart policy starts again.
    let exits = load(&[EXITS])?;
    for (method, said) in [(Method::Static, EXITS_SAID), (Method::Native, NATIVE_EXITS_SAID)] {
        match test_boot::run(sh, project, &boot(Some(method), false), &exits) {
            Err(e) if format!("{e:#}").contains(said) && format!("{e:#}").contains(EXITS_REASON) => {
                ui::note(format!("{EXITS} ({method:?}): stopped at `{said}`"))
            }
            Err(e) => {
                return Err(e).context(format!(
                    "{EXITS} ({method:?}): want the boot to stop at `{said}`, saying `{EXITS_REASON}`"
                ))
            }
            Ok(_) => bail!("{EXITS} ({method:?}): the boot passed, but its worker service exits with status 3"),
        }
    }
    checked_in_files_unchanged(sh, project)
}

/// The second boot of a restart test (`file` under `method`) said `line` on
/// its console.
fn second_boot_says(file: &str, method: Method, timings: &test_boot::Timings, line: &str) -> Result<()> {
    let log = timings
        .second
        .as_ref()
        .and_then(|second| second.serial.as_ref())
        .context("the restart test gave no second boot's serial log")?;
    if !fs::read_to_string(log)?.contains(line) {
        bail!(
            "{file} ({method:?}, second boot): {} does not say `{line}`",
            log.display()
        );
    }
    ui::note(format!("{file} ({method:?}): the second boot said `{line}`"));
    Ok(())
}

/// Boot `app` (`options`) on a data disk whose first MiB is not blank and
/// holds no file system: the boot must stop at the VM's refusal, naming what
/// it found, and leave the disk's bytes as they were.
fn foreign_disk_refused(sh: &Shell, project: &Project, options: &test_boot::Options, app: &compose::App) -> Result<()> {
    let dir = project.dist.join("tmp");
    fs::create_dir_all(&dir)?;
    let disk = dir.join("foreign-data.img");
    let bytes: Vec<u8> = b"not a file system: somebody's bytes\n".repeat(64);
    fs::write(&disk, &bytes).with_context(|| format!("writing {}", disk.display()))?;
    let file = fs::OpenOptions::new().write(true).open(&disk)?;
    file.set_len(1 << 30)?;
    drop(file);
    let options = test_boot::Options {
        data_disk: Some(disk.clone()),
        ..options.clone()
    };
    let result = test_boot::run(sh, project, &options, app);
    let head = fs::read(&disk).map(|all| all[..bytes.len()].to_vec());
    fs::remove_file(&disk)?;
    match result {
        Err(e) if format!("{e:#}").contains(FOREIGN_DISK_SAID) => {
            if head? != bytes {
                bail!(
                    "{}: the VM refused the foreign data disk, but changed its bytes",
                    disk.display()
                );
            }
            ui::note(format!(
                "a foreign data disk: the VM said `{FOREIGN_DISK_SAID}` and started nothing"
            ));
            Ok(())
        }
        Err(e) => Err(e).context(format!(
            "a foreign data disk: want the boot to stop at `{FOREIGN_DISK_SAID}`"
        )),
        Ok(_) => {
            bail!("a foreign data disk: the app served, so the VM used (or formatted) a disk that held other data")
        }
    }
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

/// `go test` for each of this repository's own Go programs (pins.yml `go:`
/// entries with a `source`), with the pinned FerretDB as `$FERRETDB`: the
/// mongo stand-in's shell is tested against the server it runs beside.
fn go_tests(sh: &Shell, project: &Project) -> Result<()> {
    let go = host::path(project, "go")?;
    let ferretdb = gotools::ensure(sh, project, "ferretdb")?;
    for (name, tool) in &project.pins.go {
        let Some(dir) = &tool.source else { continue };
        let step = ui::step(format!("go test ({dir}/)"));
        let _env = [
            sh.push_env("FERRETDB", &ferretdb),
            sh.push_env("GOFLAGS", "-mod=readonly"),
            sh.push_env("GOWORK", "off"),
            sh.push_env("CGO_ENABLED", "0"),
        ];
        let _dir = sh.push_dir(project.root.join(dir));
        exec::run(cmd!(sh, "{go} test -count=1 ./...")).with_context(|| format!("the Go tests of {name} ({dir}/)"))?;
        step.done();
    }
    Ok(())
}

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

/// An app whose services wait for each other (completed, healthy) and restart.
const ORDERED: &str = "compose/ordered.yml";
/// A third routed site for the default app.
const THIRD_SITE: &str = "compose/third-site.yml";
/// The default app with nginx as its Host router (the plain VM's app).
const NGINX_ROUTER: &str = "compose/nginx-router.yml";
/// What the stand-ins and methods carry as Docker does, booted as one app:
/// the repository's second example app (Python, a bind-mounted file, a
/// Dockerfile as `docker init` writes one: Debian's adduser, a bind mount at
/// a target relative to the WORKDIR);
/// secrets and configs from a file and inline, with owners and modes; nginx
/// configured from the environment, by templates and by envsubst; an image
/// that deletes files of its base; Dockerfiles for `python:3.7-alpine` and
/// `alpine:3.20` (apk, adduser -D, USER, BusyBox's wget as a healthcheck
/// waited for); an express app in TypeScript on `node:22-alpine` (Node.js 24).
const FEATURES: [&str; 6] = [
    "compose/hello-py.yml",
    "compose/secrets.yml",
    "compose/nginx-templates.yml",
    "compose/whiteouts.yml",
    "compose/alpine-py.yml",
    "compose/node-app.yml",
];
/// A web app with postgres and redis behind it.
const WEB_DB: &str = "compose/webdb.yml";
const NODE_ADDON: &str = "compose/node-addon.yml";
/// The runtimes and databases of the sample apps, booted as one app: a Python
/// app installed by uv with the mongo stand-in behind it; a PHP page on
/// `php:8-apache` with mariadb behind it; a Maven-built Java app on the maven
/// and eclipse-temurin stand-ins; a FastAPI app on the
/// uvicorn-gunicorn-fastapi stand-in; a Go app on the golang and alpine
/// stand-ins, and again on distroless, with postgres behind it; an express
/// app on `node:20` whose bcrypt addon npm compiles; a Python app that sends
/// a message through the rabbitmq stand-in and gets it back.
const RUNTIMES: [&str; 7] = [
    "compose/mongo-app.yml",
    "compose/php-mysql.yml",
    "compose/java-app.yml",
    "compose/fastapi-app.yml",
    "compose/go-postgres.yml",
    NODE_ADDON,
    "compose/rabbitmq-app.yml",
];
/// An app whose worker fails after the app came up, and whose web service
/// fails once and is restarted.
const EXITS: &str = "compose/exits.yml";
/// A counter of boots kept on a named volume, and what its second boot says.
const VOLUMES: &str = "compose/volumes.yml";
const VOLUMES_SAID: &str = "boots: 2, project: 2, scratch: new";
/// What the static VM's data disk step says at its second boot of
/// compose/volumes.yml, whose counter has an anonymous volume.
const ANONYMOUS_REMOVED: &str = "data: removed 1 anonymous volume(s) an earlier boot left in /var/lib/docker/volumes";
/// What the dynamic VM's data disk step says at the second boot of
/// compose/webdb.yml: its engine's store is on the disk, but for the first
/// boot's three containers.
const CONTAINERS_REMOVED: &str =
    "data: removed the 3 container(s) an earlier boot's engine left in /var/lib/docker: its images stay";
/// The same under native, which keeps them in a folder of its own.
const NATIVE_ANONYMOUS_REMOVED: &str =
    "data: removed 1 anonymous volume(s) an earlier boot left in /var/lib/native/anonymous";
/// What compose/webdb.yml's page says on a second boot when both its
/// databases kept what the first boot wrote.
const WEB_DB_SAID: &str = "boots remembered: postgres 2, redis 2";
/// What the VM's data step says of a disk that is neither blank nor its own.
const FOREIGN_DISK_SAID: &str = "holds data that is not this project's";
/// What the compose runner says of it, which the boot test must stop at.
const EXITS_SAID: &str = "compose: service worker exited with status 3";
/// The same from the native runner.
const NATIVE_EXITS_SAID: &str = "service: worker exited with status 3";
/// The worker's last output, which the boot test's failure must give.
const EXITS_REASON: &str = "worker: lost its database";

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
