//! Image references, parsed in one place: Docker's grammar
//! (`[domain[:port]/]path[:tag][@digest]`, as distribution/reference has it)
//! and Docker's normalization (`redis` is `docker.io/library/redis:latest`).
//! A [`Reference`] keeps the text it was parsed from and prints it unchanged,
//! so messages and generated files say what the user wrote.
//!
//! Written here rather than taken from `oci-spec` (`oci_spec::distribution::Reference`):
//! that crate, even with only its `distribution` feature, brings 25 crates the
//! xtask does not build yet (regex, derive_builder, darling, strum, …; about
//! two minutes of crate builds on this machine's two shared cores, against one
//! for everything it shares with the xtask), reports every mistake as one
//! "invalid reference format", and forgets whether a tag was written.

use std::{fmt, str::FromStr};

/// Docker Hub's domain, as references are normalized to it.
pub const DOCKER_HUB: &str = "docker.io";

/// Docker Hub's old name, normalized to [`DOCKER_HUB`].
const LEGACY_DOCKER_HUB: &str = "index.docker.io";

/// Where Docker Hub's official images live: `redis` is `library/redis`.
const OFFICIAL: &str = "library/";

/// The longest name (domain and path as written) Docker accepts.
const NAME_MAX: usize = 255;

/// An image reference: where it lives (`domain`, `path`), which version
/// (`tag`, `digest`), and the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// The reference as written (what `Display` prints).
    original: String,
    /// Where the name (domain and path, as written) ends in `original`.
    name_end: usize,
    /// Normalized: `docker.io` when none is written.
    domain: String,
    /// Normalized: `library/` before a lone Docker Hub component.
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a text is not an image reference. Its `Display` is meant to follow
/// "image `X` ", as in "image `a:` has an invalid tag ``".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceError {
    /// The part after `@` is not `algorithm:hex` with at least 32 hex digits.
    MalformedDigest(String),
    /// The part after the last `:` (of the name) is not a tag.
    InvalidTag(String),
    /// The name is not `[domain[:port]/]path` with lowercase path components.
    InvalidName,
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReferenceError::MalformedDigest(d) => write!(f, "has a malformed digest `{d}`"),
            ReferenceError::InvalidTag(t) => write!(f, "has an invalid tag `{t}`"),
            ReferenceError::InvalidName => f.write_str(
                "is not a valid image reference (lowercase name components separated by `/`; an unset variable leaves an empty one)",
            ),
        }
    }
}

impl std::error::Error for ReferenceError {}

