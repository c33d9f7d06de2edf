//! What the user sees while the xtask works: one line per step with its elapsed
//! time, `up to date (cached)` when nothing ran, and, when a step fails, the
//! tail of its log. Everything the step's programs print goes to that log
//! (`dist/logs/<step>.log`), or to the terminal with `-v`.
//!
//! Output never kills a build: writing to a closed pipe (`cargo xtask static |
//! head -1`) is ignored instead of panicking as `println!` would.

use std::{
    collections::BTreeSet,
    fmt::Display,
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{self, RecvTimeoutError},
        Mutex, OnceLock,
    },
    thread,
    time::{Duration, Instant},
};

static VERBOSE: AtomicBool = AtomicBool::new(false);
static LOG_DIR: OnceLock<PathBuf> = OnceLock::new();
/// The steps in progress, innermost last, and whether the innermost one's
/// progress line is still open on the terminal (no newline yet).
static STEPS: Mutex<Vec<Open>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

struct Open {
    id: u64,
    log: PathBuf,
    line_open: bool,
}

/// Set once in `main`: where step logs go, and whether `-v` was given.
pub fn init(log_dir: PathBuf, verbose: bool) {
    let _ = LOG_DIR.set(log_dir);
    VERBOSE.store(verbose, Ordering::Relaxed);
}

pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// `println!` that survives a closed pipe: results (URLs, tables, verdicts).
macro_rules! say {
    ($($arg:tt)*) => { $crate::base::ui::out(format_args!($($arg)*)) };
}
pub(crate) use say;

/// `eprintln!` that survives a closed pipe.
macro_rules! tell {
    ($($arg:tt)*) => { $crate::base::ui::err(format_args!($($arg)*)) };
}
pub(crate) use tell;

/// A line on stdout (results: URLs, tables, verdicts).
pub fn out(line: impl Display) {
    close_open_line();
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// A line on stderr (progress, notes).
pub fn err(line: impl Display) {
    close_open_line();
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A detail under the current step.
pub fn note(what: impl Display) {
    err(format_args!("    {what}"));
}

/// A step skipped because its output is up to date; said once per command
/// (app images share their base image, every VM image asks for the linuxkit
/// CLI, and the boot tests and the bench build the same VMs again).
pub fn cached(what: impl Display) {
    cached_with(what, None);
}

/// [`cached`], with a detail line under it, said with it (once).
pub fn cached_with(what: impl Display, detail: Option<String>) {
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let line = format!("==> {what}: up to date (cached)");
    if SAID.lock().unwrap_or_else(|e| e.into_inner()).insert(line.clone()) {
        err(line);
        if let Some(detail) = detail {
            note(detail);
        }
    }
}

/// A detail only `-v` shows.
pub fn detail(what: impl Display) {
    if verbose() {
        note(what);
    }
}

fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal() && !verbose()
}

/// Finish a progress line left open on the terminal, so the next output starts on its own line.
fn close_open_line() {
    let mut steps = STEPS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(top) = steps.last_mut().filter(|s| s.line_open) {
        top.line_open = false;
        let _ = writeln!(std::io::stderr());
    }
}

/// The log the programs of the innermost step write to (the command-wide
/// `xtask.log` outside any step). Its folder is created on first use, so a
/// command that fails before running anything writes nothing.
pub fn current_log() -> PathBuf {
    let steps = STEPS.lock().unwrap_or_else(|e| e.into_inner());
    match steps.last() {
        Some(step) => step.log.clone(),
        None => log_path("xtask"),
    }
}

fn log_path(name: &str) -> PathBuf {
    let dir = LOG_DIR.get().cloned().unwrap_or_else(unset_log_dir);
    dir.join(format!("{}.log", slug(name)))
}

/// Where step logs go before `main` sets their folder.
#[cfg(not(test))]
fn unset_log_dir() -> PathBuf {
    std::env::temp_dir().join(format!("lkc-logs-{}", std::process::id()))
}

/// Unit tests never run `main`: their steps log under target/ (which
/// `cargo clean` clears), not in a new /tmp folder per run.
#[cfg(test)]
fn unset_log_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-logs")
}

