//! Pure mount logic: turning OCI mount options into mount(2) flags,
//! propagation changes and a data string (the way runc and crun do), and planning
//! the sequence of mount(2) calls for one runtime.json mount.

use crate::runtime::Mount;
use libc::c_ulong;

/// An OCI option list, split the way mount(2) wants it.
#[derive(Debug, Default, PartialEq)]
pub struct MountOpts {
    pub flags: c_ulong,
    /// Propagation changes, each applied by its own mount(2) call.
    pub propagation: Vec<c_ulong>,
    /// Filesystem-specific options (`lowerdir=…,size=…`).
    pub data: String,
}

/// One mount(2) call: mount(source, target, fstype, flags, data).
#[derive(Debug, PartialEq)]
pub struct MountCall {
    pub source: String,
    pub target: String,
    pub fstype: Option<String>,
    pub flags: c_ulong,
    pub data: Option<String>,
}

/// Flag options: (name, clear?, flag). `clear` options remove the flag.
const FLAGS: &[(&str, bool, c_ulong)] = &[
    ("async", true, libc::MS_SYNCHRONOUS),
    ("atime", true, libc::MS_NOATIME),
    ("bind", false, libc::MS_BIND),
    ("defaults", false, 0),
    ("dev", true, libc::MS_NODEV),
    ("diratime", true, libc::MS_NODIRATIME),
    ("dirsync", false, libc::MS_DIRSYNC),
    ("exec", true, libc::MS_NOEXEC),
    ("mand", false, libc::MS_MANDLOCK),
    ("noatime", false, libc::MS_NOATIME),
    ("nodev", false, libc::MS_NODEV),
    ("nodiratime", false, libc::MS_NODIRATIME),
    ("noexec", false, libc::MS_NOEXEC),
    ("nomand", true, libc::MS_MANDLOCK),
    ("norelatime", true, libc::MS_RELATIME),
    ("nostrictatime", true, libc::MS_STRICTATIME),
    ("nosuid", false, libc::MS_NOSUID),
    ("rbind", false, libc::MS_BIND | libc::MS_REC),
    ("relatime", false, libc::MS_RELATIME),
    ("remount", false, libc::MS_REMOUNT),
    ("ro", false, libc::MS_RDONLY),
    ("rw", true, libc::MS_RDONLY),
    ("strictatime", false, libc::MS_STRICTATIME),
    ("suid", true, libc::MS_NOSUID),
    ("sync", false, libc::MS_SYNCHRONOUS),
];

const PROPAGATION: &[(&str, c_ulong)] = &[
    ("private", libc::MS_PRIVATE),
    ("rprivate", libc::MS_PRIVATE | libc::MS_REC),
    ("shared", libc::MS_SHARED),
    ("rshared", libc::MS_SHARED | libc::MS_REC),
    ("slave", libc::MS_SLAVE),
    ("rslave", libc::MS_SLAVE | libc::MS_REC),
    ("unbindable", libc::MS_UNBINDABLE),
    ("runbindable", libc::MS_UNBINDABLE | libc::MS_REC),
];

