//! Every compose key and what the native method does with it: carried over,
//! approximated, or refused. This table is what the conversion checks a
//! compose file against (a key not in it is refused: nothing is dropped
//! without a word), and what the README's table is generated from.

use std::fmt::Write;

use crate::app::keys::Pattern;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Behaves as under `docker compose up`.
    Carried,
    /// Carried over, with a difference the note says.
    Approximated,
    /// Not carried over: an error (a warning with `--allow-unsupported`).
    Refused,
}

pub struct Key {
    /// The key's path in compose's model: `a.b` for nested keys, `*` for any
    /// name the user chooses, `[]` for each item of a list, `**` for
    /// everything under it.
    pub path: &'static str,
    pub support: Support,
    pub how: &'static str,
}

const fn key(path: &'static str, support: Support, how: &'static str) -> Key {
    Key { path, support, how }
}

use Support::{Approximated as A, Carried as C, Refused as R};

/// Keys of a service (`services.NAME.…`).
pub const SERVICE: &[Key] = &[
    key(
        "image",
        C,
        "the LinuxKit service's image: the app image the xtask builds, or the local stand-in",
    ),
    key("build.**", C, "built by the xtask as for every method"),
    key("command", C, "replaces the image's CMD, Docker's rules"),
    key(
        "entrypoint",
        C,
        "replaces the image's ENTRYPOINT and drops its CMD, Docker's rules",
    ),
    key(
        "environment.*",
        C,
        "over the image's ENV; `env_file` is merged in by compose",
    ),
    key("env_file[].path", C, "merged into `environment` by compose"),
    key("env_file[].required", C, "checked by compose"),
    key(
        "user",
        C,
        "resolved against the image's /etc/passwd and /etc/group, with the user's groups",
    ),
    key("working_dir", C, "the process's working directory"),
    key("hostname", C, "the container's hostname (its own UTS namespace)"),
    key(
        "container_name",
        A,
        "resolves like the service name in /etc/hosts; the LinuxKit service keeps the compose name",
    ),
    key(
        "labels.*",
        C,
        "OCI annotations; `traefik.*` labels become traefik's file provider configuration",
    ),
    key(
        "ports[].target",
        C,
        "nftables DNAT from the VM's eth0 to the service's address",
    ),
    key("ports[].published", C, "the port on the VM's eth0 (QEMU forwards it)"),
    key("ports[].protocol", C, "tcp or udp"),
    key("ports[].mode", C, "`ingress`/`host`: one VM, the same"),
    key(
        "ports[].host_ip",
        A,
        "ignored: the port is published on eth0, which QEMU forwards to",
    ),
    key("ports[].app_protocol", A, "ignored (a hint only)"),
    key("ports[].name", A, "ignored (a label only)"),
    key(
        "expose[]",
        C,
        "ports the traefik conversion may pick, as Docker reports them",
    ),
    key(
        "networks.*",
        C,
        "one veth on the network's bridge, address in compose order",
    ),
    key(
        "networks.*.aliases[]",
        C,
        "extra names in /etc/hosts of services on that network",
    ),
    key("networks.*.ipv4_address", C, "the fixed address"),
    key(
        "network_mode",
        C,
        "`host` (the VM's network) and `none`; `service:…` is refused",
    ),
    key("extra_hosts[]", C, "lines in the service's /etc/hosts"),
    key(
        "depends_on.*.condition",
        C,
        "the service runner starts it after service_started/service_healthy/service_completed_successfully",
    ),
    key("depends_on.*.required", A, "every dependency is required"),
    key(
        "depends_on.*.restart",
        A,
        "ignored: a restarted dependency does not restart its dependants",
    ),
    key(
        "restart",
        C,
        "the service runner restarts per policy (no, always, unless-stopped, on-failure[:N]) with Docker's back-off",
    ),
    key(
        "healthcheck.test[]",
        C,
        "run in the container with `crun exec`; CMD-SHELL through /bin/sh -c",
    ),
    key("healthcheck.interval", C, "Docker's default 30 s"),
    key("healthcheck.timeout", C, "Docker's default 30 s"),
    key("healthcheck.retries", C, "Docker's default 3"),
    key("healthcheck.start_period", C, "failures in it do not count"),
    key("healthcheck.start_interval", C, "the interval during the start period"),
    key("healthcheck.disable", C, "no healthcheck (the image's is ignored too)"),
    key(
        "volumes[].type",
        C,
        "`bind` (project files, copied into the VM), `volume` (named: on the data disk; anonymous: on the data disk too, new each boot), `tmpfs`; an empty volume is filled from the image before the service starts (its files there, the folder's owner and mode), as Docker fills a new one",
    ),
    key(
        "volumes[].source",
        C,
        "a file or folder beside the compose file, or a named volume",
    ),
    key("volumes[].target", C, "the mount point in the container"),
    key("volumes[].read_only", C, "a read-only mount; without it, a bind of a project file or folder is writable, and what services write there is kept on the data disk (the project folder is an overlay, the build's files below), as Docker's host keeps it"),
    key("volumes[].bind.create_host_path", C, "compose's default: a project folder that is not there at build time (`./data/db`) is made, empty, and kept on the data disk from boot to boot (in memory without one), as Docker makes it on its host and keeps what is written there"),
    key(
        "volumes[].volume.nocopy",
        C,
        "the volume is not filled from the image",
    ),
    key("volumes[].volume.subpath", C, "a folder of the named volume"),
    key("volumes[].tmpfs.size", C, "the tmpfs size"),
    key("volumes[].tmpfs.mode", C, "the tmpfs mode"),
    key("tmpfs[]", C, "a tmpfs mount (Docker's options: nosuid, nodev, noexec)"),
    key("read_only", C, "a read-only root filesystem"),
    key("shm_size", C, "the size of /dev/shm (Docker's default 64 MiB)"),
    key("cap_add[]", C, "added to Docker's default capability set"),
    key("cap_drop[]", C, "removed from it (`ALL` too)"),
    key("privileged", A, "every capability; devices stay Docker's default set"),
    key(
        "sysctls.*",
        C,
        "set in the container's namespaces, over Docker's defaults for a network namespace of its own (any user may listen on ports below 1024 and ping)",
    ),
    key("ulimits.*", C, "rlimits, soft and hard alike"),
    key("ulimits.*.soft", C, "the soft limit"),
    key("ulimits.*.hard", C, "the hard limit"),
    key("oom_score_adj", C, "the process's OOM score adjustment"),
    key(
        "stop_signal",
        C,
        "the runner stops the service with it (else the image's STOPSIGNAL, else TERM)",
    ),
    key(
        "stop_grace_period",
        C,
        "how long the runner waits before KILL (Docker's default 10 s)",
    ),
    key(
        "init",
        C,
        "tini (Debian's, static) runs the service's command as /sbin/docker-init, as Docker's engine does",
    ),
    key("pull_policy", C, "nothing is pulled: every image is in the VM"),
    key("platform", A, "the VM is linux/amd64"),
    key(
        "logging.driver",
        A,
        "output goes to the VM's console and /var/log/SERVICE.log",
    ),
    key("logging.options.*", A, "see logging.driver"),
    key("tty", A, "no terminal: output goes through a pipe"),
    key("stdin_open", A, "stdin is /dev/null"),
    key("profiles[]", C, "chosen by compose (`--profile`)"),
    key("pid", R, "services get their own PID namespace"),
    key("ipc", R, "services get their own IPC namespace"),
    key(
        "deploy.resources.limits.memory",
        C,
        "the container's memory limit (its cgroup's memory.max), as Docker sets it",
    ),
    key(
        "deploy.resources.limits.cpus",
        C,
        "a CPU quota of that many CPUs' time per 100 ms, as Docker sets it",
    ),
    key("deploy.resources.limits.pids", C, "the container's process limit"),
    key(
        "deploy.resources.reservations.memory",
        A,
        "ignored: nothing but the app runs in the VM to reserve against",
    ),
    key(
        "deploy.resources.reservations.cpus",
        A,
        "ignored: nothing but the app runs in the VM to reserve against",
    ),
    key("deploy.replicas", C, "1: one container; more is refused"),
    key("deploy.mode", A, "one container, whatever the mode"),
    key(
        "deploy.restart_policy.condition",
        C,
        "where `restart` is not set, the restart policy compose makes of it (none: no, on-failure, any: always)",
    ),
    key(
        "deploy.restart_policy.max_attempts",
        C,
        "on-failure's maximum restart count",
    ),
    key("deploy.restart_policy.delay", A, "Docker's back-off between restarts"),
    key("deploy.restart_policy.window", A, "Docker's back-off between restarts"),
    key("deploy.labels.*", A, "ignored (swarm service metadata)"),
    key("deploy.placement.**", A, "ignored: one machine, as under `docker compose up`"),
    key("deploy.update_config.**", A, "ignored (swarm updates), as under `docker compose up`"),
    key("deploy.rollback_config.**", A, "ignored (swarm rollbacks), as under `docker compose up`"),
    key("deploy.endpoint_mode", A, "ignored (swarm load balancing)"),
    key("mem_limit", C, "the container's memory limit, as `deploy.resources.limits.memory`"),
    key("cpus", C, "a CPU quota, as `deploy.resources.limits.cpus`"),
    key("pids_limit", C, "the container's process limit"),
    key(
        "mem_reservation",
        A,
        "ignored: nothing but the app runs in the VM to reserve against",
    ),
    key("devices[]", R, "no device is passed in"),
    key(
        "secrets[].source",
        C,
        "a file the VM carries, bound read-only into the container",
    ),
    key(
        "secrets[].target",
        C,
        "compose's: /run/secrets/NAME, a relative target under /run/secrets",
    ),
    key("secrets[].uid", C, "the file's owner in the VM (default root)"),
    key("secrets[].gid", C, "the file's group in the VM (default root)"),
    key("secrets[].mode", C, "the file's mode in the VM (default 0444)"),
    key(
        "configs[].source",
        C,
        "a file the VM carries, bound read-only into the container",
    ),
    key("configs[].target", C, "compose's: /NAME, else the target"),
    key("configs[].uid", C, "the file's owner in the VM (default root)"),
    key("configs[].gid", C, "the file's group in the VM (default root)"),
    key("configs[].mode", C, "the file's mode in the VM (default 0444)"),
    key("dns[]", R, "services use the VM's resolver"),
    key("dns_search[]", R, "services use the VM's resolver"),
    key(
        "security_opt[]",
        C,
        "`no-new-privileges` as the process's flag; seccomp and AppArmor `unconfined` and SELinux `label` options as the VM runs anyway (no profile, no SELinux); a profile is refused",
    ),
    key("userns_mode", R, "no user namespace"),
    key("cgroup_parent", R, "LinuxKit places each service's cgroup"),
    key(
        "links[]",
        C,
        "the alias (`db:database`) in the linking service's /etc/hosts; compose makes each link a `depends_on`",
    ),
    key("volumes_from[]", R, "not carried over"),
    key("extends.**", C, "resolved by compose"),
];

