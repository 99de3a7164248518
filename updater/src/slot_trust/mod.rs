//! What stage 1 checks before it gives dm-verity a slot's root hash: the slot's signed
//! manifest on the ESP (`X/manifest.toml`, `X/manifest.sig`, written by the install engine
//! or by the image build), verified against the keyring in the slot's own initramfs.
//!
//! The keyring is the TUF root the image was built with. Keys rotate after a build, so a
//! slot also carries the roots that followed it (`X/roots/N.root.json`, copied from the
//! node's trust store at install): each must be signed by a threshold of the previous root's
//! keys and of its own, as in the client workflow. Expiry is not checked: a node that was
//! offline for a year must still boot the slot it committed.
//!
//! The ESP is FAT and unauthenticated: whoever can write it can change `slot.cfg` (the root
//! hash GRUB passes on the command line). This check makes such a change a refused slot
//! instead of a root the publisher never signed.

use crate::bundle::{BundleError, Manifest, Signed, Trust};
use crate::install::{ESP_MANIFEST, ESP_SIGNATURES};
use crate::tuf::client::{next_root, self_signed_root, MAX_ROOT, MAX_ROOT_ROTATIONS};
use crate::tuf::TufError;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where a slot keeps the roots newer than its image's, beside its kernel on the ESP.
pub const ROOTS_DIR: &str = "roots";
/// Where the initramfs (and the root file system) keeps the image's TUF root.
pub const KEYRING: &str = "etc/cairn/update/root.json";
/// A manifest or its signatures larger than this is not ours.
const MAX_FILE: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SlotTrustError {
    #[error("the keyring {} is not a valid TUF root", .0.display())]
    Keyring(PathBuf, #[source] TufError),
    #[error("{} does not follow the root before it", .0.display())]
    Chain(PathBuf, #[source] TufError),
    #[error("the slot is not signed: {} is missing", .0.display())]
    Unsigned(PathBuf),
    #[error("cannot read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("the trusted root has no targets role")]
    Trust(#[source] TufError),
    #[error("the slot's manifest is not signed by the keys this image trusts")]
    Signature(#[source] BundleError),
    #[error("the root hash on the command line ({cmdline}) is not the one the slot's signed manifest carries ({signed}): slot.cfg was changed")]
    RootHash { cmdline: String, signed: String },
}

fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, SlotTrustError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SlotTrustError::Read(path.to_owned(), e)),
    };
    let mut buf = Vec::new();
    // One byte over the limit tells "too large" from "exactly at the limit".
    f.take(MAX_FILE.max(MAX_ROOT) + 1).read_to_end(&mut buf).map_err(|e| SlotTrustError::Read(path.to_owned(), e))?;
    if buf.len() as u64 > MAX_FILE.max(MAX_ROOT) {
        return Err(SlotTrustError::Read(path.to_owned(), std::io::Error::other("larger than any manifest or root")));
    }
    Ok(Some(buf))
}

/// Checks the slot whose ESP directory is `slot_dir` against `keyring` (the bytes of the
/// initramfs's root.json) and the `root_hash` GRUB put on the command line. Returns the
/// slot's verified manifest.
pub fn check(slot_dir: &Path, keyring_path: &Path, keyring: &[u8], root_hash: &str) -> Result<Manifest, SlotTrustError> {
    let mut root = self_signed_root(keyring).map_err(|e| SlotTrustError::Keyring(keyring_path.to_owned(), e))?;
    for _ in 0..MAX_ROOT_ROTATIONS {
        let path = slot_dir.join(ROOTS_DIR).join(format!("{}.root.json", root.version + 1));
        let Some(raw) = read_bounded(&path)? else { break };
        root = next_root(&root, &raw).map_err(|e| SlotTrustError::Chain(path, e))?;
    }
    let (mpath, spath) = (slot_dir.join(ESP_MANIFEST), slot_dir.join(ESP_SIGNATURES));
    let manifest = read_bounded(&mpath)?.ok_or(SlotTrustError::Unsigned(mpath))?;
    let signatures = read_bounded(&spath)?.ok_or(SlotTrustError::Unsigned(spath))?;
    let trust = Trust::targets_of(&root).map_err(SlotTrustError::Trust)?;
    let m = Signed { manifest, signatures }.verify(&trust).map_err(SlotTrustError::Signature)?;
    if !m.verity.root_hash.eq_ignore_ascii_case(root_hash) {
        return Err(SlotTrustError::RootHash { cmdline: root_hash.to_owned(), signed: m.verity.root_hash });
    }
    Ok(m)
}

#[cfg(test)]
mod tests;
