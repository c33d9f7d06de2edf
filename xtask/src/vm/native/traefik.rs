//! traefik without a Docker engine. A native VM runs the compose services as
//! plain containers, so traefik's docker provider (routes from container
//! labels, read through /var/run/docker.sock) has nothing to read. At build
//! time `convert` turns the `traefik.*` labels of the services into the FILE
//! provider's dynamic configuration, routing as the docker provider (traefik
//! v3.6) would have, and rewrites traefik's static configuration to read that
//! file in place of the docker provider.
//!
//! The label grammar is traefik's: keys match case-insensitively, the first
//! spelling of a name wins, lists are comma-separated, `tls=true` (and the
//! other "allow empty" options) enables a block with its defaults.
// Until the native VM calls `convert`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_yaml::{Mapping, Value};

/// A compose service as traefik would see its container.
pub struct Backend<'a> {
    /// The compose service's name.
    pub service: &'a str,
    /// Every compose label (non-traefik ones are ignored).
    pub labels: &'a BTreeMap<String, String>,
    /// The service's IPv4 address as traefik reaches it, e.g. "172.18.0.2".
    pub address: String,
    /// The TCP ports the image EXPOSEs plus compose `expose:`, sorted.
    pub exposed_tcp: Vec<u16>,
}

/// traefik's static configuration: one source only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StaticConfig {
    /// A YAML file, and where it is in traefik's container.
    File { path: String, yaml: String },
    /// Command-line flags (`--providers.docker…`).
    Args(Vec<String>),
}

/// Where traefik's container finds the default TLS certificate that the VM
/// makes before traefik starts.
///
/// traefik makes its own when no store names one: self-signed, for `TRAEFIK
/// DEFAULT CERT` with a random name under `traefik.default`, on a new
/// 2048-bit RSA key, at every configuration it applies and before that
/// configuration takes effect. Under TCG such a key can take seconds, much of
/// traefik's start. The VM's service runner makes the same
/// kind on a P-256 key in milliseconds (images/init/lkc-service,
/// `certificate`), at each boot, so no private key travels in the image.
pub struct DefaultCertificate<'a> {
    pub cert_file: &'a str,
    pub key_file: &'a str,
}

#[derive(Debug)]
pub struct Converted {
    /// The static configuration with the file provider in place of docker's.
    pub static_config: StaticConfig,
    /// The file provider's dynamic configuration (YAML).
    pub dynamic_yaml: String,
    /// What was dropped or approximated, for the user.
    pub notes: Vec<String>,
}

/// Convert `backends`' labels to the file provider's dynamic configuration
/// and `static_config` to use it. `project`: the compose project's name;
/// `traefik_service`: the compose service running traefik; `dynamic_path`:
/// where the dynamic file will be in traefik's container; `default_certificate`:
/// the default TLS store's certificate.
/// Every problem is returned at once.
pub fn convert(
    project: &str,
    traefik_service: &str,
    static_config: &StaticConfig,
    backends: &[Backend],
    dynamic_path: &str,
    default_certificate: &DefaultCertificate,
) -> Result<Converted, Vec<String>> {
    let mut notes = Vec::new();
    let mut errors = Vec::new();
    let (docker, static_config) = match static_config {
        StaticConfig::File { path, yaml } => static_file(traefik_service, path, yaml, dynamic_path, &mut notes),
        StaticConfig::Args(args) => static_args(traefik_service, args, dynamic_path, &mut notes),
    }
    .map_err(|e| vec![e])?;

    let mut merged = Merged::default();
    let mut backends: Vec<&Backend> = backends.iter().collect();
    backends.sort_by_key(|b| b.service);
    for b in backends {
        let mut c = Container {
            backend: b,
            name: normalize(&format!("{}_{project}", b.service)),
            errors: Vec::new(),
            notes: Vec::new(),
        };
        if let Some(conf) = c.configuration(&docker) {
            merged.add(b.service, conf, &mut c.errors);
        }
        errors.append(&mut c.errors);
        notes.append(&mut c.notes);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if merged.docker_refs {
        notes.push(
            "references qualified `@docker` now name the file provider's routers, services and middlewares".into(),
        );
    }
    if merged.default_rule {
        notes.push(
            "routers on the default rule lose the docker provider's router-recursion guard \
             (a request looping back into the same router)"
                .into(),
        );
    }
    let mut dynamic = merged.into_yaml();
    if let Y::Map(root) = &mut dynamic {
        // Labels cannot define TLS stores: this is the only one.
        let file = |path: &str| Y::Str(path.to_string());
        let certificate = Body::from([
            ("certFile".to_string(), file(default_certificate.cert_file)),
            ("keyFile".to_string(), file(default_certificate.key_file)),
        ]);
        let store = Body::from([("defaultCertificate".to_string(), Y::Map(certificate))]);
        let stores = Body::from([("default".to_string(), Y::Map(store))]);
        root.insert(
            "tls".into(),
            Y::Map(Body::from([("stores".to_string(), Y::Map(stores))])),
        );
    }
    let mut dynamic_yaml = serde_yaml::to_string(&dynamic).map_err(|e| vec![e.to_string()])?;
    // The file provider reads its file as a Go template first.
    if dynamic_yaml.contains("{{") {
        dynamic_yaml = dynamic_yaml.replace("{{", "{{ \"{{\" }}");
        notes.push("`{{` in label values is escaped for the file provider's Go template".into());
    }
    Ok(Converted {
        static_config,
        dynamic_yaml,
        notes,
    })
}

// ---------------------------------------------------------------------------
// Static configuration

/// The docker provider options that shape routes.
struct Docker {
    exposed_by_default: bool,
    default_rule: DefaultRule,
}

/// `providers.docker.defaultRule`: literal text and `.Name` placeholders.
#[derive(Clone)]
struct DefaultRule(Vec<Option<String>>);

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
    fn eval(&self, name: &str) -> String {
        self.0.iter().map(|p| p.as_deref().unwrap_or(name)).collect()
    }
}

/// What each `providers.docker` option becomes without a Docker engine.
#[derive(Clone, Copy, PartialEq)]
enum Opt {
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
const DOCKER_OPTIONS: &[(&str, bool, Opt)] = &[
    ("exposedByDefault", true, Opt::ExposedByDefault),
    ("defaultRule", false, Opt::DefaultRule),
    ("constraints", false, Opt::Constraints),
    ("allowEmptyServices", true, Opt::AllowEmptyServices),
    ("useBindPortIP", true, Opt::UseBindPortIp),
    ("network", false, Opt::Engine),
    ("watch", true, Opt::Engine),
    ("endpoint", false, Opt::Engine),
    ("username", false, Opt::Engine),
    ("password", false, Opt::Engine),
    ("httpClientTimeout", false, Opt::Engine),
    ("tls", true, Opt::Engine),
    ("tls.ca", false, Opt::Engine),
    ("tls.cert", false, Opt::Engine),
    ("tls.key", false, Opt::Engine),
    ("tls.insecureSkipVerify", true, Opt::Engine),
    ("tls.caOptional", true, Opt::Engine),
];

fn docker_option(name: &str) -> Option<(&'static str, bool, Opt)> {
    DOCKER_OPTIONS
        .iter()
        .copied()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
}

/// Reads the docker provider's options, given as (option path, value).
fn docker_options(traefik: &str, options: &[(String, String)], notes: &mut Vec<String>) -> Result<Docker, String> {
    let mut docker = Docker {
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
            Opt::ExposedByDefault => docker.exposed_by_default = flag()?,
            Opt::DefaultRule => docker.default_rule = DefaultRule::parse(value).map_err(|e| format!("{at}: {e}"))?,
            Opt::Constraints if value.is_empty() => {}
            Opt::Constraints => return Err(format!("{at}: constraints are not supported without Docker")),
            Opt::AllowEmptyServices if !flag()? => {}
            Opt::AllowEmptyServices => {
                return Err(format!("{at}: allowEmptyServices=true is not supported without Docker"))
            }
            Opt::UseBindPortIp if !flag()? => {
                notes.push(format!("providers.docker.{canonical}=false: dropped (the default)"))
            }
            Opt::UseBindPortIp => return Err(format!("{at}: useBindPortIP=true needs Docker's port bindings")),
            Opt::Engine => notes.push(format!(
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
const THROTTLE: &str = "providersThrottleDuration";
const NO_THROTTLE: &str = "0s";

fn throttle_note(value: Option<String>, notes: &mut Vec<String>) {
    let value = value.unwrap_or_default();
    if value != NO_THROTTLE && value != "0" {
        notes.push(format!(
            "providers.{THROTTLE}: {value} becomes {NO_THROTTLE}: the file provider sends its configuration once"
        ));
    }
}

fn no_docker(traefik: &str) -> String {
    format!("traefik service `{traefik}` does not use the docker provider; nothing to convert")
}

fn get_ci<'m>(m: &'m Mapping, key: &str) -> Option<(&'m Value, &'m Value)> {
    m.iter()
        .find(|(k, _)| k.as_str().is_some_and(|k| k.eq_ignore_ascii_case(key)))
}

/// Flattens a YAML option tree to (dotted path, value as traefik reads it).
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, v) in m {
                let k = yaml_scalar(k).unwrap_or_default();
                flatten(&if prefix.is_empty() { k } else { format!("{prefix}.{k}") }, v, out);
            }
        }
        // traefik skips null values; `docker: {}` enables the provider.
        Value::Null => {}
        Value::Mapping(_) if prefix.is_empty() => {}
        v => out.push((prefix.to_string(), yaml_scalar(v).unwrap_or_else(|| "true".into()))),
    }
}

