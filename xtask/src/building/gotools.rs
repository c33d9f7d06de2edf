//! Go programs built from pinned modules through the Go module proxy: the linuxkit
//! CLI (and, for the apps, traefik and FerretDB); and this repository's own Go
//! programs (the mongo stand-in's shell), their dependencies pinned by their
//! go.sum. Built once per pin (or source) into the cache, outside the repo.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use xshell::{cmd, Shell};

use crate::{
    base::exec,
    base::files,
    base::pins::{GoTool, GoToolchain},
    base::project::Project,
    base::ui,
    building::host,
};

/// Where the pinned build of tool `name` lives; the version (and what the
/// build sets, if anything; for a tool of this repository, its source) is in
/// the path, so a changed pin builds anew and never reuses an old binary.
pub fn binary_path(project: &Project, name: &str, tool: &GoTool) -> Result<PathBuf> {
    let mut vars = tool.build_vars();
    if let Some(dir) = &tool.source {
        let dir = project.root.join(dir);
        let files = files::tree_files(&dir).with_context(|| format!("reading {}", project.rel(&dir).display()))?;
        vars += &format!(" source={}", files::content_hash("", &files, 32));
    }
    let dir = if vars.is_empty() {
        format!("{name}-{}", tool.version)
    } else {
        format!("{name}-{}-{}", tool.version, files::content_hash(&vars, &[], 3))
    };
    Ok(project.cache_path("go").join(dir).join(&tool.binary))
}

pub fn cached_binary(project: &Project, name: &str) -> Option<PathBuf> {
    let tool = project.pins.go.get(name)?;
    binary_path(project, name, tool).ok().filter(|p| p.is_file())
}

/// What the build line calls tool `name`.
fn describe(name: &str, tool: &GoTool) -> String {
    match &tool.source {
        Some(dir) => format!("{name} {} (Go, {dir}/)", tool.version),
        None => format!("{name} {} (Go module {})", tool.version, tool.module),
    }
}

