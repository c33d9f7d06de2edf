//! Restart policies and the delay between restarts, decided the way Docker's
//! restart manager does, so a compose service restarts here as it would
//! under `docker compose up`.

use std::time::Duration;

/// A compose `restart:` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// `no`: stay down once exited (compose's default).
    #[default]
    No,
    /// `always`: restart whatever the status.
    Always,
    /// `unless-stopped`: like `always` here; the difference in Docker is
    /// about daemon restarts, which a VM boot does not have.
    UnlessStopped,
    /// `on-failure[:N]`: restart on a non-zero status, at most N times if
    /// given (`on-failure:0` is unlimited, as in Docker).
    OnFailure { max: Option<u32> },
}

impl Restart {
    /// Parse a policy as compose writes it.
    pub fn parse(text: &str) -> Result<Restart, String> {
        match text {
            "no" | "" => Ok(Restart::No),
            "always" => Ok(Restart::Always),
            "unless-stopped" => Ok(Restart::UnlessStopped),
            "on-failure" => Ok(Restart::OnFailure { max: None }),
            _ => {
                let n = text
                    .strip_prefix("on-failure:")
                    .ok_or_else(|| format!("unknown restart policy {text:?}"))?;
                let n: u32 = n
                    .parse()
                    .map_err(|_| format!("bad retry count in restart policy {text:?}"))?;
                Ok(Restart::OnFailure {
                    max: (n > 0).then_some(n),
                })
            }
        }
    }

    /// Whether a container that exited with `status`, after having been
    /// restarted `restarts` times already, should be started again.
    pub fn should_restart(self, status: i32, restarts: u32) -> bool {
        match self {
            Restart::No => false,
            Restart::Always | Restart::UnlessStopped => true,
            Restart::OnFailure { max } => status != 0 && max.is_none_or(|m| restarts < m),
        }
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
    fn parses_compose_policies() {
        assert_eq!(Restart::parse("no"), Ok(Restart::No));
        assert_eq!(Restart::parse("always"), Ok(Restart::Always));
        assert_eq!(Restart::parse("unless-stopped"), Ok(Restart::UnlessStopped));
        assert_eq!(Restart::parse("on-failure"), Ok(Restart::OnFailure { max: None }));
        assert_eq!(Restart::parse("on-failure:3"), Ok(Restart::OnFailure { max: Some(3) }));
        assert_eq!(Restart::parse("on-failure:0"), Ok(Restart::OnFailure { max: None }));
    }

    #[test]
    fn bad_policies_are_errors() {
        assert!(Restart::parse("sometimes").unwrap_err().contains("\"sometimes\""));
        assert!(Restart::parse("on-failure:x").unwrap_err().contains("retry count"));
        assert!(Restart::parse("on-failure:-1").is_err());
    }

    #[test]
    fn no_never_restarts() {
        assert!(!Restart::No.should_restart(1, 0));
        assert!(!Restart::No.should_restart(0, 0));
    }

    #[test]
    fn always_and_unless_stopped_restart_on_any_status() {
        for p in [Restart::Always, Restart::UnlessStopped] {
            assert!(p.should_restart(0, 0));
            assert!(p.should_restart(137, 1000));
        }
    }

    #[test]
    fn on_failure_restarts_only_non_zero_up_to_max() {
        let unlimited = Restart::OnFailure { max: None };
        assert!(!unlimited.should_restart(0, 0));
        assert!(unlimited.should_restart(1, 1000));
        let two = Restart::OnFailure { max: Some(2) };
        assert!(two.should_restart(1, 0));
        assert!(two.should_restart(1, 1));
        assert!(!two.should_restart(1, 2));
        assert!(!two.should_restart(0, 0));
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
