//! `service supervise`: runs the compose services (bundles annotated with
//! `org.linuxkit-compose.service`) the way `docker compose up` would: each
//! in the foreground on a thread of its own, started once its dependencies
//! meet their conditions, restarted by its policy, probed by its
//! healthcheck, and its exits reported on the console. The threads share a
//! `Board` of every service's state under one mutex; a condvar wakes
//! whoever waits on it. The decisions are in `deps`, `restart` and `health`;
//! this file only drives them.

use crate::annotations::{self, Spec};
use crate::bundles::{self, Bundle};
use crate::deps::{self, Gate, Status};
use crate::health::{Counter, Health, Healthcheck};
use crate::restart::{self, Backoff};
use crate::{certificate, log, oci, populate, prepare};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long containers get to exit after their stop signal before they are
/// killed, unless their annotations say otherwise (Docker's default).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A supervised service: its bundle and its parsed annotations.
struct Service {
    name: String,
    dir: PathBuf,
    spec: Spec,
}

#[derive(Default)]
struct Board {
    /// Set by SIGTERM: no more starts or restarts.
    stopping: bool,
    services: BTreeMap<String, Status>,
}

#[derive(Default)]
struct Shared {
    board: Mutex<Board>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Board> {
        // A panicking thread must not take every other service down with it.
        self.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Change `name`'s status and wake every waiter.
    fn update(&self, name: &str, f: impl FnOnce(&mut Status)) {
        if let Some(st) = self.lock().services.get_mut(name) {
            f(st);
        }
        self.changed.notify_all();
    }

    /// Wait on the condvar for at most `timeout`.
    fn wait<'a>(&self, b: MutexGuard<'a, Board>, timeout: Duration) -> MutexGuard<'a, Board> {
        let (b, _) = self.changed.wait_timeout(b, timeout).unwrap_or_else(|e| e.into_inner());
        b
    }

    /// Block until `deps` all hold (Ok), one never can (Err with dependency
    /// and reason) or the supervisor stops (Err(None)).
    /// An unhealthy dependency is said once each time one is waited for.
    fn wait_for_deps(&self, name: &str, spec: &Spec) -> Result<(), Option<(String, String)>> {
        let mut b = self.lock();
        let mut said: Option<String> = None;
        loop {
            if b.stopping {
                return Err(None);
            }
            match deps::gate(&spec.depends_on, &b.services) {
                Gate::Go => return Ok(()),
                Gate::Never { dep, reason } => return Err(Some((dep, reason))),
                Gate::Unhealthy(dep) => {
                    if said.as_ref() != Some(&dep) {
                        log(&format!(
                            "{name} waits for {dep}, which is unhealthy but running: it starts once {dep}'s healthcheck passes (compose's up would stop here)"
                        ));
                        said = Some(dep);
                    }
                    b = self.wait(b, Duration::from_secs(60));
                }
                Gate::Wait => b = self.wait(b, Duration::from_secs(60)),
            }
        }
    }

    /// Mark `name` launched, unless stopping; returns its run number.
    fn launch(&self, name: &str) -> Option<u32> {
        let mut b = self.lock();
        if b.stopping {
            return None;
        }
        let st = b.services.get_mut(name)?;
        st.runs += 1;
        st.running = true;
        st.health = Health::Starting;
        let run = st.runs;
        drop(b);
        self.changed.notify_all();
        Some(run)
    }

    /// Sleep `delay`, cut short by stopping; true if stopping.
    fn sleep_unless_stopping(&self, delay: Duration) -> bool {
        let end = Instant::now() + delay;
        let mut b = self.lock();
        while !b.stopping && Instant::now() < end {
            b = self.wait(b, end - Instant::now());
        }
        b.stopping
    }

    /// Sleep `delay` while run `run` of `name` is going; false once it has
    /// ended (or the supervisor stops).
    fn sleep_while_running(&self, name: &str, run: u32, delay: Duration) -> bool {
        let end = Instant::now() + delay;
        let mut b = self.lock();
        loop {
            let current = b.services.get(name).is_some_and(|s| s.runs == run && s.running);
            if b.stopping || !current {
                return false;
            }
            if Instant::now() >= end {
                return true;
            }
            b = self.wait(b, end - Instant::now());
        }
    }

    /// The names of the containers that are running.
    fn running(&self) -> Vec<String> {
        let b = self.lock();
        let up = b.services.iter().filter(|(_, s)| s.running);
        up.map(|(n, _)| n.clone()).collect()
    }

    /// Wait up to `timeout` for every container to be down; returns those
    /// still running.
    fn wait_all_down(&self, timeout: Duration) -> Vec<String> {
        let end = Instant::now() + timeout;
        let mut b = self.lock();
        while b.services.values().any(|s| s.running) && Instant::now() < end {
            b = self.wait(b, end - Instant::now());
        }
        drop(b);
        self.running()
    }
}

