//! QEMU: which accelerator to use, the argument list for a VM, and a guard that
//! guarantees the VM process never outlives the xtask.

use std::{
    fmt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::{
    base::{exec, ui},
    disk::{format::OVMF_CODE, Firmware, Medium},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// What decided the accelerator, for the line the user sees.
#[derive(Debug, PartialEq, Eq)]
pub enum Why {
    Requested,
    NoKvmDevice,
    KvmProbeFailed,
    KvmProbeOk,
}

/// `--accel` wins; otherwise KVM only if /dev/kvm exists *and* a probe boot
/// under KVM works (on some hosts /dev/kvm is there but guests hang).
pub fn choose_accel(requested: Option<Accel>, has_kvm_device: bool, probe: impl FnOnce() -> bool) -> (Accel, Why) {
    match requested {
        Some(accel) => (accel, Why::Requested),
        None if !has_kvm_device => (Accel::Tcg, Why::NoKvmDevice),
        None if probe() => (Accel::Kvm, Why::KvmProbeOk),
        None => (Accel::Tcg, Why::KvmProbeFailed),
    }
}

/// Where the guest's serial console goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Console {
    /// Interactive: serial on this terminal (Ctrl-A X quits QEMU).
    Terminal,
    /// Headless: serial appended to a log file.
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct VmSpec {
    /// The QEMU binary (host::path found and checked it).
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    pub accel: Accel,
    pub cpus: u32,
    pub memory_mb: u32,
    pub console: Console,
    /// Ports forwarded from 127.0.0.1 on the host into the guest.
    pub forwards: Vec<Forward>,
    /// The user's own arguments (`run-* -- ARGS`), last so they can override.
    pub extra: Vec<String>,
    /// Boot this image with its firmware instead of `kernel`/`initrd`/`cmdline`.
    pub disk: Option<Disk>,
    /// The read-only disk of the services' root filesystems (a squashfs
    /// image), for a VM whose initrd does not hold them.
    pub roots: Option<PathBuf>,
    /// The data disk that keeps the app's named volumes (a raw file).
    pub data: Option<PathBuf>,
    /// A QMP socket to ask the VM to power down through ACPI ([`Vm::power_down`]).
    pub qmp: Option<PathBuf>,
}

/// The data disk's virtio serial number, as the guest sees it in
/// /sys/block/vdX/serial.
pub const DATA_SERIAL: &str = "compose-data";

/// The roots disk's virtio serial number (for a person reading
/// /sys/block/vdX/serial: the guest finds the disk by its content).
pub const ROOTS_SERIAL: &str = "compose-roots";

/// A disk image or ISO booted the way a host boots it.
#[derive(Debug, Clone, PartialEq)]
pub struct Disk {
    pub path: PathBuf,
    pub medium: Medium,
    pub firmware: Firmware,
    /// UEFI: this boot's own copy of the firmware's variable store.
    pub vars: Option<PathBuf>,
}

/// A host port on 127.0.0.1 forwarded to a guest port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub host: u16,
    pub guest: u16,
    pub udp: bool,
}

impl Forward {
    pub fn tcp(host: u16, guest: u16) -> Forward {
        Forward {
            host,
            guest,
            udp: false,
        }
    }
}

/// The full QEMU argument list for `spec`.
pub fn args(spec: &VmSpec) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    match spec.accel {
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
        // `-cpu max`: with the default CPU, 6.12 guests under TCG were seen to oops.
        // `thread=multi`: one host thread per vCPU. QEMU before 8.1 could run a
        // stale translation of kernel text another vCPU was live-patching
        // ("Oops: int3", about one boot in ten on 7.2); fixed in 8.1 (deba78709ae8)
        // and 9.1 (3b279f73fa37, backported to 8.2.6 and 9.0.2). `cargo xtask bench`
        // counts oopses per boot.
        Accel::Tcg => push(&["-accel", "tcg,thread=multi", "-cpu", "max"]),
    }
    let (smp, mem) = (spec.cpus.to_string(), spec.memory_mb.to_string());
    push(&["-machine", "q35", "-smp", &smp, "-m", &mem]);
    match &spec.disk {
        None => {
            push(&["-kernel", &spec.kernel.display().to_string()]);
            push(&["-initrd", &spec.initrd.display().to_string()]);
            push(&["-append", &spec.cmdline]);
        }
        Some(disk) => push(&disk_args(disk).iter().map(String::as_str).collect::<Vec<_>>()),
    }
    if let Some(roots) = &spec.roots {
        // The guest finds it by its first bytes (rc.init); QEMU only reads it.
        push(&[
            "-drive",
            &format!("file={},format=raw,if=none,id=roots,readonly=on", option_value(roots)),
            "-device",
            &format!("virtio-blk-pci,drive=roots,serial={ROOTS_SERIAL}"),
        ]);
    }
    if let Some(data) = &spec.data {
        // cache=writeback: the guest's flushes reach the host file (fdatasync),
        // so what a database committed survives QEMU being killed;
        // `cache=unsafe` would drop them. QEMU locks the file: a second VM on
        // it fails to start instead of corrupting it.
        push(&[
            "-drive",
            &format!(
                "file={},format=raw,if=none,id=data,cache=writeback,discard=unmap",
                option_value(data)
            ),
            "-device",
            &format!("virtio-blk-pci,drive=data,serial={DATA_SERIAL}"),
        ]);
    }
    if let Some(qmp) = &spec.qmp {
        push(&["-qmp", &format!("unix:{},server=on,wait=off", option_value(qmp))]);
    }
    push(&["-nodefaults", "-no-reboot", "-display", "none"]);
    match &spec.console {
        Console::Terminal => push(&["-serial", "mon:stdio"]),
        Console::File(log) => push(&["-serial", &format!("file:{}", log.display()), "-monitor", "none"]),
    }
    let hostfwd: String = spec
        .forwards
        .iter()
        .map(|f| {
            let proto = if f.udp { "udp" } else { "tcp" };
            format!(",hostfwd={proto}:127.0.0.1:{}-:{}", f.host, f.guest)
        })
        .collect();
    push(&["-netdev", &format!("user,id=net0{hostfwd}")]);
    push(&["-device", "virtio-net-pci,netdev=net0"]);
    push(&["-device", "virtio-rng-pci"]);
    a.extend(spec.extra.iter().cloned());
    a
}

