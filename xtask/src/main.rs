//! `cargo xtask`: builds LinuxKit's compose example from source and boots it.
//!
//! In the default `local` profile every image the VM needs is made here, from
//! Debian packages and Go modules, without a Docker engine or a registry: the
//! recipes are folders under `images/`, the pins are `pins.yml`, the LinuxKit
//! YAML is written to `linuxkit/`, outputs go to `dist/`, and everything fetched
//! is cached outside the repository (`$LINUXKIT_COMPOSE_CACHE`).

mod apps;
mod bench;
mod boot;
mod child;
mod compose;
mod cpio;
mod gotools;
mod host;
mod http;
mod images;
mod imagestore;
mod linuxkit;
mod methods;
mod oci;
mod phases;
mod pins;
mod project;
mod qemu;
mod registry;
mod test_boot;
mod ui;

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use xshell::Shell;

/// Build and boot LinuxKit VMs that run a compose application.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
struct Cli {
    /// Never install missing Debian packages; print the apt-get command instead.
    #[arg(long, global = true)]
    no_install: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the host programs the build needs, their versions, and how to install missing ones.
    Doctor,
    /// Build the static method's VM: compose file and image tarballs inside, no registry needed.
    Static {
        #[command(flatten)]
        compose: methods::ComposeOpt,
    },
    /// Boot the static VM on this terminal, guest port 80 on 127.0.0.1:PORT (Ctrl-A X quits).
    RunStatic(RunArgs),
    /// Build the dynamic method's VM: only the compose file inside; images are pulled at boot.
    Dynamic {
        #[command(flatten)]
        compose: methods::ComposeOpt,
        #[command(flatten)]
        registry: methods::RegistryOpt,
    },
    /// Boot the dynamic VM on this terminal; without --registry a local registry serves the images.
    RunDynamic {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        registry: methods::RegistryOpt,
    },
    /// Build every compose service that has `build:`, tagged with its `image:`.
    Apps {
        #[command(flatten)]
        compose: methods::ComposeOpt,
    },
    /// Save every image the compose file uses as a `docker load`-able tarball in dist/images/.
    Images {
        #[command(flatten)]
        compose: methods::ComposeOpt,
    },
    /// Build the VM's own images (kernel, init, runc, …) into the LinuxKit cache.
    VmImages {
        /// Image recipe names under images/ (default: all in pins.yml).
        names: Vec<String>,
    },
    /// Regenerate the LinuxKit YAML under linuxkit/ from the recipes, pins and compose file (builds nothing).
    Yaml,
    /// Build the smoke VM (nginx serving one page) into dist/smoke-{kernel,initrd.img}.
    Smoke,
    /// Boot the smoke VM with its serial console on this terminal (Ctrl-A X quits).
    RunSmoke {
        /// Host port on 127.0.0.1 forwarded to the guest's port 80.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        #[command(flatten)]
        vm: boot::VmOpts,
    },
    /// Build, boot headless, check over HTTP, report the time to the first answers.
    TestBoot(test_boot::Args),
    /// Boot each VM several times and print the time to the first HTTP 200 (min, median, max).
    Bench(bench::Args),
    /// Everything CI runs: `cargo test` for the whole workspace, then every boot test.
    Test {
        #[command(flatten)]
        vm: boot::VmOpts,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    compose: methods::ComposeOpt,
    /// Host port on 127.0.0.1 forwarded to the guest's port 80.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    #[command(flatten)]
    vm: boot::VmOpts,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let sh = Shell::new()?;
    let root = project_root();
    sh.change_dir(&root);
    let project = project::Project::new(root, !cli.no_install)?;
    match cli.command {
        Command::Doctor => host::doctor(&sh, &project),
        Command::VmImages { names } => {
            let names = if names.is_empty() {
                project.pins.images.keys().cloned().collect()
            } else {
                names
            };
            for name in names {
                images::ensure(&sh, &project, &name)?;
            }
            Ok(())
        }
        Command::Static { compose } => {
            let app = compose.load(&project)?;
            methods::build(&sh, &project, methods::Method::Static, &app, None, None).map(|_| ())
        }
        Command::Dynamic { compose, registry } => {
            let app = compose.load(&project)?;
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
            apps::build(&sh, &project, &app, apps::builder(&sh)).map(|_| ())
        }
        Command::Images { compose } => {
            let app = compose.load(&project)?;
            let builder = apps::builder(&sh);
            let ids = apps::build(&sh, &project, &app, builder)?;
            apps::save(&sh, &project, &app, &ids, builder).map(|_| ())
        }
        Command::Yaml => {
            linuxkit::smoke_vm().write_yaml(&project)?;
            for method in [methods::Method::Static, methods::Method::Dynamic] {
                methods::vm(method, None).write_yaml(&project)?;
            }
            Ok(())
        }
        Command::Smoke => linuxkit::build(&sh, &project, &linuxkit::smoke_vm()).map(|_| ()),
        Command::RunSmoke { port, vm } => run_smoke(&sh, &project, port, &vm),
        Command::TestBoot(args) => test_boot::run(&sh, &project, &args),
        Command::Test { vm } => test_all(&sh, &project, vm),
        Command::Bench(args) => bench::run(&sh, &project, &args),
    }
}

fn run_smoke(sh: &Shell, project: &project::Project, port: u16, opts: &boot::VmOpts) -> Result<()> {
    let artifacts = linuxkit::build(sh, project, &linuxkit::smoke_vm())?;
    boot::interactive(opts, &artifacts, port, || {
        println!("smoke VM: http://127.0.0.1:{port}/ once nginx is up.")
    })
}

fn test_all(sh: &Shell, project: &project::Project, vm: boot::VmOpts) -> Result<()> {
    let step = ui::step("cargo fmt --check, cargo clippy, cargo test --workspace");
    xshell::cmd!(sh, "cargo fmt --all --check")
        .run()
        .context("formatting: run `cargo fmt --all`")?;
    xshell::cmd!(
        sh,
        "cargo clippy --workspace --all-targets --locked --quiet -- -D warnings"
    )
    .run()
    .context("clippy")?;
    xshell::cmd!(sh, "cargo test --workspace --locked")
        .run()
        .context("unit and snapshot tests")?;
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
