//! The secrets and configs the app's services use, as the files a VM carries
//! for them: where each file's bytes come from (a file on the build host, a
//! variable of the build's environment, inline `content:`), where each use
//! puts it in the container (compose's targets), and with which owner and
//! mode. Every method carries the same files: the compose VMs' engine and the
//! native VM's crun bind-mount them read-only at their targets.
//!
//! compose copies `environment:` and `content:` ones into the container with
//! the use's `uid`/`gid`/`mode` (0444, root, by default), and bind-mounts
//! `file:` ones as the host file is. Here every one is a file in the VM made
//! with the use's owner and mode (compose's defaults where it sets none), so
//! the container sees what compose's copy would give it; a name used with two
//! owners or modes is two files.

use std::{fmt, path::PathBuf};

use crate::app::{
    compose::App,
    model::{FileSource, FileUse},
};

/// A secret or a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Secret,
    Config,
}

impl Kind {
    /// The key in compose's model, and the folder its files are carried in.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Secret => "secrets",
            Kind::Config => "configs",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Config => "config",
        }
    }

    /// Where a use without a target (or with a relative one) puts it:
    /// compose's `/run/secrets/NAME`, and `/NAME` for configs.
    fn base(self) -> &'static str {
        match self {
            Kind::Secret => "/run/secrets/",
            Kind::Config => "/",
        }
    }
}

/// Where a carried file's bytes come from.
#[derive(Clone, PartialEq)]
pub enum Origin {
    /// A file on the build host (absolute, as compose resolved it).
    File(PathBuf),
    /// The value of this variable of the build's environment.
    Environment(String),
    /// The bytes, inline in the compose file.
    Content(String),
}

/// Never the bytes themselves: a secret's value must not reach a log.
impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "File({})", p.display()),
            Origin::Environment(v) => write!(f, "Environment({v})"),
            Origin::Content(c) => write!(f, "Content({} bytes)", c.len()),
        }
    }
}

/// One file the VM carries for a secret or config, with the owner and mode
/// its uses see.
#[derive(Debug, Clone, PartialEq)]
pub struct Carried {
    pub kind: Kind,
    /// The top-level name.
    pub name: String,
    pub origin: Origin,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    /// Relative to where the VM carries these files: `secrets/NAME`, with
    /// `.MODE.UID.GID` after it when the name is used with several.
    pub path: String,
}

impl Carried {
    /// The file's bytes, where the build writes them rather than copies a
    /// host file (`None` for `file:`). `env` looks up the build's environment.
    pub fn bytes(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Vec<u8>>, String> {
        match &self.origin {
            Origin::File(_) => Ok(None),
            Origin::Content(c) => Ok(Some(c.clone().into_bytes())),
            Origin::Environment(var) => env(var).map(|v| Some(v.into_bytes())).ok_or_else(|| {
                format!(
                    "{} `{}` comes from the environment variable {var}, which is not set",
                    self.kind.word(),
                    self.name
                )
            }),
        }
    }
}

/// One service's use of a carried file.
#[derive(Debug, Clone, PartialEq)]
pub struct Use {
    pub service: String,
    pub kind: Kind,
    /// Its position in the service's `secrets:`/`configs:` list.
    pub index: usize,
    /// Index into [`Files::carried`].
    pub file: usize,
    /// Absolute path in the container.
    pub target: String,
}

/// Every file carried for the app's secrets and configs, and every use of one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Files {
    pub carried: Vec<Carried>,
    pub uses: Vec<Use>,
}

impl Files {
    /// The uses of `service`, in compose's order (secrets, then configs).
    pub fn uses_of<'a>(&'a self, service: &'a str) -> impl Iterator<Item = (&'a Use, &'a Carried)> + 'a {
        self.uses
            .iter()
            .filter(move |u| u.service == service)
            .map(|u| (u, &self.carried[u.file]))
    }
}

/// compose's defaults for a use: mode 0444, owned by root.
const DEFAULT_MODE: u32 = 0o444;

