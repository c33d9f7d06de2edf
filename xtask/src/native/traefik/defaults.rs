//! What the docker provider adds to a container's labels: a default service
//! and router, the servers' addresses from the container's address and
//! ports, the routers' default rule and service.

use super::{
    dynamic::{DynamicMap, DynamicValue},
    labels::{Container, ContainerConfig, Definition},
    provider::DockerProvider,
    schema::{Kind, Protocol},
};

impl Container<'_, '_> {
    /// What the docker provider adds: default services and routers, the
    /// servers' addresses, the routers' default rule and service. False when
    /// the docker provider would skip the container.
    pub(super) fn build(&mut self, docker: &DockerProvider, conf: &mut ContainerConfig, labelled: bool) -> bool {
        let has = |conf: &ContainerConfig, p, k| conf.get(&(p, k)).is_some_and(|m| !m.is_empty());
        let mut tcp_or_udp = false;
        for proto in [Protocol::Tcp, Protocol::Udp] {
            if !has(conf, proto, Kind::Routers) && !has(conf, proto, Kind::Services) {
                continue;
            }
            tcp_or_udp = true;
            if !self.services(proto, conf, labelled) {
                return false;
            }
            let services: Vec<String> = conf[&(proto, Kind::Services)].keys().cloned().collect();
            let routers = conf.entry((proto, Kind::Routers)).or_default();
            let mut errors = Vec::new();
            for (name, router) in routers.iter_mut() {
                if proto == Protocol::Tcp
                    && router
                        .body
                        .get("rule")
                        .and_then(DynamicValue::str)
                        .is_none_or(str::is_empty)
                {
                    errors.push((
                        format!("{}.rule", router.label),
                        format!("TCP router `{name}` has no rule (traefik drops it); e.g. HostSNI(`*`)"),
                    ));
                }
                if let Err(e) = default_service(name, router, &services) {
                    errors.push(e);
                }
            }
            for (label, e) in errors {
                self.error(&label, e);
            }
        }
        if tcp_or_udp
            && !has(conf, Protocol::Http, Kind::Routers)
            && !has(conf, Protocol::Http, Kind::Services)
            && !has(conf, Protocol::Http, Kind::Middlewares)
        {
            return true;
        }
        if !self.services(Protocol::Http, conf, labelled) {
            return false;
        }
        let services: Vec<String> = conf[&(Protocol::Http, Kind::Services)].keys().cloned().collect();
        let routers = conf.entry((Protocol::Http, Kind::Routers)).or_default();
        if routers.is_empty() {
            if services.len() > 1 {
                self.notes.push(format!(
                    "service `{}`: no router: it defines several traefik services and no router, \
                     so the docker provider makes none",
                    self.backend.service
                ));
            } else {
                routers.insert(
                    self.name.clone(),
                    Definition {
                        label: format!("traefik.http.routers.{}", self.name),
                        body: DynamicMap::new(),
                    },
                );
            }
        }
        let mut errors = Vec::new();
        for (name, router) in routers.iter_mut() {
            if router
                .body
                .get("rule")
                .and_then(DynamicValue::str)
                .is_none_or(str::is_empty)
            {
                let rule = docker.default_rule.eval(&self.name);
                if rule.is_empty() {
                    errors.push((
                        format!("{}.rule", router.label),
                        "the default rule is empty".to_string(),
                    ));
                }
                router.body.insert("rule".into(), DynamicValue::Str(rule));
                router.body.insert("__default_rule".into(), DynamicValue::Bool(true));
            }
            if let Err(e) = default_service(name, router, &services) {
                errors.push(e);
            }
        }
        for (label, e) in errors {
            self.error(&label, e);
        }
        true
    }

