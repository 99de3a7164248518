//! Configuration volumes found by their file system label (`cidata` for NoCloud, `config-2`
//! for ConfigDrive), read from the superblock: there is no udev or blkid to ask at this
//! point of the boot, and one read of the first 36 KiB of each block device is all it takes.
//!
//! Only FAT and ISO 9660 volumes are mounted (read-only, nosuid, nodev, noexec); a volume
//! with the right label and another file system is reported and left alone.

use crate::sys::Sys;
use nix::mount::MsFlags;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most any configuration file may hold; a larger one is refused, not read.
pub const MAX_FILE: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    Vfat,
    Iso9660,
    /// A file system that is neither (named for the message), or none known.
    Other(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// `/dev/vdb`
    pub dev: String,
    pub fs: Fs,
    pub label: String,
}

/// The file system and label in a device's first bytes (at least 36 KiB of them).
pub fn identify(head: &[u8]) -> (Fs, String) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim_end_matches([' ', '\0']).to_owned();
    // ISO 9660: the primary volume descriptor in sector 16 (2 KiB sectors).
    if head.get(32769..32774) == Some(b"CD001") && head.get(32768) == Some(&1) {
        return (Fs::Iso9660, head.get(32808..32840).map(text).unwrap_or_default());
    }
    if head.get(510..512) == Some(&[0x55, 0xaa]) {
        if head.get(82..87) == Some(b"FAT32") {
            return (Fs::Vfat, head.get(71..82).map(text).unwrap_or_default());
        }
        if head.get(54..57) == Some(b"FAT") {
            return (Fs::Vfat, head.get(43..54).map(text).unwrap_or_default());
        }
    }
    if head.get(1080..1082) == Some(&[0x53, 0xef]) {
        return (Fs::Other("ext2/3/4"), head.get(1144..1160).map(text).unwrap_or_default());
    }
    (Fs::Other("unknown"), String::new())
}

/// Every block device (disks and partitions, CD-ROMs included) whose label is one of
/// `labels` (compared without case: FAT tools upper-case labels).
pub fn find(sys_block: &Path, dev: &Path, labels: &[&str]) -> Vec<Volume> {
    let mut names: Vec<String> = std::fs::read_dir(sys_block).into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let mut found = Vec::new();
    for name in names {
        if ["loop", "ram", "dm-", "zram"].iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let path = dev.join(&name);
        let mut head = Vec::with_capacity(36 * 1024);
        let read = std::fs::File::open(&path).and_then(|f| f.take(36 * 1024).read_to_end(&mut head));
        if read.is_err() {
            continue;
        }
        let (fs, label) = identify(&head);
        if labels.iter().any(|l| l.eq_ignore_ascii_case(&label)) {
            found.push(Volume { dev: path.display().to_string(), fs, label: label.to_ascii_lowercase() });
        }
    }
    found
}

/// A volume mounted read-only for as long as this value lives.
pub struct Mounted<'a> {
    sys: &'a dyn Sys,
    pub dir: PathBuf,
}

impl std::fmt::Debug for Mounted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted").field("dir", &self.dir).finish()
    }
}