impl Reference {
    /// Parse `text` as Docker does (`docker pull`, compose's `image:`).
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        // The digest first: the name never holds an `@`, the digest holds a `:`.
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (text, None),
        };
        if let Some(d) = digest.filter(|d| !is_digest(d)) {
            return Err(ReferenceError::MalformedDigest(d.to_string()));
        }
        // A `:` followed by a `/` is a registry's port, not a tag.
        let (name, tag) = match rest.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
            _ => (rest, None),
        };
        if let Some(t) = tag.filter(|t| !is_tag(t)) {
            return Err(ReferenceError::InvalidTag(t.to_string()));
        }
        let (domain, path) = split_domain(name);
        let valid = name.len() <= NAME_MAX && domain.is_none_or(is_domain) && path.split('/').all(is_path_component);
        if !valid {
            return Err(ReferenceError::InvalidName);
        }
        let domain = match domain {
            None | Some(LEGACY_DOCKER_HUB) => DOCKER_HUB,
            Some(d) => d,
        };
        let path = if domain == DOCKER_HUB && !path.contains('/') {
            format!("{OFFICIAL}{path}")
        } else {
            path.to_string()
        };
        Ok(Reference {
            original: text.to_string(),
            name_end: name.len(),
            domain: domain.to_string(),
            path,
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The registry, normalized: `docker.io` for Docker Hub (also when none is
    /// written, or written `index.docker.io`), else as written (`localhost:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path in the registry: `library/redis` for `redis`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag as written, if one is (no `latest` filled in).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The version the tag names (`3.7` of `python:3.7-alpine`, `3.6` of
    /// `traefik:v3.6`), if it names one.
    pub fn tag_version(&self) -> Option<String> {
        let tag = self.tag()?;
        let tag = tag.strip_prefix('v').unwrap_or(tag);
        let wanted: String = tag.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let wanted = wanted.trim_end_matches('.');
        (!wanted.is_empty()).then(|| wanted.to_string())
    }

    /// The digest as written (`sha256:…`), if one is.
    #[allow(dead_code)] // for pulls by digest; only the tests read it yet
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The reference exactly as written.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The name (domain and path) as written, without tag or digest.
    pub fn written_name(&self) -> &str {
        &self.original[..self.name_end]
    }

    /// The fully qualified name: `docker.io/library/redis`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// Docker's short form of the name: `redis`, `user/app`, `ghcr.io/x/y`
    /// (Docker Hub's domain dropped, and `library/` before a lone component).
    pub fn familiar_name(&self) -> String {
        if !self.is_docker_hub() {
            return self.name();
        }
        match self.path.strip_prefix(OFFICIAL) {
            Some(official) if !official.contains('/') => official.to_string(),
            _ => self.path.clone(),
        }
    }

    /// Fully qualified, with `latest` when neither tag nor digest is written:
    /// `docker.io/library/redis:latest`. How LinuxKit names an image.
    pub fn normalized(&self) -> String {
        format!("{}{}", self.name(), self.version())
    }

    /// The familiar name with `latest` when neither tag nor digest is
    /// written: `redis:latest`, `user/app:v1`, `ghcr.io/x/y:latest`. How the
    /// Docker engine's reference store (repositories.json) keys an image.
    pub fn familiar(&self) -> String {
        format!("{}{}", self.familiar_name(), self.version())
    }

    /// `:tag`, `@digest`, both, or `:latest` when neither is written (Docker's
    /// `TagNameOnly`).
    fn version(&self) -> String {
        let tag = match (&self.tag, &self.digest) {
            (Some(t), _) => format!(":{t}"),
            (None, None) => ":latest".to_string(),
            (None, Some(_)) => String::new(),
        };
        let digest = self.digest.as_ref().map(|d| format!("@{d}")).unwrap_or_default();
        format!("{tag}{digest}")
    }

    /// Whether the image lives on Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        self.domain == DOCKER_HUB
    }

    /// The last path component: `nginx` for `ghcr.io/foo/nginx:1`. What the
    /// local profile's catalog (pins.yml `catalog:`) is keyed by, for now:
    /// any registry's `nginx` stands for the same upstream image.
    pub fn catalog_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The same name as written, with tag `tag` instead of the written one
    /// (a digest is kept).
    #[allow(dead_code)] // for pulls by digest; only the tests read it yet
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        let digest = self.digest.as_ref().map(|d| format!("@{d}")).unwrap_or_default();
        Reference::parse(&format!("{}:{tag}{digest}", self.written_name()))
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(text)
    }
}

/// As written, so messages and generated files keep the user's spelling.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.original)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Reference, D::Error> {
        let text = String::deserialize(deserializer)?;
        Reference::parse(&text).map_err(|e| serde::de::Error::custom(format!("image `{text}` {e}")))
    }
}

/// The written domain and the path of `name`. The first component is a
/// domain when more follow and it has a `.` or a `:` or is `localhost`
/// (Docker's rule: `user/app` is a Docker Hub user's, `r.io/app` a registry's).
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => (Some(first), path),
        _ => (None, name),
    }
}

/// `host[:port]`: a host name or IPv4 address (dot-separated components of
/// letters, digits and inner `-`, any case) or a bracketed IPv6 address.
fn is_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) if !domain.starts_with('[') || host.ends_with(']') => (host, Some(port)),
        _ => (domain, None),
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    if let Some(ip6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !ip6.is_empty() && ip6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    host.split('.').all(|c| {
        let b = c.as_bytes();
        !b.is_empty()
            && b.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    })
}

/// A path component of an image reference: `[a-z0-9]+` runs joined by `.`,
/// `_`, `__` or one or more `-`.
pub fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    // Each separator, a maximal run between alphanumerics.
    component
        .split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        .all(|sep| matches!(sep, "" | "." | "_" | "__") || sep.bytes().all(|b| b == b'-'))
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    tag.len() <= 128 && tag.bytes().next().is_some_and(word) && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-')
}

