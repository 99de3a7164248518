//! Releases as a publisher makes them, through the real `cairn-image` commands: keys, a
//! bundle, `bundle verify`, a TUF repository, key rotation; and The Update Framework's
//! reference implementation (python-tuf) reading what Cairn publishes, and Cairn reading what
//! python-tuf writes.

use cairn_updater::tuf::client::{Client, DirFetch};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("release-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn python() -> PathBuf {
    let p = std::env::var_os("CAIRN_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/cache/cairn/python/bin/python3"));
    assert!(
        p.is_file(),
        "{} is missing: the interop tests need python-tuf; run `./dev setup` (it installs image/tests/requirements.txt into $CAIRN_CACHE_DIR/python) or set CAIRN_PYTHON",
        p.display()
    );
    p
}

fn interop(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = Command::new(python());
    c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tuf_interop.py"));
    for a in args {
        c.arg(a);
    }
    c.output().expect("run python")
}

fn cairn_image(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn-image"));
    for a in args {
        c.arg(a);
    }
    c.output().expect("run cairn-image")
}

#[track_caller]
fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn refused(out: Output) -> String {
    assert!(!out.status.success(), "succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A directory shaped like `cairn-image build --out`: the four slot artifacts (small) and a
/// manifest.json describing them, for `version`.
fn fake_image(dir: &Path, version: &str, seed: u8) -> PathBuf {
    use sha2::Digest;
    let out = dir.join(format!("image-{version}"));
    std::fs::create_dir_all(&out).expect("dir");
    let mut artifacts = serde_json::Map::new();
    for (name, len) in [("root.squashfs", 8 * 4096), ("root.verity", 4096), ("vmlinuz", 3000), ("initrd", 5000)] {
        let bytes: Vec<u8> = (0..len).map(|i: usize| u8::try_from(i % 253).unwrap_or(0) ^ seed).collect();
        std::fs::write(out.join(name), &bytes).expect("artifact");
        artifacts.insert(name.into(), json!({"path": name, "bytes": len, "sha256": hex::encode(sha2::Sha256::digest(&bytes))}));
    }
    let slot = json!({"root_hash": "ab".repeat(32), "salt": "cd".repeat(32), "data_blocks": 8});
    let m = json!({
        "name": "default", "version": version, "source_date_epoch": 0, "kernel_version": "6.12",
        "initramfs_modules": [], "suite": "trixie", "debian_version": "13.2", "packages": [],
        "boot_loader": [], "host_tools": {},
        "disk": {"path": "disk.img", "bytes": 0, "sha256": ""},
        "artifacts": artifacts,
        "partitions": [
            {"label": "root-a", "first_lba": 2048, "last_lba": 2048 + 1023, "guid": ""},
            {"label": "verity-a", "first_lba": 4096, "last_lba": 4096 + 63, "guid": ""}
        ],
        "slots": {"a": slot, "b": slot},
    });
    std::fs::write(out.join("manifest.json"), serde_json::to_string_pretty(&m).expect("json")).expect("manifest");
    out
}

#[test]
fn a_published_bundle_verifies_installs_only_where_it_should_and_python_tuf_reads_the_repository() {
    let d = scratch("publish");
    let (keys, repo) = (d.join("keys"), d.join("repo"));
    let out = ok(cairn_image(&[&"keygen", &"--out", &keys]));
    assert_eq!(out.lines().count(), 4, "{out}");
    let err = refused(cairn_image(&[&"keygen", &"--out", &keys]));
    assert!(err.contains("never overwritten"), "{err}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(keys.join("targets.key")).expect("key").permissions());
    assert_eq!(mode & 0o077, 0, "a private key is readable by others: {mode:o}");

    let old = fake_image(&d, "0.1.0", 1);
    let new = fake_image(&d, "0.2.0", 2);
    let bundle = d.join("0.2.0.bundle");
    ok(cairn_image(&[&"bundle", &"--image", &new, &"--keys", &keys, &"--out", &bundle]));
    ok(cairn_image(&[&"publish", &"--repo", &repo, &"--keys", &keys, &bundle]));
    let root1 = repo.join("metadata/1.root.json");
    for secret in ["private"] {
        for f in std::fs::read_dir(repo.join("metadata")).expect("metadata") {
            let text = std::fs::read_to_string(f.expect("entry").path()).expect("read");
            assert!(!text.contains(secret), "a private key in the repository");
        }
    }

    // Installable on a node running 0.1.0; a downgrade for a node running 0.2.0.
    let out = ok(cairn_image(&[&"bundle", &"verify", &bundle, &"--root", &root1, &"--image", &old]));
    assert!(out.contains("0.2.0"), "{out}");
    let err = refused(cairn_image(&[&"bundle", &"verify", &bundle, &"--root", &root1, &"--image", &new]));
    assert!(err.contains("not newer than the running 0.2.0"), "{err}");

    // One byte of the kernel changed.
    let mut bytes = std::fs::read(&bundle).expect("bundle");
    let tampered = d.join("tampered.bundle");
    let last = bytes.len() - 100;
    bytes[last] ^= 0x40;
    std::fs::write(&tampered, &bytes).expect("write");
    let err = refused(cairn_image(&[&"bundle", &"verify", &tampered, &"--root", &root1]));
    assert!(err.contains("would not be installed"), "{err}");

    // python-tuf's client, trusting root 1, fetches the bundle Cairn published.
    let out = ok(interop(&[&"read", &repo, &root1, &"cairn-default-0.2.0.bundle"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    use sha2::Digest;
    assert_eq!(v["sha256"], hex::encode(sha2::Sha256::digest(std::fs::read(&bundle).expect("bundle"))));
    assert_eq!(v["custom"]["cairn"]["version"], "0.2.0");

    // Rotation: new keys; python-tuf follows to root 2; a bundle signed by the retired targets
    // key is refused under root 2, one signed by the new key verifies.
    let keys2 = d.join("keys2");
    ok(cairn_image(&[&"keygen", &"--out", &keys2]));
    ok(cairn_image(&[&"rotate", &"--repo", &repo, &"--old-keys", &keys, &"--new-keys", &keys2]));
    let root2 = repo.join("metadata/2.root.json");
    let err = refused(cairn_image(&[&"bundle", &"verify", &bundle, &"--root", &root2]));
    assert!(err.contains("0 valid signature"), "{err}");
    let bundle2 = d.join("0.2.0-new.bundle");
    ok(cairn_image(&[&"bundle", &"--image", &new, &"--keys", &keys2, &"--out", &bundle2]));
    ok(cairn_image(&[&"bundle", &"verify", &bundle2, &"--root", &root2]));
    let err = refused(cairn_image(&[&"publish", &"--repo", &repo, &"--keys", &keys, &bundle2]));
    assert!(err.contains("is not a targets key of the repository's root version 2"), "{err}");
    ok(cairn_image(&[&"publish", &"--repo", &repo, &"--keys", &keys2, &bundle2]));
    let out = ok(interop(&[&"read", &repo, &root1, &"cairn-default-0.2.0.bundle"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["root_version"], 2);
    assert_eq!(v["sha256"], hex::encode(sha2::Sha256::digest(std::fs::read(&bundle2).expect("bundle"))));
}

#[test]
fn a_repository_python_tuf_wrote_is_read_by_cairn_through_two_root_rotations() {
    let d = scratch("python-writes");
    let target = d.join("payload");
    std::fs::write(&target, b"written by python-tuf").expect("target");
    let repo = d.join("repo");
    ok(interop(&[&"write", &repo, &target, &"cairn-default-9.9.9.bundle"]));
    let store = d.join("store");
    Client::<DirFetch>::init(&store, &std::fs::read(repo.join("metadata/1.root.json")).expect("root")).expect("seed the store");
    let trusted = Client::new(DirFetch(repo.clone()), &store, cairn_updater::tuf::time::now()).refresh().expect("Cairn reads python-tuf's repository");
    assert_eq!(trusted.root.version, 3);
    let file = trusted.target("cairn-default-9.9.9.bundle").expect("the target is listed");
    assert_eq!(file.length, 21);
    let got = std::fs::read(repo.join(trusted.target_path("cairn-default-9.9.9.bundle", file))).expect("target file");
    use sha2::Digest;
    assert_eq!(Some(hex::encode(sha2::Sha256::digest(&got)).as_str()), file.sha256());
    assert_eq!(file.custom.as_ref().map(|c| c["cairn"]["from"].clone()), Some(json!("python-tuf")));
}

/// An image that trusts a root must have its slots signed by that root's targets key, or
/// stage 1 refuses them: the build says so before it starts, not after minutes of work.
#[test]
fn a_build_that_trusts_a_root_needs_that_root_s_targets_key() {
    let d = scratch("build-keys");
    let (keys, other, repo) = (d.join("keys"), d.join("other"), d.join("repo"));
    ok(cairn_image(&[&"keygen", &"--out", &keys]));
    ok(cairn_image(&[&"keygen", &"--out", &other]));
    ok(cairn_image(&[&"publish", &"--repo", &repo, &"--keys", &keys, &"--refresh"]));
    let root = repo.join("metadata/1.root.json");
    let profile = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/test.toml");
    let out = d.join("out");
    let build = |extra: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"build", &"--profile", &profile, &"--out", &out];
        args.extend_from_slice(extra);
        cairn_image(&args)
    };
    let e = refused(build(&[&"--update-root", &root]));
    assert!(e.contains("--update-root needs --keys"), "{e}");
    let e = refused(build(&[&"--keys", &keys]));
    assert!(e.contains("pass both"), "{e}");
    let e = refused(build(&[&"--update-root", &root, &"--keys", &other]));
    assert!(e.contains("is not one that") && e.contains("the slots would not boot"), "{e}");
    assert!(!out.join("disk.img").exists());
}
