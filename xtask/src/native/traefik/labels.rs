//! A container's `traefik.*` labels: read into a tree as traefik reads them,
//! then into its routers, services and middlewares per protocol.

use std::collections::BTreeMap;

use super::{
    dynamic::DynamicMap,
    parse_bool,
    provider::DockerProvider,
    schema::{Kind, Protocol},
    Backend,
};

/// The labels as a tree, as traefik builds it: one node per dotted segment
/// (`x[0]` is `x` then `[0]`), siblings matched case-insensitively, the first
/// spelling (in sorted label order) kept.
#[derive(Default)]
pub(super) struct LabelNode {
    pub(super) name: String,
    /// The label (or label prefix) this node stands for, for messages.
    pub(super) label: String,
    pub(super) value: Option<String>,
    pub(super) children: Vec<LabelNode>,
}

impl LabelNode {
    /// Adds the label `traefik.<key>`.
    fn insert(&mut self, key: &str, value: &str) -> Result<(), String> {
        let mut node = self;
        let mut end = 0;
        for seg in key.split('.') {
            let start = end;
            end += seg.len() + 1;
            if seg.is_empty() || seg.starts_with('[') {
                return Err(format!("invalid segment `{seg}`"));
            }
            let mut parts = vec![seg];
            if let Some(open) = seg.find('[').filter(|_| seg.ends_with(']')) {
                parts = vec![&seg[..open], &seg[open..]];
            }
            let mut part_end = start;
            for part in parts {
                part_end += part.len();
                let label = format!("traefik.{}", &key[..part_end.min(key.len())]);
                let at = match node.children.iter().position(|c| c.name.eq_ignore_ascii_case(part)) {
                    Some(at) => at,
                    None => {
                        node.children.push(LabelNode {
                            name: part.to_string(),
                            label,
                            ..LabelNode::default()
                        });
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[at];
            }
        }
        node.value = Some(value.to_string());
        Ok(())
    }

    /// The child named `name`, in any case.
    fn child(&self, name: &str) -> Option<&LabelNode> {
        self.children.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// A router, service or middleware and the label prefix defining it.
#[derive(Clone)]
pub(super) struct Definition {
    pub(super) label: String,
    pub(super) body: DynamicMap,
}

/// One container's configuration: (protocol, kind) -> name -> item.
pub(super) type ContainerConfig = BTreeMap<(Protocol, Kind), BTreeMap<String, Definition>>;

/// One compose service's container while its labels are converted, and what
/// the conversion has to say about it.
pub(super) struct Container<'b, 'a> {
    pub(super) backend: &'b Backend<'a>,
    /// The docker provider's name for it: `<service>-<project>`, normalized.
    pub(super) name: String,
    pub(super) errors: Vec<String>,
    pub(super) notes: Vec<String>,
}

impl Container<'_, '_> {
    /// An error about one of the container's labels.
    pub(super) fn error(&mut self, label: &str, msg: impl std::fmt::Display) {
        self.errors
            .push(format!("service `{}`: label `{label}`: {msg}", self.backend.service));
    }

    /// The configuration the docker provider builds from this container's
    /// labels, or None when it has no routes.
    pub(super) fn configuration(&mut self, docker: &DockerProvider) -> Option<ContainerConfig> {
        let labels = self.backend.labels;
        let mut enabled = docker.exposed_by_default;
        let mut root = LabelNode::default();
        let mut any_traefik_label = false;
        let mut later = Vec::new();
        for (key, value) in labels {
            let Some(rest) = key
                .get(..8)
                .filter(|p| p.eq_ignore_ascii_case("traefik."))
                .map(|_| &key[8..])
            else {
                continue;
            };
            any_traefik_label = true;
            if !key.starts_with("traefik.") {
                later.push((
                    key.clone(),
                    "traefik reads only labels starting with `traefik.` in lower case".into(),
                ));
                continue;
            }
            let first = rest.split('.').next().unwrap_or_default().to_ascii_lowercase();
            match first.as_str() {
                "enable" if rest.eq_ignore_ascii_case("enable") => match parse_bool(value) {
                    Some(e) => enabled = e,
                    None => self.error(key, format!("`{value}` is not a boolean")),
                },
                "docker" if rest.eq_ignore_ascii_case("docker.network") => self.notes.push(format!(
                    "service `{}`: label `{key}`: ignored, the native VM gives the service one address",
                    self.backend.service
                )),
                "docker" if rest.eq_ignore_ascii_case("docker.allownonrunning") => self.notes.push(format!(
                    "service `{}`: label `{key}`: ignored, routes are written for running services",
                    self.backend.service
                )),
                "http" | "tcp" | "udp" => {
                    if let Err(e) = root.insert(rest, value) {
                        later.push((key.clone(), e));
                    }
                }
                _ => later.push((key.clone(), "not a label this conversion knows".into())),
            }
        }
        if !enabled {
            return None;
        }
        for (key, e) in later {
            self.error(&key, e);
        }
        let mut conf = ContainerConfig::new();
        for proto in Protocol::ALL {
            let Some(section) = root.child(proto.key()) else {
                continue;
            };
            if section.value.is_some() {
                self.error(&section.label, "expects options, not a value");
            }
            for child in &section.children {
                let Some((kind, fields)) = proto
                    .kinds()
                    .iter()
                    .find(|(k, _)| k.key().eq_ignore_ascii_case(&child.name))
                else {
                    self.error(&child.label, format!("unknown option `{}`", child.name));
                    continue;
                };
                if child.value.is_some() {
                    self.error(&child.label, "expects names, not a value");
                }
                let items = conf.entry((proto, *kind)).or_default();
                for named in &child.children {
                    if named.value.is_some() {
                        self.error(&named.label, "expects options, not a value");
                    }
                    let body = self.decode(named, fields);
                    items.insert(
                        named.name.clone(),
                        Definition {
                            label: named.label.clone(),
                            body,
                        },
                    );
                }
            }
        }
        let errors = self.errors.len();
        let routed = self.build(docker, &mut conf, any_traefik_label);
        (routed && self.errors.len() == errors).then_some(conf)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::testing::*;

    #[test]
    fn exposed_by_default_false_routes_only_enabled_services() {
        let static_config = file("providers:\n  Docker:\n    ExposedByDefault: 'false'\n");
        let on = labels(&[("traefik.enable", "true")]);
        let none = BTreeMap::new();
        let out = dynamic(
            &static_config,
            &[backend("on", &on, 2, &[80]), backend("off", &none, 3, &[80])],
        );
        assert!(out.contains("on-demo") && !out.contains("off-demo"), "{out}");
    }

    #[test]
    fn enable_false_removes_a_service_and_ignores_its_labels() {
        let off = labels(&[("traefik.enable", "false"), ("traefik.bogus", "x")]);
        assert_eq!(dynamic(&file(EXPOSED), &[backend("a", &off, 2, &[80])]), "");
    }

    #[test]
    fn unknown_labels_are_errors() {
        let l = labels(&[
            ("traefik.enable", "true"),
            ("traefik.http.routers.r.rule", "Host(`a`)"),
            ("traefik.http.routers.r.rules", "Host(`a`)"),
            ("traefik.docker.network", "front"),
        ]);
        assert_eq!(
            errors(&file(EXPOSED), &[backend("a", &l, 2, &[80])]),
            ["service `a`: label `traefik.http.routers.r.rules`: unknown option `rules`"]
        );
    }
}
