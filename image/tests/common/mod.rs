//! Shared by the image tests: where the workspace is, and building a test image with the
//! static binaries `./dev test` built.

#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_owned()
}

/// Builds `image/profiles/<profile>.toml` into `out` with SOURCE_DATE_EPOCH=`epoch`.
pub fn build(profile: &str, out: &Path, epoch: &str) {
    let bins = workspace().join("target/x86_64-unknown-linux-musl/release");
    for b in ["cairn-init", "cairnctl", "cairn-test-agent", "cairn-flux-double"] {
        assert!(
            bins.join(b).is_file(),
            "{} is missing: build the image binaries first with `./dev test` (or `cargo build --release --target x86_64-unknown-linux-musl -p cairn-init -p cairn-qemu-tests`)",
            bins.join(b).display()
        );
    }
    let status = Command::new(env!("CARGO_BIN_EXE_cairn-image"))
        .current_dir(workspace())
        .args(["build", "--profile", &format!("image/profiles/{profile}.toml"), "--out"])
        .arg(out)
        .arg("--init-bin")
        .arg(bins.join("cairn-init"))
        .arg("--cairnctl-bin")
        .arg(bins.join("cairnctl"))
        .arg("--agent-bin")
        .arg(bins.join("cairn-test-agent"))
        .arg("--flux-double-bin")
        .arg(bins.join("cairn-flux-double"))
        .env("SOURCE_DATE_EPOCH", epoch)
        .status()
        .expect("run cairn-image");
    assert!(status.success(), "cairn-image build into {} failed", out.display());
}

/// The suite's test image (`./dev test` builds it and sets CAIRN_TEST_IMAGE_DIR), or one
/// built here into `fallback` when it is not there.
pub fn test_image(fallback: &Path) -> PathBuf {
    match std::env::var_os("CAIRN_TEST_IMAGE_DIR").map(PathBuf::from) {
        Some(d) if d.join("manifest.json").is_file() => d,
        _ => {
            // The tests of one binary run as threads: one builds, the others wait for it.
            static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _one = BUILDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !fallback.join("manifest.json").is_file() {
                build("test", fallback, "1700000000");
            }
            fallback.to_owned()
        }
    }
}

pub fn manifest(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest is JSON")
}
