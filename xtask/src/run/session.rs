//! Booting a method's VM on this terminal (`run-static`, `run-dynamic`,
//! `run-smoke`), and what every boot of a compose VM needs first: the VM
//! built and pinned, and for the dynamic method a registry serving its images.

use anyhow::{bail, Result};
use xshell::Shell;

use crate::{
    app::compose::App,
    base::{project::Project, ui},
    building::registry::Address,
    run::{
        boot::{self, VmOpts},
        qemu::Forward,
        registry,
    },
    vm::{
        dynamic_vm::{guest_registry, REGISTRY_PARAM},
        linuxkit,
        method::{Method, Registries},
    },
};

/// A built VM ready to boot, with the registry it pulls from when dynamic.
pub struct Prepared {
    pub artifacts: boot::Pinned,
    /// The registry the xtask runs for this boot (dropped: stopped).
    pub local_registry: Option<registry::Local>,
}

/// Build for booting: for the dynamic method without `--registry`, start a
/// local registry, push to it, and name it on the kernel command line; then
/// make the `--format` of `opts` with that command line inside.
pub fn prepare(
    sh: &Shell,
    project: &Project,
    method: Method,
    app: &App,
    registry: Option<&Address>,
    opts: &VmOpts,
) -> Result<Prepared> {
    if method != Method::Dynamic || registry.is_some() {
        let registries = Registries {
            baked_in: registry,
            push_to: None,
        };
        let mut artifacts = boot::pinned(project, || method.build(sh, project, app, registries))?;
        boot::with_format(sh, project, &mut artifacts, method.vm_name(), opts)?;
        return Ok(Prepared {
            artifacts,
            local_registry: None,
        });
    }
    let log = project.dist.join(format!("{}-registry.log", method.vm_name()));
    std::fs::create_dir_all(&project.dist)?;
    let local = registry::Local::start(project, &log)?;
    let registries = Registries {
        baked_in: None,
        push_to: Some(&local.address),
    };
    let mut artifacts = boot::pinned(project, || method.build(sh, project, app, registries))?;
    artifacts.artifacts.cmdline = format!(
        "{} {REGISTRY_PARAM}={}",
        artifacts.cmdline,
        guest_registry(&local.address)
    );
    boot::with_format(sh, project, &mut artifacts, method.vm_name(), opts)?;
    Ok(Prepared {
        artifacts,
        local_registry: Some(local),
    })
}

/// `cargo xtask run-static|run-dynamic`: boot on this terminal with every
/// published port on the same port of 127.0.0.1, as `docker compose up` would
/// publish it (`router_port`, if given, moves the router's), after saying how
/// to reach each routed hostname and port.
pub fn run_method(
    sh: &Shell,
    project: &Project,
    method: Method,
    app: &App,
    registry: Option<&Address>,
    router_port: Option<u16>,
    opts: &VmOpts,
) -> Result<()> {
    let forwards = published_forwards(app, router_port)?;
    let prepared = prepare(sh, project, method, app, registry, opts)?;
    boot::interactive(project, opts, &prepared.artifacts, forwards, |forwards| {
        let ready = match method {
            Method::Native => "\"service: started …\" for every service",
            _ => "\"compose: app is up\"",
        };
        ui::say!("{}: the app answers once the console says {ready}:", method.vm_name());
        let on_host = |guest: u16| forwards.iter().find(|f| f.guest == guest && !f.udp).map(|f| f.host);
        if let Some(port) = app.router_port().and_then(on_host) {
            for (host, service) in app.routes() {
                ui::say!(
                    "  curl -H 'Host: {host}' http://127.0.0.1:{port}/      # service {}",
                    service.name
                );
            }
        }
        for (p, service) in app.published() {
            let proto = if p.udp { "udp" } else { "tcp" };
            let host = forwards
                .iter()
                .find(|f| f.guest == p.published && f.udp == p.udp)
                .map_or(0, |f| f.host);
            ui::say!(
                "  127.0.0.1:{host} ({proto}) -> service {} port {}",
                service.name,
                p.target
            );
        }
    })
}

/// Every published port of `app` from the same port of 127.0.0.1, the router's
/// from `router_port` if given.
fn published_forwards(app: &App, router_port: Option<u16>) -> Result<Vec<Forward>> {
    if router_port.is_some() && app.router_port().is_none() {
        bail!(
            "{}: --port moves the router's published port, and no service routes by Host rules",
            app.file.display()
        );
    }
    Ok(app
        .published()
        .into_iter()
        .map(|(p, _)| {
            let moved = (!p.udp && Some(p.published) == app.router_port())
                .then_some(router_port)
                .flatten();
            Forward {
                host: moved.unwrap_or(p.published),
                guest: p.published,
                udp: p.udp,
            }
        })
        .collect())
}

/// `cargo xtask run-smoke`: the smoke VM on this terminal.
pub fn run_smoke(sh: &Shell, project: &Project, port: u16, opts: &VmOpts) -> Result<()> {
    let mut artifacts = boot::pinned(project, || linuxkit::build(sh, project, &linuxkit::smoke_vm()))?;
    boot::with_format(sh, project, &mut artifacts, &linuxkit::smoke_vm().name, opts)?;
    boot::interactive(project, opts, &artifacts, vec![Forward::tcp(port, 80)], |forwards| {
        ui::say!("smoke VM: http://127.0.0.1:{}/ once nginx is up.", forwards[0].host)
    })
}
