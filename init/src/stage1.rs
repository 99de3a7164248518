//! Stage 1: `/init` in the initramfs. Mounts the verified root and the data partition, then
//! switches to the root and executes stage 2 (`/sbin/init`, the same binary).
//!
//! An error ends this boot: we say why on the console and reboot. What it costs the slot
//! depends on the error ([`Stage1Error::breaks_slot`]): a slot whose content is wrong (verity
//! mismatch, no /sbin/init) is marked bad at once; a boot that failed for a reason outside
//! the slot (a disk that did not appear in time, a module that did not load) is counted,
//! and the slot is retried up to `grubenv::BOOT_ATTEMPTS` times before the other slot boots.

use crate::blockdev::{self, PartitionDev};
use crate::sys::{Power, Sys};
use crate::{bootctl, cmdline, data, dm, kmod, modalias, say};
use cairn_updater::slot::{Slot, DATA_LABEL, ESP_LABEL};
use cairn_updater::slot_trust::{self, SlotTrustError, KEYRING};
use cairn_updater::verity::Superblock;
use nix::mount::MsFlags;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub const SYSROOT: &str = "/sysroot";
/// Set once /dev, /proc, /sys have moved into the new root: they are then under /sysroot.
static DEV_MOVED: AtomicBool = AtomicBool::new(false);
/// The boot disk, once found (for marking the slot bad on the way out).
static BOOT_DISK: OnceLock<String> = OnceLock::new();
/// The ESP GRUB booted from (from the command line), so a failure before the boot disk was
/// found can still look for it and leave a record.
static BOOT_ESP: OnceLock<cairn_updater::gpt::Guid> = OnceLock::new();
/// How long the error path looks for a boot disk that was not found yet.
const FAIL_DISK_WAIT: Duration = Duration::from_secs(5);
const PARTITION_WAIT: Duration = Duration::from_secs(20);
/// Where stage 1 mounts the ESP, read-only, for the moment of the signature check.
const ESP_CHECK_DIR: &str = "/cairn-esp-check";

