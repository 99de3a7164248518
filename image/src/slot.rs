//! A slot image: the root file system as squashfs, and its dm-verity hash tree.

use crate::tool::{self, ToolError};
use cairn_updater::verity::{self, VerityInfo, VerityParams};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum SlotImageError {
    #[error("making the squashfs root image failed: {0}")]
    Squashfs(#[source] ToolError),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("building the dm-verity hash tree failed: {0}")]
    Verity(#[from] verity::VerityError),
}

#[derive(Debug)]
pub struct SlotImage {
    pub squashfs: PathBuf,
    pub squashfs_bytes: u64,
    pub hash_tree: PathBuf,
    pub verity: VerityInfo,
}

pub fn build(rootfs: &Path, work: &Path, epoch: u64, params: &VerityParams, log: &Path) -> Result<SlotImage, SlotImageError> {
    let squashfs = work.join("root.squashfs");
    let _ = std::fs::remove_file(&squashfs);
    let mut cmd = Command::new("mksquashfs");
    cmd.arg(rootfs)
        .arg(&squashfs)
        .args(["-noappend", "-no-progress", "-comp", "zstd", "-Xcompression-level", "15", "-b", "256K"])
        // Reproducible: every timestamp is SOURCE_DATE_EPOCH (mksquashfs sorts entries itself).
        // mksquashfs refuses the variable together with these options, so it gets only these.
        .args(["-all-time", &epoch.to_string(), "-mkfs-time", &epoch.to_string()])
        .env_remove("SOURCE_DATE_EPOCH");
    tool::run(cmd, log).map_err(SlotImageError::Squashfs)?;

    // dm-verity works on whole 4 KiB blocks: pad the image with zeros.
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| SlotImageError::Io { what, path, source }
    };
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&squashfs).map_err(io("cannot open", &squashfs))?;
    let len = file.metadata().map_err(io("cannot stat", &squashfs))?.len();
    let padded = len.div_ceil(4096) * 4096;
    file.set_len(padded).map_err(io("cannot pad", &squashfs))?;
    drop(file);

    let hash_tree = work.join("root.verity");
    let mut data = std::io::BufReader::new(std::fs::File::open(&squashfs).map_err(io("cannot open", &squashfs))?);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&hash_tree).map_err(io("cannot create", &hash_tree))?);
    let info = verity::build(&mut data, padded, params, &mut out)?;
    std::io::Write::flush(&mut out).map_err(io("cannot write", &hash_tree))?;
    Ok(SlotImage { squashfs, squashfs_bytes: padded, hash_tree, verity: info })
}
