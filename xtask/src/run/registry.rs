//! The registry the dynamic method pulls from: a real one (Debian's
//! `docker-registry`, the CNCF distribution registry) started for the command on
//! a free loopback port and stopped when the command ends; or the user's own,
//! given with `--registry HOST[:PORT][/NAMESPACE]`.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::{base::exec, base::project::Project, base::ui, build::host, build::images, run::boot, run::http};

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

/// A path component of an image reference, as the distribution spec has it:
/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or one or more `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut sep = String::new();
    for &b in bytes {
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            if !(sep.is_empty() || sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
                return false;
            }
            sep.clear();
        } else if b"._-".contains(&b) {
            sep.push(b as char);
        } else {
            return false;
        }
    }
    true
}

/// A registry process run by the xtask. Dropping it stops it, and it dies with
/// the xtask ([`child::dies_with_parent`]).
pub struct Local {
    child: Child,
    pub address: Address,
    pub log: PathBuf,
}

impl Local {
    /// Start `docker-registry` on 127.0.0.1:<free port>, storage in the cache,
    /// and wait until it answers `GET /v2/`.
    pub fn start(project: &Project, log: &Path) -> Result<Local> {
        let program = host::path(project, "docker-registry")?;
        let port = boot::free_port()?;
        let dir = project.cache_path("registry");
        fs::create_dir_all(dir.join("data"))?;
        // One config per process: two commands may each run a registry.
        let config = dir.join(format!("config-{}.yml", std::process::id()));
        fs::write(&config, config_yaml(&dir.join("data"), port))?;
        let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(program);
        cmd.arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = exec::spawn(&mut cmd).context("starting docker-registry")?;
        let mut registry = Local {
            child,
            address: Address {
                host: format!("127.0.0.1:{port}"),
                namespace: None,
            },
            log: log.to_path_buf(),
        };
        registry.wait_ready(Duration::from_secs(30))?;
        ui::note(format!(
            "registry (docker-registry) on 127.0.0.1:{port}, log in {}",
            project.rel(log).display()
        ));
        Ok(registry)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let addr = SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            self.address.host.rsplit_once(':').unwrap().1.parse::<u16>()?,
        ));
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("docker-registry exited ({status}); see {}", self.log.display());
            }
            if http::get(addr, "127.0.0.1", "/v2/", Duration::from_secs(2)).is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "docker-registry did not answer GET /v2/ within {}s; see {}",
                    timeout.as_secs(),
                    self.log.display()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Repositories whose manifest the registry served, from its access log.
    pub fn pulled_manifests(&self) -> Vec<String> {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        pulled_manifests(&log)
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.stop();
    }
}

fn config_yaml(data: &Path, port: u16) -> String {
    format!(
        "# Written by cargo xtask for one run: a registry on loopback only.\n\
         version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        data.display()
    )
}

/// `GET /v2/<repo>/manifests/<ref>` requests answered 200, from an access log
/// in the combined format the registry writes.
pub fn pulled_manifests(log: &str) -> Vec<String> {
    let mut repos = Vec::new();
    for line in log.lines() {
        let Some(request) = line.split('"').nth(1) else {
            continue;
        };
        let mut parts = request.split_whitespace();
        let (Some("GET"), Some(path)) = (parts.next(), parts.next()) else {
            continue;
        };
        let status_ok = line
            .split('"')
            .nth(2)
            .is_some_and(|rest| rest.trim_start().starts_with("200"));
        if let Some(repo) = path
            .strip_prefix("/v2/")
            .and_then(|p| p.split_once("/manifests/"))
            .map(|(r, _)| r)
        {
            if status_ok && !repos.iter().any(|r| r == repo) {
                repos.push(repo.to_string());
            }
        }
    }
    repos
}

/// Push `image` (in buildah's storage) to `registry`.
pub fn push(sh: &Shell, project: &Project, image: &str, registry: &Address) -> Result<()> {
    let dest = format!("docker://{}", registry.image(image));
    let tls = format!("--tls-verify={}", !registry.is_loopback());
    let step = ui::step(format!("push {}", registry.image(image)));
    images::buildah(sh, project, &["push", "--quiet", &tls, image, &dest])?;
    step.done_with("pushed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn access_log_pulls() {
        let log = r#"time="…" level=info msg="response completed" http.request.method=GET
127.0.0.1 - - [23/Nov/2026:20:01:02 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "docker/26.1.5"
127.0.0.1 - - [23/Nov/2026:20:01:02 +0000] "HEAD /v2/linuxkit-compose.local/app-a/manifests/1 HTTP/1.1" 200 0 "" "docker/26.1.5"
127.0.0.1 - - [23/Nov/2026:20:01:02 +0000] "GET /v2/linuxkit-compose.local/app-a/manifests/1 HTTP/1.1" 200 1234 "" "docker/26.1.5"
127.0.0.1 - - [23/Nov/2026:20:01:03 +0000] "GET /v2/linuxkit-compose.local/app-b/manifests/1 HTTP/1.1" 404 96 "" "docker/26.1.5"
127.0.0.1 - - [23/Nov/2026:20:01:03 +0000] "GET /v2/linuxkit-compose.local/app-a/manifests/sha256:ab HTTP/1.1" 200 99 "" "docker/26.1.5"
"#;
        assert_eq!(pulled_manifests(log), ["linuxkit-compose.local/app-a"]);
    }
}
