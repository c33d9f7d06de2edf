//! The command line through the real binary: bad flags and flag combinations
//! are refused before any work starts, and output to a closed pipe does not
//! kill the xtask.

use std::{
    os::fd::{FromRawFd, OwnedFd},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

#[path = "../src/base/testdir.rs"]
mod testdir;

use testdir::TestDir;

/// Run the xtask with `args` on an empty cache: it must fail at once with one
/// error line containing `want`, having created no cache (so built nothing).
fn refused(args: &[&str], want: &str) {
    let dir = TestDir::new(&format!("cli-{}", args.join("_").replace(['/', ' ', ':'], "-")));
    let cache = dir.join("cache");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .arg("--no-install")
        .env("LINUXKIT_COMPOSE_CACHE", &cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} must fail:\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{args:?} took {:?}",
        started.elapsed()
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: one error line, got:\n{stderr}");
    assert!(errors[0].contains(want), "{args:?}: want {want:?} in:\n{stderr}");
    assert!(!cache.exists(), "{args:?} started work before refusing");
}

#[test]
fn flag_combinations_are_refused_before_building() {
    refused(
        &["test-boot", "--method", "static", "--unreachable-registry"],
        "use it with --method dynamic",
    );
    refused(
        &["test-boot", "--method", "static", "--registry", "r.example.com"],
        "--registry is for the dynamic",
    );
    refused(&["test-boot"], "say what to boot");
    refused(
        &["static", "--registry-mirror", "127.0.0.1:5000"],
        "only mean something with --images registry",
    );
}

#[test]
fn out_of_range_values_are_refused_before_building() {
    refused(&["run-static", "--port", "0"], "--port");
    refused(&["run-smoke", "--port", "0"], "--port");
    refused(&["run-static", "--memory", "0"], "--memory");
    refused(&["test-boot", "--smoke", "--cpus", "0"], "--cpus");
    refused(&["bench", "--runs", "0"], "--runs");
    refused(&["run-dynamic", "--registry", ":5000"], "is not a host name");
    refused(
        &[
            "static",
            "--images",
            "registry",
            "--registry-mirror",
            "mirror.example.com/ns",
        ],
        "without a path",
    );
    refused(
        &["dynamic", "--registry", "registry.example.com/Team"],
        "not a repository path component",
    );
}

/// A pipe whose reading end is already closed: every write to it fails with EPIPE.
fn closed_pipe() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two fresh descriptors, each owned once below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fds[0] and fds[1] are open and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    write
}

/// `cargo xtask doctor | head -1` must not end the xtask with a panic (exit
/// 101) when the reader goes away: output is not worth dying for.
#[test]
fn a_closed_pipe_does_not_kill_the_xtask() {
    let run = |stdout: Stdio, stderr: Stdio| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["doctor", "--no-install"])
            .stdout(stdout)
            .stderr(stderr)
            .status()
            .unwrap()
            .code()
    };
    let normal = run(Stdio::null(), Stdio::null());
    let piped = run(Stdio::from(closed_pipe()), Stdio::from(closed_pipe()));
    assert_ne!(piped, Some(101), "the xtask panicked on a closed pipe");
    assert_eq!(piped, normal, "a closed pipe changed the outcome");
}
