//! `service`: the VM-side runner for LinuxKit container bundles. Run from the
//! busybox init scripts, it applies each bundle's runtime.json and drives
//! the OCI runtime (crun) directly (no containerd). Service bundles annotated as compose
//! services (`annotations`) are left to a supervisor process (`supervise`)
//! that gives them what `docker compose up` would: start order by
//! `depends_on`, restart policies, healthchecks, exit reports. This file
//! holds the CLI and the commands; see the other modules for parsing,
//! mounts, runtime calls and the supervisor's decisions (`deps`, `restart`,
//! `health`).

mod annotations;
mod bundles;
mod certificate;
mod deps;
mod health;
mod mountopts;
mod oci;
mod populate;
mod prepare;
mod restart;
mod runtime;
mod supervise;

use bundles::Bundle;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: service COMMAND [--root DIR]

commands:
  onboot      run each /containers/onboot bundle in name order, one at a time;
              one annotated org.linuxkit-compose.required that fails is
              recorded in /run/lkc-required-failed
  start       start every /containers/services bundle detached, concurrently;
              compose services (config.json annotation
              org.linuxkit-compose.service) go to a detached `service
              supervise` instead, whose pid goes to /run/lkc-supervise.pid;
              after a required onboot failed, only the bundles annotated
              org.linuxkit-compose.console
  supervise   run the compose services in the foreground as `docker compose
              up` would: depends_on conditions, restart policies,
              healthchecks (crun exec), exits reported on the console;
              on SIGTERM, stop them (TERM, KILL after 10 s) and exit
  onshutdown  run each /containers/onshutdown bundle in name order
  stop        TERM the supervisor and wait for it, then TERM every other
              service container (crun kill NAME TERM) and wait for them,
              KILL after 60 s

compose annotations (org.linuxkit-compose.*):
  service      the compose service name; marks the bundle supervised
  depends_on   JSON {\"dep\": \"service_started|service_healthy|
               service_completed_successfully\"}
  restart      no | always | unless-stopped | on-failure[:N]
  healthcheck  JSON {\"test\": [argv...], \"interval_ms\", \"timeout_ms\",
               \"retries\", \"start_period_ms\", \"start_interval_ms\"}
  default_certificate
               a directory: make a self-signed TLS certificate there
               (cert.pem, key.pem; P-256) before the service starts

options:
  --root DIR  look for /containers (and /run/lkc-supervise.pid) under DIR
              instead of / (default /)
  -h, --help  show this help
";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmd {
    Onboot,
    Start,
    Onshutdown,
    Stop,
    Supervise,
    Help,
}

#[derive(Debug, PartialEq)]
struct Args {
    cmd: Cmd,
    root: PathBuf,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut root = PathBuf::from("/");
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Args { cmd: Cmd::Help, root });
    }
    let mut cmd = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let next = match arg.as_str() {
            "--root" => {
                root = it.next().ok_or("--root needs a directory")?.into();
                continue;
            }
            "onboot" => Cmd::Onboot,
            "start" => Cmd::Start,
            "onshutdown" => Cmd::Onshutdown,
            "stop" => Cmd::Stop,
            "supervise" => Cmd::Supervise,
            other => return Err(format!("unknown argument `{other}`")),
        };
        if cmd.replace(next).is_some() {
            return Err("only one command may be given".into());
        }
    }
    let cmd = cmd.ok_or("no command given")?;
    Ok(Args { cmd, root })
}

pub(crate) fn log(msg: &str) {
    eprintln!("service: {msg}");
}

/// ` (uptime 12.34s)`, for the boot's phases; empty if /proc is not there.
pub(crate) fn uptime() -> String {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(|s| format!(" (uptime {s}s)")))
        .unwrap_or_default()
}

/// Prepare and run each bundle of `kind` to completion, one after another.
/// Failures are logged and the next bundle still runs.
fn run_all(root: &Path, kind: &str) -> Result<(), String> {
    for Bundle { name, dir } in bundles::list(&root.join("containers").join(kind))? {
        if let Err(e) = prepare::prepare(&dir) {
            log(&format!("{kind} {name} skipped: {e}"));
            continue;
        }
        let ok = match oci::run(&dir, &name) {
            Ok(st) => {
                log(&format!(
                    "{kind} {name} exited with status {}{}",
                    oci::code(st),
                    uptime()
                ));
                st.success()
            }
            Err(e) => {
                log(&format!("{kind} {name}: {e}"));
                false
            }
        };
        if !ok && annotations::read(&dir).is_ok_and(|a| a.contains_key(lkc_contract::REQUIRED)) {
            let _ = std::fs::write(failed_file(root), format!("{kind} {name}\n"));
        }
    }
    Ok(())
}

/// Where `onboot` records a required onboot container that failed; `start`
/// then starts the console only.
fn failed_file(root: &Path) -> PathBuf {
    root.join("run/lkc-required-failed")
}

/// Where `start` records the supervisor's pid for `stop`.
fn pid_file(root: &Path) -> PathBuf {
    root.join("run/lkc-supervise.pid")
}