#[derive(Debug, thiserror::Error)]
pub enum Stage1Error {
    #[error("{0}")]
    Cmdline(#[from] cmdline::CmdlineError),
    #[error("{0}")]
    Kmod(#[from] kmod::KmodError),
    #[error("{0}")]
    Modalias(#[from] modalias::ModaliasError),
    #[error("{0}")]
    Block(#[from] blockdev::BlockError),
    #[error("{0}")]
    Dm(#[from] dm::DmError),
    #[error("mounting {what} failed: {errno}")]
    Mount { what: String, errno: nix::Error },
    #[error("the root of slot {slot} ({dev}, squashfs on dm-verity) does not mount: {errno} (a verity mismatch reads as an I/O error)")]
    Root { slot: Slot, dev: String, errno: nix::Error },
    #[error("reading the verity superblock of {dev}")]
    SuperblockRead { dev: String, source: std::io::Error },
    #[error("the verity superblock of {dev} is not valid: {reason}")]
    Superblock { dev: String, reason: String },
    #[error("the verified root of slot {0} has no /sbin/init: refusing to boot an empty or foreign root")]
    EmptyRoot(Slot),
    #[error("slot {slot} is refused before its root hash is used")]
    Signature { slot: Slot, source: SlotTrustError },
    #[error("switch_root: {0}")]
    Switch(String),
}

impl Stage1Error {
    /// The slot's own content is wrong, so booting it again cannot help: its root hash on
    /// the command line, its verity data, its root file system. Everything else (devices
    /// that did not appear, modules, a read error, mounts of the API file systems, the
    /// switch) may be transient and gets a bounded retry.
    pub fn breaks_slot(&self) -> bool {
        match self {
            // A read error of the ESP is the disk's; anything else about the signature is
            // the slot's content (or an attacker's change to it).
            Stage1Error::Signature { source, .. } => !matches!(source, SlotTrustError::Read(..)),
            _ => matches!(self, Stage1Error::Cmdline(_) | Stage1Error::Dm(_) | Stage1Error::Root { .. } | Stage1Error::Superblock { .. } | Stage1Error::EmptyRoot(_)),
        }
    }
}

/// Runs stage 1. Returns only on error; on success it has exec'd stage 2.
pub fn run(sys: &dyn Sys, start_ms: u64) -> Result<(), (Option<Slot>, Stage1Error)> {
    mount_early(sys).map_err(|e| (None, e))?;
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let params = cmdline::parse(&cmdline).map_err(|e| (None, e.into()))?;
    let slot = params.slot;
    let _ = BOOT_ESP.set(params.esp);
    let r = (|| {
        let t = crate::log::uptime_ms();
        let n = kmod::load_list("/etc/cairn/modules")?;
        say!("stage 1: slot {slot}, {n} kernel modules loaded in {} ms", crate::log::uptime_ms() - t);
        let mut drivers = HardwareDrivers::load()?;
        let disk = blockdev::wait_for_boot_disk(params.esp, PARTITION_WAIT, &mut || drivers.poll())?;
        drivers.report();
        say!("stage 1: boot disk {disk} (it holds the ESP GRUB booted from, {}); partitions on other disks are ignored", params.esp);
        let _ = BOOT_DISK.set(disk.clone());
        // /run moves into the root below: stage 2 finds the boot disk here.
        let recorded = std::fs::create_dir_all("/run/cairn").and_then(|()| std::fs::write(blockdev::BOOT_DISK_FILE, &disk));
        if let Err(e) = recorded {
            say!("WARNING: cannot record the boot disk in {}: {e}; stage 2 will not be able to mark the slot good", blockdev::BOOT_DISK_FILE);
        }
        let t = crate::log::uptime_ms();
        match check_signature(sys, slot, &disk, &params.root_hash)? {
            Some(version) => {
                say!("stage 1: slot {slot} is signed (version {version}, verified against the image's keyring in {} ms)", crate::log::uptime_ms() - t);
                // For stage 2: the version it reports and commits (/run moves into the root).
                let _ = std::fs::create_dir_all("/run/cairn").and_then(|()| std::fs::write(crate::update::SLOT_VERSION_FILE, &version));
            }
            None => say!("stage 1: this image carries no update keyring (/{KEYRING}): slot {slot}'s signature is not checked"),
        }
        let t = crate::log::uptime_ms();
        mount_root(sys, slot, &disk, &params.root_hash)?;
        say!("stage 1: root of slot {slot} verified (dm-verity {}...) and mounted read-only in {} ms", &params.root_hash[..12], crate::log::uptime_ms() - t);
        let t = crate::log::uptime_ms();
        for d in ["dev", "proc", "sys", "run"] {
            sys.move_mount(&format!("/{d}"), &format!("{SYSROOT}/{d}"))
                .map_err(|errno| Stage1Error::Mount { what: format!("move /{d}"), errno })?;
            if d == "dev" {
                DEV_MOVED.store(true, Ordering::SeqCst);
            }
        }
        if let Err(e) = mount_data(sys, &disk) {
            // /data problems do not make the slot bad (the other slot shares the same
            // /data); the node comes up with a RAM-backed /data and says so loudly.
            say!("WARNING: /data is unavailable ({e}); using a temporary in-memory /data: nothing written there survives a reboot");
            let _ = sys.mount("tmpfs", &format!("{SYSROOT}/data"), "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, "mode=0755");
        } else {
            say!("stage 1: /data mounted in {} ms", crate::log::uptime_ms() - t);
        }
        Ok(())
    })();
    r.map_err(|e| (Some(slot), e))?;
    switch_root(sys, start_ms).map_err(|e| (Some(slot), e))
}

fn mount_early(sys: &dyn Sys) -> Result<(), Stage1Error> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    for (src, dir, fs, flags, data) in [
        ("proc", "/proc", "proc", nosuid_nodev_noexec, ""),
        ("sysfs", "/sys", "sysfs", nosuid_nodev_noexec, ""),
        ("devtmpfs", "/dev", "devtmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, "mode=0755"),
        ("tmpfs", "/run", "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, "mode=0755"),
    ] {
        let _ = std::fs::create_dir_all(dir);
        match sys.mount(src, dir, fs, flags, data) {
            // devtmpfs may already be mounted by the kernel (CONFIG_DEVTMPFS_MOUNT).
            Ok(()) | Err(nix::Error::EBUSY) => {}
            Err(errno) => return Err(Stage1Error::Mount { what: dir.into(), errno }),
        }
    }
    Ok(())
}

/// Issue 9 item 5: the root hash GRUB passed (from `X/slot.cfg`, which anyone who can write
/// the ESP can change) must be the one the slot's signed manifest carries. Returns the
/// slot's signed version, or None when the image has no keyring (built without
/// `--update-root`: it cannot install updates either, and boots unchecked, saying so).
fn check_signature(sys: &dyn Sys, slot: Slot, disk: &str, root_hash: &str) -> Result<Option<String>, Stage1Error> {
    let keyring_path = std::path::Path::new("/").join(KEYRING);
    let Ok(keyring) = std::fs::read(&keyring_path) else { return Ok(None) };
    let esp = blockdev::wait_for_label(ESP_LABEL, "", disk, PARTITION_WAIT)?;
    let _ = std::fs::create_dir_all(ESP_CHECK_DIR);
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    sys.mount(&esp.dev_path(), ESP_CHECK_DIR, "vfat", flags, "").map_err(|errno| Stage1Error::Mount { what: format!("the ESP {} read-only", esp.dev_path()), errno })?;
    let checked = slot_trust::check(&std::path::Path::new(ESP_CHECK_DIR).join(slot.lower()), &keyring_path, &keyring, root_hash);
    let _ = sys.umount(ESP_CHECK_DIR, false);
    match checked {
        Ok(m) => Ok(Some(m.version.to_string())),
        Err(source) => Err(Stage1Error::Signature { slot, source }),
    }
}

fn read_superblock(dev: &str) -> Result<Superblock, Stage1Error> {
    let mut buf = vec![0u8; 4096];
    // A read error is the disk's (a bad sector, a cable): a failed boot, not a broken slot.
    std::fs::File::open(dev).and_then(|mut f| f.read_exact(&mut buf)).map_err(|source| Stage1Error::SuperblockRead { dev: dev.into(), source })?;
    Superblock::parse(&buf).map_err(|e| Stage1Error::Superblock { dev: dev.into(), reason: e.to_string() })
}

/// dm-verity over the slot's root partition, then the squashfs on top, read-only.
fn mount_root(sys: &dyn Sys, slot: Slot, disk: &str, root_hash: &str) -> Result<(), Stage1Error> {
    let _ = std::fs::create_dir_all(SYSROOT);
    mount_verified_root(sys, slot, disk, root_hash, "root", SYSROOT)
}

/// The device-mapper device `dm_name` (dm-verity over slot's root and verity partitions on
/// `disk`, checked against `root_hash`) and its squashfs mounted read-only at `target`,
/// which must then hold /sbin/init. Stage 1 mounts the root this way; a soft reboot
/// (`soft_reboot`) the new slot's.
pub fn mount_verified_root(sys: &dyn Sys, slot: Slot, disk: &str, root_hash: &str, dm_name: &str, target: &str) -> Result<(), Stage1Error> {
    let data = blockdev::wait_for_label(slot.root_label(), "", disk, PARTITION_WAIT)?;
    let hash = blockdev::wait_for_label(slot.verity_label(), "", disk, PARTITION_WAIT)?;
    let sb = read_superblock(&hash.dev_path())?;
    let table = sb.table_params(&data.dev_path(), &hash.dev_path(), root_hash);
    let minor = dm::create(dm_name, sb.data_sectors(), "verity", &table)?;
    let dev = format!("/dev/dm-{minor}");
    if !blockdev::wait_for_node(&dev, Duration::from_secs(5)) {
        return Err(Stage1Error::Switch(format!("{dev} did not appear after creating the verity device")));
    }
    sys.mount(&dev, target, "squashfs", MsFlags::MS_RDONLY | MsFlags::MS_NODEV, "").map_err(|errno| Stage1Error::Root { slot, dev: dev.clone(), errno })?;
    if std::fs::symlink_metadata(format!("{target}/sbin/init")).is_err() {
        let _ = sys.umount(target, false);
        return Err(Stage1Error::EmptyRoot(slot));
    }
    Ok(())
}

/// The data partition: grown to the end of the disk, formatted only if blank (first boot),
/// repaired by e2fsck if damaged (see `data.rs`), grown online if the disk grew since.
fn mount_data(sys: &dyn Sys, disk: &str) -> Result<(), String> {
    let mut part = blockdev::wait_for_label(DATA_LABEL, SYSROOT, disk, PARTITION_WAIT).map_err(|e| e.to_string())?;
    let dev = format!("{SYSROOT}/dev/{}", part.name);
    let disk_dev = format!("{SYSROOT}/dev/{}", part.disk);
    if let Some(grown) = grow_partition(&part, &disk_dev)? {
        say!("stage 1: data partition grown to the end of the disk: {} MiB", grown.size_sectors >> 11);
        part = grown;
    }
    let state = std::fs::File::open(&dev)
        .and_then(|mut f| data::classify(&mut f, part.size_sectors * 512))
        .map_err(|e| crate::log::chain(&data::DataError::Read { dev: dev.clone(), source: e }))?;
    if state == data::State::Blank {
        // First boot: this disk stops being a byte-for-byte copy of the image (and of every
        // other disk flashed from it), so the boot disk can be told apart from a copy.
        match new_disk_identity(&disk_dev, part.disk.as_str()) {
            Ok(esp) => say!("stage 1: first boot: the disk has its own GUIDs now (ESP {esp})"),
            Err(e) => say!("WARNING: could not give the disk its own GUIDs ({e}); a copy of this image attached later could not be told apart from it"),
        }
    }
    let paths = data::Paths { dev: dev.clone(), dev_in_root: format!("/dev/{}", part.name), root: SYSROOT.into(), target: format!("{SYSROOT}/data") };
    data::mount(sys, &paths, state, part.size_sectors >> 11).map_err(|e| crate::log::chain(&e))?;
    grow_fs(&dev, &paths.target, part.size_sectors * 512);
    Ok(())
}

/// Gives the disk and each partition a random GUID (systemd-repart's first-boot
/// "factory reset" of identity); types, labels and extents stay. Returns the ESP's new GUID.
fn new_disk_identity(disk_dev: &str, disk: &str) -> Result<cairn_updater::gpt::Guid, String> {
    use cairn_updater::gpt::Guid;
    let mut gpt = blockdev::read_gpt(SYSROOT, disk).ok_or_else(|| format!("no readable GPT on {disk_dev}"))?;
    let random = || -> Result<Guid, String> {
        let mut b = [0u8; 16];
        // getrandom(2) GRND_INSECURE: never blocks on an entropy pool still filling at boot;
        // a GUID needs uniqueness, not secrecy.
        rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::INSECURE).map_err(|e| format!("getrandom: {e}"))?;
        Ok(Guid::from_random(b))
    };
    gpt.disk_guid = random()?;
    for p in &mut gpt.partitions {
        p.part_guid = random()?;
    }
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(disk_dev).map_err(|e| format!("open {disk_dev}: {e}"))?;
    gpt.write(&mut f).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())?;
    gpt.find(cairn_updater::slot::ESP_LABEL).map(|p| p.part_guid).ok_or_else(|| "the GPT has no ESP".into())
}

/// Rewrites the GPT so the data partition (the last one) ends at the end of the disk, and
/// tells the kernel. Returns the new partition if it changed.
fn grow_partition(part: &PartitionDev, disk_dev: &str) -> Result<Option<PartitionDev>, String> {
    let Some(disk_sectors) = blockdev::disk_sectors(SYSROOT, &part.disk) else { return Ok(None) };
    // Leave the backup GPT (33 sectors) and alignment slack: grow only if it buys > 1 MiB.
    if part.start_sectors + part.size_sectors + 33 + 2048 >= disk_sectors {
        return Ok(None);
    }
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(disk_dev).map_err(|e| format!("open {disk_dev}: {e}"))?;
    let mut gpt = cairn_updater::gpt::Gpt::read(&mut f, disk_sectors * 512).map_err(|e| e.to_string())?;
    if !gpt.grow_last_partition(DATA_LABEL, disk_sectors).map_err(|e| e.to_string())? {
        return Ok(None);
    }
    gpt.write(&mut f).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())?;
    drop(f);
    let p = gpt.find(DATA_LABEL).ok_or("data partition vanished from the GPT")?;
    let size = p.last_lba + 1 - p.first_lba;
    blockdev::resize_partition(disk_dev, part.number, p.first_lba * 512, size * 512).map_err(|e| e.to_string())?;
    Ok(Some(PartitionDev { size_sectors: size, ..part.clone() }))
}

/// The ext4 file system on `dev`: (block count, block size), from its superblock.
fn ext4_size(dev: &str) -> Option<(u64, u64)> {
    let mut sb = [0u8; 1024];
    let mut f = std::fs::File::open(dev).ok()?;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(1024)).ok()?;
    f.read_exact(&mut sb).ok()?;
    let u32_at = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]) as u64;
    let block = 1024u64 << u32_at(24).min(6);
    // s_blocks_count_hi counts only with the 64bit feature (INCOMPAT 0x80).
    let hi = if u32_at(0x60) & 0x80 != 0 { u32_at(0x150) } else { 0 };
    Some(((hi << 32) | u32_at(4), block))
}

/// Grows the mounted ext4 file system to fill its partition if that adds more than 1 MiB.
fn grow_fs(dev: &str, mount_point: &str, bytes: u64) {
    let Some((blocks, block)) = ext4_size(dev) else { return };
    let have = blocks * block;
    if bytes <= have + (1 << 20) {
        return;
    }
    match blockdev::ext4_resize(mount_point, bytes / block) {
        Ok(()) => say!("stage 1: /data grown from {} MiB to {} MiB", have >> 20, bytes >> 20),
        Err(e) => say!("WARNING: could not grow /data: {e}"),
    }
}

/// Frees the initramfs, moves the new root over /, and executes stage 2.
fn switch_root(sys: &dyn Sys, start_ms: u64) -> Result<(), Stage1Error> {
    // The initramfs stays in RAM until deleted; everything but /sysroot is ours to remove
    // (/dev, /proc, /sys and /run were moved into the new root already).
    for entry in ["init", "etc", "lib"] {
        let _ = std::fs::remove_dir_all(format!("/{entry}")).or_else(|_| std::fs::remove_file(format!("/{entry}")));
    }
    switch_root_calls(sys)?;
    let stage1_ms = crate::log::uptime_ms().saturating_sub(start_ms);
    say!("stage 1: done in {stage1_ms} ms (kernel_start_ms={start_ms}); starting stage 2");
    std::env::set_var("CAIRN_STAGE1_START_MS", start_ms.to_string());
    let err = exec_init();
    Err(Stage1Error::Switch(format!("exec /sbin/init: {err}")))
}

/// The mount sequence of switch_root, separate so tests can check its order.
pub fn switch_root_calls(sys: &dyn Sys) -> Result<(), Stage1Error> {
    let sw = |what: &str, r: crate::sys::Result<()>| r.map_err(|e| Stage1Error::Switch(format!("{what}: {e}")));
    sw("chdir /sysroot", sys.chdir(SYSROOT))?;
    sw("move /sysroot to /", sys.move_mount(".", "/"))?;
    sw("chroot .", sys.chroot("."))?;
    sw("chdir /", sys.chdir("/"))
}

/// The drivers of the hardware found (`kernel.drivers` in the profile; see [`modalias`]),
/// loaded while stage 1 waits for the boot disk: a pass over sysfs every 200 ms, since each
/// driver loaded can make new devices (a USB controller's stick, an HBA's disks).
struct HardwareDrivers {
    drivers: Option<modalias::Drivers>,
    last: Option<std::time::Instant>,
    started_ms: u64,
}

impl HardwareDrivers {
    fn load() -> Result<HardwareDrivers, Stage1Error> {
        let drivers = modalias::Table::load(modalias::ALIAS_FILE, modalias::DEP_FILE)?.map(modalias::Drivers::new);
        Ok(HardwareDrivers { drivers, last: None, started_ms: crate::log::uptime_ms() })
    }

