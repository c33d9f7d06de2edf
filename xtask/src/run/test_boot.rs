//! `cargo xtask test-boot`: build, boot headless under QEMU, check what a user
//! would check over HTTP, print the timing, and always stop the VM.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use xshell::Shell;

use crate::{
    app::compose::{App, Port, Service},
    base::{http, project::Project, ui},
    building::registry::Address,
    run::{
        boot::{self, VmOpts},
        data,
        phases::{self, Phases},
        qemu::{Accel, Console, Forward, Vm},
        session,
    },
    vm::{linuxkit, method::Method},
};

/// traefik's answer for a Host no router matches.
const TRAEFIK_404: &str = "404 page not found\n";
/// How images/compose/compose-up says it gave up.
const RUNNER_FAILED: &str = "compose: FAILED";
/// A Host no compose file routes (.invalid is reserved, RFC 2606).
const UNKNOWN_HOST: &str = "no-such-app.invalid";

/// A page the boot test must get with HTTP 2xx (`--get 3000/api/users`):
/// one the app serves from its database, where `/` is a page that never
/// asks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Get {
    /// The published port.
    pub port: u16,
    /// The path, from its `/`.
    pub path: String,
}

impl std::str::FromStr for Get {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (port, path) = text.split_once('/').unwrap_or((text, ""));
        let port = port
            .parse()
            .map_err(|_| format!("`{text}`: want PORT/PATH, a published port and a path (3000/api/users)"))?;
        Ok(Get {
            port,
            path: format!("/{path}"),
        })
    }
}

impl std::fmt::Display for Get {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.port, self.path)
    }
}

/// What to boot and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// A compose method's VM, with the app; `None`: the smoke VM.
    pub method: Option<Method>,
    /// The user's own registry (dynamic).
    pub registry: Option<Address>,
    /// Dynamic only: stop the local registry once the images are pushed, and
    /// pass if the VM then fails cleanly, saying the registry cannot be reached.
    pub unreachable_registry: bool,
    /// Seconds to wait for the first HTTP 200 after QEMU starts (default:
    /// 300 under TCG, 90 under KVM for the smoke VM; 600 and 240 for compose VMs).
    pub timeout: Option<u64>,
    /// More Host names to probe through the router's port, for an app whose
    /// router is not traefik (its Host rules are in its own configuration,
    /// which the xtask does not read): each must answer 200.
    pub hosts: Vec<String>,
    /// Check only these published ports (`--port`); empty: every published
    /// TCP port.
    pub ports: Vec<u16>,
    /// Pages that must also answer 2xx (`--get PORT/PATH`).
    pub gets: Vec<Get>,
    /// Boot twice on one data disk, the first boot ended as this says
    /// (compose VMs).
    pub restart: Option<Restart>,
    /// After the restart, the first checked port's `GET /` holds this.
    pub expect_after_restart: Option<String>,
    /// Boot on this data disk as it is (made blank if missing), not on a new,
    /// empty one.
    pub data_disk: Option<PathBuf>,
    pub vm: VmOpts,
}

/// How `--restart` ends the first boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Restart {
    /// The ACPI power button: the VM must power off with its services
    /// stopped and its disks unmounted.
    Clean,
    /// SIGKILL to QEMU, a power cut: what the app committed must still be
    /// there (the disk honours flushes; the journal recovers the rest).
    Kill,
}

/// How long a clean stop may take: the services' grace periods (10 s each
/// by default, in parallel), the engine's own, unmounting; past it the
/// test fails.
const STOP_DEADLINE: Duration = Duration::from_secs(120);

/// Docker's grace period for a service that sets no `stop_grace_period`
/// (the native runner's too).
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// What a clean stop may take inside the VM beyond the services' longest
/// grace period: the engine's own stop (static and dynamic), ending the
/// other processes (1 s), unmounting, under TCG. Seen: 13-16 s for the
/// static VM (Docker's engine ends 3.5 s after its last container, then
/// waits 5 s for the compose runner's event stream to close); a service
/// the stop waited for instead of killing it at its grace period would take
/// a minute (the runner's own wait).
const STOP_OVERHEAD: Duration = Duration::from_secs(30);

/// The longest `stop_grace_period` of `app`'s services (Docker's 10 s where
/// one sets none): a clean stop kills what still runs then.
fn longest_grace(app: &App) -> Duration {
    app.services
        .iter()
        .map(|s| {
            s.process
                .stop_grace_period
                .as_deref()
                .and_then(crate::app::model::duration_ms)
                .map_or(DEFAULT_GRACE, Duration::from_millis)
        })
        .max()
        .unwrap_or(DEFAULT_GRACE)
}

/// How long rc.shutdown took inside the VM, from the uptimes its first and
/// last lines print (a line may start with what the console's shell printed
/// just before: its prompt and a terminal query).
fn guest_stop_time(console: &str) -> Option<Duration> {
    let uptime = |prefix: &str| {
        let line = console.lines().rev().find_map(|l| l.find(prefix).map(|at| &l[at..]))?;
        let (_, rest) = line.trim_end().rsplit_once("(uptime ")?;
        rest.strip_suffix("s)")?.parse::<f64>().ok()
    };
    let (start, end) = (uptime(STOPPING)?, uptime(STOPPED_CLEANLY)?);
    (end >= start).then(|| Duration::from_secs_f64(end - start))
}

/// The services the native runner killed at the end of their grace period,
/// as it said on the console.
fn killed_at_grace(console: &str) -> Vec<String> {
    console
        .lines()
        .filter_map(|l| l.split_once(KILLED_AT_GRACE).map(|(before, _)| before))
        .filter_map(|before| before.rsplit(' ').next())
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

/// How the native runner's supervisor says it kills a service at the end of
/// its grace period (`NAME did not stop in 10s, killing it`).
const KILLED_AT_GRACE: &str = " did not stop in ";

/// rc.shutdown's first line.
const STOPPING: &str = "rc.shutdown: stopping the services";

/// The size of the data disk a boot test makes (a sparse file), for the
/// volumes alone; a dynamic VM's engine pulls its images onto it too, so it
/// gets `run-*`'s.
fn test_disk_gib(method: Option<Method>) -> u64 {
    match method {
        Some(Method::Dynamic) => data::DEFAULT_GIB,
        _ => 2,
    }
}

/// What rc.shutdown says when the services are stopped and the disks unmounted.
const STOPPED_CLEANLY: &str = "rc.shutdown: services stopped, disks unmounted";

/// Time from QEMU start to the first HTTP 200, per probed Host, and the
/// accelerator the VM ran under.
#[derive(Debug, Default)]
pub struct Timings {
    pub accel: Option<Accel>,
    pub hosts: Vec<(String, Duration)>,
    /// What the serial log says about the boot (compose VMs).
    pub phases: Option<Phases>,
    /// `--restart`: the same for the second boot, on the first's data disk.
    pub second: Option<Box<Timings>>,
    /// The boot's serial console log.
    pub serial: Option<PathBuf>,
}

/// Run the boot test; boot once more if the first boot died of QEMU's
/// stale-code fault (see [`TcgStaleCode`]), which is the emulator's, not the
/// app's. Only once: a second such crash fails the test.
pub fn run(sh: &Shell, project: &Project, args: &Options, app: &App) -> Result<Timings> {
    match measure(sh, project, args, app) {
        Err(e) if e.downcast_ref::<TcgStaleCode>().is_some() => {
            ui::tell!("{e:#}\nbooting once more: this crash is QEMU's, not the app's");
            measure(sh, project, args, app)
        }
        other => other,
    }
}

/// The guest kernel oopsed on an `int3` under multi-threaded TCG. Linux
/// patches its own code at run time (static keys, with `text_poke_bp`: an
/// `int3` first, then the new bytes); QEMU's multi-threaded TCG now and then
/// runs a stale translation of the patched bytes on the other vCPU, and the
/// kernel meets an `int3` it no longer expects. Seen on QEMU 10.0.2 in about
/// one boot of a hundred here; never under KVM.
#[derive(Debug)]
pub struct TcgStaleCode {
    /// The kernel's `Oops: int3` line and the function it names.
    pub oops: String,
}

impl std::fmt::Display for TcgStaleCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the guest kernel crashed ({}): QEMU's multi-threaded TCG ran a stale copy of code the kernel had just patched",
            self.oops
        )
    }
}

