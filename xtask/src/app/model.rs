//! The typed settings of a compose app, as `docker compose config --format
//! json` writes them: what each service runs and with which process settings,
//! its volumes, networks, secrets and configs, healthcheck, start order and
//! restart policy; and the top-level networks, volumes, secrets and configs.
//! This is the only place that knows the shape of compose's JSON: every other
//! module reads these types.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// A string of compose's model as the container gets it: compose's model keeps
/// `$$` (a literal `$` the file escaped from interpolation), which compose
/// turns into `$` when it creates the container.
pub fn unescape(text: &str) -> String {
    text.replace("$$", "$")
}

/// The process a service's container runs, and what its namespace gets.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Process {
    /// `entrypoint:` as a list (None: the image's).
    #[serde(default, deserialize_with = "unescaped_list")]
    pub entrypoint: Option<Vec<String>>,
    /// `command:` as a list (None: the image's).
    #[serde(default, deserialize_with = "unescaped_list")]
    pub command: Option<Vec<String>>,
    /// `environment:` with `env_file` merged in; None: compose found the
    /// variable neither in the file nor in the environment (not set).
    #[serde(default, deserialize_with = "environment")]
    pub environment: BTreeMap<String, Option<String>>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub hostname: Option<String>,
    /// `extra_hosts:` as (name, address).
    #[serde(default, deserialize_with = "extra_hosts")]
    pub extra_hosts: Vec<(String, String)>,
    /// `links:` as compose writes them (`db`, `db:database`); compose has
    /// made each a `depends_on` too.
    #[serde(default)]
    pub links: Vec<String>,
    /// `security_opt:` entries (`no-new-privileges:true`, `seccomp=unconfined`).
    #[serde(default)]
    pub security_opt: Vec<String>,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub cap_add: Vec<String>,
    #[serde(default)]
    pub cap_drop: Vec<String>,
    #[serde(default)]
    pub read_only: bool,
    /// `/dev/shm`'s size, as compose writes it (bytes).
    #[serde(default, deserialize_with = "opt_text")]
    pub shm_size: Option<String>,
    /// `tmpfs:` entries, `TARGET[:OPTIONS]`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub tmpfs: Vec<String>,
    #[serde(default, deserialize_with = "text_map")]
    pub sysctls: BTreeMap<String, String>,
    #[serde(default)]
    pub ulimits: BTreeMap<String, Ulimit>,
    pub oom_score_adj: Option<i64>,
    pub stop_signal: Option<String>,
    /// `stop_grace_period:` as compose writes it (a Go duration).
    pub stop_grace_period: Option<String>,
    /// `mem_limit:` in bytes, as compose writes it.
    #[serde(default, deserialize_with = "opt_text")]
    pub mem_limit: Option<String>,
    /// `cpus:` as compose writes it (a number of CPUs, `0.5`).
    #[serde(default, deserialize_with = "opt_text")]
    pub cpus: Option<String>,
    pub pids_limit: Option<i64>,
    #[serde(default)]
    pub deploy: Deploy,
    /// `init: true`: an init process (Docker's: tini) runs the service's.
    #[serde(default)]
    pub init: bool,
}

impl Process {
    /// `links:` as (service, alias): `db` is (db, db).
    pub fn links(&self) -> Vec<(String, String)> {
        self.links
            .iter()
            .map(|l| match l.split_once(':') {
                Some((to, alias)) => (to.to_string(), alias.to_string()),
                None => (l.clone(), l.clone()),
            })
            .collect()
    }

    /// The memory limit in bytes: `deploy.resources.limits.memory`, else
    /// `mem_limit` (compose refuses the two when they differ).
    pub fn memory_limit(&self) -> Option<&str> {
        self.deploy
            .resources
            .limits
            .memory
            .as_deref()
            .or(self.mem_limit.as_deref())
    }

    /// The CPU limit: `deploy.resources.limits.cpus`, else `cpus`.
    pub fn cpu_limit(&self) -> Option<&str> {
        self.deploy.resources.limits.cpus.as_deref().or(self.cpus.as_deref())
    }

    /// The process limit: `deploy.resources.limits.pids`, else `pids_limit`.
    pub fn pids_limit(&self) -> Option<i64> {
        self.deploy.resources.limits.pids.or(self.pids_limit)
    }
}

