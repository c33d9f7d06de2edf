//! The dynamic method: only the compose file travels; the VM's engine pulls
//! the images at boot from a registry named on the kernel command line
//! (baked in with `--registry`, or given at boot by `run-dynamic`).

use std::collections::BTreeMap;

use anyhow::Result;
use xshell::Shell;

use crate::{
    app::compose::App,
    base::project::Project,
    building::{
        apps,
        registry::{self, Address, GUEST_GATEWAY},
    },
    moby::ComposePayload,
    vm::{
        linuxkit::{self, Artifacts, Vm},
        method::{Method, Registries},
        packed,
        shared::{self, runtime_compose, ENGINE, FILES_IN_VM, PROJECT_IN_VM},
    },
};

/// The kernel parameter that tells the compose runner where to pull from.
pub const REGISTRY_PARAM: &str = "linuxkit_compose.registry";
/// The variable the VM's compose file takes the registry from.
const REGISTRY_VAR: &str = "LINUXKIT_COMPOSE_REGISTRY";

/// A dynamic VM built with a `registry` has it on its kernel command line;
/// without one, the registry is given at boot.
pub fn payload(registry: Option<&Address>) -> ComposePayload {
    ComposePayload {
        compose_file: runtime_compose(Method::Dynamic),
        project_files: vec![],
        project_data: Default::default(),
        // A registry on the host, reached through QEMU's gateway, speaks plain HTTP.
        daemon_json: format!("{{{ENGINE}, \"insecure-registries\": [\"{GUEST_GATEWAY}/32\"]}}\n"),
        cmdline: registry
            .map(|r| format!("{REGISTRY_PARAM}={}", guest_registry(r)))
            .into_iter()
            .collect(),
        pulls: true,
    }
}

/// `host[:port][/namespace]` of a registry as the guest reaches it.
pub fn guest_registry(registry: &Address) -> String {
    registry
        .as_seen_from_guest()
        .image("")
        .trim_end_matches('/')
        .to_string()
}

/// The compose file the VM runs: every image from the registry named at boot.
pub fn runtime_file(app: &App) -> Result<String> {
    app.runtime_file("always", PROJECT_IN_VM, FILES_IN_VM, |image| {
        let image = registry::relocated(image);
        format!("${{{REGISTRY_VAR}:?boot with {REGISTRY_PARAM}=HOST[:PORT][/NAMESPACE]}}/{image}")
    })
}

/// The dynamic VM of `app`, as its LinuxKit YAML describes it; with the
/// user's `registry` written into it (its YAML then goes to dist/).
pub fn vm(project: &Project, app: &App, registry: Option<&Address>) -> Result<Vm> {
    shared::compose_vm(project, Method::Dynamic, payload(registry), app, registry.is_none())
}

/// Build the app's images and push them to `registries`, `linuxkit build`
/// the VM (with the `--registry` baked in, if given), and pack its initrd.
pub fn build(sh: &Shell, project: &Project, app: &App, registries: Registries) -> Result<Artifacts> {
    let (_, ids) = shared::prepare_compose(sh, project, Method::Dynamic, app, &runtime_file(app)?)?;
    let targets = registries.baked_in.into_iter().chain(registries.push_to);
    push(sh, project, app, &ids, targets)?;
    let mut artifacts = linuxkit::build(sh, project, &vm(project, app, registries.baked_in)?)?;
    let out = project.dist.join(format!("{}-initrd.img", Method::Dynamic.vm_name()));
    artifacts.initrd = packed::pack(sh, project, &artifacts.initrd, &out, packed::Layout::PerService)?;
    Ok(artifacts)
}

/// Push every image `app` uses to each of `targets`.
fn push<'a>(
    sh: &Shell,
    project: &Project,
    app: &App,
    ids: &BTreeMap<String, String>,
    targets: impl Iterator<Item = &'a Address>,
) -> Result<()> {
    for target in targets {
        for image in app.images() {
            apps::built(app, ids, image.as_str())?;
            registry::push(sh, project, image, target)?;
        }
    }
    Ok(())
}
