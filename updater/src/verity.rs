//! dm-verity: the hash tree and superblock, byte-compatible with `veritysetup format`
//! (format 1, sha256, 4 KiB blocks, hash tree on its own device with the superblock first).
//!
//! Digest of a block = sha256(salt || block). Each 4 KiB hash block holds 128 digests.
//! Levels are stored top first (the one-block level just below the root hash), the level of
//! data-block digests last; root hash = sha256(salt || top block). The number of levels is
//! the kernel's: the smallest n with (data_blocks - 1) >> (7 n) == 0.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::mpsc;

pub const BLOCK: u64 = 4096;
const DIGEST: usize = 32;
const PER_BLOCK: u64 = BLOCK / DIGEST as u64; // 128
const SB_SIZE: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum VerityError {
    #[error("the data is {0} bytes; dm-verity needs a whole number of 4096-byte blocks")]
    Unaligned(u64),
    #[error("the data is empty: refusing to build verity for nothing (a root that verifies but holds nothing must never boot)")]
    Empty,
    #[error("reading the data: {0}")]
    Read(std::io::Error),
    #[error("writing the hash tree: {0}")]
    Write(std::io::Error),
    #[error("not a dm-verity superblock: {0}")]
    Superblock(&'static str),
}

#[derive(Debug, Clone)]
pub struct VerityParams {
    pub salt: [u8; 32],
    pub uuid: [u8; 16],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerityInfo {
    pub root_hash: String,
    pub salt: String,
    pub data_blocks: u64,
    /// Bytes written: the superblock block plus the tree.
    pub hash_bytes: u64,
}

/// Blocks in each stored level, bottom (data digests) first.
fn level_sizes(data_blocks: u64) -> Vec<u64> {
    let mut levels = 0u32;
    while levels * 7 < 64 && (data_blocks - 1) >> (7 * levels) != 0 {
        levels += 1;
    }
    (0..levels).map(|i| data_blocks.div_ceil(PER_BLOCK.pow(i + 1))).collect()
}

/// Bytes the superblock and tree need for `data_len` bytes of data.
pub fn hash_size_for(data_len: u64) -> u64 {
    let blocks = data_len.div_ceil(BLOCK).max(1);
    BLOCK + level_sizes(blocks).iter().sum::<u64>() * BLOCK
}

fn digest(salt: &[u8], block: &[u8]) -> [u8; DIGEST] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(block);
    h.finalize().into()
}

/// Hashes `digests` (concatenated) in hash blocks of 128, zero-padded: the next level up.
fn level_above(salt: &[u8], digests: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(digests.len() / PER_BLOCK as usize + DIGEST);
    for chunk in digests.chunks(BLOCK as usize) {
        let mut block = [0u8; BLOCK as usize];
        block[..chunk.len()].copy_from_slice(chunk);
        out.extend_from_slice(&digest(salt, &block));
    }
    out
}

fn pad_to_block(mut v: Vec<u8>) -> Vec<u8> {
    let len = (v.len() as u64).div_ceil(BLOCK) * BLOCK;
    v.resize(len as usize, 0);
    v
}

pub fn build(data: &mut impl Read, data_len: u64, params: &VerityParams, hash_out: &mut impl Write) -> Result<VerityInfo, VerityError> {
    let data_blocks = blocks_of(data_len)?;
    let salt = &params.salt[..];
    // Bottom level: one digest per data block.
    let mut bottom = Vec::with_capacity(data_blocks as usize * DIGEST);
    let mut block = vec![0u8; BLOCK as usize];
    for _ in 0..data_blocks {
        data.read_exact(&mut block).map_err(VerityError::Read)?;
        bottom.extend_from_slice(&digest(salt, &block));
    }
    let (levels, root) = tree(salt, data_blocks, bottom);

    let sb = Superblock { uuid: params.uuid, data_block_size: BLOCK as u32, hash_block_size: BLOCK as u32, data_blocks, salt: salt.to_vec() };
    let mut first = sb.to_bytes();
    first.resize(BLOCK as usize, 0);
    hash_out.write_all(&first).map_err(VerityError::Write)?;
    let mut hash_bytes = BLOCK;
    for level in levels.iter().rev() {
        hash_out.write_all(level).map_err(VerityError::Write)?;
        hash_bytes += level.len() as u64;
    }
    Ok(VerityInfo { root_hash: hex::encode(root), salt: hex::encode(salt), data_blocks, hash_bytes })
}

fn blocks_of(data_len: u64) -> Result<u64, VerityError> {
    if !data_len.is_multiple_of(BLOCK) {
        return Err(VerityError::Unaligned(data_len));
    }
    match data_len / BLOCK {
        0 => Err(VerityError::Empty),
        n => Ok(n),
    }
}

/// The stored levels above the data (bottom first, each padded to whole blocks) and the
/// root hash, from the bottom level's digests.
fn tree(salt: &[u8], data_blocks: u64, bottom: Vec<u8>) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut levels: Vec<Vec<u8>> = Vec::new();
    let mut digests = bottom;
    for _ in level_sizes(data_blocks) {
        let above = level_above(salt, &digests);
        levels.push(pad_to_block(digests));
        digests = above;
    }
    // With no stored level (one data block) the root is that block's digest itself.
    let root = if levels.is_empty() { digests } else { digests[..DIGEST].to_vec() };
    (levels, root)
}

