//! Host programs: the one path by which the xtask finds, checks and installs
//! every external program it runs (QEMU included), and `cargo xtask doctor`.
//!
//! A command states what it will need before it does any work
//! ([`require_all`]): a missing or too old program is installed from the
//! Debian package pinned in `pins.yml` (as root, saying so), or named with
//! the exact command that installs it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Mutex, Once},
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::base::{exec, pins::HostPackage, project::Project, ui, userns};

/// What a command is about to do, and so which programs it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Build images and VMs: mmdebstrap, buildah, skopeo (pulls), depmod, lz4, mksquashfs, cpio, go;
    /// curl, gpgv and xz read the mirror's signed package index (pins.lock).
    Build,
    /// Boot a VM: QEMU.
    Boot,
    /// Run a local registry: docker-registry.
    Registry,
    /// These programs, or files a package ships (what a `--format` is made
    /// with, and the firmware it boots with).
    Programs(&'static [&'static str]),
    /// Build and boot the plain Debian VM `bench --baseline` compares with.
    PlainVm,
    /// Check the VM's shell scripts (`cargo xtask test`): shellcheck.
    Lint,
}

/// The programs behind each need (their packages are in pins.yml).
pub fn programs(need: Need) -> &'static [&'static str] {
    match need {
        Need::Build => &[
            "mmdebstrap",
            "buildah",
            "skopeo",
            "depmod",
            "lz4",
            "mksquashfs",
            "cpio",
            "go",
            "curl",
            "gpgv",
            "xz",
        ],
        Need::Boot => &[QEMU],
        Need::Registry => &["docker-registry"],
        Need::Programs(programs) => programs,
        Need::PlainVm => &["mmdebstrap", "buildah", "zstd", "cpio", "bc", "curl"],
        Need::Lint => &["shellcheck"],
    }
}

pub const QEMU: &str = "qemu-system-x86_64";
/// Environment variable naming another QEMU binary to use.
pub const QEMU_ENV: &str = "QEMU";
/// File the xtask adds to apt's sources when a pinned package needs backports.
const BACKPORTS_SOURCES: &str = "/etc/apt/sources.list.d/linuxkit-compose-backports.sources";

/// What the host has of one program.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Ok {
        path: PathBuf,
        version: String,
    },
    Missing,
    TooOld {
        path: PathBuf,
        version: String,
    },
    /// There, but it does not run (`--version` fails).
    Broken {
        path: PathBuf,
    },
}

/// One program, what the host has of it, and how it is pinned.
#[derive(Debug, Clone)]
pub struct Check {
    pub program: String,
    pub pin: Option<HostPackage>,
    pub state: State,
}

impl Check {
    pub fn ok(&self) -> bool {
        matches!(self.state, State::Ok { .. })
    }

    /// What is wrong, for the one line the user reads.
    pub fn problem(&self) -> String {
        let wanted = match self.pin.as_ref().and_then(|p| p.min_version.first()) {
            Some(_) => format!(" (needs {})", self.pin.as_ref().unwrap().wanted_versions()),
            None => String::new(),
        };
        match &self.state {
            State::Ok { .. } => String::new(),
            State::Missing if self.program.starts_with('/') => format!("{} is missing", self.program),
            State::Missing => format!("`{}` is not installed{wanted}", self.program),
            State::TooOld { path, version } => {
                format!("`{}` {version} ({}) is too old{wanted}", self.program, path.display())
            }
            State::Broken { path } => format!("`{}` ({}) does not run", self.program, path.display()),
        }
    }
}

/// Look at `program` on this host: where, which version, new enough? An
/// absolute path is a file a package ships (firmware, boot code): there or not.
pub fn check(project: &Project, program: &str) -> Check {
    let pin = project.pins.debian.host_packages.get(program).cloned();
    if program.starts_with('/') {
        let path = PathBuf::from(program);
        let state = if path.is_file() {
            State::Ok {
                path,
                version: "file".into(),
            }
        } else {
            State::Missing
        };
        return Check {
            program: program.to_string(),
            pin,
            state,
        };
    }
    let found = if program == QEMU {
        match std::env::var_os(QEMU_ENV).filter(|v| !v.is_empty()) {
            Some(path) => which::which(PathBuf::from(path)).ok(),
            None => which::which(program).ok(),
        }
    } else {
        which::which(program).ok()
    };
    let state = match found {
        None => State::Missing,
        Some(path) => match version_of(&path, program) {
            None => State::Broken { path },
            Some(version) => {
                let new_enough = match (&pin, program) {
                    (Some(pin), _) => pin.accepts(&version),
                    (None, "go") => version_at_least(&version, GO_MIN),
                    _ => true,
                };
                if new_enough {
                    State::Ok { path, version }
                } else {
                    State::TooOld { path, version }
                }
            }
        },
    };
    Check {
        program: program.to_string(),
        pin,
        state,
    }
}