fn yaml_scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn static_file(
    traefik: &str,
    path: &str,
    yaml: &str,
    dynamic_path: &str,
    notes: &mut Vec<String>,
) -> Result<(Docker, StaticConfig), String> {
    let at = format!("traefik service `{traefik}`: {path}");
    if !(path.ends_with(".yml") || path.ends_with(".yaml")) {
        return Err(format!("{at}: only a YAML static configuration can be converted"));
    }
    let mut root: Value = serde_yaml::from_str(yaml).map_err(|e| format!("{at}: {e}"))?;
    let providers = root
        .as_mapping_mut()
        .and_then(|m| {
            let key = get_ci(m, "providers")?.0.clone();
            m.get_mut(&key)
        })
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| no_docker(traefik))?;
    let (key, value) = get_ci(providers, "docker").ok_or_else(|| no_docker(traefik))?;
    let (key, value) = (key.clone(), value.clone());
    match &value {
        Value::Mapping(_) => {}
        Value::Null => return Err(no_docker(traefik)), // traefik skips null values
        _ => return Err(format!("{at}: providers.docker is not a mapping")),
    }
    if get_ci(providers, "file").is_some() {
        return Err(format!(
            "{at}: already has a file provider; traefik takes only one, so the docker one cannot become it"
        ));
    }
    let mut options = Vec::new();
    flatten("", &value, &mut options);
    let docker = docker_options(traefik, &options, notes)?;
    providers.remove(&key);
    if let Some((key, value)) = get_ci(providers, THROTTLE).map(|(k, v)| (k.clone(), v.clone())) {
        throttle_note(yaml_scalar(&value), notes);
        providers.remove(&key);
    }
    providers.insert(THROTTLE.into(), NO_THROTTLE.into());
    let mut file = Mapping::new();
    file.insert("filename".into(), dynamic_path.into());
    file.insert("watch".into(), false.into());
    providers.insert("file".into(), Value::Mapping(file));
    let yaml = serde_yaml::to_string(&root).map_err(|e| format!("{at}: {e}"))?;
    Ok((
        docker,
        StaticConfig::File {
            path: path.to_string(),
            yaml,
        },
    ))
}

fn static_args(
    traefik: &str,
    args: &[String],
    dynamic_path: &str,
    notes: &mut Vec<String>,
) -> Result<(Docker, StaticConfig), String> {
    let mut kept = Vec::new();
    let mut options = Vec::new();
    let mut enabled = None;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(flag) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|f| !f.is_empty())
        else {
            kept.push(arg.clone());
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let lower = name.to_ascii_lowercase();
        let at = format!("traefik service `{traefik}`: flag `{arg}`");
        // A non-boolean flag's value: after `=`, else the next argument.
        let mut given_or_next = |value: Option<String>| match value {
            Some(v) => Ok(v),
            None => {
                let v = args.get(i).ok_or_else(|| format!("{at}: needs a value"))?.clone();
                i += 1;
                Ok::<_, String>(v)
            }
        };
        if lower == format!("providers.{}", THROTTLE.to_ascii_lowercase()) {
            throttle_note(Some(given_or_next(value)?), notes);
            continue;
        }
        if lower == "configfile" {
            return Err(format!(
                "{at}: the static configuration is in a file; convert that file"
            ));
        }
        if lower == "providers.file" || lower.starts_with("providers.file.") {
            return Err(format!(
                "{at}: already has a file provider; traefik takes only one, so the docker one cannot become it"
            ));
        }
        let option = if lower == "providers.docker" {
            None
        } else if let Some(option) = lower.strip_prefix("providers.docker.") {
            Some(option)
        } else {
            kept.push(arg.clone());
            continue;
        };
        let is_bool = match option {
            None => true,
            Some(o) => {
                docker_option(o)
                    .ok_or_else(|| format!("{at}: not a docker provider option"))?
                    .1
            }
        };
        let value = match value {
            Some(v) => v,
            None if is_bool => {
                // traefik takes no separate value for a boolean flag and
                // stops reading flags at the next plain word.
                if args.get(i).is_some_and(|next| !next.starts_with('-')) {
                    return Err(format!("{at}: a boolean flag takes `=value`, not `{arg} {}`", args[i]));
                }
                "true".to_string()
            }
            None => given_or_next(None)?,
        };
        match option {
            None => enabled = Some(parse_bool(&value).ok_or_else(|| format!("{at}: `{value}` is not a boolean"))?),
            Some(_) => {
                options.push((name["providers.docker.".len()..].to_string(), value));
                enabled.get_or_insert(true);
            }
        }
    }
    // `--providers.docker=false` turns it off even with options set.
    if enabled != Some(true) {
        return Err(no_docker(traefik));
    }
    let docker = docker_options(traefik, &options, notes)?;
    kept.push(format!("--providers.{THROTTLE}={NO_THROTTLE}"));
    kept.push(format!("--providers.file.filename={dynamic_path}"));
    Ok((docker, StaticConfig::Args(kept)))
}

// ---------------------------------------------------------------------------
// Labels

/// traefik's boolean spellings (Go's strconv.ParseBool).
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// traefik's `normalize`: runs of anything but letters and digits become `-`.
fn normalize(name: &str) -> String {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// A value of the dynamic configuration, serialized with sorted keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
enum Y {
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Y>),
    Map(Body),
}

type Body = BTreeMap<String, Y>;

