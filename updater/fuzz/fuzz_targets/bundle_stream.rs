//! Any bytes as a bundle file: zstd, tar and the signature check must refuse without a panic,
//! a hang or unbounded memory.
#![no_main]
use cairn_updater::bundle::{read, Trust, Verify};
use cairn_updater::keys::SigningKey;
use cairn_updater::tuf::Role;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = SigningKey::from_seed([1; 32]);
    let trust = Trust { role: Role { keyids: vec![k.keyid()], threshold: 1 }, keys: [(k.keyid(), k.public())].into() };
    let _ = read(data, &trust, &mut Verify::default());
});
