//! Booting a built VM: picking the accelerator, a free loopback port, and (for
//! tests) waiting with a deadline until the guest answers HTTP.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket},
    path::{Path, PathBuf},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use xshell::Shell;

use crate::{
    base::http,
    base::project::{self, Project},
    base::{exec, ui},
    building::host,
    disk::{assemble, format::OVMF_VARS, Firmware, Format},
    run::qemu::{self, Accel, Console, Forward, Probe, VmSpec, Why},
    vm::{linuxkit::Artifacts, memory},
};

/// How the user asked for the VM to run.
#[derive(Debug, Clone, PartialEq)]
pub struct VmOpts {
    /// `None`: KVM if a short probe boot shows it works, else TCG.
    pub accel: Option<Accel>,
    pub memory: u32,
    pub cpus: u32,
    /// More QEMU arguments, after the ones the xtask gives.
    pub qemu_args: Vec<String>,
    /// What to boot: the kernel and initrd, or an image of them (`--format`).
    pub format: Format,
    /// The data disk that keeps the app's named volumes (run/data.rs).
    pub data: Option<PathBuf>,
}

/// The accelerator for this boot, said in one line with the reason.
pub fn accel(project: &Project, opts: &VmOpts, kernel: &Path) -> Result<Accel> {
    let qemu = host::path(project, host::QEMU)?;
    let has_kvm = Path::new(KVM_DEVICE).exists();
    let mut probe = None;
    let mut cached = false;
    let (accel, why) = qemu::choose_accel(opts.accel, has_kvm, || {
        let verdict = ProbeVerdict::key(&qemu, Path::new(KVM_DEVICE)).map(|key| ProbeVerdict {
            file: project.cache_path("kvm-probe"),
            key,
        });
        let result = match verdict.as_ref().and_then(ProbeVerdict::read) {
            Some(result) => {
                cached = true;
                result
            }
            None => {
                let result = qemu::probe_kvm(&qemu, kernel, Duration::from_secs(10));
                if let Some(verdict) = &verdict {
                    verdict.write(&result);
                }
                result
            }
        };
        let works = result == Probe::Works;
        probe = Some(result);
        works
    });
    let reason = match (why, probe) {
        (Why::Requested, _) => "as requested with --accel".to_string(),
        (Why::NoKvmDevice, _) => "no /dev/kvm on this host: software emulation".to_string(),
        (Why::KvmProbeOk, _) => "a KVM probe boot worked".to_string(),
        (Why::KvmProbeFailed, Some(Probe::Failed(said))) if said.contains("Permission denied") => format!(
            "/dev/kvm exists but this user may not open it ({said}): software emulation; \
             `sudo usermod -aG kvm $USER` and a new login give it KVM"
        ),
        (Why::KvmProbeFailed, Some(Probe::Failed(said))) => {
            format!("/dev/kvm exists but QEMU could not run a guest with it ({said}): software emulation")
        }
        (Why::KvmProbeFailed, _) => {
            "/dev/kvm exists but a KVM guest hung (no progress in 10 s): software emulation".to_string()
        }
    };
    let reason = if cached {
        format!("{reason}; probed earlier, with this QEMU and /dev/kvm as they are now")
    } else {
        reason
    };
    ui::note(format!("QEMU accelerator: {accel} ({reason})"));
    Ok(accel)
}

const KVM_DEVICE: &str = "/dev/kvm";

/// A KVM probe's result, kept until the host reboots, QEMU changes or
/// /dev/kvm does: a probe of a broken KVM costs its full 10 s on every boot,
/// and what makes KVM start working while the host runs (loading its module,
/// which makes the device anew; opening it to the user with chmod, chown or
/// a group) changes the device's inode, mode, owner or change time.
/// `--accel` overrides it.
struct ProbeVerdict {
    file: PathBuf,
    /// The host's boot id; QEMU's path, size and modification time; the KVM
    /// device's inode, mode, owner, group and change time.
    key: String,
}

