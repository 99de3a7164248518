//! `Machine`: one QEMU guest booted from a Cairn disk image.

mod disk;
mod freeze;

use crate::agent::Agent;
use crate::console::Console;
use crate::qmp::{self, Qmp};
use crate::HarnessError;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// TCG on a loaded two-core machine is slow: allow for it in every wait.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Uefi,
}

/// How the boot disk is attached: the bare-metal image boots from each (issue 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bus {
    /// virtio-blk, as a cloud VM has it.
    #[default]
    Virtio,
    /// SATA on the q35 machine's own ICH9 AHCI controller.
    Ahci,
    /// An NVMe controller with the disk as its namespace.
    Nvme,
    /// A USB stick (usb-storage) on an xHCI controller.
    Usb,
}

impl Bus {
    /// QEMU's -device arguments for the boot drive `boot`, booted first.
    fn devices(self) -> Vec<String> {
        match self {
            Bus::Virtio => vec!["virtio-blk-pci,drive=boot,bootindex=0".into()],
            Bus::Ahci => vec!["ide-hd,drive=boot,bus=ide.0,bootindex=0".into()],
            Bus::Nvme => vec!["nvme,drive=boot,serial=cairn-boot,bootindex=0".into()],
            Bus::Usb => vec!["qemu-xhci,id=xhci".into(), "usb-storage,bus=xhci.0,drive=boot,removable=on,bootindex=0".into()],
        }
    }
}

#[derive(Debug, Clone)]
pub struct MachineConfig {
    pub name: String,
    pub disk: PathBuf,
    pub disk_size_mb: u64,
    pub firmware: Firmware,
    pub memory_mb: u32,
    pub cpus: u32,
    pub host_port_forwards: Vec<(u16, u16)>,
    /// QEMU's user network even without forwards: the guest reaches the host's loopback
    /// as 10.0.2.2 (an update repository served by the test).
    pub network: bool,
    /// Extra read-only raw disks (/dev/vdb, /dev/vdc, ... in the guest), e.g. a tarball.
    pub extra_drives: Vec<PathBuf>,
    /// Read-only raw disks enumerated *before* the boot disk (so the first is /dev/vda and
    /// the boot disk comes after them); the firmware still boots the boot disk (bootindex).
    pub drives_before: Vec<PathBuf>,
    /// Byte offsets of the boot disk whose reads fail with EIO (QEMU's blkdebug driver, a
    /// bad sector), from the next start on; reads of anything else and all writes work.
    pub boot_read_errors: Vec<u64>,
    /// A disk overlay holding QEMU's internal snapshot `ready` (see `snapshot`): the machine's
    /// disk starts as a copy of it, and its first start resumes the snapshot (`-loadvm`)
    /// instead of booting. Later starts (power cycles) boot as usual.
    pub start_from: Option<PathBuf>,
    /// A frozen disk state (`Machine::freeze_disk`): the machine's overlay has it as its
    /// backing file instead of `disk`, so it boots the disk as it stood at that instant.
    pub disk_state: Option<PathBuf>,
    /// How the boot disk is attached.
    pub bus: Bus,
    /// QEMU's NIC model (`-nic user,model=`): virtio-net-pci, or e1000e as on a server board.
    pub nic: &'static str,
}

impl MachineConfig {
    pub fn new(name: &str, disk: &Path, firmware: Firmware) -> MachineConfig {
        MachineConfig { name: name.to_owned(), disk: disk.to_owned(), disk_size_mb: 2048, firmware, memory_mb: 1024, cpus: 2, host_port_forwards: Vec::new(), network: false, extra_drives: Vec::new(), drives_before: Vec::new(), boot_read_errors: Vec::new(), start_from: None, disk_state: None, bus: Bus::Virtio, nic: "virtio-net-pci" }
    }
}

/// The parsed `CAIRN READY` line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadyLine {
    pub slot: String,
    pub version: String,
    pub kernel_ms: u64,
    pub stage1_ms: u64,
    pub stage2_ms: u64,
    pub pid1_rss_kib: u64,
    pub boot_id: String,
}

