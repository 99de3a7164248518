//! The four top-level roles' metadata, typed. Fields Cairn does not use are kept by the
//! untyped `signed` value the signatures cover, never by these types.

use super::{time, TufError};
use crate::keys::PublicKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SPEC_VERSION: &str = "1.0.31";

/// Who may sign a role, and how many of them must.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub keyids: Vec<String>,
    pub threshold: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Root {
    #[serde(rename = "_type")]
    pub kind: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    #[serde(default)]
    pub consistent_snapshot: bool,
    pub keys: BTreeMap<String, PublicKey>,
    pub roles: BTreeMap<String, Role>,
}

/// What the timestamp says of snapshot.json, and the snapshot of each targets file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timestamp {
    #[serde(rename = "_type")]
    pub kind: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    pub meta: BTreeMap<String, MetaFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "_type")]
    pub kind: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    pub meta: BTreeMap<String, MetaFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Targets {
    #[serde(rename = "_type")]
    pub kind: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    pub targets: BTreeMap<String, TargetFile>,
}

/// What every role's metadata has in common.
pub trait Metadata: DeserializeOwned {
    const ROLE: &'static str;
    fn kind(&self) -> &str;
    fn version(&self) -> u64;
    fn expires(&self) -> &str;

    /// The typed form of a value whose signatures were checked.
    fn from_signed(value: serde_json::Value) -> Result<Self, TufError> {
        let m: Self = serde_json::from_value(value).map_err(|source| TufError::Fields { role: Self::ROLE, source })?;
        if m.kind() != Self::ROLE {
            return Err(TufError::Type { role: Self::ROLE, found: m.kind().to_owned() });
        }
        Ok(m)
    }

    /// Refuses metadata whose expiry is at or before `now` (seconds since the epoch).
    fn check_expiry(&self, now: i64) -> Result<(), TufError> {
        let bad = || TufError::BadExpiry { role: Self::ROLE, expires: self.expires().to_owned() };
        let at = time::parse(self.expires()).ok_or_else(bad)?;
        if at <= now {
            return Err(TufError::Expired { role: Self::ROLE, expires: self.expires().to_owned() });
        }
        Ok(())
    }
}

macro_rules! metadata {
    ($t:ty, $role:literal) => {
        impl Metadata for $t {
            const ROLE: &'static str = $role;
            fn kind(&self) -> &str {
                &self.kind
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn expires(&self) -> &str {
                &self.expires
            }
        }
    };
}
metadata!(Root, "root");
metadata!(Timestamp, "timestamp");
metadata!(Snapshot, "snapshot");
metadata!(Targets, "targets");

impl Root {
    pub fn role(&self, name: &'static str) -> Result<&Role, TufError> {
        self.roles.get(name).ok_or(TufError::NoRole(name))
    }

    /// The metadata file name of version `version` of a role, as the repository stores it.
    pub fn file_name(&self, role: &str, version: u64) -> String {
        if self.consistent_snapshot {
            format!("{version}.{role}.json")
        } else {
            format!("{role}.json")
        }
    }
}

impl MetaFile {
    /// Checks fetched bytes against the length and hashes their parent gives, where it gives
    /// them (TUF makes both optional for metadata).
    pub fn check(&self, what: &str, bytes: &[u8]) -> Result<(), TufError> {
        let bad = || TufError::Mismatch { what: what.to_owned() };
        if self.length.is_some_and(|l| l != bytes.len() as u64) {
            return Err(bad());
        }
        if let Some(h) = self.hashes.as_ref().and_then(|h| h.get("sha256")) {
            use sha2::Digest;
            if !h.eq_ignore_ascii_case(&hex::encode(sha2::Sha256::digest(bytes))) {
                return Err(bad());
            }
        }
        Ok(())
    }
}

impl TargetFile {
    /// The target's SHA-256 (hex); a target without one cannot be checked and is refused.
    pub fn sha256(&self) -> Option<&str> {
        self.hashes.get("sha256").map(String::as_str)
    }
}
