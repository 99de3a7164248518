//! Stage 1's check of a slot on files: the cases an attacker with write access to the ESP,
//! or a key rotation after the image was built, can produce.

use super::*;
use crate::bundle::{writer, Payload, PayloadKind, SlotVerity, Version};
use crate::keys::SigningKey;
use crate::tuf::repo::{root_for, RoleKeys};
use crate::tuf::sign;

const FAR: i64 = 4_102_444_800; // 2100-01-01
const HASH: &str = "4a9909a9516d02fd4c729a45922398fb41c398c235423a5304085bc923a8db67";

fn keys(seed: u8) -> RoleKeys {
    let k = |n: u8| vec![SigningKey::from_seed([seed.wrapping_mul(16).wrapping_add(n); 32])];
    RoleKeys { root: k(1), targets: k(2), snapshot: k(3), timestamp: k(4) }
}

fn manifest_text(root_hash: &str) -> Vec<u8> {
    let m = Manifest {
        format: 1,
        version: Version::parse("0.2.0").expect("v"),
        compatible: "test".into(),
        min_version: Version::parse("0").expect("v"),
        security: false,
        deadline: None,
        verity: SlotVerity { root_hash: root_hash.into(), salt: "cd".repeat(32), data_blocks: 3 },
        payloads: PayloadKind::ALL.iter().map(|&kind| Payload { kind, size: 1, sha256: "00".repeat(32) }).collect(),
    };
    m.to_toml().into_bytes()
}

struct Esp {
    dir: PathBuf,
}
impl Esp {
    fn new(name: &str) -> Esp {
        let dir = std::env::temp_dir().join(format!("cairn-slot-trust-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(ROOTS_DIR)).expect("tmp");
        Esp { dir }
    }
    fn sign_slot(&self, manifest: &[u8], key: &SigningKey) {
        std::fs::write(self.dir.join(ESP_MANIFEST), manifest).expect("write");
        std::fs::write(self.dir.join(ESP_SIGNATURES), writer::sign(manifest, &[key])).expect("write");
    }
    fn check(&self, keyring: &[u8], hash: &str) -> Result<Manifest, SlotTrustError> {
        check(&self.dir, Path::new("/etc/cairn/update/root.json"), keyring, hash)
    }
}
impl Drop for Esp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn signed_root(k: &RoleKeys, version: u64, signers: &[&SigningKey]) -> Vec<u8> {
    sign(&root_for(k, version, FAR), signers)
}

#[test]
fn a_slot_signed_by_the_keyring_s_targets_key_passes() {
    let (esp, k) = (Esp::new("good"), keys(1));
    esp.sign_slot(&manifest_text(HASH), &k.targets[0]);
    let m = esp.check(&signed_root(&k, 1, &[&k.root[0]]), HASH).map_err(|e| format!("{:?}", e)).expect("a signed slot passes");
    assert_eq!(m.version.to_string(), "0.2.0");
    // GRUB's variable may come in either case; the hash is the same.
    assert!(esp.check(&signed_root(&k, 1, &[&k.root[0]]), &HASH.to_uppercase()).is_ok());
}

#[test]
fn an_unsigned_slot_a_changed_slot_cfg_and_a_foreign_key_are_refused() {
    let (esp, k) = (Esp::new("bad"), keys(1));
    let keyring = signed_root(&k, 1, &[&k.root[0]]);
    assert!(matches!(esp.check(&keyring, HASH), Err(SlotTrustError::Unsigned(p)) if p.ends_with(ESP_MANIFEST)));
    std::fs::write(esp.dir.join(ESP_MANIFEST), manifest_text(HASH)).expect("write");
    assert!(matches!(esp.check(&keyring, HASH), Err(SlotTrustError::Unsigned(p)) if p.ends_with(ESP_SIGNATURES)));

    // slot.cfg says another root hash than the signed one: the attack this check exists for.
    esp.sign_slot(&manifest_text(HASH), &k.targets[0]);
    let other = "0".repeat(64);
    let e = esp.check(&keyring, &other).expect_err("a changed root hash");
    assert!(matches!(&e, SlotTrustError::RootHash { cmdline, signed } if *cmdline == other && signed == HASH), "{e}");

    // The manifest rewritten to carry the attacker's hash, signatures kept: they fail.
    std::fs::write(esp.dir.join(ESP_MANIFEST), manifest_text(&other)).expect("write");
    assert!(matches!(esp.check(&keyring, &other), Err(SlotTrustError::Signature(_))));
    // Signed by a key the keyring does not trust (the root key is not a targets key).
    esp.sign_slot(&manifest_text(&other), &k.root[0]);
    assert!(matches!(esp.check(&keyring, &other), Err(SlotTrustError::Signature(_))));
    esp.sign_slot(&manifest_text(&other), &keys(9).targets[0]);
    assert!(matches!(esp.check(&keyring, &other), Err(SlotTrustError::Signature(_))));
    // A keyring that does not verify is an error of its own, not "unsigned".
    assert!(matches!(esp.check(b"{}", HASH), Err(SlotTrustError::Keyring(..))));
}

#[test]
fn a_slot_signed_after_two_rotations_passes_through_its_chain_of_roots() {
    let (esp, k1, k2, k3) = (Esp::new("chain"), keys(1), keys(2), keys(3));
    let keyring = signed_root(&k1, 1, &[&k1.root[0]]);
    esp.sign_slot(&manifest_text(HASH), &k3.targets[0]);
    // Without the chain the image's keyring does not know the new targets key.
    assert!(matches!(esp.check(&keyring, HASH), Err(SlotTrustError::Signature(_))));
    std::fs::write(esp.dir.join(ROOTS_DIR).join("2.root.json"), signed_root(&k2, 2, &[&k1.root[0], &k2.root[0]])).expect("write");
    std::fs::write(esp.dir.join(ROOTS_DIR).join("3.root.json"), signed_root(&k3, 3, &[&k2.root[0], &k3.root[0]])).expect("write");
    assert!(esp.check(&keyring, HASH).is_ok(), "the chain 1 -> 2 -> 3 leads to the signing key");
    // The retired key no longer signs for the slot.
    esp.sign_slot(&manifest_text(HASH), &k1.targets[0]);
    assert!(matches!(esp.check(&keyring, HASH), Err(SlotTrustError::Signature(_))));
    // A root 3 that root 2's keys did not sign (written by whoever can write the ESP) breaks
    // the chain instead of being followed.
    esp.sign_slot(&manifest_text(HASH), &keys(7).targets[0]);
    std::fs::write(esp.dir.join(ROOTS_DIR).join("3.root.json"), signed_root(&keys(7), 3, &[&keys(7).root[0]])).expect("write");
    let e = esp.check(&keyring, HASH).expect_err("a forged root");
    assert!(matches!(&e, SlotTrustError::Chain(p, _) if p.ends_with("3.root.json")), "{e}");
}
