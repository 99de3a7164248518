//! A minimal `newc` cpio writer for the initramfs.
//!
//! The kernel unpacks newc archives; we write our own (a few dozen lines) rather than run
//! `cpio` so the archive is byte-reproducible: fixed inode numbers, mtimes and owners.

use std::io::{self, Write};

/// Builds a newc archive in memory, entries in the order they are added.
#[derive(Debug)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
    mtime: u32,
    rdev: (u32, u32),
}

impl Cpio {
    pub fn new(mtime: u64) -> Cpio {
        Cpio { out: Vec::new(), ino: 1, mtime: u32::try_from(mtime).unwrap_or(u32::MAX), rdev: (0, 0) }
    }

    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, &[]);
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | mode, data);
    }

    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120_777, target.as_bytes());
    }

    /// A character device node, e.g. /dev/console (5, 1): the kernel opens it for PID 1's
    /// stdin/stdout/stderr before running /init, so it must exist in the archive.
    pub fn char_dev(&mut self, name: &str, mode: u32, major: u32, minor: u32) {
        self.rdev = (major, minor);
        self.entry(name, 0o020_000 | mode, &[]);
        self.rdev = (0, 0);
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        let name = name.trim_start_matches('/');
        let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            self.mtime,
            data.len(),
            0, // dev major
            0, // dev minor
            self.rdev.0,
            self.rdev.1,
            name.len() + 1,
            0, // checksum (unused by newc)
        );
        self.ino += 1;
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// Appends the trailer and writes the archive.
    pub fn finish(mut self, w: &mut impl Write) -> io::Result<()> {
        self.ino = 0;
        self.mtime = 0;
        self.entry("TRAILER!!!", 0, &[]);
        w.write_all(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_tool_lists_our_archive() {
        let mut c = Cpio::new(1_700_000_000);
        c.dir("etc");
        c.file("etc/hello", 0o644, b"hi\n");
        c.symlink("init", "sbin/init");
        let mut buf = Vec::new();
        assert!(c.finish(&mut buf).is_ok());
        let dir = std::env::temp_dir().join(format!("cairn-cpio-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("a.cpio");
        assert!(std::fs::write(&path, &buf).is_ok());
        let out = std::process::Command::new("cpio")
            .args(["-t", "-F"])
            .arg(&path)
            .output()
            .expect("cpio missing: apt-get install cpio");
        let list = String::from_utf8_lossy(&out.stdout);
        assert_eq!(list.lines().collect::<Vec<_>>(), ["etc", "etc/hello", "init"], "{list}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
