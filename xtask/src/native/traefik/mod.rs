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
//!
//! Here: the conversion's entry point, `convert`, and what it takes and gives.
//! The work, in the order it happens: `static_config` rewrites traefik's
//! static configuration (a file or flags) to the file provider and reads the
//! docker provider's options (`provider`); per container, `labels` reads the
//! `traefik.*` labels into a tree, `decode` types them by traefik's option
//! `schema`, and `defaults` adds what the docker provider adds (default
//! services, routers, rule, the servers); `dynamic` merges every container's
//! and writes the file provider's configuration, with `certificate`'s TLS store.

mod certificate;
mod decode;
mod defaults;
mod dynamic;
mod labels;
mod provider;
mod schema;
mod static_config;
#[cfg(test)]
mod testing;

use std::collections::BTreeMap;

pub use certificate::DefaultCertificate;
pub use static_config::StaticConfig;

use dynamic::{DynamicValue, Merged};
use labels::Container;
use static_config::{static_args, static_file};

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
    if let DynamicValue::Map(root) = &mut dynamic {
        // Labels cannot define TLS stores: this is the only one.
        root.insert("tls".into(), default_certificate.tls_stores());
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{convert, testing::*, Backend, StaticConfig};

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
}
