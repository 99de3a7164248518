//! GUID partition tables: written by the image tool, read and grown by stage 1.
//!
//! 512-byte sectors; protective MBR at LBA 0 (only its partition table: the boot code in
//! bytes 0..440 is left alone), primary header at LBA 1, 128 entries of 128 bytes at LBA
//! 2..33, and the same entries and a backup header in the last 33 sectors.
//!
//! [`Gpt::write`] survives a power cut at any point: it writes the backup table and makes it
//! durable ([`Barrier`]) before it touches the primary, so at every moment at least one of
//! the two is whole and [`Gpt::read`] falls back to the backup when the primary is torn.

use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom, Write};

const SECTOR: u64 = 512;
const ENTRIES: u64 = 128;
const ENTRY_SIZE: u64 = 128;
const ENTRY_SECTORS: u64 = ENTRIES * ENTRY_SIZE / SECTOR; // 32

#[derive(Debug, thiserror::Error)]
pub enum GptError {
    #[error("{0:?} is not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")]
    Guid(String),
    #[error("partition {label:?} ({first}..{last}) is outside the usable sectors {min}..{max}")]
    OutOfRange { label: String, first: u64, last: u64, min: u64, max: u64 },
    #[error("partitions {0:?} and {1:?} overlap")]
    Overlap(String, String),
    #[error("partition label {0:?} is longer than GPT's 36 UTF-16 characters")]
    Label(String),
    #[error("more than 128 partitions")]
    TooMany,
    #[error("no valid GPT found (primary and backup headers both bad: {0})")]
    Invalid(&'static str),
    #[error("partition {0:?} is not the last partition, so it cannot grow to the end of the disk")]
    NotLast(String),
    #[error("no partition labelled {0:?}")]
    NoSuchPartition(String),
    #[error("the disk would shrink ({0} sectors); a GPT is only ever grown")]
    Shrink(u64),
    #[error("disk I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Makes the writes so far durable: a disk's write cache may persist writes in any order,
/// so without a barrier between them "backup first" means nothing.
pub trait Barrier {
    fn barrier(&mut self) -> std::io::Result<()>;
}

impl Barrier for std::fs::File {
    /// fdatasync(2): on a block device this also flushes the device's write cache.
    fn barrier(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

impl<T> Barrier for std::io::Cursor<T> {
    fn barrier(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A GUID in GPT's on-disk (mixed-endian) byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

/// Swaps between canonical (big-endian string order) and on-disk order; its own inverse.
fn swap(b: [u8; 16]) -> [u8; 16] {
    let mut o = b;
    o[0..4].reverse();
    o[4..6].reverse();
    o[6..8].reverse();
    o
}

impl Guid {
    pub fn parse(s: &str) -> Result<Guid, GptError> {
        let hexs: String = s.chars().filter(|&c| c != '-').collect();
        let bad = || GptError::Guid(s.to_owned());
        if s.len() != 36 || hexs.len() != 32 {
            return Err(bad());
        }
        let v = hex::decode(&hexs).map_err(|_| bad())?;
        let mut b = [0u8; 16];
        b.copy_from_slice(&v);
        Ok(Guid(swap(b)))
    }

    /// A version-4 GUID from 16 random bytes (each flashed disk's own identity).
    pub fn from_random(mut b: [u8; 16]) -> Guid {
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Guid(swap(b))
    }

    /// A version-4-shaped GUID from sha256(seed || purpose): reproducible images.
    pub fn derive(seed: &[u8], purpose: &str) -> Guid {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(purpose.as_bytes());
        let d = h.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Guid(swap(b))
    }
}

impl std::fmt::Display for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = hex::encode(swap(self.0));
        write!(f, "{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }
}

pub mod types {
    pub const BIOS_BOOT: &str = "21686148-6449-6e6f-744e-656564454649";
    pub const ESP: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
    pub const ROOT_X86_64: &str = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
    pub const ROOT_VERITY_X86_64: &str = "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5";
    pub const LINUX_DATA: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub label: String,
    pub type_guid: Guid,
    pub part_guid: Guid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpt {
    pub disk_guid: Guid,
    pub partitions: Vec<Partition>,
    pub total_sectors: u64,
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl Gpt {
    pub fn first_usable_lba(&self) -> u64 {
        2 + ENTRY_SECTORS
    }
    pub fn last_usable_lba(&self) -> u64 {
        self.total_sectors - 2 - ENTRY_SECTORS
    }

    pub fn find(&self, label: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.label == label)
    }

    fn validate(&self) -> Result<(), GptError> {
        if self.partitions.len() as u64 > ENTRIES {
            return Err(GptError::TooMany);
        }
        let (min, max) = (self.first_usable_lba(), self.last_usable_lba());
        for p in &self.partitions {
            if p.first_lba < min || p.last_lba > max || p.first_lba > p.last_lba {
                return Err(GptError::OutOfRange { label: p.label.clone(), first: p.first_lba, last: p.last_lba, min, max });
            }
            if p.label.encode_utf16().count() > 36 {
                return Err(GptError::Label(p.label.clone()));
            }
        }
        for (i, a) in self.partitions.iter().enumerate() {
            for b in &self.partitions[i + 1..] {
                if a.first_lba <= b.last_lba && b.first_lba <= a.last_lba {
                    return Err(GptError::Overlap(a.label.clone(), b.label.clone()));
                }
            }
        }
        Ok(())
    }

    fn entries(&self) -> Vec<u8> {
        let mut e = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
        for (i, p) in self.partitions.iter().enumerate() {
            let o = i * ENTRY_SIZE as usize;
            e[o..o + 16].copy_from_slice(&p.type_guid.0);
            e[o + 16..o + 32].copy_from_slice(&p.part_guid.0);
            e[o + 32..o + 40].copy_from_slice(&p.first_lba.to_le_bytes());
            e[o + 40..o + 48].copy_from_slice(&p.last_lba.to_le_bytes());
            e[o + 48..o + 56].copy_from_slice(&p.attributes.to_le_bytes());
            for (j, u) in p.label.encode_utf16().take(36).enumerate() {
                e[o + 56 + 2 * j..o + 58 + 2 * j].copy_from_slice(&u.to_le_bytes());
            }
        }
        e
    }

    fn header(&self, my_lba: u64, alt_lba: u64, entries_lba: u64, entries_crc: u32) -> Vec<u8> {
        let mut h = vec![0u8; SECTOR as usize];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&alt_lba.to_le_bytes());
        h[40..48].copy_from_slice(&self.first_usable_lba().to_le_bytes());
        h[48..56].copy_from_slice(&self.last_usable_lba().to_le_bytes());
        h[56..72].copy_from_slice(&self.disk_guid.0);
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Writes the protective MBR's partition table, both headers and both entry arrays.
    /// The backup copies are written first, the primary last: a power cut in between leaves
    /// one consistent table (read() falls back to the backup).
    /// Writes both tables and the protective MBR. Order (each step durable before the next):
    /// backup entries and header; then primary entries, primary header and MBR. A cut in the
    /// first step leaves the old primary whole; a cut in the second leaves a primary whose
    /// CRCs fail, and the new backup.
    pub fn write(&self, f: &mut (impl Write + Seek + Read + Barrier)) -> Result<(), GptError> {
        self.validate()?;
        let entries = self.entries();
        let crc = crc32fast::hash(&entries);
        let last = self.total_sectors - 1;
        let backup_entries = last - ENTRY_SECTORS;
        f.seek(SeekFrom::Start(backup_entries * SECTOR))?;
        f.write_all(&entries)?;
        f.seek(SeekFrom::Start(last * SECTOR))?;
        f.write_all(&self.header(last, 1, backup_entries, crc))?;
        f.flush()?;
        f.barrier()?;

        let mut mbr = [0u8; 512];
        f.seek(SeekFrom::Start(0))?;
        // A fresh file reads short; the boot code area then stays zero.
        let _ = f.read(&mut mbr)?;
        mbr[446..512].fill(0);
        let p = &mut mbr[446..462];
        p[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
        p[4] = 0xee;
        p[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
        p[8..12].copy_from_slice(&1u32.to_le_bytes());
        p[12..16].copy_from_slice(&u32::try_from(self.total_sectors - 1).unwrap_or(u32::MAX).to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        f.seek(SeekFrom::Start(2 * SECTOR))?;
        f.write_all(&entries)?;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&mbr)?;
        f.write_all(&self.header(1, last, 2, crc))?;
        f.flush()?;
        f.barrier()?;
        Ok(())
    }

    fn read_at(f: &mut (impl Read + Seek), header_lba: u64, total_sectors: u64) -> Result<Gpt, &'static str> {
        let mut h = vec![0u8; SECTOR as usize];
        f.seek(SeekFrom::Start(header_lba * SECTOR)).map_err(|_| "seek")?;
        f.read_exact(&mut h).map_err(|_| "short read")?;
        if &h[0..8] != b"EFI PART" {
            return Err("no EFI PART signature");
        }
        let size = u32_at(&h, 12) as usize;
        if !(92..=512).contains(&size) {
            return Err("bad header size");
        }
        let mut check = h[..size].to_vec();
        check[16..20].fill(0);
        if crc32fast::hash(&check) != u32_at(&h, 16) {
            return Err("header CRC mismatch");
        }
        let (entries_lba, count, esize) = (u64_at(&h, 72), u32_at(&h, 80) as u64, u32_at(&h, 84) as u64);
        if esize != ENTRY_SIZE || count == 0 || count > 1024 {
            return Err("unsupported entry layout");
        }
        let mut e = vec![0u8; (count * esize) as usize];
        f.seek(SeekFrom::Start(entries_lba * SECTOR)).map_err(|_| "seek")?;
        f.read_exact(&mut e).map_err(|_| "short read of entries")?;
        if crc32fast::hash(&e) != u32_at(&h, 88) {
            return Err("entries CRC mismatch");
        }
        let mut disk_guid = [0u8; 16];
        disk_guid.copy_from_slice(&h[56..72]);
        let mut partitions = Vec::new();
        for chunk in e.chunks(ENTRY_SIZE as usize) {
            if chunk[..16].iter().all(|&b| b == 0) {
                continue;
            }
            let (mut t, mut u) = ([0u8; 16], [0u8; 16]);
            t.copy_from_slice(&chunk[0..16]);
            u.copy_from_slice(&chunk[16..32]);
            let name: Vec<u16> = chunk[56..128].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&c| c != 0).collect();
            partitions.push(Partition {
                label: String::from_utf16_lossy(&name),
                type_guid: Guid(t),
                part_guid: Guid(u),
                first_lba: u64_at(chunk, 32),
                last_lba: u64_at(chunk, 40),
                attributes: u64_at(chunk, 48),
            });
        }
        Ok(Gpt { disk_guid: Guid(disk_guid), partitions, total_sectors })
    }

    /// Reads the primary table, or the backup one if the primary is damaged.
    pub fn read(f: &mut (impl Read + Seek), device_bytes: u64) -> Result<Gpt, GptError> {
        let total = device_bytes / SECTOR;
        match Self::read_at(f, 1, total) {
            Ok(g) => Ok(g),
            Err(_) => {
                // The backup header sits in the last sector of the disk as it was built;
                // on a grown disk that is not the last sector any more, so try the primary's
                // idea of it too (unreadable here), then the device's last sector.
                Self::read_at(f, total - 1, total).map_err(GptError::Invalid)
            }
        }
    }

    /// Moves the end of the disk to `new_total_sectors` and extends partition `label`,
    /// which must be the last one, to the last usable sector. True if anything changed.
    pub fn grow_last_partition(&mut self, label: &str, new_total_sectors: u64) -> Result<bool, GptError> {
        if new_total_sectors < self.total_sectors {
            return Err(GptError::Shrink(new_total_sectors));
        }
        let last_end = self.partitions.iter().map(|p| p.last_lba).max().unwrap_or(0);
        let p = self.partitions.iter().find(|p| p.label == label).ok_or_else(|| GptError::NoSuchPartition(label.to_owned()))?;
        if p.last_lba != last_end {
            return Err(GptError::NotLast(label.to_owned()));
        }
        self.total_sectors = new_total_sectors;
        let new_last = self.last_usable_lba();
        // Keep the partition end on a 1 MiB boundary, as the image tool lays them out.
        let first = p.first_lba;
        let aligned_last = first + ((new_last + 1 - first) / 2048) * 2048 - 1;
        let changed = aligned_last != p.last_lba;
        if let Some(p) = self.partitions.iter_mut().find(|p| p.label == label) {
            p.last_lba = aligned_last.max(p.last_lba);
        }
        Ok(changed || new_total_sectors != last_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn layout(total: u64) -> Gpt {
        let seed = b"test-seed";
        let mut lba = 2048;
        let mut parts = Vec::new();
        for (label, t, mib) in [
            ("bios", types::BIOS_BOOT, 1),
            ("esp", types::ESP, 8),
            ("root-a", types::ROOT_X86_64, 4),
            ("verity-a", types::ROOT_VERITY_X86_64, 1),
            ("root-b", types::ROOT_X86_64, 4),
            ("verity-b", types::ROOT_VERITY_X86_64, 1),
            ("data", types::LINUX_DATA, 4),
        ] {
            let n = mib * 2048;
            parts.push(Partition {
                label: label.into(),
                type_guid: Guid::parse(t).unwrap_or(Guid([0; 16])),
                part_guid: Guid::derive(seed, label),
                first_lba: lba,
                last_lba: lba + n - 1,
                attributes: 0,
            });
            lba += n;
        }
        Gpt { disk_guid: Guid::derive(seed, "disk"), partitions: parts, total_sectors: total }
    }

    fn tool(cmd: &str, args: &[&str], path: &std::path::Path, package: &str) -> String {
        let out = Command::new(cmd).args(args).arg(path).output().unwrap_or_else(|_| panic!("{cmd} missing: apt-get install {package}"));
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    #[test]
    fn guid_text_round_trip() {
        let g = Guid::parse(types::ROOT_X86_64).unwrap_or(Guid([0; 16]));
        assert_eq!(g.0[..4], [0xe3, 0xbc, 0x68, 0x4f]);
        assert_eq!(g.to_string(), types::ROOT_X86_64);
        let d = Guid::derive(b"s", "x").to_string();
        assert_eq!(&d[14..15], "4", "{d}");
        assert_eq!(Guid::derive(b"s", "x"), Guid::derive(b"s", "x"));
        assert!(Guid::parse("nope").is_err());
    }

    #[test]
    fn sgdisk_and_sfdisk_agree_and_it_grows() {
        let path = std::env::temp_dir().join(format!("cairn-gpt-{}.img", std::process::id()));
        let total = (2048 + 23 * 2048 + 2048) as u64;
        let g = layout(total);
        {
            let mut f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).expect("create");
            f.set_len(total * 512).expect("size");
            g.write(&mut f).expect("write");
        }
        let v = tool("sgdisk", &["-v"], &path, "gdisk");
        assert!(v.contains("No problems found"), "sgdisk -v: {v}");
        let j = tool("sfdisk", &["--json"], &path, "fdisk");
        for p in &g.partitions {
            assert!(j.contains(&format!("\"name\":\"{}\"", p.label)) || j.contains(&format!("\"name\": \"{}\"", p.label)), "{j}");
            assert!(j.contains(&format!("\"start\":{},", p.first_lba)) || j.contains(&format!("\"start\": {},", p.first_lba)), "{j}");
        }
        let mut f = std::fs::OpenOptions::new().read(true).write(true).open(&path).expect("open");
        let back = Gpt::read(&mut f, total * 512).expect("read");
        assert_eq!(back, g);

        // Grow the disk, as a VPS with a bigger volume does.
        let bigger = total + 100 * 2048;
        f.set_len(bigger * 512).expect("grow file");
        let mut g2 = Gpt::read(&mut f, bigger * 512).expect("read before grow");
        assert!(g2.grow_last_partition("data", bigger).expect("grow"));
        g2.write(&mut f).expect("write grown");
        drop(f);
        let v = tool("sgdisk", &["-v"], &path, "gdisk");
        assert!(v.contains("No problems found"), "after grow: {v}");
        let data = g2.find("data").expect("data");
        assert!(data.last_lba > g.find("data").map(|d| d.last_lba).unwrap_or(0) + 99 * 2048);
        assert!(g2.grow_last_partition("esp", bigger).is_err(), "only the last partition may grow");

        // A corrupt primary header: the backup is used.
        let mut f = std::fs::OpenOptions::new().read(true).write(true).open(&path).expect("open");
        f.seek(SeekFrom::Start(512 + 30)).expect("seek");
        f.write_all(&[0xff; 4]).expect("corrupt");
        let back = Gpt::read(&mut f, bigger * 512).expect("backup");
        assert_eq!(back.partitions, g2.partitions);
        let _ = std::fs::remove_file(&path);
    }

    /// A disk with a write-back cache: writes are pending until a barrier; a power cut keeps
    /// what was barriered and any subset of the pending writes (the cache may have flushed
    /// some, in any order).
    #[derive(Default)]
    struct CachedDisk {
        durable: Vec<u8>,
        pending: Vec<(u64, Vec<u8>)>,
        pos: u64,
        /// Every write and barrier, in order.
        log: Vec<Option<(u64, Vec<u8>)>>,
    }

    impl CachedDisk {
        fn view(&self) -> Vec<u8> {
            let mut d = self.durable.clone();
            for (at, bytes) in &self.pending {
                apply(&mut d, *at, bytes);
            }
            d
        }
    }

    fn apply(d: &mut Vec<u8>, at: u64, bytes: &[u8]) {
        let at = usize::try_from(at).unwrap_or(usize::MAX);
        if d.len() < at + bytes.len() {
            d.resize(at + bytes.len(), 0);
        }
        d[at..at + bytes.len()].copy_from_slice(bytes);
    }

    impl Read for CachedDisk {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let v = self.view();
            let at = usize::try_from(self.pos).unwrap_or(usize::MAX).min(v.len());
            let n = buf.len().min(v.len() - at);
            buf[..n].copy_from_slice(&v[at..at + n]);
            self.pos += n as u64;
            Ok(n)
        }
    }
    impl Write for CachedDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.pending.push((self.pos, buf.to_vec()));
            self.log.push(Some((self.pos, buf.to_vec())));
            self.pos += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Seek for CachedDisk {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            if let SeekFrom::Start(p) = to {
                self.pos = p;
            }
            Ok(self.pos)
        }
    }
    impl Barrier for CachedDisk {
        fn barrier(&mut self) -> std::io::Result<()> {
            for (at, bytes) in std::mem::take(&mut self.pending) {
                apply(&mut self.durable, at, &bytes);
            }
            self.log.push(None);
            Ok(())
        }
    }

    /// Issue 8 item 4: a power cut anywhere in the grow, with the disk's cache persisting
    /// any subset of the writes not yet behind a barrier, must leave a table that reads as
    /// either the old or the new layout. Before the barrier between backup and primary, a
    /// cut that kept the new primary header but not the new backup left no valid table.
    #[test]
    fn a_power_cut_anywhere_in_a_grow_leaves_one_valid_table() {
        let total = 2048 + 23 * 2048 + 2048;
        let old = layout(total);
        let mut before = std::io::Cursor::new(vec![0u8; usize::try_from(total * 512).unwrap_or(0)]);
        old.write(&mut before).expect("write");
        let bigger = total + 100 * 2048;
        let mut grown = old.clone();
        assert!(grown.grow_last_partition("data", bigger).expect("grow"));

        let mut base = before.into_inner();
        base.resize(usize::try_from(bigger * 512).unwrap_or(0), 0);
        let mut disk = CachedDisk { durable: base.clone(), ..Default::default() };
        grown.write(&mut disk).expect("write grown");

        // Replay: for each run of writes between barriers, every subset of it on top of what
        // the earlier barriers made durable.
        let mut durable = base;
        let mut run: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut states = 0;
        for event in disk.log.iter().chain([None].iter()) {
            match event {
                Some(w) => run.push(w.clone()),
                None => {
                    for mask in 0u32..(1 << run.len()) {
                        let mut d = durable.clone();
                        for (i, (at, bytes)) in run.iter().enumerate() {
                            if mask & (1 << i) != 0 {
                                apply(&mut d, *at, bytes);
                            }
                        }
                        let back = Gpt::read(&mut std::io::Cursor::new(d), bigger * 512);
                        let back = back.unwrap_or_else(|e| panic!("no valid GPT after a cut (writes {mask:b} of {run:?}): {e}", run = run.iter().map(|(at, b)| (at / 512, b.len() / 512)).collect::<Vec<_>>()));
                        assert!(back.partitions == old.partitions || back.partitions == grown.partitions, "a table that is neither the old nor the new one");
                        states += 1;
                    }
                    for (at, bytes) in run.drain(..) {
                        apply(&mut durable, at, &bytes);
                    }
                }
            }
        }
        assert!(states >= 8, "only {states} cut states were tried");
        let end = Gpt::read(&mut std::io::Cursor::new(durable), bigger * 512).expect("after the whole write");
        assert_eq!(end.partitions, grown.partitions);
    }
}