impl<'a> Mounted<'a> {
    pub fn mount(sys: &'a dyn Sys, v: &Volume, dir: &Path) -> Result<Mounted<'a>, String> {
        let fstype = match v.fs {
            Fs::Vfat => "vfat",
            Fs::Iso9660 => "iso9660",
            Fs::Other(what) => return Err(format!("{} is labelled {} but holds {what}, not FAT or ISO 9660: not read", v.dev, v.label)),
        };
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        let d = dir.display().to_string();
        sys.mount(&v.dev, &d, fstype, flags, "").map_err(|e| format!("cannot mount {} ({fstype}, labelled {}): {e}", v.dev, v.label))?;
        Ok(Mounted { sys, dir: dir.to_owned() })
    }

    /// A file on the volume, if it is there; one over [`MAX_FILE`] or not UTF-8 is an error.
    pub fn read(&self, name: &str) -> Result<Option<String>, String> {
        read_small(&self.dir.join(name))
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = self.sys.umount(&self.dir.display().to_string(), true);
    }
}

/// Reads a configuration file of at most [`MAX_FILE`] bytes; `None` if it is not there.
pub fn read_small(path: &Path) -> Result<Option<String>, String> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut bytes = Vec::new();
    f.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("{} is larger than {MAX_FILE} bytes: not read", path.display()));
    }
    String::from_utf8(bytes).map(Some).map_err(|_| format!("{} is not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_fat_iso_and_ext4_are_read_from_the_superblock() {
        let mut fat = vec![0u8; 36 * 1024];
        fat[510..512].copy_from_slice(&[0x55, 0xaa]);
        fat[54..59].copy_from_slice(b"FAT16");
        fat[43..54].copy_from_slice(b"CIDATA     ");
        assert_eq!(identify(&fat), (Fs::Vfat, "CIDATA".into()));
        let mut fat32 = vec![0u8; 36 * 1024];
        fat32[510..512].copy_from_slice(&[0x55, 0xaa]);
        fat32[82..87].copy_from_slice(b"FAT32");
        fat32[71..82].copy_from_slice(b"config-2   ");
        assert_eq!(identify(&fat32), (Fs::Vfat, "config-2".into()));
        let mut iso = vec![0u8; 36 * 1024];
        iso[32768] = 1;
        iso[32769..32774].copy_from_slice(b"CD001");
        iso[32808..32814].copy_from_slice(b"cidata");
        assert_eq!(identify(&iso).0, Fs::Iso9660);
        assert_eq!(identify(&iso).1, "cidata");
        let mut ext = vec![0u8; 36 * 1024];
        ext[1080..1082].copy_from_slice(&[0x53, 0xef]);
        ext[1144..1150].copy_from_slice(b"cidata");
        assert_eq!(identify(&ext), (Fs::Other("ext2/3/4"), "cidata".into()));
        // A disk's MBR has the signature too, but no FAT type: not a FAT volume.
        let mut mbr = vec![0u8; 36 * 1024];
        mbr[510..512].copy_from_slice(&[0x55, 0xaa]);
        assert_eq!(identify(&mbr).0, Fs::Other("unknown"));
    }

    #[test]
    fn find_matches_labels_without_case_and_mount_refuses_other_file_systems() {
        let t = tempfile::tempdir().expect("test setup");
        let (sys_block, dev) = (t.path().join("sys"), t.path().join("dev"));
        std::fs::create_dir_all(&sys_block).expect("test setup");
        std::fs::create_dir_all(&dev).expect("test setup");
        let mut fat = vec![0u8; 36 * 1024];
        fat[510..512].copy_from_slice(&[0x55, 0xaa]);
        fat[54..59].copy_from_slice(b"FAT12");
        fat[43..54].copy_from_slice(b"CIDATA     ");
        let mut ext = vec![0u8; 36 * 1024];
        ext[1080..1082].copy_from_slice(&[0x53, 0xef]);
        ext[1144..1152].copy_from_slice(b"config-2");
        for (name, data) in [("vdb", &fat), ("vdc", &ext), ("loop0", &fat)] {
            std::fs::create_dir(sys_block.join(name)).expect("test setup");
            std::fs::write(dev.join(name), data).expect("test setup");
        }
        let found = find(&sys_block, &dev, &["cidata", "config-2"]);
        assert_eq!(found.iter().map(|v| (v.label.as_str(), v.fs)).collect::<Vec<_>>(), [("cidata", Fs::Vfat), ("config-2", Fs::Other("ext2/3/4"))]);
        let rec = crate::sys::Recorder::default();
        let e = Mounted::mount(&rec, &found[1], &t.path().join("mnt")).expect_err("refused");
        assert!(e.contains("not FAT or ISO 9660"), "{e}");
        assert!(rec.calls().is_empty(), "nothing mounted: {:?}", rec.calls());
        let m = Mounted::mount(&rec, &found[0], &t.path().join("mnt")).expect("mounted");
        drop(m);
        let calls = rec.calls();
        assert!(calls[0].starts_with("mount") && calls[0].contains("vfat"), "{calls:?}");
        assert!(calls[1].starts_with("umount"), "{calls:?}");
    }
}
