//! Stage 2: `/sbin/init` in the verified root. Applies the hardening baseline, starts the
//! services, marks the slot good, prints the ready line, then supervises: reaps children
//! through a signalfd, restarts services, and turns signals into reboot or poweroff.
//!
//! Signals: SIGINT (Ctrl-Alt-Del, once the kernel's own handling is off) reboots; SIGPWR,
//! SIGTERM and the ACPI power button power off. Once a shutdown runs, further signals are
//! ignored.

use crate::service::{self, Service, State};
use crate::sys::{Power, Sys};
use crate::{bootctl, say};
use nix::mount::MsFlags;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use std::io::Read;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

const SERVICE_DIRS: &[&str] = &["/etc/cairn/services"];
pub const STATUS_FILE: &str = "/run/cairn/status.json";

#[derive(Debug, thiserror::Error)]
pub enum Stage2Error {
    #[error("cannot set up the signal handling PID 1 needs: {0}")]
    Signals(nix::Error),
}

/// Reaps every exited child; calls `on_exit(pid, status)` for each.
pub fn reap_all(on_exit: &mut dyn FnMut(i32, WaitStatus)) {
    loop {
        match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(st) => {
                if let Some(pid) = st.pid() {
                    on_exit(pid.as_raw(), st);
                }
            }
        }
    }
}

fn describe(st: &WaitStatus) -> (String, bool) {
    match st {
        WaitStatus::Exited(_, code) => (format!("exited with status {code}"), *code == 0),
        WaitStatus::Signaled(_, sig, core) => (format!("killed by {sig}{}", if *core { " (core dumped)" } else { "" }), false),
        other => (format!("{other:?}"), false),
    }
}

#[derive(Debug)]
struct Boot {
    slot: String,
    version: String,
    boot_id: String,
    kernel_ms: u64,
    stage1_ms: u64,
    stage2_ms: u64,
}

pub fn run(sys: &dyn Sys, start_ms: u64) -> Result<(), Stage2Error> {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGINT, Signal::SIGTERM, Signal::SIGPWR, Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2] {
        mask.add(s);
    }
    mask.thread_block().map_err(Stage2Error::Signals)?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(Stage2Error::Signals)?;
    // Ctrl-Alt-Del then reaches us as SIGINT instead of an immediate hard reboot.
    let _ = nix::sys::reboot::set_cad_enabled(false);

    mount_api_filesystems(sys);
    apply_hardening();
    setup_identity();

    let stage1_start: u64 = std::env::var("CAIRN_STAGE1_START_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(start_ms);
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let slot = crate::cmdline::value(&cmdline, "cairn.slot").unwrap_or("?").to_owned();
    let release = std::fs::read_to_string("/etc/cairn/release").unwrap_or_default();
    let version = release.lines().find_map(|l| l.strip_prefix("VERSION=")).unwrap_or("unknown").to_owned();

    let mut services = Vec::new();
    for dir in SERVICE_DIRS {
        let (ok, bad) = service::load_dir(std::path::Path::new(dir));
        for e in bad {
            say!("WARNING: {e}; skipping it, the rest of the node starts");
        }
        services.extend(ok);
    }
    for s in &mut services {
        if let Err(e) = s.start() {
            say!("WARNING: {e}");
            s.exited(e.to_string(), false, Instant::now());
        }
    }

    // Health gate: the services have been started. (Readiness probes come with the
    // supervisor work; then this waits for them.)
    mark_good(sys, &slot);

    let boot = Boot {
        slot,
        version,
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_owned(),
        kernel_ms: stage1_start,
        stage1_ms: start_ms.saturating_sub(stage1_start),
        stage2_ms: crate::log::uptime_ms().saturating_sub(start_ms),
    };
    write_status(&boot, &services);
    say!(
        "CAIRN READY slot={} version={} kernel_ms={} stage1_ms={} stage2_ms={} pid1_rss_kib={} boot_id={}",
        boot.slot,
        boot.version,
        boot.kernel_ms,
        boot.stage1_ms,
        boot.stage2_ms,
        rss_kib(),
        boot.boot_id
    );

    let mut power_buttons = open_power_buttons();
    loop {
        let now = Instant::now();
        let next = services
            .iter()
            .filter_map(|s| match s.state {
                State::Backoff { at } => Some(at.saturating_duration_since(now)),
                _ => None,
            })
            .min();
        let timeout = next.map(|d| PollTimeout::try_from(d.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX)).unwrap_or(PollTimeout::NONE);
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        fds.extend(power_buttons.iter().map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN)));
        let _ = nix::poll::poll(&mut fds, timeout);
        let button_ready: Vec<bool> = fds[1..].iter().map(|f| f.revents().is_some_and(|r| r.contains(PollFlags::POLLIN))).collect();
        drop(fds);

        let mut request = None;
        while let Ok(Some(info)) = sfd.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGINT) => request = Some(Power::Reboot),
                Ok(Signal::SIGPWR) | Ok(Signal::SIGTERM) => request = Some(Power::PowerOff),
                _ => {}
            }
        }
        for (f, ready) in power_buttons.iter_mut().zip(button_ready) {
            if ready && power_key_pressed(f) {
                say!("power button pressed");
                request = Some(Power::PowerOff);
            }
        }
        let changed = supervise(&mut services);
        if changed {
            write_status(&boot, &services);
        }
        if let Some(how) = request {
            shutdown(sys, how, &mut services);
        }
    }
}

