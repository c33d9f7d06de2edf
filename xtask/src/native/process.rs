//! The process a Docker engine would start for a compose service, by Docker's
//! rules: the image's entrypoint, command, environment, user and working
//! directory, overridden by the service's `entrypoint`, `command`,
//! `environment` (with `env_file` merged in by compose), `user` and
//! `working_dir`; and the capability set Docker gives a container.

use std::collections::BTreeMap;

use crate::{app::model, native::image::Facts};

/// What runc is told to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// The PATH Docker gives a container whose image sets none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set (moby's `oci/caps/defaults.go`).
pub const DOCKER_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The process for a service's settings `service` and its image's `facts`.
/// `hostname` is the container's (Docker sets `HOSTNAME` to it).
pub fn process(service: &model::Process, facts: &Facts, hostname: &str) -> Result<Process, Vec<String>> {
    let mut problems = Vec::new();
    // An entrypoint set in compose replaces the image's and drops its CMD.
    let (entrypoint, image_cmd) = match &service.entrypoint {
        Some(e) => (e.clone(), Vec::new()),
        None => (facts.entrypoint.clone(), facts.cmd.clone()),
    };
    let cmd = service.command.clone().unwrap_or(image_cmd);
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        problems.push("no command: the image has no ENTRYPOINT or CMD and the service sets neither".into());
    }
    let user = service.user.as_deref().unwrap_or(&facts.user);
    let passwd = facts.files.get("etc/passwd").map(String::as_str).unwrap_or_default();
    let group = facts.files.get("etc/group").map(String::as_str).unwrap_or_default();
    let ids = match resolve_user(user, passwd, group) {
        Ok(ids) => Some(ids),
        Err(e) => {
            problems.push(e);
            None
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let ids = ids.expect("checked");
    let mut env: Vec<(String, String)> = Vec::new();
    fn set(env: &mut Vec<(String, String)>, k: &str, v: &str) {
        match env.iter_mut().find(|(key, _)| key == k) {
            Some(entry) => entry.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        }
    }
    if !facts.env.iter().any(|e| e.starts_with("PATH=")) {
        let (k, v) = DEFAULT_PATH.split_once('=').expect("PATH=…");
        set(&mut env, k, v);
    }
    set(&mut env, "HOSTNAME", hostname);
    for e in &facts.env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        set(&mut env, k, v);
    }
    // compose leaves unset what it found neither in the file nor in the
    // environment: such a variable is not set in the container.
    for (k, v) in &service.environment {
        if let Some(v) = v {
            set(&mut env, k, v);
        }
    }
    if !env.iter().any(|(k, _)| k == "HOME") {
        set(&mut env, "HOME", &ids.home);
    }
    let cwd = service
        .working_dir
        .as_deref()
        .filter(|w| !w.is_empty())
        .unwrap_or(&facts.working_dir);
    Ok(Process {
        args,
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd: if cwd.is_empty() { "/".into() } else { cwd.into() },
        uid: ids.uid,
        gid: ids.gid,
        additional_gids: ids.groups,
    })
}

#[derive(Debug, PartialEq)]
struct Ids {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    home: String,
}

/// `user[:group]` (names or numbers) against the image's /etc/passwd and
/// /etc/group, as Docker resolves it: a name must exist; a number need not
/// (its group is then 0); the user's other groups are added.
fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<Ids, String> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let users: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    let user = if user.is_empty() { "0" } else { user };
    let entry = users
        .iter()
        .find(|f| f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user));
    let (uid, mut gid, name, home) = match (entry, user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse()
                .map_err(|_| format!("user `{}` has a bad uid in /etc/passwd", f[0]))?,
            f[3].parse().unwrap_or(0),
            Some(f[0]),
            f[5].to_string(),
        ),
        (None, Ok(uid)) => (uid, 0, None, "/".to_string()),
        (None, Err(_)) => return Err(format!("user `{user}` is not in the image's /etc/passwd")),
    };
    if let Some(g) = grp.filter(|g| !g.is_empty()) {
        gid = match (groups.iter().find(|f| f[0] == g), g.parse::<u32>()) {
            (Some(f), _) => f[2]
                .parse()
                .map_err(|_| format!("group `{g}` has a bad gid in /etc/group"))?,
            (None, Ok(n)) => n,
            (None, Err(_)) => return Err(format!("group `{g}` is not in the image's /etc/group")),
        };
    }
    let mut extra: Vec<u32> = match name {
        Some(name) => groups
            .iter()
            .filter(|f| f[3].split(',').any(|m| m == name))
            .filter_map(|f| f[2].parse().ok())
            .filter(|g| *g != gid)
            .collect(),
        None => Vec::new(),
    };
    extra.sort_unstable();
    extra.dedup();
    Ok(Ids {
        uid,
        gid,
        groups: extra,
        home,
    })
}