impl Y {
    fn str(&self) -> Option<&str> {
        match self {
            Y::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The labels as a tree, as traefik builds it: one node per dotted segment
/// (`x[0]` is `x` then `[0]`), siblings matched case-insensitively, the first
/// spelling (in sorted label order) kept.
#[derive(Default)]
struct Node {
    name: String,
    /// The label (or label prefix) this node stands for, for messages.
    label: String,
    value: Option<String>,
    children: Vec<Node>,
}

impl Node {
    fn insert(&mut self, key: &str, value: &str) -> Result<(), String> {
        let mut node = self;
        let mut end = 0;
        for seg in key.split('.') {
            let start = end;
            end += seg.len() + 1;
            if seg.is_empty() || seg.starts_with('[') {
                return Err(format!("invalid segment `{seg}`"));
            }
            let mut parts = vec![seg];
            if let Some(open) = seg.find('[').filter(|_| seg.ends_with(']')) {
                parts = vec![&seg[..open], &seg[open..]];
            }
            let mut part_end = start;
            for part in parts {
                part_end += part.len();
                let label = format!("traefik.{}", &key[..part_end.min(key.len())]);
                let at = match node.children.iter().position(|c| c.name.eq_ignore_ascii_case(part)) {
                    Some(at) => at,
                    None => {
                        node.children.push(Node {
                            name: part.to_string(),
                            label,
                            ..Node::default()
                        });
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[at];
            }
        }
        node.value = Some(value.to_string());
        Ok(())
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// How traefik reads an option.
#[derive(Clone, Copy)]
enum K {
    /// A string (durations included).
    S,
    B,
    I,
    /// A list of strings: comma-separated in a label.
    L,
    /// A map of strings: the rest of the key is the map's key.
    M,
    /// Anything, kept as written (plugin configuration).
    Any,
    /// A block `=true` enables with its defaults (traefik's "allowEmpty").
    E(Fields),
    /// A block.
    T(Fields),
    /// A list of blocks, `name[0].option`.
    D(Fields),
}
use K::*;

type Fields = &'static [(&'static str, K)];

const DOMAIN: Fields = &[("main", S), ("sans", L)];
const ROUTER: Fields = &[
    ("entryPoints", L),
    ("middlewares", L),
    ("service", S),
    ("rule", S),
    ("ruleSyntax", S),
    ("priority", I),
    ("tls", E(&[("options", S), ("certResolver", S), ("domains", D(DOMAIN))])),
    (
        "observability",
        T(&[("accessLogs", B), ("metrics", B), ("tracing", B), ("traceVerbosity", S)]),
    ),
];
const SERVICE: Fields = &[(
    "loadBalancer",
    T(&[
        (
            "server",
            T(&[
                ("port", S),
                ("scheme", S),
                ("url", S),
                ("weight", I),
                ("preservePath", B),
            ]),
        ),
        (
            "sticky",
            E(&[(
                "cookie",
                E(&[
                    ("name", S),
                    ("secure", B),
                    ("httpOnly", B),
                    ("sameSite", S),
                    ("maxAge", I),
                    ("path", S),
                    ("domain", S),
                ]),
            )]),
        ),
        ("strategy", S),
        (
            "healthCheck",
            T(&[
                ("scheme", S),
                ("mode", S),
                ("path", S),
                ("method", S),
                ("status", I),
                ("port", I),
                ("interval", S),
                ("unhealthyInterval", S),
                ("timeout", S),
                ("hostname", S),
                ("followRedirects", B),
                ("headers", M),
            ]),
        ),
        (
            "passiveHealthCheck",
            T(&[("failureWindow", S), ("maxFailedAttempts", I)]),
        ),
        ("passHostHeader", B),
        ("responseForwarding", T(&[("flushInterval", S)])),
        ("serversTransport", S),
    ]),
)];
const IP_STRATEGY: Fields = &[("depth", I), ("excludedIPs", L)];
const SOURCE_CRITERION: Fields = &[
    ("ipStrategy", T(IP_STRATEGY)),
    ("requestHeaderName", S),
    ("requestHost", B),
];
const CLIENT_TLS: Fields = &[
    ("ca", S),
    ("cert", S),
    ("key", S),
    ("insecureSkipVerify", B),
    ("caOptional", B),
];
const AUTH: Fields = &[
    ("users", L),
    ("usersFile", S),
    ("realm", S),
    ("removeHeader", B),
    ("headerField", S),
];
const DN: Fields = &[
    ("country", B),
    ("province", B),
    ("locality", B),
    ("organization", B),
    ("organizationalUnit", B),
    ("commonName", B),
    ("serialNumber", B),
    ("domainComponent", B),
];
const MIDDLEWARE: Fields = &[
    ("addPrefix", T(&[("prefix", S)])),
    ("stripPrefix", T(&[("prefixes", L), ("forceSlash", B)])),
    ("stripPrefixRegex", T(&[("regex", L)])),
    ("replacePath", T(&[("path", S)])),
    ("replacePathRegex", T(&[("regex", S), ("replacement", S)])),
    ("chain", T(&[("middlewares", L)])),
    ("ipWhiteList", T(&[("sourceRange", L), ("ipStrategy", E(IP_STRATEGY))])),
    (
        "ipAllowList",
        T(&[
            ("sourceRange", L),
            ("ipStrategy", E(IP_STRATEGY)),
            ("rejectStatusCode", I),
        ]),
    ),
    (
        "headers",
        T(&[
            ("customRequestHeaders", M),
            ("customResponseHeaders", M),
            ("accessControlAllowCredentials", B),
            ("accessControlAllowHeaders", L),
            ("accessControlAllowMethods", L),
            ("accessControlAllowOriginList", L),
            ("accessControlAllowOriginListRegex", L),
            ("accessControlExposeHeaders", L),
            ("accessControlMaxAge", I),
            ("addVaryHeader", B),
            ("allowedHosts", L),
            ("hostsProxyHeaders", L),
            ("sslProxyHeaders", M),
            ("stsSeconds", I),
            ("stsIncludeSubdomains", B),
            ("stsPreload", B),
            ("forceSTSHeader", B),
            ("frameDeny", B),
            ("customFrameOptionsValue", S),
            ("contentTypeNosniff", B),
            ("browserXssFilter", B),
            ("customBrowserXSSValue", S),
            ("contentSecurityPolicy", S),
            ("contentSecurityPolicyReportOnly", S),
            ("publicKey", S),
            ("referrerPolicy", S),
            ("permissionsPolicy", S),
            ("isDevelopment", B),
            ("featurePolicy", S),
            ("sslRedirect", B),
            ("sslTemporaryRedirect", B),
            ("sslHost", S),
            ("sslForceHost", B),
        ]),
    ),
    (
        "errors",
        T(&[("status", L), ("statusRewrites", M), ("service", S), ("query", S)]),
    ),
    (
        "rateLimit",
        T(&[
            ("average", I),
            ("period", S),
            ("burst", I),
            ("sourceCriterion", T(SOURCE_CRITERION)),
            (
                "redis",
                T(&[
                    ("endpoints", L),
                    (
                        "tls",
                        T(&[("ca", S), ("cert", S), ("key", S), ("insecureSkipVerify", B)]),
                    ),
                    ("username", S),
                    ("password", S),
                    ("db", I),
                    ("poolSize", I),
                    ("minIdleConns", I),
                    ("maxActiveConns", I),
                    ("readTimeout", S),
                    ("writeTimeout", S),
                    ("dialTimeout", S),
                ]),
            ),
        ]),
    ),
    (
        "redirectRegex",
        T(&[("regex", S), ("replacement", S), ("permanent", B)]),
    ),
    ("redirectScheme", T(&[("scheme", S), ("port", S), ("permanent", B)])),
    ("basicAuth", T(AUTH)),
    ("digestAuth", T(AUTH)),
    (
        "forwardAuth",
        T(&[
            ("address", S),
            ("tls", T(CLIENT_TLS)),
            ("trustForwardHeader", B),
            ("authResponseHeaders", L),
            ("authResponseHeadersRegex", S),
            ("authRequestHeaders", L),
            ("maxResponseBodySize", I),
            ("addAuthCookiesToResponse", L),
            ("headerField", S),
            ("forwardBody", B),
            ("maxBodySize", I),
            ("preserveLocationHeader", B),
            ("preserveRequestMethod", B),
        ]),
    ),
    (
        "inFlightReq",
        T(&[("amount", I), ("sourceCriterion", T(SOURCE_CRITERION))]),
    ),
    (
        "buffering",
        T(&[
            ("maxRequestBodyBytes", I),
            ("memRequestBodyBytes", I),
            ("maxResponseBodyBytes", I),
            ("memResponseBodyBytes", I),
            ("retryExpression", S),
        ]),
    ),
    (
        "circuitBreaker",
        T(&[
            ("expression", S),
            ("checkPeriod", S),
            ("fallbackDuration", S),
            ("recoveryDuration", S),
            ("responseCode", I),
        ]),
    ),
    (
        "compress",
        E(&[
            ("excludedContentTypes", L),
            ("includedContentTypes", L),
            ("minResponseBodyBytes", I),
            ("encodings", L),
            ("defaultEncoding", S),
        ]),
    ),
    (
        "passTLSClientCert",
        T(&[
            ("pem", B),
            (
                "info",
                T(&[
                    ("notAfter", B),
                    ("notBefore", B),
                    ("sans", B),
                    ("serialNumber", B),
                    ("subject", T(DN)),
                    ("issuer", T(DN)),
                ]),
            ),
        ]),
    ),
    ("retry", T(&[("attempts", I), ("initialInterval", S)])),
    ("contentType", E(&[("autoDetect", B)])),
    ("grpcWeb", T(&[("allowOrigins", L)])),
    ("plugin", Any),
];
const TCP_ROUTER: Fields = &[
    ("entryPoints", L),
    ("middlewares", L),
    ("service", S),
    ("rule", S),
    ("ruleSyntax", S),
    ("priority", I),
    (
        "tls",
        E(&[
            ("passthrough", B),
            ("options", S),
            ("certResolver", S),
            ("domains", D(DOMAIN)),
        ]),
    ),
];
const TCP_SERVICE: Fields = &[(
    "loadBalancer",
    T(&[
        ("server", T(&[("port", S), ("tls", B)])),
        ("serversTransport", S),
        ("proxyProtocol", E(&[("version", I)])),
        ("terminationDelay", I),
        (
            "healthCheck",
            E(&[
                ("port", I),
                ("send", S),
                ("expect", S),
                ("interval", S),
                ("unhealthyInterval", S),
                ("timeout", S),
            ]),
        ),
    ]),
)];
const TCP_MIDDLEWARE: Fields = &[
    ("inFlightConn", T(&[("amount", I)])),
    ("ipWhiteList", T(&[("sourceRange", L)])),
    ("ipAllowList", T(&[("sourceRange", L)])),
];
const UDP_ROUTER: Fields = &[("entryPoints", L), ("service", S)];
const UDP_SERVICE: Fields = &[("loadBalancer", T(&[("server", T(&[("port", S)]))]))];

/// The three protocols and what each may define.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Proto {
    Http,
    Tcp,
    Udp,
}

impl Proto {
    const ALL: [Proto; 3] = [Proto::Http, Proto::Tcp, Proto::Udp];

    fn key(self) -> &'static str {
        match self {
            Proto::Http => "http",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// (kind, its fields) in the order traefik merges them.
    fn kinds(self) -> &'static [(Kind, Fields)] {
        match self {
            Proto::Http => &[
                (Kind::Routers, ROUTER),
                (Kind::Services, SERVICE),
                (Kind::Middlewares, MIDDLEWARE),
            ],
            Proto::Tcp => &[
                (Kind::Routers, TCP_ROUTER),
                (Kind::Services, TCP_SERVICE),
                (Kind::Middlewares, TCP_MIDDLEWARE),
            ],
            Proto::Udp => &[(Kind::Routers, UDP_ROUTER), (Kind::Services, UDP_SERVICE)],
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Routers,
    Services,
    Middlewares,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Routers => "routers",
            Kind::Services => "services",
            Kind::Middlewares => "middlewares",
        }
    }

    fn one(self) -> &'static str {
        match self {
            Kind::Routers => "router",
            Kind::Services => "service",
            Kind::Middlewares => "middleware",
        }
    }
}

/// A router, service or middleware and the label prefix defining it.
#[derive(Clone)]
struct Item {
    label: String,
    body: Body,
}

/// One container's configuration: (protocol, kind) -> name -> item.
type Conf = BTreeMap<(Proto, Kind), BTreeMap<String, Item>>;

struct Container<'b, 'a> {
    backend: &'b Backend<'a>,
    /// The docker provider's name for it: `<service>-<project>`, normalized.
    name: String,
    errors: Vec<String>,
    notes: Vec<String>,
}

impl Container<'_, '_> {
    fn error(&mut self, label: &str, msg: impl std::fmt::Display) {
        self.errors
            .push(format!("service `{}`: label `{label}`: {msg}", self.backend.service));
    }

    /// The configuration the docker provider builds from this container's
    /// labels, or None when it has no routes.
    fn configuration(&mut self, docker: &Docker) -> Option<Conf> {
        let labels = self.backend.labels;
        let mut enabled = docker.exposed_by_default;
        let mut root = Node::default();
        let mut any_traefik_label = false;
        let mut later = Vec::new();
        for (key, value) in labels {
            let Some(rest) = key
                .get(..8)
                .filter(|p| p.eq_ignore_ascii_case("traefik."))
                .map(|_| &key[8..])
            else {
                continue;
            };
            any_traefik_label = true;
            if !key.starts_with("traefik.") {
                later.push((
                    key.clone(),
                    "traefik reads only labels starting with `traefik.` in lower case".into(),
                ));
                continue;
            }
            let first = rest.split('.').next().unwrap_or_default().to_ascii_lowercase();
            match first.as_str() {
                "enable" if rest.eq_ignore_ascii_case("enable") => match parse_bool(value) {
                    Some(e) => enabled = e,
                    None => self.error(key, format!("`{value}` is not a boolean")),
                },
                "docker" if rest.eq_ignore_ascii_case("docker.network") => self.notes.push(format!(
                    "service `{}`: label `{key}`: ignored, the native VM gives the service one address",
                    self.backend.service
                )),
                "docker" if rest.eq_ignore_ascii_case("docker.allownonrunning") => self.notes.push(format!(
                    "service `{}`: label `{key}`: ignored, routes are written for running services",
                    self.backend.service
                )),
                "http" | "tcp" | "udp" => {
                    if let Err(e) = root.insert(rest, value) {
                        later.push((key.clone(), e));
                    }
                }
                _ => later.push((key.clone(), "not a label this conversion knows".into())),
            }
        }
        if !enabled {
            return None;
        }
        for (key, e) in later {
            self.error(&key, e);
        }
        let mut conf = Conf::new();
        for proto in Proto::ALL {
            let Some(section) = root.child(proto.key()) else {
                continue;
            };
            if section.value.is_some() {
                self.error(&section.label, "expects options, not a value");
            }
            for child in &section.children {
                let Some((kind, fields)) = proto
                    .kinds()
                    .iter()
                    .find(|(k, _)| k.key().eq_ignore_ascii_case(&child.name))
                else {
                    self.error(&child.label, format!("unknown option `{}`", child.name));
                    continue;
                };
                if child.value.is_some() {
                    self.error(&child.label, "expects names, not a value");
                }
                let items = conf.entry((proto, *kind)).or_default();
                for named in &child.children {
                    if named.value.is_some() {
                        self.error(&named.label, "expects options, not a value");
                    }
                    let body = self.decode(named, fields);
                    items.insert(
                        named.name.clone(),
                        Item {
                            label: named.label.clone(),
                            body,
                        },
                    );
                }
            }
        }
        let errors = self.errors.len();
        let routed = self.build(docker, &mut conf, any_traefik_label);
        (routed && self.errors.len() == errors).then_some(conf)
    }

    fn decode(&mut self, node: &Node, fields: Fields) -> Body {
        let mut body = Body::new();
        for child in &node.children {
            let Some((name, kind)) = fields.iter().find(|(f, _)| f.eq_ignore_ascii_case(&child.name)) else {
                self.error(&child.label, format!("unknown option `{}`", child.name));
                continue;
            };
            if let Some(y) = self.decode_kind(child, *kind) {
                body.insert(name.to_string(), y);
            }
        }
        body
    }

    fn decode_kind(&mut self, node: &Node, kind: K) -> Option<Y> {
        let leaf = match kind {
            S | B | I | L => {
                if let Some(c) = node.children.first() {
                    self.error(&c.label, format!("`{}` takes a value, not options", node.name));
                    return None;
                }
                node.value.clone().unwrap_or_default()
            }
            _ => String::new(),
        };
        match kind {
            S => Some(Y::Str(leaf)),
            B => match parse_bool(&leaf) {
                Some(b) => Some(Y::Bool(b)),
                None => {
                    self.error(&node.label, format!("`{leaf}` is not a boolean"));
                    None
                }
            },
            I => match leaf.parse::<i64>() {
                Ok(i) => Some(Y::Int(i)),
                Err(_) => {
                    self.error(&node.label, format!("`{leaf}` is not an integer"));
                    None
                }
            },
            // An empty value leaves the list unset, as in traefik.
            L if leaf.is_empty() => None,
            L => Some(Y::List(leaf.split(',').map(|s| Y::Str(s.trim().to_string())).collect())),
            M => {
                if node.value.is_some() {
                    self.error(&node.label, "expects `.KEY=value` sub-labels");
                    return None;
                }
                let mut map = Body::new();
                self.flatten_map("", node, &mut map);
                Some(Y::Map(map))
            }
            Any => Some(any(node)),
            E(fields) => match &node.value {
                // `=false` (anything but true) disables the block.
                Some(v) if !v.eq_ignore_ascii_case("true") => None,
                _ => Some(Y::Map(self.decode(node, fields))),
            },
            T(fields) => {
                if node.value.is_some() {
                    self.error(&node.label, "expects sub-options, not a value");
                    return None;
                }
                Some(Y::Map(self.decode(node, fields)))
            }
            D(fields) => {
                if node.value.is_some() {
                    self.error(&node.label, "expects `[N].option` sub-labels");
                    return None;
                }
                let mut list = Vec::new();
                for item in &node.children {
                    let index = item.name.strip_prefix('[').and_then(|i| i.strip_suffix(']'));
                    if !index.is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())) {
                        self.error(&item.label, format!("`{}` is not an index like [0]", item.name));
                        continue;
                    }
                    if item.value.is_some() {
                        self.error(&item.label, "expects sub-options, not a value");
                        continue;
                    }
                    list.push(Y::Map(self.decode(item, fields)));
                }
                Some(Y::List(list))
            }
        }
    }

    fn flatten_map(&mut self, prefix: &str, node: &Node, map: &mut Body) {
        for c in &node.children {
            let key = if prefix.is_empty() {
                c.name.clone()
            } else {
                format!("{prefix}.{}", c.name)
            };
            if c.children.is_empty() {
                map.insert(key, Y::Str(c.value.clone().unwrap_or_default()));
            } else {
                if c.value.is_some() {
                    self.error(&c.label, "has both a value and sub-keys");
                }
                self.flatten_map(&key, c, map);
            }
        }
    }

    /// What the docker provider adds: default services and routers, the
    /// servers' addresses, the routers' default rule and service. False when
    /// the docker provider would skip the container.
    fn build(&mut self, docker: &Docker, conf: &mut Conf, labelled: bool) -> bool {
        let has = |conf: &Conf, p, k| conf.get(&(p, k)).is_some_and(|m| !m.is_empty());
        let mut tcp_or_udp = false;
        for proto in [Proto::Tcp, Proto::Udp] {
            if !has(conf, proto, Kind::Routers) && !has(conf, proto, Kind::Services) {
                continue;
            }
            tcp_or_udp = true;
            if !self.services(proto, conf, labelled) {
                return false;
            }
            let services: Vec<String> = conf[&(proto, Kind::Services)].keys().cloned().collect();
            let routers = conf.entry((proto, Kind::Routers)).or_default();
            let mut errors = Vec::new();
            for (name, router) in routers.iter_mut() {
                if proto == Proto::Tcp && router.body.get("rule").and_then(Y::str).is_none_or(str::is_empty) {
                    errors.push((
                        format!("{}.rule", router.label),
                        format!("TCP router `{name}` has no rule (traefik drops it); e.g. HostSNI(`*`)"),
                    ));
                }
                if let Err(e) = default_service(name, router, &services) {
                    errors.push(e);
                }
            }
            for (label, e) in errors {
                self.error(&label, e);
            }
        }
        if tcp_or_udp
            && !has(conf, Proto::Http, Kind::Routers)
            && !has(conf, Proto::Http, Kind::Services)
            && !has(conf, Proto::Http, Kind::Middlewares)
        {
            return true;
        }
        if !self.services(Proto::Http, conf, labelled) {
            return false;
        }
        let services: Vec<String> = conf[&(Proto::Http, Kind::Services)].keys().cloned().collect();
        let routers = conf.entry((Proto::Http, Kind::Routers)).or_default();
        if routers.is_empty() {
            if services.len() > 1 {
                self.notes.push(format!(
                    "service `{}`: no router: it defines several traefik services and no router, \
                     so the docker provider makes none",
                    self.backend.service
                ));
            } else {
                routers.insert(
                    self.name.clone(),
                    Item {
                        label: format!("traefik.http.routers.{}", self.name),
                        body: Body::new(),
                    },
                );
            }
        }
        let mut errors = Vec::new();
        for (name, router) in routers.iter_mut() {
            if router.body.get("rule").and_then(Y::str).is_none_or(str::is_empty) {
                let rule = docker.default_rule.eval(&self.name);
                if rule.is_empty() {
                    errors.push((
                        format!("{}.rule", router.label),
                        "the default rule is empty".to_string(),
                    ));
                }
                router.body.insert("rule".into(), Y::Str(rule));
                router.body.insert("__default_rule".into(), Y::Bool(true));
            }
            if let Err(e) = default_service(name, router, &services) {
                errors.push(e);
            }
        }
        for (label, e) in errors {
            self.error(&label, e);
        }
        true
    }

    /// Adds the default service if the container defines none, and the
    /// servers. False when the container is skipped (no port, not labelled).
    fn services(&mut self, proto: Proto, conf: &mut Conf, labelled: bool) -> bool {
        let p = proto.key();
        let services = conf.entry((proto, Kind::Services)).or_default();
        if services.is_empty() {
            let mut body = Body::new();
            body.insert("loadBalancer".into(), Y::Map(Body::new()));
            services.insert(
                self.name.clone(),
                Item {
                    label: format!("traefik.{p}.services.{}", self.name),
                    body,
                },
            );
        }
        let address = &self.backend.address;
        let host = if address.contains(':') {
            format!("[{address}]")
        } else {
            address.clone()
        };
        let exposed = &self.backend.exposed_tcp;
        let mut errors = Vec::new();
        for (name, service) in services.iter_mut() {
            let Some(Y::Map(lb)) = service.body.get_mut("loadBalancer") else {
                errors.push((
                    service.label.clone(),
                    format!("{p} service `{name}` has no load balancer"),
                ));
                continue;
            };
            let mut server = match lb.remove("server") {
                Some(Y::Map(s)) => s,
                _ => Body::new(),
            };
            let port_label = format!("{}.loadbalancer.server.port", service.label);
            if server.contains_key("url") {
                if server.contains_key("port") || server.contains_key("scheme") {
                    errors.push((
                        format!("{}.loadbalancer.server.url", service.label),
                        "a server with a url takes no port or scheme".to_string(),
                    ));
                }
            } else {
                let port = match server.remove("port") {
                    Some(Y::Str(port)) => match port.parse::<u16>() {
                        Ok(p) if p > 0 => p,
                        _ => {
                            errors.push((port_label, format!("`{port}` is not a port number")));
                            continue;
                        }
                    },
                    _ if proto != Proto::Udp && exposed.len() == 1 => exposed[0],
                    _ if proto != Proto::Udp && exposed.is_empty() && !labelled => {
                        // What traefik does with an unlabelled container it
                        // exposes by default and cannot find a port for.
                        self.notes.push(format!(
                            "service `{}`: no route: it exposes no port and has no traefik labels \
                             (the docker provider skips it too)",
                            self.backend.service
                        ));
                        return false;
                    }
                    _ => {
                        let why = match (proto, exposed.len()) {
                            (Proto::Udp, _) => "UDP ports are not known".to_string(),
                            (_, 0) => "the service exposes no TCP port".to_string(),
                            _ => format!(
                                "the service exposes several TCP ports ({})",
                                exposed.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
                            ),
                        };
                        errors.push((
                            port_label,
                            format!("{why}: set traefik.{p}.services.{name}.loadbalancer.server.port"),
                        ));
                        continue;
                    }
                };
                match proto {
                    Proto::Http => {
                        let scheme = match server.remove("scheme") {
                            Some(Y::Str(s)) if !s.is_empty() => s,
                            _ => "http".into(),
                        };
                        server.insert("url".into(), Y::Str(format!("{scheme}://{host}:{port}")));
                    }
                    Proto::Tcp | Proto::Udp => {
                        server.insert("address".into(), Y::Str(format!("{host}:{port}")));
                    }
                }
            }
            lb.insert("servers".into(), Y::List(vec![Y::Map(server)]));
        }
        for (label, e) in errors {
            self.error(&label, e);
        }
        true
    }
}

/// A router without `service` gets the container's only service.
fn default_service(name: &str, router: &mut Item, services: &[String]) -> Result<(), (String, String)> {
    if router
        .body
        .get("service")
        .and_then(Y::str)
        .is_some_and(|s| !s.is_empty())
    {
        return Ok(());
    }
    match services {
        [only] => {
            router.body.insert("service".into(), Y::Str(only.clone()));
            Ok(())
        }
        _ => Err((
            format!("{}.service", router.label),
            format!(
                "router `{name}` has no service and the container defines several ({}); traefik would drop it",
                services.join(", ")
            ),
        )),
    }
}

/// Plugin configuration: kept as written.
fn any(node: &Node) -> Y {
    if node.children.is_empty() {
        return Y::Str(node.value.clone().unwrap_or_default());
    }
    Y::Map(node.children.iter().map(|c| (c.name.clone(), any(c))).collect())
}

/// Every container's configuration, merged as the docker provider merges:
/// one name, one definition; a service defined alike by several containers
/// load-balances over all of them.
#[derive(Default)]
struct Merged {
    items: BTreeMap<(Proto, Kind), BTreeMap<String, (String, Item)>>,
    docker_refs: bool,
    default_rule: bool,
}

impl Merged {
    fn add(&mut self, service: &str, conf: Conf, errors: &mut Vec<String>) {
        for ((proto, kind), items) in conf {
            let merged = self.items.entry((proto, kind)).or_default();
            for (name, mut item) in items {
                if item.body.remove("__default_rule").is_some() {
                    self.default_rule = true;
                }
                self.docker_refs |= unqualify(kind, &mut item.body);
                let Some((first, existing)) = merged.get_mut(&name) else {
                    merged.insert(name, (service.to_string(), item));
                    continue;
                };
                let same = if kind == Kind::Services {
                    let (mine, theirs) = (without_servers(&item.body), without_servers(&existing.body));
                    mine == theirs
                } else {
                    item.body == existing.body
                };
                if !same {
                    errors.push(format!(
                        "service `{service}`: label `{}`: {} {} `{name}` is also defined, differently, \
                         by service `{first}` (traefik would drop both)",
                        item.label,
                        proto.key(),
                        kind.one()
                    ));
                    continue;
                }
                if kind == Kind::Services {
                    let servers = |body: &mut Body| match body.get_mut("loadBalancer") {
                        Some(Y::Map(lb)) => match lb.get_mut("servers") {
                            Some(Y::List(s)) => std::mem::take(s),
                            _ => Vec::new(),
                        },
                        _ => Vec::new(),
                    };
                    let mine = servers(&mut item.body);
                    let mut all = servers(&mut existing.body);
                    for s in mine {
                        if !all.contains(&s) {
                            all.push(s);
                        }
                    }
                    if let Some(Y::Map(lb)) = existing.body.get_mut("loadBalancer") {
                        lb.insert("servers".into(), Y::List(all));
                    }
                }
            }
        }
    }

