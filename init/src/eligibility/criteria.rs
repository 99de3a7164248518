//! The rules Progressive Node Rewards are believed to apply, each a configured threshold
//! (none is public code: ../shared/RESEARCH.md), and each evaluated on its own from one
//! sample: its value, its threshold, met or not, and when it will be met if nothing goes
//! wrong, or why it cannot be.
//!
//! Nothing here reads the wall clock. OS uptime is the kernel's (CLOCK_BOOTTIME, as FluxOS
//! measures it) and confirmed blocks are heights, so an NTP step or an operator's `date`
//! changes no value and no ETA.

use super::fluxd::{Fluxd, Status};
use std::time::Duration;

const DAY: u64 = 24 * 3600;

/// `eligibility.toml`: the defaults are the published figures.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Blocks the node must have been confirmed for ("21,600+ confirmed blocks").
    pub confirmed_blocks: u64,
    /// Kernel uptime the OS must have ("OS uptime over 30 days").
    pub os_uptime_s: u64,
    /// Seconds between blocks since the Proof-of-Nodes upgrade (height 2,020,000).
    pub block_time_s: u64,
    /// A confirmed node must confirm again within this many blocks of its last
    /// confirmation, or it expires and loses its place.
    pub confirm_within_blocks: u64,
    /// ... and not sooner than this many: the network takes no earlier confirmation.
    pub confirm_not_before_blocks: u64,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules { confirmed_blocks: 21_600, os_uptime_s: 30 * DAY, block_time_s: 30, confirm_within_blocks: 640, confirm_not_before_blocks: 500 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    Blocks,
    Seconds,
}

