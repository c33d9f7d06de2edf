//! `pins.yml`: every Debian suite, package set and Go module version the build fetches.

use std::{collections::BTreeMap, path::Path};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::base::reference::Reference;

pub const FILE: &str = "pins.yml";

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pins {
    pub debian: Debian,
    pub go: BTreeMap<String, GoTool>,
    /// Go distributions (a GOROOT) that images carry whole, as the Go module
    /// proxy serves the Go project's release builds (`golang.org/toolchain`,
    /// what `GOTOOLCHAIN` downloads): the golang stand-ins newer than
    /// Debian's Go.
    #[serde(default)]
    pub go_toolchains: BTreeMap<String, GoToolchain>,
    /// What each image recipe under `images/` is made from, by folder name.
    pub images: BTreeMap<String, ImagePins>,
    /// The local profile's base images: upstream image name -> the recipe
    /// that stands in for it. A key `NAME:VARIANT` stands in for the tags of
    /// NAME that have VARIANT as a `-`-separated part, maybe with a version
    /// after it (`php:apache` for `php:8.2-apache`, `python:alpine` for
    /// `python:3.12-alpine3.19`), where upstream's variants are different images.
    #[serde(default)]
    pub catalog: BTreeMap<String, CatalogEntry>,
}

/// A local stand-in for an upstream image, whatever the tag or variant asked.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// The recipe folder under `images/` (listed under `images:`).
    pub recipe: String,
    /// What it serves, said beside the version asked for: a Debian package of
    /// the recipe (its version is read at build time), a Go tool (`go:NAME`)
    /// or a PyPI package its recipe folder's requirements.txt pins (`pypi:NAME`).
    pub serves: String,
    /// Where the stand-in falls short of the image it stands in for, said
    /// after what it serves (e.g. modules the upstream image loads).
    #[serde(default)]
    pub note: Option<String>,
    /// What a stage on a tag asking for an older major version than the
    /// stand-in serves gets, so that what that version let through still
    /// goes through (said in the build's note).
    #[serde(default)]
    pub older: Option<Older>,
    /// The catalog entry for tags asking for a newer version than this one
    /// serves (`python:3.12-slim` when this entry serves 3.11).
    #[serde(default)]
    pub newer: Option<Newer>,
}

impl CatalogEntry {
    /// What [`CatalogEntry::serves`] names: a Go tool (`go:NAME`), a Go
    /// distribution (`goroot:NAME`), a PyPI package (`pypi:NAME`), an npm
    /// package (`npm:NAME`) or a Debian package of the recipe.
    pub fn served(&self) -> Served<'_> {
        if let Some(tool) = self.serves.strip_prefix("go:") {
            Served::GoTool(tool)
        } else if let Some(toolchain) = self.serves.strip_prefix("goroot:") {
            Served::GoRoot(toolchain)
        } else if let Some(package) = self.serves.strip_prefix("pypi:") {
            Served::PyPi(package)
        } else if let Some(package) = self.serves.strip_prefix("npm:") {
            Served::Npm(package)
        } else {
            Served::Package(&self.serves)
        }
    }
}

