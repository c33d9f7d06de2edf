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
    fs::{self, File},
    io::{self, BufRead, BufReader, Read, Write},
    net::{TcpStream, ToSocketAddrs},
    path::Path,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::{
    base::{exec, project::Project},
    building::buildah,
};

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
    let result = upload(&unpacked, host, repo, tag);
    let _ = fs::remove_dir_all(&scratch);
    result.with_context(|| format!("pushing {image} to {reference}"))
}

fn upload(unpacked: &Path, host: &str, repo: &str, tag: &str) -> Result<()> {
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
        put_blob(host, repo, b)?;
    }
    let manifest = manifest_json(&config, &layers);
    let (status, _, body) = request(
        host,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        Some("application/vnd.oci.image.manifest.v1+json"),
        Body::Bytes(manifest.as_bytes()),
    )?;
    if status != 201 {
        bail!(
            "the registry refused the manifest: HTTP {status}: {}",
            String::from_utf8_lossy(&body).trim()
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
    let mut file = File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut hash = Sha256::new();
    let size = io::copy(&mut file, &mut hash)?;
    Ok(Blob {
        path,
        media_type,
        digest: format!("sha256:{:x}", hash.finalize()),
        size,
    })
}

/// Upload `b` unless the repository has it: a monolithic upload (POST for a
/// session, then one PUT with the bytes and their digest, which the registry checks).
fn put_blob(host: &str, repo: &str, b: &Blob) -> Result<()> {
    let (status, _, _) = request(
        host,
        "HEAD",
        &format!("/v2/{repo}/blobs/{}", b.digest),
        None,
        Body::None,
    )?;
    if status == 200 {
        return Ok(());
    }
    let (status, headers, body) = request(host, "POST", &format!("/v2/{repo}/blobs/uploads/"), None, Body::None)?;
    if status != 202 {
        bail!(
            "the registry refused an upload: HTTP {status}: {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    let location = header(&headers, "location").context("the registry gave no upload location")?;
    let path = upload_path(location, &b.digest);
    let (status, _, body) = request(
        host,
        "PUT",
        &path,
        Some("application/octet-stream"),
        Body::File(b.path, b.size),
    )?;
    if status != 201 {
        bail!(
            "the registry refused blob {}: HTTP {status}: {}",
            b.digest,
            String::from_utf8_lossy(&body).trim()
        );
    }
    Ok(())
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

/// `host:port/repo/path:tag` as (`host:port`, `repo/path`, `tag`).
fn split_reference(reference: &str) -> Result<(&str, &str, &str)> {
    let (host, rest) = reference
        .split_once('/')
        .context("an image reference without a registry")?;
    let (repo, tag) = match rest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (rest, "latest"),
    };
    Ok((host, repo, tag))
}

enum Body<'a> {
    None,
    Bytes(&'a [u8]),
    File(&'a Path, u64),
}

type Headers = Vec<(String, String)>;

/// One HTTP/1.0 request (the server closes the connection after answering):
/// status, headers (names lower-cased) and body.
fn request(
    host: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Body,
) -> Result<(u16, Headers, Vec<u8>)> {
    let addr = host
        .to_socket_addrs()
        .with_context(|| format!("registry address {host}"))?
        .next()
        .with_context(|| format!("registry address {host}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .with_context(|| format!("connecting to the registry at {host}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let length = match &body {
        Body::None => 0,
        Body::Bytes(b) => b.len() as u64,
        Body::File(_, n) => *n,
    };
    let mut head =
        format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: cargo-xtask\r\nContent-Length: {length}\r\n");
    if let Some(t) = content_type {
        head.push_str(&format!("Content-Type: {t}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    match body {
        Body::None => {}
        Body::Bytes(b) => stream.write_all(b)?,
        Body::File(p, _) => {
            io::copy(&mut File::open(p)?, &mut stream)?;
        }
    }
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("the registry answered {:?}", line.trim()))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut rest = Vec::new();
    if method != "HEAD" {
        reader.read_to_end(&mut rest)?;
    }
    Ok((status, headers, rest))
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            split_reference("127.0.0.1:5000/linuxkit-compose.local/app-a:1").unwrap(),
            ("127.0.0.1:5000", "linuxkit-compose.local/app-a", "1")
        );
        assert_eq!(
            split_reference("localhost:5000/team/app").unwrap(),
            ("localhost:5000", "team/app", "latest")
        );
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
