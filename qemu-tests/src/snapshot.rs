//! A node booted to ready once per test process and saved as QEMU's internal snapshot
//! `ready` (savevm); each test that needs a fresh ready node resumes its own copy of it
//! (`-loadvm`) in a few seconds instead of booting through GRUB, stage 1 and every service
//! (about 40 s under TCG). The copy is a whole node: its own disk overlay, RAM and console;
//! only the boot id, machine id and clock position are the same in every copy.

use crate::image::test_image;
use crate::machine::BOOT_TIMEOUT;
use crate::{Firmware, HarnessError, Machine, MachineConfig};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The overlay holding the `ready` snapshot of the test image (booted on first use).
fn ready_overlay() -> Result<PathBuf, HarnessError> {
    READY
        .get_or_init(|| {
            // One per test binary: two binaries never share a file another may be rewriting.
            let exe = std::env::current_exe().ok().and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned())).unwrap_or_else(|| "tests".into());
            let name = format!("ready-snapshot-{}", exe.split('-').next().unwrap_or("tests"));
            let saved = crate::workspace().join("target/qemu-tests").join(format!("{name}.qcow2"));
            let made = (|| {
                let image = test_image()?;
                let mut m = Machine::start(MachineConfig::new(&name, &image.disk_path(), Firmware::Bios))?;
                m.wait_for_ready(BOOT_TIMEOUT)?;
                m.wait_for_agent(Duration::from_secs(60))?;
                m.save_ready_snapshot(&saved)?;
                Ok::<(), HarnessError>(())
            })();
            made.map(|()| saved).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| HarnessError::Check(format!("the ready snapshot could not be made: {e}")))
}

/// A node resumed from the snapshot, without waiting: its console already holds the boot's
/// lines up to the ready line, which the caller's `wait_for_ready` finds at once.
pub fn resume(name: &str) -> Result<Machine, HarnessError> {
    let saved = ready_overlay()?;
    let image = test_image()?;
    let mut cfg = MachineConfig::new(name, &image.disk_path(), Firmware::Bios);
    cfg.start_from = Some(saved);
    Machine::start(cfg)
}

/// A fresh node at ready (BIOS, the test image, the default machine config), resumed from
/// the snapshot; its agent answers. A test that needs other devices, firmware or a first
/// boot of its own boots with `Machine::start` instead.
pub fn ready_machine(name: &str) -> Result<Machine, HarnessError> {
    let m = resume(name)?;
    m.wait_for_ready(BOOT_TIMEOUT)?;
    m.wait_for_agent(Duration::from_secs(60))?;
    Ok(m)
}
