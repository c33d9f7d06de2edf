//! The command line: every command and flag, checked as a whole before any
//! work starts (a bad combination must not cost a build first), and what each
//! command will need from the host.

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use crate::{
    build::host::Need,
    run::bench,
    run::boot::VmOpts,
    run::test_boot,
    vm::methods::{self, ComposeOpt, RegistryOpt},
};

/// Build and boot LinuxKit VMs that run a compose application.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
pub struct Cli {
    /// Never install missing Debian packages; print the apt-get command instead.
    #[arg(long, global = true)]
    pub no_install: bool,
    /// Show every command the xtask runs and everything it prints (otherwise
    /// in dist/logs/, one log per step).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the host programs the build needs, their versions, and how to install
    /// missing ones; fails if anything required is missing or too old.
    Doctor {
        /// Install every missing or too old Debian package (as root).
        #[arg(long)]
        fix: bool,
    },
    /// Build the static method's VM: compose file and image tarballs inside, no registry needed.
    Static {
        #[command(flatten)]
        compose: ComposeOpt,
    },
    /// Boot the static VM on this terminal, guest port 80 on 127.0.0.1:PORT (Ctrl-A X quits).
    RunStatic(RunArgs),
    /// Build the dynamic method's VM: only the compose file inside; images are pulled at boot.
    Dynamic {
        #[command(flatten)]
        compose: ComposeOpt,
        #[command(flatten)]
        registry: RegistryOpt,
    },
    /// Boot the dynamic VM on this terminal; without --registry a local registry serves the images.
    RunDynamic {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        registry: RegistryOpt,
    },
    /// Build every compose service that has `build:`, tagged with its `image:`.
    Apps {
        #[command(flatten)]
        compose: ComposeOpt,
    },
    /// Save every image the compose file uses as a `docker load`-able tarball in dist/images/.
    Images {
        #[command(flatten)]
        compose: ComposeOpt,
    },
    /// Build the VM's own images (kernel, init, runc, …) into the LinuxKit cache.
    VmImages {
        /// Image recipe names under images/ (default: all in pins.yml).
        names: Vec<String>,
    },
    /// Regenerate the LinuxKit YAML under linuxkit/ from the recipes, pins and the
    /// default compose file (builds nothing).
    Yaml,
    /// Build the smoke VM (nginx serving one page) into dist/smoke-{kernel,initrd.img}.
    Smoke,
    /// Boot the smoke VM with its serial console on this terminal (Ctrl-A X quits).
    RunSmoke {
        /// Host port on 127.0.0.1 forwarded to the guest's port 80.
        #[arg(long, default_value_t = 8080, value_parser = port())]
        port: u16,
        #[command(flatten)]
        vm: VmOpts,
    },
    /// Build, boot headless, check over HTTP, report the time to the first answers.
    TestBoot(test_boot::Args),
    /// Boot each VM several times and print the time to the first HTTP 200 (min, median, max).
    Bench(bench::Args),
    /// Everything CI runs: formatting, clippy, `cargo test`, then every boot test.
    Test {
        #[command(flatten)]
        vm: VmOpts,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub compose: ComposeOpt,
    /// Host port on 127.0.0.1 forwarded to the guest's port 80.
    #[arg(long, default_value_t = 8080, value_parser = port())]
    pub port: u16,
    #[command(flatten)]
    pub vm: VmOpts,
}

/// A TCP port a host can listen on: 1-65535.
pub fn port() -> clap::builder::RangedI64ValueParser<u16> {
    clap::value_parser!(u16).range(1..)
}

impl Command {
    /// Refuse flag combinations that cannot work, before anything is built.
    pub fn validate(&self) -> Result<()> {
        match self {
            Command::TestBoot(args) => args.validate(),
            Command::Bench(args) => args.validate(),
            _ => Ok(()),
        }
    }

