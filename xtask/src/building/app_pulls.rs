//! The app with `--images registry`: which image references it pulls (its
//! image-only services' images, the bases its builds need), checked before
//! anything is pulled; the app's image lock kept (resolve what it lacks, never
//! what it has; `cargo xtask lock` re-resolves all); and every image pulled
//! before anything is built. The registry client itself is `pull`.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::{
    app::compose::{self, App, Runs},
    base::{origin::Registries, project::Project, reference::Reference, ui},
    building::{
        apps::{dockerfile_plan, plan_problems},
        pull,
    },
};

/// Check, before anything is pulled or built, that every image of `app` can
/// come from its registry: each Dockerfile plans (its stages, build args and
/// target) and names references that parse. Every problem comes back at once.
/// Returns what runs for the services that name an image by digest: the
/// pulled image under its local tag (a tag is what image tarballs and the
/// engine's image store know an image by); the others run as named.
pub fn check(project: &Project, app: &App) -> Result<BTreeMap<String, Runs>> {
    let mut problems = Vec::new();
    let mut runs = BTreeMap::new();
    for service in &app.services {
        match &service.build {
            Some(build) => problems.extend(plan_problems(project, build)),
            None if service.image.digest().is_some() => {
                let local =
                    Reference::parse(&pull::local_name(&service.image)).context("a pulled image's local tag")?;
                runs.insert(
                    service.name.clone(),
                    Runs {
                        image: local,
                        stands_in_for: service.image.clone(),
                    },
                );
            }
            None => {}
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

/// The image references `service` pulls: its image if it has no `build:`
/// (as written, where a local tag runs in its place), else the bases (`FROM`,
/// `COPY --from=IMAGE`) its build target needs.
fn service_references(project: &Project, app: &App, service: &compose::Service) -> Result<Vec<Reference>> {
    match &service.build {
        Some(build) => dockerfile_plan(project, build)
            .map_err(|errs| anyhow::anyhow!("{}: {}", service.name, errs.join("; ")))?
            .substitutions
            .iter()
            .map(|sub| Reference::parse(&sub.asked).map_err(|e| anyhow::anyhow!("`{}` {e}", sub.asked)))
            .collect(),
        None => Ok(vec![app.stands_in_for(service).unwrap_or(&service.image).clone()]),
    }
}

/// Every image reference `app` pulls ([`service_references`] of each
/// service), once each, in the order met.
fn references(project: &Project, app: &App) -> Result<Vec<Reference>> {
    let mut refs: Vec<Reference> = Vec::new();
    for service in &app.services {
        for r in service_references(project, app, service)? {
            if !refs.iter().any(|known| pull::local_name(known) == pull::local_name(&r)) {
                refs.push(r);
            }
        }
    }
    Ok(refs)
}

/// Pull every image `app` names (see [`references`]) by its digest: the one
/// written in the reference, else the one the app's image lock records; a tag
/// the lock lacks is resolved now and added to it, a locked one is never
/// resolved again. Every reference is resolved (or fails, all of them said
/// at once) before anything is pulled. Returns each pulled image by its
/// local name ([`pull::local_name`]).
pub fn pull_all(
    sh: &Shell,
    project: &Project,
    app: &App,
    registries: &Registries,
) -> Result<BTreeMap<String, pull::Pulled>> {
    let path = pull::lock_path(&app.file);
    let mut lock = pull::AppLock::load(&path)?;
    let mut added = Vec::new();
    let mut plan = Vec::new();
    let mut problems = Vec::new();
    for reference in references(project, app)? {
        let digest = match lock.pinned(&reference) {
            Some(digest) => digest,
            None => {
                let key = reference.normalized();
                let step = ui::step(format!("resolve {reference}"));
                match pull::resolve(project, registries, &reference) {
                    Ok(digest) => {
                        step.done_with(&digest);
                        added.push(format!("{key}: {digest}"));
                        lock.images.insert(key, digest.clone());
                        digest
                    }
                    Err(e) => {
                        problems.push(format!("{e:#}"));
                        continue;
                    }
                }
            }
        };
        plan.push((reference, digest));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    if !added.is_empty() {
        lock.save(&path)?;
        ui::note(format!("{}: locked {}", project.rel(&path).display(), added.join(", ")));
    }
    let mut pulled = BTreeMap::new();
    for (reference, digest) in plan {
        let image = pull::ensure(sh, project, registries, &reference, &digest).with_context(|| {
            format!(
                "{}: `cargo xtask lock --images registry` re-resolves what it locks",
                project.rel(&path).display()
            )
        })?;
        pulled.insert(image.reference.clone(), image);
    }
    Ok(pulled)
}

/// The pulled images each of the app's images is (image-only services) or
/// is built on (`true`), by the image that runs, each as `NAME@DIGEST` (what
/// its SBOM lists).
pub fn bases(project: &Project, app: &App) -> Result<BTreeMap<String, (bool, Vec<String>)>> {
    let path = pull::lock_path(&app.file);
    let lock = pull::AppLock::load(&path)?;
    let pinned = |reference: Reference| -> Result<String> {
        let digest = lock
            .pinned(&reference)
            .with_context(|| format!("{}: no digest for {reference}", project.rel(&path).display()))?;
        Ok(format!("{}@{digest}", reference.name()))
    };
    let mut out = BTreeMap::new();
    for service in &app.services {
        let bases = service_references(project, app, service)?
            .into_iter()
            .map(pinned)
            .collect::<Result<Vec<_>>>()?;
        out.insert(app.image_of(service).to_string(), (service.build.is_some(), bases));
    }
    Ok(out)
}

/// `cargo xtask lock --images registry`: resolve every image tag of `app`
/// again at its registry and write its image lock, saying what changed.
pub fn relock(project: &Project, app: &App) -> Result<()> {
    let registries = project
        .images
        .registry()
        .context("the app's image lock is only written with --images registry")?;
    let path = pull::lock_path(&app.file);
    let old = pull::AppLock::load(&path)?;
    let mut new = pull::AppLock::default();
    for reference in references(project, app)? {
        let Some(key) = pull::lock_key(&reference) else {
            continue; // pinned by the digest it is written with
        };
        let step = ui::step(format!("resolve {reference}"));
        let digest = pull::resolve(project, registries, &reference)?;
        step.done_with(&digest);
        match old.images.get(&key) {
            Some(was) if *was != digest => println!("{key}: {was} -> {digest}"),
            None => println!("{key}: new, {digest}"),
            _ => {}
        }
        new.images.insert(key, digest);
    }
    for key in old.images.keys().filter(|k| !new.images.contains_key(*k)) {
        println!("{key}: no longer used, removed");
    }
    if new.save(&path)? {
        ui::note(format!("wrote {}", project.rel(&path).display()));
    } else {
        ui::note(format!("{} is current", project.rel(&path).display()));
    }
    Ok(())
}