    fn into_yaml(self) -> Y {
        let mut root = Body::new();
        for ((proto, kind), items) in self.items {
            if items.is_empty() {
                continue;
            }
            let section = root
                .entry(proto.key().to_string())
                .or_insert_with(|| Y::Map(Body::new()));
            if let Y::Map(section) = section {
                let items = items.into_iter().map(|(n, (_, item))| (n, Y::Map(item.body))).collect();
                section.insert(kind.key().to_string(), Y::Map(items));
            }
        }
        Y::Map(root)
    }
}

fn without_servers(body: &Body) -> Body {
    let mut body = body.clone();
    if let Some(Y::Map(lb)) = body.get_mut("loadBalancer") {
        lb.remove("servers");
    }
    body
}

/// `name@docker` references become the file provider's own `name`. True if
/// any was rewritten.
fn unqualify(kind: Kind, body: &mut Body) -> bool {
    fn strip(y: &mut Y) -> bool {
        match y {
            Y::Str(s) => match s.strip_suffix("@docker") {
                Some(n) => {
                    *s = n.to_string();
                    true
                }
                None => false,
            },
            Y::List(l) => l.iter_mut().fold(false, |any, y| strip(y) | any),
            _ => false,
        }
    }
    let mut changed = false;
    match kind {
        Kind::Routers => {
            for key in ["service", "middlewares"] {
                if let Some(y) = body.get_mut(key) {
                    changed |= strip(y);
                }
            }
        }
        Kind::Middlewares => {
            for (ty, key) in [("chain", "middlewares"), ("errors", "service")] {
                if let Some(Y::Map(m)) = body.get_mut(ty) {
                    if let Some(y) = m.get_mut(key) {
                        changed |= strip(y);
                    }
                }
            }
        }
        Kind::Services => {}
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    const DYNAMIC: &str = "/etc/traefik/dynamic.yml";
    const CERT: DefaultCertificate = DefaultCertificate {
        cert_file: "/etc/traefik/tls/cert.pem",
        key_file: "/etc/traefik/tls/key.pem",
    };

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn backend<'a>(service: &'a str, labels: &'a BTreeMap<String, String>, ip: u8, ports: &[u16]) -> Backend<'a> {
        Backend {
            service,
            labels,
            address: format!("172.18.0.{ip}"),
            exposed_tcp: ports.to_vec(),
        }
    }

    fn file(yaml: &str) -> StaticConfig {
        StaticConfig::File {
            path: "/etc/traefik/traefik.yml".into(),
            yaml: yaml.into(),
        }
    }

    const EXPOSED: &str = "providers:\n  docker: {}\n";

    /// The TLS store every conversion has.
    const TLS: &str = "tls:
  stores:
    default:
      defaultCertificate:
        certFile: /etc/traefik/tls/cert.pem
        keyFile: /etc/traefik/tls/key.pem
";

    /// The dynamic configuration but the default certificate's store.
    fn routes(out: &Converted) -> String {
        assert!(
            out.dynamic_yaml.contains(TLS),
            "no default certificate:\n{}",
            out.dynamic_yaml
        );
        out.dynamic_yaml.replacen(TLS, "", 1)
    }

    fn dynamic(static_config: &StaticConfig, backends: &[Backend]) -> String {
        routes(&convert("demo", "proxy", static_config, backends, DYNAMIC, &CERT).unwrap())
    }

    fn errors(static_config: &StaticConfig, backends: &[Backend]) -> Vec<String> {
        convert("demo", "proxy", static_config, backends, DYNAMIC, &CERT).unwrap_err()
    }

    #[test]
    fn the_repo_app() {
        #[derive(serde::Deserialize)]
        struct Compose {
            name: String,
            services: BTreeMap<String, Service>,
        }
        #[derive(serde::Deserialize)]
        struct Service {
            #[serde(default)]
            labels: BTreeMap<String, String>,
        }
        let compose: Compose = serde_yaml::from_str(include_str!("../../../../compose/docker-compose.yml")).unwrap();
        let backends: Vec<Backend> = compose
            .services
            .iter()
            .zip(2..)
            .map(|((name, s), ip)| backend(name, &s.labels, ip, &[80]))
            .collect();
        let static_config = file(include_str!("../../../../apps/traefik/traefik.yml"));
        let out = convert(&compose.name, "proxy", &static_config, &backends, DYNAMIC, &CERT).unwrap();
        let StaticConfig::File { yaml, .. } = &out.static_config else {
            panic!("a file stays a file")
        };
        insta::assert_snapshot!(yaml, @r"
        entryPoints:
          web:
            address: :80
        providers:
          providersThrottleDuration: 0s
          file:
            filename: /etc/traefik/dynamic.yml
            watch: false
        log:
          level: INFO
        accessLog: {}
        ");
        insta::assert_snapshot!(out.dynamic_yaml, @r"
        http:
          routers:
            a:
              entryPoints:
              - web
              rule: Host(`a.localhost`)
              service: a-linuxkit-compose
            b:
              entryPoints:
              - web
              rule: Host(`b.localhost`)
              service: b-linuxkit-compose
          services:
            a-linuxkit-compose:
              loadBalancer:
                servers:
                - url: http://172.18.0.2:80
            b-linuxkit-compose:
              loadBalancer:
                servers:
                - url: http://172.18.0.3:80
        tls:
          stores:
            default:
              defaultCertificate:
                certFile: /etc/traefik/tls/cert.pem
                keyFile: /etc/traefik/tls/key.pem
        ");
        assert_eq!(
            out.notes,
            [
                "providers.docker.endpoint: dropped, it only means something with a Docker engine",
                "providers.providersThrottleDuration: 100ms becomes 0s: the file provider sends its configuration once"
            ]
        );
    }

    #[test]
    fn exposed_by_default_routes_every_service_on_the_default_rule() {
        let none = labels(&[("com.docker.compose.oneoff", "False")]);
        let off = labels(&[("traefik.enable", "false")]);
        let backends = [
            backend("web", &none, 2, &[80]),
            backend("proxy", &none, 3, &[80]),
            backend("hidden", &off, 4, &[80]),
            backend("worker", &none, 5, &[]),
        ];
        let out = convert("demo", "proxy", &file(EXPOSED), &backends, DYNAMIC, &CERT).unwrap();
        insta::assert_snapshot!(routes(&out), @r"
        http:
          routers:
            proxy-demo:
              rule: Host(`proxy-demo`)
              service: proxy-demo
            web-demo:
              rule: Host(`web-demo`)
              service: web-demo
          services:
            proxy-demo:
              loadBalancer:
                servers:
                - url: http://172.18.0.3:80
            web-demo:
              loadBalancer:
                servers:
                - url: http://172.18.0.2:80
        ");
        assert!(
            out.notes.iter().any(|n| n.contains("`worker`: no route")),
            "{:?}",
            out.notes
        );
        assert!(out.notes.iter().any(|n| n.contains("recursion")), "{:?}", out.notes);
    }

    #[test]
    fn exposed_by_default_false_routes_only_enabled_services() {
        let static_config = file("providers:\n  Docker:\n    ExposedByDefault: 'false'\n");
        let on = labels(&[("traefik.enable", "true")]);
        let none = BTreeMap::new();
        let out = dynamic(
            &static_config,
            &[backend("on", &on, 2, &[80]), backend("off", &none, 3, &[80])],
        );
        assert!(out.contains("on-demo") && !out.contains("off-demo"), "{out}");
    }

    #[test]
    fn enable_false_removes_a_service_and_ignores_its_labels() {
        let off = labels(&[("traefik.enable", "false"), ("traefik.bogus", "x")]);
        assert_eq!(dynamic(&file(EXPOSED), &[backend("a", &off, 2, &[80])]), "");
    }

    #[test]
    fn the_port_comes_from_the_label_else_the_only_exposed_one() {
        let labelled = labels(&[
            ("traefik.http.services.api.loadbalancer.server.port", "8080"),
            ("traefik.http.services.api.loadbalancer.server.scheme", "h2c"),
        ]);
        let plain = BTreeMap::new();
        let out = dynamic(
            &file(EXPOSED),
            &[
                backend("a", &labelled, 2, &[80, 8080]),
                backend("b", &plain, 3, &[3000]),
            ],
        );
        assert!(out.contains("url: h2c://172.18.0.2:8080"), "{out}");
        assert!(out.contains("url: http://172.18.0.3:3000"), "{out}");
        // The router of a container with one named service and no router is
        // named after the container, and routes to that service.
        assert!(
            out.contains("a-demo:\n      rule: Host(`a-demo`)\n      service: api\n"),
            "{out}"
        );

        let errs = errors(
            &file(EXPOSED),
            &[
                backend("a", &plain, 2, &[80, 443]),
                backend("b", &labelled, 3, &[]),
                backend("c", &plain, 4, &[]),
            ],
        );
        assert_eq!(
            errs,
            [
                "service `a`: label `traefik.http.services.a-demo.loadbalancer.server.port`: the service exposes \
                 several TCP ports (80, 443): set traefik.http.services.a-demo.loadbalancer.server.port",
            ]
        );
        let enabled = labels(&[("traefik.enable", "true")]);
        let errs = errors(&file(EXPOSED), &[backend("c", &enabled, 4, &[])]);
        assert_eq!(
            errs,
            [
                "service `c`: label `traefik.http.services.c-demo.loadbalancer.server.port`: the service exposes \
                 no TCP port: set traefik.http.services.c-demo.loadbalancer.server.port",
            ]
        );
    }

    #[test]
    fn a_router_without_service_needs_a_single_service() {
        let two = labels(&[
            ("traefik.http.routers.r.rule", "Host(`r`)"),
            ("traefik.http.services.s1.loadbalancer.server.port", "80"),
            ("traefik.http.services.s2.loadbalancer.server.port", "81"),
        ]);
        assert_eq!(
            errors(&file(EXPOSED), &[backend("a", &two, 2, &[80])]),
            [
                "service `a`: label `traefik.http.routers.r.service`: router `r` has no service and the container \
                 defines several (s1, s2); traefik would drop it"
            ]
        );
        let mut named = two.clone();
        named.insert("traefik.http.routers.r.service".into(), "s2".into());
        let out = dynamic(&file(EXPOSED), &[backend("a", &named, 2, &[80])]);
        assert!(
            out.contains("service: s2") && out.contains("http://172.18.0.2:81"),
            "{out}"
        );
        // Several services and no router: the docker provider makes none.
        let mut no_router = two.clone();
        no_router.remove("traefik.http.routers.r.rule");
        let out = dynamic(&file(EXPOSED), &[backend("a", &no_router, 2, &[80])]);
        assert!(!out.contains("routers"), "{out}");
    }

    #[test]
    fn middlewares_carry_lists_scalars_and_maps() {
        let l = labels(&[
            ("traefik.http.routers.r.rule", "PathPrefix(`/api`)"),
            ("traefik.http.routers.r.middlewares", "strip@docker, auth,secure"),
            ("traefik.http.routers.r.priority", "10"),
            ("traefik.http.routers.r.tls", "true"),
            ("traefik.http.routers.r.tls.domains[0].main", "example.com"),
            (
                "traefik.http.routers.r.tls.domains[0].sans",
                "a.example.com,b.example.com",
            ),
            ("traefik.http.middlewares.strip.stripprefix.prefixes", "/api,/v1"),
            ("traefik.http.middlewares.strip.stripprefix.forceSlash", "false"),
            (
                "traefik.http.middlewares.auth.basicauth.users",
                "u:$$apr1$$x,v:$$apr1$$y",
            ),
            (
                "traefik.http.middlewares.secure.headers.customrequestheaders.X-Script-Name",
                "/api",
            ),
            ("traefik.http.middlewares.secure.headers.stsSeconds", "31536000"),
            (
                "traefik.http.middlewares.secure.headers.accesscontrolallowmethods",
                "GET,OPTIONS",
            ),
            ("traefik.http.middlewares.all.chain.middlewares", "strip@docker,auth"),
            ("traefik.http.middlewares.zip.compress", "true"),
            (
                "traefik.http.middlewares.allow.ipallowlist.sourcerange",
                "10.0.0.0/8, 192.168.0.0/16",
            ),
        ]);
        let out = convert(
            "demo",
            "proxy",
            &file(EXPOSED),
            &[backend("a", &l, 2, &[80])],
            DYNAMIC,
            &CERT,
        )
        .unwrap();
        insta::assert_snapshot!(routes(&out), @r"
        http:
          middlewares:
            all:
              chain:
                middlewares:
                - strip
                - auth
            allow:
              ipAllowList:
                sourceRange:
                - 10.0.0.0/8
                - 192.168.0.0/16
            auth:
              basicAuth:
                users:
                - u:$$apr1$$x
                - v:$$apr1$$y
            secure:
              headers:
                accessControlAllowMethods:
                - GET
                - OPTIONS
                customRequestHeaders:
                  X-Script-Name: /api
                stsSeconds: 31536000
            strip:
              stripPrefix:
                forceSlash: false
                prefixes:
                - /api
                - /v1
            zip:
              compress: {}
          routers:
            r:
              middlewares:
              - strip
              - auth
              - secure
              priority: 10
              rule: PathPrefix(`/api`)
              service: a-demo
              tls:
                domains:
                - main: example.com
                  sans:
                  - a.example.com
                  - b.example.com
          services:
            a-demo:
              loadBalancer:
                servers:
                - url: http://172.18.0.2:80
        ");
        assert!(out.notes.iter().any(|n| n.contains("@docker")), "{:?}", out.notes);
        // What it writes loads back as YAML.
        let _: serde_yaml::Value = serde_yaml::from_str(&out.dynamic_yaml).unwrap();
    }

    #[test]
    fn command_line_flags() {
        let args = |a: &[&str]| StaticConfig::Args(a.iter().map(|s| s.to_string()).collect());
        let static_config = args(&[
            "--api.insecure=true",
            "--providers.docker",
            "--providers.docker.exposedByDefault=false",
            "--providers.docker.endpoint",
            "unix:///var/run/docker.sock",
            "--entrypoints.web.address=:80",
            "--providers.docker.defaultrule",
            "Host(`{{ .Name }}.localhost`)",
            "--providers.providersThrottleDuration",
            "2s",
        ]);
        let on = labels(&[("traefik.enable", "true")]);
        let none = BTreeMap::new();
        let out = convert(
            "demo",
            "proxy",
            &static_config,
            &[backend("web", &on, 2, &[80]), backend("db", &none, 3, &[5432])],
            DYNAMIC,
            &CERT,
        )
        .unwrap();
        assert_eq!(
            out.static_config,
            args(&[
                "--api.insecure=true",
                "--entrypoints.web.address=:80",
                "--providers.providersThrottleDuration=0s",
                "--providers.file.filename=/etc/traefik/dynamic.yml",
            ])
        );
        assert_eq!(
            out.notes[0],
            "providers.providersThrottleDuration: 2s becomes 0s: the file provider sends its configuration once"
        );
        assert!(
            out.dynamic_yaml.contains("rule: Host(`web-demo.localhost`)"),
            "{}",
            out.dynamic_yaml
        );
        assert!(!out.dynamic_yaml.contains("db-demo"), "{}", out.dynamic_yaml);

        let err = |a: &[&str]| convert("demo", "proxy", &args(a), &[], DYNAMIC, &CERT).unwrap_err();
        assert_eq!(
            err(&["--api.insecure=true"]),
            ["traefik service `proxy` does not use the docker provider; nothing to convert"]
        );
        assert_eq!(
            err(&["--providers.docker=false", "--providers.docker.network=x"]),
            ["traefik service `proxy` does not use the docker provider; nothing to convert"]
        );
        assert!(err(&["--providers.docker.constraints=Label(`a`,`b`)"])[0].contains("constraints"));
        assert!(err(&["--providers.docker.exposedbydefault", "false"])[0].contains("takes `=value`"));
        assert!(err(&["--providers.docker.defaultRule={{ index .Labels \"x\" }}"])[0].contains("only"));
    }

    #[test]
    fn static_file_options() {
        let err = |yaml: &str| convert("demo", "proxy", &file(yaml), &[], DYNAMIC, &CERT).unwrap_err();
        assert_eq!(
            err("entryPoints: {}\n"),
            ["traefik service `proxy` does not use the docker provider; nothing to convert"]
        );
        assert!(err("providers:\n  docker:\n    constraints: Label(`a`,`b`)\n")[0].contains("constraints"));
        assert!(err("providers:\n  docker:\n    allowEmptyServices: true\n")[0].contains("allowEmptyServices"));
        assert!(err("providers:\n  docker:\n    pollInterval: 5s\n")[0].contains("pollInterval"));
        assert!(err("providers:\n  docker: {}\n  file:\n    directory: /x\n")[0].contains("file provider"));
        let out = convert(
            "demo",
            "proxy",
            &file("providers:\n  docker:\n    watch: true\n    network: web\n    useBindPortIP: false\n"),
            &[],
            DYNAMIC,
            &CERT,
        )
        .unwrap();
        assert_eq!(out.notes.len(), 3, "{:?}", out.notes);
        // Nothing routed: still a file the file provider loads.
        assert_eq!(routes(&out), "");
    }

    #[test]
    fn unknown_labels_are_errors() {
        let l = labels(&[
            ("traefik.enable", "true"),
            ("traefik.http.routers.r.rule", "Host(`a`)"),
            ("traefik.http.routers.r.rules", "Host(`a`)"),
            ("traefik.docker.network", "front"),
        ]);
        assert_eq!(
            errors(&file(EXPOSED), &[backend("a", &l, 2, &[80])]),
            ["service `a`: label `traefik.http.routers.r.rules`: unknown option `rules`"]
        );
    }

    #[test]
    fn every_error_at_once() {
        let a = labels(&[
            ("traefik.frontend.rule", "Host(`a`)"),
            ("traefik.http.routers.r.priority", "high"),
            ("traefik.http.middlewares.m.stripprefix.bogus", "x"),
        ]);
        let b = labels(&[
            ("traefik.http.routers.shared.rule", "Host(`b`)"),
            ("traefik.tcp.routers.t.entrypoints", "db"),
        ]);
        let c = labels(&[("traefik.http.routers.shared.rule", "Host(`c`)")]);
        let d = labels(&[("traefik.http.routers.shared.rule", "Host(`d`)")]);
        let backends = [
            backend("a", &a, 2, &[80]),
            backend("b", &b, 3, &[80]),
            backend("c", &c, 4, &[80]),
            backend("d", &d, 5, &[80]),
        ];
        assert_eq!(
            errors(&file(EXPOSED), &backends),
            [
                "service `a`: label `traefik.frontend.rule`: not a label this conversion knows",
                "service `a`: label `traefik.http.middlewares.m.stripprefix.bogus`: unknown option `bogus`",
                "service `a`: label `traefik.http.routers.r.priority`: `high` is not an integer",
                "service `b`: label `traefik.tcp.routers.t.rule`: TCP router `t` has no rule (traefik drops it); \
                 e.g. HostSNI(`*`)",
                "service `d`: label `traefik.http.routers.shared`: http router `shared` is also defined, \
                 differently, by service `c` (traefik would drop both)",
            ]
        );
    }

    #[test]
    fn one_service_in_several_containers_balances_over_them() {
        let l = labels(&[
            ("traefik.http.routers.web.rule", "Host(`web`)"),
            ("traefik.http.routers.web.service", "web"),
            ("traefik.http.services.web.loadbalancer.server.port", "80"),
        ]);
        let out = dynamic(
            &file(EXPOSED),
            &[backend("blue", &l, 2, &[80]), backend("green", &l, 3, &[80])],
        );
        assert!(
            out.contains("- url: http://172.18.0.2:80\n        - url: http://172.18.0.3:80\n"),
            "{out}"
        );
    }

    #[test]
    fn tcp_and_udp() {
        let l = labels(&[
            ("traefik.tcp.routers.pg.rule", "HostSNI(`*`)"),
            ("traefik.tcp.routers.pg.entrypoints", "postgres"),
            ("traefik.tcp.routers.pg.tls.passthrough", "true"),
            ("traefik.udp.routers.dns.entrypoints", "dns"),
            ("traefik.udp.services.dns.loadbalancer.server.port", "53"),
        ]);
        let out = dynamic(&file(EXPOSED), &[backend("db", &l, 2, &[5432])]);
        insta::assert_snapshot!(out, @r"
        tcp:
          routers:
            pg:
              entryPoints:
              - postgres
              rule: HostSNI(`*`)
              service: db-demo
              tls:
                passthrough: true
          services:
            db-demo:
              loadBalancer:
                servers:
                - address: 172.18.0.2:5432
        udp:
          routers:
            dns:
              entryPoints:
              - dns
              service: dns
          services:
            dns:
              loadBalancer:
                servers:
                - address: 172.18.0.2:53
        ");
    }
}
