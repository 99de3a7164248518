//! `cairnctl update check`: what the repository offers this node. The TUF client workflow
//! refreshes the metadata (rotations followed, expired or replayed metadata refused); then
//! the newest target for this node's profile is picked, above the running version and the
//! stored minimum, not a version that failed its trial here, not the one already installed
//! and waiting for its reboot, and only once its rollout wave has reached this node's seed.

use super::{partition, policy, running_slot, seed, seed_store, slot_manifest, EspMount, UpdateError, ESP_MOUNT};
use crate::blockdev;
use crate::sys::Sys;
use cairn_updater::bundle::{Policy, Trust, Version};
use cairn_updater::download;
use cairn_updater::grubenv;
use cairn_updater::rollout::Rollout;
use cairn_updater::tuf::client::Client;
use cairn_updater::tuf::metadata::TargetFile;
use std::collections::BTreeMap;
use std::path::Path;

/// A release the repository offers this node.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Offer {
    pub name: String,
    pub version: String,
    pub security: bool,
    pub url: String,
    pub length: u64,
    pub sha256: String,
}

/// A newer release whose rollout has not reached this node yet.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeldBack {
    pub version: String,
    /// The share of nodes it is open to now, in per cent.
    pub open_percent: u8,
    /// When this node's wave opens (UTC), if the rollout ever reaches it.
    pub from: Option<String>,
    /// The offer, for an operator who installs it ahead of its wave (`cairnctl update install`).
    #[serde(skip)]
    pub offer: Offer,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub repository: String,
    pub running: String,
    /// The newest release this node would install, if any.
    pub offer: Option<Offer>,
    /// Metadata versions verified (root, timestamp, snapshot, targets).
    pub metadata: [u64; 4],
    /// A version that failed its trial here: never offered (install it by hand to retry).
    pub failed: Option<String>,
    /// The version installed in the other slot and waiting for its reboot: not offered again.
    pub pending: Option<String>,
    /// A newer release this node's rollout wave has not reached yet.
    pub held_back: Option<HeldBack>,
    /// This node's rollout seed (0..10000; the first 5% of a rollout are seeds below 500).
    pub seed: u16,
}

/// Refreshes the TUF metadata from `repository` and picks what this node would install.
pub fn check(sys: &dyn Sys, repository: &str) -> Result<Check, UpdateError> {
    let running = running_slot()?;
    let disk = blockdev::recorded_boot_disk("").ok_or(UpdateError::NoBootDisk)?;
    let store = seed_store()?;
    let now = cairn_updater::tuf::time::now();
    let trusted = Client::new(download::Http::new(repository), &store, now).refresh().map_err(UpdateError::Trust)?;
    let trust = Trust::targets_of(&trusted.root).map_err(UpdateError::Trust)?;
    let target = running.other();
    let (root, verity) = (partition(&disk, target.root_label())?, partition(&disk, target.verity_label())?);
    let (policy, pending) = {
        let _esp = EspMount::mount(sys, &disk, true)?;
        let esp = Path::new(ESP_MOUNT);
        let env = grubenv::read_pair(&esp.join("grub")).env;
        let pending = (env.is_on_trial(target) && env.is_ok(target)).then(|| slot_manifest(esp, target, &trust)).flatten().and_then(Result::ok).map(|m| m.version);
        (policy(esp, running, &trust, &root, &verity)?, pending)
    };
    let seed = seed()?;
    let (offer, held_back) = pick(&trusted.targets.targets, &policy, pending.as_ref(), seed, now, |name, file| download::join(repository, &trusted.target_path(name, file)));
    Ok(Check {
        repository: repository.to_owned(),
        running: policy.running.to_string(),
        offer,
        metadata: [trusted.root.version, trusted.timestamp.version, trusted.snapshot.version, trusted.targets.version],
        failed: policy.failed.map(|v| v.to_string()),
        pending: pending.map(|v| v.to_string()),
        held_back,
        seed,
    })
}

