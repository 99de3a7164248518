//! Every way a bundle can be bad, each refused with its own error, and a good one read.

use super::reader::{Signatures, MANIFEST, SIGNATURES};
use super::*;
use crate::keys::SigningKey;
use crate::tuf::Role;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed([n; 32])
}

fn trust(keys: &[&SigningKey], threshold: u32) -> Trust {
    Trust {
        role: Role { keyids: keys.iter().map(|k| k.keyid()).collect(), threshold },
        keys: keys.iter().map(|k| (k.keyid(), k.public())).collect(),
    }
}

fn payload_bytes(kind: PayloadKind) -> Vec<u8> {
    let (len, seed) = match kind {
        PayloadKind::Root => (3 * 4096, 1u8),
        PayloadKind::Verity => (4096, 2),
        PayloadKind::Vmlinuz => (1000, 3),
        PayloadKind::Initrd => (2000, 4),
    };
    (0..len).map(|i| u8::try_from(i % 251).unwrap_or(0) ^ seed).collect()
}

fn manifest(payloads: &BTreeMap<PayloadKind, Vec<u8>>) -> Manifest {
    Manifest {
        format: 1,
        version: Version::parse("1.1.0").expect("v"),
        compatible: "default".into(),
        min_version: Version::parse("1.0.0").expect("v"),
        security: false,
        deadline: None,
        verity: SlotVerity { root_hash: "ab".repeat(32), salt: "cd".repeat(32), data_blocks: 3 },
        payloads: PayloadKind::ALL
            .iter()
            .map(|&kind| Payload { kind, size: payloads[&kind].len() as u64, sha256: hex::encode(Sha256::digest(&payloads[&kind])) })
            .collect(),
    }
}

struct Parts {
    manifest_bytes: Vec<u8>,
    manifest: Manifest,
    payloads: BTreeMap<PayloadKind, Vec<u8>>,
}

fn parts() -> Parts {
    let payloads: BTreeMap<_, _> = PayloadKind::ALL.iter().map(|&k| (k, payload_bytes(k))).collect();
    let manifest = manifest(&payloads);
    Parts { manifest_bytes: manifest.to_toml().into_bytes(), manifest, payloads }
}

fn tar_of(p: &Parts, sigs: &[u8]) -> Vec<u8> {
    let payloads = p.payloads.clone();
    writer::write(Vec::new(), &p.manifest, &p.manifest_bytes, sigs, |k| Ok(Box::new(std::io::Cursor::new(payloads[&k].clone())))).expect("tar")
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
}

fn bundle(p: &Parts, keys: &[&SigningKey]) -> Vec<u8> {
    zstd(&tar_of(p, &writer::sign(&p.manifest_bytes, keys)))
}

/// A sink that keeps what it is given.
#[derive(Default)]
struct Keep(BTreeMap<PayloadKind, Vec<u8>>, Option<Policy>);

impl Sink for Keep {
    fn manifest(&mut self, m: &Manifest, _: &reader::Signed) -> Result<(), BundleError> {
        self.1.as_ref().map_or(Ok(()), |p| p.check(m).map_err(BundleError::Refused))
    }
    fn payload(&mut self, p: &Payload, data: &mut dyn Read) -> std::io::Result<()> {
        let mut v = Vec::new();
        data.read_to_end(&mut v)?;
        self.0.insert(p.kind, v);
        Ok(())
    }
}

fn read_with(bytes: &[u8], t: &Trust) -> Result<Manifest, BundleError> {
    read(bytes, t, &mut Keep::default())
}

#[test]
fn a_good_bundle_is_read_whole() {
    let (k, p) = (key(1), parts());
    let mut keep = Keep::default();
    let m = read(&bundle(&p, &[&k])[..], &trust(&[&k], 1), &mut keep).expect("good");
    assert_eq!(m, p.manifest);
    assert_eq!(keep.0, p.payloads);
}

#[test]
fn a_changed_payload_byte_is_refused_by_its_hash() {
    let (k, mut p) = (key(1), parts());
    let mut tampered = p.payloads.clone();
    tampered.get_mut(&PayloadKind::Vmlinuz).expect("k")[10] ^= 1;
    p.payloads = tampered;
    let err = read_with(&bundle(&p, &[&k]), &trust(&[&k], 1)).expect_err("tampered");
    assert!(matches!(err, BundleError::Hash { kind: PayloadKind::Vmlinuz }), "{err}");
}

