//! The Alpine emulation of the stand-ins pins.yml marks `alpine: true`
//! (images/alpine-compat: `apk`, busybox's `adduser` and `addgroup`), run on
//! the host against stand-in system tools on PATH that log their arguments:
//! which Debian commands each Alpine command line becomes, and what fails.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

#[path = "../src/base/testdir.rs"]
mod testdir;

use testdir::TestDir;

fn compat(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../images/alpine-compat")
        .join(file)
}

/// Stand-ins for the system's tools: each logs `NAME ARGS` to `log`; getent
/// reads the `passwd` and `group` files beside it, which groupadd and
/// useradd append to; dpkg-query knows the packages in `installed`,
/// apt-cache those in `available`.
const FAKES: &[(&str, &str)] = &[
    (
        "getent",
        "awk -F: -v k=\"$2\" '$1 == k || $3 == k { print; hit = 1 } END { exit !hit }' \"$F/$1\"",
    ),
    (
        "groupadd",
        "log \"$@\"; echo \"$3:x:$2:\" >> \"$F/group\"",
    ),
    (
        "useradd",
        "log \"$@\"; for a; do name=$a; done; while [ $# -gt 0 ]; do case $1 in -u) u=$2 ;; -g) g=$2 ;; -s) s=$2 ;; -d) d=$2 ;; esac; shift; done; echo \"$name:x:$u:$g::$d:$s\" >> \"$F/passwd\"",
    ),
    ("usermod", "log \"$@\""),
    ("passwd", "log \"$@\""),
    ("id", "echo 0"),
    ("apt-get", "log \"$@\""),
    ("apt-mark", "log \"$@\""),
    ("apt-config", "echo \"LISTS='$F/lists/'\""),
    (
        "apt-cache",
        "for a; do name=$a; done; grep -qx \"$name\" \"$F/available\"",
    ),
    (
        "dpkg-query",
        "for a; do name=$a; done; grep -qx \"$name\" \"$F/installed\" && printf 'ii '",
    ),
];

struct Host {
    dir: TestDir,
}

impl Host {
    /// A host with root (shell /bin/bash), nogroup, a system user at uid
    /// 100 and a group at gid 100; bash installed, jq and curl available.
    fn new(name: &str) -> Host {
        let dir = TestDir::new(&format!("alpine-{name}"));
        for sub in ["bin", "sbin", "debian", "lists"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let write = |path: PathBuf, text: &str, exec: bool| {
            fs::write(&path, text).unwrap();
            if exec {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            }
        };
        write(
            dir.join("passwd"),
            "root:x:0:0:root:/root:/bin/bash\nsys:x:100:65534::/:/bin/false\n",
            false,
        );
        write(dir.join("group"), "root:x:0:\nusers:x:100:\nnogroup:x:65534:\n", false);
        write(dir.join("installed"), "bash\n", false);
        write(dir.join("available"), "bash\njq\ncurl\npython3-requests\n", false);
        write(dir.join("lists/deb_Packages"), "", false);
        let log = format!(
            "F='{}'\nlog() {{ echo \"${{0##*/}} $*\" >> \"$F/log\"; }}\n",
            dir.join("").display()
        );
        for (name, body) in FAKES {
            write(dir.join("bin").join(name), &format!("#!/bin/sh\n{log}{body}\n"), true);
        }
        for name in ["adduser", "addgroup"] {
            write(
                dir.join("debian").join(name),
                &format!("#!/bin/sh\n{log}echo \"debian-$(basename \"$0\") $*\" >> \"$F/log\"\n"),
                true,
            );
            fs::copy(compat("busybox-users"), dir.join("sbin").join(name)).unwrap();
        }
        fs::copy(compat("apk"), dir.join("sbin/apk")).unwrap();
        Host { dir }
    }

    /// Run `command` (adduser, addgroup or apk); its exit status, stderr and
    /// the commands it ran.
    fn run(&self, command: &str, args: &[&str]) -> (bool, String, Vec<String>) {
        let _ = fs::remove_file(self.dir.join("log"));
        let path = format!(
            "{}:{}:{}:/usr/bin:/bin",
            self.dir.join("sbin").display(),
            self.dir.join("debian").display(),
            self.dir.join("bin").display()
        );
        let mut cmd = Command::new(self.dir.join("sbin").join(command));
        cmd.args(args)
            .env_clear()
            .env("PATH", path)
            .env("APK_PACKAGES", compat("apk-packages"))
            .env("APK_STATE", self.dir.join("state"))
            .env("APK_ROOT", self.dir.join("root"));
        // The script was written a moment ago; a test on another thread that
        // forks then holds its write descriptor until its child execs, and
        // exec(2) meanwhile fails with ETXTBSY. Try again shortly.
        let mut tries = 0;
        let out = loop {
            match cmd.output() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other.unwrap(),
            }
        };
        let log = fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            log.lines().map(String::from).collect(),
        )
    }
}

