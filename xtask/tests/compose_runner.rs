//! The VM's compose runner (images/compose/compose-up), run on the host with a
//! stand-in `docker-compose` on PATH: what it tells the console when the app
//! comes up, and when it cannot.

use std::{
    fs,
    os::unix::{fs::PermissionsExt, net::UnixListener},
    path::{Path, PathBuf},
    process::{Command, Output},
};

#[path = "../src/base/testdir.rs"]
mod testdir;

use testdir::TestDir;

fn runner() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/compose/compose-up")
}

/// Run the runner against a `docker-compose` whose `up` prints `up_says` and
/// exits with `up_status`; the engine's socket exists, as in the VM.
fn run(name: &str, up_says: &str, up_status: i32) -> Output {
    run_fake(name, &format!("echo '{up_says}' >&2; exit {up_status}"), "")
}

/// Run the runner against a `docker-compose` whose `up` and `ps` run these
/// shell commands (in the fake's folder, where `up` may keep a count).
fn run_fake(name: &str, up: &str, ps: &str) -> Output {
    let dir = TestDir::new(&format!("runner-{name}"));
    fs::create_dir_all(dir.join("compose")).unwrap();
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::write(dir.join("compose/docker-compose.yml"), "services: {}\n").unwrap();
    let fake = dir.join("bin/docker-compose");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\n# docker-compose -f FILE COMMAND …\ncd \"$(dirname \"$0\")\"\ncase \"$3\" in\n  up) {up} ;;\n  ps) {ps} ;;\n  config) echo a; echo b ;;\n  *) exit 0 ;;\nesac\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    // The runner waits for the engine's socket before it asks the engine.
    let socket = dir.join("docker.sock");
    let _engine = UnixListener::bind(&socket).unwrap();
    Command::new("sh")
        .arg(runner())
        .env("COMPOSE_DIR", dir.join("compose"))
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("COMPOSE_ENGINE_TIMEOUT", "20")
        .env("COMPOSE_UP_ATTEMPTS", "2")
        .env("COMPOSE_PROGRESS", "1")
        .env(
            "PATH",
            format!("{}:{}", dir.join("bin").display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap()
}

#[test]
fn the_runner_says_when_the_app_is_up() {
    let out = run("up", "", 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("compose: app is up: a b"), "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
}

#[test]
fn a_failed_up_stops_the_runner_with_its_reason() {
    let out = run("fail", "Error response from daemon: pull access denied for app-a", 1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "the runner went on after compose up failed:\n{stdout}"
    );
    let failed = failed_line(&stdout);
    assert!(failed.contains("failed 2 times"), "it retried as configured: {failed}");
    assert!(
        failed.contains("pull access denied for app-a"),
        "the reason is on the console: {failed}"
    );
    assert!(!stdout.contains("app is up"), "{stdout}");
}

/// An app that cannot start is not retried: the runner says why at once.
#[test]
fn an_app_error_fails_without_retries() {
    let out = run("app", "Error response from daemon: no command specified", 1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(!stdout.contains("retrying"), "it retried an app error:\n{stdout}");
    let failed = failed_line(&stdout);
    assert!(failed.contains("no command specified"), "{stdout}");
}

/// `up` prints nothing until it returns, which can take minutes (a volume
/// filled from a large image directory, under emulation): meanwhile the
/// runner says, every COMPOSE_PROGRESS seconds, where each service is.
#[test]
fn a_long_up_says_where_the_services_are() {
    let ps = "if [ \"$4\" = -a ]; then echo 'db Up 2 seconds (health: starting)'; echo 'web Created'; fi";
    let out = run_fake("slow-up", "sleep 2.5", ps);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let progress = stdout
        .lines()
        .find(|l| l.starts_with("compose: up is still running after "))
        .unwrap_or_else(|| panic!("nothing said while up ran:\n{stdout}"));
    assert!(
        progress.contains("db Up 2 seconds (health: starting), web Created"),
        "{progress}"
    );
    assert!(
        stdout.find(progress).unwrap() < stdout.find("compose: app is up").unwrap(),
        "{stdout}"
    );
}

/// The runner's `compose: FAILED` line on the console; the test fails without one.
fn failed_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.starts_with("compose: FAILED"))
        .unwrap_or_else(|| panic!("no FAILED line on the console:\n{stdout}"))
}

/// What compose's `up` says when a dependency's healthcheck ran out of retries.
const DB_UNHEALTHY: &str = "dependency failed to start: container app-db-1 is unhealthy";

/// A dependency that is unhealthy but still runs may yet pass its
/// healthcheck (a database initializing slowly under emulation): the runner
/// says so and runs `up` again until it starts the rest.
#[test]
fn an_unhealthy_dependency_that_runs_is_waited_for() {
    let up = format!("if [ -e once ]; then exit 0; fi; touch once; echo '{DB_UNHEALTHY}' >&2; exit 1");
    let out = run_fake("unhealthy-runs", &up, "echo app-db-1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("compose: app-db-1 is unhealthy but running: trying up again"),
        "it said why it waits:\n{stdout}"
    );
    assert!(stdout.contains("compose: app is up: a b"), "{stdout}");
}

/// An unhealthy dependency that no longer runs will not get better: the
/// runner fails at once, with compose's reason, after the services' states
/// (`ps -a`): `test-boot` stops the VM at the FAILED line, so what comes
/// after it would never reach the console.
#[test]
fn an_unhealthy_dependency_that_stopped_fails_at_once() {
    let up = format!("echo '{DB_UNHEALTHY}' >&2; exit 1");
    let ps = "if [ \"$4\" = -a ]; then echo 'app-db-1  Exited (1) 3 seconds ago'; fi";
    let out = run_fake("unhealthy-stopped", &up, ps);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    let failed = failed_line(&stdout);
    assert!(failed.contains("app-db-1 is unhealthy"), "{failed}");
    assert!(!stdout.contains("trying up again"), "{stdout}");
    let states = stdout
        .find("compose: ps: app-db-1  Exited (1)")
        .unwrap_or_else(|| panic!("no service states on the console:\n{stdout}"));
    assert!(
        states < stdout.find(failed).unwrap(),
        "the states come after the FAILED line:\n{stdout}"
    );
}
