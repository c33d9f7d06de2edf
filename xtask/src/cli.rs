//! The command line: every command and flag, checked as a whole before any
//! work starts (a bad combination must not cost a build first), what each
//! command will need from the host, and the plain options the work is given.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use crate::{
    app::compose::{self, App},
    base::{
        origin::{self, Images, Registries},
        project::Project,
    },
    building::{apps, host::Need, registry::Address},
    disk::Format,
    run::{
        bench,
        boot::VmOpts,
        data::{self, Selection},
        qemu::Accel,
        suite, test_boot,
        volumes::Target,
    },
    vm::method::Method,
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
    /// Release VMs: no root shell on the serial console (without it, every VM
    /// gives one, for development). Their outputs go to dist/release/.
    #[arg(long, global = true)]
    pub release: bool,
    /// Where the app's images come from: `local` builds each from the local
    /// catalog of stand-ins (Debian packages, no registry needed); `registry`
    /// pulls each from its own registry, by the digest the app's image lock
    /// (NAME.images.lock beside the compose file) records.
    #[arg(long, global = true, value_enum, default_value = "local", env = origin::IMAGES_ENV, value_name = "FROM")]
    pub images: ImagesArg,
    /// With `--images registry`: pull Docker Hub names from this mirror first
    /// (as dockerd's `registry-mirrors`).
    #[arg(long, global = true, env = origin::MIRROR_ENV, value_name = "HOST[:PORT]", value_parser = parse_host)]
    pub registry_mirror: Option<String>,
    /// With `--images registry`: a registry reached over plain HTTP or
    /// unverified TLS (one on 127.0.0.1 or localhost always is). Repeatable.
    #[arg(long, global = true, value_name = "HOST[:PORT]", value_parser = parse_host)]
    pub insecure_registry: Vec<String>,
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
    /// Build the static method's VM: compose file and the app's images inside, no registry needed.
    Static {
        #[command(flatten)]
        compose: ComposeArg,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Boot the static VM on this terminal, every published port on 127.0.0.1 (Ctrl-A X quits).
    RunStatic(RunArgs),
    /// Build the dynamic method's VM: only the compose file inside; images are pulled at boot.
    Dynamic {
        #[command(flatten)]
        compose: ComposeArg,
        #[command(flatten)]
        registry: RegistryArg,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Boot the dynamic VM on this terminal; without --registry a local registry serves the images.
    RunDynamic {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        registry: RegistryArg,
    },
    /// Build the native method's VM: each compose service a LinuxKit service, no Docker engine.
    Native {
        #[command(flatten)]
        compose: ComposeArg,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Boot the native VM on this terminal, every published port on 127.0.0.1 (Ctrl-A X quits).
    RunNative(RunArgs),
    /// Build every compose service that has `build:`, tagged with its `image:`.
    Apps {
        #[command(flatten)]
        compose: ComposeArg,
    },
    /// Save every image the compose file uses as a `docker load`-able tarball in dist/images/.
    Images {
        #[command(flatten)]
        compose: ComposeArg,
    },
    /// Resolve every image's Debian packages (dependencies included) against the
    /// mirror as it is now, write their exact versions and sha256 to pins.lock,
    /// and print what changed. Builds install exactly what pins.lock locks.
    /// With `--images registry`, also resolve every image the app names at its
    /// registry again and write the app's image lock (NAME.images.lock).
    Lock {
        #[command(flatten)]
        compose: ComposeArg,
        /// Resolve only this image of pins.yml (repeatable), as for a recipe
        /// just added: every other image keeps what pins.lock locks, and
        /// source_date_epoch stays, so no other image's tag moves.
        #[arg(long = "image", value_name = "NAME")]
        only: Vec<String>,
    },
    /// Build the VM's own images (kernel, init, crun, …) into the LinuxKit cache.
    VmImages {
        /// Image recipe names under images/ (default: all in pins.yml).
        names: Vec<String>,
    },
    /// Regenerate the LinuxKit YAML under linuxkit/ from the recipes, pins and the
    /// default compose file, and the README's native key table (builds only the
    /// default app's images, whose configs the native YAML spells out).
    Yaml,
    /// Build the smoke VM (nginx serving one page) into dist/smoke-{kernel,initrd.img}.
    Smoke {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Boot the smoke VM with its serial console on this terminal (Ctrl-A X quits).
    RunSmoke {
        /// Host port on 127.0.0.1 forwarded to the guest's port 80.
        #[arg(long, default_value_t = 8080, value_parser = port())]
        port: u16,
        #[command(flatten)]
        vm: VmArgs,
    },
    /// Build, boot headless, check over HTTP, report the time to the first answers.
    TestBoot(TestBootArgs),
    /// Boot each VM several times and print the time to the first HTTP 200 (min, median, max).
    Bench(BenchArgs),
    /// Same inputs, same bytes: build a VM twice from HEAD, cold (each in its own
    /// checkout and cache, with another TZ and umask), and compare every file of
    /// their dist/SHA256SUMS, naming the first thing that differs in each file that does.
    Repro {
        /// The VM to build twice.
        #[arg(long, value_enum, default_value = "static")]
        method: Method,
        /// Where the two checkouts and caches go (default: a folder under /tmp named by the commit).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Run the second build as this ordinary user (from root): compares
        /// a root build with a user's.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// Everything CI runs: formatting, clippy, `cargo test`, then every boot test.
    Test {
        #[command(flatten)]
        vm: VmArgs,
    },
    /// The data disks that keep the apps' named volumes (one per compose
    /// project and method, kept by run-*): list them (the default), or remove
    /// them as `docker compose down -v` does. Builds and boots nothing.
    Volumes {
        #[command(subcommand)]
        action: Option<VolumesAction>,
    },
}

/// `volumes ls` and `volumes rm`.
#[derive(Debug, Clone, Subcommand)]
pub enum VolumesAction {
    /// Every data disk: its project and method, size on the host and as a
    /// disk, last change, whether a VM holds it now, path.
    Ls,
    /// Remove the app's data disks (every method's, or --method's), every
    /// one (--all), or the file PATH; each is said first. A disk a running
    /// VM holds is refused, and then nothing is removed.
    Rm(VolumesRmArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct VolumesRmArgs {
    /// A data disk file (as --data-disk names one) instead of the app's: it
    /// must be blank or hold the VM's compose-data file system.
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Every data disk in the default folder, whatever its project.
    #[arg(long)]
    pub all: bool,
    /// Only the disk of this method [default: every method's].
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// The app whose disks go (its compose project name), as run-* reads it.
    #[command(flatten)]
    pub compose: ComposeArg,
}

/// Where the app comes from, shared by every command that reads it: the
/// options `docker compose` itself takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ComposeArg {
    /// A compose file describing the app; several are merged in order, as with
    /// `docker compose -f` [default: compose/docker-compose.yml]
    #[arg(long = "compose", short = 'f', value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Variables for the compose files (default: `.env` beside the first file)
    #[arg(long = "env-file", value_name = "PATH")]
    pub env_files: Vec<PathBuf>,
    /// The compose project name (default: the file's `name:`, else its folder's)
    #[arg(long = "project-name", short = 'p', value_name = "NAME")]
    pub project_name: Option<String>,
    /// Also run the services of this compose profile
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// Native method: build even when the compose file has keys the
    /// conversion does not carry over (each one is still listed)
    #[arg(long)]
    pub allow_unsupported: bool,
}

/// `--format`: what a build writes to dist/, and what a boot boots.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct FormatArg {
    /// kernel+initrd (QEMU loads them itself), or an image a host boots with
    /// its own firmware: raw-bios, raw-efi, qcow2-bios, qcow2-efi (disks),
    /// iso-efi (a CD or USB stick); written to dist/ as NAME-bios.img,
    /// NAME-efi.img, NAME-bios.qcow2, NAME-efi.qcow2, NAME-efi.iso
    #[arg(
        long,
        value_enum,
        default_value_t,
        hide_possible_values = true,
        value_name = "FORMAT"
    )]
    pub format: Format,
}

/// `--images`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImagesArg {
    Local,
    Registry,
}

impl Cli {
    /// Where the app's images come from, as the flags say.
    pub fn images(&self) -> Result<Images> {
        match self.images {
            ImagesArg::Local => {
                if self.registry_mirror.is_some() || !self.insecure_registry.is_empty() {
                    bail!("--registry-mirror and --insecure-registry only mean something with --images registry");
                }
                Ok(Images::Local)
            }
            ImagesArg::Registry => Ok(Images::Registry(Registries {
                mirror: self.registry_mirror.clone(),
                insecure: self.insecure_registry.clone(),
                auth_file: None,
            })),
        }
    }
}

/// A registry host as `--registry-mirror` and `--insecure-registry` take it.
fn parse_host(text: &str) -> Result<String, String> {
    let address = Address::parse(text).map_err(|e| format!("{e:#}"))?;
    if address.namespace.is_some() {
        return Err(format!("{text:?} is HOST[:PORT], without a path"));
    }
    Ok(address.host)
}

/// `--registry`, for the dynamic method.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArg {
    /// Push to and pull from this registry (HOST[:PORT][/NAMESPACE]) instead of
    /// a docker-registry the xtask runs on 127.0.0.1 for the command.
    #[arg(long, value_name = "HOST[:PORT][/NAMESPACE]", value_parser = parse_registry)]
    pub registry: Option<Address>,
}

