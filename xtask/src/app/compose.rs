//! The compose file: the single description of the app. From it come the images
//! to build (each service with `build:`, tagged with its `image:`), the images
//! the VM needs, the hostnames traefik routes, and the copy of the file the VM
//! runs. No service is named in Rust code.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use anyhow::Result;

use crate::base::project::Project;
use serde::Serialize;
use serde_yaml::{Mapping, Value};

pub const DEFAULT: &str = "compose/docker-compose.yml";

/// The repository's own compose file (named relative to the repository when
/// that is where the user is).
pub fn default_app(project: &Project) -> Result<App> {
    let default = project.root.join(DEFAULT);
    let shown = if std::env::current_dir().ok().as_deref() == Some(project.root.as_path()) {
        PathBuf::from(DEFAULT)
    } else {
        default
    };
    App::load(&shown)
}

/// A parsed, checked compose file.
#[derive(Debug)]
pub struct App {
    /// The file as given (for messages).
    pub file: PathBuf,
    pub services: Vec<Service>,
    raw: Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Service {
    pub name: String,
    pub image: String,
    pub build: Option<Build>,
    /// Hostnames this service is routed under (traefik `Host(…)` rules).
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Build {
    /// Absolute build context.
    #[serde(serialize_with = "display_rel")]
    pub context: PathBuf,
    pub dockerfile: String,
}

fn display_rel<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    // Snapshots must not depend on where the repository is checked out.
    let root = crate::base::project::root();
    s.serialize_str(&p.strip_prefix(&root).unwrap_or(p).display().to_string())
}

/// Something wrong with the compose file, naming the file.
#[derive(Debug)]
pub struct Invalid {
    file: PathBuf,
    problem: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.problem)
    }
}

impl std::error::Error for Invalid {}

impl App {
    /// Read and check `file` (relative paths are relative to the current directory).
    pub fn load(file: &Path) -> Result<App> {
        let text = std::fs::read_to_string(file).map_err(|e| Invalid {
            file: file.to_path_buf(),
            problem: format!("cannot read it: {e}"),
        })?;
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = std::fs::canonicalize(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &dir
        })?;
        App::parse(file, &text, &dir).map_err(|problem| {
            Invalid {
                file: file.to_path_buf(),
                problem,
            }
            .into()
        })
    }

    /// Parse compose YAML; build contexts resolve against `dir`.
    pub fn parse(file: &Path, text: &str, dir: &Path) -> Result<App, String> {
        let raw: Value = serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
        let services = raw
            .get("services")
            .and_then(Value::as_mapping)
            .filter(|m| !m.is_empty())
            .ok_or("defines no services (a `services:` mapping is required)")?;
        let mut out = Vec::new();
        for (name, body) in services {
            let name = name.as_str().ok_or("a service name is not a string")?.to_string();
            out.push(service(&name, body, dir).map_err(|e| format!("service `{name}`: {e}"))?);
        }
        let mut seen = BTreeMap::new();
        for s in &out {
            for host in &s.hosts {
                if let Some(other) = seen.insert(host.clone(), s.name.clone()) {
                    return Err(format!("host `{host}` is routed to both `{other}` and `{}`", s.name));
                }
            }
        }
        Ok(App {
            file: file.to_path_buf(),
            services: out,
            raw,
        })
    }

    pub fn builds(&self) -> impl Iterator<Item = (&Service, &Build)> {
        self.services.iter().filter_map(|s| s.build.as_ref().map(|b| (s, b)))
    }

    /// Every image the app runs, once each, in service order.
    pub fn images(&self) -> Vec<&str> {
        let mut images: Vec<&str> = Vec::new();
        for s in &self.services {
            if !images.contains(&s.image.as_str()) {
                images.push(&s.image);
            }
        }
        images
    }

    /// (hostname, service) for every routed host, sorted by hostname.
    pub fn routes(&self) -> Vec<(&str, &Service)> {
        let mut routes: Vec<_> = self
            .services
            .iter()
            .flat_map(|s| s.hosts.iter().map(move |h| (h.as_str(), s)))
            .collect();
        routes.sort_by_key(|(h, _)| *h);
        routes
    }

    /// The compose file the VM runs: no `build:` sections (there is nothing to
    /// build from in the VM), each image mapped by `image`, and `pull_policy` set.
    pub fn runtime_file(&self, pull_policy: &str, image: impl Fn(&str) -> String) -> Result<String> {
        let mut raw = self.raw.clone();
        let services = raw
            .get_mut("services")
            .and_then(Value::as_mapping_mut)
            .expect("checked in parse");
        for (_, body) in services.iter_mut() {
            let body = body.as_mapping_mut().expect("checked in parse");
            body.remove("build");
            let name = body
                .get("image")
                .and_then(Value::as_str)
                .expect("checked in parse")
                .to_string();
            body.insert("image".into(), image(&name).into());
            body.insert("pull_policy".into(), pull_policy.into());
        }
        Ok(serde_yaml::to_string(&raw)?)
    }
}

