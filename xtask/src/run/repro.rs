//! `cargo xtask repro`: same inputs, same bytes. Two cold builds of one VM
//! from the same commit (each in its own checkout and cache, with another TZ
//! and umask, at another time), then every file of their `dist/SHA256SUMS`
//! compared; a file that differs is named with the first thing in it that
//! differs (a tar or cpio member and its metadata, else a byte offset).

use std::{
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    base::{exec, project::Project, ui},
    vm::method::Method,
};

/// How the two builds differ besides their caches and checkouts.
const RUNS: [(&str, &str, u32); 2] = [("a", "UTC", 0o022), ("b", "Pacific/Chatham", 0o077)];

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

/// Build `method`'s VM in a fresh checkout of HEAD at `dir`, with its own cache.
fn build(sh: &Shell, project: &Project, method: Method, dir: &Path, tz: &str, umask: u32) -> Result<()> {
    let src = dir.join("src");
    let root = &project.root;
    if src.exists() {
        let _ = exec::run(cmd!(sh, "git -C {root} worktree remove --force {src}"));
        let _ = fs::remove_dir_all(&src);
    }
    exec::run(cmd!(sh, "git -C {root} worktree add --detach {src} HEAD")).context("checking out HEAD")?;
    let cache = dir.join("cache");
    if cache.exists() {
        fs::remove_dir_all(&cache)?;
    }
    let step = ui::step(format!(
        "cold build of {} in {} (TZ={tz}, umask {umask:03o})",
        method.vm_name(),
        dir.display()
    ));
    let mut command = Command::new("cargo");
    command
        .args(["xtask", method.vm_name().trim_start_matches("compose-")])
        .current_dir(&src)
        .env("LINUXKIT_COMPOSE_CACHE", &cache)
        .env("TZ", tz)
        // Both checkouts compile the xtask into one target folder (each its own
        // binary: the path is part of the crate's identity), which no output depends on.
        .env("CARGO_TARGET_DIR", dir.with_file_name("target"));
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
    // The outputs stay for comparing; the checkout leaves the repository's worktree list.
    let dist = dir.join("dist");
    if dist.exists() {
        fs::remove_dir_all(&dist)?;
    }
    fs::rename(src.join("dist"), &dist)?;
    exec::run(cmd!(sh, "git -C {root} worktree remove --force {src}")).context("removing the checkout")?;
    step.done();
    Ok(())
}

/// Build twice and compare; fails when any file of SHA256SUMS differs.
pub fn run(sh: &Shell, project: &Project, method: Method, dir: Option<PathBuf>) -> Result<()> {
    let root = &project.root;
    let commit = exec::read(cmd!(sh, "git -C {root} rev-parse HEAD"))?;
    if !exec::read(cmd!(sh, "git -C {root} status --porcelain"))?.is_empty() {
        ui::note("uncommitted changes are not part of the comparison: both builds are of HEAD");
    }
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join(format!("lkc-repro-{}", &commit[..12])));
    for (name, tz, umask) in RUNS {
        build(sh, project, method, &dir.join(name), tz, umask)?;
    }
    let dist = |run: &str| dir.join(run).join("dist");
    let sums = |run: &str| fs::read_to_string(dist(run).join("SHA256SUMS")).context("reading SHA256SUMS");
    let (a, b) = (sums("a")?, sums("b")?);
    let differ = differing(&a, &b);
    let files = parse_sums(&a).len();
    if differ.is_empty() {
        ui::note(format!(
            "same inputs, same bytes: both builds of {commit:.12} wrote the same dist/SHA256SUMS ({files} files)"
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
