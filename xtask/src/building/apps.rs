//! The compose app's own images: `cargo xtask apps` builds every service with
//! `build:` (buildah, daemonless; `docker build` when a Docker engine answers),
//! and `cargo xtask images` saves each image the app uses as a `docker load`-able
//! tarball under `dist/images/`.
//!
//! In the local profile a Dockerfile is built unchanged: its base images
//! resolve through the catalog (pins.yml `catalog:`) to stand-ins built from
//! Debian packages, and `docker compose config` is what reads the compose file.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use xshell::{cmd, Shell};

use crate::{
    app::compose::{self, App, Build, Runs},
    base::{exec, files, pins::Served, project::Project, reference::Reference, ui},
    building::{app_pulls, buildah, debian, dockerfile, images, pull},
};

/// The host's CA bundle, which RUN steps see.
const HOST_CAS: &str = buildah::HOST_CAS;

/// Label on every app image built here: the hash of what it was built from.
const INPUTS_LABEL: &str = "org.linuxkit-compose.inputs";

/// Which engine builds and saves the app images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    Buildah,
    Docker,
}

/// The app in `source`, read by docker compose (the compose v2 the VM runs,
/// unpacked from its Debian package into the cache on first use).
pub fn load(project: &Project, source: &compose::Source) -> Result<App> {
    let compose = match debian::unpacked_tool(project, "docker-compose")? {
        Some(program) => program,
        None => {
            let _lock = project.lock()?;
            debian::tool(&Shell::new()?, project, "docker-compose")?
        }
    };
    let app = App::load(&compose, project, source)?;
    let runs = match project.images.registry() {
        Some(_) => app_pulls::check(project, &app)?,
        None => local_images(project, &app)?,
    };
    Ok(app.resolve(runs))
}

/// The local reference of catalog entry `name` (an upstream image name), if
/// the catalog has one.
fn catalog_reference(project: &Project, name: &str) -> Option<String> {
    let entry = project.pins.catalog.get(name)?;
    images::tag(project, &entry.recipe)
        .ok()
        .map(|tag| images::reference(&entry.recipe, &tag))
}

/// Does catalog entry `name`'s recipe emulate Alpine (pins.yml `alpine: true`)?
fn emulates_apk(project: &Project, name: &str) -> bool {
    project
        .pins
        .catalog
        .get(name)
        .and_then(|entry| project.pins.images.get(&entry.recipe))
        .is_some_and(|image| image.alpine)
}

/// The WORKDIR the stand-in for catalog entry `name` ends its recipe in
/// (golang's /go, php's /var/www/html); None: `/`.
fn stand_in_workdir(project: &Project, name: &str) -> Option<String> {
    let recipe = &project.pins.catalog.get(name)?.recipe;
    let text = fs::read_to_string(images::recipe_dir(project, recipe).ok()?.join("Dockerfile")).ok()?;
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("WORKDIR "))
        .next_back()
        .map(|dir| dir.trim().to_string())
}

fn catalog_names(project: &Project) -> String {
    let catalog = &project.pins.catalog;
    let name = |key: &str| key.split_once(':').map_or(key, |(name, _)| name).to_string();
    // Entries only newer tags reach (`python-3.13` for `python:3.12`) are
    // not names an app writes.
    let reached: BTreeSet<String> = catalog
        .values()
        .filter_map(|e| e.newer.as_ref())
        .map(|n| name(&n.entry))
        .collect();
    let names: BTreeSet<String> = catalog
        .keys()
        .map(|key| name(key))
        .filter(|n| !reached.contains(n))
        .collect();
    names.into_iter().collect::<Vec<_>>().join(", ")
}

