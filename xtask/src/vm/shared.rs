//! What the methods' VMs share: the project's bind-mounted files carried in
//! the VM, the rule that only the default app writes checked-in YAML, the
//! lock check before any build, and for the two compose VMs (static and
//! dynamic) the Docker engine's settings and the compose file the VM runs.

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::{
    app::compose::{self, App},
    base::{files, project::Project},
    building::{apps, images},
    moby::{self, ComposePayload, File},
    vm::{
        linuxkit::{self, Vm},
        method::Method,
    },
};

/// The Docker engine's settings in every compose VM: no default `docker0`
/// bridge (compose puts services on a network of its own; the default bridge
/// is iptables work at every start for nothing), and published ports by
/// iptables DNAT alone, without a docker-proxy process per port; and crun
/// (C) as the containers' OCI runtime in place of runc (Go), whose two Go
/// program starts per container (`runc create`, `runc init`) cost seconds
/// under emulation.
pub const ENGINE: &str = r#""bridge": "none", "userland-proxy": false, "runtimes": {"crun": {"path": "/usr/bin/crun"}}, "default-runtime": "crun""#;

/// Where the compose file the VM runs is written, relative to the repository.
pub fn runtime_compose(method: Method) -> String {
    format!("dist/{}/docker-compose.yml", method.vm_name())
}

/// Where a VM carries the project's bind-mounted files and folders (the
/// engine's service sees the VM's /etc/compose there).
pub const PROJECT_IN_VM: &str = "/etc/compose/project";

/// Is `app` the repository's own compose file, read as it is?
pub fn is_default(project: &Project, app: &App) -> bool {
    if !app.single_file {
        return false;
    }
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    canonical(&app.file).is_some() && canonical(&app.file) == canonical(&project.root.join(compose::DEFAULT))
}

/// Where the project's bind-mounted files are staged for `linuxkit build`,
/// relative to the repository.
fn project_stage(method: Method) -> String {
    format!("dist/{}/project", method.vm_name())
}

/// LinuxKit `files:` for every file and folder of the project a service
/// bind-mounts, from the stage, under [`PROJECT_IN_VM`] with their modes.
pub fn project_files(method: Method, app: &App) -> Result<Vec<File>> {
    let vm_root = PROJECT_IN_VM.trim_start_matches('/');
    let stage = project_stage(method);
    let mut out: Vec<File> = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut add_dir = |out: &mut Vec<File>, rel: &Path| {
        for dir in rel.ancestors().collect::<Vec<_>>().into_iter().rev() {
            if !dirs.iter().any(|d| d == dir) {
                dirs.push(dir.to_path_buf());
                let path = Path::new(vm_root).join(dir);
                out.push(File::directory(path.to_str().expect("UTF-8").trim_end_matches('/')));
            }
        }
    };
    for rel in app.binds() {
        let host = app.dir.join(rel);
        let Ok(meta) = std::fs::metadata(&host) else {
            continue; // the engine makes an empty folder, as it would without the VM
        };
        let entries = if meta.is_dir() {
            let mut entries = Vec::new();
            for (file, _, _) in files::tree_files(&host)? {
                let mode = std::fs::metadata(host.join(&file))?.permissions().mode();
                entries.push((rel.join(file), mode));
            }
            entries
        } else {
            vec![(rel.to_path_buf(), meta.permissions().mode())]
        };
        if meta.is_dir() {
            add_dir(&mut out, rel);
        }
        for (file, mode) in entries {
            add_dir(&mut out, file.parent().unwrap_or(Path::new("")));
            let mut f = File::source(
                &Path::new(vm_root).join(&file).display().to_string(),
                &format!("{stage}/{}", file.display()),
            );
            f.mode = Some(format!("{:04o}", mode & 0o7777));
            out.push(f);
        }
    }
    Ok(out)
}

