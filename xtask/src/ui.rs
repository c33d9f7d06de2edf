//! What the user sees while the build runs: one line per step, a heartbeat with the
//! elapsed time while a long step is still going, and the step's total at the end.

use std::{
    sync::mpsc::{self, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

/// How often a running step says it is still running.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// A step in progress. Prints its start now, a heartbeat while alive, and its
/// duration when finished with [`Step::done`]; dropped without `done` (an error
/// on the way) it says nothing more, the error says the rest.
pub struct Step {
    what: String,
    start: Instant,
    stop: Option<mpsc::Sender<()>>,
}

pub fn step(what: impl Into<String>) -> Step {
    let what = what.into();
    eprintln!("==> {what}");
    let (stop, stopped) = mpsc::channel::<()>();
    let start = Instant::now();
    let label = what.clone();
    thread::spawn(move || loop {
        match stopped.recv_timeout(HEARTBEAT) {
            Err(RecvTimeoutError::Timeout) => {
                eprintln!("    … {label}: {} so far", secs(start.elapsed()))
            }
            _ => return,
        }
    });
    Step {
        what,
        start,
        stop: Some(stop),
    }
}

impl Step {
    pub fn done(mut self) -> Duration {
        self.stop.take();
        let took = self.start.elapsed();
        eprintln!("    {}: done in {}", self.what, secs(took));
        took
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        // Closing the channel ends the heartbeat thread.
        self.stop.take();
    }
}

/// A step skipped because its output is up to date.
pub fn cached(what: impl std::fmt::Display) {
    eprintln!("==> {what}: up to date (cached)");
}

pub fn note(what: impl std::fmt::Display) {
    eprintln!("    {what}");
}

pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