/// The newest target this node would install now, and the newest newer one its rollout wave
/// has not reached. `url` gives a target's download URL.
fn pick(targets: &BTreeMap<String, TargetFile>, policy: &Policy, pending: Option<&Version>, seed: u16, now: i64, url: impl Fn(&str, &TargetFile) -> String) -> (Option<Offer>, Option<HeldBack>) {
    let mut best: Option<(Version, Offer)> = None;
    let mut held: Option<(Version, HeldBack)> = None;
    for (name, file) in targets {
        let Some(c) = file.custom.as_ref().and_then(|c| c.get("cairn")) else { continue };
        let Some(version) = c.get("version").and_then(|v| v.as_str()).and_then(|v| Version::parse(v).ok()) else { continue };
        if c.get("compatible").and_then(|v| v.as_str()) != Some(policy.compatible.as_str())
            || version <= policy.running
            || policy.minimum.as_ref().is_some_and(|m| version < *m)
            || policy.failed.as_ref() == Some(&version)
            || pending == Some(&version)
            || best.as_ref().is_some_and(|(v, _)| version <= *v)
        {
            continue;
        }
        let Some(sha256) = file.sha256() else { continue };
        let offer = Offer {
            name: name.clone(),
            version: version.to_string(),
            security: c.get("security").and_then(|v| v.as_bool()).unwrap_or(false),
            url: url(name, file),
            length: file.length,
            sha256: sha256.to_owned(),
        };
        // A rollout that does not parse (a publisher's mistake) holds the release back.
        match c.get("rollout").map(|r| serde_json::from_value::<Rollout>(r.clone()).ok()) {
            None => {}
            Some(Some(r)) if r.admits(seed, now) => {}
            Some(r) => {
                if held.as_ref().is_none_or(|(v, _)| version > *v) {
                    let (open_percent, from) = r.map_or((0, None), |r| (r.open_percent(now), r.admits_from(seed).map(cairn_updater::tuf::time::format)));
                    held = Some((version.clone(), HeldBack { version: version.to_string(), open_percent, from, offer }));
                }
                continue;
            }
        }
        best = Some((version, offer));
    }
    // A held-back release older than the one offered is moot.
    let held = held.filter(|(v, _)| best.as_ref().is_none_or(|(b, _)| v > b)).map(|(_, h)| h);
    (best.map(|(_, o)| o), held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(version: &str, rollout: Option<serde_json::Value>) -> TargetFile {
        let mut custom = serde_json::json!({"cairn": {"version": version, "compatible": "test"}});
        if let Some(r) = rollout {
            custom["cairn"]["rollout"] = r;
        }
        TargetFile { length: 1, hashes: [("sha256".to_owned(), "00".repeat(32))].into(), custom: Some(custom) }
    }

    fn policy(failed: Option<&str>) -> Policy {
        Policy { compatible: "test".into(), running: Version::parse("0.1.0").expect("v"), minimum: None, room: Default::default(), failed: failed.map(|v| Version::parse(v).expect("v")) }
    }

    #[test]
    fn the_newest_admitted_release_is_offered_and_a_newer_one_in_a_later_wave_is_held_back() {
        let waves = |pct: u8| serde_json::to_value(Rollout::parse(&format!("{pct}@0h,100@48h"), 1_000).expect("rollout")).expect("json");
        let targets: BTreeMap<String, TargetFile> =
            [("a".to_owned(), target("0.2.0", None)), ("b".to_owned(), target("0.3.0", Some(waves(5)))), ("c".to_owned(), target("0.0.9", None))].into();
        let url = |n: &str, _: &TargetFile| format!("http://r/{n}");
        // Seed 9999: 0.3.0 waits for its second wave; 0.2.0 (no rollout) is offered.
        let (offer, held) = pick(&targets, &policy(None), None, 9_999, 2_000, url);
        assert_eq!(offer.map(|o| o.version), Some("0.2.0".into()));
        let held = held.expect("held back");
        assert_eq!((held.version.as_str(), held.open_percent, held.from.as_deref()), ("0.3.0", 5, Some("1970-01-03T00:16:40Z")));
        // Seed 7: in the first 5%.
        let (offer, held) = pick(&targets, &policy(None), None, 7, 2_000, url);
        assert_eq!((offer.map(|o| o.version), held.is_none()), (Some("0.3.0".into()), true));
        // 48 h on, every seed.
        let (offer, _) = pick(&targets, &policy(None), None, 9_999, 1_000 + 48 * 3600, url);
        assert_eq!(offer.map(|o| o.version), Some("0.3.0".into()));
        // Failed here, or installed and waiting for its reboot: not offered again.
        let (offer, _) = pick(&targets, &policy(Some("0.3.0")), None, 7, 2_000, url);
        assert_eq!(offer.map(|o| o.version), Some("0.2.0".into()));
        let pending = Version::parse("0.3.0").expect("v");
        let (offer, _) = pick(&targets, &policy(None), Some(&pending), 7, 2_000, url);
        assert_eq!(offer.map(|o| o.version), Some("0.2.0".into()));
    }

    #[test]
    fn a_rollout_that_does_not_parse_holds_the_release_back() {
        let targets: BTreeMap<String, TargetFile> = [("b".to_owned(), target("0.3.0", Some(serde_json::json!({"waves": "soon"}))))].into();
        let (offer, held) = pick(&targets, &policy(None), None, 0, 2_000, |n, _| n.to_owned());
        assert!(offer.is_none());
        assert_eq!(held.map(|h| (h.open_percent, h.from)), Some((0, None)));
    }
}
