//! The device manager on bare metal: Debian's systemd-udevd, supervised like any service
//! (image/services/udev.toml), without systemd as PID 1.
//!
//! Under systemd, systemd-udev-trigger.service and systemd-udev-settle.service replay the
//! devices the kernel found before udevd ran and wait for them. Here `cairnctl udev run`
//! does both: it starts a helper (`cairnctl udev settle`), then becomes udevd (exec, so
//! udevd is the service's main process). The helper waits until udevd answers on its
//! control socket, replays every device (`udevadm trigger --action=add`), waits for the
//! queue to empty (`udevadm settle`), and then writes [`SETTLED`], the service's readiness
//! file. Services ordered after `udev` (the network) therefore see NICs with their drivers,
//! firmware and final names, and `/dev/disk/by-*` exists.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The udev service's readiness file (udev.toml): the replayed devices are all handled.
pub const SETTLED: &str = "/run/cairn/udev-settled";
const UDEVADM: &str = "/usr/bin/udevadm";
/// How long the helper waits for udevd to answer, and for the queue to empty.
const PING_WAIT: Duration = Duration::from_secs(60);
const SETTLE_TIMEOUT_S: u32 = 120;

/// `cairnctl udev run -- UDEVD...`: start the helper, then exec udevd. Returns only on error.
pub fn run(udevd: &[String]) -> i32 {
    // A soft reboot keeps /run: a file from the last root must not say this one is settled.
    if let Err(e) = std::fs::remove_file(SETTLED) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("udev: ERROR: cannot remove the stale {SETTLED}: {e}");
            return 1;
        }
    }
    let me = std::env::current_exe().unwrap_or_else(|_| "/usr/bin/cairnctl".into());
    // The helper stays a child of this process, which becomes udevd: udevd reaps it as it
    // reaps its workers, and it is in the service's cgroup, so stopping udev stops it too.
    if let Err(e) = Command::new(me).args(["udev", "settle"]).spawn() {
        eprintln!("udev: ERROR: cannot start the trigger helper: {e}");
        return 1;
    }
    use std::os::unix::process::CommandExt;
    let e = Command::new(&udevd[0]).args(&udevd[1..]).exec();
    eprintln!("udev: cannot run {}: {e}", udevd[0]);
    1
}

/// `cairnctl udev settle`: wait for udevd, replay the devices, wait for them, mark ready.
pub fn settle() -> i32 {
    let start = Instant::now();
    while !udevadm(&["control", "--ping", "--timeout=2"]) {
        if start.elapsed() > PING_WAIT {
            eprintln!("udev: ERROR: udevd did not answer on its control socket within {} s", PING_WAIT.as_secs());
            return 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Subsystems first, then devices: the order systemd-udev-trigger.service uses.
    for kind in ["--type=subsystems", "--type=devices"] {
        if !udevadm(&["trigger", kind, "--action=add"]) {
            eprintln!("udev: ERROR: `udevadm trigger {kind} --action=add` failed");
            return 1;
        }
    }
    let timeout = format!("--timeout={SETTLE_TIMEOUT_S}");
    if !udevadm(&["settle", &timeout]) {
        // Not fatal: a device whose rule hangs must not keep the node from its network.
        eprintln!("udev: WARNING: the device queue did not empty within {SETTLE_TIMEOUT_S} s (`udevadm settle`); going on");
    }
    match crate::atomic::write(Path::new(SETTLED), format!("{}\n", start.elapsed().as_millis()).as_bytes(), 0o644) {
        Ok(()) => {
            eprintln!("udev: devices replayed and handled in {} ms", start.elapsed().as_millis());
            0
        }
        Err(e) => {
            eprintln!("udev: ERROR: cannot write {SETTLED}: {e}");
            1
        }
    }
}

fn udevadm(args: &[&str]) -> bool {
    Command::new(UDEVADM).args(args).status().is_ok_and(|s| s.success())
}
