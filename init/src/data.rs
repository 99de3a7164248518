//! The data partition in stage 1: what is on it, and what may be done to it.
//!
//! /data holds every container, key and eligibility record, so it is formatted only when it
//! was never written: the image leaves the partition zeroed, and [`classify`] checks that
//! explicitly (the first MiB, and every place a backup superblock could be). A partition
//! that was written but whose primary superblock does not read is [`State::Damaged`]: it
//! goes to `e2fsck -y`, which finds the backup superblocks; if it still does not mount,
//! stage 1 says so and the node runs on a temporary /data. Nothing here ever formats it.

use crate::say;
use crate::sys::{Sys, ToolExit};
use nix::mount::MsFlags;
use std::io::{Read, Seek, SeekFrom};

/// What `mke2fs` and `e2fsck` are called as, inside the verified root.
const MKE2FS: &str = "/sbin/mke2fs";
const E2FSCK: &str = "/sbin/e2fsck";
/// The image writes nothing into the data partition; a first boot finds this much zeroed.
const BLANK_PREFIX: usize = 1 << 20;
/// ext2/3/4's magic, at offset 0x38 of a superblock.
const EXT_MAGIC: [u8; 2] = [0x53, 0xef];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Never written: the first boot formats it.
    Blank,
    /// The primary superblock reads as ext2/3/4.
    Ext4,
    /// Written, but no primary superblock: e2fsck's job, never mke2fs's.
    Damaged,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read the data partition {dev}")]
    Read {
        dev: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} could not run")]
    Tool {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("creating the file system on the blank data partition failed ({}): {}", exit_text(.0), .0.stderr)]
    Format(ToolExit),
    #[error("the data partition does not mount ({errno}) even after e2fsck ({}: {}); it was left as it is, not formatted: repair it from a rescue system (e2fsck -b <backup superblock>) or zero its first MiB to start afresh", exit_text(.check), .check.stderr)]
    Unrepairable { errno: nix::Error, check: ToolExit },
    #[error("the ext4 file system just created on the blank data partition does not mount ({errno}): the kernel lacks ext4, or the disk fails writes")]
    NewDoesNotMount { errno: nix::Error },
}

fn exit_text(e: &ToolExit) -> String {
    e.code.map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}"))
}

/// Where a backup superblock sits for each block size mke2fs may pick (1, 2, 4 KiB): the
/// first block of group 1, whose size is 8 * block size blocks.
const BACKUP_SUPERBLOCKS: [u64; 3] = [8193 * 1024, 16384 * 2048, 32768 * 4096];

/// Reads what is on the partition (`size` bytes long).
pub fn classify(dev: &mut (impl Read + Seek), size: u64) -> std::io::Result<State> {
    let mut head = vec![0u8; BLANK_PREFIX.min(usize::try_from(size).unwrap_or(usize::MAX))];
    dev.seek(SeekFrom::Start(0))?;
    dev.read_exact(&mut head)?;
    if head.len() >= 2048 && head[1024 + 0x38..1024 + 0x3a] == EXT_MAGIC {
        return Ok(State::Ext4);
    }
    if head.iter().any(|b| *b != 0) {
        return Ok(State::Damaged);
    }
    // A zeroed start with a backup superblock behind it is a file system whose start was
    // wiped, not a blank partition.
    for at in BACKUP_SUPERBLOCKS {
        if at + 1024 > size {
            continue;
        }
        let mut sb = [0u8; 0x3a];
        dev.seek(SeekFrom::Start(at))?;
        dev.read_exact(&mut sb)?;
        if sb[0x38..0x3a] == EXT_MAGIC {
            return Ok(State::Damaged);
        }
    }
    Ok(State::Blank)
}

/// The partition as stage 1 sees it and as the tools in the root see it.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The device node from the initramfs (under /sysroot/dev once /dev has moved).
    pub dev: String,
    /// The same node inside the root, for tools run there (`/dev/vda7`).
    pub dev_in_root: String,
    /// The verified root the tools run in.
    pub root: String,
    /// Where /data goes.
    pub target: String,
}

