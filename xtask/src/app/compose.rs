//! The compose app: the single description of what the VM runs. The model is
//! the one docker compose itself produces (`docker-compose config --format
//! json`, the same compose v2 the VM runs): interpolation, `.env` and
//! `--env-file`, the project name, several files merged in order, profiles,
//! `extends`, both `ports:` syntaxes. What compose rejects is rejected here with
//! compose's own words; what compose accepts but cannot work in one VM is
//! rejected too, every problem at once. No service is named in Rust code.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    app::{
        files::{Files, Kind},
        model::{self, Attachment, Dependency, FileSource, FileUse, Healthcheck, Mount, Network, Process, Volume},
    },
    base::{exec, project::Project, reference::Reference, ui},
};

pub const DEFAULT: &str = "compose/docker-compose.yml";

/// Where the app comes from: the options `docker compose` itself takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Source {
    /// Compose files, merged in order (`-f`); empty: the repository's own.
    pub files: Vec<PathBuf>,
    /// `--env-file`, in order (default: `.env` beside the first file).
    pub env_files: Vec<PathBuf>,
    /// `-p/--project-name` (default: `name:`, else the first file's folder).
    pub project_name: Option<String>,
    /// `--profile`: services in these profiles run too.
    pub profiles: Vec<String>,
    /// `--allow-unsupported`: the native method builds even with compose keys
    /// it does not carry over (still listing each one).
    pub allow_unsupported: bool,
}

impl Source {
    /// The files as given, or the repository's own (named relative to the
    /// repository when that is where the user is).
    pub fn files(&self, project: &Project) -> Vec<PathBuf> {
        if !self.files.is_empty() {
            return self.files.clone();
        }
        let default = project.root.join(DEFAULT);
        let here = std::env::current_dir().ok().as_deref() == Some(project.root.as_path());
        vec![if here { PathBuf::from(DEFAULT) } else { default }]
    }
}

/// The app as compose reads it, checked for one VM.
#[derive(Debug)]
pub struct App {
    /// The first compose file as given (for messages).
    pub file: PathBuf,
    /// The project folder: the first file's folder, where relative paths start.
    pub dir: PathBuf,
    pub services: Vec<Service>,
    /// See [`Source::allow_unsupported`].
    pub allow_unsupported: bool,
    /// Read from one file with compose's defaults: no other file merged over
    /// it, no `--env-file`, `--project-name` or `--profile`.
    pub single_file: bool,
    /// Top-level `networks:` (compose adds `default` when a service uses it).
    pub networks: BTreeMap<String, Network>,
    /// Top-level `volumes:`: the named volumes.
    #[allow(dead_code)] // typed for the methods; none reads them yet
    pub volumes: BTreeMap<String, Volume>,
    /// Top-level `secrets:` (see [`App::files`]).
    pub secrets: BTreeMap<String, FileSource>,
    /// Top-level `configs:` (see [`App::files`]).
    pub configs: BTreeMap<String, FileSource>,
    /// compose's project name (`name:`, `-p`, or the folder's).
    pub project: String,
    /// What runs for each service where it is not the image the compose file
    /// names (a stand-in): set by [`App::resolve`], beside the model.
    runs: BTreeMap<String, Runs>,
    /// compose's normalized model, the base of the file the VM runs.
    config: Value,
}