/// Check, before anything is built, that the local profile can build every
/// image of `app`: each Dockerfile's base images the build target needs are
/// in the catalog (and need nothing the stand-in lacks), and each service
/// with only `image:` has a catalog entry, whose local image it then runs.
/// Returns what runs in place of the named images, by service. Every problem
/// comes back at once, naming the file and line.
fn local_images(project: &Project, app: &App) -> Result<BTreeMap<String, Runs>> {
    let mut problems = Vec::new();
    let mut runs = BTreeMap::new();
    for service in &app.services {
        match &service.build {
            Some(build) => problems.extend(plan_problems(project, build)),
            None => match catalog_reference(project, &project.pins.catalog_key(&service.image)) {
                Some(local) => {
                    let stand_in = Runs {
                        image: Reference::parse(&local).context("a catalog image's local reference")?,
                        stands_in_for: service.image.clone(),
                    };
                    runs.insert(service.name.clone(), stand_in);
                }
                None => problems.push(format!(
                    "service `{}`: image `{}` has no `build:`, and no local image stands in for `{}` (the local profile builds every image from Debian packages and pulls nothing; its catalog: {})",
                    service.name,
                    service.image,
                    service.image.catalog_name(),
                    catalog_names(project)
                )),
            },
        }
    }
    if problems.is_empty() {
        return Ok(runs);
    }
    Err(compose::Invalid {
        file: app.file.clone(),
        problems,
    }
    .into())
}

/// The service's Dockerfile rewritten for the local profile.
/// The catalog recipes each of the app's images is built on (its Dockerfile's
/// substituted bases, or the recipe a catalog image is), by image: what its
/// SBOM lists.
pub fn base_recipes(project: &Project, app: &App) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out = BTreeMap::new();
    if project.images.registry().is_some() {
        // Nothing of the catalog: the SBOM lists the pulled images themselves.
        return Ok(out);
    }
    for service in &app.services {
        let recipes = match &service.build {
            Some(build) => dockerfile_plan(project, build)
                .map_err(|errs| anyhow::anyhow!("{}: {}", service.name, errs.join("; ")))?
                .substitutions
                .iter()
                .map(|sub| project.pins.catalog[&sub.entry].recipe.clone())
                .collect(),
            // A catalog image runs as the recipe's local reference.
            None => vec![app.image_of(service).catalog_name().to_string()],
        };
        out.insert(app.image_of(service).to_string(), recipes);
    }
    Ok(out)
}

/// What stops the service's Dockerfile from being planned, each line naming it.
pub fn plan_problems(project: &Project, build: &Build) -> Vec<String> {
    let path = build.context.join(&build.dockerfile);
    match dockerfile_plan(project, build) {
        Ok(_) => vec![],
        Err(errs) => errs.into_iter().map(|e| format!("{}: {e}", path.display())).collect(),
    }
}

pub fn dockerfile_plan(project: &Project, build: &Build) -> Result<dockerfile::Plan, Vec<String>> {
    let path = build.context.join(&build.dockerfile);
    let text = fs::read_to_string(&path).map_err(|e| vec![format!("cannot read it: {e}")])?;
    let registry = project.images.registry().is_some();
    let catalog = |asked: &Reference| {
        if registry {
            // The image itself, pulled: FROM names it by its normalized tag
            // in the builder's storage (`pull::ensure` keeps that tag on the
            // locked digest); whether it has apk is its own business.
            return Some(dockerfile::Local {
                reference: pull::local_name(asked),
                entry: pull::local_name(asked),
                apk: true,
                workdir: None,
            });
        }
        let entry = project.pins.catalog_key(asked);
        catalog_reference(project, &entry).map(|reference| dockerfile::Local {
            reference,
            apk: emulates_apk(project, &entry),
            workdir: stand_in_workdir(project, &entry),
            entry,
        })
    };
    let apk_names = project
        .pins
        .catalog
        .keys()
        .filter(|name| emulates_apk(project, name))
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    dockerfile::plan(
        &text,
        &build.args,
        build.target.as_deref(),
        &catalog,
        &catalog_names(project),
        &apk_names,
    )
}

/// The repository's own app.
pub fn default_app(project: &Project) -> Result<App> {
    load(project, &compose::Source::default())
}

/// `docker build` if a Docker engine answers within a few seconds, else buildah.
pub fn builder(sh: &Shell) -> Builder {
    let answered = which::which("docker").is_ok() && {
        let format = "{{.Server.Version}}";
        exec::probe(cmd!(sh, "timeout 5 docker version --format {format}")).is_some()
    };
    if answered {
        Builder::Docker
    } else {
        Builder::Buildah
    }
}

