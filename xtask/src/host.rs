//! Host programs the build runs: finding them, installing missing Debian packages
//! with apt (when allowed), and `cargo xtask doctor`, which lists them all.

use std::{path::PathBuf, sync::Once};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{gotools, project::Project, ui};

/// Programs that do not come from a Debian package of the host's suite.
const GO_HINT: &str =
    "install Go >= 1.21 from https://go.dev/dl (newer toolchains are fetched through the Go module proxy)";

/// Find `program` on PATH, installing its Debian package first if it is missing
/// and the project may install.
pub fn require(sh: &Shell, project: &Project, program: &str) -> Result<PathBuf> {
    if let Ok(path) = which::which(program) {
        return Ok(path);
    }
    let Some(package) = project.pins.debian.host_packages.get(program) else {
        let hint = if program == "go" {
            GO_HINT.to_string()
        } else {
            format!("install `{program}`")
        };
        bail!("`{program}` is not on PATH: {hint}");
    };
    let install_cmd = format!("apt-get install -y --no-install-recommends {package}");
    if !project.install {
        bail!("`{program}` is not on PATH: install it with `sudo {install_cmd}` (or drop --no-install)");
    }
    if !is_root() || which::which("apt-get").is_err() {
        bail!("`{program}` is not on PATH: install it with `sudo {install_cmd}`");
    }
    let step = ui::step(format!(
        "installing Debian package {package} (for `{program}`): {install_cmd}"
    ));
    apt_update(sh)?;
    cmd!(sh, "apt-get install -y -q --no-install-recommends {package}")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
        .with_context(|| format!("installing {package}"))?;
    step.done();
    which::which(program).with_context(|| format!("{package} is installed but `{program}` is still not on PATH"))
}

fn apt_update(sh: &Shell) -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| result = cmd!(sh, "apt-get update -q").run().context("apt-get update"));
    result
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `cargo xtask doctor`: every external program, its version, and how to get a missing one.
pub fn doctor(sh: &Shell, project: &Project) -> Result<()> {
    let mut missing = 0;
    println!("Host programs (packages from pins.yml `debian.host_packages`):");
    let mut programs: Vec<(&str, Option<&str>)> = project
        .pins
        .debian
        .host_packages
        .iter()
        .map(|(prog, pkg)| (prog.as_str(), Some(pkg.as_str())))
        .collect();
    programs.push(("go", None));
    for (program, package) in programs {
        match which::which(program) {
            Ok(path) => println!(
                "  ok       {program:<20} {}  ({})",
                version(sh, program),
                path.display()
            ),
            Err(_) => {
                missing += 1;
                let fix = match package {
                    Some(pkg) => format!("sudo apt-get install -y --no-install-recommends {pkg}"),
                    None => GO_HINT.to_string(),
                };
                println!("  MISSING  {program:<20} {fix}");
            }
        }
    }
    println!(
        "\nGo tools (built from pins.yml `go`, cached in {}):",
        project.cache_path("go").display()
    );
    for (name, tool) in &project.pins.go {
        let state = match gotools::cached_binary(project, name) {
            Some(path) => format!("built       {}", path.display()),
            None => "not built yet (the first build that needs it builds it)".to_string(),
        };
        println!("  {name:<10} {}@{}  {state}", tool.module, tool.version);
    }
    println!(
        "\nKVM: {}",
        if std::path::Path::new("/dev/kvm").exists() {
            "/dev/kvm exists; each boot probes whether it works and otherwise uses TCG"
        } else {
            "no /dev/kvm: QEMU uses TCG (software emulation)"
        }
    );
    println!(
        "Cache: {} (move it with ${})",
        project.cache.display(),
        crate::project::CACHE_ENV
    );
    if missing > 0 {
        println!("\n{missing} program(s) missing. Builds install Debian packages themselves when run as root.");
    }
    Ok(())
}

fn version(sh: &Shell, program: &str) -> String {
    let flag = if program == "go" { "version" } else { "--version" };
    let out = cmd!(sh, "{program} {flag}")
        .quiet()
        .ignore_status()
        .read()
        .unwrap_or_default();
    out.lines().next().unwrap_or("?").trim().to_string()
}