fn parse_registry(text: &str) -> Result<Address, String> {
    Address::parse(text).map_err(|e| format!("{e:#}"))
}

/// How the VM runs: accelerator, memory, CPUs.
#[derive(Debug, Clone, clap::Args)]
pub struct VmArgs {
    /// Accelerator: kvm or tcg. Default: KVM if a short probe boot shows it works, else TCG.
    #[arg(long, value_enum)]
    pub accel: Option<Accel>,
    /// Guest memory in MiB (at least 256).
    #[arg(long, default_value_t = 3072, value_parser = clap::value_parser!(u32).range(256..=1_048_576))]
    pub memory: u32,
    /// Guest CPUs (1-255).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=255))]
    pub cpus: u32,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub compose: ComposeArg,
    /// Every published port is forwarded from the same port of 127.0.0.1, as
    /// `docker compose up` publishes it; this moves the router's (the port
    /// the Host rules are reached through) to PORT.
    #[arg(long, value_parser = port())]
    pub port: Option<u16>,
    /// The disk file that keeps the app's named volumes (made if missing).
    /// Default: one per compose project and method under
    /// $XDG_DATA_HOME/linuxkit-compose/volumes/ (~/.local/share/...), kept
    /// from one run to the next, as `docker compose` keeps volumes.
    #[arg(long, value_name = "PATH")]
    pub data_disk: Option<std::path::PathBuf>,
    /// Start from empty volumes: remove the data disk first (as
    /// `docker compose down -v` removes a project's volumes).
    #[arg(long)]
    pub fresh_data: bool,
    /// Size of a new data disk, in GiB (a sparse file: it takes on the host
    /// only what the volumes hold).
    #[arg(long, value_name = "GIB", default_value_t = crate::run::data::DEFAULT_GIB)]
    pub data_size: u64,
    #[command(flatten)]
    pub vm: VmArgs,
    #[command(flatten)]
    pub format: FormatArg,
    /// More arguments for QEMU, after `--` (say `-- -device virtio-balloon-pci`).
    #[arg(last = true, value_name = "QEMU ARGS")]
    pub qemu_args: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TestBootArgs {
    /// Boot the smoke VM: one nginx service serving a known page.
    #[arg(long, conflicts_with = "method")]
    pub smoke: bool,
    /// Boot a compose method's VM and check every routed hostname.
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    #[command(flatten)]
    pub compose: ComposeArg,
    #[command(flatten)]
    pub registry: RegistryArg,
    /// Dynamic only: stop the local registry once the images are pushed, and
    /// pass if the VM then fails cleanly, saying the registry cannot be reached.
    #[arg(long)]
    pub unreachable_registry: bool,
    /// Seconds to wait for the first HTTP 200 after QEMU starts
    /// (default: 300 under TCG, 90 under KVM for the smoke VM; 600 and 240 for compose VMs).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Also probe Host NAME through the router's port (the port of the service
    /// that reads the Docker socket, else 80) and wait for HTTP 200, for an app
    /// whose router is not traefik (nginx, Caddy, …): the xtask reads traefik's
    /// Host rules from the compose labels, but not another router's own
    /// configuration. Repeatable.
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// Check only this published port (repeatable; default: every published
    /// TCP port must answer): for an app that publishes a port nothing
    /// listens on until asked, a debugger's, say.
    #[arg(long = "port", value_name = "PORT", conflicts_with = "smoke")]
    pub ports: Vec<u16>,
    /// Also GET PATH on published port PORT and wait for HTTP 2xx: a page
    /// the app serves from its database, where `/` never asks it
    /// (`--get 3000/api/users`). Repeatable.
    #[arg(long = "get", value_name = "PORT/PATH", conflicts_with = "smoke")]
    pub gets: Vec<test_boot::Get>,
    /// Boot twice on one data disk: after the checks, stop the VM (`clean`,
    /// the default: its ACPI power button, and it must power off with its
    /// disks unmounted; `kill`: SIGKILL to QEMU, a power cut), boot it again
    /// and check again.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "clean", conflicts_with = "smoke")]
    pub restart: Option<test_boot::Restart>,
    /// With --restart: after the second boot, the app's first checked
    /// published port must answer `GET /` with a body holding TEXT (what the first boot
    /// wrote to a named volume, seen again).
    #[arg(long, value_name = "TEXT", requires = "restart")]
    pub expect_after_restart: Option<String>,
    /// Boot on this disk file for the named volumes, as it is (made blank if
    /// missing), instead of a new, empty one: what a VM makes of a disk the
    /// user brings, a kept one or one that holds something else.
    #[arg(long, value_name = "PATH", conflicts_with = "smoke")]
    pub data_disk: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub vm: VmArgs,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Boots per VM (at least 1).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// VMs to boot [default: smoke, static, dynamic].
    #[arg(long = "vm", value_enum)]
    pub targets: Vec<bench::Target>,
    /// Boot each VM as these formats, each in every round (see `static
    /// --help`) [default: kernel+initrd]
    #[arg(long = "format", value_enum, hide_possible_values = true, value_name = "FORMAT")]
    pub formats: Vec<Format>,
    /// The plain way to ship the same app, booted in the same rounds as the
    /// VMs so the ratios compare like with like: a script taking a work
    /// directory whose last line is `baseline: accel=… a=Ns b=Ns …`
    /// (for this project, ../shared/bench/baseline-vm.sh).
    #[arg(long, value_name = "SCRIPT")]
    pub baseline: Option<PathBuf>,
    /// Also probe Host NAME through the router's port (the port of the service
    /// that reads the Docker socket, else 80) and wait for HTTP 200, for an app
    /// whose router is not traefik (nginx, Caddy, …): the xtask reads traefik's
    /// Host rules from the compose labels, but not another router's own
    /// configuration. Repeatable.
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// Boot each compose VM twice per round on one new data disk, with a clean
    /// stop in between, and time both boots (rows `VM` and `VM 2nd boot`): the
    /// first initializes the app's volumes (a database's first start), the
    /// second finds them, as every later boot of a deployed VM does.
    #[arg(long)]
    pub second_boot: bool,
    #[command(flatten)]
    pub compose: ComposeArg,
    #[command(flatten)]
    pub vm: VmArgs,
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
            Command::Volumes {
                action: Some(VolumesAction::Rm(args)),
            } => args.validate(),
            Command::Dynamic { registry, format, .. }
                if registry.registry.is_none() && format.format != Format::KernelInitrd =>
            {
                bail!(
                    "an image's kernel command line is fixed when it is made, and the dynamic VM finds its registry there: `dynamic --format {}` needs --registry HOST[:PORT][/NAMESPACE] (`run-dynamic` and `test-boot` start one of their own)",
                    format.format
                )
            }
            _ => Ok(()),
        }
    }

    /// The deployable format (a disk or an ISO) this command builds or boots,
    /// if any: those are release builds, without a console shell.
    pub fn deployable_format(&self) -> Option<Format> {
        let format = match self {
            Command::Static { format, .. }
            | Command::Dynamic { format, .. }
            | Command::Native { format, .. }
            | Command::Smoke { format } => format.format,
            Command::RunStatic(run) | Command::RunNative(run) | Command::RunDynamic { run, .. } => run.format.format,
            Command::TestBoot(args) => args.format.format,
            _ => Format::KernelInitrd,
        };
        (format != Format::KernelInitrd).then_some(format)
    }

    /// What the command will run on the host, so all of it is checked first:
    /// what its kind needs, then what each of its parts (flag groups) needs.
    pub fn needs(&self) -> Vec<Need> {
        let (kind, parts) = self.parts();
        let mut needs = kind.needs();
        for part in parts {
            needs.extend(part.needs(kind));
        }
        needs
    }

    /// Does the command build or boot (so an ordinary user runs it in a user
    /// namespace), rather than only look at the host or the data disks?
    pub fn builds_or_boots(&self) -> bool {
        self.parts().0 != Kind::Look
    }

    /// What the command does, and the parts its needs come from, in the
    /// order their needs are listed. Every field is named (no `..`): a flag
    /// group added to a command does not compile until it is placed here,
    /// and then brings its needs along.
    fn parts(&self) -> (Kind, Vec<&dyn HostNeeds>) {
        match self {
            Command::Doctor { fix: _ } => (Kind::Look, vec![]),
            Command::Static { compose, format } | Command::Native { compose, format } => {
                (Kind::Build, vec![compose, format])
            }
            Command::Dynamic {
                compose,
                registry,
                format,
            } => (Kind::Build, vec![compose, registry, format]),
            Command::Smoke { format } => (Kind::Build, vec![format]),
            Command::Apps { compose } | Command::Images { compose } | Command::Lock { compose, only: _ } => {
                (Kind::Build, vec![compose])
            }
            Command::VmImages { names: _ } | Command::Yaml => (Kind::Build, vec![]),
            Command::Repro {
                method: _,
                dir: _,
                user: _,
            } => (Kind::Build, vec![]),
            Command::RunStatic(run) | Command::RunNative(run) => (Kind::Boot, vec![run]),
            // The local registry comes before the format's firmware.
            Command::RunDynamic { run, registry } => (Kind::Boot, vec![registry, run]),
            Command::RunSmoke { port: _, vm } => (Kind::Boot, vec![vm]),
            Command::TestBoot(args) => (Kind::Boot, vec![args]),
            Command::Bench(args) => (Kind::Boot, vec![args]),
            Command::Test { vm } => (Kind::Boot, vec![vm, &Suite]),
            Command::Volumes { action: None }
            | Command::Volumes {
                action: Some(VolumesAction::Ls),
            } => (Kind::Look, vec![]),
            Command::Volumes {
                action: Some(VolumesAction::Rm(args)),
            } => (Kind::Look, vec![args]),
        }
    }
}