/// Build every service image of `app`; returns the image IDs by reference.
pub fn build(sh: &Shell, project: &Project, app: &App, builder: Builder) -> Result<BTreeMap<String, String>> {
    let pulled = match project.images.registry() {
        Some(registries) => app_pulls::pull_all(sh, project, app, registries)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", app.file.display()))?,
        None => BTreeMap::new(),
    };
    let mut ids = BTreeMap::new();
    let mut same_builds = BTreeMap::new();
    for service in &app.services {
        let id = match &service.build {
            Some(build) => {
                let image = service.image.as_str();
                build_one(sh, project, image, build, builder, &pulled, &mut same_builds)
                    .with_context(|| format!("{}: building service `{}`", app.file.display(), service.name))?
            }
            // An image pulled from its registry.
            None if project.images.registry().is_some() => {
                let asked = app.stands_in_for(service).unwrap_or(&service.image);
                let image = &pulled[&pull::local_name(asked)];
                to_builder(sh, project, &image.reference, builder)?;
                let (id, _) = inspect(sh, project, &image.reference, builder)?
                    .with_context(|| format!("{} is not in the builder's storage", image.reference))?;
                id
            }
            // A catalog image (load() resolved its local reference).
            None => {
                let image = app.image_of(service);
                let id = catalog_image(sh, project, image, builder)?;
                if let Some(asked) = app.stands_in_for(service) {
                    let entry = &project.pins.catalog_key(asked);
                    let what = serves(project, entry, image.as_str());
                    ui::note(format!(
                        "service `{}`: image {asked} -> local {entry}: {what}",
                        service.name
                    ));
                    let served = served_version(project, entry, image.as_str());
                    if let Some(note) = version_note(asked, &served_program(project, entry), served.as_deref()) {
                        ui::note(format!("service `{}`: {note}", service.name));
                    }
                }
                id
            }
        };
        ids.insert(app.image_of(service).to_string(), id);
    }
    if builder == Builder::Buildah {
        if let Err(e) = images::prune_buildah(sh, project) {
            ui::note(format!("buildah's storage was not pruned: {e:#}"));
        }
    }
    Ok(ids)
}

/// Build catalog image `reference` (a recipe's local reference) if needed,
/// hand it to the Docker engine if that builds, and return its ID.
fn catalog_image(sh: &Shell, project: &Project, reference: &Reference, builder: Builder) -> Result<String> {
    let recipe = reference.catalog_name();
    let base = local_base(sh, project, recipe, builder)?;
    let (id, _) =
        inspect(sh, project, &base, builder)?.with_context(|| format!("{base} is not in the builder's storage"))?;
    Ok(id)
}

/// Catalog recipe `recipe` built into the builder's storage; its reference.
fn local_base(sh: &Shell, project: &Project, recipe: &str, builder: Builder) -> Result<String> {
    let base = images::ensure_in_buildah(sh, project, recipe)?;
    to_builder(sh, project, &base, builder)?;
    Ok(base)
}

/// Hand `image` from buildah's storage to the builder, if that is not buildah.
fn to_builder(sh: &Shell, project: &Project, image: &str, builder: Builder) -> Result<()> {
    if builder == Builder::Docker {
        // The engine has no access to buildah's storage: hand it the image.
        buildah::run(
            sh,
            project,
            &["push", "--quiet", image, &format!("docker-daemon:{image}")],
        )?;
    }
    Ok(())
}

/// "FROM python:3.11-slim -> local python: Debian python3 3.11.2-1+b1".
fn served(project: &Project, sub: &dockerfile::Substitution, reference: &str) -> String {
    let what = serves(project, &sub.entry, reference);
    format!("FROM {} (line {}) -> local {}: {what}", sub.asked, sub.line, sub.entry)
}

