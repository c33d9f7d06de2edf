//! Deployable images of a built VM: its kernel, initrd and command line (what
//! `linuxkit build` wrote to dist/, as LinuxKit's `tar-kernel-initrd` gives
//! them) assembled with host tools into a raw disk, a qcow2 disk or an ISO.
//! Which formats there are and how each boots (`format`), what the image is
//! laid out as (`layout`), the limits a VM must fit before anything is made
//! (`limits`), and the host programs that make it (`assemble`).
pub mod assemble;
pub mod format;
pub mod layout;
pub mod limits;

pub use format::{Firmware, Format, Medium};

use anyhow::Result;
use xshell::Shell;

use crate::{base::project::Project, vm::linuxkit::Artifacts, vm::sums};

/// After a build of VM `vm` into `built`: make its `format` in dist/ (nothing
/// for `kernel+initrd`), and list it in dist/SHA256SUMS.
pub fn build(sh: &Shell, project: &Project, vm: &str, built: &Artifacts, format: Format) -> Result<()> {
    let input = assemble::Input::of(vm, built);
    if assemble::build(sh, project, format, &input)?.is_some() {
        sums::write(project)?;
    }
    Ok(())
}