/// Whether a service bundle is a compose service (see `annotations`). A
/// config.json that cannot be read leaves the bundle to plain crun, which
/// reports the problem as it always has.
fn is_supervised(dir: &Path) -> bool {
    annotations::read(dir).is_ok_and(|a| annotations::supervised(&a))
}

/// Launch the supervisor for the compose services, if there are any, then
/// prepare and start every other service detached, all at once: they do not
/// wait for each other (LinuxKit starts them concurrently too), and each
/// container start takes a while under emulation.
fn start(root: &Path) -> Result<(), String> {
    let mut bundles = bundles::list(&root.join("containers/services"))?;
    if let Ok(failed) = std::fs::read_to_string(failed_file(root)) {
        bundles.retain(|b| annotations::read(&b.dir).is_ok_and(|a| a.contains_key(lkc_contract::CONSOLE)));
        log(&format!(
            "not starting the app's services: {} failed, and they need it (only the console starts)",
            failed.trim()
        ));
    }
    let (supervised, plain): (Vec<_>, Vec<_>) = bundles.into_iter().partition(|b| is_supervised(&b.dir));
    if !supervised.is_empty() {
        match supervise::launch(root, &pid_file(root)) {
            Ok(pid) => log(&format!(
                "supervisor started (pid {pid}) for {} compose services",
                supervised.len()
            )),
            Err(e) => log(&e),
        }
    }
    std::thread::scope(|s| {
        for Bundle { name, dir } in &plain {
            s.spawn(move || {
                if let Err(e) = prepare::prepare(dir) {
                    log(&format!("service {name} skipped: {e}"));
                    return;
                }
                match oci::run_detached(dir, name) {
                    Ok(st) if st.success() => log(&format!("started {name}")),
                    Ok(st) => log(&format!("starting {name} failed with status {}", oci::code(st))),
                    Err(e) => log(&format!("starting {name}: {e}")),
                }
            });
        }
    });
    Ok(())
}

/// Stop the supervisor (which stops the compose services with their grace
/// periods), then TERM every other service container and wait for them to
/// exit, KILLing those still running after [`OTHERS_GRACE`]. A Docker
/// engine stops its containers on TERM, each with its own stop timeout
/// (compose's `stop_grace_period`), before it exits.
fn stop(root: &Path) -> Result<(), String> {
    supervise::stop(&pid_file(root));
    let mut stopping = Vec::new();
    for Bundle { name, dir } in bundles::list(&root.join("containers/services"))? {
        if is_supervised(&dir) || !oci::running(&name) {
            continue;
        }
        match oci::kill(&name, "TERM") {
            Ok(()) => stopping.push(name),
            Err(e) => log(&format!("stop {name}: {e}")),
        }
    }
    let end = Instant::now() + OTHERS_GRACE;
    while stopping.iter().any(|n| oci::running(n)) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
    }
    for name in stopping {
        if oci::running(&name) {
            log(&format!("{name} did not stop in {OTHERS_GRACE:?}, killing it"));
            let _ = oci::kill(&name, "KILL");
        } else {
            log(&format!("stopped {name}"));
        }
    }
    Ok(())
}

/// How long `service stop` waits for the service containers the supervisor
/// does not run (a Docker engine stopping its containers) before KILL.
const OTHERS_GRACE: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            log(&e);
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match args.cmd {
        Cmd::Help => {
            print!("{USAGE}");
            Ok(())
        }
        Cmd::Onboot => run_all(&args.root, "onboot"),
        Cmd::Onshutdown => run_all(&args.root, "onshutdown"),
        Cmd::Start => start(&args.root),
        Cmd::Stop => stop(&args.root),
        Cmd::Supervise => supervise::supervise(&args.root, &pid_file(&args.root)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(&e);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Result<Args, String> {
        parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn commands_and_root() {
        let a = parse(&["onboot"]).unwrap();
        assert_eq!((a.cmd, a.root), (Cmd::Onboot, PathBuf::from("/")));
        let a = parse(&["start", "--root", "/tmp/vm"]).unwrap();
        assert_eq!((a.cmd, a.root), (Cmd::Start, PathBuf::from("/tmp/vm")));
        assert_eq!(parse(&["--root", "/x", "stop"]).unwrap().cmd, Cmd::Stop);
        assert_eq!(parse(&["onshutdown"]).unwrap().cmd, Cmd::Onshutdown);
        assert_eq!(parse(&["supervise"]).unwrap().cmd, Cmd::Supervise);
    }

    #[test]
    fn help_wins() {
        assert_eq!(parse(&["-h"]).unwrap().cmd, Cmd::Help);
        assert_eq!(parse(&["onboot", "--help"]).unwrap().cmd, Cmd::Help);
    }

    #[test]
    fn bad_arguments() {
        assert_eq!(parse(&[]).unwrap_err(), "no command given");
        assert!(parse(&["onboot", "--root"]).unwrap_err().contains("--root"));
        assert!(parse(&["bogus"]).unwrap_err().contains("bogus"));
        assert!(parse(&["onboot", "start"]).is_err());
    }
}
