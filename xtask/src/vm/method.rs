//! Which method a VM is built with, and the one place that sends each to its
//! own module: `static_vm`, `dynamic_vm` and `native_vm` each build their VM
//! and describe it in LinuxKit YAML with the same shape of functions.

use anyhow::Result;
use xshell::Shell;

use crate::{
    app::compose::App,
    base::{files, project::Project, ui},
    building::{apps, registry::Address},
    moby,
    native::keys,
    vm::{
        dynamic_vm,
        linuxkit::{self, Artifacts, Vm},
        native_vm, sbom, static_vm, sums,
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// The app's images baked into the VM as a ready image store: no registry needed.
    Static,
    /// Only the compose file in the VM; the engine pulls the images at boot.
    Dynamic,
    /// Each compose service a LinuxKit service: no Docker engine in the VM.
    Native,
}

/// Where a dynamic VM's images go (the other methods take none).
#[derive(Debug, Clone, Copy, Default)]
pub struct Registries<'a> {
    /// The user's `--registry`: pushed to, and written into the VM.
    pub baked_in: Option<&'a Address>,
    /// Only pushed to (the registry `run-dynamic` starts, named at boot).
    pub push_to: Option<&'a Address>,
}

/// `cargo xtask yaml`: the checked-in LinuxKit YAML (the smoke VM's, and each
/// method's of the default app) and the README's native key table, as the
/// recipes, pins and compose file give them now.
pub fn write_checked_in(sh: &Shell, project: &Project) -> Result<()> {
    linuxkit::smoke_vm().write_yaml(project)?;
    let app = apps::default_app(project)?;
    for method in [Method::Static, Method::Dynamic, Method::Native] {
        method.vm(sh, project, &app)?.write_yaml(project)?;
    }
    let readme = project.root.join("README.md");
    let text = std::fs::read_to_string(&readme)?;
    let updated = keys::readme_with_table(&text).map_err(anyhow::Error::msg)?;
    if files::write_if_changed(&readme, updated.as_bytes())? {
        ui::note("wrote README.md (the native method's key table)");
    }
    Ok(())
}

impl Method {
    /// The memory (MiB) this method's VM is to serve an app of stand-ins in
    /// (README's table, "smallest `--memory` that serves"): the packing puts
    /// the container filesystems on a roots disk where the initrd would need
    /// more to unpack, and the suite boots such apps with it.
    pub fn memory(self) -> u32 {
        match self {
            Method::Native => 512,
            Method::Static | Method::Dynamic => 1024,
        }
    }

    /// The VM's name: linuxkit/<name>.yml, dist/<name>-kernel …
    pub fn vm_name(self) -> &'static str {
        match self {
            Method::Static => "compose-static",
            Method::Dynamic => "compose-dynamic",
            Method::Native => "compose-native",
        }
    }

    /// The VM's own images besides LinuxKit's base ones, for `app`.
    fn own_images(self, app: &App) -> Vec<&'static str> {
        match self {
            Method::Static | Method::Dynamic => vec![moby::DATA_IMAGE, "docker", "compose"],
            Method::Native if crate::native::needs_data_disk(app, &super::shared::project_data(app)) => {
                vec!["netns", moby::DATA_IMAGE]
            }
            Method::Native => vec!["netns"],
        }
    }

    /// Build everything the method's VM of `app` needs that is stale, then the
    /// VM itself, its SBOM and dist/SHA256SUMS.
    pub fn build(self, sh: &Shell, project: &Project, app: &App, registries: Registries) -> Result<Artifacts> {
        let artifacts = match self {
            Method::Static => static_vm::build(sh, project, app)?,
            Method::Dynamic => dynamic_vm::build(sh, project, app, registries)?,
            Method::Native => native_vm::build(sh, project, app)?,
        };
        let mut recipes = moby::BASE_IMAGES.to_vec();
        recipes.extend(self.own_images(app));
        if project.release {
            recipes.retain(|r| *r != moby::CONSOLE_SHELL);
        }
        sbom::write(sh, project, self.vm_name(), &recipes, Some(app))?;
        sums::write(project)?;
        Ok(artifacts)
    }

    /// The method's VM of `app` as LinuxKit YAML describes it (the native
    /// VM's YAML spells out what its images say: they are built first).
    pub fn vm(self, sh: &Shell, project: &Project, app: &App) -> Result<Vm> {
        match self {
            Method::Static => static_vm::vm(project, app),
            Method::Dynamic => dynamic_vm::vm(project, app, None),
            Method::Native => native_vm::vm(sh, project, app),
        }
    }
}
