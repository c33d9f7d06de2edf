//! A container's label tree typed by traefik's option schema: strings,
//! booleans, integers, lists, maps and blocks, each label checked.

use super::{
    dynamic::{DynamicMap, DynamicValue},
    labels::{Container, LabelNode},
    parse_bool,
    schema::{Fields, OptionType},
};

impl Container<'_, '_> {
    /// The options of `node`, a block with `fields`.
    pub(super) fn decode(&mut self, node: &LabelNode, fields: Fields) -> DynamicMap {
        let mut body = DynamicMap::new();
        for child in &node.children {
            let Some((name, kind)) = fields.iter().find(|(f, _)| f.eq_ignore_ascii_case(&child.name)) else {
                self.error(&child.label, format!("unknown option `{}`", child.name));
                continue;
            };
            if let Some(y) = self.decode_option(child, *kind) {
                body.insert(name.to_string(), y);
            }
        }
        body
    }

    /// One option's value, read as `kind` says.
    fn decode_option(&mut self, node: &LabelNode, kind: OptionType) -> Option<DynamicValue> {
        let leaf = match kind {
            OptionType::Str | OptionType::Bool | OptionType::Int | OptionType::List => {
                if let Some(c) = node.children.first() {
                    self.error(&c.label, format!("`{}` takes a value, not options", node.name));
                    return None;
                }
                node.value.clone().unwrap_or_default()
            }
            _ => String::new(),
        };
        match kind {
            OptionType::Str => Some(DynamicValue::Str(leaf)),
            OptionType::Bool => match parse_bool(&leaf) {
                Some(b) => Some(DynamicValue::Bool(b)),
                None => {
                    self.error(&node.label, format!("`{leaf}` is not a boolean"));
                    None
                }
            },
            OptionType::Int => match leaf.parse::<i64>() {
                Ok(i) => Some(DynamicValue::Int(i)),
                Err(_) => {
                    self.error(&node.label, format!("`{leaf}` is not an integer"));
                    None
                }
            },
            // An empty value leaves the list unset, as in traefik.
            OptionType::List if leaf.is_empty() => None,
            OptionType::List => Some(DynamicValue::List(
                leaf.split(',')
                    .map(|s| DynamicValue::Str(s.trim().to_string()))
                    .collect(),
            )),
            OptionType::Map => {
                if node.value.is_some() {
                    self.error(&node.label, "expects `.KEY=value` sub-labels");
                    return None;
                }
                let mut map = DynamicMap::new();
                self.flatten_map("", node, &mut map);
                Some(DynamicValue::Map(map))
            }
            OptionType::Any => Some(as_written(node)),
            OptionType::AllowEmpty(fields) => match &node.value {
                // `=false` (anything but true) disables the block.
                Some(v) if !v.eq_ignore_ascii_case("true") => None,
                _ => Some(DynamicValue::Map(self.decode(node, fields))),
            },
            OptionType::Block(fields) => {
                if node.value.is_some() {
                    self.error(&node.label, "expects sub-options, not a value");
                    return None;
                }
                Some(DynamicValue::Map(self.decode(node, fields)))
            }
            OptionType::BlockList(fields) => {
                if node.value.is_some() {
                    self.error(&node.label, "expects `[N].option` sub-labels");
                    return None;
                }
                let mut list = Vec::new();
                for item in &node.children {
                    let index = item.name.strip_prefix('[').and_then(|i| i.strip_suffix(']'));
                    if !index.is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())) {
                        self.error(&item.label, format!("`{}` is not an index like [0]", item.name));
                        continue;
                    }
                    if item.value.is_some() {
                        self.error(&item.label, "expects sub-options, not a value");
                        continue;
                    }
                    list.push(DynamicValue::Map(self.decode(item, fields)));
                }
                Some(DynamicValue::List(list))
            }
        }
    }

    /// A map option's sub-labels, `KEY.SUB=value`, as dotted keys.
    fn flatten_map(&mut self, prefix: &str, node: &LabelNode, map: &mut DynamicMap) {
        for c in &node.children {
            let key = if prefix.is_empty() {
                c.name.clone()
            } else {
                format!("{prefix}.{}", c.name)
            };
            if c.children.is_empty() {
                map.insert(key, DynamicValue::Str(c.value.clone().unwrap_or_default()));
            } else {
                if c.value.is_some() {
                    self.error(&c.label, "has both a value and sub-keys");
                }
                self.flatten_map(&key, c, map);
            }
        }
    }
}