/// Copy the project's bind-mounted files to the stage [`project_files`] names,
/// rewriting only what changed (`linuxkit build` is redone when a source's
/// mtime changes).
pub fn stage_project(project: &Project, method: Method, app: &App) -> Result<()> {
    let stage = project.root.join(project_stage(method));
    let mut wanted = Vec::new();
    for f in project_files(method, app)? {
        let Some(source) = &f.source else { continue };
        let rel = Path::new(source).strip_prefix(project_stage(method)).expect("staged");
        let from = app.dir.join(rel);
        let to = stage.join(rel);
        let bytes = std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        std::fs::create_dir_all(to.parent().expect("under the stage"))?;
        files::write_if_changed(&to, &bytes)?;
        wanted.push(to);
    }
    // Nothing stale from an earlier app stays in the stage.
    if stage.is_dir() {
        for (file, _, _) in files::tree_files(&stage)? {
            let path = stage.join(file);
            if !wanted.contains(&path) {
                std::fs::remove_file(&path)?;
            }
        }
    }
    Ok(())
}

/// Every image a VM build may need (the VM's own and the app's base images)
/// is buildable from pins.lock, or nothing is built.
pub fn check_locked(sh: &Shell, project: &Project) -> Result<()> {
    let mut names: Vec<String> = moby::BASE_IMAGES.iter().map(|n| n.to_string()).collect();
    names.extend(["docker", "compose", "netns"].map(String::from));
    names.extend(project.pins.catalog.values().map(|c| c.recipe.clone()));
    names.sort();
    names.dedup();
    images::check_locked(sh, project, &names)
}

/// The compose VM (static or dynamic) of `app` carrying `payload`. Only the
/// default app is described by the checked-in `linuxkit/<name>.yml`
/// (`checked_in`); any other build writes its YAML under dist/, so no build
/// with other input changes a tracked file.
pub fn compose_vm(
    project: &Project,
    method: Method,
    mut payload: ComposePayload,
    app: &App,
    checked_in: bool,
) -> Result<Vm> {
    payload.project_files = project_files(method, app)?;
    let mut vm = linuxkit::compose_vm(method.vm_name(), payload);
    vm.base_initrd = true;
    vm.checked_in = checked_in && is_default(project, app);
    Ok(vm)
}

