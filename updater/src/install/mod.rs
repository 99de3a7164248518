//! The install engine: one bundle into the slot that is not running.
//!
//! The order is what makes a power cut at any point harmless (RAUC's, and the lessons of
//! the devices that bricked; see ../shared/RESEARCH.md):
//! 1. the bundle's signatures, then its manifest against the node's [`Policy`]: a refused
//!    bundle changes nothing at all;
//! 2. the target slot is marked bad in grubenv, before any byte of it changes;
//! 3. the payloads stream into root-X and verity-X (and `X/*.new` on the ESP) while they are
//!    hashed against their signed SHA-256, with no copy of the bundle on disk;
//! 4. each partition is synced, dropped from the page cache and read back: the root image
//!    must give the signed dm-verity root hash, the tree its signed SHA-256 (a disk that
//!    lies is caught here, not at the next boot; [`readback`]);
//! 5. the kernel, initramfs, `slot.cfg`, the chain of newer TUF roots and the signed manifest
//!    are put in place on the ESP;
//! 6. one grubenv write makes X first in ORDER, on trial. Until then the node boots only
//!    the running slot.

mod readback;
mod sink;
#[cfg(test)]
mod tests;

use crate::bundle::{self, BundleError, Manifest, PayloadKind, Policy, Trust};
use crate::grubenv::{self, GrubenvError};
use crate::slot::Slot;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The files a slot keeps on the ESP beside its kernel: the signed manifest, checked again by
/// stage 1 before it trusts the root hash.
pub const ESP_MANIFEST: &str = "manifest.toml";
pub const ESP_SIGNATURES: &str = "manifest.sig";

/// Where the slot being written lives.
#[derive(Debug, Clone)]
pub struct SlotTarget {
    pub slot: Slot,
    /// root-X: a block device on the node, a file in tests.
    pub root: PathBuf,
    /// verity-X.
    pub verity: PathBuf,
    /// The mounted ESP (holding `grub/grubenv` and `a/`, `b/`).
    pub esp: PathBuf,
    /// The TUF roots after the image's first (`N.root.json`, as verified by the node), kept
    /// in `X/roots/` so stage 1 can follow a key rotation ([`crate::slot_trust`]).
    pub roots: Vec<(u64, Vec<u8>)>,
}

impl SlotTarget {
    fn slot_dir(&self) -> PathBuf {
        self.esp.join(self.slot.lower())
    }
    fn grub_dir(&self) -> PathBuf {
        self.esp.join("grub")
    }
}

/// What the engine is doing, for `cairnctl update status` and the progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Writing,
    ReadingBack,
    Committing,
    Done,
}

