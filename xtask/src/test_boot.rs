//! `cargo xtask test-boot`: build, boot headless under QEMU, check what a user
//! would check over HTTP, print the timing, and always stop the VM.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use xshell::Shell;

use crate::{
    boot::{self, VmOpts},
    linuxkit,
    project::Project,
    qemu::{Accel, Console, Vm},
    ui,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Boot the smoke VM: one nginx service serving a known page.
    #[arg(long)]
    pub smoke: bool,
    /// Seconds to wait for the first HTTP 200 after QEMU starts
    /// (default: 300 under TCG, 90 under KVM).
    #[arg(long)]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub vm: VmOpts,
}

pub fn run(sh: &Shell, project: &Project, args: &Args) -> Result<()> {
    if !args.smoke {
        bail!("say which test to boot: --smoke (the compose methods come with their own flags)");
    }
    smoke(sh, project, args)
}

fn smoke(sh: &Shell, project: &Project, args: &Args) -> Result<()> {
    let vm_def = linuxkit::smoke_vm();
    let artifacts = linuxkit::build(sh, project, &vm_def)?;
    let accel = boot::accel(&args.vm, &artifacts.kernel);
    let timeout = Duration::from_secs(args.timeout.unwrap_or(match accel {
        Accel::Tcg => 300,
        Accel::Kvm => 90,
    }));
    let port = boot::free_port()?;
    let log = boot::serial_log(&project.dist, vm_def.name)?;
    let spec = boot::spec(&args.vm, &artifacts, accel, Console::File(log.clone()), vec![(port, 80)]);
    let step = ui::step(format!(
        "booting {} headless: serial console in {}, guest port 80 on 127.0.0.1:{port}",
        vm_def.name,
        project.rel(&log).display()
    ));
    let mut vm = Vm::spawn(&spec)?;
    let started = vm.started;
    let result = boot::wait_for_200(&mut vm, port, "localhost", started + timeout).and_then(|(body, at)| {
        if body != linuxkit::SMOKE_PAGE {
            bail!("HTTP 200, but not the smoke page: got {body:?}, want {:?}", linuxkit::SMOKE_PAGE);
        }
        Ok(at)
    });
    vm.stop();
    match result {
        Ok(at) => {
            step.done();
            println!("smoke: HTTP 200 with the smoke page {} after QEMU started ({accel})", ui::secs(at - started));
            Ok(())
        }
        Err(e) => {
            eprintln!("--- last lines of {} ---\n{}\n---", log.display(), boot::log_tail(&log, 60));
            Err(e.context(format!("smoke boot failed after {}", ui::secs(Instant::now() - started))))
        }
    }
}