/// The seed tutorial's `adduser -D my-user -u 1000` (an option after the
/// name, as busybox's getopt takes it): a group of the user's name with gid
/// = uid, the running user's shell, busybox's GECOS, no password asked.
#[test]
fn busybox_adduser_becomes_groupadd_and_useradd() {
    let host = Host::new("adduser");
    fs::create_dir_all(host.dir.join("home")).unwrap();
    let home = host.dir.join("home/my-user");
    let home = home.to_str().unwrap();
    let (ok, err, log) = host.run("adduser", &["-D", "my-user", "-u", "1000", "-h", home]);
    assert!(ok, "{err}");
    assert_eq!(
        log,
        [
            "groupadd -g 1000 my-user".to_string(),
            format!("useradd -M -N -u 1000 -g 1000 -c Linux User,,, -d {home} -s /bin/bash my-user"),
        ]
    );
    assert!(Path::new(home).is_dir(), "the home is made");

    // Taken now: busybox's words.
    let (ok, err, _) = host.run("adduser", &["-D", "-u", "1000", "other"]);
    assert!(!ok);
    assert_eq!(err.trim(), "adduser: uid '1000' in use");
    let (ok, err, _) = host.run("adduser", &["-D", "-H", "my-user"]);
    assert!(!ok);
    assert_eq!(err.trim(), "adduser: user 'my-user' in use");

    // Without -u: the first uid from 1000 whose gid is free too.
    let (ok, err, log) = host.run("adduser", &["-DH", "-s", "/bin/sh", "-g", "App", "app"]);
    assert!(ok, "{err}");
    assert_eq!(
        log,
        [
            "groupadd -g 1001 app",
            "useradd -M -N -u 1001 -g 1001 -c App -d /home/app -s /bin/sh app"
        ]
    );

    // -G: an existing group, no new one; an unknown group is an error.
    let (ok, err, log) = host.run("adduser", &["-D", "-H", "-G", "users", "web"]);
    assert!(ok, "{err}");
    assert_eq!(
        log,
        ["useradd -M -N -u 1002 -g 100 -c Linux User,,, -d /home/web -s /bin/bash web"]
    );
    let (ok, err, _) = host.run("adduser", &["-D", "-G", "nope", "x"]);
    assert!(!ok);
    assert_eq!(err.trim(), "adduser: unknown group nope");

    // Without -D (or -S) busybox asks for a password.
    let (ok, err, log) = host.run("adduser", &["-H", "pw"]);
    assert!(ok, "{err}");
    assert_eq!(log.last().unwrap(), "passwd pw");
}

