//! The native method: every compose service becomes a LinuxKit service, run
//! by the VM's own init and crun; no Docker engine, no compose, no image
//! tarballs in the VM. What a Docker engine would give each container is
//! written out in the LinuxKit YAML (`process`: the process, user and
//! capabilities; `network`: the networks, names and published ports), the
//! compose semantics LinuxKit has no field for (start order, restart policy,
//! healthcheck) travel as annotations the VM's service runner reads, and
//! traefik's docker provider becomes its file provider (`traefik`).
//! Every compose key is checked against `keys` first: what is not carried
//! over is an error, all of them at once, unless the user allows it.

pub mod image;
pub mod keys;
pub mod network;
pub mod process;
mod router;
mod service;
pub mod traefik;

use std::collections::BTreeMap;

use anyhow::Result;

use crate::{
    app::{compose::App, keys::Scope},
    moby::{self, Config, Container, File, ProjectData, Refs},
};

use image::Facts;
use keys::Support;
use network::Plan;

/// Where the VM keeps what the conversion writes.
const NATIVE_DIR: &str = "etc/native";
/// Where the native VM keeps volumes.
const VOLUMES_ROOT: &str = "var/lib/native";
/// Named volumes, one folder each.
const VOLUMES_DIR: &str = "var/lib/native/volumes";
/// Anonymous volumes, a folder each, named SERVICE.INDEX (the volume's index
/// in the service's `volumes`): on the data disk, emptied at each boot (in
/// memory without a disk).
const ANONYMOUS_DIR: &str = "var/lib/native/anonymous";
/// Where the traefik service finds its generated dynamic configuration.
const TRAEFIK_DYNAMIC: &str = "/etc/traefik-native/dynamic.yml";
/// Where the traefik service finds its default TLS certificate, and where the
/// service runner makes it before traefik starts (`traefik::DefaultCertificate`).
const TRAEFIK_TLS: &str = "/etc/traefik-native/tls";
const TRAEFIK_TLS_MADE: &str = "/run/native/traefik-tls";
/// The kernel modules the native VM loads at boot: the NIC, RNG and disk
/// (the data disk), the power button and its input events (a clean stop),
/// overlayfs for the services' root filesystems, bridges and veths for the
/// app's networks, nftables with NAT for its ports and masquerade.
const NATIVE_MODULES: [&str; 13] = [
    "virtio_net",
    "virtio_rng",
    "virtio_blk",
    "button",
    "evdev",
    "overlay",
    "bridge",
    "veth",
    "nf_tables",
    "nft_chain_nat",
    "nft_nat",
    "nft_masq",
    "nft_fib_ipv4",
];

/// Base services whose names a compose service may not take.
const RESERVED: [&str; 5] = ["getty", "modules", "network", "netns", "data"];

/// Every capability LinuxKit knows (`privileged`, `cap_add: [ALL]`).
pub const ALL_CAPS: [&str; 41] = [
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_PERFMON",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYSLOG",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_WAKE_ALARM",
];

/// The app converted: the LinuxKit services and the files they need.
#[derive(Debug, Clone)]
pub struct Native {
    pub services: Vec<Container>,
    pub files: Vec<File>,
    /// A service mounts a volume, or writes to the project: the VM keeps
    /// them on its data disk.
    pub volumes: bool,
    /// What the data step keeps of the project (`shared::project_data`).
    pub project_data: ProjectData,
    /// Keys carried over only approximately, or left out with
    /// `--allow-unsupported`: said at every build.
    pub notes: Vec<String>,
}

/// What the conversion needs besides the app: each image's facts, and where
/// the project's bind-mounted files are in the VM.
pub struct Inputs<'a> {
    pub facts: &'a BTreeMap<String, Facts>,
    /// `linuxkit::File`s for the project's bind-mounted files (under
    /// `project_dir`) and the app's secrets and configs (under `files_dir`).
    pub project_files: Vec<File>,
    pub project_dir: &'a str,
    /// What the data step keeps of the project (`shared::project_data`).
    pub project_data: ProjectData,
    /// Where the VM carries the files of the app's secrets and configs.
    pub files_dir: &'a str,
}

/// An app the conversion can carry over: its network plan, and the notes
/// (approximations, and with `--allow-unsupported` what is left out).
#[derive(Debug)]
pub struct Checked {
    plan: Plan,
    pub notes: Vec<String>,
}

