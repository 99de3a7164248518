//! One booted test machine shared by the read-only checks of a test binary: booting once
//! instead of once per check is most of what such a test costs under TCG.
//!
//! The machine is started by a thread that lives as long as the test process (it parks
//! forever), and QEMU gets SIGKILL when that thread goes (PR_SET_PDEATHSIG, set for every
//! machine in `Machine::launch`), so a shared machine never outlives its test binary even
//! though nothing drops it. Checks that change the node must boot their own.

use crate::image::test_image;
use crate::machine::BOOT_TIMEOUT;
use crate::{Firmware, HarnessError, Machine, MachineConfig};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

static SHARED: OnceLock<Result<Mutex<Machine>, String>> = OnceLock::new();

/// The shared machine, booted to ready with its agent answering (the first caller boots it
/// under `name`, which names its log directory). Callers take turns through the mutex.
pub fn machine(name: &str) -> Result<MutexGuard<'static, Machine>, HarnessError> {
    let shared = SHARED.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let name = name.to_owned();
        let spawned = std::thread::Builder::new().name("shared-machine".into()).spawn(move || {
            let booted = (|| {
                let image = test_image()?;
                let m = Machine::start(MachineConfig::new(&name, &image.disk_path(), Firmware::Bios))?;
                m.wait_for_ready(BOOT_TIMEOUT)?;
                m.wait_for_agent(Duration::from_secs(60))?;
                Ok::<Machine, HarnessError>(m)
            })();
            let _ = tx.send(booted.map_err(|e| e.to_string()));
            // QEMU dies with this thread: keep it until the process exits.
            loop {
                std::thread::park();
            }
        });
        if let Err(e) = spawned {
            return Err(format!("cannot start the shared machine's thread: {e}"));
        }
        rx.recv().map_err(|e| format!("the shared machine's thread ended: {e}")).and_then(|r| r).map(Mutex::new)
    });
    match shared {
        // A check that panicked while holding the machine leaves it usable for the others.
        Ok(m) => Ok(m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)),
        Err(e) => Err(HarnessError::Check(format!("the shared test machine did not boot: {e}"))),
    }
}