/// Split OCI mount options into flags, propagation changes and data.
pub fn parse_options(options: &[String]) -> MountOpts {
    let mut out = MountOpts::default();
    let mut data = Vec::new();
    for opt in options {
        if let Some(&(_, clear, flag)) = FLAGS.iter().find(|(n, _, _)| n == opt) {
            if clear {
                out.flags &= !flag;
            } else {
                out.flags |= flag;
            }
        } else if let Some(&(_, flag)) = PROPAGATION.iter().find(|(n, _)| n == opt) {
            out.propagation.push(flag);
        } else {
            data.push(opt.as_str());
        }
    }
    out.data = data.join(",");
    out
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The mount(2) calls that apply `m`, in order.
///
/// A mount carrying only propagation options (plus perhaps `remount`) is
/// just a propagation change. A bind mount with extra flags (e.g. `ro`) is
/// followed by a remount, since the kernel ignores them on the bind itself.
pub fn plan(m: &Mount) -> Vec<MountCall> {
    let opts = parse_options(&m.options);
    let source = non_empty(&m.source).unwrap_or_else(|| "none".into());
    let call = |fstype: Option<String>, flags, data: Option<String>| MountCall {
        source: source.clone(),
        target: m.destination.clone(),
        fstype,
        flags,
        data,
    };
    let only_propagation = !opts.propagation.is_empty()
        && opts.flags & !libc::MS_REMOUNT == 0
        && opts.data.is_empty()
        && m.fstype.is_empty();
    let mut calls = Vec::new();
    if !only_propagation {
        let fstype = non_empty(&m.fstype);
        calls.push(call(fstype.clone(), opts.flags, non_empty(&opts.data)));
        let bind_extra = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        if opts.flags & libc::MS_BIND != 0 && bind_extra != 0 {
            calls.push(call(fstype, opts.flags | libc::MS_REMOUNT, None));
        }
    }
    for &p in &opts.propagation {
        calls.push(call(None, p, None));
    }
    calls
}

/// Directories an overlay mount needs before it can be made: the values of
/// its `upperdir=` and `workdir=` options. Empty for other mount types.
pub fn overlay_dirs(m: &Mount) -> Vec<String> {
    if m.fstype != "overlay" {
        return Vec::new();
    }
    let data = parse_options(&m.options).data;
    data.split(',')
        .filter_map(|o| o.strip_prefix("upperdir=").or(o.strip_prefix("workdir=")))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> MountOpts {
        parse_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn mount(src: &str, fstype: &str, dst: &str, options: &[&str]) -> Mount {
        Mount {
            source: src.into(),
            fstype: fstype.into(),
            destination: dst.into(),
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn bind_and_rbind_flags() {
        assert_eq!(opts(&["bind"]).flags, libc::MS_BIND);
        assert_eq!(opts(&["rbind"]).flags, libc::MS_BIND | libc::MS_REC);
        assert_eq!(
            opts(&["rbind", "ro"]).flags,
            libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY
        );
    }

    #[test]
    fn set_and_clear_flags() {
        let o = opts(&["ro", "nosuid", "nodev", "noexec", "remount"]);
        let want = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        assert_eq!(o.flags, want | libc::MS_REMOUNT);
        assert_eq!(opts(&["ro", "rw"]).flags, 0);
        assert_eq!(opts(&["nosuid", "suid", "noatime"]).flags, libc::MS_NOATIME);
        assert_eq!(opts(&["defaults"]), MountOpts::default());
    }

    #[test]
    fn propagation_is_separate_from_flags() {
        let o = opts(&["rbind", "rprivate", "shared"]);
        assert_eq!(o.flags, libc::MS_BIND | libc::MS_REC);
        assert_eq!(o.propagation, [libc::MS_PRIVATE | libc::MS_REC, libc::MS_SHARED]);
        assert_eq!(opts(&["runbindable"]).propagation, [libc::MS_UNBINDABLE | libc::MS_REC]);
    }

    #[test]
    fn unknown_options_become_data() {
        let o = opts(&["nosuid", "size=10%", "mode=755", "lowerdir=/a"]);
        assert_eq!(o.flags, libc::MS_NOSUID);
        assert_eq!(o.data, "size=10%,mode=755,lowerdir=/a");
        assert!(o.propagation.is_empty());
    }

    #[test]
    fn remount_private_is_only_a_propagation_change() {
        let calls = plan(&mount("", "", "/c/tmp", &["remount", "private"]));
        assert_eq!(
            calls,
            [MountCall {
                source: "none".into(),
                target: "/c/tmp".into(),
                fstype: None,
                flags: libc::MS_PRIVATE,
                data: None,
            }]
        );
    }

    #[test]
    fn tmpfs_and_overlay_are_single_mounts() {
        let calls = plan(&mount("tmpfs", "tmpfs", "/c/tmp", &[]));
        assert_eq!(calls.len(), 1);
        assert_eq!((calls[0].fstype.as_deref(), calls[0].flags), (Some("tmpfs"), 0));
        assert_eq!(calls[0].data, None);

        let m = mount(
            "overlay",
            "overlay",
            "/c/rootfs",
            &["lowerdir=/l", "upperdir=/u", "workdir=/w"],
        );
        let calls = plan(&m);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].data.as_deref(), Some("lowerdir=/l,upperdir=/u,workdir=/w"));
        assert_eq!(overlay_dirs(&m), ["/u", "/w"]);
    }

    #[test]
    fn readonly_bind_is_followed_by_remount_then_propagation() {
        let calls = plan(&mount("/src", "", "/dst", &["bind", "ro", "rprivate"]));
        let flags: Vec<_> = calls.iter().map(|c| c.flags).collect();
        let bind = libc::MS_BIND | libc::MS_RDONLY;
        assert_eq!(flags, [bind, bind | libc::MS_REMOUNT, libc::MS_PRIVATE | libc::MS_REC]);
        assert!(calls.iter().all(|c| c.source == "/src" && c.target == "/dst"));
    }

    #[test]
    fn plain_bind_is_one_call() {
        let calls = plan(&mount("/r", "", "/r", &["bind"]));
        assert_eq!(calls.len(), 1);
        assert_eq!((calls[0].flags, calls[0].fstype.as_ref()), (libc::MS_BIND, None));
    }

    #[test]
    fn overlay_dirs_only_for_overlay() {
        assert!(overlay_dirs(&mount("x", "tmpfs", "/d", &["upperdir=/u"])).is_empty());
    }
}
