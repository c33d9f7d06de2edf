//! `cargo xtask test`: everything CI runs, in the order that fails fastest:
//! formatting, clippy, `cargo test`, then every boot test.

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::{
    app::compose,
    base::{exec, project::Project, ui},
    disk::Format,
    run::{boot::VmOpts, test_boot},
    vm::method::Method,
};

pub fn run(sh: &Shell, project: &Project, vm: VmOpts) -> Result<()> {
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
