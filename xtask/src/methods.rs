//! The compose methods: `static` (the app's images baked into the VM as
//! tarballs) and `dynamic` (pulled from a registry when the VM boots). Both
//! carry the compose file; both are built from it, so its services decide
//! what is built, saved and routed.

use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::Shell;

use crate::{
    apps,
    boot::{self, VmOpts},
    compose::{self, App},
    images, imagestore,
    linuxkit::{self, Artifacts, ComposePayload, Vm},
    project::Project,
    registry::{self, Address, GUEST_GATEWAY},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// Images baked into the VM as tarballs, `docker load`ed at boot: no registry needed.
    Static,
    /// Only the compose file in the VM; the engine pulls the images at boot.
    Dynamic,
}

impl Method {
    /// The VM's name: linuxkit/<name>.yml, dist/<name>-kernel …
    pub fn vm_name(self) -> &'static str {
        match self {
            Method::Static => "compose-static",
            Method::Dynamic => "compose-dynamic",
        }
    }
}

/// `--compose PATH`, shared by every command that reads the compose file.
#[derive(Debug, Clone, clap::Args)]
pub struct ComposeOpt {
    /// The compose file describing the app [default: compose/docker-compose.yml]
    #[arg(long = "compose", value_name = "PATH")]
    pub path: Option<PathBuf>,
}

/// `--registry`, for the dynamic method.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryOpt {
    /// Push to and pull from this registry (HOST[:PORT][/NAMESPACE]) instead of
    /// a docker-registry the xtask runs on 127.0.0.1 for the command.
    #[arg(long, value_name = "HOST[:PORT][/NAMESPACE]", value_parser = parse_registry)]
    pub registry: Option<Address>,
}

fn parse_registry(text: &str) -> Result<Address, String> {
    Address::parse(text).map_err(|e| format!("{e:#}"))
}

impl ComposeOpt {
    pub fn load(&self, project: &Project) -> Result<App> {
        match &self.path {
            // Relative to where the user is, like any command-line path.
            Some(path) => App::load(path),
            None => default_app(project),
        }
    }
}

pub fn default_app(project: &Project) -> Result<App> {
    let default = project.root.join(compose::DEFAULT);
    let shown = if std::env::current_dir().ok().as_deref() == Some(project.root.as_path()) {
        PathBuf::from(compose::DEFAULT)
    } else {
        default
    };
    App::load(&shown)
}

/// Where the compose file the VM runs is written, relative to the repository.
fn runtime_compose(method: Method) -> String {
    format!("dist/{}/docker-compose.yml", method.vm_name())
}

/// The kernel parameter that tells the compose runner where to pull from.
pub const REGISTRY_PARAM: &str = "linuxkit_compose.registry";
/// The variable the VM's compose file takes the registry from.
const REGISTRY_VAR: &str = "LINUXKIT_COMPOSE_REGISTRY";

/// The Docker engine's settings in every compose VM: no default `docker0`
/// bridge (compose puts services on a network of its own; the default bridge
/// is iptables work at every start for nothing), and published ports by
/// iptables DNAT alone, without a docker-proxy process per port.
const ENGINE: &str = r#""bridge": "none", "userland-proxy": false"#;

/// What the VM carries besides the app's images. A dynamic VM built with a `registry` has it
/// on its kernel command line; without one, the registry is given at boot.
pub fn payload(method: Method, registry: Option<&Address>) -> ComposePayload {
    match method {
        Method::Static => ComposePayload {
            compose_file: runtime_compose(method),
            // The images travel as a ready image store appended to the initrd (imagestore.rs).
            tarballs: vec![],
            daemon_json: format!("{{{ENGINE}}}\n"),
            cmdline: vec![],
        },
        Method::Dynamic => ComposePayload {
            compose_file: runtime_compose(method),
            tarballs: vec![],
            // A registry on the host, reached through QEMU's gateway, speaks plain HTTP.
            daemon_json: format!("{{{ENGINE}, \"insecure-registries\": [\"{GUEST_GATEWAY}/32\"]}}\n"),
            cmdline: registry
                .map(|r| format!("{REGISTRY_PARAM}={}", guest_registry(r)))
                .into_iter()
                .collect(),
        },
    }
}

/// `host[:port][/namespace]` of a registry as the guest reaches it.
fn guest_registry(registry: &Address) -> String {
    registry
        .as_seen_from_guest()
        .image("")
        .trim_end_matches('/')
        .to_string()
}

pub fn vm(method: Method, registry: Option<&Address>) -> Vm {
    let mut vm = linuxkit::compose_vm(method.vm_name(), payload(method, registry));
    vm.base_initrd = method == Method::Static;
    vm
}

/// The compose file the VM runs: static images are loaded, never pulled;
/// dynamic ones always come from the registry named at boot.
fn runtime_file(method: Method, app: &App) -> Result<String> {
    match method {
        Method::Static => app.runtime_file("never", |image| image.to_string()),
        Method::Dynamic => app.runtime_file("always", |image| {
            format!("${{{REGISTRY_VAR}:?boot with {REGISTRY_PARAM}=HOST[:PORT][/NAMESPACE]}}/{image}")
        }),
    }
}

