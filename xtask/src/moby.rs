//! The LinuxKit YAML model: the subset of LinuxKit's schema this project
//! writes (kernel, init, onboot and service containers, files), the base every
//! VM shares, the smoke VM and the compose VMs' configurations. Named after
//! LinuxKit's own `moby` package, which owns the same model there. Pure: it
//! runs nothing and knows no compose app.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

/// A LinuxKit configuration, the subset of the schema this project writes.
#[derive(Debug, Serialize, PartialEq)]
pub struct Config {
    pub kernel: Kernel,
    pub init: Vec<String>,
    pub onboot: Vec<Container>,
    pub services: Vec<Container>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<File>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Kernel {
    pub image: String,
    pub cmdline: String,
}

/// An onboot or service container. Fields left empty take LinuxKit's
/// defaults (or the image's `org.mobyproject.config` label); the native
/// method spells out everything a Docker engine would have given.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly: Option<bool>,
    /// The OCI process's `noNewPrivileges`: setuid programs and file
    /// capabilities grant nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_new_privileges: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<String>,
    /// Binds added to the image's own (`binds.add`).
    #[serde(rename = "binds.add", skip_serializing_if = "Vec::is_empty")]
    pub binds_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// The OCI runtime spec's `linux.resources`, as LinuxKit's `resources:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The cgroup limits a container gets (OCI `LinuxResources`, the part of it
/// compose sets).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Limit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuQuota>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<Limit>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Limit {
    pub limit: i64,
}

/// A CPU limit as a CFS quota: `quota` microseconds of CPU time in each
/// `period`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct CpuQuota {
    pub quota: i64,
    pub period: u64,
}

/// An OCI mount as LinuxKit's `mounts:` takes it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub destination: String,
    pub options: Vec<String>,
}

/// A file (or directory) LinuxKit puts into the VM's root.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct File {
    pub path: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub directory: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contents: Option<String>,
    /// A host file, relative to the repository root (`linuxkit build` runs there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The owner (LinuxKit's default: root).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

impl File {
    pub fn contents(path: &str, contents: &str) -> File {
        File {
            path: path.into(),
            contents: Some(contents.into()),
            mode: Some("0644".into()),
            ..Default::default()
        }
    }

    pub fn source(path: &str, source: &str) -> File {
        File {
            path: path.into(),
            source: Some(source.into()),
            mode: Some("0644".into()),
            ..Default::default()
        }
    }

    /// A directory, 0755 (LinuxKit's default for every entry is 0600, which
    /// keeps services that do not run as root out of it).
    pub fn directory(path: &str) -> File {
        File {
            path: path.into(),
            directory: true,
            mode: Some("0755".into()),
            ..Default::default()
        }
    }
}

/// The VM images every configuration is built on, by recipe folder name.
pub const BASE_IMAGES: [&str; 6] = ["kernel", "init", "crun", "modules", "network", "getty"];

/// The service that gives a root shell on the serial console (not in release VMs).
pub const CONSOLE_SHELL: &str = "getty";

/// Image references by recipe name (`linuxkit-compose.local/NAME:TAG`).
pub type Refs = BTreeMap<String, String>;

/// The kernel command line: serial console, and a panic reboots (QEMU runs with
/// -no-reboot, so a panicking VM ends instead of hanging the caller).
/// `loglevel=5`: the console shows warnings and worse (oopses, BUG, panics
/// included), not the hundreds of informational boot lines.
pub const CMDLINE: &str = "console=ttyS0 panic=1 loglevel=5";

/// The base every VM shares: kernel, init + crun, kernel modules and DHCP at boot,
/// a shell on the serial console.
pub fn base(refs: &Refs) -> Config {
    let img = |name: &str| {
        refs.get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no reference for image {name}"))
    };
    Config {
        kernel: Kernel {
            image: img("kernel"),
            cmdline: CMDLINE.into(),
        },
        init: vec![img("init"), img("crun")],
        onboot: vec![
            Container {
                name: "modules".into(),
                image: img("modules"),
                ..Default::default()
            },
            Container {
                name: "network".into(),
                image: img("network"),
                ..Default::default()
            },
        ],
        services: vec![Container {
            name: "getty".into(),
            image: img("getty"),
            // It still starts when a required onboot step failed, to look into why.
            annotations: BTreeMap::from([(lkc_contract::CONSOLE.to_string(), "true".to_string())]),
            ..Default::default()
        }],
        files: vec![File::contents("etc/hostname", "linuxkit-compose\n")],
    }
}

/// The onboot image that keeps named volumes on the VM's data disk.
pub const DATA_IMAGE: &str = "data";

/// What the data step keeps of the project the VM carries (the files and
/// folders its services bind-mount, under `/etc/compose/project`), besides
/// the volumes: see `vm::shared::project_data`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectData {
    /// The project folder in the VM, when a service bind-mounts a file or
    /// folder of it that is there read-write: an overlay whose upper layer is
    /// on the data disk, so that what services write there stays from boot to
    /// boot, as it stays in the folder on Docker's host.
    pub writable: Option<String>,
    /// The project folders the services bind-mount that the build did not
    /// find, in the VM: made empty, each kept on the data disk.
    pub made: Vec<String>,
}

impl ProjectData {
    pub fn is_empty(&self) -> bool {
        self.writable.is_none() && self.made.is_empty()
    }
}

