//! TUF metadata: the envelope, the threshold check, each role's typed form, expiry times.
#![no_main]
use cairn_updater::keys::SigningKey;
use cairn_updater::tuf::metadata::Metadata;
use cairn_updater::tuf::{time, verify, Envelope, Role, Root, Snapshot, Targets, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = SigningKey::from_seed([1; 32]);
    let role = Role { keyids: vec![k.keyid()], threshold: 1 };
    let _ = verify(data, "root", &role, &[(k.keyid(), k.public())].into());
    if let Ok(env) = serde_json::from_slice::<Envelope>(data) {
        if let Ok(root) = Root::from_signed(env.signed.clone()) {
            let _ = root.check_expiry(0);
            let _ = verify(data, "root", root.role("root").unwrap_or(&role), &root.keys);
        }
        let _ = Timestamp::from_signed(env.signed.clone()).map(|t| t.check_expiry(0));
        let _ = Snapshot::from_signed(env.signed.clone()).map(|t| t.check_expiry(0));
        let _ = Targets::from_signed(env.signed).map(|t| t.check_expiry(0));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(t) = time::parse(s) {
            let _ = time::format(t);
        }
    }
});
