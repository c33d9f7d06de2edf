//! Every program the xtask runs goes through here. Each child dies with the
//! xtask however the xtask dies (PR_SET_PDEATHSIG, so not even a SIGKILL leaves
//! one behind), writes its output to the current step's log (or the terminal
//! with `-v`), and when it fails the user sees the log's tail and its path.
//!
//! What a child starts in turn (the plain VM's script starts QEMU; buildah and
//! mmdebstrap start their own helpers) is not covered by the child's death
//! signal, so each step's program leads a process group of its own, and its
//! whole group is killed when it ends and when the xtask is told to stop
//! (SIGINT, SIGTERM, SIGHUP: Ctrl-C, `timeout`, `kill`; see
//! [`handle_stop_signals`]). Only a SIGKILL of the xtask itself can still
//! leave a grandchild behind.

use std::{
    fs,
    io::{self, Write},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        atomic::{AtomicI32, Ordering},
        Mutex,
    },
    thread,
};

use anyhow::{Context, Result};
use xshell::Cmd;

use crate::base::ui;

/// Lines of a failed program's log shown on the terminal.
const TAIL: usize = 25;

/// The signals that ask the xtask to stop.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The process groups of the steps' programs running now (each leads its own).
static GROUPS: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// The stop signal being handled (0 while there is none).
static STOPPING: AtomicI32 = AtomicI32::new(0);

fn stop_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the set they are given.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in STOP_SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Put /usr/sbin and /sbin at the end of PATH when they are not on it (an
/// ordinary user's PATH on Debian), as sudo's `secure_path` has them: depmod,
/// sfdisk and mkfs.fat live there, and run as any user. Called first thing in
/// `main`, before any other thread exists.
pub fn sbin_on_path() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let before = dirs.len();
    for sbin in ["/usr/sbin", "/sbin"] {
        if !dirs.iter().any(|d| d == Path::new(sbin)) {
            dirs.push(sbin.into());
        }
    }
    if dirs.len() != before {
        if let Ok(joined) = std::env::join_paths(dirs) {
            // SAFETY: no other thread exists yet to read the environment.
            unsafe { std::env::set_var("PATH", joined) };
        }
    }
}

/// Take the stop signals on a thread of their own, which kills every running
/// step's process group and exits 128+signal (the children started with
/// [`spawn`], QEMU and the registry, then die by their death signal). Called
/// first thing in `main`, before any other thread exists, as the signals are
/// blocked in every thread started after it; children get them unblocked.
pub fn handle_stop_signals() {
    let set = stop_set();
    // SAFETY: blocks signals in the calling thread; `set` is a valid set.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    thread::spawn(move || loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is a valid set and `sig` a valid place for the answer.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        STOPPING.store(sig, Ordering::SeqCst);
        let hook = ON_STOP.lock().unwrap_or_else(|e| e.into_inner()).take();
        if hook.is_some_and(|stop_cleanly| stop_cleanly()) {
            kill_running_groups();
            std::process::exit(0);
        }
        kill_running_groups();
        ui::err(format!(
            "stopped by signal {sig}; every program it started has been killed"
        ));
        std::process::exit(128 + sig);
    });
}

/// What a stop signal does before the xtask kills its programs: stop a VM
/// cleanly (see [`on_stop`]). Returns whether it did; then the xtask exits 0.
type StopHook = Box<dyn FnOnce() -> bool + Send>;

static ON_STOP: Mutex<Option<StopHook>> = Mutex::new(None);

/// Run `hook` first when a stop signal comes, until [`clear_on_stop`]: a VM
/// on the terminal powers down through ACPI before anything is killed.
pub fn on_stop(hook: impl FnOnce() -> bool + Send + 'static) {
    *ON_STOP.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
}

pub fn clear_on_stop() {
    ON_STOP.lock().unwrap_or_else(|e| e.into_inner()).take();
}

/// While the xtask is being stopped, its programs die of it: that is no
/// failure to report, and the command must not end on its own (with 1, or 0)
/// before the signal thread ends it with 128+signal. So the calling thread
/// waits here for that exit.
pub fn wait_if_stopping() {
    while STOPPING.load(Ordering::SeqCst) != 0 {
        thread::park();
    }
}

