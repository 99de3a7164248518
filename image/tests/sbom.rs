//! The build's SBOM, read by CycloneDX's reference library (`sbom_check.py`, from the venv
//! `./dev setup` makes): strict CycloneDX 1.5 schema, and a Debian package URL on every
//! package, which is what syft, grype and trivy match advisories on.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn python() -> PathBuf {
    let p = std::env::var_os("CAIRN_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/cache/cairn/python/bin/python3"));
    assert!(
        p.is_file(),
        "{} is missing: the SBOM check needs the tests' Python checkers; run `./dev setup` (it installs image/tests/requirements.txt into $CAIRN_CACHE_DIR/python) or set CAIRN_PYTHON",
        p.display()
    );
    p
}

fn check(sbom: &Path) -> Output {
    let script = common::workspace().join("image/tests/sbom_check.py");
    Command::new(python()).arg(script).arg(sbom).output().expect("run sbom_check.py")
}

#[test]
fn the_sbom_is_valid_cyclonedx_1_5_with_a_debian_purl_on_every_package() {
    let dir = common::test_image(&common::workspace().join("target/cairn/test-sbom"));
    let out = check(&dir.join("sbom.cdx.json"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, String::from_utf8_lossy(&out.stderr));
    // Every package of the manifest is one purl in the SBOM.
    let manifest = common::manifest(&dir);
    let packages = manifest["packages"].as_array().map_or(0, Vec::len) + manifest["boot_loader"].as_array().map_or(0, Vec::len);
    assert!(packages > 100, "the manifest lists {packages} packages");
    assert!(stdout.contains(&format!(", {packages} Debian packages")), "the manifest lists {packages} packages; the checker says: {stdout}");
}

#[test]
fn the_checker_refuses_an_sbom_that_breaks_the_schema_or_a_purl() {
    let dir = common::test_image(&common::workspace().join("target/cairn/test-sbom"));
    let text = std::fs::read_to_string(dir.join("sbom.cdx.json")).expect("read the SBOM");
    let tmp = std::env::temp_dir().join(format!("cairn-sbom-check-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    // A field the 1.5 schema does not allow, and a purl whose version disagrees.
    let mut doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    doc["metadata"]["builtBy"] = "cairn".into();
    let bad_schema = tmp.join("schema.json");
    std::fs::write(&bad_schema, doc.to_string()).expect("write");
    let mut doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let c = doc["components"].as_array_mut().and_then(|c| c.iter_mut().find(|c| c["purl"].as_str().is_some_and(|p| p.starts_with("pkg:deb/")))).expect("a deb component");
    c["version"] = "0.0-bogus".into();
    let bad_purl = tmp.join("purl.json");
    std::fs::write(&bad_purl, doc.to_string()).expect("write");
    for (file, want) in [(&bad_schema, "not valid CycloneDX 1.5"), (&bad_purl, "component says")] {
        let out = check(file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(want), "{}: expected a refusal with {want:?}, got: {stderr}", file.display());
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