/// The image that runs for a service in place of the one its compose file names.
#[derive(Debug, Clone, PartialEq)]
pub struct Runs {
    /// The local reference that runs.
    pub image: Reference,
    /// The image the compose file names.
    pub stands_in_for: Reference,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Service {
    pub name: String,
    /// `image:`, or `<project>-<service>` for a build without one, as compose names it.
    pub image: Reference,
    pub build: Option<Build>,
    /// Hostnames this service is routed under (traefik `Host(…)` rules).
    pub hosts: Vec<String>,
    /// Ports published on the VM (`ports:` with a host side).
    pub ports: Vec<Port>,
    /// Files and folders of the project bind-mounted into the service.
    pub binds: Vec<Bind>,
    /// It mounts the Docker engine's socket (traefik's docker provider, say).
    pub uses_docker_socket: bool,
    /// `labels:` as compose resolved them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The process and what its namespace gets.
    #[serde(skip)]
    pub process: Process,
    /// `volumes:`, every kind.
    #[serde(skip)]
    pub mounts: Vec<Mount>,
    /// `networks:`, by network name (none with `network_mode`).
    #[serde(skip)]
    pub networks: BTreeMap<String, Attachment>,
    #[serde(skip)]
    pub network_mode: Option<String>,
    /// `expose:` (`80`, `90/udp`).
    #[serde(skip)]
    pub expose: Vec<String>,
    #[serde(skip)]
    pub depends_on: BTreeMap<String, Dependency>,
    #[serde(skip)]
    pub restart: Option<String>,
    #[serde(skip)]
    pub healthcheck: Option<Healthcheck>,
    #[serde(skip)]
    pub secrets: Vec<FileUse>,
    #[serde(skip)]
    pub configs: Vec<FileUse>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Build {
    /// Absolute build context.
    #[serde(serialize_with = "display_rel")]
    pub context: PathBuf,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
    /// `build.target`: the stage to build (default: the last).
    pub target: Option<String>,
    /// `build.args` (values compose resolved; `None`: taken from the environment).
    pub args: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    /// On the VM (what `docker compose up` publishes on its host).
    pub published: u16,
    /// In the container.
    pub target: u16,
    pub udp: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bind {
    /// Relative to the project folder.
    pub source: PathBuf,
    pub target: String,
}

fn display_rel<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    // Snapshots must not depend on where the repository is checked out.
    let root = crate::base::project::root();
    s.serialize_str(&p.strip_prefix(&root).unwrap_or(p).display().to_string())
}

/// Something wrong with the compose file: every problem, naming the file.
#[derive(Debug)]
pub struct Invalid {
    pub file: PathBuf,
    pub problems: Vec<String>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "{}: {one}", self.file.display()),
            many => {
                write!(f, "{}: {} problems:", self.file.display(), many.len())?;
                for p in many {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Invalid {}

/// compose's JSON model, as this crate reads it.
#[derive(Deserialize)]
struct Config {
    name: String,
    #[serde(default)]
    services: BTreeMap<String, ConfigService>,
    #[serde(default, deserialize_with = "model::named")]
    networks: BTreeMap<String, Network>,
    #[serde(default, deserialize_with = "model::named")]
    volumes: BTreeMap<String, Volume>,
    #[serde(default, deserialize_with = "model::named")]
    secrets: BTreeMap<String, FileSource>,
    #[serde(default, deserialize_with = "model::named")]
    configs: BTreeMap<String, FileSource>,
}

#[derive(Deserialize)]
struct ConfigService {
    image: Option<String>,
    build: Option<ConfigBuild>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    ports: Vec<ConfigPort>,
    #[serde(default)]
    volumes: Vec<Mount>,
    #[serde(flatten)]
    process: Process,
    #[serde(default, deserialize_with = "model::attachments")]
    networks: BTreeMap<String, Attachment>,
    network_mode: Option<String>,
    #[serde(default, deserialize_with = "model::texts")]
    expose: Vec<String>,
    #[serde(default)]
    depends_on: BTreeMap<String, Dependency>,
    restart: Option<String>,
    healthcheck: Option<Healthcheck>,
    #[serde(default)]
    secrets: Vec<FileUse>,
    #[serde(default)]
    configs: Vec<FileUse>,
}

#[derive(Deserialize)]
struct ConfigBuild {
    context: String,
    dockerfile: Option<String>,
    dockerfile_inline: Option<String>,
    target: Option<String>,
    #[serde(default)]
    args: BTreeMap<String, Option<String>>,
}

#[derive(Deserialize)]
struct ConfigPort {
    target: u16,
    published: Option<String>,
    protocol: Option<String>,
}

/// Where the Docker engine's socket is, as services mount it.
const DOCKER_SOCKETS: [&str; 2] = ["/var/run/docker.sock", "/run/docker.sock"];

/// Is `path` (a bind's source) the Docker engine's socket?
pub fn is_docker_socket(path: &str) -> bool {
    DOCKER_SOCKETS.contains(&path)
}

impl App {
    /// Read the app through `compose` (the docker-compose v2 binary): the
    /// files, `.env`, the environment and the options in `source`.
    pub fn load(compose: &Path, project: &Project, source: &Source) -> Result<App> {
        let files = source.files(project);
        let shown = files[0].clone();
        let mut cmd = Command::new(compose);
        for f in &files {
            cmd.arg("-f").arg(f);
        }
        for e in &source.env_files {
            cmd.arg("--env-file").arg(e);
        }
        if let Some(name) = &source.project_name {
            cmd.arg("--project-name").arg(name);
        }
        for p in &source.profiles {
            cmd.arg("--profile").arg(p);
        }
        cmd.args(["config", "--format", "json"]);
        ui::detail(format!("$ {cmd:?}"));
        exec::dies_with_parent(&mut cmd);
        let out = cmd
            .output()
            .with_context(|| format!("running {} to read {}", compose.display(), shown.display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let (warnings, errors) = compose_messages(&stderr, &files, &shown);
        for w in warnings {
            ui::note(format!("{}: {w}", shown.display()));
        }
        if !out.status.success() {
            let problems = if errors.is_empty() {
                vec![format!("docker compose rejects it ({})", out.status)]
            } else {
                errors
            };
            return Err(Invalid { file: shown, problems }.into());
        }
        let dir = files[0].parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = std::fs::canonicalize(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &dir
        })?;
        let json = String::from_utf8(out.stdout).context("docker compose printed non-UTF-8")?;
        let mut app = App::from_config(&shown, &dir, &json).map_err(|problems| Invalid { file: shown, problems })?;
        app.allow_unsupported = source.allow_unsupported;
        app.single_file = files.len() == 1
            && source.env_files.is_empty()
            && source.project_name.is_none()
            && source.profiles.is_empty();
        Ok(app)
    }

    /// The app from compose's JSON model; relative paths start at `dir`.
    pub fn from_config(file: &Path, dir: &Path, json: &str) -> Result<App, Vec<String>> {
        let config: Value = serde_json::from_str(json).map_err(|e| vec![format!("docker compose's model: {e}")])?;
        let model: Config =
            serde_json::from_value(config.clone()).map_err(|e| vec![format!("docker compose's model: {e}")])?;
        let mut problems = Vec::new();
        let mut services = Vec::new();
        if model.services.is_empty() {
            problems.push("defines no services (none, or none in an active profile)".to_string());
        }
        for (name, body) in &model.services {
            match service(&model.name, name, body, dir) {
                Ok(s) => services.push(s),
                Err(errs) => problems.extend(errs.into_iter().map(|e| format!("service `{name}`: {e}"))),
            }
        }
        problems.extend(conflicts(&services));
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(App {
            file: file.to_path_buf(),
            dir: dir.to_path_buf(),
            services,
            allow_unsupported: false,
            single_file: true,
            networks: model.networks,
            volumes: model.volumes,
            secrets: model.secrets,
            configs: model.configs,
            project: model.name,
            runs: BTreeMap::new(),
            config,
        })
    }

    /// This app with `runs` (by service name) in place of the images its
    /// compose file names: a new value, the model itself unchanged.
    pub fn resolve(mut self, runs: BTreeMap<String, Runs>) -> App {
        self.runs = runs;
        self
    }

    /// The image that runs for `service`: its stand-in, else the image named.
    pub fn image_of<'a>(&'a self, service: &'a Service) -> &'a Reference {
        self.runs.get(&service.name).map_or(&service.image, |r| &r.image)
    }

    /// The image the compose file names for `service`, where another runs for it.
    pub fn stands_in_for(&self, service: &Service) -> Option<&Reference> {
        self.runs.get(&service.name).map(|r| &r.stands_in_for)
    }

    /// compose's normalized model (its JSON), as read.
    pub fn model(&self) -> &Value {
        &self.config
    }

    /// Every image the app runs, once each, in service order.
    pub fn images(&self) -> Vec<&Reference> {
        let mut images: Vec<&Reference> = Vec::new();
        for s in &self.services {
            let image = self.image_of(s);
            if !images.contains(&image) {
                images.push(image);
            }
        }
        images
    }

    /// (hostname, service) for every routed host, sorted by hostname.
    pub fn routes(&self) -> Vec<(&str, &Service)> {
        let mut routes: Vec<_> = self
            .services
            .iter()
            .flat_map(|s| s.hosts.iter().map(move |h| (h.as_str(), s)))
            .collect();
        routes.sort_by_key(|(h, _)| *h);
        routes
    }

    /// Every port published on the VM, with its service, by port.
    pub fn published(&self) -> Vec<(Port, &Service)> {
        let mut ports: Vec<_> = self
            .services
            .iter()
            .flat_map(|s| s.ports.iter().map(move |p| (*p, s)))
            .collect();
        ports.sort_by_key(|(p, _)| *p);
        ports
    }

    /// The published TCP port routed hosts are reached through: that of the
    /// service that reads the Docker socket (the router), else port 80.
    pub fn router_port(&self) -> Option<u16> {
        let tcp = |s: &Service| s.ports.iter().find(|p| !p.udp).map(|p| p.published);
        self.services
            .iter()
            .filter(|s| s.uses_docker_socket)
            .find_map(tcp)
            .or_else(|| {
                let on_80 = self
                    .services
                    .iter()
                    .flat_map(|s| &s.ports)
                    .any(|p| !p.udp && p.published == 80);
                on_80.then_some(80)
            })
    }

    /// Every bind-mounted file or folder of the project, once each.
    pub fn binds(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for b in self.services.iter().flat_map(|s| &s.binds) {
            if !out.contains(&b.source.as_path()) {
                out.push(&b.source);
            }
        }
        out
    }

    /// The compose file the VM runs: compose's own normalized model, with no
    /// `build:` (there is nothing to build from in the VM), each image mapped by
    /// `image`, `pull_policy` set, the project's bind-mounted files under
    /// `vm_dir` (where the VM carries them), and every secret and config a
    /// file under `files_dir` (see [`App::files`]).
    pub fn runtime_file(
        &self,
        pull_policy: &str,
        vm_dir: &str,
        files_dir: &str,
        image: impl Fn(&Reference) -> String,
    ) -> Result<String> {
        let mut config = self.config.clone();
        let files = self.files().map_err(|problems| Invalid {
            file: self.file.clone(),
            problems,
        })?;
        runtime_files(&mut config, &files, files_dir);
        let services = config
            .get_mut("services")
            .and_then(Value::as_object_mut)
            .expect("checked in from_config");
        for service in &self.services {
            let body = services
                .get_mut(&service.name)
                .and_then(Value::as_object_mut)
                .expect("checked in from_config");
            body.remove("build");
            body.insert("image".into(), image(self.image_of(service)).into());
            body.insert("pull_policy".into(), pull_policy.into());
            // A port published on one of the host's addresses
            // (`127.0.0.1:8000:8000`) is published on the VM's own: the
            // host's addresses are not the VM's (the engine there could
            // not bind 127.0.0.1 for QEMU's forward, nor bind the host's
            // LAN address at all), and QEMU's forward on the host is what
            // the user reaches it by (on 127.0.0.1).
            for port in body
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .filter_map(Value::as_object_mut)
            {
                port.remove("host_ip");
            }
            for volume in body
                .get_mut("volumes")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let Some(source) = volume.get("source").and_then(Value::as_str) else {
                    continue;
                };
                if volume.get("type").and_then(Value::as_str) != Some("bind") {
                    continue;
                }
                if let Ok(rel) = Path::new(source).strip_prefix(&self.dir) {
                    let vm = Path::new(vm_dir).join(rel);
                    volume["source"] = vm.display().to_string().into();
                }
            }
        }
        Ok(serde_yaml::to_string(&config)?)
    }
}

/// `config` (compose's model) with its secrets and configs as the VM carries
/// them: each top-level entry a `file:` under `files_dir` (one entry per
/// carried file, keyed by its file name), and each use naming its entry with
/// its absolute target. The owner and mode are the carried file's own, so no
/// use says them (compose would warn that it ignores them for a file).
fn runtime_files(config: &mut Value, files: &Files, files_dir: &str) {
    let Some(root) = config.as_object_mut() else { return };
    for kind in [Kind::Secret, Kind::Config] {
        let mut entries = serde_json::Map::new();
        for c in files.carried.iter().filter(|c| c.kind == kind) {
            let key = c.path.rsplit('/').next().expect("kind/name").to_string();
            let name = root
                .get(kind.key())
                .and_then(|v| v.get(&c.name))
                .and_then(|v| v.get("name"))
                .and_then(Value::as_str)
                .unwrap_or(&c.name)
                .to_string();
            let body = serde_json::json!({"name": name, "file": format!("{files_dir}/{}", c.path)});
            entries.insert(key, body);
        }
        if entries.is_empty() {
            root.remove(kind.key());
        } else {
            root.insert(kind.key().into(), entries.into());
        }
    }
    let Some(services) = root.get_mut("services").and_then(Value::as_object_mut) else {
        return;
    };
    for u in &files.uses {
        let c = &files.carried[u.file];
        let key = c.path.rsplit('/').next().expect("kind/name");
        if let Some(entry) = services
            .get_mut(&u.service)
            .and_then(|s| s.get_mut(u.kind.key()))
            .and_then(|l| l.get_mut(u.index))
        {
            *entry = serde_json::json!({"source": key, "target": u.target});
        }
    }
}

/// compose's stderr as (warnings, errors), with absolute paths of the files
/// shown as the user gave them.
fn compose_messages(stderr: &str, files: &[PathBuf], shown: &Path) -> (Vec<String>, Vec<String>) {
    let (mut warnings, mut errors) = (Vec::new(), Vec::new());
    for line in stderr.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (warning, text) = match logrus_message(line) {
            Some((level, msg)) => (level == "warning", msg),
            None => (false, line.to_string()),
        };
        let mut text = text;
        for f in files {
            if let Ok(abs) = std::fs::canonicalize(f) {
                text = text.replace(&abs.display().to_string(), &f.display().to_string());
            }
        }
        // compose names the file itself in most errors; the caller adds it.
        let prefix = format!("{}: ", shown.display());
        let text = text.strip_prefix("validating ").unwrap_or(&text);
        let text = text.strip_prefix(&prefix).unwrap_or(text).to_string();
        if warning {
            warnings.push(text);
        } else {
            errors.push(text);
        }
    }
    (warnings, errors)
}

/// `time="…" level=warning msg="…"` as (level, message).
fn logrus_message(line: &str) -> Option<(String, String)> {
    let level = line.split_once("level=")?.1.split_whitespace().next()?.to_string();
    let msg = line.split_once("msg=")?.1;
    let msg = match msg.strip_prefix('"') {
        Some(quoted) => serde_json::from_str::<String>(&format!("\"{}", quoted.trim_end()))
            .unwrap_or_else(|_| quoted.trim_end_matches('"').to_string()),
        None => msg.to_string(),
    };
    Some((level, msg))
}

fn service(project: &str, name: &str, body: &ConfigService, dir: &Path) -> Result<Service, Vec<String>> {
    let mut problems = Vec::new();
    let build = match &body.build {
        None => None,
        Some(b) => build(b).map_err(|e| problems.push(e)).ok(),
    };
    let written = match &body.image {
        Some(image) => image.clone(),
        // docker compose's own name for what it builds.
        None => format!("{project}-{name}"),
    };
    let image = Reference::parse(&written)
        .map_err(|e| problems.push(format!("image `{written}` {e}")))
        .ok();
    let mut ports = Vec::new();
    for p in &body.ports {
        let Some(published) = p.published.as_deref().filter(|p| !p.is_empty()) else {
            continue; // a random host port: nothing to forward to
        };
        let udp = p.protocol.as_deref() == Some("udp");
        match published.parse::<u16>() {
            Ok(published) if published > 0 => ports.push(Port {
                published,
                target: p.target,
                udp,
            }),
            _ => problems.push(format!("published port `{published}` is not a port number")),
        }
    }
    let mut binds = Vec::new();
    let mut uses_docker_socket = false;
    for v in &body.volumes {
        let Some(source) = v.source.as_deref() else { continue };
        if v.kind != "bind" {
            continue;
        }
        if is_docker_socket(source) {
            uses_docker_socket = true;
        } else if let Ok(rel) = Path::new(source).strip_prefix(dir) {
            binds.push(Bind {
                source: rel.to_path_buf(),
                target: v.target.clone(),
            });
        }
    }
    let hosts = match hosts(&body.labels) {
        Ok(h) => h,
        Err(e) => {
            problems.push(e);
            Vec::new()
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Service {
        name: name.to_string(),
        image: image.expect("checked above"),
        build,
        hosts,
        ports,
        binds,
        uses_docker_socket,
        // compose's model keeps `$$`; the container's labels have `$`.
        labels: body
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), model::unescape(v)))
            .collect(),
        process: body.process.clone(),
        mounts: body.volumes.clone(),
        networks: body.networks.clone(),
        network_mode: body.network_mode.clone(),
        expose: body.expose.clone(),
        depends_on: body.depends_on.clone(),
        // compose's: `restart:`, else what `deploy.restart_policy` maps to.
        restart: body.restart.clone().or_else(|| {
            let policy = body.process.deploy.restart_policy.as_ref();
            policy.map(model::RestartPolicy::as_restart)
        }),
        healthcheck: body.healthcheck.clone(),
        secrets: body.secrets.clone(),
        configs: body.configs.clone(),
    })
}

fn build(b: &ConfigBuild) -> Result<Build, String> {
    if b.dockerfile_inline.is_some() {
        return Err("`build.dockerfile_inline` is not supported: put the Dockerfile in a file".into());
    }
    if b.context.contains("://") || b.context.starts_with("git@") {
        return Err(format!(
            "build context `{}` is remote: the local profile builds from folders only",
            b.context
        ));
    }
    let context = PathBuf::from(&b.context);
    if !context.is_dir() {
        return Err(format!("build context {} does not exist", context.display()));
    }
    let dockerfile = b.dockerfile.clone().unwrap_or_else(|| "Dockerfile".into());
    if !context.join(&dockerfile).is_file() {
        return Err(format!("build context {} has no {dockerfile}", context.display()));
    }
    let context = std::fs::canonicalize(&context).map_err(|e| format!("build context {}: {e}", context.display()))?;
    let args = b
        .args
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.clone().or_else(|| std::env::var(k).ok()).unwrap_or_default(),
            )
        })
        .collect();
    Ok(Build {
        context,
        dockerfile,
        target: b.target.clone(),
        args,
    })
}