/// What catalog entry `name`, built as `reference`, really serves.
fn serves(project: &Project, name: &str, reference: &str) -> String {
    let entry = &project.pins.catalog[name];
    let what = match entry.served() {
        Served::GoTool(tool) => {
            let version = project.pins.go.get(tool).map_or("", |t| t.version.as_str());
            format!("{tool} {version} (Go module)")
        }
        Served::GoRoot(toolchain) => {
            let version = project.pins.go_toolchains.get(toolchain).map_or("", |t| t.go_version());
            format!("Go {version} (the Go project's release build, from the Go module proxy)")
        }
        Served::Package(package) => {
            let image = project.pins.image(&entry.recipe).ok();
            let suite = image.map(|i| project.pins.suite_of(i)).unwrap_or_default();
            let version = images::package_version(project, reference, package).unwrap_or_else(|| "?".into());
            format!("Debian {suite} {package} {version}")
        }
        Served::PyPi(package) => {
            let version = fetched_version(project, &entry.recipe, "pypi", package).unwrap_or_else(|| "?".into());
            format!("{package} {version} (PyPI)")
        }
        Served::Npm(package) => {
            let version = fetched_version(project, &entry.recipe, "npm", package).unwrap_or_else(|| "?".into());
            format!("{package} {version} (npm)")
        }
    };
    match &entry.note {
        Some(note) => format!("{what} ({note})"),
        None => what,
    }
}

/// The version catalog entry `name`, built as `reference`, serves, as its
/// upstream numbers it (`3.11.2` of Debian's `3.11.2-1+b1`, `3.6.12` of `v3.6.12`).
fn served_version(project: &Project, name: &str, reference: &str) -> Option<String> {
    let entry = project.pins.catalog.get(name)?;
    let version = match entry.served() {
        Served::GoTool(tool) => project.pins.go.get(tool)?.version.clone(),
        Served::GoRoot(toolchain) => project.pins.go_toolchains.get(toolchain)?.go_version().to_string(),
        Served::Package(package) => images::package_version(project, reference, package)?,
        Served::PyPi(package) => fetched_version(project, &entry.recipe, "pypi", package)?,
        Served::Npm(package) => fetched_version(project, &entry.recipe, "npm", package)?,
    };
    Some(upstream_version(&version).to_string())
}

/// The version of package `package` of `registry` (`pypi`, `npm`) that
/// recipe `recipe` pins.
fn fetched_version(project: &Project, recipe: &str, registry: &str, package: &str) -> Option<String> {
    images::fetched_packages(project, recipe)
        .ok()?
        .into_iter()
        .find(|f| f.registry == registry && f.name.eq_ignore_ascii_case(package))
        .map(|f| f.version)
}

/// The program catalog entry `name` serves: its Debian package or Go tool.
fn served_program(project: &Project, name: &str) -> String {
    project
        .pins
        .catalog
        .get(name)
        .map_or_else(String::new, |entry| entry.served().name().to_string())
}

/// The upstream part of a Debian or Go version: no epoch, no Debian revision.
fn upstream_version(version: &str) -> &str {
    let version = version.split_once(':').map_or(version, |(_, v)| v);
    let version = version.strip_prefix('v').unwrap_or(version);
    version.split(['-', '~', '+']).next().unwrap_or(version)
}

/// Where `asked`'s tag names a version (`python:3.7-alpine`, `postgres:12`)
/// that the stand-in's `served` version is not, the line that says so.
fn version_note(asked: &Reference, program: &str, served: Option<&str>) -> Option<String> {
    // `latest`, `alpine`, `lts`: no version to compare
    let wanted = asked.tag_version()?;
    let served = served.unwrap_or("?");
    let same = wanted
        .split('.')
        .zip(served.split('.').chain(std::iter::repeat("")))
        .all(|(w, s)| w == s);
    (!same).then(|| {
        format!(
            "{asked} asks for {} {wanted}; the local stand-in serves {program} {served}",
            asked.familiar_name()
        )
    })
}

