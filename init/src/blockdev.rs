//! Finding partitions by GPT label through sysfs, and the block-device ioctls we need.
//!
//! The kernel exposes each GPT partition's name as PARTNAME in its uevent file, so we need no
//! udev to find "root-a" at boot. Labels are looked up on the boot disk only: any other disk
//! (a USB stick holding another Cairn image, a disk with a partition labelled "data") could
//! otherwise become the node's root or /data, and its service definitions would run as
//! root. The boot disk is the one holding the ESP whose partition GUID GRUB passed as
//! `cairn.esp=` ([`wait_for_boot_disk`]); stage 1 records its name in [`BOOT_DISK_FILE`] for
//! stage 2.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// Where stage 1 writes the boot disk's kernel name (/run moves into the root with it).
pub const BOOT_DISK_FILE: &str = "/run/cairn/boot-disk";

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("no partition labelled {label:?} appeared on the boot disk {disk} within {secs} s (is the disk attached and its driver in kernel.modules?)")]
    NotFound { label: String, disk: String, secs: u64 },
    #[error("no disk holding the ESP GRUB booted from (partition GUID {esp}) appeared within {secs} s")]
    NoBootDisk { esp: String, secs: u64 },
    #[error("disks {disks:?} all hold the ESP GRUB booted from (partition GUID {esp}): they are unbooted copies of one image, and the boot disk cannot be told apart; detach the copy and boot again (each disk gets its own GUIDs on its first boot)")]
    Ambiguous { esp: String, disks: Vec<String> },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: String, source: std::io::Error },
    #[error("ioctl {op} on {path} failed: {errno}")]
    Ioctl { op: &'static str, path: String, errno: nix::Error },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDev {
    /// Kernel name, e.g. "vda3".
    pub name: String,
    /// The whole disk, e.g. "vda".
    pub disk: String,
    pub number: u32,
    pub start_sectors: u64,
    pub size_sectors: u64,
}

