//! The client workflow against repositories the writer makes, and the attacks TUF exists for.

use super::client::{Client, DirFetch};
use super::repo::{Repository, RoleKeys};
use super::metadata::Metadata;
use super::*;
use crate::keys::SigningKey;

const NOW: i64 = 1_796_440_071; // 2026-12-05

fn keys(seed: u8) -> RoleKeys {
    let k = |n: u8| vec![SigningKey::from_seed([seed.wrapping_mul(16).wrapping_add(n); 32])];
    RoleKeys { root: k(1), targets: k(2), snapshot: k(3), timestamp: k(4) }
}

struct Setup {
    _tmp: TempDir,
    repo: Repository,
    store: std::path::PathBuf,
    keys: RoleKeys,
}

/// A small self-removing temporary directory (no crate needed for a test).
struct TempDir(std::path::PathBuf);
impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("cairn-tuf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("tmp");
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn setup(name: &str) -> Setup {
    let tmp = TempDir::new(name);
    let mut repo = Repository::open(&tmp.0.join("repo"));
    repo.now = NOW;
    let keys = keys(1);
    repo.init(&keys).expect("init");
    let target = tmp.0.join("bundle");
    std::fs::write(&target, b"bundle bytes").expect("write");
    repo.add_target(&keys, "cairn-1.0.0.bundle", &target, None).expect("add");
    let store = tmp.0.join("store");
    let root = std::fs::read(repo.dir.join("metadata/1.root.json")).expect("root");
    Client::<DirFetch>::init(&store, &root).expect("init store");
    Setup { repo, store, keys, _tmp: tmp }
}

fn refresh(s: &Setup, now: i64) -> Result<client::Trusted, TufError> {
    Client::new(DirFetch(s.repo.dir.clone()), &s.store, now).refresh()
}

#[test]
fn a_fresh_repository_is_read_and_its_target_listed() {
    let s = setup("fresh");
    let t = refresh(&s, NOW).expect("refresh");
    let file = t.target("cairn-1.0.0.bundle").expect("listed");
    assert_eq!(file.length, 12);
    let path = s.repo.dir.join(t.target_path("cairn-1.0.0.bundle", file));
    assert_eq!(std::fs::read(path).expect("target under its hash"), b"bundle bytes");
}

#[test]
fn expired_metadata_is_refused() {
    let s = setup("expired");
    let err = refresh(&s, NOW + 8 * 86_400).expect_err("timestamp expired after 7 days");
    assert!(matches!(err, TufError::Expired { role: "timestamp", .. }), "{err}");
}

#[test]
fn a_replayed_older_timestamp_is_refused() {
    let s = setup("replay");
    let old = std::fs::read(s.repo.dir.join("metadata/timestamp.json")).expect("ts");
    s.repo.refresh_timestamp(&s.keys).expect("new ts");
    refresh(&s, NOW).expect("sees the new timestamp");
    std::fs::write(s.repo.dir.join("metadata/timestamp.json"), old).expect("replay");
    let err = refresh(&s, NOW).expect_err("older timestamp");
    assert!(matches!(err, TufError::Rollback { role: "timestamp", .. }), "{err}");
}

#[test]
fn a_changed_byte_or_a_foreign_key_fails_the_threshold() {
    let s = setup("tamper");
    let path = s.repo.dir.join("metadata/timestamp.json");
    let mut env: Envelope = serde_json::from_slice(&std::fs::read(&path).expect("ts")).expect("json");
    env.signed["version"] = 9.into();
    std::fs::write(&path, serde_json::to_vec(&env).expect("json")).expect("tamper");
    let err = refresh(&s, NOW).expect_err("tampered");
    assert!(matches!(err, TufError::Threshold { role: "timestamp", valid: 0, .. }), "{err}");

    // Signed by a key the root does not list for the role.
    let mut other = Repository::open(&s.repo.dir);
    other.now = NOW;
    let mut foreign = keys(1);
    foreign.timestamp = vec![SigningKey::from_seed([99; 32])];
    other.refresh_timestamp(&foreign).expect("foreign ts");
    let err = refresh(&s, NOW).expect_err("foreign key");
    assert!(matches!(err, TufError::Threshold { role: "timestamp", valid: 0, .. }), "{err}");
}

#[test]
fn too_few_signatures_for_a_threshold_of_two_are_refused() {
    let tmp = TempDir::new("threshold");
    let mut repo = Repository::open(&tmp.0);
    repo.now = NOW;
    let mut k = keys(2);
    k.snapshot.push(SigningKey::from_seed([77; 32]));
    repo.init(&k).expect("init with two snapshot keys");
    let store = tmp.0.join("store");
    Client::<DirFetch>::init(&store, &std::fs::read(tmp.0.join("metadata/1.root.json")).expect("root")).expect("store");
    Client::new(DirFetch(tmp.0.clone()), &store, NOW).refresh().expect("two of two");
    // The next snapshot signed by one of the two keys only.
    k.snapshot.pop();
    let target = tmp.0.join("f");
    std::fs::write(&target, b"x").expect("f");
    repo.add_target(&k, "f", &target, None).expect("add");
    let err = Client::new(DirFetch(tmp.0.clone()), &store, NOW).refresh().expect_err("one of two");
    assert!(matches!(err, TufError::Threshold { role: "snapshot", valid: 1, threshold: 2 }), "{err}");
}

#[test]
fn a_node_that_missed_two_rotations_follows_the_chain_and_never_goes_back() {
    let s = setup("rotate");
    let k2 = keys(2);
    s.repo.rotate(&s.keys.root, &k2).expect("rotate to 2");
    let k3 = keys(3);
    s.repo.rotate(&k2.root, &k3).expect("rotate to 3");
    let t = refresh(&s, NOW).expect("follows 1 -> 2 -> 3");
    assert_eq!(t.root.version, 3);
    assert_eq!(t.root.roles["targets"].keyids, vec![k3.targets[0].keyid()]);
    // The store now holds root 3: seeding it again with root 1 does not go back.
    Client::<DirFetch>::init(&s.store, &std::fs::read(s.repo.dir.join("metadata/1.root.json")).expect("r1")).expect("init");
    let stored: Root = Root::from_signed(serde_json::from_slice::<Envelope>(&std::fs::read(s.store.join("root.json")).expect("stored")).expect("env").signed).expect("root");
    assert_eq!(stored.version, 3);
    // Each root of the chain is kept, byte for byte, for the slots an install writes.
    for v in [2, 3] {
        let name = format!("{v}.root.json");
        assert_eq!(std::fs::read(s.store.join(&name)).ok(), std::fs::read(s.repo.dir.join("metadata").join(&name)).ok(), "{name}");
    }
    let chain: Vec<u64> = client::stored_chain(&s.store).expect("chain").iter().map(|(v, _)| *v).collect();
    assert_eq!(chain, [2, 3]);
}

#[test]
fn a_new_root_not_signed_by_the_old_keys_is_refused() {
    let s = setup("badrotate");
    let k2 = keys(2);
    // "Rotated" by someone holding only the new keys.
    s.repo.rotate(&k2.root, &k2).expect("rotate");
    let err = refresh(&s, NOW).expect_err("not signed by root 1's keys");
    assert!(matches!(err, TufError::Threshold { role: "root", valid: 0, .. }), "{err}");
}