impl ProbeVerdict {
    fn key(qemu: &Path, device: &Path) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let meta = fs::metadata(qemu).ok()?;
        let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
        let dev = fs::metadata(device).ok()?;
        Some(format!(
            "{} {} {} {} kvm {} {:o} {}:{} {}.{:09}",
            boot.trim(),
            qemu.display(),
            meta.len(),
            modified.as_nanos(),
            dev.ino(),
            dev.mode(),
            dev.uid(),
            dev.gid(),
            dev.ctime(),
            dev.ctime_nsec()
        ))
    }

    fn read(&self) -> Option<Probe> {
        let text = fs::read_to_string(&self.file).ok()?;
        let (key, result) = text.split_once('\n')?;
        if key != self.key {
            return None;
        }
        let result = result.trim_end_matches('\n');
        match result.split_once(' ').unwrap_or((result, "")) {
            ("works", _) => Some(Probe::Works),
            ("hung", _) => Some(Probe::Hung),
            ("failed", said) => Some(Probe::Failed(said.to_string())),
            _ => None,
        }
    }

    /// Best effort: without it, the next boot probes again.
    fn write(&self, result: &Probe) {
        let result = match result {
            Probe::Works => "works".to_string(),
            Probe::Hung => "hung".to_string(),
            Probe::Failed(said) => format!("failed {}", said.replace('\n', " ")),
        };
        let _ = crate::base::files::write_atomic(&self.file, format!("{}\n{result}\n", self.key).as_bytes());
    }
}

pub fn spec(
    project: &Project,
    opts: &VmOpts,
    artifacts: &Pinned,
    accel: Accel,
    console: Console,
    forwards: Vec<Forward>,
) -> Result<VmSpec> {
    let disk = match &artifacts.image {
        None => None,
        Some((format, path)) => {
            let firmware = format.firmware().expect("an image format");
            // Each boot starts from the firmware's pristine variable store.
            let vars = match firmware {
                Firmware::Bios => None,
                Firmware::Efi => {
                    let vars = artifacts.dir.join("OVMF_VARS.fd");
                    fs::copy(OVMF_VARS, &vars).with_context(|| format!("copying {OVMF_VARS}"))?;
                    Some(vars)
                }
            };
            Some(qemu::Disk {
                path: path.clone(),
                medium: format.medium().expect("an image format"),
                firmware,
                vars,
            })
        }
    };
    Ok(VmSpec {
        qemu: host::path(project, host::QEMU)?,
        kernel: artifacts.kernel.clone(),
        initrd: artifacts.initrd.clone(),
        cmdline: artifacts.cmdline.clone(),
        accel,
        cpus: opts.cpus,
        memory_mb: opts.memory,
        console,
        forwards,
        extra: opts.qemu_args.clone(),
        // An image format carries the roots itself.
        roots: artifacts.roots.clone().filter(|_| disk.is_none()),
        disk,
        data: opts.data.clone(),
        qmp: Some(artifacts.qmp_socket()),
    })
}

/// A built VM's kernel and initrd, linked under a name private to this
/// process: another `cargo xtask` may rebuild dist/ while this one boots.
/// The links go when this is dropped.
pub struct Pinned {
    pub artifacts: Artifacts,
    /// The image of them that boots (`--format`), if not the kernel and initrd.
    pub image: Option<(Format, PathBuf)>,
    dir: PathBuf,
}

impl std::ops::Deref for Pinned {
    type Target = Artifacts;
    fn deref(&self) -> &Artifacts {
        &self.artifacts
    }
}