/// -S: a system user from uid 100 up, in `nogroup`, with /bin/false as its
/// shell and no password.
#[test]
fn busybox_system_users_and_groups() {
    let host = Host::new("system");
    let (ok, err, log) = host.run("adduser", &["-S", "-H", "worker"]);
    assert!(ok, "{err}");
    assert_eq!(
        log,
        ["useradd -M -N -u 101 -g 65534 -c Linux User,,, -d /home/worker -s /bin/false worker"]
    );
    let (ok, err, log) = host.run("addgroup", &["-S", "www"]);
    assert!(ok, "{err}");
    assert_eq!(log, ["groupadd -g 101 www"]);
    let (ok, err, log) = host.run("addgroup", &["-g", "2000", "data"]);
    assert!(ok, "{err}");
    assert_eq!(log, ["groupadd -g 2000 data"]);
    let (ok, err, log) = host.run("addgroup", &["team"]);
    assert!(ok, "{err}");
    // Debian's addgroup takes a lone name too: it goes there.
    assert_eq!(log, ["debian-addgroup team"]);
    // USER GROUP: the user joins the group.
    let (ok, err, log) = host.run("addgroup", &["worker", "www"]);
    assert!(ok, "{err}");
    assert_eq!(log, ["usermod -a -G www worker"]);
    let (ok, err, _) = host.run("addgroup", &["ghost", "www"]);
    assert!(!ok);
    assert_eq!(err.trim(), "addgroup: unknown user ghost");
}

/// Debian's syntax (long options, or none) goes to Debian's own programs,
/// unchanged.
#[test]
fn debian_syntax_goes_to_debian_adduser() {
    let host = Host::new("debian");
    for args in [
        &["--disabled-password", "--gecos", "", "--uid", "1000", "app"][..],
        &["--system", "--group", "svc"],
        &["app", "users"],
    ] {
        let (ok, err, log) = host.run("adduser", args);
        assert!(ok, "{err}");
        assert_eq!(log, [format!("debian-adduser {}", args.join(" "))]);
    }
    let (ok, err, log) = host.run("addgroup", &["--system", "svc"]);
    assert!(ok, "{err}");
    assert_eq!(log, ["debian-addgroup --system svc"]);
}