impl App {
    /// The files the VM carries for the app's secrets and configs. Only what
    /// a service uses is carried; an `external` one, which nothing outside the
    /// VM can provide, is an error naming it, as is a use of an undefined
    /// one or a non-numeric `uid`/`gid` (compose takes numbers only).
    pub fn files(&self) -> Result<Files, Vec<String>> {
        let mut problems = Vec::new();
        // (kind, name, uid, gid, mode) of each use, in order.
        let mut wanted: Vec<(Kind, &str, u32, u32, u32, Use)> = Vec::new();
        for s in &self.services {
            for (kind, list) in [(Kind::Secret, &s.secrets), (Kind::Config, &s.configs)] {
                for (index, u) in list.iter().enumerate() {
                    match self.one_use(kind, index, u) {
                        Ok((uid, gid, mode, target)) => wanted.push((
                            kind,
                            &u.source,
                            uid,
                            gid,
                            mode,
                            Use {
                                service: s.name.clone(),
                                kind,
                                index,
                                file: 0,
                                target,
                            },
                        )),
                        Err(e) => problems.push(format!("service `{}`: {e}", s.name)),
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut files = Files::default();
        for (kind, name, uid, gid, mode, mut u) in wanted.clone() {
            let found = files
                .carried
                .iter()
                .position(|c| c.kind == kind && c.name == name && (c.uid, c.gid, c.mode) == (uid, gid, mode));
            u.file = found.unwrap_or_else(|| {
                let variants = wanted
                    .iter()
                    .filter(|w| w.0 == kind && w.1 == name && (w.2, w.3, w.4) != (uid, gid, mode))
                    .count();
                let mut path = format!("{}/{name}", kind.key());
                if variants > 0 {
                    path = format!("{path}.{mode:04o}.{uid}.{gid}");
                }
                let source = self.source(kind, name).expect("checked in one_use");
                files.carried.push(Carried {
                    kind,
                    name: name.to_string(),
                    origin: origin(source).expect("checked in one_use"),
                    uid,
                    gid,
                    mode,
                    path,
                });
                files.carried.len() - 1
            });
            files.uses.push(u);
        }
        Ok(files)
    }

    fn source(&self, kind: Kind, name: &str) -> Option<&FileSource> {
        match kind {
            Kind::Secret => self.secrets.get(name),
            Kind::Config => self.configs.get(name),
        }
    }

    /// (uid, gid, mode, target) of one use, its top-level entry checked.
    fn one_use(&self, kind: Kind, index: usize, u: &FileUse) -> Result<(u32, u32, u32, String), String> {
        let word = kind.word();
        let name = &u.source;
        let source = self
            .source(kind, name)
            .ok_or_else(|| format!("`{}[{index}]`: {word} `{name}` is not defined", kind.key()))?;
        if source.external {
            let sources = match kind {
                Kind::Secret => "`file:` or `environment:`",
                Kind::Config => "`file:`, `environment:` or `content:`",
            };
            return Err(format!(
                "{word} `{name}` is external: nothing outside the VM provides it (give it a {sources})"
            ));
        }
        origin(source).map_err(|e| format!("{word} `{name}` {e}"))?;
        let id = |key: &str, v: &Option<String>| -> Result<u32, String> {
            match v.as_deref() {
                None | Some("") => Ok(0),
                Some(t) => t
                    .parse()
                    .map_err(|_| format!("`{}[{index}].{key}` `{t}` is not a number", kind.key())),
            }
        };
        let uid = id("uid", &u.uid)?;
        let gid = id("gid", &u.gid)?;
        let mode = u.mode.unwrap_or(DEFAULT_MODE) & 0o7777;
        let target = match u.target.as_deref().filter(|t| !t.is_empty()) {
            None => format!("{}{name}", kind.base()),
            Some(t) if t.starts_with('/') => t.to_string(),
            Some(t) => format!("{}{t}", kind.base()),
        };
        Ok((uid, gid, mode, target))
    }
}

/// Where a top-level entry's bytes come from: exactly one of `file:`,
/// `environment:`, `content:`.
fn origin(source: &FileSource) -> Result<Origin, String> {
    match (&source.file, &source.environment, &source.content) {
        (Some(f), None, None) => Ok(Origin::File(PathBuf::from(f))),
        (None, Some(v), None) => Ok(Origin::Environment(v.clone())),
        (None, None, Some(c)) => Ok(Origin::Content(c.clone())),
        (None, None, None) => Err("has neither `file:`, `environment:` nor `content:`".into()),
        _ => Err("has more than one of `file:`, `environment:` and `content:`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::compose::testing;
    use serde_json::json;

    fn app(model: serde_json::Value) -> App {
        testing::app(model)
    }

    #[test]
    fn targets_owners_and_modes_as_compose_puts_them() {
        let app = app(json!({
            "services": {"web": {
                "secrets": [
                    {"source": "db-password", "target": "/run/secrets/db-password"},
                    {"source": "token", "target": "api", "uid": "101", "gid": "102", "mode": 0o400}
                ],
                "configs": [{"source": "site"}, {"source": "site", "target": "/etc/nginx/conf.d/site.conf"}]
            }},
            "secrets": {
                "db-password": {"name": "p_db-password", "file": "/project/db/password.txt"},
                "token": {"name": "p_token", "environment": "TOKEN"}
            },
            "configs": {"site": {"name": "p_site", "content": "server {}\n"}}
        }));
        let files = app.files().unwrap();
        let got: Vec<_> = files
            .uses_of("web")
            .map(|(u, c)| {
                (
                    u.target.as_str(),
                    c.path.as_str(),
                    c.uid,
                    c.gid,
                    format!("{:o}", c.mode),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/run/secrets/db-password", "secrets/db-password", 0, 0, "444".into()),
                ("/run/secrets/api", "secrets/token", 101, 102, "400".into()),
                ("/site", "configs/site", 0, 0, "444".into()),
                ("/etc/nginx/conf.d/site.conf", "configs/site", 0, 0, "444".into()),
            ]
        );
        assert_eq!(files.carried.len(), 3, "one file per name, owner and mode");
        assert_eq!(files.carried[0].origin, Origin::File("/project/db/password.txt".into()));
    }

    #[test]
    fn one_name_with_two_modes_is_two_files() {
        let app = app(json!({
            "services": {
                "a": {"secrets": [{"source": "s"}]},
                "b": {"secrets": [{"source": "s", "mode": 0o400, "uid": "999"}]}
            },
            "secrets": {"s": {"content": "x"}}
        }));
        let paths: Vec<_> = app.files().unwrap().carried.into_iter().map(|c| c.path).collect();
        assert_eq!(paths, ["secrets/s.0444.0.0", "secrets/s.0400.999.0"]);
    }

    #[test]
    fn external_and_unset_environment_are_errors_naming_them() {
        let app = app(json!({
            "services": {"web": {"secrets": [{"source": "vault"}, {"source": "tok"}], "configs": [{"source": "c"}]}},
            "secrets": {"vault": {"external": true}, "tok": {"environment": "LKC_TEST_UNSET_TOKEN"}},
            "configs": {"c": {"external": true}}
        }));
        let errs = app.files().unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("secret `vault` is external"), "{errs:?}");
        assert!(errs[1].contains("config `c` is external"), "{errs:?}");
        let ok = self::app(json!({
            "services": {"web": {"secrets": [{"source": "tok"}]}},
            "secrets": {"tok": {"environment": "TOK"}}
        }));
        let files = ok.files().unwrap();
        let err = files.carried[0].bytes(&|_| None).unwrap_err();
        assert_eq!(
            err,
            "secret `tok` comes from the environment variable TOK, which is not set"
        );
        let bytes = files.carried[0]
            .bytes(&|v| (v == "TOK").then(|| "s3cret".into()))
            .unwrap();
        assert_eq!(bytes.as_deref(), Some(&b"s3cret"[..]));
        assert!(
            !format!("{:?}", files.carried).contains("s3cret"),
            "no value in debug output"
        );
    }

    #[test]
    fn ids_are_numbers() {
        let app = app(json!({
            "services": {"web": {"secrets": [{"source": "s", "uid": "www-data"}]}},
            "secrets": {"s": {"content": "x"}}
        }));
        let errs = app.files().unwrap_err();
        assert!(
            errs[0].contains("`secrets[0].uid` `www-data` is not a number"),
            "{errs:?}"
        );
    }
}
