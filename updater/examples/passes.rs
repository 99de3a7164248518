//! One pass of each kind of work an install does, over a bundle's bytes, in MiB/s: zstd
//! decoding, SHA-256, and the dm-verity tree. The figures behind SPECIFICATION.md's "why
//! the install is far from `dd`".
//!
//!   cargo run --release -p cairn-updater --example passes -- target/cairn/test-bundles/0.2.0.bundle
//!
//! Emulated as the test VMs run it (TCG, a CPU without SHA extensions):
//!   cargo build --release -p cairn-updater --example passes --target x86_64-unknown-linux-musl
//!   qemu-x86_64 -cpu qemu64 target/x86_64-unknown-linux-musl/release/examples/passes BUNDLE

use sha2::Digest;
use std::io::Read;
use std::time::Instant;

fn rate(what: &str, bytes: usize, t: Instant) {
    let secs = t.elapsed().as_secs_f64();
    println!("{what:<16} {:>8.1} MiB/s  ({:.1} MiB in {secs:.3} s)", bytes as f64 / 1_048_576.0 / secs, bytes as f64 / 1_048_576.0);
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: passes BUNDLE");
    let bundle = std::fs::read(&path).expect("cannot read the bundle");
    println!("SHA extensions: {}", std::arch::is_x86_feature_detected!("sha"));
    let t = Instant::now();
    let mut decoder = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(&bundle[..], cairn_updater::bundle::reader::MAX_WINDOW).expect("not a zstd stream");
    let mut data = Vec::new();
    decoder.read_to_end(&mut data).expect("the bundle does not decode");
    rate("zstd decoding", data.len(), t);
    let t = Instant::now();
    let digest = sha2::Sha256::digest(&data);
    rate("SHA-256", data.len(), t);
    let whole = data.len() / 4096 * 4096;
    let params = cairn_updater::verity::VerityParams { salt: [1; 32], uuid: [0; 16] };
    let t = Instant::now();
    let info = cairn_updater::verity::build(&mut &data[..whole], whole as u64, &params, &mut std::io::sink()).expect("verity");
    rate("dm-verity tree", whole, t);
    println!("(sha256 {}…, root hash {}…)", hex::encode(&digest[..4]), &info.root_hash[..8]);
}
