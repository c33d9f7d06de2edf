//! Stopping the real `cargo xtask` binary (as Ctrl-C, `timeout` or `kill` do)
//! stops everything it started, down to the programs its programs started.

use std::{
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

#[path = "../src/base/testdir.rs"]
mod testdir;

use testdir::TestDir;

fn alive(pid: i32) -> bool {
    // A killed orphan is reaped by init; until then it is a zombie.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|state| state != "Z"))
        .unwrap_or(false)
}

/// The plain VM's script starts QEMU in the background and waits for it; a
/// stand-in script that starts `sleep` the same way shows whether a stopped
/// bench leaves it running.
#[test]
fn a_stopped_xtask_leaves_no_grandchild_behind() {
    let dir = TestDir::new("stop");
    let pid_file = dir.join("grandchild.pid");
    let script = dir.join("plain-vm.sh");
    fs::write(
        &script,
        "sleep 300 &\necho $! > \"$LKC_PID_FILE.tmp\" && mv \"$LKC_PID_FILE.tmp\" \"$LKC_PID_FILE\"\nwait\n",
    )
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut xtask = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root)
        .args(["--no-install", "bench", "--runs", "1", "--vm", "smoke", "--baseline"])
        .arg(&script)
        .env("LKC_PID_FILE", &pid_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The bench builds the smoke VM first, under the build lock that every
    // `cargo xtask` on this machine shares: another one's build (a boot in
    // another clone) can hold it for minutes before the script starts.
    let deadline = Instant::now() + Duration::from_secs(900);
    let grandchild = loop {
        if let Some(pid) = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            break pid;
        }
        if let Some(status) = xtask.try_wait().unwrap() {
            panic!("the xtask ended ({status}) before the script started its child");
        }
        assert!(Instant::now() < deadline, "the script never started its child");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(alive(grandchild));
    // SAFETY: kill(2) on the xtask's own pid.
    unsafe { libc::kill(xtask.id() as libc::pid_t, libc::SIGTERM) };
    let status = xtask.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(grandchild) {
        assert!(
            Instant::now() < deadline,
            "{grandchild} (started by the xtask's child) outlived the stopped xtask"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