impl Pinned {
    /// A file of this boot's own, gone with the pin: a test's data disk.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The QMP socket of the VM booted from this pin; in the temporary
    /// folder when the pin's path is too long for a socket's (108 bytes).
    pub fn qmp_socket(&self) -> PathBuf {
        let beside = self.scratch("qmp.sock");
        if beside.as_os_str().len() < 100 {
            return beside;
        }
        std::env::temp_dir().join(format!("linuxkit-compose-qmp-{}.sock", std::process::id()))
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Build with `build` under the build lock, and pin what it built.
pub fn pinned(project: &Project, build: impl FnOnce() -> Result<Artifacts>) -> Result<Pinned> {
    let _lock = project.lock()?;
    let built = build()?;
    remove_stale_pins(&project.dist);
    let dir = project.dist.join(format!("{PIN_PREFIX}{}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    let link = |from: &Path| -> Result<PathBuf> {
        let to = dir.join(from.file_name().unwrap());
        fs::hard_link(from, &to).with_context(|| format!("linking {} to {}", from.display(), to.display()))?;
        Ok(to)
    };
    let artifacts = Artifacts {
        kernel: link(&built.kernel)?,
        initrd: link(&built.initrd)?,
        cmdline: built.cmdline,
        roots: built.roots.as_deref().map(link).transpose()?,
    };
    Ok(Pinned {
        artifacts,
        image: None,
        dir,
    })
}

/// Check that the pinned VM fits in `opts.memory`, then (under the build
/// lock) make its `opts.format` in dist/ from the pinned kernel, initrd and
/// command line (`vm`: its name), and pin that too.
pub fn with_format(sh: &Shell, project: &Project, pinned: &mut Pinned, vm: &str, opts: &VmOpts) -> Result<()> {
    let input = assemble::Input::of(vm, &pinned.artifacts);
    let roots = input.roots_in_initrd(opts.format)?;
    let initrd = fs::metadata(&pinned.initrd)?.len() + roots;
    if let Some(unpacked) = assemble::unpacked(project, &pinned.initrd)? {
        if let Some(problem) = memory::memory(initrd, unpacked + roots, opts.memory) {
            bail!("{vm} does not fit in the VM's memory: {problem}");
        }
    }
    let _lock = project.lock()?;
    let Some(built) = assemble::build(sh, project, opts.format, &input)? else {
        return Ok(());
    };
    let link = pinned.dir.join(built.file_name().expect("a file"));
    fs::hard_link(&built, &link).with_context(|| format!("linking {} to {}", built.display(), link.display()))?;
    pinned.image = Some((opts.format, link));
    Ok(())
}

const PIN_PREFIX: &str = ".boot-";

/// Pins of processes that died without cleaning up.
fn remove_stale_pins(dist: &Path) {
    let Ok(entries) = fs::read_dir(dist) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(PIN_PREFIX).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Boot `artifacts` with the serial console on this terminal and `forwards`
/// from 127.0.0.1 (those only root may listen on moved, see [`listenable`]),
/// after `intro` has said what to expect and where; returns when QEMU exits.
/// A host port something else holds is an error before QEMU starts.
pub fn interactive(
    project: &Project,
    opts: &VmOpts,
    artifacts: &Pinned,
    forwards: Vec<Forward>,
    intro: impl FnOnce(&[Forward]),
) -> Result<()> {
    let forwards = listenable(forwards)?;
    let accel = accel(project, opts, &artifacts.kernel)?;
    let spec = spec(project, opts, artifacts, accel, Console::Terminal, forwards.clone())?;
    intro(&forwards);
    ui::say!(
        "Enter on the console gives a root shell in the VM. A clean stop (services stopped, volumes' disk unmounted): \
         `poweroff` in that shell, or SIGTERM/SIGINT/SIGHUP to this command (kill {}); Ctrl-A X quits QEMU at once.",
        std::process::id()
    );
    let vm = qemu::Vm::spawn(&spec)?;
    if let Some(qmp) = spec.qmp.clone() {
        let pid = vm.pid();
        exec::on_stop(move || stop_cleanly(&qmp, pid));
    }
    let status = vm.wait().context("waiting for QEMU");
    exec::clear_on_stop();
    let status = status?;
    if !status.success() {
        bail!("QEMU exited with {status}");
    }
    Ok(())
}

/// How long a stop signal waits for the VM to power off before QEMU is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(90);

/// On a stop signal: press the VM's ACPI power button and wait for QEMU
/// (process `pid`) to exit, up to [`STOP_DEADLINE`]. Returns whether it did.
fn stop_cleanly(qmp: &Path, pid: u32) -> bool {
    ui::err(format!(
        "stopping the VM through its ACPI power button: its services stop, its disks are unmounted; QEMU is killed if it is still running in {}s",
        STOP_DEADLINE.as_secs()
    ));
    if let Err(e) = qemu::press_power_button(qmp) {
        ui::err(format!("cannot press the power button ({e:#}): killing QEMU"));
        return false;
    }
    let started = Instant::now();
    while started.elapsed() < STOP_DEADLINE {
        if !qemu::is_running(pid) {
            ui::err(format!("the VM powered off cleanly in {}", ui::secs(started.elapsed())));
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ui::err(format!(
        "the VM did not power off in {}s: killing QEMU",
        STOP_DEADLINE.as_secs()
    ));
    false
}

/// `forwards` as QEMU can listen on them. A port below
/// net.ipv4.ip_unprivileged_port_start (1024 by default), which only root may
/// listen on, moves to the port 8000 above it when that is free (80 to 8080,
/// 443 to 8443), else to any free port, and a line says so and how to keep
/// the port; a port something else holds is an error.
pub fn listenable(forwards: Vec<Forward>) -> Result<Vec<Forward>> {
    let mut out: Vec<Forward> = Vec::new();
    for f in &forwards {
        let f = *f;
        let proto = if f.udp { "udp" } else { "tcp" };
        // A port another forward asks for, or one already moved to, is not
        // free for this one, whatever the kernel says now.
        let taken = |p: u16, out: &[Forward]| forwards.iter().chain(out).any(|o| o.host == p && o.udp == f.udp);
        let host = match listen_check(f.host, f.udp) {
            Ok(()) => f.host,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                let nearby = f
                    .host
                    .checked_add(8000)
                    .filter(|&p| listen_check(p, f.udp).is_ok() && !taken(p, &out));
                let moved = match nearby {
                    Some(p) => p,
                    None => loop {
                        let p = free_port(f.udp)?;
                        if !taken(p, &out) {
                            break p;
                        }
                    },
                };
                let first = fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "1024".into());
                ui::say!(
                    "127.0.0.1:{} ({proto}) is below {first}, where only root may listen: forwarding 127.0.0.1:{moved} to the VM's port {} instead \
                     (`sudo sysctl net.ipv4.ip_unprivileged_port_start={}` lets any user listen on port {} itself)",
                    f.host,
                    f.guest,
                    f.host,
                    f.host
                );
                moved
            }
            Err(e) => bail!(
                "cannot forward 127.0.0.1:{} ({proto}) to the VM's port {}: it is taken ({e}); free it, or choose another with --port where it is the router's",
                f.host,
                f.guest
            ),
        };
        out.push(Forward { host, ..f });
    }
    Ok(out)
}

/// A port on 127.0.0.1 that nothing listens on right now (TCP, or UDP).
pub fn free_port(udp: bool) -> Result<u16> {
    Ok(free_ports(&[udp])?[0])
}

/// One free port on 127.0.0.1 per entry of `udp` (TCP where false), no two
/// alike: every socket is held until all are chosen, so the kernel cannot hand
/// out a port twice, which QEMU would refuse as a hostfwd it cannot bind.
pub fn free_ports(udp: &[bool]) -> Result<Vec<u16>> {
    enum Held {
        Tcp(TcpListener),
        Udp(UdpSocket),
    }
    let held = udp
        .iter()
        .map(|&udp| {
            let socket = if udp {
                UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map(Held::Udp)
            } else {
                TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map(Held::Tcp)
            };
            socket.context("finding a free port on 127.0.0.1")
        })
        .collect::<Result<Vec<_>>>()?;
    held.iter()
        .map(|h| {
            let addr = match h {
                Held::Tcp(l) => l.local_addr(),
                Held::Udp(s) => s.local_addr(),
            };
            Ok(addr.context("finding a free port on 127.0.0.1")?.port())
        })
        .collect()
}

/// Can 127.0.0.1:`port` be listened on?
pub fn listen_check(port: u16, udp: bool) -> std::io::Result<()> {
    if udp {
        UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).map(drop)
    } else {
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map(drop)
    }
}

/// A headless boot's serial log, `dist/NAME-serial.log`, held (flock) for as
/// long as this lives; if another boot of the same VM holds it, this one gets
/// `dist/NAME-serial-PID.log` instead, so neither reads the other's console.
pub struct SerialLog {
    pub path: PathBuf,
    _held: fs::File,
}

pub fn serial_log(dist: &Path, name: &str) -> Result<SerialLog> {
    fs::create_dir_all(dist)?;
    let candidates = [
        dist.join(format!("{name}-serial.log")),
        dist.join(format!("{name}-serial-{}.log", std::process::id())),
    ];
    for path in candidates {
        if let Some(file) = project::try_lock(&path)? {
            file.set_len(0)?;
            return Ok(SerialLog { path, _held: file });
        }
    }
    bail!("every serial log name for {name} in {} is in use", dist.display())
}

/// Poll `GET http://127.0.0.1:port/` with `Host: host` until it returns 200,
/// QEMU exits, `given_up` reports that the guest gave up, or the deadline
/// passes. Returns the body and when it came.
pub fn wait_for_200(
    vm: &mut qemu::Vm,
    port: u16,
    host: &str,
    deadline: Instant,
    given_up: &dyn Fn() -> Option<String>,
) -> Result<(String, Instant)> {
    let (answer, at) = wait_for(
        vm,
        port,
        (host, "/"),
        deadline,
        given_up,
        "HTTP 200",
        &|a| matches!(a, http::Answer::Http(r) if r.status == 200),
    )?;
    match answer {
        http::Answer::Http(r) => Ok((r.body, at)),
        http::Answer::Other(_) | http::Answer::Held => unreachable!("only HTTP 200 is accepted"),
    }
}

/// How often [`wait_for`] starts a request, and how long each may take.
const POLL_EVERY: Duration = Duration::from_millis(500);
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Poll 127.0.0.1:`port` (`GET path` with `Host: host`: the request) until `accept` takes the
/// answer (`want` says what that is), QEMU exits, `given_up` reports that the
/// guest gave up, or the deadline passes. Returns the answer and when it came.
///
/// A request starts every [`POLL_EVERY`] whether or not the ones before it
/// have finished: QEMU's user network accepts a forwarded connection at once
/// and only then tries the guest, so a request sent before the guest listens
/// can hang until its timeout, and waiting for it would add up to that
/// timeout to the time measured (seen: the smoke VM's first 200 at 12.3 s or
/// 17.3 s, 5 s apart, with one request at a time and a 5 s timeout).
pub fn wait_for(
    vm: &mut qemu::Vm,
    port: u16,
    (host, path): (&str, &str),
    deadline: Instant,
    given_up: &dyn Fn() -> Option<String>,
    want: &str,
    accept: &dyn Fn(&http::Answer) -> bool,
) -> Result<(http::Answer, Instant)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stopped = || -> Result<Option<String>> {
        if let Some(status) = vm.exited()? {
            return Ok(Some(format!("QEMU exited ({status})")));
        }
        Ok(given_up().map(|reason| format!("the guest gave up: {reason}")))
    };
    let asked = match path {
        "/" => format!("from {host}"),
        _ => format!("for GET {path} from {host}"),
    };
    poll(addr, host, path, deadline, &mut stopped, accept)
        .with_context(|| format!("no {want} {asked} on 127.0.0.1:{port}"))
}

/// How many of [`wait_for`]'s requests may wait for an answer at once, once
/// the guest is reachable. An app that takes a second of the emulated CPU per
/// page (WordPress under TCG) gets no more work than it can do: a request
/// every [`POLL_EVERY`] regardless would pile up faster than it answers, and
/// then every request times out although the app serves.
const IN_FLIGHT: usize = 2;

/// [`wait_for`]'s loop: `stopped` says why to stop waiting, if there is a reason.
fn poll(
    addr: SocketAddr,
    host: &str,
    path: &str,
    deadline: Instant,
    stopped: &mut dyn FnMut() -> Result<Option<String>>,
    accept: &dyn Fn(&http::Answer) -> bool,
) -> Result<(http::Answer, Instant)> {
    let (tx, rx) = mpsc::channel();
    let mut last = String::from("no answer yet");
    let mut next = Instant::now();
    let mut pacing = Pacing::default();
    loop {
        if let Some(reason) = stopped()? {
            bail!("{reason} (last: {last})");
        }
        if Instant::now() >= deadline {
            bail!("the deadline passed (last: {last})");
        }
        if Instant::now() >= next {
            next += POLL_EVERY;
            if let Some(started) = pacing.start(Instant::now()) {
                let (tx, host, path) = (tx.clone(), host.to_string(), path.to_string());
                // Detached: a request still hanging when this returns ends with its timeout.
                thread::spawn(move || {
                    let answer = http::ask(addr, &host, &path, ANSWER_WITHIN);
                    let _ = tx.send((answer, started, Instant::now()));
                });
            }
        }
        if let Ok((answer, started, at)) = rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
            pacing.ended(started, at - started < ANSWER_WITHIN);
            match answer {
                Ok(a) if accept(&a) => return Ok((a, at)),
                Ok(a) => last = a.to_string(),
                Err(e) => last = format!("{e:#}"),
            }
        }
    }
}

/// When [`poll`] may start a request. Until the guest is reachable, one
/// every [`POLL_EVERY`] whatever the others do: QEMU's user network accepts a
/// forwarded connection at once and only then tries the guest, so a request
/// sent before the guest's network is up hangs until its timeout. A request
/// that ends before its timeout (answered, or refused by the guest) shows the
/// guest is reachable; from the request that showed it on, at most
/// [`IN_FLIGHT`] wait at once.
#[derive(Debug, Default)]
struct Pacing {
    /// Start times of the requests still waiting.
    waiting: Vec<Instant>,
    /// The start of the first request that ended before its timeout.
    reachable_from: Option<Instant>,
}

impl Pacing {
    /// Start a request at `now` if the pace allows: its start time.
    fn start(&mut self, now: Instant) -> Option<Instant> {
        if let Some(from) = self.reachable_from {
            if self.waiting.iter().filter(|s| **s >= from).count() >= IN_FLIGHT {
                return None;
            }
        }
        self.waiting.push(now);
        Some(now)
    }