/// Run the supervised services of `root`/containers/services until each is
/// down for good, or until SIGTERM (then stop them all and exit).
pub fn supervise(root: &Path, pid_file: &Path) -> Result<(), String> {
    // Before any thread exists, so that every thread inherits the mask and
    // SIGTERM reaches only the one waiting for it.
    let signals = block_signals();
    write_pid_file(pid_file);
    let shared = Arc::new(Shared::default());
    let services = load(root, &shared)?;
    // How each service is stopped: its signal, and its grace before KILL.
    let stops: BTreeMap<String, (String, Duration)> = services
        .iter()
        .map(|s| (s.name.clone(), (s.spec.stop_signal.clone(), s.spec.stop_grace)))
        .collect();
    let stopper = {
        let shared = Arc::clone(&shared);
        let pid_file = pid_file.to_path_buf();
        std::thread::spawn(move || {
            let sig = wait_signal(&signals);
            log(&format!("supervisor: signal {sig}, stopping the services"));
            shutdown(&shared, &stops, &pid_file);
        })
    };
    std::thread::scope(|s| {
        for svc in &services {
            let shared = &shared;
            s.spawn(move || run_service(shared, svc));
        }
    });
    if shared.lock().stopping {
        // The services ended because of the signal: let `shutdown` finish
        // (and exit the process).
        let _ = stopper.join();
    }
    log("supervisor: no service left to run");
    let _ = std::fs::remove_file(pid_file);
    Ok(())
}

/// Read every supervised bundle into the board; those with bad annotations
/// or an impossible dependency graph are logged and marked skipped, and
/// only the others are returned to run.
fn load(root: &Path, shared: &Shared) -> Result<Vec<Service>, String> {
    let mut b = shared.lock();
    let mut services = Vec::new();
    for Bundle { name, dir } in bundles::list(&root.join("containers/services"))? {
        let Ok(ann) = annotations::read(&dir) else { continue };
        if !annotations::supervised(&ann) {
            continue;
        }
        let parsed = Spec::parse(&name, &ann);
        let skipped = parsed.is_err();
        b.services.insert(
            name.clone(),
            Status {
                finished: skipped,
                ..Status::default()
            },
        );
        match parsed {
            Ok(spec) => services.push(Service { name, dir, spec }),
            Err(e) => log(&format!("{name} not started: {e}")),
        }
    }
    let mut graph: BTreeMap<String, Vec<String>> = b.services.keys().map(|n| (n.clone(), Vec::new())).collect();
    for s in &services {
        graph.insert(
            s.name.clone(),
            s.spec.depends_on.iter().map(|(d, _)| d.clone()).collect(),
        );
    }
    let bad = deps::unstartable(&graph);
    for (name, why) in &bad {
        log(&format!("{name} not started: {why}"));
        if let Some(st) = b.services.get_mut(name) {
            st.finished = true;
        }
    }
    services.retain(|s| !bad.contains_key(&s.name));
    let runnable: BTreeMap<String, bool> = services
        .iter()
        .map(|s| (s.name.clone(), s.spec.healthcheck.is_some()))
        .collect();
    // Skipped dependencies keep their condition: they fail it anyway, and
    // saying they lack a healthcheck would only be noise.
    let has_healthcheck = |d: &str| runnable.get(d).copied().unwrap_or(true);
    for s in &mut services {
        for dep in deps::downgrade_unchecked(&mut s.spec.depends_on, has_healthcheck) {
            log(&format!(
                "{}: dependency {dep} has no healthcheck; waiting for it to start instead of being healthy",
                s.name
            ));
        }
    }
    Ok(services)
}

