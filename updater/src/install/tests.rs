//! The engine against files standing in for root-b, verity-b and a mounted ESP: a good
//! bundle lands and flips the boot order; every bad one leaves the running slot and the
//! boot order as they were.

use super::*;
use crate::bundle::{writer, Payload, SlotVerity, Version};
use crate::grubenv::GrubEnv;
use crate::keys::SigningKey;
use crate::tuf::Role;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

struct Disk {
    dir: PathBuf,
    target: SlotTarget,
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const ROOT_BYTES: u64 = 64 * 4096;
const OLD_A: &[u8] = b"slot a's kernel";

fn disk(name: &str) -> Disk {
    let dir = std::env::temp_dir().join(format!("cairn-install-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let esp = dir.join("esp");
    for d in ["grub", "a", "b"] {
        std::fs::create_dir_all(esp.join(d)).expect("esp");
    }
    std::fs::write(esp.join("a/vmlinuz"), OLD_A).expect("a");
    std::fs::write(esp.join("b/vmlinuz"), b"slot b's old kernel").expect("b");
    let mut env = GrubEnv::new_ab();
    env.mark_good(Slot::A);
    grubenv::write_pair(&esp.join("grub"), &env).expect("grubenv");
    for (name, len) in [("root-b", ROOT_BYTES), ("verity-b", 16 * 4096)] {
        std::fs::write(dir.join(name), vec![0xEE; usize::try_from(len).expect("len")]).expect("part");
    }
    let target = SlotTarget { slot: Slot::B, root: dir.join("root-b"), verity: dir.join("verity-b"), esp, roots: vec![(2, b"root two".to_vec()), (3, b"root three".to_vec())] };
    Disk { dir, target }
}

struct Release {
    payloads: BTreeMap<PayloadKind, Vec<u8>>,
    manifest: Manifest,
}

fn release() -> Release {
    let root: Vec<u8> = (0..8 * 4096).map(|i: u32| u8::try_from(i % 249).unwrap_or(0)).collect();
    let salt = [7u8; 32];
    let mut tree = Vec::new();
    let info = crate::verity::build(&mut &root[..], root.len() as u64, &crate::verity::VerityParams { salt, uuid: [1; 16] }, &mut tree).expect("verity");
    let payloads: BTreeMap<_, _> =
        [(PayloadKind::Root, root), (PayloadKind::Verity, tree), (PayloadKind::Vmlinuz, b"new kernel".to_vec()), (PayloadKind::Initrd, b"new initrd".to_vec())].into();
    let manifest = Manifest {
        format: 1,
        version: Version::parse("1.1.0").expect("v"),
        compatible: "default".into(),
        min_version: Version::parse("0").expect("v"),
        security: false,
        deadline: None,
        verity: SlotVerity { root_hash: info.root_hash, salt: info.salt, data_blocks: info.data_blocks },
        payloads: PayloadKind::ALL.iter().map(|&kind| Payload { kind, size: payloads[&kind].len() as u64, sha256: hex::encode(Sha256::digest(&payloads[&kind])) }).collect(),
    };
    Release { payloads, manifest }
}

fn key() -> SigningKey {
    SigningKey::from_seed([3; 32])
}

fn trust() -> Trust {
    let k = key();
    Trust { role: Role { keyids: vec![k.keyid()], threshold: 1 }, keys: [(k.keyid(), k.public())].into() }
}

fn bundle(r: &Release) -> Vec<u8> {
    let text = r.manifest.to_toml();
    let sigs = writer::sign(text.as_bytes(), &[&key()]);
    let payloads = r.payloads.clone();
    let tar = writer::write(Vec::new(), &r.manifest, text.as_bytes(), &sigs, |k| Ok(Box::new(std::io::Cursor::new(payloads[&k].clone())))).expect("tar");
    ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest)
}

fn policy() -> Policy {
    Policy { compatible: "default".into(), running: Version::parse("1.0.0").expect("v"), minimum: None, room: [(PayloadKind::Root, ROOT_BYTES)].into(), failed: None }
}

fn env(d: &Disk) -> GrubEnv {
    grubenv::read_pair(&d.target.esp.join("grub")).env
}

/// The running slot and the boot order are as they were.
#[track_caller]
fn untouched(d: &Disk) {
    assert_eq!(std::fs::read(d.target.esp.join("a/vmlinuz")).expect("a"), OLD_A);
    assert_eq!(env(d).order(), [Slot::A, Slot::B]);
    assert_eq!(env(d).next_boot(), Some(Slot::A));
}

#[test]
fn a_good_bundle_lands_in_the_other_slot_and_is_booted_next_on_trial() {
    let (d, r) = (disk("good"), release());
    let mut seen = Vec::new();
    let m = install(&bundle(&r)[..], &trust(), &policy(), Slot::A, &d.target, &mut |p| seen.push(p)).expect("install");
    assert_eq!(m, r.manifest);
    let root = std::fs::read(&d.target.root).expect("root-b");
    assert_eq!(&root[..r.payloads[&PayloadKind::Root].len()], &r.payloads[&PayloadKind::Root][..]);
    assert_eq!(std::fs::read(d.target.esp.join("b/vmlinuz")).expect("kernel"), b"new kernel");
    assert_eq!(std::fs::read_to_string(d.target.esp.join("b/slot.cfg")).expect("cfg"), format!("set cairn_roothash={}\n", r.manifest.verity.root_hash));
    // The signed manifest kept on the ESP verifies again (stage 1 does this).
    let signed = crate::bundle::Signed {
        manifest: std::fs::read(d.target.esp.join("b").join(ESP_MANIFEST)).expect("m"),
        signatures: std::fs::read(d.target.esp.join("b").join(ESP_SIGNATURES)).expect("s"),
    };
    assert_eq!(signed.verify(&trust()).expect("verifies"), r.manifest);
    // The chain of newer roots goes beside it, for stage 1 to follow a key rotation.
    assert_eq!(std::fs::read(d.target.esp.join("b/roots/3.root.json")).expect("root 3"), b"root three");
    let e = env(&d);
    assert_eq!(e.order(), [Slot::B, Slot::A]);
    assert!(e.is_on_trial(Slot::B) && e.is_ok(Slot::B));
    assert_eq!(std::fs::read(d.target.esp.join("a/vmlinuz")).expect("a"), OLD_A);
    // Progress: writing, reading back, committing, done, in that order, ending complete.
    let stages: Vec<Stage> = seen.iter().map(|p| p.stage).collect();
    assert!(stages.windows(2).all(|w| w[0] as u8 <= w[1] as u8), "{stages:?}");
    assert_eq!(seen.last().map(|p| (p.stage, p.done == p.total)), Some((Stage::Done, true)));
    // The first event comes once the slot is marked bad, before a byte of it is written.
    assert_eq!(seen.first().map(|p| (p.stage, p.done)), Some((Stage::Writing, 0)));
    // Each commit step is announced before it starts, in the order that keeps a power cut
    // harmless: the grubenv flip last.
    let steps: Vec<Step> = seen.iter().filter_map(|p| p.step).collect();
    assert_eq!(steps, [Step::Kernel, Step::Initrd, Step::SlotCfg, Step::Roots, Step::Manifest, Step::Flip]);
}

#[test]
fn a_tampered_payload_leaves_the_target_marked_bad_and_the_running_slot_untouched() {
    let (d, mut r) = (disk("tampered"), release());
    // Flip a byte of the kernel in the bundle while the manifest still signs the old one.
    r.payloads.get_mut(&PayloadKind::Vmlinuz).expect("k")[0] ^= 1;
    let tampered_tar = {
        let text = r.manifest.to_toml();
        let sigs = writer::sign(text.as_bytes(), &[&key()]);
        let payloads = r.payloads.clone();
        writer::write(Vec::new(), &r.manifest, text.as_bytes(), &sigs, |k| Ok(Box::new(std::io::Cursor::new(payloads[&k].clone())))).expect("tar")
    };
    let b = ruzstd::encoding::compress_to_vec(&tampered_tar[..], ruzstd::encoding::CompressionLevel::Fastest);
    let err = install(&b[..], &trust(), &policy(), Slot::A, &d.target, &mut |_| {}).expect_err("tampered");
    assert!(matches!(err, InstallError::Bundle(BundleError::Hash { kind: PayloadKind::Vmlinuz })), "{err}");
    untouched(&d);
    assert!(!env(&d).is_ok(Slot::B), "the half-written slot is bootable");
    assert_eq!(std::fs::read(d.target.esp.join("b/vmlinuz")).expect("b"), b"slot b's old kernel", "the kernel was replaced before the bundle checked out");
}

#[test]
fn a_root_image_that_does_not_give_the_signed_root_hash_is_refused() {
    let (d, mut r) = (disk("verity"), release());
    // Signed, consistent hashes, but the root hash belongs to other data (Flatcar's
    // "verity that passes on an empty file system").
    r.manifest.verity.root_hash = "00".repeat(32);
    let err = install(&bundle(&r)[..], &trust(), &policy(), Slot::A, &d.target, &mut |_| {}).expect_err("verity");
    assert!(matches!(err, InstallError::Verity { .. }), "{err}");
    untouched(&d);
    assert!(!env(&d).is_ok(Slot::B));
}

/// A disk that does not keep what it was given: the bytes change once the stream has
/// written them (each payload is synced by then), before they are read back.
fn install_onto_a_lying_disk(d: &Disk, r: &Release, part: &Path) -> InstallError {
    let part = part.to_owned();
    let mut changed = 0;
    let mut lie = |p: Progress| {
        if p.stage == Stage::Writing && p.done == p.total && changed == 0 {
            let f = std::fs::OpenOptions::new().write(true).open(&part).expect("open the partition");
            std::os::unix::fs::FileExt::write_all_at(&f, b"\x5a", 4096 + 17).expect("change a byte");
            changed += 1;
        }
    };
    let err = install(&bundle(r)[..], &trust(), &policy(), Slot::A, &d.target, &mut lie).expect_err("read back");
    assert_eq!(changed, 1, "the disk was never changed: the test proves nothing");
    err
}

#[test]
fn a_disk_that_changes_what_was_written_is_caught_by_the_read_back() {
    let (d, r) = (disk("lying-root"), release());
    let err = install_onto_a_lying_disk(&d, &r, &d.target.root);
    assert!(matches!(&err, InstallError::ReadBack { kind: PayloadKind::Root, path } if *path == d.target.root), "{err}");
    untouched(&d);
    assert!(!env(&d).is_ok(Slot::B), "a slot that did not read back is bootable");

    let (d, r) = (disk("lying-tree"), release());
    let err = install_onto_a_lying_disk(&d, &r, &d.target.verity);
    assert!(matches!(&err, InstallError::ReadBack { kind: PayloadKind::Verity, path } if *path == d.target.verity), "{err}");
    untouched(&d);
    assert!(!env(&d).is_ok(Slot::B));
}

#[test]
fn a_refused_bundle_changes_nothing_at_all() {
    let (d, r) = (disk("refused"), release());
    let before = std::fs::read(d.target.esp.join("grub/grubenv")).expect("env");
    for p in [Policy { compatible: "other".into(), ..policy() }, Policy { running: Version::parse("1.1.0").expect("v"), ..policy() }, Policy { room: [(PayloadKind::Root, 4096)].into(), ..policy() }] {
        let err = install(&bundle(&r)[..], &trust(), &p, Slot::A, &d.target, &mut |_| {}).expect_err("refused");
        assert!(matches!(err, InstallError::Bundle(BundleError::Refused(_))), "{err}");
    }
    let err = install(&bundle(&r)[..], &Trust { role: Role { keyids: vec!["x".into()], threshold: 1 }, keys: BTreeMap::new() }, &policy(), Slot::A, &d.target, &mut |_| {}).expect_err("unsigned");
    assert!(matches!(err, InstallError::Bundle(BundleError::Signatures { .. })), "{err}");
    assert_eq!(std::fs::read(d.target.esp.join("grub/grubenv")).expect("env"), before, "grubenv changed");
    assert!(std::fs::read(&d.target.root).expect("root").iter().all(|&b| b == 0xEE), "root-b was written");
    let err = install(&bundle(&r)[..], &trust(), &policy(), Slot::B, &d.target, &mut |_| {}).expect_err("running");
    assert!(matches!(err, InstallError::RunningSlot(Slot::B)), "{err}");
}

#[test]
fn a_write_error_on_the_slot_is_reported_as_the_device_s() {
    let (d, r) = (disk("ioerror"), release());
    std::fs::remove_file(&d.target.verity).expect("rm");
    std::fs::create_dir(&d.target.verity).expect("a directory cannot be opened for writing");
    let err = install(&bundle(&r)[..], &trust(), &policy(), Slot::A, &d.target, &mut |_| {}).expect_err("io");
    assert!(matches!(&err, InstallError::Io { what: "cannot open", path, .. } if *path == d.target.verity), "{err}");
    untouched(&d);
    assert!(!env(&d).is_ok(Slot::B));
}