    /// The request started at `started` ended; `in_time`: before its timeout.
    fn ended(&mut self, started: Instant, in_time: bool) {
        if let Some(i) = self.waiting.iter().position(|s| *s == started) {
            self.waiting.swap_remove(i);
        }
        if in_time && self.reachable_from.is_none_or(|from| started < from) {
            self.reachable_from = Some(started);
        }
    }
}

/// The serial log as text (empty if it cannot be read: it is only ever evidence).
pub fn read_log(log: &Path) -> String {
    fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::TestDir;

    /// A VM with many published ports gets as many host ports, no two alike
    /// (QEMU exits at once on a hostfwd it cannot bind), each free after.
    #[test]
    fn free_ports_are_distinct_and_free() {
        let udp: Vec<bool> = (0..400).map(|i| i % 3 == 0).collect();
        let ports = free_ports(&udp).unwrap();
        let tcp: std::collections::BTreeSet<u16> =
            ports.iter().zip(&udp).filter(|(_, u)| !**u).map(|(p, _)| *p).collect();
        let by_udp: std::collections::BTreeSet<u16> =
            ports.iter().zip(&udp).filter(|(_, u)| **u).map(|(p, _)| *p).collect();
        assert_eq!(
            tcp.len() + by_udp.len(),
            udp.len(),
            "a port handed out twice: {ports:?}"
        );
        for (port, udp) in ports.iter().zip(&udp) {
            assert!(listen_check(*port, *udp).is_ok(), "{port} still held");
        }
    }

    /// Ports 80 and 8080 both published (a web server and a dashboard): where
    /// 80 must move, it does not move to 8080, which the other forward keeps
    /// (two forwards on one host port and QEMU exits at once).
    #[test]
    fn a_moved_port_avoids_the_ports_other_forwards_ask_for() {
        if listen_check(8080, false).is_err() {
            return; // something on this machine holds 8080: not this case
        }
        let moved = listenable(vec![Forward::tcp(80, 80), Forward::tcp(8080, 8080)]).unwrap();
        assert_eq!(moved[1].host, 8080);
        match listen_check(80, false).map_err(|e| e.kind()) {
            Ok(()) => assert_eq!(moved[0].host, 80),
            Err(_) => {
                assert_ne!(moved[0].host, 8080, "{moved:?}");
                assert!(moved[0].host >= 1024, "{moved:?}");
            }
        }
    }

    /// Port 80 as compose publishes it: kept where this process may listen
    /// on it (root), moved to one it may listen on otherwise (an ordinary
    /// user: 8080 unless that is taken); a taken port is an error.
    #[test]
    fn a_port_only_root_may_listen_on_moves_to_one_the_user_may() {
        let may_listen_on_80 = listen_check(80, false).map_err(|e| e.kind());
        let moved = listenable(vec![Forward::tcp(80, 80)]);
        match may_listen_on_80 {
            Ok(()) => assert_eq!(moved.unwrap()[0].host, 80),
            Err(std::io::ErrorKind::PermissionDenied) => {
                let f = moved.unwrap()[0];
                assert_eq!(f.guest, 80);
                assert!(f.host >= 1024, "{f:?}");
                assert!(listen_check(f.host, false).is_ok());
            }
            Err(_) => {} // something else holds port 80 on this host
        }
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = listenable(vec![Forward::tcp(port, 80)]).unwrap_err().to_string();
        assert!(
            err.contains(&format!("127.0.0.1:{port}")) && err.contains("taken"),
            "{err}"
        );
    }

    /// Before the guest is reachable, a request every tick however many hang;
    /// after, no more than IN_FLIGHT wait at once, counted from the request
    /// that showed the guest reachable (the ones hanging from before do not
    /// hold the probe back).
    #[test]
    fn requests_pile_up_only_until_the_guest_answers() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut p = Pacing::default();
        for ms in [0, 500, 1000, 1500, 2000] {
            assert_eq!(p.start(at(ms)), Some(at(ms)), "hanging before the guest is up");
        }
        // The request started at 2 s is refused at once: the guest is up.
        p.ended(at(2000), true);
        assert_eq!(p.start(at(2500)), Some(at(2500)));
        assert_eq!(p.start(at(3000)), Some(at(3000)));
        assert_eq!(p.start(at(3500)), None, "two already wait for the app");
        // One of them times out (a slow app): room for another.
        p.ended(at(2500), false);
        assert_eq!(p.start(at(4000)), Some(at(4000)));
        assert_eq!(p.start(at(4500)), None);
        // The requests from before the guest was up end with their timeouts:
        // they never counted.
        for ms in [0, 500, 1000, 1500] {
            p.ended(at(ms), false);
        }
        assert_eq!(p.start(at(5000)), None);
        p.ended(at(3000), true);
        assert_eq!(p.start(at(5500)), Some(at(5500)));
    }