/// The root hash of the first `data_len` bytes of `file`, as `build` would give it, hashed by
/// `threads` threads at once: the digests of data blocks are independent, so each thread
/// hashes its own run of blocks with positioned reads (no shared file offset) and only the
/// small levels above are hashed by one. `tick` gets the bytes hashed as they add up, on the
/// calling thread. The installer reads a written slot back through this: it is the check
/// dm-verity makes at boot, done once before the slot may boot, at the speed of all cores.
pub fn root_hash_of(file: &File, data_len: u64, salt: &[u8; 32], threads: usize, tick: &mut dyn FnMut(u64)) -> Result<String, VerityError> {
    let data_blocks = blocks_of(data_len)?;
    let threads = u64::try_from(threads.max(1)).unwrap_or(1).min(data_blocks);
    let per_thread = data_blocks.div_ceil(threads);
    let (tx, rx) = mpsc::channel::<u64>();
    let parts = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let (first, end) = (i * per_thread, ((i + 1) * per_thread).min(data_blocks));
                let tx = tx.clone();
                scope.spawn(move || hash_blocks(file, salt, first, end, &tx))
            })
            .collect();
        drop(tx);
        // Ends when every worker has dropped its sender: finished or failed.
        for n in rx {
            tick(n);
        }
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err(VerityError::Read(std::io::Error::other("a hashing thread panicked"))))).collect::<Vec<_>>()
    });
    let mut bottom = Vec::with_capacity(data_blocks as usize * DIGEST);
    for part in parts {
        bottom.extend_from_slice(&part?);
    }
    let (_, root) = tree(salt, data_blocks, bottom);
    Ok(hex::encode(root))
}