impl ReadyLine {
    pub fn parse(line: &str) -> Option<ReadyLine> {
        let rest = &line[line.find("CAIRN READY")? + "CAIRN READY".len()..];
        let mut r = ReadyLine::default();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "slot" => r.slot = v.into(),
                "version" => r.version = v.into(),
                "kernel_ms" => r.kernel_ms = v.parse().ok()?,
                "stage1_ms" => r.stage1_ms = v.parse().ok()?,
                "stage2_ms" => r.stage2_ms = v.parse().ok()?,
                "pid1_rss_kib" => r.pid1_rss_kib = v.parse().ok()?,
                "boot_id" => r.boot_id = v.into(),
                _ => {}
            }
        }
        (!r.slot.is_empty()).then_some(r)
    }
}

#[derive(Debug)]
pub struct Machine {
    cfg: MachineConfig,
    dir: PathBuf,
    child: Option<Child>,
    qmp: Option<Qmp>,
    agent: Option<Agent>,
    console: Console,
    started: Instant,
    /// QMP and agent sockets live here, not in `dir`: a socket path must fit in sun_path
    /// (108 bytes), and `dir` grows with the checkout path and the test's name (CI checks out
    /// under /check/work/main, which pushed two tests over the limit).
    sockets: PathBuf,
    /// The next start resumes `cfg.start_from`'s snapshot instead of booting (once).
    resume: bool,
    /// The file on top of the boot disk's chain, the one QEMU writes: `overlay.qcow2` until
    /// `freeze_disk` puts another on it.
    top: PathBuf,
    /// The files `freeze_disk` froze, oldest first.
    frozen: Vec<PathBuf>,
}

/// A short directory for one machine's sockets: /tmp/cairn-vm-<hash of its log dir>.
/// The hash keeps two checkouts or two tests with the same name apart.
fn socket_dir(dir: &Path) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    std::env::temp_dir().join(format!("cairn-vm-{:016x}", h.finish()))
}

fn need(tool: &str, package: &str) -> Result<(), HarnessError> {
    let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    if found {
        Ok(())
    } else {
        Err(HarnessError::Missing { tool: tool.into(), package: package.into() })
    }
}

impl Machine {
    pub fn start(cfg: MachineConfig) -> Result<Machine, HarnessError> {
        let mut m = Machine::prepare(cfg)?;
        m.launch()?;
        Ok(m)
    }