/// What a command does with VMs, which decides what its parts need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Looks at the host only (`doctor`).
    Look,
    /// Builds images or VMs.
    Build,
    /// Builds VMs and boots them.
    Boot,
}

impl Kind {
    /// What this kind of command needs whatever its flags.
    fn needs(self) -> Vec<Need> {
        match self {
            Kind::Look => vec![],
            Kind::Build => vec![Need::Build],
            Kind::Boot => vec![Need::Build, Need::Boot],
        }
    }
}

/// A part of a command (a flag group, or what the command runs besides):
/// what it needs from the host in a command of `kind`.
trait HostNeeds {
    fn needs(&self, kind: Kind) -> Vec<Need>;
}

impl HostNeeds for ComposeArg {
    /// Nothing: docker compose, which reads the file, is unpacked from its
    /// pinned Debian package into the cache, not run from the host.
    fn needs(&self, _: Kind) -> Vec<Need> {
        vec![]
    }
}

impl HostNeeds for FormatArg {
    /// What the format is made with, and to boot it, its firmware.
    fn needs(&self, kind: Kind) -> Vec<Need> {
        Command::format_needs(&[self.format], kind == Kind::Boot)
    }
}

impl HostNeeds for RegistryArg {
    /// Without --registry, a boot pushes to a registry the xtask runs itself.
    fn needs(&self, kind: Kind) -> Vec<Need> {
        if kind == Kind::Boot && self.registry.is_none() {
            vec![Need::Registry]
        } else {
            vec![]
        }
    }
}

