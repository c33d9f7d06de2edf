//! What the conversion's tests share: labels, backends and static
//! configurations to convert, and the conversion's output without its constant
//! part.

use std::collections::BTreeMap;

use super::{convert, Backend, Converted, DefaultCertificate, StaticConfig};

pub(super) const DYNAMIC: &str = "/etc/traefik/dynamic.yml";
pub(super) const CERT: DefaultCertificate = DefaultCertificate {
    cert_file: "/etc/traefik/tls/cert.pem",
    key_file: "/etc/traefik/tls/key.pem",
};

pub(super) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub(super) fn backend<'a>(
    service: &'a str,
    labels: &'a BTreeMap<String, String>,
    ip: u8,
    ports: &[u16],
) -> Backend<'a> {
    Backend {
        service,
        labels,
        address: format!("172.18.0.{ip}"),
        exposed_tcp: ports.to_vec(),
    }
}

pub(super) fn file(yaml: &str) -> StaticConfig {
    StaticConfig::File {
        path: "/etc/traefik/traefik.yml".into(),
        yaml: yaml.into(),
    }
}

pub(super) const EXPOSED: &str = "providers:\n  docker: {}\n";

/// The TLS store every conversion has.
pub(super) const TLS: &str = "tls:
  stores:
    default:
      defaultCertificate:
        certFile: /etc/traefik/tls/cert.pem
        keyFile: /etc/traefik/tls/key.pem
";

/// The dynamic configuration but the default certificate's store.
pub(super) fn routes(out: &Converted) -> String {
    assert!(
        out.dynamic_yaml.contains(TLS),
        "no default certificate:\n{}",
        out.dynamic_yaml
    );
    out.dynamic_yaml.replacen(TLS, "", 1)
}

pub(super) fn dynamic(static_config: &StaticConfig, backends: &[Backend]) -> String {
    routes(&convert("demo", "proxy", static_config, backends, DYNAMIC, &CERT).unwrap())
}

pub(super) fn errors(static_config: &StaticConfig, backends: &[Backend]) -> Vec<String> {
    convert("demo", "proxy", static_config, backends, DYNAMIC, &CERT).unwrap_err()
}
