//! Writing a TUF repository on the build host: the directory layout python-tuf uses
//! (`metadata/N.root.json`, `metadata/N.snapshot.json`, `metadata/N.targets.json`,
//! `metadata/timestamp.json`, `targets/<sha256>.<name>`, consistent snapshots), so any static
//! HTTP server serves it and standard TUF tools read it.

use super::metadata::{MetaFile, Metadata, Role, Root, Snapshot, TargetFile, Targets, Timestamp, SPEC_VERSION};
use super::{sign, time, TufError};
use crate::keys::SigningKey;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// How long each role's metadata stays valid after it is signed, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub root: i64,
    pub targets: i64,
    pub snapshot: i64,
    pub timestamp: i64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        const DAY: i64 = 86_400;
        // The timestamp is re-signed by `publish --refresh` (a cron job on the publisher).
        Lifetimes { root: 365 * DAY, targets: 90 * DAY, snapshot: 30 * DAY, timestamp: 7 * DAY }
    }
}

/// The private keys of each role (the build host's, never the node's).
#[derive(Debug)]
pub struct RoleKeys {
    pub root: Vec<SigningKey>,
    pub targets: Vec<SigningKey>,
    pub snapshot: Vec<SigningKey>,
    pub timestamp: Vec<SigningKey>,
}

