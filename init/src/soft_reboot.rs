//! Soft reboot (issue 10 item 5), as systemd's soft-reboot does: a release whose kernel and
//! initramfs are byte-identical to the running slot's is started without a reboot. PID 1
//! stops the services as for a reboot, then sets up the new slot's verified root, moves
//! /dev, /proc, /sys, /run and /data into it, pivots into it and executes its /sbin/init.
//! The kernel, its uptime and the boot id carry on; the node serves again in seconds.
//!
//! What decides it ([`plan`]) is what GRUB would boot: the slot's signed manifest on the
//! ESP (checked against the image's keyring, with the root hash its `slot.cfg` gives, as
//! stage 1 checks it) names the same kernel and initramfs as the running slot's, and the
//! files on the ESP are the same bytes. Anything else is a full reboot.
//!
//! The new slot then runs exactly as after a full boot: on trial until its health gate holds
//! (committed) or fails (switched back the same way, to the slot it came from). Which slot
//! runs is in [`STATE`] from then on, since the kernel command line still names the slot the
//! kernel was booted with ([`running`]).

use crate::sys::Sys;
use crate::{blockdev, dm, say};
use cairn_updater::bundle::manifest::{Manifest, PayloadKind};
use cairn_updater::slot::{Slot, ESP_LABEL};
use cairn_updater::slot_trust;
use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// Which slot runs after a soft reboot, and how it got there.
pub const STATE: &str = "/run/cairn/soft-reboot.json";
/// Where the new root is mounted before the pivot: an empty directory of every root.
const NEW_ROOT: &str = "/mnt";
/// Where the ESP is mounted, read-only, for the moment of the plan.
const ESP_DIR: &str = "/run/cairn/esp-soft";
/// What stays mounted across the switch: the mounts stage 1 hands over. Everything else
/// stage 2 mounts again.
const KEEP: [&str; 6] = ["/", "/dev", "/proc", "/sys", "/run", "/data"];

#[derive(Debug, thiserror::Error)]
pub enum SoftError {
    #[error("no boot disk was recorded by stage 1")]
    NoDisk,
    #[error("the image has no update keyring ({0}): slots cannot be checked")]
    NoKeyring(&'static str),
    #[error("cannot find or mount the ESP")]
    Esp(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("slot {0}'s slot.cfg on the ESP gives no root hash")]
    SlotCfg(Slot),
    #[error("slot {slot} does not verify")]
    Trust { slot: Slot, source: slot_trust::SlotTrustError },
    #[error("slot {slot}'s {what} differs from the running slot's: it needs a full reboot")]
    KernelDiffers { slot: Slot, what: &'static str },
    #[error("{0}")]
    Switch(String),
    #[error("the new root")]
    Root(#[source] crate::stage1::Stage1Error),
}

/// A slot to switch into: checked, with the root hash its verity device is built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub slot: Slot,
    pub root_hash: String,
    pub version: String,
}

/// [`STATE`]: written by the old PID 1 just before the switch, read by the new one and by
/// everything that asks which slot runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub slot: String,
    pub root_hash: String,
    pub version: String,
    pub from_slot: String,
    pub from_root_hash: String,
    /// Soft reboots in this boot, this one included.
    pub count: u32,
    /// CLOCK_BOOTTIME milliseconds when the services began to stop.
    pub stopping_ms: u64,
    /// From then until the new slot was ready again; written once it is.
    #[serde(default)]
    pub down_ms: Option<u64>,
}

impl State {
    pub fn read() -> Option<State> {
        read_state(Path::new(STATE))
    }

