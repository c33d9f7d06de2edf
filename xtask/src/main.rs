//! `cargo xtask`: builds LinuxKit's compose example from source and boots it.
//!
//! In the default `local` profile every image the VM needs is made here, from
//! Debian packages and Go modules, without a Docker engine or a registry: the
//! recipes are folders under `images/`, the pins are `pins.yml`, the LinuxKit
//! YAML is written to `linuxkit/`, outputs go to `dist/`, and everything fetched
//! is cached outside the repository (`$LINUXKIT_COMPOSE_CACHE`).

mod app;
mod base;
mod building;
mod cli;
mod disk;
mod moby;
mod native;
mod run;
mod stages;
mod vm;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use xshell::Shell;

use base::{exec, project::Project, ui};
use building::{apps, doctor, host, images, registry::Address};
use cli::{Cli, Command, ComposeArg, FormatArg, RunArgs, VolumesAction};
use run::{bench, boot::VmOpts, data, session, suite, test_boot, volumes};
use vm::{
    linuxkit,
    method::{Method, Registries},
};

fn main() -> ExitCode {
    // Before any thread starts (it sets the environment).
    exec::sbin_on_path();
    // Before any thread starts: Ctrl-C, `timeout` and `kill` stop every program the xtask started.
    exec::handle_stop_signals();
    base::files::run_started();
    let cli = Cli::parse();
    let result = run(cli);
    // A stop signal ends the command with 128+signal, whatever it was doing.
    exec::wait_if_stopping();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            ui::err(format_args!("error: {err:#}"));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    // Same inputs, same bytes: what the build creates has the same modes
    // whatever the caller's umask.
    // SAFETY: umask(2) only sets this process's file mode creation mask.
    unsafe { libc::umask(0o022) };
    // Every flag is checked before anything is built or installed.
    cli.command.validate()?;
    let images = cli.images()?;
    // An ordinary user's build and boot run in a user namespace of their own.
    if cli.command.builds_or_boots() {
        base::userns::enter()?;
    }
    let mut project = Project::new(!cli.no_install)?;
    project.images = images;
    let deployable = cli.command.deployable_format();
    if cli.release || deployable.is_some() {
        project = project.into_release();
    }
    let sh = Shell::new()?;
    sh.change_dir(&project.root);
    ui::init(project.dist.join("logs"), cli.verbose);
    if let (Some(format), false) = (deployable, cli.release) {
        ui::note(format!(
            "{format} is a deployable format: a release VM, without a shell on its console, in dist/release/"
        ));
    }
    // So is every program the command will run.
    host::require_all(&sh, &project, &cli.command.needs())?;
    match cli.command {
        Command::Doctor { fix } => doctor::run(
            &sh,
            &project,
            fix,
            &cli::Command::format_needs(&disk::format::ALL, true),
        ),
        Command::Lock { compose, only } => {
            // The app is read (and checked) before the long Debian refresh.
            let app = match project.images.registry() {
                Some(_) => Some(compose.load(&project)?),
                None => None,
            };
            let _lock = project.lock()?;
            building::lock::refresh(&sh, &project, &only)?;
            match app {
                Some(app) => building::app_pulls::relock(&project, &app),
                None => Ok(()),
            }
        }
        Command::VmImages { names } => {
            let _lock = project.lock()?;
            images::build_all(&sh, &project, names)
        }
        Command::Static { compose, format } => build(&sh, &project, Method::Static, &compose, None, format),
        Command::Dynamic {
            compose,
            registry,
            format,
        } => build(
            &sh,
            &project,
            Method::Dynamic,
            &compose,
            registry.registry.as_ref(),
            format,
        ),
        Command::Native { compose, format } => build(&sh, &project, Method::Native, &compose, None, format),
        Command::RunStatic(args) => run_vm(&sh, &project, Method::Static, &args, None),
        Command::RunDynamic { run, registry } => {
            run_vm(&sh, &project, Method::Dynamic, &run, registry.registry.as_ref())
        }
        Command::RunNative(args) => run_vm(&sh, &project, Method::Native, &args, None),
        Command::Apps { compose } => {
            let app = compose.load(&project)?;
            let _lock = project.lock()?;
            apps::build(&sh, &project, &app, apps::builder(&sh)).map(|_| ())
        }
        Command::Images { compose } => {
            let app = compose.load(&project)?;
            let _lock = project.lock()?;
            apps::build_and_save(&sh, &project, &app)?;
            vm::sums::write(&project)
        }
        Command::Yaml => {
            let _lock = project.lock()?;
            vm::method::write_checked_in(&sh, &project)
        }
        Command::Smoke { format } => {
            let _lock = project.lock()?;
            let built = linuxkit::build_smoke(&sh, &project)?;
            disk::build(&sh, &project, "smoke", &built, format.format)
        }
        Command::RunSmoke { port, vm } => session::run_smoke(&sh, &project, port, &vm.options(&[])),
        Command::TestBoot(args) => {
            let app = args.compose.load(&project)?;
            test_boot::run(&sh, &project, &args.options(), &app).map(|_| ())
        }
        Command::Bench(args) => {
            let app = args.compose.load(&project)?;
            bench::run(&sh, &project, &args.options(), &app)
        }
        Command::Repro { method, dir, user } => run::repro::run(&sh, &project, method, dir, user.as_deref()),
        Command::Test { vm } => suite::run(&sh, &project, vm.options(&[])),
        Command::Volumes { action } => match action.unwrap_or(VolumesAction::Ls) {
            VolumesAction::Ls => volumes::list(),
            VolumesAction::Rm(args) => volumes::remove(&args.target(&project)?),
        },
    }
}

/// `static`, `dynamic`, `native`: build the method's VM of the app, then its `--format`.
fn build(
    sh: &Shell,
    project: &Project,
    method: Method,
    compose: &ComposeArg,
    registry: Option<&Address>,
    format: FormatArg,
) -> Result<()> {
    let app = compose.load(project)?;
    let _lock = project.lock()?;
    let registries = Registries {
        baked_in: registry,
        push_to: None,
    };
    let built = method.build(sh, project, &app, registries)?;
    disk::build(sh, project, method.vm_name(), &built, format.format)
}

/// `run-static`, `run-dynamic`, `run-native`: build the method's VM and boot it here.
fn run_vm(sh: &Shell, project: &Project, method: Method, args: &RunArgs, registry: Option<&Address>) -> Result<()> {
    let app = args.compose.load(project)?;
    let path = match &args.data_disk {
        Some(path) => path.clone(),
        None => data::default_path(&app.project, data::method_name(method))?,
    };
    let disk = data::prepare(&path, args.data_size, args.fresh_data)?;
    if let Some(bytes) = disk.removed {
        ui::note(format!(
            "--fresh-data: removed {} ({} MB on the host): the app's named volumes start empty",
            disk.path.display(),
            bytes / 1_000_000
        ));
    }
    ui::note(format!(
        "named volumes: on {} ({}, {} MB on the host){}",
        disk.path.display(),
        if disk.created {
            "new, empty"
        } else {
            "kept from the last run"
        },
        data::used_bytes(&disk.path) / 1_000_000,
        if disk.created {
            ""
        } else {
            "; --fresh-data starts from empty"
        }
    ));
    let opts = VmOpts {
        data: Some(disk.path),
        ..args.options()
    };
    session::run_method(sh, project, method, &app, registry, args.port, &opts)
}
