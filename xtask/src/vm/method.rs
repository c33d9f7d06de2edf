//! Which method a VM is built with, and the names that follow from it.

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// The app's images baked into the VM as a ready image store: no registry needed.
    Static,
    /// Only the compose file in the VM; the engine pulls the images at boot.
    Dynamic,
    /// Each compose service a LinuxKit service: no Docker engine in the VM.
    Native,
}

impl Method {
    /// The VM's name: linuxkit/<name>.yml, dist/<name>-kernel …
    pub fn vm_name(self) -> &'static str {
        match self {
            Method::Static => "compose-static",
            Method::Dynamic => "compose-dynamic",
            Method::Native => "compose-native",
        }
    }
}

/// The Docker engine's settings in every compose VM: no default `docker0`
/// bridge (compose puts services on a network of its own; the default bridge
/// is iptables work at every start for nothing), and published ports by
/// iptables DNAT alone, without a docker-proxy process per port; and crun
/// (C) as the containers' OCI runtime in place of runc (Go), whose two Go
/// program starts per container (`runc create`, `runc init`) cost seconds
/// under emulation.
pub const ENGINE: &str = r#""bridge": "none", "userland-proxy": false, "runtimes": {"crun": {"path": "/usr/bin/crun"}}, "default-runtime": "crun""#;

/// Where the compose file the VM runs is written, relative to the repository.
pub fn runtime_compose(method: Method) -> String {
    format!("dist/{}/docker-compose.yml", method.vm_name())
}

/// Where a compose VM carries the project's bind-mounted files and folders
/// (the engine's service sees the VM's /etc/compose there).
pub const PROJECT_IN_VM: &str = "/etc/compose/project";