    /// Makes the machine's disk overlay (and firmware variables) without powering it on, so
    /// a test can change the disk first (`damage_disk`); `restart` powers it on.
    pub fn prepare(cfg: MachineConfig) -> Result<Machine, HarnessError> {
        need("qemu-system-x86_64", "qemu-system-x86")?;
        need("qemu-img", "qemu-utils")?;
        let dir = crate::workspace().join("target/qemu-tests").join(&cfg.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(HarnessError::io(format!("create {}", dir.display())))?;
        let disk = std::fs::canonicalize(&cfg.disk).map_err(HarnessError::io(format!("disk image {}", cfg.disk.display())))?;
        let console = Console::default();
        if let Some(saved) = &cfg.start_from {
            std::fs::copy(saved, dir.join("overlay.qcow2")).map_err(HarnessError::io(format!("copy the snapshot {}", saved.display())))?;
            // The boot the snapshot was taken in, so its ready line and messages are there.
            let before = std::fs::read_to_string(saved.with_extension("console.log")).unwrap_or_default();
            console.seed(&before);
            std::fs::write(dir.join("console.log"), format!("{before}\n[cairn-qemu-tests: resumed the snapshot taken at ready]\n")).map_err(HarnessError::io("console log"))?;
        } else if let Some(state) = &cfg.disk_state {
            Machine::create_overlay_on(state, "qcow2", &dir, cfg.disk_size_mb)?;
        } else {
            // The image as a cloud would take it: raw, qcow2, or a (fixed) VHD, QEMU's "vpc".
            let format = match disk.extension().and_then(|e| e.to_str()) {
                Some("qcow2") => "qcow2",
                Some("vhd") => "vpc",
                _ => "raw",
            };
            Machine::create_overlay_on(&disk, format, &dir, cfg.disk_size_mb)?;
        }
        if cfg.firmware == Firmware::Uefi {
            if !Path::new(OVMF_CODE).is_file() {
                return Err(HarnessError::Missing { tool: OVMF_CODE.into(), package: "ovmf".into() });
            }
            std::fs::copy(OVMF_VARS, dir.join("vars.fd")).map_err(HarnessError::io("copy OVMF vars"))?;
        }
        let sockets = socket_dir(&dir);
        let _ = std::fs::remove_dir_all(&sockets);
        std::fs::create_dir_all(&sockets).map_err(HarnessError::io(format!("create {}", sockets.display())))?;
        let resume = cfg.start_from.is_some();
        let top = dir.join("overlay.qcow2");
        Ok(Machine { cfg, dir, child: None, qmp: None, agent: None, console, started: Instant::now(), sockets, resume, top, frozen: Vec::new() })
    }

    /// A copy-on-write overlay of the (never modified) base image or frozen disk state.
    fn create_overlay_on(backing: &Path, format: &str, dir: &Path, size_mb: u64) -> Result<(), HarnessError> {
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", format, "-b"])
            .arg(backing)
            .arg(dir.join("overlay.qcow2"))
            .arg(format!("{size_mb}M"))
            .output()
            .map_err(HarnessError::io("qemu-img create"))?;
        if !out.status.success() {
            return Err(HarnessError::Qmp(format!("qemu-img create: {}", String::from_utf8_lossy(&out.stderr))));
        }
        Ok(())
    }

    /// Saves the running machine as QEMU's internal snapshot `ready` and powers it off; its
    /// overlay (with the snapshot inside) goes to `to`, its console log beside it, for
    /// `MachineConfig::start_from`.
    pub fn save_ready_snapshot(&mut self, to: &Path) -> Result<(), HarnessError> {
        self.hmp("savevm ready")?;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.qmp = None;
        self.agent = None;
        std::fs::copy(self.dir.join("overlay.qcow2"), to).map_err(HarnessError::io(format!("keep the snapshot as {}", to.display())))?;
        std::fs::write(to.with_extension("console.log"), self.console.text()).map_err(HarnessError::io("keep the snapshot's console log"))?;
        Ok(())
    }

    /// Starts QEMU on the existing overlay (first start, after a power cut, after poweroff).
    fn launch(&mut self) -> Result<(), HarnessError> {
        let d = &self.dir;
        let (qmp_sock, agent_sock) = (self.sockets.join("qmp.sock"), self.sockets.join("agent.sock"));
        for s in [&qmp_sock, &agent_sock] {
            let _ = std::fs::remove_file(s);
        }
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-machine", &format!("q35,accel={}", crate::kvm::accel())])
            .args(["-m", &self.cfg.memory_mb.to_string(), "-smp", &self.cfg.cpus.to_string()])
            .args(["-nodefaults", "-display", "none", "-serial", "stdio"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_sock.display()))
            .args(["-device", "virtio-serial-pci"])
            .arg("-chardev")
            .arg(format!("socket,id=agent,path={},server=on,wait=off", agent_sock.display()))
            .args(["-device", "virtconsole,chardev=agent"])
            ;
        for (i, before) in self.cfg.drives_before.iter().enumerate() {
            cmd.arg("-drive").arg(format!("file={},format=raw,if=none,id=before{i},readonly=on,file.locking=off", before.display()));
            cmd.args(["-device", &format!("virtio-blk-pci,drive=before{i}")]);
        }
        cmd.arg("-drive").arg(self.boot_drive()?);
        for device in self.cfg.bus.devices() {
            cmd.arg("-device").arg(device);
        }
        cmd.args(["-device", "virtio-rng-pci"]);
        if std::mem::take(&mut self.resume) {
            cmd.args(["-loadvm", "ready"]);
        }
        for extra in &self.cfg.extra_drives {
            cmd.arg("-drive").arg(format!("file={},format=raw,if=virtio,readonly=on", extra.display()));
        }
        if self.cfg.firmware == Firmware::Uefi {
            cmd.arg("-drive").arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"));
            cmd.arg("-drive").arg(format!("if=pflash,format=raw,unit=1,file={}", d.join("vars.fd").display()));
        }
        if self.cfg.host_port_forwards.is_empty() && !self.cfg.network {
            cmd.args(["-nic", "none"]);
        } else {
            let fwd: Vec<String> = self.cfg.host_port_forwards.iter().map(|(h, g)| format!("hostfwd=tcp:127.0.0.1:{h}-:{g}")).collect();
            cmd.arg("-nic").arg(format!("user,model={},{}", self.cfg.nic, fwd.join(",")));
        }
        // QEMU dies with the thread that started it, even if the test process is killed or
        // the machine is never dropped (a shared machine, see `shared.rs`).
        // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
        // async-signal-safe; it touches no memory of the parent.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(d.join("console.log")).map_err(HarnessError::io("console log"))?;
        let stderr = log.try_clone().map_err(HarnessError::io("console log"))?;
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(stderr)).spawn().map_err(HarnessError::io("start qemu-system-x86_64"))?;
        if let Some(out) = child.stdout.take() {
            self.console.capture(out, log);
        }
        self.started = Instant::now();
        self.child = Some(child);
        self.qmp = Some(Qmp::open(&qmp_sock).map_err(|e| self.qemu_exited_or(e))?);
        self.agent = Some(Agent::new(qmp::connect(&agent_sock, Duration::from_secs(20)).map_err(|e| self.qemu_exited_or(e))?)?);
        Ok(())
    }