#[test]
fn a_changed_manifest_fails_its_signatures() {
    let (k, mut p) = (key(1), parts());
    let sigs = writer::sign(&p.manifest_bytes, &[&k]);
    p.manifest_bytes = String::from_utf8(p.manifest_bytes).expect("utf8").replace("1.1.0", "9.1.0").into_bytes();
    let err = read_with(&zstd(&tar_of(&p, &sigs)), &trust(&[&k], 1)).expect_err("changed");
    assert!(matches!(err, BundleError::Signatures { valid: 0, threshold: 1 }), "{err}");
}

#[test]
fn an_unknown_key_and_too_few_signatures_are_refused() {
    let (k1, k2, stranger, p) = (key(1), key(2), key(3), parts());
    let err = read_with(&bundle(&p, &[&stranger]), &trust(&[&k1], 1)).expect_err("unknown key");
    assert!(matches!(err, BundleError::Signatures { valid: 0, .. }), "{err}");
    let err = read_with(&bundle(&p, &[&k1, &k1]), &trust(&[&k1, &k2], 2)).expect_err("one of two, twice");
    assert!(matches!(err, BundleError::Signatures { valid: 1, threshold: 2 }), "{err}");
    read_with(&bundle(&p, &[&k1, &k2]), &trust(&[&k1, &k2], 2)).expect("two of two");
}

#[test]
fn a_truncated_bundle_is_refused_wherever_it_is_cut() {
    let (k, p) = (key(1), parts());
    let tar = tar_of(&p, &writer::sign(&p.manifest_bytes, &[&k]));
    // Cut the tar stream inside each payload and at the end of the signatures.
    for cut in [512, 1536, 2560, 4000, 9000, tar.len() - 3000] {
        let err = read_with(&zstd(&tar[..cut]), &trust(&[&k], 1)).expect_err("cut");
        assert!(matches!(err, BundleError::Truncated(_) | BundleError::Read(_)), "cut at {cut}: {err}");
    }
    // Cut the compressed stream.
    let z = bundle(&p, &[&k]);
    let err = read_with(&z[..z.len() / 2], &trust(&[&k], 1)).expect_err("cut");
    assert!(matches!(err, BundleError::Truncated(_) | BundleError::Read(_)), "{err}");
}

/// A tar stream: the good manifest and signatures, then `extra`.
fn with_entry(p: &Parts, k: &SigningKey, name: &[u8], kind: tar::EntryType, link: Option<&str>, data: &[u8]) -> Vec<u8> {
    let sigs = writer::sign(&p.manifest_bytes, &[k]);
    let mut b = tar::Builder::new(Vec::new());
    for (n, d) in [(MANIFEST, &p.manifest_bytes[..]), (SIGNATURES, &sigs[..])] {
        let mut h = tar::Header::new_gnu();
        h.set_path(n).expect("path");
        h.set_size(d.len() as u64);
        h.set_cksum();
        b.append(&h, d).expect("append");
    }
    let mut h = tar::Header::new_gnu();
    // Written raw: the tar crate itself refuses to write `..`.
    h.as_gnu_mut().expect("gnu").name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    if let Some(l) = link {
        h.set_link_name(l).expect("link");
    }
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data).expect("append");
    zstd(&b.into_inner().expect("tar"))
}

#[test]
fn tar_entries_that_leave_their_directory_or_are_links_are_refused() {
    let (k, p) = (key(1), parts());
    let t = trust(&[&k], 1);
    let root = &p.payloads[&PayloadKind::Root];
    for name in [&b"../root.squashfs"[..], b"/root.squashfs", b"x/../../root.squashfs", b"dir/root.squashfs"] {
        let err = read_with(&with_entry(&p, &k, name, tar::EntryType::Regular, None, root), &t).expect_err("path");
        assert!(matches!(err, BundleError::UnsafePath(_)), "{}: {err}", String::from_utf8_lossy(name));
    }
    let err = read_with(&with_entry(&p, &k, b"root.squashfs", tar::EntryType::Symlink, Some("/etc/shadow"), b""), &t).expect_err("symlink");
    assert!(matches!(&err, BundleError::NotAFile { kind, .. } if kind == "symbolic link"), "{err}");
    let err = read_with(&with_entry(&p, &k, b"root.squashfs", tar::EntryType::Link, Some("manifest.toml"), b""), &t).expect_err("hard link");
    assert!(matches!(&err, BundleError::NotAFile { kind, .. } if kind == "hard link"), "{err}");
    let err = read_with(&with_entry(&p, &k, b"vmlinuz", tar::EntryType::Regular, None, root), &t).expect_err("order");
    assert!(matches!(err, BundleError::Entry { expected: "root.squashfs", .. }), "{err}");
}

