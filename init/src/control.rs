//! What the control API (D-Bus, `api.rs`) and `cairnctl` see of the node: plain data types
//! and the [`Control`] trait that the supervisor implements. Keeping this separate lets the
//! API be tested against a fake without booting anything.

use serde::{Deserialize, Serialize};

/// The bus name, object path and interface the control API is served under.
pub const BUS_NAME: &str = "org.cairn.Init1";
pub const OBJECT_PATH: &str = "/org/cairn/Init1";
pub const INTERFACE: &str = "org.cairn.Init1.Manager";

/// One service as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, zvariant::Type)]
pub struct ServiceInfo {
    pub name: String,
    /// `starting`, `running`, `backoff`, `failing`, `stopping`, `stopped`, `exited`,
    /// `not-installed`, `broken`.
    pub state: String,
    /// `ready`, `waiting`, `unhealthy` or `none` (no readiness check defined).
    pub readiness: String,
    /// Main process id, 0 when not running.
    pub pid: u32,
    /// Restarts since boot (never reset; the backoff resets, this count does not).
    pub restarts: u32,
    /// How the last run ended, e.g. `exited with status 1`, `killed by SIGKILL (memory.max)`;
    /// empty if it never ended.
    pub last_exit: String,
    /// Milliseconds until the next start when in backoff, else 0.
    pub next_start_ms: u64,
    /// Why the service is broken or not installed; empty otherwise.
    pub error: String,
    /// Uptime in ms when the service was first started this boot; 0 if never.
    pub first_start_ms: u64,
    /// Uptime in ms when it was first ready this boot; 0 if never.
    pub first_ready_ms: u64,
}

/// The node as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, zvariant::Type)]
pub struct SystemStatus {
    pub slot: String,
    pub version: String,
    pub boot_id: String,
    pub uptime_s: u64,
    pub root_hash: String,
    /// True once the health gate passed and the ready line was printed.
    pub ready: bool,
}

/// What a change request can fail with. The API maps these to D-Bus errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("no service named {0}; `cairnctl services` lists them")]
    NoSuchService(String),
    #[error("service {name} cannot be started: {reason}")]
    CannotStart { name: String, reason: String },
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// What the supervisor offers the control API. Reads are open to every caller; the API
/// checks that the caller is root or in the operator group before calling a change.
pub trait Control: Send + Sync {
    fn status(&self) -> SystemStatus;
    fn services(&self) -> Vec<ServiceInfo>;
    /// The last `lines` lines of a service's output and of PID 1's messages about it,
    /// oldest first.
    fn logs(&self, name: &str, lines: u32) -> Result<Vec<String>, ControlError>;
    fn start(&self, name: &str) -> Result<(), ControlError>;
    fn stop(&self, name: &str) -> Result<(), ControlError>;
    fn restart(&self, name: &str) -> Result<(), ControlError>;
    /// Reboots; `why` goes into the shutdown marker the tracker reads (`eligibility::boots`).
    fn reboot(&self, why: crate::eligibility::boots::Why) -> Result<(), ControlError>;
    fn poweroff(&self) -> Result<(), ControlError>;
}

/// An update install as the API shows it (`UpdateProgress`, `cairnctl update progress`): the
/// last one since boot, as the installing process reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, zvariant::Type)]
pub struct UpdateProgress {
    /// `none` (no install since boot), `installing`, `installed`, `failed`, or `interrupted`
    /// (its process ended without saying how: killed).
    pub state: String,
    /// The installing process (`cairnctl update install`, or the update service).
    pub pid: u32,
    /// The bundle's path or URL.
    pub source: String,
    /// The version installed, once the install ended well.
    pub version: String,
    /// `writing` (download, decode, write and hash in one pass), `reading-back`,
    /// `committing`, `done`; empty before the first byte.
    pub stage: String,
    /// While committing: the step about to start (`kernel`, ..., `grubenv flip`).
    pub step: String,
    /// Payload bytes written (or read back) of `total`.
    pub done: u64,
    pub total: u64,
    /// Bytes per second over the current stage.
    pub rate: u64,
    /// Seconds the current stage still needs at that rate; 0 when not known.
    pub eta_s: u64,
    /// Seconds from the start of the install to its last report.
    pub elapsed_s: u64,
    /// Why it failed, with its causes.
    pub error: String,
}