/// Whether `asked`'s tag names an older major version than `served`
/// (`node:14.4.0-alpine` served by 20.19.2; not `node:lts`, whose version
/// the tag does not say).
fn older_major(asked: &Reference, served: Option<&str>) -> bool {
    let major = |v: &str| v.split('.').next().and_then(|m| m.parse::<u32>().ok());
    match (asked.tag_version().as_deref().and_then(major), served.and_then(major)) {
        (Some(wanted), Some(served)) => wanted < served,
        _ => false,
    }
}

/// Build `image` from `build`. Services with the same build (a web app and
/// its worker, `build: .` twice) share one image, as Docker's build cache
/// gives them one: `same_builds` has each build's inputs and the image
/// first built from them, which the later ones are tagged from. Built
/// twice, they would differ wherever a build is not reproducible (a
/// package compiled in a random temporary folder), and a static VM would
/// carry both.
fn build_one(
    sh: &Shell,
    project: &Project,
    image: &str,
    build: &Build,
    builder: Builder,
    pulled: &BTreeMap<String, pull::Pulled>,
    same_builds: &mut BTreeMap<String, String>,
) -> Result<String> {
    let dockerfile_path = build.context.join(&build.dockerfile);
    let mut plan = dockerfile_plan(project, build)
        .map_err(|errs| anyhow::anyhow!("{}: {}", dockerfile_path.display(), errs.join("; ")))?;
    // The pulled bases, by digest: part of what the image is built from.
    let registry = project.images.registry().is_some();
    let mut bases = Vec::new();
    // Said once the build is known not to be another service's.
    let mut notes = Vec::new();
    for sub in plan.substitutions.iter().filter(|_| registry) {
        let base = &pulled[&sub.entry];
        to_builder(sh, project, &base.reference, builder)?;
        let path = project.rel(&dockerfile_path);
        notes.push(format!(
            "{}: FROM {} (line {}) -> {}",
            path.display(),
            sub.asked,
            sub.line,
            base.pinned()
        ));
        bases.push(format!("base={}", base.pinned()));
    }
    for sub in plan.substitutions.clone().iter().filter(|_| !registry) {
        let entry = &project.pins.catalog[&sub.entry];
        let base = local_base(sh, project, &entry.recipe, builder)?;
        let path = project.rel(&dockerfile_path);
        notes.push(format!("{}: {}", path.display(), served(project, sub, &base)));
        let served = served_version(project, &sub.entry, &base);
        let Ok(asked) = Reference::parse(&sub.asked) else {
            continue;
        };
        if let Some(note) = version_note(&asked, &served_program(project, &sub.entry), served.as_deref()) {
            notes.push(format!("{}: line {}: {note}", path.display(), sub.line));
        }
        if let Some(older) = entry.older.as_ref().filter(|_| older_major(&asked, served.as_deref())) {
            plan.set_env_after(sub, &older.env);
            let env: Vec<String> = older.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            notes.push(format!(
                "{}: line {}: ENV {} in that stage: {}",
                path.display(),
                sub.line,
                env.join(" "),
                older.why
            ));
        }
    }
    // The rewritten Dockerfile, beside the outputs (the context stays the user's).
    let rewritten = project
        .dist
        .join("dockerfiles")
        .join(format!("{}.Dockerfile", ui::slug(image)));
    fs::create_dir_all(rewritten.parent().expect("under dist"))?;
    files::write_if_changed(&rewritten, plan.dockerfile.as_bytes())?;
    let mut build_args: Vec<String> = build.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(target) = &build.target {
        build_args.push(format!("target={target}"));
    }
    build_args.push(format!("dockerfile={}", plan.dockerfile));
    build_args.extend(bases);
    let inputs = inputs_hash(&build.context, &build_args)?;
    if let Some(first) = same_builds.get(&inputs) {
        match builder {
            Builder::Buildah => buildah::run(sh, project, &["tag", first, image])?,
            Builder::Docker => exec::run(cmd!(sh, "docker tag {first} {image}"))?,
        }
        ui::note(format!(
            "app image {image}: the same build as {first}'s, tagged from it"
        ));
        return built_id(sh, project, image, &inputs, builder)?.context("the tagged image is not there");
    }
    same_builds.insert(inputs.clone(), image.to_string());
    notes.into_iter().for_each(ui::note);
    if let Some(id) = built_id(sh, project, image, &inputs, builder)? {
        ui::cached(format!("app image {image}"));
        return Ok(id);
    }
    let step = ui::step(format!(
        "app image {image} ({} with {builder:?})",
        project.rel(&build.context).display()
    ));
    let label = format!("{INPUTS_LABEL}={inputs}");
    let context = build.context.to_str().context("non-UTF-8 path")?;
    let file = rewritten.to_str().context("non-UTF-8 path")?;
    let mut arg_flags: Vec<String> = build
        .args
        .iter()
        .flat_map(|(k, v)| ["--build-arg".to_string(), format!("{k}={v}")])
        .collect();
    if let Some(target) = &build.target {
        arg_flags.extend(["--target".to_string(), target.clone()]);
    }
    let arg_flags: Vec<&str> = arg_flags.iter().map(String::as_str).collect();
    match builder {
        Builder::Buildah => {
            let mut args = vec![
                "bud",
                "--quiet",
                "--pull=never",
                "--isolation",
                "chroot",
                "--timestamp",
                "0",
            ];
            // RUN steps trust the host's certificate authorities (a TLS-inspecting
            // proxy's among them, as on this kind of machine), as `docker build`
            // behind such a proxy is set up to; nothing of it stays in the image.
            let cas = format!("{HOST_CAS}:{HOST_CAS}:ro");
            if Path::new(HOST_CAS).is_file() {
                args.extend(["--volume", &cas]);
            }
            args.extend(["--label", &label, "-f", file, "-t", image]);
            args.extend(&arg_flags);
            args.push(context);
            buildah::run(sh, project, &args)?;
        }
        Builder::Docker => {
            exec::run(cmd!(
                sh,
                "docker build --quiet --label {label} -f {file} -t {image} {arg_flags...} {context}"
            ))?;
        }
    }
    step.done_with("built");
    built_id(sh, project, image, &inputs, builder)?.context("the build finished but the image is not there")
}