/// Top-level keys other than `services`.
pub const TOP: &[Key] = &[
    key("name", C, "the project name (container names in /etc/hosts)"),
    key("networks.*.name", C, "compose's name for it"),
    key("networks.*.driver", C, "`bridge` only"),
    key(
        "networks.*.internal",
        C,
        "no masquerade, no forwarding out of the bridge",
    ),
    key("networks.*.ipam.config[].subnet", C, "the bridge's subnet (IPv4)"),
    key("networks.*.ipam.config[].gateway", C, "the bridge's address"),
    key("networks.*.ipam.driver", A, "the default IPAM"),
    key("networks.*.labels.*", A, "ignored (metadata only)"),
    key("networks.*.attachable", A, "ignored: no containers besides the app's"),
    key("networks.*.external", R, "nothing outside the VM provides networks"),
    key("networks.*.enable_ipv6", R, "IPv6 networks are not made"),
    key("networks.*.driver_opts.*", R, "bridge options are not applied"),
    key("volumes.*.name", C, "compose's name for it"),
    key("volumes.*.driver", R, "only the local driver"),
    key("volumes.*.driver_opts.*", R, "only plain folders in the VM"),
    key("volumes.*.external", R, "nothing outside the VM provides volumes"),
    key("volumes.*.labels.*", A, "ignored (metadata only)"),
    key("secrets.*.name", C, "compose's name for it"),
    key(
        "secrets.*.file",
        C,
        "copied into the VM at build time: the VM image holds the secret",
    ),
    key(
        "secrets.*.environment",
        C,
        "the variable's value at build time, written into the VM image",
    ),
    key("secrets.*.labels.*", A, "ignored (metadata only)"),
    key("secrets.*.external", R, "nothing outside the VM provides secrets"),
    key("secrets.*.driver", R, "not supported by compose either"),
    key("secrets.*.driver_opts.*", R, "not supported by compose either"),
    key("secrets.*.template_driver", R, "not supported by compose either"),
    key("configs.*.name", C, "compose's name for it"),
    key("configs.*.file", C, "copied into the VM at build time"),
    key(
        "configs.*.environment",
        C,
        "the variable's value at build time, written into the VM image",
    ),
    key("configs.*.content", C, "written into the VM image"),
    key("configs.*.labels.*", A, "ignored (metadata only)"),
    key("configs.*.external", R, "nothing outside the VM provides configs"),
    key("configs.*.driver", R, "not supported by compose either"),
    key("configs.*.driver_opts.*", R, "not supported by compose either"),
    key("configs.*.template_driver", R, "not supported by compose either"),
];

