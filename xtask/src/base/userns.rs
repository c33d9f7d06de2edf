//! Builds as an ordinary user: the xtask runs itself in a user namespace, as
//! mkosi, `buildah unshare` and `podman unshare` do. The user is root there
//! (uid and gid 0 are the user's own ids), and ids 1.. are the user's
//! subordinate ids from /etc/subuid and /etc/subgid, so an image's files keep
//! their owners (a file of uid 100 in the image is owned by subordinate id
//! 100 on the host) and every tar, cpio and image store the build writes is
//! the same bytes as a root build's. mmdebstrap (root mode), buildah (vfs,
//! chroot isolation) and the packers run in it unchanged; QEMU and the
//! registry need no privilege and run there too.
//!
//! What the host must allow is checked before anything runs, and each lack is
//! one line with the command that fixes it.

use std::{ffi::OsString, fs, os::unix::process::CommandExt, process::Command};

use anyhow::{bail, Context, Result};

/// Ids the namespace must map beyond the user's own: every id an image's
/// files may have, up to 65535 (`nobody` is 65534).
pub const WANTED_IDS: u32 = 65536;

/// Tells the containers tools (buildah, skopeo) that the namespace is set
/// up, so they run in it instead of making one of their own; they read the
/// user's real ids from the two others.
const CONTAINERS_USERNS: &str = "_CONTAINERS_USERNS_CONFIGURED";
const CONTAINERS_UID: &str = "_CONTAINERS_ROOTLESS_UID";
const CONTAINERS_GID: &str = "_CONTAINERS_ROOTLESS_GID";

/// Where the xtask runs: as the host's root, as an ordinary user, or as root
/// of a user namespace (the one it made for itself, or a container's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    HostRoot,
    User,
    NamespaceRoot,
}

/// Who this process is.
pub fn who() -> Who {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    match (
        euid,
        full_mapping(&fs::read_to_string("/proc/self/uid_map").unwrap_or_default()),
    ) {
        (0, true) => Who::HostRoot,
        (0, false) => Who::NamespaceRoot,
        _ => Who::User,
    }
}

/// May this process install host packages (the host's root)?
pub fn is_host_root() -> bool {
    who() == Who::HostRoot
}

/// Is `uid_map` the initial namespace's (every id mapped to itself)?
fn full_mapping(uid_map: &str) -> bool {
    uid_map
        .split_whitespace()
        .collect::<Vec<_>>()
        .as_slice()
        .eq(&["0", "0", "4294967295"])
}

/// One range of subordinate ids: the first, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u32,
    pub count: u32,
}

/// The user's first range in an /etc/subuid or /etc/subgid text, where
/// entries name the user by name or by id.
pub fn subordinate(text: &str, name: &str, id: u32) -> Option<Range> {
    text.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let (owner, start, count) = (fields.next()?, fields.next()?, fields.next()?);
        if owner != name && owner != id.to_string() {
            return None;
        }
        Some(Range {
            start: start.parse().ok()?,
            count: count.parse().ok()?,
        })
    })
}

/// The first range of `WANTED_IDS` ids above 100000 that no entry of `texts`
/// (/etc/subuid and /etc/subgid) uses: what the fix command suggests.
pub fn free_range(texts: &[&str]) -> Range {
    let end = texts
        .iter()
        .flat_map(|t| t.lines())
        .filter_map(|line| {
            let mut fields = line.trim().split(':').skip(1);
            let start: u64 = fields.next()?.parse().ok()?;
            let count: u64 = fields.next()?.parse().ok()?;
            Some(start + count)
        })
        .max()
        .unwrap_or(0);
    Range {
        start: end.max(100_000) as u32,
        count: WANTED_IDS,
    }
}

/// The ordinary user this process runs as.
struct User {
    name: String,
    uid: u32,
    gid: u32,
}

fn user() -> Result<User> {
    // SAFETY: getuid/getgid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid.to_string()).then(|| name.to_string())
        })
        .or_else(|| std::env::var("USER").ok())
        .with_context(|| format!("uid {uid} has no name in /etc/passwd"))?;
    Ok(User { name, uid, gid })
}