impl PartitionDev {
    pub fn dev_path(&self) -> String {
        format!("/dev/{}", self.name)
    }
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

/// Looks once through /sys/class/block for a partition of `disk` whose PARTNAME is `label`.
pub fn find_by_label(sys_block: &Path, label: &str, disk: &str) -> Option<PartitionDev> {
    let entries = std::fs::read_dir(sys_block).ok()?;
    let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for name in names {
        let dir = sys_block.join(&name);
        let uevent = std::fs::read_to_string(dir.join("uevent")).unwrap_or_default();
        if !uevent.lines().any(|l| l == format!("PARTNAME={label}")) {
            continue;
        }
        // /sys/class/block/vda3 -> ../../devices/.../block/vda/vda3: the parent is the disk.
        let Some(parent) = std::fs::read_link(&dir).ok().and_then(|t| Some(t.parent()?.file_name()?.to_string_lossy().into_owned())) else { continue };
        if parent != disk {
            continue;
        }
        return Some(PartitionDev {
            disk: parent,
            name: name.clone(),
            number: read_trim(&dir.join("partition"))?.parse().ok()?,
            start_sectors: read_trim(&dir.join("start"))?.parse().ok()?,
            size_sectors: read_trim(&dir.join("size"))?.parse().ok()?,
        });
    }
    None
}

/// Waits for a partition of the boot disk to appear (virtio disks are probed
/// asynchronously) and for its device node. `root` is where /sys and /dev are: "" normally,
/// "/sysroot" in stage 1 once it has moved them into the new root.
pub fn wait_for_label(label: &str, root: &str, disk: &str, timeout: Duration) -> Result<PartitionDev, BlockError> {
    let start = Instant::now();
    loop {
        if let Some(p) = find_by_label(Path::new(&format!("{root}/sys/class/block")), label, disk) {
            if Path::new(&format!("{root}/dev/{}", p.name)).exists() {
                return Ok(p);
            }
        }
        if start.elapsed() > timeout {
            return Err(BlockError::NotFound { label: label.into(), disk: disk.into(), secs: timeout.as_secs() });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The whole disks (not partitions) in /sys/class/block, by kernel name.
fn disks(sys_block: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(sys_block)
        .map(|d| d.flatten().filter(|e| !e.path().join("partition").exists()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// The GPT of `/dev/<disk>` under `root`, if it has one.
pub fn read_gpt(root: &str, disk: &str) -> Option<cairn_updater::gpt::Gpt> {
    // An empty drive (a card reader, a CD drive) reports 0 sectors: nothing to read, and
    // too small for a GPT's two tables anyway.
    let sectors = disk_sectors(root, disk).filter(|s| *s >= 68)?;
    let mut f = std::fs::File::open(format!("{root}/dev/{disk}")).ok()?;
    cairn_updater::gpt::Gpt::read(&mut f, sectors * 512).ok()
}

/// The disks whose GPT has a partition with GUID `esp`, looked at once.
pub fn disks_holding(root: &str, esp: cairn_updater::gpt::Guid) -> Vec<String> {
    disks(Path::new(&format!("{root}/sys/class/block")))
        .into_iter()
        .filter(|d| read_gpt(root, d).is_some_and(|g| g.partitions.iter().any(|p| p.part_guid == esp)))
        .collect()
}

/// Waits for the disk holding the ESP GRUB booted from. Two such disks are unbooted copies
/// of one image (each disk gets its own GUIDs on its first boot): that is refused, not
/// guessed. `poll` runs before every look (stage 1 loads the drivers of devices that
/// appeared: the boot disk may be behind a controller whose driver is not loaded yet).
pub fn wait_for_boot_disk(esp: cairn_updater::gpt::Guid, timeout: Duration, poll: &mut dyn FnMut()) -> Result<String, BlockError> {
    let start = Instant::now();
    loop {
        poll();
        let mut found = disks_holding("", esp);
        if found.len() > 1 {
            return Err(BlockError::Ambiguous { esp: esp.to_string(), disks: found });
        }
        if let Some(disk) = found.pop() {
            return Ok(disk);
        }
        if start.elapsed() > timeout {
            return Err(BlockError::NoBootDisk { esp: esp.to_string(), secs: timeout.as_secs() });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The boot disk stage 1 recorded (`root` as for [`wait_for_label`]).
pub fn recorded_boot_disk(root: &str) -> Option<String> {
    std::fs::read_to_string(format!("{root}{BOOT_DISK_FILE}")).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty() && !s.contains('/'))
}

/// Waits for a device node to exist (devtmpfs creates it shortly after the device).
pub fn wait_for_node(path: &str, timeout: Duration) -> bool {
    let start = Instant::now();
    while !Path::new(path).exists() {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

pub fn disk_sectors(root: &str, disk: &str) -> Option<u64> {
    read_trim(&Path::new(&format!("{root}/sys/class/block")).join(disk).join("size"))?.parse().ok()
}

/// BLKPG_RESIZE_PARTITION: tell the kernel a partition grew (after the GPT was rewritten),
/// which works while other partitions of the same disk are in use, unlike BLKRRPART.
pub fn resize_partition(disk_path: &str, number: u32, start_bytes: u64, length_bytes: u64) -> Result<(), BlockError> {
    #[repr(C)]
    struct BlkpgPartition {
        start: i64,
        length: i64,
        pno: libc::c_int,
        devname: [u8; 64],
        volname: [u8; 64],
    }
    #[repr(C)]
    struct BlkpgIoctlArg {
        op: libc::c_int,
        flags: libc::c_int,
        datalen: libc::c_int,
        data: *mut BlkpgPartition,
    }
    const BLKPG: libc::c_ulong = 0x1269;
    const BLKPG_RESIZE_PARTITION: libc::c_int = 3;
    let f = std::fs::File::open(disk_path).map_err(|source| BlockError::Io { what: "cannot open", path: disk_path.into(), source })?;
    let mut part = BlkpgPartition {
        start: start_bytes as i64,
        length: length_bytes as i64,
        pno: number as libc::c_int,
        devname: [0; 64],
        volname: [0; 64],
    };
    let mut arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: &mut part,
    };
    // SAFETY: BLKPG reads a struct blkpg_ioctl_arg whose `data` points to a struct
    // blkpg_partition of `datalen` bytes; both live on this stack frame during the call.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKPG as _, &mut arg) };
    if r < 0 {
        return Err(BlockError::Ioctl { op: "BLKPG_RESIZE_PARTITION", path: disk_path.into(), errno: nix::Error::last() });
    }
    Ok(())
}

/// EXT4_IOC_RESIZE_FS: grow a mounted ext4 file system to `blocks` blocks (online resize).
pub fn ext4_resize(mount_point: &str, blocks: u64) -> Result<(), BlockError> {
    let f = std::fs::File::open(mount_point).map_err(|source| BlockError::Io { what: "cannot open", path: mount_point.into(), source })?;
    let request = nix::request_code_write!(b'f', 16, std::mem::size_of::<u64>());
    let arg: u64 = blocks;
    // SAFETY: EXT4_IOC_RESIZE_FS reads one u64 (the new block count) from the pointer,
    // which points to a live local.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), request as _, &arg) };
    if r < 0 {
        return Err(BlockError::Ioctl { op: "EXT4_IOC_RESIZE_FS", path: mount_point.into(), errno: nix::Error::last() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 8 item 1: a partition with the label on another disk (here sda, which sorts
    /// before vda) is never taken; before, the first match in name order won.
    #[test]
    fn a_label_on_another_disk_is_ignored() {
        let base = std::env::temp_dir().join(format!("cairn-sysblock-other-{}", std::process::id()));
        let class = base.join("class");
        assert!(std::fs::create_dir_all(&class).is_ok());
        for (disk, part) in [("sda", "sda7"), ("vda", "vda7")] {
            let dev = base.join(format!("devices/block/{disk}/{part}"));
            assert!(std::fs::create_dir_all(&dev).is_ok());
            for (f, v) in [("uevent", "PARTNAME=data\n"), ("partition", "7\n"), ("start", "1\n"), ("size", "2\n")] {
                assert!(std::fs::write(dev.join(f), v).is_ok());
            }
            assert!(std::os::unix::fs::symlink(format!("../devices/block/{disk}/{part}"), class.join(part)).is_ok());
        }
        assert_eq!(find_by_label(&class, "data", "vda").map(|p| p.name), Some("vda7".into()));
        assert_eq!(find_by_label(&class, "data", "vdb"), None);
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn finds_partition_by_label_in_a_fake_sysfs() {
        let base = std::env::temp_dir().join(format!("cairn-sysblock-{}", std::process::id()));
        let dev = base.join("devices/pci/block/vda/vda3");
        let class = base.join("class");
        assert!(std::fs::create_dir_all(&dev).is_ok() && std::fs::create_dir_all(&class).is_ok());
        for (f, v) in [("uevent", "MAJOR=254\nDEVNAME=vda3\nPARTN=3\nPARTNAME=root-a\n"), ("partition", "3\n"), ("start", "4096\n"), ("size", "1048576\n")] {
            assert!(std::fs::write(dev.join(f), v).is_ok());
        }
        assert!(std::os::unix::fs::symlink("../devices/pci/block/vda/vda3", class.join("vda3")).is_ok());
        let p = find_by_label(&class, "root-a", "vda");
        assert_eq!(
            p,
            Some(PartitionDev { name: "vda3".into(), disk: "vda".into(), number: 3, start_sectors: 4096, size_sectors: 1048576 })
        );
        assert_eq!(find_by_label(&class, "root-b", "vda"), None);
        let _ = std::fs::remove_dir_all(&base);
    }
}