/// What compose accepts but one VM cannot run.
fn conflicts(services: &[Service]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ports: BTreeMap<(u16, bool), &str> = BTreeMap::new();
    let mut builds: BTreeMap<&str, (&str, &Build)> = BTreeMap::new();
    let mut hosts: BTreeMap<&str, &str> = BTreeMap::new();
    for s in services {
        for p in &s.ports {
            let proto = if p.udp { "udp" } else { "tcp" };
            if let Some(other) = ports.insert((p.published, p.udp), &s.name) {
                problems.push(if other == s.name {
                    format!("service `{other}` publishes {proto} port {} twice", p.published)
                } else {
                    format!(
                        "{proto} port {} is published by both `{other}` and `{}`: one VM has one such port",
                        p.published, s.name
                    )
                });
            }
        }
        if let Some(b) = &s.build {
            if let Some((other, first)) = builds.insert(s.image.as_str(), (&s.name, b)) {
                if first != b {
                    problems.push(format!(
                        "services `{other}` and `{}` build different things into one image `{}`: each would overwrite the other",
                        s.name, s.image
                    ));
                }
            }
        }
        for h in &s.hosts {
            if let Some(other) = hosts.insert(h, &s.name) {
                if other != s.name {
                    problems.push(format!("host `{h}` is routed to both `{other}` and `{}`", s.name));
                }
            }
        }
    }
    problems
}

