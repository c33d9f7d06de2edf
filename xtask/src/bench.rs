//! `cargo xtask bench`: boot each VM several times and print the time from QEMU
//! start to the first HTTP 200 of every host (minimum, median, maximum), with
//! the machine and accelerator they were measured on.

use std::time::Duration;

use anyhow::Result;
use xshell::Shell;

use crate::{
    boot::VmOpts,
    host,
    methods::{ComposeOpt, Method, RegistryOpt},
    project::Project,
    test_boot::{self, Timings},
    ui,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Smoke,
    Static,
    Dynamic,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Boots per VM (at least 1).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// VMs to boot [default: smoke, static, dynamic].
    #[arg(long = "vm", value_enum)]
    pub targets: Vec<Target>,
    #[command(flatten)]
    pub compose: ComposeOpt,
    #[command(flatten)]
    pub vm: VmOpts,
}

pub fn run(sh: &Shell, project: &Project, args: &Args) -> Result<()> {
    let targets = if args.targets.is_empty() {
        vec![Target::Smoke, Target::Static, Target::Dynamic]
    } else {
        args.targets.clone()
    };
    let mut rows = Vec::new();
    let mut boots = Vec::new();
    let mut oopses = 0;
    let mut accels = Vec::new();
    for target in targets {
        let boot_args = test_boot::Args {
            smoke: target == Target::Smoke,
            method: match target {
                Target::Smoke => None,
                Target::Static => Some(Method::Static),
                Target::Dynamic => Some(Method::Dynamic),
            },
            compose: args.compose.clone(),
            registry: RegistryOpt { registry: None },
            unreachable_registry: false,
            timeout: None,
            vm: args.vm.clone(),
        };
        let mut runs: Vec<Timings> = Vec::new();
        for i in 1..=args.runs {
            ui::note(format!("bench: {target:?} boot {i} of {}", args.runs));
            let run = test_boot::measure(sh, project, &boot_args)?;
            let hosts: Vec<String> = run.hosts.iter().map(|(h, d)| format!("{h} {}", ui::secs(*d))).collect();
            let line = format!(
                "{:<8} boot {i:>2}: first 200 (QEMU clock) {}",
                format!("{target:?}").to_lowercase(),
                hosts.join(", ")
            );
            boots.push(match &run.phases {
                Some(p) => format!("{line}; guest uptime: {p}"),
                None => line,
            });
            oopses += run.phases.as_ref().map_or(0, |p| p.oopses);
            runs.push(run);
        }
        accels.extend(runs.iter().filter_map(|r| r.accel).map(|a| a.to_string()));
        for (host, _) in &runs[0].hosts {
            let mut times: Vec<Duration> = runs
                .iter()
                .flat_map(|r| r.hosts.iter().filter(|(h, _)| h == host).map(|(_, d)| *d))
                .collect();
            times.sort();
            rows.push(format!(
                "{:<8} {:<14} {:>8} {:>8} {:>8}  {}",
                format!("{target:?}").to_lowercase(),
                host,
                ui::secs(times[0]),
                ui::secs(times[times.len() / 2]),
                ui::secs(times[times.len() - 1]),
                times.len()
            ));
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
    ui::say!(
        "{:<8} {:<14} {:>8} {:>8} {:>8}  runs",
        "vm",
        "host",
        "min",
        "median",
        "max"
    );
    for row in rows {
        ui::say!("{row}");
    }
    ui::say!("\nPer boot (phases from the serial log, guest uptime):");
    for line in &boots {
        ui::say!("{line}");
    }
    ui::say!("kernel oopses/panics/BUGs in these boots' serial logs: {oopses}");
    Ok(())
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