    /// Adds the default service if the container defines none, and the
    /// servers. False when the container is skipped (no port, not labelled).
    fn services(&mut self, proto: Protocol, conf: &mut ContainerConfig, labelled: bool) -> bool {
        let p = proto.key();
        let services = conf.entry((proto, Kind::Services)).or_default();
        if services.is_empty() {
            let mut body = DynamicMap::new();
            body.insert("loadBalancer".into(), DynamicValue::Map(DynamicMap::new()));
            services.insert(
                self.name.clone(),
                Definition {
                    label: format!("traefik.{p}.services.{}", self.name),
                    body,
                },
            );
        }
        let address = &self.backend.address;
        let host = if address.contains(':') {
            format!("[{address}]")
        } else {
            address.clone()
        };
        let exposed = &self.backend.exposed_tcp;
        let mut errors = Vec::new();
        for (name, service) in services.iter_mut() {
            let Some(DynamicValue::Map(lb)) = service.body.get_mut("loadBalancer") else {
                errors.push((
                    service.label.clone(),
                    format!("{p} service `{name}` has no load balancer"),
                ));
                continue;
            };
            let mut server = match lb.remove("server") {
                Some(DynamicValue::Map(s)) => s,
                _ => DynamicMap::new(),
            };
            let port_label = format!("{}.loadbalancer.server.port", service.label);
            if server.contains_key("url") {
                if server.contains_key("port") || server.contains_key("scheme") {
                    errors.push((
                        format!("{}.loadbalancer.server.url", service.label),
                        "a server with a url takes no port or scheme".to_string(),
                    ));
                }
            } else {
                let port = match server.remove("port") {
                    Some(DynamicValue::Str(port)) => match port.parse::<u16>() {
                        Ok(p) if p > 0 => p,
                        _ => {
                            errors.push((port_label, format!("`{port}` is not a port number")));
                            continue;
                        }
                    },
                    _ if proto != Protocol::Udp && exposed.len() == 1 => exposed[0],
                    _ if proto != Protocol::Udp && exposed.is_empty() && !labelled => {
                        // What traefik does with an unlabelled container it
                        // exposes by default and cannot find a port for.
                        self.notes.push(format!(
                            "service `{}`: no route: it exposes no port and has no traefik labels \
                             (the docker provider skips it too)",
                            self.backend.service
                        ));
                        return false;
                    }
                    _ => {
                        let why = match (proto, exposed.len()) {
                            (Protocol::Udp, _) => "UDP ports are not known".to_string(),
                            (_, 0) => "the service exposes no TCP port".to_string(),
                            _ => format!(
                                "the service exposes several TCP ports ({})",
                                exposed.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
                            ),
                        };
                        errors.push((
                            port_label,
                            format!("{why}: set traefik.{p}.services.{name}.loadbalancer.server.port"),
                        ));
                        continue;
                    }
                };
                match proto {
                    Protocol::Http => {
                        let scheme = match server.remove("scheme") {
                            Some(DynamicValue::Str(s)) if !s.is_empty() => s,
                            _ => "http".into(),
                        };
                        server.insert("url".into(), DynamicValue::Str(format!("{scheme}://{host}:{port}")));
                    }
                    Protocol::Tcp | Protocol::Udp => {
                        server.insert("address".into(), DynamicValue::Str(format!("{host}:{port}")));
                    }
                }
            }
            lb.insert("servers".into(), DynamicValue::List(vec![DynamicValue::Map(server)]));
        }
        for (label, e) in errors {
            self.error(&label, e);
        }
        true
    }
}

