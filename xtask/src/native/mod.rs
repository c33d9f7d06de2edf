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
pub mod traefik;

use std::{collections::BTreeMap, path::Path};

use anyhow::Result;

use lkc_contract as contract;

use crate::{
    app::{
        compose::{self, App, Service},
        keys::Scope,
        model::{Dependency, Healthcheck},
    },
    moby::{self, Config, Container, File, Mount, Refs},
};

use image::Facts;
use keys::Support;
use network::{Mode, Plan};

/// Where the VM keeps what the conversion writes.
const NATIVE_DIR: &str = "etc/native";
/// Named volumes, one folder each.
const VOLUMES_DIR: &str = "var/lib/native/volumes";
/// Where the traefik service finds its generated dynamic configuration.
const TRAEFIK_DYNAMIC: &str = "/etc/traefik-native/dynamic.yml";
/// Where the traefik service finds its default TLS certificate, and where the
/// service runner makes it before traefik starts (`traefik::DefaultCertificate`).
const TRAEFIK_TLS: &str = "/etc/traefik-native/tls";
const TRAEFIK_TLS_MADE: &str = "/run/native/traefik-tls";
/// The kernel modules the native VM loads at boot: the NIC and RNG, overlayfs
/// for the services' root filesystems, bridges and veths for the app's
/// networks, nftables with NAT for its ports and masquerade.
const NATIVE_MODULES: [&str; 10] = [
    "virtio_net",
    "virtio_rng",
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
const RESERVED: [&str; 4] = ["getty", "modules", "network", "netns"];

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
    /// Keys carried over only approximately, or left out with
    /// `--allow-unsupported`: said at every build.
    pub notes: Vec<String>,
}

/// What the conversion needs besides the app: each image's facts, and where
/// the project's bind-mounted files are in the VM.
pub struct Inputs<'a> {
    pub facts: &'a BTreeMap<String, Facts>,
    /// `linuxkit::File`s for the project's bind-mounted files (under `project_dir`).
    pub project_files: Vec<File>,
    pub project_dir: &'a str,
}

/// Check `app` for what the conversion cannot carry over, without its images:
/// every compose key against the table, the networks, the service names.
/// Returns the network plan and the notes (approximations, and with
/// `--allow-unsupported` what is left out), or every problem at once.
pub fn check(app: &App) -> Result<(Plan, Vec<String>), Vec<String>> {
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
    match plan {
        Ok(plan) if problems.is_empty() => Ok((plan, notes)),
        _ => Err(problems),
    }
}