/// The onboot container that finds the VM's data disk, formats it when blank,
/// mounts it and binds each of `dirs` (folders of named volumes) and of
/// `fresh` (folders emptied at each boot: anonymous volumes) from it, with
/// what it keeps of the project (`project`) (images/data/data-disk).
/// Required: if it fails, the runner starts none of the app's services,
/// rather than keep their volumes in memory. The image binds the VM's /var
/// in, shared, so that what it mounts there is the VM's; a folder elsewhere
/// (the project's) is bound in the same way. With an `engine` root, the whole
/// of a Docker engine's state is kept there too (the images it pulled), but
/// for what an earlier boot's containers left.
pub fn data(refs: &Refs, engine: Option<&str>, dirs: &[&str], project: &ProjectData, fresh: &[&str]) -> Container {
    let kept: Vec<&str> = dirs
        .iter()
        .copied()
        .chain(project.made.iter().map(String::as_str))
        .collect();
    let binds_add = project
        .writable
        .iter()
        .map(String::as_str)
        .chain(engine)
        .chain(kept.iter().copied())
        .chain(fresh.iter().copied())
        .filter(|d| !d.starts_with("/var/"))
        .map(|d| format!("{d}:{d}:rshared,rbind"))
        .collect();
    let mut command = vec!["/usr/bin/data-disk".to_string()];
    if let Some(dir) = &project.writable {
        command.extend(["--writable".to_string(), dir.clone()]);
    }
    if let Some(root) = engine {
        command.extend(["--engine".to_string(), root.to_string()]);
    }
    command.extend(kept.iter().map(|d| d.to_string()));
    if !fresh.is_empty() {
        command.push("--fresh".into());
        command.extend(fresh.iter().map(|d| d.to_string()));
    }
    Container {
        name: "data".into(),
        image: refs[DATA_IMAGE].clone(),
        command: Some(command),
        binds_add,
        annotations: BTreeMap::from([(lkc_contract::REQUIRED.to_string(), "true".to_string())]),
        ..Default::default()
    }
}

/// Where a Docker engine keeps its state: images, containers, volumes.
pub const ENGINE_ROOT: &str = "/var/lib/docker";
/// Where a Docker engine keeps its named volumes.
pub const ENGINE_VOLUMES: &str = "/var/lib/docker/volumes";

/// The page the smoke VM serves; test-boot --smoke expects exactly this body.
pub const SMOKE_PAGE: &str = "linuxkit-compose smoke test: nginx is serving from a LinuxKit VM\n";

/// The smoke VM: the base plus one nginx service serving [`SMOKE_PAGE`].
pub fn smoke(refs: &Refs) -> Config {
    let mut config = base(refs);
    config.services.push(Container {
        name: "nginx".into(),
        image: refs["nginx"].clone(),
        net: Some("host".into()),
        binds: vec!["/etc/smoke:/usr/share/nginx/html:ro".into()],
        ..Default::default()
    });
    config.files.push(File::contents("etc/smoke/index.html", SMOKE_PAGE));
    config
}

pub fn render(config: &Config, regenerate: &str) -> Result<String> {
    let body = serde_yaml::to_string(config)?;
    Ok(format!(
        "# Generated by `{regenerate}` from images/, pins.yml and compose/: do not edit.\n{body}"
    ))
}

/// What a compose VM carries besides the base: the compose file it runs, the
/// project files its services bind-mount, and the Docker engine's daemon.json.
#[derive(Debug, Clone, PartialEq)]
pub struct ComposePayload {
    /// Repository-relative path of the compose file the VM runs.
    pub compose_file: String,
    /// The project's files and folders the services bind-mount, under
    /// `etc/compose/project/` in the VM.
    pub project_files: Vec<File>,
    /// What the data step keeps of the project besides the engine's volumes.
    pub project_data: ProjectData,
    pub daemon_json: String,
    /// Extra kernel command-line parameters (the dynamic method's registry).
    pub cmdline: Vec<String>,
    /// The engine pulls its images at boot: its whole store is kept on the
    /// data disk (a Docker host's /var/lib/docker), not only its volumes, so
    /// that pulled images take no memory and the next boot has them.
    pub pulls: bool,
}

/// A compose VM: the base, a Docker engine, and the compose runner with the
/// app's compose file (the static method appends its images to the initrd).
pub fn compose(refs: &Refs, payload: &ComposePayload) -> Config {
    let mut config = base(refs);
    for param in &payload.cmdline {
        config.kernel.cmdline = format!("{} {param}", config.kernel.cmdline);
    }
    // A static VM's images are in its initrd: only the volumes go to the disk.
    let data = if payload.pulls {
        data(refs, Some(ENGINE_ROOT), &[], &payload.project_data, &[])
    } else {
        data(refs, None, &[ENGINE_VOLUMES], &payload.project_data, &[])
    };
    config.onboot.push(data);
    for name in ["docker", "compose"] {
        config.services.push(Container {
            name: name.into(),
            image: refs[name].clone(),
            ..Default::default()
        });
    }
    config.files.push(File::directory("var/lib/docker"));
    config
        .files
        .push(File::contents("etc/docker/daemon.json", &payload.daemon_json));
    config
        .files
        .push(File::source("etc/compose/docker-compose.yml", &payload.compose_file));
    config.files.extend(payload.project_files.iter().cloned());
    config
}
