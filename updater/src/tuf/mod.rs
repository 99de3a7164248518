//! The Update Framework: the metadata (root, timestamp, snapshot, targets), checking a
//! role's threshold of signatures, the client workflow of the specification's section 5
//! ([`client`]) and the writer the build host publishes with ([`repo`]).
//!
//! Only top-level targets are supported: a repository that delegates is read, and a target
//! that only a delegation lists is not found.

pub mod client;
pub mod metadata;
pub mod repo;
pub mod time;

use crate::keys::{self, PublicKey, Signature};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use metadata::{MetaFile, Role, Root, Snapshot, TargetFile, Targets, Timestamp};

#[derive(Debug, thiserror::Error)]
pub enum TufError {
    #[error("{role} metadata is not JSON with `signed` and `signatures`")]
    Envelope { role: &'static str, source: serde_json::Error },
    #[error("{role} metadata has {valid} valid signature(s) of the {threshold} its role needs")]
    Threshold { role: &'static str, valid: usize, threshold: u32 },
    #[error("the trusted root has no {0} role")]
    NoRole(&'static str),
    #[error("{role} metadata does not have the fields TUF requires")]
    Fields { role: &'static str, source: serde_json::Error },
    #[error("{role} metadata says it is of type {found:?}")]
    Type { role: &'static str, found: String },
    #[error("{role} metadata expired at {expires} (freeze attack or a stale repository)")]
    Expired { role: &'static str, expires: String },
    #[error("{role} metadata has an unreadable expiry {0:?}", .expires)]
    BadExpiry { role: &'static str, expires: String },
    #[error("{role} metadata is version {found}; {expected} was expected")]
    Version { role: &'static str, found: u64, expected: u64 },
    #[error("{role} metadata version {found} is older than version {trusted} seen before (rollback)")]
    Rollback { role: &'static str, found: u64, trusted: u64 },
    #[error("{what} does not match the length or SHA-256 its parent metadata gives")]
    Mismatch { what: String },
    #[error("the repository has no {0}")]
    Missing(String),
    #[error("fetching {what} failed")]
    Fetch { what: String, source: std::io::Error },
    #[error("{what} in the trusted store")]
    Store { what: String, source: std::io::Error },
}

/// `{"signed": ..., "signatures": [...]}`, as read: `signed` stays an untyped value until its
/// signatures are checked.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub signatures: Vec<Signature>,
    pub signed: serde_json::Value,
}

/// The canonical JSON (OLPC) of a value: the bytes TUF signs.
pub fn canonical<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    // Serializing a plain value into a Vec cannot fail (no I/O, string keys only).
    let _ = value.serialize(&mut ser);
    out
}

/// Checks that `raw` carries at least `role`'s threshold of valid signatures by its keys, and
/// only then returns what they cover. Nothing of `signed` is interpreted before that.
pub fn verify(raw: &[u8], name: &'static str, role: &Role, keys: &BTreeMap<String, PublicKey>) -> Result<serde_json::Value, TufError> {
    let env: Envelope = serde_json::from_slice(raw).map_err(|source| TufError::Envelope { role: name, source })?;
    let message = canonical(&env.signed);
    let valid = keys::count_valid(&message, &env.signatures, &role.keyids, keys);
    // A threshold of 0 would accept anything: treat it as 1.
    if valid < role.threshold.max(1) as usize {
        return Err(TufError::Threshold { role: name, valid, threshold: role.threshold.max(1) });
    }
    Ok(env.signed)
}

/// Signs `signed` with each key: the envelope as a repository stores it.
pub fn sign<T: Serialize>(signed: &T, keys: &[&crate::keys::SigningKey]) -> Vec<u8> {
    let value = serde_json::to_value(signed).unwrap_or_default();
    let message = canonical(&value);
    let env = Envelope { signatures: keys.iter().map(|k| k.sign(&message)).collect(), signed: value };
    let mut text = serde_json::to_vec_pretty(&env).unwrap_or_default();
    text.push(b'\n');
    text
}

#[cfg(test)]
mod tests;