/// `deploy:` as `docker compose up` reads it (the rest is swarm's).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Deploy {
    pub replicas: Option<u64>,
    #[serde(default)]
    pub resources: DeployResources,
    pub restart_policy: Option<RestartPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct DeployResources {
    #[serde(default)]
    pub limits: Limits,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Limits {
    #[serde(default, deserialize_with = "opt_text")]
    pub cpus: Option<String>,
    /// Bytes, as compose writes them.
    #[serde(default, deserialize_with = "opt_text")]
    pub memory: Option<String>,
    pub pids: Option<i64>,
}

/// `deploy.restart_policy:`, which compose uses where `restart:` is not set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RestartPolicy {
    pub condition: Option<String>,
    pub max_attempts: Option<u64>,
}

impl RestartPolicy {
    /// The `restart:` policy compose makes of it (docker compose's
    /// mapRestartPolicyCondition): none -> no, on-failure[:max_attempts],
    /// any (the default) -> always.
    pub fn as_restart(&self) -> String {
        match self.condition.as_deref().unwrap_or("any") {
            "none" | "no" => "no".into(),
            "on-failure" => match self.max_attempts {
                Some(n) if n > 0 => format!("on-failure:{n}"),
                _ => "on-failure".into(),
            },
            "any" | "always" => "always".into(),
            other => other.into(),
        }
    }
}

/// One `ulimits:` entry: a number sets both limits.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Ulimit {
    Both(i64),
    Split { soft: Option<i64>, hard: Option<i64> },
}

impl Ulimit {
    /// (soft, hard); None where the entry sets none.
    pub fn limits(&self) -> (Option<i64>, Option<i64>) {
        match *self {
            Ulimit::Both(n) => (Some(n), Some(n)),
            Ulimit::Split { soft, hard } => (soft, hard),
        }
    }
}

/// One entry of a service's `volumes:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: String,
    /// The named volume, or the host path of a bind (absolute); None for an
    /// anonymous volume or a tmpfs.
    pub source: Option<String>,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    /// `volume.subpath` and `volume.nocopy`.
    #[serde(default)]
    pub volume: VolumeOptions,
    #[serde(default)]
    pub tmpfs: TmpfsOptions,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct VolumeOptions {
    pub subpath: Option<String>,
    /// `volume.nocopy`: the new volume is not filled from the image.
    #[serde(default)]
    pub nocopy: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TmpfsOptions {
    /// Bytes, as compose writes them.
    #[serde(default, deserialize_with = "opt_text")]
    pub size: Option<String>,
    /// The mode bits, as a number.
    pub mode: Option<u32>,
}

/// A service's place on one of the app's networks.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Attachment {
    #[serde(default)]
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
}

/// How the service waits for another (`depends_on:`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Dependency {
    /// `service_started`, `service_healthy` or `service_completed_successfully`.
    #[serde(default = "service_started")]
    pub condition: String,
}

fn service_started() -> String {
    "service_started".into()
}

/// `healthcheck:` as compose writes it: durations as Go durations.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Healthcheck {
    #[serde(default)]
    pub disable: bool,
    /// `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`; None: the image's.
    #[serde(default, deserialize_with = "unescaped_list")]
    pub test: Option<Vec<String>>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<u64>,
}

/// A service's use of a top-level secret or config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FileUse {
    pub source: String,
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    /// The mode bits: compose writes a number; newer versions an octal string.
    #[serde(default, deserialize_with = "file_mode")]
    pub mode: Option<u32>,
}

fn file_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match Option::<Text>::deserialize(d)? {
        None => Ok(None),
        Some(Text::Int(n)) => u32::try_from(n).map(Some).map_err(serde::de::Error::custom),
        Some(Text::Str(s)) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("mode `{s}` is not octal"))),
        Some(_) => Err(serde::de::Error::custom("a mode is a number")),
    }
}

/// A top-level network.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Network {
    #[serde(default)]
    pub external: bool,
    pub driver: Option<String>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub ipam: Ipam,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Ipam {
    #[serde(default)]
    pub config: Vec<IpamConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct IpamConfig {
    pub subnet: Option<String>,
    pub gateway: Option<String>,
}

/// A top-level volume.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Volume {
    #[serde(default)]
    pub external: bool,
    pub driver: Option<String>,
}