/// One service's life: prepare, wait for dependencies, then run and rerun
/// its container as its restart policy says.
fn run_service(shared: &Arc<Shared>, svc: &Service) {
    let name = svc.name.as_str();
    let skip = || shared.update(name, |st| st.finished = true);
    if let Err(e) = prepare::prepare(&svc.dir)
        .and_then(|()| crate::annotations::read(&svc.dir))
        .and_then(|a| populate::populate(&svc.dir, name, &a))
    {
        log(&format!("{name} not started: {e}"));
        return skip();
    }
    if let Some(dir) = &svc.spec.default_certificate {
        if let Err(e) = certificate::owner(&svc.dir).and_then(|owner| certificate::make(dir, owner)) {
            log(&format!("{name} not started: {e}"));
            return skip();
        }
    }
    match shared.wait_for_deps(name, &svc.spec) {
        Ok(()) => {}
        Err(Some((dep, reason))) => {
            log(&format!("{name} not started: dependency {dep} {reason}"));
            return skip();
        }
        Err(None) => return skip(),
    }
    let mut backoff = Backoff::default();
    let mut restarts = 0;
    loop {
        let Some(run) = shared.launch(name) else { return skip() };
        let started = Instant::now();
        let status = match oci::spawn_logged(&svc.dir, name) {
            Ok(child) => {
                log(&format!("started {name}{}", crate::uptime()));
                if let Some(hc) = &svc.spec.healthcheck {
                    spawn_healthcheck(shared, name, hc, run, started);
                }
                child.wait().unwrap_or_else(|e| {
                    log(&format!("{name}: {e}"));
                    -1
                })
            }
            Err(e) => {
                log(&format!("starting {name}: {e}"));
                127
            }
        };
        let stopping = shared.lock().stopping;
        let again = !stopping && restart::should_restart(svc.spec.restart, status, restarts);
        shared.update(name, |st| {
            st.running = false;
            st.first_exit.get_or_insert(status);
            st.last_exit = Some(status);
            st.finished = !again;
        });
        if !again && !stopping && status != 0 {
            // Its reason, together, just before the line a boot test stops
            // at; the console had it interleaved with the other services'.
            for line in oci::last_lines(name, LAST_LINES) {
                log(&format!("{name}: {line}"));
            }
        }
        log(&exit_line(name, status, again));
        if !again {
            return;
        }
        if shared.sleep_unless_stopping(backoff.next(started.elapsed())) {
            return skip();
        }
        restarts += 1;
        log(&format!("restarting {name} (attempt {restarts})"));
        // A foreground `crun run` deletes its container on exit, so this
        // only clears one that crun could not (its error is expected).
        let _ = oci::delete_force(name);
    }
}

/// How many lines of its output a service that failed for good has said
/// again with its exit status.
const LAST_LINES: usize = 10;

/// What the runner says when `name` exits with `status`: whether it starts
/// again by its restart policy is part of the line, since only an exit that
/// is final ends the service (and a boot test).
fn exit_line(name: &str, status: i32, again: bool) -> String {
    let then = if again { lkc_contract::RESTARTS_IT } else { "" };
    format!("{name} exited with status {status}{then}{}", crate::uptime())
}

/// Probe run `run` of `name` while it lasts, logging health transitions and
/// putting them on the board for dependents.
fn spawn_healthcheck(shared: &Arc<Shared>, name: &str, hc: &Healthcheck, run: u32, started: Instant) {
    // A probe may still be in flight when its run ends, so the thread owns
    // what it uses rather than borrowing from the service thread.
    let shared = Arc::clone(shared);
    let (name, hc) = (name.to_string(), hc.clone());
    std::thread::spawn(move || {
        let mut count = Counter::new(hc.retries);
        loop {
            let delay = hc.delay(count.health(), started.elapsed());
            if !shared.sleep_while_running(&name, run, delay) {
                return;
            }
            let in_start_period = hc.in_start_period(started.elapsed());
            let probe = oci::probe(&name, &hc.test, hc.timeout);
            let Some(health) = count.record(probe.passed(), in_start_period) else {
                continue;
            };
            let mut b = shared.lock();
            let Some(st) = b.services.get_mut(&name).filter(|s| s.runs == run && s.running) else {
                return;
            };
            // Logged before dependents can see it, so the console reads in
            // cause-then-effect order.
            match health {
                Health::Healthy => log(&format!("{name} is healthy")),
                Health::Unhealthy => log(&format!("{name} is unhealthy (last: {})", probe.describe())),
                Health::Starting => {}
            }
            st.health = health;
            drop(b);
            shared.changed.notify_all();
        }
    });
}