impl HostNeeds for VmArgs {
    /// Nothing beyond QEMU, which every boot needs.
    fn needs(&self, _: Kind) -> Vec<Need> {
        let VmArgs {
            accel: _,
            memory: _,
            cpus: _,
        } = self;
        vec![]
    }
}

impl HostNeeds for RunArgs {
    fn needs(&self, kind: Kind) -> Vec<Need> {
        let RunArgs {
            compose,
            port: _,
            data_disk: _,
            fresh_data: _,
            data_size: _,
            vm,
            format,
            qemu_args: _,
        } = self;
        [compose.needs(kind), vm.needs(kind), format.needs(kind)].concat()
    }
}

impl HostNeeds for TestBootArgs {
    fn needs(&self, kind: Kind) -> Vec<Need> {
        let TestBootArgs {
            smoke: _,
            method,
            compose,
            registry,
            unreachable_registry: _,
            timeout: _,
            hosts: _,
            ports: _,
            gets: _,
            restart: _,
            expect_after_restart: _,
            data_disk: _,
            vm,
            format,
        } = self;
        // Only the dynamic method pulls from a registry.
        let registry = if *method == Some(Method::Dynamic) {
            registry.needs(kind)
        } else {
            vec![]
        };
        [compose.needs(kind), registry, vm.needs(kind), format.needs(kind)].concat()
    }
}