fn service(name: &str, body: &Value, dir: &Path) -> Result<Service, String> {
    let body = body.as_mapping().ok_or("is not a mapping")?;
    let build = match body.get("build") {
        None => None,
        Some(b) => Some(build(b, dir)?),
    };
    let image = match body.get("image") {
        Some(Value::String(image)) if !image.is_empty() => image.clone(),
        Some(_) => return Err("`image:` is not a string".into()),
        None if build.is_some() => return Err("has `build:` but no `image:` to tag the result with".into()),
        None => return Err("has neither `image:` nor `build:`".into()),
    };
    let labels = labels(body)?;
    let hosts = hosts(&labels)?;
    let routed = labels.keys().any(|k| k.starts_with("traefik.http.routers."));
    if routed && labels.get("traefik.enable").map(String::as_str) != Some("true") {
        return Err("has traefik router labels but not `traefik.enable: \"true\"`, so traefik ignores it".into());
    }
    Ok(Service {
        name: name.to_string(),
        image,
        build,
        hosts,
    })
}

fn build(b: &Value, dir: &Path) -> Result<Build, String> {
    let (context, dockerfile) = match b {
        Value::String(context) => (context.clone(), "Dockerfile".to_string()),
        Value::Mapping(m) => (
            m.get("context").and_then(Value::as_str).unwrap_or(".").to_string(),
            m.get("dockerfile")
                .and_then(Value::as_str)
                .unwrap_or("Dockerfile")
                .to_string(),
        ),
        _ => return Err("`build:` is neither a path nor a mapping".into()),
    };
    let path = dir.join(&context);
    if !path.is_dir() {
        return Err(format!("build context `{context}` does not exist ({})", path.display()));
    }
    if !path.join(&dockerfile).is_file() {
        return Err(format!("build context `{context}` has no {dockerfile}"));
    }
    let context = std::fs::canonicalize(&path).map_err(|e| format!("build context `{context}`: {e}"))?;
    Ok(Build { context, dockerfile })
}

/// Labels in either compose form: a mapping, or a list of `key=value`.
fn labels(body: &Mapping) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    match body.get("labels") {
        None => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let k = k.as_str().ok_or("a label key is not a string")?;
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => n.to_string(),
                    _ => return Err(format!("label `{k}` is not a string")),
                };
                out.insert(k.to_string(), v);
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items {
                let item = item.as_str().ok_or("a label is not a string")?;
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                out.insert(k.to_string(), v.to_string());
            }
        }
        Some(_) => return Err("`labels:` is neither a mapping nor a list".into()),
    }
    Ok(out)
}

/// Hostnames from every `traefik.http.routers.NAME.rule` label; a router rule
/// without a Host(`…`) matcher is an error (nothing could be probed for it).
fn hosts(labels: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    for (key, rule) in labels {
        let Some(router) = key
            .strip_prefix("traefik.http.routers.")
            .and_then(|r| r.strip_suffix(".rule"))
        else {
            continue;
        };
        let found = rule_hosts(rule).map_err(|e| format!("label `{key}`: {e}"))?;
        if found.is_empty() {
            return Err(format!("router `{router}` rule `{rule}` has no Host(`…`) matcher"));
        }
        hosts.extend(found);
    }
    Ok(hosts)
}

/// The backquoted hostnames inside every `Host(…)` of a traefik rule.
pub fn rule_hosts(rule: &str) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    let mut rest = rule;
    while let Some(at) = rest.find("Host(") {
        // HostRegexp(…) and HostSNI(…) are not Host(…).
        let before = rest[..at].chars().last();
        rest = &rest[at + "Host(".len()..];
        if before.is_some_and(|c| c.is_alphanumeric()) {
            continue;
        }
        let end = rest.find(')').ok_or_else(|| format!("unclosed Host( in `{rule}`"))?;
        for part in rest[..end].split(',') {
            let part = part.trim();
            let host = part
                .strip_prefix('`')
                .and_then(|p| p.strip_suffix('`'))
                .ok_or_else(|| format!("Host argument {part} is not in backquotes"))?;
            if host.is_empty() {
                return Err("empty Host(``)".into());
            }
            hosts.push(host.to_string());
        }
        rest = &rest[end..];
    }
    Ok(hosts)
}

