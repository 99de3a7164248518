//! Stage 1: `/init` in the initramfs. Mounts the verified root and the data partition, then
//! switches to the root and executes stage 2 (`/sbin/init`, the same binary).
//!
//! Any error is fatal for this slot: we say why on the console, mark the slot bad in grubenv
//! (best effort; GRUB's try flag already makes the next boot skip it) and reboot.

use crate::blockdev::{self, PartitionDev};
use crate::sys::{Power, Sys};
use crate::{bootctl, cmdline, data, dm, kmod, say};
use cairn_updater::slot::{Slot, DATA_LABEL};
use cairn_updater::verity::Superblock;
use nix::mount::MsFlags;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub const SYSROOT: &str = "/sysroot";
/// Set once /dev, /proc, /sys have moved into the new root: they are then under /sysroot.
static DEV_MOVED: AtomicBool = AtomicBool::new(false);
const PARTITION_WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum Stage1Error {
    #[error("{0}")]
    Cmdline(#[from] cmdline::CmdlineError),
    #[error("{0}")]
    Kmod(#[from] kmod::KmodError),
    #[error("{0}")]
    Block(#[from] blockdev::BlockError),
    #[error("{0}")]
    Dm(#[from] dm::DmError),
    #[error("mounting {what} failed: {errno}")]
    Mount { what: String, errno: nix::Error },
    #[error("reading the verity superblock of {dev}: {reason}")]
    Superblock { dev: String, reason: String },
    #[error("the verified root of slot {0} has no /sbin/init: refusing to boot an empty or foreign root")]
    EmptyRoot(Slot),
    #[error("switch_root: {0}")]
    Switch(String),
}

/// Runs stage 1. Returns only on error; on success it has exec'd stage 2.
pub fn run(sys: &dyn Sys, start_ms: u64) -> Result<(), (Option<Slot>, Stage1Error)> {
    mount_early(sys).map_err(|e| (None, e))?;
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let params = cmdline::parse(&cmdline).map_err(|e| (None, e.into()))?;
    let slot = params.slot;
    let r = (|| {
        let t = crate::log::uptime_ms();
        let n = kmod::load_list("/etc/cairn/modules")?;
        say!("stage 1: slot {slot}, {n} kernel modules loaded in {} ms", crate::log::uptime_ms() - t);
        let t = crate::log::uptime_ms();
        mount_root(sys, slot, &params.root_hash)?;
        say!("stage 1: root of slot {slot} verified (dm-verity {}...) and mounted read-only in {} ms", &params.root_hash[..12], crate::log::uptime_ms() - t);
        let t = crate::log::uptime_ms();
        for d in ["dev", "proc", "sys", "run"] {
            sys.move_mount(&format!("/{d}"), &format!("{SYSROOT}/{d}"))
                .map_err(|errno| Stage1Error::Mount { what: format!("move /{d}"), errno })?;
            if d == "dev" {
                DEV_MOVED.store(true, Ordering::SeqCst);
            }
        }
        if let Err(e) = mount_data(sys) {
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

fn read_superblock(dev: &str) -> Result<Superblock, Stage1Error> {
    let err = |reason: String| Stage1Error::Superblock { dev: dev.into(), reason };
    let mut buf = vec![0u8; 4096];
    std::fs::File::open(dev).and_then(|mut f| f.read_exact(&mut buf)).map_err(|e| err(e.to_string()))?;
    Superblock::parse(&buf).map_err(|e| err(e.to_string()))
}

/// dm-verity over the slot's root partition, then the squashfs on top, read-only.
fn mount_root(sys: &dyn Sys, slot: Slot, root_hash: &str) -> Result<(), Stage1Error> {
    let data = blockdev::wait_for_label(slot.root_label(), "", PARTITION_WAIT)?;
    let hash = blockdev::wait_for_label(slot.verity_label(), "", PARTITION_WAIT)?;
    let sb = read_superblock(&hash.dev_path())?;
    let table = sb.table_params(&data.dev_path(), &hash.dev_path(), root_hash);
    let minor = dm::create("root", sb.data_sectors(), "verity", &table)?;
    let dev = format!("/dev/dm-{minor}");
    if !blockdev::wait_for_node(&dev, Duration::from_secs(5)) {
        return Err(Stage1Error::Switch(format!("{dev} did not appear after creating the verity device")));
    }
    let _ = std::fs::create_dir_all(SYSROOT);
    sys.mount(&dev, SYSROOT, "squashfs", MsFlags::MS_RDONLY | MsFlags::MS_NODEV, "")
        .map_err(|errno| Stage1Error::Mount { what: format!("root of slot {slot} ({dev}, squashfs on dm-verity)"), errno })?;
    if std::fs::symlink_metadata(format!("{SYSROOT}/sbin/init")).is_err() {
        let _ = sys.umount(SYSROOT, false);
        return Err(Stage1Error::EmptyRoot(slot));
    }
    Ok(())
}

/// The data partition: grown to the end of the disk, formatted only if blank (first boot),
/// repaired by e2fsck if damaged (see `data.rs`), grown online if the disk grew since.
fn mount_data(sys: &dyn Sys) -> Result<(), String> {
    let mut part = blockdev::wait_for_label(DATA_LABEL, SYSROOT, PARTITION_WAIT).map_err(|e| e.to_string())?;
    let dev = format!("{SYSROOT}/dev/{}", part.name);
    let disk_dev = format!("{SYSROOT}/dev/{}", part.disk);
    if let Some(grown) = grow_partition(&part, &disk_dev)? {
        say!("stage 1: data partition grown to the end of the disk: {} MiB", grown.size_sectors >> 11);
        part = grown;
    }
    let state = std::fs::File::open(&dev)
        .and_then(|mut f| data::classify(&mut f, part.size_sectors * 512))
        .map_err(|e| error_chain(&data::DataError::Read { dev: dev.clone(), source: e }))?;
    let paths = data::Paths { dev: dev.clone(), dev_in_root: format!("/dev/{}", part.name), root: SYSROOT.into(), target: format!("{SYSROOT}/data") };
    data::mount(sys, &paths, state, part.size_sectors >> 11).map_err(|e| error_chain(&e))?;
    grow_fs(&dev, &paths.target, part.size_sectors * 512);
    Ok(())
}

/// An error and its causes on one console line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
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

fn exec_init() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    std::process::Command::new("/sbin/init").arg0("/sbin/init").exec()
}

/// The slot cannot boot: say why, mark it bad, reboot into the other slot.
pub fn fail(sys: &dyn Sys, slot: Option<Slot>, err: &Stage1Error) -> ! {
    match slot {
        Some(slot) => {
            say!("FATAL slot {slot}: {err}");
            say!("marking slot {slot} failed and rebooting into slot {}", slot.other());
            // /dev may already have moved into the new root.
            let root = if DEV_MOVED.load(Ordering::SeqCst) { SYSROOT } else { "" };
            let access = bootctl::EspAccess { root: root.into(), mount_dir: "/cairn-esp".into() };
            if let Err(e) = bootctl::update(sys, &access, |env| env.mark_bad(slot)) {
                say!("could not mark slot {slot} bad ({e}); GRUB's try flag makes the next boot skip it anyway");
            }
        }
        None => say!("FATAL: {err}; rebooting"),
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

    #[test]
    fn switch_root_moves_before_chroot() {
        let r = Recorder::default();
        assert!(switch_root_calls(&r).is_ok());
        assert_eq!(r.calls(), ["chdir /sysroot", "move . /", "chroot .", "chdir /"]);
    }
}
