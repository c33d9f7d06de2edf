//! traefik's static configuration, a YAML file or command-line flags: the
//! docker provider's options read out of it, and the file provider put in its
//! place.

use serde_yaml::{Mapping, Value};

use super::{
    parse_bool,
    provider::{docker_option, docker_options, throttle_note, DockerProvider, NO_THROTTLE, THROTTLE},
};

/// traefik's static configuration: one source only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StaticConfig {
    /// A YAML file, and where it is in traefik's container.
    File { path: String, yaml: String },
    /// Command-line flags (`--providers.docker…`).
    Args(Vec<String>),
}

/// The error when there is no docker provider to replace.
fn no_docker(traefik: &str) -> String {
    format!("traefik service `{traefik}` does not use the docker provider; nothing to convert")
}

/// The entry of `m` whose key is `key` in any case, as traefik matches keys.
fn get_ignoring_case<'m>(m: &'m Mapping, key: &str) -> Option<(&'m Value, &'m Value)> {
    m.iter()
        .find(|(k, _)| k.as_str().is_some_and(|k| k.eq_ignore_ascii_case(key)))
}

/// Flattens a YAML option tree to (dotted path, value as traefik reads it).
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, v) in m {
                let k = yaml_scalar(k).unwrap_or_default();
                flatten(&if prefix.is_empty() { k } else { format!("{prefix}.{k}") }, v, out);
            }
        }
        // traefik skips null values; `docker: {}` enables the provider.
        Value::Null => {}
        Value::Mapping(_) if prefix.is_empty() => {}
        v => out.push((prefix.to_string(), yaml_scalar(v).unwrap_or_else(|| "true".into()))),
    }
}

/// A YAML scalar as the text traefik reads; None for anything else.
fn yaml_scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Rewrites a YAML static configuration at `path` in traefik's container.
pub(super) fn static_file(
    traefik: &str,
    path: &str,
    yaml: &str,
    dynamic_path: &str,
    notes: &mut Vec<String>,
) -> Result<(DockerProvider, StaticConfig), String> {
    let at = format!("traefik service `{traefik}`: {path}");
    if !(path.ends_with(".yml") || path.ends_with(".yaml")) {
        return Err(format!("{at}: only a YAML static configuration can be converted"));
    }
    let mut root: Value = serde_yaml::from_str(yaml).map_err(|e| format!("{at}: {e}"))?;
    let providers = root
        .as_mapping_mut()
        .and_then(|m| {
            let key = get_ignoring_case(m, "providers")?.0.clone();
            m.get_mut(&key)
        })
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| no_docker(traefik))?;
    let (key, value) = get_ignoring_case(providers, "docker").ok_or_else(|| no_docker(traefik))?;
    let (key, value) = (key.clone(), value.clone());
    match &value {
        Value::Mapping(_) => {}
        Value::Null => return Err(no_docker(traefik)), // traefik skips null values
        _ => return Err(format!("{at}: providers.docker is not a mapping")),
    }
    if get_ignoring_case(providers, "file").is_some() {
        return Err(format!(
            "{at}: already has a file provider; traefik takes only one, so the docker one cannot become it"
        ));
    }
    let mut options = Vec::new();
    flatten("", &value, &mut options);
    let docker = docker_options(traefik, &options, notes)?;
    providers.remove(&key);
    if let Some((key, value)) = get_ignoring_case(providers, THROTTLE).map(|(k, v)| (k.clone(), v.clone())) {
        throttle_note(yaml_scalar(&value), notes);
        providers.remove(&key);
    }
    providers.insert(THROTTLE.into(), NO_THROTTLE.into());
    let mut file = Mapping::new();
    file.insert("filename".into(), dynamic_path.into());
    file.insert("watch".into(), false.into());
    providers.insert("file".into(), Value::Mapping(file));
    let yaml = serde_yaml::to_string(&root).map_err(|e| format!("{at}: {e}"))?;
    Ok((
        docker,
        StaticConfig::File {
            path: path.to_string(),
            yaml,
        },
    ))
}

