//! The contract between the xtask, which turns a compose service into a
//! LinuxKit service with these OCI annotations (`xtask/src/vm/native`), and
//! the VM's service runner, which reads them from the bundle's config.json
//! and runs the service as `docker compose up` would
//! (`images/init/lkc-service`). Both build this crate, so a key or a field
//! spelled differently on one side fails to compile instead of to boot.
//!
//! Every annotation value is a string: the plain ones are text (a name, a
//! number, a path), the structured ones are the JSON of the types here
//! (`serde_json::to_string` to write, `serde_json::from_str` to read).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The compose service name, as text. Its presence marks the bundle as a
/// compose service: the runner hands it to its supervisor (start order,
/// restarts, healthcheck) instead of starting it as plain LinuxKit does.
/// An empty name is refused.
pub const SERVICE: &str = "org.linuxkit-compose.service";

/// The JSON of [`DependsOn`]: what each dependency must have done before
/// the runner starts this service. Absent: no dependencies.
pub const DEPENDS_ON: &str = "org.linuxkit-compose.depends_on";

/// The compose restart policy, as the text [`Restart`] reads and writes
/// (`on-failure:3`). Absent: `no`.
pub const RESTART: &str = "org.linuxkit-compose.restart";

/// The JSON of [`Healthcheck`]: the probe the runner runs in the container
/// (`crun exec`) to tell `service_healthy`. Absent: no healthcheck.
pub const HEALTHCHECK: &str = "org.linuxkit-compose.healthcheck";

/// The signal that stops the service, as text the way Docker's STOPSIGNAL
/// takes it (`SIGQUIT`, `QUIT`, `3`); the runner sends it with `crun kill`.
/// Absent: `TERM`.
pub const STOP_SIGNAL: &str = "org.linuxkit-compose.stop_signal";

/// How long the service gets to exit after its stop signal before the
/// runner sends KILL: a whole number of milliseconds, in decimal text
/// (`u64`). Absent: 10 s, Docker's default.
pub const STOP_GRACE: &str = "org.linuxkit-compose.stop_grace_period_ms";

/// An absolute directory path, as text: before the service starts, the
/// runner makes a self-signed TLS certificate there (`cert.pem`,
/// `key.pem`), for a service (traefik) whose default certificate Docker's
/// setup would have provided. Absent: no certificate.
pub const DEFAULT_CERTIFICATE: &str = "org.linuxkit-compose.default_certificate";

/// A JSON array of container paths, each a volume's mount point: before the
/// service starts, the runner fills each volume that is still empty from the
/// service's image, as Docker does when it first mounts a new volume (the
/// files under that path, and the folder's owner and mode). Absent: none.
pub const POPULATE: &str = "org.linuxkit-compose.populate";

/// On an onboot container, any text: the app's services need what it does
/// (the data disk for their volumes). When it fails, the runner starts only
/// the services marked [`CONSOLE`], and says why.
pub const REQUIRED: &str = "org.linuxkit-compose.required";

/// On a service container, any text: the console's shell, which still
/// starts when a [`REQUIRED`] onboot container failed, to look into why.
pub const CONSOLE: &str = "org.linuxkit-compose.console";

/// What the VM's runners add to the console line saying a service exited
/// (`service: web exited with status 1`, `compose: service web exited with
/// status 1`) when its restart policy starts it again: only an exit without
/// it is the service's last, which a boot test stops at. The compose runner
/// (images/compose/compose-up) writes the same words.
pub const RESTARTS_IT: &str = "; its restart policy starts it again";

/// The value of [`DEPENDS_ON`]: each dependency's bundle name (the compose
/// service name) and the condition it must meet, in name order (so the JSON
/// is the same from one conversion to the next).
pub type DependsOn = BTreeMap<String, Condition>;

/// A compose `depends_on` condition, spelled as compose spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// `service_started`: the runner waits until the dependency's container
    /// was launched.
    #[serde(rename = "service_started")]
    Started,
    /// `service_healthy`: until its healthcheck passed (a dependency without
    /// one counts as `service_started`).
    #[serde(rename = "service_healthy")]
    Healthy,
    /// `service_completed_successfully`: until it exited with status 0.
    #[serde(rename = "service_completed_successfully")]
    CompletedSuccessfully,
}

/// The value of [`HEALTHCHECK`]. A field left out (or 0, as Docker reads
/// it) is the runner's to default, as Docker does: interval and timeout
/// 30 s, 3 retries, no start period, start interval 5 s.
///
/// The fields are in name order: that is the order the xtask has always
/// written them in, so the generated YAML stays the same.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// The time between two probes, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// How many failed probes in a row make the service unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// The time between two probes while the service is starting and within
    /// its start period, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval_ms: Option<u64>,
    /// How long after its start failed probes of a starting service do not
    /// count, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period_ms: Option<u64>,
    /// The probe's argv, run in the container with `crun exec`; exit status
    /// 0 is a pass. Compose's `CMD-SHELL cmd` is already
    /// `["/bin/sh", "-c", "cmd"]` here. `["NONE"]` disables the check.
    pub test: Vec<String>,
    /// How long one probe may take before it counts as failed, in
    /// milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// The value of [`RESTART`]: a compose `restart:` policy. Its text is
