//! Every key a compose app sets, named by its path, for a method that checks
//! them against a table of what it carries over. The table is the method's
//! (`Pattern`); the walk over compose's model is the app's.
//!
//! Patterns name a key's path in compose's model: `a.b` for nested keys, `*`
//! for any name the user chooses, `[]` for each item of a list, `**` for
//! everything under it.

use serde_json::Value;

use crate::app::compose::App;

/// A table entry: the key path pattern it covers.
pub trait Pattern {
    fn pattern(&self) -> &str;
}

/// Where a key is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Under `services.NAME`.
    Service(String),
    /// At the top level, outside `services`.
    Top,
}

/// One key set by the app: where, its path as the user reads it
/// (`ports[0].host_ip`), and the table entry covering it (None: not in it).
pub type SetKey<'t, K> = (Scope, String, Option<&'t K>);

impl App {
    /// Every key the app sets, each service's against `service_table` and the
    /// top level's (without `services`) against `top_table`. Nulls are keys
    /// not set; `x-…` extensions are data, not settings.
    pub fn set_keys<'t, K: Pattern>(&self, service_table: &'t [K], top_table: &'t [K]) -> Vec<SetKey<'t, K>> {
        let model = self.model();
        let mut out = Vec::new();
        for (name, body) in model["services"].as_object().into_iter().flatten() {
            for (path, key) in walk(service_table, body) {
                out.push((Scope::Service(name.clone()), path, key));
            }
        }
        let mut top = model.clone();
        if let Some(o) = top.as_object_mut() {
            o.remove("services");
        }
        for (path, key) in walk(top_table, &top) {
            out.push((Scope::Top, path, key));
        }
        out
    }
}

/// Every key path set in `value`, with the table entry that covers it (None:
/// not in the table). Nulls are keys not set.
pub fn walk<'t, K: Pattern>(table: &'t [K], value: &Value) -> Vec<(String, Option<&'t K>)> {
    let mut out = Vec::new();
    visit(table, value, "", "", &mut out);
    out
}

/// Walk `value`, found at `pattern` in the table's terms (`networks.*`,
/// `ports[]`) and at `shown` in the user's (`networks.front`, `ports[0]`).
fn visit<'t, K: Pattern>(
    table: &'t [K],
    value: &Value,
    pattern: &str,
    shown: &str,
    out: &mut Vec<(String, Option<&'t K>)>,
) {
    if let Some(k) = lookup(table, pattern).filter(|k| k.pattern().ends_with("**")) {
        out.push((shown.to_string(), Some(k)));
        return;
    }
    match value {
        Value::Null => {}
        Value::Object(map) if !is_leaf_map(table, pattern) => {
            let any = join(pattern, "*");
            let named = table
                .iter()
                .any(|k| k.pattern() == any || k.pattern().starts_with(&format!("{any}.")));
            // `x-…` keys are compose extensions: data for the user, not settings.
            for (k, v) in map.iter().filter(|(k, _)| !k.starts_with("x-")) {
                let child = if named { any.clone() } else { join(pattern, k) };
                let child_shown = join(shown, k);
                if v.is_null() && named {
                    // A name with nothing set (`networks: {default: null}`) is still a key.
                    if let Some(key) = lookup(table, &child) {
                        out.push((child_shown, Some(key)));
                    }
                    continue;
                }
                visit(table, v, &child, &child_shown, out);
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object()) => {
            let each = format!("{pattern}[]");
            for (i, item) in items.iter().enumerate() {
                visit(table, item, &each, &format!("{shown}[{i}]"), out);
            }
        }
        Value::Array(_) if lookup(table, &format!("{pattern}[]")).is_some() => {
            out.push((shown.to_string(), lookup(table, &format!("{pattern}[]"))));
        }
        _ => out.push((shown.to_string(), lookup(table, pattern))),
    }
}

/// A map whose values are the key's own (`ulimits: {nofile: 1024}`).
fn is_leaf_map<K: Pattern>(table: &[K], path: &str) -> bool {
    path.ends_with('*') && !table.iter().any(|k| k.pattern().starts_with(&format!("{path}.")))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn lookup<'t, K: Pattern>(table: &'t [K], path: &str) -> Option<&'t K> {
    table.iter().find(|k| k.pattern() == path).or_else(|| {
        table.iter().find(|k| {
            k.pattern()
                .strip_suffix(".**")
                .is_some_and(|p| path == p || path.starts_with(&format!("{p}.")))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    impl Pattern for &str {
        fn pattern(&self) -> &str {
            self
        }
    }

    const SERVICE: &[&str] = &[
        "image",
        "build.**",
        "environment.*",
        "ports[].target",
        "ports[].published",
        "ulimits.*",
        "cap_add",
        "networks.*",
        "networks.*.aliases",
    ];

    fn paths(v: &Value) -> Vec<(String, Option<&'static str>)> {
        walk(SERVICE, v).into_iter().map(|(p, k)| (p, k.copied())).collect()
    }

    #[test]
    fn nested_keys_are_named_with_their_path() {
        let body = json!({
            "command": null,
            "image": "x",
            "environment": {"A": "1", "B": null},
            "ports": [{"target": 80, "published": "80", "host_ip": "127.0.0.1"}],
            "ulimits": {"nofile": {"soft": 1, "hard": 2}, "nproc": 5},
            "cap_add": ["NET_ADMIN"],
            "build": {"context": "/x", "args": {"A": "b"}},
            "blkio_config": {"weight": 300},
            "networks": {"default": null, "front": {"aliases": ["w"], "priority": 3}},
            "x-mine": {"a": 1}
        });
        let got = paths(&body);
        let find = |p: &str| got.iter().find(|(path, _)| path == p).map(|(_, k)| *k);
        assert_eq!(find("image"), Some(Some("image")));
        assert_eq!(find("environment.A"), Some(Some("environment.*")));
        assert_eq!(
            find("environment.B"),
            Some(Some("environment.*")),
            "an unset variable is still a key"
        );
        assert_eq!(find("ports[0].target"), Some(Some("ports[].target")));
        assert_eq!(find("ports[0].host_ip"), Some(None));
        assert_eq!(
            find("ulimits.nofile"),
            Some(Some("ulimits.*")),
            "a map whose values are the key's own"
        );
        assert_eq!(find("ulimits.nproc"), Some(Some("ulimits.*")));
        assert_eq!(find("cap_add"), Some(Some("cap_add")));
        assert_eq!(find("build"), Some(Some("build.**")), "everything under it is one key");
        assert_eq!(find("blkio_config.weight"), Some(None), "not in the table");
        assert_eq!(find("networks.default"), Some(Some("networks.*")));
        assert_eq!(find("networks.front.aliases"), Some(Some("networks.*.aliases")));
        assert_eq!(find("networks.front.priority"), Some(None));
        assert_eq!(find("command"), None, "null: not set");
        assert!(
            got.iter().all(|(p, _)| !p.starts_with("x-")),
            "extensions are not settings"
        );
    }
}
