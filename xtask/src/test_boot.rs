//! `cargo xtask test-boot`: build, boot headless under QEMU, check what a user
//! would check over HTTP, print the timing, and always stop the VM.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use xshell::Shell;

use crate::{
    boot::{self, VmOpts},
    compose::App,
    http,
    linuxkit::{self, Artifacts},
    methods::{self, ComposeOpt, Method, RegistryOpt},
    phases::{self, Phases},
    project::Project,
    qemu::{Accel, Console, Vm},
    ui,
};

/// traefik's answer for a Host no router matches.
const TRAEFIK_404: &str = "404 page not found\n";
/// How images/compose/compose-up says it gave up.
const RUNNER_FAILED: &str = "compose: FAILED";
/// A Host no compose file routes (.invalid is reserved, RFC 2606).
const UNKNOWN_HOST: &str = "no-such-app.invalid";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Boot the smoke VM: one nginx service serving a known page.
    #[arg(long, conflicts_with = "method")]
    pub smoke: bool,
    /// Boot a compose method's VM and check every routed hostname.
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    #[command(flatten)]
    pub compose: ComposeOpt,
    #[command(flatten)]
    pub registry: RegistryOpt,
    /// Dynamic only: stop the local registry once the images are pushed, and
    /// pass if the VM then fails cleanly, saying the registry cannot be reached.
    #[arg(long, requires = "method", conflicts_with = "registry")]
    pub unreachable_registry: bool,
    /// Seconds to wait for the first HTTP 200 after QEMU starts
    /// (default: 300 under TCG, 90 under KVM for the smoke VM; 600 and 240 for compose VMs).
    #[arg(long)]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub vm: VmOpts,
}

/// Time from QEMU start to the first HTTP 200, per probed Host, and the
/// accelerator the VM ran under.
#[derive(Debug, Default)]
pub struct Timings {
    pub accel: Option<Accel>,
    pub hosts: Vec<(String, Duration)>,
    /// What the serial log says about the boot (compose VMs).
    pub phases: Option<Phases>,
}

pub fn run(sh: &Shell, project: &Project, args: &Args) -> Result<()> {
    measure(sh, project, args).map(|_| ())
}

/// Run the boot test `args` describes and return its timings.
pub fn measure(sh: &Shell, project: &Project, args: &Args) -> Result<Timings> {
    match (args.smoke, args.method) {
        (true, _) => smoke(sh, project, args),
        (false, Some(method)) => {
            let app = args.compose.load(project)?;
            compose(sh, project, args, method, &app)
        }
        (false, None) => bail!("say what to boot: --smoke, or --method static|dynamic"),
    }
}

/// A headless VM with guest port 80 on a free loopback port.
struct Headless {
    vm: Vm,
    port: u16,
    log: std::path::PathBuf,
    accel: Accel,
    deadline: Instant,
    step: ui::Step,
}

fn boot(project: &Project, args: &Args, name: &str, artifacts: &Artifacts, timeouts: (u64, u64)) -> Result<Headless> {
    let accel = boot::accel(&args.vm, &artifacts.kernel);
    let timeout = Duration::from_secs(args.timeout.unwrap_or(match accel {
        Accel::Tcg => timeouts.0,
        Accel::Kvm => timeouts.1,
    }));
    let port = boot::free_port()?;
    let log = boot::serial_log(&project.dist, name)?;
    let spec = boot::spec(&args.vm, artifacts, accel, Console::File(log.clone()), vec![(port, 80)]);
    let step = ui::step(format!(
        "booting {name} headless ({accel}): serial console in {}, guest port 80 on 127.0.0.1:{port}",
        project.rel(&log).display()
    ));
    let vm = Vm::spawn(&spec)?;
    let deadline = vm.started + timeout;
    Ok(Headless {
        vm,
        port,
        log,
        accel,
        deadline,
        step,
    })
}

