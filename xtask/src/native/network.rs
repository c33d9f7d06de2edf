//! The app's networks, as a Docker engine would make them, planned at build
//! time: every compose network a Linux bridge in the VM with its subnet, each
//! service its own network namespace with one veth per network and addresses
//! given in compose's order, names and aliases in each service's /etc/hosts,
//! published ports DNATed from the VM's eth0, outbound traffic masqueraded.
//! The plan becomes a script for `ip` and one `nft` ruleset, which the
//! `netns` onboot container applies before any service starts.

use std::{collections::BTreeMap, fmt::Write, net::Ipv4Addr};

use crate::app::compose::{App, Port};

/// A compose network as a bridge.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// compose's key for it (`default`, `front`, …).
    pub name: String,
    pub bridge: String,
    pub subnet: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// `internal: true`: no way out of the network.
    pub internal: bool,
}

/// A service's place on one network.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub network: usize,
    /// The interface in the service's namespace (`eth0`, `eth1`, … in order).
    pub interface: String,
    pub address: Ipv4Addr,
    pub aliases: Vec<String>,
}

/// How a service is networked.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Its own namespace on the app's networks (Docker's default).
    Bridged(Vec<Attachment>),
    /// `network_mode: host`: the VM's own network.
    Host,
    /// `network_mode: none`: a namespace with only loopback.
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub networks: Vec<Network>,
    /// By service name, in compose's order.
    pub services: Vec<(String, Mode)>,
    /// Published ports: (port, service address).
    pub ports: Vec<(Port, Ipv4Addr)>,
}

/// Where the VM keeps a service's network namespace.
pub fn netns_path(service: &str) -> String {
    format!("/run/netns/{service}")
}

