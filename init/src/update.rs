//! Updates on the node (`cairnctl update`): the install engine of `cairn_updater::install`
//! pointed at this node's other slot, with this node's trust and policy. It runs in the
//! `cairnctl` process, as root, never in PID 1; PID 1 only boots what grubenv says.
//!
//! What the node keeps on /data (`STATE`): `tuf/` (the newest TUF root it verified, seeded
//! from the image's), `minimum` (raised only by a committed slot), `failed` (a version that
//! fell back, not installed again by a poll).

use crate::blockdev::{self, PartitionDev};
use crate::sys::Sys;
use cairn_updater::bundle::{self, Manifest, PayloadKind, Policy, Signed, Trust, Version};
use cairn_updater::grubenv::{self, GrubEnv};
use cairn_updater::install::{self, Progress, SlotTarget, ESP_MANIFEST, ESP_SIGNATURES};
use cairn_updater::slot::{Slot, ESP_LABEL};
use cairn_updater::tuf::client::{self, Client, DirFetch};
use nix::mount::MsFlags;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const STATE: &str = "/data/cairn/update";
/// `cairn_updater::slot_trust::KEYRING`, from the root file system.
pub const IMAGE_ROOT: &str = "/etc/cairn/update/root.json";
const RELEASE: &str = "/etc/cairn/release";
/// The running slot's signed version, written by stage 1 once it verified the slot's
/// manifest (absent for an image without an update keyring).
pub const SLOT_VERSION_FILE: &str = "/run/cairn/slot-version";
const ESP_MOUNT: &str = "/run/cairn/esp-update";

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("updates need root")]
    NotRoot,
    #[error("the kernel command line names no slot (cairn.slot=a|b): not booted by Cairn's GRUB?")]
    NoSlot,
    #[error("stage 1 recorded no boot disk")]
    NoBootDisk,
    #[error("this image trusts no update key ({IMAGE_ROOT} is missing: build it with `cairn-image build --update-root`)")]
    NoTrust,
    #[error("the update trust store {STATE}/tuf")]
    Trust(#[source] cairn_updater::tuf::TufError),
    #[error("cannot find the slot's partition")]
    Partition(#[source] blockdev::BlockError),
    #[error("cannot mount the ESP {dev} at {ESP_MOUNT}: {errno}")]
    Mount { dev: String, errno: nix::Error },
    #[error("{what} {}", .path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{RELEASE} has no {0}")]
    Release(&'static str),
    #[error("the slot's signed version {0:?} is not a version")]
    Version(String),
    #[error("installing into slot {0}")]
    Install(Slot, #[source] install::InstallError),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> UpdateError {
    let path = path.to_owned();
    move |source| UpdateError::Io { what, path, source }
}

/// The running slot, from the kernel command line GRUB wrote.
pub fn running_slot() -> Result<Slot, UpdateError> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    crate::cmdline::value(&cmdline, "cairn.slot").and_then(|s| Slot::parse(s).ok()).ok_or(UpdateError::NoSlot)
}

/// Who may sign bundles for this node: the targets role of the newest root it verified.
pub fn trust() -> Result<Trust, UpdateError> {
    let image_root = std::fs::read(IMAGE_ROOT).map_err(|_| UpdateError::NoTrust)?;
    let store = Path::new(STATE).join("tuf");
    Client::<DirFetch>::init(&store, &image_root).map_err(UpdateError::Trust)?;
    let root = client::stored_root(&store).map_err(UpdateError::Trust)?;
    Trust::targets_of(&root).map_err(UpdateError::Trust)
}

fn release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')).map(str::to_owned)
}

fn read_version(path: &str) -> Option<Version> {
    std::fs::read_to_string(path).ok().and_then(|s| Version::parse(s.trim()).ok())
}

/// The boot disk's partition `label`.
fn partition(disk: &str, label: &str) -> Result<PartitionDev, UpdateError> {
    blockdev::wait_for_label(label, "", disk, Duration::from_secs(5)).map_err(UpdateError::Partition)
}

/// The ESP, mounted for as long as this value lives.
struct EspMount<'a> {
    sys: &'a dyn Sys,
}

impl<'a> EspMount<'a> {
    fn mount(sys: &'a dyn Sys, disk: &str, read_only: bool) -> Result<EspMount<'a>, UpdateError> {
        let dev = partition(disk, ESP_LABEL)?.dev_path();
        std::fs::create_dir_all(ESP_MOUNT).map_err(io("cannot create", Path::new(ESP_MOUNT)))?;
        let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if read_only {
            flags |= MsFlags::MS_RDONLY;
        }
        sys.mount(&dev, ESP_MOUNT, "vfat", flags, "flush").map_err(|errno| UpdateError::Mount { dev, errno })?;
        Ok(EspMount { sys })
    }
}

impl Drop for EspMount<'_> {
    fn drop(&mut self) {
        self.sys.sync();
        let _ = self.sys.umount(ESP_MOUNT, false);
    }
}

/// A slot's signed manifest on the ESP, if it has one that verifies.
fn slot_manifest(esp: &Path, slot: Slot, trust: &Trust) -> Option<Result<Manifest, bundle::BundleError>> {
    let dir = esp.join(slot.lower());
    let manifest = std::fs::read(dir.join(ESP_MANIFEST)).ok()?;
    let signatures = std::fs::read(dir.join(ESP_SIGNATURES)).unwrap_or_default();
    Some(Signed { manifest, signatures }.verify(trust))
}

