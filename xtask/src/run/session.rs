//! Booting a method's VM on this terminal (`run-static`, `run-dynamic`,
//! `run-smoke`), and what every boot of a compose VM needs first: the VM
//! built and pinned, and for the dynamic method a registry serving its images.

use anyhow::Result;
use xshell::Shell;

use crate::{
    app::compose::App,
    base::{project::Project, ui},
    building::registry::Address,
    run::{
        boot::{self, VmOpts},
        registry,
    },
    vm::{
        linuxkit,
        methods::{self, Method, REGISTRY_PARAM},
    },
};

/// A built VM ready to boot, with the registry it pulls from when dynamic.
pub struct Prepared {
    pub artifacts: boot::Pinned,
    /// The registry the xtask runs for this boot (dropped: stopped).
    pub local_registry: Option<registry::Local>,
}

/// Build for booting: for the dynamic method without `--registry`, start a
/// local registry, push to it, and name it on the kernel command line.
pub fn prepare(
    sh: &Shell,
    project: &Project,
    method: Method,
    app: &App,
    registry: Option<&Address>,
) -> Result<Prepared> {
    if method == Method::Static || registry.is_some() {
        let artifacts = boot::pinned(project, || methods::build(sh, project, method, app, registry, None))?;
        return Ok(Prepared {
            artifacts,
            local_registry: None,
        });
    }
    let log = project.dist.join(format!("{}-registry.log", method.vm_name()));
    std::fs::create_dir_all(&project.dist)?;
    let local = registry::Local::start(project, &log)?;
    let mut artifacts = boot::pinned(project, || {
        methods::build(sh, project, method, app, None, Some(&local.address))
    })?;
    artifacts.artifacts.cmdline = format!(
        "{} {REGISTRY_PARAM}={}",
        artifacts.cmdline,
        methods::guest_registry(&local.address)
    );
    Ok(Prepared {
        artifacts,
        local_registry: Some(local),
    })
}

/// `cargo xtask run-static|run-dynamic`: boot on this terminal with guest port 80
/// on 127.0.0.1:`port`, after saying how to reach each routed hostname.
pub fn run_method(
    sh: &Shell,
    project: &Project,
    method: Method,
    app: &App,
    registry: Option<&Address>,
    port: u16,
    opts: &VmOpts,
) -> Result<()> {
    let prepared = prepare(sh, project, method, app, registry)?;
    boot::interactive(project, opts, &prepared.artifacts, port, || {
        ui::say!(
            "{}: the app answers on 127.0.0.1:{port} once the console says \"compose: app is up\":",
            method.vm_name()
        );
        for (host, service) in app.routes() {
            ui::say!(
                "  curl -H 'Host: {host}' http://127.0.0.1:{port}/      # service {}",
                service.name
            );
        }
    })
}

/// `cargo xtask run-smoke`: the smoke VM on this terminal.
pub fn run_smoke(sh: &Shell, project: &Project, port: u16, opts: &VmOpts) -> Result<()> {
    let artifacts = boot::pinned(project, || linuxkit::build(sh, project, &linuxkit::smoke_vm()))?;
    boot::interactive(project, opts, &artifacts, port, || {
        ui::say!("smoke VM: http://127.0.0.1:{port}/ once nginx is up.")
    })
}
