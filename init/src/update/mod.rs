//! Updates on the node (`cairnctl update`): the install engine of `cairn_updater::install`
//! pointed at this node's other slot, with this node's trust and policy. It runs in the
//! `cairnctl` process, as root, never in PID 1; PID 1 only boots what grubenv says.
//!
//! What the node keeps on /data (`STATE`): `tuf/` (the newest TUF root it verified, seeded
//! from the image's), `minimum` (raised only by a committed slot), `failed` (a version that
//! fell back, not installed again by a poll).

mod check;
pub mod lock;
mod poll;
pub mod progress;

pub use check::{check, Check, HeldBack, Offer};
pub use poll::{poll, seed};

use crate::blockdev::{self, PartitionDev};
use crate::sys::Sys;
use cairn_updater::bundle::{self, Manifest, PayloadKind, Policy, Signed, Trust, Version};
use cairn_updater::grubenv::{self, GrubEnv};
use cairn_updater::install::{self, Progress, SlotTarget, ESP_MANIFEST, ESP_SIGNATURES};
use cairn_updater::slot::{Slot, ESP_LABEL};
use cairn_updater::download;
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
/// This boot's install lock and progress report (`lock`, `progress`).
pub const RUN: &str = "/run/cairn/update";
/// The last failed trial (`Failure`), in `STATE`.
const FAILED: &str = "failed.json";

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
    #[error("{} is not a valid update configuration", .0.display())]
    Config(PathBuf, #[source] toml::de::Error),
    #[error("no update repository: pass --repo URL or set `repository` in {STATE}/config.toml")]
    NoRepository,
    #[error("the repository offers nothing newer than the running {running} for this node{}", .failed.as_ref().map(|v| format!(" ({v} failed its trial here; `cairnctl update status` says why)")).unwrap_or_default())]
    UpToDate { running: String, failed: Option<String> },
    #[error("the slot's signed version {0:?} is not a version")]
    Version(String),
    #[error("installing into slot {0}")]
    Install(Slot, #[source] install::InstallError),
    #[error("the update configuration's reboot policy")]
    Reboot(#[source] cairn_updater::reboot::PolicyError),
    #[error("cannot use {} (`ca_file`) as the repository's CA certificates", .path.display())]
    Ca { path: PathBuf, source: download::CaError },
    #[error("the install lock")]
    Lock(#[from] lock::LockError),
    #[error("the reboot into the new slot was refused: {0}")]
    RebootRequest(String),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> UpdateError {
    let path = path.to_owned();
    move |source| UpdateError::Io { what, path, source }
}

/// The running slot: the kernel command line's, or the one a soft reboot started.
pub fn running_slot() -> Result<Slot, UpdateError> {
    crate::soft_reboot::running().0.ok_or(UpdateError::NoSlot)
}

/// The node's TUF store (`STATE/tuf`), seeded with the image's root the first time.
fn seed_store() -> Result<PathBuf, UpdateError> {
    let image_root = std::fs::read(IMAGE_ROOT).map_err(|_| UpdateError::NoTrust)?;
    let store = Path::new(STATE).join("tuf");
    Client::<DirFetch>::init(&store, &image_root).map_err(UpdateError::Trust)?;
    Ok(store)
}

/// Who may sign bundles for this node: the targets role of the newest root it verified.
pub fn trust() -> Result<Trust, UpdateError> {
    let root = client::stored_root(&seed_store()?).map_err(UpdateError::Trust)?;
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
        failed: last_failure().and_then(|f| Version::parse(&f.version).ok()),
    })
}

/// Where a bundle comes from: a file or a block device (a USB stick it was written to), or
/// a URL (resumed after a dropped connection; with the TUF target's length and SHA-256 when
/// it came from the repository).
#[derive(Debug, Clone)]
pub enum Source {
    Path(PathBuf),
    Url { url: String, expected: Option<(u64, String)> },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Path(p) => write!(f, "{}", p.display()),
            Source::Url { url, .. } => f.write_str(url),
        }
    }
}

impl Source {
    pub fn parse(s: &str) -> Source {
        if s.starts_with("http://") || s.starts_with("https://") {
            Source::Url { url: s.to_owned(), expected: None }
        } else {
            Source::Path(s.into())
        }
    }
}

/// Installs the bundle from `source` into the slot that is not running, one install at a
/// time (`lock`), reporting its progress for the API (`progress`) and to `progress`.
/// `on_event` hears of downloads resumed after a drop.
pub fn install_from(sys: &dyn Sys, source: &Source, progress: &mut dyn FnMut(Progress), on_event: &mut dyn FnMut(download::Event)) -> Result<(Slot, Manifest), UpdateError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(UpdateError::NotRoot);
    }
    let _lock = lock::Lock::take(Path::new(RUN))?;
    let mut tracker = progress::Tracker::start(Path::new(RUN), &source.to_string());
    let result = install_locked(sys, source, &mut |p| {
        tracker.update(p);
        progress(p);
    }, on_event);
    tracker.finish(match &result {
        Ok((_, m)) => Ok(m.version.to_string()),
        Err(e) => Err(crate::log::chain(e)),
    });
    result
}

