//! The formats clouds and flashing tools take, made from a built `disk.img` and listed in
//! its manifest with size and SHA-256 (`cairn-image formats --image DIR`):
//!
//! | file | for |
//! | --- | --- |
//! | `disk.img.zst` + `disk.img.bmap` | flashing: `bmaptool copy disk.img.zst /dev/sdX` writes only the mapped blocks and checks each range's SHA-256 |
//! | `disk.qcow2` | OpenStack, Proxmox, libvirt (compressed) |
//! | `disk.vhd` | Azure: a fixed VHD, its size a whole number of MiB |
//! | `disk.raw.tar.gz` | Google Compute Engine: `disk.raw` in an old-GNU sparse tarball |
//!
//! Each is made by the tool its users trust (qemu-img, bmaptool, GNU tar) or the zstd
//! library, with fixed timestamps and owners, so two builds give the same bytes.

use crate::manifest::{self, Manifest};
use std::path::Path;
use std::process::Command;

pub const ZST: &str = "disk.img.zst";
pub const BMAP: &str = "disk.img.bmap";
pub const QCOW2: &str = "disk.qcow2";
pub const VHD: &str = "disk.vhd";
pub const GCE: &str = "disk.raw.tar.gz";
pub const ALL: [&str; 5] = [ZST, BMAP, QCOW2, VHD, GCE];

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{dir} has no built image (manifest.json and disk.img): run `cairn-image build` first")]
    NoImage { dir: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("cannot run {tool} (install Debian's {package}: ./dev setup does)")]
    Missing { tool: &'static str, package: &'static str, source: std::io::Error },
    #[error("{tool} failed making {file}: {stderr}")]
    Tool { tool: &'static str, file: &'static str, stderr: String },
    #[error("disk.img is {bytes} bytes, not a whole number of MiB: Azure refuses such a VHD")]
    NotAligned { bytes: u64 },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> FormatError {
    let what = what.into();
    move |source| FormatError::Io { what, source }
}

fn run(cmd: &mut Command, tool: &'static str, package: &'static str, file: &'static str) -> Result<(), FormatError> {
    let out = cmd.output().map_err(|source| FormatError::Missing { tool, package, source })?;
    if !out.status.success() {
        return Err(FormatError::Tool { tool, file, stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned() });
    }
    Ok(())
}

/// Writes every format beside `dir/disk.img` and adds them to `dir/manifest.json`;
/// `progress` hears of each as it is done.
pub fn write_all(dir: &Path, progress: &mut dyn FnMut(&str, &manifest::Artifact)) -> Result<Manifest, FormatError> {
    let text = std::fs::read_to_string(dir.join(manifest::FILE)).map_err(|_| FormatError::NoImage { dir: dir.display().to_string() })?;
    let mut m: Manifest = serde_json::from_str(&text).map_err(|_| FormatError::NoImage { dir: dir.display().to_string() })?;
    let disk = dir.join(&m.disk.path);
    if !m.disk.bytes.is_multiple_of(1 << 20) {
        return Err(FormatError::NotAligned { bytes: m.disk.bytes });
    }
    for name in ALL {
        let _ = std::fs::remove_file(dir.join(name));
        m.artifacts.remove(name);
    }
    // zstd: level 10 with a long window, the file stays sparse-friendly to read back.
    {
        let out = dir.join(ZST);
        let mut src = std::fs::File::open(&disk).map_err(io(format!("cannot read {}", disk.display())))?;
        let dst = std::fs::File::create(&out).map_err(io(format!("cannot create {}", out.display())))?;
        let mut enc = zstd::Encoder::new(dst, 10).map_err(io("zstd"))?;
        enc.long_distance_matching(true).map_err(io("zstd"))?;
        std::io::copy(&mut src, &mut enc).map_err(io(format!("cannot compress into {}", out.display())))?;
        enc.finish().map_err(io(format!("cannot finish {}", out.display())))?.sync_all().map_err(io("sync"))?;
    }
    run(Command::new("bmaptool").args(["create", "-o"]).arg(dir.join(BMAP)).arg(&disk), "bmaptool", "bmap-tools", BMAP)?;
    run(Command::new("qemu-img").args(["convert", "-q", "-c", "-f", "raw", "-O", "qcow2"]).arg(&disk).arg(dir.join(QCOW2)), "qemu-img", "qemu-utils", QCOW2)?;
    // force_size: the VHD's size is the raw disk's exactly, not rounded to a CHS geometry
    // (Azure wants it a whole number of MiB, which the raw disk is).
    run(
        Command::new("qemu-img").args(["convert", "-q", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on"]).arg(&disk).arg(dir.join(VHD)),
        "qemu-img",
        "qemu-utils",
        VHD,
    )?;
    gce(dir, &disk, m.source_date_epoch)?;
    for name in ALL {
        let a = manifest::artifact(dir, name).map_err(io(format!("cannot hash {name}")))?;
        progress(name, &a);
        m.artifacts.insert(name.to_owned(), a);
    }
    m.write(dir).map_err(io("cannot rewrite manifest.json"))?;
    Ok(m)
}

/// GCE's image format: a gzip'd old-GNU tarball holding one sparse file named disk.raw.
fn gce(dir: &Path, disk: &Path, epoch: u64) -> Result<(), FormatError> {
    let stage = dir.join(".gce");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).map_err(io("cannot create .gce"))?;
    // A hard link: the tarball's member is named disk.raw, without a 1 GiB copy.
    std::fs::hard_link(disk, stage.join("disk.raw")).map_err(io("cannot link disk.raw"))?;
    let out = std::fs::File::create(dir.join(GCE)).map_err(io(format!("cannot create {GCE}")))?;
    let mut tar = Command::new("tar")
        .args(["--format=oldgnu", "--sparse", "--owner=0", "--group=0", "--numeric-owner", &format!("--mtime=@{epoch}"), "-C"])
        .arg(&stage)
        .args(["-cf", "-", "disk.raw"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|source| FormatError::Missing { tool: "tar", package: "tar", source })?;
    let gzip = Command::new("gzip").args(["-n", "-6"]).stdin(tar.stdout.take().map_or(std::process::Stdio::null(), std::process::Stdio::from)).stdout(out).output();
    let tar_ok = tar.wait().map(|s| s.success()).unwrap_or(false);
    let _ = std::fs::remove_dir_all(&stage);
    let gzip = gzip.map_err(|source| FormatError::Missing { tool: "gzip", package: "gzip", source })?;
    if !tar_ok || !gzip.status.success() {
        return Err(FormatError::Tool { tool: "tar | gzip", file: GCE, stderr: String::from_utf8_lossy(&gzip.stderr).into_owned() });
    }
    Ok(())
}