    pub fn write(&self) -> std::io::Result<()> {
        let tmp = Path::new(STATE).with_extension("new");
        std::fs::create_dir_all("/run/cairn")?;
        std::fs::write(&tmp, serde_json::to_vec(self).unwrap_or_default())?;
        std::fs::rename(&tmp, STATE)
    }
}

/// The state at `path` (`STATE` on a node), if there is one that parses.
pub fn read_state(path: &Path) -> Option<State> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(path).ok()?.take(4096).read_to_end(&mut text).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The running slot and its root hash: a soft reboot's, else the kernel command line's.
pub fn running() -> (Option<Slot>, String) {
    if let Some(s) = State::read() {
        return (Slot::parse(&s.slot).ok(), s.root_hash);
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let slot = crate::cmdline::value(&cmdline, "cairn.slot").and_then(|s| Slot::parse(s).ok());
    (slot, crate::cmdline::value(&cmdline, "cairn.roothash").unwrap_or("").to_owned())
}

/// Whether `to` can be started by a soft reboot from `running` (whose root hash is
/// `running_hash`): both verify, and their kernels and initramfs are the same.
pub fn plan(sys: &dyn Sys, running: Slot, running_hash: &str, to: Slot) -> Result<Target, SoftError> {
    let disk = blockdev::recorded_boot_disk("").ok_or(SoftError::NoDisk)?;
    let keyring_path = Path::new(crate::update::IMAGE_ROOT);
    let keyring = std::fs::read(keyring_path).map_err(|_| SoftError::NoKeyring(crate::update::IMAGE_ROOT))?;
    let esp = blockdev::wait_for_label(ESP_LABEL, "", &disk, Duration::from_secs(5)).map_err(|e| SoftError::Esp(Box::new(e)))?;
    let _ = std::fs::create_dir_all(ESP_DIR);
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    sys.mount(&esp.dev_path(), ESP_DIR, "vfat", flags, "").map_err(|e| SoftError::Esp(Box::new(e)))?;
    let result = check(Path::new(ESP_DIR), keyring_path, &keyring, (running, running_hash), to);
    let _ = sys.umount(ESP_DIR, false);
    result
}

/// [`plan`] on a mounted ESP.
pub fn check(esp: &Path, keyring_path: &Path, keyring: &[u8], running: (Slot, &str), to: Slot) -> Result<Target, SoftError> {
    let cfg = std::fs::read_to_string(esp.join(to.lower()).join("slot.cfg")).unwrap_or_default();
    let root_hash = cfg.trim().strip_prefix("set cairn_roothash=").map(str::to_owned).ok_or(SoftError::SlotCfg(to))?;
    let verify = |slot: Slot, hash: &str| slot_trust::check(&esp.join(slot.lower()), keyring_path, keyring, hash).map_err(|source| SoftError::Trust { slot, source });
    let theirs = verify(to, &root_hash)?;
    let ours = verify(running.0, running.1)?;
    for (kind, file, what) in [(PayloadKind::Vmlinuz, "vmlinuz", "kernel"), (PayloadKind::Initrd, "initrd", "initramfs")] {
        let signed_same = payload(&theirs, kind).is_some_and(|h| Some(h) == payload(&ours, kind));
        // The files GRUB would load: a full boot of the slot must run this very kernel.
        let bytes_same = || match (std::fs::read(esp.join(to.lower()).join(file)), std::fs::read(esp.join(running.0.lower()).join(file))) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !signed_same || !bytes_same() {
            return Err(SoftError::KernelDiffers { slot: to, what });
        }
    }
    Ok(Target { slot: to, root_hash, version: theirs.version.to_string() })
}

fn payload(m: &Manifest, kind: PayloadKind) -> Option<&str> {
    m.payloads.iter().find(|p| p.kind == kind).map(|p| p.sha256.as_str())
}

/// Mount points to take down before the switch, deepest first: all but [`KEEP`].
pub fn unmount_plan(mountinfo: &str) -> Vec<String> {
    let mut points: Vec<String> = mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).map(|p| p.replace("\\040", " ")).filter(|p| !KEEP.contains(&p.as_str())).collect();
    points.reverse();
    points.dedup();
    points
}

/// The switch itself, once every service has stopped. Returns only if it failed; the
/// caller then reboots for real.
pub fn switch(sys: &dyn Sys, target: &Target, state: &State) -> SoftError {
    match prepare_and_pivot(sys, target, state) {
        Ok(()) => {
            use std::os::unix::process::CommandExt;
            // No stage 1 ran: the new PID 1's ready line counts stage 2 alone.
            let now_ms = crate::log::uptime_ms().to_string();
            let err = std::process::Command::new("/sbin/init").arg0("/sbin/init").env("CAIRN_SOFT_REBOOT", state.count.to_string()).env("CAIRN_STAGE1_START_MS", now_ms).exec();
            SoftError::Switch(format!("exec the new slot's /sbin/init: {err}"))
        }
        Err(e) => e,
    }
}

fn prepare_and_pivot(sys: &dyn Sys, target: &Target, state: &State) -> Result<(), SoftError> {
    say!("soft reboot: stopping what is left");
    crate::shutdown::kill_rest(sys);
    remove_cgroups(Path::new("/sys/fs/cgroup"));
    let disk = blockdev::recorded_boot_disk("").ok_or(SoftError::NoDisk)?;
    for p in unmount_plan(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()) {
        if sys.umount(&p, false).is_err() {
            let _ = sys.umount(&p, true);
        }
    }
    sys.sync();
    clear_run(&disk);
    state.write().map_err(|e| SoftError::Switch(format!("cannot write {STATE}: {e}")))?;
    let _ = std::fs::write(crate::update::SLOT_VERSION_FILE, &target.version);
    let dm_name = format!("root-{}", target.slot.lower());
    // A device of that name is left from an earlier switch into this slot: unused now.
    if dm::list().iter().any(|(n, _)| *n == dm_name) {
        dm::remove(&dm_name).map_err(|e| SoftError::Switch(format!("remove the stale {dm_name}: {e}")))?;
    }
    crate::stage1::mount_verified_root(sys, target.slot, &disk, &target.root_hash, &dm_name, NEW_ROOT).map_err(SoftError::Root)?;
    say!("soft reboot: root of slot {} verified (dm-verity {}...) and mounted; switching", target.slot, &target.root_hash[..12.min(target.root_hash.len())]);
    pivot_calls(sys)
}

/// The mount sequence of the switch, separate so tests can check its order: the mounts stage
/// 1 handed over move into the new root, which becomes / (pivot_root(".", ".") stacks the old
/// root on top, and the detach drops it once nothing runs from it).
pub fn pivot_calls(sys: &dyn Sys) -> Result<(), SoftError> {
    let sw = |what: String, r: crate::sys::Result<()>| r.map_err(|e| SoftError::Switch(format!("{what}: {e}")));
    // pivot_root refuses shared mounts (a container runtime may have made them so).
    sw("make / private".into(), sys.mount("none", "/", "", MsFlags::MS_REC | MsFlags::MS_PRIVATE, ""))?;
    for d in ["dev", "proc", "sys", "run", "data"] {
        sw(format!("move /{d}"), sys.move_mount(&format!("/{d}"), &format!("{NEW_ROOT}/{d}")))?;
    }
    sw(format!("chdir {NEW_ROOT}"), sys.chdir(NEW_ROOT))?;
    sw("pivot_root . .".into(), sys.pivot_root(".", "."))?;
    sw("detach the old root".into(), sys.umount(".", true))?;
    sw("chdir /".into(), sys.chdir("/"))
}

/// The services' cgroups, deepest first: the new PID 1 makes its own. Only empty ones go
/// (rmdir refuses the others), and every process has been killed.
fn remove_cgroups(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroups(&e.path());
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// /run as stage 1 hands it over: empty but for the boot disk it found. Pid files, sockets
/// and reports of the old services would mislead the new ones.
fn clear_run(disk: &str) {
    if let Ok(entries) = std::fs::read_dir("/run") {
        for e in entries.flatten() {
            let p = e.path();
            let _ = if e.file_type().is_ok_and(|t| t.is_dir()) { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
    if std::fs::create_dir_all("/run/cairn").and_then(|()| std::fs::write(blockdev::BOOT_DISK_FILE, disk)).is_err() {
        say!("WARNING: cannot record the boot disk in {} for the new slot", blockdev::BOOT_DISK_FILE);
    }
}

/// In the new slot: removes the verity devices of roots no longer mounted (the one before
/// the switch), so their partitions are free for the next update.
pub fn remove_stale_roots() {
    let root_dev = std::fs::metadata("/").map(|m| std::os::unix::fs::MetadataExt::dev(&m)).ok();
    for (name, dev) in dm::list() {
        if !name.starts_with("root") {
            continue;
        }
        let rdev = std::fs::metadata(&dev).map(|m| std::os::unix::fs::MetadataExt::rdev(&m)).ok();
        if rdev.is_some() && rdev == root_dev {
            continue;
        }
        match dm::remove(&name) {
            Ok(()) => say!("soft reboot: removed {name} ({dev}), the previous slot's root"),
            Err(e) => say!("WARNING: cannot remove {name} ({dev}), the previous slot's root: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;
