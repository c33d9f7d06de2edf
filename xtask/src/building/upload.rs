//! Pushing an image to a registry on this host with uncompressed layers,
//! over the registry's HTTP API (distribution spec: blob uploads, then the
//! manifest). buildah 1.28 cannot be made to: with `--disable-compression`
//! it still sends gzip layers when its storage knows a gzip form of them
//! (checked against an empty registry with an empty blob-info cache). A
//! guest under emulation unpacks a plain tar much faster than it gunzips one.
//!
//! The image comes from a docker-archive (`buildah push … docker-archive:`),
//! whose layers are plain tars; blobs the registry already has are not sent
//! again.

use std::{
    fs,
    net::{SocketAddr, ToSocketAddrs},
    path::Path,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use xshell::{cmd, Shell};

use crate::{
    base::{
        exec, files,
        http::{self, Body},
        project::Project,
    },
    building::buildah,
};

/// How long one request may take (a layer is a few hundred MB on loopback).
const TIMEOUT: Duration = Duration::from_secs(300);

/// One blob of the image: where its bytes are and what the manifest says of it.
struct Blob<'a> {
    path: &'a Path,
    media_type: &'static str,
    digest: String,
    size: u64,
}

/// Push `image` (in buildah's storage) as `reference` (`host:port/repo:tag`)
/// to the plain-HTTP registry at `host:port`.
pub fn push(sh: &Shell, project: &Project, image: &str, reference: &str) -> Result<()> {
    let (host, repo, tag) = split_reference(reference)?;
    let scratch = project.cache_path("build").join("upload");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    let archive = scratch.join("image.tar");
    buildah::run(
        sh,
        project,
        &[
            "push",
            "--quiet",
            image,
            &format!("docker-archive:{}:{image}", archive.display()),
        ],
    )?;
    let unpacked = scratch.join("image");
    fs::create_dir_all(&unpacked)?;
    exec::run(cmd!(sh, "tar -xf {archive} -C {unpacked}"))?;
    let result = upload(&unpacked, &host, &repo, &tag);
    let _ = fs::remove_dir_all(&scratch);
    result.with_context(|| format!("pushing {image} to {reference}"))
}

fn upload(unpacked: &Path, host: &str, repo: &str, tag: &str) -> Result<()> {
    let addr = host
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| format!("registry address {host}"))?;
    let registry = Registry { addr, host };
    let manifest: Value = serde_json::from_slice(&fs::read(unpacked.join("manifest.json"))?)
        .context("manifest.json of the docker-archive")?;
    let entry = &manifest[0];
    let config_path = unpacked.join(entry["Config"].as_str().context("docker-archive without Config")?);
    let layer_paths: Vec<_> = entry["Layers"]
        .as_array()
        .context("docker-archive without Layers")?
        .iter()
        .map(|l| {
            l.as_str()
                .map(|l| unpacked.join(l))
                .context("a layer that is not a path")
        })
        .collect::<Result<_>>()?;
    let config = blob(&config_path, "application/vnd.oci.image.config.v1+json")?;
    let layers = layer_paths
        .iter()
        .map(|p| blob(p, "application/vnd.oci.image.layer.v1.tar"))
        .collect::<Result<Vec<_>>>()?;
    for b in std::iter::once(&config).chain(&layers) {
        registry.put_blob(repo, b)?;
    }
    let manifest = manifest_json(&config, &layers);
    let r = registry.send(
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        Some("application/vnd.oci.image.manifest.v1+json"),
        Body::Bytes(manifest.as_bytes()),
    )?;
    if r.status != 201 {
        bail!(
            "the registry refused the manifest: HTTP {}: {}",
            r.status,
            r.body.trim()
        );
    }
    Ok(())
}

/// The OCI image manifest for `config` and `layers` (plain tars).
fn manifest_json(config: &Blob, layers: &[Blob]) -> String {
    let descriptor = |b: &Blob| json!({"mediaType": b.media_type, "digest": b.digest, "size": b.size});
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor(config),
        "layers": layers.iter().map(descriptor).collect::<Vec<_>>(),
    })
    .to_string()
}

