//! Frozen disk states: the boot disk exactly as it stood at one instant of a running
//! machine, kept to boot later as if the power had been cut then (the power-cut table of
//! the update tests: one install, stopped at each checkpoint, gives every state to boot).

use super::Machine;
use crate::HarnessError;
use serde_json::json;
use std::path::PathBuf;

impl Machine {
    /// Freezes the boot disk as QEMU holds it now (everything the guest had written; not
    /// what sat in the guest's page cache, which a power cut loses too). QEMU's
    /// `blockdev-snapshot-sync` puts a new, empty overlay on top of the chain, and the file
    /// that was on top is never written again: that file is the frozen state. A machine
    /// started with `MachineConfig::disk_state` set to it boots that state on an overlay of
    /// its own. The frozen files live as long as this machine.
    pub fn freeze_disk(&mut self, name: &str) -> Result<PathBuf, HarnessError> {
        let next = self.dir.join(format!("after-{name}.qcow2"));
        let _ = std::fs::remove_file(&next);
        let q = self.qmp.as_mut().ok_or_else(|| HarnessError::Qmp("QEMU is not running".into()))?;
        q.execute("blockdev-snapshot-sync", json!({"device": "boot", "snapshot-file": next.display().to_string(), "format": "qcow2"}))?;
        let frozen = std::mem::replace(&mut self.top, next);
        self.frozen.push(frozen.clone());
        Ok(frozen)
    }
}
