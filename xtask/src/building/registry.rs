//! Registries as the build sees them: an address (`--registry
//! HOST[:PORT][/NAMESPACE]`, checked before any work), how the guest reaches
//! it, and pushing the app's images there (buildah, daemonless).

use anyhow::{bail, Result};
use xshell::Shell;

use crate::{
    base::{
        project::Project,
        reference::{is_path_component, Reference},
        ui,
    },
    building::{buildah, upload},
};

/// Where the guest reaches the host's 127.0.0.1 on QEMU's user network.
pub const GUEST_GATEWAY: &str = "10.0.2.2";

/// A registry address: `host[:port]` and an optional namespace path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub namespace: Option<String>,
}

impl Address {
    pub fn parse(text: &str) -> Result<Address> {
        let text = text.trim().trim_end_matches('/');
        if text.is_empty() || text.contains("://") || text.contains(char::is_whitespace) {
            bail!("registry {text:?} is not HOST[:PORT][/NAMESPACE] (no scheme, no spaces)");
        }
        let (host, namespace) = match text.split_once('/') {
            Some((h, ns)) => (h, Some(ns.to_string())),
            None => (text, None),
        };
        let address = Address {
            host: host.to_string(),
            namespace,
        };
        let (name, port) = address.name_and_port();
        let bracketed_ip6 = name.starts_with('[') && name.ends_with(']') && name.len() > 2;
        if name.is_empty() || !(bracketed_ip6 || name.chars().all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))) {
            bail!("registry {text:?}: {name:?} is not a host name");
        }
        if let Some(port) = port {
            if !port.parse::<u16>().is_ok_and(|p| p > 0) {
                bail!("registry {text:?}: port {port:?} is not a port number (1-65535)");
            }
        }
        if let Some(ns) = &address.namespace {
            if let Some(bad) = ns.split('/').find(|c| !is_path_component(c)) {
                bail!(
                    "registry {text:?}: namespace part {bad:?} is not a repository path component \
                     (lower-case letters and digits, separated by `.`, `_`, `__` or dashes)"
                );
            }
        }
        Ok(address)
    }

    /// `registry/namespace/image`.
    pub fn image(&self, image: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{image}", self.host),
            None => format!("{}/{image}", self.host),
        }
    }

    /// The same registry as the guest reaches it: 127.0.0.1/localhost become
    /// QEMU's gateway address.
    pub fn as_seen_from_guest(&self) -> Address {
        let (name, port) = self.name_and_port();
        let name = if self.is_loopback() { GUEST_GATEWAY } else { name };
        let host = match port {
            Some(p) => format!("{name}:{p}"),
            None => name.to_string(),
        };
        Address {
            host,
            namespace: self.namespace.clone(),
        }
    }

    fn is_loopback(&self) -> bool {
        matches!(self.name_and_port().0, "127.0.0.1" | "localhost")
    }

    /// `host` split into its name and optional port (`[::1]:5000` too).
    fn name_and_port(&self) -> (&str, Option<&str>) {
        match self.host.rsplit_once(':') {
            Some((name, port)) if !self.host.starts_with('[') || name.ends_with(']') => (name, Some(port)),
            _ => (&self.host, None),
        }
    }
}

/// The name another registry keeps `image` under: as written when it names
/// no registry of its own (`app-a:1`, `redis:7`); else its registry's host is
/// the first path component (`127.0.0.1:5555/acme/web:1` is
/// `127.0.0.1-5555/acme/web:1`), so that two registries' images with one path
/// stay apart.
pub fn relocated(image: &Reference) -> String {
    let written = image.written_name();
    if image.is_docker_hub() && written == image.familiar_name() {
        return image.as_str().to_string();
    }
    let version = &image.as_str()[written.len()..];
    format!("{}/{}{version}", image.domain().replace(':', "-"), image.path())
}

/// Push `image` (in buildah's storage) to `registry`. A registry on this
/// host (loopback) gets the layers uncompressed (`upload`): the bytes cost
/// nothing there, and a TCG guest unpacks a plain tar much faster than it
/// gunzips one (dynamic VM, pulls to app up: 38 s gzip, 28 s zstd, 20 s
/// uncompressed, one `test-boot --method dynamic` each). Any other registry
/// gets buildah's gzip layers, which every engine can pull, over TLS.
pub fn push(sh: &Shell, project: &Project, image: &Reference, registry: &Address) -> Result<()> {
    let reference = registry.image(&relocated(image));
    let image = image.as_str();
    let step = ui::step(format!("push {reference}"));
    if registry.is_loopback() {
        upload::push(sh, project, image, &reference)?;
    } else {
        let dest = format!("docker://{reference}");
        buildah::run(sh, project, &["push", "--quiet", "--tls-verify=true", image, &dest])?;
    }
    step.done_with("pushed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_of_other_registries_keep_their_registry_in_the_path() {
        let r = |text: &str| relocated(&Reference::parse(text).unwrap());
        assert_eq!(r("app-a:1"), "app-a:1");
        assert_eq!(r("redis:7"), "redis:7");
        assert_eq!(r("user/app"), "user/app");
        assert_eq!(r("127.0.0.1:5555/acme/web:1"), "127.0.0.1-5555/acme/web:1");
        assert_eq!(r("ghcr.io/o/api:2.3"), "ghcr.io/o/api:2.3");
        assert_eq!(r("docker.io/library/redis:7"), "docker.io/library/redis:7");
        for text in ["127.0.0.1:5555/acme/web:1", "ghcr.io/o/api:2.3"] {
            let moved = format!("10.0.2.2:5000/{}", r(text));
            assert!(Reference::parse(&moved).is_ok(), "{moved}");
        }
    }

    #[test]
    fn addresses() {
        let a = Address::parse("registry.example.com:5000/team/").unwrap();
        assert_eq!(
            a,
            Address {
                host: "registry.example.com:5000".into(),
                namespace: Some("team".into())
            }
        );
        assert_eq!(a.image("x/app:1"), "registry.example.com:5000/team/x/app:1");
        assert_eq!(a.as_seen_from_guest(), a, "a real registry is the same from the guest");
        let local = Address::parse("127.0.0.1:41234").unwrap();
        assert_eq!(local.as_seen_from_guest().image("app:1"), "10.0.2.2:41234/app:1");
        assert_eq!(
            Address::parse("localhost:5000/ns")
                .unwrap()
                .as_seen_from_guest()
                .image("a:1"),
            "10.0.2.2:5000/ns/a:1"
        );
        assert_eq!(
            Address::parse("r.example.com/team_a/sub-ns")
                .unwrap()
                .namespace
                .as_deref(),
            Some("team_a/sub-ns")
        );
        assert_eq!(
            Address::parse("[::1]:5000").unwrap().name_and_port(),
            ("[::1]", Some("5000"))
        );
        for bad in [
            "",
            "http://r:5000",
            "r:port",
            "has space:1",
            "r@x",
            ":5000",
            "r:0",
            "r:70000",
            "r.example.com/Team",
            "r.example.com/team//x",
            "r.example.com/-team",
            "r.example.com/te..am",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