    /// The boot disk's -drive: the overlay, or with `boot_read_errors` the overlay under
    /// blkdebug under raw (raw reports each read to blkdebug with the guest's offset).
    fn boot_drive(&self) -> Result<String, HarnessError> {
        let overlay = &self.top;
        if self.cfg.boot_read_errors.is_empty() {
            return Ok(format!("file={},format=qcow2,if=none,id=boot,cache=unsafe", overlay.display()));
        }
        let rules: String = self.cfg.boot_read_errors.iter().map(|at| format!("[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nsector = \"{}\"\n\n", at / 512)).collect();
        let conf = self.dir.join("blkdebug.conf");
        std::fs::write(&conf, rules).map_err(HarnessError::io("write blkdebug.conf"))?;
        Ok(format!(
            "if=none,id=boot,cache=unsafe,driver=raw,file.driver=blkdebug,file.config={},file.image.driver=qcow2,file.image.file.driver=file,file.image.file.filename={}",
            conf.display(),
            overlay.display()
        ))
    }

    /// If QEMU has already exited, that (with its own words from the console log) is the
    /// real error, not the socket that never appeared.
    fn qemu_exited_or(&mut self, e: HarnessError) -> HarnessError {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => {
                let log = std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                HarnessError::Qmp(format!("qemu-system-x86_64 exited ({status}) before its sockets answered: {}", tail.join(" | ")))
            }
            _ => e,
        }
    }

    fn log_path(&self) -> String {
        self.dir.join("console.log").display().to_string()
    }

    fn timeout(&self, what: &str, t: Duration) -> HarnessError {
        HarnessError::Timeout { what: what.into(), secs: crate::deadline(t).as_secs(), log: self.log_path() }
    }

    pub fn log_dir(&self) -> &Path {
        &self.dir
    }

    /// When QEMU was (last) started, for boot timelines.
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn console_log(&self) -> String {
        self.console.text()
    }

    pub fn mark_console(&self) {
        self.console.mark();
    }

    pub fn wait_for_console_text(&self, needle: &str, timeout: Duration) -> Result<String, HarnessError> {
        self.console.wait_for(needle, timeout).ok_or_else(|| self.timeout(&format!("console text {needle:?}"), timeout))
    }

    pub fn wait_for_ready(&self, timeout: Duration) -> Result<ReadyLine, HarnessError> {
        let line = self.wait_for_console_text("CAIRN READY", timeout)?;
        ReadyLine::parse(&line).ok_or_else(|| HarnessError::Qmp(format!("unparsable ready line {line:?}")))
    }

    fn agent(&self) -> Result<&Agent, HarnessError> {
        self.agent.as_ref().ok_or_else(|| HarnessError::Exited { status: "not running".into(), log: self.log_path() })
    }

    /// Waits until the agent answers a command.
    pub fn wait_for_agent(&self, timeout: Duration) -> Result<String, HarnessError> {
        let deadline = Instant::now() + crate::deadline(timeout);
        while Instant::now() < deadline {
            let agent = self.agent()?;
            let id = agent.send("cat /proc/sys/kernel/random/boot_id", Duration::from_secs(10))?;
            if let Some((0, out)) = agent.wait_reply(id, Duration::from_secs(3)) {
                return Ok(out.trim().to_owned());
            }
        }
        Err(self.timeout("the test agent", timeout))
    }

    pub fn execute(&self, cmd: &str, timeout: Duration) -> Result<(i32, String), HarnessError> {
        let agent = self.agent()?;
        let id = agent.send(cmd, crate::deadline(timeout))?;
        agent.wait_reply(id, timeout + Duration::from_secs(10)).ok_or_else(|| self.timeout(&format!("`{cmd}`"), timeout))
    }

    pub fn succeed(&self, cmd: &str) -> Result<String, HarnessError> {
        match self.execute(cmd, Duration::from_secs(120))? {
            (0, out) => Ok(out),
            (status, output) => Err(HarnessError::Command { cmd: cmd.into(), expectation: "failed", status, output }),
        }
    }

    pub fn fail(&self, cmd: &str) -> Result<String, HarnessError> {
        match self.execute(cmd, Duration::from_secs(120))? {
            (0, output) => Err(HarnessError::Command { cmd: cmd.into(), expectation: "succeeded but should have failed", status: 0, output }),
            (_, out) => Ok(out),
        }
    }

    pub fn wait_until_succeeds(&self, cmd: &str, timeout: Duration) -> Result<String, HarnessError> {
        let deadline = Instant::now() + crate::deadline(timeout);
        loop {
            if let Ok((0, out)) = self.execute(cmd, Duration::from_secs(30)) {
                return Ok(out);
            }
            if Instant::now() >= deadline {
                return Err(self.timeout(&format!("`{cmd}` to succeed"), timeout));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Asks the guest's PID 1 to reboot (SIGINT); returns at once. Marks the console first,
    /// so `wait_for_ready` then waits for the next boot.
    pub fn reboot(&self) -> Result<(), HarnessError> {
        self.mark_console();
        self.agent()?.send("kill -INT 1", Duration::from_secs(5)).map(|_| ())
    }

    pub fn send_ctrl_alt_del(&mut self) -> Result<(), HarnessError> {
        self.mark_console();
        self.qmp_cmd("send-key", json!({"keys": [{"type": "qcode", "data": "ctrl"}, {"type": "qcode", "data": "alt"}, {"type": "qcode", "data": "delete"}]}))
    }

    pub fn power_button(&mut self) -> Result<(), HarnessError> {
        self.mark_console();
        self.qmp_cmd("system_powerdown", json!({}))
    }

    pub fn reset(&mut self) -> Result<(), HarnessError> {
        self.mark_console();
        self.qmp_cmd("system_reset", json!({}))
    }

    /// Forwards the host's 127.0.0.1:`host` to the guest's TCP `guest` from now on (QEMU's
    /// user network, `hostfwd_add`): a resumed snapshot gets the forwards its test needs.
    pub fn forward(&mut self, host: u16, guest: u16) -> Result<(), HarnessError> {
        self.hmp(&format!("hostfwd_add tcp:127.0.0.1:{host}-:{guest}"))
    }

    /// A human-monitor command through QMP. HMP answers an error as text and success with
    /// nothing, so any text is the error.
    fn hmp(&mut self, line: &str) -> Result<(), HarnessError> {
        let q = self.qmp.as_mut().ok_or_else(|| HarnessError::Qmp("QEMU is not running".into()))?;
        let reply = q.execute("human-monitor-command", json!({ "command-line": line }))?;
        let said = reply.get("return").and_then(|r| r.as_str()).unwrap_or_default().trim().to_owned();
        if !said.is_empty() {
            return Err(HarnessError::Qmp(format!("{line}: {said}")));
        }
        Ok(())
    }

    fn qmp_cmd(&mut self, cmd: &str, args: serde_json::Value) -> Result<(), HarnessError> {
        let q = self.qmp.as_mut().ok_or_else(|| HarnessError::Qmp("QEMU is not running".into()))?;
        q.execute(cmd, args).map(|_| ())
    }

    /// Asks the guest to power off (SIGPWR to PID 1) and waits for QEMU to exit.
    pub fn shutdown(&mut self, timeout: Duration) -> Result<ExitStatus, HarnessError> {
        self.mark_console();
        self.agent()?.send("kill -PWR 1", Duration::from_secs(5))?;
        self.wait_for_exit(timeout)
    }

    pub fn wait_for_exit(&mut self, timeout: Duration) -> Result<ExitStatus, HarnessError> {
        let deadline = Instant::now() + crate::deadline(timeout);
        let child = self.child.as_mut().ok_or_else(|| HarnessError::Qmp("QEMU is not running".into()))?;
        loop {
            if let Some(st) = child.try_wait().map_err(HarnessError::io("wait for qemu"))? {
                self.child = None;
                self.qmp = None;
                self.agent = None;
                return Ok(st);
            }
            if Instant::now() >= deadline {
                return Err(self.timeout("QEMU to exit", timeout));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A power cut: SIGKILL QEMU (nothing the guest had not written reaches the disk), then
    /// power on again on the same overlay and firmware variables.
    pub fn crash(&mut self) -> Result<(), HarnessError> {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.restart()
    }

    /// Makes reads of the boot disk at these byte offsets fail from the next start on (an
    /// empty list heals the disk); see `MachineConfig::boot_read_errors`.
    pub fn set_boot_read_errors(&mut self, offsets: &[u64]) {
        self.cfg.boot_read_errors = offsets.to_vec();
    }

    /// Attaches a read-only disk ahead of the boot disk from the next start on.
    pub fn attach_before_boot_disk(&mut self, disk: &Path) {
        self.cfg.drives_before.push(disk.to_owned());
    }

    /// Starts QEMU again on the same overlay after it exited (or for the first time, after
    /// `prepare`).
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.qmp = None;
        self.agent = None;
        self.mark_console();
        self.launch()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for f in self.frozen.iter().chain([&self.top, &self.dir.join("overlay.qcow2")]) {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_file(self.dir.join("vars.fd"));
        let _ = std::fs::remove_dir_all(&self.sockets);
        if std::thread::panicking() {
            eprintln!("console log kept: {}", self.log_path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_fit_in_sun_path_however_deep_the_checkout() {
        let deep = PathBuf::from("/check/work/main").join("x".repeat(200)).join("target/qemu-tests/a_test_with_a_very_long_name_indeed");
        let s = socket_dir(&deep).join("agent.sock");
        assert!(s.as_os_str().len() < 108, "{} is too long for sun_path", s.display());
        assert_ne!(socket_dir(&deep), socket_dir(Path::new("/work/main/target/qemu-tests/a_test_with_a_very_long_name_indeed")));
    }

    #[test]
    fn ready_line_parses() {
        let r = ReadyLine::parse("cairn: CAIRN READY slot=b version=0.1.0 kernel_ms=1766 stage1_ms=480 stage2_ms=317 boot_id=71da").unwrap_or_default();
        assert_eq!((r.slot.as_str(), r.kernel_ms, r.stage1_ms, r.stage2_ms, r.boot_id.as_str()), ("b", 1766, 480, 317, "71da"));
        assert_eq!(ReadyLine::parse("nothing here"), None);
    }
}