/// Add to a failed boot's error `e` that the guest kernel crashed, if its
/// serial log `console` says so; as a [`TcgStaleCode`] when it is that fault.
fn explain_crash(e: anyhow::Error, console: &str, accel: Accel) -> anyhow::Error {
    match kernel_crash(console) {
        Some(oops) if accel == Accel::Tcg && oops.starts_with("Oops: int3") => e.context(TcgStaleCode { oops }),
        Some(oops) => e.context(format!("the guest kernel crashed: {oops}")),
        None => e,
    }
}

/// The first kernel crash in a serial log: its `Oops:`, `BUG:` or
/// `Kernel panic` line, with the `RIP:` line that follows it if there is one.
fn kernel_crash(console: &str) -> Option<String> {
    let mut lines = console.lines();
    let crash = lines.find(|l| ["Oops:", "BUG:", "Kernel panic"].iter().any(|m| l.contains(m)))?;
    let crash = after_printk_time(crash);
    let rip = lines
        .take(8)
        .find(|l| l.contains("RIP: 0010:"))
        .map(|l| format!(" at {}", after_printk_time(l).trim_start_matches("RIP: 0010:")));
    Some(format!("{crash}{}", rip.unwrap_or_default()))
}

fn after_printk_time(line: &str) -> &str {
    match line
        .trim_start()
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
    {
        Some((_, text)) => text.trim(),
        None => line.trim(),
    }
}

/// Run the boot test `args` describes (`app` is the compose app a method's VM
/// runs) and return its timings.
pub fn measure(sh: &Shell, project: &Project, args: &Options, app: &App) -> Result<Timings> {
    match args.method {
        None => smoke(sh, project, args),
        Some(method) => compose(sh, project, args, method, app),
    }
}

/// A headless VM with guest ports on free loopback ports.
struct Headless {
    vm: Vm,
    forwards: Vec<Forward>,
    log: std::path::PathBuf,
    qmp: std::path::PathBuf,
    /// Holds the serial log's name for this boot.
    _serial: boot::SerialLog,
    accel: Accel,
    deadline: Instant,
    step: ui::Step,
}

/// Boot `artifacts` headless on this boot's data disk: the user's
/// (`--data-disk`) as it is; else a new, empty one when `fresh` (every test
/// starts clean), else the one the boot before left (`--restart`).
fn boot(
    project: &Project,
    args: &Options,
    name: &str,
    artifacts: &boot::Pinned,
    guest_ports: &[(u16, bool)],
    timeouts: (u64, u64),
    fresh: bool,
) -> Result<Headless> {
    let size = test_disk_gib(args.method);
    let disk = match &args.data_disk {
        Some(path) => data::prepare(path, size, false)?,
        None => data::prepare(&artifacts.scratch("data.img"), size, fresh)?,
    };
    let vm_opts = VmOpts {
        data: Some(disk.path),
        ..args.vm.clone()
    };
    let accel = boot::accel(project, &vm_opts, &artifacts.kernel)?;
    let timeout = Duration::from_secs(args.timeout.unwrap_or(match accel {
        Accel::Tcg => timeouts.0,
        Accel::Kvm => timeouts.1,
    }));
    let hosts = boot::free_ports(&guest_ports.iter().map(|&(_, udp)| udp).collect::<Vec<_>>())?;
    let forwards: Vec<Forward> = guest_ports
        .iter()
        .zip(hosts)
        .map(|(&(guest, udp), host)| Forward { host, guest, udp })
        .collect();
    let serial = boot::serial_log(&project.dist, name)?;
    let log = serial.path.clone();
    let spec = boot::spec(
        project,
        &vm_opts,
        artifacts,
        accel,
        Console::File(log.clone()),
        forwards.clone(),
    )?;
    let ports: Vec<String> = forwards
        .iter()
        .map(|f| {
            format!(
                "guest port {} on 127.0.0.1:{}{}",
                f.guest,
                f.host,
                if f.udp { " (udp)" } else { "" }
            )
        })
        .collect();
    ui::note(format!(
        "{name}: serial console in {}, {}",
        project.rel(&log).display(),
        ports.join(", ")
    ));
    let step = match &artifacts.image {
        None => ui::step(format!("boot {name} headless ({accel})")),
        Some((format, image)) => ui::step(format!(
            "boot {name} headless ({accel}) from {} ({format})",
            project.rel(image).display()
        )),
    };
    let qmp = spec.qmp.clone().expect("boot::spec gives every VM a QMP socket");
    let vm = Vm::spawn(&spec)?;
    let deadline = vm.started + timeout;
    Ok(Headless {
        vm,
        qmp,
        forwards,
        log,
        _serial: serial,
        accel,
        deadline,
        step,
    })
}

/// Boot a compose method's VM headless, with its deadlines (600 s under
/// TCG, 240 s under KVM).
fn boot_compose(
    project: &Project,
    args: &Options,
    method: Method,
    artifacts: &boot::Pinned,
    guest_ports: &[(u16, bool)],
    fresh: bool,
) -> Result<Headless> {
    boot(
        project,
        args,
        method.vm_name(),
        artifacts,
        guest_ports,
        (600, 240),
        fresh,
    )
}

