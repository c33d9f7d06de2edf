//! The httpd stand-in's `httpd` (images/httpd/bin/httpd), run on the host
//! against a stand-in `apache2` on PATH that builds in log_config and unixd,
//! as Debian's does: what configuration file Apache is given.

use std::{fs, os::unix::fs::PermissionsExt, path::Path, process::Command};

#[path = "../src/base/testdir.rs"]
mod testdir;

use testdir::TestDir;

/// `apache2 -l` lists its built-in modules; any other call prints its
/// arguments, then the configuration file it would read (the last -f, in
/// the last -d where relative).
const FAKE_APACHE2: &str = r#"#!/bin/sh
if [ "$1" = -l ]; then
	printf 'Compiled in modules:\n  core.c\n  mod_so.c\n  http_core.c\n  mod_log_config.c\n  mod_unixd.c\n'
	exit 0
fi
echo "args: $*"
root= conf=
while [ $# -gt 0 ]; do
	case $1 in -d) root=$2 ;; -f) conf=$2 ;; esac
	shift
done
case $conf in /*) ;; *) conf=$root/$conf ;; esac
cat "$conf"
"#;

const SITE_CONF: &str = "ServerRoot \"/usr/local/apache2\"\nListen 80\nLoadModule mpm_event_module modules/mod_mpm_event.so\nLoadModule log_config_module modules/mod_log_config.so\n  LoadModule unixd_module modules/mod_unixd.so\nLoadModule proxy_module modules/mod_proxy.so\n#LoadModule rewrite_module modules/mod_rewrite.so\nUser www-data\n";

/// Run the image's httpd with `root` as its server root (-d); its stdout.
fn httpd(dir: &TestDir, root: &Path) -> String {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let apache2 = bin.join("apache2");
    fs::write(&apache2, FAKE_APACHE2).unwrap();
    fs::set_permissions(&apache2, fs::Permissions::from_mode(0o755)).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/httpd/bin/httpd");
    let mut cmd = Command::new("sh");
    cmd.arg(script)
        .args(["-d", root.to_str().unwrap(), "-DFOREGROUND"])
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    // The fake was written a moment ago; another test's fork may hold it
    // open for writing until its child execs (ETXTBSY). Try again shortly.
    let mut tries = 0;
    let out = loop {
        let out = cmd.output().unwrap();
        let busy = String::from_utf8_lossy(&out.stderr).contains("Text file busy");
        if !busy || tries == 100 {
            break out;
        }
        tries += 1;
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A site's httpd.conf written from upstream's, which loads log_config and
/// unixd as files: Apache reads a copy in logs/ with those two lines (and
/// only those) commented out, line for line, and keeps the site's own
/// arguments (-d, -D).
#[test]
fn lines_loading_built_in_modules_are_commented_out() {
    let dir = TestDir::new("httpd-builtins");
    let root = dir.join("apache2");
    fs::create_dir_all(root.join("conf")).unwrap();
    fs::create_dir_all(root.join("logs")).unwrap();
    fs::write(root.join("conf/httpd.conf"), SITE_CONF).unwrap();
    let out = httpd(&dir, &root);
    let copy = root.join("logs/httpd.conf.builtin-modules-commented");
    let args = out.lines().next().unwrap();
    assert!(args.ends_with(&format!("-DFOREGROUND -f {}", copy.display())), "{args}");
    assert!(args.contains(&format!("-d {}", root.display())), "{args}");
    let read: Vec<&str> = out.lines().skip(1).collect();
    let written: Vec<&str> = SITE_CONF.lines().collect();
    assert_eq!(read.len(), written.len());
    for (read, written) in read.iter().zip(&written) {
        if written.contains("log_config_module") || written.contains("unixd_module") {
            assert_eq!(*read, format!("# (built into this httpd) {written}"));
        } else {
            assert_eq!(read, written);
        }
    }
}

/// A configuration without such lines (the image's own) is read as it is.
#[test]
fn a_configuration_without_them_is_read_as_it_is() {
    let dir = TestDir::new("httpd-plain");
    let root = dir.join("apache2");
    fs::create_dir_all(root.join("conf")).unwrap();
    let conf = "Listen 80\nLoadModule proxy_module modules/mod_proxy.so\n";
    fs::write(root.join("conf/httpd.conf"), conf).unwrap();
    let out = httpd(&dir, &root);
    let args = out.lines().next().unwrap();
    assert_eq!(
        args,
        format!(
            "args: -d /usr/local/apache2 -f conf/httpd.conf -d {} -DFOREGROUND",
            root.display()
        )
    );
    assert!(!root.join("logs").exists());
}
