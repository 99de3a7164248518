//! Reading the written slot back from the device before it may boot: a disk that lies, or
//! drops writes, is caught here rather than by dm-verity at the next boot.
//!
//! The root image is checked by its dm-verity root hash, not its SHA-256: that is the hash
//! the node trusts at boot, the signed manifest carries it, and its data blocks hash
//! independently, so every core takes a share ([`verity::root_hash_of`]). The stream was
//! already checked against the signed SHA-256 as it was written, so only a mismatch costs
//! a second pass, which tells a disk that lies from a manifest whose root hash does not
//! belong to its root image. The small verity tree is checked by its SHA-256.

use super::{io, InstallError};
use crate::bundle::manifest::ManifestError;
use crate::bundle::{BundleError, Manifest, Payload, PayloadKind};
use crate::verity::{self, VerityError};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Checks root-X (`root`) and verity-X (`tree`) as read back from their devices; `tick`
/// gets the bytes read as they add up.
pub(super) fn check(manifest: &Manifest, root: &Path, tree: &Path, tick: &mut dyn FnMut(u64)) -> Result<(), InstallError> {
    if let Some(p) = manifest.payload(PayloadKind::Root) {
        check_root(manifest, p, root, tick)?;
    }
    if let Some(p) = manifest.payload(PayloadKind::Verity) {
        if sha256(tree, p.size, tick)? != p.sha256 {
            return Err(InstallError::ReadBack { kind: PayloadKind::Verity, path: tree.to_owned() });
        }
    }
    Ok(())
}

fn check_root(manifest: &Manifest, p: &Payload, path: &Path, tick: &mut dyn FnMut(u64)) -> Result<(), InstallError> {
    let mut salt = [0u8; 32];
    // The manifest's parser checked it is 64 hex digits.
    hex::decode_to_slice(&manifest.verity.salt, &mut salt).map_err(|_| InstallError::Bundle(BundleError::Manifest(ManifestError::Hex { field: "verity salt", len: 64 })))?;
    let f = uncached(path)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    let found = verity::root_hash_of(&f, p.size, &salt, threads, tick).map_err(|e| match e {
        VerityError::Read(source) => InstallError::Io { what: "cannot read back", path: path.to_owned(), source },
        other => InstallError::Io { what: "cannot hash", path: path.to_owned(), source: std::io::Error::other(other) },
    })?;
    if found == manifest.verity.root_hash {
        return Ok(());
    }
    // Which is wrong: the disk, or the manifest's root hash? The signed SHA-256 tells.
    if sha256(path, p.size, &mut |_| {})? == p.sha256 {
        Err(InstallError::Verity { found, signed: manifest.verity.root_hash.clone() })
    } else {
        Err(InstallError::ReadBack { kind: PayloadKind::Root, path: path.to_owned() })
    }
}

/// Opens `path` with its page cache dropped, so what is read comes from the device (the
/// data was synced when it was written).
fn uncached(path: &Path) -> Result<File, InstallError> {
    let f = File::open(path).map_err(io("cannot open", path))?;
    // Advice only: where it is not honoured the read is from the cache, never wrong.
    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
    Ok(f)
}

/// SHA-256 of the first `len` bytes of `path`, read from the device.
fn sha256(path: &Path, len: u64, tick: &mut dyn FnMut(u64)) -> Result<String, InstallError> {
    let mut f = uncached(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        f.read_exact(&mut buf[..want]).map_err(io("cannot read back", path))?;
        h.update(&buf[..want]);
        left -= want as u64;
        tick(want as u64);
    }
    Ok(hex::encode(h.finalize()))
}