    fn poll(&mut self) {
        let Some(d) = self.drivers.as_mut() else { return };
        if self.last.is_some_and(|t| t.elapsed() < Duration::from_millis(200)) {
            return;
        }
        self.last = Some(std::time::Instant::now());
        let failed_before = d.failed.len();
        let loaded = d.scan(std::path::Path::new("/sys/devices"), &mut |f| kmod::load(f).map_err(|e| e.to_string()));
        if !loaded.is_empty() {
            say!("stage 1: drivers for the hardware found: {}", loaded.join(", "));
        }
        for (module, why) in &d.failed[failed_before..] {
            say!("WARNING: stage 1: the driver {module} matched a device but did not load: {why}");
        }
    }

    fn report(&self) {
        if let Some(d) = &self.drivers {
            say!("stage 1: {} hardware drivers loaded by modalias in {} ms", d.loaded.len(), crate::log::uptime_ms().saturating_sub(self.started_ms));
        }
    }
}

/// The boot disk as found, or (when the failure came before that, a module or a slow disk)
/// one more short look for it, so the failed boot is counted rather than lost.
fn boot_disk_for_the_record() -> Option<String> {
    if let Some(disk) = BOOT_DISK.get() {
        return Some(disk.clone());
    }
    let esp = BOOT_ESP.get()?;
    match blockdev::wait_for_boot_disk(*esp, FAIL_DISK_WAIT, &mut || {}) {
        Ok(disk) => Some(disk),
        Err(e) => {
            say!("cannot record the failed boot: {e}");
            None
        }
    }
}

fn exec_init() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    std::process::Command::new("/sbin/init").arg0("/sbin/init").exec()
}

