//! buildah, daemonless, on the project's own storage in the cache (`vfs`: no
//! kernel overlay support needed; chroot isolation: no user namespaces).
//! Every buildah call of the build goes through here.

use std::path::Path;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::base::{exec, project::Project};

/// The host's CA bundle (Debian's path, which Debian's pip, Go, curl and
/// cargo read), bound over the image's own in RUN steps that fetch.
pub const HOST_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Build the Dockerfile in `context` as `reference`; with `host_cas`, its RUN
/// steps trust the host's certificate authorities (this kind of machine's
/// network inspects TLS), and nothing of them stays in the image.
pub fn build(sh: &Shell, project: &Project, context: &Path, reference: &str, host_cas: bool) -> Result<()> {
    let context = context.to_str().context("non-UTF-8 path")?;
    let file = format!("{context}/Dockerfile");
    let cas = format!("{HOST_CAS}:{HOST_CAS}:ro");
    let mut args = vec!["bud", "--quiet", "--isolation", "chroot", "--timestamp", "0"];
    if host_cas && Path::new(HOST_CAS).is_file() {
        args.extend(["--volume", &cas]);
    }
    args.extend(["-f", &file, "-t", reference, context]);
    run(sh, project, &args)
}

/// Write `image` as an OCI image layout at `layout` (what `linuxkit cache import` takes).
pub fn push_oci(sh: &Shell, project: &Project, image: &str, layout: &Path) -> Result<()> {
    run(
        sh,
        project,
        &["push", "--quiet", image, &format!("oci:{}", layout.display())],
    )
}

/// Run buildah on the project's own storage (vfs: no kernel overlay support needed).
pub fn run(sh: &Shell, project: &Project, args: &[&str]) -> Result<()> {
    exec::run(buildah_cmd(sh, project, args)).with_context(|| format!("buildah {}", args.first().unwrap_or(&"")))
}

/// [`run`] as a question: its standard output if it succeeds.
pub fn read(sh: &Shell, project: &Project, args: &[&str]) -> Option<String> {
    exec::probe(buildah_cmd(sh, project, args))
}

fn buildah_cmd<'a>(sh: &'a Shell, project: &Project, args: &[&str]) -> xshell::Cmd<'a> {
    let store = project.cache_path("buildah");
    let (root, runroot) = (store.join("root"), store.join("run"));
    cmd!(
        sh,
        "buildah --root {root} --runroot {runroot} --storage-driver vfs {args...}"
    )
}