fn install_locked(sys: &dyn Sys, source: &Source, progress: &mut dyn FnMut(Progress), on_event: &mut dyn FnMut(download::Event)) -> Result<(Slot, Manifest), UpdateError> {
    let running = running_slot()?;
    let target = running.other();
    let disk = blockdev::recorded_boot_disk("").ok_or(UpdateError::NoBootDisk)?;
    let trust = trust()?;
    let (root, verity) = (partition(&disk, target.root_label())?, partition(&disk, target.verity_label())?);
    let input: Box<dyn std::io::Read + '_> = match source {
        Source::Path(p) => Box::new(std::fs::File::open(p).map_err(io("cannot open", p))?),
        Source::Url { url, expected } => Box::new(download::Resuming::new(url, expected.clone(), on_event)),
    };
    // A version that failed here before is installed again only by hand (a path, or a URL
    // the operator gave), never because the repository offers it.
    let by_hand = !matches!(source, Source::Url { expected: Some(_), .. });
    let _esp = EspMount::mount(sys, &disk, false)?;
    let esp = Path::new(ESP_MOUNT);
    let mut policy = policy(esp, running, &trust, &root, &verity)?;
    if by_hand {
        policy.failed = None;
    }
    let roots = client::stored_chain(&Path::new(STATE).join("tuf")).map_err(UpdateError::Trust)?;
    let t = SlotTarget { slot: target, root: root.dev_path().into(), verity: verity.dev_path().into(), esp: esp.to_owned(), roots };
    let m = install::install(std::io::BufReader::with_capacity(1 << 20, input), &trust, &policy, running, &t, progress).map_err(|e| UpdateError::Install(target, e))?;
    // A new trial of a version that failed here before (installed by hand): the old record
    // is not about this trial, whose own failure, if any, will be recorded afresh.
    if last_failure().is_some_and(|f| f.version == m.version.to_string()) {
        let path = Path::new(STATE).join(FAILED);
        std::fs::remove_file(&path).map_err(io("cannot remove", &path))?;
    }
    Ok((target, m))
}

/// The node's update settings: `/data/cairn/update/config.toml` (the operator's) over
/// `/etc/cairn/update/config.toml` (the image's).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The TUF repository's base URL (holding `metadata/` and `targets/`).
    pub repository: Option<String>,
    /// Seconds between polls of `cairnctl update poll` (the update service), give or take a
    /// quarter; default 6 hours.
    pub poll_interval_s: Option<u64>,
    /// When an installed update reboots: "now", "confirm" (`cairnctl update reboot`), or a
    /// daily UTC window like "03:00-05:00" (the default).
    pub reboot: Option<String>,
    /// PEM certificates that the repository's HTTPS server is verified against instead of
    /// the public web roots: a private mirror with its own CA. (The TUF signatures are
    /// checked either way; this only decides which servers a node talks to.)
    pub ca_file: Option<PathBuf>,
    /// An update whose kernel and initramfs are the running slot's starts by a soft reboot
    /// (services restart, the kernel and its uptime carry on); `false`: always reboot fully.
    pub soft_reboot: Option<bool>,
    /// Under a window policy, a full reboot for a release without a security deadline waits
    /// until the OS has been up this many days (default 60), batching kernel releases.
    pub kernel_after_days: Option<u64>,
}

/// The update service's default: nodes of a fleet spread their polls over six hours.
pub const DEFAULT_POLL_INTERVAL_S: u64 = 6 * 3600;
/// The default reboot policy: the small hours, UTC.
pub const DEFAULT_REBOOT: &str = "03:00-05:00";

impl Config {
    /// Makes this process verify HTTPS against `ca_file`, if the configuration names one.
    pub fn apply_tls(&self) -> Result<(), UpdateError> {
        let Some(path) = &self.ca_file else { return Ok(()) };
        let pem = std::fs::read(path).map_err(io("cannot read the repository's CA certificates", path))?;
        download::trust_only(&pem).map_err(|source| UpdateError::Ca { path: path.clone(), source })?;
        Ok(())
    }

    pub fn reboot_policy(&self) -> Result<cairn_updater::reboot::Policy, UpdateError> {
        cairn_updater::reboot::Policy::parse(self.reboot.as_deref().unwrap_or(DEFAULT_REBOOT)).map_err(UpdateError::Reboot)
    }
}

