//! The TUF client workflow (specification section 5): update the root through every new
//! version, then the timestamp, the snapshot and the targets, each checked against the
//! trusted root, for expiry, and against rollback to what was seen before. What it verified
//! it keeps in a store directory (on the node, /data/cairn/update/tuf), so the next refresh
//! starts from the newest root it trusted and never goes back.

use super::metadata::{Metadata, Root, Snapshot, TargetFile, Targets, Timestamp};
use super::{verify, TufError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Upper bounds on fetched metadata (the specification's "Z" when the length is not known).
pub const MAX_ROOT: u64 = 512 * 1024;
pub const MAX_TIMESTAMP: u64 = 16 * 1024;
pub const MAX_METADATA: u64 = 4 * 1024 * 1024;
/// Upper bound on root rotations followed in one refresh.
pub const MAX_ROOT_ROTATIONS: u64 = 256;

/// Where metadata comes from: `path` is relative to the repository (`metadata/1.root.json`).
/// `Ok(None)` means "not there" (HTTP 404); any other failure is an error.
pub trait Fetch {
    fn fetch(&mut self, path: &str, max: u64) -> std::io::Result<Option<Vec<u8>>>;
}

/// A repository in a local directory (a USB stick, a test).
#[derive(Debug)]
pub struct DirFetch(pub PathBuf);

impl Fetch for DirFetch {
    fn fetch(&mut self, path: &str, max: u64) -> std::io::Result<Option<Vec<u8>>> {
        let file = match std::fs::File::open(self.0.join(path)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        read_bounded(file, max).map(Some)
    }
}

/// Reads at most `max` bytes; more is an error, not a silent cut.
pub fn read_bounded(r: impl Read, max: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(max.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("longer than {max} bytes")));
    }
    Ok(out)
}

/// The metadata a refresh verified, the newest of each role.
#[derive(Debug, Clone)]
pub struct Trusted {
    pub root: Root,
    pub timestamp: Timestamp,
    pub snapshot: Snapshot,
    pub targets: Targets,
}

impl Trusted {
    pub fn target(&self, name: &str) -> Option<&TargetFile> {
        self.targets.targets.get(name)
    }

    /// Where a target lives in the repository: `targets/<sha256>.<name>` with consistent
    /// snapshots, else `targets/<name>`.
    pub fn target_path(&self, name: &str, file: &TargetFile) -> String {
        match (self.root.consistent_snapshot, file.sha256()) {
            (true, Some(h)) => format!("targets/{h}.{name}"),
            _ => format!("targets/{name}"),
        }
    }
}

#[derive(Debug)]
pub struct Client<F> {
    fetch: F,
    store: PathBuf,
    now: i64,
}

impl<F: Fetch> Client<F> {
    /// `store` must hold a `root.json` (the image's initial root, copied by [`Client::init`]).
    pub fn new(fetch: F, store: &Path, now: i64) -> Client<F> {
        Client { fetch, store: store.to_owned(), now }
    }

    /// Seeds an empty store with the image's root; a store that has one keeps its own,
    /// which may be newer (the node never goes back to an older root).
    pub fn init(store: &Path, initial_root: &[u8]) -> Result<(), TufError> {
        let st = |what: &str| {
            let what = format!("{what} {}", store.display());
            move |source| TufError::Store { what, source }
        };
        std::fs::create_dir_all(store).map_err(st("cannot create"))?;
        if !store.join("root.json").exists() {
            // The shipped root must at least be signed by its own root keys.
            let root = Root::from_signed(verify_self(initial_root)?)?;
            drop(root);
            persist(store, "root.json", initial_root)?;
        }
        Ok(())
    }

    /// Runs the workflow; returns the verified metadata. On any error, what was verified up to
    /// that point stays stored and nothing unverified is.
    pub fn refresh(&mut self) -> Result<Trusted, TufError> {
        let root = self.update_root()?;
        let timestamp = self.update_timestamp(&root)?;
        let snapshot = self.update_snapshot(&root, &timestamp)?;
        let targets = self.update_targets(&root, &snapshot)?;
        Ok(Trusted { root, timestamp, snapshot, targets })
    }

    fn fetch(&mut self, name: &str, max: u64) -> Result<Option<Vec<u8>>, TufError> {
        let path = format!("metadata/{name}");
        self.fetch.fetch(&path, max).map_err(|source| TufError::Fetch { what: path, source })
    }

    fn stored(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.store.join(name)).ok()
    }

    /// 5.3: follow N+1.root.json while the repository has it; each new root is signed by a
    /// threshold of the old root's keys and of its own.
    fn update_root(&mut self) -> Result<Root, TufError> {
        let raw = self.stored("root.json").ok_or_else(|| TufError::Missing("trusted root.json in the store".into()))?;
        let mut root = Root::from_signed(verify_self(&raw)?)?;
        let first = root.clone();
        for _ in 0..MAX_ROOT_ROTATIONS {
            let next = root.version + 1;
            let Some(raw) = self.fetch(&format!("{next}.root.json"), MAX_ROOT)? else { break };
            root = next_root(&root, &raw)?;
            // Each version is kept as well: an installed slot carries the chain from its
            // image's root to the one that signed it, for stage 1 (`crate::slot_trust`).
            persist(&self.store, &format!("{next}.root.json"), &raw)?;
            persist(&self.store, "root.json", &raw)?;
        }
        root.check_expiry(self.now)?;
        // 5.3.11: new timestamp or snapshot keys make what was stored under the old ones
        // meaningless for rollback checks (fast-forward recovery).
        for role in ["timestamp", "snapshot"] {
            if first.roles.get(role) != root.roles.get(role) {
                let _ = std::fs::remove_file(self.store.join("timestamp.json"));
                let _ = std::fs::remove_file(self.store.join("snapshot.json"));
            }
        }
        Ok(root)
    }

    /// The stored metadata of a role, if it still verifies under `root`.
    fn trusted<M: Metadata>(&self, root: &Root) -> Option<M> {
        let raw = self.stored(&format!("{}.json", M::ROLE))?;
        let value = verify(&raw, M::ROLE, root.role(M::ROLE).ok()?, &root.keys).ok()?;
        M::from_signed(value).ok()
    }

    /// 5.4
    fn update_timestamp(&mut self, root: &Root) -> Result<Timestamp, TufError> {
        let raw = self.fetch("timestamp.json", MAX_TIMESTAMP)?.ok_or_else(|| TufError::Missing("metadata/timestamp.json".into()))?;
        let new = Timestamp::from_signed(verify(&raw, "timestamp", root.role("timestamp")?, &root.keys)?)?;
        let snap = |t: &Timestamp| t.meta.get("snapshot.json").map(|m| m.version);
        let new_snap = snap(&new).ok_or_else(|| TufError::Missing("snapshot.json in the timestamp".into()))?;
        if let Some(old) = self.trusted::<Timestamp>(root) {
            if new.version < old.version {
                return Err(TufError::Rollback { role: "timestamp", found: new.version, trusted: old.version });
            }
            if let Some(old_snap) = snap(&old).filter(|&v| new_snap < v) {
                return Err(TufError::Rollback { role: "snapshot", found: new_snap, trusted: old_snap });
            }
        }
        new.check_expiry(self.now)?;
        persist(&self.store, "timestamp.json", &raw)?;
        Ok(new)
    }

    /// 5.5
    fn update_snapshot(&mut self, root: &Root, timestamp: &Timestamp) -> Result<Snapshot, TufError> {
        let meta = timestamp.meta.get("snapshot.json").ok_or_else(|| TufError::Missing("snapshot.json in the timestamp".into()))?;
        let name = root.file_name("snapshot", meta.version);
        let raw = self.fetch(&name, meta.length.unwrap_or(MAX_METADATA))?.ok_or_else(|| TufError::Missing(format!("metadata/{name}")))?;
        meta.check(&name, &raw)?;
        let new = Snapshot::from_signed(verify(&raw, "snapshot", root.role("snapshot")?, &root.keys)?)?;
        if new.version != meta.version {
            return Err(TufError::Version { role: "snapshot", found: new.version, expected: meta.version });
        }
        if let Some(old) = self.trusted::<Snapshot>(root) {
            for (file, was) in &old.meta {
                match new.meta.get(file) {
                    Some(now) if now.version >= was.version => {}
                    Some(now) => return Err(TufError::Rollback { role: "targets", found: now.version, trusted: was.version }),
                    None => return Err(TufError::Missing(format!("{file} in the new snapshot"))),
                }
            }
        }
        new.check_expiry(self.now)?;
        persist(&self.store, "snapshot.json", &raw)?;
        Ok(new)
    }

    /// 5.6
    fn update_targets(&mut self, root: &Root, snapshot: &Snapshot) -> Result<Targets, TufError> {
        let meta = snapshot.meta.get("targets.json").ok_or_else(|| TufError::Missing("targets.json in the snapshot".into()))?;
        let name = root.file_name("targets", meta.version);
        let raw = self.fetch(&name, meta.length.unwrap_or(MAX_METADATA))?.ok_or_else(|| TufError::Missing(format!("metadata/{name}")))?;
        meta.check(&name, &raw)?;
        let new = Targets::from_signed(verify(&raw, "targets", root.role("targets")?, &root.keys)?)?;
        if new.version != meta.version {
            return Err(TufError::Version { role: "targets", found: new.version, expected: meta.version });
        }
        new.check_expiry(self.now)?;
        persist(&self.store, "targets.json", &raw)?;
        Ok(new)
    }
}

