//! The app's images as the native method needs them: imported into the
//! project's LinuxKit cache (a LinuxKit service's image comes from there), and
//! the facts about each that a Docker engine would read when it creates a
//! container: the image config (entrypoint, command, environment, user,
//! working directory, exposed ports, healthcheck) and the files it looks up
//! in the image (`/etc/passwd`, `/etc/group`), plus traefik's static
//! configuration where the image carries one.
//!
//! Both are remade only when the image changes: the facts are kept in the
//! cache by image ID, with the digest the LinuxKit cache must name.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use xshell::{cmd, Shell};

use crate::{
    base::{exec, files, project::Project, reference::Reference, ui},
    building::{buildah, oci},
};

/// Files read from an image, besides its config.
pub const IMAGE_FILES: [&str; 2] = ["etc/passwd", "etc/group"];

/// Where traefik looks for its static configuration (with no `--configFile`),
/// relative to the image root; the working directory is tried too.
pub const TRAEFIK_CONFIGS: [&str; 2] = ["etc/traefik/traefik.yml", "etc/traefik/traefik.yaml"];

/// What a Docker engine reads from an image to create a container of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Facts {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    /// `EXPOSE`d ports, as "80/tcp".
    pub exposed: Vec<String>,
    /// Docker's `Healthcheck` of the image config, if the image has one.
    pub healthcheck: Option<ImageHealthcheck>,
    pub stop_signal: Option<String>,
    /// Files of the image by path (relative to its root), where present.
    pub files: BTreeMap<String, String>,
    /// The manifest digest the LinuxKit cache holds it under.
    pub digest: String,
}

/// A Dockerfile `HEALTHCHECK` as the image config keeps it (durations in ns).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ImageHealthcheck {
    #[serde(default)]
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: u64,
    #[serde(default)]
    pub timeout: u64,
    #[serde(default)]
    pub start_period: u64,
    #[serde(default)]
    pub start_interval: u64,
    #[serde(default)]
    pub retries: u32,
}

