//! Invoking the OCI runtime (crun, looked up on PATH; its command line is
//! runc's): run a bundle to completion, start it detached or in the
//! foreground with its output logged, probe it with `crun exec`, signal it,
//! delete it.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The OCI runtime the VM carries (images/crun).
pub const RUNTIME: &str = "crun";

/// An exit status as a shell would report it (128+N when killed by signal N).
pub fn code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or(status.signal().map(|s| 128 + s)).unwrap_or(-1)
}

fn spawn_err(e: std::io::Error) -> String {
    format!("cannot run {RUNTIME}: {e}")
}

/// `crun run --bundle DIR NAME`, waiting for the container to exit.
pub fn run(bundle: &Path, name: &str) -> Result<ExitStatus, String> {
    Command::new(RUNTIME)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(name)
        .status()
        .map_err(spawn_err)
}

/// A pipe to a new `tee -a /var/log/NAME.log`, which copies it to the
/// caller's stdout (the console), as (tee, stdout end, stderr end). A pipe
/// rather than the console itself: programs that reopen /dev/stdout (nginx's
/// access_log) may not open the console device from inside a container. tee
/// ends when the container's last writer closes the pipe.
fn log_pipe(name: &str) -> Result<(Child, Stdio, Stdio), String> {
    let log = format!("/var/log/{name}.log");
    let mut tee = Command::new("tee")
        .args(["-a", &log])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start tee for {log}: {e}"))?;
    let out: OwnedFd = tee.stdin.take().expect("piped stdin").into();
    let err = out.try_clone().map_err(|e| format!("dup of the log pipe: {e}"))?;
    Ok((tee, Stdio::from(out), Stdio::from(err)))
}

/// `crun run --detach --bundle DIR NAME` with stdin from /dev/null and the
/// container's output logged (see `log_pipe`); tee outlives this program.
pub fn run_detached(bundle: &Path, name: &str) -> Result<ExitStatus, String> {
    let (_tee, out, err) = log_pipe(name)?;
    Command::new(RUNTIME)
        .args(["run", "--detach", "--bundle"])
        .arg(bundle)
        .arg(name)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(spawn_err)
}

/// A container `crun run` runs in the foreground, its output going through
/// `tee` to its log and the console.
pub struct Logged {
    crun: Child,
    tee: Child,
}

/// How long [`Logged::wait`] waits for `tee` once the container is gone:
/// only a process that left the container's process tree (none should) can
/// keep the pipe open longer.
const TEE_DRAINS_WITHIN: Duration = Duration::from_secs(2);

impl Logged {
    /// Wait for the container to exit, then for its log to have everything
    /// it wrote, and return its exit status as a shell reports it. A `tee`
    /// still running after [`TEE_DRAINS_WITHIN`] is reaped by a thread.
    pub fn wait(mut self) -> Result<i32, String> {
        let status = self.crun.wait().map_err(|e| format!("waiting for {RUNTIME}: {e}"));
        let drained = Instant::now() + TEE_DRAINS_WITHIN;
        while matches!(self.tee.try_wait(), Ok(None)) && Instant::now() < drained {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut tee = self.tee;
        std::thread::spawn(move || tee.wait());
        status.map(code)
    }
}

/// Start `crun run --bundle DIR NAME` in the foreground (crun lives as long
/// as the container and exits with its status), stdin from /dev/null and
/// output logged (see `log_pipe`).
pub fn spawn_logged(bundle: &Path, name: &str) -> Result<Logged, String> {
    let (tee, out, err) = log_pipe(name)?;
    let crun = Command::new(RUNTIME)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(name)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn();
    match crun {
        Ok(crun) => Ok(Logged { crun, tee }),
        Err(e) => {
            // tee ends with its pipe, whose last writers went with `Command`.
            let mut tee = tee;
            std::thread::spawn(move || tee.wait());
            Err(spawn_err(e))
        }
    }
}

/// The last `n` lines of what container `name` wrote to its log
/// (`/var/log/NAME.log`, every run of it), without empty ones.
pub fn last_lines(name: &str, n: usize) -> Vec<String> {
    let text = fs::read(format!("/var/log/{name}.log")).unwrap_or_default();
    tail(&String::from_utf8_lossy(&text), n)
}

fn tail(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// Run the runtime with `args`, quietly; on failure returns its own message.
fn quiet(args: &[&str]) -> Result<(), String> {
    let out = Command::new(RUNTIME)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(spawn_err)?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "{RUNTIME} {} exited with status {}: {}",
        args[0],
        code(out.status),
        msg.trim()
    ))
}