/// Plugin configuration: kept as written.
fn as_written(node: &LabelNode) -> DynamicValue {
    if node.children.is_empty() {
        return DynamicValue::Str(node.value.clone().unwrap_or_default());
    }
    DynamicValue::Map(node.children.iter().map(|c| (c.name.clone(), as_written(c))).collect())
}

#[cfg(test)]
mod tests {
    use super::super::{convert, testing::*};

    #[test]
    fn middlewares_carry_lists_scalars_and_maps() {
        let l = labels(&[
            ("traefik.http.routers.r.rule", "PathPrefix(`/api`)"),
            ("traefik.http.routers.r.middlewares", "strip@docker, auth,secure"),
            ("traefik.http.routers.r.priority", "10"),
            ("traefik.http.routers.r.tls", "true"),
            ("traefik.http.routers.r.tls.domains[0].main", "example.com"),
            (
                "traefik.http.routers.r.tls.domains[0].sans",
                "a.example.com,b.example.com",
            ),
            ("traefik.http.middlewares.strip.stripprefix.prefixes", "/api,/v1"),
            ("traefik.http.middlewares.strip.stripprefix.forceSlash", "false"),
            (
                "traefik.http.middlewares.auth.basicauth.users",
                "u:$$apr1$$x,v:$$apr1$$y",
            ),
            (
                "traefik.http.middlewares.secure.headers.customrequestheaders.X-Script-Name",
                "/api",
            ),
            ("traefik.http.middlewares.secure.headers.stsSeconds", "31536000"),
            (
                "traefik.http.middlewares.secure.headers.accesscontrolallowmethods",
                "GET,OPTIONS",
            ),
            ("traefik.http.middlewares.all.chain.middlewares", "strip@docker,auth"),
            ("traefik.http.middlewares.zip.compress", "true"),
            (
                "traefik.http.middlewares.allow.ipallowlist.sourcerange",
                "10.0.0.0/8, 192.168.0.0/16",
            ),
        ]);
        let out = convert(
            "demo",
            "proxy",
            &file(EXPOSED),
            &[backend("a", &l, 2, &[80])],
            DYNAMIC,
            &CERT,
        )
        .unwrap();
        insta::assert_snapshot!(routes(&out), @r"
        http:
          middlewares:
            all:
              chain:
                middlewares:
                - strip
                - auth
            allow:
              ipAllowList:
                sourceRange:
                - 10.0.0.0/8
                - 192.168.0.0/16
            auth:
              basicAuth:
                users:
                - u:$$apr1$$x
                - v:$$apr1$$y
            secure:
              headers:
                accessControlAllowMethods:
                - GET
                - OPTIONS
                customRequestHeaders:
                  X-Script-Name: /api
                stsSeconds: 31536000
            strip:
              stripPrefix:
                forceSlash: false
                prefixes:
                - /api
                - /v1
            zip:
              compress: {}
          routers:
            r:
              middlewares:
              - strip
              - auth
              - secure
              priority: 10
              rule: PathPrefix(`/api`)
              service: a-demo
              tls:
                domains:
                - main: example.com
                  sans:
                  - a.example.com
                  - b.example.com
          services:
            a-demo:
              loadBalancer:
                servers:
                - url: http://172.18.0.2:80
        ");
        assert!(out.notes.iter().any(|n| n.contains("@docker")), "{:?}", out.notes);
        // What it writes loads back as YAML.
        let _: serde_yaml::Value = serde_yaml::from_str(&out.dynamic_yaml).unwrap();
    }
}
