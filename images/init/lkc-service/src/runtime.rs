//! The LinuxKit `runtime.json` model: parsing it and rejecting the parts
//! this runner cannot apply (interfaces, bindNS, namespace).

use serde::{Deserialize, Deserializer};

/// Go's `*[]T` fields may be written as `null`; treat that like "absent".
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// One OCI mount (`specs.Mount`) as LinuxKit writes it into runtime.json.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub struct Mount {
    #[serde(default, deserialize_with = "nullable")]
    pub destination: String,
    #[serde(default, rename = "type", deserialize_with = "nullable")]
    pub fstype: String,
    #[serde(default, deserialize_with = "nullable")]
    pub source: String,
    #[serde(default, deserialize_with = "nullable")]
    pub options: Vec<String>,
}

/// Paths the namespaces of the container should be bound to (`bindNS`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    pub cgroup: Option<String>,
    pub ipc: Option<String>,
    pub mnt: Option<String>,
    pub net: Option<String>,
    pub pid: Option<String>,
    pub user: Option<String>,
    pub uts: Option<String>,
}

impl Namespaces {
    /// Names of the namespaces that have a (non-empty) bind path set.
    fn requested(&self) -> Vec<&'static str> {
        let all = [
            ("cgroup", &self.cgroup),
            ("ipc", &self.ipc),
            ("mnt", &self.mnt),
            ("net", &self.net),
            ("pid", &self.pid),
            ("user", &self.user),
            ("uts", &self.uts),
        ];
        all.iter()
            .filter(|(_, p)| p.as_deref().is_some_and(|p| !p.is_empty()))
            .map(|(n, _)| *n)
            .collect()
    }
}

/// LinuxKit's `moby.Runtime`. Unknown top-level keys are an error, so a
/// newer LinuxKit feature is refused instead of being silently dropped.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    #[serde(default, deserialize_with = "nullable")]
    pub cgroups: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub mounts: Vec<Mount>,
    #[serde(default, deserialize_with = "nullable")]
    pub mkdir: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub interfaces: Vec<serde_json::Value>,
    #[serde(default, rename = "bindNS", deserialize_with = "nullable")]
    pub bind_ns: Namespaces,
    #[serde(default)]
    #[allow(dead_code)] // accepted, meaningless without containerd (see check_supported)
    pub namespace: Option<String>,
}

impl Runtime {
    /// Parse the text of a runtime.json file.
    pub fn parse(text: &str) -> Result<Runtime, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid runtime.json: {e}"))
    }

    /// Fail, naming the field, if the runtime asks for something this
    /// runner does not implement.
    pub fn check_supported(&self) -> Result<(), String> {
        if !self.interfaces.is_empty() {
            return Err(unsupported("interfaces"));
        }
        let ns = self.bind_ns.requested();
        if !ns.is_empty() {
            return Err(unsupported(&format!("bindNS ({})", ns.join(", "))));
        }
        // `namespace` names the containerd namespace upstream's service runs a
        // container in; without containerd there is nothing to apply.
        Ok(())
    }
}

fn unsupported(field: &str) -> String {
    format!("runtime.json field `{field}` is not supported by this runner")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RW: &str = r#"{
      "mounts": [
        {"source":"tmpfs","type":"tmpfs","destination":"/containers/onboot/000-x/tmp"},
        {"destination":"/containers/onboot/000-x/tmp","options":["remount","private"]},
        {"source":"overlay","type":"overlay","destination":"/containers/onboot/000-x/rootfs",
         "options":["lowerdir=/containers/onboot/000-x/lower",
                    "upperdir=/containers/onboot/000-x/tmp/upper",
                    "workdir=/containers/onboot/000-x/tmp/work"]}
      ],
      "bindNS": {}
    }"#;

    const RO: &str = r#"{"mounts":[{"source":"/containers/onboot/000-x/rootfs",
        "destination":"/containers/onboot/000-x/rootfs","options":["bind"]}],
        "bindNS":{}}"#;

    #[test]
    fn parses_writable_rootfs_shape() {
        let rt = Runtime::parse(RW).unwrap();
        assert_eq!(rt.mounts.len(), 3);
        assert_eq!(rt.mounts[0].fstype, "tmpfs");
        assert_eq!(rt.mounts[0].source, "tmpfs");
        assert!(rt.mounts[0].options.is_empty());
        assert_eq!(rt.mounts[1].source, "");
        assert_eq!(rt.mounts[1].options, ["remount", "private"]);
        assert_eq!(rt.mounts[2].destination, "/containers/onboot/000-x/rootfs");
        assert_eq!(rt.mounts[2].options.len(), 3);
        assert!(rt.cgroups.is_empty() && rt.mkdir.is_empty());
        assert_eq!(rt.check_supported(), Ok(()));
    }

    #[test]
    fn parses_readonly_rootfs_shape() {
        let rt = Runtime::parse(RO).unwrap();
        let want = Mount {
            destination: "/containers/onboot/000-x/rootfs".into(),
            fstype: String::new(),
            source: "/containers/onboot/000-x/rootfs".into(),
            options: vec!["bind".into()],
        };
        assert_eq!(rt.mounts, [want]);
        assert_eq!(rt.check_supported(), Ok(()));
    }

    #[test]
    fn parses_cgroups_mkdir_and_nulls() {
        let rt = Runtime::parse(r#"{"cgroups":["a","b"],"mkdir":["/var/x"],"mounts":null,"interfaces":null}"#).unwrap();
        assert_eq!(rt.cgroups, ["a", "b"]);
        assert_eq!(rt.mkdir, ["/var/x"]);
        assert!(rt.mounts.is_empty());
        assert_eq!(rt.check_supported(), Ok(()));
    }

    #[test]
    fn interfaces_are_unsupported() {
        let rt = Runtime::parse(r#"{"interfaces":[{"name":"eth1","createInRoot":false}]}"#);
        let err = rt.unwrap().check_supported().unwrap_err();
        assert!(err.contains("`interfaces`"), "{err}");
    }

    #[test]
    fn bind_ns_is_unsupported_and_names_the_namespace() {
        let rt = Runtime::parse(r#"{"bindNS":{"net":"/run/netns/x","uts":""}}"#).unwrap();
        let err = rt.check_supported().unwrap_err();
        assert!(err.contains("bindNS (net)"), "{err}");
    }

    #[test]
    fn containerd_namespace_is_accepted() {
        let rt = Runtime::parse(r#"{"namespace":"services.linuxkit"}"#).unwrap();
        assert_eq!(rt.check_supported(), Ok(()));
    }

    /// Exactly what `linuxkit build` (v1.8.2) wrote for a read-only onboot image.
    #[test]
    fn linuxkit_v1_8_2_output_is_supported() {
        let rt = Runtime::parse(
            r#"{"cgroups": [], "mounts": [{"destination": "/containers/onboot/000-modules/rootfs",
                "source": "/containers/onboot/000-modules/rootfs", "options": ["bind"]}],
                "mkdir": [], "interfaces": [],
                "bindNS": {"cgroup": "", "ipc": "", "mnt": "", "net": "", "pid": "", "user": "", "uts": ""},
                "namespace": ""}"#,
        )
        .unwrap();
        assert_eq!(rt.check_supported(), Ok(()));
        assert_eq!(rt.mounts.len(), 1);
        assert_eq!(rt.mounts[0].options, ["bind"]);
    }

    #[test]
    fn unknown_fields_and_bad_json_are_errors() {
        assert!(Runtime::parse(r#"{"sysctl":{}}"#).unwrap_err().contains("sysctl"));
        assert!(Runtime::parse("{").is_err());
    }
}
