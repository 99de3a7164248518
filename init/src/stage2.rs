//! Stage 2: `/sbin/init` in the verified root. Applies the hardening baseline, prepares the
//! writable state on /data, starts the supervisor, marks the slot good once the health gate
//! holds, prints the ready line, serves the control API, and turns signals into reboot or
//! poweroff.
//!
//! The watchdog (`watchdog.rs`) is armed before the first service starts and petted from the
//! main loop, so a PID 1 that stops turning reboots the node.
//!
//! Signals: SIGINT (Ctrl-Alt-Del, once the kernel's own handling is off) reboots; SIGPWR,
//! SIGTERM and the ACPI power button power off. Once a shutdown runs, further signals are
//! ignored. The first request writes the shutdown marker on /data (why, when), from which
//! the eligibility tracker tells a planned reboot from a power loss (`eligibility::boots`).

use crate::control::SystemStatus;
use crate::logs::LogHub;
use crate::supervisor::{Supervisor, Waker};
use crate::eligibility::boots::{self, Why};
use crate::sys::{Power, Sys};
use crate::{bootctl, say};
use nix::mount::MsFlags;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io::Read;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// The health gate gives up waiting after this long: the slot is marked good anyway (with a
/// warning naming what never became ready) so one bad service cannot roll back the OS.
/// Members of this group (besides root) may change things through the control API; an
/// operator can name another group in /data/cairn/operator-group.
const OPERATOR_GROUP: &str = "operator";

#[derive(Debug, thiserror::Error)]
pub enum Stage2Error {
    #[error("cannot set up the signal handling PID 1 needs: {0}")]
    Signals(nix::Error),
    #[error("cannot start the log thread: {0}")]
    Logs(std::io::Error),
    #[error("the service log thread ended and cannot be started again: services would block on their full output pipes")]
    LogThreadLost,
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

    // A console that does not drain must cost lines, not stall PID 1 (see log::console).
    if let Err(e) = crate::log::console_nonblocking() {
        say!("WARNING: cannot make the console non-blocking ({e}); a stalled serial line could stall PID 1");
    }
    mount_api_filesystems(sys);
    prepare_var(sys);
    apply_hardening();
    boot_config();
    setup_identity();
    prepare_journal_dirs();
    if let Err(e) = crate::net::loopback_up() {
        say!("WARNING: cannot bring up the loopback interface: {e}; services on 127.0.0.1 will not be reachable");
    }
    let _ = std::fs::create_dir_all("/data/cairn/services");

