//! Which method a VM is built with, and the names that follow from it.

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// The app's images baked into the VM as a ready image store: no registry needed.
    Static,
    /// Only the compose file in the VM; the engine pulls the images at boot.
    Dynamic,
}

impl Method {
    /// The VM's name: linuxkit/<name>.yml, dist/<name>-kernel …
    pub fn vm_name(self) -> &'static str {
        match self {
            Method::Static => "compose-static",
            Method::Dynamic => "compose-dynamic",
        }
    }
}

/// Where the compose file the VM runs is written, relative to the repository.
pub fn runtime_compose(method: Method) -> String {
    format!("dist/{}/docker-compose.yml", method.vm_name())
}
