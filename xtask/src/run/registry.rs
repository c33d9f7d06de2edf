//! The registry the dynamic method pulls from when the user names none: a real
//! one (Debian's `docker-registry`, the CNCF distribution registry) started for
//! the command on a free loopback port and stopped when the command ends.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::{
    base::{exec, http, project::Project, ui},
    building::{host, registry::Address},
    run::boot,
};

/// A registry process run by the xtask. Dropping it stops it, and it dies with
/// the xtask ([`exec::spawn`]).
pub struct Local {
    child: Child,
    pub address: Address,
    pub log: PathBuf,
}

impl Local {
    /// Start `docker-registry` on 127.0.0.1:<free port>, storage in the cache,
    /// and wait until it answers `GET /v2/`.
    pub fn start(project: &Project, log: &Path) -> Result<Local> {
        Local::start_with(project, log, None)
    }

    /// [`Local::start`], asking for a login when `htpasswd` (an Apache
    /// htpasswd file, bcrypt) names its users.
    pub fn start_with(project: &Project, log: &Path, htpasswd: Option<&Path>) -> Result<Local> {
        let program = host::path(project, "docker-registry")?;
        let port = boot::free_port(false)?;
        let dir = project.cache_path("registry");
        fs::create_dir_all(dir.join("data"))?;
        // One config per process: two commands may each run a registry.
        let config = dir.join(format!("config-{}.yml", std::process::id()));
        fs::write(&config, config_yaml(&dir.join("data"), port, htpasswd))?;
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
            // 401: up, and asking for the login it was started with.
            if http::get(addr, "127.0.0.1", "/v2/", Duration::from_secs(2))
                .is_ok_and(|r| [200, 401].contains(&r.status))
            {
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

fn config_yaml(data: &Path, port: u16, htpasswd: Option<&Path>) -> String {
    let mut text = format!(
        "# Written by cargo xtask for one run: a registry on loopback only.\n\
         version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        data.display()
    );
    if let Some(file) = htpasswd {
        text += &format!("auth:\n  htpasswd:\n    realm: xtask\n    path: {}\n", file.display());
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;

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