/// 5.3.4-5.3.5: the root that follows `current`, signed by a threshold of `current`'s root
/// keys and of its own, with the version after `current`'s. Expiry is the caller's to check:
/// the client checks it after the chain, stage 1 never (a node offline for a year must boot).
pub fn next_root(current: &Root, raw: &[u8]) -> Result<Root, TufError> {
    let expected = current.version + 1;
    verify(raw, "root", current.role("root")?, &current.keys)?;
    let new = Root::from_signed(verify_self(raw)?)?;
    if new.version != expected {
        return Err(TufError::Version { role: "root", found: new.version, expected });
    }
    Ok(new)
}

/// A root signed by its own root role: how the shipped root is first read. It is trusted
/// only because the image (or a trusted root, see [`next_root`]) vouches for it.
pub fn self_signed_root(raw: &[u8]) -> Result<Root, TufError> {
    Root::from_signed(verify_self(raw)?)
}

/// A root checked against its own root role.
fn verify_self(raw: &[u8]) -> Result<serde_json::Value, TufError> {
    // The role and keys are read from the unverified bytes only to check the bytes with them;
    // a root is trusted only once a trusted root (or the image) vouches for it as well.
    let env: super::Envelope = serde_json::from_slice(raw).map_err(|source| TufError::Envelope { role: "root", source })?;
    let root = Root::from_signed(env.signed)?;
    verify(raw, "root", root.role("root")?, &root.keys)
}

