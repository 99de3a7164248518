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

/// Where the ESP is: on which disk (the boot disk, see `blockdev`), where /dev and /sys are
/// ("", or "/sysroot" in stage 1 after it moved them into the new root), and where it is
/// mounted for a change.
#[derive(Debug, Clone)]
pub struct EspAccess {
    pub disk: String,
    pub root: String,
    pub mount_dir: String,
}

impl EspAccess {
    /// Stage 2's view: the boot disk stage 1 recorded.
    pub fn recorded() -> Option<EspAccess> {
        Some(EspAccess { disk: crate::blockdev::recorded_boot_disk("")?, root: String::new(), mount_dir: "/run/cairn/esp".into() })
    }
}

/// Reads grubenv, lets `change` edit it, and writes both copies back if it changed or if
/// the copies were damaged or out of step. Returns the state after the change.
pub fn update(sys: &dyn Sys, access: &EspAccess, change: impl FnOnce(&mut GrubEnv)) -> Result<GrubEnv, BootctlError> {
    let part = crate::blockdev::wait_for_label(ESP_LABEL, &access.root, &access.disk, std::time::Duration::from_secs(5))?;
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

/// Counts a failed boot of `slot` (see `GrubEnv::record_failed_boot`; `retry`: stage 1's
/// bounded retry of the same slot) and says what the next boot will be. Best effort: the
/// caller is on its way to a reboot.
pub fn record_failed_boot(sys: &dyn Sys, access: &EspAccess, slot: cairn_updater::slot::Slot, retry: bool) {
    let mut after = None;
    match update(sys, access, |env| after = Some(env.record_failed_boot(slot, retry))) {
        Ok(_) => match after {
            Some(grubenv::AfterFailure::Counted { failures, next }) => {
                let next = next.map_or("none (GRUB clears the try flags and retries)".to_owned(), |n| format!("slot {n}"));
                say!("recorded a failed boot of slot {slot} ({failures} of {} in a row); the next boot: {next}", grubenv::BOOT_ATTEMPTS)
            }
            Some(grubenv::AfterFailure::HandOver { failures }) => {
                say!("recorded a failed boot of slot {slot} ({failures} in a row): GRUB skips it from now on and boots slot {}", slot.other())
            }
            None => {}
        },
        Err(e) => say!("could not record the failed boot of slot {slot} ({e}); GRUB's try flag decides the next boot"),
    }
}
