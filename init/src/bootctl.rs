//! Boot control: reading and changing the slot state in grubenv on the ESP.
//!
//! The ESP is mounted only for the moment of the change and unmounted at once, so a power
//! cut almost never finds the FAT file system mounted. grubenv has two copies, each
//! rewritten in place as GRUB itself does (`cairn_updater::grubenv::write_pair`); a copy that
//! does not read is repaired from the other on every change.

use crate::say;
use crate::sys::Sys;
use cairn_updater::grubenv::{self, GrubEnv};
use cairn_updater::slot::ESP_LABEL;
use nix::mount::MsFlags;

#[derive(Debug, thiserror::Error)]
pub enum BootctlError {
    #[error("cannot find the ESP: {0}")]
    Find(#[from] crate::blockdev::BlockError),
    #[error("cannot mount the ESP {dev} at {dir}: {errno}")]
    Mount { dev: String, dir: String, errno: nix::Error },
    #[error("grubenv: {0}")]
    Grubenv(#[from] grubenv::GrubenvError),
}

/// Where the ESP is mounted for a change, and where /dev and /sys are ("", or "/sysroot" in
/// stage 1 after it moved them into the new root).
#[derive(Debug, Clone)]
pub struct EspAccess {
    pub root: String,
    pub mount_dir: String,
}

impl Default for EspAccess {
    fn default() -> Self {
        EspAccess { root: String::new(), mount_dir: "/run/cairn/esp".into() }
    }
}

/// Reads grubenv, lets `change` edit it, and writes both copies back if it changed or if
/// the copies were damaged or out of step. Returns the state after the change.
pub fn update(sys: &dyn Sys, access: &EspAccess, change: impl FnOnce(&mut GrubEnv)) -> Result<GrubEnv, BootctlError> {
    let part = crate::blockdev::wait_for_label(ESP_LABEL, &access.root, std::time::Duration::from_secs(5))?;
    let dev = format!("{}/dev/{}", access.root, part.name);
    let _ = std::fs::create_dir_all(&access.mount_dir);
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    sys.mount(&dev, &access.mount_dir, "vfat", flags, "flush")
        .map_err(|errno| BootctlError::Mount { dev: dev.clone(), dir: access.mount_dir.clone(), errno })?;
    let dir = std::path::Path::new(&access.mount_dir).join("grub");
    let result = (|| {
        let before = grubenv::read_pair(&dir);
        for e in &before.damaged {
            say!("WARNING: {e}; using the {} and repairing the damaged copy", match before.source {
                grubenv::Source::First => "first copy",
                grubenv::Source::Second => "second copy",
                grubenv::Source::Default => "default slot state (both slots good, A first)",
            });
        }
        let mut env = before.env.clone();
        change(&mut env);
        if env != before.env || !before.in_step {
            grubenv::write_pair(&dir, &env)?;
        }
        Ok(env)
    })();
    sys.sync();
    let _ = sys.umount(&access.mount_dir, false);
    result
}