/// compose's (`FromStr`, `Display`), in JSON too (serde goes through that
/// text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Restart {
    /// `no`: the runner leaves it down once exited (compose's default).
    #[default]
    No,
    /// `always`: the runner restarts it whatever its exit status.
    Always,
    /// `unless-stopped`: like `always` in the VM; the difference in Docker
    /// is about daemon restarts, which a VM boot does not have.
    UnlessStopped,
    /// `on-failure[:N]`: the runner restarts it on a non-zero exit status,
    /// at most N times if given (`on-failure:0` is unlimited, as in Docker,
    /// and reads as `None`).
    OnFailure { max: Option<u32> },
}

impl FromStr for Restart {
    type Err = String;

    /// Read a policy as compose writes it (an empty one is `no`).
    fn from_str(text: &str) -> Result<Restart, String> {
        match text {
            "no" | "" => Ok(Restart::No),
            "always" => Ok(Restart::Always),
            "unless-stopped" => Ok(Restart::UnlessStopped),
            "on-failure" => Ok(Restart::OnFailure { max: None }),
            _ => {
                let n = text
                    .strip_prefix("on-failure:")
                    .ok_or_else(|| format!("unknown restart policy {text:?}"))?;
                let n: u32 = n
                    .parse()
                    .map_err(|_| format!("bad retry count in restart policy {text:?}"))?;
                Ok(Restart::OnFailure {
                    max: (n > 0).then_some(n),
                })
            }
        }
    }
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Restart::No => f.write_str("no"),
            Restart::Always => f.write_str("always"),
            Restart::UnlessStopped => f.write_str("unless-stopped"),
            Restart::OnFailure { max: None } => f.write_str("on-failure"),
            Restart::OnFailure { max: Some(n) } => write!(f, "on-failure:{n}"),
        }
    }
}

impl TryFrom<String> for Restart {
    type Error = String;

    fn try_from(text: String) -> Result<Restart, String> {
        text.parse()
    }
}

impl From<Restart> for String {
    fn from(r: Restart) -> String {
        r.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON as the xtask has always written it and the runner reads it:
    /// what a change here would break in a VM built before it.
    #[test]
    fn healthcheck_round_trips_in_name_order_without_unset_fields() {
        let h = Healthcheck {
            interval_ms: Some(2000),
            retries: Some(5),
            test: vec!["pg_isready".into(), "-U".into(), "postgres".into()],
            ..Default::default()
        };
        let text = serde_json::to_string(&h).unwrap();
        assert_eq!(
            text,
            r#"{"interval_ms":2000,"retries":5,"test":["pg_isready","-U","postgres"]}"#
        );
        assert_eq!(serde_json::from_str::<Healthcheck>(&text).unwrap(), h);
        let full = Healthcheck {
            interval_ms: Some(1),
            retries: Some(2),
            start_interval_ms: Some(3),
            start_period_ms: Some(4),
            test: vec!["true".into()],
            timeout_ms: Some(0),
        };
        let text = serde_json::to_string(&full).unwrap();
        assert_eq!(
            text,
            r#"{"interval_ms":1,"retries":2,"start_interval_ms":3,"start_period_ms":4,"test":["true"],"timeout_ms":0}"#
        );
        assert_eq!(serde_json::from_str::<Healthcheck>(&text).unwrap(), full);
    }

    #[test]
    fn healthcheck_needs_a_test_and_no_unknown_fields() {
        assert!(serde_json::from_str::<Healthcheck>(r#"{"interval_ms":5}"#)
            .unwrap_err()
            .to_string()
            .contains("`test`"));
        assert!(serde_json::from_str::<Healthcheck>(r#"{"test":["x"],"intervl_ms":5}"#).is_err());
    }

    #[test]
    fn depends_on_round_trips_in_name_order() {
        let deps: DependsOn = [
            ("migrate".to_string(), Condition::CompletedSuccessfully),
            ("db".to_string(), Condition::Healthy),
            ("cache".to_string(), Condition::Started),
        ]
        .into();
        let text = serde_json::to_string(&deps).unwrap();
        assert_eq!(
            text,
            r#"{"cache":"service_started","db":"service_healthy","migrate":"service_completed_successfully"}"#
        );
        assert_eq!(serde_json::from_str::<DependsOn>(&text).unwrap(), deps);
        assert!(serde_json::from_str::<DependsOn>(r#"{"db":"service_ready"}"#).is_err());
    }

    #[test]
    fn restart_policies_round_trip_as_compose_text() {
        for text in ["no", "always", "unless-stopped", "on-failure", "on-failure:3"] {
            let r: Restart = text.parse().unwrap();
            assert_eq!(r.to_string(), text);
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Restart>(&json).unwrap(), r);
        }
        assert_eq!("on-failure:3".parse(), Ok(Restart::OnFailure { max: Some(3) }));
        assert_eq!("on-failure:0".parse(), Ok(Restart::OnFailure { max: None }));
        assert_eq!("".parse(), Ok(Restart::No));
    }

    #[test]
    fn bad_restart_policies_are_errors() {
        assert!("sometimes".parse::<Restart>().unwrap_err().contains("\"sometimes\""));
        assert!("on-failure:x".parse::<Restart>().unwrap_err().contains("retry count"));
        assert!("on-failure:-1".parse::<Restart>().is_err());
        assert!(serde_json::from_str::<Restart>("\"sometimes\"").is_err());
    }
}