/// `algorithm:hex`: algorithm components `[A-Za-z][A-Za-z0-9]*` joined by
/// `+`, `.`, `-` or `_`; at least 32 hex digits (128 bits).
fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let component = |c: &str| {
        c.bytes().next().is_some_and(|b| b.is_ascii_alphabetic()) && c.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    algorithm.split(['+', '.', '-', '_']).all(component)
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Reference {
        Reference::parse(text).unwrap_or_else(|e| panic!("image `{text}` {e}"))
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// What compose accepted and refused before this type existed.
    #[test]
    fn references_compose_checked() {
        for ok in [
            "nginx",
            "nginx:1.27-alpine",
            "localhost:5000/a/b:1",
            "10.0.2.2:5000/x",
            "Reg.Example.com/x",
        ] {
            parse(ok);
        }
        for bad in ["/app:v0.1", "App", "a//b", "a:", "a:-x", "a@sha256:12"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_read_after_the_image() {
        let message = |text: &str| format!("image `{text}` {}", Reference::parse(text).unwrap_err());
        assert_eq!(
            message("a@sha256:12"),
            "image `a@sha256:12` has a malformed digest `sha256:12`"
        );
        assert_eq!(message("a:-x"), "image `a:-x` has an invalid tag `-x`");
        assert_eq!(message("a:"), "image `a:` has an invalid tag ``");
        assert_eq!(
            message("/app:v0.1"),
            "image `/app:v0.1` is not a valid image reference (lowercase name components separated by `/`; an unset variable leaves an empty one)"
        );
        // The digest is checked first, then the tag, then the name.
        assert_eq!(
            Reference::parse("App:-x@y").unwrap_err(),
            ReferenceError::MalformedDigest("y".into())
        );
        assert_eq!(
            Reference::parse("App:-x").unwrap_err(),
            ReferenceError::InvalidTag("-x".into())
        );
    }

    #[test]
    fn docker_grammar() {
        for ok in [
            "a",
            "a0/b1/c2",
            "a.b/c",
            "a_b__c---d.e",
            "[::1]:5000/x",
            "r.example.com:443/team/x:v1.2_3-rc",
            &format!("x@{DIGEST}"),
            &format!("x:1@{DIGEST}"),
            "x@sha256+b64u.x_y-z:0123456789ABCDEF0123456789abcdef",
            &format!("a:{}", "t".repeat(128)),
        ] {
            parse(ok);
        }
        for bad in [
            "",
            "a/",
            "a..b",
            "a___b",
            "_a",
            "a-",
            "a.",
            "Upper/x",
            "a/B",
            "-r.io/x",
            "r.io:/x",
            "r.io:5x/x",
            "r_io.com/x",
            "[]/x",
            "a b",
            "a:1.0!",
            &format!("a:{}", "t".repeat(129)),
            "x@sha256:0123456789abcdef0123456789abcde",
            "x@sha256:0123456789abcdef0123456789abcdeg",
            "x@0sha:0123456789abcdef0123456789abcdef",
            "x@:0123456789abcdef0123456789abcdef",
            &format!("r.io/{}", "a".repeat(251)),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} must be refused");
        }
        parse(&format!("r.io/{}", "a".repeat(250)));
    }

    #[test]
    fn normalized_as_docker_does() {
        for (text, normalized, familiar) in [
            ("redis", "docker.io/library/redis:latest", "redis:latest"),
            ("redis:7", "docker.io/library/redis:7", "redis:7"),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            ("docker.io/redis", "docker.io/library/redis:latest", "redis:latest"),
            ("docker.io/library/nginx:1", "docker.io/library/nginx:1", "nginx:1"),
            ("index.docker.io/user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
            ("index.docker.io/x", "docker.io/library/x:latest", "x:latest"),
            (
                "docker.io/library/a/b",
                "docker.io/library/a/b:latest",
                "library/a/b:latest",
            ),
            ("ghcr.io/x/y", "ghcr.io/x/y:latest", "ghcr.io/x/y:latest"),
            (
                "linuxkit-compose.local/app-a:1",
                "linuxkit-compose.local/app-a:1",
                "linuxkit-compose.local/app-a:1",
            ),
            ("localhost:5000/x", "localhost:5000/x:latest", "localhost:5000/x:latest"),
            ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
            // Alone, `localhost` and `localhost:5000` are a Docker Hub name (and tag).
            ("localhost", "docker.io/library/localhost:latest", "localhost:latest"),
            ("localhost:5000", "docker.io/library/localhost:5000", "localhost:5000"),
        ] {
            let r = parse(text);
            assert_eq!(r.normalized(), normalized, "{text}");
            assert_eq!(r.familiar(), familiar, "{text}");
            assert_eq!(r.to_string(), text, "printed as written");
        }
        let digested = parse(&format!("redis@{DIGEST}"));
        assert_eq!(digested.normalized(), format!("docker.io/library/redis@{DIGEST}"));
        assert_eq!(digested.familiar(), format!("redis@{DIGEST}"));
        let both = parse(&format!("me/app:1@{DIGEST}"));
        assert_eq!(both.normalized(), format!("docker.io/me/app:1@{DIGEST}"));
    }

    #[test]
    fn parts() {
        let r = parse("redis");
        assert_eq!(
            (r.domain(), r.path(), r.tag(), r.digest()),
            ("docker.io", "library/redis", None, None)
        );
        assert_eq!(
            (r.name(), r.familiar_name()),
            ("docker.io/library/redis".into(), "redis".into())
        );
        assert!(r.is_docker_hub());
        let r = parse(&format!("Reg.Example.com:5000/team/app:v1@{DIGEST}"));
        assert_eq!(
            (r.domain(), r.path(), r.tag(), r.digest()),
            ("Reg.Example.com:5000", "team/app", Some("v1"), Some(DIGEST))
        );
        assert_eq!(r.written_name(), "Reg.Example.com:5000/team/app");
        assert_eq!(r.familiar_name(), "Reg.Example.com:5000/team/app");
        assert!(!r.is_docker_hub());
        assert_eq!(parse("user/app:v1").familiar_name(), "user/app");
        assert_eq!(parse("docker.io/user/app").written_name(), "docker.io/user/app");
        assert_eq!(parse("index.docker.io/user/app").domain(), "docker.io");
    }

    /// Today's catalog key: the last path component, whatever the registry.
    #[test]
    fn catalog_names() {
        assert_eq!(parse("ghcr.io/foo/nginx:1").catalog_name(), "nginx");
        assert_eq!(parse("docker.io/library/python:3.11-slim").catalog_name(), "python");
        assert_eq!(parse(&format!("python@{DIGEST}")).catalog_name(), "python");
        assert_eq!(parse("traefik").catalog_name(), "traefik");
        assert_eq!(parse("localhost:5000/a/b:1").catalog_name(), "b");
    }

    #[test]
    fn retagged() {
        assert_eq!(parse("redis").with_tag("7").unwrap().to_string(), "redis:7");
        assert_eq!(
            parse("localhost:5000/x:1").with_tag("2").unwrap().to_string(),
            "localhost:5000/x:2"
        );
        assert_eq!(
            parse(&format!("x:1@{DIGEST}")).with_tag("2").unwrap().to_string(),
            format!("x:2@{DIGEST}")
        );
        assert_eq!(
            parse("x").with_tag("-no").unwrap_err(),
            ReferenceError::InvalidTag("-no".into())
        );
    }

    #[test]
    fn serialized_as_written() {
        let r = parse("index.docker.io/user/app");
        assert_eq!(serde_json::to_string(&r).unwrap(), r#""index.docker.io/user/app""#);
        assert_eq!(
            serde_json::from_str::<Reference>(r#""index.docker.io/user/app""#).unwrap(),
            r
        );
        let e = serde_json::from_str::<Reference>(r#""a:""#).unwrap_err().to_string();
        assert!(e.starts_with("image `a:` has an invalid tag"), "{e}");
    }

    #[test]
    fn path_components() {
        for ok in ["a", "a1", "a.b", "a_b", "a__b", "a-b", "a---b", "a.b-c_d"] {
            assert!(is_path_component(ok), "{ok}");
        }
        for bad in ["", "A", "a..b", "a___b", "a_.b", "-a", "a-", ".a", "a/b", "a b"] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }
}
