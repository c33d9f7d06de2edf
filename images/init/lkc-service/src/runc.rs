//! Invoking `runc` (looked up on PATH): run a bundle to completion, start
//! it detached, or signal it.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

/// An exit status as a shell would report it (128+N when killed by signal N).
pub fn code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or(status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
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
/// caller's stdout/stderr (the console) passed through to the container.
pub fn run_detached(bundle: &Path, name: &str) -> Result<ExitStatus, String> {
    Command::new("runc")
        .args(["run", "--detach", "--bundle"])
        .arg(bundle)
        .arg(name)
        .stdin(Stdio::null())
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
