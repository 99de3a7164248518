//! The GPT disk: partitions laid out at 1 MiB boundaries, content copied in, GRUB's BIOS
//! boot code wired up by hand (no loop devices, no grub-install, no mounting).

use cairn_updater::gpt::{types, Gpt, Guid, Partition};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;
const SECTOR: u64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("partition {label}: its content is {need_mib} MiB but the partition is {have_mib} MiB; raise partitions.{knob} in the profile to at least {need_mib}")]
    TooSmall { label: String, need_mib: u64, have_mib: u64, knob: &'static str },
    #[error("GRUB's BIOS core image is {0} bytes; it must fit the 1 MiB BIOS boot partition")]
    CoreTooBig(u64),
    #[error("GPT: {0}")]
    Gpt(#[from] cairn_updater::gpt::GptError),
}

/// One partition to place: its label, GPT type, size, and the file that fills it (if any).
#[derive(Debug)]
pub struct Part {
    pub label: String,
    pub type_guid: &'static str,
    pub mib: u64,
    pub content: Option<PathBuf>,
    /// Which profile key sizes this partition (for the error message).
    pub knob: &'static str,
}

/// Lays the partitions out from LBA 2048 on, each on a MiB boundary, with 1 MiB at the
/// end for the backup GPT.
pub fn layout(parts: &[Part], seed: &[u8]) -> Result<Gpt, DiskError> {
    let mut lba = MIB / SECTOR;
    let mut partitions = Vec::new();
    for p in parts {
        let sectors = p.mib * MIB / SECTOR;
        partitions.push(Partition {
            label: p.label.clone(),
            type_guid: Guid::parse(p.type_guid)?,
            part_guid: Guid::derive(seed, &format!("partition:{}", p.label)),
            first_lba: lba,
            last_lba: lba + sectors - 1,
            attributes: 0,
        });
        lba += sectors;
    }
    Ok(Gpt { disk_guid: Guid::derive(seed, "disk"), partitions, total_sectors: lba + MIB / SECTOR })
}

pub fn write(path: &Path, gpt: &Gpt, parts: &[Part], bios_boot_img: &Path) -> Result<(), DiskError> {
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| DiskError::Io { what, path, source }
    };
    for (p, g) in parts.iter().zip(&gpt.partitions) {
        if let Some(c) = &p.content {
            let len = std::fs::metadata(c).map_err(io("cannot stat", c))?.len();
            let have = (g.last_lba + 1 - g.first_lba) * SECTOR;
            if len > have {
                return Err(DiskError::TooSmall { label: p.label.clone(), need_mib: len.div_ceil(MIB), have_mib: have / MIB, knob: p.knob });
            }
        }
    }
    let mut disk = File::options().read(true).write(true).create(true).truncate(true).open(path).map_err(io("cannot create", path))?;
    disk.set_len(gpt.total_sectors * SECTOR).map_err(io("cannot size", path))?;
    for (p, g) in parts.iter().zip(&gpt.partitions) {
        if let Some(c) = &p.content {
            let mut src = File::open(c).map_err(io("cannot open", c))?;
            disk.seek(SeekFrom::Start(g.first_lba * SECTOR)).map_err(io("cannot seek", path))?;
            copy_sparse(&mut src, &mut disk).map_err(io("cannot copy into", path))?;
        }
    }
    gpt.write(&mut disk)?;
    if let Some(bios) = gpt.partitions.iter().find(|p| p.type_guid == Guid::parse(types::BIOS_BOOT).unwrap_or(Guid([0; 16]))) {
        let mut boot = [0u8; 512];
        File::open(bios_boot_img).and_then(|mut f| f.read_exact(&mut boot)).map_err(io("cannot read", bios_boot_img))?;
        install_bios_boot(&mut disk, &boot, bios.first_lba).map_err(io("cannot write boot code to", path))?;
    }
    disk.sync_all().map_err(io("cannot sync", path))
}

/// Copies while leaving all-zero 4 KiB blocks as holes, so a mostly empty disk stays small
/// on the build host (the data partition and slot padding are zeros).
fn copy_sparse(src: &mut File, dst: &mut File) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = read_full(src, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        for chunk in buf[..n].chunks(4096) {
            if chunk.iter().all(|&b| b == 0) {
                dst.seek(SeekFrom::Current(chunk.len() as i64))?;
            } else {
                dst.write_all(chunk)?;
            }
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Wires GRUB's BIOS boot path, what grub-bios-setup would do on a real device:
/// - the MBR gets boot.img's code (first 440 bytes; the partition table stays) with the
///   LBA of core.img at offset 0x5c;
/// - core.img's first sector (diskboot) gets the blocklist of the rest of core.img at 0x1f4:
///   start LBA (u64), sector count (u16); the load segment after it stays as shipped.
///
/// core.img must already be in the BIOS boot partition at `core_lba`.
pub fn install_bios_boot(disk: &mut File, boot_img: &[u8; 512], core_lba: u64) -> std::io::Result<()> {
    let mut mbr = [0u8; 512];
    disk.seek(SeekFrom::Start(0))?;
    disk.read_exact(&mut mbr)?;
    mbr[..440].copy_from_slice(&boot_img[..440]);
    mbr[0x5c..0x64].copy_from_slice(&core_lba.to_le_bytes());
    disk.seek(SeekFrom::Start(0))?;
    disk.write_all(&mbr)?;
    Ok(())
}

/// Patches core.img's blocklist before it is copied into the BIOS boot partition.
pub fn patch_core(core: &Path, core_lba: u64) -> Result<(), DiskError> {
    let io = |what| {
        let path = core.to_owned();
        move |source| DiskError::Io { what, path, source }
    };
    let mut img = std::fs::read(core).map_err(io("cannot read"))?;
    let len = img.len() as u64;
    if !(SECTOR..=MIB - SECTOR).contains(&len) {
        return Err(DiskError::CoreTooBig(len));
    }
    let sectors = len.div_ceil(SECTOR);
    let rest = u16::try_from(sectors - 1).map_err(|_| DiskError::CoreTooBig(len))?;
    img[0x1f4..0x1fc].copy_from_slice(&(core_lba + 1).to_le_bytes());
    img[0x1fc..0x1fe].copy_from_slice(&rest.to_le_bytes());
    img.resize((sectors * SECTOR) as usize, 0);
    std::fs::write(core, img).map_err(io("cannot write"))
}