impl Headless {
    /// Stop the VM; on failure show the serial log's tail and what the compose
    /// runner said.
    fn finish<T>(self, result: Result<T>) -> Result<T> {
        let Headless { vm, log, step, .. } = self;
        let started = vm.started;
        vm.stop();
        match result {
            Ok(value) => {
                step.done();
                Ok(value)
            }
            Err(e) => {
                eprintln!(
                    "--- last lines of {} ---\n{}\n---",
                    log.display(),
                    boot::log_tail(&log, 60)
                );
                let compose = compose_lines(&log);
                if !compose.is_empty() {
                    eprintln!("--- what the compose runner said ---\n{compose}\n---");
                }
                Err(e.context(format!(
                    "boot test failed {} after QEMU started",
                    ui::secs(started.elapsed())
                )))
            }
        }
    }
}

/// The serial log's first line saying the boot cannot succeed: the kernel
/// could not unpack the whole initrd (too little RAM: the initramfs tmpfs is
/// capped at half of it), a service container did not start, or the compose
/// runner gave up.
fn gave_up(log: &str) -> Option<String> {
    log.lines()
        .find(|l| {
            l.starts_with(RUNNER_FAILED)
                || l.contains("Initramfs unpacking failed")
                || (l.starts_with("service: starting ") && l.contains(" failed with status "))
        })
        .map(str::to_string)
}