fn blob<'a>(path: &'a Path, media_type: &'static str) -> Result<Blob<'a>> {
    Ok(Blob {
        path,
        media_type,
        digest: format!("sha256:{}", files::sha256(path)?),
        size: fs::metadata(path)?.len(),
    })
}

/// The registry: where to connect, and the Host header to send.
struct Registry<'a> {
    addr: SocketAddr,
    host: &'a str,
}

impl Registry<'_> {
    fn send(&self, method: &str, path: &str, content_type: Option<&str>, body: Body) -> Result<http::Response> {
        http::send(self.addr, method, self.host, path, content_type, body, TIMEOUT)
            .with_context(|| format!("{method} {path} on the registry at {}", self.host))
    }

    /// Upload `b` unless the repository has it: a monolithic upload (POST for a
    /// session, then one PUT with the bytes and their digest, which the registry checks).
    fn put_blob(&self, repo: &str, b: &Blob) -> Result<()> {
        if self
            .send("HEAD", &format!("/v2/{repo}/blobs/{}", b.digest), None, Body::Empty)?
            .status
            == 200
        {
            return Ok(());
        }
        let r = self.send("POST", &format!("/v2/{repo}/blobs/uploads/"), None, Body::Empty)?;
        if r.status != 202 {
            bail!("the registry refused an upload: HTTP {}: {}", r.status, r.body.trim());
        }
        let location = r.header("location").context("the registry gave no upload location")?;
        let r = self.send(
            "PUT",
            &upload_path(location, &b.digest),
            Some("application/octet-stream"),
            Body::File(b.path, b.size),
        )?;
        if r.status != 201 {
            bail!(
                "the registry refused blob {}: HTTP {}: {}",
                b.digest,
                r.status,
                r.body.trim()
            );
        }
        Ok(())
    }
}

/// The path and query to PUT a finished upload to: the session's location
/// (absolute or not) with the blob's digest added to its query.
fn upload_path(location: &str, digest: &str) -> String {
    let path = match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => location,
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}digest={}", digest.replace(':', "%3A"))
}

/// `host:port/repo/path:tag` as (`host:port`, `repo/path`, tag or `latest`).
fn split_reference(reference: &str) -> Result<(String, String, String)> {
    let parsed =
        crate::base::reference::Reference::parse(reference).map_err(|e| anyhow::anyhow!("image `{reference}` {e}"))?;
    if parsed.is_docker_hub() {
        bail!("{reference}: not an image on a registry of this host");
    }
    let tag = parsed.tag().unwrap_or("latest");
    Ok((parsed.domain().to_string(), parsed.path().to_string(), tag.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let owned = |(h, r, t): (&str, &str, &str)| (h.to_string(), r.to_string(), t.to_string());
        assert_eq!(
            split_reference("127.0.0.1:5000/linuxkit-compose.local/app-a:1").unwrap(),
            owned(("127.0.0.1:5000", "linuxkit-compose.local/app-a", "1"))
        );
        assert_eq!(
            split_reference("localhost:5000/team/app").unwrap(),
            owned(("localhost:5000", "team/app", "latest"))
        );
        assert!(split_reference("team/app:1").is_err(), "Docker Hub's");
    }

    #[test]
    fn upload_locations() {
        assert_eq!(
            upload_path("http://127.0.0.1:5000/v2/app/blobs/uploads/u1?_state=x", "sha256:ab"),
            "/v2/app/blobs/uploads/u1?_state=x&digest=sha256%3Aab"
        );
        assert_eq!(
            upload_path("/v2/app/blobs/uploads/u1", "sha256:ab"),
            "/v2/app/blobs/uploads/u1?digest=sha256%3Aab"
        );
    }

    #[test]
    fn the_manifest_says_plain_tar_layers() {
        let p = Path::new("x");
        let b = |media_type, digest: &str, size| Blob {
            path: p,
            media_type,
            digest: digest.into(),
            size,
        };
        let config = b("application/vnd.oci.image.config.v1+json", "sha256:c", 3);
        let layers = [b("application/vnd.oci.image.layer.v1.tar", "sha256:l", 10)];
        let m: Value = serde_json::from_str(&manifest_json(&config, &layers)).unwrap();
        assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(m["config"]["digest"], "sha256:c");
        assert_eq!(m["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        assert_eq!(m["layers"][0]["size"], 10);
    }
}
