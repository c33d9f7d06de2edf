//! OCI image layouts: turning buildah's output into what `linuxkit cache import`
//! accepts, and asking the LinuxKit cache whether it holds an image.

use std::{fs, path::Path};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use xshell::{cmd, Shell};

use crate::{
    base::{exec, files::write_atomic, project::Project},
    building::gotools,
};

/// The annotation LinuxKit (like containerd) names a cached image by.
const IMAGE_NAME: &str = "io.containerd.image.name";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Does the LinuxKit cache at `cache` hold `reference`?
pub fn cache_has(cache: &Path, reference: &str) -> Result<bool> {
    let index = cache.join("index.json");
    if !index.exists() {
        return Ok(false);
    }
    let text = fs::read_to_string(&index).with_context(|| format!("reading {}", index.display()))?;
    let index: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", index.display()))?;
    let found = index_names(&index).any(|name| name == reference);
    Ok(found)
}

/// The manifest digest the LinuxKit cache at `cache` names `reference`, if any
/// (the last entry: `cache import` of a name it holds adds one).
pub fn cache_digest(cache: &Path, reference: &str) -> Result<Option<String>> {
    let index = cache.join("index.json");
    if !index.exists() {
        return Ok(None);
    }
    let text = fs::read_to_string(&index).with_context(|| format!("reading {}", index.display()))?;
    let index: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", index.display()))?;
    Ok(index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["annotations"][IMAGE_NAME].as_str() == Some(reference))
        .filter_map(|m| m["digest"].as_str().map(String::from))
        .next_back())
}

fn index_names(index: &Value) -> impl Iterator<Item = &str> {
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["annotations"][IMAGE_NAME].as_str())
}

/// Rewrite a one-image layout's index so LinuxKit names it `reference`: a
/// single-platform manifest entry carrying the full reference.
pub fn name_index(index: &Value, reference: &str) -> Result<Value> {
    let manifests = index["manifests"].as_array().context("index.json has no manifests")?;
    let [manifest] = manifests.as_slice() else {
        bail!("expected one image in the layout, found {}", manifests.len());
    };
    let parsed =
        crate::base::reference::Reference::parse(reference).map_err(|e| anyhow::anyhow!("image `{reference}` {e}"))?;
    let tag = parsed.tag().context("reference without a tag")?;
    Ok(json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": manifest["mediaType"],
            "digest": manifest["digest"],
            "size": manifest["size"],
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {IMAGE_NAME: reference, REF_NAME: tag},
        }],
    }))
}

/// Import the OCI layout directory `layout` (one image) as `reference`.
pub fn import(sh: &Shell, project: &Project, layout: &Path, reference: &str) -> Result<()> {
    let index_path = layout.join("index.json");
    let index: Value = serde_json::from_str(&fs::read_to_string(&index_path)?)?;
    write_atomic(
        &index_path,
        serde_json::to_string_pretty(&name_index(&index, reference)?)?.as_bytes(),
    )?;
    // `cache import` wants entries named `index.json` and `blobs/sha256/<hex>`, no `./`.
    let tar = layout.with_extension("tar");
    exec::run(cmd!(sh, "tar -C {layout} -cf {tar} oci-layout index.json blobs"))?;
    let linuxkit = gotools::ensure(sh, project, "linuxkit")?;
    let cache = project.linuxkit_cache();
    exec::run(cmd!(sh, "{linuxkit} --quiet cache import --cache {cache} {tar}")).context("linuxkit cache import")?;
    fs::remove_file(&tar)?;
    if !cache_has(&cache, reference)? {
        bail!(
            "linuxkit cache import finished but {} does not list {reference}",
            cache.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::TestDir;

    fn buildah_index() -> Value {
        json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:abc", "size": 42,
            "annotations": {REF_NAME: "latest"}
        }]})
    }

    #[test]
    fn index_gets_full_reference_and_platform() {
        let named = name_index(&buildah_index(), "linuxkit-compose.local/init:0123abcd").unwrap();
        insta::assert_json_snapshot!(named, @r###"
        {
          "manifests": [
            {
              "annotations": {
                "io.containerd.image.name": "linuxkit-compose.local/init:0123abcd",
                "org.opencontainers.image.ref.name": "0123abcd"
              },
              "digest": "sha256:abc",
              "mediaType": "application/vnd.oci.image.manifest.v1+json",
              "platform": {
                "architecture": "amd64",
                "os": "linux"
              },
              "size": 42
            }
          ],
          "mediaType": "application/vnd.oci.image.index.v1+json",
          "schemaVersion": 2
        }
        "###);
    }

    #[test]
    fn index_with_two_images_is_refused() {
        let mut index = buildah_index();
        let m = index["manifests"][0].clone();
        index["manifests"].as_array_mut().unwrap().push(m);
        assert!(name_index(&index, "r/x:t").unwrap_err().to_string().contains("found 2"));
    }

    /// The tag is the reference's, not whatever follows its last `:`.
    #[test]
    fn index_names_the_tag() {
        let tag = |reference: &str| {
            name_index(&buildah_index(), reference).map(|i| i["manifests"][0]["annotations"][REF_NAME].clone())
        };
        assert_eq!(tag("localhost:5000/x:1").unwrap(), "1");
        assert!(tag("localhost:5000/x")
            .unwrap_err()
            .to_string()
            .contains("without a tag"));
        assert!(tag("r/x:").unwrap_err().to_string().contains("invalid tag"));
    }

    #[test]
    fn cache_lookup_reads_annotations() {
        let dir = TestDir::new("cache");
        assert!(!cache_has(&dir, "r/x:t").unwrap(), "no index yet");
        let index = name_index(&buildah_index(), "r/x:t").unwrap();
        fs::write(dir.join("index.json"), index.to_string()).unwrap();
        assert!(cache_has(&dir, "r/x:t").unwrap());
        assert!(!cache_has(&dir, "r/x:other").unwrap());
    }
}