    /// What the command will run on the host, so all of it is checked first.
    pub fn needs(&self) -> Vec<Need> {
        let local_registry = |r: &RegistryOpt| {
            if r.registry.is_none() {
                vec![Need::Registry]
            } else {
                vec![]
            }
        };
        let mut needs = match self {
            Command::Doctor { .. } | Command::Yaml => vec![],
            Command::Static { .. }
            | Command::Dynamic { .. }
            | Command::Apps { .. }
            | Command::Images { .. }
            | Command::VmImages { .. }
            | Command::Smoke => vec![Need::Build],
            Command::RunStatic(_) | Command::RunSmoke { .. } => vec![Need::Build, Need::Boot],
            Command::RunDynamic { registry, .. } => [vec![Need::Build, Need::Boot], local_registry(registry)].concat(),
            Command::TestBoot(args) => {
                let dynamic = args.method == Some(methods::Method::Dynamic);
                let registry = if dynamic {
                    local_registry(&args.registry)
                } else {
                    vec![]
                };
                [vec![Need::Build, Need::Boot], registry].concat()
            }
            Command::Bench(args) => {
                let dynamic = args.targets.is_empty() || args.targets.contains(&bench::Target::Dynamic);
                let registry = if dynamic { vec![Need::Registry] } else { vec![] };
                let plain = if args.baseline.is_some() {
                    vec![Need::PlainVm]
                } else {
                    vec![]
                };
                [vec![Need::Build, Need::Boot], registry, plain].concat()
            }
            Command::Test { .. } => vec![Need::Build, Need::Boot, Need::Registry],
        };
        needs.dedup();
        needs
    }
}

impl test_boot::Args {
    pub fn validate(&self) -> Result<()> {
        let dynamic = self.method == Some(methods::Method::Dynamic);
        if !self.smoke && self.method.is_none() {
            bail!("say what to boot: --smoke, or --method static|dynamic");
        }
        if self.unreachable_registry && !dynamic {
            bail!("--unreachable-registry tests the dynamic method's registry: use it with --method dynamic");
        }
        if self.registry.registry.is_some() && !dynamic {
            bail!("--registry is for the dynamic method: use it with --method dynamic");
        }
        if self.smoke && self.compose.path.is_some() {
            bail!("--compose has no effect on the smoke VM (it runs one nginx, no compose app)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        let mut argv = vec!["cargo xtask"];
        argv.extend(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        cli.command.validate().map_err(|e| format!("{e:#}"))?;
        Ok(cli.command)
    }

    #[test]
    fn bad_combinations_are_refused_before_work() {
        for (args, want) in [
            (
                &["test-boot", "--method", "static", "--unreachable-registry"][..],
                "use it with --method dynamic",
            ),
            (
                &["test-boot", "--method", "static", "--registry", "r.example.com"],
                "--registry is for the dynamic",
            ),
            (&["test-boot"], "say what to boot"),
            (
                &["test-boot", "--smoke", "--compose", "x.yml"],
                "no effect on the smoke VM",
            ),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.contains(want), "{args:?}: {err}");
        }
        assert!(parse(&["test-boot", "--method", "dynamic", "--unreachable-registry"]).is_ok());
    }

    #[test]
    fn numbers_out_of_range_are_refused() {
        for args in [
            &["run-static", "--port", "0"][..],
            &["run-smoke", "--port", "0"],
            &["run-static", "--memory", "0"],
            &["run-static", "--memory", "64"],
            &["test-boot", "--smoke", "--cpus", "0"],
            &["test-boot", "--smoke", "--timeout", "0"],
            &["bench", "--runs", "0"],
            &["run-dynamic", "--registry", ":5000"],
            &["dynamic", "--registry", "registry.example.com/Team"],
        ] {
            assert!(parse(args).is_err(), "{args:?} must be refused");
        }
        assert!(parse(&["run-static", "--port", "8080", "--memory", "1024"]).is_ok());
    }

    #[test]
    fn needs_follow_the_command() {
        let needs = |args: &[&str]| parse(args).unwrap().needs();
        assert_eq!(needs(&["doctor"]), []);
        assert_eq!(needs(&["static"]), [Need::Build]);
        assert_eq!(needs(&["run-static"]), [Need::Build, Need::Boot]);
        assert_eq!(needs(&["test-boot", "--smoke"]), [Need::Build, Need::Boot]);
        assert_eq!(
            needs(&["test-boot", "--method", "dynamic"]),
            [Need::Build, Need::Boot, Need::Registry]
        );
        assert_eq!(
            needs(&["run-dynamic", "--registry", "r.example.com"]),
            [Need::Build, Need::Boot]
        );
        assert_eq!(needs(&["test"]), [Need::Build, Need::Boot, Need::Registry]);
    }
}
