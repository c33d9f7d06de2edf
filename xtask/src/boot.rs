//! Booting a built VM: picking the accelerator, a free loopback port, and (for
//! tests) waiting with a deadline until the guest answers HTTP.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::{
    http,
    linuxkit::Artifacts,
    qemu::{self, Accel, Console, VmSpec, Why},
    ui,
};

/// How the user asked for the VM to run.
#[derive(Debug, Clone, clap::Args)]
pub struct VmOpts {
    /// Accelerator: kvm or tcg. Default: KVM if a short probe boot shows it works, else TCG.
    #[arg(long, value_enum)]
    pub accel: Option<Accel>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 3072)]
    pub memory: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
}

pub fn accel(opts: &VmOpts, kernel: &Path) -> Accel {
    let has_kvm = Path::new("/dev/kvm").exists();
    let (accel, why) = qemu::choose_accel(opts.accel, has_kvm, || qemu::probe_kvm(kernel, Duration::from_secs(10)));
    let reason = match why {
        Why::Requested => "as requested with --accel",
        Why::NoKvmDevice => "no /dev/kvm",
        Why::KvmProbeFailed => "/dev/kvm exists but a KVM probe boot did not finish: software emulation",
        Why::KvmProbeOk => "KVM probe boot worked",
    };
    ui::note(format!("QEMU accelerator: {accel} ({reason})"));
    accel
}

pub fn spec(opts: &VmOpts, artifacts: &Artifacts, accel: Accel, console: Console, forwards: Vec<(u16, u16)>) -> VmSpec {
    VmSpec {
        kernel: artifacts.kernel.clone(),
        initrd: artifacts.initrd.clone(),
        cmdline: artifacts.cmdline.clone(),
        accel,
        cpus: opts.cpus,
        memory_mb: opts.memory,
        console,
        forwards,
    }
}

/// Boot `artifacts` with the serial console on this terminal and guest port 80
/// on 127.0.0.1:`port`, after `intro` has said what to expect; returns when
/// QEMU exits.
pub fn interactive(opts: &VmOpts, artifacts: &Artifacts, port: u16, intro: impl FnOnce()) -> Result<()> {
    let accel = accel(opts, &artifacts.kernel);
    let spec = spec(opts, artifacts, accel, Console::Terminal, vec![(port, 80)]);
    intro();
    println!("Ctrl-A X quits QEMU; Enter on the console gives a root shell in the VM.");
    let status = qemu::Vm::spawn(&spec)?.wait().context("waiting for QEMU")?;
    if !status.success() {
        bail!("QEMU exited with {status}");
    }
    Ok(())
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

pub fn serial_log(dist: &Path, name: &str) -> Result<PathBuf> {
    fs::create_dir_all(dist)?;
    let log = dist.join(format!("{name}-serial.log"));
    fs::write(&log, b"")?;
    Ok(log)
}

/// Poll `GET http://127.0.0.1:port/` with `Host: host` until it returns 200,
/// QEMU exits, `given_up` reports that the guest gave up, or the deadline
/// passes. Returns the body and when it came.
pub fn wait_for_200(
    vm: &mut qemu::Vm,
    port: u16,
    host: &str,
    deadline: Instant,
    given_up: &dyn Fn() -> Option<String>,
) -> Result<(String, Instant)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut last = String::from("no answer yet");
    loop {
        if let Some(status) = vm.exited()? {
            bail!("QEMU exited ({status}) before {host} answered HTTP 200 (last: {last})");
        }
        if let Some(reason) = given_up() {
            bail!("the guest gave up before {host} answered HTTP 200: {reason}");
        }
        match http::get(addr, host, "/", Duration::from_secs(5)) {
            Ok(r) if r.status == 200 => return Ok((r.body, Instant::now())),
            Ok(r) => last = format!("HTTP {}", r.status),
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!("no HTTP 200 for Host {host} on 127.0.0.1:{port} before the deadline (last: {last})");
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// The serial log as text (empty if it cannot be read: it is only ever evidence).
pub fn read_log(log: &Path) -> String {
    fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The first line of the serial log that starts with `prefix`.
pub fn log_line(log: &Path, prefix: &str) -> Option<String> {
    read_log(log)
        .lines()
        .find(|l| l.starts_with(prefix))
        .map(str::to_string)
}

/// The last `n` lines of the serial log, for failure reports.
pub fn log_tail(log: &Path, n: usize) -> String {
    let text = read_log(log);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