impl HostNeeds for BenchArgs {
    fn needs(&self, kind: Kind) -> Vec<Need> {
        let BenchArgs {
            runs: _,
            targets,
            formats,
            baseline,
            hosts: _,
            second_boot: _,
            compose,
            vm,
        } = self;
        // The dynamic VM (one of the defaults) pulls from the xtask's own registry.
        let dynamic = targets.is_empty() || targets.contains(&bench::Target::Dynamic);
        let registry = if dynamic { vec![Need::Registry] } else { vec![] };
        let plain = if baseline.is_some() {
            vec![Need::PlainVm]
        } else {
            vec![]
        };
        let formats = Command::format_needs(formats, kind == Kind::Boot);
        [compose.needs(kind), vm.needs(kind), registry, plain, formats].concat()
    }
}

impl HostNeeds for VolumesRmArgs {
    fn needs(&self, kind: Kind) -> Vec<Need> {
        let VolumesRmArgs {
            path: _,
            all: _,
            method: _,
            compose,
        } = self;
        compose.needs(kind)
    }
}

/// What `cargo xtask test` runs besides its VM flags (`run::suite`).
struct Suite;

impl HostNeeds for Suite {
    /// The dynamic boots' local registry, every format the static VM is
    /// booted as, and shellcheck for the VM's shell scripts.
    fn needs(&self, _: Kind) -> Vec<Need> {
        [
            vec![Need::Registry],
            Command::format_needs(&suite::FORMATS, true),
            vec![Need::Lint],
        ]
        .concat()
    }
}

