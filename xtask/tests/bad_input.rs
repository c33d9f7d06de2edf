//! Bad compose files, through the real `cargo xtask` binary: one clear error
//! naming the file and the problem, a non-zero exit, and nothing written to dist/.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

mod common;
#[path = "../src/base/testdir.rs"]
mod testdir;

use common::{the_error, user_cache};
use testdir::TestDir;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

type Listing = Vec<(PathBuf, u64, std::time::SystemTime)>;

/// Every file under `dir` with its size and modification time, but for the
/// step logs in dist/logs/ (the `cargo xtask test` running these tests writes
/// its own there; logs are not outputs).
fn listing(dir: &Path) -> Listing {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.ends_with("dist/logs") {
            continue;
        }
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(listing(&path));
        } else {
            out.push((path, meta.len(), meta.modified().unwrap()));
        }
    }
    out.sort();
    out
}

/// Fail naming only the files that differ.
fn assert_unchanged(before: &Listing, after: &Listing, what: &str) {
    let changed: Vec<_> = after
        .iter()
        .filter(|f| !before.contains(f))
        .chain(before.iter().filter(|f| !after.contains(f)))
        .map(|(path, ..)| path.display().to_string())
        .collect();
    assert!(changed.is_empty(), "{what}: {changed:?}");
}

/// Run `cargo xtask <command> --compose <file with text>` and return stderr,
/// asserting the failure is clean.
fn fails(command: &str, name: &str, text: &str) -> String {
    fails_on(command, name, Some(text))
}