fn compose_lines(log: &Path) -> String {
    boot::read_log(log)
        .lines()
        .filter(|l| l.starts_with("compose:"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn smoke(sh: &Shell, project: &Project, args: &Args) -> Result<Timings> {
    let vm_def = linuxkit::smoke_vm();
    let artifacts = linuxkit::build(sh, project, &vm_def)?;
    let mut h = boot(project, args, &vm_def.name, &artifacts, (300, 90))?;
    let log = h.log.clone();
    let result = boot::wait_for_200(&mut h.vm, h.port, "localhost", h.deadline, &|| None).and_then(|(body, at)| {
        if body != linuxkit::SMOKE_PAGE {
            bail!(
                "HTTP 200, but not the smoke page: got {body:?}, want {:?}",
                linuxkit::SMOKE_PAGE
            );
        }
        let took = at - h.vm.started;
        println!(
            "smoke: HTTP 200 with the smoke page {} after QEMU started ({})",
            ui::secs(took),
            h.accel
        );
        Ok(Timings {
            accel: Some(h.accel),
            hosts: vec![("localhost".to_string(), took)],
            phases: None,
        })
    });
    let mut timings = h.finish(result)?;
    timings.phases = Some(phases::parse(&boot::read_log(&log)));
    Ok(timings)
}

fn compose(sh: &Shell, project: &Project, args: &Args, method: Method, app: &App) -> Result<Timings> {
    let routes = app.routes();
    if routes.is_empty() {
        bail!(
            "{}: no service has a traefik Host(`…`) rule, so there is nothing to test",
            app.file.display()
        );
    }
    let registry = args.registry.registry.as_ref();
    let mut prepared = methods::prepare(sh, project, method, app, registry)?;
    if args.unreachable_registry {
        return unreachable_registry(project, args, method, prepared).map(|()| Timings::default());
    }
    let mut h = boot(project, args, method.vm_name(), &prepared.artifacts, (600, 240))?;
    let log = h.log.clone();
    let result = check_routes(&mut h, app);
    let mut timings = h.finish(result)?;
    let phases = phases::parse(&boot::read_log(&log));
    println!("  phases (guest uptime): {phases}");
    timings.phases = Some(phases);
    println!(
        "{}: every routed host answered with its own page; an unknown host got traefik's 404",
        method.vm_name()
    );
    if let Some(local) = prepared.local_registry.as_mut() {
        local.stop();
        let pulled = local.pulled_manifests();
        let missing: Vec<&str> = app
            .images()
            .into_iter()
            .filter(|i| !pulled.iter().any(|p| i.starts_with(&format!("{p}:"))))
            .collect();
        if !missing.is_empty() {
            bail!(
                "the app answered, but the registry served no manifest for {} (it served: {pulled:?})",
                missing.join(", ")
            );
        }
        println!(
            "{}: the registry served every image's manifest to the VM: {}",
            method.vm_name(),
            pulled.join(", ")
        );
    } else if method == Method::Dynamic {
        println!(
            "{}: pulls from your --registry are not checked (its logs are not ours to read)",
            method.vm_name()
        );
    }
    Ok(timings)
}

/// The registry goes away after the push: the compose runner must retry, then
/// give up with the reason, and this test sees that before its deadline.
fn unreachable_registry(project: &Project, args: &Args, method: Method, mut prepared: methods::Prepared) -> Result<()> {
    let Some(local) = prepared.local_registry.as_mut() else {
        bail!("--unreachable-registry needs the dynamic method with the xtask's own registry");
    };
    local.stop();
    let mut h = boot(project, args, method.vm_name(), &prepared.artifacts, (600, 240))?;
    let log = h.log.clone();
    let failed = move || boot::log_line(&log, RUNNER_FAILED);
    let outcome = boot::wait_for_200(&mut h.vm, h.port, "localhost", h.deadline, &failed);
    let result = match outcome {
        Ok(_) => Err(anyhow::anyhow!(
            "the app answered although its registry was stopped before boot"
        )),
        Err(e) => {
            let said = compose_lines(&h.log);
            let reason = said
                .lines()
                .rfind(|l| l.contains("up:"))
                .unwrap_or_default()
                .to_string();
            if boot::log_line(&h.log, RUNNER_FAILED).is_none() {
                Err(e.context("the compose runner never said it gave up"))
            } else if !(reason.contains("connection refused") || reason.contains("10.0.2.2")) {
                Err(anyhow::anyhow!(
                    "the compose runner gave up, but without naming the registry: {reason:?}"
                ))
            } else {
                println!(
                    "  the compose runner gave up {}: {reason}",
                    ui::secs(h.vm.started.elapsed())
                );
                Ok(())
            }
        }
    };
    h.finish(result)?;
    println!(
        "{}: with its registry gone, the VM retried, then failed saying why",
        method.vm_name()
    );
    Ok(())
}

fn check_routes(h: &mut Headless, app: &App) -> Result<Timings> {
    let mut bodies: Vec<(String, String)> = Vec::new();
    let mut timings = Timings {
        accel: Some(h.accel),
        hosts: vec![],
        phases: None,
    };
    for (host, service) in app.routes() {
        let log = h.log.clone();
        let gave_up = move || gave_up(&boot::read_log(&log));
        let (body, at) = boot::wait_for_200(&mut h.vm, h.port, host, h.deadline, &gave_up)?;
        if let Some(want) = methods::expected_body(service) {
            if body != want {
                bail!(
                    "Host {host}: HTTP 200, but not service `{}`'s index.html: got {body:?}",
                    service.name
                );
            }
        }
        if let Some((other, _)) = bodies.iter().find(|(_, b)| *b == body) {
            bail!("Host {host} and Host {other} answer with the same page: routing by hostname is not working");
        }
        println!(
            "  {host}: HTTP 200 from `{}` {} after QEMU started ({})",
            service.name,
            ui::secs(at - h.vm.started),
            h.accel
        );
        bodies.push((host.to_string(), body));
        timings.hosts.push((host.to_string(), at - h.vm.started));
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, h.port));
    let r = http::get(addr, UNKNOWN_HOST, "/", Duration::from_secs(10))?;
    if r.status != 404 || r.body != TRAEFIK_404 {
        bail!(
            "Host {UNKNOWN_HOST}: want traefik's 404 ({TRAEFIK_404:?}), got HTTP {} {:?}",
            r.status,
            r.body
        );
    }
    println!("  {UNKNOWN_HOST}: HTTP 404 from traefik");
    Ok(timings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_service_or_runner_ends_the_wait() {
        assert_eq!(gave_up("rc.init: boot finished\nservice: started docker\n"), None);
        assert_eq!(
            gave_up("service: started getty\nservice: starting compose failed with status 1\n").as_deref(),
            Some("service: starting compose failed with status 1")
        );
        assert!(gave_up("compose: FAILED: docker compose up failed 6 times (uptime 9s)\n").is_some());
        assert!(gave_up("[    5.608771] Initramfs unpacking failed: write error\n").is_some());
    }
}
