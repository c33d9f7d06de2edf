//! The VMs this project describes in LinuxKit YAML (the model is `moby`):
//! where each VM's YAML is written, and `linuxkit build` turning it into a
//! kernel and initrd under `dist/`.

use std::{fs, path::PathBuf};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::{
    base::{exec, files, project::Project, ui},
    building::{gotools, images},
    moby::{compose, render, smoke, ComposePayload, Config, Refs, BASE_IMAGES, CONSOLE_SHELL, DATA_IMAGE},
    vm::{sbom, sums},
};

/// A VM this project knows how to describe.
pub struct Vm {
    pub name: String,
    pub images: Vec<&'static str>,
    pub config: Box<dyn Fn(&Refs) -> Config>,
    /// Is this the VM `linuxkit/<name>.yml` describes (the repository's own
    /// input)? Otherwise its YAML is written to `dist/<name>.yml`.
    pub checked_in: bool,
    /// `linuxkit build` makes only the base of the initrd (`dist/<name>-base-initrd.img`);
    /// the caller appends the rest.
    pub base_initrd: bool,
    /// What else the build depends on that the YAML does not show (the
    /// digests of app images it names by tag).
    pub inputs: String,
}

pub fn smoke_vm() -> Vm {
    let mut images = BASE_IMAGES.to_vec();
    images.push("nginx");
    Vm {
        name: "smoke".into(),
        images,
        config: Box::new(smoke),
        checked_in: true,
        base_initrd: false,
        inputs: String::new(),
    }
}

/// `cargo xtask smoke`: the smoke VM built, its SBOM and dist/SHA256SUMS.
pub fn build_smoke(sh: &Shell, project: &Project) -> Result<Artifacts> {
    let smoke = smoke_vm();
    let built = build(sh, project, &smoke)?;
    let mut recipes = smoke.images.clone();
    if project.release {
        recipes.retain(|r| *r != CONSOLE_SHELL);
    }
    sbom::write(sh, project, &smoke.name, &recipes, None)?;
    sums::write(project)?;
    Ok(built)
}

pub fn compose_vm(name: &str, payload: ComposePayload) -> Vm {
    let mut images = BASE_IMAGES.to_vec();
    images.extend([DATA_IMAGE, "docker", "compose"]);
    Vm {
        name: name.into(),
        images,
        config: Box::new(move |refs| compose(refs, &payload)),
        checked_in: true,
        base_initrd: false,
        inputs: String::new(),
    }
}

impl Vm {
    pub fn yaml_path(&self, project: &Project) -> PathBuf {
        let dir = if self.checked_in && !project.release {
            project.root.join("linuxkit")
        } else {
            project.dist.clone()
        };
        dir.join(format!("{}.yml", self.name))
    }

    /// The configuration as the recipes stand now (tags are computed, nothing is built).
    pub fn config(&self, project: &Project) -> Result<Config> {
        let mut refs = Refs::new();
        for name in &self.images {
            refs.insert(name.to_string(), images::reference(name, &images::tag(project, name)?));
        }
        let mut config = (self.config)(&refs);
        if project.release {
            // A release VM: nothing listens on its console.
            config.services.retain(|s| s.name != CONSOLE_SHELL);
        }
        Ok(config)
    }

    pub fn yaml(&self, project: &Project) -> Result<String> {
        render(&self.config(project)?, "cargo xtask yaml")
    }

    /// Write its YAML ([`Vm::yaml_path`]) if it changed; returns its path and text.
    pub fn write_yaml(&self, project: &Project) -> Result<(PathBuf, String)> {
        let path = self.yaml_path(project);
        let yaml = self.yaml(project)?;
        fs::create_dir_all(path.parent().unwrap())?;
        if files::write_if_changed(&path, yaml.as_bytes())? {
            ui::note(format!("wrote {}", project.rel(&path).display()));
        }
        Ok((path, yaml))
    }
}

/// The kernel, initrd and command line `linuxkit build` wrote for a VM.
pub struct Artifacts {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    /// The read-only disk holding the services' root filesystems, where
    /// they are not in the initrd (see [`crate::vm::packed::Roots`]).
    pub roots: Option<PathBuf>,
}

