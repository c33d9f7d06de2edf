//! The native method's build: the app's images built and imported into the
//! LinuxKit cache, the compose services converted into LinuxKit services
//! (`native`), `linuxkit build`, and the initrd packed (each service's root
//! filesystem a squashfs image, as for the compose VMs).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use xshell::Shell;

use crate::{
    app::compose::{App, Invalid},
    base::{project::Project, ui},
    building::apps::{self, Builder},
    moby::{self, BASE_IMAGES},
    native::{self, image::Facts},
    vm::{
        linuxkit::{self, Artifacts, Vm},
        method::Method,
        packed,
        shared::{self, FILES_IN_VM, PROJECT_IN_VM},
    },
};

/// The app's images built, in the LinuxKit cache, and their facts by image.
fn images(sh: &Shell, project: &Project, app: &App) -> Result<BTreeMap<String, Facts>> {
    // The images go from buildah's storage into the LinuxKit cache.
    let ids = apps::build(sh, project, app, Builder::Buildah)?;
    let mut facts = BTreeMap::new();
    for image in app.images() {
        let id = apps::built(app, &ids, image.as_str())?;
        facts.insert(image.to_string(), native::image::ensure(sh, project, image, id)?);
    }
    Ok(facts)
}

/// The native VM of `app`, as its LinuxKit YAML describes it: its images
/// built first, for what they say.
pub fn vm(sh: &Shell, project: &Project, app: &App) -> Result<Vm> {
    let checked = check(app)?;
    let facts = images(sh, project, app)?;
    vm_of(project, app, checked, &facts)
}

/// What the conversion cannot carry over, said before anything is built.
fn check(app: &App) -> Result<native::Checked> {
    native::check(app).map_err(|problems| {
        Invalid {
            file: app.file.clone(),
            problems,
        }
        .into()
    })
}

/// The native VM of `app` as `checked`, from its images' `facts`.
fn vm_of(project: &Project, app: &App, checked: native::Checked, facts: &BTreeMap<String, Facts>) -> Result<Vm> {
    let inputs = native::Inputs {
        facts,
        project_files: carried(app)?,
        project_dir: PROJECT_IN_VM,
        project_data: shared::project_data(app),
        files_dir: FILES_IN_VM,
    };
    let converted = native::convert(app, checked, &inputs).map_err(|problems| Invalid {
        file: app.file.clone(),
        problems,
    })?;
    for note in &converted.notes {
        ui::note(format!("{}: {note}", app.file.display()));
    }
    let mut images = BASE_IMAGES.to_vec();
    images.push("netns");
    if converted.volumes {
        images.push(crate::moby::DATA_IMAGE);
    }
    let digests: String = facts
        .iter()
        .map(|(image, f)| format!("# image {image} {}\n", f.digest))
        .collect();
    Ok(Vm {
        name: Method::Native.vm_name().into(),
        images,
        config: Box::new(move |refs| native::config(refs, &converted)),
        checked_in: shared::is_default(project, app),
        base_initrd: true,
        inputs: digests,
    })
}

/// LinuxKit `files:` for the project's bind-mounted files and the app's
/// secrets and configs; with any, `etc/compose` itself made first, 0755 as
/// in the compose VMs (LinuxKit would make it with the first file's mode).
fn carried(app: &App) -> Result<Vec<moby::File>> {
    let mut files = shared::project_files(Method::Native, app)?;
    files.extend(shared::carried_files(Method::Native, app)?);
    if !files.is_empty() {
        files.insert(0, moby::File::directory(FILES_IN_VM.trim_start_matches('/')));
    }
    Ok(files)
}

/// Build everything the native VM needs that is stale, then the VM.
pub fn build(sh: &Shell, project: &Project, app: &App) -> Result<Artifacts> {
    let checked = check(app)?;
    shared::check_locked(sh, project)?;
    let staged = shared::stage_files(project, Method::Native, app)?;
    let facts = images(sh, project, app)?;
    staged.write()?;
    shared::stage_project(project, Method::Native, app)?;
    let vm = vm_of(project, app, checked, &facts)?;
    let mut artifacts = linuxkit::build(sh, project, &vm)?;
    let out = project.dist.join(format!("{}-initrd.img", Method::Native.vm_name()));
    let roots = packed::Roots::DiskAbove(Method::Native.memory());
    let packed = packed::pack_with(sh, project, &artifacts.initrd, &out, packed::Layout::Shared, roots)
        .context("packing the native VM's initrd")?;
    artifacts.initrd = packed.initrd;
    artifacts.roots = packed.roots;
    Ok(artifacts)
}
