//! `cargo xtask repro`: same inputs, same bytes. Two cold builds of one VM
//! from the same commit (each in its own checkout and cache, with another TZ
//! and umask, at another time), then every file of their `dist/SHA256SUMS`
//! compared; a file that differs is named with the first thing in it that
//! differs (a tar or cpio member and its metadata, else a byte offset).
//! With `--user NAME` (as root), the second build is that ordinary user's,
//! in the user namespace it builds in: root's and a user's bytes compared.

use std::{
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    base::{exec, project::Project, ui, userns},
    vm::method::Method,
};

/// `sha256sum` lines -> file -> sum.
pub fn parse_sums(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(sum, file)| (file.to_string(), sum.to_string()))
        .collect()
}

/// Files whose sums differ, or that only one build wrote.
pub fn differing(a: &str, b: &str) -> Vec<String> {
    let (a, b) = (parse_sums(a), parse_sums(b));
    let mut files: Vec<String> = a.iter().chain(b.iter()).map(|(f, _)| f.clone()).collect();
    files.sort();
    files.dedup();
    files
        .into_iter()
        .filter(|f| a.iter().find(|(x, _)| x == f) != b.iter().find(|(x, _)| x == f))
        .collect()
}

/// The first line two listings differ in, as "a: … / b: …".
pub fn first_difference(a: &str, b: &str) -> Option<String> {
    let (mut la, mut lb) = (a.lines(), b.lines());
    loop {
        match (la.next(), lb.next()) {
            (None, None) => return None,
            (x, y) if x == y => continue,
            (x, y) => {
                return Some(format!(
                    "first build: {}\n    second build: {}",
                    x.unwrap_or("(nothing more)"),
                    y.unwrap_or("(nothing more)")
                ))
            }
        }
    }
}

/// A listing of an archive's members with their metadata, if it is one.
fn listing(sh: &Shell, path: &Path) -> Option<String> {
    let name = path.to_string_lossy();
    if name.ends_with(".tar") {
        return exec::probe(cmd!(sh, "tar --full-time -tvf {path}"));
    }
    if name.ends_with("-initrd.img") {
        // lz4 (the packed initrds) or gzip (linuxkit's own): each a cpio.
        let listed = exec::probe(cmd!(
            sh,
            "bash -o pipefail -c '(lz4 -dc \"$0\" 2>/dev/null || gzip -dc \"$0\") | cpio -tv --quiet' {path}"
        ));
        return listed.map(|l| l.lines().map(|line| line.to_string() + "\n").collect());
    }
    None
}

/// How `a` and `b` (the same file of the two builds) differ.
fn explain(sh: &Shell, a: &Path, b: &Path) -> String {
    if !a.is_file() || !b.is_file() {
        return "only one build wrote it".into();
    }
    if let (Some(la), Some(lb)) = (listing(sh, a), listing(sh, b)) {
        if let Some(d) = first_difference(&la, &lb) {
            return format!("first differing member:\n    {d}");
        }
    }
    if a.to_string_lossy().ends_with(".json") {
        if let (Ok(ta), Ok(tb)) = (fs::read_to_string(a), fs::read_to_string(b)) {
            if let Some(d) = first_difference(&ta, &tb) {
                return format!("first differing line:\n    {d}");
            }
        }
    }
    let cmp = exec::output(cmd!(sh, "cmp {a} {b}")).unwrap_or_default();
    format!("same members, different bytes: {}", cmp.trim())
}

/// Build `method`'s VM in a fresh clone of HEAD at `dir`, with its own
/// cache; as `user` (by runuser, from root) when given, in a clone and cache
/// that user owns.
fn build(sh: &Shell, project: &Project, method: Method, dir: &Path, run: &Run) -> Result<()> {
    let src = dir.join("src");
    let root = &project.root;
    let cache = dir.join("cache");
    for old in [&src, &cache] {
        if old.exists() {
            fs::remove_dir_all(old).with_context(|| format!("removing {}", old.display()))?;
        }
    }
    fs::create_dir_all(dir)?;
    exec::run(cmd!(sh, "git clone --quiet --no-hardlinks {root} {src}")).context("cloning HEAD")?;
    let who = run.user.map_or("the caller".to_string(), |u| format!("user {u}"));
    let step = ui::step(format!(
        "cold build of {} in {} as {who} (TZ={}, umask {:03o})",
        method.vm_name(),
        dir.display(),
        run.tz,
        run.umask
    ));
    let vm = method.vm_name().trim_start_matches("compose-");
    let mut command = match run.user {
        None => {
            let mut c = Command::new("cargo");
            // Both root checkouts compile the xtask into one target folder (each its own
            // binary: the path is part of the crate's identity), which no output depends on.
            c.env("CARGO_TARGET_DIR", dir.with_file_name("target"));
            c
        }
        Some(user) => {
            exec::run(cmd!(sh, "chown -R {user}: {dir}"))
                .with_context(|| format!("giving {} to {user}", dir.display()))?;
            let home = home_of(sh, user)?;
            let rustup = std::env::var("RUSTUP_HOME")
                .or_else(|_| std::env::var("HOME").map(|h| format!("{h}/.rustup")))
                .context("no RUSTUP_HOME or HOME")?;
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--", "env"])
                .arg(format!("HOME={home}"))
                .arg(format!("USER={user}"))
                .arg(format!("LOGNAME={user}"))
                .arg(format!("RUSTUP_HOME={rustup}"))
                .arg(format!("CARGO_HOME={home}/.cargo"))
                .arg(format!("CARGO_TARGET_DIR={}", dir.join("target").display()))
                .arg("cargo");
            c
        }
    };
    command
        .args(["xtask", vm])
        .current_dir(&src)
        .env("LINUXKIT_COMPOSE_CACHE", &cache)
        .env("TZ", run.tz);
    let umask = run.umask;
    // SAFETY: umask(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            libc::umask(umask as libc::mode_t);
            Ok(())
        });
    }
    let log = dir.join("build.log");
    let out = fs::File::create(&log)?;
    command.stdout(out.try_clone()?).stderr(out);
    let status = exec::run_grouped(&mut command).context("starting cargo xtask")?.status;
    if !status.success() {
        bail!("the build in {} failed: see {}", src.display(), log.display());
    }
    // The outputs stay for comparing; the clone goes.
    let dist = dir.join("dist");
    if dist.exists() {
        fs::remove_dir_all(&dist)?;
    }
    fs::rename(src.join("dist"), &dist)?;
    fs::remove_dir_all(&src)?;
    step.done();
    Ok(())
}