impl Command {
    /// The programs that make `formats`, and with `boot` the firmware that boots them.
    pub fn format_needs(formats: &[Format], boot: bool) -> Vec<Need> {
        let mut needs = Vec::new();
        for f in formats {
            if !f.build_programs().is_empty() {
                needs.push(Need::Programs(f.build_programs()));
            }
            if boot && !f.boot_files().is_empty() {
                needs.push(Need::Programs(f.boot_files()));
            }
        }
        needs
    }
}

impl ComposeArg {
    pub fn source(&self) -> compose::Source {
        compose::Source {
            files: self.files.clone(),
            env_files: self.env_files.clone(),
            project_name: self.project_name.clone(),
            profiles: self.profiles.clone(),
            allow_unsupported: self.allow_unsupported,
        }
    }

    /// Read the app as docker compose does and check it, before any work
    /// starts: every image it uses must be one the local profile can build.
    pub fn load(&self, project: &Project) -> Result<App> {
        apps::load(project, &self.source())
    }
}

impl ComposeArg {
    /// Was any compose option given (else: the default app)?
    fn given(&self) -> bool {
        let ComposeArg {
            files,
            env_files,
            project_name,
            profiles,
            allow_unsupported,
        } = self;
        !files.is_empty()
            || !env_files.is_empty()
            || project_name.is_some()
            || !profiles.is_empty()
            || *allow_unsupported
    }
}

impl VolumesRmArgs {
    /// One way of naming what goes: the app (compose options, the default),
    /// `--all`, or a PATH.
    pub fn validate(&self) -> Result<()> {
        if self.path.is_some() && self.all {
            bail!("volumes rm: give a PATH or --all, not both");
        }
        if self.path.is_some() && (self.method.is_some() || self.compose.given()) {
            bail!("volumes rm PATH removes that file only: leave out --method and the compose options");
        }
        if self.all && self.compose.given() {
            bail!("volumes rm --all removes every project's disks: leave out the compose options");
        }
        Ok(())
    }

    /// What to remove. The app's compose project is named as run-* names
    /// it, from the app compose reads (the same files, `-p`, `name:`).
    pub fn target(&self, project: &Project) -> Result<Target> {
        if let Some(path) = &self.path {
            return Ok(Target::Path(path.clone()));
        }
        let method = self.method.map(|m| data::method_name(m).to_string());
        let project = if self.all {
            None
        } else {
            Some(self.compose.load(project)?.project)
        };
        Ok(Target::Folder(Selection { project, method }))
    }
}

impl VmArgs {
    pub fn options(&self, qemu_args: &[String]) -> VmOpts {
        VmOpts {
            accel: self.accel,
            memory: self.memory,
            cpus: self.cpus,
            qemu_args: qemu_args.to_vec(),
            format: Format::KernelInitrd,
            data: None,
        }
    }
}

impl RunArgs {
    pub fn options(&self) -> VmOpts {
        VmOpts {
            format: self.format.format,
            ..self.vm.options(&self.qemu_args)
        }
    }
}

impl TestBootArgs {
    pub fn validate(&self) -> Result<()> {
        let dynamic = self.method == Some(Method::Dynamic);
        if !self.smoke && self.method.is_none() {
            bail!("say what to boot: --smoke, or --method static|dynamic|native");
        }
        if self.unreachable_registry && !dynamic {
            bail!("--unreachable-registry tests the dynamic method's registry: use it with --method dynamic");
        }
        if self.registry.registry.is_some() && !dynamic {
            bail!("--registry is for the dynamic method: use it with --method dynamic");
        }
        if self.unreachable_registry && self.registry.registry.is_some() {
            bail!("--unreachable-registry stops the xtask's own registry: it cannot stop yours (--registry)");
        }
        if self.unreachable_registry && self.format.format != Format::KernelInitrd {
            bail!("--unreachable-registry boots the VM as kernel+initrd only: leave out --format");
        }
        if self.smoke && !self.compose.files.is_empty() {
            bail!("--compose has no effect on the smoke VM (it runs one nginx, no compose app)");
        }
        if self.smoke && !self.hosts.is_empty() {
            bail!("--host probes a compose app's router: the smoke VM has none (use --method)");
        }
        Ok(())
    }