    /// A probe's result holds for the same host boot, QEMU and KVM device, and only them.
    #[test]
    fn a_kvm_verdict_is_kept_for_this_host_boot_qemu_and_kvm_device() {
        let dir = TestDir::new("kvm-probe");
        let (qemu, kvm) = (dir.join("qemu-system-x86_64"), dir.join("kvm"));
        fs::write(&qemu, "a QEMU").unwrap();
        fs::write(&kvm, "").unwrap();
        let verdict_now = || ProbeVerdict {
            file: dir.join("kvm-probe"),
            key: ProbeVerdict::key(&qemu, &kvm).unwrap(),
        };
        let verdict = verdict_now();
        assert_eq!(verdict.read(), None, "nothing probed yet");
        for result in [
            Probe::Hung,
            Probe::Works,
            Probe::Failed("failed to set MSR 0x10a\nsecond line".into()),
        ] {
            verdict.write(&result);
            let read = verdict.read().unwrap();
            match result {
                Probe::Failed(_) => assert_eq!(read, Probe::Failed("failed to set MSR 0x10a second line".into())),
                _ => assert_eq!(read, result),
            }
        }
        assert_eq!(verdict_now().read(), Some(verdict.read().unwrap()), "nothing changed");
        // A KVM device opened to more users (as `chmod 666 /dev/kvm` does) probes again.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&kvm, fs::Permissions::from_mode(0o666)).unwrap();
        let opened = verdict_now();
        assert_eq!(opened.read(), None);
        opened.write(&Probe::Works);
        // Another QEMU (here: the same path, rewritten) probes again.
        fs::write(&qemu, "a newer QEMU").unwrap();
        assert_eq!(verdict_now().read(), None);
    }

