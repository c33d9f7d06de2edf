//! The compose methods, and what they share: each puts the app's compose file
//! into the VM with a Docker engine and the compose runner; they differ in
//! where the app's images come from, which each method's own file says
//! (`static_vm`: baked in as a ready image store; `dynamic_vm`: pulled from a
//! registry at boot).

use std::path::Path;

use anyhow::Result;
use xshell::Shell;

use crate::{
    app::compose::{self, App},
    base::{files, project::Project},
    building::{apps, registry::Address},
    vm::{
        dynamic_vm,
        linuxkit::{self, Artifacts, ComposePayload, Vm},
        packed, static_vm,
    },
};

pub use crate::vm::method::{runtime_compose, Method};
pub use dynamic_vm::{guest_registry, REGISTRY_PARAM};

/// What the VM carries besides the app's images.
pub fn payload(method: Method, registry: Option<&Address>) -> ComposePayload {
    match method {
        Method::Static => static_vm::payload(),
        Method::Dynamic => dynamic_vm::payload(registry),
    }
}

/// The method's VM. Only the default app without `--registry` is described by
/// the checked-in `linuxkit/<name>.yml`; any other build writes its YAML under
/// dist/, so no build with other input changes a tracked file.
pub fn vm(project: &Project, method: Method, app: &App, registry: Option<&Address>) -> Vm {
    let mut vm = linuxkit::compose_vm(method.vm_name(), payload(method, registry));
    vm.base_initrd = true;
    vm.checked_in = registry.is_none() && is_default(project, app);
    vm
}

/// Is `app` the repository's own compose file?
fn is_default(project: &Project, app: &App) -> bool {
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    canonical(&app.file).is_some() && canonical(&app.file) == canonical(&project.root.join(compose::DEFAULT))
}

/// The compose file the VM runs.
fn runtime_file(method: Method, app: &App) -> Result<String> {
    match method {
        Method::Static => static_vm::runtime_file(app),
        Method::Dynamic => dynamic_vm::runtime_file(app),
    }
}

/// Build everything the method's VM needs that is stale, then the VM itself.
/// For the dynamic method, `registry` (the user's `--registry`) is pushed to
/// and written into the VM; `push_to` is only pushed to.
pub fn build(
    sh: &Shell,
    project: &Project,
    method: Method,
    app: &App,
    registry: Option<&Address>,
    push_to: Option<&Address>,
) -> Result<Artifacts> {
    let builder = apps::builder(sh);
    let ids = apps::build(sh, project, app, builder)?;
    match method {
        Method::Static => apps::save(sh, project, app, &ids, builder)?,
        Method::Dynamic => dynamic_vm::push(sh, project, app, &ids, registry.into_iter().chain(push_to))?,
    }
    let path = project.root.join(runtime_compose(method));
    std::fs::create_dir_all(path.parent().unwrap())?;
    files::write_if_changed(&path, runtime_file(method, app)?.as_bytes())?;
    let artifacts = linuxkit::build(sh, project, &vm(project, method, app, registry))?;
    match method {
        Method::Static => static_vm::append_images(sh, project, app, artifacts),
        Method::Dynamic => {
            let mut artifacts = artifacts;
            let out = project.dist.join(format!("{}-initrd.img", method.vm_name()));
            artifacts.initrd = packed::pack(sh, project, &artifacts.initrd, &out)?;
            Ok(artifacts)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        let root = crate::base::project::root();
        App::load(&root.join(compose::DEFAULT)).unwrap()
    }

    #[test]
    fn static_carries_no_tarballs_and_never_pulls() {
        let p = payload(Method::Static, None);
        assert!(p.tarballs.is_empty(), "the image store is appended to the initrd");
        assert!(vm(&crate::base::project::for_tests(), Method::Static, &app(), None).base_initrd);
        assert!(vm(&crate::base::project::for_tests(), Method::Dynamic, &app(), None).base_initrd);
        assert!(p.cmdline.is_empty());
        let file = runtime_file(Method::Static, &app()).unwrap();
        assert_eq!(file.matches("pull_policy: never").count(), 3, "{file}");
        assert!(!file.contains("build:"), "{file}");
    }

    #[test]
    fn dynamic_carries_no_tarballs_and_pulls_from_the_named_registry() {
        let p = payload(Method::Dynamic, None);
        assert!(p.tarballs.is_empty());
        assert!(p.cmdline.is_empty(), "without --registry the registry is named at boot");
        assert_eq!(
            p.daemon_json,
            format!(
                "{{{}, \"insecure-registries\": [\"10.0.2.2/32\"]}}\n",
                crate::vm::method::ENGINE
            )
        );
        insta::assert_snapshot!(runtime_file(Method::Dynamic, &app()).unwrap());
    }

    #[test]
    fn dynamic_with_registry_bakes_the_guest_address() {
        let local = Address::parse("127.0.0.1:5000/ns").unwrap();
        let p = payload(Method::Dynamic, Some(&local));
        assert_eq!(p.cmdline, ["linuxkit_compose.registry=10.0.2.2:5000/ns"]);
        let remote = Address::parse("registry.example.com").unwrap();
        assert_eq!(
            payload(Method::Dynamic, Some(&remote)).cmdline,
            ["linuxkit_compose.registry=registry.example.com"]
        );
    }

    /// `static --compose other.yml` and `dynamic --registry …` must not touch
    /// the checked-in linuxkit/*.yml: their YAML goes to dist/.
    #[test]
    fn only_the_default_app_writes_checked_in_yaml() {
        let project = crate::base::project::for_tests();
        let linuxkit_dir = project.root.join("linuxkit");
        for method in [Method::Static, Method::Dynamic] {
            let default = vm(&project, method, &app(), None);
            assert_eq!(default.yaml_path(&project).parent().unwrap(), linuxkit_dir);
            let dir = std::env::temp_dir().join(format!("lkc-other-{}-{method:?}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("docker-compose.yml");
            std::fs::write(
                &file,
                std::fs::read_to_string(project.root.join(compose::DEFAULT))
                    .unwrap()
                    .replace("../apps/", &format!("{}/apps/", project.root.display())),
            )
            .unwrap();
            let other = vm(&project, method, &App::load(&file).unwrap(), None);
            assert_eq!(other.yaml_path(&project).parent().unwrap(), project.dist);
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let registry = Address::parse("registry.example.com/team").unwrap();
        let pushed = vm(&project, Method::Dynamic, &app(), Some(&registry));
        assert_eq!(pushed.yaml_path(&project).parent().unwrap(), project.dist);
    }
}