#[test]
fn sizes_are_bounded_before_anything_is_decompressed() {
    let (k, p) = (key(1), parts());
    // A payload entry larger than its signed size.
    let err = read_with(&with_entry(&p, &k, b"root.squashfs", tar::EntryType::Regular, None, &[0; 5 * 4096]), &trust(&[&k], 1)).expect_err("size");
    assert!(matches!(err, BundleError::Size { kind: PayloadKind::Root, found: 20480, expected: 12288 }), "{err}");

    // A manifest entry of 1 GiB of zeros (a zstd bomb: a few KiB compressed): refused by its
    // header, before one byte of it is decompressed.
    let mut h = tar::Header::new_gnu();
    h.set_path(MANIFEST).expect("path");
    h.set_size(1 << 30);
    h.set_cksum();
    let mut stream = h.as_bytes().to_vec();
    stream.extend(std::iter::repeat_n(0u8, 8 << 20));
    let err = read_with(&zstd(&stream), &trust(&[&k], 1)).expect_err("bomb");
    assert!(matches!(err, BundleError::TooLarge { name: MANIFEST, size: 1073741824, .. }), "{err}");

    // A frame that asks for a 1 GiB window (the decoder's memory): refused at its header.
    let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 20 << 3, 0, 0, 0];
    let err = read_with(&frame, &trust(&[&k], 1)).expect_err("window");
    assert!(matches!(err, BundleError::Zstd(_)), "{err}");
}

#[test]
fn data_after_the_last_payload_is_refused() {
    let (k, p) = (key(1), parts());
    let mut tar = tar_of(&p, &writer::sign(&p.manifest_bytes, &[&k]));
    // Replace the end-of-archive blocks with one more entry.
    tar.truncate(tar.len() - 1024);
    let mut b = tar::Builder::new(tar);
    let mut h = tar::Header::new_gnu();
    h.set_path("extra").expect("path");
    h.set_size(1);
    h.set_cksum();
    b.append(&h, &b"x"[..]).expect("append");
    let err = read_with(&zstd(&b.into_inner().expect("tar")), &trust(&[&k], 1)).expect_err("trailing");
    assert!(matches!(&err, BundleError::Trailing(n) if n == "extra"), "{err}");
}

fn policy() -> Policy {
    Policy {
        compatible: "default".into(),
        running: Version::parse("1.0.0").expect("v"),
        minimum: None,
        room: [(PayloadKind::Root, 1 << 20)].into(),
        failed: None,
    }
}

#[test]
fn the_policy_refuses_before_any_payload_is_written() {
    let (k, p) = (key(1), parts());
    let b = bundle(&p, &[&k]);
    let check = |policy: Policy| {
        let mut keep = Keep(BTreeMap::new(), Some(policy));
        let r = read(&b[..], &trust(&[&k], 1), &mut keep);
        assert!(keep.0.is_empty() || r.is_ok(), "a payload reached the sink of a refused bundle");
        r
    };
    check(policy()).expect("installable");
    let refusal = |policy| match check(policy) {
        Err(BundleError::Refused(r)) => r,
        other => panic!("not refused: {other:?}"),
    };
    assert!(matches!(refusal(Policy { compatible: "edge".into(), ..policy() }), Refusal::Incompatible { .. }));
    assert!(matches!(refusal(Policy { running: Version::parse("1.1.0").expect("v"), ..policy() }), Refusal::NotNewer { .. }));
    assert!(matches!(refusal(Policy { running: Version::parse("2.0").expect("v"), ..policy() }), Refusal::NotNewer { .. }));
    assert!(matches!(refusal(Policy { minimum: Some(Version::parse("1.2.0").expect("v")), ..policy() }), Refusal::BelowMinimum { .. }));
    assert!(matches!(refusal(Policy { running: Version::parse("0.9.0").expect("v"), ..policy() }), Refusal::RunningTooOld { .. }));
    assert!(matches!(refusal(Policy { failed: Some(Version::parse("1.1.0").expect("v")), ..policy() }), Refusal::FailedBefore(_)));
    assert!(matches!(refusal(Policy { room: [(PayloadKind::Root, 4096)].into(), ..policy() }), Refusal::DoesNotFit { kind: PayloadKind::Root, size: 12288, room: 4096 }));
}

#[test]
fn signatures_file_is_the_tuf_form() {
    let (k, p) = (key(1), parts());
    let s: Signatures = serde_json::from_slice(&writer::sign(&p.manifest_bytes, &[&k])).expect("json");
    assert_eq!(s.signatures[0].keyid, k.keyid());
}