/// Rewrites traefik's command-line flags.
pub(super) fn static_args(
    traefik: &str,
    args: &[String],
    dynamic_path: &str,
    notes: &mut Vec<String>,
) -> Result<(DockerProvider, StaticConfig), String> {
    let mut kept = Vec::new();
    let mut options = Vec::new();
    let mut enabled = None;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(flag) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|f| !f.is_empty())
        else {
            kept.push(arg.clone());
            continue;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let lower = name.to_ascii_lowercase();
        let at = format!("traefik service `{traefik}`: flag `{arg}`");
        // A non-boolean flag's value: after `=`, else the next argument.
        let mut given_or_next = |value: Option<String>| match value {
            Some(v) => Ok(v),
            None => {
                let v = args.get(i).ok_or_else(|| format!("{at}: needs a value"))?.clone();
                i += 1;
                Ok::<_, String>(v)
            }
        };
        if lower == format!("providers.{}", THROTTLE.to_ascii_lowercase()) {
            throttle_note(Some(given_or_next(value)?), notes);
            continue;
        }
        if lower == "configfile" {
            return Err(format!(
                "{at}: the static configuration is in a file; convert that file"
            ));
        }
        if lower == "providers.file" || lower.starts_with("providers.file.") {
            return Err(format!(
                "{at}: already has a file provider; traefik takes only one, so the docker one cannot become it"
            ));
        }
        let option = if lower == "providers.docker" {
            None
        } else if let Some(option) = lower.strip_prefix("providers.docker.") {
            Some(option)
        } else {
            kept.push(arg.clone());
            continue;
        };
        let is_bool = match option {
            None => true,
            Some(o) => {
                docker_option(o)
                    .ok_or_else(|| format!("{at}: not a docker provider option"))?
                    .1
            }
        };
        let value = match value {
            Some(v) => v,
            None if is_bool => {
                // traefik takes no separate value for a boolean flag and
                // stops reading flags at the next plain word.
                if args.get(i).is_some_and(|next| !next.starts_with('-')) {
                    return Err(format!("{at}: a boolean flag takes `=value`, not `{arg} {}`", args[i]));
                }
                "true".to_string()
            }
            None => given_or_next(None)?,
        };
        match option {
            None => enabled = Some(parse_bool(&value).ok_or_else(|| format!("{at}: `{value}` is not a boolean"))?),
            Some(_) => {
                options.push((name["providers.docker.".len()..].to_string(), value));
                enabled.get_or_insert(true);
            }
        }
    }
    // `--providers.docker=false` turns it off even with options set.
    if enabled != Some(true) {
        return Err(no_docker(traefik));
    }
    let docker = docker_options(traefik, &options, notes)?;
    kept.push(format!("--providers.{THROTTLE}={NO_THROTTLE}"));
    kept.push(format!("--providers.file.filename={dynamic_path}"));
    Ok((docker, StaticConfig::Args(kept)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{convert, testing::*};
    use super::StaticConfig;

    #[test]
    fn command_line_flags() {
        let args = |a: &[&str]| StaticConfig::Args(a.iter().map(|s| s.to_string()).collect());
        let static_config = args(&[
            "--api.insecure=true",
            "--providers.docker",
            "--providers.docker.exposedByDefault=false",
            "--providers.docker.endpoint",
            "unix:///var/run/docker.sock",
            "--entrypoints.web.address=:80",
            "--providers.docker.defaultrule",
            "Host(`{{ .Name }}.localhost`)",
            "--providers.providersThrottleDuration",
            "2s",
        ]);
        let on = labels(&[("traefik.enable", "true")]);
        let none = BTreeMap::new();
        let out = convert(
            "demo",
            "proxy",
            &static_config,
            &[backend("web", &on, 2, &[80]), backend("db", &none, 3, &[5432])],
            DYNAMIC,
            &CERT,
        )
        .unwrap();
        assert_eq!(
            out.static_config,
            args(&[
                "--api.insecure=true",
                "--entrypoints.web.address=:80",
                "--providers.providersThrottleDuration=0s",
                "--providers.file.filename=/etc/traefik/dynamic.yml",
            ])
        );
        assert_eq!(
            out.notes[0],
            "providers.providersThrottleDuration: 2s becomes 0s: the file provider sends its configuration once"
        );
        assert!(
            out.dynamic_yaml.contains("rule: Host(`web-demo.localhost`)"),
            "{}",
            out.dynamic_yaml
        );
        assert!(!out.dynamic_yaml.contains("db-demo"), "{}", out.dynamic_yaml);

        let err = |a: &[&str]| convert("demo", "proxy", &args(a), &[], DYNAMIC, &CERT).unwrap_err();
        assert_eq!(
            err(&["--api.insecure=true"]),
            ["traefik service `proxy` does not use the docker provider; nothing to convert"]
        );
        assert_eq!(
            err(&["--providers.docker=false", "--providers.docker.network=x"]),
            ["traefik service `proxy` does not use the docker provider; nothing to convert"]
        );
        assert!(err(&["--providers.docker.constraints=Label(`a`,`b`)"])[0].contains("constraints"));
        assert!(err(&["--providers.docker.exposedbydefault", "false"])[0].contains("takes `=value`"));
        assert!(err(&["--providers.docker.defaultRule={{ index .Labels \"x\" }}"])[0].contains("only"));
    }

    #[test]
    fn static_file_options() {
        let err = |yaml: &str| convert("demo", "proxy", &file(yaml), &[], DYNAMIC, &CERT).unwrap_err();
        assert_eq!(
            err("entryPoints: {}\n"),
            ["traefik service `proxy` does not use the docker provider; nothing to convert"]
        );
        assert!(err("providers:\n  docker:\n    constraints: Label(`a`,`b`)\n")[0].contains("constraints"));
        assert!(err("providers:\n  docker:\n    allowEmptyServices: true\n")[0].contains("allowEmptyServices"));
        assert!(err("providers:\n  docker:\n    pollInterval: 5s\n")[0].contains("pollInterval"));
        assert!(err("providers:\n  docker: {}\n  file:\n    directory: /x\n")[0].contains("file provider"));
        let out = convert(
            "demo",
            "proxy",
            &file("providers:\n  docker:\n    watch: true\n    network: web\n    useBindPortIP: false\n"),
            &[],
            DYNAMIC,
            &CERT,
        )
        .unwrap();
        assert_eq!(out.notes.len(), 3, "{:?}", out.notes);
        // Nothing routed: still a file the file provider loads.
        assert_eq!(routes(&out), "");
    }
}
