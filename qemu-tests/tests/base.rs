//! The Debian 13 base, checked on a booted test image: Docker 26 for FluxOS, kernel 6.12
//! with its compressed modules, and an SBOM that says exactly what the node runs. All
//! read-only: they share one booted machine (`shared::machine`).

use cairn_qemu_tests::image::{image_dir, test_image};
use cairn_qemu_tests::{shared, HarnessError};
use serde_json::Value;
use std::collections::BTreeSet;

type R = Result<(), HarnessError>;

const SHARED: &str = "base_shared_machine";

/// Flux's published minimum Docker version for nodes (FluxOS's default config).
const FLUX_MIN_DOCKER: (u32, u32, u32) = (26, 1, 2);

fn version_triple(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.trim().split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(str::parse::<u32>);
    Some((it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?))
}

#[test]
fn docker_server_version_is_at_least_flux_minimum_26_1_2() -> R {
    let m = shared::machine(SHARED)?;
    // The server's own answer over the Engine API socket, not the client's version.
    let out = m.succeed("docker version --format '{{.Server.Version}}'")?;
    let v = version_triple(&out).ok_or_else(|| HarnessError::Check(format!("not a version: {out:?}")))?;
    assert!(v >= FLUX_MIN_DOCKER, "dockerd reports {v:?}; Flux requires at least {FLUX_MIN_DOCKER:?}");
    eprintln!("dockerd server version {}", out.trim());
    Ok(())
}

#[test]
fn kernel_6_12_loads_its_compressed_modules_from_the_initramfs() -> R {
    let m = shared::machine(SHARED)?;
    let release = m.succeed("uname -r")?;
    assert!(release.starts_with("6.12."), "kernel {release}");
    // Loaded by stage 1 from .ko.xz files in the initramfs (finit_module with
    // MODULE_INIT_COMPRESSED_FILE): present in /proc/modules means the kernel took them.
    let modules = m.succeed("cut -d' ' -f1 /proc/modules")?;
    let loaded: BTreeSet<&str> = modules.lines().collect();
    for want in ["squashfs", "dm_verity", "virtio_blk", "softdog"] {
        assert!(loaded.contains(want), "{want} is not loaded; /proc/modules: {modules}");
    }
    let initrd = test_image()?.dir.join("initrd");
    let bytes = std::fs::read(&initrd).map_err(HarnessError::io(format!("read {}", initrd.display())))?;
    assert!(bytes.windows(13).any(|w| w == b"squashfs.ko.x"), "the initramfs carries Debian's compressed squashfs.ko.xz");
    Ok(())
}

/// A Debian package as both sides name it: (name, version, architecture).
type Pkg = (String, String, String);

/// Each slot package in the build's SBOM.
fn sbom_packages() -> Result<BTreeSet<Pkg>, HarnessError> {
    let path = image_dir().join("sbom.cdx.json");
    let text = std::fs::read_to_string(&path).map_err(HarnessError::io(format!("read {}", path.display())))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| HarnessError::Check(format!("{}: {e}", path.display())))?;
    assert_eq!(doc["bomFormat"], "CycloneDX");
    assert_eq!(doc["specVersion"], "1.5");
    let mut set = BTreeSet::new();
    for c in doc["components"].as_array().into_iter().flatten() {
        let in_slot = c["properties"].as_array().into_iter().flatten().any(|p| p["name"] == "cairn:location" && p["value"] == "slot");
        let purl = c["purl"].as_str().unwrap_or_default();
        if in_slot && purl.starts_with("pkg:deb/debian/") {
            let arch = purl.split("arch=").nth(1).and_then(|a| a.split('&').next()).unwrap_or_default();
            set.insert((c["name"].as_str().unwrap_or_default().to_owned(), c["version"].as_str().unwrap_or_default().to_owned(), arch.to_owned()));
        }
    }
    Ok(set)
}

