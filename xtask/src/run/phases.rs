//! Where a compose VM's boot went, read from its serial log: the kernel's
//! printk timestamps and the compose runner's `(uptime …s)`, both counted from
//! the guest kernel's start. Pure text in, figures out, so it is unit-tested
//! on a captured log.

use std::fmt;

/// Guest uptimes (seconds) of the boot's milestones, and how many times the
/// kernel said it oopsed, panicked or hit a BUG.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Phases {
    /// The kernel's "Run /init as init process", or /init's own "init: started".
    pub init: Option<f64>,
    /// The onboot containers are done and the services start
    /// (`rc.init: /etc/init.d/020-services (uptime …)`).
    pub services: Option<f64>,
    /// `compose: Docker engine … is up`.
    pub dockerd: Option<f64>,
    /// `compose: app is up` (`docker compose up --wait` returned: every service runs).
    pub app_up: Option<f64>,
    /// Lines with "Oops:", "Kernel panic" or "BUG:".
    pub oopses: usize,
}

/// Read the phases from a serial log's text.
pub fn parse(log: &str) -> Phases {
    let mut p = Phases::default();
    for line in log.lines() {
        if ["Oops:", "Kernel panic", "BUG:"].iter().any(|m| line.contains(m)) {
            p.oopses += 1;
        }
        let first = |slot: &mut Option<f64>, at: Option<f64>| {
            if slot.is_none() {
                *slot = at;
            }
        };
        if line.contains("Run /init as init process") {
            first(&mut p.init, printk_time(line));
        } else if let Some(said) = line.strip_prefix("init: started") {
            first(&mut p.init, runner_uptime(said));
        } else if let Some(said) = line.strip_prefix("rc.init: /etc/init.d/020-services") {
            first(&mut p.services, runner_uptime(said));
        } else if let Some(said) = line.find("compose: ").map(|i| &line[i + "compose: ".len()..]) {
            let at = runner_uptime(said);
            if said.starts_with("Docker engine ") && said.contains(" is up") {
                first(&mut p.dockerd, at);
            } else if said.starts_with("app is up") {
                first(&mut p.app_up, at);
            }
        }
    }
    p
}

/// `[   13.712345] text` -> 13.712345
fn printk_time(line: &str) -> Option<f64> {
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    line[open + 1..close].trim().parse().ok()
}

/// `… (uptime 29.80s)` -> 29.8
fn runner_uptime(said: &str) -> Option<f64> {
    let start = said.rfind("(uptime ")? + "(uptime ".len();
    let end = start + said[start..].find("s)")?;
    said[start..end].parse().ok()
}

impl fmt::Display for Phases {
    /// The milestones the boot reached (a VM without a Docker engine has no
    /// `dockerd` or `app up`), then the oopses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{t:.1}s"));
        write!(f, "/init {}", show(self.init))?;
        for (name, at) in [
            ("services", self.services),
            ("dockerd", self.dockerd),
            ("app up", self.app_up),
        ] {
            if at.is_some() {
                write!(f, ", {name} {}", show(at))?;
            }
        }
        write!(f, "; oopses {}", self.oopses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of a static boot's dist/compose-static-serial.log (QEMU 10,
    /// thread=multi); services' output interleaves with the kernel's.
    const EXCERPT: &str = "\
[    0.000000] Command line: console=ttyS0 panic=1
[   13.487965] x86/mm: Checked W+X mappings: passed, no W+X pages found.
[   13.488543] Run /init as init process
[   17.778271] Not activating Mandatory Access Control as /sbin/tomoyo-init does not exist.
rc.init: /etc/init.d/010-onboot
rc.init: /etc/init.d/020-services (uptime 21.02s)
[   19.173306] bridge: filtering via arp/ip/ip6tables is no longer available by default.
time=\"2026-11-25T02:44:30.232571996Z\" level=info msg=\"API listen on /run/docker.sock\"
compose: Docker engine 26.1.5+dfsg1 is up (uptime 31.17s)
compose: loading /compose/images/linuxkit-compose.local_app-a_1.tar (uptime 31.17s)
compose: Loaded image: linuxkit-compose.local/app-a:1
compose: loading /compose/images/linuxkit-compose.local_proxy_1.tar (uptime 34.54s)
compose: Loaded image: linuxkit-compose.local/proxy:1
compose: app is up: a b proxy  (uptime 46.00s)
compose: app is up: a b proxy  (uptime 99.00s)
";

    #[test]
    fn reads_the_milestones() {
        let p = parse(EXCERPT);
        assert_eq!(
            p,
            Phases {
                init: Some(13.488543),
                services: Some(21.02),
                dockerd: Some(31.17),
                app_up: Some(46.0),
                oopses: 0,
            }
        );
        assert_eq!(
            p.to_string(),
            "/init 13.5s, services 21.0s, dockerd 31.2s, app up 46.0s; oopses 0"
        );
        let native = parse("init: started (uptime 2.6s)\nrc.init: /etc/init.d/020-services (uptime 5.1s)\n");
        assert_eq!(native.to_string(), "/init 2.6s, services 5.1s; oopses 0");
    }

    #[test]
    fn counts_oopses_and_panics() {
        let log = "[    3.1] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n\
                   [    3.2] BUG: kernel NULL pointer dereference\n\
                   [    3.3] Kernel panic - not syncing: Fatal exception\n\
                   compose: Docker engine 26 is up\n";
        let p = parse(log);
        assert_eq!(p.oopses, 3);
        assert_eq!(p.dockerd, None, "no uptime, no figure");
        assert_eq!(p.init, None);
        assert_eq!(parse("init: started (uptime 6.21s)\n").init, Some(6.21));
    }
}