/// A path as a QEMU option value: a comma there is written twice.
fn option_value(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

/// The firmware and the drive a host would boot `disk` from: SeaBIOS
/// (QEMU's own) or OVMF from flash; a virtio disk (raw or qcow2, in snapshot
/// mode: the image in dist/ is never written) or a SATA CD-ROM.
fn disk_args(disk: &Disk) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let path = disk.path.display();
    if disk.firmware == Firmware::Efi {
        a.extend([
            "-drive".into(),
            format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
        ]);
        if let Some(vars) = &disk.vars {
            a.extend([
                "-drive".into(),
                format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
            ]);
        }
    }
    match disk.medium {
        Medium::Disk { qcow2 } => {
            let format = if qcow2 { "qcow2" } else { "raw" };
            a.extend([
                "-drive".into(),
                format!("file={path},format={format},if=none,id=disk0,snapshot=on"),
                "-device".into(),
                "virtio-blk-pci,drive=disk0,bootindex=0".into(),
            ]);
        }
        Medium::Cdrom => a.extend([
            "-drive".into(),
            format!("file={path},format=raw,if=none,id=cd0,media=cdrom,readonly=on"),
            "-device".into(),
            "ide-cd,drive=cd0,bus=ide.0,bootindex=0".into(),
        ]),
    }
    a
}

/// A running QEMU. Dropping it stops the VM, and it dies with the xtask
/// ([`exec::spawn`]).
pub struct Vm {
    child: Child,
    pub started: Instant,
}

