//! The file provider's dynamic configuration: its values, every container's
//! routers, services and middlewares merged as the docker provider merges them,
//! and the tree written out as YAML.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    labels::{ContainerConfig, Definition},
    schema::{Kind, Protocol},
};

/// A value of the dynamic configuration, serialized with sorted keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub(super) enum DynamicValue {
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<DynamicValue>),
    Map(DynamicMap),
}

/// A block of the dynamic configuration: option name to value.
pub(super) type DynamicMap = BTreeMap<String, DynamicValue>;

impl DynamicValue {
    /// The text of a string value.
    pub(super) fn str(&self) -> Option<&str> {
        match self {
            DynamicValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Every container's configuration, merged as the docker provider merges:
/// one name, one definition; a service defined alike by several containers
/// load-balances over all of them.
#[derive(Default)]
pub(super) struct Merged {
    /// (protocol, kind) -> name -> (the compose service defining it first, it).
    items: BTreeMap<(Protocol, Kind), BTreeMap<String, (String, Definition)>>,
    /// Some reference was qualified `@docker`.
    pub(super) docker_refs: bool,
    /// Some router is on the default rule.
    pub(super) default_rule: bool,
}

impl Merged {
    /// Adds `service`'s configuration; a name defined differently twice is an error.
    pub(super) fn add(&mut self, service: &str, conf: ContainerConfig, errors: &mut Vec<String>) {
        for ((proto, kind), items) in conf {
            let merged = self.items.entry((proto, kind)).or_default();
            for (name, mut item) in items {
                if item.body.remove("__default_rule").is_some() {
                    self.default_rule = true;
                }
                self.docker_refs |= unqualify(kind, &mut item.body);
                let Some((first, existing)) = merged.get_mut(&name) else {
                    merged.insert(name, (service.to_string(), item));
                    continue;
                };
                let same = if kind == Kind::Services {
                    let (mine, theirs) = (without_servers(&item.body), without_servers(&existing.body));
                    mine == theirs
                } else {
                    item.body == existing.body
                };
                if !same {
                    errors.push(format!(
                        "service `{service}`: label `{}`: {} {} `{name}` is also defined, differently, \
                         by service `{first}` (traefik would drop both)",
                        item.label,
                        proto.key(),
                        kind.one()
                    ));
                    continue;
                }
                if kind == Kind::Services {
                    let servers = |body: &mut DynamicMap| match body.get_mut("loadBalancer") {
                        Some(DynamicValue::Map(lb)) => match lb.get_mut("servers") {
                            Some(DynamicValue::List(s)) => std::mem::take(s),
                            _ => Vec::new(),
                        },
                        _ => Vec::new(),
                    };
                    let mine = servers(&mut item.body);
                    let mut all = servers(&mut existing.body);
                    for s in mine {
                        if !all.contains(&s) {
                            all.push(s);
                        }
                    }
                    if let Some(DynamicValue::Map(lb)) = existing.body.get_mut("loadBalancer") {
                        lb.insert("servers".into(), DynamicValue::List(all));
                    }
                }
            }
        }
    }

    /// The dynamic configuration's tree (`http`, `tcp`, `udp`).
    pub(super) fn into_yaml(self) -> DynamicValue {
        let mut root = DynamicMap::new();
        for ((proto, kind), items) in self.items {
            if items.is_empty() {
                continue;
            }
            let section = root
                .entry(proto.key().to_string())
                .or_insert_with(|| DynamicValue::Map(DynamicMap::new()));
            if let DynamicValue::Map(section) = section {
                let items = items
                    .into_iter()
                    .map(|(n, (_, item))| (n, DynamicValue::Map(item.body)))
                    .collect();
                section.insert(kind.key().to_string(), DynamicValue::Map(items));
            }
        }
        DynamicValue::Map(root)
    }
}

/// A service's body but its servers, to compare two definitions of it.
fn without_servers(body: &DynamicMap) -> DynamicMap {
    let mut body = body.clone();
    if let Some(DynamicValue::Map(lb)) = body.get_mut("loadBalancer") {
        lb.remove("servers");
    }
    body
}

/// `name@docker` references become the file provider's own `name`. True if
/// any was rewritten.
fn unqualify(kind: Kind, body: &mut DynamicMap) -> bool {
    fn strip(y: &mut DynamicValue) -> bool {
        match y {
            DynamicValue::Str(s) => match s.strip_suffix("@docker") {
                Some(n) => {
                    *s = n.to_string();
                    true
                }
                None => false,
            },
            DynamicValue::List(l) => l.iter_mut().fold(false, |any, y| strip(y) | any),
            _ => false,
        }
    }
    let mut changed = false;
    match kind {
        Kind::Routers => {
            for key in ["service", "middlewares"] {
                if let Some(y) = body.get_mut(key) {
                    changed |= strip(y);
                }
            }
        }
        Kind::Middlewares => {
            for (ty, key) in [("chain", "middlewares"), ("errors", "service")] {
                if let Some(DynamicValue::Map(m)) = body.get_mut(ty) {
                    if let Some(y) = m.get_mut(key) {
                        changed |= strip(y);
                    }
                }
            }
        }
        Kind::Services => {}
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn one_service_in_several_containers_balances_over_them() {
        let l = labels(&[
            ("traefik.http.routers.web.rule", "Host(`web`)"),
            ("traefik.http.routers.web.service", "web"),
            ("traefik.http.services.web.loadbalancer.server.port", "80"),
        ]);
        let out = dynamic(
            &file(EXPOSED),
            &[backend("blue", &l, 2, &[80]), backend("green", &l, 3, &[80])],
        );
        assert!(
            out.contains("- url: http://172.18.0.2:80\n        - url: http://172.18.0.3:80\n"),
            "{out}"
        );
    }
}