    let stage1_start: u64 = std::env::var("CAIRN_STAGE1_START_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(start_ms);
    // Parsed once; the status, mark-good and mark-stable all use this value. After a soft
    // reboot the command line still names the slot the kernel booted: the switch's state
    // names the one that runs.
    let (slot, root_hash) = crate::soft_reboot::running();
    let mut soft = crate::soft_reboot::State::read();
    if let Some(s) = &soft {
        if std::env::var_os("CAIRN_SOFT_REBOOT").is_some() {
            say!("soft reboot {}: slot {} (version {}) runs in place of slot {}; kernel and boot id carry on", s.count, s.slot, s.version, s.from_slot);
            crate::soft_reboot::remove_stale_roots();
        }
    }
    let status_slot = slot.map_or_else(|| "?".to_owned(), |s| s.to_string());
    let release = std::fs::read_to_string("/etc/cairn/release").unwrap_or_default();
    // The slot's signed version (stage 1 verified it), else the image's own.
    let signed_version = std::fs::read_to_string(crate::update::SLOT_VERSION_FILE).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let version = signed_version.clone().unwrap_or_else(|| release.lines().find_map(|l| l.strip_prefix("VERSION=")).unwrap_or("unknown").to_owned());
    let status = SystemStatus {
        slot: status_slot.clone(),
        version: version.clone(),
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_owned(),
        uptime_s: 0,
        root_hash: root_hash.clone(),
        ready: false,
    };

    let hub = LogHub::start().map_err(Stage2Error::Logs)?;
    let waker = Waker::new().map_err(Stage2Error::Logs)?;
    let dirs: Vec<&std::path::Path> = crate::service::definition::DIRS.iter().map(std::path::Path::new).collect();
    let mut sup = Supervisor::new(&dirs, hub.clone(), waker.clone(), status.clone());
    let policy = api_policy();
    let mut api: Option<crate::api::ApiHandle> = None;
    let mut api_tried: Option<Instant> = None;
    let mut api_connecting: Option<std::sync::mpsc::Receiver<Result<crate::api::ApiHandle, crate::api::ApiError>>> = None;
    let gate_start = Instant::now();
    let (gate, warnings) = crate::update::gate();
    for w in warnings {
        say!("WARNING: {w}");
    }
    if let Some(argv) = gate.check.clone() {
        sup.set_gate_check(argv, Duration::from_secs(gate.check_timeout_s));
    }
    let mut ready = false;
    // Where an update's reboot goes by soft reboot, once decided; when the services began to stop.
    let mut soft_target: Option<crate::soft_reboot::Target> = None;
    let mut stopping_ms = 0u64;
    let mut gate_failed = false;
    let mut power_buttons = open_power_buttons();
    // The loop below wakes at least once a second, so petting from it needs no timer of its own.
    let mut watchdog = match crate::watchdog::Watchdog::arm(crate::watchdog::TIMEOUT) {
        Ok(w) => {
            say!("watchdog armed: {} reboots the node if PID 1 stalls for {} s", crate::watchdog::DEVICE, w.timeout().as_secs());
            Some(w)
        }
        Err(e) => {
            say!("WARNING: {e}");
            None
        }
    };

    let monitor = StallMonitor::start();
    let mut ready_at: Option<Instant> = None;
    let mut stable_recorded = false;
    loop {
        monitor.turned();
        if let Some(w) = watchdog.as_mut() {
            w.pet_if_due();
        }
        // Up and ready long enough: the slot's failed boots no longer count.
        if !stable_recorded && ready_at.is_some_and(|t| t.elapsed() >= Duration::from_secs(cairn_updater::grubenv::STABLE_AFTER_S)) {
            stable_recorded = true;
            mark_stable(sys, slot);
        }
        if !hub.check() {
            return Err(Stage2Error::LogThreadLost);
        }
        let journal_dropped = crate::journal::Writer::global().take_dropped();
        if journal_dropped > 0 {
            crate::log::console(&format!("WARNING: {journal_dropped} log lines for journald were dropped: it did not read them in time (stopped or overloaded)"));
        }
        let mut request = sup.tick();
        if !ready && !gate_failed {
            let (holds, waiting) = sup.gate(gate.services.as_deref());
            let timed_out = gate_start.elapsed() >= Duration::from_secs(gate.deadline_s);
            if !holds && timed_out && on_trial(sys, slot) {
                // Issue 9 item 6: a new slot that misses its gate is not committed. Counted as
                // a failed boot of a slot on trial, it loses its remaining tries, so the reboot
                // falls back to the other slot, whose PID 1 ends the trial (see `mark_good`).
                gate_failed = true;
                let detail = format!("not met within {} s: {}", gate.deadline_s, waiting.join("; "));
                say!("slot {status_slot} (version {version}) is on trial and failed its health gate, {detail}; rebooting into the previous slot");
                let reason = format!("health gate {detail}");
                let failure = crate::update::Failure { version: version.clone(), slot: status_slot.clone(), reason };
                if let Err(e) = crate::update::record_failure(&failure) {
                    say!("WARNING: could not record the failed trial: {}", crate::log::chain(&e));
                }
                record_failure(sys);
                // Came here by a soft reboot: go back the same way, to the slot it came from.
                soft_target = soft.as_ref().and_then(|s| {
                    let from = cairn_updater::slot::Slot::parse(&s.from_slot).ok()?;
                    plan_soft(sys, slot?, &root_hash, from)
                });
                request = Some((Power::Reboot, Why::Update));
            } else if holds || timed_out {
                if !holds {
                    say!("WARNING: health gate not met within {} s: {}; the slot is committed, so it is marked good anyway", gate.deadline_s, waiting.join("; "));
                }
                ready = true;
                ready_at = Some(Instant::now());
                mark_good(sys, slot, signed_version.as_deref());
                sup.set_ready();
                if let Some(s) = soft.as_mut().filter(|s| s.down_ms.is_none()) {
                    let down = crate::log::uptime_ms().saturating_sub(s.stopping_ms);
                    s.down_ms = Some(down);
                    if let Err(e) = s.write() {
                        say!("WARNING: cannot record the soft reboot's downtime in {}: {e}", crate::soft_reboot::STATE);
                    }
                    say!("soft reboot {}: services were down {down} ms (from the first stopping to ready)", s.count);
                }
                say!(
                    "CAIRN READY slot={} version={} kernel_ms={} stage1_ms={} stage2_ms={} pid1_rss_kib={} boot_id={}",
                    status_slot,
                    version,
                    stage1_start,
                    start_ms.saturating_sub(stage1_start),
                    crate::log::uptime_ms().saturating_sub(start_ms),
                    rss_kib(),
                    status.boot_id
                );
            }
        }
        // The control API lives on the system bus: (re)connect whenever dbus is ready and
        // we are not connected; drop the connection when dbus goes away.
        if !sup.is_ready("dbus") {
            api = None;
        } else if api.is_none() && api_connecting.is_none() && api_tried.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
            // Connecting talks to dbus-daemon (auth, RequestName): a stuck daemon must not
            // hold PID 1's loop, so it happens on a thread of its own.
            api_tried = Some(Instant::now());
            let (tx, rx) = std::sync::mpsc::channel();
            let (handle, policy, waker) = (sup.handle(), policy.clone(), waker.clone());
            let spawned = std::thread::Builder::new().name("api-connect".into()).spawn(move || {
                let _ = tx.send(crate::api::serve(None, handle, policy));
                waker.wake();
            });
            match spawned {
                Ok(_) => api_connecting = Some(rx),
                Err(e) => say!("WARNING: control API: cannot start its connect thread: {e}; retrying"),
            }
        }
        if let Some(rx) = &api_connecting {
            match rx.try_recv() {
                Ok(Ok(h)) => {
                    say!("control API on D-Bus: {} {}", crate::control::BUS_NAME, crate::control::OBJECT_PATH);
                    api = Some(h);
                    api_connecting = None;
                }
                Ok(Err(e)) => {
                    say!("WARNING: control API: {e}; retrying");
                    api_connecting = None;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
                Err(std::sync::mpsc::TryRecvError::Disconnected) => api_connecting = None,
            }
        }
        if let Some(how) = sup.shutdown_done() {
            monitor.shutting_down();
            if let (Some(target), Some(from)) = (soft_target.take(), slot) {
                let state = crate::soft_reboot::State {
                    slot: target.slot.to_string(),
                    root_hash: target.root_hash.clone(),
                    version: target.version.clone(),
                    from_slot: from.to_string(),
                    from_root_hash: root_hash.clone(),
                    count: soft.as_ref().map_or(0, |s| s.count) + 1,
                    stopping_ms,
                    down_ms: None,
                };
                let e = crate::soft_reboot::switch(sys, &target, &state);
                say!("soft reboot into slot {} failed: {}; rebooting instead", target.slot, crate::log::chain(&e));
                record_end(&status.boot_id, Why::Update);
            }
            crate::shutdown::finish(sys, how, &|| std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
        }

        let now = Instant::now();
        let mut wait = sup.next_deadline().map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now)).min(Duration::from_secs(1));
        if sup.shutdown_done().is_none() && wait.is_zero() {
            wait = Duration::from_millis(1);
        }
        let timeout = PollTimeout::try_from(wait.as_millis() as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN), PollFd::new(waker.fd(), PollFlags::POLLIN)];
        if let Some(n) = sup.notify_fd() {
            fds.push(PollFd::new(n, PollFlags::POLLIN));
        }
        let first_button = fds.len();
        fds.extend(power_buttons.iter().map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN)));
        let _ = nix::poll::poll(&mut fds, timeout);
        let button_ready: Vec<bool> = fds[first_button..].iter().map(|f| f.revents().is_some_and(|r| r.contains(PollFlags::POLLIN))).collect();
        drop(fds);

        while let Ok(Some(info)) = sfd.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGINT) => request = Some((Power::Reboot, Why::Operator)),
                Ok(Signal::SIGPWR) | Ok(Signal::SIGTERM) => request = Some((Power::PowerOff, Why::Clean)),
                _ => {}
            }
        }
        for (f, ready) in power_buttons.iter_mut().zip(button_ready) {
            if ready && power_key_pressed(f) {
                say!("power button pressed");
                request = Some((Power::PowerOff, Why::Clean));
            }
        }
        if let Some((how, why)) = request {
            // An update's reboot is a soft one where the new slot allows it (decided before
            // any service stops); the gate's way back was decided above.
            if why == Why::Update && how == Power::Reboot && soft_target.is_none() && !gate_failed {
                soft_target = update_target(sys).and_then(|to| plan_soft(sys, slot?, &root_hash, to));
            }
            if sup.request_shutdown(how) {
                stopping_ms = crate::log::uptime_ms();
                // A soft reboot does not end the boot; a failed one records it then.
                if soft_target.is_none() {
                    record_end(&status.boot_id, why);
                }
            }
        }
    }
}

