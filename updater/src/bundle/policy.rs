//! Whether this node may install a bundle whose signed manifest it has read: the same
//! profile, a newer version, not below the stored minimum, payloads that fit.

use super::manifest::{Manifest, PayloadKind, Version};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the bundle is for {bundle:?} images; this node runs {node:?}")]
    Incompatible { bundle: String, node: String },
    #[error("the bundle is version {bundle}, not newer than the running {running}")]
    NotNewer { bundle: Version, running: Version },
    #[error("the bundle is version {bundle}, below the minimum {minimum} this node has committed")]
    BelowMinimum { bundle: Version, minimum: Version },
    #[error("the bundle replaces {min_version} or newer; this node runs {running}")]
    RunningTooOld { min_version: Version, running: Version },
    #[error("payload {kind} is {size} bytes; its partition holds {room}")]
    DoesNotFit { kind: PayloadKind, size: u64, room: u64 },
    #[error("version {0} failed on this node before; install it by hand to try again")]
    FailedBefore(Version),
}

/// What the node knows of itself.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The running image's profile name.
    pub compatible: String,
    pub running: Version,
    /// The stored minimum: raised only when a slot is committed.
    pub minimum: Option<Version>,
    /// Bytes available for each payload (partition sizes; the ESP's free room).
    pub room: BTreeMap<PayloadKind, u64>,
    /// A version that failed its first boots here; not installed again by a poll.
    pub failed: Option<Version>,
}

impl Policy {
    pub fn check(&self, m: &Manifest) -> Result<(), Refusal> {
        if m.compatible != self.compatible {
            return Err(Refusal::Incompatible { bundle: m.compatible.clone(), node: self.compatible.clone() });
        }
        if m.version <= self.running {
            return Err(Refusal::NotNewer { bundle: m.version.clone(), running: self.running.clone() });
        }
        if let Some(min) = self.minimum.as_ref().filter(|min| m.version < **min) {
            return Err(Refusal::BelowMinimum { bundle: m.version.clone(), minimum: min.clone() });
        }
        if self.running < m.min_version {
            return Err(Refusal::RunningTooOld { min_version: m.min_version.clone(), running: self.running.clone() });
        }
        if self.failed.as_ref() == Some(&m.version) {
            return Err(Refusal::FailedBefore(m.version.clone()));
        }
        for p in &m.payloads {
            if let Some(&room) = self.room.get(&p.kind) {
                if p.size > room {
                    return Err(Refusal::DoesNotFit { kind: p.kind, size: p.size, room });
                }
            }
        }
        Ok(())
    }
}