/// Check `app` for what the conversion cannot carry over, without its images:
/// every compose key against the table, the networks, the service names.
/// Every problem comes back at once.
pub fn check(app: &App) -> Result<Checked, Vec<String>> {
    let mut refused = Vec::new();
    let mut notes = Vec::new();
    check_keys(app, &mut refused, &mut notes);
    let published: Vec<_> = app.published().into_iter().map(|(p, s)| (p, s.name.clone())).collect();
    let mut problems = Vec::new();
    let plan = network::plan(app, &published).map_err(|e| {
        problems.extend(e);
    });
    for s in &app.services {
        if RESERVED.contains(&s.name.as_str()) {
            problems.push(format!(
                "service `{}`: the name is taken by the VM's own `{}` service",
                s.name, s.name
            ));
        }
    }
    if !refused.is_empty() && !app.allow_unsupported {
        problems.extend(
            refused
                .iter()
                .map(|r| format!("{r} (build anyway with --allow-unsupported)")),
        );
    } else if !refused.is_empty() {
        notes.push(format!(
            "left out with --allow-unsupported ({}): {}",
            refused.len(),
            refused.join("; ")
        ));
    }
    // External secrets and configs, undefined ones, ids that are not numbers.
    if let Err(e) = app.files() {
        problems.extend(e);
    }
    match plan {
        Ok(plan) if problems.is_empty() => Ok(Checked { plan, notes }),
        _ => Err(problems),
    }
}

