//! What the methods' VMs share: the project's bind-mounted files carried in
//! the VM, the rule that only the default app writes checked-in YAML, the
//! lock check before any build, and for the two compose VMs (static and
//! dynamic) the Docker engine's settings and the compose file the VM runs.

use std::{
    collections::BTreeMap,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::{
    app::{
        compose::{self, App},
        files::{Kind, Origin},
    },
    base::{files, project::Project},
    building::{apps, images},
    moby::{self, ComposePayload, File, ProjectData},
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

/// Where a VM carries the files of the app's secrets and configs
/// (`secrets/NAME`, `configs/NAME` under it; see [`App::files`]).
pub const FILES_IN_VM: &str = "/etc/compose";

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
            // Docker would make it, empty: the VM carries the empty folder,
            // and its data step keeps it on the data disk (`project_data`).
            add_dir(&mut out, rel);
            continue;
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

/// What the data step keeps of the project the VM carries, as Docker keeps
/// what services write to its host's folder. Docker mounts the project's
/// files and folders read-write unless a bind says `:ro`, and what a service
/// writes there (an SQLite file in `./data`, uploads) stays in the folder
/// from run to run: when a service binds a file or folder that is there
/// without `:ro`, the VM's project folder is an overlay whose upper layer is
/// on the data disk (the build's files below it, what services wrote over
/// them). A bound folder that is not there at build time Docker makes on its
/// host, empty (`./data/db:/var/lib/postgresql/data`): the VM carries it
/// empty and its data step binds it from the data disk.
pub fn project_data(app: &App) -> ProjectData {
    let writes_a_file_there = app.services.iter().flat_map(|s| &s.mounts).any(|m| {
        m.kind == "bind"
            && !m.read_only
            && m.source
                .as_deref()
                .and_then(|source| Path::new(source).strip_prefix(&app.dir).ok())
                .is_some_and(|rel| std::fs::symlink_metadata(app.dir.join(rel)).is_ok())
    });
    ProjectData {
        writable: writes_a_file_there.then(|| PROJECT_IN_VM.to_string()),
        made: app
            .binds()
            .into_iter()
            .filter(|rel| std::fs::metadata(app.dir.join(rel)).is_err())
            .map(|rel| Path::new(PROJECT_IN_VM).join(rel).display().to_string())
            .collect(),
    }
}

/// Where the files of the app's secrets and configs are staged for
/// `linuxkit build`, relative to the repository.
fn files_stage(method: Method) -> String {
    format!("dist/{}/files", method.vm_name())
}

/// LinuxKit `files:` for the app's secrets and configs, from the stage, under
/// [`FILES_IN_VM`], each with the owner and mode its uses see. The folders
/// come first (LinuxKit would make a missing one with its first file's owner
/// and mode); the secrets' folder is root's alone.
pub fn carried_files(method: Method, app: &App) -> Result<Vec<File>> {
    let files = app.files().map_err(|problems| compose::Invalid {
        file: app.file.clone(),
        problems,
    })?;
    let root = FILES_IN_VM.trim_start_matches('/');
    let mut out = Vec::new();
    for (kind, mode) in [(Kind::Secret, "0700"), (Kind::Config, "0755")] {
        if files.carried.iter().any(|c| c.kind == kind) {
            out.push(File {
                mode: Some(mode.into()),
                ..File::directory(&format!("{root}/{}", kind.key()))
            });
        }
    }
    for c in &files.carried {
        out.push(File {
            mode: Some(format!("{:04o}", c.mode)),
            uid: Some(c.uid),
            gid: Some(c.gid),
            ..File::source(
                &format!("{root}/{}", c.path),
                &format!("{}/{}", files_stage(method), c.path),
            )
        });
    }
    Ok(out)
}

/// The files of the app's secrets and configs, read (a `file:` one), taken
/// from the build's environment (an `environment:` one) or from the compose
/// file (a `content:` one), for [`StagedFiles::write`] to put where
/// [`carried_files`] names them. Read before the images are built, so that a
/// secret whose variable is not set stops the build at once; written after
/// them, so that a build that fails leaves dist/ as it was.
pub fn stage_files(project: &Project, method: Method, app: &App) -> Result<StagedFiles> {
    let files = app.files().map_err(|problems| compose::Invalid {
        file: app.file.clone(),
        problems,
    })?;
    let stage = project.root.join(files_stage(method));
    let env = |var: &str| std::env::var(var).ok();
    let mut problems = Vec::new();
    let mut wanted = Vec::new();
    for c in &files.carried {
        let bytes = match (c.bytes(&env), &c.origin) {
            (Ok(Some(bytes)), _) => bytes,
            (Ok(None), Origin::File(path)) => std::fs::read(path)
                .with_context(|| format!("reading {} (the {} `{}`)", path.display(), c.kind.key(), c.name))?,
            (Ok(None), _) => unreachable!("only a file: one has no bytes of its own"),
            (Err(e), _) => {
                problems.push(e);
                continue;
            }
        };
        let mode = if c.kind == Kind::Secret { 0o400 } else { 0o600 };
        wanted.push((stage.join(&c.path), bytes, mode));
    }
    if !problems.is_empty() {
        return Err(compose::Invalid {
            file: app.file.clone(),
            problems,
        }
        .into());
    }
    Ok(StagedFiles { stage, wanted })
}

/// The secrets' and configs' files of a build, read: see [`stage_files`].
pub struct StagedFiles {
    stage: PathBuf,
    /// Path, bytes, mode.
    wanted: Vec<(PathBuf, Vec<u8>, u32)>,
}

impl StagedFiles {
    /// Write the files to the stage, and remove what an earlier build left
    /// there. They are the user's secrets: 0400 (configs 0600) in a folder
    /// only its owner reads, and never printed.
    pub fn write(self) -> Result<()> {
        for (to, bytes, mode) in &self.wanted {
            write_private(to, bytes, *mode)?;
        }
        if self.stage.is_dir() {
            for (file, _, _) in files::tree_files(&self.stage)? {
                let path = self.stage.join(file);
                if !self.wanted.iter().any(|(to, _, _)| *to == path) {
                    std::fs::remove_file(&path)?;
                }
            }
        }
        Ok(())
    }
}

/// Write `bytes` to `path` with `mode`, its folders 0700, unless it holds
/// them already (its mtime then stays, and `linuxkit build` is not redone).
fn write_private(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().expect("under the stage");
    std::fs::create_dir_all(dir)?;
    for d in [dir, dir.parent().expect("under the stage")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
    }
    if std::fs::read(path).ok().as_deref() != Some(bytes) {
        // A 0400 file cannot be written over: a new one takes its place.
        let tmp = path.with_extension("partial");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
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
    payload.project_files.extend(carried_files(method, app)?);
    payload.project_data = project_data(app);
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
    let staged = stage_files(project, method, app)?;
    let builder = apps::builder(sh);
    let ids = apps::build(sh, project, app, builder)?;
    staged.write()?;
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

    /// A port the compose file publishes on one of the host's addresses is
    /// published on the VM's: QEMU's forward, on the host's 127.0.0.1,
    /// reaches the VM's address, never its loopback.
    #[test]
    fn ports_on_a_host_address_are_published_on_the_vms() {
        let dir = TestDir::new("host-ip");
        let file = dir.join("compose.yaml");
        std::fs::write(
            &file,
            "services:\n  web:\n    image: nginx\n    ports: [\"127.0.0.1:8000:80\", \"192.0.2.7:8443:443\", \"9000:9000\"]\n",
        )
        .unwrap();
        let app = load(&file);
        for text in [static_vm::runtime_file(&app), dynamic_vm::runtime_file(&app)] {
            let model: serde_json::Value = serde_yaml::from_str(&text.unwrap()).unwrap();
            let ports = model["services"]["web"]["ports"].as_array().unwrap();
            let published: Vec<(&str, u64)> = ports
                .iter()
                .map(|p| (p["published"].as_str().unwrap(), p["target"].as_u64().unwrap()))
                .collect();
            assert_eq!(published, [("8000", 80), ("8443", 443), ("9000", 9000)]);
            assert!(ports.iter().all(|p| p.get("host_ip").is_none()), "{ports:?}");
        }
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

    /// The files of secrets and configs: their folders first, each file with
    /// the owner and mode its use asks for, from the stage.
    #[test]
    fn secrets_and_configs_travel_with_their_owners_and_modes() {
        let app = crate::app::compose::testing::app(serde_json::json!({
            "services": {"web": {
                "secrets": [{"source": "page", "uid": "101", "gid": "101", "mode": 0o400}],
                "configs": [{"source": "site"}]
            }},
            "secrets": {"page": {"file": "/x/page.txt"}},
            "configs": {"site": {"content": "server {}"}}
        }));
        let files = carried_files(Method::Static, &app).unwrap();
        let got: Vec<_> = files
            .iter()
            .map(|f| (f.path.as_str(), f.source.as_deref(), f.mode.as_deref(), f.uid, f.gid))
            .collect();
        assert_eq!(
            got,
            [
                ("etc/compose/secrets", None, Some("0700"), None, None),
                ("etc/compose/configs", None, Some("0755"), None, None),
                (
                    "etc/compose/secrets/page",
                    Some("dist/compose-static/files/secrets/page"),
                    Some("0400"),
                    Some(101),
                    Some(101)
                ),
                (
                    "etc/compose/configs/site",
                    Some("dist/compose-static/files/configs/site"),
                    Some("0444"),
                    Some(0),
                    Some(0)
                ),
            ]
        );
        let yaml = serde_yaml::to_string(&files[2]).unwrap();
        assert!(yaml.contains("uid: 101\ngid: 101\n"), "LinuxKit's fields: {yaml}");
    }

    /// What the build writes for a secret is its owner's alone, also when it
    /// changes (a 0400 file is replaced, not written over).
    #[test]
    fn staged_secrets_are_private() {
        let dir = TestDir::new("private");
        let path = dir.join("files/secrets/s");
        write_private(&path, b"one", 0o400).unwrap();
        write_private(&path, b"two", 0o400).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o400);
        assert_eq!(mode(&dir.join("files/secrets")), 0o700);
        assert_eq!(mode(&dir.join("files")), 0o700);
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
        // run.sh is bound without `:ro`: what the service writes there stays,
        // on an overlay of the project folder whose upper layer is on the disk.
        let kept = project_data(&app);
        assert_eq!(
            kept,
            ProjectData {
                writable: Some(PROJECT_IN_VM.into()),
                made: vec![]
            }
        );
        let mut payload = static_vm::payload();
        payload.project_data = kept;
        let config = moby::compose(&compose_refs(), &payload);
        let data = config.onboot.iter().find(|c| c.name == "data").unwrap();
        assert_eq!(
            data.command.as_deref().unwrap(),
            ["/usr/bin/data-disk", "--writable", PROJECT_IN_VM, moby::ENGINE_VOLUMES]
        );
        assert_eq!(
            data.binds_add,
            ["/etc/compose/project:/etc/compose/project:rshared,rbind"]
        );
    }

    fn compose_refs() -> moby::Refs {
        [
            "kernel", "init", "crun", "modules", "network", "getty", "data", "docker", "compose",
        ]
        .map(|n| (n.to_string(), format!("{n}:x")))
        .into_iter()
        .collect()
    }

    /// A bind of a project folder that is not there (`./data/db`, where the
    /// database writes): Docker makes it on its host and the data stays
    /// there; the VM carries it empty and keeps it on the data disk.
    #[test]
    fn a_project_folder_that_is_not_there_is_made_and_kept_on_the_data_disk() {
        let project = crate::base::project::for_tests();
        let dir = TestDir::new("made");
        let file = dir.join("compose.yaml");
        std::fs::write(
            &file,
            format!(
                "services:\n  web:\n    build: {}\n    volumes:\n      - ./data/db:/var/lib/postgresql/data\n",
                project.root.join("apps/a").display()
            ),
        )
        .unwrap();
        let app = load(&file);
        // Only read by the app (no bind of a file that is there): the project
        // folder stays as the VM image has it.
        assert_eq!(
            project_data(&app),
            ProjectData {
                writable: None,
                made: vec!["/etc/compose/project/data/db".into()]
            }
        );
        let files = project_files(Method::Static, &app).unwrap();
        let dirs: Vec<&str> = files
            .iter()
            .map(|f| {
                assert!(f.source.is_none() && f.contents.is_none(), "{f:?}");
                f.path.as_str()
            })
            .collect();
        assert_eq!(
            dirs,
            [
                "etc/compose/project",
                "etc/compose/project/data",
                "etc/compose/project/data/db"
            ]
        );
        let mut payload = static_vm::payload();
        payload.project_data = project_data(&app);
        let config = moby::compose(&compose_refs(), &payload);
        let data = config.onboot.iter().find(|c| c.name == "data").unwrap();
        assert_eq!(
            data.command.as_deref().unwrap(),
            [
                "/usr/bin/data-disk",
                moby::ENGINE_VOLUMES,
                "/etc/compose/project/data/db"
            ]
        );
        // The data step mounts the disk's folder on the VM's, not its own.
        assert_eq!(
            data.binds_add,
            ["/etc/compose/project/data/db:/etc/compose/project/data/db:rshared,rbind"]
        );
    }
}
