//! `dist/<vm>.spdx.json`: an SPDX 2.3 SBOM per VM. Every image in the VM and
//! every app image it runs, with each Debian package in it (pins.lock's name,
//! version, source package and sha256, the licenses its copyright file names),
//! each Go module compiled into its binaries (`go version -m`) and each PyPI
//! or npm package its recipe fetched (by the hashes its folder pins).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use xshell::{cmd, Shell};

use crate::{
    app::compose::App,
    base::{exec, files, lock::Deb, pins::GoToolchain, project::Project, ui},
    building::{
        app_pulls, apps, gotools, host, images,
        pull::{self, Installed},
    },
};

/// One image as the SBOM lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// What it is: `kernel`, or `app-a:1 (app image on nginx)`.
    pub name: String,
    pub reference: String,
    pub debs: Vec<Deb>,
    /// Package -> the licenses its Debian copyright file names.
    pub licenses: BTreeMap<String, Vec<String>>,
    pub go: Vec<GoModule>,
    /// Packages its own package database lists (images pulled from a registry).
    pub found: Vec<Installed>,
    /// Packages its recipe's RUN steps fetched from PyPI or npm, by the hashes it pins.
    pub fetched: Vec<images::Fetched>,
}

/// A Go module compiled into a binary.
#[derive(Debug, Clone, PartialEq)]
pub struct GoModule {
    pub path: String,
    pub version: String,
    /// go.sum's `h1:` hash (empty for the Go toolchain's standard library).
    pub sum: String,
}

/// A Debian license short name as an SPDX identifier; names SPDX lacks
/// become `LicenseRef-…`.
fn spdx_id(debian: &str) -> String {
    let known = [
        ("GPL-1", "GPL-1.0-only"),
        ("GPL-1+", "GPL-1.0-or-later"),
        ("GPL-2", "GPL-2.0-only"),
        ("GPL-2+", "GPL-2.0-or-later"),
        ("GPL-3", "GPL-3.0-only"),
        ("GPL-3+", "GPL-3.0-or-later"),
        ("LGPL-2", "LGPL-2.0-only"),
        ("LGPL-2+", "LGPL-2.0-or-later"),
        ("LGPL-2.1", "LGPL-2.1-only"),
        ("LGPL-2.1+", "LGPL-2.1-or-later"),
        ("LGPL-3", "LGPL-3.0-only"),
        ("LGPL-3+", "LGPL-3.0-or-later"),
        ("AGPL-3", "AGPL-3.0-only"),
        ("AGPL-3+", "AGPL-3.0-or-later"),
        ("GFDL-1.3+", "GFDL-1.3-or-later"),
        ("Expat", "MIT"),
        ("MIT", "MIT"),
        ("ISC", "ISC"),
        ("Zlib", "Zlib"),
        ("zlib", "Zlib"),
        ("Apache-2.0", "Apache-2.0"),
        ("MPL-2.0", "MPL-2.0"),
        ("BSD-2-clause", "BSD-2-Clause"),
        ("BSD-3-clause", "BSD-3-Clause"),
        ("BSD-4-clause", "BSD-4-Clause"),
        ("Artistic", "Artistic-1.0-Perl"),
        ("PSF-2", "PSF-2.0"),
        ("curl", "curl"),
        ("OpenSSL", "OpenSSL"),
        ("CC0-1.0", "CC0-1.0"),
        ("Unicode-DFS-2016", "Unicode-DFS-2016"),
        ("BSL-1.0", "BSL-1.0"),
    ];
    if let Some((_, id)) = known.iter().find(|(d, _)| d.eq_ignore_ascii_case(debian)) {
        return id.to_string();
    }
    format!("LicenseRef-{}", spdx_safe(debian))
}

/// The SPDX expression for a package's licenses: alternatives (`GPL-2+ or
/// Artistic`) with OR, the file's several licenses together with AND.
fn expression(licenses: &[String]) -> Option<String> {
    let parts: Vec<String> = licenses
        .iter()
        .map(|l| {
            let alts: Vec<String> = l
                .split(" or ")
                .flat_map(|a| a.split(" | "))
                .map(|a| spdx_id(a.trim().trim_end_matches(',')))
                .collect();
            if alts.len() > 1 {
                format!("({})", alts.join(" OR "))
            } else {
                alts[0].clone()
            }
        })
        .collect();
    let unique: Vec<String> = parts.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    (!unique.is_empty()).then(|| unique.join(" AND "))
}