/// Convert `app`. Every key that is not carried over is an error naming the
/// file, the service and the key path, all of them at once.
pub fn convert(app: &App, inputs: &Inputs) -> Result<Native, Vec<String>> {
    let (plan, notes) = check(app)?;
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
        notes,
    };
    out.files.extend(inputs.project_files.iter().cloned());
    let mut volumes: Vec<String> = Vec::new();
    for s in &app.services {
        let facts = inputs.facts.get(app.image_of(s).as_str()).cloned().unwrap_or_default();
        match service(app, &project, s, &facts, &plan, inputs) {
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
    if !volumes.is_empty() {
        out.files.push(File::directory("var/lib/native"));
        out.files.push(File::directory(VOLUMES_DIR));
        for v in volumes {
            out.files.push(File::directory(&format!("{VOLUMES_DIR}/{v}")));
        }
    }
    if let Err(e) = convert_traefik(app, &project, &plan, inputs, &mut out) {
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

/// Durations as compose writes them (Go's `1m30s`, `500ms`), in milliseconds.
pub fn duration_ms(text: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_end..];
    }
    Some(total.round() as u64)
}

type Converted = (Container, Vec<File>, Vec<String>);

fn service(
    app: &App,
    project: &str,
    s: &Service,
    facts: &Facts,
    plan: &Plan,
    inputs: &Inputs,
) -> Result<Converted, Vec<String>> {
    let mut problems = Vec::new();
    let settings = &s.process;
    let hostname = settings.hostname.clone().unwrap_or_else(|| s.name.clone());
    let process = process::process(settings, facts, &hostname)?;
    let mut files = Vec::new();
    let mut volumes = Vec::new();
    let extra_hosts = &settings.extra_hosts;
    let hosts_file = format!("{NATIVE_DIR}/hosts/{}", s.name);
    files.push(File::contents(
        &hosts_file,
        &plan.hosts(project, &s.name, &hostname, extra_hosts),
    ));
    let mut binds = vec![
        format!("/{hosts_file}:/etc/hosts:ro"),
        "/etc/resolv.conf:/etc/resolv.conf:ro".to_string(),
    ];
    let mut tmpfs = Vec::new();
    for (i, v) in s.mounts.iter().enumerate() {
        let target = &v.target;
        let ro = if v.read_only { "ro" } else { "rw" };
        let source = v.source.as_deref().unwrap_or_default();
        match v.kind.as_str() {
            "bind" => {
                if s.uses_docker_socket && compose::is_docker_socket(source) {
                    continue; // the traefik conversion stands in for the engine
                }
                match Path::new(source).strip_prefix(&app.dir) {
                    Ok(rel) => binds.push(format!(
                        "{}:{target}:{ro}",
                        Path::new(inputs.project_dir).join(rel).display()
                    )),
                    Err(_) => problems.push(format!(
                        "`volumes[{i}]`: bind of `{source}`, outside the project folder: only files that travel with the compose file are carried over"
                    )),
                }
            }
            "volume" if !source.is_empty() => {
                let sub = v.volume.subpath.as_deref().unwrap_or_default();
                let mut dir = format!("/{VOLUMES_DIR}/{source}");
                if !sub.is_empty() {
                    dir = format!("{dir}/{sub}");
                }
                binds.push(format!("{dir}:{target}:{ro}"));
                volumes.push(source.to_string());
            }
            // An anonymous volume: a fresh folder each boot, like a new container's.
            "volume" => tmpfs.push(format!("{target}:rw,nosuid,nodev")),
            "tmpfs" => {
                let mut opts = vec!["rw".to_string(), "nosuid".into(), "nodev".into(), "noexec".into()];
                if let Some(size) = &v.tmpfs.size {
                    opts.push(format!("size={size}"));
                }
                if let Some(mode) = v.tmpfs.mode {
                    opts.push(format!("mode={mode:o}"));
                }
                tmpfs.push(format!("{target}:{}", opts.join(",")));
            }
            other => problems.push(format!("`volumes[{i}].type` `{other}` is not carried over")),
        }
    }
    for t in &settings.tmpfs {
        let (target, opts) = t.split_once(':').unwrap_or((t, ""));
        let mut all = vec!["rw", "nosuid", "nodev", "noexec"];
        all.extend(opts.split(',').filter(|o| !o.is_empty()));
        tmpfs.push(format!("{target}:{}", all.join(",")));
    }
    let shm = settings.shm_size.clone().unwrap_or_else(|| "67108864".into());
    let mounts = vec![
        Mount {
            kind: "tmpfs".into(),
            source: "shm".into(),
            destination: "/dev/shm".into(),
            options: ["nosuid", "noexec", "nodev", "mode=1777"]
                .map(String::from)
                .into_iter()
                .chain([format!("size={shm}")])
                .collect(),
        },
        Mount {
            kind: "mqueue".into(),
            source: "mqueue".into(),
            destination: "/dev/mqueue".into(),
            options: ["nosuid", "noexec", "nodev"].map(String::from).to_vec(),
        },
    ];
    let net = match plan.mode(&s.name) {
        Mode::Host => "host".to_string(),
        Mode::Bridged(_) | Mode::None => network::netns_path(&s.name),
    };
    let sysctl = settings.sysctls.clone();
    let mut rlimits = Vec::new();
    for (name, limit) in &settings.ulimits {
        let (soft, hard) = limit.limits();
        let n = |v: Option<i64>| {
            v.map_or("unlimited".to_string(), |n| {
                if n < 0 {
                    "unlimited".to_string()
                } else {
                    n.to_string()
                }
            })
        };
        rlimits.push(format!("{name},{},{}", n(soft), n(hard)));
    }
    let mut annotations = s.labels.clone();
    annotations.insert(contract::SERVICE.into(), s.name.clone());
    if !s.depends_on.is_empty() {
        match depends_on(&s.depends_on) {
            Ok(deps) => {
                annotations.insert(contract::DEPENDS_ON.into(), contract_json(&deps));
            }
            Err(e) => problems.push(e),
        }
    }
    if let Some(restart) = s.restart.as_deref() {
        match restart.parse::<contract::Restart>() {
            Ok(policy) => {
                annotations.insert(contract::RESTART.into(), policy.to_string());
            }
            Err(e) => problems.push(format!("`restart`: {e}")),
        }
    }
    // How Docker would stop it: the service's stop_signal, else the image's
    // STOPSIGNAL; its stop_grace_period.
    if let Some(signal) = settings.stop_signal.as_deref().or(facts.stop_signal.as_deref()) {
        annotations.insert(contract::STOP_SIGNAL.into(), signal.into());
    }
    if let Some(grace) = settings.stop_grace_period.as_deref() {
        match duration_ms(grace) {
            Some(ms) => {
                annotations.insert(contract::STOP_GRACE.into(), ms.to_string());
            }
            None => problems.push(format!("`stop_grace_period` `{grace}` is not a duration")),
        }
    }
    match healthcheck(s.healthcheck.as_ref(), facts) {
        Ok(Some(h)) => {
            annotations.insert(contract::HEALTHCHECK.into(), contract_json(&h));
        }
        Ok(None) => {}
        Err(e) => problems.push(e),
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let container = Container {
        name: s.name.clone(),
        image: image::cache_reference(app.image_of(s)),
        capabilities: Some(process::capabilities(settings, &ALL_CAPS)),
        command: Some(process.args),
        env: Some(process.env),
        cwd: Some(process.cwd),
        uid: Some(process.uid),
        gid: Some(process.gid),
        additional_gids: process.additional_gids,
        net: Some(net),
        ipc: Some("new".into()),
        uts: Some("new".into()),
        hostname: Some(hostname),
        readonly: Some(settings.read_only),
        binds,
        tmpfs,
        mounts,
        sysctl,
        rlimits,
        oom_score_adj: settings.oom_score_adj.map(|n| n as i32),
        annotations,
        ..Default::default()
    };
    Ok((container, files, volumes))
}

/// The dependencies as the runner takes them: each one's condition.
fn depends_on(deps: &BTreeMap<String, Dependency>) -> Result<contract::DependsOn, String> {
    deps.iter()
        .map(|(dep, d)| {
            let condition = serde_json::from_value(d.condition.as_str().into())
                .map_err(|_| format!("`depends_on.{dep}.condition` `{}` is not a condition", d.condition))?;
            Ok((dep.clone(), condition))
        })
        .collect()
}

/// An annotation value of the contract, as its JSON text.
fn contract_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("the contract's types serialize")
}

/// The healthcheck as the runner takes it: compose's, else the image's.
fn healthcheck(service: Option<&Healthcheck>, facts: &Facts) -> Result<Option<contract::Healthcheck>, String> {
    let h = service.cloned().unwrap_or_default();
    if h.disable {
        return Ok(None);
    }
    let ms = |key: &str, set: &Option<String>, image_ns: u64| -> Result<Option<u64>, String> {
        match set.as_deref() {
            Some(t) => duration_ms(t)
                .map(Some)
                .ok_or_else(|| format!("`healthcheck.{key}` `{t}` is not a duration")),
            None => Ok((image_ns > 0).then_some(image_ns / 1_000_000)),
        }
    };
    let image = facts.healthcheck.clone().unwrap_or_default();
    let test: Vec<String> = h.test.clone().unwrap_or_else(|| image.test.clone());
    let argv = match test.split_first() {
        None => return Ok(None),
        Some((kind, _)) if kind == "NONE" => return Ok(None),
        Some((kind, rest)) if kind == "CMD" => rest.to_vec(),
        Some((kind, rest)) if kind == "CMD-SHELL" => {
            vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
        }
        Some(_) => {
            return Err(format!(
                "`healthcheck.test` {test:?} starts with neither CMD nor CMD-SHELL"
            ))
        }
    };
    let interval_ms = ms("interval", &h.interval, image.interval)?;
    let timeout_ms = ms("timeout", &h.timeout, image.timeout)?;
    let start_period_ms = ms("start_period", &h.start_period, image.start_period)?;
    let start_interval_ms = ms("start_interval", &h.start_interval, image.start_interval)?;
    let retries = match h.retries {
        Some(n) => Some(u32::try_from(n).map_err(|_| format!("`healthcheck.retries` {n} is too many"))?),
        None => (image.retries > 0).then_some(image.retries),
    };
    Ok(Some(contract::Healthcheck {
        interval_ms,
        retries,
        start_interval_ms,
        start_period_ms,
        test: argv,
        timeout_ms,
    }))
}

/// The traefik service, if one reads the Docker socket: its routes from the
/// labels, as file provider configuration, and its static configuration
/// rewritten to read that file, and the default TLS certificate it is to use
/// made by the service runner before it starts.
fn convert_traefik(
    app: &App,
    project: &str,
    plan: &Plan,
    inputs: &Inputs,
    out: &mut Native,
) -> Result<(), Vec<String>> {
    let Some(router) = app.services.iter().find(|s| s.uses_docker_socket) else {
        return Ok(());
    };
    let facts = inputs
        .facts
        .get(app.image_of(router).as_str())
        .cloned()
        .unwrap_or_default();
    let container = out
        .services
        .iter_mut()
        .find(|c| c.name == router.name)
        .expect("converted");
    let command = container.command.clone().unwrap_or_default();
    // traefik's own arguments: after the binary (and any `traefik` subcommand).
    let flags: Vec<String> = command.iter().filter(|a| a.starts_with("--")).cloned().collect();
    let config_flag = flags.iter().find_map(|f| {
        let lower = f.to_ascii_lowercase();
        lower
            .strip_prefix("--configfile=")
            .map(|_| f["--configfile=".len()..].to_string())
    });
    let static_config = if flags.iter().any(|f| f.to_ascii_lowercase().starts_with("--providers.")) {
        traefik::StaticConfig::Args(flags.clone())
    } else {
        let candidates: Vec<String> = match &config_flag {
            Some(path) => vec![path.trim_start_matches('/').to_string()],
            None => {
                let mut c: Vec<String> = image::TRAEFIK_CONFIGS.iter().map(|s| s.to_string()).collect();
                let wd = container.cwd.clone().unwrap_or_default();
                let wd = wd.trim_matches('/');
                if !wd.is_empty() {
                    c.extend(["traefik.yml", "traefik.yaml"].map(|f| format!("{wd}/{f}")));
                }
                c
            }
        };
        // A bind-mounted file of the project wins over the image's.
        let bound = candidates.iter().find_map(|c| {
            router
                .binds
                .iter()
                .find(|b| b.target.trim_start_matches('/') == c)
                .and_then(|b| std::fs::read_to_string(app.dir.join(&b.source)).ok())
                .map(|text| (c.clone(), text))
        });
        let found = bound.or_else(|| {
            candidates
                .iter()
                .find_map(|c| facts.files.get(c).map(|t| (c.clone(), t.clone())))
        });
        match found {
            Some((path, yaml)) => traefik::StaticConfig::File {
                path: format!("/{path}"),
                yaml,
            },
            None => {
                return Err(vec![format!(
                    "service `{}`: reads the Docker socket, but no traefik static configuration was found (looked for {} in the image and its binds, and `--providers.*` flags)",
                    router.name,
                    candidates.join(", ")
                )])
            }
        }
    };
    let backends: Vec<traefik::Backend> = app
        .services
        .iter()
        .map(|s| {
            let mut exposed = inputs
                .facts
                .get(app.image_of(s).as_str())
                .map(Facts::exposed_tcp)
                .unwrap_or_default();
            for text in &s.expose {
                if let Some(p) = text.split('/').next().and_then(|p| p.parse().ok()) {
                    exposed.push(p);
                }
            }
            exposed.sort_unstable();
            exposed.dedup();
            traefik::Backend {
                service: &s.name,
                labels: &s.labels,
                address: plan.address(&s.name).map(|a| a.to_string()).unwrap_or_default(),
                exposed_tcp: exposed,
            }
        })
        .collect();
    let certificate = traefik::DefaultCertificate {
        cert_file: &format!("{TRAEFIK_TLS}/cert.pem"),
        key_file: &format!("{TRAEFIK_TLS}/key.pem"),
    };
    let converted = traefik::convert(
        project,
        &router.name,
        &static_config,
        &backends,
        TRAEFIK_DYNAMIC,
        &certificate,
    )
    .map_err(|errs| {
        errs.into_iter()
            .map(|e| format!("traefik conversion: {e}"))
            .collect::<Vec<_>>()
    })?;
    out.notes
        .extend(converted.notes.iter().map(|n| format!("traefik: {n}")));
    let dir = format!("{NATIVE_DIR}/traefik");
    out.files.push(File::directory(&dir));
    out.files
        .push(File::contents(&format!("{dir}/dynamic.yml"), &converted.dynamic_yaml));
    container.binds.push(format!("/{dir}/dynamic.yml:{TRAEFIK_DYNAMIC}:ro"));
    container.binds.push(format!("{TRAEFIK_TLS_MADE}:{TRAEFIK_TLS}:ro"));
    container
        .annotations
        .insert(contract::DEFAULT_CERTIFICATE.into(), TRAEFIK_TLS_MADE.into());
    match converted.static_config {
        traefik::StaticConfig::File { path, yaml } => {
            out.files.push(File::contents(&format!("{dir}/traefik.yml"), &yaml));
            container.binds.push(format!("/{dir}/traefik.yml:{path}:ro"));
        }
        traefik::StaticConfig::Args(args) => {
            let mut command: Vec<String> = command.into_iter().filter(|a| !a.starts_with("--")).collect();
            command.extend(args);
            container.command = Some(command);
        }
    }
    Ok(())
}

/// The native VM's LinuxKit configuration: the base, the `netns` onboot
/// container that makes the networks, and the app's services.
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
    config.services.extend(native.services.iter().cloned());
    config.files.extend(native.files.iter().cloned());
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
                        {"type": "tmpfs", "target": "/srv/cache", "tmpfs": {"size": "1048576"}}
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

    fn fake_refs() -> Refs {
        ["kernel", "init", "crun", "modules", "network", "getty", "netns"]
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
        let inputs = Inputs {
            facts: &facts,
            project_files: vec![],
            project_dir: "/etc/compose/project",
        };
        let native = convert(&shop(json!({})), &inputs).unwrap();
        let yaml = moby::render(&config(&fake_refs(), &native), "cargo xtask native").unwrap();
        insta::assert_snapshot!(yaml);
        assert!(
            native.notes.iter().any(|n| n.contains("depends_on.db.required")),
            "approximations are said: {:?}",
            native.notes
        );
    }

    /// Keys the conversion does not carry over: all of them refused at once,
    /// or, when allowed, each listed and left out.
    #[test]
    fn unsupported_keys_are_refused_or_listed() {
        let app = shop(json!({"init": true, "pid": "host", "devices": ["/dev/fuse"]}));
        let errs = check(&app).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(
            errs[0].starts_with("service `web`: `devices` is not carried over"),
            "{errs:#?}"
        );
        let mut allowed = app;
        allowed.allow_unsupported = true;
        let (_, notes) = check(&allowed).unwrap();
        assert!(
            notes
                .iter()
                .any(|n| n.contains("left out with --allow-unsupported (3)")),
            "{notes:#?}"
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
    fn durations_as_compose_writes_them() {
        assert_eq!(duration_ms("30s"), Some(30_000));
        assert_eq!(duration_ms("1m30s"), Some(90_000));
        assert_eq!(duration_ms("500ms"), Some(500));
        assert_eq!(duration_ms("1.5s"), Some(1500));
        assert_eq!(duration_ms("2h"), Some(7_200_000));
        assert_eq!(duration_ms("soon"), None);
        assert_eq!(duration_ms(""), None);
    }

    #[test]
    fn indexes_are_dropped_for_notes() {
        assert_eq!(strip_index("ports[3].host_ip"), "ports[].host_ip");
    }

    /// The healthcheck of a service whose settings are `body` (as compose writes them).
    fn healthcheck(body: &Value, facts: &Facts) -> Result<Option<contract::Healthcheck>, String> {
        let set: Option<Healthcheck> = serde_json::from_value(body["healthcheck"].clone()).unwrap();
        super::healthcheck(set.as_ref(), facts)
    }

    /// The runner's conditions, `service_started` unless said; anything else
    /// is refused here rather than by the runner at boot.
    #[test]
    fn depends_on_as_the_runner_takes_it() {
        let deps: BTreeMap<String, Dependency> =
            serde_json::from_value(json!({"db": {"condition": "service_healthy"}, "cache": {}})).unwrap();
        let deps = depends_on(&deps).unwrap();
        assert_eq!(
            contract_json(&deps),
            r#"{"cache":"service_started","db":"service_healthy"}"#
        );
        let bad: BTreeMap<String, Dependency> =
            serde_json::from_value(json!({"db": {"condition": "service_ready"}})).unwrap();
        let err = depends_on(&bad).unwrap_err();
        assert!(err.contains("`depends_on.db.condition` `service_ready`"), "{err}");
    }

    #[test]
    fn healthchecks_as_the_runner_takes_them() {
        let facts = Facts::default();
        let body =
            json!({"healthcheck": {"test": ["CMD-SHELL", "curl -f http://localhost"], "interval": "5s", "retries": 2}});
        let h = healthcheck(&body, &facts).unwrap().unwrap();
        assert_eq!(h.test, ["/bin/sh", "-c", "curl -f http://localhost"]);
        assert_eq!(h.interval_ms, Some(5000));
        assert_eq!(h.retries, Some(2));
        assert_eq!(h.timeout_ms, None, "the runner applies Docker's defaults");
        let body = json!({"healthcheck": {"test": ["CMD", "pg_isready", "-q"]}});
        assert_eq!(healthcheck(&body, &facts).unwrap().unwrap().test, ["pg_isready", "-q"]);
        let body = json!({"healthcheck": {"disable": true}});
        let mut image = Facts::default();
        image.healthcheck = Some(image::ImageHealthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval: 2_000_000_000,
            ..Default::default()
        });
        assert_eq!(
            healthcheck(&body, &image).unwrap(),
            None,
            "disable wins over the image's"
        );
        let h = healthcheck(&json!({}), &image).unwrap().unwrap();
        assert_eq!(
            (h.test, h.interval_ms),
            (vec!["true".to_string()], Some(2000)),
            "the image's HEALTHCHECK"
        );
        assert!(healthcheck(&json!({"healthcheck": {"test": ["X"]}}), &facts).is_err());
    }
}