/// [`fails`], with no file at all when `text` is None.
fn fails_on(command: &str, name: &str, text: Option<&str>) -> String {
    let dir = TestDir::new(&format!("bad-{name}"));
    let file = dir.join("docker-compose.yml");
    if let Some(text) = text {
        fs::write(&file, text).unwrap();
    }
    // The project cache holds the host's docker-compose (which reads the file)
    // and nothing else: share the user's copy rather than unpack one per test.
    let cache = dir.join("cache");
    fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(user_cache().join("tools"), cache.join("tools")).unwrap();
    // Outputs and the checked-in LinuxKit YAML alike stay as they were.
    let (dist, linuxkit) = (root().join("dist"), root().join("linuxkit"));
    let before = (listing(&dist), listing(&linuxkit));
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(command.split_whitespace())
        .args(["--no-install", "--compose"])
        .arg(&file)
        .env("LINUXKIT_COMPOSE_CACHE", &cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{command} with {name} must fail:\n{stderr}");
    assert!(
        the_error(&stderr).contains(&file.display().to_string()),
        "the error names the file:\n{stderr}"
    );
    assert_unchanged(
        &before.0,
        &listing(&dist),
        &format!("{command} with {name} changed dist/"),
    );
    assert_unchanged(
        &before.1,
        &listing(&linuxkit),
        &format!("{command} with {name} changed linuxkit/"),
    );
    let mut made: Vec<String> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // Checks, not builds: `registries` holds the registries.conf a pull is
        // told to read, `debian-index` the mirror's index that a build checks
        // pins.lock against before it resolves the app's registry images.
        .filter(|n| !["tools", "lock", "registries", "debian-index"].contains(&n.as_str()))
        .collect();
    made.sort();
    assert!(made.is_empty(), "{command} with {name} started building: {made:?}");
    // The error with its list of problems, if it has one.
    stderr[stderr.find("error:").expect("an error line")..]
        .trim_end()
        .to_string()
}

#[test]
fn malformed_yaml() {
    let e = fails("static", "malformed", "services:\n  a: [\n");
    assert!(e.contains("yaml: line 2"), "{e}");
}

#[test]
fn missing_build_context() {
    let e = fails(
        "dynamic",
        "context",
        "services:\n  a:\n    build: ./nope\n    image: x/a:1\n",
    );
    assert!(
        e.contains("service `a`: build context ") && e.ends_with("/nope does not exist"),
        "{e}"
    );
}

/// docker compose's own validation, in its words: an unknown key is caught
/// before anything is built, not two minutes into the VM's boot.
#[test]
fn unknown_service_key() {
    let e = fails(
        "static",
        "prots",
        "services:\n  a:\n    image: x\n    prots: ['80:80']\n",
    );
    assert!(e.contains("services.a Additional property prots is not allowed"), "{e}");
}

#[test]
fn required_variable_unset() {
    let e = fails(
        "test-boot --method static",
        "required",
        "services:\n  a:\n    image: x\n    ports: ['${LKC_UNSET_PORT:?must be set}:80']\n",
    );
    assert!(
        e.contains("required variable LKC_UNSET_PORT is missing a value: must be set"),
        "{e}"
    );
}

/// What compose accepts but one VM cannot run, every problem at once.
#[test]
fn one_port_twice_and_one_tag_from_two_contexts() {
    let (a, b) = (root().join("apps/a"), root().join("apps/b"));
    let text = format!(
        "services:\n  a:\n    build: {}\n    image: same:1\n    ports: ['8080:80']\n  b:\n    build: {}\n    image: same:1\n    ports: ['8080:80']\n",
        a.display(),
        b.display()
    );
    let e = fails("static", "conflicts", &text);
    assert!(e.contains("2 problems"), "{e}");
}

#[test]
fn router_without_a_reachable_port() {
    let a = root().join("apps/a");
    let text = format!(
        "services:\n  a:\n    build: {}\n    image: x/a:1\n    ports: ['8080:80']\n    labels:\n      traefik.http.routers.a.rule: Host(`a.localhost`)\n",
        a.display()
    );
    let e = fails("test-boot --method dynamic", "norouter", &text);
    assert!(e.contains("the router publishes no port"), "{e}");
}

#[test]
fn empty_file() {
    let e = fails("apps", "empty", "");
    assert!(e.contains("empty compose file"), "{e}");
}

#[test]
fn missing_file() {
    let e = fails_on("static", "missing", None);
    assert!(e.contains("no such file or directory"), "{e}");
}

#[test]
fn image_the_local_profile_would_have_to_pull() {
    let e = fails("images", "pull", "services:\n  docs:\n    image: elasticsearch:8\n");
    assert!(
        e.contains("image `elasticsearch:8` has no `build:`, and no local image stands in for `elasticsearch`"),
        "{e}"
    );
    assert!(
        e.contains(
            "its catalog: adminer, alpine, ankane/pgvector, busybox, caddy, debian, dpage/pgadmin4, eclipse-temurin, gcr.io/distroless/base, gcr.io/distroless/base-nossl, gcr.io/distroless/cc, gcr.io/distroless/static, golang, httpd, mariadb,"
        ),
        "{e}"
    );
    // Names an app writes, not the catalog's variants or the entries only
    // newer tags reach.
    assert!(!e.contains("python-3.13") && !e.contains("nginx:alpine"), "{e}");
}

/// With `--images registry`, a registry that does not answer: one error
/// naming the image and why, before anything is pulled or built (the other
/// image, pinned by the digest it is written with, needs no resolving).
#[test]
fn images_a_registry_build_cannot_pull() {
    let digest = format!("127.0.0.1:9/acme/db@sha256:{}", "0".repeat(64));
    let e = fails(
        "static --images registry",
        "unreachable",
        &format!("services:\n  a:\n    image: 127.0.0.1:9/acme/app:1\n  b:\n    image: {digest}\n"),
    );
    assert!(
        e.contains("image `127.0.0.1:9/acme/app:1`: resolving it at 127.0.0.1:9"),
        "{e}"
    );
    assert!(e.contains("connection refused"), "{e}");
}

/// A base image without a stand-in, and an Alpine-only step on a Debian
/// stand-in without an apk (redis's; python's, node's, golang's and nginx's
/// emulate it): both before anything is built, naming the
/// Dockerfile's lines.
#[test]
fn dockerfile_the_local_profile_cannot_build() {
    let dir = TestDir::new("df");
    let (elixir, alpine) = (dir.join("elixir"), dir.join("alpine"));
    for (d, text) in [
        (&elixir, "FROM elixir:1.16-alpine\nCOPY . /app\n"),
        (&alpine, "FROM redis:7-alpine\nRUN apk add --no-cache gcc\n"),
    ] {
        fs::create_dir_all(d).unwrap();
        fs::write(d.join("Dockerfile"), text).unwrap();
    }
    let text = format!(
        "services:\n  a:\n    build: {}\n  b:\n    build: {}\n",
        elixir.display(),
        alpine.display()
    );
    let e = fails("static", "dockerfiles", &text);
    assert!(e.contains("2 problems"), "{e}");
}

/// The native method carries over only what it can make behave as under
/// `docker compose up`: every other key is an error naming the file, the
/// service and the key path, all of them at once, before anything is built.
#[test]
fn keys_the_native_method_does_not_carry_over() {
    let a = root().join("apps/a");
    let text = format!(
        "services:\n  a:\n    build: {}\n    image: x/a:1\n    pid: host\n    blkio_config:\n      weight: 300\n    ports: ['8080:80']\n  b:\n    build: {}\n    image: x/b:1\n    deploy:\n      resources:\n        limits:\n          memory: 50M\n    ipc: host\n    network_mode: service:a\n",
        a.display(),
        a.display()
    );
    let e = fails("native", "native-keys", &text);
    for want in [
        "4 problems",
        "service `a`: `pid` is not carried over by the native method: services get their own PID namespace",
        "service `a`: `blkio_config.weight` is not carried over by the native method",
        "service `b`: `ipc` is not carried over by the native method",
        "service `b`: network_mode `service:a`",
        "(build anyway with --allow-unsupported)",
    ] {
        assert!(e.contains(want), "missing `{want}` in:\n{e}");
    }
}