fn api_policy() -> crate::api::Policy {
    let name = std::fs::read_to_string("/data/cairn/operator-group").map(|s| s.trim().to_owned()).unwrap_or_else(|_| OPERATOR_GROUP.to_owned());
    crate::api::Policy::from_groups(&std::fs::read_to_string("/etc/group").unwrap_or_default(), &name)
}

/// /var is /data/var, bind-mounted: logs, container storage and daemon state persist and the
/// root stays read-only. Made on first boot; /var/run and /var/lock point into /run.
fn prepare_var(sys: &dyn Sys) {
    let base = std::path::Path::new("/data/var");
    for d in ["log/journal", "lib/dpkg", "cache", "spool", "tmp"] {
        let _ = std::fs::create_dir_all(base.join(d));
    }
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(base.join("tmp"), std::fs::Permissions::from_mode(0o1777));
    for (link, to) in [("run", "/run"), ("lock", "/run/lock")] {
        let p = base.join(link);
        if std::fs::symlink_metadata(&p).is_err() {
            let _ = std::os::unix::fs::symlink(to, &p);
        }
    }
    let _ = std::fs::create_dir_all("/run/lock");
    mount_var(sys);
}

/// The slot's package database stays where `dpkg-query` and a vulnerability scanner look
/// (/var/lib/dpkg) and always describes the running slot: the slot's own directory is bound
/// over /data/var/lib/dpkg (read-only: it is on the verified root) *before* /data/var goes
/// onto /var, and the recursive bind carries it along. An update then changes what the
/// node reports without anything on /data to rewrite.
fn mount_var(sys: &dyn Sys) {
    if let Err(e) = sys.mount("/var/lib/dpkg", "/data/var/lib/dpkg", "", MsFlags::MS_BIND, "") {
        say!("WARNING: cannot bind the slot's package database onto /data/var/lib/dpkg: {e}; dpkg-query will list nothing");
    }
    if let Err(e) = sys.mount("/data/var", "/var", "", MsFlags::MS_BIND | MsFlags::MS_REC, "") {
        say!("WARNING: cannot bind /data/var onto /var: {e}; /var stays read-only");
    }
}