/// This boot failed: say why, mark the slot bad or count the failure (see
/// [`Stage1Error::breaks_slot`]), reboot.
pub fn fail(sys: &dyn Sys, slot: Option<Slot>, err: &Stage1Error) -> ! {
    match slot {
        Some(slot) => {
            say!("FATAL slot {slot}: {}", crate::log::chain(err));
            // /dev may already have moved into the new root.
            let root = if DEV_MOVED.load(Ordering::SeqCst) { SYSROOT } else { "" };
            match boot_disk_for_the_record() {
                Some(disk) => {
                    let access = bootctl::EspAccess { disk, root: root.into(), mount_dir: "/cairn-esp".into() };
                    if err.breaks_slot() {
                        say!("marking slot {slot} bad and rebooting into slot {}", slot.other());
                        if let Err(e) = bootctl::update(sys, &access, |env| env.mark_bad(slot)) {
                            say!("could not mark slot {slot} bad ({e}); if it was on trial, GRUB's try flag makes the next boot skip it");
                        }
                    } else {
                        bootctl::record_failed_boot(sys, &access, slot, true);
                    }
                }
                None => say!("the boot disk is not known, so this failed boot of slot {slot} leaves no record: a committed slot boots again, one on trial falls back"),
            }
        }
        None => say!("FATAL: {}; rebooting", crate::log::chain(err)),
    }
    sys.sync();
    std::thread::sleep(Duration::from_secs(1));
    loop {
        let _ = sys.power(Power::Reboot);
        std::thread::sleep(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Recorder;

    /// Issue 8 item 7: only errors about the slot's own content mark it bad for good.
    #[test]
    fn only_a_broken_slot_is_marked_bad_a_failed_boot_is_retried() {
        let broken = Stage1Error::EmptyRoot(Slot::A);
        assert!(broken.breaks_slot());
        assert!(Stage1Error::Root { slot: Slot::A, dev: "/dev/dm-0".into(), errno: nix::Error::EIO }.breaks_slot());
        let timeout = Stage1Error::Block(blockdev::BlockError::NotFound { label: "root-a".into(), disk: "vda".into(), secs: 20 });
        assert!(!timeout.breaks_slot(), "a partition that did not appear in time is a failed boot, not a broken slot");
        assert!(!Stage1Error::Mount { what: "move /dev".into(), errno: nix::Error::EBUSY }.breaks_slot());
        let read = Stage1Error::SuperblockRead { dev: "/dev/vda6".into(), source: std::io::Error::from_raw_os_error(5) };
        assert!(!read.breaks_slot(), "a read error is the disk's, not the slot's content");
        assert!(crate::log::chain(&read).contains("Input/output error"), "{}", crate::log::chain(&read));
        assert!(Stage1Error::Superblock { dev: "/dev/vda6".into(), reason: "bad magic".into() }.breaks_slot());
        // Issue 9 item 5: a slot whose signature fails is broken for good; an ESP that
        // could not be read is a failed boot.
        let unsigned = Stage1Error::Signature { slot: Slot::A, source: SlotTrustError::Unsigned("/cairn-esp-check/a/manifest.toml".into()) };
        assert!(unsigned.breaks_slot());
        let changed = Stage1Error::Signature { slot: Slot::A, source: SlotTrustError::RootHash { cmdline: "00".repeat(32), signed: "11".repeat(32) } };
        assert!(changed.breaks_slot());
        assert!(crate::log::chain(&changed).contains("slot.cfg was changed"), "{}", crate::log::chain(&changed));
        let unread = Stage1Error::Signature { slot: Slot::A, source: SlotTrustError::Read("/cairn-esp-check/a/manifest.sig".into(), std::io::Error::from_raw_os_error(5)) };
        assert!(!unread.breaks_slot());
    }

    #[test]
    fn switch_root_moves_before_chroot() {
        let r = Recorder::default();
        assert!(switch_root_calls(&r).is_ok());
        assert_eq!(r.calls(), ["chdir /sysroot", "move . /", "chroot .", "chdir /"]);
    }
}