/// `crun kill NAME SIGNAL`.
pub fn kill(name: &str, signal: &str) -> Result<(), String> {
    quiet(&["kill", name, signal])
}

/// Is container `name` still running? (`crun state NAME`: a container that
/// is gone, or whose state says otherwise, is not.)
pub fn running(name: &str) -> bool {
    Command::new(RUNTIME)
        .args(["state", name])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .is_some_and(|out| says_running(&String::from_utf8_lossy(&out.stdout)))
}

/// Does `crun state`'s JSON say `"status": "running"`?
fn says_running(state: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(state)
        .ok()
        .is_some_and(|v| v["status"] == "running")
}

/// `crun delete --force NAME`: forget a stopped container so its name can
/// be run again.
pub fn delete_force(name: &str) -> Result<(), String> {
    quiet(&["delete", "--force", name])
}

/// The outcome of one healthcheck probe.
#[derive(Debug, PartialEq)]
pub enum Probe {
    Exit(i32),
    Timeout(Duration),
    Failed(String),
}

impl Probe {
    pub fn passed(&self) -> bool {
        *self == Probe::Exit(0)
    }

    /// For the console: `status N`, `timeout after …`, or the error.
    pub fn describe(&self) -> String {
        match self {
            Probe::Exit(n) => format!("status {n}"),
            Probe::Timeout(t) => format!("timeout after {t:?}"),
            Probe::Failed(e) => e.clone(),
        }
    }
}

/// `crun exec NAME ARGV...` with no input or output, killed (the process in
/// the container too, found through `--pid-file`) if it runs past `timeout`.
pub fn probe(name: &str, argv: &[String], timeout: Duration) -> Probe {
    let pid_file = format!("/run/lkc-health-{name}.pid");
    let _ = fs::remove_file(&pid_file);
    let spawned = Command::new(RUNTIME)
        .args(["exec", "--pid-file", &pid_file, name])
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return Probe::Failed(spawn_err(e)),
    };
    let deadline = Instant::now() + timeout;
    let result = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Probe::Exit(code(st)),
            Ok(None) if Instant::now() >= deadline => {
                let pid = fs::read_to_string(&pid_file).ok();
                if let Some(pid) = pid.and_then(|p| p.trim().parse::<libc::pid_t>().ok()) {
                    // SAFETY: kill(2) has no memory-safety preconditions.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                let _ = child.kill();
                let _ = child.wait();
                break Probe::Timeout(timeout);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => break Probe::Failed(format!("waiting for {RUNTIME} exec: {e}")),
        }
    };
    let _ = fs::remove_file(&pid_file);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_lines_skip_blank_ones() {
        let log = "starting\n\nconnecting to db:5432\r\nerror: connection refused\n\n";
        assert_eq!(tail(log, 2), ["connecting to db:5432", "error: connection refused"]);
        assert_eq!(tail(log, 10).len(), 3);
        assert!(tail("", 10).is_empty());
    }

    #[test]
    fn running_is_read_from_crun_state() {
        assert!(says_running(
            r#"{"ociVersion": "1.0.0", "id": "docker", "pid": 123, "status": "running"}"#
        ));
        assert!(!says_running(r#"{"id": "docker", "status": "stopped"}"#));
        assert!(!says_running("not json"));
    }

    #[test]
    fn only_exit_zero_passes() {
        assert!(Probe::Exit(0).passed());
        assert!(!Probe::Exit(1).passed());
        assert!(!Probe::Timeout(Duration::from_secs(1)).passed());
        assert!(!Probe::Failed("x".into()).passed());
        assert_eq!(Probe::Exit(3).describe(), "status 3");
        assert_eq!(Probe::Timeout(Duration::from_secs(2)).describe(), "timeout after 2s");
    }
}
