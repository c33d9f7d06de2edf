//! Start order by `depends_on`: what each condition asks of a dependency,
//! judged on a snapshot of the services' state, and the graph checks
//! (unknown names, cycles) that compose would refuse a project for.

use crate::health::Health;
use std::collections::{BTreeMap, BTreeSet};

/// A compose `depends_on` condition, as the annotation carries it.
pub use lkc_contract::Condition;

/// What the supervisor knows of one service, as the gate reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// How many times its container has been launched (0: not yet).
    pub runs: u32,
    pub running: bool,
    /// The status of its first exit: `service_completed_successfully` is
    /// judged on it, as compose judges the first time the container stops.
    pub first_exit: Option<i32>,
    pub last_exit: Option<i32>,
    /// The current run's health (reset to `Starting` on each restart).
    pub health: Health,
    /// Down for good: never to be launched (again).
    pub finished: bool,
}

/// The verdict on a service's dependencies.
#[derive(Debug, PartialEq)]
pub enum Gate {
    /// All conditions hold: start it.
    Go,
    /// Some condition may still come true.
    Wait,
    /// Waiting for `dep`, which runs but is unhealthy: a passing probe makes
    /// it healthy again, as in Docker. Compose's `up` gives up here, and
    /// running `up` again once the dependency is healthy starts the rest;
    /// a VM has nobody to run it again, so it waits (a database initializing
    /// under emulation can take longer than its healthcheck allows).
    Unhealthy(String),
    /// Dependency `dep` can never meet its condition, for `reason`.
    Never { dep: String, reason: String },
}

enum Check {
    Met,
    Wait,
    Unhealthy,
    Never(String),
}

fn check(st: &Status, cond: Condition) -> Check {
    let skipped = st.finished && st.runs == 0;
    let gone = |st: &Status| match st.last_exit {
        Some(n) if st.finished => Check::Never(format!("exited with status {n}")),
        _ => Check::Wait,
    };
    if skipped {
        return Check::Never("was skipped".into());
    }
    match cond {
        Condition::Started if st.runs > 0 => Check::Met,
        Condition::Started => Check::Wait,
        Condition::Healthy => match st.health {
            Health::Healthy => Check::Met,
            Health::Unhealthy if st.running => Check::Unhealthy,
            Health::Unhealthy | Health::Starting => gone(st),
        },
        Condition::CompletedSuccessfully => match st.first_exit {
            Some(0) => Check::Met,
            Some(n) => Check::Never(format!("exited with status {n}")),
            None => Check::Wait,
        },
    }
}

/// Judge `deps` (dependency name, condition) on `board`. A name missing
/// from the board can never be met (`unstartable` reports those earlier).
pub fn gate(deps: &[(String, Condition)], board: &BTreeMap<String, Status>) -> Gate {
    let mut all_met = true;
    let mut unhealthy = None;
    for (dep, cond) in deps {
        let verdict = match board.get(dep) {
            Some(st) => check(st, *cond),
            None => Check::Never("is not a service of this VM".into()),
        };
        match verdict {
            Check::Met => {}
            Check::Wait => all_met = false,
            Check::Unhealthy => {
                all_met = false;
                unhealthy.get_or_insert(dep);
            }
            Check::Never(reason) => {
                return Gate::Never {
                    dep: dep.clone(),
                    reason,
                }
            }
        }
    }
    match unhealthy {
        _ if all_met => Gate::Go,
        Some(dep) => Gate::Unhealthy(dep.clone()),
        None => Gate::Wait,
    }
}

/// Turn `service_healthy` on a dependency without a healthcheck into
/// `service_started` (it could never become healthy otherwise); returns the
/// names so changed, for the caller to log.
pub fn downgrade_unchecked(deps: &mut [(String, Condition)], has_healthcheck: impl Fn(&str) -> bool) -> Vec<String> {
    let mut changed = Vec::new();
    for (dep, cond) in deps.iter_mut() {
        if *cond == Condition::Healthy && !has_healthcheck(dep) {
            *cond = Condition::Started;
            changed.push(dep.clone());
        }
    }
    changed
}

