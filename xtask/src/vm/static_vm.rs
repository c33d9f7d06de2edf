//! The static method: the app's images travel inside the VM, as a ready
//! Docker image store appended to the initrd (`imagestore`), so the engine
//! finds them when it starts. Nothing is pulled or loaded; no registry.

use anyhow::Result;
use xshell::Shell;

use crate::{
    app::compose::App,
    base::project::Project,
    building::apps,
    moby::ComposePayload,
    vm::{
        imagestore,
        linuxkit::{self, Artifacts, Vm},
        method::Method,
        shared::{self, runtime_compose, ENGINE, FILES_IN_VM, PROJECT_IN_VM},
    },
};

pub fn payload() -> ComposePayload {
    ComposePayload {
        compose_file: runtime_compose(Method::Static),
        project_files: vec![],
        project_data: Default::default(),
        daemon_json: format!("{{{ENGINE}}}\n"),
        cmdline: vec![],
        pulls: false,
    }
}

/// The compose file the VM runs: every image is in the engine's store, never pulled.
pub fn runtime_file(app: &App) -> Result<String> {
    app.runtime_file("never", PROJECT_IN_VM, FILES_IN_VM, |image| image.to_string())
}

/// The static VM of `app`, as its LinuxKit YAML describes it.
pub fn vm(project: &Project, app: &App) -> Result<Vm> {
    shared::compose_vm(project, Method::Static, payload(), app, true)
}

/// Build the app's images and save them, `linuxkit build` the VM, then append
/// the app's image store to its initrd.
pub fn build(sh: &Shell, project: &Project, app: &App) -> Result<Artifacts> {
    let (builder, ids) = shared::prepare_compose(sh, project, Method::Static, app, &runtime_file(app)?)?;
    apps::save(sh, project, app, &ids, builder)?;
    let artifacts = linuxkit::build(sh, project, &vm(project, app)?)?;
    append_images(sh, project, app, artifacts)
}

/// The VM's initrd: what `linuxkit build` made, then the app's image store.
fn append_images(sh: &Shell, project: &Project, app: &App, mut artifacts: Artifacts) -> Result<Artifacts> {
    let full = project.dist.join(format!("{}-initrd.img", Method::Static.vm_name()));
    artifacts.roots = imagestore::initrd(sh, project, app, &artifacts.initrd, &full, Method::Static.memory())?;
    artifacts.initrd = full;
    Ok(artifacts)
}