/// The modules `go version -m BINARY` prints: the main module (its version
/// from `main_version` when the binary says `(devel)`, as a build from the
/// module's folder does), each dependency (a replacement in its place), and
/// the Go toolchain as `go`.
pub fn go_modules(text: &str, main_version: &str, main_sum: &str) -> Vec<GoModule> {
    let mut out: Vec<GoModule> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').map(str::trim).filter(|f| !f.is_empty()).collect();
        if let Some(toolchain) = fields.first().and_then(|f| f.split(": ").nth(1)) {
            if fields.len() == 1 && toolchain.starts_with("go") {
                out.push(GoModule {
                    path: "go".into(),
                    version: toolchain.to_string(),
                    sum: String::new(),
                });
            }
            continue;
        }
        match fields.as_slice() {
            ["mod", path, version, rest @ ..] => {
                let (version, sum) = if *version == "(devel)" {
                    (main_version.to_string(), main_sum.to_string())
                } else {
                    (version.to_string(), rest.first().unwrap_or(&"").to_string())
                };
                out.push(GoModule {
                    path: path.to_string(),
                    version,
                    sum,
                });
            }
            ["dep", path, version, rest @ ..] => out.push(GoModule {
                path: path.to_string(),
                version: version.to_string(),
                sum: rest.first().unwrap_or(&"").to_string(),
            }),
            ["=>", path, version, rest @ ..] => {
                if let Some(last) = out.last_mut() {
                    *last = GoModule {
                        path: path.to_string(),
                        version: version.to_string(),
                        sum: rest.first().unwrap_or(&"").to_string(),
                    };
                }
            }
            _ => {}
        }
    }
    out
}

fn spdx_ref(kind: &str, parts: &[&str]) -> String {
    format!("SPDXRef-{kind}-{}", spdx_safe(&parts.join("-")))
}