/// The path of the pinned build of tool `name`, building it first if needed.
pub fn ensure(sh: &Shell, project: &Project, name: &str) -> Result<PathBuf> {
    let tool = project.pins.go_tool(name)?;
    let out = binary_path(project, name, tool)?;
    if out.is_file() {
        ui::cached(describe(name, tool));
        return Ok(out);
    }
    let go = host::path(project, "go")?;
    let step = ui::step(describe(name, tool));
    build(sh, &go, project, name, tool, &out).with_context(|| match &tool.source {
        Some(dir) => format!("building {name} from {dir}/ (pinned by its go.sum)"),
        None => format!(
            "building {name} from {}@{} (pinned in pins.yml)",
            tool.module, tool.version
        ),
    })?;
    step.done_with("built");
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Download {
    dir: PathBuf,
    sum: String,
    /// The version's `.info` file: `{"Version": …, "Time": …}`.
    info: PathBuf,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Info {
    time: String,
}

/// Go distribution `name` of pins.yml's `go_toolchains`, downloaded through
/// the Go module proxy (as `GOTOOLCHAIN` downloads one) and checked against
/// its pinned hash, copied into `goroot` with the modes a GOROOT has: the
/// module's zip records none, so the commands in `bin/` and `pkg/tool/` get
/// their execute bits back, as the go command gives them when it runs a
/// toolchain it downloaded.
pub fn install_toolchain(sh: &Shell, project: &Project, name: &str, goroot: &Path) -> Result<()> {
    let toolchain = project
        .pins
        .go_toolchains
        .get(name)
        .with_context(|| format!("pins.yml has no go_toolchains.{name}"))?;
    let module_at = format!("{}@{}", GoToolchain::MODULE, toolchain.version);
    let go = host::path(project, "go")?;
    let step = ui::step(format!("Go {} ({module_at}, Go module proxy)", toolchain.go_version()));
    let dl = {
        let _env = [sh.push_env("GOFLAGS", "-mod=mod"), sh.push_env("GOWORK", "off")];
        download(sh, &go, &module_at, Some(&toolchain.sum))?
    };
    if goroot.exists() {
        sh.remove_path(goroot)?;
    }
    let src = &dl.dir;
    exec::run(cmd!(sh, "cp -r {src} {goroot}"))?;
    let (bin, tool) = (goroot.join("bin"), goroot.join("pkg/tool"));
    exec::run(cmd!(sh, "chmod -R u=rwX,go=rX {goroot}"))?;
    exec::run(cmd!(sh, "chmod -R a+x {bin} {tool}"))?;
    step.done_with(format!("into /{}", GOROOT));
    Ok(())
}

/// `go mod download` of `module_at` (`MODULE@VERSION`) into the Go module
/// cache, its go.sum hash checked against `pinned` where pins.yml pins one.
fn download(sh: &Shell, go: &Path, module_at: &str, pinned: Option<&str>) -> Result<Download> {
    let json = exec::read(cmd!(sh, "{go} mod download -json {module_at}")).context("go mod download")?;
    let dl: Download = serde_json::from_str(&json).context("reading `go mod download -json` output")?;
    if let Some(want) = pinned.filter(|want| dl.sum != *want) {
        bail!("{module_at} has hash {}, but pins.yml pins {want}", dl.sum);
    }
    Ok(dl)
}

/// Where an image carries its Go distribution, as upstream's golang image.
pub const GOROOT: &str = "usr/local/go";

/// `-ldflags` for the build: stripped, and the version variables the pin names.
fn ldflags(tool: &GoTool, time: &str) -> String {
    let mut flags = vec!["-s".to_string()];
    if let Some(var) = &tool.version_var {
        flags.push(format!("-X {var}={}", tool.version));
    }
    if let Some(var) = &tool.date_var {
        flags.push(format!("-X {var}={time}"));
    }
    flags.join(" ")
}

fn build(sh: &Shell, go: &Path, project: &Project, name: &str, tool: &GoTool, out: &Path) -> Result<()> {
    if let Some(dir) = &tool.source {
        return build_source(sh, go, project, name, tool, dir, out);
    }
    let module_at = format!("{}@{}", tool.module, tool.version);
    let _env = [
        sh.push_env("CGO_ENABLED", "0"),
        sh.push_env("GOFLAGS", "-mod=mod"),
        sh.push_env("GOWORK", "off"),
        // A pinned `sum` is checked below, so the checksum database may skip the
        // module itself (it does not list untagged nested modules like linuxkit's).
        sh.push_env("GONOSUMDB", if tool.sum.is_some() { tool.module.as_str() } else { "" }),
    ];
    let dl = download(sh, go, &module_at, tool.sum.as_deref())?;
    let info = std::fs::read_to_string(&dl.info).with_context(|| format!("reading {}", dl.info.display()))?;
    let info: Info = serde_json::from_str(&info).with_context(|| format!("reading {}", dl.info.display()))?;
    let ldflags = format!("-ldflags={}", ldflags(tool, &info.time));
    // Build in a writable copy of the module: `go build` inside the module cache
    // is read-only, and `go install mod@version` rejects modules with replace lines.
    let work = work_copy(sh, project, name, &dl.dir)?;
    exec::run(cmd!(sh, "chmod -R u+w {work}"))?;
    if let Some(file) = &tool.version_file {
        let path = work.join(file);
        std::fs::write(&path, format!("{}\n", tool.version)).with_context(|| format!("writing {}", path.display()))?;
    }
    go_build(sh, go, &work, tool, &ldflags, out)
}

/// A fresh copy of `src` to build tool `name` in (a module cache's folder
/// is read-only; the repository's stays as it is).
fn work_copy(sh: &Shell, project: &Project, name: &str, src: &Path) -> Result<PathBuf> {
    let work = project.cache_path("go").join(format!("src-{name}"));
    if work.exists() {
        sh.remove_path(&work)?;
    }
    sh.create_dir(work.parent().unwrap())?;
    exec::run(cmd!(sh, "cp -r {src} {work}"))?;
    Ok(work)
}

/// `go build` of `tool`'s package in `work` into `out` (whole or not at all),
/// then `work` removed.
fn go_build(sh: &Shell, go: &Path, work: &Path, tool: &GoTool, ldflags: &str, out: &Path) -> Result<()> {
    let tmp = out.with_extension("partial");
    sh.create_dir(out.parent().unwrap())?;
    let package = &tool.package;
    {
        let _dir = sh.push_dir(work);
        exec::run(cmd!(sh, "{go} build -trimpath {ldflags} -o {tmp} {package}"))?;
    }
    std::fs::rename(&tmp, out)?;
    sh.remove_path(work)?;
    Ok(())
}

/// Build tool `name` from this repository's folder `dir`, in a copy of it (the
/// repository stays as it is), with its go.sum as the only source of hashes:
/// `-mod=readonly` fails on a dependency it does not list.
fn build_source(
    sh: &Shell,
    go: &Path,
    project: &Project,
    name: &str,
    tool: &GoTool,
    dir: &str,
    out: &Path,
) -> Result<()> {
    let src = project.root.join(dir);
    let declared = std::fs::read_to_string(src.join("go.mod"))
        .with_context(|| format!("reading {dir}/go.mod"))?
        .lines()
        .find_map(|line| line.strip_prefix("module ").map(|m| m.trim().to_string()));
    if declared.as_deref() != Some(tool.module.as_str()) {
        bail!(
            "{dir}/go.mod declares module {declared:?}, but pins.yml's go.{name}.module is {:?}",
            tool.module
        );
    }
    let _env = [
        sh.push_env("CGO_ENABLED", "0"),
        sh.push_env("GOFLAGS", "-mod=readonly"),
        sh.push_env("GOWORK", "off"),
    ];
    let work = work_copy(sh, project, name, &src)?;
    go_build(sh, go, &work, tool, &format!("-ldflags={}", ldflags(tool, "")), out)?;
    // Each edit of the source builds anew: the builds of earlier sources go.
    let this = out.parent().expect("in its folder");
    for entry in std::fs::read_dir(project.cache_path("go"))? {
        let path = entry?.path();
        let earlier = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&format!("{name}-")));
        if earlier && path != this {
            sh.remove_path(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_version_variables_are_set() {
        let pins = crate::base::pins::Pins::load(&crate::base::project::root()).unwrap();
        let traefik = pins.go_tool("traefik").unwrap();
        assert_eq!(
            ldflags(traefik, "2026-03-26T09:54:04Z"),
            format!(
                "-s -X github.com/traefik/traefik/v3/pkg/version.Version={} -X github.com/traefik/traefik/v3/pkg/version.BuildDate=2026-03-26T09:54:04Z",
                traefik.version
            )
        );
        assert_eq!(ldflags(pins.go_tool("linuxkit").unwrap(), "t"), "-s");
    }
}