impl Vm {
    pub fn spawn(spec: &VmSpec) -> Result<Vm> {
        let mut cmd = Command::new(&spec.qemu);
        cmd.args(args(spec));
        if spec.console != Console::Terminal {
            // Headless: what QEMU itself says goes to the boot step's log.
            let (_, file) = exec::step_log()?;
            cmd.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
        }
        let child = exec::spawn(&mut cmd).context("starting QEMU")?;
        Ok(Vm {
            child,
            started: Instant::now(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Has QEMU exited? Returns its status if so.
    pub fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    pub fn wait(mut self) -> Result<std::process::ExitStatus> {
        Ok(self.child.wait()?)
    }

    /// SIGKILL QEMU and wait for it: the VM's power cut.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stop the VM: SIGTERM (QEMU exits cleanly on it), then SIGKILL after a grace period.
    pub fn stop(mut self) {
        self.terminate();
    }

    /// Press the VM's ACPI power button through QMP socket `qmp` and wait
    /// until `deadline` for QEMU to exit (the guest powers off after
    /// stopping its services and unmounting its disks). Returns whether it
    /// did; past the deadline the caller decides (dropping the VM kills it).
    pub fn power_down(&mut self, qmp: &Path, deadline: Instant) -> Result<bool> {
        press_power_button(qmp)?;
        while Instant::now() < deadline {
            if self.exited()?.is_some() {
                return Ok(true);
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(false)
    }

    fn terminate(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Send `system_powerdown` over the QMP socket `qmp` (QEMU's machine
/// protocol: a greeting, `qmp_capabilities` to leave its negotiation mode,
/// then the command; each answered with one JSON line).
pub fn press_power_button(qmp: &Path) -> Result<()> {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::os::unix::net::UnixStream::connect(qmp)
        .with_context(|| format!("connecting to QEMU's QMP socket {}", qmp.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line).context("reading QMP's greeting")?;
    for command in ["qmp_capabilities", "system_powerdown"] {
        writeln!(writer, "{{\"execute\": \"{command}\"}}")?;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                anyhow::bail!("QEMU closed its QMP socket before answering {command}");
            }
            let answer: serde_json::Value = serde_json::from_str(&line).context("QMP's answer")?;
            if let Some(error) = answer.get("error") {
                anyhow::bail!("QEMU refused {command}: {}", error["desc"]);
            }
            // Events (`{"event": ...}`) may come between; the answer has `return`.
            if answer.get("return").is_some() {
                break;
            }
        }
    }
    Ok(())
}

/// Is process `pid` still running (not gone, not a zombie waiting to be reaped)?
pub fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().chars().next()))
        .is_some_and(|state| state != Some('Z'))
}

/// What a KVM probe boot showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Works,
    /// QEMU gave up at once, saying this (say "failed to set MSR 0x10a").
    Failed(String),
    /// The guest made no progress before the timeout.
    Hung,
}

/// Does KVM actually run a guest here? Boots `kernel` under KVM with no root
/// filesystem: a working KVM reaches the "cannot mount root" panic and exits
/// (panic=-1 plus -no-reboot) within seconds; a broken one aborts or hangs.
pub fn probe_kvm(qemu: &Path, kernel: &Path, timeout: Duration) -> Probe {
    let step = ui::step(format!("probing KVM (up to {}s)", timeout.as_secs()));
    let (stderr_log, stderr) = match exec::step_log() {
        Ok(log) => log,
        Err(e) => return Probe::Failed(format!("{e:#}")),
    };
    let mut cmd = Command::new(qemu);
    cmd.args([
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "256",
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
    ])
    .args(["-serial", "none", "-monitor", "none", "-kernel"])
    .arg(kernel)
    .args(["-append", "panic=-1 console=ttyS0"])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(stderr);
    let child = match exec::spawn(&mut cmd) {
        Ok(child) => child,
        Err(e) => return Probe::Failed(format!("{e:#}")),
    };
    let mut vm = Vm {
        child,
        started: Instant::now(),
    };
    let result = loop {
        match vm.exited() {
            Ok(Some(status)) if status.success() => break Probe::Works,
            Ok(Some(status)) => {
                let said = ui::tail(&stderr_log, 1);
                break Probe::Failed(if said.is_empty() { status.to_string() } else { said });
            }
            Ok(None) if vm.started.elapsed() < timeout => thread::sleep(Duration::from_millis(100)),
            Ok(None) => break Probe::Hung,
            Err(e) => break Probe::Failed(format!("{e:#}")),
        }
    };
    drop(vm);
    step.done();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(accel: Accel, console: Console) -> VmSpec {
        VmSpec {
            qemu: "qemu-system-x86_64".into(),
            kernel: "dist/smoke-kernel".into(),
            initrd: "dist/smoke-initrd.img".into(),
            cmdline: "console=ttyS0 panic=1".into(),
            accel,
            cpus: 2,
            memory_mb: 3072,
            console,
            forwards: vec![Forward::tcp(8080, 80)],
            extra: vec![],
            disk: None,
            roots: None,
            data: None,
            qmp: None,
        }
    }

    /// Each image format boots from its own firmware and medium, without
    /// -kernel/-initrd/-append (the command line travels in the image).
    #[test]
    fn image_formats_boot_from_firmware_and_their_medium() {
        let mut all = String::new();
        for format in crate::disk::format::ALL.into_iter().skip(1) {
            let mut s = spec(Accel::Tcg, Console::File("dist/compose-static-serial.log".into()));
            s.disk = Some(Disk {
                path: format.file_name("dist/.boot-1/compose-static").unwrap().into(),
                medium: format.medium().unwrap(),
                firmware: format.firmware().unwrap(),
                vars: (format.firmware() == Some(Firmware::Efi)).then(|| "dist/.boot-1/OVMF_VARS.fd".into()),
            });
            let a = args(&s);
            assert!(!a.iter().any(|x| x == "-kernel" || x == "-append"), "{a:?}");
            let firmware = a.iter().filter(|x| x.starts_with("if=pflash")).count();
            assert_eq!(
                firmware,
                if format.firmware() == Some(Firmware::Efi) { 2 } else { 0 },
                "{format}"
            );
            let own = disk_args(s.disk.as_ref().unwrap());
            assert!(a.windows(own.len()).any(|w| w == own), "{format}: {a:?}");
            all += &format!("{format}:\n  {}\n", own.join(" "));
        }
        insta::assert_snapshot!(all);
    }

    #[test]
    fn tcg_headless_args() {
        insta::assert_yaml_snapshot!(args(&spec(Accel::Tcg, Console::File("dist/smoke-serial.log".into()))));
    }

    #[test]
    fn kvm_interactive_args() {
        insta::assert_yaml_snapshot!(args(&spec(Accel::Kvm, Console::Terminal)));
    }

    /// The data disk honours the guest's flushes (no `cache=unsafe`, no
    /// snapshot), carries the serial the guest looks for, and a comma in
    /// its path stays part of the path.
    #[test]
    fn data_disk_keeps_what_the_guest_flushed() {
        let mut s = spec(Accel::Tcg, Console::Terminal);
        s.data = Some("/home/u/.local/share/a,b/data.img".into());
        s.qmp = Some("/tmp/q.sock".into());
        let a = args(&s);
        let drive = a.iter().find(|x| x.contains("id=data")).expect("a data drive");
        assert_eq!(
            drive,
            "file=/home/u/.local/share/a,,b/data.img,format=raw,if=none,id=data,cache=writeback,discard=unmap"
        );
        assert!(a.contains(&"virtio-blk-pci,drive=data,serial=compose-data".to_string()));
        assert!(a.contains(&"unix:/tmp/q.sock,server=on,wait=off".to_string()));
    }

    /// The roots disk is attached read-only: the VM cannot change the
    /// services' root filesystems in dist/, and QEMU shares the file with
    /// another VM booting the same build.
    #[test]
    fn roots_disk_is_read_only() {
        let mut s = spec(Accel::Tcg, Console::Terminal);
        s.roots = Some("dist/.boot-1/compose-native-roots.img".into());
        let a = args(&s);
        let drive = a.iter().find(|x| x.contains("id=roots")).expect("a roots drive");
        assert_eq!(
            drive,
            "file=dist/.boot-1/compose-native-roots.img,format=raw,if=none,id=roots,readonly=on"
        );
        assert!(a.contains(&"virtio-blk-pci,drive=roots,serial=compose-roots".to_string()));
    }

    #[test]
    fn forwards_bind_loopback_only() {
        let mut s = spec(Accel::Tcg, Console::Terminal);
        s.forwards = vec![
            Forward::tcp(8080, 80),
            Forward::tcp(9000, 443),
            Forward {
                host: 5353,
                guest: 53,
                udp: true,
            },
        ];
        let a = args(&s);
        let netdev = &a[a.iter().position(|x| x == "-netdev").unwrap() + 1];
        assert_eq!(
            netdev,
            "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:9000-:443,hostfwd=udp:127.0.0.1:5353-:53"
        );
    }

    #[test]
    fn user_arguments_come_last() {
        let mut s = spec(Accel::Tcg, Console::Terminal);
        s.extra = vec!["-device".into(), "virtio-balloon-pci".into()];
        assert_eq!(args(&s)[args(&s).len() - 2..], ["-device", "virtio-balloon-pci"]);
    }

    #[test]
    fn accel_choice() {
        let never = || panic!("must not probe");
        assert_eq!(
            choose_accel(Some(Accel::Kvm), false, never),
            (Accel::Kvm, Why::Requested)
        );
        assert_eq!(
            choose_accel(Some(Accel::Tcg), true, never),
            (Accel::Tcg, Why::Requested)
        );
        assert_eq!(choose_accel(None, false, never), (Accel::Tcg, Why::NoKvmDevice));
        assert_eq!(choose_accel(None, true, || true), (Accel::Kvm, Why::KvmProbeOk));
        assert_eq!(choose_accel(None, true, || false), (Accel::Tcg, Why::KvmProbeFailed));
    }
}