/// Hash of the build context's files and the build arguments.
fn inputs_hash(context: &Path, build_args: &[String]) -> Result<String> {
    let args: String = build_args.iter().map(|a| format!("arg {a}\n")).collect();
    Ok(files::content_hash(&args, &files::tree_files(context)?, 8))
}

/// The ID of `image` if it exists and was built from `inputs`.
fn built_id(sh: &Shell, project: &Project, image: &str, inputs: &str, builder: Builder) -> Result<Option<String>> {
    let Some((id, labels)) = inspect(sh, project, image, builder)? else {
        return Ok(None);
    };
    Ok((labels[INPUTS_LABEL].as_str() == Some(inputs)).then_some(id))
}

/// The ID and labels of `image` in the builder's storage, if it is there.
fn inspect(sh: &Shell, project: &Project, image: &str, builder: Builder) -> Result<Option<(String, Value)>> {
    let inspect = match builder {
        Builder::Buildah => buildah::read(sh, project, &["inspect", "--type", "image", image]),
        Builder::Docker => exec::probe(cmd!(sh, "docker image inspect {image}")),
    };
    let Some(json) = inspect else { return Ok(None) };
    let v: Value = serde_json::from_str(&json).context("reading image inspect output")?;
    let v = if builder == Builder::Docker { &v[0] } else { &v };
    let (labels, id) = match builder {
        Builder::Buildah => (&v["OCIv1"]["config"]["Labels"], v["FromImageID"].as_str()),
        Builder::Docker => (&v["Config"]["Labels"], v["Id"].as_str()),
    };
    Ok(Some((id.unwrap_or_default().to_string(), labels.clone())))
}

/// `cargo xtask images`: build the app's images and save them (see [`save`]).
pub fn build_and_save(sh: &Shell, project: &Project, app: &App) -> Result<()> {
    let builder = builder(sh);
    let ids = build(sh, project, app, builder)?;
    save(sh, project, app, &ids, builder)
}

