//! A node booted to ready once per test process and saved as QEMU's internal snapshot
//! `ready` (savevm); each test that needs a fresh ready node resumes its own copy of it
//! (`-loadvm`) in a few seconds instead of booting through GRUB, stage 1 and every service
//! (about 40 s under TCG). The copy is a whole node: its own disk overlay, RAM and console;
//! only the boot id, machine id and clock position are the same in every copy.
//!
//! `-loadvm` needs the same devices the snapshot was saved with, so there is one snapshot
//! per [`Setup`] (and per image).

use crate::image::{bundle_drive, test_image};
use crate::machine::BOOT_TIMEOUT;
use crate::{Firmware, HarnessError, Machine, MachineConfig};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The devices a snapshot's machine has besides the boot disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// The default machine config.
    Plain,
    /// The update tests': QEMU's user network (the guest reaches the host as 10.0.2.2) and
    /// the `STICK` bundle attached as a USB stick would be (vdb).
    Networked,
}

/// The bundle a `Networked` node has on its stick.
pub const STICK: &str = "0.3.0";

static READY: [OnceLock<Result<PathBuf, String>>; 2] = [OnceLock::new(), OnceLock::new()];

impl Setup {
    fn index(self) -> usize {
        match self {
            Setup::Plain => 0,
            Setup::Networked => 1,
        }
    }

    /// The machine config of this setup; the stick's copy goes to `dir`.
    fn config(self, name: &str, dir: &Path) -> Result<MachineConfig, HarnessError> {
        let image = test_image()?;
        let mut cfg = MachineConfig::new(name, &image.disk_path(), Firmware::Bios);
        if self == Setup::Networked {
            cfg.network = true;
            cfg.extra_drives.push(bundle_drive(STICK, dir)?);
        }
        Ok(cfg)
    }

    /// Ready, its agent answering, and (networked) its DHCP address from QEMU's user network.
    fn wait_ready(self, m: &Machine) -> Result<(), HarnessError> {
        m.wait_for_ready(BOOT_TIMEOUT)?;
        m.wait_for_agent(Duration::from_secs(60))?;
        if self == Setup::Networked {
            m.wait_until_succeeds("ip -4 addr | grep -q 10.0.2.15", Duration::from_secs(90))?;
        }
        Ok(())
    }
}

/// The overlay holding the `ready` snapshot of the test image in `setup` (booted on first use).
/// It is named by the image's SHA-256, so the test binaries, which run one after another,
/// share it: only the first of them boots (a rebuilt image gets a new one; older ones are
/// removed when it is made).
fn ready_overlay(setup: Setup) -> Result<PathBuf, HarnessError> {
    READY[setup.index()]
        .get_or_init(|| {
            let made = (|| {
                let image = test_image()?;
                let kind = if setup == Setup::Networked { "networked" } else { "plain" };
                let prefix = format!("ready-snapshot-{kind}-");
                let name = format!("{prefix}{}", image.disk.sha256.get(..16).unwrap_or("unknown"));
                let dir = crate::workspace().join("target/qemu-tests");
                let saved = dir.join(format!("{name}.qcow2"));
                if saved.is_file() && saved.with_extension("console.log").is_file() {
                    return Ok(saved);
                }
                for old in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    if old.file_name().to_string_lossy().starts_with(&prefix) {
                        let _ = std::fs::remove_file(old.path());
                    }
                }
                let mut m = Machine::start(setup.config(&name, &dir.join(format!("{name}-stick")))?)?;
                setup.wait_ready(&m)?;
                // Saved under a temporary name and renamed: a run cut short never leaves half
                // a snapshot for the next binary to trust.
                let tmp = dir.join(format!("{name}.saving.qcow2"));
                m.save_ready_snapshot(&tmp)?;
                std::fs::rename(tmp.with_extension("console.log"), saved.with_extension("console.log")).map_err(HarnessError::io("keep the snapshot's console log"))?;
                std::fs::rename(&tmp, &saved).map_err(HarnessError::io("keep the snapshot"))?;
                Ok::<PathBuf, HarnessError>(saved)
            })();
            made.map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| HarnessError::Check(format!("the ready snapshot could not be made: {e}")))
}

/// A node resumed from the snapshot, without waiting: its console already holds the boot's
/// lines up to the ready line, which the caller's `wait_for_ready` finds at once.
pub fn resume(name: &str) -> Result<Machine, HarnessError> {
    resume_in(Setup::Plain, name, Path::new(""))
}

/// A node of `setup` resumed from its snapshot (a networked one's stick copied into `dir`).
pub fn resume_in(setup: Setup, name: &str, dir: &Path) -> Result<Machine, HarnessError> {
    let saved = ready_overlay(setup)?;
    let mut cfg = setup.config(name, dir)?;
    cfg.start_from = Some(saved);
    Machine::start(cfg)
}

/// A fresh node at ready (BIOS, the test image, the default machine config), resumed from
/// the snapshot; its agent answers. A test that needs other devices, firmware or a first
/// boot of its own boots with `Machine::start` instead.
pub fn ready_machine(name: &str) -> Result<Machine, HarnessError> {
    let m = resume(name)?;
    Setup::Plain.wait_ready(&m)?;
    Ok(m)
}
