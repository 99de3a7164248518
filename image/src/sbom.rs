//! `sbom.cdx.json`: what an image contains, as a CycloneDX 1.5 JSON bill of materials, the
//! format syft, grype and trivy read. Every Debian package of the slot (with its source
//! package, for advisories), the GRUB packages the boot loader was made from, Cairn's own
//! binaries, and the Debian release as the operating-system component that tells a scanner
//! which advisories apply. Deterministic: the serial number derives from the build seed and
//! the timestamp is SOURCE_DATE_EPOCH.

use crate::debian::Package;
use serde_json::{json, Value};
use std::path::Path;

pub const FILE: &str = "sbom.cdx.json";

/// Where a package sits on the disk.
#[derive(Debug, Clone, Copy)]
pub enum Location {
    /// In each root slot (what `dpkg-query` lists on the node).
    Slot,
    /// On the ESP (the boot loader's core images and modules).
    Esp,
}

impl Location {
    fn as_str(self) -> &'static str {
        match self {
            Location::Slot => "slot",
            Location::Esp => "esp",
        }
    }
}

/// A file Cairn adds itself (not from a Debian package).
#[derive(Debug)]
pub struct OwnFile<'a> {
    pub name: &'a str,
    pub sha256: &'a str,
}

#[derive(Debug)]
pub struct Input<'a> {
    pub image_name: &'a str,
    pub image_version: &'a str,
    /// `/etc/debian_version` of the slot, e.g. "13.2".
    pub debian_version: &'a str,
    pub epoch: u64,
    pub serial: [u8; 16],
    pub packages: &'a [(Package, Location)],
    pub own: &'a [OwnFile<'a>],
}

/// Percent-encodes a package-URL segment: everything but the unreserved characters, so a
/// Debian epoch (`1:`) or a `+` in a version reads back unchanged.
fn purl_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-VERSION[&upstream=SRC@SRCVERSION]`,
/// the form syft writes and grype/trivy match advisories with.
pub fn purl(p: &Package, debian_version: &str) -> String {
    let mut s = format!("pkg:deb/debian/{}@{}?arch={}", purl_escape(&p.name), purl_escape(&p.version), purl_escape(&p.architecture));
    if p.source != p.name || p.source_version != p.version {
        s.push_str(&format!("&upstream={}", purl_escape(&format!("{}@{}", p.source, p.source_version))));
    }
    s.push_str(&format!("&distro=debian-{}", purl_escape(debian_version)));
    s
}

fn uuid(b: [u8; 16]) -> String {
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4 layout (random-looking, derived from the seed)
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// RFC 3339 UTC for a Unix time: the one formatter the TUF metadata uses too.
fn rfc3339(epoch: u64) -> String {
    cairn_updater::tuf::time::format(i64::try_from(epoch).unwrap_or(i64::MAX))
}

pub fn document(input: &Input<'_>) -> Value {
    let major = input.debian_version.split('.').next().unwrap_or(input.debian_version);
    let mut components = vec![json!({
        "type": "operating-system",
        "bom-ref": "os:debian",
        "name": "debian",
        "version": input.debian_version,
        "description": format!("Debian {major}: the release every package of this image comes from"),
    })];
    for (p, location) in input.packages {
        let purl = purl(p, input.debian_version);
        components.push(json!({
            "type": "library",
            "bom-ref": format!("{purl}#{}", location.as_str()),
            "name": p.name,
            "version": p.version,
            "purl": purl,
            "properties": [
                {"name": "cairn:location", "value": location.as_str()},
                {"name": "syft:package:type", "value": "deb"},
                {"name": "debian:source", "value": p.source},
                {"name": "debian:source-version", "value": p.source_version},
            ],
        }));
    }
    for f in input.own {
        components.push(json!({
            "type": "application",
            "bom-ref": format!("cairn:{}", f.name),
            "name": f.name,
            "version": input.image_version,
            "hashes": [{"alg": "SHA-256", "content": f.sha256}],
            "properties": [{"name": "cairn:location", "value": "slot"}],
        }));
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", uuid(input.serial)),
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(input.epoch),
            "tools": {"components": [{"type": "application", "name": "cairn-image", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {
                "type": "operating-system",
                "bom-ref": "cairn-image",
                "name": format!("cairn-{}", input.image_name),
                "version": input.image_version,
            },
        },
        "components": components,
    })
}

pub fn write(dir: &Path, input: &Input<'_>) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(&document(input)).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(tmp, dir.join(FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str, source: &str, source_version: &str) -> Package {
        Package { name: name.into(), version: version.into(), architecture: "amd64".into(), source: source.into(), source_version: source_version.into() }
    }

    #[test]
    fn purls_escape_epochs_and_name_the_source() {
        let z = pkg("zlib1g", "1:1.3.dfsg+really1.3.1-1+b1", "zlib", "1:1.3.dfsg+really1.3.1-1");
        assert_eq!(
            purl(&z, "13.2"),
            "pkg:deb/debian/zlib1g@1%3A1.3.dfsg%2Breally1.3.1-1%2Bb1?arch=amd64&upstream=zlib%401%3A1.3.dfsg%2Breally1.3.1-1&distro=debian-13.2"
        );
        let b = pkg("bash", "5.2.37-2", "bash", "5.2.37-2");
        assert_eq!(purl(&b, "13.2"), "pkg:deb/debian/bash@5.2.37-2?arch=amd64&distro=debian-13.2");
    }

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn document_lists_every_package_once_per_location() {
        let packages = [(pkg("bash", "5.2.37-2", "bash", "5.2.37-2"), Location::Slot), (pkg("grub-pc-bin", "2.12-9", "grub2", "2.12-9"), Location::Esp)];
        let own = [OwnFile { name: "cairn-init", sha256: "00" }];
        let doc = document(&Input { image_name: "t", image_version: "1", debian_version: "13.2", epoch: 0, serial: [7; 16], packages: &packages, own: &own });
        let comps = doc["components"].as_array().cloned().unwrap_or_default();
        assert_eq!(comps.len(), 4);
        assert_eq!(comps[0]["type"], "operating-system");
        assert_eq!(comps[2]["properties"][0]["value"], "esp");
        assert_eq!(doc["specVersion"], "1.5");
        let serial = doc["serialNumber"].as_str().unwrap_or_default();
        assert_eq!(serial.len(), "urn:uuid:".len() + 36, "{serial}");
    }
}
