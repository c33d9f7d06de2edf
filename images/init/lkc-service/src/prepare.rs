//! Applying a bundle's runtime.json before `crun run`: cgroup directories,
//! mounts and mkdirs. The syscall wrappers here are deliberately thin; the
//! decisions live in `runtime` and `mountopts`.

use crate::mountopts::{overlay_dirs, plan, MountCall};
use crate::runtime::{Mount, Runtime};
use std::ffi::CString;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// Read and apply `bundle/runtime.json`. A missing file means nothing to do.
pub fn prepare(bundle: &Path) -> Result<(), String> {
    let file = bundle.join("runtime.json");
    let text = match fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("read {}: {e}", file.display())),
    };
    let at = |e: String| format!("{}: {e}", bundle.display());
    let rt = Runtime::parse(&text).map_err(at)?;
    rt.check_supported().map_err(at)?;
    apply(&rt)
}

fn apply(rt: &Runtime) -> Result<(), String> {
    for name in &rt.cgroups {
        // Best effort: the controller may not be mounted or writable.
        let _ = mkdir_p(&Path::new("/sys/fs/cgroup").join(name));
    }
    for m in &rt.mounts {
        do_mount(m)?;
    }
    for dir in &rt.mkdir {
        mkdir_p(Path::new(dir))?;
    }
    Ok(())
}

/// `mkdir -p` with mode 0755.
pub fn mkdir_p(dir: &Path) -> Result<(), String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| format!("mkdir {}: {e}", dir.display()))
}

/// Create the mount point (a file when bind-mounting a file), any overlay
/// upper/work directories, then perform the planned mount(2) calls.
fn do_mount(m: &Mount) -> Result<(), String> {
    let dst = Path::new(&m.destination);
    if Path::new(&m.source).is_file() && !dst.exists() {
        if let Some(parent) = dst.parent() {
            mkdir_p(parent)?;
        }
        fs::File::create(dst).map_err(|e| format!("create {}: {e}", dst.display()))?;
    } else {
        mkdir_p(dst)?;
    }
    for dir in overlay_dirs(m) {
        mkdir_p(Path::new(&dir))?;
    }
    plan(m).iter().try_for_each(mount)
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("NUL byte in mount argument {s:?}"))
}

/// One mount(2) call.
fn mount(c: &MountCall) -> Result<(), String> {
    let source = cstring(&c.source)?;
    let target = cstring(&c.target)?;
    let fstype = c.fstype.as_deref().map(cstring).transpose()?;
    let data = c.data.as_deref().map(cstring).transpose()?;
    // SAFETY: every pointer is either null or a live NUL-terminated string.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            c.flags,
            data.as_ref().map_or(std::ptr::null(), |s| s.as_ptr().cast()),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    Err(format!(
        "mount {} on {} (type {:?}, flags {:#x}, data {:?}): {err}",
        c.source, c.target, c.fstype, c.flags, c.data
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lkc-prep-{tag}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn missing_runtime_json_is_nothing_to_do() {
        let dir = bundle("none");
        let got = prepare(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got, Ok(()));
    }

    #[test]
    fn unsupported_field_names_bundle_and_field_before_mounting() {
        let dir = bundle("iface");
        let target = dir.join("never-created");
        let json = format!(
            r#"{{"mkdir":["{}"],"interfaces":[{{"name":"eth1"}}]}}"#,
            target.display()
        );
        fs::write(dir.join("runtime.json"), json).unwrap();
        let got = prepare(&dir);
        let created = target.exists();
        fs::remove_dir_all(&dir).unwrap();
        let err = got.unwrap_err();
        assert!(err.starts_with(&dir.display().to_string()), "{err}");
        assert!(err.contains("`interfaces`"), "{err}");
        assert!(!created, "nothing may be applied for a refused bundle");
    }

    #[test]
    fn mkdir_entries_are_created() {
        let dir = bundle("mkdir");
        let target = dir.join("a/b/c");
        let json = format!(r#"{{"mkdir":["{}"],"bindNS":{{}}}}"#, target.display());
        fs::write(dir.join("runtime.json"), json).unwrap();
        let got = prepare(&dir);
        let is_dir = target.is_dir();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got, Ok(()));
        assert!(is_dir);
    }
}
