//! Child processes that never outlive the xtask (QEMU, the registry).

use std::{os::unix::process::CommandExt, process::Command};

/// Have the kernel SIGKILL the child when the xtask dies, however it dies
/// (PR_SET_PDEATHSIG), so not even a SIGKILL of the xtask leaves it behind.
pub fn dies_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: the closure runs between fork and exec and only calls prctl(2),
    // which is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}