/// Go >= 1.21 fetches the newer toolchain a module asks for by itself.
const GO_MIN: &str = "1.21";
pub const GO_HINT: &str =
    "install Go >= 1.21 from https://go.dev/dl (newer toolchains are then fetched through the Go module proxy)";

/// The version `program --version` prints: its first `N.N[.N]` token.
/// `None` if it does not run at all. Its exit status does not matter: some
/// programs print their version and then complain about `--version`
/// (`mkfs.erofs 1.5`).
fn version_of(path: &Path, program: &str) -> Option<String> {
    let sh = Shell::new().ok()?;
    let flag = match program {
        "go" => "version",
        "mksquashfs" => "-version",
        _ => "--version",
    };
    let out = exec::output(cmd!(sh, "{path} {flag}"))?;
    Some(parse_version(&out).unwrap_or_else(|| "?".to_string()))
}

pub fn parse_version(text: &str) -> Option<String> {
    dotted_version(text).or_else(|| {
        // `kmod version 30`: a bare number right after the word "version".
        let mut words = text.split_whitespace();
        words.find(|w| *w == "version")?;
        words
            .next()
            .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
            .map(str::to_string)
    })
}

fn dotted_version(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .map(|t| t.trim_start_matches(|c: char| !c.is_ascii_digit()))
        .find(|t| {
            let mut parts = t.split('.');
            parts
                .next()
                .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                && parts
                    .next()
                    .is_some_and(|p| p.chars().next().is_some_and(|c| c.is_ascii_digit()))
        })
        .map(|t| {
            t.split('.')
                .map(|p| p.chars().take_while(char::is_ascii_digit).collect::<String>())
                .take(3)
                .collect::<Vec<_>>()
                .join(".")
        })
}

fn numbers(version: &str) -> Vec<u64> {
    version.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// `version >= min`, comparing numerically part by part.
pub fn version_at_least(version: &str, min: &str) -> bool {
    let (v, m) = (numbers(version), numbers(min));
    for i in 0..v.len().max(m.len()) {
        let (a, b) = (v.get(i).copied().unwrap_or(0), m.get(i).copied().unwrap_or(0));
        if a != b {
            return a > b;
        }
    }
    true
}

impl HostPackage {
    /// Is `version` acceptable? At least the highest minimum, or at least one
    /// of the lower minimums within that minimum's own series (8.2.6 accepts
    /// 8.2.7 but not 8.3.0).
    pub fn accepts(&self, version: &str) -> bool {
        let Some(highest) = self.min_version.iter().max_by(|a, b| {
            if version_at_least(a, b) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Less
            }
        }) else {
            return true;
        };
        if version_at_least(version, highest) {
            return true;
        }
        let v = numbers(version);
        self.min_version.iter().any(|min| {
            let m = numbers(min);
            m.len() >= 2 && v.len() >= 2 && v[..2] == m[..2] && version_at_least(version, min)
        })
    }

    fn wanted_versions(&self) -> String {
        let mut mins = self.min_version.clone();
        mins.sort_by(|a, b| {
            if version_at_least(a, b) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        });
        let (first, rest) = mins.split_first().map_or(("?", &[][..]), |(f, r)| (f.as_str(), r));
        let mut text = format!("{first} or later");
        for min in rest {
            let series: Vec<&str> = min.split('.').take(2).collect();
            text += &format!(", or {min}+ in {}.x", series.join("."));
        }
        text
    }
}

/// Make sure every program `needs` calls for is here and new enough, before
/// any work starts: install what is missing (as root, unless `--no-install`),
/// or stop naming each program, its package and the command that installs it.
pub fn require_all(sh: &Shell, project: &Project, needs: &[Need]) -> Result<()> {
    let mut wanted: Vec<&str> = Vec::new();
    for program in needs.iter().flat_map(|n| programs(*n)) {
        if !wanted.contains(program) {
            wanted.push(program);
        }
    }
    let checks: Vec<Check> = wanted.iter().map(|p| check(project, p)).collect();
    let bad: Vec<&Check> = checks.iter().filter(|c| !c.ok()).collect();
    if bad.is_empty() {
        return Ok(());
    }
    fix(sh, project, &bad)
}