/// Digests of data blocks `first..end` of `file`, read a MiB at a time.
fn hash_blocks(file: &File, salt: &[u8], first: u64, end: u64, progress: &mpsc::Sender<u64>) -> Result<Vec<u8>, VerityError> {
    const CHUNK: u64 = 256; // blocks: 1 MiB
    let mut out = Vec::with_capacity((end - first) as usize * DIGEST);
    let mut buf = vec![0u8; (CHUNK * BLOCK) as usize];
    let mut at = first;
    while at < end {
        let n = CHUNK.min(end - at);
        let chunk = &mut buf[..(n * BLOCK) as usize];
        file.read_exact_at(chunk, at * BLOCK).map_err(VerityError::Read)?;
        for block in chunk.chunks_exact(BLOCK as usize) {
            out.extend_from_slice(&digest(salt, block));
        }
        at += n;
        // The receiver is gone only if the caller is unwinding: nothing to report to.
        let _ = progress.send(n * BLOCK);
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub uuid: [u8; 16],
    pub data_block_size: u32,
    pub hash_block_size: u32,
    pub data_blocks: u64,
    pub salt: Vec<u8>,
}

impl Superblock {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; SB_SIZE];
        b[0..8].copy_from_slice(b"verity\0\0");
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        b[12..16].copy_from_slice(&1u32.to_le_bytes());
        b[16..32].copy_from_slice(&self.uuid);
        b[32..38].copy_from_slice(b"sha256");
        b[64..68].copy_from_slice(&self.data_block_size.to_le_bytes());
        b[68..72].copy_from_slice(&self.hash_block_size.to_le_bytes());
        b[72..80].copy_from_slice(&self.data_blocks.to_le_bytes());
        let n = self.salt.len().min(256);
        b[80..82].copy_from_slice(&(n as u16).to_le_bytes());
        b[88..88 + n].copy_from_slice(&self.salt[..n]);
        b
    }

    pub fn parse(bytes: &[u8]) -> Result<Superblock, VerityError> {
        if bytes.len() < SB_SIZE {
            return Err(VerityError::Superblock("shorter than 512 bytes"));
        }
        if &bytes[0..8] != b"verity\0\0" {
            return Err(VerityError::Superblock("no \"verity\" signature"));
        }
        let u32_at = |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        if u32_at(8) != 1 || u32_at(12) != 1 {
            return Err(VerityError::Superblock("unsupported version or hash type (need 1 and 1)"));
        }
        let alg_end = bytes[32..64].iter().position(|&c| c == 0).unwrap_or(32);
        if &bytes[32..32 + alg_end] != b"sha256" {
            return Err(VerityError::Superblock("hash algorithm is not sha256"));
        }
        let (dbs, hbs) = (u32_at(64), u32_at(68));
        if dbs != BLOCK as u32 || hbs != BLOCK as u32 {
            return Err(VerityError::Superblock("block sizes are not 4096"));
        }
        let mut data_blocks = [0u8; 8];
        data_blocks.copy_from_slice(&bytes[72..80]);
        let salt_size = u16::from_le_bytes([bytes[80], bytes[81]]) as usize;
        if salt_size > 256 {
            return Err(VerityError::Superblock("salt longer than 256 bytes"));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&bytes[16..32]);
        Ok(Superblock { uuid, data_block_size: dbs, hash_block_size: hbs, data_blocks: u64::from_le_bytes(data_blocks), salt: bytes[88..88 + salt_size].to_vec() })
    }

    /// Parameters of the kernel's "verity" target, hash tree on its own device with this
    /// superblock at offset 0 (so the tree starts at hash block 1).
    pub fn table_params(&self, data_dev: &str, hash_dev: &str, root_hash_hex: &str) -> String {
        format!(
            "1 {data_dev} {hash_dev} {} {} {} 1 sha256 {root_hash_hex} {}",
            self.data_block_size,
            self.hash_block_size,
            self.data_blocks,
            if self.salt.is_empty() { "-".to_owned() } else { hex::encode(&self.salt) }
        )
    }

    pub fn data_sectors(&self) -> u64 {
        self.data_blocks * u64::from(self.data_block_size) / 512
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn params() -> VerityParams {
        VerityParams { salt: [7u8; 32], uuid: *b"0123456789abcdef" }
    }

    fn uuid_str(u: &[u8; 16]) -> String {
        let h = hex::encode(u);
        format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }

    /// Pseudo-random but deterministic data.
    fn data(blocks: u64) -> Vec<u8> {
        let mut x: u64 = 0x9e3779b97f4a7c15 ^ blocks;
        (0..blocks * BLOCK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn matches_veritysetup_byte_for_byte() {
        let dir = std::env::temp_dir().join(format!("cairn-verity-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        for blocks in [1u64, 2, 127, 128, 129, 128 * 128 + 1] {
            let d = data(blocks);
            let (dp, hp) = (dir.join("data"), dir.join("hash"));
            std::fs::write(&dp, &d).expect("write data");
            let _ = std::fs::remove_file(&hp);
            let out = Command::new("veritysetup")
                .args(["format", "--hash=sha256", "--data-block-size=4096", "--hash-block-size=4096"])
                .arg(format!("--salt={}", hex::encode(params().salt)))
                .arg(format!("--uuid={}", uuid_str(&params().uuid)))
                .arg(&dp)
                .arg(&hp)
                .output()
                .expect("veritysetup is missing: apt-get install cryptsetup-bin");
            assert!(out.status.success(), "veritysetup: {}", String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8_lossy(&out.stdout);
            let theirs_root = text.lines().find_map(|l| l.strip_prefix("Root hash:")).map(|s| s.trim().to_owned()).unwrap_or_default();
            let mut ours = Vec::new();
            let info = build(&mut d.as_slice(), d.len() as u64, &params(), &mut ours).expect("build");
            assert_eq!(info.root_hash, theirs_root, "root hash, {blocks} blocks");
            let theirs = std::fs::read(&hp).unwrap_or_default();
            assert_eq!(ours.len(), theirs.len(), "hash file size, {blocks} blocks");
            assert!(ours == theirs, "hash file content differs, {blocks} blocks");
            assert_eq!(info.hash_bytes, hash_size_for(d.len() as u64));
            let sb = Superblock::parse(&theirs).expect("their superblock parses");
            assert_eq!(sb.data_blocks, blocks);
            assert_eq!(sb.salt, params().salt);
            let verify = Command::new("veritysetup").arg("verify").arg(&dp).arg(&hp).arg(&info.root_hash).status();
            assert!(verify.map(|s| s.success()).unwrap_or(false), "veritysetup verify, {blocks} blocks");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn root_hash_of_a_file_with_any_number_of_threads_is_build_s() {
        let path = std::env::temp_dir().join(format!("cairn-verity-threads-{}", std::process::id()));
        for blocks in [1u64, 2, 129, 600] {
            let d = data(blocks);
            std::fs::write(&path, &d).expect("write data");
            // The file is longer than the data: only data_len bytes count.
            std::fs::OpenOptions::new().append(true).open(&path).and_then(|mut f| f.write_all(&[0xff; 4096])).expect("append");
            let built = build(&mut d.as_slice(), d.len() as u64, &params(), &mut Vec::new()).expect("build").root_hash;
            for threads in [1, 2, 3, 8] {
                let file = File::open(&path).expect("open");
                let mut ticked = 0;
                let found = root_hash_of(&file, d.len() as u64, &params().salt, threads, &mut |n| ticked += n).expect("root_hash_of");
                assert_eq!(found, built, "{blocks} blocks, {threads} threads");
                assert_eq!(ticked, d.len() as u64, "progress adds up to the data, {blocks} blocks, {threads} threads");
            }
        }
        // A file shorter than the data is a read error, not a hash of what is there.
        let file = File::open(&path).expect("open");
        assert!(matches!(root_hash_of(&file, 1 << 30, &params().salt, 2, &mut |_| {}), Err(VerityError::Read(_))));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(build(&mut [0u8; 100].as_slice(), 100, &params(), &mut Vec::new()), Err(VerityError::Unaligned(100))));
        assert!(matches!(build(&mut [0u8; 0].as_slice(), 0, &params(), &mut Vec::new()), Err(VerityError::Empty)));
        assert!(Superblock::parse(&[0u8; 512]).is_err());
    }

    #[test]
    fn table_skips_the_superblock_block() {
        let sb = Superblock { uuid: [0; 16], data_block_size: 4096, hash_block_size: 4096, data_blocks: 10, salt: vec![0xab] };
        assert_eq!(sb.table_params("/dev/a", "/dev/b", "ff"), "1 /dev/a /dev/b 4096 4096 10 1 sha256 ff ab");
        assert_eq!(sb.data_sectors(), 80);
    }
}
