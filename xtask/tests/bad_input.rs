//! Bad compose files, through the real `cargo xtask` binary: one clear error
//! naming the file and the problem, a non-zero exit, and nothing written to dist/.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

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
    let dir = std::env::temp_dir().join(format!("lkc-bad-{}-{name}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("docker-compose.yml");
    if let Some(text) = text {
        fs::write(&file, text).unwrap();
    }
    // Outputs and the checked-in LinuxKit YAML alike stay as they were.
    let (dist, linuxkit) = (root().join("dist"), root().join("linuxkit"));
    let before = (listing(&dist), listing(&linuxkit));
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([command, "--no-install", "--compose"])
        .arg(&file)
        .env("LINUXKIT_COMPOSE_CACHE", dir.join("cache"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{command} with {name} must fail:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line, got:\n{stderr}");
    assert!(
        errors[0].contains(&file.display().to_string()),
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
    assert!(!dir.join("cache").exists(), "{command} with {name} started building");
    fs::remove_dir_all(&dir).unwrap();
    errors[0].to_string()
}

#[test]
fn malformed_yaml() {
    let e = fails("static", "malformed", "services:\n  a: [\n");
    assert!(e.contains("not valid YAML"), "{e}");
}

#[test]
fn missing_build_context() {
    let e = fails(
        "dynamic",
        "context",
        "services:\n  a:\n    build: ./nope\n    image: x/a:1\n",
    );
    assert!(e.contains("build context `./nope` does not exist"), "{e}");
}

#[test]
fn build_without_image() {
    let app_a = root().join("apps/a");
    let e = fails(
        "images",
        "noimage",
        &format!("services:\n  a:\n    build: {}\n", app_a.display()),
    );
    assert!(e.contains("service `a`: has `build:` but no `image:`"), "{e}");
}

#[test]
fn router_without_host_rule() {
    let text = "services:\n  a:\n    image: x/a:1\n    labels:\n      traefik.enable: \"true\"\n      traefik.http.routers.a.rule: PathPrefix(`/`)\n";
    let e = fails("run-static", "nohost", text);
    assert!(
        e.contains("router `a` rule `PathPrefix(`/`)` has no Host(`…`) matcher"),
        "{e}"
    );
}

#[test]
fn empty_file() {
    let e = fails("apps", "empty", "");
    assert!(e.contains("defines no services"), "{e}");
}

#[test]
fn missing_file() {
    let e = fails_on("static", "missing", None);
    assert!(e.contains("cannot read it: No such file or directory"), "{e}");
}

#[test]
fn image_the_local_profile_would_have_to_pull() {
    let e = fails("images", "pull", "services:\n  cache:\n    image: redis:7\n");
    assert!(e.contains("image `redis:7` has no `build:`"), "{e}");
}