/// Install what `bad` lacks, or explain how.
fn fix(sh: &Shell, project: &Project, bad: &[&Check]) -> Result<()> {
    let unpackaged: Vec<&&Check> = bad.iter().filter(|c| c.pin.is_none()).collect();
    if let Some(c) = unpackaged.first() {
        let hint = if c.program == "go" {
            GO_HINT.to_string()
        } else {
            format!("install `{}`", c.program)
        };
        bail!("{}: {hint}", c.problem());
    }
    if let Some(c) = bad
        .iter()
        .find(|c| c.program == QEMU && std::env::var_os(QEMU_ENV).is_some())
    {
        bail!(
            "{} (from ${QEMU_ENV}): point ${QEMU_ENV} at another QEMU, or unset it",
            c.problem()
        );
    }
    let can_install = project.install && userns::is_host_root() && which::which("apt-get").is_ok();
    if !can_install {
        let lines: Vec<String> = bad
            .iter()
            .map(|c| format!("{}: Debian package {}", c.problem(), c.pin.as_ref().unwrap().package))
            .collect();
        let why = if !project.install {
            "--no-install was given"
        } else {
            "installing needs root and apt-get"
        };
        bail!(
            "{}\ninstall with: {} ({why}; `cargo xtask doctor` lists every program)",
            lines.join("\n"),
            install_hint(bad)
        );
    }
    install(sh, project, bad)?;
    for c in bad {
        let again = check(project, &c.program);
        let package = &c.pin.as_ref().unwrap().package;
        let found = match &again.state {
            State::Ok { .. } => continue,
            State::Missing => None,
            State::TooOld { path, .. } | State::Broken { path } => Some(path),
        };
        let installed = ["/usr/bin", "/usr/sbin"]
            .map(|d| Path::new(d).join(&c.program))
            .into_iter()
            .find(|p| p.exists());
        match (found, installed) {
            (Some(found), Some(installed)) if *found != installed => bail!(
                "{}: it comes first on PATH and hides the {} that Debian package {package} installed",
                again.problem(),
                installed.display()
            ),
            _ => bail!(
                "{} even after installing Debian package {package}: try `apt-get install --reinstall {package}`",
                again.problem()
            ),
        }
    }
    Ok(())
}

/// The command a user runs to install `bad` by hand.
pub fn install_hint(bad: &[&Check]) -> String {
    let backports = bad.iter().any(|c| c.pin.as_ref().is_some_and(|p| p.backports)) && host_needs_backports(bad);
    let mut packages: Vec<&str> = bad.iter().map(|c| c.pin.as_ref().unwrap().package.as_str()).collect();
    packages.sort();
    packages.dedup();
    match (backports, codename()) {
        (true, Some(code)) => format!(
            "sudo apt-get install -y --no-install-recommends -t {code}-backports {} (with {code}-backports in apt's sources)",
            packages.join(" ")
        ),
        _ => format!("sudo apt-get install -y --no-install-recommends {}", packages.join(" ")),
    }
}

/// Does any package in `bad` need a version the host's own suite lacks?
fn host_needs_backports(bad: &[&Check]) -> bool {
    let Ok(sh) = Shell::new() else { return false };
    bad.iter()
        .filter_map(|c| c.pin.as_ref())
        .any(|pin| pin.backports && source(pin, &available(&sh, &pin.package)) != Source::HostSuite)
}

/// Where an acceptable version of a pinned package is to be had.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// The host's own suite: a plain `apt-get install`.
    HostSuite,
    /// Only this suite (a backports one): `apt-get install -t SUITE`.
    Suite(String),
    /// No suite in apt's sources.
    Nowhere,
}

/// The host's own suite when it has an acceptable version; a backports
/// suite only when it must.
fn source(pin: &HostPackage, available: &[(String, String)]) -> Source {
    let ok: Vec<&(String, String)> = available.iter().filter(|(v, _)| pin.accepts(v)).collect();
    if ok.iter().any(|(_, suite)| !suite.ends_with("-backports")) {
        return Source::HostSuite;
    }
    match ok.first() {
        Some((_, suite)) => Source::Suite(suite.clone()),
        None => Source::Nowhere,
    }
}

/// The versions of `package` apt's sources offer, as (upstream version, suite).
fn available(sh: &Shell, package: &str) -> Vec<(String, String)> {
    madison(&exec::probe(cmd!(sh, "apt-cache madison {package}")).unwrap_or_default())
}

