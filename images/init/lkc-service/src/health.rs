//! Healthchecks: the annotation's settings, when to probe next and how probe
//! results add up to healthy/unhealthy. The rules are Docker's (moby's
//! daemon/health.go), so `depends_on: service_healthy` behaves as under
//! `docker compose up`; the probing itself (`crun exec`) is in `supervise`.

use std::time::Duration;

/// Docker's defaults, used when a field is absent or 0 (Docker reads 0 as
/// "unset" too).
const INTERVAL: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(30);
const RETRIES: u32 = 3;
const START_INTERVAL: Duration = Duration::from_secs(5);

/// A container's health, as `docker inspect` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// No probe has passed yet (or none has run).
    #[default]
    Starting,
    Healthy,
    Unhealthy,
}

/// A service's healthcheck, with Docker's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Healthcheck {
    /// The probe's argv, run with `crun exec` (CMD-SHELL is already
    /// `["/bin/sh", "-c", cmd]`).
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    pub start_interval: Duration,
}

fn ms_or(ms: Option<u64>, default: Duration) -> Duration {
    match ms {
        Some(0) | None => default,
        Some(ms) => Duration::from_millis(ms),
    }
}

impl Healthcheck {
    /// Parse the healthcheck annotation's JSON text (`lkc_contract::Healthcheck`).
    /// `["NONE"]` (compose's way to disable an image's healthcheck) yields `None`.
    pub fn parse(text: &str) -> Result<Option<Healthcheck>, String> {
        let j: lkc_contract::Healthcheck = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        if j.test == ["NONE"] {
            return Ok(None);
        }
        if j.test.is_empty() || j.test[0].is_empty() {
            return Err("`test` must name a command".into());
        }
        Ok(Some(Healthcheck {
            test: j.test,
            interval: ms_or(j.interval_ms, INTERVAL),
            timeout: ms_or(j.timeout_ms, TIMEOUT),
            retries: j.retries.filter(|&r| r > 0).unwrap_or(RETRIES),
            start_period: ms_or(j.start_period_ms, Duration::ZERO),
            start_interval: ms_or(j.start_interval_ms, START_INTERVAL),
        }))
    }

    /// Whether `since_start` after the container started is still within
    /// its start period.
    pub fn in_start_period(&self, since_start: Duration) -> bool {
        since_start < self.start_period
    }

    /// How long to wait before the next probe: the start interval while a
    /// starting container is in its start period (Docker 25+), else the
    /// interval.
    pub fn delay(&self, health: Health, since_start: Duration) -> Duration {
        if health == Health::Starting && self.in_start_period(since_start) {
            self.start_interval
        } else {
            self.interval
        }
    }
}

/// Probe results of one container run, counted into a health status.
#[derive(Debug)]
pub struct Counter {
    retries: u32,
    streak: u32,
    health: Health,
}

impl Counter {
    /// A fresh count (health `starting`) for a container that just started.
    pub fn new(retries: u32) -> Counter {
        Counter {
            retries,
            streak: 0,
            health: Health::Starting,
        }
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// Add one probe result; returns the new health if it changed. A pass
    /// makes the container healthy; `retries` failures in a row make it
    /// unhealthy, except that failures of a still-starting container within
    /// its start period do not count.
    pub fn record(&mut self, passed: bool, in_start_period: bool) -> Option<Health> {
        let before = self.health;
        if passed {
            self.streak = 0;
            self.health = Health::Healthy;
        } else if !(self.health == Health::Starting && in_start_period) {
            self.streak += 1;
            if self.streak >= self.retries {
                self.health = Health::Unhealthy;
            }
        }
        (self.health != before).then_some(self.health)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(text: &str) -> Healthcheck {
        Healthcheck::parse(text).unwrap().unwrap()
    }

    #[test]
    fn defaults_are_dockers() {
        let h = hc(r#"{"test":["/bin/true"]}"#);
        assert_eq!(h.test, ["/bin/true"]);
        assert_eq!(h.interval, Duration::from_secs(30));
        assert_eq!(h.timeout, Duration::from_secs(30));
        assert_eq!(h.retries, 3);
        assert_eq!(h.start_period, Duration::ZERO);
        assert_eq!(h.start_interval, Duration::from_secs(5));
        assert_eq!(h, hc(r#"{"test":["/bin/true"],"interval_ms":0,"retries":0}"#));
    }

    #[test]
    fn fields_are_read() {
        let h = hc(r#"{"test":["/bin/sh","-c","curl -f localhost"],"interval_ms":1500,
            "timeout_ms":2000,"retries":5,"start_period_ms":10000,"start_interval_ms":250}"#);
        assert_eq!(h.test, ["/bin/sh", "-c", "curl -f localhost"]);
        assert_eq!(h.interval, Duration::from_millis(1500));
        assert_eq!(h.timeout, Duration::from_secs(2));
        assert_eq!(h.retries, 5);
        assert_eq!(h.start_period, Duration::from_secs(10));
        assert_eq!(h.start_interval, Duration::from_millis(250));
    }

    #[test]
    fn none_disables_and_bad_text_is_an_error() {
        assert_eq!(Healthcheck::parse(r#"{"test":["NONE"]}"#), Ok(None));
        assert!(Healthcheck::parse(r#"{"test":[]}"#).unwrap_err().contains("`test`"));
        assert!(Healthcheck::parse(r#"{"interval_ms":5}"#).unwrap_err().contains("test"));
        assert!(Healthcheck::parse(r#"{"test":["x"],"intervl_ms":5}"#).is_err());
        assert!(Healthcheck::parse("CMD true").is_err());
    }

    #[test]
    fn start_interval_applies_only_while_starting_in_the_start_period() {
        let h = hc(r#"{"test":["x"],"interval_ms":30000,"start_period_ms":10000,"start_interval_ms":1000}"#);
        let early = Duration::from_secs(3);
        assert_eq!(h.delay(Health::Starting, early), Duration::from_secs(1));
        assert_eq!(h.delay(Health::Healthy, early), Duration::from_secs(30));
        assert_eq!(
            h.delay(Health::Starting, Duration::from_secs(10)),
            Duration::from_secs(30)
        );
        let no_period = hc(r#"{"test":["x"],"interval_ms":30000}"#);
        assert_eq!(
            no_period.delay(Health::Starting, Duration::ZERO),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn pass_is_healthy_and_retries_failures_are_unhealthy() {
        let mut c = Counter::new(3);
        assert_eq!(c.record(false, false), None);
        assert_eq!(c.record(false, false), None);
        assert_eq!(c.record(false, false), Some(Health::Unhealthy));
        assert_eq!(c.record(false, false), None);
        assert_eq!(c.record(true, false), Some(Health::Healthy));
        assert_eq!(c.record(true, false), None);
        assert_eq!(c.health(), Health::Healthy);
    }

    #[test]
    fn a_pass_resets_the_failure_streak() {
        let mut c = Counter::new(2);
        c.record(false, false);
        c.record(true, false);
        assert_eq!(c.record(false, false), None);
        assert_eq!(c.record(false, false), Some(Health::Unhealthy));
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_until_healthy() {
        let mut c = Counter::new(1);
        assert_eq!(c.record(false, true), None);
        assert_eq!(c.record(false, true), None);
        assert_eq!(c.health(), Health::Starting);
        assert_eq!(c.record(true, true), Some(Health::Healthy));
        assert_eq!(c.record(false, true), Some(Health::Unhealthy));
    }
}
