//! `cargo xtask`: builds LinuxKit's compose example from source and boots it.
//!
//! In the default `local` profile every image the VM needs is made here, from
//! Debian packages and Go modules, without a Docker engine or a registry: the
//! recipes are folders under `images/`, the pins are `pins.yml`, the LinuxKit
//! YAML is written to `linuxkit/`, outputs go to `dist/`, and everything fetched
//! is cached outside the repository (`$LINUXKIT_COMPOSE_CACHE`).

mod app;
mod base;
mod build;
mod cli;
mod run;
mod vm;

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::Parser;
use xshell::Shell;

use base::{exec, project, ui};
use build::{apps, host, images};
use cli::{Cli, Command};
use run::{bench, boot, test_boot};
use vm::{linuxkit, methods};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            ui::err(format_args!("error: {err:#}"));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    // Every flag is checked before anything is built or installed.
    cli.command.validate()?;
    let sh = Shell::new()?;
    let root = project_root();
    sh.change_dir(&root);
    let project = project::Project::new(root, !cli.no_install)?;
    ui::init(project.dist.join("logs"), cli.verbose);
    // So is every program the command will run.
    host::require_all(&sh, &project, &cli.command.needs())?;
    match cli.command {
        Command::Doctor { fix } => host::doctor(&sh, &project, fix),
        Command::VmImages { names } => {
            let names = if names.is_empty() {
                project.pins.images.keys().cloned().collect()
            } else {
                names
            };
            let _lock = project.lock()?;
            for name in names {
                images::ensure(&sh, &project, &name)?;
            }
            Ok(())
        }
        Command::Static { compose } => {
            let app = compose.load(&project)?;
            let _lock = project.lock()?;
            methods::build(&sh, &project, methods::Method::Static, &app, None, None).map(|_| ())
        }
        Command::Dynamic { compose, registry } => {
            let app = compose.load(&project)?;
            let _lock = project.lock()?;
            let registry = registry.registry.as_ref();
            methods::build(&sh, &project, methods::Method::Dynamic, &app, registry, None).map(|_| ())
        }
        Command::RunDynamic { run, registry } => {
            let app = run.compose.load(&project)?;
            let registry = registry.registry.as_ref();
            methods::run(
                &sh,
                &project,
                methods::Method::Dynamic,
                &app,
                registry,
                run.port,
                &run.vm,
            )
        }
        Command::RunStatic(args) => {
            let app = args.compose.load(&project)?;
            methods::run(&sh, &project, methods::Method::Static, &app, None, args.port, &args.vm)
        }
        Command::Apps { compose } => {
            let app = compose.load(&project)?;
            let _lock = project.lock()?;
            apps::build(&sh, &project, &app, apps::builder(&sh)).map(|_| ())
        }
        Command::Images { compose } => {
            let app = compose.load(&project)?;
            let _lock = project.lock()?;
            let builder = apps::builder(&sh);
            let ids = apps::build(&sh, &project, &app, builder)?;
            apps::save(&sh, &project, &app, &ids, builder).map(|_| ())
        }
        Command::Yaml => {
            let _lock = project.lock()?;
            linuxkit::smoke_vm().write_yaml(&project)?;
            let app = methods::default_app(&project)?;
            for method in [methods::Method::Static, methods::Method::Dynamic] {
                methods::vm(&project, method, &app, None).write_yaml(&project)?;
            }
            Ok(())
        }
        Command::Smoke => {
            let _lock = project.lock()?;
            linuxkit::build(&sh, &project, &linuxkit::smoke_vm()).map(|_| ())
        }
        Command::RunSmoke { port, vm } => run_smoke(&sh, &project, port, &vm),
        Command::TestBoot(args) => test_boot::run(&sh, &project, &args),
        Command::Test { vm } => test_all(&sh, &project, vm),
        Command::Bench(args) => bench::run(&sh, &project, &args),
    }
}

fn run_smoke(sh: &Shell, project: &project::Project, port: u16, opts: &boot::VmOpts) -> Result<()> {
    let artifacts = boot::pinned(project, || linuxkit::build(sh, project, &linuxkit::smoke_vm()))?;
    boot::interactive(project, opts, &artifacts, port, || {
        ui::say!("smoke VM: http://127.0.0.1:{port}/ once nginx is up.")
    })
}

fn test_all(sh: &Shell, project: &project::Project, vm: boot::VmOpts) -> Result<()> {
    let step = ui::step("cargo fmt --check");
    exec::run(xshell::cmd!(sh, "cargo fmt --all --check")).context("formatting: run `cargo fmt --all`")?;
    step.done();
    let step = ui::step("cargo clippy");
    exec::run(xshell::cmd!(
        sh,
        "cargo clippy --workspace --all-targets --locked -- -D warnings"
    ))
    .context("clippy")?;
    step.done();
    let step = ui::step("cargo test --workspace");
    exec::run(xshell::cmd!(sh, "cargo test --workspace --locked")).context("unit and snapshot tests")?;
    step.done();
    let smoke = test_boot::Args {
        smoke: true,
        method: None,
        compose: methods::ComposeOpt { path: None },
        registry: methods::RegistryOpt { registry: None },
        unreachable_registry: false,
        timeout: None,
        vm,
    };
    let method = |m| test_boot::Args {
        smoke: false,
        method: Some(m),
        ..smoke.clone()
    };
    test_boot::run(sh, project, &smoke)?;
    test_boot::run(sh, project, &method(methods::Method::Static))?;
    test_boot::run(sh, project, &method(methods::Method::Dynamic))?;
    test_boot::run(
        sh,
        project,
        &test_boot::Args {
            unreachable_registry: true,
            ..method(methods::Method::Dynamic)
        },
    )
}

/// The workspace root: xtask/'s parent.
fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}
