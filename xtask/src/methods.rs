//! The compose methods: `static` (the app's images baked into the VM as
//! tarballs) and `dynamic` (pulled from a registry when the VM boots). Both
//! carry the compose file; both are built from it, so its services decide
//! what is built, saved and routed.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::{
    apps,
    boot::{self, VmOpts},
    compose::{self, App},
    images,
    linuxkit::{self, Artifacts, ComposePayload, Vm},
    project::Project,
    qemu::{self, Console},
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

/// What the VM carries for `app`.
pub fn payload(method: Method, app: &App) -> ComposePayload {
    let tarballs = match method {
        Method::Static => app
            .images()
            .into_iter()
            .map(|image| {
                let name = compose::tarball_name(image);
                let source = format!("dist/images/{name}");
                (name, source)
            })
            .collect(),
        Method::Dynamic => vec![],
    };
    ComposePayload { compose_file: runtime_compose(method), tarballs, daemon_json: "{}\n".into() }
}

pub fn vm(_project: &Project, method: Method, app: &App) -> Result<Vm> {
    Ok(linuxkit::compose_vm(method.vm_name(), payload(method, app)))
}

/// Build everything the method's VM needs that is stale, then the VM itself.
pub fn build(sh: &Shell, project: &Project, method: Method, app: &App) -> Result<Artifacts> {
    let builder = apps::builder(sh);
    let ids = apps::build(sh, project, app, builder)?;
    match method {
        Method::Static => {
            apps::save(sh, project, app, &ids, builder)?;
        }
        Method::Dynamic => bail!("the dynamic method is not built yet"),
    }
    let runtime = app.runtime_file("never", |image| image.to_string())?;
    let path = project.root.join(runtime_compose(method));
    std::fs::create_dir_all(path.parent().unwrap())?;
    images::write_atomic(&path, runtime.as_bytes())?;
    linuxkit::build(sh, project, &vm(project, method, app)?)
}

/// `cargo xtask run-static|run-dynamic`: boot on this terminal with guest port 80
/// on 127.0.0.1:`port`, after saying how to reach each routed hostname.
pub fn run(sh: &Shell, project: &Project, method: Method, app: &App, port: u16, opts: &VmOpts) -> Result<()> {
    let artifacts = build(sh, project, method, app)?;
    let accel = boot::accel(opts, &artifacts.kernel);
    let spec = boot::spec(opts, &artifacts, accel, Console::Terminal, vec![(port, 80)]);
    println!("{}: the app answers on 127.0.0.1:{port} once the console says \"compose: app is up\":", method.vm_name());
    for (host, service) in app.routes() {
        println!("  curl -H 'Host: {host}' http://127.0.0.1:{port}/      # service {}", service.name);
    }
    println!("Ctrl-A X quits QEMU; Enter on the console gives a root shell in the VM.");
    let status = qemu::Vm::spawn(&spec)?.wait().context("waiting for QEMU")?;
    if !status.success() {
        bail!("QEMU exited with {status}");
    }
    Ok(())
}

/// The body a routed service should answer with: the index.html in its build
/// context, where it has one.
pub fn expected_body(service: &compose::Service) -> Option<String> {
    let build = service.build.as_ref()?;
    std::fs::read_to_string(Path::new(&build.context).join("index.html")).ok()
}