/// A top-level secret or config: where its bytes come from.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct FileSource {
    /// An absolute path on the build host.
    pub file: Option<String>,
    /// The name of a variable of the build's environment.
    pub environment: Option<String>,
    /// The bytes themselves (configs).
    pub content: Option<String>,
    #[serde(default)]
    pub external: bool,
}

/// compose's `[…]` or null, each string unescaped.
fn unescaped_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let list: Option<Vec<String>> = Option::deserialize(d)?;
    Ok(list.map(|l| l.iter().map(|s| unescape(s)).collect()))
}

/// A scalar compose may write as a string or a number, as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Text {
    fn into_string(self) -> String {
        match self {
            Text::Str(s) => s,
            Text::Int(n) => n.to_string(),
            Text::Float(n) => n.to_string(),
            Text::Bool(b) => b.to_string(),
        }
    }
}

fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Text>::deserialize(d)?.map(Text::into_string))
}

fn text_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map: Option<BTreeMap<String, Text>> = Option::deserialize(d)?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_string()))
        .collect())
}

fn environment<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Option<String>>, D::Error> {
    let map: Option<BTreeMap<String, Option<Text>>> = Option::deserialize(d)?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.map(|v| match v {
                    Text::Str(s) => unescape(&s),
                    other => other.into_string(),
                }),
            )
        })
        .collect())
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// `extra_hosts:` as compose writes it (`name=address`, or the older
/// `name:address`; a map in some versions).
fn extra_hosts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Hosts {
        List(Vec<String>),
        Map(BTreeMap<String, Text>),
    }
    Ok(match Option::<Hosts>::deserialize(d)? {
        None => Vec::new(),
        Some(Hosts::List(l)) => l
            .iter()
            .filter_map(|h| h.split_once(['=', ':']).map(|(n, a)| (n.to_string(), a.to_string())))
            .collect(),
        Some(Hosts::Map(m)) => m.into_iter().map(|(k, v)| (k, v.into_string())).collect(),
    })
}

/// `expose:` entries, as text (`80`, `90/udp`).
pub(super) fn texts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list: Option<Vec<Text>> = Option::deserialize(d)?;
    Ok(list.unwrap_or_default().into_iter().map(Text::into_string).collect())
}

/// `networks:` of a service: a name with nothing set is null.
pub(super) fn attachments<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Attachment>, D::Error> {
    let map: Option<BTreeMap<String, Option<Attachment>>> = Option::deserialize(d)?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// A map of names whose bodies may be null (`volumes: {data: null}`).
pub(super) fn named<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<BTreeMap<String, T>, D::Error> {
    let map: Option<BTreeMap<String, Option<T>>> = Option::deserialize(d)?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
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

#[cfg(test)]
mod tests {
    use super::*;

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

    use serde_json::json;

    #[test]
    fn process_settings_as_compose_writes_them() {
        let p: Process = serde_json::from_value(json!({
            "command": ["echo", "a$$b"], "entrypoint": null,
            "environment": {"A": "1", "B": null, "C": "x$$y"},
            "extra_hosts": ["a.b=1.2.3.4", "c:5.6.7.8"],
            "shm_size": "67108864", "tmpfs": ["/run"],
            "sysctls": {"net.core.somaxconn": "1024"},
            "ulimits": {"nofile": {"soft": 10, "hard": 20}, "nproc": 5},
        }))
        .unwrap();
        assert_eq!(p.command.unwrap(), ["echo", "a$b"]);
        assert_eq!(p.entrypoint, None);
        assert_eq!(p.environment["B"], None);
        assert_eq!(p.environment["C"].as_deref(), Some("x$y"));
        assert_eq!(
            p.extra_hosts,
            [("a.b".into(), "1.2.3.4".into()), ("c".into(), "5.6.7.8".into())]
        );
        assert_eq!(p.ulimits["nofile"].limits(), (Some(10), Some(20)));
        assert_eq!(p.ulimits["nproc"].limits(), (Some(5), Some(5)));
        assert_eq!(p.tmpfs, ["/run"]);
    }
}
