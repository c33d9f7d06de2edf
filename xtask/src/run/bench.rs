//! `cargo xtask bench`: boot each VM several times and print the time from QEMU
//! start to the first HTTP 200 of every host (minimum, median, maximum), with
//! the machine and accelerator they were measured on.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::{
    app::compose::App,
    base::project::Project,
    base::ui,
    base::{exec, userns},
    building::host,
    disk::Format,
    run::boot::VmOpts,
    run::test_boot::{self, Restart},
    vm::method::Method,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Smoke,
    Static,
    Dynamic,
    Native,
}

/// What to boot, how often, and what to compare with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Boots per VM (at least 1).
    pub runs: u32,
    /// VMs to boot (empty: smoke, static, dynamic).
    pub targets: Vec<Target>,
    /// The plain way to ship the same app, booted in the same rounds as the
    /// VMs so the ratios compare like with like: a script taking a work
    /// directory whose last line is `baseline: accel=… a=Ns b=Ns …`.
    pub baseline: Option<PathBuf>,
    /// More Host names to probe through the router's port (`test-boot --host`).
    pub hosts: Vec<String>,
    /// Each VM is booted as each of these (empty: kernel+initrd).
    pub formats: Vec<Format>,
    /// Boot each compose VM twice per round on one new data disk, stopped
    /// cleanly in between, and time both boots: the first initializes the
    /// app's volumes (a database's first start), the second finds them.
    pub second_boot: bool,
    pub vm: VmOpts,
}

/// One boot's result: the slowest host's first 200, every host's, and the phases.
struct Boot {
    hosts: Vec<(String, Duration)>,
    line: String,
}

impl Boot {
    /// Round `round`'s boot of VM `name`, and its line for the per-boot list.
    fn new(name: &str, round: u32, run: test_boot::Timings) -> Boot {
        let hosts: Vec<String> = run.hosts.iter().map(|(h, d)| format!("{h} {}", ui::secs(*d))).collect();
        let line = format!(
            "{name:<17} round {round:>2}: first 200 (QEMU clock) {}",
            hosts.join(", ")
        );
        let line = match &run.phases {
            Some(p) => format!("{line}; guest uptime: {p}"),
            None => line,
        };
        Boot { hosts: run.hosts, line }
    }
}

pub fn run(sh: &Shell, project: &Project, args: &Options, app: &App) -> Result<()> {
    let targets = if args.targets.is_empty() {
        vec![Target::Smoke, Target::Static, Target::Dynamic]
    } else {
        args.targets.clone()
    };
    let baseline = match &args.baseline {
        Some(script) => {
            Some(std::fs::canonicalize(script).with_context(|| format!("--baseline {}", script.display()))?)
        }
        None => None,
    };
    // Rounds, not one VM after another: each round boots the plain VM and every
    // target once, so a slow hour of the machine weighs on all of them alike.
    let mut results: Vec<(String, Vec<Boot>)> = Vec::new();
    let mut oopses = 0;
    let mut accels = Vec::new();
    for round in 1..=args.runs {
        if let Some(script) = &baseline {
            ui::note(format!(
                "bench: round {round} of {}: the plain VM ({})",
                args.runs,
                script.display()
            ));
            let boot = plain_vm(sh, project, script)?;
            push(&mut results, "plain", boot);
        }
        for (target, format) in boots(&targets, &args.formats) {
            let name = name(target, format);
            ui::note(format!("bench: round {round} of {}: {name}", args.runs));
            let mut run = test_boot::measure(sh, project, &boot_args(target, format, args), app)?;
            accels.extend(run.accel.map(|a| a.to_string()));
            let second = run.second.take();
            for (name, run) in
                std::iter::once((name.clone(), run)).chain(second.map(|s| (format!("{name} 2nd boot"), *s)))
            {
                oopses += run.phases.as_ref().map_or(0, |p| p.oopses);
                let boot = Boot::new(&name, round, run);
                push(&mut results, &name, boot);
            }
        }
    }
    ui::say!("\nTime from QEMU start to the first HTTP 200 through the forwarded port");
    ui::say!("machine: {}", machine());
    accels.sort();
    accels.dedup();
    ui::say!(
        "qemu: {}, -smp {} -m {}, accel: {}",
        qemu_version(project),
        args.vm.cpus,
        args.vm.memory,
        accels.join(" and ")
    );
    let plain = results
        .iter()
        .find(|(name, _)| name == "plain")
        .map(|(_, boots)| median(&slowest(boots)));
    ui::say!(
        "{:<17} {:<14} {:>8} {:>8} {:>8}  runs{}",
        "vm",
        "host",
        "min",
        "median",
        "max",
        if plain.is_some() {
            "  slowest host, median / plain VM's"
        } else {
            ""
        }
    );
    for (name, boots) in &results {
        for (host, _) in &boots[0].hosts {
            let mut times: Vec<Duration> = boots
                .iter()
                .flat_map(|b| b.hosts.iter().filter(|(h, _)| h == host).map(|(_, d)| *d))
                .collect();
            times.sort();
            ui::say!(
                "{name:<17} {host:<14} {:>8} {:>8} {:>8}  {}",
                ui::secs(times[0]),
                ui::secs(median(&times)),
                ui::secs(times[times.len() - 1]),
                times.len()
            );
        }
        if let Some(plain) = plain.filter(|_| name != "plain" && name != "smoke") {
            let ratio = median(&slowest(boots)).as_secs_f64() / plain.as_secs_f64();
            ui::say!("{name:<17} {:<14} {ratio:.2}x the plain VM", "(slowest host)");
        }
    }
    ui::say!("\nPer boot (phases from the serial log, guest uptime):");
    for (_, boots) in &results {
        for boot in boots {
            ui::say!("{}", boot.line);
        }
    }
    ui::say!("kernel oopses/panics/BUGs in these boots' serial logs: {oopses}");
    Ok(())
}