/// Where the stand-in has no Debian adduser (alpine's), busybox's long forms
/// are busybox's, as on Alpine: `docker init`'s Go Dockerfile makes its user
/// on alpine so. Debian-only options are refused with busybox's usage.
#[test]
fn long_options_without_debian_adduser_are_busybox_s() {
    let host = Host::new("long");
    fs::remove_file(host.dir.join("debian/adduser")).unwrap();
    let (ok, err, log) = host.run(
        "adduser",
        &[
            "--disabled-password",
            "--gecos",
            "",
            "--home",
            "/nonexistent",
            "--shell",
            "/sbin/nologin",
            "--no-create-home",
            "--uid",
            "10001",
            "appuser",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        log,
        [
            "groupadd -g 10001 appuser",
            "useradd -M -N -u 10001 -g 10001 -c  -d /nonexistent -s /sbin/nologin appuser"
        ]
    );
    let (ok, err, log) = host.run("adduser", &["--system", "--group", "svc"]);
    assert!(!ok);
    assert!(err.starts_with("Usage: adduser"), "{err}");
    assert!(log.is_empty(), "{log:?}");
}

/// `apk add` through the table: Alpine names become Debian's, same names
/// pass through, `--virtual` remembers what it newly installed for `apk
/// del`, `--no-cache` leaves no lists.
#[test]
fn apk_add_and_del_with_apt() {
    let host = Host::new("apk");
    let (ok, err, log) = host.run(
        "apk",
        &[
            "add",
            "--no-cache",
            "--virtual",
            ".build-deps",
            "build-base",
            "musl-dev",
            "linux-headers",
            "bash",
            "py3-requests",
            "jq=1.6-r1",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        log,
        [
            "apt-get update -qq",
            "apt-get install -y -qq --no-install-recommends build-essential libc6-dev linux-libc-dev bash python3-requests jq",
            "apt-get clean",
        ]
    );
    assert!(err.contains("`jq=1.6-r1`: Alpine's version"), "{err}");
    assert!(
        !host.dir.join("lists/deb_Packages").exists(),
        "--no-cache keeps no lists"
    );
    // bash was there before: .build-deps does not own it.
    let remembered = fs::read_to_string(host.dir.join("state/virtual/.build-deps")).unwrap();
    assert_eq!(
        remembered,
        "build-essential\nlibc6-dev\nlinux-libc-dev\npython3-requests\njq\n"
    );

    fs::write(host.dir.join("installed"), "bash\nlibc6-dev\njq\n").unwrap();
    let (ok, err, log) = host.run("apk", &["del", ".build-deps"]);
    assert!(ok, "{err}");
    assert_eq!(log, ["apt-mark auto libc6-dev jq", "apt-get autoremove --purge -y -qq"]);

    // Options before the verb, and lists present: no update without -U.
    fs::write(host.dir.join("lists/deb_Packages"), "").unwrap();
    let (ok, err, log) = host.run("apk", &["--quiet", "add", "curl"]);
    assert!(ok, "{err}");
    assert_eq!(log, ["apt-get install -y -qq --no-install-recommends curl"]);
    let (ok, err, log) = host.run("apk", &["-U", "add", "curl"]);
    assert!(ok, "{err}");
    assert_eq!(log[0], "apt-get update -qq");
}

/// A `php:*-fpm-alpine` Dockerfile's libraries: the headers for
/// docker-php-ext-install in a `--virtual` group, the runtime libraries
/// asked for after it. Debian's runtime libraries are named by soname, so
/// `icu-libs` is libicu-dev too; deleting the group must not take it.
#[test]
fn apk_keeps_what_is_asked_for_after_a_virtual_group() {
    let host = Host::new("apk-php");
    fs::write(
        host.dir.join("available"),
        "libicu-dev\nlibzip-dev\nlibonig-dev\nbash\n",
    )
    .unwrap();
    let (ok, err, log) = host.run(
        "apk",
        &[
            "add",
            "--no-cache",
            "--virtual",
            ".build-deps",
            "icu-dev",
            "libzip-dev",
            "oniguruma-dev",
        ],
    );
    assert!(ok, "{err}");
    let install = "apt-get install -y -qq --no-install-recommends libicu-dev libzip-dev libonig-dev";
    assert!(log.contains(&install.to_string()), "{log:?}");
    fs::write(
        host.dir.join("installed"),
        "bash\nlibicu-dev\nlibzip-dev\nlibonig-dev\n",
    )
    .unwrap();
    let (ok, err, _) = host.run("apk", &["add", "--no-cache", "icu-libs"]);
    assert!(ok, "{err}");
    let (ok, err, log) = host.run("apk", &["del", ".build-deps"]);
    assert!(ok, "{err}");
    assert_eq!(
        log.last().map(String::as_str),
        Some("apt-get autoremove --purge -y -qq")
    );
    assert!(
        log.contains(&"apt-mark auto libzip-dev libonig-dev".to_string()),
        "{log:?}"
    );
}

/// Commands Alpine installs elsewhere than Debian are where Alpine has them:
/// `apk add --no-cache tini` then `ENTRYPOINT ["/sbin/tini", "--"]` (Debian's
/// is /usr/bin/tini), su-exec as Debian's gosu. `apk del` takes the link with
/// the package; a file the image already has there is left alone.
#[test]
fn apk_links_commands_where_alpine_has_them() {
    let host = Host::new("apk-links");
    fs::write(host.dir.join("available"), "tini\ngosu\n").unwrap();
    let root = host.dir.join("root");
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("usr/bin/tini"), "").unwrap();
    let (ok, err, log) = host.run("apk", &["add", "--no-cache", "tini", "su-exec"]);
    assert!(ok, "{err}");
    assert!(
        log.contains(&"apt-get install -y -qq --no-install-recommends tini gosu".to_string()),
        "{log:?}"
    );
    let link = |path: &str| fs::read_link(root.join(path)).map(|t| t.display().to_string());
    assert_eq!(link("sbin/tini").unwrap(), "/usr/bin/tini");
    assert_eq!(link("sbin/su-exec").unwrap(), "/usr/sbin/gosu");
    assert!(err.contains("linked /sbin/tini -> /usr/bin/tini"), "{err}");

    // Once the package took its command away, del takes the link too; the
    // link whose command is still there stays.
    fs::write(host.dir.join("installed"), "tini\n").unwrap();
    fs::create_dir_all(root.join("usr/sbin")).unwrap();
    fs::write(root.join("usr/sbin/gosu"), "").unwrap();
    fs::remove_file(root.join("usr/bin/tini")).unwrap();
    let (ok, err, _) = host.run("apk", &["del", "tini"]);
    assert!(ok, "{err}");
    assert!(link("sbin/tini").is_err(), "the link outlived tini");
    assert_eq!(link("sbin/su-exec").unwrap(), "/usr/sbin/gosu");

    // A file already at Alpine's path is the image's own: kept.
    fs::write(root.join("sbin/tini"), "own").unwrap();
    let (ok, err, _) = host.run("apk", &["add", "tini"]);
    assert!(ok, "{err}");
    assert_eq!(fs::read_to_string(root.join("sbin/tini")).unwrap(), "own");
}

/// A name with no Debian counterpart fails the step, naming it and the table;
/// verbs that are not emulated say so.
#[test]
fn apk_refuses_what_it_cannot_stand_in_for() {
    let host = Host::new("apk-no");
    let (ok, err, log) = host.run("apk", &["add", "--no-cache", "bash", "abuild", "s6-overlay"]);
    assert!(!ok);
    assert!(
        err.contains("no Debian package stands in for: abuild s6-overlay (add it to the table in"),
        "{err}"
    );
    assert!(err.contains("images/alpine-compat/apk-packages"), "{err}");
    assert!(!log.iter().any(|l| l.starts_with("apt-get install")), "{log:?}");
    let (ok, err, _) = host.run("apk", &["info", "-v"]);
    assert!(!ok);
    assert!(err.contains("`apk info` is not emulated"), "{err}");
}

/// On a stand-in without apt (nginx's: its packages listed in
/// fixed-packages, no dpkg), `apk add` of what the image carries succeeds
/// without running apt; anything else fails naming it; del, update and
/// cache clean change nothing.
#[test]
fn apk_on_a_stand_in_without_apt() {
    let host = Host::new("apk-fixed");
    let fixed = host.dir.join("fixed-packages");
    fs::write(&fixed, "bash\ngettext-base\nnginx-light\n").unwrap();
    let run = |args: &[&str]| {
        let mut cmd = Command::new(host.dir.join("sbin/apk"));
        cmd.args(args)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", host.dir.join("bin").display()))
            .env("APK_PACKAGES", compat("apk-packages"))
            .env("APK_STATE", host.dir.join("state"))
            .env("APK_FIXED", &fixed);
        let out = cmd.output().unwrap();
        let log = fs::read_to_string(host.dir.join("log")).unwrap_or_default();
        let _ = fs::remove_file(host.dir.join("log"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            log,
        )
    };
    let (ok, err, log) = run(&["add", "--no-cache", "bash", "gettext-envsubst"]);
    assert!(ok, "{err}");
    assert!(err.contains("already in this stand-in: bash gettext-base"), "{err}");
    assert_eq!(log, "", "no apt, no dpkg: nothing runs");

    let (ok, err, log) = run(&["add", "bash", "curl"]);
    assert!(!ok);
    assert!(err.contains("no apt-get to install packages: curl"), "{err}");
    assert!(err.contains("fixed-packages"), "{err}");
    assert_eq!(log, "");
    let (ok, err, _) = run(&["add", "build-base"]);
    assert!(!ok);
    assert!(
        err.contains("Debian's build-essential, for `apk add build-base`"),
        "{err}"
    );

    for args in [&["del", "bash"][..], &["update"], &["cache", "clean"]] {
        let (ok, err, log) = run(args);
        assert!(ok, "{args:?}: {err}");
        assert_eq!(log, "", "{args:?}");
    }
}