/// `image linuxkit-compose.local/nginx:ab12` -> `image-linuxkit-compose-local-nginx-ab12`.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 64 {
            break;
        }
    }
    out.trim_end_matches('-').to_string()
}

/// How often a running step says it is still running when stderr is not a terminal.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// A step in progress. On a terminal it is one line that counts the seconds
/// and ends as `==> what: done in 12.3s`; in a log (CI) a start line, a
/// heartbeat every 30 s, and the same end line. Dropped without [`Step::done`]
/// (an error on the way), it says nothing more: the error says the rest.
pub struct Step {
    id: u64,
    what: String,
    start: Instant,
    stop: Option<mpsc::Sender<()>>,
}

pub fn step(what: impl Into<String>) -> Step {
    let what = what.into();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let tty = stderr_is_tty();
    close_open_line();
    {
        let mut steps = STEPS.lock().unwrap_or_else(|e| e.into_inner());
        steps.push(Open {
            id,
            log: log_path(&what),
            line_open: tty,
        });
    }
    if tty {
        let _ = write!(std::io::stderr(), "==> {what} …");
    } else {
        let _ = writeln!(std::io::stderr(), "==> {what} …");
    }
    let (stop, stopped) = mpsc::channel::<()>();
    let start = Instant::now();
    let label = what.clone();
    let tick = if tty { Duration::from_secs(1) } else { HEARTBEAT };
    thread::spawn(move || loop {
        match stopped.recv_timeout(tick) {
            Err(RecvTimeoutError::Timeout) => heartbeat(id, &label, start, tty),
            _ => return,
        }
    });
    Step {
        id,
        what,
        start,
        stop: Some(stop),
    }
}

fn heartbeat(id: u64, what: &str, start: Instant, tty: bool) {
    let steps = STEPS.lock().unwrap_or_else(|e| e.into_inner());
    let elapsed = secs_whole(start.elapsed());
    if tty {
        // Only the innermost step, and only while its line is still open, redraws.
        if steps.last().is_some_and(|s| s.id == id && s.line_open) {
            let _ = write!(std::io::stderr(), "\r\x1b[K==> {what} … {elapsed}");
        }
    } else {
        let _ = writeln!(std::io::stderr(), "    … {what}: {elapsed} so far");
    }
}

impl Step {
    /// The step finished: say so with its duration.
    pub fn done(mut self) -> Duration {
        self.finish();
        let took = self.start.elapsed();
        self.end_line(format_args!("done in {}", secs(took)));
        took
    }

    /// The step finished with a verdict of its own (`built`, `3 images`, …).
    pub fn done_with(mut self, verdict: impl Display) -> Duration {
        self.finish();
        let took = self.start.elapsed();
        self.end_line(format_args!("{verdict} in {}", secs(took)));
        took
    }

    fn finish(&mut self) {
        self.stop.take();
    }

    fn end_line(&self, verdict: std::fmt::Arguments) {
        let mut steps = STEPS.lock().unwrap_or_else(|e| e.into_inner());
        let line_open = steps.last().is_some_and(|s| s.id == self.id && s.line_open);
        steps.retain(|s| s.id != self.id);
        drop(steps);
        let mut e = std::io::stderr();
        if line_open {
            let _ = writeln!(e, "\r\x1b[K==> {}: {verdict}", self.what);
        } else {
            let _ = writeln!(e, "==> {}: {verdict}", self.what);
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        // Closing the channel ends the heartbeat thread.
        self.stop.take();
        let mut steps = STEPS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = steps.iter().position(|s| s.id == self.id) {
            if steps[pos].line_open {
                let _ = writeln!(std::io::stderr());
            }
            steps.remove(pos);
        }
    }
}

pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn secs_whole(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// The last `n` lines of a log file, for failure reports.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(
            slug("image linuxkit-compose.local/nginx:cb22eeecefda"),
            "image-linuxkit-compose-local-nginx-cb22eeecefda"
        );
        assert_eq!(slug("  apt-get install (qemu) "), "apt-get-install-qemu");
        assert!(slug(&"x".repeat(200)).len() <= 64);
    }
}
