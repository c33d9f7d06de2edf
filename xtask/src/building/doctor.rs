//! `cargo xtask doctor [--fix]`: every program the xtask runs, its version,
//! the Go tools it builds, the accelerator and the cache, and how to get what
//! is missing.

use std::path::Path;

use anyhow::{bail, Result};
use xshell::Shell;

use crate::{
    base::{
        project::{self, Project},
        ui, userns,
    },
    building::{
        gotools,
        host::{self, Check, Need, State},
    },
};

/// `cargo xtask doctor [--fix]`: every program the xtask runs (`formats`:
/// what every `--format` is made and booted with), its version,
/// and how to get a missing one. Fails when anything required is missing or
/// too old (after `--fix` installed what it could).
pub fn run(sh: &Shell, project: &Project, fix_all: bool, formats: &[Need]) -> Result<()> {
    let mut all: Vec<Need> = vec![Need::Build, Need::Boot, Need::Registry, Need::Lint];
    all.extend(formats);
    if fix_all {
        host::require_all(sh, project, &all)?;
    }
    let mut bad = Vec::new();
    ui::out("Host programs (Debian packages pinned in pins.yml `debian.host_packages`):");
    let mut seen = Vec::new();
    for need in all {
        for program in host::programs(need) {
            if seen.contains(program) {
                continue;
            }
            seen.push(*program);
            let c = host::check(project, program);
            let package = c.pin.as_ref().map_or("-", |p| p.package.as_str());
            match &c.state {
                State::Ok { path, version } => ui::out(format!(
                    "  ok        {program:<20} {version:<10} {package:<16} {}",
                    path.display()
                )),
                _ => {
                    ui::out(format!("  {:<9} {program:<20} {}", label(&c.state), c.problem()));
                    bad.push(c);
                }
            }
        }
    }
    ui::out(format!(
        "\nGo tools (built from pins.yml `go`, cached in {}):",
        project.cache_path("go").display()
    ));
    for (name, tool) in &project.pins.go {
        let state = match gotools::cached_binary(project, name) {
            Some(path) => format!("built       {}", path.display()),
            None => "not built yet (the first build that needs it builds it)".to_string(),
        };
        ui::out(format!("  {name:<10} {}@{}  {state}", tool.module, tool.version));
    }
    ui::out(format!(
        "\nKVM: {}",
        if Path::new("/dev/kvm").exists() {
            "/dev/kvm exists; each boot probes whether KVM runs a guest and otherwise uses TCG"
        } else {
            "no /dev/kvm: QEMU uses TCG (software emulation)"
        }
    ));
    let (userns, userns_ok) = userns::doctor_lines();
    ui::out("\nBuilds:");
    for line in &userns {
        ui::out(format!("  {line}"));
    }
    ui::out(format!(
        "Cache: {} (move it with ${})",
        project.cache.display(),
        project::CACHE_ENV
    ));
    if !userns_ok {
        bail!("this user cannot build yet: {}", userns.join("; "));
    }
    if !bad.is_empty() {
        let refs: Vec<&Check> = bad.iter().collect();
        let fixable = refs.iter().all(|c| c.pin.is_some());
        bail!(
            "{} required program(s) missing or too old; {}",
            bad.len(),
            if fixable {
                format!(
                    "`cargo xtask doctor --fix` (as root) installs them, or: {}",
                    host::install_hint(&refs)
                )
            } else {
                host::GO_HINT.to_string()
            }
        );
    }
    Ok(())
}

fn label(state: &State) -> &'static str {
    match state {
        State::Ok { .. } => "ok",
        State::Missing => "MISSING",
        State::TooOld { .. } => "TOO OLD",
        State::Broken { .. } => "BROKEN",
    }
}
