//! dm-verity through the device-mapper ioctls (no veritysetup, no libdevmapper).
//!
//! Three calls on /dev/mapper/control: DM_DEV_CREATE (an empty device), DM_TABLE_LOAD (one
//! "verity" target, read-only), DM_DEV_SUSPEND without the suspend flag (= resume, which
//! makes the loaded table live). The kernel then creates /dev/dm-<minor> in devtmpfs.

use std::os::fd::AsRawFd;

const DM_IOCTL_SIZE: usize = 312;
const DM_NAME_OFFSET: usize = 48;
const DM_UUID_OFFSET: usize = 176;
const DM_READONLY_FLAG: u32 = 1 << 0;
const DM_DEV_CREATE_CMD: u8 = 3;
const DM_DEV_REMOVE_CMD: u8 = 4;
const DM_DEV_SUSPEND_CMD: u8 = 6;
const DM_TABLE_LOAD_CMD: u8 = 9;
const SPEC_SIZE: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum DmError {
    #[error("cannot open /dev/mapper/control (is the dm-mod module loaded?): {0}")]
    Control(std::io::Error),
    #[error("device-mapper {op} for {name:?} failed: {errno}")]
    Ioctl { op: &'static str, name: String, errno: nix::Error },
    #[error("device-mapper name {0:?} is too long")]
    Name(String),
}

/// The header every DM ioctl carries (struct dm_ioctl, version 4.0.0), followed by `payload`.
fn header(name: &str, flags: u32, target_count: u32, payload_len: usize) -> Result<Vec<u8>, DmError> {
    if name.len() >= 128 {
        return Err(DmError::Name(name.into()));
    }
    let mut b = vec![0u8; DM_IOCTL_SIZE + payload_len];
    let total = b.len() as u32;
    b[0..4].copy_from_slice(&4u32.to_ne_bytes()); // version major; minor and patch 0
    b[12..16].copy_from_slice(&total.to_ne_bytes()); // data_size
    b[16..20].copy_from_slice(&(DM_IOCTL_SIZE as u32).to_ne_bytes()); // data_start
    b[20..24].copy_from_slice(&target_count.to_ne_bytes());
    b[28..32].copy_from_slice(&flags.to_ne_bytes());
    b[DM_NAME_OFFSET..DM_NAME_OFFSET + name.len()].copy_from_slice(name.as_bytes());
    let _ = DM_UUID_OFFSET;
    Ok(b)
}

/// One struct dm_target_spec plus its NUL-terminated parameters, padded to 8 bytes.
fn target(start: u64, length: u64, kind: &str, params: &str) -> Vec<u8> {
    let mut t = vec![0u8; SPEC_SIZE];
    t[0..8].copy_from_slice(&start.to_ne_bytes());
    t[8..16].copy_from_slice(&length.to_ne_bytes());
    t[24..24 + kind.len().min(15)].copy_from_slice(&kind.as_bytes()[..kind.len().min(15)]);
    t.extend_from_slice(params.as_bytes());
    t.push(0);
    while !t.len().is_multiple_of(8) {
        t.push(0);
    }
    let next = t.len() as u32;
    t[20..24].copy_from_slice(&next.to_ne_bytes());
    t
}

fn ioctl(fd: &std::fs::File, cmd: u8, buf: &mut [u8], op: &'static str, name: &str) -> Result<(), DmError> {
    let request = nix::request_code_readwrite!(0xfd, cmd, DM_IOCTL_SIZE);
    // SAFETY: `buf` is a live, writable buffer of at least DM_IOCTL_SIZE bytes whose header
    // says (data_size) exactly how many bytes the kernel may read and write.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, buf.as_mut_ptr()) };
    if r < 0 {
        return Err(DmError::Ioctl { op, name: name.into(), errno: nix::Error::last() });
    }
    Ok(())
}

/// Creates a read-only device-mapper device `name` with one target covering `sectors`.
/// Returns the minor number: the device is /dev/dm-<minor>.
pub fn create(name: &str, sectors: u64, kind: &str, params: &str) -> Result<u32, DmError> {
    let ctl = std::fs::OpenOptions::new().read(true).write(true).open("/dev/mapper/control").map_err(DmError::Control)?;
    let mut create = header(name, 0, 0, 0)?;
    ioctl(&ctl, DM_DEV_CREATE_CMD, &mut create, "create", name)?;
    let dev = u64::from_ne_bytes(create[40..48].try_into().unwrap_or([0; 8]));
    // The kernel's huge_encode_dev: minor's low byte in bits 0-7, the rest from bit 20.
    let minor = ((dev & 0xff) | ((dev >> 12) & !0xff)) as u32;

    let spec = target(0, sectors, kind, params);
    let mut load = header(name, DM_READONLY_FLAG, 1, spec.len())?;
    load[DM_IOCTL_SIZE..].copy_from_slice(&spec);
    ioctl(&ctl, DM_TABLE_LOAD_CMD, &mut load, "table load", name)?;

    let mut resume = header(name, 0, 0, 0)?;
    ioctl(&ctl, DM_DEV_SUSPEND_CMD, &mut resume, "resume", name)?;
    Ok(minor)
}

/// Removes the device-mapper device `name` (DM_DEV_REMOVE): it fails with EBUSY while
/// anything holds it open, such as a mounted file system.
pub fn remove(name: &str) -> Result<(), DmError> {
    let ctl = std::fs::OpenOptions::new().read(true).write(true).open("/dev/mapper/control").map_err(DmError::Control)?;
    let mut remove = header(name, 0, 0, 0)?;
    ioctl(&ctl, DM_DEV_REMOVE_CMD, &mut remove, "remove", name)
}

/// The device-mapper devices, as (name, /dev/dm-N), from sysfs.
pub fn list() -> Vec<(String, String)> {
    let Ok(dir) = std::fs::read_dir("/sys/block") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| {
            let dev = e.file_name().to_string_lossy().into_owned();
            let name = std::fs::read_to_string(e.path().join("dm/name")).ok()?;
            Some((name.trim().to_owned(), format!("/dev/{dev}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_spec_is_aligned_and_linked() {
        let t = target(0, 2048, "verity", "1 /dev/a /dev/b");
        assert_eq!(t.len() % 8, 0);
        assert_eq!(u32::from_ne_bytes([t[20], t[21], t[22], t[23]]) as usize, t.len());
        assert_eq!(&t[24..30], b"verity");
        assert_eq!(&t[SPEC_SIZE..SPEC_SIZE + 15], b"1 /dev/a /dev/b");
    }

    #[test]
    fn header_sizes() {
        let h = header("root", DM_READONLY_FLAG, 1, 64).unwrap_or_default();
        assert_eq!(h.len(), DM_IOCTL_SIZE + 64);
        assert_eq!(u32::from_ne_bytes([h[12], h[13], h[14], h[15]]) as usize, DM_IOCTL_SIZE + 64);
        assert_eq!(&h[DM_NAME_OFFSET..DM_NAME_OFFSET + 4], b"root");
        assert!(header(&"x".repeat(200), 0, 0, 0).is_err());
    }
}