/// Services that can never start for the shape of the graph (service ->
/// its dependencies' names), with the reason: a dependency that is not in
/// the graph, or being on a dependency cycle. Services that merely depend on
/// these are left to `gate` (they will see a skipped dependency).
pub fn unstartable(graph: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, deps) in graph {
        if let Some(dep) = deps.iter().find(|d| !graph.contains_key(*d)) {
            out.insert(name.clone(), format!("depends on unknown service {dep}"));
        } else if let Some(cycle) = cycle_through(name, graph) {
            out.insert(name.clone(), format!("dependency cycle {}", cycle.join(" -> ")));
        }
    }
    out
}

/// A dependency path from `start` back to itself, if there is one.
fn cycle_through(start: &str, graph: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn walk<'a>(
        node: &'a str,
        start: &str,
        graph: &'a BTreeMap<String, Vec<String>>,
        seen: &mut BTreeSet<&'a str>,
        path: &mut Vec<String>,
    ) -> bool {
        for dep in graph.get(node).into_iter().flatten() {
            path.push(dep.clone());
            if dep == start || (seen.insert(dep) && walk(dep, start, graph, seen, path)) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(start, start, graph, &mut BTreeSet::new(), &mut path).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(d: &[(&str, Condition)]) -> Vec<(String, Condition)> {
        d.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    fn board(s: &[(&str, Status)]) -> BTreeMap<String, Status> {
        s.iter().map(|(n, st)| (n.to_string(), st.clone())).collect()
    }

    fn never(dep: &str, reason: &str) -> Gate {
        Gate::Never {
            dep: dep.into(),
            reason: reason.into(),
        }
    }

    const NEW: Status = Status {
        runs: 0,
        running: false,
        first_exit: None,
        last_exit: None,
        health: Health::Starting,
        finished: false,
    };
    const RUNNING: Status = Status {
        runs: 1,
        running: true,
        ..NEW
    };

    #[test]
    fn no_dependencies_go_at_once() {
        assert_eq!(gate(&[], &BTreeMap::new()), Gate::Go);
    }

    #[test]
    fn started_waits_for_the_launch() {
        let d = deps(&[("db", Condition::Started)]);
        assert_eq!(gate(&d, &board(&[("db", NEW)])), Gate::Wait);
        assert_eq!(gate(&d, &board(&[("db", RUNNING)])), Gate::Go);
        let exited = Status {
            running: false,
            first_exit: Some(1),
            last_exit: Some(1),
            finished: true,
            ..RUNNING
        };
        assert_eq!(gate(&d, &board(&[("db", exited)])), Gate::Go);
    }

    #[test]
    fn healthy_waits_for_a_passing_healthcheck() {
        let d = deps(&[("db", Condition::Healthy)]);
        assert_eq!(gate(&d, &board(&[("db", RUNNING)])), Gate::Wait);
        let healthy = Status {
            health: Health::Healthy,
            ..RUNNING
        };
        assert_eq!(gate(&d, &board(&[("db", healthy)])), Gate::Go);
    }

    /// An unhealthy dependency that still runs may pass its next probe: the
    /// gate waits for it (saying which), and fails only once it is down for good.
    #[test]
    fn healthy_waits_through_an_unhealthy_spell() {
        let d = deps(&[("db", Condition::Healthy)]);
        let unhealthy = Status {
            health: Health::Unhealthy,
            ..RUNNING
        };
        assert_eq!(
            gate(&d, &board(&[("db", unhealthy.clone())])),
            Gate::Unhealthy("db".into())
        );
        let recovered = Status {
            health: Health::Healthy,
            ..unhealthy.clone()
        };
        assert_eq!(gate(&d, &board(&[("db", recovered)])), Gate::Go);
        let down = Status {
            running: false,
            finished: true,
            first_exit: Some(1),
            last_exit: Some(1),
            ..unhealthy
        };
        assert_eq!(gate(&d, &board(&[("db", down)])), never("db", "exited with status 1"));
    }

    #[test]
    fn healthy_fails_when_the_dependency_is_down_for_good() {
        let d = deps(&[("db", Condition::Healthy)]);
        let restarting = Status {
            running: false,
            first_exit: Some(2),
            last_exit: Some(2),
            ..RUNNING
        };
        assert_eq!(gate(&d, &board(&[("db", restarting.clone())])), Gate::Wait);
        let down = Status {
            finished: true,
            ..restarting
        };
        assert_eq!(gate(&d, &board(&[("db", down)])), never("db", "exited with status 2"));
    }

    #[test]
    fn completed_successfully_judges_the_first_exit() {
        let d = deps(&[("migrate", Condition::CompletedSuccessfully)]);
        assert_eq!(gate(&d, &board(&[("migrate", RUNNING)])), Gate::Wait);
        let ok = Status {
            running: false,
            first_exit: Some(0),
            last_exit: Some(0),
            finished: true,
            ..RUNNING
        };
        assert_eq!(gate(&d, &board(&[("migrate", ok)])), Gate::Go);
        let failed_then_restarted = Status {
            runs: 2,
            first_exit: Some(3),
            last_exit: Some(3),
            ..RUNNING
        };
        assert_eq!(
            gate(&d, &board(&[("migrate", failed_then_restarted)])),
            never("migrate", "exited with status 3")
        );
    }

    #[test]
    fn skipped_dependency_never_meets_any_condition() {
        let skipped = Status { finished: true, ..NEW };
        for c in [Condition::Started, Condition::Healthy, Condition::CompletedSuccessfully] {
            let d = deps(&[("db", c)]);
            assert_eq!(gate(&d, &board(&[("db", skipped.clone())])), never("db", "was skipped"));
        }
    }

    #[test]
    fn every_dependency_must_be_met() {
        let d = deps(&[("a", Condition::Started), ("b", Condition::Started)]);
        assert_eq!(gate(&d, &board(&[("a", RUNNING), ("b", NEW)])), Gate::Wait);
        assert_eq!(gate(&d, &board(&[("a", RUNNING), ("b", RUNNING)])), Gate::Go);
        let b_skipped = Status { finished: true, ..NEW };
        assert_eq!(
            gate(&d, &board(&[("a", NEW), ("b", b_skipped)])),
            never("b", "was skipped")
        );
        let d = deps(&[("zzz", Condition::Started)]);
        assert!(matches!(gate(&d, &board(&[])), Gate::Never { .. }));
    }

    #[test]
    fn healthy_without_a_healthcheck_becomes_started() {
        let mut d = deps(&[
            ("db", Condition::Healthy),
            ("cache", Condition::Healthy),
            ("m", Condition::Started),
        ]);
        let changed = downgrade_unchecked(&mut d, |n| n == "db");
        assert_eq!(changed, ["cache"]);
        assert_eq!(
            d,
            deps(&[
                ("db", Condition::Healthy),
                ("cache", Condition::Started),
                ("m", Condition::Started)
            ])
        );
    }

    fn graph(g: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        g.iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn unknown_dependencies_are_unstartable() {
        let got = unstartable(&graph(&[("web", &["db", "nope"]), ("db", &[])]));
        assert_eq!(got.len(), 1);
        assert_eq!(got["web"], "depends on unknown service nope");
    }

    #[test]
    fn cycles_are_unstartable_but_not_what_depends_on_them() {
        let got = unstartable(&graph(&[
            ("a", &["b"]),
            ("b", &["c"]),
            ("c", &["a"]),
            ("web", &["a"]),
            ("self", &["self"]),
            ("ok", &[]),
        ]));
        assert_eq!(got.keys().collect::<Vec<_>>(), ["a", "b", "c", "self"]);
        assert_eq!(got["a"], "dependency cycle a -> b -> c -> a");
        assert_eq!(got["self"], "dependency cycle self -> self");
    }

    #[test]
    fn diamonds_are_not_cycles() {
        let got = unstartable(&graph(&[
            ("web", &["a", "b"]),
            ("a", &["db"]),
            ("b", &["db"]),
            ("db", &[]),
        ]));
        assert!(got.is_empty(), "{got:?}");
    }
}