/// Send every running container its stop signal (TERM unless its STOPSIGNAL
/// or `stop_signal` says otherwise), KILL those still up after their grace
/// period (10 s unless `stop_grace_period` says otherwise), then end the
/// supervisor.
fn shutdown(shared: &Shared, stops: &BTreeMap<String, (String, Duration)>, pid_file: &Path) -> ! {
    shared.lock().stopping = true;
    shared.changed.notify_all();
    let default = ("TERM".to_string(), STOP_GRACE);
    let mut grace = Duration::ZERO;
    for name in shared.running() {
        let (signal, wait) = stops.get(&name).unwrap_or(&default);
        grace = grace.max(*wait);
        if let Err(e) = oci::kill(&name, signal) {
            log(&format!("stop {name}: {e}"));
        }
    }
    let left = shared.wait_all_down(grace);
    for name in &left {
        log(&format!("{name} did not stop in {grace:?}, killing it"));
        if let Err(e) = oci::kill(name, "KILL") {
            log(&format!("kill {name}: {e}"));
        }
    }
    if !left.is_empty() {
        shared.wait_all_down(Duration::from_secs(2));
    }
    let _ = std::fs::remove_file(pid_file);
    log("supervisor: stopped");
    std::process::exit(0)
}

fn write_pid_file(pid_file: &Path) {
    if let Err(e) = std::fs::write(pid_file, format!("{}\n", std::process::id())) {
        log(&format!("supervisor: write {}: {e}", pid_file.display()));
    }
}

/// Block SIGTERM and SIGINT in this thread (and the threads it starts), for
/// `wait_signal` to take them. Child processes start with an empty mask
/// (std resets it), so the containers still get their signals.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Wait for one of the signals of `set`; returns its number.
fn wait_signal(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: both pointers are to live values for the duration of the call.
    while unsafe { libc::sigwait(set, &mut sig) } != 0 {}
    sig
}

/// For `service start`: launch `service supervise --root ROOT` detached (its
/// own session, stdin /dev/null, output to ours, the console) and record
/// its pid in `pid_file` before returning, so that a `service stop` right
/// after finds it.
pub fn launch(root: &Path, pid_file: &Path) -> Result<u32, String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("supervise").arg("--root").arg(root);
    cmd.stdin(std::process::Stdio::null());
    // SAFETY: setsid(2) is async-signal-safe, fit for between fork and exec.
    unsafe {
        cmd.pre_exec(|| match libc::setsid() {
            -1 => Err(std::io::Error::last_os_error()),
            _ => Ok(()),
        });
    }
    let child = cmd.spawn().map_err(|e| format!("cannot start the supervisor: {e}"))?;
    let pid = child.id();
    std::fs::write(pid_file, format!("{pid}\n"))
        .map_err(|e| format!("supervisor pid {pid}: write {}: {e}", pid_file.display()))?;
    Ok(pid)
}

/// For `service stop`: TERM the supervisor named by `pid_file`, if it is
/// still there, and wait for it to have stopped its containers.
pub fn stop(pid_file: &Path) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let pid = text.trim().parse::<libc::pid_t>().ok().filter(|&p| p > 0);
    match pid {
        Some(pid) if is_supervisor(pid) => {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let end = Instant::now() + STOP_GRACE + Duration::from_secs(5);
            while is_supervisor(pid) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(100));
            }
            if is_supervisor(pid) {
                log(&format!("supervisor {pid} did not stop"));
            }
        }
        _ => log(&format!("stale {}", pid_file.display())),
    }
    let _ = std::fs::remove_file(pid_file);
}

/// Whether `pid` is a live (not zombie) `service` process: a pid file left
/// by a supervisor that is gone must not get another process signalled.
fn is_supervisor(pid: libc::pid_t) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    live_service(&stat)
}

/// Judge a /proc/PID/stat line: `PID (comm) STATE …`.
fn live_service(stat: &str) -> bool {
    let Some((head, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let comm = head.split_once('(').map(|(_, c)| c);
    let state = rest.trim_start().chars().next();
    comm == Some("service") && !matches!(state, None | Some('Z' | 'X'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_live_service_process_is_the_supervisor() {
        assert!(live_service("412 (service) S 1 412 412 0 -1 4194560"));
        assert!(live_service("412 (service) R 1 412"));
        assert!(!live_service("412 (service) Z 1 412"));
        assert!(!live_service("412 (sh) S 1 412"));
        assert!(!live_service("412 (my (service)) S 1"));
        assert!(!live_service(""));
    }
}
