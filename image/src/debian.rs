//! Debian trees and what is in them: one mmdebstrap call for every tree the build makes (the
//! slot's root and the boot-loader tools tree), and a reader for dpkg's status database.
//!
//! Downloaded .deb files are kept in a cache directory outside the repository (keyed by
//! their file names, which carry name, version and architecture), so a rebuild from a fresh
//! clone downloads nothing that an earlier build on this machine already fetched.

use crate::tool::{self, ToolError};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    #[error("making the {what} tree from Debian {suite} packages failed\n  (a package name that the suite does not have shows up above as `Unable to locate package`)")]
    Mmdebstrap { what: &'static str, suite: String, source: Box<ToolError> },
    #[error("cannot create the package cache {path}")]
    Cache { path: PathBuf, source: std::io::Error },
    #[error("cannot read dpkg's status database {path}")]
    Status { path: PathBuf, source: std::io::Error },
    #[error("dpkg's status database {path} has an entry without {field} (entry {index})")]
    StatusEntry { path: PathBuf, field: &'static str, index: usize },
}

/// Where packages come from and what to install on top of the Essential set.
#[derive(Debug)]
pub struct Tree<'a> {
    /// For messages: "root file system", "boot-loader tools".
    pub what: &'static str,
    pub suite: &'a str,
    /// One-line sources ("deb URI SUITE COMPONENTS"), handed to mmdebstrap as they are.
    pub sources: &'a [String],
    pub packages: &'a [String],
}

/// Runs mmdebstrap into `dir` (which must not exist). The host's apt sources are not used:
/// the suite and its mirrors come from the profile, so a Debian 12 host builds a Debian 13
/// image (the host's debian-archive-keyring verifies both).
pub fn mmdebstrap(tree: &Tree<'_>, dir: &Path, cache: &Path, epoch: u64, log: &Path) -> Result<(), DebianError> {
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).map_err(|source| DebianError::Cache { path: debs.clone(), source })?;
    let mut cmd = Command::new("mmdebstrap");
    cmd.env("SOURCE_DATE_EPOCH", epoch.to_string())
        // mode: mmdebstrap picks "root" as root and "unshare" (user namespaces) otherwise.
        .arg("--variant=essential")
        .arg(format!("--include={}", tree.packages.join(",")))
        // Documentation, manuals and translations are dead weight on a node; the copyright
        // files stay for licence compliance.
        .arg("--dpkgopt=path-exclude=/usr/share/man/*")
        .arg("--dpkgopt=path-exclude=/usr/share/info/*")
        .arg("--dpkgopt=path-exclude=/usr/share/locale/*")
        .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
        .arg("--dpkgopt=path-include=/usr/share/doc/*/copyright")
        .arg("--skip=essential/unlink")
        .arg("--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/")
        .arg(format!("--setup-hook=sync-in {} /var/cache/apt/archives/", debs.display()))
        .arg(format!("--customize-hook=sync-out /var/cache/apt/archives {}", debs.display()))
        .arg(tree.suite)
        .arg(dir)
        .args(tree.sources);
    tool::run(cmd, log).map_err(|source| DebianError::Mmdebstrap { what: tree.what, suite: tree.suite.to_owned(), source: Box::new(source) })
}

/// The sources a suite gets when the profile names none: the suite itself, its stable
/// updates and its security archive, main only.
pub fn default_sources(suite: &str) -> Vec<String> {
    vec![
        format!("deb http://deb.debian.org/debian {suite} main"),
        format!("deb http://deb.debian.org/debian {suite}-updates main"),
        format!("deb http://deb.debian.org/debian-security {suite}-security main"),
    ]
}

/// One installed package, as dpkg records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The source package (for a scanner's advisories, which are per source), and its
    /// version where it differs from the binary's (binNMUs, `Source: x (v)`).
    pub source: String,
    pub source_version: String,
}

/// Every package dpkg considers installed in the tree at `root`, sorted by name.
pub fn installed(root: &Path) -> Result<Vec<Package>, DebianError> {
    let path = root.join("var/lib/dpkg/status");
    let text = std::fs::read_to_string(&path).map_err(|source| DebianError::Status { path: path.clone(), source })?;
    parse_status(&text).map_err(|(field, index)| DebianError::StatusEntry { path, field, index })
}

/// Parses dpkg's status file (RFC 822-style stanzas). Only `install ok installed` entries
/// count: that is what `dpkg-query -W` shows on the node.
pub fn parse_status(text: &str) -> Result<Vec<Package>, (&'static str, usize)> {
    let mut out = Vec::new();
    for (index, stanza) in text.split("\n\n").filter(|s| !s.trim().is_empty()).enumerate() {
        let field = |name: &str| {
            stanza.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')).map(|v| v.trim().to_owned()))
        };
        if field("Status").as_deref() != Some("install ok installed") {
            continue;
        }
        let name = field("Package").ok_or(("Package", index))?;
        let version = field("Version").ok_or(("Version", index))?;
        let architecture = field("Architecture").ok_or(("Architecture", index))?;
        // "Source: name" or "Source: name (version)"; absent means the binary's own.
        let (source, source_version) = match field("Source") {
            None => (name.clone(), version.clone()),
            Some(s) => match s.split_once(" (") {
                Some((n, v)) => (n.to_owned(), v.trim_end_matches(')').to_owned()),
                None => (s, version.clone()),
            },
        };
        out.push(Package { name, version, architecture, source, source_version });
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.3.dfsg+really1.3.1-1+b1\nDescription: compression\n library\n\n\
                          Package: docker.io\nStatus: install ok installed\nArchitecture: amd64\nSource: docker.io (26.1.5+dfsg1-9)\nVersion: 26.1.5+dfsg1-9+b9\n\n\
                          Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n\n\
                          Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 13.8+deb13u1\n";

    #[test]
    fn status_gives_installed_packages_with_their_sources() {
        let got = parse_status(STATUS).unwrap_or_default();
        let names: Vec<&str> = got.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["base-files", "docker.io", "zlib1g"], "config-files-only entries are not installed");
        assert_eq!((got[1].source.as_str(), got[1].source_version.as_str()), ("docker.io", "26.1.5+dfsg1-9"));
        assert_eq!((got[2].source.as_str(), got[2].version.as_str()), ("zlib", "1:1.3.dfsg+really1.3.1-1+b1"));
        assert_eq!((got[0].source.as_str(), got[0].source_version.as_str()), ("base-files", "13.8+deb13u1"));
    }

    #[test]
    fn an_entry_without_a_version_is_an_error() {
        let bad = "Package: x\nStatus: install ok installed\nArchitecture: amd64\n";
        assert_eq!(parse_status(bad), Err(("Version", 0)));
    }
}