/// Convert `app`, as [`check`] found it. Every key that is not carried over
/// is an error naming the service and the key path, all of them at once.
pub fn convert(app: &App, checked: Checked, inputs: &Inputs) -> Result<Native, Vec<String>> {
    let Checked { plan, notes } = checked;
    let project = app.project.clone();
    let mut problems = Vec::new();
    let mut out = Native {
        services: Vec::new(),
        files: vec![
            File::directory(NATIVE_DIR),
            File::directory(&format!("{NATIVE_DIR}/hosts")),
            File {
                mode: Some("0755".into()),
                ..File::contents(&format!("{NATIVE_DIR}/network.sh"), &plan.script())
            },
            File::contents(&format!("{NATIVE_DIR}/nat.nft"), &plan.nft()),
        ],
        volumes: needs_data_disk(app, &inputs.project_data),
        project_data: inputs.project_data.clone(),
        notes,
    };
    out.files.extend(inputs.project_files.iter().cloned());
    let volume_dirs_at = out.files.len();
    let mut volumes: Vec<String> = Vec::new();
    for s in &app.services {
        let facts = inputs.facts.get(app.image_of(s).as_str()).cloned().unwrap_or_default();
        match service::service(app, &project, s, &facts, &plan, inputs) {
            Ok((container, files, vols)) => {
                out.services.push(container);
                out.files.extend(files);
                for v in vols {
                    if !volumes.contains(&v) {
                        volumes.push(v);
                    }
                }
            }
            Err(errs) => problems.extend(errs.into_iter().map(|e| format!("service `{}`: {e}", s.name))),
        }
    }
    // The volumes' parent folders, before the services' files that go in them.
    let anonymous = out.files.iter().any(|f| f.path.starts_with(ANONYMOUS_DIR));
    let mut parents = Vec::new();
    if !volumes.is_empty() || anonymous {
        parents.push(File::directory(VOLUMES_ROOT));
    }
    if anonymous {
        parents.push(File::directory(ANONYMOUS_DIR));
    }
    out.files.splice(volume_dirs_at..volume_dirs_at, parents);
    if !volumes.is_empty() {
        out.files.push(File::directory(VOLUMES_DIR));
        for v in volumes {
            out.files.push(File::directory(&format!("{VOLUMES_DIR}/{v}")));
        }
    }
    if let Err(e) = router::convert_traefik(app, &project, &plan, inputs, &mut out) {
        problems.extend(e);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(out)
}

/// Check every key the app sets against the table: refused ones into
/// `refused`, approximated ones into `notes`.
fn check_keys(app: &App, refused: &mut Vec<String>, notes: &mut Vec<String>) {
    let mut approximated: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (scope, path, key) in app.set_keys(keys::SERVICE, keys::TOP) {
        let scope = match scope {
            Scope::Service(name) => format!("service `{name}`"),
            Scope::Top => "top level".to_string(),
        };
        match key.map(|k| k.support) {
            Some(Support::Carried) => {}
            Some(Support::Approximated) => approximated
                .entry(format!("{} ({})", strip_index(&path), key.expect("some").how))
                .or_default()
                .push(scope),
            Some(Support::Refused) => refused.push(format!(
                "{scope}: `{path}` is not carried over by the native method: {}",
                key.expect("some").how
            )),
            None => refused.push(format!("{scope}: `{path}` is not carried over by the native method")),
        }
    }
    for (what, scopes) in approximated {
        notes.push(format!("approximated: `{what}` in {}", scopes.join(", ")));
    }
}

/// `ports[3].host_ip` -> `ports[].host_ip`, for one note per key.
fn strip_index(path: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for c in path.chars() {
        match c {
            '[' => {
                skipping = true;
                out.push('[');
            }
            ']' => {
                skipping = false;
                out.push(']');
            }
            _ if skipping => {}
            _ => out.push(c),
        }
    }
    out
}

/// Does a service of `app` mount a volume, named or anonymous? Then the VM
/// keeps them on its data disk (the `data` onboot container): named ones
/// from boot to boot, anonymous ones for one boot, as the engine keeps both
/// on its disk and not in memory.
fn keeps_volumes(app: &App) -> bool {
    app.services.iter().any(|s| s.mounts.iter().any(|m| m.kind == "volume"))
}

/// Does the native VM of `app` have the data step: it keeps volumes, or
/// keeps what services write to the project (`shared::project_data`)?
pub fn needs_data_disk(app: &App, project_data: &ProjectData) -> bool {
    keeps_volumes(app) || !project_data.is_empty()
}

/// The native VM's LinuxKit configuration: the base, the `netns` onboot
/// container that makes the networks, the `data` one that mounts the data
/// disk on the volumes' folder (if the app has named volumes), and the app's
/// services.
pub fn config(refs: &Refs, native: &Native) -> Config {
    let mut config = moby::base(refs);
    // Only the modules a VM without a Docker engine loads (no iptables, no
    // br_netfilter): each costs boot time under emulation.
    if let Some(modules) = config.onboot.iter_mut().find(|c| c.name == "modules") {
        let mut command = vec!["/usr/bin/busybox".to_string(), "modprobe".into(), "-a".into()];
        command.extend(NATIVE_MODULES.iter().map(|m| m.to_string()));
        modules.command = Some(command);
    }
    config.onboot.push(Container {
        name: "netns".into(),
        image: refs["netns"].clone(),
        ..Default::default()
    });
    if native.volumes {
        config.onboot.push(moby::data(
            refs,
            None,
            &[&format!("/{VOLUMES_DIR}")],
            &native.project_data,
            &[&format!("/{ANONYMOUS_DIR}")],
        ));
    }
    config.services.extend(native.services.iter().cloned());
    config.files.extend(native.files.iter().cloned());
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moby::{CpuQuota, Limit, Resources};
    use lkc_contract as contract;
    use serde_json::json;
    use std::path::Path;

    /// An app using most of what the conversion carries over, as compose's model.
    fn shop(extra_web: serde_json::Value) -> App {
        let mut model = json!({
            "name": "shop",
            "networks": {
                "back": {"name": "shop_back", "internal": true, "ipam": {}},
                "front": {"name": "shop_front", "ipam": {}}
            },
            "volumes": {"data": {"name": "shop_data"}},
            "services": {
                "db": {
                    "command": null, "entrypoint": null,
                    "image": "postgres:16",
                    "environment": {"POSTGRES_PASSWORD": "secret"},
                    "healthcheck": {"test": ["CMD", "pg_isready", "-U", "postgres"], "interval": "2s", "retries": 5},
                    "networks": {"back": null},
                    "volumes": [{"type": "volume", "source": "data", "target": "/var/lib/postgresql/data", "volume": {}}]
                },
                "web": {
                    "command": ["serve", "--port", "8000"], "entrypoint": null,
                    "image": "shop/web:1",
                    "environment": {"DB_HOST": "db", "MODE": "prod"},
                    "user": "app",
                    "working_dir": "/srv",
                    "hostname": "shop-web",
                    "read_only": true,
                    "tmpfs": ["/tmp:size=16m"],
                    "shm_size": "134217728",
                    "sysctls": {"net.core.somaxconn": "1024"},
                    "ulimits": {"nofile": {"soft": 1000, "hard": 2000}, "nproc": 512},
                    "cap_add": ["NET_ADMIN"],
                    "cap_drop": ["MKNOD"],
                    "oom_score_adj": 100,
                    "stop_signal": "SIGINT",
                    "stop_grace_period": "3s",
                    "restart": "on-failure:3",
                    "depends_on": {"db": {"condition": "service_healthy", "required": true}},
                    "extra_hosts": ["upstream=192.0.2.10"],
                    "labels": {"com.example.team": "shop"},
                    "ports": [{"mode": "ingress", "target": 8000, "published": "8080", "protocol": "tcp"}],
                    "networks": {"front": {"aliases": ["www"]}, "back": null},
                    "volumes": [
                        {"type": "bind", "source": "/project/conf", "target": "/srv/conf", "read_only": true, "bind": {"create_host_path": true}},
                        {"type": "volume", "source": "data", "target": "/srv/data", "volume": {"subpath": "web"}},
                        {"type": "tmpfs", "target": "/srv/cache", "tmpfs": {"size": "1048576"}},
                        {"type": "volume", "target": "/srv/node_modules"},
                        {"type": "volume", "source": "data", "target": "/srv/raw", "volume": {"nocopy": true}}
                    ]
                }
            }
        });
        if let Some(extra) = extra_web.as_object() {
            for (k, v) in extra {
                model["services"]["web"][k] = v.clone();
            }
        }
        App::from_config(Path::new("compose.yaml"), Path::new("/project"), &model.to_string()).unwrap()
    }

    fn shop_facts() -> BTreeMap<String, Facts> {
        let mut web = Facts {
            entrypoint: vec!["/usr/local/bin/shop".into()],
            cmd: vec!["serve".into()],
            env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into(), "MODE=dev".into()],
            user: "root".into(),
            exposed: vec!["8000/tcp".into()],
            ..Default::default()
        };
        web.files.insert(
            "etc/passwd".into(),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n".into(),
        );
        web.files
            .insert("etc/group".into(), "root:x:0:\napp:x:1000:\nshop:x:2000:app\n".into());
        let mut db = Facts {
            entrypoint: vec!["docker-entrypoint.sh".into()],
            cmd: vec!["postgres".into()],
            env: vec!["PATH=/usr/bin:/bin".into()],
            exposed: vec!["5432/tcp".into()],
            ..Default::default()
        };
        db.files
            .insert("etc/passwd".into(), "root:x:0:0:root:/root:/bin/sh\n".into());
        [("shop/web:1".to_string(), web), ("postgres:16".to_string(), db)]
            .into_iter()
            .collect()
    }

    /// The conversion's inputs for the shop app: no project files, and
    /// `made` as the project folders the build did not find.
    fn shop_inputs(facts: &BTreeMap<String, Facts>, made: Vec<String>) -> Inputs<'_> {
        Inputs {
            facts,
            project_files: vec![],
            project_dir: "/etc/compose/project",
            project_data: ProjectData { writable: None, made },
            files_dir: "/etc/compose",
        }
    }

    fn fake_refs() -> Refs {
        ["kernel", "init", "crun", "modules", "network", "getty", "netns", "data"]
            .into_iter()
            .map(|n| (n.to_string(), format!("linuxkit-compose.local/{n}:0123456789ab")))
            .collect()
    }

    /// The LinuxKit YAML of an app using most conversion rules: the process by
    /// Docker's rules, capabilities, mounts, limits, networks, hosts files,
    /// the runner's annotations.
    #[test]
    fn shop_as_linuxkit_yaml() {
        let facts = shop_facts();
        let inputs = shop_inputs(&facts, Vec::new());
        let app = shop(json!({}));
        let native = convert(&app, check(&app).unwrap(), &inputs).unwrap();
        let yaml = moby::render(&config(&fake_refs(), &native), "cargo xtask native").unwrap();
        insta::assert_snapshot!(yaml);
        assert!(
            native.notes.iter().any(|n| n.contains("depends_on.db.required")),
            "approximations are said: {:?}",
            native.notes
        );
    }

    /// A project folder the build did not find: the data step keeps it on
    /// the data disk with the volumes, bound into that step's container.
    #[test]
    fn a_project_folder_the_build_did_not_find_is_kept_on_the_data_disk() {
        let facts = shop_facts();
        let inputs = shop_inputs(&facts, vec!["/etc/compose/project/data/db".into()]);
        let app = shop(json!({}));
        let native = convert(&app, check(&app).unwrap(), &inputs).unwrap();
        let config = config(&fake_refs(), &native);
        let data = config.onboot.iter().find(|c| c.name == "data").unwrap();
        assert_eq!(
            data.command.as_deref().unwrap(),
            [
                "/usr/bin/data-disk",
                "/var/lib/native/volumes",
                "/etc/compose/project/data/db",
                "--fresh",
                "/var/lib/native/anonymous"
            ]
        );
        assert_eq!(
            data.binds_add,
            ["/etc/compose/project/data/db:/etc/compose/project/data/db:rshared,rbind"]
        );
    }

    /// Keys the conversion does not carry over: all of them refused at once,
    /// or, when allowed, each listed and left out.
    #[test]
    fn unsupported_keys_are_refused_or_listed() {
        let app = shop(json!({"ipc": "host", "pid": "host", "devices": ["/dev/fuse"]}));
        let errs = check(&app).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(
            errs[0].starts_with("service `web`: `devices` is not carried over"),
            "{errs:#?}"
        );
        let mut allowed = app;
        allowed.allow_unsupported = true;
        let notes = check(&allowed).unwrap().notes;
        assert!(
            notes
                .iter()
                .any(|n| n.contains("left out with --allow-unsupported (3)")),
            "{notes:#?}"
        );
    }

    /// compose's limits, `init` and `deploy.restart_policy` as Docker's
    /// engine applies them: the cgroup limits in the OCI spec (`--memory`,
    /// `--cpus` as a quota per 100 ms, `--pids-limit`), tini as PID 1 in
    /// front of the command, the restart policy compose makes of the
    /// deploy one; reservations are said to be ignored, replicas refused.
    #[test]
    fn limits_init_and_restart_policy_as_docker_applies_them() {
        let facts = shop_facts();
        let inputs = shop_inputs(&facts, Vec::new());
        let web = |app: &App| {
            let native = convert(app, check(app).unwrap(), &inputs).unwrap();
            let web = native.services.into_iter().find(|c| c.name == "web").unwrap();
            (web, native.notes)
        };
        let app = shop(json!({
            "init": true,
            "restart": null,
            "deploy": {
                "resources": {
                    "limits": {"cpus": 0.5, "memory": "268435456", "pids": 50},
                    "reservations": {"memory": "134217728"}
                },
                "restart_policy": {"condition": "on-failure", "max_attempts": 3},
                "placement": {}
            }
        }));
        let (container, notes) = web(&app);
        assert_eq!(
            container.resources,
            Some(Resources {
                memory: Some(Limit { limit: 268_435_456 }),
                cpu: Some(CpuQuota {
                    quota: 50_000,
                    period: 100_000
                }),
                pids: Some(Limit { limit: 50 }),
            })
        );
        assert_eq!(
            container.command.as_deref().unwrap()[..4],
            ["/sbin/docker-init", "--", "/usr/local/bin/shop", "serve"]
        );
        assert!(container
            .binds
            .contains(&"/usr/bin/tini-static:/sbin/docker-init:ro".to_string()));
        assert_eq!(container.annotations[contract::RESTART], "on-failure:3");
        assert!(
            notes.iter().any(|n| n.contains("deploy.resources.reservations.memory")),
            "{notes:?}"
        );

        let (container, _) = web(&shop(json!({"mem_limit": "314572800", "cpus": 1.5, "pids_limit": -1})));
        let resources = container.resources.unwrap();
        assert_eq!(resources.memory, Some(Limit { limit: 314_572_800 }));
        assert_eq!(
            resources.cpu,
            Some(CpuQuota {
                quota: 150_000,
                period: 100_000
            })
        );
        assert_eq!(resources.pids, None, "-1: no limit");
        assert_eq!(
            container.command.as_deref().unwrap()[0],
            "/usr/local/bin/shop",
            "no init"
        );

        let (container, _) = web(&shop(json!({})));
        assert_eq!(container.resources, None);

        let app = shop(json!({"deploy": {"replicas": 3}}));
        let errs = convert(&app, check(&app).unwrap(), &inputs).unwrap_err();
        assert!(errs.iter().any(|e| e.contains("`deploy.replicas` 3")), "{errs:?}");
    }

    /// A legacy link (`db:database`) names the database for the web service
    /// alone; `no-new-privileges` is the process's flag; an `unconfined`
    /// seccomp and an SELinux label are what the VM does anyway, while a
    /// seccomp profile it would not apply is refused.
    #[test]
    fn links_and_security_opt_as_docker_applies_them() {
        let facts = shop_facts();
        let inputs = shop_inputs(&facts, Vec::new());
        let app = shop(json!({
            "links": ["db:database"],
            "security_opt": ["no-new-privileges:true", "seccomp=unconfined", "label:disable"]
        }));
        let native = convert(&app, check(&app).unwrap(), &inputs).unwrap();
        let hosts = |name: &str| {
            let path = format!("{NATIVE_DIR}/hosts/{name}");
            native
                .files
                .iter()
                .find(|f| f.path == path)
                .unwrap()
                .contents
                .clone()
                .unwrap()
        };
        assert!(
            hosts("web")
                .lines()
                .any(|l| l.ends_with(" database") && l.contains("\tdb ")),
            "{}",
            hosts("web")
        );
        assert!(!hosts("db").contains("database"), "{}", hosts("db"));
        let web = native.services.iter().find(|c| c.name == "web").unwrap();
        assert_eq!(web.no_new_privileges, Some(true));
        let db = native.services.iter().find(|c| c.name == "db").unwrap();
        assert_eq!(db.no_new_privileges, None, "Docker's default");

        let app = shop(json!({"security_opt": ["seccomp=/etc/docker/strict.json"]}));
        let errs = convert(&app, check(&app).unwrap(), &inputs).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("no seccomp profile") && e.contains("strict.json")),
            "{errs:?}"
        );
    }

    /// Each secret and config a service uses: its file in the VM bound
    /// read-only at compose's target; an external one refused before anything
    /// is built.
    #[test]
    fn secrets_and_configs_are_read_only_binds_at_their_targets() {
        let facts = shop_facts();
        let inputs = shop_inputs(&facts, Vec::new());
        let mut model = shop(json!({})).model().clone();
        model["services"]["db"]["secrets"] = json!([{"source": "db-password", "target": "/run/secrets/db-password"}]);
        model["services"]["web"]["configs"] =
            json!([{"source": "site", "target": "conf/site.conf", "uid": "1000", "mode": 0o440}]);
        model["secrets"] = json!({"db-password": {"name": "shop_db-password", "file": "/project/db/password.txt"}});
        model["configs"] = json!({"site": {"name": "shop_site", "content": "x"}});
        let app = App::from_config(Path::new("compose.yaml"), Path::new("/project"), &model.to_string()).unwrap();
        let native = convert(&app, check(&app).unwrap(), &inputs).unwrap();
        let binds = |name: &str| native.services.iter().find(|c| c.name == name).unwrap().binds.clone();
        assert!(
            binds("db").contains(&"/etc/compose/secrets/db-password:/run/secrets/db-password:ro".to_string()),
            "{:?}",
            binds("db")
        );
        assert!(
            binds("web").contains(&"/etc/compose/configs/site:/conf/site.conf:ro".to_string()),
            "a relative config target is under /: {:?}",
            binds("web")
        );
        assert!(!binds("web").iter().any(|b| b.contains("secrets")));
        model["secrets"]["db-password"] = json!({"name": "vault", "external": true});
        let app = App::from_config(Path::new("compose.yaml"), Path::new("/project"), &model.to_string()).unwrap();
        let errs = check(&app).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("secret `db-password` is external")),
            "{errs:?}"
        );
    }

    #[test]
    fn a_service_may_not_take_a_name_of_the_vm() {
        let json = json!({"name": "p", "services": {"getty": {"image": "x"}}});
        let app = App::from_config(Path::new("c.yml"), Path::new("/p"), &json.to_string()).unwrap();
        let errs = check(&app).unwrap_err();
        assert!(errs[0].contains("taken by the VM's own `getty`"), "{errs:?}");
    }

    #[test]
    fn indexes_are_dropped_for_notes() {
        assert_eq!(strip_index("ports[3].host_ip"), "ports[].host_ip");
    }
}