/// Plan the networks of `app`. Every problem is returned, each naming the
/// service or network.
pub fn plan(app: &App, published: &[(Port, String)]) -> Result<Plan, Vec<String>> {
    let mut problems = Vec::new();
    let mut networks: Vec<Network> = Vec::new();
    for (i, (name, body)) in app.networks.iter().enumerate() {
        if body.external {
            problems.push(format!(
                "network `{name}` is external: nothing outside the VM can provide it"
            ));
            continue;
        }
        if let Some(driver) = body.driver.as_deref().filter(|d| *d != "bridge") {
            problems.push(format!(
                "network `{name}`: driver `{driver}` (only `bridge` is carried over)"
            ));
        }
        let (subnet, prefix, gateway) = match body.ipam.config.first() {
            None => {
                // Docker gives compose networks 172.18.0.0/16, 172.19.0.0/16, …
                let net = Ipv4Addr::new(172, 18 + i as u8, 0, 0);
                (net, 16, Ipv4Addr::new(172, 18 + i as u8, 0, 1))
            }
            Some(cfg) => match parse_subnet(cfg.subnet.as_deref().unwrap_or_default()) {
                Ok((net, prefix)) => {
                    let gateway = match cfg.gateway.as_deref() {
                        Some(g) => g.parse().unwrap_or_else(|_| {
                            problems.push(format!("network `{name}`: gateway `{g}` is not an IPv4 address"));
                            net
                        }),
                        None => offset(net, 1),
                    };
                    (net, prefix, gateway)
                }
                Err(e) => {
                    problems.push(format!("network `{name}`: {e}"));
                    continue;
                }
            },
        };
        networks.push(Network {
            name: name.clone(),
            bridge: format!("lkc{i}"),
            subnet,
            prefix,
            gateway,
            internal: body.internal,
        });
    }
    let mut next: Vec<u32> = vec![2; networks.len()];
    let mut taken: Vec<Vec<Ipv4Addr>> = networks.iter().map(|n| vec![n.gateway]).collect();
    // Fixed addresses first, so the ones handed out in order go around them.
    for service in &app.services {
        for (net, att) in &service.networks {
            if let (Some(i), Some(a)) = (
                networks.iter().position(|n| &n.name == net),
                att.ipv4_address.as_deref().and_then(|a| a.parse().ok()),
            ) {
                taken[i].push(a);
            }
        }
    }
    let mut out = Vec::new();
    for service in &app.services {
        let name = &service.name;
        let mode = match service.network_mode.as_deref() {
            Some("host") => Mode::Host,
            Some("none") => Mode::None,
            Some(other) => {
                problems.push(format!(
                    "service `{name}`: network_mode `{other}` (only `host` and `none` are carried over)"
                ));
                continue;
            }
            None => {
                let mut attachments = Vec::new();
                for (net, att) in &service.networks {
                    let Some(i) = networks.iter().position(|n| &n.name == net) else {
                        problems.push(format!("service `{name}`: network `{net}` is not declared"));
                        continue;
                    };
                    let address = match att.ipv4_address.as_deref() {
                        Some(a) => match a.parse::<Ipv4Addr>() {
                            Ok(a) if in_subnet(a, &networks[i]) => a,
                            _ => {
                                problems.push(format!(
                                    "service `{name}`: ipv4_address `{a}` is not in network `{net}` ({}/{})",
                                    networks[i].subnet, networks[i].prefix
                                ));
                                continue;
                            }
                        },
                        None => loop {
                            let a = offset(networks[i].subnet, next[i]);
                            next[i] += 1;
                            if !taken[i].contains(&a) {
                                taken[i].push(a);
                                break a;
                            }
                        },
                    };
                    let aliases = att.aliases.clone();
                    attachments.push(Attachment {
                        network: i,
                        interface: format!("eth{}", attachments.len()),
                        address,
                        aliases,
                    });
                }
                // The network with a way out first: it holds the default route.
                attachments.sort_by_key(|a| networks[a.network].internal);
                for (n, a) in attachments.iter_mut().enumerate() {
                    a.interface = format!("eth{n}");
                }
                Mode::Bridged(attachments)
            }
        };
        out.push((name.clone(), mode));
    }
    let mut ports = Vec::new();
    for (port, service) in published {
        match out.iter().find(|(n, _)| n == service).map(|(_, m)| m) {
            Some(Mode::Bridged(atts)) if !atts.is_empty() => ports.push((*port, atts[0].address)),
            Some(Mode::Host) => {} // it listens on the VM's own ports
            Some(_) => problems.push(format!(
                "service `{service}` publishes port {} but has no network to publish it from",
                port.published
            )),
            None => {}
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Plan {
        networks,
        services: out,
        ports,
    })
}

fn parse_subnet(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("subnet `{text}` is not an IPv4 CIDR"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("subnet `{text}` is not an IPv4 CIDR (IPv6 is not carried over)"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (8..=30).contains(p))
        .ok_or_else(|| format!("subnet `{text}`: prefix must be 8 to 30"))?;
    Ok((mask(addr, prefix), prefix))
}

fn mask(addr: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(addr) & (u32::MAX << (32 - prefix));
    bits.into()
}

fn offset(net: Ipv4Addr, n: u32) -> Ipv4Addr {
    (u32::from(net) + n).into()
}

fn in_subnet(a: Ipv4Addr, n: &Network) -> bool {
    mask(a, n.prefix) == n.subnet
}

impl Plan {
    pub fn mode(&self, service: &str) -> &Mode {
        &self
            .services
            .iter()
            .find(|(n, _)| n == service)
            .expect("every service is planned")
            .1
    }

    /// A service's first address (where other services and traefik reach it).
    pub fn address(&self, service: &str) -> Option<Ipv4Addr> {
        match self.mode(service) {
            Mode::Bridged(atts) => atts.first().map(|a| a.address),
            Mode::Host => Some(Ipv4Addr::LOCALHOST),
            Mode::None => None,
        }
    }

    /// `/etc/hosts` of `service`: itself, then every service it shares a
    /// network with, under its name, aliases there, container name
    /// (`<project>-<service>-1`), and the aliases `service`'s `links` give
    /// it (`db:database`: (db, database)), as Docker's DNS answers them;
    /// then its `extra_hosts`. A link to a service it shares no network
    /// with is an error, as Docker's.
    pub fn hosts(
        &self,
        project: &str,
        service: &str,
        hostname: &str,
        links: &[(String, String)],
        extra: &[(String, String)],
    ) -> Result<String, String> {
        let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        let mine: Vec<&Attachment> = match self.mode(service) {
            Mode::Bridged(atts) => atts.iter().collect(),
            _ => Vec::new(),
        };
        if let Some(first) = mine.first() {
            let _ = writeln!(out, "{}\t{hostname}", first.address);
        }
        let mut lines: BTreeMap<Ipv4Addr, Vec<String>> = BTreeMap::new();
        for (other, mode) in &self.services {
            let Mode::Bridged(theirs) = mode else { continue };
            for att in theirs {
                if !mine.iter().any(|m| m.network == att.network) {
                    continue;
                }
                let names = lines.entry(att.address).or_default();
                let linked = links
                    .iter()
                    .filter(|(to, _)| to == other)
                    .map(|(_, alias)| alias.clone());
                for n in [other.clone(), format!("{project}-{other}-1")]
                    .into_iter()
                    .chain(att.aliases.iter().cloned())
                    .chain(linked)
                {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
        }
        if let Some((to, _)) = links
            .iter()
            .find(|(to, _)| !lines.values().any(|names| names.contains(to)))
        {
            return Err(format!(
                "`links`: `{to}` shares no network with `{service}`, so it cannot be linked to (as with Docker)"
            ));
        }
        for (addr, names) in lines {
            let _ = writeln!(out, "{addr}\t{}", names.join(" "));
        }
        for (host, addr) in extra {
            let _ = writeln!(out, "{addr}\t{host}");
        }
        Ok(out)
    }

    /// The script the `netns` onboot container runs (busybox sh, iproute2):
    /// one `ip -batch` for the VM's own namespace (bridges, service
    /// namespaces, veth pairs), then one inside each service's namespace
    /// (addresses, links up, default route), then the nftables ruleset. Each
    /// `ip` is a process start, which costs tens of milliseconds under
    /// emulation; a batch stops at its first error, and so does the script.
    pub fn script(&self) -> String {
        let mut root = String::new();
        let mut inside = String::new();
        for n in &self.networks {
            let _ = writeln!(
                root,
                "link add {b} type bridge\naddr add {g}/{p} dev {b}\nlink set {b} up",
                b = n.bridge,
                g = n.gateway,
                p = n.prefix
            );
        }
        for (i, (service, mode)) in self.services.iter().enumerate() {
            let atts: &[Attachment] = match mode {
                Mode::Host => continue,
                Mode::None => &[],
                Mode::Bridged(atts) => atts,
            };
            let _ = writeln!(root, "netns add {service}");
            let mut own = String::from("link set lo up\n");
            for (j, a) in atts.iter().enumerate() {
                let n = &self.networks[a.network];
                let host_end = format!("lkcv{i}n{j}");
                let _ = writeln!(
                    root,
                    "link add {host_end} type veth peer name {ifc} netns {service}\nlink set {host_end} master {b} up",
                    ifc = a.interface,
                    b = n.bridge,
                );
                let _ = writeln!(
                    own,
                    "addr add {a}/{p} dev {ifc}\nlink set {ifc} up",
                    ifc = a.interface,
                    a = a.address,
                    p = n.prefix
                );
            }
            if let Some(a) = atts.first().filter(|a| !self.networks[a.network].internal) {
                let _ = writeln!(own, "route add default via {}", self.networks[a.network].gateway);
            }
            let _ = write!(inside, "/usr/bin/ip -n {service} -batch - <<'EOF'\n{own}EOF\n");
        }
        let mut s = String::from(
            "#!/bin/sh\n# Generated by the xtask from the compose file (native method): the app's\n# networks as a Docker engine would make them. iproute2's ip by its path:\n# busybox sh would run its own `ip` applet, which knows no veth or netns.\nset -e\n",
        );
        if !root.is_empty() {
            let _ = write!(s, "/usr/bin/ip -batch - <<'EOF'\n{root}EOF\n");
        }
        s.push_str(&inside);
        s.push_str("/usr/sbin/nft -f /etc/native/nat.nft\n");
        s
    }

    /// The nftables ruleset: published ports, masquerade, and Docker's
    /// isolation of one network from another and of internal networks.
    pub fn nft(&self) -> String {
        let mut s = String::from(
            "# Generated by the xtask from the compose file (native method).\ntable ip lkc_native\ndelete table ip lkc_native\ntable ip lkc_native {\n",
        );
        s.push_str("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n");
        for (p, addr) in &self.ports {
            let proto = if p.udp { "udp" } else { "tcp" };
            let _ = writeln!(
                s,
                "    iifname \"eth0\" {proto} dport {} dnat to {addr}:{}",
                p.published, p.target
            );
        }
        s.push_str("  }\n  chain output {\n    type nat hook output priority -100; policy accept;\n");
        for (p, addr) in &self.ports {
            let proto = if p.udp { "udp" } else { "tcp" };
            let _ = writeln!(
                s,
                "    fib daddr type local {proto} dport {} dnat to {addr}:{}",
                p.published, p.target
            );
        }
        s.push_str("  }\n  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n");
        for n in self.networks.iter().filter(|n| !n.internal) {
            let _ = writeln!(
                s,
                "    ip saddr {}/{} oifname != \"{}\" masquerade",
                n.subnet, n.prefix, n.bridge
            );
        }
        s.push_str("  }\n  chain forward {\n    type filter hook forward priority filter; policy accept;\n");
        for n in &self.networks {
            if n.internal {
                let _ = writeln!(s, "    iifname \"{b}\" oifname != \"{b}\" drop", b = n.bridge);
                let _ = writeln!(s, "    oifname \"{b}\" iifname != \"{b}\" drop", b = n.bridge);
            }
            for m in &self.networks {
                if m.bridge != n.bridge {
                    let _ = writeln!(s, "    iifname \"{}\" oifname \"{}\" drop", n.bridge, m.bridge);
                }
            }
        }
        s.push_str("  }\n}\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::compose::testing::app;
    use serde_json::json;

    fn two_networks() -> App {
        app(json!({
            "networks": {
                "back": {"ipam": {"config": [{"subnet": "10.5.0.0/24"}]}, "internal": true},
                "front": {"ipam": {}}
            },
            "services": {
                "db": {"networks": {"back": null}},
                "web": {"networks": {"back": {}, "front": {"aliases": ["www"]}}},
                "proxy": {"networks": {"front": {"ipv4_address": "172.19.0.2"}}}
            }
        }))
    }

    fn tcp(published: u16, target: u16) -> Port {
        Port {
            published,
            target,
            udp: false,
        }
    }

    #[test]
    fn addresses_in_compose_order_around_fixed_ones() {
        let plan = plan(&two_networks(), &[(tcp(80, 8080), "proxy".into())]).unwrap();
        assert_eq!(plan.networks[0].subnet, Ipv4Addr::new(10, 5, 0, 0));
        assert_eq!(plan.networks[0].gateway, Ipv4Addr::new(10, 5, 0, 1));
        assert_eq!(plan.networks[1].subnet, Ipv4Addr::new(172, 19, 0, 0), "Docker's pool");
        assert_eq!(plan.address("db"), Some(Ipv4Addr::new(10, 5, 0, 2)));
        let Mode::Bridged(web) = plan.mode("web") else { panic!() };
        // front (with a way out) first: eth0 holds the default route.
        assert_eq!(web[0].interface, "eth0");
        assert_eq!(web[0].address, Ipv4Addr::new(172, 19, 0, 3), "172.19.0.2 is proxy's");
        assert_eq!(web[1].address, Ipv4Addr::new(10, 5, 0, 3));
        assert_eq!(plan.address("proxy"), Some(Ipv4Addr::new(172, 19, 0, 2)));
        assert_eq!(plan.ports, [(tcp(80, 8080), Ipv4Addr::new(172, 19, 0, 2))]);
    }

    #[test]
    fn names_resolve_only_across_shared_networks() {
        let plan = plan(&two_networks(), &[]).unwrap();
        let db = plan.hosts("p", "db", "db", &[], &[]).unwrap();
        assert!(db.contains("10.5.0.3\tweb p-web-1\n"), "{db}");
        assert!(!db.contains("proxy"), "db and proxy share no network: {db}");
        let proxy = plan
            .hosts("p", "proxy", "proxy", &[], &[("h".into(), "1.2.3.4".into())])
            .unwrap();
        assert!(proxy.contains("172.19.0.3\tweb p-web-1 www\n"), "{proxy}");
        assert!(proxy.contains("1.2.3.4\th\n"), "extra_hosts: {proxy}");
    }

    #[test]
    fn links_name_the_linked_service_for_the_linking_one_only() {
        let plan = plan(&two_networks(), &[]).unwrap();
        let link = |to: &str, alias: &str| (to.to_string(), alias.to_string());
        let web = plan.hosts("p", "web", "web", &[link("db", "database")], &[]).unwrap();
        assert!(web.contains("10.5.0.2\tdb p-db-1 database\n"), "{web}");
        let proxy = plan.hosts("p", "proxy", "proxy", &[], &[]).unwrap();
        assert!(!proxy.contains("database"), "{proxy}");
        let e = plan.hosts("p", "proxy", "proxy", &[link("db", "db")], &[]).unwrap_err();
        assert!(e.contains("`db` shares no network with `proxy`"), "{e}");
    }

    #[test]
    fn script_and_rules() {
        let plan = plan(&two_networks(), &[(tcp(80, 8080), "proxy".into())]).unwrap();
        let script = plan.script();
        assert!(
            script.contains("link add lkc1 type bridge\naddr add 172.19.0.1/16 dev lkc1"),
            "{script}"
        );
        assert!(script.contains("\nnetns add web\n"), "{script}");
        assert!(
            script.contains("\nlink add lkcv2n0 type veth peer name eth0 netns web\n"),
            "{script}"
        );
        assert!(
            script.contains("/usr/bin/ip -n web -batch - <<'EOF'\nlink set lo up\naddr add 172.19.0.3/16 dev eth0\nlink set eth0 up\naddr add 10.5.0.3/24 dev eth1\nlink set eth1 up\nroute add default via 172.19.0.1\nEOF\n"),
            "{script}"
        );
        assert!(
            !script
                .split("-n db -batch")
                .nth(1)
                .unwrap()
                .split("EOF\n")
                .next()
                .unwrap()
                .contains("route"),
            "internal network: no way out: {script}"
        );
        let nft = plan.nft();
        assert!(
            nft.contains("iifname \"eth0\" tcp dport 80 dnat to 172.19.0.2:8080"),
            "{nft}"
        );
        assert!(
            nft.contains("ip saddr 172.19.0.0/16 oifname != \"lkc1\" masquerade"),
            "{nft}"
        );
        assert!(
            !nft.contains("ip saddr 10.5.0.0/24"),
            "internal: not masqueraded: {nft}"
        );
        assert!(nft.contains("iifname \"lkc0\" oifname != \"lkc0\" drop"), "{nft}");
        assert!(
            nft.contains("iifname \"lkc1\" oifname \"lkc0\" drop"),
            "networks are isolated: {nft}"
        );
    }

    #[test]
    fn what_cannot_be_made_is_named() {
        let config = app(json!({
            "networks": {"ext": {"external": true}, "ov": {"driver": "overlay"}, "v6": {"ipam": {"config": [{"subnet": "fd00::/64"}]}}},
            "services": {
                "a": {"network_mode": "service:b"},
                "b": {"networks": {"nope": null}},
                "c": {"network_mode": "none"}
            }
        }));
        let errs = plan(&config, &[(tcp(1, 1), "c".into())]).unwrap_err();
        let all = errs.join("\n");
        for want in [
            "network `ext` is external",
            "driver `overlay`",
            "IPv6 is not carried over",
            "network_mode `service:b`",
            "network `nope` is not declared",
            "service `c` publishes port 1",
        ] {
            assert!(all.contains(want), "missing `{want}` in:\n{all}");
        }
    }
}