    pub fn options(&self) -> test_boot::Options {
        test_boot::Options {
            method: self.method.filter(|_| !self.smoke),
            registry: self.registry.registry.clone(),
            unreachable_registry: self.unreachable_registry,
            timeout: self.timeout,
            hosts: self.hosts.clone(),
            ports: self.ports.clone(),
            gets: self.gets.clone(),
            restart: self.restart,
            expect_after_restart: self.expect_after_restart.clone(),
            data_disk: self.data_disk.clone(),
            vm: VmOpts {
                format: self.format.format,
                ..self.vm.options(&[])
            },
        }
    }
}

impl BenchArgs {
    pub fn validate(&self) -> Result<()> {
        // The plain VM's script boots with these; other figures would not compare.
        if self.baseline.is_some() && (self.vm.cpus, self.vm.memory) != (2, 3072) {
            bail!("--baseline: the plain VM boots with -smp 2 -m 3072, so bench with --cpus 2 --memory 3072");
        }
        Ok(())
    }

    pub fn options(&self) -> bench::Options {
        bench::Options {
            runs: self.runs,
            targets: self.targets.clone(),
            baseline: self.baseline.clone(),
            hosts: self.hosts.clone(),
            formats: self.formats.clone(),
            second_boot: self.second_boot,
            vm: self.vm.options(&[]),
        }
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
            (
                &[
                    "test-boot",
                    "--method",
                    "dynamic",
                    "--unreachable-registry",
                    "--registry",
                    "r.example.com",
                ],
                "cannot stop yours",
            ),
            (&["test-boot"], "say what to boot"),
            (&["dynamic", "--format", "raw-efi"], "needs --registry"),
            (
                &["test-boot", "--smoke", "--compose", "x.yml"],
                "no effect on the smoke VM",
            ),
            (&["bench", "--baseline", "b.sh", "--memory", "1024"], "-smp 2 -m 3072"),
            (
                &["test-boot", "--smoke", "--host", "a.localhost"],
                "the smoke VM has none",
            ),
            (
                &[
                    "test-boot",
                    "--method",
                    "dynamic",
                    "--unreachable-registry",
                    "--format",
                    "iso-efi",
                ],
                "leave out --format",
            ),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.contains(want), "{args:?}: {err}");
        }
        for (args, want) in [
            (&["volumes", "rm", "--all", "x.img"][..], "a PATH or --all, not both"),
            (
                &["volumes", "rm", "x.img", "--method", "static"],
                "removes that file only",
            ),
            (&["volumes", "rm", "x.img", "-f", "a.yml"], "removes that file only"),
            (
                &["volumes", "rm", "--all", "-p", "shop"],
                "leave out the compose options",
            ),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.contains(want), "{args:?}: {err}");
        }
        for ok in [
            &["volumes"][..],
            &["volumes", "ls"],
            &["volumes", "rm"],
            &["volumes", "rm", "--method", "native", "-f", "a.yml"],
            &["volumes", "rm", "--all", "--method", "static"],
            &["volumes", "rm", "x.img"],
        ] {
            assert!(parse(ok).is_ok(), "{ok:?}");
        }
        assert!(parse(&["test-boot", "--method", "dynamic", "--unreachable-registry"]).is_ok());
        assert!(parse(&["dynamic", "--format", "raw-efi", "--registry", "r.example.com"]).is_ok());
        assert!(parse(&["test-boot", "--method", "dynamic", "--format", "raw-efi"]).is_ok());
    }

    /// `--restart` alone is a clean stop; `--restart kill` a power cut;
    /// what to expect after it needs a restart to expect it after.
    #[test]
    fn restart_is_clean_unless_told_kill() {
        let restart = |args: &[&str]| match parse(args) {
            Ok(Command::TestBoot(t)) => Ok(t.restart),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        let base = ["test-boot", "--method", "native"];
        assert_eq!(restart(&base), Ok(None));
        assert_eq!(
            restart(&[&base[..], &["--restart"]].concat()),
            Ok(Some(test_boot::Restart::Clean))
        );
        assert_eq!(
            restart(&[&base[..], &["--restart", "kill"]].concat()),
            Ok(Some(test_boot::Restart::Kill))
        );
        assert!(restart(&[&base[..], &["--expect-after-restart", "boots: 2"]].concat()).is_err());
        assert!(restart(&["test-boot", "--smoke", "--restart"]).is_err());
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
            &["static", "--format", "iso-bios"],
            &["static", "--format", "kernel"],
        ] {
            assert!(parse(args).is_err(), "{args:?} must be refused");
        }
        assert!(parse(&["run-static", "--port", "8080", "--memory", "1024"]).is_ok());
    }

    #[test]
    fn disk_and_iso_formats_are_release_builds() {
        let deployable = |args: &[&str]| parse(args).unwrap().deployable_format();
        assert_eq!(deployable(&["static", "--format", "raw-efi"]), Some(Format::RawEfi));
        assert_eq!(
            deployable(&["test-boot", "--method", "static", "--format", "iso-efi"]),
            Some(Format::IsoEfi)
        );
        assert_eq!(
            deployable(&["run-native", "--format", "qcow2-bios"]),
            Some(Format::Qcow2Bios)
        );
        assert_eq!(deployable(&["static"]), None);
        assert_eq!(deployable(&["run-static"]), None);
        assert_eq!(deployable(&["test-boot", "--method", "static"]), None);
    }

    #[test]
    fn formats_reach_the_build_and_the_boot() {
        let Command::Static { format, .. } = parse(&["static"]).unwrap() else {
            panic!("not static");
        };
        assert_eq!(format.format, Format::KernelInitrd, "the default");
        let Command::Dynamic { format, .. } = parse(&["dynamic", "--format", "kernel+initrd"]).unwrap() else {
            panic!("not dynamic");
        };
        assert_eq!(format.format, Format::KernelInitrd);
        let Command::RunStatic(args) = parse(&["run-static", "--format", "qcow2-bios"]).unwrap() else {
            panic!("not run-static");
        };
        assert_eq!(args.options().format, Format::Qcow2Bios);
        let Command::TestBoot(args) = parse(&["test-boot", "--method", "static", "--format", "iso-efi"]).unwrap()
        else {
            panic!("not test-boot");
        };
        assert_eq!(args.options().vm.format, Format::IsoEfi);
        let Command::Bench(args) = parse(&["bench", "--format", "raw-efi", "--format", "raw-bios"]).unwrap() else {
            panic!("not bench");
        };
        assert_eq!(args.options().formats, [Format::RawEfi, Format::RawBios]);
    }

    #[test]
    fn qemu_arguments_after_the_double_dash() {
        let Command::RunStatic(args) = parse(&["run-static", "--", "-device", "virtio-balloon-pci"]).unwrap() else {
            panic!("not run-static");
        };
        assert_eq!(
            args.vm.options(&args.qemu_args).qemu_args,
            ["-device", "virtio-balloon-pci"]
        );
    }

    /// A flag group needs the same in every command of a kind: its needs
    /// are its own, not a list kept per command.
    #[test]
    fn flag_groups_bring_their_needs() {
        let efi = FormatArg { format: Format::RawEfi };
        let tools = Need::Programs(Format::RawEfi.build_programs());
        let ovmf = Need::Programs(Format::RawEfi.boot_files());
        assert_eq!(efi.needs(Kind::Build), [tools]);
        assert_eq!(efi.needs(Kind::Boot), [tools, ovmf]);
        let own = RegistryArg { registry: None };
        assert_eq!(own.needs(Kind::Build), [], "a build pushes nowhere");
        assert_eq!(own.needs(Kind::Boot), [Need::Registry]);
        let theirs = RegistryArg {
            registry: Some(Address::parse("r.example.com").unwrap()),
        };
        assert_eq!(theirs.needs(Kind::Boot), []);
        assert_eq!(Kind::Look.needs(), []);
    }

    #[test]
    fn needs_follow_the_command() {
        let needs = |args: &[&str]| parse(args).unwrap().needs();
        assert_eq!(needs(&["doctor"]), []);
        assert_eq!(needs(&["volumes"]), [], "builds and boots nothing");
        assert_eq!(needs(&["volumes", "rm", "-f", "a.yml"]), []);
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
        let test = needs(&["test"]);
        assert_eq!(test[..3], [Need::Build, Need::Boot, Need::Registry]);
        assert!(
            test.contains(&Need::Programs(Format::IsoEfi.build_programs())),
            "the suite boots the ISO: {test:?}"
        );
        // A format's tools to build it; its firmware too to boot it.
        let efi_tools = Need::Programs(Format::RawEfi.build_programs());
        let ovmf = Need::Programs(Format::RawEfi.boot_files());
        assert_eq!(needs(&["static", "--format", "raw-efi"]), [Need::Build, efi_tools]);
        assert_eq!(
            needs(&["test-boot", "--method", "static", "--format", "raw-efi"]),
            [Need::Build, Need::Boot, efi_tools, ovmf]
        );
        let bios = Need::Programs(Format::RawBios.build_programs());
        assert_eq!(
            needs(&["run-native", "--format", "raw-bios"]),
            [Need::Build, Need::Boot, bios],
            "SeaBIOS comes with QEMU"
        );
        assert_eq!(
            needs(&["bench", "--vm", "static", "--baseline", "b.sh"]),
            [Need::Build, Need::Boot, Need::PlainVm]
        );
    }
}