/// `user`'s home folder, from the passwd database.
fn home_of(sh: &Shell, user: &str) -> Result<String> {
    let entry = exec::read(cmd!(sh, "getent passwd {user}")).with_context(|| format!("no user {user}"))?;
    entry
        .split(':')
        .nth(5)
        .map(str::to_string)
        .with_context(|| format!("user {user} has no home folder"))
}

/// One of the two builds: its folder name, time zone, umask, and the user it runs as.
struct Run<'a> {
    name: &'static str,
    tz: &'static str,
    umask: u32,
    user: Option<&'a str>,
}

/// Build twice and compare; fails when any file of SHA256SUMS differs. With
/// `user` (as root), the second build is that ordinary user's.
pub fn run(sh: &Shell, project: &Project, method: Method, dir: Option<PathBuf>, user: Option<&str>) -> Result<()> {
    if user.is_some() && !userns::is_host_root() {
        bail!("--user runs the second build as another user, which needs root: run `cargo xtask repro` as root, or without --user");
    }
    let root = &project.root;
    let commit = exec::read(cmd!(sh, "git -C {root} rev-parse HEAD"))?;
    if !exec::read(cmd!(sh, "git -C {root} status --porcelain"))?.is_empty() {
        ui::note("uncommitted changes are not part of the comparison: both builds are of HEAD");
    }
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join(format!("lkc-repro-{}", &commit[..12])));
    let runs = [
        Run {
            name: "a",
            tz: "UTC",
            umask: 0o022,
            user: None,
        },
        Run {
            name: "b",
            tz: "Pacific/Chatham",
            umask: 0o077,
            user,
        },
    ];
    for run in &runs {
        build(sh, project, method, &dir.join(run.name), run)?;
    }
    let dist = |run: &str| dir.join(run).join("dist");
    let sums = |run: &str| fs::read_to_string(dist(run).join("SHA256SUMS")).context("reading SHA256SUMS");
    let (a, b) = (sums("a")?, sums("b")?);
    let differ = differing(&a, &b);
    let files = parse_sums(&a).len();
    if differ.is_empty() {
        ui::note(format!(
            "same inputs, same bytes: both builds of {commit:.12}{} wrote the same dist/SHA256SUMS ({files} files)",
            user.map_or(String::new(), |u| format!(" (as root, and as user {u})"))
        ));
        print!("{a}");
        return Ok(());
    }
    for file in &differ {
        let how = explain(sh, &dist("a").join(file), &dist("b").join(file));
        println!("{file} differs: {how}");
    }
    bail!(
        "{} of {files} files differ between the two builds (kept in {})",
        differ.len(),
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_names_changed_and_lone_files() {
        let a = "11  k\n22  i\n33  images/x.tar\n";
        let b = "11  k\n23  i\n44  images/y.tar\n";
        assert_eq!(differing(a, b), ["i", "images/x.tar", "images/y.tar"]);
        assert!(differing(a, a).is_empty());
    }

    #[test]
    fn first_difference_names_both_lines() {
        let a = "drwxr-xr-x 0/0 0 2026-11-23 usr\n-rw-r--r-- 0/0 5 2026-11-23 usr/lib/modules/modules.dep\n";
        let b = "drwxr-xr-x 0/0 0 2026-11-23 usr\n-rw-r--r-- 0/0 5 2026-11-30 usr/lib/modules/modules.dep\n";
        let d = first_difference(a, b).unwrap();
        assert!(d.contains("2026-11-23 usr/lib/modules/modules.dep"), "{d}");
        assert!(d.contains("2026-11-30 usr/lib/modules/modules.dep"), "{d}");
        assert_eq!(first_difference(a, a), None);
        assert!(first_difference(a, "").unwrap().contains("(nothing more)"));
    }
}