/// `text` with every character SPDX does not allow in an identifier
/// (letters, digits, `.` and `-` only) made a `-`.
fn spdx_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH` (the epoch's ':' escaped).
fn deb_purl(deb: &Deb) -> String {
    format!(
        "pkg:deb/debian/{}@{}?arch={}",
        deb.package,
        deb.version.replace(':', "%3A"),
        deb.arch
    )
}

/// The SPDX 2.3 document for VM `vm` (pure: the same inputs give the same bytes).
pub fn document(vm: &str, epoch: u64, created: &str, mirror: &str, images: &[Image]) -> Value {
    let vm_id = spdx_ref("VM", &[vm]);
    let mut packages = vec![json!({
        "SPDXID": vm_id,
        "name": vm,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "OPERATING-SYSTEM",
        "comment": "A LinuxKit VM (kernel and initrd) built by linuxkit-compose's cargo xtask",
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": vm_id,
    })];
    let mut license_refs = BTreeSet::new();
    for (i, image) in images.iter().enumerate() {
        let image_id = spdx_ref("Image", &[&i.to_string(), &image.name]);
        packages.push(json!({
            "SPDXID": image_id,
            "name": image.name,
            "versionInfo": image.reference,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
        }));
        relationships.push(json!({
            "spdxElementId": vm_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": image_id,
        }));
        for deb in &image.debs {
            let id = spdx_ref("Deb", &[&i.to_string(), &deb.package]);
            let declared = image
                .licenses
                .get(&deb.package)
                .and_then(|l| expression(l))
                .unwrap_or_else(|| "NOASSERTION".into());
            for word in declared.split([' ', '(', ')']) {
                if word.starts_with("LicenseRef-") {
                    license_refs.insert(word.to_string());
                }
            }
            let mut package = json!({
                "SPDXID": id,
                "name": deb.package,
                "versionInfo": deb.version,
                "supplier": "Organization: Debian",
                "downloadLocation": format!("{}/{}", mirror.trim_end_matches('/'), deb.filename),
                "filesAnalyzed": false,
                "checksums": [{"algorithm": "SHA256", "checksumValue": deb.sha256}],
                "sourceInfo": format!("built package from: {} {}", deb.source, deb.source_version),
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": declared,
                "copyrightText": "NOASSERTION",
                "externalRefs": [{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": deb_purl(deb),
                }],
            });
            if let Some(names) = image.licenses.get(&deb.package) {
                package["licenseComments"] = json!(format!("Debian copyright file: License: {}", names.join("; ")));
            }
            packages.push(package);
            relationships.push(json!({
                "spdxElementId": image_id,
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": id,
            }));
        }
        for module in &image.go {
            let id = spdx_ref("Go", &[&i.to_string(), &module.path]);
            let mut package = json!({
                "SPDXID": id,
                "name": module.path,
                "versionInfo": module.version,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "externalRefs": [{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": if module.path == "go" {
                        format!("pkg:golang/stdlib@{}", module.version)
                    } else {
                        format!("pkg:golang/{}@{}", module.path, module.version)
                    },
                }],
            });
            if !module.sum.is_empty() {
                package["comment"] = json!(format!("go.sum {}", module.sum));
            }
            packages.push(package);
            relationships.push(json!({
                "spdxElementId": image_id,
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": id,
            }));
        }
    }
    for (i, image) in images.iter().enumerate() {
        let image_id = spdx_ref("Image", &[&i.to_string(), &image.name]);
        for fetched in &image.fetched {
            let id = spdx_ref("Fetched", &[&i.to_string(), fetched.registry, &fetched.name]);
            let mut package = json!({
                "SPDXID": id,
                "name": fetched.name,
                "versionInfo": fetched.version,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "comment": format!("fetched from the {} registry by the recipe's build, which accepts only: {}", fetched.registry, fetched.hashes.join(", ")),
                "externalRefs": [{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": fetched.purl(),
                }],
            });
            if let [only] = fetched.hashes.as_slice() {
                if let Some((algorithm, value)) = only.split_once(':') {
                    package["checksums"] = json!([{"algorithm": algorithm.to_uppercase(), "checksumValue": value}]);
                }
            }
            packages.push(package);
            relationships.push(json!({
                "spdxElementId": image_id,
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": id,
            }));
        }
        for found in &image.found {
            let id = spdx_ref("Found", &[&i.to_string(), &found.kind, &found.name]);
            packages.push(json!({
                "SPDXID": id,
                "name": found.name,
                "versionInfo": found.version,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "comment": format!("listed by the image's own {} database", found.kind),
                "externalRefs": [{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": found.purl(),
                }],
            }));
            relationships.push(json!({
                "spdxElementId": image_id,
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": id,
            }));
        }
    }
    let extracted: Vec<Value> = license_refs
        .iter()
        .map(|id| {
            json!({
                "licenseId": id,
                "name": id.trim_start_matches("LicenseRef-"),
                "extractedText": "A license named in the package's Debian copyright file (/usr/share/doc/PACKAGE/copyright) with no SPDX identifier",
            })
        })
        .collect();
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": vm,
        "documentNamespace": format!("https://linuxkit-compose.local/spdx/{vm}-{epoch}-{}", files::content_hash(&serde_json::to_string(&packages).unwrap_or_default(), &[], 8)),
        "creationInfo": {
            "created": created,
            "creators": ["Tool: linuxkit-compose cargo xtask"],
        },
        "packages": packages,
        "relationships": relationships,
        "hasExtractedLicensingInfos": extracted,
    })
}

/// The modules in the pinned Go tools image `recipe` carries.
fn recipe_go(sh: &Shell, project: &Project, recipe: &str) -> Result<Vec<GoModule>> {
    let mut out = Vec::new();
    for tool in &project.pins.image(recipe)?.go {
        let pin = project.pins.go_tool(tool)?;
        // Built with the image, unless it went since (another source of a
        // tool of this repository's was built in between): then again.
        let binary = match gotools::cached_binary(project, tool) {
            Some(binary) => binary,
            None => gotools::ensure(sh, project, tool)?,
        };
        let go = host::path(project, "go")?;
        let text = exec::read(cmd!(sh, "{go} version -m {binary}"))
            .with_context(|| format!("go version -m {}", binary.display()))?;
        out.extend(go_modules(&text, &pin.version, pin.sum.as_deref().unwrap_or_default()));
    }
    // A Go distribution the image carries whole (its GOROOT).
    if let Some(name) = &project.pins.image(recipe)?.goroot {
        let toolchain = &project.pins.go_toolchains[name];
        out.push(GoModule {
            path: GoToolchain::MODULE.into(),
            version: toolchain.version.clone(),
            sum: toolchain.sum.clone(),
        });
    }
    Ok(out)
}

fn recipe_image(sh: &Shell, project: &Project, recipe: &str, name: String) -> Result<Image> {
    Ok(Image {
        name,
        reference: images::reference(recipe, &images::tag(project, recipe)?),
        debs: project.lock.image(recipe)?.to_vec(),
        licenses: images::package_licenses(project, recipe)?,
        go: recipe_go(sh, project, recipe)?,
        found: vec![],
        fetched: images::fetched_packages(project, recipe)?,
    })
}

/// Write `dist/<vm>.spdx.json` for a VM made of `recipes` that runs `app`'s images.
pub fn write(sh: &Shell, project: &Project, vm: &str, recipes: &[&str], app: Option<&App>) -> Result<()> {
    let mut list = Vec::new();
    for recipe in recipes {
        list.push(recipe_image(sh, project, recipe, recipe.to_string())?);
    }
    if let Some(app) = app.filter(|_| project.images.registry().is_some()) {
        // Pulled images, by digest, with what their package databases list
        // (for an image built on one, its own: the base's and its RUN steps').
        for (image, (built, bases)) in app_pulls::bases(project, app)? {
            let found = pull::installed_packages(sh, project, &image)?;
            for (i, base) in bases.into_iter().enumerate() {
                list.push(Image {
                    name: match built {
                        true => format!("{image} (app image on {base})"),
                        false => format!("{image} (pulled)"),
                    },
                    reference: base,
                    debs: vec![],
                    licenses: BTreeMap::new(),
                    go: vec![],
                    // The image's packages, listed once (under its first base).
                    found: if i == 0 { found.clone() } else { vec![] },
                    fetched: vec![],
                });
            }
        }
    } else if let Some(app) = app {
        for (image, bases) in apps::base_recipes(project, app)? {
            for base in bases {
                let mut listed = recipe_image(sh, project, &base, format!("{image} (app image on {base})"))?;
                listed.reference = format!("{image} on {}", listed.reference);
                list.push(listed);
            }
        }
    }
    let epoch = project.lock.source_date_epoch;
    let at = format!("@{epoch}");
    let created = exec::read(cmd!(sh, "date -u -d {at} +%Y-%m-%dT%H:%M:%SZ"))?;
    let doc = document(vm, epoch, &created, &project.pins.debian.mirror, &list);
    let path = project.dist.join(format!("{vm}.spdx.json"));
    fs::create_dir_all(&project.dist)?;
    let text = serde_json::to_string_pretty(&doc)? + "\n";
    if files::write_if_changed(&path, text.as_bytes())? {
        let count = doc["packages"].as_array().map_or(0, Vec::len);
        ui::note(format!("{} (SPDX 2.3, {count} packages)", project.rel(&path).display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deb(package: &str, version: &str, source: &str) -> Deb {
        Deb {
            package: package.into(),
            version: version.into(),
            arch: "amd64".into(),
            source: source.into(),
            source_version: version.into(),
            sha256: "ab".repeat(32),
            filename: format!("pool/main/{package}.deb"),
        }
    }

    #[test]
    fn debian_licenses_as_an_spdx_expression() {
        assert_eq!(
            expression(&["GPL-2+".into(), "GPL-2+ or Artistic".into(), "Frob".into()]).unwrap(),
            "(GPL-2.0-or-later OR Artistic-1.0-Perl) AND GPL-2.0-or-later AND LicenseRef-Frob"
        );
    }

    #[test]
    fn go_version_m_with_devel_main_module_and_replacements() {
        let text = "/c/traefik: go1.24.4\n\tpath\tgithub.com/traefik/traefik/v3/cmd/traefik\n\
                    \tmod\tgithub.com/traefik/traefik/v3\t(devel)\t\n\
                    \tdep\tgithub.com/a/b\tv1.2.3\th1:aaa=\n\
                    \tdep\tgithub.com/c/d\tv0.1.0\n\t=>\tgithub.com/e/d\tv0.2.0\th1:eee=\n\
                    \tbuild\t-trimpath=true\n";
        let mods = go_modules(text, "v3.6.12", "h1:main=");
        let got: Vec<(&str, &str, &str)> = mods
            .iter()
            .map(|m| (m.path.as_str(), m.version.as_str(), m.sum.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("go", "go1.24.4", ""),
                ("github.com/traefik/traefik/v3", "v3.6.12", "h1:main="),
                ("github.com/a/b", "v1.2.3", "h1:aaa="),
                ("github.com/e/d", "v0.2.0", "h1:eee="),
            ]
        );
    }

    #[test]
    fn document_lists_every_package_with_its_lock_facts() {
        let mut licenses = BTreeMap::new();
        licenses.insert("nginx-light".to_string(), vec!["BSD-2-clause".to_string()]);
        let images = [
            Image {
                name: "kernel".into(),
                reference: "r/kernel:1".into(),
                debs: vec![deb("linux-image-cloud-amd64", "6.12.57-1", "linux-signed-amd64")],
                licenses: BTreeMap::new(),
                go: vec![],
                found: vec![],
                fetched: vec![],
            },
            Image {
                name: "proxy:1 (app image on traefik)".into(),
                reference: "proxy:1 on r/traefik:2".into(),
                debs: vec![deb("nginx-light", "1:1.26.3-3", "nginx")],
                licenses,
                go: vec![GoModule {
                    path: "github.com/traefik/traefik/v3".into(),
                    version: "v3.6.12".into(),
                    sum: "h1:x=".into(),
                }],
                found: vec![],
                fetched: vec![images::Fetched {
                    registry: "npm",
                    name: "yarn".into(),
                    version: "1.22.22".into(),
                    hashes: vec!["sha512:a6b2".into()],
                }],
            },
        ];
        let doc = document("compose-static", 1, "1970-01-01T00:00:01Z", "http://m/debian/", &images);
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        let packages = doc["packages"].as_array().unwrap();
        let find = |name: &str| packages.iter().find(|p| p["name"] == name).unwrap().clone();
        let kernel = find("linux-image-cloud-amd64");
        assert_eq!(kernel["versionInfo"], "6.12.57-1");
        assert_eq!(kernel["sourceInfo"], "built package from: linux-signed-amd64 6.12.57-1");
        assert_eq!(kernel["checksums"][0]["checksumValue"], "ab".repeat(32));
        assert_eq!(
            kernel["downloadLocation"],
            "http://m/debian/pool/main/linux-image-cloud-amd64.deb"
        );
        assert_eq!(kernel["licenseDeclared"], "NOASSERTION");
        let nginx = find("nginx-light");
        assert_eq!(nginx["licenseDeclared"], "BSD-2-Clause");
        assert_eq!(
            nginx["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/nginx-light@1%3A1.26.3-3?arch=amd64"
        );
        assert_eq!(find("github.com/traefik/traefik/v3")["versionInfo"], "v3.6.12");
        let yarn = find("yarn");
        assert_eq!(yarn["externalRefs"][0]["referenceLocator"], "pkg:npm/yarn@1.22.22");
        assert_eq!(yarn["checksums"][0]["algorithm"], "SHA512");
        assert_eq!(yarn["checksums"][0]["checksumValue"], "a6b2");
        // Every package is reachable from the document through its relationships.
        let related: BTreeSet<&str> = doc["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["relatedSpdxElement"].as_str().unwrap())
            .collect();
        for p in packages {
            assert!(related.contains(p["SPDXID"].as_str().unwrap()), "{}", p["SPDXID"]);
        }
        let again = document("compose-static", 1, "1970-01-01T00:00:01Z", "http://m/debian/", &images);
        assert_eq!(doc, again, "same inputs, same document");
    }
}