/// Writes `name` in the store: a temporary file, fsync, rename, fsync of the directory, so a
/// power cut leaves the old or the new file, never a torn one.
pub fn persist(store: &Path, name: &str, bytes: &[u8]) -> Result<(), TufError> {
    let st = |what: String| move |source| TufError::Store { what, source };
    let tmp = store.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(st(format!("cannot create {}", tmp.display())))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(st(format!("cannot write {}", tmp.display())))?;
    std::fs::rename(&tmp, store.join(name)).map_err(st(format!("cannot rename {}", tmp.display())))?;
    std::fs::File::open(store).and_then(|d| d.sync_all()).map_err(st(format!("cannot sync {}", store.display())))
}

/// The newest root a store holds (verified when it was stored; checked against itself here
/// so a damaged file is an error, not trust).
pub fn stored_root(store: &Path) -> Result<Root, TufError> {
    let path = store.join("root.json");
    let raw = std::fs::read(&path).map_err(|source| TufError::Store { what: format!("cannot read {}", path.display()), source })?;
    Root::from_signed(verify_self(&raw)?)
}

/// The roots a store kept as it followed rotations (`N.root.json`, N >= 2), oldest first.
pub fn stored_chain(store: &Path) -> Result<Vec<(u64, Vec<u8>)>, TufError> {
    let st = |what: String| move |source| TufError::Store { what, source };
    let mut chain = Vec::new();
    for entry in std::fs::read_dir(store).map_err(st(format!("cannot list {}", store.display())))? {
        let entry = entry.map_err(st(format!("cannot list {}", store.display())))?;
        let name = entry.file_name();
        let Some(version) = name.to_str().and_then(|n| n.strip_suffix(".root.json")).and_then(|v| v.parse::<u64>().ok()) else { continue };
        let raw = std::fs::read(entry.path()).map_err(st(format!("cannot read {}", entry.path().display())))?;
        chain.push((version, raw));
    }
    chain.sort_by_key(|(v, _)| *v);
    Ok(chain)
}