impl RoleKeys {
    fn of(&self, role: &str) -> &[SigningKey] {
        match role {
            "root" => &self.root,
            "targets" => &self.targets,
            "snapshot" => &self.snapshot,
            _ => &self.timestamp,
        }
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> TufError {
    move |source| TufError::Store { what, source }
}

fn refs(keys: &[SigningKey]) -> Vec<&SigningKey> {
    keys.iter().collect()
}

/// A root listing each role's keys with a threshold of all of them.
pub fn root_for(keys: &RoleKeys, version: u64, expires: i64) -> Root {
    let mut all = BTreeMap::new();
    let mut roles = BTreeMap::new();
    for role in ROLES {
        let ks = keys.of(role);
        for k in ks {
            all.insert(k.keyid(), k.public());
        }
        let threshold = u32::try_from(ks.len()).unwrap_or(u32::MAX);
        roles.insert(role.to_owned(), Role { keyids: ks.iter().map(SigningKey::keyid).collect(), threshold });
    }
    Root {
        kind: "root".into(),
        spec_version: SPEC_VERSION.into(),
        version,
        expires: time::format(expires),
        consistent_snapshot: true,
        keys: all,
        roles,
    }
}

#[derive(Debug)]
pub struct Repository {
    pub dir: PathBuf,
    pub lifetimes: Lifetimes,
    pub now: i64,
}

impl Repository {
    pub fn open(dir: &Path) -> Repository {
        Repository { dir: dir.to_owned(), lifetimes: Lifetimes::default(), now: time::now() }
    }

    fn metadata(&self) -> PathBuf {
        self.dir.join("metadata")
    }

    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), TufError> {
        std::fs::create_dir_all(self.metadata()).map_err(io(format!("cannot create {}", self.metadata().display())))?;
        super::client::persist(&self.metadata(), name, bytes)
    }

    fn read<M: Metadata>(&self, name: &str) -> Result<M, TufError> {
        let path = self.metadata().join(name);
        let raw = std::fs::read(&path).map_err(io(format!("cannot read {}", path.display())))?;
        let env: super::Envelope = serde_json::from_slice(&raw).map_err(|source| TufError::Envelope { role: M::ROLE, source })?;
        M::from_signed(env.signed)
    }

    /// The newest root in the repository (the highest N of N.root.json).
    pub fn root(&self) -> Result<Root, TufError> {
        let mut v = 1;
        while self.metadata().join(format!("{}.root.json", v + 1)).exists() {
            v += 1;
        }
        self.read(&format!("{v}.root.json"))
    }

    /// A new repository: root version 1, no targets.
    pub fn init(&self, keys: &RoleKeys) -> Result<Root, TufError> {
        let root = root_for(keys, 1, self.now + self.lifetimes.root);
        let signers: Vec<&SigningKey> = keys.root.iter().collect();
        let raw = sign(&root, &signers);
        self.write("1.root.json", &raw)?;
        self.write("root.json", &raw)?;
        self.commit_targets(keys, BTreeMap::new(), 1)?;
        Ok(root)
    }

    /// A new root, version N+1, signed by the old root keys and the new ones (`old_root` and
    /// `keys.root`), so nodes that trust version N follow it.
    pub fn rotate(&self, old_root: &[SigningKey], keys: &RoleKeys) -> Result<Root, TufError> {
        let current = self.root()?;
        let root = root_for(keys, current.version + 1, self.now + self.lifetimes.root);
        let mut signers: Vec<&SigningKey> = old_root.iter().collect();
        for k in &keys.root {
            if !signers.iter().any(|s| s.keyid() == k.keyid()) {
                signers.push(k);
            }
        }
        let raw = sign(&root, &signers);
        self.write(&format!("{}.root.json", root.version), &raw)?;
        self.write("root.json", &raw)?;
        // Metadata under new role keys is re-signed with them.
        let targets = self.current_targets()?;
        self.commit_targets(keys, targets.targets, targets.version + 1)?;
        Ok(root)
    }

    fn current_targets(&self) -> Result<Targets, TufError> {
        let snapshot: Snapshot = self.read(&self.current_snapshot_name()?)?;
        let v = snapshot.meta.get("targets.json").map(|m| m.version).unwrap_or(1);
        self.read(&format!("{v}.targets.json"))
    }

    fn current_snapshot_name(&self) -> Result<String, TufError> {
        let ts: Timestamp = self.read("timestamp.json")?;
        let v = ts.meta.get("snapshot.json").map(|m| m.version).unwrap_or(1);
        Ok(format!("{v}.snapshot.json"))
    }

    /// Copies `file` into targets/ under its hash and lists it (with `custom`) in a new
    /// targets, snapshot and timestamp.
    pub fn add_target(&self, keys: &RoleKeys, name: &str, file: &Path, custom: Option<serde_json::Value>) -> Result<TargetFile, TufError> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(TufError::Missing(format!("a plain target name (got {name:?})")));
        }
        let bytes = std::fs::read(file).map_err(io(format!("cannot read {}", file.display())))?;
        use sha2::Digest;
        let sha = hex::encode(sha2::Sha256::digest(&bytes));
        let dir = self.dir.join("targets");
        std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        super::client::persist(&dir, &format!("{sha}.{name}"), &bytes)?;
        let target = TargetFile { length: bytes.len() as u64, hashes: [("sha256".to_owned(), sha)].into(), custom };
        let current = self.current_targets()?;
        let mut targets = current.targets;
        targets.insert(name.to_owned(), target.clone());
        self.commit_targets(keys, targets, current.version + 1)?;
        Ok(target)
    }

    /// Re-signs the timestamp with a new expiry (run periodically by the publisher).
    pub fn refresh_timestamp(&self, keys: &RoleKeys) -> Result<(), TufError> {
        let old: Timestamp = self.read("timestamp.json")?;
        let ts = Timestamp { version: old.version + 1, expires: time::format(self.now + self.lifetimes.timestamp), ..old };
        self.write("timestamp.json", &sign(&ts, &refs(&keys.timestamp)))
    }

    /// Writes targets version `version`, then a snapshot and a timestamp that point at it.
    fn commit_targets(&self, keys: &RoleKeys, targets: BTreeMap<String, TargetFile>, version: u64) -> Result<(), TufError> {
        let t = Targets { kind: "targets".into(), spec_version: SPEC_VERSION.into(), version, expires: time::format(self.now + self.lifetimes.targets), targets };
        self.write(&format!("{version}.targets.json"), &sign(&t, &refs(&keys.targets)))?;
        let snap_version = self.read::<Timestamp>("timestamp.json").ok().and_then(|ts| ts.meta.get("snapshot.json").map(|m| m.version + 1)).unwrap_or(1);
        let s = Snapshot {
            kind: "snapshot".into(),
            spec_version: SPEC_VERSION.into(),
            version: snap_version,
            expires: time::format(self.now + self.lifetimes.snapshot),
            meta: [("targets.json".to_owned(), MetaFile { version, length: None, hashes: None })].into(),
        };
        let snap_raw = sign(&s, &refs(&keys.snapshot));
        self.write(&format!("{snap_version}.snapshot.json"), &snap_raw)?;
        let ts_version = self.read::<Timestamp>("timestamp.json").map(|t| t.version + 1).unwrap_or(1);
        use sha2::Digest;
        let ts = Timestamp {
            kind: "timestamp".into(),
            spec_version: SPEC_VERSION.into(),
            version: ts_version,
            expires: time::format(self.now + self.lifetimes.timestamp),
            meta: [(
                "snapshot.json".to_owned(),
                MetaFile { version: snap_version, length: Some(snap_raw.len() as u64), hashes: Some([("sha256".to_owned(), hex::encode(sha2::Sha256::digest(&snap_raw)))].into()) },
            )]
            .into(),
        };
        // The timestamp last: until it is written, clients see the previous consistent set.
        self.write("timestamp.json", &sign(&ts, &refs(&keys.timestamp)))
    }
}
