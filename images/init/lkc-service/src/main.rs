//! `service`: the VM-side runner for LinuxKit container bundles. Run from the
//! busybox init scripts, it applies each bundle's runtime.json and drives
//! `runc` directly (no containerd). This file holds the CLI and the four
//! commands; see the other modules for parsing, mounts and runc calls.

mod bundles;
mod mountopts;
mod prepare;
mod runc;
mod runtime;

use bundles::Bundle;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: service COMMAND [--root DIR]

commands:
  onboot      run each /containers/onboot bundle in name order, one at a time
  start       start every /containers/services bundle detached, concurrently
  onshutdown  run each /containers/onshutdown bundle in name order
  stop        send TERM to every service container (runc kill NAME TERM)

options:
  --root DIR  look for /containers under DIR instead of / (default /)
  -h, --help  show this help
";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmd {
    Onboot,
    Start,
    Onshutdown,
    Stop,
    Help,
}

#[derive(Debug, PartialEq)]
struct Args {
    cmd: Cmd,
    root: PathBuf,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut root = PathBuf::from("/");
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Args { cmd: Cmd::Help, root });
    }
    let mut cmd = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let next = match arg.as_str() {
            "--root" => {
                root = it.next().ok_or("--root needs a directory")?.into();
                continue;
            }
            "onboot" => Cmd::Onboot,
            "start" => Cmd::Start,
            "onshutdown" => Cmd::Onshutdown,
            "stop" => Cmd::Stop,
            other => return Err(format!("unknown argument `{other}`")),
        };
        if cmd.replace(next).is_some() {
            return Err("only one command may be given".into());
        }
    }
    let cmd = cmd.ok_or("no command given")?;
    Ok(Args { cmd, root })
}

fn log(msg: &str) {
    eprintln!("service: {msg}");
}

/// Prepare and run each bundle of `kind` to completion, one after another.
/// Failures are logged and the next bundle still runs.
fn run_all(root: &Path, kind: &str) -> Result<(), String> {
    for Bundle { name, dir } in bundles::list(&root.join("containers").join(kind))? {
        if let Err(e) = prepare::prepare(&dir) {
            log(&format!("{kind} {name} skipped: {e}"));
            continue;
        }
        match runc::run(&dir, &name) {
            Ok(st) => log(&format!("{kind} {name} exited with status {}", runc::code(st))),
            Err(e) => log(&format!("{kind} {name}: {e}")),
        }
    }
    Ok(())
}

/// Prepare and start every service detached, all at once: services do not
/// wait for each other (LinuxKit starts them concurrently too), and each
/// `runc run` takes a while under emulation.
fn start(root: &Path) -> Result<(), String> {
    let bundles = bundles::list(&root.join("containers/services"))?;
    std::thread::scope(|s| {
        for Bundle { name, dir } in &bundles {
            s.spawn(move || {
                if let Err(e) = prepare::prepare(dir) {
                    log(&format!("service {name} skipped: {e}"));
                    return;
                }
                match runc::run_detached(dir, name) {
                    Ok(st) if st.success() => log(&format!("started {name}")),
                    Ok(st) => log(&format!("starting {name} failed with status {}", runc::code(st))),
                    Err(e) => log(&format!("starting {name}: {e}")),
                }
            });
        }
    });
    Ok(())
}

/// Best-effort TERM to every service container.
fn stop(root: &Path) -> Result<(), String> {
    for Bundle { name, .. } in bundles::list(&root.join("containers/services"))? {
        match runc::kill_term(&name) {
            Ok(()) => log(&format!("stopped {name}")),
            Err(e) => log(&format!("stop {name}: {e}")),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            log(&e);
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match args.cmd {
        Cmd::Help => {
            print!("{USAGE}");
            Ok(())
        }
        Cmd::Onboot => run_all(&args.root, "onboot"),
        Cmd::Onshutdown => run_all(&args.root, "onshutdown"),
        Cmd::Start => start(&args.root),
        Cmd::Stop => stop(&args.root),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(&e);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(a: &[&str]) -> Result<Args, String> {
        parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn commands_and_root() {
        let a = parse(&["onboot"]).unwrap();
        assert_eq!((a.cmd, a.root), (Cmd::Onboot, PathBuf::from("/")));
        let a = parse(&["start", "--root", "/tmp/vm"]).unwrap();
        assert_eq!((a.cmd, a.root), (Cmd::Start, PathBuf::from("/tmp/vm")));
        assert_eq!(parse(&["--root", "/x", "stop"]).unwrap().cmd, Cmd::Stop);
        assert_eq!(parse(&["onshutdown"]).unwrap().cmd, Cmd::Onshutdown);
    }

    #[test]
    fn help_wins() {
        assert_eq!(parse(&["-h"]).unwrap().cmd, Cmd::Help);
        assert_eq!(parse(&["onboot", "--help"]).unwrap().cmd, Cmd::Help);
    }

    #[test]
    fn bad_arguments() {
        assert_eq!(parse(&[]).unwrap_err(), "no command given");
        assert!(parse(&["onboot", "--root"]).unwrap_err().contains("--root"));
        assert!(parse(&["bogus"]).unwrap_err().contains("bogus"));
        assert!(parse(&["onboot", "start"]).is_err());
    }
}