/// `apt-cache madison` lines as (upstream version, suite).
pub fn madison(listing: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .filter_map(|line| {
            let mut cols = line.split('|').map(str::trim);
            let (_, version, source) = (cols.next()?, cols.next()?, cols.next()?);
            let suite = source.split_whitespace().nth(1)?.split('/').next()?;
            Some((debian_upstream(version), suite.to_string()))
        })
        .collect()
}

/// `1:10.0.2+ds-2+deb13u1~bpo12+1` -> `10.0.2`.
pub fn debian_upstream(version: &str) -> String {
    let no_epoch = version.split_once(':').map_or(version, |(_, v)| v);
    parse_version(no_epoch).unwrap_or_else(|| no_epoch.to_string())
}

/// The host's Debian release codename (`bookworm`), from /etc/os-release.
fn codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// Install the pinned packages of `bad` with apt, from `<codename>-backports`
/// where the host's own suite has no acceptable version (adding that suite to
/// apt's sources first, and saying so).
fn install(sh: &Shell, project: &Project, bad: &[&Check]) -> Result<()> {
    let mut packages: Vec<&HostPackage> = bad.iter().map(|c| c.pin.as_ref().unwrap()).collect();
    // Several programs or files may come from one package.
    packages.sort_by(|a, b| a.package.cmp(&b.package));
    packages.dedup_by(|a, b| a.package == b.package);
    let names: Vec<&str> = packages.iter().map(|p| p.package.as_str()).collect();
    let step = ui::step(format!("installing Debian packages {} (apt-get)", names.join(" ")));
    apt_update(sh)?;
    let mut plain = Vec::new();
    let mut targeted: Vec<(String, String)> = Vec::new();
    for pin in packages {
        match install_suite(sh, project, pin)? {
            None => plain.push(pin.package.clone()),
            Some(suite) => targeted.push((suite, pin.package.clone())),
        }
    }
    let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    if !plain.is_empty() {
        let what = plain.join(" ");
        exec::run(cmd!(sh, "apt-get install -y -q --no-install-recommends {plain...}"))
            .with_context(|| format!("installing {what}"))?;
    }
    for (suite, package) in targeted {
        ui::note(format!(
            "{package} comes from {suite}: the host's own suite has no version new enough"
        ));
        exec::run(cmd!(
            sh,
            "apt-get install -y -q --no-install-recommends -t {suite} {package}"
        ))
        .with_context(|| format!("installing {package} from {suite}"))?;
    }
    step.done();
    Ok(())
}

/// The suite to install `pin` from: `None` for the host's default, or the
/// backports suite that has an acceptable version.
fn install_suite(sh: &Shell, project: &Project, pin: &HostPackage) -> Result<Option<String>> {
    if pin.min_version.is_empty() {
        return Ok(None);
    }
    let package = &pin.package;
    match source(pin, &available(sh, package)) {
        Source::HostSuite => return Ok(None),
        Source::Suite(suite) => return Ok(Some(suite)),
        Source::Nowhere => {}
    }
    let Some(code) = codename().filter(|_| pin.backports) else {
        bail!(
            "no Debian suite in apt's sources has {package} {}",
            pin.wanted_versions()
        );
    };
    let suite = format!("{code}-backports");
    ui::note(format!(
        "adding {suite} to apt's sources ({BACKPORTS_SOURCES}): {package} {} is not in {code}",
        pin.wanted_versions()
    ));
    std::fs::write(
        BACKPORTS_SOURCES,
        format!(
            "# Added by linuxkit-compose's `cargo xtask` for {package} {} (pins.yml).\n\
             Types: deb\nURIs: {}\nSuites: {suite}\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
            pin.wanted_versions(),
            project.pins.debian.mirror
        ),
    )
    .with_context(|| format!("writing {BACKPORTS_SOURCES}"))?;
    exec::run(cmd!(sh, "apt-get update -q")).context("apt-get update")?;
    match source(pin, &available(sh, package)) {
        Source::HostSuite => Ok(None),
        Source::Suite(suite) => Ok(Some(suite)),
        Source::Nowhere => bail!("{suite} has no {package} {} either", pin.wanted_versions()),
    }
}

fn apt_update(sh: &Shell) -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| result = exec::run(cmd!(sh, "apt-get update -q")).context("apt-get update"));
    result
}