/// The policy of this node: its profile, the running slot's version, what it keeps on /data,
/// the target slot's partition sizes.
fn policy(esp: &Path, running: Slot, trust: &Trust, root: &PartitionDev, verity: &PartitionDev) -> Result<Policy, UpdateError> {
    let release = std::fs::read_to_string(RELEASE).map_err(io("cannot read", Path::new(RELEASE)))?;
    let compatible = release_field(&release, "NAME").ok_or(UpdateError::Release("NAME"))?;
    // A slot's version is its signed manifest's; a slot the image build wrote has none yet
    // and runs the image's own version.
    let running_version = match slot_manifest(esp, running, trust) {
        Some(Ok(m)) => m.version,
        _ => release_field(&release, "VERSION").and_then(|v| Version::parse(&v).ok()).ok_or(UpdateError::Release("VERSION"))?,
    };
    Ok(Policy {
        compatible,
        running: running_version,
        minimum: read_version(&format!("{STATE}/minimum")),
        room: [(PayloadKind::Root, root.size_sectors * 512), (PayloadKind::Verity, verity.size_sectors * 512)].into(),
        failed: None,
    })
}

/// Installs the bundle at `source` (a file, or a block device such as a USB stick the
/// bundle was written to) into the slot that is not running.
pub fn install_from(sys: &dyn Sys, source: &Path, progress: &mut dyn FnMut(Progress)) -> Result<(Slot, Manifest), UpdateError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(UpdateError::NotRoot);
    }
    let running = running_slot()?;
    let target = running.other();
    let disk = blockdev::recorded_boot_disk("").ok_or(UpdateError::NoBootDisk)?;
    let trust = trust()?;
    let (root, verity) = (partition(&disk, target.root_label())?, partition(&disk, target.verity_label())?);
    let file = std::fs::File::open(source).map_err(io("cannot open", source))?;
    let _esp = EspMount::mount(sys, &disk, false)?;
    let esp = Path::new(ESP_MOUNT);
    let policy = policy(esp, running, &trust, &root, &verity)?;
    let roots = client::stored_chain(&Path::new(STATE).join("tuf")).map_err(UpdateError::Trust)?;
    let t = SlotTarget { slot: target, root: root.dev_path().into(), verity: verity.dev_path().into(), esp: esp.to_owned(), roots };
    let m = install::install(std::io::BufReader::with_capacity(1 << 20, file), &trust, &policy, running, &t, progress).map_err(|e| UpdateError::Install(target, e))?;
    Ok((target, m))
}

/// One slot as `cairnctl update status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SlotStatus {
    pub slot: String,
    pub running: bool,
    /// The signed manifest's version, or the image's for a slot without one.
    pub version: Option<String>,
    /// "signed", "unsigned" (written by the image build), or why its signature fails.
    pub signature: String,
    pub bootable: bool,
    pub on_trial: bool,
    pub failed_boots: u32,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct UpdateStatus {
    pub next_boot: Option<String>,
    pub slots: Vec<SlotStatus>,
}

pub fn status(sys: &dyn Sys) -> Result<UpdateStatus, UpdateError> {
    let running = running_slot()?;
    let disk = blockdev::recorded_boot_disk("").ok_or(UpdateError::NoBootDisk)?;
    let trust = trust()?;
    let _esp = EspMount::mount(sys, &disk, true)?;
    let esp = Path::new(ESP_MOUNT);
    let env: GrubEnv = grubenv::read_pair(&esp.join("grub")).env;
    let release = std::fs::read_to_string(RELEASE).unwrap_or_default();
    let slots = Slot::ALL
        .iter()
        .map(|&s| {
            let (version, signature) = match slot_manifest(esp, s, &trust) {
                Some(Ok(m)) => (Some(m.version.to_string()), "signed".to_owned()),
                Some(Err(e)) => (None, format!("bad: {}", crate::log::chain(&e))),
                None => (if s == running { release_field(&release, "VERSION") } else { None }, "unsigned".to_owned()),
            };
            SlotStatus { slot: s.to_string(), running: s == running, version, signature, bootable: env.is_ok(s), on_trial: env.is_on_trial(s), failed_boots: env.failures(s) }
        })
        .collect();
    Ok(UpdateStatus { next_boot: env.next_boot().map(|s| s.to_string()), slots })
}

/// The running slot was committed (marked good) running `version`: no bundle older than it
/// installs from now on. The stored minimum only rises (temporary file, fsync, rename).
pub fn raise_minimum(version: &str) -> Result<Option<Version>, UpdateError> {
    let path = Path::new(STATE).join("minimum");
    let new = Version::parse(version).map_err(|_| UpdateError::Version(version.to_owned()))?;
    if read_version(&path.to_string_lossy()).is_some_and(|old| old >= new) {
        return Ok(None);
    }
    std::fs::create_dir_all(STATE).map_err(io("cannot create", Path::new(STATE)))?;
    client::persist(Path::new(STATE), "minimum", format!("{new}\n").as_bytes()).map_err(UpdateError::Trust)?;
    Ok(Some(new))
}