/// Save every image `app` uses as a `docker load`-able tarball in `dist/images/`,
/// reporting each one's size and layer count.
pub fn save(sh: &Shell, project: &Project, app: &App, ids: &BTreeMap<String, String>, builder: Builder) -> Result<()> {
    let images: Vec<(&str, &String)> = app
        .images()
        .into_iter()
        .map(|image| Ok((image.as_str(), built(app, ids, image.as_str())?)))
        .collect::<Result<_>>()?;
    let dir = project.dist.join("images");
    fs::create_dir_all(&dir)?;
    for (image, id) in images {
        let path = dir.join(compose::tarball_name(image));
        let stamp = path.with_extension("tar.id");
        if path.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(id.as_str()) {
            ui::cached(format!("tarball {}", project.rel(&path).display()));
        } else {
            let step = ui::step(format!("tarball {}", project.rel(&path).display()));
            let partial = path.with_extension("tar.partial");
            let _ = fs::remove_file(&partial);
            let _ = fs::remove_file(&stamp);
            let saved = match builder {
                Builder::Buildah => {
                    let dest = format!("docker-archive:{}:{image}", partial.display());
                    buildah::run(sh, project, &["push", "--quiet", image, &dest])
                }
                Builder::Docker => exec::run(cmd!(sh, "docker save --output {partial} {image}")),
            };
            if saved.is_err() {
                let _ = fs::remove_file(&partial);
            }
            saved.with_context(|| format!("saving {image}"))?;
            fs::rename(&partial, &path)?;
            fs::write(&stamp, id)?;
            step.done_with("saved");
        }
        let (size, layers) = (fs::metadata(&path)?.len(), layer_count(sh, &path)?);
        ui::note(format!("{image}: {:.1} MB, {layers} layer(s)", size as f64 / 1e6));
    }
    Ok(())
}

/// The ID of `image`, which must be one the app builds: the local profile
/// builds every image itself and pulls none.
pub fn built<'a>(app: &App, ids: &'a BTreeMap<String, String>, image: &str) -> Result<&'a String> {
    match ids.get(image) {
        Some(id) => Ok(id),
        None => cannot_pull(app, image),
    }
}

/// The error for an image the app uses but that was not built.
fn cannot_pull<T>(app: &App, image: &str) -> Result<T> {
    bail!(
        "{}: image `{image}` was not built (the local profile builds every image itself and cannot pull it)",
        app.file.display()
    )
}

/// Layers of a docker-archive tarball, from its manifest.json.
fn layer_count(sh: &Shell, tar: &Path) -> Result<usize> {
    let manifest =
        exec::read(cmd!(sh, "tar -xOf {tar} manifest.json")).context("reading manifest.json from the tarball")?;
    let v: Value = serde_json::from_str(&manifest).context("manifest.json of the tarball")?;
    Ok(v[0]["Layers"].as_array().map_or(0, Vec::len))
}

/// The app as unit tests read it: through the real docker-compose, which a
/// unit test takes from the user's cache (it has no cache of its own),
/// unpacked there at most once per test run. Once unpacked, it is read
/// without the cache's lock (it appears whole, by a rename), so unit tests
/// do not wait for a build that holds the lock.
#[cfg(test)]
pub mod testing {
    use std::{path::PathBuf, sync::OnceLock};

    use super::*;

    pub fn compose() -> PathBuf {
        static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
        PROGRAM
            .get_or_init(|| {
                let project = Project::new(false).unwrap();
                let (_, program) = debian::tool_place(&project, "docker-compose").unwrap();
                if program.is_file() {
                    return program;
                }
                let _lock = project.lock().unwrap();
                debian::tool(&Shell::new().unwrap(), &project, "docker-compose").unwrap()
            })
            .clone()
    }

    pub fn load(source: &compose::Source) -> App {
        App::load(&compose(), &crate::base::project::for_tests(), source).unwrap()
    }