    /// A request the server never answers (as QEMU's user network holds one
    /// sent before the guest listens) does not hold up the ones after it:
    /// the answer to a later request counts, long before the first times out.
    #[test]
    fn a_hanging_request_does_not_delay_the_answer() {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let mut held = Vec::new();
            for (n, stream) in listener.incoming().enumerate() {
                let mut stream = stream.unwrap();
                if n == 0 {
                    held.push(stream); // accepted, never answered
                    continue;
                }
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nup\n");
            }
        });
        let start = Instant::now();
        let mut never = || Ok(None);
        let ok = |a: &http::Answer| matches!(a, http::Answer::Http(r) if r.status == 200);
        let (answer, at) = poll(addr, "a.localhost", "/", start + ANSWER_WITHIN * 3, &mut never, &ok).unwrap();
        assert!(ok(&answer));
        assert!(
            at - start < ANSWER_WITHIN / 2,
            "the answer waited {:?} for the hanging request",
            at - start
        );
    }

    /// Why the wait stopped is the error, with the last thing the port said.
    #[test]
    fn a_reason_to_stop_ends_the_wait() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener); // nothing listens: every request fails at once
        let mut polls = 0;
        let mut stopped = || {
            polls += 1;
            Ok((polls > 3).then(|| "QEMU exited (exit status: 1)".to_string()))
        };
        let err = poll(
            addr,
            "a.localhost",
            "/",
            Instant::now() + ANSWER_WITHIN,
            &mut stopped,
            &|_| true,
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.starts_with("QEMU exited (exit status: 1) (last: "), "{msg}");
    }

    /// Two boots of one VM at once each get a console log of their own.
    #[test]
    fn concurrent_boots_get_their_own_serial_logs() {
        let dist = TestDir::new("serial");
        let first = serial_log(&dist, "vm").unwrap();
        let second = serial_log(&dist, "vm").unwrap();
        assert_eq!(first.path, dist.join("vm-serial.log"));
        assert_ne!(first.path, second.path);
        drop((first, second));
        assert_eq!(serial_log(&dist, "vm").unwrap().path, dist.join("vm-serial.log"));
    }

    #[test]
    fn pins_survive_a_rebuild_of_dist() {
        let root = TestDir::new("pin");
        let project = Project {
            dist: root.join("dist"),
            cache: root.join("cache"),
            ..crate::base::project::for_tests()
        };
        fs::create_dir_all(&project.dist).unwrap();
        let (kernel, initrd) = (project.dist.join("vm-kernel"), project.dist.join("vm-initrd.img"));
        fs::write(&kernel, "k1").unwrap();
        fs::write(&initrd, "i1").unwrap();
        let pin = pinned(&project, || {
            Ok(Artifacts {
                kernel: kernel.clone(),
                initrd: initrd.clone(),
                cmdline: String::new(),
                roots: None,
            })
        })
        .unwrap();
        // Another build replaces the outputs the way linuxkit::build does: by rename.
        fs::write(project.dist.join("new"), "i2").unwrap();
        fs::rename(project.dist.join("new"), &initrd).unwrap();
        assert_eq!(fs::read_to_string(&pin.initrd).unwrap(), "i1");
        let dir = pin.initrd.parent().unwrap().to_path_buf();
        drop(pin);
        assert!(!dir.exists(), "the pin is removed with its guard");
    }
}