#[test]
fn sbom_names_every_package_dpkg_query_lists_on_the_node_with_its_version() -> R {
    let sbom = sbom_packages()?;
    let m = shared::machine(SHARED)?;
    // dpkg's own view of the running slot (its database is bound from the slot over /var).
    let out = m.succeed("dpkg-query -W -f='${db:Status-Status} ${Package} ${Version} ${Architecture}\\n'")?;
    let node: BTreeSet<Pkg> = out
        .lines()
        .filter_map(|l| l.strip_prefix("installed "))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() == 3).then(|| (f[0].to_owned(), f[1].to_owned(), f[2].to_owned()))
        })
        .collect();
    assert!(node.len() > 100, "dpkg-query lists only {} packages on the node: {out}", node.len());
    let missing: Vec<_> = node.difference(&sbom).collect();
    let extra: Vec<_> = sbom.difference(&node).collect();
    assert!(missing.is_empty(), "on the node but not in the SBOM (or with another version): {missing:?}");
    assert!(extra.is_empty(), "in the SBOM's slot packages but not on the node: {extra:?}");
    let names: BTreeSet<&str> = node.iter().map(|(n, _, _)| n.as_str()).collect();
    for want in ["docker.io", "containerd", "runc"] {
        assert!(names.contains(want), "{want} is not installed");
    }
    let release = m.succeed("uname -r")?;
    let kernel = format!("linux-image-{}", release.trim());
    assert!(names.contains(kernel.as_str()), "the running kernel's package {kernel} is in the SBOM");
    eprintln!("{} packages on the node, all in the SBOM with the same versions", node.len());
    Ok(())
}

#[test]
fn version_triples_parse_debian_and_docker_forms() {
    assert_eq!(version_triple("26.1.5+dfsg1"), Some((26, 1, 5)));
    assert_eq!(version_triple("20.10.24\n"), Some((20, 10, 24)));
    assert!(version_triple("20.10.24").unwrap_or_default() < FLUX_MIN_DOCKER);
    assert_eq!(version_triple("dev"), None);
}

/// One line of /proc/PID/limits ("Max open files  1048576  1048576  files"): soft, hard.
fn limit(limits: &str, name: &str) -> Option<(String, String)> {
    let rest = limits.lines().find_map(|l| l.strip_prefix(name))?;
    let mut it = rest.split_whitespace();
    Some((it.next()?.to_owned(), it.next()?.to_owned()))
}

/// Issue 8 item 12: dockerd and containerd used to inherit the kernel's 1024 open files.
/// Their definitions' limits and OOM scores hold on the running processes.
#[test]
fn the_container_runtime_runs_with_its_configured_limits_and_oom_scores() -> R {
    let m = shared::machine(SHARED)?;
    for (daemon, oom) in [("dockerd", "-500"), ("containerd", "-999")] {
        let pid = m.succeed(&format!("cairnctl services | awk '$1 == \"{}\" {{print $4}}'", if daemon == "dockerd" { "docker" } else { "containerd" }))?;
        let pid = pid.trim();
        assert!(pid.parse::<u32>().is_ok_and(|p| p > 1), "no pid for {daemon}: {pid:?}");
        let comm = m.succeed(&format!("cat /proc/{pid}/comm"))?;
        assert_eq!(comm.trim(), daemon);
        let limits = m.succeed(&format!("cat /proc/{pid}/limits"))?;
        assert_eq!(limit(&limits, "Max open files"), Some(("1048576".into(), "1048576".into())), "{daemon}:\n{limits}");
        assert_eq!(limit(&limits, "Max processes"), Some(("unlimited".into(), "unlimited".into())), "{daemon}:\n{limits}");
        assert_eq!(limit(&limits, "Max core file size"), Some(("unlimited".into(), "unlimited".into())), "{daemon}:\n{limits}");
        assert_eq!(m.succeed(&format!("cat /proc/{pid}/oom_score_adj"))?.trim(), oom, "{daemon}");
    }
    // The control path: the system bus the API is served on.
    let dbus = m.succeed("cairnctl services | awk '$1 == \"dbus\" {print $4}'")?;
    assert_eq!(m.succeed(&format!("cat /proc/{}/oom_score_adj", dbus.trim()))?.trim(), "-900");
    // A service without limits keeps the kernel's defaults (nothing leaks from the runtime's).
    let echo = m.succeed("cairnctl services | awk '$1 == \"test-echo\" {print $4}'")?;
    let limits = m.succeed(&format!("cat /proc/{}/limits", echo.trim()))?;
    assert_eq!(limit(&limits, "Max open files"), Some(("1024".into(), "4096".into())), "the kernel's default: {limits}");
    Ok(())
}