/// Build everything the method's VM needs that is stale, then the VM itself.
/// For the dynamic method, `registry` (the user's `--registry`) is pushed to
/// and written into the VM; `push_to` is only pushed to.
pub fn build(
    sh: &Shell,
    project: &Project,
    method: Method,
    app: &App,
    registry: Option<&Address>,
    push_to: Option<&Address>,
) -> Result<Artifacts> {
    let builder = apps::builder(sh);
    let ids = apps::build(sh, project, app, builder)?;
    match method {
        Method::Static => apps::save(sh, project, app, &ids, builder)?,
        Method::Dynamic => {
            for target in registry.into_iter().chain(push_to) {
                for image in app.images() {
                    apps::built(app, &ids, image)?;
                    registry::push(sh, project, image, target)?;
                }
            }
        }
    }
    let path = project.root.join(runtime_compose(method));
    std::fs::create_dir_all(path.parent().unwrap())?;
    images::write_if_changed(&path, runtime_file(method, app)?.as_bytes())?;
    let mut artifacts = linuxkit::build(sh, project, &vm(method, registry))?;
    if method == Method::Static {
        let full = project.dist.join(format!("{}-initrd.img", method.vm_name()));
        imagestore::initrd(sh, project, app, &artifacts.initrd, &full)?;
        artifacts.initrd = full;
    }
    Ok(artifacts)
}

/// A built VM ready to boot, with the registry it pulls from when dynamic.
pub struct Prepared {
    pub artifacts: Artifacts,
    /// The registry the xtask runs for this boot (dropped: stopped).
    pub local_registry: Option<registry::Local>,
}

/// Build for booting: for the dynamic method without `--registry`, start a
/// local registry, push to it, and name it on the kernel command line.
pub fn prepare(
    sh: &Shell,
    project: &Project,
    method: Method,
    app: &App,
    registry: Option<&Address>,
) -> Result<Prepared> {
    if method == Method::Static || registry.is_some() {
        let artifacts = build(sh, project, method, app, registry, None)?;
        return Ok(Prepared {
            artifacts,
            local_registry: None,
        });
    }
    let log = project.dist.join(format!("{}-registry.log", method.vm_name()));
    std::fs::create_dir_all(&project.dist)?;
    let local = registry::Local::start(sh, project, &log)?;
    let mut artifacts = build(sh, project, method, app, None, Some(&local.address))?;
    artifacts.cmdline = format!(
        "{} {REGISTRY_PARAM}={}",
        artifacts.cmdline,
        guest_registry(&local.address)
    );
    Ok(Prepared {
        artifacts,
        local_registry: Some(local),
    })
}

/// `cargo xtask run-static|run-dynamic`: boot on this terminal with guest port 80
/// on 127.0.0.1:`port`, after saying how to reach each routed hostname.
pub fn run(
    sh: &Shell,
    project: &Project,
    method: Method,
    app: &App,
    registry: Option<&Address>,
    port: u16,
    opts: &VmOpts,
) -> Result<()> {
    let prepared = prepare(sh, project, method, app, registry)?;
    boot::interactive(opts, &prepared.artifacts, port, || {
        println!(
            "{}: the app answers on 127.0.0.1:{port} once the console says \"compose: app is up\":",
            method.vm_name()
        );
        for (host, service) in app.routes() {
            println!(
                "  curl -H 'Host: {host}' http://127.0.0.1:{port}/      # service {}",
                service.name
            );
        }
    })
}

/// The body a routed service should answer with: the index.html in its build
/// context, where it has one.
pub fn expected_body(service: &compose::Service) -> Option<String> {
    let build = service.build.as_ref()?;
    std::fs::read_to_string(Path::new(&build.context).join("index.html")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        App::load(&root.join(compose::DEFAULT)).unwrap()
    }

    #[test]
    fn static_carries_no_tarballs_and_never_pulls() {
        let p = payload(Method::Static, None);
        assert!(p.tarballs.is_empty(), "the image store is appended to the initrd");
        assert!(vm(Method::Static, None).base_initrd);
        assert!(!vm(Method::Dynamic, None).base_initrd);
        assert!(p.cmdline.is_empty());
        let file = runtime_file(Method::Static, &app()).unwrap();
        assert_eq!(file.matches("pull_policy: never").count(), 3, "{file}");
        assert!(!file.contains("build:"), "{file}");
    }

    #[test]
    fn dynamic_carries_no_tarballs_and_pulls_from_the_named_registry() {
        let p = payload(Method::Dynamic, None);
        assert!(p.tarballs.is_empty());
        assert!(p.cmdline.is_empty(), "without --registry the registry is named at boot");
        assert_eq!(
            p.daemon_json,
            format!("{{{ENGINE}, \"insecure-registries\": [\"10.0.2.2/32\"]}}\n")
        );
        insta::assert_snapshot!(runtime_file(Method::Dynamic, &app()).unwrap());
    }

    #[test]
    fn dynamic_with_registry_bakes_the_guest_address() {
        let local = Address::parse("127.0.0.1:5000/ns").unwrap();
        let p = payload(Method::Dynamic, Some(&local));
        assert_eq!(p.cmdline, ["linuxkit_compose.registry=10.0.2.2:5000/ns"]);
        let remote = Address::parse("registry.example.com").unwrap();
        assert_eq!(
            payload(Method::Dynamic, Some(&remote)).cmdline,
            ["linuxkit_compose.registry=registry.example.com"]
        );
    }

    #[test]
    fn expected_bodies_come_from_the_build_contexts() {
        let app = app();
        let a = app
            .services
            .iter()
            .find(|s| s.hosts.contains(&"a.localhost".to_string()))
            .unwrap();
        assert!(expected_body(a).unwrap().contains("This is app A"));
    }
}
