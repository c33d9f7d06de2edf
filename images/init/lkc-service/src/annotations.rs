//! The compose protocol carried in a bundle's config.json `annotations`
//! (written by `linuxkit build` from the compose file; the keys and value
//! types are `lkc_contract`'s, shared with the xtask). A bundle with an
//! `org.linuxkit-compose.service` annotation is supervised (dependencies,
//! restarts, healthcheck); any other bundle is started as plain LinuxKit does.

use crate::deps::Condition;
use crate::health::Healthcheck;
use crate::restart::Restart;
use crate::runtime::nullable;
use lkc_contract::{
    DependsOn, DEFAULT_CERTIFICATE, DEPENDS_ON, HEALTHCHECK, RESTART, SERVICE, STOP_GRACE, STOP_SIGNAL,
};
use serde::{de::DeserializeOwned, Deserialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Docker's defaults: TERM, then KILL after 10 s.
const DEFAULT_STOP_SIGNAL: &str = "TERM";
const DEFAULT_STOP_GRACE_MS: u64 = 10_000;

pub type Annotations = BTreeMap<String, String>;

/// Only the part of the OCI runtime spec this module reads.
#[derive(Deserialize)]
struct Config {
    #[serde(default, deserialize_with = "nullable")]
    annotations: Annotations,
}

/// The annotations in `bundle/config.json` (none if it has no such object).
pub fn read(bundle: &Path) -> Result<Annotations, String> {
    config_json::<Config>(bundle).map(|c| c.annotations)
}

/// The part `T` of `bundle/config.json` that a module reads.
pub fn config_json<T: DeserializeOwned>(bundle: &Path) -> Result<T, String> {
    let file = bundle.join("config.json");
    let text = fs::read_to_string(&file).map_err(|e| format!("read {}: {e}", file.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("invalid {}: {e}", file.display()))
}

/// Whether the bundle is a compose service, for the supervisor to run.
pub fn supervised(a: &Annotations) -> bool {
    a.contains_key(SERVICE)
}

/// A compose service's settings from its annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The compose service name (informational: dependencies name bundles,
    /// which carry the same names).
    pub service: String,
    /// Dependency bundle name and condition, in name order.
    pub depends_on: Vec<(String, Condition)>,
    pub restart: Restart,
    pub healthcheck: Option<Healthcheck>,
    /// The signal that stops it, as `crun kill` takes it (`QUIT`, `15`).
    pub stop_signal: String,
    /// How long it gets to exit after that signal before KILL.
    pub stop_grace: std::time::Duration,
    /// Where to make its default TLS certificate before it starts
    /// (`certificate`).
    pub default_certificate: Option<std::path::PathBuf>,
}

impl Spec {
    /// Parse the annotations of the bundle named `bundle`. Errors name the
    /// bundle and the annotation key, for the console.
    pub fn parse(bundle: &str, a: &Annotations) -> Result<Spec, String> {
        let at = |key: &str, e: String| format!("bundle {bundle}: annotation {key}: {e}");
        let service = a.get(SERVICE).cloned().unwrap_or_default();
        if service.is_empty() {
            return Err(at(SERVICE, "empty service name".into()));
        }
        let depends_on = match a.get(DEPENDS_ON) {
            None => Vec::new(),
            Some(text) => parse_depends_on(text).map_err(|e| at(DEPENDS_ON, e))?,
        };
        let restart = match a.get(RESTART) {
            None => Restart::No,
            Some(text) => text.parse::<Restart>().map_err(|e| at(RESTART, e))?,
        };
        let healthcheck = match a.get(HEALTHCHECK) {
            None => None,
            Some(text) => Healthcheck::parse(text).map_err(|e| at(HEALTHCHECK, e))?,
        };
        let stop_signal = match a.get(STOP_SIGNAL) {
            None => DEFAULT_STOP_SIGNAL.to_string(),
            Some(text) => parse_signal(text).map_err(|e| at(STOP_SIGNAL, e))?,
        };
        let stop_grace = match a.get(STOP_GRACE) {
            None => DEFAULT_STOP_GRACE_MS,
            Some(text) => text
                .parse::<u64>()
                .map_err(|_| at(STOP_GRACE, format!("`{text}` is not a number of milliseconds")))?,
        };
        let default_certificate = match a.get(DEFAULT_CERTIFICATE) {
            None => None,
            Some(dir) if dir.starts_with('/') => Some(dir.into()),
            Some(dir) => return Err(at(DEFAULT_CERTIFICATE, format!("`{dir}` is not an absolute path"))),
        };
        Ok(Spec {
            service,
            depends_on,
            restart,
            healthcheck,
            stop_signal,
            stop_grace: std::time::Duration::from_millis(stop_grace),
            default_certificate,
        })
    }
}

/// The dependencies in name order, each with its condition.
fn parse_depends_on(text: &str) -> Result<Vec<(String, Condition)>, String> {
    let deps: DependsOn = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    Ok(deps.into_iter().collect())
}

/// A signal as Docker's STOPSIGNAL takes it (`SIGQUIT`, `QUIT`, `3`), as
/// `crun kill` takes it (`QUIT`, `3`).
pub fn parse_signal(text: &str) -> Result<String, String> {
    let t = text.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        return match t.parse::<u32>() {
            Ok(n) if (1..=64).contains(&n) => Ok(t.to_string()),
            _ => Err(format!("`{text}` is not a signal number")),
        };
    }
    let name = t.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    const NAMES: [&str; 20] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM",
        "TERM", "CHLD", "CONT", "STOP", "TSTP", "WINCH",
    ];
    if NAMES.contains(&name) {
        Ok(name.to_string())
    } else {
        Err(format!("`{text}` is not a signal name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ann(kv: &[(&str, &str)]) -> Annotations {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn only_the_service_key_means_supervised() {
        assert!(supervised(&ann(&[(SERVICE, "web")])));
        assert!(!supervised(&ann(&[(RESTART, "always")])));
        assert!(!supervised(&Annotations::new()));
    }

    #[test]
    fn bare_service_has_compose_defaults() {
        let s = Spec::parse("web", &ann(&[(SERVICE, "web")])).unwrap();
        assert_eq!(s.service, "web");
        assert!(s.depends_on.is_empty());
        assert_eq!(s.restart, Restart::No);
        assert_eq!(s.healthcheck, None);
        assert_eq!(
            (s.stop_signal.as_str(), s.stop_grace),
            ("TERM", Duration::from_secs(10))
        );
    }

    /// STOPSIGNAL and stop_grace_period, as Docker stops a container.
    #[test]
    fn stop_signal_and_grace() {
        let s = Spec::parse(
            "web",
            &ann(&[(SERVICE, "web"), (STOP_SIGNAL, "SIGQUIT"), (STOP_GRACE, "2500")]),
        )
        .unwrap();
        assert_eq!(
            (s.stop_signal.as_str(), s.stop_grace),
            ("QUIT", Duration::from_millis(2500))
        );
        assert_eq!(parse_signal("9").unwrap(), "9");
        assert_eq!(parse_signal("usr1").unwrap(), "USR1");
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("99").is_err());
        let e = Spec::parse("web", &ann(&[(SERVICE, "web"), (STOP_GRACE, "soon")])).unwrap_err();
        assert!(e.contains(STOP_GRACE), "{e}");
    }

    #[test]
    fn default_certificate_directory() {
        let parse = |dir: &str| Spec::parse("proxy", &ann(&[(SERVICE, "proxy"), (DEFAULT_CERTIFICATE, dir)]));
        assert_eq!(
            parse("/run/native/tls").unwrap().default_certificate,
            Some("/run/native/tls".into())
        );
        let e = parse("run/native/tls").unwrap_err();
        assert!(e.contains(DEFAULT_CERTIFICATE), "{e}");
        let none = Spec::parse("web", &ann(&[(SERVICE, "web")])).unwrap();
        assert_eq!(none.default_certificate, None);
    }

    #[test]
    fn full_service() {
        let s = Spec::parse(
            "web",
            &ann(&[
                (SERVICE, "web"),
                (
                    DEPENDS_ON,
                    r#"{"migrate":"service_completed_successfully","db":"service_healthy"}"#,
                ),
                (RESTART, "on-failure:5"),
                (HEALTHCHECK, r#"{"test":["/bin/sh","-c","true"],"interval_ms":1000}"#),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.depends_on,
            [
                ("db".to_string(), Condition::Healthy),
                ("migrate".to_string(), Condition::CompletedSuccessfully)
            ]
        );
        assert_eq!(s.restart, Restart::OnFailure { max: Some(5) });
        let hc = s.healthcheck.unwrap();
        assert_eq!(hc.test, ["/bin/sh", "-c", "true"]);
        assert_eq!(hc.interval, Duration::from_secs(1));
    }

    #[test]
    fn errors_name_bundle_and_key() {
        let bad = [
            (
                DEPENDS_ON,
                r#"{"db":"service_ready"}"#,
                "unknown variant `service_ready`",
            ),
            (DEPENDS_ON, r#"["db"]"#, "invalid JSON"),
            (RESTART, "sometimes", "unknown restart policy"),
            (HEALTHCHECK, r#"{"test":[]}"#, "`test`"),
        ];
        for (key, value, what) in bad {
            let err = Spec::parse("020-web", &ann(&[(SERVICE, "web"), (key, value)])).unwrap_err();
            assert!(err.starts_with(&format!("bundle 020-web: annotation {key}: ")), "{err}");
            assert!(err.contains(what), "{err}");
        }
        let err = Spec::parse("x", &ann(&[(SERVICE, "")])).unwrap_err();
        assert!(err.contains(SERVICE), "{err}");
    }

    #[test]
    fn reads_config_json_annotations() {
        let dir = std::env::temp_dir().join(format!("lkc-ann-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("config.json"),
            r#"{"ociVersion":"1.0.2","process":{"args":["x"]},
               "annotations":{"org.linuxkit-compose.service":"web","other":"1"}}"#,
        )
        .unwrap();
        let with = read(&dir);
        fs::write(dir.join("config.json"), r#"{"ociVersion":"1.0.2","annotations":null}"#).unwrap();
        let null = read(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(with.unwrap(), ann(&[(SERVICE, "web"), ("other", "1")]));
        assert_eq!(null.unwrap(), Annotations::new());
        assert!(read(Path::new("/nonexistent/lkc")).is_err());
    }
}