/// Reaps children and restarts services whose backoff has passed. Returns whether any
/// service changed state.
fn supervise(services: &mut [Service]) -> bool {
    let mut changed = false;
    let now = Instant::now();
    reap_all(&mut |pid, st| {
        if let Some(s) = services.iter_mut().find(|s| s.state == State::Running { pid }) {
            let (how, ok) = describe(&st);
            say!("service {} {how}", s.name);
            s.exited(how, ok, now);
            changed = true;
        }
    });
    for s in services.iter_mut() {
        if matches!(s.state, State::Backoff { at } if at <= now) {
            if let Err(e) = s.start() {
                say!("WARNING: {e}");
                s.exited(e.to_string(), false, now);
            }
            changed = true;
        }
    }
    changed
}

fn shutdown(sys: &dyn Sys, how: Power, services: &mut [Service]) -> ! {
    say!("{}", if how == Power::Reboot { "rebooting: stopping services" } else { "powering off: stopping services" });
    let mut deadline = Instant::now();
    for s in services.iter_mut().rev() {
        if let State::Running { pid } = s.state {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
            deadline = deadline.max(Instant::now() + Duration::from_secs(s.def.stop_timeout));
        }
        if matches!(s.state, State::Backoff { .. }) {
            s.state = State::Stopped;
        }
    }
    let mut running: Vec<(String, i32)> = services
        .iter()
        .filter_map(|s| match s.state {
            State::Running { pid } => Some((s.name.clone(), pid)),
            _ => None,
        })
        .collect();
    while !running.is_empty() && Instant::now() < deadline {
        reap_all(&mut |pid, _| running.retain(|(_, p)| *p != pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    for (name, pid) in &running {
        say!("service {name} did not stop in time: SIGKILL");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGKILL);
    }
    crate::shutdown::finish(sys, how, &|| std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

fn mount_api_filesystems(sys: &dyn Sys) {
    let nsnd = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    for (src, dir, fs, flags, data) in [
        ("devpts", "/dev/pts", "devpts", MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, "gid=5,mode=620,ptmxmode=000"),
        ("tmpfs", "/dev/shm", "tmpfs", nsnd | MsFlags::MS_NOEXEC, "mode=1777"),
        ("tmpfs", "/tmp", "tmpfs", nsnd | MsFlags::MS_NOEXEC, "mode=1777"),
        ("cgroup2", "/sys/fs/cgroup", "cgroup2", nsnd | MsFlags::MS_NOEXEC, "nsdelegate,memory_recursiveprot"),
    ] {
        let _ = std::fs::create_dir_all(dir);
        if let Err(e) = sys.mount(src, dir, fs, flags, data) {
            say!("WARNING: cannot mount {dir} ({fs}): {e}");
        }
    }
    let _ = std::fs::create_dir_all("/run/cairn");
}

fn apply_hardening() {
    use cairn_hardening::{audit, sysctl};
    let proc_sys = std::path::Path::new("/proc/sys");
    let results = sysctl::apply(proc_sys, sysctl::BASELINE);
    for a in &results {
        match &a.result {
            Ok(()) => {}
            // A knob this kernel does not have: nothing an operator can fix, say it once.
            Err(sysctl::SysctlError::Unsupported { key, .. }) => say!("hardening: {key} is not supported by this kernel"),
            Err(e) => say!("WARNING: hardening: {e}"),
        }
    }
    let report = audit::audit(proc_sys, &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
    say!("hardening: {}/{} baseline items applied", report.applied(), report.items.len());
    if let Ok(json) = serde_json::to_string_pretty(&report) {
        let _ = std::fs::write("/run/cairn/hardening.json", json);
    }
}

/// machine-id and hostname live on /data (the root is read-only); made on first boot.
fn setup_identity() {
    let _ = std::fs::create_dir_all("/data/etc");
    let mid = std::path::Path::new("/data/etc/machine-id");
    if !mid.exists() {
        let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap_or_default();
        let id: String = uuid.trim().chars().filter(|c| *c != '-').collect();
        if id.len() == 32 {
            let _ = std::fs::write(mid, format!("{id}\n"));
        }
    }
    let name = std::fs::read_to_string("/data/etc/hostname").or_else(|_| std::fs::read_to_string("/etc/hostname")).unwrap_or_else(|_| "cairn".into());
    let _ = nix::unistd::sethostname(name.trim());
}

fn mark_good(sys: &dyn Sys, slot: &str) {
    let Ok(slot) = cairn_updater::slot::Slot::parse(slot) else {
        say!("WARNING: no cairn.slot on the kernel command line; not touching grubenv");
        return;
    };
    match bootctl::update(sys, &bootctl::EspAccess::default(), |env| env.mark_good(slot)) {
        Ok(_) => say!("slot {slot} marked good"),
        Err(e) => say!("WARNING: could not mark slot {slot} good: {e}; the next boot will fall back to the other slot"),
    }
}

/// PID 1's resident memory (VmRSS), for the ready line and the benchmark.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

fn write_status(boot: &Boot, services: &[Service]) {
    let status = serde_json::json!({
        "slot": boot.slot,
        "version": boot.version,
        "boot_id": boot.boot_id,
        "timeline_ms": { "kernel": boot.kernel_ms, "stage1": boot.stage1_ms, "stage2": boot.stage2_ms },
        "services": service::summary(services),
    });
    let tmp = format!("{STATUS_FILE}.tmp");
    if std::fs::write(&tmp, status.to_string()).is_ok() {
        let _ = std::fs::rename(tmp, STATUS_FILE);
    }
}

/// The ACPI power button is an input device; its KEY_POWER press is our poweroff request.
fn open_power_buttons() -> Vec<std::fs::File> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/sys/class/input") else { return out };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("event") {
            continue;
        }
        let dev_name = std::fs::read_to_string(e.path().join("device/name")).unwrap_or_default();
        if dev_name.trim() == "Power Button" {
            if let Ok(f) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(format!("/dev/input/{name}")) {
                out.push(f);
            }
        }
    }
    out
}

use std::os::unix::fs::OpenOptionsExt;

/// Reads pending input events (struct input_event: 16 bytes of time, u16 type, u16 code,
/// i32 value); true if one is EV_KEY/KEY_POWER pressed.
fn power_key_pressed(f: &mut std::fs::File) -> bool {
    let mut buf = [0u8; 24 * 16];
    let mut pressed = false;
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        for ev in buf[..n].chunks_exact(24) {
            let kind = u16::from_ne_bytes([ev[16], ev[17]]);
            let code = u16::from_ne_bytes([ev[18], ev[19]]);
            let value = i32::from_ne_bytes([ev[20], ev[21], ev[22], ev[23]]);
            if kind == 1 && code == 116 && value == 1 {
                pressed = true;
            }
        }
    }
    pressed
}