/// The sysctls that can keep ordinary users from making user namespaces:
/// the file, the value that forbids it, and the command that allows it.
const KNOBS: [(&str, &str, &str); 3] = [
    (
        "/proc/sys/user/max_user_namespaces",
        "0",
        "sudo sysctl -w user.max_user_namespaces=15000",
    ),
    (
        "/proc/sys/kernel/unprivileged_userns_clone",
        "0",
        "sudo sysctl -w kernel.unprivileged_userns_clone=1",
    ),
    (
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        "1",
        "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
    ),
];

/// What decides whether an ordinary user can build: read off the host by
/// [`Host::read`], judged by [`Host::problems`].
struct Host {
    user: User,
    subuid: String,
    subgid: String,
    /// Are newuidmap and newgidmap installed?
    uidmap: [bool; 2],
    /// Each of [`KNOBS`]'s values (empty where the file is missing).
    knobs: Vec<String>,
}

impl Host {
    fn read() -> Result<Host> {
        let read = |f: &str| fs::read_to_string(f).unwrap_or_default();
        Ok(Host {
            user: user()?,
            subuid: read("/etc/subuid"),
            subgid: read("/etc/subgid"),
            uidmap: ["newuidmap", "newgidmap"].map(|p| which::which(p).is_ok()),
            knobs: KNOBS.iter().map(|(file, _, _)| read(file).trim().to_string()).collect(),
        })
    }

    /// What the host lacks, each with the command that fixes it, and the
    /// ranges to map when it lacks nothing.
    fn problems(&self) -> (Vec<String>, Option<(Range, Range)>) {
        let mut out = Vec::new();
        let name = &self.user.name;
        let free = free_range(&[&self.subuid, &self.subgid]);
        let (first, last) = (free.start, free.start + free.count - 1);
        let fix_ids = format!("sudo usermod --add-subuids {first}-{last} --add-subgids {first}-{last} {name}");
        let uids = subordinate(&self.subuid, name, self.user.uid);
        let gids = subordinate(&self.subgid, name, self.user.uid);
        for (file, range) in [("/etc/subuid", uids), ("/etc/subgid", gids)] {
            match range {
                None => out.push(format!(
                    "{file} gives user {name} no subordinate ids (an image's files are owned by ids 0-65535): {fix_ids}"
                )),
                Some(r) if r.count < WANTED_IDS => out.push(format!(
                    "{file} gives user {name} {} subordinate ids, fewer than the {WANTED_IDS} an image's files may be owned by: {fix_ids}",
                    r.count
                )),
                Some(_) => {}
            }
        }
        for (program, installed) in ["newuidmap", "newgidmap"].iter().zip(self.uidmap) {
            if !installed {
                out.push(format!(
                    "{program} is not installed (it maps the subordinate ids): sudo apt-get install uidmap"
                ));
            }
        }
        for ((file, bad, fix), value) in KNOBS.iter().zip(&self.knobs) {
            if value == bad {
                out.push(format!(
                    "the kernel does not let ordinary users make user namespaces ({} is {bad}): {fix}",
                    file.trim_start_matches("/proc/sys/").replace('/', ".")
                ));
            }
        }
        let ranges = match (uids, gids) {
            (Some(u), Some(g)) if out.is_empty() => Some((u, g)),
            _ => None,
        };
        (out, ranges)
    }
}

/// As an ordinary user, run this command again in a user namespace of its
/// own (this process becomes it: same pid, same signals, same exit code).
/// Returns as the host's root or inside a namespace; fails, before anything
/// ran, with every fix the host needs.
pub fn enter() -> Result<()> {
    if who() != Who::User {
        return Ok(());
    }
    let host = Host::read()?;
    let (problems, ranges) = host.problems();
    let Some((uids, gids)) = ranges else {
        bail!(
            "an ordinary user's build runs in a user namespace, which this host does not allow yet:\n{}",
            problems.join("\n")
        );
    };
    let user = host.user;
    let unshare = which::which("unshare").context("unshare (util-linux) is not installed")?;
    let exe = std::env::current_exe().context("finding the xtask's own executable")?;
    let count = |r: Range| r.count.min(WANTED_IDS);
    let mut args: Vec<OsString> = vec![
        "--map-root-user".into(),
        format!("--map-users={},1,{}", uids.start, count(uids)).into(),
        format!("--map-groups={},1,{}", gids.start, count(gids)).into(),
        // mmdebstrap and buildah mount in it (chroots' /dev and /proc).
        "--mount".into(),
        "--".into(),
        exe.into(),
    ];
    args.extend(std::env::args_os().skip(1));
    let err = Command::new(unshare)
        .args(args)
        .env(CONTAINERS_USERNS, "done")
        .env(CONTAINERS_UID, user.uid.to_string())
        .env(CONTAINERS_GID, user.gid.to_string())
        .exec();
    Err(err).context("entering a user namespace with unshare")
}