impl Facts {
    /// TCP ports the image exposes.
    pub fn exposed_tcp(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .exposed
            .iter()
            .filter_map(|p| match p.split_once('/') {
                Some((n, "tcp")) => n.parse().ok(),
                None => p.parse().ok(),
                _ => None,
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

/// The name a native VM's YAML gives an app image, and the LinuxKit cache holds
/// it under: the reference fully spelled out, as LinuxKit normalizes it
/// (`redis` is `docker.io/library/redis:latest`).
pub fn cache_reference(image: &Reference) -> String {
    image.normalized()
}

/// Import `image` (built, with ID `id`, in buildah's storage) into the LinuxKit
/// cache unless it is there as this ID already, and return its facts.
pub fn ensure(sh: &Shell, project: &Project, image: &Reference, id: &str) -> Result<Facts> {
    let reference = cache_reference(image);
    let record = facts_path(project, id);
    if let Ok(text) = fs::read_to_string(&record) {
        if let Ok(facts) = serde_json::from_str::<Facts>(&text) {
            if oci::cache_digest(&project.linuxkit_cache(), &reference)?.as_deref() == Some(facts.digest.as_str()) {
                ui::cached(format!("app image {image} in the LinuxKit cache"));
                return Ok(facts);
            }
        }
    }
    let step = ui::step(format!("app image {image} into the LinuxKit cache"));
    let work = project
        .cache_path("build")
        .join(format!("native-{}", ui::slug(image.as_str())));
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(&work)?;
    let layout = work.join("oci");
    buildah::push_oci(sh, project, image.as_str(), &layout)?;
    let mut facts = read_layout(sh, &layout).with_context(|| format!("reading image {image}"))?;
    facts.healthcheck = healthcheck(sh, project, image.as_str())?;
    oci::import(sh, project, &layout, &reference)?;
    facts.digest = oci::cache_digest(&project.linuxkit_cache(), &reference)?
        .with_context(|| format!("the LinuxKit cache does not list {reference}"))?;
    fs::create_dir_all(record.parent().expect("in the cache"))?;
    files::write_atomic(&record, serde_json::to_string_pretty(&facts)?.as_bytes())?;
    fs::remove_dir_all(&work)?;
    step.done_with("imported");
    Ok(facts)
}

fn facts_path(project: &Project, id: &str) -> PathBuf {
    project.cache_path("native").join(format!("{id}.json"))
}

/// Docker's `Healthcheck` (buildah keeps it in the Docker form of the config only).
fn healthcheck(sh: &Shell, project: &Project, image: &str) -> Result<Option<ImageHealthcheck>> {
    let Some(json) = buildah::read(sh, project, &["inspect", "--type", "image", image]) else {
        bail!("buildah cannot inspect {image}");
    };
    let v: Value = serde_json::from_str(&json).context("reading buildah inspect output")?;
    let check = &v["Docker"]["config"]["Healthcheck"];
    if check.is_null() {
        return Ok(None);
    }
    Ok(Some(
        serde_json::from_value(check.clone()).context("the image's Healthcheck")?,
    ))
}

/// The config and the files of interest of the one image in an OCI layout.
fn read_layout(sh: &Shell, layout: &Path) -> Result<Facts> {
    let blob = |digest: &str| -> Result<PathBuf> {
        let hex = digest.strip_prefix("sha256:").context("digest is not sha256")?;
        Ok(layout.join("blobs/sha256").join(hex))
    };
    let json = |path: PathBuf| -> Result<Value> {
        Ok(serde_json::from_str(
            &fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
        )?)
    };
    let index = json(layout.join("index.json"))?;
    let manifest = json(blob(
        index["manifests"][0]["digest"]
            .as_str()
            .context("index without manifest")?,
    )?)?;
    let config = json(blob(
        manifest["config"]["digest"]
            .as_str()
            .context("manifest without config")?,
    )?)?;
    let mut facts = config_facts(&config["config"]);
    let layers: Vec<PathBuf> = manifest["layers"]
        .as_array()
        .context("manifest without layers")?
        .iter()
        .map(|l| blob(l["digest"].as_str().unwrap_or_default()))
        .collect::<Result<_>>()?;
    let mut wanted: Vec<String> = IMAGE_FILES.iter().map(|f| f.to_string()).collect();
    wanted.extend(TRAEFIK_CONFIGS.iter().map(|f| f.to_string()));
    let workdir = facts.working_dir.trim_matches('/');
    if !workdir.is_empty() {
        wanted.extend(["traefik.yml", "traefik.yaml"].map(|f| format!("{workdir}/{f}")));
    }
    facts.files = layer_files(sh, &layers, &wanted)?;
    Ok(facts)
}

/// The OCI image config's `config` object as facts.
pub fn config_facts(config: &Value) -> Facts {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Facts {
        entrypoint: strings(&config["Entrypoint"]),
        cmd: strings(&config["Cmd"]),
        env: strings(&config["Env"]),
        working_dir: text(&config["WorkingDir"]),
        user: text(&config["User"]),
        exposed: config["ExposedPorts"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
        stop_signal: config["StopSignal"].as_str().map(String::from),
        ..Default::default()
    }
}

/// The text of each `wanted` path as the image's layers leave it (the topmost
/// layer that has it, unless a layer above deletes it).
fn layer_files(sh: &Shell, layers: &[PathBuf], wanted: &[String]) -> Result<BTreeMap<String, String>> {
    let mut found = BTreeMap::new();
    let mut settled: Vec<&String> = Vec::new();
    for layer in layers.iter().rev() {
        let listing = exec::read(cmd!(sh, "tar -tf {layer}").env("LC_ALL", "C"))
            .with_context(|| format!("listing layer {}", layer.display()))?;
        for path in wanted {
            if settled.contains(&path) {
                continue;
            }
            let (dir, name) = match path.rsplit_once('/') {
                Some((d, n)) => (format!("{d}/"), n),
                None => (String::new(), path.as_str()),
            };
            let whiteout = format!("{dir}.wh.{name}");
            for entry in listing.lines() {
                let entry_path = entry.trim_start_matches("./");
                if entry_path == whiteout {
                    settled.push(path);
                    break;
                }
                if entry_path == path {
                    let text = exec::read(cmd!(sh, "tar -xOf {layer} {entry}"))
                        .with_context(|| format!("reading {path} from layer {}", layer.display()))?;
                    found.insert(path.clone(), text);
                    settled.push(path);
                    break;
                }
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_reference(image: &str) -> String {
        super::cache_reference(&Reference::parse(image).unwrap())
    }

    #[test]
    fn references_are_spelled_out_as_linuxkit_normalizes_them() {
        assert_eq!(cache_reference("hello-py-web"), "docker.io/library/hello-py-web:latest");
        assert_eq!(cache_reference("me/app:v1"), "docker.io/me/app:v1");
        assert_eq!(
            cache_reference("linuxkit-compose.local/app-a:1"),
            "linuxkit-compose.local/app-a:1"
        );
        assert_eq!(cache_reference("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(cache_reference("index.docker.io/me/app"), "docker.io/me/app:latest");
        let digest = format!("sha256:{}", "0".repeat(64));
        assert_eq!(
            cache_reference(&format!("me/app@{digest}")),
            format!("docker.io/me/app@{digest}")
        );
    }

    #[test]
    fn config_of_an_image() {
        let config = serde_json::json!({
            "Entrypoint": ["/docker-entrypoint.sh"],
            "Cmd": ["nginx", "-g", "daemon off;"],
            "Env": ["PATH=/usr/bin"],
            "WorkingDir": "/srv",
            "User": "nginx",
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8080/tcp": {}},
            "StopSignal": "SIGQUIT"
        });
        let facts = config_facts(&config);
        assert_eq!(facts.entrypoint, ["/docker-entrypoint.sh"]);
        assert_eq!(facts.cmd, ["nginx", "-g", "daemon off;"]);
        assert_eq!(facts.user, "nginx");
        assert_eq!(facts.exposed_tcp(), [80, 8080]);
        assert_eq!(facts.stop_signal.as_deref(), Some("SIGQUIT"));
    }
}