fn push(results: &mut Vec<(String, Vec<Boot>)>, name: &str, boot: Boot) {
    match results.iter_mut().find(|(n, _)| n == name) {
        Some((_, boots)) => boots.push(boot),
        None => results.push((name.to_string(), vec![boot])),
    }
}

/// Every target as every format, a round's boots in order.
fn boots(targets: &[Target], formats: &[Format]) -> Vec<(Target, Format)> {
    let formats = if formats.is_empty() {
        vec![Format::KernelInitrd]
    } else {
        formats.to_vec()
    };
    targets
        .iter()
        .flat_map(|t| formats.iter().map(move |f| (*t, *f)))
        .collect()
}

/// `static`, or `static/raw-efi` for an image format.
fn name(target: Target, format: Format) -> String {
    let target = format!("{target:?}").to_lowercase();
    match format {
        Format::KernelInitrd => target,
        _ => format!("{target}/{format}"),
    }
}

fn boot_args(target: Target, format: Format, args: &Options) -> test_boot::Options {
    test_boot::Options {
        method: match target {
            Target::Smoke => None,
            Target::Static => Some(Method::Static),
            Target::Dynamic => Some(Method::Dynamic),
            Target::Native => Some(Method::Native),
        },
        registry: None,
        unreachable_registry: false,
        timeout: None,
        hosts: args.hosts.clone(),
        ports: vec![],
        gets: vec![],
        restart: (args.second_boot && target != Target::Smoke).then_some(Restart::Clean),
        expect_after_restart: None,
        data_disk: None,
        vm: VmOpts {
            format,
            ..args.vm.clone()
        },
    }
}

/// Each boot's slowest host.
fn slowest(boots: &[Boot]) -> Vec<Duration> {
    let mut t: Vec<Duration> = boots
        .iter()
        .filter_map(|b| b.hosts.iter().map(|(_, d)| *d).max())
        .collect();
    t.sort();
    t
}

/// The middle of sorted `times` (the lower middle of an even count).
fn median(times: &[Duration]) -> Duration {
    times[(times.len() - 1) / 2]
}

/// Boot the plain VM with the same QEMU, CPUs and memory, and read its figures.
fn plain_vm(sh: &Shell, project: &Project, script: &Path) -> Result<Boot> {
    let step = ui::step("boot the plain VM (Debian initramfs + dockerd + compose)");
    let work = project.cache_path("baseline");
    let qemu = host::path(project, host::QEMU)?;
    let out = exec::read(cmd!(sh, "bash {script} {work}").env("QEMU", qemu)).with_context(|| {
        // The project's own script (../shared/bench/baseline-vm.sh) unpacks
        // a Debian root filesystem, device nodes and all.
        if userns::is_host_root() {
            "the plain VM".to_string()
        } else {
            "the plain VM (its script ran as root of the xtask's user namespace, where device nodes \
             cannot be made; a script that builds a root filesystem, as baseline-vm.sh does, needs \
             the host's root: run `sudo cargo xtask bench … --baseline SCRIPT`)"
                .to_string()
        }
    })?;
    step.done();
    let last = out.lines().last().unwrap_or_default();
    parse_baseline(last)
        .map(|hosts| Boot {
            line: format!("plain             {last}"),
            hosts,
        })
        .with_context(|| format!("the plain VM's script did not end with its figures: {last:?}"))
}