/// A file-system-safe name for an image reference (for its tarball).
pub fn tarball_name(image: &str) -> String {
    let safe: String = image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.tar")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        crate::base::project::root()
    }

    fn parse(text: &str) -> Result<App, String> {
        App::parse(Path::new("compose/test.yml"), text, &root().join("compose"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err()
    }

    #[test]
    fn the_repo_compose_file_plans() {
        let app = App::load(&root().join(DEFAULT)).unwrap();
        insta::assert_yaml_snapshot!(app.services);
        assert_eq!(
            app.routes()
                .iter()
                .map(|(h, s)| (*h, s.name.as_str()))
                .collect::<Vec<_>>(),
            [("a.localhost", "a"), ("b.localhost", "b")]
        );
    }

    #[test]
    fn runtime_file_drops_build_and_maps_images() {
        let app = App::load(&root().join(DEFAULT)).unwrap();
        let file = app.runtime_file("always", |i| format!("10.0.2.2:5000/{i}")).unwrap();
        insta::assert_snapshot!(file);
    }

    #[test]
    fn malformed_yaml() {
        let e = err("services:\n  a: [\n");
        assert!(e.starts_with("not valid YAML: "), "{e}");
        assert!(e.contains("line"), "says where: {e}");
    }

    #[test]
    fn no_services() {
        assert!(err("name: x\n").contains("defines no services"));
        assert!(err("services: {}\n").contains("defines no services"));
    }

    #[test]
    fn missing_build_context() {
        let e = err("services:\n  a:\n    build: ../apps/nope\n    image: x:1\n");
        assert!(
            e.starts_with("service `a`: build context `../apps/nope` does not exist"),
            "{e}"
        );
    }

    #[test]
    fn build_context_without_dockerfile() {
        let e = err("services:\n  a:\n    build: {context: ../apps/a, dockerfile: Nope}\n    image: x:1\n");
        assert_eq!(e, "service `a`: build context `../apps/a` has no Nope");
    }

    #[test]
    fn build_without_image() {
        let e = err("services:\n  a:\n    build: ../apps/a\n");
        assert_eq!(e, "service `a`: has `build:` but no `image:` to tag the result with");
    }

    #[test]
    fn router_without_host_rule() {
        let e = err("services:\n  a:\n    image: x:1\n    labels:\n      traefik.enable: 'true'\n      traefik.http.routers.r.rule: PathPrefix(`/a`)\n");
        assert_eq!(
            e,
            "service `a`: router `r` rule `PathPrefix(`/a`)` has no Host(`…`) matcher"
        );
    }

    #[test]
    fn router_without_enable() {
        let e = err("services:\n  a:\n    image: x:1\n    labels: ['traefik.http.routers.r.rule=Host(`a`)']\n");
        assert!(e.contains("not `traefik.enable: \"true\"`"), "{e}");
    }

    #[test]
    fn host_routed_twice() {
        let svc = |n: &str| {
            format!("  {n}:\n    image: {n}:1\n    labels: ['traefik.enable=true', 'traefik.http.routers.{n}.rule=Host(`x.localhost`)']\n")
        };
        let e = err(&format!("services:\n{}{}", svc("a"), svc("b")));
        assert_eq!(e, "host `x.localhost` is routed to both `a` and `b`");
    }

    #[test]
    fn host_rules() {
        assert_eq!(rule_hosts("Host(`a.localhost`)").unwrap(), ["a.localhost"]);
        assert_eq!(rule_hosts("Host(`a`) || Host(`b`, `c`)").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            rule_hosts("HostRegexp(`.*`) && PathPrefix(`/`)").unwrap(),
            Vec::<String>::new()
        );
        assert!(rule_hosts("Host(a)").unwrap_err().contains("backquotes"));
        assert!(rule_hosts("Host(`a`").unwrap_err().contains("unclosed"));
    }

    #[test]
    fn tarball_names_are_flat() {
        assert_eq!(
            tarball_name("linuxkit-compose.local/app-a:1"),
            "linuxkit-compose.local_app-a_1.tar"
        );
    }
}