/// The path of `program`, which a [`require_all`] has vouched for.
/// Checked once per command: each boot asks for QEMU twice, and a check runs
/// the program.
pub fn path(project: &Project, program: &str) -> Result<PathBuf> {
    static FOUND: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = found.get(program) {
        return Ok(path.clone());
    }
    match check(project, program) {
        Check {
            state: State::Ok { path, .. },
            ..
        } => {
            found.insert(program.to_string(), path.clone());
            Ok(path)
        }
        c => bail!("{} (`cargo xtask doctor` says how to fix it)", c.problem()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::TestDir;

    fn qemu_pin() -> HostPackage {
        crate::base::project::for_tests().pins.debian.host_packages[QEMU].clone()
    }

    #[test]
    fn versions_from_version_lines() {
        let v = |s| parse_version(s).unwrap();
        assert_eq!(
            v("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)"),
            "10.0.2"
        );
        assert_eq!(
            v("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)"),
            "7.2.22"
        );
        assert_eq!(v("go version go1.26.8 linux/amd64"), "1.26.8");
        assert_eq!(
            v("buildah version 1.28.2 (image-spec: 1.1.0-rc2, runtime-spec: 1.0.2-dev)"),
            "1.28.2"
        );
        assert_eq!(v("mmdebstrap 1.3.5"), "1.3.5");
        assert_eq!(v("kmod version 30\n+ZSTD +XZ -ZLIB"), "30");
        assert_eq!(parse_version("no digits here"), None);
        assert_eq!(debian_upstream("1:10.0.2+ds-2+deb13u1~bpo12+1"), "10.0.2");
        assert_eq!(debian_upstream("1:7.2+dfsg-7+deb12u18+b3"), "7.2");
    }

    /// Multi-threaded TCG needs QEMU with the translation-lock fixes: 9.1, or
    /// the 9.0.2 / 8.2.6 backports. bookworm's 7.2 does not have them.
    #[test]
    fn qemu_pin_accepts_only_fixed_versions() {
        let pin = qemu_pin();
        for ok in ["10.0.2", "9.1.0", "9.2.3", "9.0.2", "9.0.4", "8.2.6", "8.2.10"] {
            assert!(pin.accepts(ok), "{ok} has the fixes");
        }
        for old in ["7.2.22", "7.2", "8.1.5", "8.2.5", "9.0.1", "9.0", "8.2"] {
            assert!(!pin.accepts(old), "{old} lacks the fixes");
        }
        assert_eq!(
            pin.wanted_versions(),
            "9.1 or later, or 9.0.2+ in 9.0.x, or 8.2.6+ in 8.2.x"
        );
    }

    #[test]
    fn madison_lists_versions_by_suite() {
        let listing = "\
qemu-system-x86 | 1:10.0.2+ds-2+deb13u1~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main amd64 Packages
qemu-system-x86 | 1:7.2+dfsg-7+deb12u18+b3 | http://deb.debian.org/debian bookworm/main amd64 Packages
";
        assert_eq!(
            madison(listing),
            [
                ("10.0.2".to_string(), "bookworm-backports".to_string()),
                ("7.2".to_string(), "bookworm".to_string())
            ]
        );
    }

    #[test]
    fn backports_only_when_the_host_suite_is_too_old() {
        let pin = qemu_pin();
        let v = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
        };
        let bookworm = v(&[("10.0.2", "bookworm-backports"), ("7.2", "bookworm")]);
        assert_eq!(source(&pin, &bookworm), Source::Suite("bookworm-backports".into()));
        let trixie = v(&[("10.0.2", "trixie"), ("10.1.0", "trixie-backports")]);
        assert_eq!(source(&pin, &trixie), Source::HostSuite);
        assert_eq!(source(&pin, &v(&[("7.2", "bookworm")])), Source::Nowhere);
    }

    #[test]
    fn every_needed_program_has_a_package_or_is_go() {
        let project = crate::base::project::for_tests();
        for need in [Need::Build, Need::Boot, Need::Registry, Need::PlainVm, Need::Lint] {
            for program in programs(need) {
                assert!(
                    *program == "go" || project.pins.debian.host_packages.contains_key(*program),
                    "{program} has no Debian package in pins.yml"
                );
            }
        }
    }

    /// The QEMU a boot uses is the one the requirement path found: $QEMU wins,
    /// and a $QEMU that does not run is reported as such, not as ENOENT.
    #[test]
    fn qemu_env_overrides_and_is_checked() {
        let project = crate::base::project::for_tests();
        let dir = TestDir::new("qemu");
        let fake = dir.join("qemu-old");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)'\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        // The only test that sets $QEMU.
        std::env::set_var(QEMU_ENV, &fake);
        let c = check(&project, QEMU);
        std::env::remove_var(QEMU_ENV);
        assert_eq!(
            c.state,
            State::TooOld {
                path: fake.clone(),
                version: "7.2.22".into()
            }
        );
        assert!(c.problem().contains("too old (needs 9.1 or later"), "{}", c.problem());
    }
}
