//! Where the app's images come from (`--images`): the local catalog, or each
//! image's own registry and how registries are reached. The choice every
//! command that reads the app is given; `building::pull` does the pulling.

/// Environment variable for `--images`.
pub const IMAGES_ENV: &str = "LINUXKIT_COMPOSE_IMAGES";
/// Environment variable for `--registry-mirror`.
pub const MIRROR_ENV: &str = "LINUXKIT_COMPOSE_REGISTRY_MIRROR";

/// Where the app's images come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Images {
    /// The local catalog: stand-ins built here from Debian packages.
    #[default]
    Local,
    /// Each image's own registry, pulled by the digest the app's lock records.
    Registry(Registries),
}

impl Images {
    pub fn registry(&self) -> Option<&Registries> {
        match self {
            Images::Local => None,
            Images::Registry(r) => Some(r),
        }
    }
}

/// How registries are reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registries {
    /// Docker Hub names are pulled from this mirror first, as dockerd's
    /// `registry-mirrors` (`HOST[:PORT]`).
    pub mirror: Option<String>,
    /// Registries reached over plain HTTP (or TLS without verification), by
    /// `HOST[:PORT]`; a registry on 127.0.0.1 or localhost always is.
    pub insecure: Vec<String>,
    /// The credentials file; None: where Docker and podman keep them
    /// (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
    /// `~/.docker/config.json`, …), as skopeo looks for them itself.
    pub auth_file: Option<std::path::PathBuf>,
}
