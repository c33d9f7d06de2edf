//! The suite's test of `--images registry`: a real registry on this machine
//! (Debian's docker-registry) holding an image no stand-in resembles (busybox
//! httpd serving a page, on no base at all), made here for the purpose and
//! pushed under the test's own names: once with gzip layers, named by its
//! `127.0.0.1:PORT/...` reference, once with zstd layers, named as a Docker Hub
//! image reached through `--registry-mirror`. Its last layer deletes a file of
//! the layer below (a whiteout). An app runs both and builds on the first.

use std::{collections::BTreeMap, fs, path::Path};

use anyhow::{bail, ensure, Context, Result};
use xshell::Shell;

use crate::{
    app::compose,
    base::{
        origin::{Images, Registries},
        project::Project,
        reference::Reference,
        ui,
    },
    building::{
        apps::{self, Builder},
        buildah, images, pull,
    },
    run::{registry, test_boot},
    vm::method::Method,
};

/// The test's own names for its image, on the registry it starts.
const REPOSITORY: &str = "xtask-test/pages";
/// As a Docker Hub name (`docker.io/library/xtask-pages`), through the mirror.
const HUB_NAME: &str = "xtask-pages";

/// Build the image, push it, boot the app on it with `--images registry`
/// under each of `methods`, then check the app's image lock: a tag pushed
/// again is not followed until `cargo xtask lock` re-resolves it.
pub fn run(sh: &Shell, project: &Project, boot: &dyn Fn(Method) -> test_boot::Options) -> Result<()> {
    let dir = project.dist.join("registry-pulls");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let mut local = registry::Local::start(project, &dir.join("registry.log"))?;
    let host = local.address.host.clone();
    let result = pulls(sh, project, boot, &dir, &host);
    local.stop();
    result
}

fn pulls(
    sh: &Shell,
    project: &Project,
    boot: &dyn Fn(Method) -> test_boot::Options,
    dir: &Path,
    host: &str,
) -> Result<()> {
    let direct = Reference::parse(&format!("{host}/{REPOSITORY}:1"))?;
    let mirrored = Reference::parse(&format!("{host}/library/{HUB_NAME}:1"))?;
    let first = make_image(sh, project, dir, "pages from a registry")?;
    pull::push(sh, project, &first, &direct, false)?;
    pull::push(sh, project, &first, &mirrored, true)?;
    let app_file = write_app(dir, &direct)?;

    let mut pulling = Project::new(project.install)?;
    pulling.images = Images::Registry(Registries {
        mirror: Some(host.to_string()),
        insecure: vec![],
    });
    let source = compose::Source {
        files: vec![app_file.clone()],
        ..Default::default()
    };
    let app = apps::load(&pulling, &source)?;
    for method in [Method::Static, Method::Native] {
        test_boot::run(sh, &pulling, &boot(method), &app)?;
    }

    // The lock holds what was pulled; the tag moving on does not move it.
    let lock_file = pull::lock_path(&app_file);
    let locked = pull::AppLock::load(&lock_file)?;
    for reference in [direct.normalized(), format!("docker.io/library/{HUB_NAME}:1")] {
        ensure!(
            locked.images.contains_key(&reference),
            "{}: {reference} is not locked",
            lock_file.display()
        );
    }
    let before = apps::build(sh, &pulling, &app, Builder::Buildah)?;
    let second = make_image(sh, project, dir, "pages pushed again")?;
    pull::push(sh, project, &second, &direct, false)?;
    let again = apps::build(sh, &pulling, &app, Builder::Buildah)?;
    same_image(&before, &again, direct.as_str(), true)?;
    apps::relock(sh, &pulling, &app)?;
    let relocked = apps::build(sh, &pulling, &app, Builder::Buildah)?;
    same_image(&before, &relocked, direct.as_str(), false)?;
    ui::note("registry pulls: a tag pushed again was kept at its locked digest until `lock` re-resolved it");

    // A tag the registry does not have: one error naming the image.
    let absent = Reference::parse(&format!("{host}/{REPOSITORY}:absent"))?;
    match pull::resolve(sh, &pulling, pulling.images.registry().expect("registry"), &absent) {
        Ok(digest) => bail!("{absent} resolved to {digest}, but it was never pushed"),
        Err(e) => {
            let said = format!("{e:#}");
            ensure!(
                said.contains(absent.as_str()) && said.contains("manifest unknown"),
                "the error for a missing tag: {said}"
            );
        }
    }
    Ok(())
}

/// Whether `image` has the same ID in both builds, as `same` says it must.
fn same_image(one: &BTreeMap<String, String>, two: &BTreeMap<String, String>, image: &str, same: bool) -> Result<()> {
    let (a, b) = (&one[image], &two[image]);
    ensure!(
        (a == b) == same,
        "image {image}: {a} then {b}: expected {}",
        if same {
            "the locked image both times"
        } else {
            "the re-resolved image"
        }
    );
    Ok(())
}

/// Build the test image serving `page`: busybox (from the VM's own init
/// image, which is all of Debian's busybox-static), the page, and a file the
/// last layer deletes. Returns its name in buildah's storage.
fn make_image(sh: &Shell, project: &Project, dir: &Path, page: &str) -> Result<String> {
    let init = images::ensure_in_buildah(sh, project, "init")?;
    let context = dir.join("image");
    fs::create_dir_all(&context)?;
    fs::write(context.join("index.html"), format!("<h1>{page}</h1>\n"))?;
    fs::write(context.join("gone.html"), "deleted by the layer above\n")?;
    fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {init} AS busybox\n\
             FROM scratch\n\
             COPY --from=busybox /usr/bin/busybox /bin/busybox\n\
             COPY index.html gone.html /www/\n\
             RUN [\"/bin/busybox\", \"rm\", \"/www/gone.html\"]\n\
             EXPOSE 80\n\
             ENTRYPOINT [\"/bin/busybox\", \"httpd\", \"-f\", \"-v\", \"-p\", \"80\", \"-h\", \"/www\"]\n"
        ),
    )?;
    let name = "localhost/xtask-test-pages:latest";
    let context = context.to_str().context("non-UTF-8 path")?;
    buildah::run(
        sh,
        project,
        &[
            "bud",
            "--quiet",
            "--layers",
            "--pull=never",
            "--isolation",
            "chroot",
            "--timestamp",
            "0",
            "-t",
            name,
            context,
        ],
    )?;
    Ok(name.to_string())
}

/// The app: the image by its registry reference, by its Docker Hub name, and
/// an image built on it; each publishes its port.
fn write_app(dir: &Path, direct: &Reference) -> Result<std::path::PathBuf> {
    let built = dir.join("built");
    fs::create_dir_all(&built)?;
    fs::write(
        built.join("Dockerfile"),
        format!("FROM {direct}\nCOPY index.html /www/index.html\n"),
    )?;
    fs::write(built.join("index.html"), "<h1>built on a pulled image</h1>\n")?;
    let file = dir.join("pulls.yml");
    fs::write(
        &file,
        format!(
            "name: registry-pulls\n\
             services:\n  \
               direct:\n    image: {direct}\n    ports: [\"8081:80\"]\n  \
               mirrored:\n    image: {HUB_NAME}:1\n    ports: [\"8082:80\"]\n  \
               built:\n    build: ./built\n    ports: [\"8083:80\"]\n"
        ),
    )?;
    Ok(file)
}
