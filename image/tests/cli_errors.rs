//! Bad input to `cairn-image`: a clear error, a nonzero exit, and nothing left behind that
//! looks like a finished image. These run the real tool (mmdebstrap included).

use std::path::{Path, PathBuf};
use std::process::Command;

fn profile_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/default.toml")).expect("default profile")
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Runs a build of `profile` into `<dir>/out`; returns (success, stderr).
fn build(dir: &Path, profile: &str) -> (bool, String) {
    let p = dir.join("profile.toml");
    std::fs::write(&p, profile).expect("write profile");
    // Any executable stands in for the image's own binaries here: these builds must fail
    // before anything boots, and this keeps cargo from being re-entered under `cargo test`.
    let out = Command::new(env!("CARGO_BIN_EXE_cairn-image"))
        .args(["build", "--profile"])
        .arg(&p)
        .arg("--out")
        .arg(dir.join("out"))
        .args(["--init-bin", "/bin/true", "--cairnctl-bin", "/bin/true", "--agent-bin", "/bin/true", "--flux-double-bin", "/bin/true"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("run cairn-image");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_nothing_finished(dir: &Path) {
    for name in ["disk.img", "disk.img.partial", "manifest.json"] {
        assert!(!dir.join("out").join(name).exists(), "{name} was left behind in {}", dir.display());
    }
    assert!(!dir.join("out/.work/rootfs").exists(), "the root tree was left behind");
}

#[test]
fn unknown_profile_key_is_rejected() {
    let dir = scratch("unknown-key");
    let (ok, err) = build(&dir, &profile_text().replace("[kernel]", "[kernel]\nflavour = \"rt\""));
    assert!(!ok, "the build succeeded");
    assert!(err.contains("unknown field") && err.contains("flavour"), "unclear error: {err}");
    assert_nothing_finished(&dir);
}

#[test]
fn missing_debian_package_is_rejected() {
    let dir = scratch("missing-package");
    let (ok, err) = build(&dir, &profile_text().replace("\"kmod\"", "\"kmod\", \"cairn-no-such-package\""));
    assert!(!ok, "the build succeeded");
    assert!(err.contains("cairn-no-such-package"), "the error does not name the package: {err}");
    assert!(err.contains("Debian"), "the error does not say where it failed: {err}");
    assert_nothing_finished(&dir);
}

#[test]
fn root_partition_too_small_is_rejected() {
    let dir = scratch("too-small");
    let (ok, err) = build(&dir, &profile_text().replace("root = 512", "root = 16"));
    assert!(!ok, "the build succeeded");
    assert!(err.contains("partitions.root") && err.contains("raise"), "unclear error: {err}");
    assert_nothing_finished(&dir);
}