/// `baseline: accel=tcg a=30.8s b=31.0s initrd_zstd=250MB root=700MB` ->
/// a.localhost 30.8 s, b.localhost 31.0 s (`fail` is no figure).
fn parse_baseline(line: &str) -> Option<Vec<(String, Duration)>> {
    let rest = line.strip_prefix("baseline:")?;
    let hosts: Vec<(String, Duration)> = rest
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.len() == 1)
        .map(|(k, v)| {
            Some((
                format!("{k}.localhost"),
                Duration::from_secs_f64(v.strip_suffix('s')?.parse().ok()?),
            ))
        })
        .collect::<Option<_>>()?;
    (!hosts.is_empty()).then_some(hosts)
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']))
        .unwrap_or("?");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    format!("{model}, {cores} cores, {} GiB", kib / (1024 * 1024))
}

fn qemu_version(project: &Project) -> String {
    match host::check(project, host::QEMU).state {
        host::State::Ok { path, version } => format!("QEMU {version} ({})", path.display()),
        _ => "QEMU ?".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_vms_figures() {
        let hosts = parse_baseline("baseline: accel=tcg a=30.8s b=31.25s initrd_zstd=250MB root=700MB").unwrap();
        assert_eq!(
            hosts,
            [
                ("a.localhost".to_string(), Duration::from_millis(30_800)),
                ("b.localhost".to_string(), Duration::from_millis(31_250))
            ]
        );
        assert_eq!(
            parse_baseline("baseline: accel=tcg a=fails b=31.2s initrd_zstd=250MB"),
            None
        );
        assert_eq!(parse_baseline("BASELINE up 31.80"), None);
    }

    #[test]
    fn medians_and_slowest_hosts() {
        let s = Duration::from_secs;
        let boot = |a, b| Boot {
            hosts: vec![("a".into(), s(a)), ("b".into(), s(b))],
            line: String::new(),
        };
        let boots = [boot(10, 12), boot(30, 20), boot(15, 14)];
        assert_eq!(slowest(&boots), [s(12), s(15), s(30)]);
        assert_eq!(median(&slowest(&boots)), s(15));
        assert_eq!(median(&[s(1), s(2)]), s(1));
    }

    #[test]
    fn a_second_boot_is_a_clean_restart_of_each_compose_vm_on_its_disk() {
        let args = |second_boot| Options {
            runs: 1,
            targets: vec![],
            baseline: None,
            hosts: vec![],
            formats: vec![],
            second_boot,
            vm: VmOpts {
                accel: None,
                memory: 1024,
                cpus: 2,
                qemu_args: vec![],
                format: Format::KernelInitrd,
                data: None,
            },
        };
        for target in [Target::Static, Target::Dynamic, Target::Native] {
            let with = boot_args(target, Format::KernelInitrd, &args(true));
            assert_eq!(with.restart, Some(Restart::Clean), "{target:?}");
            // A new disk for the first boot: the one the second boot reuses.
            assert_eq!(with.data_disk, None);
            assert_eq!(boot_args(target, Format::KernelInitrd, &args(false)).restart, None);
        }
        // The smoke VM keeps no data.
        assert_eq!(
            boot_args(Target::Smoke, Format::KernelInitrd, &args(true)).restart,
            None
        );
    }

    #[test]
    fn a_boots_line_names_its_vm_round_hosts_and_phases() {
        let run = test_boot::Timings {
            hosts: vec![("localhost".into(), Duration::from_millis(12_300))],
            ..Default::default()
        };
        let boot = Boot::new("static 2nd boot", 2, run);
        assert_eq!(
            boot.line,
            "static 2nd boot   round  2: first 200 (QEMU clock) localhost 12.3s"
        );
    }
}