/// SIGKILL every running step's process group.
fn kill_running_groups() {
    for pgid in GROUPS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        // SAFETY: kill(2) with a negative pid signals that process group only.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

/// Have the kernel SIGKILL the child when the xtask dies, however it dies.
pub fn dies_with_parent(cmd: &mut Command) -> &mut Command {
    let parent = std::process::id() as libc::pid_t;
    let stop = stop_set();
    // SAFETY: the closure runs between fork and exec and only calls prctl(2),
    // getppid(2), sigprocmask(2) and _exit(2), which are async-signal-safe and
    // touch no memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The xtask may have died between fork and prctl: then nobody is
            // left to send the signal, so go now.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            // The xtask blocks them for its signal thread; a program must not
            // start with them blocked.
            libc::sigprocmask(libc::SIG_UNBLOCK, &stop, std::ptr::null_mut());
            Ok(())
        })
    }
}

/// Run a step's program to its end as the leader of its own process group;
/// whatever is left of the group then is killed, so nothing the program
/// started outlives the step.
pub fn run_grouped(command: &mut Command) -> io::Result<Output> {
    // SAFETY: setpgid(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = dies_with_parent(command).spawn()?;
    let pgid = child.id() as libc::pid_t;
    GROUPS.lock().unwrap_or_else(|e| e.into_inner()).push(pgid);
    let out = child.wait_with_output();
    end_group(pgid);
    out
}