/// Hostnames from every `traefik.http.routers.NAME.rule` label (rules without a
/// Host matcher route by path and have no host to probe).
fn hosts(labels: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    for (key, rule) in labels {
        if key.starts_with("traefik.http.routers.") && key.ends_with(".rule") {
            hosts.extend(rule_hosts(rule).map_err(|e| format!("label `{key}`: {e}"))?);
        }
    }
    Ok(hosts)
}

/// The backquoted hostnames inside every `Host(…)` of a traefik rule.
pub fn rule_hosts(rule: &str) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    let mut rest = rule;
    while let Some(at) = rest.find("Host(") {
        // HostRegexp(…) and HostSNI(…) are not Host(…).
        let before = rest[..at].chars().last();
        rest = &rest[at + "Host(".len()..];
        if before.is_some_and(|c| c.is_alphanumeric()) {
            continue;
        }
        let end = rest.find(')').ok_or_else(|| format!("unclosed Host( in `{rule}`"))?;
        for part in rest[..end].split(',') {
            let part = part.trim();
            let host = part
                .strip_prefix('`')
                .and_then(|p| p.strip_suffix('`'))
                .ok_or_else(|| format!("Host argument {part} is not in backquotes"))?;
            if host.is_empty() {
                return Err("empty Host(``)".into());
            }
            hosts.push(host.to_string());
        }
        rest = &rest[end..];
    }
    Ok(hosts)
}