/// journald makes its own sockets in /run/systemd/journal. The `flushed` flag tells it that
/// /var/log/journal is usable now (systemd's journal-flush service would say so), so it
/// writes the persistent journal on /data at once. /dev/log is its syslog socket.
fn prepare_journal_dirs() {
    let _ = std::fs::create_dir_all("/run/systemd/journal");
    let _ = std::fs::write("/run/systemd/journal/flushed", "");
    if std::fs::symlink_metadata("/dev/log").is_err() {
        let _ = std::os::unix::fs::symlink("/run/systemd/journal/dev-log", "/dev/log");
    }
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

/// First-boot configuration and the firewall: after /data and /run, before the machine id
/// (a new instance removes it) and before any service (the firewall is up before the
/// network is). Each runs as a child with a time limit (`boot_config`).
fn boot_config() {
    use crate::boot_config::{run_step, CAIRNCTL, STEP_TIMEOUT};
    let say = |l: &str| say!("{l}");
    run_step(&[CAIRNCTL, "provision"], STEP_TIMEOUT, &say);
    run_step(&[CAIRNCTL, "firewall", "apply"], STEP_TIMEOUT, &say);
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

/// PID 1's fatal path (an error or a bug in stage 2): count this as a failed boot of the
/// running slot before the reboot, so a slot that keeps failing hands over.
pub fn record_failure(sys: &dyn Sys) {
    match (crate::soft_reboot::running().0, bootctl::EspAccess::recorded()) {
        (Some(slot), Some(access)) => bootctl::record_failed_boot(sys, &access, slot, false),
        _ => say!("WARNING: cannot record the failed boot (no slot on the command line or no boot disk recorded)"),
    }
}

/// Watches the main loop from a thread of its own. If the loop has not turned for
/// `STALL_RECORD` (the watchdog resets the node at `watchdog::TIMEOUT`), it records a failed
/// boot of the running slot, once: a watchdog reset then leaves a record, which a power cut
/// never does. Not during a shutdown, whose last steps may legitimately take long.
struct StallMonitor {
    /// Milliseconds of uptime when the loop last turned.
    turned_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    shutting_down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

const STALL_RECORD: Duration = Duration::from_secs(40);

impl StallMonitor {
    fn start() -> StallMonitor {
        use std::sync::atomic::Ordering;
        let turned_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(crate::log::uptime_ms()));
        let shutting_down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (t, down) = (turned_ms.clone(), shutting_down.clone());
        let spawned = std::thread::Builder::new().name("stall-monitor".into()).stack_size(128 * 1024).spawn(move || loop {
            std::thread::sleep(Duration::from_secs(2));
            let stalled = crate::log::uptime_ms().saturating_sub(t.load(Ordering::Relaxed));
            if stalled >= STALL_RECORD.as_millis() as u64 && !down.load(Ordering::Relaxed) {
                say!("PID 1's main loop has not turned for {} s: the watchdog will reset the node", stalled / 1000);
                record_failure(&crate::sys::RealSys);
                return;
            }
        });
        if let Err(e) = spawned {
            say!("WARNING: cannot start the stall monitor ({e}); a watchdog reset will not be counted against the slot");
        }
        StallMonitor { turned_ms, shutting_down }
    }

    fn turned(&self) {
        self.turned_ms.store(crate::log::uptime_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    fn shutting_down(&self) {
        self.shutting_down.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Commits the running slot (`signed`: its signed version, if stage 1 verified one).
fn mark_good(sys: &dyn Sys, slot: Option<cairn_updater::slot::Slot>, signed: Option<&str>) {
    let Some(slot) = slot else {
        say!("WARNING: no cairn.slot on the kernel command line; not touching grubenv");
        return;
    };
    let Some(access) = bootctl::EspAccess::recorded() else {
        say!("WARNING: stage 1 recorded no boot disk in {}; not touching grubenv (a slot on trial falls back at the next boot)", crate::blockdev::BOOT_DISK_FILE);
        return;
    };
    let mut trial_end = None;
    match bootctl::update(sys, &access, |env| {
        env.mark_good(slot);
        trial_end = env.end_failed_trial(slot);
    }) {
        Ok(_) => say!("slot {slot} marked good"),
        Err(e) => {
            say!("WARNING: could not mark slot {slot} good: {e}; if it is on trial, the next boot falls back to the other slot");
            return;
        }
    }
    if let Some(end) = trial_end {
        failed_trial(sys, slot.other(), end);
    }
    // Issue 9 item 6: the minimum rises only once a slot is committed.
    match signed.map(crate::update::raise_minimum) {
        Some(Ok(Some(v))) => say!("update minimum raised to {v}: older bundles are refused from now on"),
        Some(Err(e)) => say!("WARNING: could not raise the update minimum: {}", crate::log::chain(&e)),
        Some(Ok(None)) | None => {}
    }
}

/// The other slot's trial failed (GRUB booted this one instead): remember its version, so
/// the repository does not install it again, with the reason its own boot recorded if it got
/// that far (a missed health gate), else what grubenv tells.
fn failed_trial(sys: &dyn Sys, other: cairn_updater::slot::Slot, end: cairn_updater::grubenv::TrialEnd) {
    use crate::update::{last_failure, record_failure, signed_version, Failure};
    let version = signed_version(sys, other).unwrap_or_else(|| "unknown".into());
    let recorded = last_failure().filter(|f| f.slot == other.to_string() && f.version == version);
    let failure = recorded.unwrap_or_else(|| Failure { version, slot: other.to_string(), reason: end.to_string() });
    say!("the trial of slot {other} (version {}) failed: {}; it is not installed again from the repository", failure.version, failure.reason);
    if let Err(e) = record_failure(&failure) {
        say!("WARNING: could not record the failed trial: {}", crate::log::chain(&e));
    }
}

/// Whether the running slot is on trial (written by an update, not committed yet).
fn on_trial(sys: &dyn Sys, slot: Option<cairn_updater::slot::Slot>) -> bool {
    let (Some(slot), Some(access)) = (slot, bootctl::EspAccess::recorded()) else { return false };
    let mut trial = false;
    // No change: grubenv is only read (and repaired if a copy is damaged).
    let _ = bootctl::update(sys, &access, |env| trial = env.is_on_trial(slot));
    trial
}

/// Forgets the running slot's failed boots (see `GrubEnv::mark_stable`); writes grubenv
/// only if there were any.
fn mark_stable(sys: &dyn Sys, slot: Option<cairn_updater::slot::Slot>) {
    let (Some(slot), Some(access)) = (slot, bootctl::EspAccess::recorded()) else { return };
    let mut had = 0;
    match bootctl::update(sys, &access, |env| {
        had = env.failures(slot);
        env.mark_stable(slot);
    }) {
        Ok(_) if had > 0 => say!("slot {slot} ran stably for {} s: its {had} failed boot(s) no longer count", cairn_updater::grubenv::STABLE_AFTER_S),
        Ok(_) => {}
        Err(e) => say!("WARNING: could not reset the failed boots of slot {slot}: {e}"),
    }
}

/// PID 1's resident memory (VmRSS), for the ready line and the benchmark.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
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

/// The slot an update's reboot boots: the one grubenv boots next, if it is not this one and
/// the operator has not turned soft reboots off (`soft_reboot = false` in the update config).
fn update_target(sys: &dyn Sys) -> Option<cairn_updater::slot::Slot> {
    if crate::update::config().is_ok_and(|c| c.soft_reboot == Some(false)) {
        say!("soft reboots are off (soft_reboot = false in the update config): rebooting fully");
        return None;
    }
    let access = bootctl::EspAccess::recorded()?;
    let mut next = None;
    let _ = bootctl::update(sys, &access, |env| next = env.next_boot());
    let running = crate::soft_reboot::running().0;
    next.filter(|n| Some(*n) != running)
}

/// `to` if a soft reboot can start it from `running`, saying why not otherwise.
fn plan_soft(sys: &dyn Sys, running: cairn_updater::slot::Slot, running_hash: &str, to: cairn_updater::slot::Slot) -> Option<crate::soft_reboot::Target> {
    match crate::soft_reboot::plan(sys, running, running_hash, to) {
        Ok(t) => {
            say!("slot {to} (version {}) has this slot's kernel and initramfs: a soft reboot starts it", t.version);
            Some(t)
        }
        Err(e) => {
            say!("slot {to} needs a full reboot: {}", crate::log::chain(&e));
            None
        }
    }
}

/// The shutdown marker: why this boot ends, for the tracker's history. A small write to
/// /data, which PID 1 mounted itself; a failure costs only the record (the next boot then
/// reads this one as a power loss) and is said.
fn record_end(boot_id: &str, why: Why) {
    let wall_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let uptime_s = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).map_or(0, |t| u64::try_from(t.tv_sec()).unwrap_or(0));
    let marker = boots::Marker { boot_id: boot_id.to_owned(), why, wall_s, uptime_s };
    if let Err(e) = boots::record_end(std::path::Path::new(boots::MARKER), &marker) {
        say!("WARNING: cannot record why this boot ends in {}: {e}", boots::MARKER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Recorder;

    #[test]
    fn the_slots_package_database_is_bound_before_var_moves_onto_data() {
        let rec = Recorder::default();
        mount_var(&rec);
        assert_eq!(
            rec.calls(),
            [
                "mount /var/lib/dpkg /data/var/lib/dpkg  MsFlags(MS_BIND) ",
                "mount /data/var /var  MsFlags(MS_BIND | MS_REC) ",
            ],
            "the dpkg bind must come first and /var's bind must be recursive, or the node's /var/lib/dpkg is empty"
        );
    }
}