pub fn config() -> Result<Config, UpdateError> {
    for path in [format!("{STATE}/config.toml"), "/etc/cairn/update/config.toml".to_owned()] {
        let path = PathBuf::from(path);
        match std::fs::read_to_string(&path) {
            Ok(text) => return toml::from_str(&text).map_err(|e| UpdateError::Config(path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("cannot read", &path)(e)),
        }
    }
    Ok(Config::default())
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
    /// Boots GRUB will still give it if it dies before its health gate (on trial only).
    pub tries_left: u32,
    pub failed_boots: u32,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct UpdateStatus {
    pub next_boot: Option<String>,
    pub slots: Vec<SlotStatus>,
    /// The last slot trial that failed on this node, and why.
    pub last_failure: Option<Failure>,
}

/// A slot's trial that failed (`STATE/failed.json`): its version is not installed again from
/// the repository, and `cairnctl update status` says why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    pub version: String,
    pub slot: String,
    pub reason: String,
}

pub fn last_failure() -> Option<Failure> {
    std::fs::read(Path::new(STATE).join(FAILED)).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

pub fn record_failure(f: &Failure) -> Result<(), UpdateError> {
    std::fs::create_dir_all(STATE).map_err(io("cannot create", Path::new(STATE)))?;
    let mut bytes = serde_json::to_vec_pretty(f).unwrap_or_default();
    bytes.push(b'\n');
    client::persist(Path::new(STATE), FAILED, &bytes).map_err(UpdateError::Trust)
}

/// `slot`'s version from its signed manifest on the ESP (verified), if it has one.
pub fn signed_version(sys: &dyn Sys, slot: Slot) -> Option<String> {
    let disk = blockdev::recorded_boot_disk("")?;
    let trust = trust().ok()?;
    let _esp = EspMount::mount(sys, &disk, true).ok()?;
    slot_manifest(Path::new(ESP_MOUNT), slot, &trust)?.ok().map(|m| m.version.to_string())
}

/// The health gate a slot on trial must pass before it is committed:
/// `/data/cairn/update/gate.toml` (the operator's) over `/etc/cairn/update/gate.toml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// The services that must have been ready; default: every service that starts at boot.
    #[serde(default)]
    pub services: Option<Vec<String>>,
    /// Seconds from stage 2's start. A slot on trial that misses it falls back; a committed
    /// slot is marked good anyway (it has proved itself before; the gate is for new ones).
    #[serde(default = "Gate::default_deadline")]
    pub deadline_s: u64,
    /// The operator's own check, run once those services are ready: a program and its
    /// arguments (`["/usr/local/bin/fluxd-synced"]`), as root, with no input or output. The
    /// gate holds once it exits 0; it is tried again every few seconds until the deadline.
    #[serde(default)]
    pub check: Option<Vec<String>>,
    /// A run of `check` that takes longer is killed and counts as failed.
    #[serde(default = "Gate::default_check_timeout")]
    pub check_timeout_s: u64,
}

impl Gate {
    fn default_deadline() -> u64 {
        180
    }

    fn default_check_timeout() -> u64 {
        30
    }
}

impl Default for Gate {
    fn default() -> Gate {
        Gate { services: None, deadline_s: Gate::default_deadline(), check: None, check_timeout_s: Gate::default_check_timeout() }
    }
}

/// The gate in force, and a warning for each file that was ignored (a broken operator file
/// leaves the image's gate, or the default, in force).
pub fn gate() -> (Gate, Vec<String>) {
    let mut warnings = Vec::new();
    for path in [format!("{STATE}/gate.toml"), "/etc/cairn/update/gate.toml".to_owned()] {
        match std::fs::read_to_string(&path) {
            Ok(text) => match toml::from_str::<Gate>(&text) {
                Ok(g) => return (g, warnings),
                Err(e) => warnings.push(format!("{path} is not a valid health gate ({}); ignoring it", e.message())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warnings.push(format!("cannot read {path}: {e}; ignoring it")),
        }
    }
    (Gate::default(), warnings)
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
            SlotStatus { slot: s.to_string(), running: s == running, version, signature, bootable: env.is_ok(s), on_trial: env.is_on_trial(s), tries_left: env.tries_left(s), failed_boots: env.failures(s) }
        })
        .collect();
    Ok(UpdateStatus { next_boot: env.next_boot().map(|s| s.to_string()), slots, last_failure: last_failure() })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_file_names_services_and_a_deadline_and_typos_are_refused() {
        let g: Gate = toml::from_str("services = [\"fluxd\"]\ndeadline_s = 60\ncheck = [\"/usr/local/bin/fluxd-synced\", \"-q\"]\n").expect("gate");
        assert_eq!(g, Gate { services: Some(vec!["fluxd".into()]), deadline_s: 60, check: Some(vec!["/usr/local/bin/fluxd-synced".into(), "-q".into()]), check_timeout_s: 30 });
        assert_eq!(toml::from_str::<Gate>("").expect("empty"), Gate::default());
        assert!(toml::from_str::<Gate>("deadline = 60\n").is_err(), "an unknown key is an error, not a silent default");
    }

    #[test]
    fn up_to_date_says_when_a_newer_version_failed_here() {
        let e = UpdateError::UpToDate { running: "0.1.0".into(), failed: Some("0.2.0".into()) };
        assert_eq!(e.to_string(), "the repository offers nothing newer than the running 0.1.0 for this node (0.2.0 failed its trial here; `cairnctl update status` says why)");
    }
}
