//! Past the signature: a validly signed manifest of any text, followed by any tar bytes, so
//! the manifest parser, the entry checks and the payload hashing see hostile input.
#![no_main]
use cairn_updater::bundle::{read, writer, Trust, Verify};
use cairn_updater::keys::SigningKey;
use cairn_updater::tuf::Role;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (manifest, rest) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let k = SigningKey::from_seed([1; 32]);
    let sigs = writer::sign(manifest, &[&k]);
    let mut tar = tar::Builder::new(Vec::new());
    for (name, bytes) in [("manifest.toml", manifest), ("manifest.sig", &sigs[..])] {
        let mut h = tar::Header::new_gnu();
        let _ = h.set_path(name);
        h.set_size(bytes.len() as u64);
        h.set_cksum();
        let _ = tar.append(&h, bytes);
    }
    let Ok(mut stream) = tar.into_inner() else { return };
    stream.truncate(stream.len().saturating_sub(1024));
    stream.extend_from_slice(rest);
    let z = ruzstd::encoding::compress_to_vec(&stream[..], ruzstd::encoding::CompressionLevel::Fastest);
    let trust = Trust { role: Role { keyids: vec![k.keyid()], threshold: 1 }, keys: [(k.keyid(), k.public())].into() };
    let _ = read(&z[..], &trust, &mut Verify::default());
});