/// Build the VM's images, write its YAML and run `linuxkit build` unless `dist/`
/// already holds the output of this exact YAML.
pub fn build(sh: &Shell, project: &Project, vm: &Vm) -> Result<Artifacts> {
    for name in &vm.images {
        images::ensure(sh, project, name)?;
    }
    let config = vm.config(project)?;
    let (yaml_path, yaml) = vm.write_yaml(project)?;
    let dist = &project.dist;
    let name = &vm.name;
    let artifacts = Artifacts {
        kernel: dist.join(format!("{name}-kernel")),
        initrd: dist.join(if vm.base_initrd {
            format!("{name}-base-initrd.img")
        } else {
            format!("{name}-initrd.img")
        }),
        cmdline: config.kernel.cmdline.clone(),
        roots: None,
    };
    // dist/<name>.stamp: the YAML the artifacts were built from, and the size
    // and mtime of every host file it copies in.
    let stamp = dist.join(format!("{name}.stamp"));
    let inputs = stamp_text(project, &yaml, &config)? + &vm.inputs;
    let current = artifacts.kernel.is_file()
        && artifacts.initrd.is_file()
        && fs::read_to_string(&stamp).ok().as_deref() == Some(inputs.as_str());
    if current {
        ui::cached(format!("linuxkit build {}", project.rel(&yaml_path).display()));
        return Ok(artifacts);
    }
    let linuxkit = gotools::ensure(sh, project, "linuxkit")?;
    let step = ui::step(format!(
        "linuxkit build {} (kernel+initrd)",
        project.rel(&yaml_path).display()
    ));
    // Build into a scratch folder and move the results in: dist/ never holds half an image.
    let tmp = dist.join(format!(".build-{name}"));
    if tmp.exists() {
        sh.remove_path(&tmp)?;
    }
    sh.create_dir(&tmp)?;
    let cache = project.linuxkit_cache();
    let built = exec::run(cmd!(
        sh,
        "{linuxkit} build --format kernel+initrd --no-sbom --cache {cache} --dir {tmp} --name {name} {yaml_path}"
    ))
    .with_context(|| format!("linuxkit build {}", yaml_path.display()));
    if built.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    built?;
    let _ = fs::remove_file(&stamp);
    for (wrote, out) in [
        (format!("{name}-kernel"), &artifacts.kernel),
        (format!("{name}-initrd.img"), &artifacts.initrd),
    ] {
        fs::rename(tmp.join(wrote), out).with_context(|| format!("linuxkit build wrote no {}", out.display()))?;
    }
    fs::write(&stamp, &inputs)?;
    sh.remove_path(&tmp)?;
    step.done_with("built");
    ui::note(format!(
        "{} ({} MB)",
        project.rel(&artifacts.initrd).display(),
        fs::metadata(&artifacts.initrd)?.len() / 1_000_000
    ));
    Ok(artifacts)
}

/// What decides whether `linuxkit build` must run again.
fn stamp_text(project: &Project, yaml: &str, config: &Config) -> Result<String> {
    let mut text = yaml.to_string();
    for source in config.files.iter().filter_map(|f| f.source.as_deref()) {
        let meta =
            fs::metadata(project.root.join(source)).with_context(|| format!("{source} (a file the VM carries)"))?;
        let mtime = meta.modified()?.duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        text += &format!("# source {source} {} {mtime}\n", meta.len());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moby::File;

    fn fake_refs() -> Refs {
        ["kernel", "init", "crun", "modules", "network", "getty", "nginx"]
            .into_iter()
            .map(|n| (n.to_string(), images::reference(n, "0123456789ab")))
            .collect()
    }

    #[test]
    fn smoke_yaml() {
        insta::assert_snapshot!(render(&smoke(&fake_refs()), "cargo xtask yaml").unwrap());
    }

    #[test]
    fn compose_yaml() {
        let mut refs = fake_refs();
        for n in ["data", "docker", "compose"] {
            refs.insert(n.into(), images::reference(n, "0123456789ab"));
        }
        let payload = ComposePayload {
            project_data: Default::default(),
            compose_file: "dist/compose-static/docker-compose.yml".into(),
            project_files: vec![File::source(
                "etc/compose/project/nginx.conf",
                "dist/compose-static/project/nginx.conf",
            )],
            daemon_json: "{}\n".into(),
            cmdline: vec!["linuxkit_compose.registry=r.example.com/team".into()],
            pulls: true,
        };
        insta::assert_snapshot!(render(&compose(&refs, &payload), "cargo xtask yaml").unwrap());
    }

    /// A release VM has nothing on its console; a development VM has the shell.
    #[test]
    fn release_vms_have_no_console_shell() {
        let mut project = crate::base::project::for_tests();
        let app = crate::building::apps::testing::default_app();
        let services = |project: &Project, vm: &Vm| -> Vec<String> {
            vm.config(project)
                .unwrap()
                .services
                .iter()
                .map(|s| s.name.clone())
                .collect()
        };
        let vms = || [smoke_vm(), crate::vm::static_vm::vm(&project_dev(), &app).unwrap()];
        for vm in vms() {
            assert!(
                services(&project, &vm).contains(&CONSOLE_SHELL.to_string()),
                "{}",
                vm.name
            );
        }
        project.release = true;
        project.dist = project.dist.join("release");
        for vm in vms() {
            let names = services(&project, &vm);
            assert!(!names.contains(&CONSOLE_SHELL.to_string()), "{}: {names:?}", vm.name);
            assert!(!names.is_empty(), "{}: the app's services stay", vm.name);
            assert_eq!(
                vm.yaml_path(&project).parent().unwrap(),
                project.dist,
                "release YAML is not checked in"
            );
        }
    }

    fn project_dev() -> Project {
        crate::base::project::for_tests()
    }

    /// linuxkit/*.yml is checked in so readers can see what the VM is made of; it
    /// must match what the recipes give now.
    #[test]
    fn checked_in_yaml_is_current() {
        let project = crate::base::project::for_tests();
        let app = crate::building::apps::testing::default_app();

        for vm in [
            smoke_vm(),
            crate::vm::static_vm::vm(&project, &app).unwrap(),
            crate::vm::dynamic_vm::vm(&project, &app, None).unwrap(),
        ] {
            let on_disk = fs::read_to_string(vm.yaml_path(&project)).unwrap_or_default();
            assert!(
                on_disk == vm.yaml(&project).unwrap(),
                "linuxkit/{}.yml is stale: run `cargo xtask yaml` and commit the result",
                vm.name
            );
        }
    }
}