/// The capability set: Docker's default, or all with `privileged`, then
/// `cap_add` and `cap_drop` (either may say `ALL`).
pub fn capabilities(service: &model::Process, all: &[&str]) -> Vec<String> {
    let names = |list: &[String]| -> Vec<String> {
        list.iter()
            .map(|c| {
                let c = c.to_ascii_uppercase();
                if c == "ALL" || c.starts_with("CAP_") {
                    c
                } else {
                    format!("CAP_{c}")
                }
            })
            .collect()
    };
    let mut caps: BTreeMap<String, ()> = if service.privileged {
        all.iter().map(|c| (c.to_string(), ())).collect()
    } else {
        DOCKER_CAPS.iter().map(|c| (c.to_string(), ())).collect()
    };
    let drop = names(&service.cap_drop);
    if drop.iter().any(|c| c == "ALL") {
        caps.clear();
    }
    for c in names(&service.cap_add) {
        if c == "ALL" {
            caps.extend(all.iter().map(|c| (c.to_string(), ())));
        } else {
            caps.insert(c, ());
        }
    }
    for c in drop {
        caps.remove(&c);
    }
    caps.into_keys().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The process of a service whose settings are `body` (as compose writes them).
    fn process(body: &Value, facts: &Facts, hostname: &str) -> Result<Process, Vec<String>> {
        super::process(&serde_json::from_value(body.clone()).unwrap(), facts, hostname)
    }

    fn capabilities(body: &Value, all: &[&str]) -> Vec<String> {
        super::capabilities(&serde_json::from_value(body.clone()).unwrap(), all)
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101:nginx:/nonexistent:/usr/sbin/nologin\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnginx:x:101:\napp:x:1000:\nwww:x:33:app,nginx\n";

    fn facts() -> Facts {
        let mut f = Facts {
            entrypoint: vec!["/docker-entrypoint.sh".into()],
            cmd: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
            env: vec!["PATH=/usr/sbin:/usr/bin".into(), "NGINX_VERSION=1.27".into()],
            working_dir: "".into(),
            user: "".into(),
            ..Default::default()
        };
        f.files.insert("etc/passwd".into(), PASSWD.into());
        f.files.insert("etc/group".into(), GROUP.into());
        f
    }

    #[test]
    fn the_image_config_when_compose_sets_nothing() {
        let p = process(&json!({"command": null, "entrypoint": null}), &facts(), "web").unwrap();
        assert_eq!(p.args, ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]);
        assert_eq!((p.uid, p.gid, p.cwd.as_str()), (0, 0, "/"));
        assert_eq!(
            p.env,
            [
                "HOSTNAME=web",
                "PATH=/usr/sbin:/usr/bin",
                "NGINX_VERSION=1.27",
                "HOME=/root"
            ]
        );
    }

    #[test]
    fn command_replaces_cmd_and_keeps_the_entrypoint() {
        let p = process(&json!({"command": ["nginx", "-T"]}), &facts(), "web").unwrap();
        assert_eq!(p.args, ["/docker-entrypoint.sh", "nginx", "-T"]);
    }

    #[test]
    fn entrypoint_replaces_both_unless_command_is_given() {
        let p = process(&json!({"entrypoint": ["sh", "-c"]}), &facts(), "web").unwrap();
        assert_eq!(p.args, ["sh", "-c"], "the image's CMD is dropped");
        let p = process(
            &json!({"entrypoint": ["sh", "-c"], "command": ["echo hi"]}),
            &facts(),
            "web",
        )
        .unwrap();
        assert_eq!(p.args, ["sh", "-c", "echo hi"]);
    }

    #[test]
    fn nothing_to_run_is_an_error() {
        let f = Facts::default();
        let errs = process(&json!({}), &f, "x").unwrap_err();
        assert!(errs[0].contains("no command"), "{errs:?}");
    }

    #[test]
    fn environment_overrides_the_image_and_unset_variables_stay_unset() {
        let body = json!({"environment": {"NGINX_VERSION": "2", "A": "b", "UNSET": null, "N": 3}});
        let p = process(&body, &facts(), "web").unwrap();
        assert!(p.env.contains(&"NGINX_VERSION=2".to_string()), "{:?}", p.env);
        assert!(p.env.contains(&"A=b".to_string()));
        assert!(p.env.contains(&"N=3".to_string()));
        assert!(!p.env.iter().any(|e| e.starts_with("UNSET")));
        let mut bare = facts();
        bare.env.clear();
        let p = process(&json!({}), &bare, "web").unwrap();
        assert!(
            p.env.contains(&DEFAULT_PATH.to_string()),
            "Docker's PATH when the image sets none"
        );
    }

    #[test]
    fn users_resolve_against_the_image() {
        let f = facts();
        let p = process(&json!({"user": "app"}), &f, "x").unwrap();
        assert_eq!((p.uid, p.gid, p.additional_gids.clone()), (1000, 1000, vec![33]));
        assert!(p.env.contains(&"HOME=/home/app".to_string()));
        let p = process(&json!({"user": "nginx:www"}), &f, "x").unwrap();
        assert_eq!((p.uid, p.gid), (101, 33));
        let p = process(&json!({"user": "4242"}), &f, "x").unwrap();
        assert_eq!((p.uid, p.gid), (4242, 0), "a number need not exist");
        let p = process(&json!({"user": "4242:77"}), &f, "x").unwrap();
        assert_eq!((p.uid, p.gid), (4242, 77));
        let mut image_user = facts();
        image_user.user = "nginx".into();
        let p = process(&json!({}), &image_user, "x").unwrap();
        assert_eq!(p.uid, 101, "the image's USER");
        let errs = process(&json!({"user": "nobody"}), &f, "x").unwrap_err();
        assert!(
            errs[0].contains("`nobody` is not in the image's /etc/passwd"),
            "{errs:?}"
        );
    }

    /// compose's model keeps `$$`; the container gets `$`, as under compose.
    #[test]
    fn escaped_dollars_reach_the_container_as_one() {
        let body = json!({"command": ["sh", "-c", "echo $$HOME"], "environment": {"A": "$$x"}});
        let p = process(&body, &facts(), "x").unwrap();
        assert_eq!(p.args.last().unwrap(), "echo $HOME");
        assert!(p.env.contains(&"A=$x".to_string()), "{:?}", p.env);
    }

    #[test]
    fn working_dir_overrides_the_image() {
        let mut f = facts();
        f.working_dir = "/app".into();
        assert_eq!(process(&json!({}), &f, "x").unwrap().cwd, "/app");
        assert_eq!(process(&json!({"working_dir": "/srv"}), &f, "x").unwrap().cwd, "/srv");
    }

    #[test]
    fn capabilities_follow_docker() {
        let all = ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"];
        let default = capabilities(&json!({}), &all);
        assert_eq!(default.len(), DOCKER_CAPS.len());
        assert!(!default.contains(&"CAP_NET_ADMIN".to_string()));
        let c = capabilities(&json!({"cap_add": ["NET_ADMIN"], "cap_drop": ["chown"]}), &all);
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        let c = capabilities(&json!({"cap_drop": ["ALL"], "cap_add": ["CAP_NET_BIND_SERVICE"]}), &all);
        assert_eq!(c, ["CAP_NET_BIND_SERVICE"]);
        let c = capabilities(&json!({"privileged": true}), &all);
        assert_eq!(c, all);
    }
}
