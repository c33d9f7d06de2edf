//! The VM's compose runner (images/compose/compose-up), run on the host with a
//! stand-in `docker` on PATH: what it does when the engine's answers go wrong.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

fn runner() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/compose/compose-up")
}

/// A compose dir with one image tarball, and a `docker` that answers
/// `version` and `compose` but whose `load` fails with `load_error`.
fn setup(name: &str, load_error: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lkc-runner-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("compose/images")).unwrap();
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::write(dir.join("compose/docker-compose.yml"), "services: {}\n").unwrap();
    fs::write(dir.join("compose/images/app.tar"), "not really a tarball").unwrap();
    let docker = dir.join("bin/docker");
    fs::write(
        &docker,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  version) echo 26.1.5 ;;\n  load) echo '{load_error}' >&2; exit 1 ;;\n  *) exit 0 ;;\nesac\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&docker, fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn a_failed_load_stops_the_runner_with_its_reason() {
    let dir = setup("load", "Error: archive/tar: invalid tar header");
    // The runner waits for the engine's socket before it asks `docker version`.
    let socket = dir.join("docker.sock");
    let _engine = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let out = Command::new("sh")
        .arg(runner())
        .env("COMPOSE_DIR", dir.join("compose"))
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("COMPOSE_ENGINE_TIMEOUT", "20")
        .env(
            "PATH",
            format!("{}:{}", dir.join("bin").display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "the runner went on after a failed load:\n{stdout}"
    );
    let failed = stdout
        .lines()
        .find(|l| l.starts_with("compose: FAILED"))
        .unwrap_or_else(|| panic!("no FAILED line on the console:\n{stdout}"));
    assert!(failed.contains("app.tar"), "{failed}");
    assert!(
        failed.contains("invalid tar header"),
        "the reason is on the console: {failed}"
    );
    assert!(!stdout.contains("app is up"), "{stdout}");
    fs::remove_dir_all(&dir).unwrap();
}
