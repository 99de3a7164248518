//! The bundle manifest parser, and versions.
#![no_main]
use cairn_updater::bundle::{Manifest, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        // What parses must print and parse back to the same manifest.
        let back = Manifest::parse(m.to_toml().as_bytes()).expect("a parsed manifest prints back");
        assert_eq!(back, m);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(v) = Version::parse(s) {
            assert_eq!(Version::parse(&v.to_string()).expect("prints back"), v);
        }
    }
});