/// What the commit is about to do: each is reported before it starts, so a progress reader
/// knows exactly which writes have been made (the power-cut test stops the node at each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Renaming `X/vmlinuz.new` over `X/vmlinuz`.
    Kernel,
    Initrd,
    SlotCfg,
    /// The newer TUF roots into `X/roots/`.
    Roots,
    /// The signed manifest and its signatures.
    Manifest,
    /// The one grubenv write that makes the slot bootable.
    Flip,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Kernel => "kernel",
            Step::Initrd => "initrd",
            Step::SlotCfg => "slot.cfg",
            Step::Roots => "roots",
            Step::Manifest => "manifest",
            Step::Flip => "grubenv flip",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub stage: Stage,
    /// Payload bytes written (or read back) so far, of `total`.
    pub done: u64,
    pub total: u64,
    /// While committing: the step about to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the bundle was not installed")]
    Bundle(#[from] BundleError),
    #[error("the slot state in grubenv")]
    Grubenv(#[from] GrubenvError),
    #[error("{what} {}", .path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{kind} read back from {} does not have its signed SHA-256 (a failing disk?)", .path.display())]
    ReadBack { kind: PayloadKind, path: PathBuf },
    #[error("the root image's dm-verity root hash is {found}; the manifest signs {signed}")]
    Verity { found: String, signed: String },
    #[error("slot {0} is the running slot; an update goes into the other one")]
    RunningSlot(Slot),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> InstallError {
    let path = path.to_owned();
    move |source| InstallError::Io { what, path, source }
}

/// Installs `bundle` into `target`; see the module's documentation for the order.
pub fn install(bundle: impl Read, trust: &Trust, policy: &Policy, running: Slot, target: &SlotTarget, progress: &mut dyn FnMut(Progress)) -> Result<Manifest, InstallError> {
    if target.slot == running {
        return Err(InstallError::RunningSlot(running));
    }
    let mut sink = sink::SlotWriter::new(target, policy, progress);
    let result = bundle::read(bundle, trust, &mut sink);
    // An I/O error of the slot's own devices is reported as that, not as a bundle fault.
    let manifest = match result {
        Ok(m) => m,
        Err(e) => return Err(sink.take_error().unwrap_or(InstallError::Bundle(e))),
    };
    let signed = sink.finish()?;
    let progress = sink.progress;

    let total: u64 = [PayloadKind::Root, PayloadKind::Verity].iter().filter_map(|&k| manifest.payload(k)).map(|p| p.size).sum();
    let mut done = 0;
    // The stage's clock starts here, not at its first MiB.
    progress(Progress { stage: Stage::ReadingBack, done, total, step: None });
    readback::check(&manifest, &target.root, &target.verity, &mut |n| {
        done += n;
        progress(Progress { stage: Stage::ReadingBack, done, total, step: None });
    })?;

    let mut step = |s: Step| progress(Progress { stage: Stage::Committing, done: total, total, step: Some(s) });
    let dir = target.slot_dir();
    for (kind, s) in [(PayloadKind::Vmlinuz, Step::Kernel), (PayloadKind::Initrd, Step::Initrd)] {
        step(s);
        rename_durably(&dir.join(format!("{}.new", kind.entry())), &dir.join(kind.entry()))?;
    }
    step(Step::SlotCfg);
    put(&dir, "slot.cfg", format!("set cairn_roothash={}\n", manifest.verity.root_hash).as_bytes())?;
    step(Step::Roots);
    let roots = dir.join(crate::slot_trust::ROOTS_DIR);
    std::fs::create_dir_all(&roots).map_err(io("cannot create", &roots))?;
    for (version, raw) in &target.roots {
        put(&roots, &format!("{version}.root.json"), raw)?;
    }
    sync_dir(&roots)?;
    step(Step::Manifest);
    put(&dir, ESP_MANIFEST, &signed.manifest)?;
    put(&dir, ESP_SIGNATURES, &signed.signatures)?;
    sync_dir(&dir)?;

    // The one write that makes the new slot bootable.
    step(Step::Flip);
    let mut env = grubenv::read_pair(&target.grub_dir()).env;
    env.set_primary(target.slot);
    grubenv::write_pair(&target.grub_dir(), &env)?;
    progress(Progress { stage: Stage::Done, done: total, total, step: None });
    Ok(manifest)
}

/// Writes `name` in `dir` through a temporary file, synced.
fn put(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), InstallError> {
    let tmp = dir.join(format!("{name}.new"));
    let mut f = std::fs::File::create(&tmp).map_err(io("cannot create", &tmp))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io("cannot write", &tmp))?;
    rename_durably(&tmp, &dir.join(name))
}

/// Renames `from` (written and synced) over `to` on the ESP and makes the rename durable.
/// FAT keeps a file's first cluster in its directory entry, and Linux's vfat writes the
/// entry a rename gave the file only when the file's inode is written back, which an fsync
/// of the directory does not do. Until then the entry on disk still names the replaced
/// file's clusters, which the rename freed: a power cut in the next half minute left GRUB
/// reading "invalid cluster 0" for the new kernel and stopping at its prompt (the update
/// power-cut test found it). So the file is synced again under its new name.
fn rename_durably(from: &Path, to: &Path) -> Result<(), InstallError> {
    std::fs::rename(from, to).map_err(io("cannot rename", from))?;
    std::fs::File::open(to).and_then(|f| f.sync_all()).map_err(io("cannot sync", to))
}

fn sync_dir(dir: &Path) -> Result<(), InstallError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("cannot sync", dir))
}