impl Headless {
    /// Poll published port `guest_port` (`GET path`, `Host: localhost`)
    /// until `accept` takes the answer (`want` says what that is), the guest
    /// gives up, or the deadline passes: the host port it is forwarded to,
    /// the answer, and when it came.
    fn wait_on(
        &mut self,
        guest_port: u16,
        path: &str,
        want: &str,
        accept: &dyn Fn(&http::Answer) -> bool,
    ) -> Result<(u16, http::Answer, Instant)> {
        let log = self.log.clone();
        let gave_up = move || gave_up(&boot::read_log(&log));
        let port = self.port(guest_port);
        let (answer, at) = boot::wait_for(
            &mut self.vm,
            port,
            ("localhost", path),
            self.deadline,
            &gave_up,
            want,
            accept,
        )?;
        Ok((port, answer, at))
    }

    /// The loopback port guest TCP port `guest` is forwarded from.
    fn port(&self, guest: u16) -> u16 {
        self.forwards
            .iter()
            .find(|f| f.guest == guest && !f.udp)
            .map(|f| f.host)
            .expect("every probed port is forwarded")
    }

    /// Press the VM's power button and wait for it to power off, having
    /// stopped its services and unmounted its disks, as a clean stop must,
    /// and within the app's longest grace period (plus [`STOP_OVERHEAD`]):
    /// a service that ignores its stop signal is killed at its grace period,
    /// and the stop ends there, not later.
    fn power_down_cleanly(&mut self, app: &App) -> Result<()> {
        let pressed = Instant::now();
        if !self.vm.power_down(&self.qmp, pressed + STOP_DEADLINE)? {
            bail!(
                "the VM did not power off within {} of its ACPI power button",
                ui::secs(STOP_DEADLINE)
            );
        }
        let console = boot::read_log(&self.log);
        if !console.contains(STOPPED_CLEANLY) {
            bail!("the VM powered off, but its console never said `{STOPPED_CLEANLY}`");
        }
        let grace = longest_grace(app);
        let Some(inside) = guest_stop_time(&console) else {
            bail!("the VM stopped, but rc.shutdown's lines do not say when it started and ended (their uptimes)");
        };
        if inside > grace + STOP_OVERHEAD {
            bail!(
                "the clean stop took {} inside the VM: more than the services' longest grace period ({}) and {} to stop the rest and unmount; a service outlived its grace period",
                ui::secs(inside),
                ui::secs(grace),
                ui::secs(STOP_OVERHEAD)
            );
        }
        let killed = killed_at_grace(&console);
        ui::say!(
            "  stopped cleanly {} after its ACPI power button ({} inside the VM; longest grace period {}{}): services stopped, disks unmounted",
            ui::secs(pressed.elapsed()),
            ui::secs(inside),
            ui::secs(grace),
            if killed.is_empty() {
                String::new()
            } else {
                format!(", killed at it: {}", killed.join(", "))
            }
        );
        Ok(())
    }

    /// Stop the VM; on failure show the serial log's tail and what the compose
    /// runner said.
    fn finish<T>(self, result: Result<T>) -> Result<T> {
        let Headless {
            vm,
            log,
            step,
            _serial,
            accel,
            ..
        } = self;
        let started = vm.started;
        vm.stop();
        match result {
            Ok(value) => {
                step.done();
                Ok(value)
            }
            Err(e) => {
                ui::tell!("--- last lines of {} ---\n{}\n---", log.display(), ui::tail(&log, 60));
                let compose = compose_lines(&log);
                if !compose.is_empty() {
                    ui::tell!("--- what the compose runner said ---\n{compose}\n---");
                }
                let took = ui::secs(started.elapsed());
                let console = boot::read_log(&log);
                let mut e = explain_crash(e, &console, accel);
                if let Some(restarts) = restarted(&console) {
                    e = e.context(restarts);
                }
                Err(e.context(format!("boot test failed {took} after QEMU started")))
            }
        }
    }
}

