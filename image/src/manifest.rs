//! `manifest.json`: what a build produced, for tests, the bundle tool and operators.

use crate::debian::Package;
use crate::profile::Profile;
use cairn_updater::gpt::Gpt;
use cairn_updater::verity::VerityInfo;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

pub const FILE: &str = "manifest.json";

#[derive(Debug, Serialize, Deserialize)]
pub struct Artifact {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub label: String,
    pub first_lba: u64,
    pub last_lba: u64,
    pub guid: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SlotInfo {
    pub root_hash: String,
    pub salt: String,
    pub data_blocks: u64,
}

/// What the image is made of, beyond its own artifacts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contents {
    /// The Debian suite of every tree (the slot and the boot-loader tools).
    pub suite: String,
    /// The slot's /etc/debian_version.
    pub debian_version: String,
    /// Every Debian package in the slot, as `dpkg-query -W` lists it on the node.
    pub packages: Vec<Package>,
    /// The suite's GRUB packages the BIOS and UEFI boot loaders were made from.
    pub boot_loader: Vec<Package>,
    /// Build-host packages whose tools wrote bytes into the image, with their versions.
    pub host_tools: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub source_date_epoch: u64,
    pub kernel_version: String,
    pub initramfs_modules: Vec<String>,
    #[serde(flatten)]
    pub contents: Contents,
    pub disk: Artifact,
    pub artifacts: BTreeMap<String, Artifact>,
    pub partitions: Vec<PartitionInfo>,
    pub slots: BTreeMap<String, SlotInfo>,
}

pub fn artifact(dir: &Path, name: &str) -> std::io::Result<Artifact> {
    let (bytes, sha256) = hash_file(&dir.join(name))?;
    Ok(Artifact { path: name.to_owned(), bytes, sha256 })
}

pub fn sha256_of(path: &Path) -> std::io::Result<String> {
    hash_file(path).map(|(_, sha)| sha)
}

fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        h.update(&buf[..n]);
    }
    Ok((bytes, hex::encode(h.finalize())))
}

impl Manifest {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        profile: &Profile,
        epoch: u64,
        out: &Path,
        gpt: &Gpt,
        verity: &VerityInfo,
        kernel_version: &str,
        modules: &[String],
        contents: Contents,
    ) -> std::io::Result<Manifest> {
        let mut artifacts = BTreeMap::new();
        for name in ["root.squashfs", "root.verity", "vmlinuz", "initrd"] {
            artifacts.insert(name.to_owned(), artifact(out, name)?);
        }
        let slot = || SlotInfo { root_hash: verity.root_hash.clone(), salt: verity.salt.clone(), data_blocks: verity.data_blocks };
        Ok(Manifest {
            name: profile.name.clone(),
            version: profile.version.clone(),
            source_date_epoch: epoch,
            kernel_version: kernel_version.to_owned(),
            initramfs_modules: modules.to_vec(),
            contents,
            disk: artifact(out, "disk.img")?,
            artifacts,
            partitions: gpt
                .partitions
                .iter()
                .map(|p| PartitionInfo { label: p.label.clone(), first_lba: p.first_lba, last_lba: p.last_lba, guid: p.part_guid.to_string() })
                .collect(),
            slots: [("a".to_owned(), slot()), ("b".to_owned(), slot())].into_iter().collect(),
        })
    }

    pub fn write(&self, out: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let tmp = out.join(format!("{FILE}.tmp"));
        std::fs::write(&tmp, text + "\n")?;
        std::fs::rename(tmp, out.join(FILE))
    }
}
