//! The docker provider's options (`providers.docker.*`): which of them shape
//! the routes, which only mean something with a Docker engine, and the
//! providers' throttle the conversion turns off.

use super::parse_bool;

/// The docker provider options that shape routes.
pub(super) struct DockerProvider {
    pub(super) exposed_by_default: bool,
    pub(super) default_rule: DefaultRule,
}

/// `providers.docker.defaultRule`: literal text and `.Name` placeholders.
#[derive(Clone)]
pub(super) struct DefaultRule(Vec<Option<String>>);

impl DefaultRule {
    const TRAEFIK: &'static str = "Host(`{{ normalize .Name }}`)";

    fn parse(rule: &str) -> Result<DefaultRule, String> {
        let mut parts = Vec::new();
        let mut rest = rule;
        while let Some(at) = rest.find("{{") {
            parts.push(Some(rest[..at].to_string()));
            let end = rest[at..]
                .find("}}")
                .ok_or_else(|| format!("unclosed `{{{{` in `{rule}`"))?;
            let action: Vec<&str> = rest[at + 2..at + end].split_whitespace().collect();
            match action[..] {
                [".Name"] | ["normalize", ".Name"] => parts.push(None),
                _ => {
                    return Err(format!(
                        "only `{{{{ normalize .Name }}}}` and `{{{{ .Name }}}}` can be evaluated without Docker, \
                         not `{}`",
                        &rest[at..at + end + 2]
                    ))
                }
            }
            rest = &rest[at + end + 2..];
        }
        parts.push(Some(rest.to_string()));
        Ok(DefaultRule(parts))
    }

    /// `name` is already normalized, so `normalize .Name` is `.Name`.
    pub(super) fn eval(&self, name: &str) -> String {
        self.0.iter().map(|p| p.as_deref().unwrap_or(name)).collect()
    }
}

/// What each `providers.docker` option becomes without a Docker engine.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum DockerOption {
    ExposedByDefault,
    DefaultRule,
    Constraints,
    AllowEmptyServices,
    UseBindPortIp,
    /// Only meaningful with a Docker engine: dropped with a note.
    Engine,
}

/// (option as traefik documents it, matched case-insensitively; is it a boolean
/// flag, which takes no separate value; what it becomes)
const DOCKER_OPTIONS: &[(&str, bool, DockerOption)] = &[
    ("exposedByDefault", true, DockerOption::ExposedByDefault),
    ("defaultRule", false, DockerOption::DefaultRule),
    ("constraints", false, DockerOption::Constraints),
    ("allowEmptyServices", true, DockerOption::AllowEmptyServices),
    ("useBindPortIP", true, DockerOption::UseBindPortIp),
    ("network", false, DockerOption::Engine),
    ("watch", true, DockerOption::Engine),
    ("endpoint", false, DockerOption::Engine),
    ("username", false, DockerOption::Engine),
    ("password", false, DockerOption::Engine),
    ("httpClientTimeout", false, DockerOption::Engine),
    ("tls", true, DockerOption::Engine),
    ("tls.ca", false, DockerOption::Engine),
    ("tls.cert", false, DockerOption::Engine),
    ("tls.key", false, DockerOption::Engine),
    ("tls.insecureSkipVerify", true, DockerOption::Engine),
    ("tls.caOptional", true, DockerOption::Engine),
];

/// The docker provider option `name`, in any case.
pub(super) fn docker_option(name: &str) -> Option<(&'static str, bool, DockerOption)> {
    DOCKER_OPTIONS
        .iter()
        .copied()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
}

/// Reads the docker provider's options, given as (option path, value).
pub(super) fn docker_options(
    traefik: &str,
    options: &[(String, String)],
    notes: &mut Vec<String>,
) -> Result<DockerProvider, String> {
    let mut docker = DockerProvider {
        exposed_by_default: true,
        default_rule: DefaultRule::parse(DefaultRule::TRAEFIK).expect("traefik's default rule"),
    };
    for (name, value) in options {
        let at = format!("traefik service `{traefik}`: providers.docker.{name}");
        let Some((canonical, _, opt)) = docker_option(name) else {
            return Err(format!("{at}: not a docker provider option this conversion knows"));
        };
        let flag = || parse_bool(value).ok_or_else(|| format!("{at}: `{value}` is not a boolean"));
        match opt {
            DockerOption::ExposedByDefault => docker.exposed_by_default = flag()?,
            DockerOption::DefaultRule => {
                docker.default_rule = DefaultRule::parse(value).map_err(|e| format!("{at}: {e}"))?
            }
            DockerOption::Constraints if value.is_empty() => {}
            DockerOption::Constraints => return Err(format!("{at}: constraints are not supported without Docker")),
            DockerOption::AllowEmptyServices if !flag()? => {}
            DockerOption::AllowEmptyServices => {
                return Err(format!("{at}: allowEmptyServices=true is not supported without Docker"))
            }
            DockerOption::UseBindPortIp if !flag()? => {
                notes.push(format!("providers.docker.{canonical}=false: dropped (the default)"))
            }
            DockerOption::UseBindPortIp => {
                return Err(format!("{at}: useBindPortIP=true needs Docker's port bindings"))
            }
            DockerOption::Engine => notes.push(format!(
                "providers.docker.{canonical}: dropped, it only means something with a Docker engine"
            )),
        }
    }
    Ok(docker)
}

/// `providers.providersThrottleDuration`, which the conversion sets to
/// `NO_THROTTLE`. Once the docker provider is gone, the providers left, the
/// file provider (read once, not watched) and traefik's internal one, send
/// one configuration each. Unthrottled, traefik reads the file's before the
/// internal one's and applies the two at once; throttled, it may apply the
/// internal one alone first and then both, building its routers and TLS
/// stores twice before the app's routes work (and, without a default
/// certificate named, making an RSA key each time: `DefaultCertificate`).
pub(super) const THROTTLE: &str = "providersThrottleDuration";
pub(super) const NO_THROTTLE: &str = "0s";

/// A note when the throttle the user set is not already none.
pub(super) fn throttle_note(value: Option<String>, notes: &mut Vec<String>) {
    let value = value.unwrap_or_default();
    if value != NO_THROTTLE && value != "0" {
        notes.push(format!(
            "providers.{THROTTLE}: {value} becomes {NO_THROTTLE}: the file provider sends its configuration once"
        ));
    }
}
