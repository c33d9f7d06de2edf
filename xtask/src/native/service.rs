//! One compose service as a LinuxKit service: its process (`process`), its
//! mounts (binds of the project's files, named and anonymous volumes,
//! secrets and configs, tmpfs, /dev/shm), its namespaces, limits and sysctls, and as OCI
//! annotations for the VM's service runner what LinuxKit has no field for:
//! start order, restart policy, stop signal and grace period, healthcheck.

use std::{collections::BTreeMap, path::Path};

use lkc_contract as contract;

use crate::{
    app::{
        compose::{self, App, Service},
        model::{duration_ms, Dependency, Healthcheck, Process},
    },
    moby::{Container, CpuQuota, File, Limit, Mount, Resources},
    native::{
        image::{self, Facts},
        network::{self, Mode, Plan},
        process, Inputs, ALL_CAPS, ANONYMOUS_DIR, NATIVE_DIR, VOLUMES_DIR,
    },
};

pub(super) type Converted = (Container, Vec<File>, Vec<String>);

pub(super) fn service(
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
    let hosts_file = format!("{NATIVE_DIR}/hosts/{}", s.name);
    match plan.hosts(project, &s.name, &hostname, &settings.links(), &settings.extra_hosts) {
        Ok(hosts) => files.push(File::contents(&hosts_file, &hosts)),
        Err(e) => problems.push(e),
    }
    let mut binds = vec![
        format!("/{hosts_file}:/etc/hosts:ro"),
        "/etc/resolv.conf:/etc/resolv.conf:ro".to_string(),
    ];
    let mut tmpfs = Vec::new();
    let mut populate: Vec<String> = Vec::new();
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
                } else if !v.volume.nocopy {
                    // Docker fills a new volume from the image (not a subpath of one).
                    populate.push(target.clone());
                }
                binds.push(format!("{dir}:{target}:{ro}"));
                volumes.push(source.to_string());
            }
            // An anonymous volume: a folder on the data disk (in memory
            // without one), new at each boot and kept across the service's
            // restarts, as a container's is; filled from the image as Docker
            // fills it.
            "volume" => {
                let dir = format!("{ANONYMOUS_DIR}/{}.{i}", s.name);
                files.push(File::directory(&dir));
                binds.push(format!("/{dir}:{target}:{ro}"));
                if !v.volume.nocopy {
                    populate.push(target.clone());
                }
            }
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
    // Each secret and config: its file in the VM, with the owner and mode the
    // use asks for, bound read-only at its target (after the volumes, which
    // may hold the target's folder).
    match app.files() {
        Ok(files) => {
            for (u, c) in files.uses_of(&s.name) {
                binds.push(format!("{}/{}:{}:ro", inputs.files_dir, c.path, u.target));
            }
        }
        Err(e) => problems.extend(e),
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
    let mut sysctl = settings.sysctls.clone();
    if !matches!(plan.mode(&s.name), Mode::Host) {
        // Docker's defaults for a container with a network namespace of its
        // own: any user may listen on any port (nginx as `USER nginx` on
        // 80) and ping. The compose file's sysctls win.
        for (key, value) in DOCKER_NETNS_SYSCTLS {
            sysctl.entry(key.to_string()).or_insert_with(|| value.to_string());
        }
    }
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
    let no_new_privileges = security_opt(&settings.security_opt).unwrap_or_else(|e| {
        problems.extend(e);
        None
    });
    let resources = resources(settings).unwrap_or_else(|e| {
        problems.push(e);
        None
    });
    if let Some(n) = settings.deploy.replicas.filter(|&n| n != 1) {
        problems.push(format!(
            "`deploy.replicas` {n}: the native method runs one container per service"
        ));
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
    if !populate.is_empty() {
        annotations.insert(contract::POPULATE.into(), contract_json(&populate));
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
    let mut args = process.args;
    if settings.init {
        // As Docker's engine does: its tini bound at /sbin/docker-init, in
        // front of the service's own command.
        binds.push(format!("{INIT}:/sbin/docker-init:ro"));
        args.splice(0..0, ["/sbin/docker-init".to_string(), "--".to_string()]);
    }
    let container = Container {
        name: s.name.clone(),
        image: image::cache_reference(app.image_of(s)),
        capabilities: Some(process::capabilities(settings, &ALL_CAPS)),
        command: Some(args),
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
        no_new_privileges,
        binds,
        tmpfs,
        mounts,
        sysctl,
        rlimits,
        oom_score_adj: settings.oom_score_adj.map(|n| n as i32),
        resources,
        annotations,
        ..Default::default()
    };
    Ok((container, files, volumes))
}

/// `security_opt:` as the native method carries it: `no-new-privileges`
/// (`:true`, `=true`, `:false`) as the process's flag (None: not set);
/// `unconfined` seccomp and AppArmor, and SELinux `label` options, are what
/// the VM does anyway (it applies no seccomp or AppArmor profile and has no
/// SELinux). A profile that would confine the service more is an error.
fn security_opt(opts: &[String]) -> Result<Option<bool>, Vec<String>> {
    let mut no_new_privileges = None;
    let mut problems = Vec::new();
    for opt in opts {
        // Docker takes `KEY=VALUE` and the older `KEY:VALUE`.
        let (key, value) = match (opt.split_once('='), opt.split_once(':')) {
            (Some((k, v)), _) | (None, Some((k, v))) => (k, Some(v)),
            (None, None) => (opt.as_str(), None),
        };
        match (key, value) {
            ("no-new-privileges", None | Some("true")) => no_new_privileges = Some(true),
            ("no-new-privileges", Some("false")) => no_new_privileges = Some(false),
            ("seccomp" | "apparmor", Some("unconfined")) | ("label", Some(_)) => {}
            ("seccomp", Some(profile)) => problems.push(format!(
                "`security_opt` `{opt}`: the VM applies no seccomp profile; the service would run unconfined, not under `{profile}`"
            )),
            ("apparmor", Some(profile)) => problems.push(format!(
                "`security_opt` `{opt}`: the VM's kernel has no AppArmor; the service would run unconfined, not under `{profile}`"
            )),
            _ => problems.push(format!("`security_opt` `{opt}` is not carried over")),
        }
    }
    if problems.is_empty() {
        Ok(no_new_privileges)
    } else {
        Err(problems)
    }
}

/// The VM's init for `init: true`: tini, from the crun image (pins.yml).
const INIT: &str = "/usr/bin/tini-static";

/// Docker's CFS period for `--cpus` (100 ms, in microseconds).
const CPU_PERIOD: u64 = 100_000;

/// The cgroup limits compose's memory, CPU and process limits ask for, as
/// Docker sets them (`--memory`, `--cpus`, `--pids-limit`); None without any.
fn resources(settings: &Process) -> Result<Option<Resources>, String> {
    let memory = match settings.memory_limit() {
        None => None,
        Some(bytes) => match bytes.parse::<i64>() {
            // Docker's own floor: a container cannot start in less.
            Ok(n) if n >= 6 * 1024 * 1024 => Some(Limit { limit: n }),
            Ok(n) => return Err(format!("memory limit {n} bytes: the minimum is 6 MiB, as Docker's")),
            Err(_) => return Err(format!("memory limit `{bytes}` is not a number of bytes")),
        },
    };
    let cpu = match settings.cpu_limit() {
        None => None,
        Some(text) => match text.parse::<f64>() {
            // 0 means no limit, as for Docker.
            Ok(0.0) => None,
            Ok(n) if n > 0.0 && n.is_finite() => Some(CpuQuota {
                quota: (n * CPU_PERIOD as f64).round() as i64,
                period: CPU_PERIOD,
            }),
            _ => return Err(format!("CPU limit `{text}` is not a positive number of CPUs")),
        },
    };
    // 0 and -1 mean no limit.
    let pids = settings.pids_limit().filter(|&n| n > 0).map(|limit| Limit { limit });
    let any = memory.is_some() || cpu.is_some() || pids.is_some();
    Ok(any.then_some(Resources { memory, cpu, pids }))
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

/// The sysctls Docker sets in a container's own network namespace (moby's
/// `daemon/oci_linux.go`, since Docker 20.10).
const DOCKER_NETNS_SYSCTLS: [(&str, &str); 2] = [
    ("net.ipv4.ip_unprivileged_port_start", "0"),
    ("net.ipv4.ping_group_range", "0 2147483647"),
];

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
