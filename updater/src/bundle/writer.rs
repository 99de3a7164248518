//! Writing a bundle on the build host: the tar stream the reader expects, with fixed
//! headers (mode 0644, owner 0, time 0) so the same inputs give the same bytes. The caller
//! compresses it (cairn-image wraps the output in a zstd encoder).

use super::manifest::{Manifest, PayloadKind};
use super::reader::{Signatures, MANIFEST, SIGNATURES};
use crate::keys::SigningKey;
use std::io::{self, Read, Write};

/// `manifest.sig` for the manifest's exact bytes, signed by each key.
pub fn sign(manifest: &[u8], keys: &[&SigningKey]) -> Vec<u8> {
    let sigs = Signatures { signatures: keys.iter().map(|k| k.sign(manifest)).collect() };
    let mut out = serde_json::to_vec_pretty(&sigs).unwrap_or_default();
    out.push(b'\n');
    out
}

fn header(name: &str, size: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

/// Writes the tar stream: manifest, signatures, then each payload read from `open(kind)`
/// (which must give exactly the manifest's size).
pub fn write<W: Write>(
    out: W,
    manifest: &Manifest,
    manifest_bytes: &[u8],
    signatures: &[u8],
    mut open: impl FnMut(PayloadKind) -> io::Result<Box<dyn Read>>,
) -> io::Result<W> {
    let mut tar = tar::Builder::new(out);
    tar.append(&header(MANIFEST, manifest_bytes.len() as u64)?, manifest_bytes)?;
    tar.append(&header(SIGNATURES, signatures.len() as u64)?, signatures)?;
    for p in &manifest.payloads {
        let data = open(p.kind)?;
        tar.append(&header(p.kind.entry(), p.size)?, data.take(p.size))?;
    }
    tar.into_inner()
}