fn compose_lines(log: &Path) -> String {
    boot::read_log(log)
        .lines()
        .filter(|l| l.starts_with("compose:"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn smoke(sh: &Shell, project: &Project, args: &Options) -> Result<Timings> {
    let vm_def = linuxkit::smoke_vm();
    let mut artifacts = boot::pinned(project, || linuxkit::build(sh, project, &vm_def))?;
    boot::with_format(sh, project, &mut artifacts, &vm_def.name, &args.vm)?;
    let mut h = boot(project, args, &vm_def.name, &artifacts, &[(80, false)], (300, 90), true)?;
    let log = h.log.clone();
    let console = log.clone();
    let gave_up = move || gave_up(&boot::read_log(&console));
    let port = h.port(80);
    let result = boot::wait_for_200(&mut h.vm, port, "localhost", h.deadline, &gave_up).and_then(|(body, at)| {
        if body != crate::moby::SMOKE_PAGE {
            bail!(
                "HTTP 200, but not the smoke page: got {body:?}, want {:?}",
                crate::moby::SMOKE_PAGE
            );
        }
        let took = at - h.vm.started;
        ui::say!(
            "smoke: HTTP 200 with the smoke page {} after QEMU started ({})",
            ui::secs(took),
            h.accel
        );
        Ok(Timings {
            accel: Some(h.accel),
            hosts: vec![("localhost".to_string(), took)],
            ..Timings::default()
        })
    });
    let mut timings = h.finish(result)?;
    timings.phases = Some(phases::parse(&boot::read_log(&log)));
    timings.serial = Some(log);
    Ok(timings)
}

fn compose(sh: &Shell, project: &Project, args: &Options, method: Method, app: &App) -> Result<Timings> {
    let guest_ports = probe_plan(app, &args.hosts, &args.ports, &args.gets)?;
    let registry = args.registry.as_ref();
    let mut prepared = session::prepare(sh, project, method, app, registry, &args.vm)?;
    if args.unreachable_registry {
        return unreachable_registry(project, args, method, app, &guest_ports, prepared).map(|()| Timings::default());
    }
    let mut h = boot_compose(project, args, method, &prepared.artifacts, &guest_ports, true)?;
    let log = h.log.clone();
    let mut result = check_app(&mut h, app, &args.hosts, &args.ports, &args.gets);
    match args.restart {
        Some(Restart::Clean) => result = result.and_then(|t| h.power_down_cleanly(app).map(|()| t)),
        Some(Restart::Kill) if result.is_ok() => {
            h.vm.kill();
            ui::say!("  killed QEMU (SIGKILL), as a power cut would");
        }
        _ => {}
    }
    let mut timings = h.finish(result)?;
    timings.phases = Some(said_phases(&log));
    timings.serial = Some(log.clone());
    if args.restart.is_some() {
        // The second boot's console goes to the same file: keep the first's.
        let _ = std::fs::copy(&log, log.with_extension("first.log"));
        timings.second = Some(Box::new(restart(project, args, method, app, &prepared, &guest_ports)?));
    }
    ui::say!(
        "{}: {}",
        method.vm_name(),
        summary(app, &args.hosts, &args.ports, &args.gets)
    );
    let said = console_shell(&boot::read_log(&log));
    match (project.release, said) {
        (true, false) => ui::say!(
            "{}: release VM: served, and no shell was started on its console",
            method.vm_name()
        ),
        (true, true) => {
            bail!("a release VM started a shell on its console (its serial log says `{CONSOLE_SHELL_STARTED}`)")
        }
        _ => {}
    }
    if let Some(local) = prepared.local_registry.as_mut() {
        local.stop();
        let pulled = local.pulled_manifests();
        // Each image as the VM names it in the registry.
        let missing: Vec<String> = app
            .images()
            .into_iter()
            .map(crate::building::registry::relocated)
            .filter(|i| {
                let served = |p: &String| i == p || i.starts_with(&format!("{p}:")) || i.starts_with(&format!("{p}@"));
                !pulled.iter().any(served)
            })
            .collect();
        if !missing.is_empty() {
            bail!(
                "the app answered, but the registry served no manifest for {} (it served: {pulled:?})",
                missing.join(", ")
            );
        }
        ui::say!(
            "{}: the registry served every image's manifest to the VM: {}",
            method.vm_name(),
            pulled.join(", ")
        );
    } else if method == Method::Dynamic {
        ui::say!(
            "{}: pulls from your --registry are not checked (its logs are not ours to read)",
            method.vm_name()
        );
    }
    Ok(timings)
}

/// The phases a compose VM's serial log `log` shows, said on one line.
fn said_phases(log: &Path) -> Phases {
    let phases = phases::parse(&boot::read_log(log));
    ui::say!("  phases (guest uptime): {phases}");
    phases
}

/// `--restart`: boot the VM again on the data disk the first boot left,
/// check the app again, and what the first boot's volumes hold; the second
/// boot's timings.
fn restart(
    project: &Project,
    args: &Options,
    method: Method,
    app: &App,
    prepared: &session::Prepared,
    guest_ports: &[(u16, bool)],
) -> Result<Timings> {
    ui::say!("{}: booting again on the same data disk", method.vm_name());
    let mut h = boot_compose(project, args, method, &prepared.artifacts, guest_ports, false)?;
    let log = h.log.clone();
    let mut result = check_app(&mut h, app, &args.hosts, &args.ports, &args.gets);
    if let Some(text) = &args.expect_after_restart {
        result = result.and_then(|timings| {
            let port = h.port(
                guest_ports
                    .iter()
                    .find(|&&(port, udp)| !udp && is_checked(port, &args.ports))
                    .expect("probe_plan: a TCP port")
                    .0,
            );
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let body = http::get(addr, "localhost", "/", Duration::from_secs(10))?.body;
            if !body.contains(text.as_str()) {
                bail!(
                    "after the restart, GET / answered {body:?}, without {text:?}: the first boot's data is not there"
                );
            }
            ui::say!("  after the restart the app still has its data: GET / holds {text:?}");
            Ok(timings)
        });
    }
    result = result.and_then(|timings| h.power_down_cleanly(app).map(|()| timings));
    let mut timings = h.finish(result)?;
    timings.phases = Some(said_phases(&log));
    timings.serial = Some(log.clone());
    let how = match args.restart {
        Some(Restart::Kill) => "QEMU was killed",
        _ => "a clean stop",
    };
    ui::say!("{}: served again after {how}, on the same data disk", method.vm_name());
    Ok(timings)
}

/// The registry goes away after the push: the compose runner must retry, then
/// give up with the reason, and this test sees that before its deadline.
fn unreachable_registry(
    project: &Project,
    args: &Options,
    method: Method,
    app: &App,
    guest_ports: &[(u16, bool)],
    mut prepared: session::Prepared,
) -> Result<()> {
    let Some(local) = prepared.local_registry.as_mut() else {
        bail!("--unreachable-registry needs the dynamic method with the xtask's own registry");
    };
    local.stop();
    let registry = local.address.as_seen_from_guest().host;
    // What the app answers on: if the VM got its images after all, this answers.
    let (host, guest) = match app.routes().first() {
        Some((host, _)) => (host.to_string(), app.router_port().expect("checked by probe_plan")),
        None => ("localhost".to_string(), guest_ports[0].0),
    };
    let mut h = boot_compose(project, args, method, &prepared.artifacts, guest_ports, true)?;
    let log = h.log.clone();
    let failed = move || gave_up(&boot::read_log(&log));
    let port = h.port(guest);
    let outcome = boot::wait_for_200(&mut h.vm, port, &host, h.deadline, &failed);
    let result = match outcome {
        Ok(_) => Err(anyhow::anyhow!(
            "Host {host} answered although the app's registry was stopped before boot"
        )),
        Err(e) => match unreachable_verdict(&compose_lines(&h.log), &registry) {
            Ok(reason) => {
                ui::say!(
                    "  the compose runner gave up {}: {reason}",
                    ui::secs(h.vm.started.elapsed())
                );
                Ok(())
            }
            Err(problem) => Err(e.context(problem)),
        },
    };
    h.finish(result)?;
    ui::say!(
        "{}: with its registry gone, the VM retried, then failed saying why",
        method.vm_name()
    );
    Ok(())
}

/// From what the compose runner said: did it give up, saying that the
/// connection to `registry` (as the guest names it) was refused? Returns the
/// line that says so.
fn unreachable_verdict(said: &str, registry: &str) -> Result<String, String> {
    if !said.lines().any(|l| l.starts_with(RUNNER_FAILED)) {
        return Err("the compose runner never said it gave up".into());
    }
    said.lines()
        .rfind(|l| l.contains(registry) && l.contains("connection refused"))
        .map(str::to_string)
        .ok_or_else(|| format!("the compose runner gave up without saying that {registry} refused the connection"))
}

/// Is published port `port` checked, when `--port` gave `only`?
fn is_checked(port: u16, only: &[u16]) -> bool {
    only.is_empty() || only.contains(&port)
}

/// The guest ports a boot test forwards: every published port. An app with
/// nothing to probe, Host rules (traefik's, or `--host`) no published port
/// reaches, or a `--port` (`only`) or `--get` (`gets`) the app does not
/// publish over TCP, is an error before anything boots.
fn probe_plan(app: &App, hosts: &[String], only: &[u16], gets: &[Get]) -> Result<Vec<(u16, bool)>> {
    let ports: Vec<(u16, bool)> = app.published().iter().map(|(p, _)| (p.published, p.udp)).collect();
    let asked = only
        .iter()
        .map(|port| (*port, format!("--port {port}")))
        .chain(gets.iter().map(|g| (g.port, format!("--get {g}"))));
    if let Some((port, option)) = asked.into_iter().find(|(port, _)| !ports.contains(&(*port, false))) {
        let tcp: Vec<String> = ports
            .iter()
            .filter(|(_, udp)| !udp)
            .map(|(p, _)| p.to_string())
            .collect();
        bail!(
            "{option}: {} publishes no TCP port {port} (it publishes {})",
            app.file.display(),
            if tcp.is_empty() {
                "none".to_string()
            } else {
                tcp.join(", ")
            }
        );
    }
    if !hosts.is_empty() && app.router_port().is_none() {
        bail!(
            "--host {}: {} has no router port to probe it through (no service that mounts the Docker socket publishes a port, and nothing publishes port 80)",
            hosts[0],
            app.file.display()
        );
    }
    if !app.routes().is_empty() && app.router_port().is_none() {
        bail!(
            "{}: services are routed by traefik Host rules, but the router publishes no port (no service that mounts the Docker socket publishes one, and nothing publishes port 80), so nothing outside the VM reaches them",
            app.file.display()
        );
    }
    if !ports.iter().any(|(_, udp)| !udp) {
        bail!(
            "{}: no service publishes a TCP port (`ports:`), so nothing outside the VM can reach the app and there is nothing to test",
            app.file.display()
        );
    }
    Ok(ports)
}

/// The published ports a boot test probes one by one: the TCP ports `--port`
/// (`only`) names, or all of them, but the router's when Host names (traefik's
/// rules, or `--host`) were checked through it.
fn probed_ports<'a>(app: &'a App, hosts: &[String], only: &[u16]) -> Vec<(Port, &'a Service)> {
    let routed = !app.routes().is_empty() || !hosts.is_empty();
    let router = app.router_port().filter(|_| routed);
    app.published()
        .into_iter()
        .filter(|(p, _)| !p.udp && Some(p.published) != router && is_checked(p.published, only))
        .collect()
}

/// What a passing boot test checked.
fn summary(app: &App, hosts: &[String], only: &[u16], gets: &[Get]) -> String {
    let mut checked = Vec::new();
    if !app.routes().is_empty() {
        checked.push("every routed host answered with its own page; an unknown host got traefik's 404".to_string());
    }
    if !hosts.is_empty() {
        checked.push(format!("Host {} answered 200", hosts.join(", ")));
    }
    let ports: Vec<String> = probed_ports(app, hosts, only)
        .iter()
        .map(|(p, _)| p.published.to_string())
        .collect();
    if !ports.is_empty() {
        checked.push(format!("published port(s) {} answered", ports.join(", ")));
    }
    for get in gets {
        checked.push(format!("GET {} on port {} answered 2xx", get.path, get.port));
    }
    checked.join("; ")
}

/// Does a published port answer as a working app would? HTTP 2xx or 3xx, or
/// anything at all from a service that does not speak HTTP (a silent one too,
/// if it holds a connection open).
fn port_answer_ok(answer: &http::Answer) -> bool {
    match answer {
        http::Answer::Http(r) => (200..400).contains(&r.status),
        http::Answer::Other(_) | http::Answer::Held => true,
    }
}

fn check_app(h: &mut Headless, app: &App, hosts: &[String], only: &[u16], gets: &[Get]) -> Result<Timings> {
    let mut timings = Timings {
        accel: Some(h.accel),
        ..Timings::default()
    };
    let router = app.router_port();
    if let Some(router) = router.filter(|_| !app.routes().is_empty()) {
        check_routes(h, app, h.port(router), &mut timings)?;
    }
    if let Some(router) = router.filter(|_| !hosts.is_empty()) {
        check_hosts(h, hosts, router, &mut timings)?;
    }
    for (p, service) in probed_ports(app, hosts, only) {
        let (port, answer, at) = h.wait_on(p.published, "/", "HTTP 2xx/3xx", &port_answer_ok)?;
        let said = match &answer {
            http::Answer::Http(r) => r.body.lines().next().unwrap_or_default().chars().take(60).collect(),
            http::Answer::Other(_) | http::Answer::Held => String::new(),
        };
        ui::say!(
            "  port {} (service `{}`, 127.0.0.1:{port}): {answer} {} after QEMU started ({}) {said:?}",
            p.published,
            service.name,
            ui::secs(at - h.vm.started),
            h.accel
        );
        timings.hosts.push((format!("port {}", p.published), at - h.vm.started));
    }
    for get in gets {
        let (port, answer, at) = h.wait_on(
            get.port,
            &get.path,
            "HTTP 2xx",
            &|a| matches!(a, http::Answer::Http(r) if (200..300).contains(&r.status)),
        )?;
        let said = match &answer {
            http::Answer::Http(r) => gist(&r.body),
            http::Answer::Other(_) | http::Answer::Held => String::new(),
        };
        ui::say!(
            "  GET {} on port {} (127.0.0.1:{port}): {answer} {} after QEMU started ({}) {said:?}",
            get.path,
            get.port,
            ui::secs(at - h.vm.started),
            h.accel
        );
        timings.hosts.push((format!("GET {get}"), at - h.vm.started));
    }
    Ok(timings)
}

/// Each `--host` through the router's port (`router`, the guest's): HTTP 200.
/// Which service should answer is in the router's own configuration, so the
/// first line of the page is shown for a person to judge.
fn check_hosts(h: &mut Headless, hosts: &[String], router: u16, timings: &mut Timings) -> Result<()> {
    let port = h.port(router);
    for host in hosts {
        let log = h.log.clone();
        let gave_up = move || gave_up(&boot::read_log(&log));
        let (body, at) = boot::wait_for_200(&mut h.vm, port, host, h.deadline, &gave_up)?;
        let first = gist(&body);
        ui::say!(
            "  {host}: HTTP 200 through port {router} {} after QEMU started ({}) {first:?}",
            ui::secs(at - h.vm.started),
            h.accel
        );
        timings.hosts.push((host.clone(), at - h.vm.started));
    }
    Ok(())
}

/// The first line of a page that says something, its markup left out
/// (`<title>App A</title>` -> `App A`), at most 60 characters.
fn gist(body: &str) -> String {
    let text = |line: &str| {
        let mut out = String::new();
        let mut in_tag = false;
        for c in line.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out.trim().to_string()
    };
    let said = body.lines().map(text).find(|t| !t.is_empty()).unwrap_or_default();
    said.chars().take(60).collect()
}

/// Every Host rule through the router's port: each serves its own service's
/// page; a Host no rule matches gets traefik's 404.
fn check_routes(h: &mut Headless, app: &App, port: u16, timings: &mut Timings) -> Result<()> {
    let mut bodies: Vec<(String, &Service, String)> = Vec::new();
    for (host, service) in app.routes() {
        let log = h.log.clone();
        let gave_up = move || gave_up(&boot::read_log(&log));
        let (body, at) = boot::wait_for_200(&mut h.vm, port, host, h.deadline, &gave_up)?;
        if let Some(want) = expected_body(service) {
            if body != want {
                bail!(
                    "Host {host}: HTTP 200, but not service `{}`'s index.html: got {body:?}",
                    service.name
                );
            }
        }
        let same = bodies
            .iter()
            .find(|(_, s, b)| *b == body && app.image_of(s) != app.image_of(service));
        if let Some((other, _, _)) = same {
            bail!("Host {host} and Host {other} (different images) answer with the same page: routing by hostname is not working");
        }
        ui::say!(
            "  {host}: HTTP 200 from `{}` {} after QEMU started ({})",
            service.name,
            ui::secs(at - h.vm.started),
            h.accel
        );
        bodies.push((host.to_string(), service, body));
        timings.hosts.push((host.to_string(), at - h.vm.started));
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let r = http::get(addr, UNKNOWN_HOST, "/", Duration::from_secs(10))?;
    if r.status != 404 || r.body != TRAEFIK_404 {
        bail!(
            "Host {UNKNOWN_HOST}: want traefik's 404 ({TRAEFIK_404:?}), got HTTP {} {:?}",
            r.status,
            r.body
        );
    }
    ui::say!("  {UNKNOWN_HOST}: HTTP 404 from traefik");
    Ok(())
}

/// What the VM's service runner says when the console shell starts.
const CONSOLE_SHELL_STARTED: &str = "service: started getty";

/// Did the VM start a shell on its console?
fn console_shell(console: &str) -> bool {
    console.lines().any(|l| l.trim_end() == CONSOLE_SHELL_STARTED)
}

/// The console line that says this boot cannot succeed, if there is one:
/// the kernel could not unpack the whole initrd, init could not start a
/// service, the compose runner gave up, or a service (native, or compose's
/// after the app came up) exited with an error and no restart policy starts
/// it again. A boot test stops there instead of waiting out its deadline.
fn gave_up(console: &str) -> Option<String> {
    // Only whole lines: the guest may be halfway through writing the last
    // one (`service: onboot 000-modules exited with st` is no failure yet).
    let whole = console.rfind('\n').map_or("", |end| &console[..end]);
    let line = whole.lines().find(|l| {
        l.starts_with(RUNNER_FAILED)
            || failed_for_good(l).is_some()
            || l.starts_with("service: starting ")
            || (l.starts_with("service: ") && l.contains(" skipped: "))
            || (l.starts_with("service: ") && l.contains(" not started: "))
            || l.starts_with("service: supervisor: no service left to run")
            || (l.starts_with("service: onboot ") && !l.contains(" exited with status 0"))
            || l.contains(UNPACK_FAILED)
    })?;
    if line.contains(UNPACK_FAILED) {
        return Some(format!(
            "{}: the initrd does not fit in the VM's root filesystem (a tmpfs of half its memory): give it more --memory",
            line.trim()
        ));
    }
    // The reason is what the step or service printed last, just before:
    // the VM's own steps start their lines with their name (`data: …` for
    // `service: onboot 002-data exited …`), and the runners say a failed
    // service's last output again under its name (`service: web: …`,
    // `compose: web: …`).
    let prefix = if let Some(rest) = line.strip_prefix("service: onboot ") {
        rest.split_whitespace().next().map(|bundle| {
            format!(
                "{}: ",
                bundle.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-')
            )
        })
    } else {
        failed_for_good(line)
    };
    let said = prefix.map(|p| last_words(whole, line, &p)).unwrap_or_default();
    Some(if said.is_empty() {
        line.to_string()
    } else {
        format!("{line} (it said: {})", said.join(" / "))
    })
}

/// The last lines (up to two) starting with `prefix` before `line`.
fn last_words<'a>(console: &'a str, line: &str, prefix: &str) -> Vec<&'a str> {
    let mut said: Vec<&str> = console
        .lines()
        .take_while(|l| *l != line)
        .filter(|l| l.starts_with(prefix))
        .map(str::trim_end)
        .collect();
    let keep = said.len().saturating_sub(2);
    said.drain(..keep);
    said
}

/// A runner's line saying a service exited: the native runner's
/// `service: web exited with status 1`, the compose runner's
/// `compose: service web exited with status 1` (which it says only after
/// the app came up), as (runner, service, status and the rest, whether its
/// restart policy starts it again).
fn exit_line(line: &str) -> Option<(&str, &str, &str, bool)> {
    let (runner, rest) = if let Some(rest) = line.strip_prefix("compose: service ") {
        ("compose", rest)
    } else {
        (
            "service",
            line.strip_prefix("service: ").filter(|r| !r.starts_with("onboot "))?,
        )
    };
    let (name, status) = rest.split_once(" exited with status ")?;
    if name.contains(' ') {
        return None;
    }
    Some((runner, name, status, status.contains(lkc_contract::RESTARTS_IT)))
}

/// Does a runner's `line` say a service exited with an error and that its
/// restart policy does not start it again? Returns the prefix of the lines
/// in which the runner said the service's last output.
fn failed_for_good(line: &str) -> Option<String> {
    let (runner, name, status, again) = exit_line(line)?;
    let failed = !again && !status.starts_with("0 ") && status.trim_end() != "0";
    failed.then(|| format!("{runner}: {name}: "))
}

/// The services a restart policy started again, for a failed boot test
/// (often a deadline waited out while a service kept failing): how often
/// each, and its last such exit.
fn restarted(console: &str) -> Option<String> {
    let mut seen: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for line in console.lines() {
        let Some((_, name, status, true)) = exit_line(line) else {
            continue;
        };
        let status = status.split(lkc_contract::RESTARTS_IT).next().unwrap_or(status);
        let entry = seen.entry(name).or_default();
        *entry = (entry.0 + 1, status);
    }
    let said: Vec<String> = seen
        .into_iter()
        .map(|(name, (n, status))| {
            let times = if n == 1 {
                "once".to_string()
            } else {
                format!("{n} times")
            };
            format!("`{name}` exited and was restarted by its restart policy {times} (last with status {status})")
        })
        .collect();
    (!said.is_empty()).then(|| said.join("; "))
}

/// What the kernel says when the initrd does not fit in its root tmpfs.
const UNPACK_FAILED: &str = "Initramfs unpacking failed";

/// The body a routed service should answer with: the index.html in its build
/// context, where it has one.
pub fn expected_body(service: &Service) -> Option<String> {
    let build = service.build.as_ref()?;
    std::fs::read_to_string(build.context.join("index.html")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From the serial log of a CI boot that died this way (QEMU 10.0.2, TCG).
    const STALE_INT3: &str = "rc.init: /etc/init.d/020-services (uptime 8.80s)\n\
        [    9.073160] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n\
        [    9.073538] CPU: 1 UID: 0 PID: 249 Comm: crun Not tainted 6.12.117+deb13-cloud-amd64 #1  Debian 6.12.117-1\n\
        [    9.074076] RIP: 0010:get_page_from_freelist+0xd8/0x15f0\n\
        [    9.077430] Kernel panic - not syncing: Fatal exception in interrupt\n";

    #[test]
    fn a_stale_int3_under_tcg_is_the_emulator_fault_the_test_boots_again_for() {
        let failed = || anyhow::anyhow!("no HTTP 2xx/3xx from localhost");
        let e = explain_crash(failed(), STALE_INT3, Accel::Tcg).context("boot test failed 14.5s after QEMU started");
        let fault = e
            .downcast_ref::<TcgStaleCode>()
            .expect("recognised through the outer context");
        assert_eq!(
            fault.oops,
            "Oops: int3: 0000 [#1] PREEMPT SMP NOPTI at get_page_from_freelist+0xd8/0x15f0"
        );
        // Under KVM there is no TCG to blame: a crash, said as such, and no retry.
        let kvm = explain_crash(failed(), STALE_INT3, Accel::Kvm);
        assert!(kvm.downcast_ref::<TcgStaleCode>().is_none());
        assert!(format!("{kvm:#}").starts_with("the guest kernel crashed: Oops: int3"));
        // Any other crash is said, and is not retried.
        let bug =
            "[ 3.1] BUG: kernel NULL pointer dereference, address: 0000000000000000\n[ 3.2] RIP: 0010:foo+0x1/0x2\n";
        let other = explain_crash(failed(), bug, Accel::Tcg);
        assert!(other.downcast_ref::<TcgStaleCode>().is_none());
        assert_eq!(
            other.to_string(),
            "the guest kernel crashed: BUG: kernel NULL pointer dereference, address: 0000000000000000 at foo+0x1/0x2"
        );
        // No crash: the error is left as it was.
        assert_eq!(
            explain_crash(failed(), "compose: app is up\n", Accel::Tcg).to_string(),
            failed().to_string()
        );
    }

    #[test]
    fn expected_bodies_come_from_the_build_contexts() {
        let app = crate::building::apps::testing::default_app();
        let a = app
            .services
            .iter()
            .find(|s| s.hosts.contains(&"a.localhost".to_string()))
            .unwrap();
        assert!(expected_body(a).unwrap().contains("This is app A"));
    }

    #[test]
    fn a_page_is_shown_by_its_first_words() {
        assert_eq!(gist("<!doctype html>\n<title>App A</title>\n<h1>A</h1>\n"), "App A");
        assert_eq!(gist("plain text\n"), "plain text");
        assert_eq!(gist("<html>\n</html>\n"), "");
    }

    #[test]
    fn hosts_are_probed_through_the_router_port_or_refused_before_boot() {
        let app = |ports: serde_json::Value| {
            let config = serde_json::json!({"name": "demo", "services": {"router": {"image": "x", "ports": ports}}});
            App::from_config(Path::new("compose/test.yml"), Path::new("compose"), &config.to_string()).unwrap()
        };
        let hosts = ["a.localhost".to_string()];
        let on_80 = app(serde_json::json!([{"target": 80, "published": "80", "protocol": "tcp"}]));
        assert_eq!(probe_plan(&on_80, &hosts, &[], &[]).unwrap(), [(80, false)]);
        let on_8000 = app(serde_json::json!([{"target": 8000, "published": "8000", "protocol": "tcp"}]));
        assert!(probe_plan(&on_8000, &[], &[], &[]).is_ok());
        let err = probe_plan(&on_8000, &hosts, &[], &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("--host a.localhost: compose/test.yml has no router port"),
            "{err}"
        );
    }

    /// `--port`: only the ports named are checked (a debugger's port that
    /// nothing listens on until asked may be left out); one the app does not
    /// publish over TCP is refused before anything boots, naming those it does.
    #[test]
    fn only_the_ports_named_are_checked_and_each_must_be_published() {
        let config = serde_json::json!({"name": "demo", "services": {"web": {"image": "x", "ports": [
            {"target": 80, "published": "80", "protocol": "tcp"},
            {"target": 9229, "published": "9229", "protocol": "tcp"},
            {"target": 53, "published": "53", "protocol": "udp"},
        ]}}});
        let app = App::from_config(Path::new("compose/test.yml"), Path::new("compose"), &config.to_string()).unwrap();
        assert!(probe_plan(&app, &[], &[80], &[]).is_ok());
        assert_eq!(
            summary(&app, &[], &[80], &[]),
            "published port(s) 80 answered",
            "9229 is not checked"
        );
        assert_eq!(summary(&app, &[], &[], &[]), "published port(s) 80, 9229 answered");
        for (port, said) in [(8080, "8080"), (53, "53")] {
            let err = probe_plan(&app, &[], &[port], &[]).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("--port {port}: compose/test.yml publishes no TCP port {said} (it publishes 80, 9229)")
            );
        }
    }

    /// `--get PORT/PATH`: a page on a published TCP port, said in the
    /// summary; another port is refused before anything boots.
    #[test]
    fn a_page_to_get_names_a_published_port_and_a_path() {
        let get = |text: &str| text.parse::<Get>();
        assert_eq!(
            get("3000/api/users").unwrap(),
            Get {
                port: 3000,
                path: "/api/users".into()
            }
        );
        assert_eq!(get("8080").unwrap().path, "/");
        assert_eq!(
            get("api/users").unwrap_err(),
            "`api/users`: want PORT/PATH, a published port and a path (3000/api/users)"
        );
        let config = serde_json::json!({"name": "demo", "services": {"web": {"image": "x", "ports": [
            {"target": 3000, "published": "3000", "protocol": "tcp"},
        ]}}});
        let app = App::from_config(Path::new("compose/test.yml"), Path::new("compose"), &config.to_string()).unwrap();
        let users = [get("3000/api/users").unwrap()];
        assert!(probe_plan(&app, &[], &[], &users).is_ok());
        assert_eq!(
            summary(&app, &[], &[], &users),
            "published port(s) 3000 answered; GET /api/users on port 3000 answered 2xx"
        );
        let err = probe_plan(&app, &[], &[], &[get("8000/api").unwrap()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--get 8000/api: compose/test.yml publishes no TCP port 8000 (it publishes 3000)"
        );
    }

    /// From a native VM's clean stop: the counter ignores SIGTERM.
    #[test]
    fn a_clean_stop_is_timed_inside_the_vm_and_says_whom_it_killed() {
        let console = "compose: app is up\n\
                       rc.shutdown: stopping the services (uptime 31.40s)\r\n\
                       service: counter did not stop in 10s, killing it\n\
                       rc.shutdown: services stopped, disks unmounted (uptime 43.15s)\n";
        assert_eq!(guest_stop_time(console), Some(Duration::from_millis(11_750)));
        assert_eq!(killed_at_grace(console), ["counter"]);
        // After the root shell's prompt and its cursor query, on one line.
        let prompted = console.replace("rc.shutdown: stopping", "/ # \x1b[6nrc.shutdown: stopping");
        assert_eq!(guest_stop_time(&prompted), Some(Duration::from_millis(11_750)));
        // No end line (the VM was killed), or no uptimes: not timed.
        assert_eq!(
            guest_stop_time(&console[..console.rfind("rc.shutdown: services").unwrap()]),
            None
        );
        assert_eq!(
            guest_stop_time("rc.shutdown: stopping the services\nrc.shutdown: services stopped, disks unmounted\n"),
            None
        );
        assert!(killed_at_grace("service: started counter\n").is_empty());
    }

    #[test]
    fn the_longest_grace_period_is_dockers_default_unless_a_service_sets_one() {
        let app = |graces: &[Option<&str>]| {
            let services: serde_json::Map<String, serde_json::Value> = graces
                .iter()
                .enumerate()
                .map(|(i, grace)| {
                    let body = match grace {
                        Some(g) => serde_json::json!({"stop_grace_period": g}),
                        None => serde_json::json!({}),
                    };
                    (format!("s{i}"), body)
                })
                .collect();
            crate::app::compose::testing::app(serde_json::json!({ "services": services }))
        };
        assert_eq!(longest_grace(&app(&[None])), DEFAULT_GRACE);
        assert_eq!(longest_grace(&app(&[None, Some("3s")])), DEFAULT_GRACE);
        assert_eq!(longest_grace(&app(&[None, Some("1m30s")])), Duration::from_secs(90));
    }

    #[test]
    fn the_console_shell_is_seen_in_the_serial_log() {
        assert!(console_shell("x\nservice: started getty\nservice: started docker\n"));
        assert!(!console_shell("service: started docker\ncompose: app is up\n"));
    }

    #[test]
    fn a_failed_service_or_runner_ends_the_wait() {
        let ok = "service: onboot 000-modules exited with status 0 (uptime 3.9s)\nservice: started docker\nservice: started compose\ncompose: app is up: a b proxy (uptime 30.1s)\n";
        assert_eq!(gave_up(ok), None);
        for line in [
            "service: starting compose failed with status 1",
            "service: starting docker: runc: exec format error",
            "service: service getty skipped: runtime.json: bindNS is not supported",
            "compose: FAILED: docker compose up failed 6 times (uptime 96.7s)",
            "service: onboot 002-netns exited with status 1 (uptime 6.20s)",
            "service: web not started: dependency db exited with status 3",
            "service: supervisor: no service left to run",
            "compose: service web exited with status 1 (uptime 41.2s)",
            "service: web exited with status 137 (uptime 41.2s)",
        ] {
            assert_eq!(gave_up(&format!("{ok}{line}\n")).as_deref(), Some(line));
        }
        // A line the guest is still writing is not read yet.
        assert_eq!(
            gave_up(&format!("{ok}service: onboot 001-network exited with st")),
            None
        );
        // A one-shot service that finishes is no failure.
        let done = format!("{ok}compose: service migrate exited with status 0 (uptime 35.0s)\n");
        assert_eq!(gave_up(&done), None);
        // A failed onboot step's own last words come with it.
        let refused = format!(
            "{ok}data: /dev/vda holds data that is not this project's: it is not formatted\n\
             [   9.1] random: crng init done\n\
             data: FAILED: no compose service is started\n\
             service: onboot 002-data exited with status 1 (uptime 9.5s)\n"
        );
        assert_eq!(
            gave_up(&refused).as_deref(),
            Some(
                "service: onboot 002-data exited with status 1 (uptime 9.5s) (it said: data: /dev/vda holds data that is not this project's: it is not formatted / data: FAILED: no compose service is started)"
            )
        );
        // A service's last output, said again by its runner, comes with it.
        for (said, exited) in [
            (
                "compose: web: connecting to db\ncompose: web: FATAL: password authentication failed\n",
                "compose: service web exited with status 1 (uptime 41.2s)",
            ),
            (
                "service: web: connecting to db\nservice: web: FATAL: password authentication failed\n",
                "service: web exited with status 1 (uptime 41.2s)",
            ),
        ] {
            assert_eq!(
                gave_up(&format!("{ok}{said}{exited}\n")),
                Some(format!(
                    "{exited} (it said: {})",
                    said.lines().collect::<Vec<_>>().join(" / ")
                ))
            );
        }
        let full = gave_up("[    4.955680] Initramfs unpacking failed: write error\n").unwrap();
        assert!(full.contains("give it more --memory"), "{full}");
    }

    #[test]
    fn a_service_its_restart_policy_starts_again_is_waited_for() {
        // A web service restarted until its database is ready (restart:
        // always, depends_on without a condition) answers later, as under
        // Docker: only an exit that is final ends the wait.
        let ok = "service: started compose\ncompose: app is up: db web (uptime 30.1s)\n";
        let restarts = format!(
            "{ok}compose: web: could not connect to db:5432\n\
             compose: service web exited with status 1{again} (uptime 31.0s)\n\
             compose: service web started again (uptime 31.2s)\n\
             service: web exited with status 1{again} (uptime 12.0s)\n\
             service: restarting web (attempt 1)\n\
             service: started web (uptime 12.2s)\n",
            again = lkc_contract::RESTARTS_IT
        );
        assert_eq!(gave_up(&restarts), None);
        // Its last exit, the policy's retries spent, ends it.
        let last = "service: web exited with status 1 (uptime 14.0s)";
        assert_eq!(gave_up(&format!("{restarts}{last}\n")).as_deref(), Some(last));
        // A native service that finishes its job is no failure either.
        assert_eq!(
            gave_up(&format!("{ok}service: migrate exited with status 0 (uptime 20.0s)\n")),
            None
        );
    }

    #[test]
    fn a_failed_boot_says_which_services_kept_restarting() {
        let again = lkc_contract::RESTARTS_IT;
        let console = format!(
            "service: web exited with status 1{again} (uptime 12.0s)\n\
             service: restarting web (attempt 1)\n\
             service: web exited with status 1{again} (uptime 14.0s)\n\
             compose: service worker exited with status 137{again} (uptime 30.0s)\n\
             service: db exited with status 0 (uptime 31.0s)\n"
        );
        assert_eq!(
            restarted(&console).as_deref(),
            Some(
                "`web` exited and was restarted by its restart policy 2 times (last with status 1); \
                 `worker` exited and was restarted by its restart policy once (last with status 137)"
            )
        );
        assert_eq!(restarted("service: db exited with status 1 (uptime 31.0s)\n"), None);
    }

    #[test]
    fn unreachable_registry_must_be_named_as_refused() {
        let registry = "10.0.2.2:41234";
        let refused = "compose: up: Error response from daemon: Get \"http://10.0.2.2:41234/v2/\": dial tcp 10.0.2.2:41234: connect: connection refused";
        let failed = "compose: FAILED: docker compose up failed 6 times, last: …";
        let said = format!("{refused}\n{failed}");
        assert_eq!(unreachable_verdict(&said, registry).unwrap(), refused);
        // Not given up (yet): no verdict.
        assert!(unreachable_verdict(refused, registry).is_err());
        // Given up for another reason, or naming another address: not this failure.
        let other = format!("compose: up: no space left on device\n{failed}");
        assert!(unreachable_verdict(&other, registry).is_err());
        let elsewhere = format!("{}\n{failed}", refused.replace("41234", "5000"));
        assert!(unreachable_verdict(&elsewhere, registry).is_err());
    }
}