/// Kill what is left of a finished step's group and stop tracking it.
fn end_group(pgid: libc::pid_t) {
    let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
    groups.retain(|g| *g != pgid);
    // SAFETY: kill(2) with a negative pid signals that process group only.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// Run `cmd` to completion, its output in the current step's log.
pub fn run(cmd: Cmd<'_>) -> Result<()> {
    let shown = cmd.to_string();
    let mut command = Command::from(cmd);
    command.stdin(Stdio::null());
    let log = attach_log(&mut command, &shown, true)?;
    let status = run_grouped(&mut command).map_err(|e| start_error(&shown, e))?.status;
    if !status.success() {
        return Err(failed(&shown, &status.to_string(), log.as_deref()));
    }
    Ok(())
}

/// Run `cmd` and return its standard output (trimmed); its standard error goes
/// to the current step's log.
pub fn read(cmd: Cmd<'_>) -> Result<String> {
    let shown = cmd.to_string();
    let mut command = Command::from(cmd);
    command.stdin(Stdio::null()).stdout(Stdio::piped());
    let log = attach_log(&mut command, &shown, false)?;
    let out = run_grouped(&mut command).map_err(|e| start_error(&shown, e))?;
    if !out.status.success() {
        return Err(failed(&shown, &out.status.to_string(), log.as_deref()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Run `cmd` quietly and return its standard output if it succeeds: for
/// questions (`buildah inspect`, `--version`) whose failure is an answer.
pub fn probe(cmd: Cmd<'_>) -> Option<String> {
    let mut command = Command::from(cmd);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let out = run_grouped(&mut command).ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `cmd` without the variables the outer `cargo xtask` set for itself
/// (CARGO_*, RUSTFLAGS, …): a nested cargo must build as if run by hand.
pub fn clean_cargo_env(cmd: Cmd<'_>) -> Cmd<'_> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            (k.starts_with("CARGO_") && k != "CARGO_HOME")
                || k.starts_with("RUSTFLAGS")
                || k == "CARGO_ENCODED_RUSTFLAGS"
                || k == "RUSTC"
                || k == "RUSTDOC"
                || k == "RUSTC_WRAPPER"
                || k == "CARGO"
        })
        .fold(cmd, |cmd, k| cmd.env_remove(k))
}

/// Run `cmd` quietly and return everything it printed (stdout, then stderr),
/// whatever its exit status; `None` only if it could not be started.
pub fn output(cmd: Cmd<'_>) -> Option<String> {
    let mut command = Command::from(cmd);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_grouped(&mut command).ok()?;
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Start a long-lived child (QEMU, a registry) that dies with the xtask.
pub fn spawn(command: &mut Command) -> Result<Child> {
    let shown = format!("{command:?}");
    ui::detail(format!("$ {shown}"));
    dies_with_parent(command).spawn().map_err(|e| start_error(&shown, e))
}

/// Send the child's stderr (and stdout if `stdout`) to the current step's log,
/// after a line saying what runs; with `-v`, leave them on the terminal.
fn attach_log(command: &mut Command, shown: &str, stdout: bool) -> Result<Option<PathBuf>> {
    if ui::verbose() {
        ui::err(format!("$ {shown}"));
        return Ok(None);
    }
    let (log, mut file) = step_log()?;
    writeln!(file, "$ {shown}")?;
    if stdout {
        command.stdout(file.try_clone()?);
    }
    command.stderr(file);
    Ok(Some(log))
}

/// The current step's log ([`ui::current_log`]), opened for appending: where
/// the output of every program the step runs goes.
pub fn step_log() -> Result<(PathBuf, fs::File)> {
    let log = ui::current_log();
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    Ok((log, file))
}

fn start_error(shown: &str, e: io::Error) -> anyhow::Error {
    let program = shown.split_whitespace().next().unwrap_or(shown);
    if e.kind() == io::ErrorKind::NotFound {
        anyhow::anyhow!("`{program}` is not on PATH (`cargo xtask doctor` says what is missing and how to install it)")
    } else {
        anyhow::anyhow!("starting `{program}`: {e}")
    }
}

/// The error for a program that failed, after showing the tail of its log.
fn failed(shown: &str, status: &str, log: Option<&Path>) -> anyhow::Error {
    wait_if_stopping();
    let short: String = shown.chars().take(200).collect();
    match log {
        Some(log) => {
            ui::err(format!("--- last lines of {} ---", log.display()));
            ui::err(ui::tail(log, TAIL));
            ui::err("---");
            anyhow::anyhow!("`{short}` failed ({status}); its output is in {}", log.display())
        }
        None => anyhow::anyhow!("`{short}` failed ({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::TestDir;
    use std::time::{Duration, Instant};

    /// Set in the copy of this test binary that plays the xtask in
    /// `children_die_with_the_xtask`.
    const HOST_ENV: &str = "LKC_TEST_CHILD_HOST";

    /// Not a test of its own: when run by `children_die_with_the_xtask`, start
    /// a child that is quiet on its output (it would survive a closed pipe)
    /// through [`run`], as every build step does, and wait for it.
    #[test]
    fn child_host() {
        let Ok(pid_file) = std::env::var(HOST_ENV) else { return };
        let sh = xshell::Shell::new().unwrap();
        let script = format!("echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file} && exec sleep 300");
        let _ = run(xshell::cmd!(sh, "sh -c {script}"));
    }

    fn alive(pid: i32) -> bool {
        // A killed child of a dead parent is reaped by init; until then it is a zombie.
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.split_whitespace().nth(2).is_none_or(|state| state != "Z"))
            .unwrap_or(false)
    }

    #[test]
    fn children_die_with_the_xtask() {
        let dir = TestDir::new("exec");
        let pid_file = dir.join("child.pid");
        let mut host = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "base::exec::tests::child_host",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HOST_ENV, &pid_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let child = loop {
            if let Some(pid) = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "the child never started");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(alive(child));
        host.kill().unwrap(); // SIGKILL: no destructor, no signal handler runs
        host.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(child) {
            assert!(
                Instant::now() < deadline,
                "child {child} outlived the SIGKILLed process that started it"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What a step's program leaves running when it ends (here a `sleep` it
    /// put in the background) is killed with it.
    #[test]
    fn a_step_leaves_nothing_running() {
        let dir = TestDir::new("leftover");
        let pid_file = dir.join("sleep.pid");
        let sh = xshell::Shell::new().unwrap();
        let script = format!("sleep 300 & echo $! > {}", pid_file.display());
        run(xshell::cmd!(sh, "sh -c {script}")).unwrap();
        let pid: i32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) {
            assert!(Instant::now() < deadline, "{pid} outlived the step that started it");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_failure_names_the_program_and_its_log() {
        let sh = xshell::Shell::new().unwrap();
        let err = run(xshell::cmd!(sh, "sh -c 'echo the reason >&2; exit 3'")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("exit status: 3"), "{msg}");
        let log = msg.rsplit("its output is in ").next().unwrap();
        assert!(fs::read_to_string(log).unwrap().contains("the reason"), "{msg}");
    }

    #[test]
    fn a_missing_program_is_named_without_a_raw_errno() {
        let sh = xshell::Shell::new().unwrap();
        let err = run(xshell::cmd!(sh, "lkc-no-such-program --flag")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("`lkc-no-such-program` is not on PATH"), "{msg}");
        assert!(!msg.contains("os error"), "{msg}");
    }
}
