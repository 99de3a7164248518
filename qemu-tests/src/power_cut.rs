//! The update power-cut table (issue 9): an update is run once with its disk frozen at each
//! checkpoint (`Machine::freeze_disk`), then every frozen state is booted on a machine of
//! its own, as if the power had been cut at that instant. A restart passes when GRUB's first
//! choice is the slot expected for that phase and stage 1 verifies it (signature, dm-verity)
//! and hands over to stage 2, with no slot refused on the way: a half-written slot is never
//! even tried.

use crate::image::test_image;
use crate::machine::BOOT_TIMEOUT;
use crate::{Firmware, HarnessError, Machine, MachineConfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where in the update a cut falls, which decides the slot a restart must boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Streaming, reading back, writing the ESP, before the grubenv flip: the old slot.
    Install,
    /// The flip is on disk: the new slot, on trial.
    Flipped,
    /// During the new slot's first boot, before it is committed: it has tries left, so the
    /// new slot again.
    FirstBoot,
    /// Committed: the new slot.
    Committed,
}

/// One frozen state.
#[derive(Debug, Clone)]
pub struct Cut {
    pub at: String,
    pub phase: Phase,
    pub state: PathBuf,
}

/// What a restart from a frozen state did.
#[derive(Debug, Clone, Default)]
pub struct Restart {
    /// GRUB's first choice ("booting slot X").
    pub first_slot: Option<String>,
    /// The version stage 1 verified for it.
    pub version: Option<String>,
    /// Stage 1 handed over to stage 2.
    pub stage2: bool,
    /// A slot refused on the way (stage 1's FATAL line), or no slot bootable.
    pub refused: Option<String>,
    pub secs: f64,
}

impl Restart {
    pub fn passes(&self, slot: &str, version: &str) -> bool {
        self.stage2 && self.refused.is_none() && self.first_slot.as_deref() == Some(slot) && self.version.as_deref() == Some(version)
    }
}

/// Boots `cut`'s disk state on a machine of its own (`name`) until stage 1 hands over to
/// stage 2, a slot is refused, or the boot timeout; then cuts the power.
pub fn restart(name: &str, cut: &Cut) -> Result<Restart, HarnessError> {
    let image = test_image()?;
    let mut cfg = MachineConfig::new(name, &image.disk_path(), Firmware::Bios);
    cfg.disk_state = Some(cut.state.clone());
    // One vCPU: a restart needs no second CPU to boot, and with two, TCG now and then trips
    // the kernel's early text patching (an `Oops: int3` in sched_clock_cpu, then a panic).
    cfg.cpus = 1;
    let t = Instant::now();
    let m = Machine::start(cfg)?;
    let deadline = t + crate::deadline(BOOT_TIMEOUT);
    let mut r = Restart::default();
    loop {
        let log = m.console_log();
        let line = |needle: &str| log.lines().find(|l| l.contains(needle)).map(str::to_owned);
        r.first_slot = line("cairn: booting slot ").map(|l| l.rsplit(' ').next().unwrap_or_default().trim().to_owned());
        r.version = line("is signed (version ").and_then(|l| l.split("(version ").nth(1).map(|v| v.split([',', ')']).next().unwrap_or_default().to_owned()));
        r.refused = line("FATAL").or_else(|| line("no slot is bootable"));
        // GRUB could not load what it chose: it stops at its prompt, with its errors above.
        if log.contains("grub> ") {
            let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
            r.refused = Some(format!("GRUB stopped at its prompt: {}", errors.join(" ")));
        }
        r.stage2 = log.contains("starting stage 2");
        if r.stage2 || r.refused.is_some() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Check(format!("restart after the cut at {:?} did not reach stage 2 within {} s; console log: {}/console.log", cut.at, BOOT_TIMEOUT.as_secs(), m.log_dir().display())));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    r.secs = t.elapsed().as_secs_f64();
    Ok(r)
}

/// The table the test prints.
pub fn table(rows: &[(Cut, Restart, bool)]) -> String {
    let mut out = format!("{:>3}  {:<32} {:<10} {:<6} {:<9} {:<8} {:>6}\n", "#", "power cut at", "phase", "booted", "version", "result", "secs");
    for (i, (cut, r, ok)) in rows.iter().enumerate() {
        out.push_str(&format!(
            "{:>3}  {:<32} {:<10} {:<6} {:<9} {:<8} {:>6.1}{}\n",
            i + 1,
            cut.at,
            format!("{:?}", cut.phase).to_lowercase(),
            r.first_slot.as_deref().unwrap_or("-"),
            r.version.as_deref().unwrap_or("-"),
            if *ok { "ok" } else { "WRONG" },
            r.secs,
            r.refused.as_deref().map(|f| format!("  ({f})")).unwrap_or_default()
        ));
    }
    out
}