/// Formats a blank partition, repairs a damaged one, and mounts it. Never formats anything
/// but [`State::Blank`].
pub fn mount(sys: &dyn Sys, p: &Paths, state: State, size_mib: u64) -> Result<(), DataError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    match state {
        State::Blank => {
            say!("stage 1: first boot: the data partition is blank; creating the ext4 file system on /data ({size_mib} MiB)");
            let made = tool(sys, p, MKE2FS, &["-q", "-t", "ext4", "-L", "data", "-E", "lazy_itable_init=1,lazy_journal_init=1"])?;
            if !made.success() {
                return Err(DataError::Format(made));
            }
        }
        State::Ext4 => {
            let Err(first) = sys.mount(&p.dev, &p.target, "ext4", flags, "") else { return Ok(()) };
            say!("stage 1: /data does not mount ({first}); checking it with e2fsck");
            let preen = tool(sys, p, E2FSCK, &["-p"])?;
            // Exit 4: errors that preen mode leaves to a person. A headless node has none to
            // ask, so the second pass answers yes, as an operator at the console would.
            if preen.code.is_none_or(|c| c & 4 != 0) {
                say!("stage 1: e2fsck -p left errors ({}); repairing with e2fsck -y", exit_text(&preen));
                let _ = tool(sys, p, E2FSCK, &["-y"])?;
            }
        }
        State::Damaged => {
            say!("stage 1: the data partition holds data but its primary superblock does not read; repairing with e2fsck -y from a backup superblock (it is never reformatted)");
            let check = tool(sys, p, E2FSCK, &["-y"])?;
            say!("stage 1: e2fsck on /data: {}", exit_text(&check));
        }
    }
    sys.mount(&p.dev, &p.target, "ext4", flags, "").or_else(|errno| {
        if state == State::Blank {
            return Err(DataError::NewDoesNotMount { errno });
        }
        // One more full check, whose result goes into the error.
        let check = tool(sys, p, E2FSCK, &["-y"])?;
        sys.mount(&p.dev, &p.target, "ext4", flags, "").map_err(|errno| DataError::Unrepairable { errno, check })
    })
}