/// A router without `service` gets the container's only service.
fn default_service(name: &str, router: &mut Definition, services: &[String]) -> Result<(), (String, String)> {
    if router
        .body
        .get("service")
        .and_then(DynamicValue::str)
        .is_some_and(|s| !s.is_empty())
    {
        return Ok(());
    }
    match services {
        [only] => {
            router.body.insert("service".into(), DynamicValue::Str(only.clone()));
            Ok(())
        }
        _ => Err((
            format!("{}.service", router.label),
            format!(
                "router `{name}` has no service and the container defines several ({}); traefik would drop it",
                services.join(", ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{convert, testing::*};

    #[test]
    fn exposed_by_default_routes_every_service_on_the_default_rule() {
        let none = labels(&[("com.docker.compose.oneoff", "False")]);
        let off = labels(&[("traefik.enable", "false")]);
        let backends = [
            backend("web", &none, 2, &[80]),
            backend("proxy", &none, 3, &[80]),
            backend("hidden", &off, 4, &[80]),
            backend("worker", &none, 5, &[]),
        ];
        let out = convert("demo", "proxy", &file(EXPOSED), &backends, DYNAMIC, &CERT).unwrap();
        insta::assert_snapshot!(routes(&out), @r"
        http:
          routers:
            proxy-demo:
              rule: Host(`proxy-demo`)
              service: proxy-demo
            web-demo:
              rule: Host(`web-demo`)
              service: web-demo
          services:
            proxy-demo:
              loadBalancer:
                servers:
                - url: http://172.18.0.3:80
            web-demo:
              loadBalancer:
                servers:
                - url: http://172.18.0.2:80
        ");
        assert!(
            out.notes.iter().any(|n| n.contains("`worker`: no route")),
            "{:?}",
            out.notes
        );
        assert!(out.notes.iter().any(|n| n.contains("recursion")), "{:?}", out.notes);
    }

    #[test]
    fn the_port_comes_from_the_label_else_the_only_exposed_one() {
        let labelled = labels(&[
            ("traefik.http.services.api.loadbalancer.server.port", "8080"),
            ("traefik.http.services.api.loadbalancer.server.scheme", "h2c"),
        ]);
        let plain = BTreeMap::new();
        let out = dynamic(
            &file(EXPOSED),
            &[
                backend("a", &labelled, 2, &[80, 8080]),
                backend("b", &plain, 3, &[3000]),
            ],
        );
        assert!(out.contains("url: h2c://172.18.0.2:8080"), "{out}");
        assert!(out.contains("url: http://172.18.0.3:3000"), "{out}");
        // The router of a container with one named service and no router is
        // named after the container, and routes to that service.
        assert!(
            out.contains("a-demo:\n      rule: Host(`a-demo`)\n      service: api\n"),
            "{out}"
        );

        let errs = errors(
            &file(EXPOSED),
            &[
                backend("a", &plain, 2, &[80, 443]),
                backend("b", &labelled, 3, &[]),
                backend("c", &plain, 4, &[]),
            ],
        );
        assert_eq!(
            errs,
            [
                "service `a`: label `traefik.http.services.a-demo.loadbalancer.server.port`: the service exposes \
                 several TCP ports (80, 443): set traefik.http.services.a-demo.loadbalancer.server.port",
            ]
        );
        let enabled = labels(&[("traefik.enable", "true")]);
        let errs = errors(&file(EXPOSED), &[backend("c", &enabled, 4, &[])]);
        assert_eq!(
            errs,
            [
                "service `c`: label `traefik.http.services.c-demo.loadbalancer.server.port`: the service exposes \
                 no TCP port: set traefik.http.services.c-demo.loadbalancer.server.port",
            ]
        );
    }

    #[test]
    fn a_router_without_service_needs_a_single_service() {
        let two = labels(&[
            ("traefik.http.routers.r.rule", "Host(`r`)"),
            ("traefik.http.services.s1.loadbalancer.server.port", "80"),
            ("traefik.http.services.s2.loadbalancer.server.port", "81"),
        ]);
        assert_eq!(
            errors(&file(EXPOSED), &[backend("a", &two, 2, &[80])]),
            [
                "service `a`: label `traefik.http.routers.r.service`: router `r` has no service and the container \
                 defines several (s1, s2); traefik would drop it"
            ]
        );
        let mut named = two.clone();
        named.insert("traefik.http.routers.r.service".into(), "s2".into());
        let out = dynamic(&file(EXPOSED), &[backend("a", &named, 2, &[80])]);
        assert!(
            out.contains("service: s2") && out.contains("http://172.18.0.2:81"),
            "{out}"
        );
        // Several services and no router: the docker provider makes none.
        let mut no_router = two.clone();
        no_router.remove("traefik.http.routers.r.rule");
        let out = dynamic(&file(EXPOSED), &[backend("a", &no_router, 2, &[80])]);
        assert!(!out.contains("routers"), "{out}");
    }

    #[test]
    fn tcp_and_udp() {
        let l = labels(&[
            ("traefik.tcp.routers.pg.rule", "HostSNI(`*`)"),
            ("traefik.tcp.routers.pg.entrypoints", "postgres"),
            ("traefik.tcp.routers.pg.tls.passthrough", "true"),
            ("traefik.udp.routers.dns.entrypoints", "dns"),
            ("traefik.udp.services.dns.loadbalancer.server.port", "53"),
        ]);
        let out = dynamic(&file(EXPOSED), &[backend("db", &l, 2, &[5432])]);
        insta::assert_snapshot!(out, @r"
        tcp:
          routers:
            pg:
              entryPoints:
              - postgres
              rule: HostSNI(`*`)
              service: db-demo
              tls:
                passthrough: true
          services:
            db-demo:
              loadBalancer:
                servers:
                - address: 172.18.0.2:5432
        udp:
          routers:
            dns:
              entryPoints:
              - dns
              service: dns
          services:
            dns:
              loadBalancer:
                servers:
                - address: 172.18.0.2:53
        ");
    }
}