/// What `doctor` says of builds as this user, and whether they can run:
/// how they run, or each thing the host lacks with its fix.
pub fn doctor_lines() -> (Vec<String>, bool) {
    match who() {
        Who::HostRoot => (vec!["root: builds run as root, no user namespace needed".into()], true),
        Who::NamespaceRoot => (vec!["root of a user namespace: builds run in it".into()], true),
        Who::User => match Host::read().map(|h| h.problems()) {
            Ok((_, Some((u, g)))) => (
                vec![format!(
                    "ordinary user: builds run in a user namespace with subordinate uids {}-{} and gids {}-{}",
                    u.start,
                    u.start + u.count.min(WANTED_IDS) - 1,
                    g.start,
                    g.start + g.count.min(WANTED_IDS) - 1
                )],
                true,
            ),
            Ok((problems, None)) => (problems, false),
            Err(e) => (vec![format!("{e:#}")], false),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_identity_mapping_is_the_hosts() {
        assert!(full_mapping("         0          0 4294967295\n"));
        assert!(!full_mapping(
            "         0       1001          1\n         1     100000      65536\n"
        ));
        assert!(!full_mapping(""));
    }

    #[test]
    fn a_users_range_is_found_by_name_or_id() {
        let text = "alice:100000:65536\n1002:165536:65536\nbob:231072:1000\n";
        assert_eq!(
            subordinate(text, "alice", 1001),
            Some(Range {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(subordinate(text, "carol", 1002).map(|r| r.start), Some(165536));
        assert_eq!(subordinate(text, "bob", 1003).map(|r| r.count), Some(1000));
        assert_eq!(subordinate(text, "dave", 1004), None);
    }

    fn host(subuid: &str, subgid: &str) -> Host {
        Host {
            user: User {
                name: "alice".into(),
                uid: 1001,
                gid: 1001,
            },
            subuid: subuid.into(),
            subgid: subgid.into(),
            uidmap: [true, true],
            knobs: vec!["15000".into(), String::new(), String::new()],
        }
    }

    #[test]
    fn a_host_ready_for_user_builds_maps_the_users_ranges() {
        let (problems, ranges) = host("alice:100000:65536\n", "alice:200000:65536\n").problems();
        assert!(problems.is_empty(), "{problems:?}");
        let (u, g) = ranges.unwrap();
        assert_eq!((u.start, g.start), (100000, 200000));
    }

    #[test]
    fn each_lack_is_one_line_with_the_command_that_fixes_it() {
        let (problems, ranges) = host("bob:100000:65536\n", "alice:165536:1000\n").problems();
        assert_eq!(ranges, None);
        assert_eq!(
            problems,
            [
                "/etc/subuid gives user alice no subordinate ids (an image's files are owned by ids 0-65535): \
                 sudo usermod --add-subuids 166536-232071 --add-subgids 166536-232071 alice",
                "/etc/subgid gives user alice 1000 subordinate ids, fewer than the 65536 an image's files may be owned by: \
                 sudo usermod --add-subuids 166536-232071 --add-subgids 166536-232071 alice",
            ]
        );
        let mut no_tools = host("alice:100000:65536\n", "alice:100000:65536\n");
        no_tools.uidmap = [false, true];
        no_tools.knobs = vec!["0".into(), "0".into(), "1".into()];
        let (problems, _) = no_tools.problems();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].ends_with("sudo apt-get install uidmap"));
        assert!(problems[1].contains("(user.max_user_namespaces is 0): sudo sysctl -w user.max_user_namespaces=15000"));
        assert!(problems[3].ends_with("sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"));
    }

    #[test]
    fn the_suggested_range_is_after_every_used_one() {
        assert_eq!(free_range(&["", ""]).start, 100000);
        assert_eq!(free_range(&["a:100000:65536\n", "b:300000:10\n"]).start, 300010);
    }
}
