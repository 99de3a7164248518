//! Two builds of the same inputs with the same SOURCE_DATE_EPOCH give the same disk.img,
//! byte for byte (GUIDs, verity salt and FAT volume id all derive from one seed).

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_owned()
}

fn manifest_sha(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    v["disk"]["sha256"].as_str().expect("disk.sha256").to_owned()
}

fn build(out: &Path, epoch: &str) {
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
        .args(["build", "--profile", "image/profiles/test.toml", "--out"])
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

#[test]
fn two_builds_give_the_same_disk_image() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reproducible");
    let _ = std::fs::remove_dir_all(&tmp);
    // The suite's test image (./dev test builds it) is the first build when present.
    let first = match std::env::var_os("CAIRN_TEST_IMAGE_DIR").map(PathBuf::from) {
        Some(d) if d.join("manifest.json").is_file() => d,
        _ => {
            let d = tmp.join("first");
            build(&d, "1700000000");
            d
        }
    };
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(first.join("manifest.json")).expect("manifest")).expect("json");
    let epoch = v["source_date_epoch"].as_u64().expect("source_date_epoch").to_string();
    let second = tmp.join("second");
    build(&second, &epoch);
    assert_eq!(manifest_sha(&first), manifest_sha(&second), "disk.img differs between two builds with SOURCE_DATE_EPOCH={epoch}");
    let _ = std::fs::remove_dir_all(&tmp);
}
