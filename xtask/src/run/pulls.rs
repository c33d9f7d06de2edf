//! The suite's test of `--images registry`: a real registry on this machine
//! (Debian's docker-registry) holding an image no stand-in resembles (busybox
//! httpd serving a page, on no base at all), made here for the purpose and
//! pushed under the test's own names: once with gzip layers, named by its
//! `127.0.0.1:PORT/...` reference, once with zstd layers, named as a Docker Hub
//! image reached through `--registry-mirror`, by tag and by digest. Its last
//! layer deletes a file of the layer below (a whiteout). An app runs all
//! three and builds on the first.

use std::{collections::BTreeMap, fs, path::Path, time::Duration};

use anyhow::{bail, ensure, Context, Result};
use xshell::Shell;

use crate::{
    app::compose,
    base::{
        http,
        origin::{Images, Registries},
        project::Project,
        reference::Reference,
        ui,
    },
    building::{
        app_pulls,
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

/// The login of the second registry, which asks for one: user `xtask`,
/// password `not-a-secret` (bcrypt, as docker-registry's htpasswd wants it,
/// computed once with a fixed salt), and the same in an auth file
/// (`base64("xtask:not-a-secret")`).
const HTPASSWD: &str = "xtask:$2b$04$xtasktestsaltxtasktese4ZVSJMWb1I4jlAOjisrVbNAdk0jdn2O\n";
const AUTH: &str = "eHRhc2s6bm90LWEtc2VjcmV0";

/// Build the image, push it, boot the app on it with `--images registry`
/// under each method, then check the app's image lock (a tag pushed again is
/// not followed until `cargo xtask lock` re-resolves it) and the errors a
/// pull can end with: no such tag, a locked digest gone, no linux/amd64
/// image, a login refused.
pub fn run(sh: &Shell, project: &Project, boot: &dyn Fn(Method) -> test_boot::Options) -> Result<()> {
    let dir = project.dist.join("registry-pulls");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let mut local = registry::Local::start(project, &dir.join("registry.log"))?;
    let host = local.address.host.clone();
    let result = pulls(sh, project, boot, &dir, &host);
    local.stop();
    result?;
    logins(sh, project, &dir)
}

/// A registry that asks for a login: a pull without credentials is one
/// error saying so, and with the user's auth file it resolves.
fn logins(sh: &Shell, project: &Project, dir: &Path) -> Result<()> {
    let htpasswd = dir.join("htpasswd");
    fs::write(&htpasswd, HTPASSWD)?;
    let mut local = registry::Local::start_with(project, &dir.join("registry-login.log"), Some(&htpasswd))?;
    let host = local.address.host.clone();
    let result = (|| -> Result<()> {
        let with_login = dir.join("auth.json");
        fs::write(
            &with_login,
            format!("{{\"auths\": {{\"{host}\": {{\"auth\": \"{AUTH}\"}}}}}}\n"),
        )?;
        let without = dir.join("no-auth.json");
        fs::write(&without, "{\"auths\": {}}\n")?;
        let login = Registries {
            auth_file: Some(with_login),
            ..Registries::default()
        };
        let private = Reference::parse(&format!("{host}/private/pages:1"))?;
        let image = make_image(sh, project, dir, "pages behind a login")?;
        pull::push(project, &login, &image, &private, false)?;
        let anonymous = Registries {
            auth_file: Some(without),
            ..Registries::default()
        };
        fails_naming(
            pull::resolve(project, &anonymous, &private),
            &[private.as_str(), "unauthorized"],
            "the error for a registry that wants a login",
        )?;
        pull::resolve(project, &login, &private).context("resolving with the login in the auth file")?;
        Ok(())
    })();
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
    // The test pushes to the registry it started: no login, plain HTTP.
    let pushing = Registries::default();
    pull::push(project, &pushing, &first, &direct, false)?;
    let zstd_digest = pull::push(project, &pushing, &first, &mirrored, true)?;
    let pinned = Reference::parse(&format!("{HUB_NAME}@{zstd_digest}"))?;
    let app_file = write_app(dir, &direct, &pinned)?;

    let mut pulling = Project::new(project.install)?;
    pulling.images = Images::Registry(Registries {
        mirror: Some(host.to_string()),
        ..Registries::default()
    });
    let source = compose::Source {
        files: vec![app_file.clone()],
        ..Default::default()
    };
    let app = apps::load(&pulling, &source)?;
    for method in [Method::Static, Method::Native, Method::Dynamic] {
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
    // The static VM's SBOM names each pulled image by its locked digest.
    let sbom = fs::read_to_string(pulling.dist.join("compose-static.spdx.json"))?;
    let direct_digest = &locked.images[&direct.normalized()];
    let listed = format!("{}@{direct_digest}", direct.name());
    ensure!(
        sbom.contains(&listed),
        "compose-static.spdx.json does not list {listed}"
    );
    let before = apps::build(sh, &pulling, &app, Builder::Buildah)?;
    let second = make_image(sh, project, dir, "pages pushed again")?;
    pull::push(project, &pushing, &second, &direct, false)?;
    let again = apps::build(sh, &pulling, &app, Builder::Buildah)?;
    same_image(&before, &again, direct.as_str(), true)?;
    app_pulls::relock(&pulling, &app)?;
    let relocked = apps::build(sh, &pulling, &app, Builder::Buildah)?;
    same_image(&before, &relocked, direct.as_str(), false)?;
    ui::note("registry pulls: a tag pushed again was kept at its locked digest until `lock` re-resolved it");

    // A tag the registry does not have: one error naming the image.
    let absent = Reference::parse(&format!("{host}/{REPOSITORY}:absent"))?;
    fails_naming(
        pull::resolve(&pulling, pulling.images.registry().expect("registry"), &absent),
        &[absent.as_str(), "manifest unknown"],
        "the error for a missing tag",
    )?;
    // A locked digest the registry no longer serves (its manifest deleted),
    // not yet pulled: one error naming the image and the command that locks.
    let gone = Reference::parse(&format!("{host}/{REPOSITORY}-gone:1"))?;
    let gone_digest = pull::push(project, &pushing, &second, &gone, false)?;
    let gone_dir = dir.join("gone");
    fs::create_dir_all(&gone_dir)?;
    let gone_file = gone_dir.join("gone.yml");
    fs::write(&gone_file, format!("services:\n  gone:\n    image: {gone}\n"))?;
    let gone_app = apps::load(
        &pulling,
        &compose::Source {
            files: vec![gone_file],
            ..Default::default()
        },
    )?;
    app_pulls::relock(&pulling, &gone_app)?;
    delete_manifest(host, &format!("{REPOSITORY}-gone"), &gone_digest)?;
    fails_naming(
        apps::build(sh, &pulling, &gone_app, Builder::Buildah),
        &[gone.as_str(), "cargo xtask lock --images registry"],
        "the error for a locked digest the registry lost",
    )?;

    // An image with no linux/amd64 variant: an index that lists only arm64.
    let arm_only = Reference::parse(&format!("{host}/{REPOSITORY}:arm64-only"))?;
    let list = "localhost/xtask-test-arm64-only:latest";
    let _ = buildah::read(sh, project, &["manifest", "rm", list]);
    buildah::run(sh, project, &["manifest", "create", list])?;
    buildah::run(
        sh,
        project,
        &["manifest", "add", "--os", "linux", "--arch", "arm64", list, &first],
    )?;
    let target = format!("docker://{arm_only}");
    let pushed = buildah::run(
        sh,
        project,
        &[
            "manifest",
            "push",
            "--quiet",
            "--all",
            "--tls-verify=false",
            list,
            &target,
        ],
    );
    let _ = buildah::read(sh, project, &["manifest", "rm", list]);
    pushed?;
    fails_naming(
        pull::resolve(&pulling, pulling.images.registry().expect("registry"), &arm_only),
        &[arm_only.as_str(), "architecture amd64"],
        "the error for an image without linux/amd64",
    )?;
    Ok(())
}

/// `result` must be an error whose text holds every one of `needles`;
/// `what` says which error, for the failure message.
fn fails_naming<T: std::fmt::Debug>(result: Result<T>, needles: &[&str], what: &str) -> Result<()> {
    match result {
        Ok(value) => bail!("{what}: expected an error, got {value:?}"),
        Err(e) => {
            let said = format!("{e:#}");
            ensure!(needles.iter().all(|n| said.contains(n)), "{what}: {said}");
            Ok(())
        }
    }
}

/// Delete manifest `digest` of `repository` from the registry at `host`
/// (`HOST:PORT`), as a registry that stopped serving it.
fn delete_manifest(host: &str, repository: &str, digest: &str) -> Result<()> {
    let addr: std::net::SocketAddr = host.parse().with_context(|| format!("{host} is not IP:PORT"))?;
    let path = format!("/v2/{repository}/manifests/{digest}");
    let answer = http::send(
        addr,
        "DELETE",
        host,
        &path,
        None,
        http::Body::Empty,
        Duration::from_secs(10),
    )?;
    ensure!(answer.status == 202, "DELETE {path}: HTTP {}", answer.status);
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
/// last layer deletes. Returns its name in buildah's storage. (Not a named
/// stage `FROM {init} AS busybox`: with `--layers`, buildah 1.28 leaves that
/// stage's working container behind, a copy of the image in its vfs storage.)
fn make_image(sh: &Shell, project: &Project, dir: &Path, page: &str) -> Result<String> {
    let init = images::ensure_in_buildah(sh, project, "init")?;
    let context = dir.join("image");
    fs::create_dir_all(&context)?;
    fs::write(context.join("index.html"), format!("<h1>{page}</h1>\n"))?;
    fs::write(context.join("gone.html"), "deleted by the layer above\n")?;
    fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM scratch\n\
             COPY --from={init} /usr/bin/busybox /bin/busybox\n\
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

/// The app: the image by its registry reference, by its Docker Hub name,
/// by that name pinned to a digest, and an image built on it; each
/// publishes its port.
fn write_app(dir: &Path, direct: &Reference, pinned: &Reference) -> Result<std::path::PathBuf> {
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
               pinned:\n    image: {pinned}\n    ports: [\"8084:80\"]\n  \
               built:\n    build: ./built\n    ports: [\"8083:80\"]\n"
        ),
    )?;
    Ok(file)
}