/// Where a criterion stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
pub enum Verdict {
    Met,
    /// Met after `eta_s` seconds if nothing goes wrong (no reboot, no missed confirmation).
    MetIn { eta_s: u64 },
    /// Not met and not on its way: why (expired, DOS, fluxd not installed or not answering).
    Cannot { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Criterion {
    pub name: String,
    /// `None` where the value is not known (fluxd not answering).
    pub value: Option<u64>,
    pub threshold: u64,
    pub unit: Unit,
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl Criterion {
    pub fn met(&self) -> bool {
        self.verdict == Verdict::Met
    }
}

/// One sample: the kernel's uptime and what fluxd said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// CLOCK_BOOTTIME: runs through suspend, never steps.
    pub uptime: Duration,
    pub fluxd: Fluxd,
}

/// Each criterion for `sample`, in a fixed order: OS uptime, then confirmed blocks.
pub fn evaluate(rules: &Rules, sample: &Sample) -> Vec<Criterion> {
    vec![os_uptime(rules, sample.uptime), confirmed_blocks(rules, &sample.fluxd)]
}

fn os_uptime(rules: &Rules, uptime: Duration) -> Criterion {
    let value = uptime.as_secs();
    let verdict = match rules.os_uptime_s.checked_sub(value) {
        Some(left) if left > 0 => Verdict::MetIn { eta_s: left },
        _ => Verdict::Met,
    };
    Criterion { name: "os-uptime".into(), value: Some(value), threshold: rules.os_uptime_s, unit: Unit::Seconds, verdict }
}

fn confirmed_blocks(rules: &Rules, fluxd: &Fluxd) -> Criterion {
    let blocks = |n: u64| n.saturating_mul(rules.block_time_s);
    let (value, verdict) = match fluxd {
        Fluxd::NotInstalled => (None, Verdict::Cannot { reason: "fluxd is not installed (no flux.conf)".into() }),
        Fluxd::Down(why) => (None, Verdict::Cannot { reason: format!("fluxd does not answer: {why}") }),
        Fluxd::Garbage(why) => (None, Verdict::Cannot { reason: format!("fluxd's answers make no sense: {why}") }),
        Fluxd::Syncing { blocks, headers } => (None, Verdict::Cannot { reason: format!("fluxd is syncing (block {blocks} of {headers}): the node's status is not current") }),
        Fluxd::Node { height, node } => match (&node.status, node.confirmed_height) {
            (Status::Confirmed, Some(since)) => {
                let n = height.saturating_sub(since);
                (Some(n), if n >= rules.confirmed_blocks { Verdict::Met } else { Verdict::MetIn { eta_s: blocks(rules.confirmed_blocks - n) } })
            }
            (Status::Confirmed, None) => (None, Verdict::Cannot { reason: "fluxd says CONFIRMED but gives no confirmed_height".into() }),
            // Confirmation follows the start within a few blocks on a healthy node.
            (Status::Started, _) => (Some(0), Verdict::MetIn { eta_s: blocks(rules.confirmed_blocks) }),
            (Status::Expired, _) => (Some(0), Verdict::Cannot { reason: "expired: the node missed its confirmation window (or is unknown to the network) and lost its place; it must be started again".into() }),
            (Status::Dos, _) => (Some(0), Verdict::Cannot { reason: "DOS: the network bars the node for failing to confirm in time".into() }),
            (Status::Offline, _) => (Some(0), Verdict::Cannot { reason: "OFFLINE: the network cannot reach the node".into() }),
            (Status::Other(s), _) => (None, Verdict::Cannot { reason: format!("fluxd's status {s:?} is not one Cairn knows") }),
        },
    };
    Criterion { name: "confirmed-blocks".into(), value, threshold: rules.confirmed_blocks, unit: Unit::Blocks, verdict }
}

/// How long a confirmed node has before it must have confirmed again: blocks left of the
/// window, at the configured block time. `None` for a node that is not confirmed or whose
/// status is not current. A planned stop must end well inside it.
pub fn confirmation_margin(rules: &Rules, fluxd: &Fluxd) -> Option<(u64, Duration)> {
    let Fluxd::Node { height, node } = fluxd else { return None };
    let last = match node.status {
        Status::Confirmed => node.last_confirmed_height?,
        _ => return None,
    };
    let left = (last + rules.confirm_within_blocks).saturating_sub(*height);
    Some((left, Duration::from_secs(left.saturating_mul(rules.block_time_s))))
}

/// Every criterion met.
pub fn eligible(criteria: &[Criterion]) -> bool {
    criteria.iter().all(Criterion::met)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eligibility::fluxd::NodeStatus;

    fn node(status: Status, height: u64, confirmed: Option<u64>, last: Option<u64>) -> Fluxd {
        Fluxd::Node { height, node: NodeStatus { status, tier: Some("CUMULUS".into()), added_height: confirmed, confirmed_height: confirmed, last_confirmed_height: last, last_paid_height: None } }
    }

    fn sample(uptime_days: u64, fluxd: Fluxd) -> Sample {
        Sample { uptime: Duration::from_secs(uptime_days * DAY), fluxd }
    }

    #[test]
    fn a_node_on_its_way_shows_each_eta_and_becomes_eligible_when_both_are_met() {
        let rules = Rules::default();
        // Confirmed 1,600 blocks ago, up 10 days.
        let c = evaluate(&rules, &sample(10, node(Status::Confirmed, 101_600, Some(100_000), Some(101_500))));
        assert_eq!(c[0].verdict, Verdict::MetIn { eta_s: 20 * DAY });
        assert_eq!((c[1].value, c[1].verdict.clone()), (Some(1_600), Verdict::MetIn { eta_s: 20_000 * 30 }));
        assert!(!eligible(&c));
        let c = evaluate(&rules, &sample(30, node(Status::Confirmed, 121_600, Some(100_000), Some(121_500))));
        assert!(eligible(&c), "{c:?}");
    }

    #[test]
    fn expiry_dos_and_a_silent_daemon_say_why_the_blocks_cannot_count() {
        let rules = Rules::default();
        for (fluxd, says) in [
            (node(Status::Expired, 5, None, None), "expired"),
            (node(Status::Dos, 5, None, None), "DOS"),
            (Fluxd::NotInstalled, "not installed"),
            (Fluxd::Down("connection refused".into()), "connection refused"),
            (Fluxd::Syncing { blocks: 10, headers: 99 }, "syncing"),
        ] {
            let c = evaluate(&rules, &sample(40, fluxd.clone()));
            assert!(matches!(&c[1].verdict, Verdict::Cannot { reason } if reason.contains(says)), "{fluxd:?}: {:?}", c[1].verdict);
            assert!(c[0].met() && !eligible(&c));
        }
        // Starting again after expiry: the streak starts from nothing.
        let c = evaluate(&rules, &sample(40, node(Status::Started, 5, None, None)));
        assert_eq!((c[1].value, c[1].verdict.clone()), (Some(0), Verdict::MetIn { eta_s: 21_600 * 30 }));
    }

    #[test]
    fn the_confirmation_margin_counts_down_from_the_last_confirmation() {
        let rules = Rules::default();
        assert_eq!(confirmation_margin(&rules, &node(Status::Confirmed, 1_100, Some(10), Some(1_000))), Some((540, Duration::from_secs(540 * 30))));
        assert_eq!(confirmation_margin(&rules, &node(Status::Confirmed, 1_700, Some(10), Some(1_000))), Some((0, Duration::ZERO)));
        assert_eq!(confirmation_margin(&rules, &node(Status::Started, 1_100, None, None)), None);
    }

    #[test]
    fn rules_are_the_published_figures_unless_configured_and_typos_are_refused() {
        assert_eq!(toml::from_str::<Rules>("").expect("empty"), Rules::default());
        let r: Rules = toml::from_str("confirmed_blocks = 100\n").expect("one key");
        assert_eq!((r.confirmed_blocks, r.os_uptime_s), (100, 30 * DAY));
        assert!(toml::from_str::<Rules>("confirmed_block = 100\n").is_err());
    }
}
