//! The Buildroot BR2_EXTERNAL tree cannot be built here (no upstream downloads), so this
//! checks its structure: everything it names exists and every package builds a crate and
//! binary this workspace has.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo").to_owned()
}

fn tree() -> PathBuf {
    repo().join("buildroot")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `$(BR2_EXTERNAL_CAIRN_PATH)/x` or `$BR2_EXTERNAL_CAIRN_PATH/x` -> buildroot/x.
fn external_paths(text: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for marker in ["$(BR2_EXTERNAL_CAIRN_PATH)/", "$BR2_EXTERNAL_CAIRN_PATH/"] {
        for (i, _) in text.match_indices(marker) {
            let rest = &text[i + marker.len()..];
            let end = rest.find(|c: char| c == '"' || c.is_whitespace()).unwrap_or(rest.len());
            let rel = &rest[..end];
            if !rel.contains('*') && !rel.is_empty() && rel != ".." {
                out.push(tree().join(rel));
            }
        }
    }
    out
}

#[test]
fn external_desc_names_cairn() {
    assert!(read(&tree().join("external.desc")).lines().any(|l| l.trim() == "name: CAIRN"));
}

#[test]
fn every_sourced_and_referenced_file_exists() {
    for f in ["Config.in", "external.mk", "provides/init.in", "configs/cairn_x86_64_defconfig"] {
        for p in external_paths(&read(&tree().join(f))) {
            assert!(p.exists(), "{f} names {} which does not exist", p.display());
        }
    }
}

fn packages() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(tree().join("package"))
        .expect("package dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn every_package_is_complete_and_sourced() {
    let config = read(&tree().join("Config.in"));
    assert!(!packages().is_empty());
    for p in packages() {
        let dir = tree().join("package").join(&p);
        assert!(dir.join("Config.in").is_file(), "package {p} has no Config.in");
        assert!(dir.join(format!("{p}.mk")).is_file(), "package {p} has no {p}.mk");
        assert!(config.contains(&format!("package/{p}/Config.in")), "Config.in does not source package {p}");
        let sym = format!("BR2_PACKAGE_{}", p.to_uppercase().replace('-', "_"));
        assert!(read(&dir.join("Config.in")).contains(&format!("config {sym}")), "{p}/Config.in does not define {sym}");
    }
}

/// [[bin]] names and package names across the workspace's crates.
fn workspace_targets() -> (Vec<String>, Vec<String>) {
    let (mut crates, mut bins) = (Vec::new(), Vec::new());
    for c in ["init", "updater", "hardening", "image", "qemu-tests"] {
        let text = read(&repo().join(c).join("Cargo.toml"));
        let mut in_package = false;
        let mut in_bin = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_package = line == "[package]";
                in_bin = line == "[[bin]]";
            }
            if let Some(v) = line.strip_prefix("name = ") {
                let v = v.trim_matches('"').to_owned();
                if in_package {
                    crates.push(v);
                } else if in_bin {
                    bins.push(v);
                }
            }
        }
    }
    (crates, bins)
}

#[test]
fn every_package_builds_a_crate_and_binary_of_this_workspace() {
    let (crates, bins) = workspace_targets();
    for p in packages() {
        let mk = read(&tree().join("package").join(&p).join(format!("{p}.mk")));
        assert!(mk.contains("$(eval $(cargo-package))"), "{p}.mk does not use the cargo package infrastructure");
        let words: Vec<&str> = mk.split_whitespace().collect();
        for w in words.windows(2) {
            if w[0] == "-p" {
                assert!(crates.iter().any(|c| c == w[1]), "{p}.mk builds crate {} which the workspace lacks", w[1]);
            }
            if w[0] == "--bin" {
                assert!(bins.iter().any(|b| b == w[1]), "{p}.mk builds binary {} which the workspace lacks", w[1]);
            }
        }
    }
}

#[test]
fn defconfig_enables_only_defined_cairn_symbols() {
    let defconfig = read(&tree().join("configs/cairn_x86_64_defconfig"));
    let mut defined = String::new();
    for p in packages() {
        defined.push_str(&read(&tree().join("package").join(p).join("Config.in")));
    }
    defined.push_str(&read(&tree().join("provides/init.in")));
    for line in defconfig.lines() {
        let Some(sym) = line.strip_suffix("=y") else { continue };
        if sym.contains("CAIRN") {
            assert!(defined.contains(&format!("config {sym}")), "defconfig sets {sym} which no Config.in defines");
        }
    }
}

#[test]
fn board_scripts_are_executable_and_parse() {
    use std::os::unix::fs::PermissionsExt;
    for s in ["post-build.sh", "post-image.sh"] {
        let p = tree().join("board/cairn/x86_64").join(s);
        let mode = std::fs::metadata(&p).expect("script").permissions().mode();
        assert!(mode & 0o111 != 0, "{s} is not executable");
        let st = std::process::Command::new("bash").arg("-n").arg(&p).status().expect("bash");
        assert!(st.success(), "{s} does not parse");
    }
}

#[test]
fn board_profile_is_a_valid_cairn_image_profile() {
    let p = tree().join("board/cairn/x86_64/profile.toml");
    if let Err(e) = cairn_image::profile::Profile::load(&p) {
        panic!("{e}");
    }
}
