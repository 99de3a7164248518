//! The image profile: one TOML file that says what goes into an image.
//!
//! Unknown keys are errors (`deny_unknown_fields`): a misspelt key must never silently
//! produce a different image from the one the operator asked for.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("profile {path} is not valid: {message}\n  (see image/profiles/default.toml for every accepted key)")]
    Parse { path: PathBuf, message: String },
    #[error("profile {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name, used in the manifest and default output paths.
    pub name: String,
    /// The OS version this image carries (shown at boot, compared by the updater).
    pub version: String,
    /// Install the in-guest test agent. Only test images set this; production never does.
    #[serde(default)]
    pub test_agent: bool,
    /// What stage 1 hands over to: Cairn's stage 2 (the product) or Debian's systemd (only
    /// for the benchmark baseline, which boots a stock Debian root the same way).
    #[serde(default)]
    pub init: Init,
    pub debian: Debian,
    pub kernel: Kernel,
    pub partitions: Partitions,
    #[serde(default)]
    pub services: Services,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    #[default]
    Cairn,
    Systemd,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Debian {
    /// The Debian release every tree of the image comes from (the slot's root and the
    /// boot-loader tools), whatever the build host runs.
    pub suite: String,
    /// apt sources, one-line form ("deb URI SUITE COMPONENTS"). Default: the suite, its
    /// -updates and its -security archive on deb.debian.org, main only.
    #[serde(default)]
    pub sources: Option<Vec<String>>,
    /// Debian packages installed on top of the Essential set.
    pub packages: Vec<String>,
}

impl Debian {
    pub fn sources(&self) -> Vec<String> {
        self.sources.clone().unwrap_or_else(|| crate::debian::default_sources(&self.suite))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    /// Modules the initramfs loads, in order; each is preceded by its modules.dep closure.
    pub modules: Vec<String>,
    /// Hardware drivers the initramfs carries and stage 1 loads for the devices it finds
    /// (by modalias): module paths under /lib/modules/<version>/ or their prefixes, such
    /// as "kernel/drivers/ata/". Default: none (the cloud images list theirs in `modules`).
    #[serde(default)]
    pub drivers: Vec<String>,
    /// Kernel command line; cairn.slot and cairn.roothash are appended per slot.
    pub cmdline: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partitions {
    /// MiB of the EFI system partition (GRUB, grubenv, each slot's kernel and initramfs).
    pub esp: u64,
    /// MiB of each root slot (the squashfs image; its verity tree gets its own partition).
    pub root: u64,
    /// MiB of the data partition in the image; it grows to the disk on first boot.
    pub data: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Services {
    /// Service definitions (from image/services/) installed and started at boot.
    #[serde(default)]
    pub enabled: Vec<String>,
}

impl Profile {
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Profile, ProfileError> {
        let profile: Profile = toml::from_str(text).map_err(|e| ProfileError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        profile.validate(path)?;
        Ok(profile)
    }

    fn validate(&self, path: &Path) -> Result<(), ProfileError> {
        let invalid = |message: String| ProfileError::Invalid { path: path.to_owned(), message };
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(invalid(format!("name {:?} must be non-empty letters, digits, '-' or '_'", self.name)));
        }
        if self.version.is_empty() || self.version.contains(char::is_whitespace) {
            return Err(invalid(format!("version {:?} must be non-empty without spaces", self.version)));
        }
        for (what, mib, min) in [("esp", self.partitions.esp, 32), ("root", self.partitions.root, 16), ("data", self.partitions.data, 16)] {
            if mib < min {
                return Err(invalid(format!("partitions.{what} = {mib} MiB is below the minimum of {min} MiB")));
            }
        }
        if !self.debian.packages.iter().any(|p| p.starts_with("linux-image-")) {
            return Err(invalid("debian.packages must include a kernel (linux-image-...)".into()));
        }
        for p in &self.debian.packages {
            if p.is_empty() || p.contains(char::is_whitespace) || p.contains(',') {
                return Err(invalid(format!("package name {p:?} is not a Debian package name")));
            }
        }
        if self.debian.suite.is_empty() || !self.debian.suite.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(invalid(format!("debian.suite {:?} is not a Debian suite name (e.g. \"trixie\")", self.debian.suite)));
        }
        if let Some(sources) = &self.debian.sources {
            if sources.is_empty() || sources.iter().any(|s| !s.starts_with("deb ") || s.split_whitespace().count() < 4) {
                return Err(invalid("debian.sources lines must read \"deb URI SUITE COMPONENT...\"".into()));
            }
        }
        if self.kernel.cmdline.contains("cairn.") {
            return Err(invalid("kernel.cmdline must not set cairn.* parameters; the image tool sets them per slot".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_text() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/default.toml")).unwrap_or_default()
    }

    #[test]
    fn shipped_profiles_parse() {
        for p in ["default", "test", "baseline-debian"] {
            let path = PathBuf::from(format!("{}/profiles/{p}.toml", env!("CARGO_MANIFEST_DIR")));
            assert!(Profile::load(&path).is_ok(), "{p}: {:?}", Profile::load(&path).err());
        }
    }

    #[test]
    fn unknown_key_is_an_error() {
        let text = default_text().replace("[partitions]", "[partitions]\nswap = 1024");
        let err = Profile::parse(&text, Path::new("x.toml")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("unknown field") && err.contains("swap"), "{err}");
    }

    #[test]
    fn tiny_partition_is_an_error() {
        let text = default_text().replace("root = 512", "root = 4");
        assert!(Profile::parse(&text, Path::new("x.toml")).is_err());
    }
}
