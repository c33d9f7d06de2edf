//! Restart policies and the delay between restarts, decided the way Docker's
//! restart manager does, so a compose service restarts here as it would
//! under `docker compose up`.

use std::time::Duration;

/// A compose `restart:` policy, as the annotation carries it.
pub use lkc_contract::Restart;

/// Whether a container under `policy` that exited with `status`, after
/// having been restarted `restarts` times already, should be started again.
pub fn should_restart(policy: Restart, status: i32, restarts: u32) -> bool {
    match policy {
        Restart::No => false,
        Restart::Always | Restart::UnlessStopped => true,
        Restart::OnFailure { max } => status != 0 && max.is_none_or(|m| restarts < m),
    }
}

/// Docker's restart delay: 100 ms, doubled on each restart up to a minute,
/// and back to 100 ms once a run lasted 10 s (the service was up, so a new
/// failure is not part of the same crash loop).
#[derive(Debug, Default)]
pub struct Backoff {
    last: Option<Duration>,
}

pub const FIRST_DELAY: Duration = Duration::from_millis(100);
pub const MAX_DELAY: Duration = Duration::from_secs(60);
pub const RESET_AFTER: Duration = Duration::from_secs(10);

impl Backoff {
    /// The delay before the next restart of a container that ran for `ran`.
    pub fn next(&mut self, ran: Duration) -> Duration {
        let delay = match self.last {
            Some(d) if ran < RESET_AFTER => (d * 2).min(MAX_DELAY),
            _ => FIRST_DELAY,
        };
        self.last = Some(delay);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_never_restarts() {
        assert!(!should_restart(Restart::No, 1, 0));
        assert!(!should_restart(Restart::No, 0, 0));
    }

    #[test]
    fn always_and_unless_stopped_restart_on_any_status() {
        for p in [Restart::Always, Restart::UnlessStopped] {
            assert!(should_restart(p, 0, 0));
            assert!(should_restart(p, 137, 1000));
        }
    }

    #[test]
    fn on_failure_restarts_only_non_zero_up_to_max() {
        let unlimited = Restart::OnFailure { max: None };
        assert!(!should_restart(unlimited, 0, 0));
        assert!(should_restart(unlimited, 1, 1000));
        let two = Restart::OnFailure { max: Some(2) };
        assert!(should_restart(two, 1, 0));
        assert!(should_restart(two, 1, 1));
        assert!(!should_restart(two, 1, 2));
        assert!(!should_restart(two, 0, 0));
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let mut b = Backoff::default();
        let quick = Duration::from_secs(1);
        let got: Vec<u64> = (0..5).map(|_| b.next(quick).as_millis() as u64).collect();
        assert_eq!(got, [100, 200, 400, 800, 1600]);
        for _ in 0..20 {
            b.next(quick);
        }
        assert_eq!(b.next(quick), MAX_DELAY);
    }

    #[test]
    fn backoff_resets_after_a_long_run() {
        let mut b = Backoff::default();
        b.next(Duration::ZERO);
        b.next(Duration::ZERO);
        assert_eq!(b.next(Duration::ZERO), Duration::from_millis(400));
        assert_eq!(b.next(RESET_AFTER), FIRST_DELAY);
        assert_eq!(b.next(Duration::ZERO), Duration::from_millis(200));
    }
}
