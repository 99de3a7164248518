//! ed25519 keys in The Update Framework's JSON form (`keytype`/`scheme`/`keyval`), their key
//! ids, and signatures over bytes. The TUF metadata and the bundle signatures share them.

use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const ED25519: &str = "ed25519";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a {field} is not {expected} hex bytes")]
    BadHex { field: &'static str, expected: usize },
    #[error("the key is of type {0:?}; Cairn signs and verifies ed25519 only")]
    Unsupported(String),
    #[error("no randomness for a new key")]
    Random(#[source] getrandom::Error),
    #[error("the private key file is not a TUF ed25519 key")]
    Parse(#[source] serde_json::Error),
}

/// A public key as TUF metadata spells it. Unknown key types are kept (a root may list keys
/// Cairn cannot use) and simply never verify anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub keytype: String,
    pub scheme: String,
    pub keyval: KeyVal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    pub public: String,
    /// Only in a private key file; never in metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<String>,
}

/// One signature in TUF's form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub keyid: String,
    pub sig: String,
}

fn hex32(s: &str, field: &'static str) -> Result<[u8; 32], KeyError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| KeyError::BadHex { field, expected: 32 })?;
    Ok(out)
}

impl PublicKey {
    pub fn ed25519(key: &ed25519_dalek::VerifyingKey) -> PublicKey {
        PublicKey {
            keytype: ED25519.into(),
            scheme: ED25519.into(),
            keyval: KeyVal { public: hex::encode(key.as_bytes()), private: None },
        }
    }

    /// The key id: SHA-256 of the key's canonical JSON, as securesystemslib computes it.
    pub fn keyid(&self) -> String {
        let public = PublicKey { keyval: KeyVal { public: self.keyval.public.clone(), private: None }, ..self.clone() };
        hex::encode(Sha256::digest(crate::tuf::canonical(&public)))
    }

    /// The ed25519 key, or None for a type Cairn does not verify.
    fn verifying(&self) -> Option<ed25519_dalek::VerifyingKey> {
        if self.keytype != ED25519 || self.scheme != ED25519 {
            return None;
        }
        let bytes = hex32(&self.keyval.public, "public key").ok()?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()
    }

    /// Does `sig` (hex) sign `message` with this key? Malformed input is simply "no".
    pub fn verifies(&self, message: &[u8], sig: &str) -> bool {
        let Some(key) = self.verifying() else { return false };
        let mut bytes = [0u8; 64];
        if hex::decode_to_slice(sig, &mut bytes).is_err() {
            return false;
        }
        key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&bytes)).is_ok()
    }
}

/// A private signing key, kept in a file on the build host only (never in an image or a
/// repository). Its file is the TUF key form with `keyval.private`.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public().keyid())
    }
}

impl SigningKey {
    pub fn generate() -> Result<SigningKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(KeyError::Random)?;
        Ok(SigningKey { key: ed25519_dalek::SigningKey::from_bytes(&seed) })
    }

    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey { key: ed25519_dalek::SigningKey::from_bytes(&seed) }
    }

    pub fn public(&self) -> PublicKey {
        PublicKey::ed25519(&self.key.verifying_key())
    }

    pub fn keyid(&self) -> String {
        self.public().keyid()
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature { keyid: self.keyid(), sig: hex::encode(self.key.sign(message).to_bytes()) }
    }

    /// The private key file's text (JSON).
    pub fn to_file_text(&self) -> String {
        let mut k = self.public();
        k.keyval.private = Some(hex::encode(self.key.to_bytes()));
        serde_json::to_string_pretty(&k).unwrap_or_default() + "\n"
    }

    pub fn from_file_text(text: &str) -> Result<SigningKey, KeyError> {
        let k: PublicKey = serde_json::from_str(text).map_err(KeyError::Parse)?;
        if k.keytype != ED25519 {
            return Err(KeyError::Unsupported(k.keytype));
        }
        let private = k.keyval.private.as_deref().ok_or(KeyError::BadHex { field: "private key", expected: 32 })?;
        let key = SigningKey::from_seed(hex32(private, "private key")?);
        if key.public().keyval.public != k.keyval.public {
            return Err(KeyError::BadHex { field: "public key matching the private key", expected: 32 });
        }
        Ok(key)
    }
}

/// Counts the distinct keys among `allowed` whose signature over `message` is valid. Two key
/// ids naming the same public key count once.
pub fn count_valid(message: &[u8], sigs: &[Signature], allowed: &[String], keys: &BTreeMap<String, PublicKey>) -> usize {
    let mut seen: Vec<&str> = Vec::new();
    for s in sigs {
        if !allowed.contains(&s.keyid) {
            continue;
        }
        let Some(key) = keys.get(&s.keyid) else { continue };
        if seen.contains(&key.keyval.public.as_str()) {
            continue;
        }
        if key.verifies(message, &s.sig) {
            seen.push(&key.keyval.public);
        }
    }
    seen.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_its_message_and_key() {
        let a = SigningKey::from_seed([1; 32]);
        let b = SigningKey::from_seed([2; 32]);
        let s = a.sign(b"hello");
        assert!(a.public().verifies(b"hello", &s.sig));
        assert!(!a.public().verifies(b"hellO", &s.sig));
        assert!(!b.public().verifies(b"hello", &s.sig));
        assert!(!a.public().verifies(b"hello", "zz"));
    }

    #[test]
    fn the_same_key_under_two_ids_counts_once() {
        let a = SigningKey::from_seed([1; 32]);
        let s = a.sign(b"m");
        let keys: BTreeMap<_, _> = [("x".to_owned(), a.public()), ("y".to_owned(), a.public())].into();
        let sigs = [Signature { keyid: "x".into(), sig: s.sig.clone() }, Signature { keyid: "y".into(), sig: s.sig }];
        assert_eq!(count_valid(b"m", &sigs, &["x".into(), "y".into()], &keys), 1);
        assert_eq!(count_valid(b"m", &sigs, &["z".into()], &keys), 0);
    }

    #[test]
    fn a_private_key_file_round_trips_and_its_id_is_the_canonical_hash() {
        let a = SigningKey::from_seed([7; 32]);
        let back = SigningKey::from_file_text(&a.to_file_text()).expect("parses");
        assert_eq!(back.keyid(), a.keyid());
        // The id ignores the private part.
        let text = a.to_file_text();
        assert!(text.contains("private"));
        assert!(!crate::tuf::canonical(&a.public()).windows(7).any(|w| w == b"private"));
    }
}