/// The program a catalog entry serves ([`CatalogEntry::served`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served<'a> {
    /// A Debian package of the recipe; its version is read at build time.
    Package(&'a str),
    /// A Go tool under `go:` in pins.yml, at its pinned version.
    GoTool(&'a str),
    /// A Go distribution under `go_toolchains:`, at its pinned version.
    GoRoot(&'a str),
    /// A PyPI package at the version its recipe folder's requirements.txt pins.
    PyPi(&'a str),
    /// An npm package at the version its recipe folder's `*.sha512` files pin.
    Npm(&'a str),
}

impl<'a> Served<'a> {
    /// The package's or the tool's name.
    pub fn name(self) -> &'a str {
        match self {
            Served::Package(name)
            | Served::GoTool(name)
            | Served::GoRoot(name)
            | Served::PyPi(name)
            | Served::Npm(name) => name,
        }
    }
}

/// Settings for tags older than the stand-in ([`CatalogEntry::older`]).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Older {
    /// Set as `ENV` right after the stage's `FROM`.
    pub env: BTreeMap<String, String>,
    /// Why, in the build's note.
    pub why: String,
}

/// Where tags newer than a catalog entry go ([`CatalogEntry::newer`]).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Newer {
    /// The version the entry serves: a tag naming a later one (compared on
    /// the parts the tag gives: `3.12` and `3.12.4` are later than `3.11`,
    /// `3` is not) goes to `entry`.
    pub than: String,
    /// The catalog entry that serves those tags.
    pub entry: String,
    /// Tags that name no version (`golang:alpine`, `latest`) go there too:
    /// upstream's newest, where no older pin in an app needs the entry's own.
    #[serde(default)]
    pub untagged: bool,
}

impl Newer {
    /// Whether `version` (a tag's, `3.12`) is later than [`Newer::than`].
    pub fn takes(&self, version: &str) -> bool {
        let parts = |v: &str| {
            v.split('.')
                .map(|p| p.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()
        };
        match (parts(version), parts(&self.than)) {
            (Some(asked), Some(than)) => {
                let n = asked.len().min(than.len());
                asked[..n] > than[..n]
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImagePins {
    /// Debian packages (with their dependencies) unpacked as the image's rootfs.
    pub packages: Vec<String>,
    /// Go tools from `go:` whose binaries are put in the build context.
    #[serde(default)]
    pub go: Vec<String>,
    /// The Debian suite, if not `debian.suite`.
    #[serde(default)]
    pub suite: Option<String>,
    /// `minbase`: a configured Debian system (dpkg, apt, a shell), for base
    /// images that Dockerfiles build on; default: the packages only unpacked.
    #[serde(default)]
    pub variant: Option<String>,
    /// Paths removed from the tree before it becomes the image (no layer of
    /// the image deletes anything: the VM's image store takes no whiteouts).
    #[serde(default)]
    pub remove: Vec<String>,
    /// Takes RUN steps written for the Alpine variant of the image it stands
    /// in for: `apk` (done with apt-get) and busybox's `adduser`/`addgroup`
    /// short options, from `images/alpine-compat/`. Without `minbase` there
    /// is no apt: `apk add` then takes only what the image already carries.
    #[serde(default)]
    pub alpine: bool,
    /// Folders under `images/` that recipes share (scripts, configuration),
    /// copied into the build context under their own names beside the
    /// recipe's files, and hashed into its tag as the recipe's files are.
    #[serde(default)]
    pub shared: Vec<String>,
    /// The folder under `images/` whose Dockerfile and files build it, when
    /// that is another image's (the same recipe over other packages, as
    /// `nginx-alpine` is `nginx` with curl and the Alpine emulation); its own
    /// name otherwise.
    #[serde(default)]
    pub recipe_folder: Option<String>,
    /// The npm registry's tarballs that the `*.sha512` files of the recipe
    /// folder (and of its `shared` ones) list are downloaded into the build
    /// context, each checked against its sha512, for the Dockerfile to
    /// install (Node.js itself, from a package that carries its release
    /// build): its RUN steps then fetch nothing.
    #[serde(default)]
    pub npm_tarballs: bool,
    /// A Go distribution from `go_toolchains:`, put in the image's tree as
    /// /usr/local/go (the upstream golang image's GOROOT).
    #[serde(default)]
    pub goroot: Option<String>,
    /// The recipe's own RUN steps fetch from a package registry (pinned by
    /// hash in the recipe folder): its build sees the host's CA bundle, as an
    /// app's RUN steps do. Off for the rest, whose RUN steps read the image's
    /// own bundle.
    #[serde(default)]
    pub fetches: bool,
}

impl ImagePins {
    /// Whether the image carries images/ca-compat's `update-ca-certificates`:
    /// every configured system (`minbase`) with the CA certificates, and
    /// every one with the Alpine emulation (whose `apk add ca-certificates
    /// && update-ca-certificates` needs it), where a Dockerfile's RUN step
    /// may call it while the build mounts the host's bundle over the image's.
    pub fn ca_compat(&self) -> bool {
        self.alpine
            || (self.variant.as_deref() == Some("minbase") && self.packages.iter().any(|p| p == "ca-certificates"))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Debian {
    pub suite: String,
    pub mirror: String,
    /// Host program -> the Debian package that provides it.
    pub host_packages: BTreeMap<String, HostPackage>,
    /// Programs the xtask runs on the host from `suite`'s packages, unpacked
    /// into the cache rather than installed.
    #[serde(default)]
    pub tools: BTreeMap<String, DebianTool>,
}

/// A program from a Debian package of the pinned suite, run on the host.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DebianTool {
    pub package: String,
    /// The program inside the unpacked package.
    pub path: String,
}

/// The Debian package (of the host's own release) that provides a host program.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostPackage {
    pub package: String,
    /// Acceptable versions: the highest entry or later, or a lower entry or
    /// later within that entry's own `major.minor` series. Empty: any.
    #[serde(default)]
    pub min_version: Vec<String>,
    /// May come from `<codename>-backports` when the host's suite is too old.
    #[serde(default)]
    pub backports: bool,
}

/// A Go distribution: module `golang.org/toolchain` at `version`
/// (`v0.0.1-go1.27.3.linux-amd64`), checked against its go.sum hash.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GoToolchain {
    pub version: String,
    pub sum: String,
}

impl GoToolchain {
    /// The module the Go project publishes its release builds as.
    pub const MODULE: &'static str = "golang.org/toolchain";

    /// The Go version it is (`1.27.3`).
    pub fn go_version(&self) -> &str {
        let version = self.version.strip_prefix("v0.0.1-go").unwrap_or(&self.version);
        let end = version
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(version.len());
        version[..end].trim_end_matches('.')
    }
}

/// A Go program built from a module fetched through the Go module proxy, or
/// from this repository's own source (`source`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GoTool {
    pub module: String,
    pub version: String,
    /// A folder of this repository holding the module (its go.mod names
    /// `module`), built in place of a download: its dependencies are pinned
    /// by its go.sum, and `version` is the program's own.
    #[serde(default)]
    pub source: Option<String>,
    /// The module's go.sum hash (`h1:…`), checked after download. Required for
    /// modules the checksum database does not list.
    #[serde(default)]
    pub sum: Option<String>,
    /// Package to build, relative to the module root.
    pub package: String,
    pub binary: String,
    /// A Go variable (`-X PKG.NAME`) that the program reports as its version,
    /// set to `version` as the project's own release builds set it.
    #[serde(default)]
    pub version_var: Option<String>,
    /// A Go variable that the program reports as its build date, set to the
    /// module version's commit time (from the module proxy), not the wall clock.
    #[serde(default)]
    pub date_var: Option<String>,
    /// A file (relative to the module root) that the build writes `version`
    /// into, for programs that embed their version from a generated file
    /// rather than a variable (FerretDB's `build/version/version.txt`, which
    /// it refuses to start without when built as the main module).
    #[serde(default)]
    pub version_file: Option<String>,
}

impl GoTool {
    /// What the build sets besides the pinned source (part of the binary's
    /// cache path and of the tag of every image that carries it).
    pub fn build_vars(&self) -> String {
        let mut vars = Vec::new();
        if let Some(v) = &self.version_var {
            vars.push(format!("version_var={v}"));
        }
        if let Some(v) = &self.date_var {
            vars.push(format!("date_var={v}"));
        }
        if let Some(v) = &self.version_file {
            vars.push(format!("version_file={v}"));
        }
        vars.join(" ")
    }
}

impl Pins {
    pub fn load(root: &Path) -> Result<Pins> {
        let path = root.join(FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Pins::parse(&text).with_context(|| format!("{}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Pins> {
        let pins: Pins = serde_yaml::from_str(text)?;
        pins.validate()?;
        Ok(pins)
    }

    fn validate(&self) -> Result<()> {
        for (name, tool) in &self.go {
            if !tool.version.starts_with('v') {
                bail!("go.{name}.version {:?} is not a Go module version (v…)", tool.version);
            }
            if let Some(sum) = &tool.sum {
                if !sum.starts_with("h1:") {
                    bail!("go.{name}.sum {sum:?} is not a go.sum hash (h1:…)");
                }
            }
            if let Some(dir) = &tool.source {
                if tool.sum.is_some() {
                    bail!("go.{name}: a `source` folder has no module hash (`sum`): its go.sum pins what it uses");
                }
                if dir.starts_with('/') || dir.split('/').any(|part| part == "..") {
                    bail!("go.{name}.source `{dir}`: name a folder of this repository");
                }
            }
        }
        for (name, toolchain) in &self.go_toolchains {
            let go = toolchain.go_version();
            let valid = toolchain.version == format!("v0.0.1-go{go}.linux-amd64")
                && go.split('.').all(|p| p.parse::<u32>().is_ok());
            if !valid {
                bail!(
                    "go_toolchains.{name}.version {:?} is not a Go release build's module version (v0.0.1-go1.27.3.linux-amd64)",
                    toolchain.version
                );
            }
            if !toolchain.sum.starts_with("h1:") {
                bail!(
                    "go_toolchains.{name}.sum {:?} is not a go.sum hash (h1:…)",
                    toolchain.sum
                );
            }
        }
        for (name, image) in &self.images {
            if let Some(goroot) = image.goroot.as_ref().filter(|g| !self.go_toolchains.contains_key(*g)) {
                bail!("images.{name}.goroot names `{goroot}`, which is not under `go_toolchains:`");
            }
            if image.packages.is_empty() {
                bail!("images.{name} lists no Debian packages");
            }
            if let Some(tool) = image.go.iter().find(|t| !self.go.contains_key(*t)) {
                bail!("images.{name}.go names `{tool}`, which is not under `go:`");
            }
            if let Some(v) = image.variant.as_deref().filter(|v| *v != "minbase") {
                bail!("images.{name}.variant {v:?}: the only variant is `minbase`");
            }
            if let Some(dir) = image.shared.iter().find(|d| d.contains('/') || d.starts_with('.')) {
                bail!("images.{name}.shared `{dir}`: name a folder directly under images/");
            }
            if let Some(dir) = image
                .recipe_folder
                .as_deref()
                .filter(|d| d.contains('/') || d.starts_with('.'))
            {
                bail!("images.{name}.recipe_folder `{dir}`: name a folder directly under images/");
            }
        }
        for (name, entry) in &self.catalog {
            if !self.images.contains_key(&entry.recipe) {
                bail!("catalog.{name}.recipe `{}` is not under `images:`", entry.recipe);
            }
            if let Served::GoTool(tool) = entry.served() {
                if !self.go.contains_key(tool) {
                    bail!("catalog.{name}.serves names Go tool `{tool}`, which is not under `go:`");
                }
            }
            if let Served::GoRoot(toolchain) = entry.served() {
                if self.images[&entry.recipe].goroot.as_deref() != Some(toolchain) {
                    bail!(
                        "catalog.{name}.serves names Go distribution `{toolchain}`, which recipe `{}` does not carry (its `goroot`)",
                        entry.recipe
                    );
                }
            }
            if let Some(newer) = &entry.newer {
                if !self.catalog.contains_key(&newer.entry) {
                    bail!("catalog.{name}.newer.entry `{}` is not under `catalog:`", newer.entry);
                }
                if newer.than.split('.').any(|p| p.parse::<u32>().is_err()) {
                    bail!("catalog.{name}.newer.than {:?} is not a version (3.11)", newer.than);
                }
            }
        }
        Ok(())
    }

    /// The catalog entry that stands in for `reference`: `NAME:VARIANT` where
    /// the catalog has one for a `-`-separated part of its tag, for the part
    /// without the version after it, or for a version's major (`php:8.2-apache-bookworm` ->
    /// `php:apache`, `python:3.12-alpine3.19` -> `python:alpine`,
    /// `eclipse-temurin:21.0.5_11-jre` -> `eclipse-temurin:21`), else its
    /// name alone. NAME is the image's full name where the catalog has an
    /// entry for it, with or without the Debian release it may end in
    /// (`gcr.io/distroless/static-debian12` -> `gcr.io/distroless/static`),
    /// else its last component (any registry's `nginx`). Where that entry
    /// sends newer tags elsewhere ([`CatalogEntry::newer`]) and the tag asks
    /// for a newer version, the entry it names (`python:3.12-slim` ->
    /// `python-3.13:slim`).
    pub fn catalog_key(&self, reference: &Reference) -> String {
        let key = self.matching_key(reference);
        let newer = self.catalog.get(&key).and_then(|entry| entry.newer.as_ref());
        match (newer, reference.tag_version()) {
            (Some(newer), Some(version)) if newer.takes(&version) => newer.entry.clone(),
            (Some(newer), None) if newer.untagged => newer.entry.clone(),
            _ => key,
        }
    }

    fn matching_key(&self, reference: &Reference) -> String {
        let familiar = reference.familiar_name();
        let released = familiar
            .rsplit_once("-debian")
            .filter(|(_, release)| !release.is_empty() && release.bytes().all(|b| b.is_ascii_digit()))
            .map(|(name, _)| name.to_string());
        let name = [Some(familiar), released]
            .into_iter()
            .flatten()
            .find(|name| self.catalog.contains_key(name))
            .unwrap_or_else(|| reference.catalog_name().to_string());
        // A part may carry its version (`alpine3.19`): the variant is its
        // name; a version (`21.0.5_11`) may be one by its major.
        reference
            .tag()
            .into_iter()
            .flat_map(|tag| tag.split('-'))
            .flat_map(|part| {
                [
                    part,
                    part.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.'),
                    part.split(|c: char| !c.is_ascii_digit()).next().unwrap_or_default(),
                ]
            })
            .map(|part| format!("{name}:{part}"))
            .find(|key| self.catalog.contains_key(key))
            .unwrap_or(name)
    }

    /// What image `name` is made from.
    pub fn image(&self, name: &str) -> Result<&ImagePins> {
        match self.images.get(name) {
            Some(p) => Ok(p),
            None => bail!("{FILE} has no `images.{name}` entry"),
        }
    }

    /// The Debian suite image `name` is made from.
    pub fn suite_of(&self, image: &ImagePins) -> String {
        image.suite.clone().unwrap_or_else(|| self.debian.suite.clone())
    }

    pub fn debian_tool(&self, name: &str) -> Result<&DebianTool> {
        self.debian
            .tools
            .get(name)
            .with_context(|| format!("{FILE} has no `debian.tools.{name}` entry"))
    }

    pub fn go_tool(&self, name: &str) -> Result<&GoTool> {
        self.go
            .get(name)
            .with_context(|| format!("{FILE} has no `go.{name}` entry"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_pins_parse() {
        let root = crate::base::project::root();
        let pins = Pins::load(&root).unwrap();
        assert_eq!(pins.debian.suite, "trixie");
        let lk = pins.go_tool("linuxkit").unwrap();
        assert!(lk.sum.as_deref().unwrap().starts_with("h1:"));
        assert!(pins
            .image("kernel")
            .unwrap()
            .packages
            .contains(&"linux-image-cloud-amd64".to_string()));
        assert_eq!(pins.image("traefik").unwrap().go, ["traefik"]);
    }

    /// Upstream's python and node tags without -slim or -alpine are its full
    /// images, with compilers: a Dockerfile on them may build a native module
    /// (psycopg2, bcrypt), so their stand-in has g++ and make; the small tags
    /// keep the small one, Alpine's `apk` emulation and older tags' settings.
    #[test]
    fn repo_catalog_full_and_small_tags() {
        let pins = Pins::load(&crate::base::project::root()).unwrap();
        let recipe = |r: &str| {
            let key = pins.catalog_key(&Reference::parse(r).unwrap());
            pins.catalog[&key].recipe.clone()
        };
        for (reference, want) in [
            ("node:20", "node-full"),
            ("node:20-bookworm", "node-full"),
            ("node:20-slim", "node"),
            ("node:20-alpine3.19", "node"),
            ("node:lts", "node-24-full"),
            ("node:24", "node-24-full"),
            ("node:22-bookworm", "node-24-full"),
            ("node:lts-buster-slim", "node-24"),
            ("node:22-alpine", "node-24"),
            ("node:alpine", "node-24"),
            ("python:3", "python-full"),
            ("python:3.11-slim-bookworm", "python"),
            ("python:3.7-alpine", "python"),
            ("python:3.12", "python-full-3.13"),
            ("python:3.12-slim-bookworm", "python-3.13"),
            ("python:3.13-alpine", "python-3.13"),
        ] {
            assert_eq!(recipe(reference), want, "{reference}");
            let packages = &pins.image(want).unwrap().packages;
            let full = want.contains("-full");
            assert_eq!(packages.contains(&"g++".to_string()), full, "{want}: g++");
            assert_eq!(pins.image(want).unwrap().alpine, !full, "{want}: apk emulation");
        }
        for key in ["node", "node:slim", "node:alpine", "node-24", "node-24:slim"] {
            assert!(pins.catalog[key].older.is_some(), "{key}: older tags' settings");
        }
    }

    /// A Debian tag gets the suite it names: a Dockerfile on
    /// `debian:trixie-slim` may install what only trixie has, and a program
    /// built on the trixie stand-ins (golang) may need its glibc. The others
    /// (bookworm's, older ones, none) get bookworm's, as the rust stand-in's
    /// binaries need.
    #[test]
    fn repo_catalog_debian_by_suite() {
        let pins = Pins::load(&crate::base::project::root()).unwrap();
        for (reference, recipe, suite) in [
            ("debian:trixie-slim", "debian-trixie", "trixie"),
            ("debian:13", "debian-trixie", "trixie"),
            ("debian:13.2-slim", "debian-trixie", "trixie"),
            ("debian:trixie-20250203", "debian-trixie", "trixie"),
            ("debian:bookworm-slim", "debian", "bookworm"),
            ("debian:12-slim", "debian", "bookworm"),
            ("debian", "debian", "bookworm"),
        ] {
            let key = pins.catalog_key(&Reference::parse(reference).unwrap());
            assert_eq!(pins.catalog[&key].recipe, recipe, "{reference}");
            assert_eq!(pins.suite_of(pins.image(recipe).unwrap()), suite, "{reference}");
        }
    }

    /// php's -alpine tags (-cli and -fpm; upstream has no -apache one) go to
    /// the variant's stand-in, which emulates apk: `php:8.3-fpm-alpine`
    /// Dockerfiles `apk add icu-dev` before docker-php-ext-install.
    #[test]
    fn repo_catalog_php_alpine_tags() {
        let pins = Pins::load(&crate::base::project::root()).unwrap();
        for (reference, want) in [
            ("php:8.3-fpm-alpine", "php-fpm"),
            ("php:fpm-alpine3.20", "php-fpm"),
            ("php:8.3-cli-alpine", "php"),
            ("php:8-alpine", "php"),
            ("php:8.2-apache", "php-apache"),
        ] {
            let key = pins.catalog_key(&Reference::parse(reference).unwrap());
            let recipe = &pins.catalog[&key].recipe;
            assert_eq!(recipe, want, "{reference}");
            if reference.contains("alpine") {
                assert!(pins.image(recipe).unwrap().alpine, "{reference}: apk emulation");
            }
        }
    }

    /// A tag that asks for Java 21 or 25 gets that JDK (a JDK 17 cannot
    /// compile for them), any other Java 17's.
    #[test]
    fn repo_catalog_java_by_version() {
        let pins = Pins::load(&crate::base::project::root()).unwrap();
        for (reference, recipe, jdk) in [
            ("eclipse-temurin:17-jre", "openjdk", "openjdk-17-jdk-headless"),
            ("eclipse-temurin:21-jre", "openjdk-21", "openjdk-21-jdk-headless"),
            (
                "eclipse-temurin:21.0.5_11-jdk-jammy",
                "openjdk-21",
                "openjdk-21-jdk-headless",
            ),
            ("openjdk:25-jdk-slim", "openjdk-25", "openjdk-25-jdk-headless"),
            ("maven:3-eclipse-temurin-17", "maven", "openjdk-17-jdk-headless"),
            ("maven:3.9-eclipse-temurin-21", "maven-21", "openjdk-21-jdk-headless"),
            (
                "maven:3.9.9-eclipse-temurin-25-alpine",
                "maven-25",
                "openjdk-25-jdk-headless",
            ),
        ] {
            let key = pins.catalog_key(&Reference::parse(reference).unwrap());
            assert_eq!(pins.catalog[&key].recipe, recipe, "{reference}");
            assert!(
                pins.image(recipe).unwrap().packages.contains(&jdk.to_string()),
                "{recipe}: {jdk}"
            );
        }
    }

    const MINIMAL: &str = "
debian: {suite: trixie, mirror: http://m, host_packages: {q: {package: qemu-system-x86, min_version: [9.1]}}}
go:
  t: {module: example.com/t, version: v1.0.0, package: ., binary: t}
images:
  a: {packages: [busybox-static]}
  b: {packages: [netbase], go: [t]}
";

    #[test]
    fn tags_newer_than_an_entry_serves_go_to_the_entry_it_names() {
        let text = format!(
            "{MINIMAL}catalog:
  python: {{recipe: a, serves: x, newer: {{than: '3.11', entry: 'python-3.13'}}}}
  'python:slim': {{recipe: a, serves: x, newer: {{than: '3.11', entry: 'python-3.13:slim'}}}}
  python-3.13: {{recipe: b, serves: x}}
  'python-3.13:slim': {{recipe: b, serves: x}}
"
        );
        let pins = Pins::parse(&text).unwrap();
        let key = |r: &str| pins.catalog_key(&Reference::parse(r).unwrap());
        assert_eq!(key("python:3.12-slim"), "python-3.13:slim");
        assert_eq!(key("python:3.13.1-slim-bookworm"), "python-3.13:slim");
        assert_eq!(key("python:3.14"), "python-3.13");
        assert_eq!(key("python:3.11-slim"), "python:slim", "the version served");
        assert_eq!(key("python:3.11.9"), "python", "the version served");
        assert_eq!(key("python:3.7-alpine"), "python", "older");
        assert_eq!(key("python:3-slim"), "python:slim", "no minor asked");
        assert_eq!(key("python:slim"), "python:slim");
        assert_eq!(key("python"), "python");
        let err = Pins::parse(&text.replace("entry: 'python-3.13'}", "entry: nope}")).unwrap_err();
        assert!(
            format!("{err:#}").contains("catalog.python.newer.entry `nope` is not under `catalog:`"),
            "{err:#}"
        );
        let err = Pins::parse(&text.replace("than: '3.11', entry: 'python-3.13'", "than: 3.x, entry: 'python-3.13'"))
            .unwrap_err();
        assert!(format!("{err:#}").contains("is not a version"), "{err:#}");
    }

    /// golang: tags after Debian's 1.24, and those naming no version
    /// (upstream's newest), go to the Go project's release build, whose Go
    /// version the module version says.
    #[test]
    fn golang_tags_past_debians_go_and_untagged_go_to_the_release_build() {
        let text = format!(
            "{MINIMAL}go_toolchains:
  go: {{version: v0.0.1-go1.27.3.linux-amd64, sum: 'h1:x='}}
catalog:
  golang: {{recipe: a, serves: x, newer: {{than: '1.24', entry: golang-1.27, untagged: true}}}}
  golang-1.27: {{recipe: c, serves: 'goroot:go'}}
"
        )
        .replace("images:\n", "images:\n  c: {packages: [git], goroot: go}\n");
        let pins = Pins::parse(&text).unwrap();
        assert_eq!(pins.go_toolchains["go"].go_version(), "1.27.3");
        let key = |r: &str| pins.catalog_key(&Reference::parse(r).unwrap());
        assert_eq!(key("golang:1.22-alpine"), "golang", "Debian's 1.24 serves it");
        assert_eq!(key("golang:1.24.4-bookworm"), "golang");
        assert_eq!(key("golang:1.25-alpine"), "golang-1.27");
        assert_eq!(key("golang:1.27"), "golang-1.27");
        assert_eq!(key("golang:alpine"), "golang-1.27", "no version: upstream's newest");
        assert_eq!(key("golang"), "golang-1.27");
        assert_eq!(key("golang:1-alpine"), "golang", "no minor asked");
        let err = Pins::parse(&text.replace("goroot: go}", "goroot: nope}")).unwrap_err();
        assert!(
            format!("{err:#}").contains("images.c.goroot names `nope`, which is not under `go_toolchains:`"),
            "{err:#}"
        );
        let err = Pins::parse(&text.replace("go1.27.3.linux-amd64", "go1.27.3")).unwrap_err();
        assert!(
            format!("{err:#}").contains("is not a Go release build's module version"),
            "{err:#}"
        );
        let err =
            Pins::parse(&text.replace("recipe: c, serves: 'goroot:go'", "recipe: a, serves: 'goroot:go'")).unwrap_err();
        assert!(
            format!("{err:#}").contains("which recipe `a` does not carry"),
            "{err:#}"
        );
    }

    #[test]
    fn catalog_variants_by_tag_part() {
        let text =
            format!("{MINIMAL}catalog:\n  php: {{recipe: a, serves: x}}\n  'php:apache': {{recipe: b, serves: x}}\n");
        let pins = Pins::parse(&text).unwrap();
        let key = |r: &str| pins.catalog_key(&Reference::parse(r).unwrap());
        assert_eq!(key("php:8.2-apache"), "php:apache");
        assert_eq!(key("php:apache"), "php:apache");
        assert_eq!(key("php:8.4-apache-bookworm"), "php:apache");
        assert_eq!(key("php:8-cli"), "php");
        assert_eq!(key("php"), "php");
        assert_eq!(key("docker.io/library/php:8-fpm"), "php");
        assert_eq!(key("php:8.3-apache3.1"), "php:apache");
        assert_eq!(key("php:8.3"), "php");
    }

    #[test]
    fn catalog_variants_by_major_version() {
        let text =
            format!("{MINIMAL}catalog:\n  java: {{recipe: a, serves: x}}\n  'java:21': {{recipe: b, serves: x}}\n");
        let pins = Pins::parse(&text).unwrap();
        let key = |r: &str| pins.catalog_key(&Reference::parse(r).unwrap());
        assert_eq!(key("java:21"), "java:21");
        assert_eq!(key("java:21-jre"), "java:21");
        assert_eq!(key("java:21.0.5_11-jdk-jammy"), "java:21");
        assert_eq!(key("java:3.9-eclipse-temurin-21"), "java:21");
        assert_eq!(key("java:17-jre"), "java");
        assert_eq!(key("java:211"), "java");
        assert_eq!(key("java:latest"), "java");
    }

    #[test]
    fn catalog_full_names_with_or_without_their_debian_release() {
        let text = format!(
            "{MINIMAL}catalog:\n  static: {{recipe: a, serves: x}}\n  'gcr.io/distroless/static': {{recipe: b, serves: x}}\n  'gcr.io/distroless/static:nonroot': {{recipe: a, serves: y}}\n"
        );
        let pins = Pins::parse(&text).unwrap();
        let key = |r: &str| pins.catalog_key(&Reference::parse(r).unwrap());
        assert_eq!(key("gcr.io/distroless/static"), "gcr.io/distroless/static");
        assert_eq!(key("gcr.io/distroless/static-debian12"), "gcr.io/distroless/static");
        assert_eq!(
            key("gcr.io/distroless/static-debian12:nonroot"),
            "gcr.io/distroless/static:nonroot"
        );
        assert_eq!(
            key("gcr.io/distroless/static:debug-nonroot"),
            "gcr.io/distroless/static:nonroot"
        );
        assert_eq!(
            key("gcr.io/distroless/static-debian12:latest"),
            "gcr.io/distroless/static"
        );
        // Another registry's image of that last name is the short name's.
        assert_eq!(key("example.com/me/static-debian12"), "static-debian12");
        assert_eq!(key("example.com/me/static:1"), "static");
        assert_eq!(key("gcr.io/distroless/static-debianx"), "static-debianx");
    }

    /// The recipe the repo's catalog stands in for image `asked` with.
    fn repo_recipe(project: &crate::base::project::Project, asked: &str) -> String {
        let key = project.pins.catalog_key(&Reference::parse(asked).unwrap());
        project.pins.catalog[&key].recipe.clone()
    }

    #[test]
    fn repo_catalog_distroless() {
        let project = crate::base::project::for_tests();
        let recipe = |r: &str| repo_recipe(&project, r);
        for name in [
            "static",
            "base",
            "cc",
            "static-debian12",
            "cc-debian12",
            "base-debian11",
        ] {
            assert_eq!(recipe(&format!("gcr.io/distroless/{name}")), "distroless", "{name}");
            assert_eq!(
                recipe(&format!("gcr.io/distroless/{name}:nonroot")),
                "distroless-nonroot",
                "{name}"
            );
        }
    }

    #[test]
    fn repo_catalog_uv_alone_or_on_python() {
        let project = crate::base::project::for_tests();
        let key = |r: &str| project.pins.catalog_key(&Reference::parse(r).unwrap());
        for (asked, want) in [
            ("ghcr.io/astral-sh/uv:latest", "uv"),
            ("ghcr.io/astral-sh/uv:0.5.4", "uv"),
            ("ghcr.io/astral-sh/uv:python3.12-bookworm-slim", "uv:python"),
            ("ghcr.io/astral-sh/uv:0.6-python3.12-bookworm", "uv:python"),
            ("ghcr.io/astral-sh/uv:bookworm-slim", "uv:bookworm"),
            ("ghcr.io/astral-sh/uv:debian-slim", "uv:debian"),
            ("ghcr.io/astral-sh/uv:alpine", "uv:alpine"),
        ] {
            assert_eq!(key(asked), want, "{asked}");
        }
        assert_eq!(project.pins.catalog["uv"].served(), Served::PyPi("uv"));
        assert_eq!(project.pins.catalog["uv:bookworm"].recipe, "uv-python");
    }

    #[test]
    fn repo_catalog_database_admin_tools() {
        let project = crate::base::project::for_tests();
        let recipe = |r: &str| repo_recipe(&project, r);
        assert_eq!(recipe("adminer:4"), "adminer");
        assert_eq!(recipe("phpmyadmin"), "phpmyadmin");
        assert_eq!(recipe("phpmyadmin/phpmyadmin:5.2"), "phpmyadmin");
        assert_eq!(recipe("phpmyadmin:5.2-apache"), "phpmyadmin");
    }

    #[test]
    fn catalog_serves_a_package_or_a_pinned_go_tool() {
        let text = format!(
            "{MINIMAL}catalog:\n  x: {{recipe: a, serves: busybox-static}}\n  y: {{recipe: b, serves: 'go:t'}}\n"
        );
        let pins = Pins::parse(&text).unwrap();
        assert_eq!(pins.catalog["x"].served(), Served::Package("busybox-static"));
        assert_eq!(pins.catalog["y"].served(), Served::GoTool("t"));
        assert_eq!(pins.catalog["y"].served().name(), "t");
        let err = Pins::parse(&text.replace("'go:t'", "'go:nope'")).unwrap_err();
        assert!(
            format!("{err:#}").contains("catalog.y.serves names Go tool `nope`"),
            "{err:#}"
        );
    }

    #[test]
    fn minimal_pins_parse() {
        let pins = Pins::parse(MINIMAL).unwrap();
        assert_eq!(pins.image("a").unwrap().packages, ["busybox-static"]);
        assert_eq!(pins.image("b").unwrap().go, ["t"]);
        assert_eq!(pins.go_tool("t").unwrap().sum, None);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Pins::parse(&MINIMAL.replace("suite:", "suit: x, suite:")).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field `suit`"), "{err:#}");
    }

    #[test]
    fn bad_versions_are_rejected() {
        let err = Pins::parse(&MINIMAL.replace("v1.0.0", "1.0.0")).unwrap_err();
        assert!(format!("{err:#}").contains("go.t.version"), "{err:#}");
        let err = Pins::parse(&MINIMAL.replace("binary: t}", "binary: t, sum: md5}")).unwrap_err();
        assert!(format!("{err:#}").contains("go.t.sum"), "{err:#}");
    }

    #[test]
    fn empty_package_list_is_rejected() {
        let err = Pins::parse(&MINIMAL.replace("[busybox-static]", "[]")).unwrap_err();
        assert!(
            format!("{err:#}").contains("images.a lists no Debian packages"),
            "{err:#}"
        );
    }

    #[test]
    fn a_go_tool_from_this_repository_is_pinned_by_its_go_sum() {
        let local = MINIMAL.replace("binary: t}", "binary: t, source: images/t/src}");
        let pins = Pins::parse(&local).unwrap();
        assert_eq!(pins.go_tool("t").unwrap().source.as_deref(), Some("images/t/src"));
        let err = Pins::parse(&local.replace("binary: t,", "binary: t, sum: 'h1:x',")).unwrap_err();
        assert!(
            format!("{err:#}").contains("go.t: a `source` folder has no module hash"),
            "{err:#}"
        );
        for outside in ["/src", "images/../../src"] {
            let err = Pins::parse(&local.replace("images/t/src", outside)).unwrap_err();
            assert!(
                format!("{err:#}").contains("name a folder of this repository"),
                "{err:#}"
            );
        }
    }

    #[test]
    fn image_go_tools_must_be_pinned() {
        let err = Pins::parse(&MINIMAL.replace("go: [t]", "go: [nope]")).unwrap_err();
        assert!(format!("{err:#}").contains("images.b.go names `nope`"), "{err:#}");
    }

    #[test]
    fn missing_image_names_the_file() {
        let pins = Pins::parse(MINIMAL).unwrap();
        let err = pins.image("nope").unwrap_err();
        assert_eq!(err.to_string(), "pins.yml has no `images.nope` entry");
    }
}