impl Pattern for Key {
    fn pattern(&self) -> &str {
        self.path
    }
}

/// The README's table, from [`SERVICE`] and [`TOP`].
pub fn markdown() -> String {
    let mut s = String::from("| compose key | native method | how |\n|---|---|---|\n");
    let word = |s: Support| match s {
        Support::Carried => "carried over",
        Support::Approximated => "approximated",
        Support::Refused => "refused",
    };
    for (prefix, table) in [("services.*.", SERVICE), ("", TOP)] {
        for k in table {
            let _ = writeln!(s, "| `{prefix}{}` | {} | {} |", k.path, word(k.support), k.how);
        }
    }
    s.push_str("\nAny other key is refused.\n");
    s
}

const START: &str = "<!-- native-keys:start (generated by `cargo xtask yaml`) -->\n";
const END: &str = "<!-- native-keys:end -->";

/// `readme` with the table between its markers replaced by [`markdown`].
pub fn readme_with_table(readme: &str) -> Result<String, String> {
    let start = readme.find(START).ok_or("README.md has no native-keys:start marker")? + START.len();
    let end = readme[start..]
        .find(END)
        .map(|e| start + e)
        .ok_or("README.md has no native-keys:end marker")?;
    Ok(format!("{}{}{}", &readme[..start], markdown(), &readme[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::keys::walk;
    use serde_json::{json, Value};

    fn paths(table: &[Key], v: &Value) -> Vec<(String, Option<Support>)> {
        walk(table, v)
            .into_iter()
            .map(|(p, k)| (p, k.map(|k| k.support)))
            .collect()
    }

    #[test]
    fn nested_keys_are_named_with_their_path() {
        let body = json!({
            "command": null,
            "image": "x",
            "environment": {"A": "1", "B": null},
            "ports": [{"target": 80, "published": "80", "host_ip": "127.0.0.1"}],
            "ulimits": {"nofile": {"soft": 1, "hard": 2}, "nproc": 5},
            "cap_add": ["NET_ADMIN"],
            "build": {"context": "/x", "args": {"A": "b"}},
            "blkio_config": {"weight": 300},
            "networks": {"default": null, "front": {"aliases": ["w"], "priority": 3}}
        });
        let got = paths(SERVICE, &body);
        let find = |p: &str| got.iter().find(|(path, _)| path == p).map(|(_, s)| *s);
        assert_eq!(find("image"), Some(Some(C)));
        assert_eq!(find("environment.A"), Some(Some(C)));
        assert_eq!(find("environment.B"), Some(Some(C)), "an unset variable is still a key");
        assert_eq!(find("ports[0].host_ip"), Some(Some(A)));
        assert_eq!(find("ulimits.nofile.soft"), Some(Some(C)));
        assert_eq!(find("ulimits.nproc"), Some(Some(C)));
        assert_eq!(find("cap_add"), Some(Some(C)));
        assert_eq!(find("build"), Some(Some(C)));
        assert_eq!(find("blkio_config.weight"), Some(None), "not in the table: refused");
        assert_eq!(find("networks.default"), Some(Some(C)));
        assert_eq!(find("networks.front.aliases"), Some(Some(C)));
        assert_eq!(find("networks.front.priority"), Some(None));
        assert_eq!(find("command"), None, "null: not set");
        let top = json!({"x-common": {"anything": 1}, "name": "p"});
        assert_eq!(
            paths(TOP, &top),
            [("name".to_string(), Some(C))],
            "extensions are not settings"
        );
    }

    #[test]
    fn the_readme_table_lists_every_key() {
        let md = markdown();
        for k in SERVICE {
            assert!(md.contains(&format!("`services.*.{}`", k.path)), "{}", k.path);
        }
        assert!(md.contains("| `services.*.devices[]` | refused |"), "{md}");
    }

    /// The README's table is this table, as `cargo xtask yaml` writes it.
    #[test]
    fn readme_table_is_current() {
        let path = crate::base::project::root().join("README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        assert!(
            readme_with_table(&readme).unwrap() == readme,
            "README.md's native key table is stale: run `cargo xtask yaml` and commit the result"
        );
    }
}
