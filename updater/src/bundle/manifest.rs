//! `manifest.toml`, the first entry of a bundle: what the bundle installs and what it may
//! replace. Parsed only after its signatures are checked (see [`super::reader`]).

use serde::{Deserialize, Serialize};
use std::fmt;

pub const FORMAT: u32 = 1;

/// A version of dotted decimal numbers (`1.4.0`), compared number by number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(Vec<u64>);

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a version of dotted decimal numbers (like 1.4.0)")]
pub struct VersionError(String);

impl Version {
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let parts: Result<Vec<u64>, _> = s.split('.').map(str::parse).collect();
        match parts {
            Ok(p) if !p.is_empty() && !s.starts_with('+') => {
                let mut p = p;
                // 1.4 and 1.4.0 are the same version.
                while p.len() > 1 && p.last() == Some(&0) {
                    p.pop();
                }
                Ok(Version(p))
            }
            _ => Err(VersionError(s.to_owned())),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        let mut s = parts.join(".");
        if self.0.len() < 3 {
            s.push_str(&".0".repeat(3 - self.0.len()));
        }
        f.write_str(&s)
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Version::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The payloads a bundle carries, in the order they come in the tar stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadKind {
    /// The slot's squashfs, written to root-X.
    Root,
    /// Its dm-verity superblock and hash tree, written to verity-X.
    Verity,
    /// The kernel, written to the ESP as X/vmlinuz.
    Vmlinuz,
    /// The initramfs, written to the ESP as X/initrd.
    Initrd,
}

impl PayloadKind {
    pub const ALL: [PayloadKind; 4] = [PayloadKind::Root, PayloadKind::Verity, PayloadKind::Vmlinuz, PayloadKind::Initrd];

    /// Its entry name in the tar stream.
    pub fn entry(self) -> &'static str {
        match self {
            PayloadKind::Root => "root.squashfs",
            PayloadKind::Verity => "root.verity",
            PayloadKind::Vmlinuz => "vmlinuz",
            PayloadKind::Initrd => "initrd",
        }
    }
}

impl fmt::Display for PayloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.entry())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    pub kind: PayloadKind,
    pub size: u64,
    pub sha256: String,
}

/// The slot's dm-verity parameters: the root hash stage 1 gives dm-verity is this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotVerity {
    pub root_hash: String,
    pub salt: String,
    pub data_blocks: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// The image version this bundle installs.
    pub version: Version,
    /// The image profile it is built for (`name` in the profile); a node of another refuses it.
    pub compatible: String,
    /// The oldest running version it may replace.
    pub min_version: Version,
    /// A security release: the reboot policy may reboot at `deadline` whatever the window.
    #[serde(default)]
    pub security: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    pub verity: SlotVerity,
    pub payloads: Vec<Payload>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is not valid TOML of the bundle manifest's form")]
    Parse(#[source] toml::de::Error),
    #[error("the manifest is format {0}; this node reads format {FORMAT}")]
    Format(u32),
    #[error("the manifest lists payloads {found:?}; a bundle carries {:?} in that order", PayloadKind::ALL)]
    Payloads { found: Vec<PayloadKind> },
    #[error("the manifest's {field} is not {len} hex digits")]
    Hex { field: &'static str, len: usize },
    #[error("the manifest's deadline {0:?} is not a UTC time like 2027-01-31T00:00:00Z")]
    Deadline(String),
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl Manifest {
    /// Parses and checks the manifest's shape: the format, the payloads in their fixed order,
    /// hex digests of the right length.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let text = std::str::from_utf8(bytes).unwrap_or("\u{0}");
        let m: Manifest = toml::from_str(text).map_err(ManifestError::Parse)?;
        if m.format != FORMAT {
            return Err(ManifestError::Format(m.format));
        }
        let kinds: Vec<PayloadKind> = m.payloads.iter().map(|p| p.kind).collect();
        if kinds != PayloadKind::ALL {
            return Err(ManifestError::Payloads { found: kinds });
        }
        for p in &m.payloads {
            if !is_hex(&p.sha256, 64) {
                return Err(ManifestError::Hex { field: "payload sha256", len: 64 });
            }
        }
        if !is_hex(&m.verity.root_hash, 64) {
            return Err(ManifestError::Hex { field: "verity root_hash", len: 64 });
        }
        if !is_hex(&m.verity.salt, 64) {
            return Err(ManifestError::Hex { field: "verity salt", len: 64 });
        }
        if let Some(d) = &m.deadline {
            crate::tuf::time::parse(d).ok_or_else(|| ManifestError::Deadline(d.clone()))?;
        }
        Ok(m)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    pub fn payload(&self, kind: PayloadKind) -> Option<&Payload> {
        self.payloads.iter().find(|p| p.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_number() {
        let v = |s| Version::parse(s).expect(s);
        assert!(v("1.10.0") > v("1.9.9"));
        assert_eq!(v("1.4"), v("1.4.0"));
        assert_eq!(v("1.4").to_string(), "1.4.0");
        assert!(v("2") > v("1.99"));
        for bad in ["", "1..2", "1.a", "-1", "1.2-rc1", "+1"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }
}