fn tool(sys: &dyn Sys, p: &Paths, program: &'static str, args: &[&str]) -> Result<ToolExit, DataError> {
    let mut argv = vec![program];
    argv.extend_from_slice(args);
    argv.push(&p.dev_in_root);
    sys.run_tool(&p.root, &argv).map_err(|source| DataError::Tool { tool: program, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Recorder;
    use std::io::Cursor;

    const SIZE: u64 = 200 << 20;

    fn disk() -> Vec<u8> {
        vec![0u8; usize::try_from(SIZE).unwrap_or(0)]
    }

    fn with_magic(mut d: Vec<u8>, at: u64) -> Vec<u8> {
        let at = usize::try_from(at).unwrap_or(0) + 0x38;
        d[at..at + 2].copy_from_slice(&EXT_MAGIC);
        d
    }

    #[test]
    fn a_zeroed_partition_is_blank() {
        assert_eq!(classify(&mut Cursor::new(disk()), SIZE).ok(), Some(State::Blank));
        // Smaller than the blank prefix (a tiny test partition) still classifies.
        assert_eq!(classify(&mut Cursor::new(vec![0u8; 4096]), 4096).ok(), Some(State::Blank));
    }

    #[test]
    fn a_primary_superblock_is_ext4() {
        assert_eq!(classify(&mut Cursor::new(with_magic(disk(), 1024)), SIZE).ok(), Some(State::Ext4));
    }

    /// Issue 8 item 2: a damaged primary superblock (the rest of the file system still
    /// there) used to count as "not ext4", and so as a first boot.
    #[test]
    fn a_damaged_superblock_with_data_behind_it_is_damaged_not_blank() {
        let mut d = disk();
        d[4096..4200].fill(0xab); // group descriptors, say
        assert_eq!(classify(&mut Cursor::new(d), SIZE).ok(), Some(State::Damaged));
        // The whole first MiB wiped, a backup superblock further on (4 KiB blocks).
        assert_eq!(classify(&mut Cursor::new(with_magic(disk(), 32768 * 4096)), SIZE).ok(), Some(State::Damaged));
        assert_eq!(classify(&mut Cursor::new(with_magic(disk(), 8193 * 1024)), SIZE).ok(), Some(State::Damaged));
    }

    fn paths() -> Paths {
        Paths { dev: "/sysroot/dev/vda7".into(), dev_in_root: "/dev/vda7".into(), root: "/sysroot".into(), target: "/sysroot/data".into() }
    }

    fn made_a_file_system(r: &Recorder) -> bool {
        r.calls().iter().any(|c| c.starts_with("run /sbin/mke2fs"))
    }

    #[test]
    fn a_blank_partition_is_formatted_then_mounted() {
        let r = Recorder::default();
        mount(&r, &paths(), State::Blank, 64).expect("mounted");
        let calls = r.calls();
        assert!(calls[0].starts_with("run /sbin/mke2fs -q -t ext4 -L data") && calls[0].contains("/dev/vda7 (in /sysroot)"), "{calls:?}");
        assert!(!calls[0].contains(" -F"), "mke2fs must not be forced: {calls:?}");
        assert!(calls[1].starts_with("mount /sysroot/dev/vda7 /sysroot/data ext4"), "{calls:?}");
    }

    #[test]
    fn a_damaged_partition_goes_to_e2fsck_and_is_never_formatted() {
        let r = Recorder::default();
        mount(&r, &paths(), State::Damaged, 64).expect("mounted after the repair");
        let calls = r.calls();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(calls[0].starts_with("run /sbin/e2fsck -y /dev/vda7"), "{calls:?}");
        assert!(calls[1].starts_with("mount /sysroot/dev/vda7"), "{calls:?}");
        assert!(!made_a_file_system(&r));
    }

    #[test]
    fn an_unrepairable_partition_is_refused_not_formatted() {
        let r = Recorder { fail: vec![("mount /sysroot/dev/vda7".into(), nix::Error::EUCLEAN)], exit_codes: vec![("run /sbin/e2fsck".into(), 8)], ..Default::default() };
        for state in [State::Damaged, State::Ext4] {
            let err = mount(&r, &paths(), state, 64).expect_err("must not mount");
            assert!(matches!(err, DataError::Unrepairable { .. }), "{err}");
            assert!(err.to_string().contains("not formatted"), "{err}");
        }
        assert!(!made_a_file_system(&r), "{:?}", r.calls());
    }

    #[test]
    fn a_new_file_system_that_does_not_mount_says_so() {
        let r = Recorder { fail: vec![("mount /sysroot/dev/vda7".into(), nix::Error::ENODEV)], ..Default::default() };
        let err = mount(&r, &paths(), State::Blank, 64).expect_err("must not mount");
        assert!(matches!(err, DataError::NewDoesNotMount { .. }), "{err}");
        assert!(!err.to_string().contains("e2fsck"), "nothing was checked: {err}");
    }

    #[test]
    fn an_ext4_that_does_not_mount_is_preened_then_repaired() {
        let r = Recorder { fail: vec![("mount".into(), nix::Error::EUCLEAN)], exit_codes: vec![("run /sbin/e2fsck -p".into(), 4)], ..Default::default() };
        let _ = mount(&r, &paths(), State::Ext4, 64);
        let runs: Vec<String> = r.calls().into_iter().filter(|c| c.starts_with("run")).collect();
        assert!(runs[0].starts_with("run /sbin/e2fsck -p") && runs[1].starts_with("run /sbin/e2fsck -y"), "{runs:?}");
        assert!(!made_a_file_system(&r));
    }
}