/// What the compose VMs share before `linuxkit build`: the lock checked, the
/// app's images built (by the builder that answers), the compose file the VM
/// runs (`runtime_file`) written, the project's files staged.
pub fn prepare_compose(
    sh: &Shell,
    project: &Project,
    method: Method,
    app: &App,
    runtime_file: &str,
) -> Result<(apps::Builder, BTreeMap<String, String>)> {
    check_locked(sh, project)?;
    let builder = apps::builder(sh);
    let ids = apps::build(sh, project, app, builder)?;
    let path = project.root.join(runtime_compose(method));
    std::fs::create_dir_all(path.parent().expect("under dist/"))?;
    files::write_if_changed(&path, runtime_file.as_bytes())?;
    stage_project(project, method, app)?;
    Ok((builder, ids))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        base::testdir::TestDir,
        building::registry::Address,
        vm::{dynamic_vm, static_vm},
    };

    fn app() -> App {
        crate::building::apps::testing::default_app()
    }

    fn load(file: &Path) -> App {
        let source = compose::Source {
            files: vec![file.to_path_buf()],
            ..Default::default()
        };
        crate::building::apps::testing::load(&source)
    }

    fn vm(project: &Project, method: Method, app: &App, registry: Option<&Address>) -> Result<Vm> {
        match method {
            Method::Static => static_vm::vm(project, app),
            _ => dynamic_vm::vm(project, app, registry),
        }
    }

    #[test]
    fn static_appends_its_image_store_and_never_pulls() {
        let p = static_vm::payload();
        assert!(p.project_files.is_empty());
        for method in [Method::Static, Method::Dynamic] {
            let vm = vm(&crate::base::project::for_tests(), method, &app(), None).unwrap();
            assert!(vm.base_initrd, "linuxkit build makes the base; the xtask packs it");
        }
        assert!(p.cmdline.is_empty());
        let file = static_vm::runtime_file(&app()).unwrap();
        assert_eq!(file.matches("pull_policy: never").count(), 3, "{file}");
        assert!(!file.contains("build:"), "{file}");
    }

    #[test]
    fn dynamic_pulls_from_the_named_registry() {
        let p = dynamic_vm::payload(None);
        assert!(p.cmdline.is_empty(), "without --registry the registry is named at boot");
        assert_eq!(
            p.daemon_json,
            format!("{{{ENGINE}, \"insecure-registries\": [\"10.0.2.2/32\"]}}\n")
        );
        insta::assert_snapshot!(dynamic_vm::runtime_file(&app()).unwrap());
    }

    #[test]
    fn dynamic_with_registry_bakes_the_guest_address() {
        let local = Address::parse("127.0.0.1:5000/ns").unwrap();
        let p = dynamic_vm::payload(Some(&local));
        assert_eq!(p.cmdline, ["linuxkit_compose.registry=10.0.2.2:5000/ns"]);
        let remote = Address::parse("registry.example.com").unwrap();
        assert_eq!(
            dynamic_vm::payload(Some(&remote)).cmdline,
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
            let default = vm(&project, method, &app(), None).unwrap();
            assert_eq!(default.yaml_path(&project).parent().unwrap(), linuxkit_dir);
            let dir = TestDir::new(&format!("other-{method:?}"));
            let file = dir.join("docker-compose.yml");
            std::fs::write(
                &file,
                std::fs::read_to_string(project.root.join(compose::DEFAULT))
                    .unwrap()
                    .replace("../apps/", &format!("{}/apps/", project.root.display())),
            )
            .unwrap();
            let other = vm(&project, method, &load(&file), None).unwrap();
            assert_eq!(other.yaml_path(&project).parent().unwrap(), project.dist);
        }
        let registry = Address::parse("registry.example.com/team").unwrap();
        let pushed = vm(&project, Method::Dynamic, &app(), Some(&registry)).unwrap();
        assert_eq!(pushed.yaml_path(&project).parent().unwrap(), project.dist);
        // The repository's file with another merged over it is another app.
        let merged = crate::building::apps::testing::load(&compose::Source {
            files: vec![
                project.root.join(compose::DEFAULT),
                project.root.join("compose/third-site.yml"),
            ],
            ..Default::default()
        });
        let merged = vm(&project, Method::Static, &merged, None).unwrap();
        assert_eq!(merged.yaml_path(&project).parent().unwrap(), project.dist);
    }

    /// Files and folders beside the compose file that services bind-mount
    /// travel into the VM with their modes, and the VM's compose file points there.
    #[test]
    fn bind_mounted_project_files_travel() {
        let project = crate::base::project::for_tests();
        let dir = TestDir::new("binds");
        std::fs::create_dir_all(dir.join("conf/sub")).unwrap();
        std::fs::write(dir.join("conf/sub/site.conf"), "server {}\n").unwrap();
        std::fs::write(dir.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dir.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.join("compose.yaml");
        std::fs::write(
            &file,
            format!(
                "services:\n  web:\n    build: {}\n    ports: ['8000:80']\n    volumes:\n      - ./conf:/etc/nginx/conf.d:ro\n      - type: bind\n        source: ./run.sh\n        target: /run.sh\n      - data:/data\nvolumes:\n  data: {{}}\n",
                project.root.join("apps/a").display()
            ),
        )
        .unwrap();
        let app = load(&file);
        let files = project_files(Method::Static, &app).unwrap();
        let paths: Vec<(&str, Option<&str>, Option<&str>)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.source.as_deref(), f.mode.as_deref()))
            .collect();
        assert_eq!(
            paths,
            [
                ("etc/compose/project", None, Some("0755")),
                ("etc/compose/project/conf", None, Some("0755")),
                ("etc/compose/project/conf/sub", None, Some("0755")),
                (
                    "etc/compose/project/conf/sub/site.conf",
                    Some("dist/compose-static/project/conf/sub/site.conf"),
                    Some("0644")
                ),
                (
                    "etc/compose/project/run.sh",
                    Some("dist/compose-static/project/run.sh"),
                    Some("0755")
                ),
            ]
        );
        let runtime = static_vm::runtime_file(&app).unwrap();
        assert!(runtime.contains("source: /etc/compose/project/conf\n"), "{runtime}");
        assert!(runtime.contains("source: /etc/compose/project/run.sh\n"), "{runtime}");
    }
}
