//! Invoking `runc` (looked up on PATH): run a bundle to completion, start
//! it detached, or signal it.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

/// An exit status as a shell would report it (128+N when killed by signal N).
pub fn code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or(status.signal().map(|s| 128 + s)).unwrap_or(-1)
}

fn spawn_err(e: std::io::Error) -> String {
    format!("cannot run runc: {e}")
}

/// `runc run --bundle DIR NAME`, waiting for the container to exit.
pub fn run(bundle: &Path, name: &str) -> Result<ExitStatus, String> {
    Command::new("runc")
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(name)
        .status()
        .map_err(spawn_err)
}

/// `runc run --detach --bundle DIR NAME` with stdin from /dev/null and the
/// container's stdout/stderr going through a pipe to `tee -a /var/log/NAME.log`,
/// which copies it to the caller's stdout (the console). A pipe rather than the
/// console itself: programs that reopen /dev/stdout (nginx's access_log) may not
/// open the console device from inside a container. tee outlives this program
/// and ends when the container's last writer closes the pipe.
pub fn run_detached(bundle: &Path, name: &str) -> Result<ExitStatus, String> {
    let log = format!("/var/log/{name}.log");
    let mut tee = Command::new("tee")
        .args(["-a", &log])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start tee for {log}: {e}"))?;
    let out: OwnedFd = tee.stdin.take().expect("piped stdin").into();
    let err = out.try_clone().map_err(|e| format!("dup of the log pipe: {e}"))?;
    Command::new("runc")
        .args(["run", "--detach", "--bundle"])
        .arg(bundle)
        .arg(name)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .status()
        .map_err(spawn_err)
}

/// `runc kill NAME TERM`; on failure returns runc's own message.
pub fn kill_term(name: &str) -> Result<(), String> {
    let out = Command::new("runc")
        .args(["kill", name, "TERM"])
        .stdin(Stdio::null())
        .output()
        .map_err(spawn_err)?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "runc kill exited with status {}: {}",
        code(out.status),
        msg.trim()
    ))
}