/// A file-system-safe name for an image reference (for its tarball).
pub fn tarball_name(image: &str) -> String {
    let safe: String = image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.tar")
}

/// Apps for other modules' tests, from a fragment of compose's model.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// The app of `model` (compose's JSON), with project name `p` and image
    /// `x` for each service that names none.
    pub fn app(mut model: Value) -> App {
        let o = model.as_object_mut().expect("an object");
        o.entry("name").or_insert("p".into());
        for body in o
            .get_mut("services")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|s| s.values_mut())
        {
            body.as_object_mut()
                .expect("a service is an object")
                .entry("image")
                .or_insert("x".into());
        }
        let dir = crate::base::project::root().join("compose");
        App::from_config(Path::new("compose/test.yml"), &dir, &model.to_string()).expect("a valid app")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir() -> PathBuf {
        crate::base::project::root().join("compose")
    }

    fn app(services: Value) -> Result<App, Vec<String>> {
        let config = json!({"name": "demo", "services": services});
        App::from_config(Path::new("compose/test.yml"), &dir(), &config.to_string())
    }

    fn nginx_build() -> Value {
        json!({"context": crate::base::project::root().join("apps/a"), "dockerfile": "Dockerfile"})
    }

    #[test]
    fn build_without_image_is_named_as_compose_names_it() {
        let app = app(json!({"web": {"build": nginx_build()}})).unwrap();
        assert_eq!(app.services[0].image.as_str(), "demo-web");
        assert_eq!(
            app.images().iter().map(|i| i.as_str()).collect::<Vec<_>>(),
            ["demo-web"]
        );
    }

    #[test]
    fn ports_published_on_the_vm() {
        let app = app(json!({"web": {"image": "x", "ports": [
            {"target": 8000, "published": "8000", "protocol": "tcp"},
            {"target": 53, "published": "5353", "protocol": "udp"},
            {"target": 9000}
        ]}}))
        .unwrap();
        let ports: Vec<_> = app
            .published()
            .iter()
            .map(|(p, _)| (p.published, p.target, p.udp))
            .collect();
        assert_eq!(ports, [(5353, 53, true), (8000, 8000, false)]);
    }

    #[test]
    fn one_host_port_twice_is_an_error() {
        let p = json!([{"target": 80, "published": "8080", "protocol": "tcp"}]);
        let e = app(json!({"a": {"image": "x", "ports": p}, "b": {"image": "y", "ports": p}})).unwrap_err();
        assert_eq!(
            e,
            ["tcp port 8080 is published by both `a` and `b`: one VM has one such port"]
        );
    }

    #[test]
    fn one_tag_from_two_contexts_is_an_error() {
        let other = json!({"context": crate::base::project::root().join("apps/b"), "dockerfile": "Dockerfile"});
        let e = app(json!({
            "a": {"image": "same:1", "build": nginx_build()},
            "b": {"image": "same:1", "build": other},
        }))
        .unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("build different things into one image `same:1`"), "{e:?}");
        // The same build under one tag twice is fine.
        app(
            json!({"a": {"image": "same:1", "build": nginx_build()}, "b": {"image": "same:1", "build": nginx_build()}}),
        )
        .unwrap();
    }

    #[test]
    fn every_problem_at_once() {
        let e = app(json!({
            "a": {"image": "/app:v0.1"},
            "b": {"image": "ok", "build": {"context": "/nonexistent/ctx"}},
            "c": {"image": "UPPER"},
        }))
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].starts_with("service `a`: image `/app:v0.1` is not a valid image reference"),
            "{e:?}"
        );
        assert_eq!(e[1], "service `b`: build context /nonexistent/ctx does not exist");
        assert!(e[2].starts_with("service `c`: image `UPPER`"), "{e:?}");
    }

    #[test]
    fn binds_of_the_project_travel_and_the_socket_is_the_engine() {
        let dir = dir();
        let app = app(json!({"proxy": {"image": "x", "volumes": [
            {"type": "bind", "source": dir.join("conf/nginx.conf"), "target": "/etc/nginx/nginx.conf", "read_only": true},
            {"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock"},
            {"type": "volume", "source": "data", "target": "/data"},
        ]}}))
        .unwrap();
        let s = &app.services[0];
        assert!(s.uses_docker_socket);
        assert_eq!(
            s.binds,
            [Bind {
                source: "conf/nginx.conf".into(),
                target: "/etc/nginx/nginx.conf".into()
            }]
        );
        let file = app
            .runtime_file("never", "/etc/compose/project", "/etc/compose", |i| format!("r/{i}"))
            .unwrap();
        assert!(file.contains("source: /etc/compose/project/conf/nginx.conf"), "{file}");
        assert!(file.contains("source: /var/run/docker.sock"), "{file}");
        assert!(file.contains("image: r/x"), "{file}");
    }

    /// The VM's compose file names the carried files: each top-level entry a
    /// `file:` in the VM (whatever its source), each use its absolute target,
    /// owner and mode being the file's own.
    #[test]
    fn secrets_and_configs_point_at_the_files_the_vm_carries() {
        let app = testing::app(json!({
            "services": {"db": {
                "secrets": [{"source": "db-password", "target": "/run/secrets/db-password"}],
                "configs": [{"source": "init", "uid": "999", "mode": 0o400}]
            }},
            "secrets": {"db-password": {"name": "p_db-password", "file": dir().join("db/password.txt")}},
            "configs": {"init": {"name": "p_init", "content": "SELECT 1;\n"}}
        }));
        let file = app
            .runtime_file("never", "/etc/compose/project", "/etc/compose", |i| i.to_string())
            .unwrap();
        let runtime: Value = serde_yaml::from_str(&file).unwrap();
        assert_eq!(
            runtime["secrets"],
            json!({"db-password": {"name": "p_db-password", "file": "/etc/compose/secrets/db-password"}})
        );
        assert_eq!(
            runtime["configs"],
            json!({"init": {"name": "p_init", "file": "/etc/compose/configs/init"}})
        );
        assert_eq!(
            runtime["services"]["db"]["secrets"],
            json!([{"source": "db-password", "target": "/run/secrets/db-password"}])
        );
        assert_eq!(
            runtime["services"]["db"]["configs"],
            json!([{"source": "init", "target": "/init"}])
        );
        assert!(!file.contains("SELECT"), "no content in the VM's compose file: {file}");
        let external = testing::app(json!({
            "services": {"db": {"secrets": [{"source": "s"}]}},
            "secrets": {"s": {"name": "vault", "external": true}}
        }));
        let err = external
            .runtime_file("never", "/p", "/f", |i| i.to_string())
            .unwrap_err();
        assert!(err.to_string().contains("secret `s` is external"), "{err}");
    }

    #[test]
    fn logrus_lines() {
        let (w, e) = compose_messages(
            "time=\"2026\" level=warning msg=\"The \\\"U\\\" variable is not set. Defaulting to a blank string.\"\nvalidating compose/x.yml: services.web Additional property prots is not allowed\n",
            &[],
            Path::new("compose/x.yml"),
        );
        assert_eq!(w, ["The \"U\" variable is not set. Defaulting to a blank string."]);
        assert_eq!(e, ["services.web Additional property prots is not allowed"]);
    }

    #[test]
    fn host_rules() {
        assert_eq!(rule_hosts("Host(`a.localhost`)").unwrap(), ["a.localhost"]);
        assert_eq!(rule_hosts("Host(`a`) || Host(`b`, `c`)").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            rule_hosts("HostRegexp(`.*`) && PathPrefix(`/`)").unwrap(),
            Vec::<String>::new()
        );
        assert!(rule_hosts("Host(a)").unwrap_err().contains("backquotes"));
        assert!(rule_hosts("Host(`a`").unwrap_err().contains("unclosed"));
    }

    #[test]
    fn tarball_names_are_flat() {
        assert_eq!(
            tarball_name("linuxkit-compose.local/app-a:1"),
            "linuxkit-compose.local_app-a_1.tar"
        );
    }
}