    pub fn default_app() -> App {
        load(&compose::Source::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_asking_for_another_version_is_said() {
        let note = |asked: &str, served| version_note(&Reference::parse(asked).unwrap(), "python3", served);
        assert_eq!(
            note("python:3.7-alpine", Some("3.11.2")).unwrap(),
            "python:3.7-alpine asks for python 3.7; the local stand-in serves python3 3.11.2"
        );
        assert_eq!(
            version_note(
                &Reference::parse("alpine:3.20").unwrap(),
                "busybox-static",
                Some("1.37.0")
            )
            .unwrap(),
            "alpine:3.20 asks for alpine 3.20; the local stand-in serves busybox-static 1.37.0",
            "naming what is served where the image is not one program (Alpine Linux: BusyBox)"
        );
        assert_eq!(
            note("python:3.11-slim", Some("3.11.2")),
            None,
            "a prefix of what is served"
        );
        assert_eq!(note("traefik:v3.6", Some("3.6.12")), None);
        assert!(note("python:3.1", Some("3.11.2")).is_some(), "3.1 is not 3.11");
        assert_eq!(note("node:lts", Some("18.20.4")), None, "no version asked");
        assert_eq!(note("redis", Some("8.0.2")), None);
        assert_eq!(upstream_version("1:1.26.3-3+deb13u10"), "1.26.3");
        assert_eq!(upstream_version("v3.6.12"), "3.6.12");
        assert_eq!(upstream_version("2:1.24~2"), "1.24");
    }

    #[test]
    fn the_repo_catalogs_newer_entries_serve_what_they_say() {
        // `newer.than` is the version the entry's recipe locks, and the entry
        // it names locks a later one: tags between them get the later one.
        let project = crate::base::project::for_tests();
        let locked = |entry: &str| {
            let entry = &project.pins.catalog[entry];
            match entry.served() {
                Served::GoRoot(name) => project.pins.go_toolchains[name].go_version().to_string(),
                Served::Npm(package) => fetched_version(&project, &entry.recipe, "npm", package).unwrap(),
                Served::Package(package) => {
                    let debs = project.lock.image(&entry.recipe).unwrap();
                    let deb = debs.iter().find(|d| d.package == package).unwrap();
                    upstream_version(&deb.version).to_string()
                }
                other => panic!("{other:?}"),
            }
        };
        let mut seen = 0;
        for (name, entry) in &project.pins.catalog {
            let Some(newer) = &entry.newer else { continue };
            seen += 1;
            let served = locked(name);
            assert!(
                served == newer.than || served.starts_with(&format!("{}.", newer.than)),
                "{name}: {served} is not {}",
                newer.than
            );
            let later = locked(&newer.entry);
            let minor: String = later.split('.').take(2).collect::<Vec<_>>().join(".");
            assert!(newer.takes(&minor), "{name}: {} serves {later}", newer.entry);
        }
        assert!(seen >= 7, "python's, golang's and node's entries send newer tags on");
    }

    #[test]
    fn only_a_tag_naming_an_older_major_is_older() {
        let older = |asked: &str| older_major(&Reference::parse(asked).unwrap(), Some("18.20.4"));
        assert!(older("node:14.4.0-alpine"));
        assert!(older("node:17.0.1-bullseye-slim"));
        assert!(!older("node:18-alpine"), "the same major");
        assert!(!older("node:20"), "newer");
        assert!(!older("node:lts-buster-slim"), "no version asked");
        assert!(!older("node"));
        assert!(
            !older_major(&Reference::parse("node:14").unwrap(), None),
            "nothing known served"
        );
    }

    use crate::base::testdir::TestDir;

    #[test]
    fn inputs_hash_follows_files_and_args() {
        let dir = TestDir::new("apps");
        fs::write(dir.join("index.html"), "a").unwrap();
        let one = inputs_hash(&dir, &["X=1".into()]).unwrap();
        assert_eq!(one, inputs_hash(&dir, &["X=1".into()]).unwrap());
        assert_ne!(one, inputs_hash(&dir, &["X=2".into()]).unwrap());
        fs::write(dir.join("index.html"), "b").unwrap();
        assert_ne!(one, inputs_hash(&dir, &["X=1".into()]).unwrap());
    }
}
