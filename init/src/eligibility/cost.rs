//! What a reboot would cost, before it happens: the OS uptime it throws away, each
//! criterion's ETA after it, and whether the node would be back before its next
//! confirmation is due, by this node's own measured downtime for a planned reboot.

use super::criteria::{Criterion, Rules, Verdict};
use serde::{Deserialize, Serialize};

/// Assumed until this node has a measured planned reboot: a boot through GRUB to a ready
/// node with dockerd, with margin.
pub const ASSUMED_DOWN_S: u64 = 120;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootCost {
    /// OS uptime lost: the uptime criterion starts again from zero.
    pub uptime_lost_s: u64,
    /// How long the node is expected to be down.
    pub downtime_s: u64,
    /// Planned reboots `downtime_s` is the median of; 0: none measured yet, assumed.
    pub downtime_measured_over: u64,
    /// Seconds left before the node must confirm again, if it is confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_margin_s: Option<u64>,
    /// The reboot outlasts the confirmation margin: the node would expire.
    pub misses_confirmation: bool,
    pub criteria: Vec<CriterionCost>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriterionCost {
    pub name: String,
    pub now: Verdict,
    pub after: Verdict,
}

/// The cost of rebooting now, from the criteria as they stand.
pub fn of(rules: &Rules, criteria: &[Criterion], margin_s: Option<u64>, uptime_s: u64, measured: Option<(u64, usize)>) -> RebootCost {
    let (downtime_s, over) = measured.unwrap_or((ASSUMED_DOWN_S, 0));
    let misses_confirmation = margin_s.is_some_and(|m| downtime_s >= m);
    let criteria = criteria
        .iter()
        .map(|c| {
            let after = match c.name.as_str() {
                // Uptime starts again when the node is back.
                "os-uptime" => Verdict::MetIn { eta_s: rules.os_uptime_s.saturating_add(downtime_s) },
                // The streak counts on while the node is down, if it is back in time to confirm.
                "confirmed-blocks" if misses_confirmation => Verdict::Cannot {
                    reason: format!("the reboot (about {downtime_s} s) outlasts the {} s left to confirm: the node would expire and start its {} blocks again", margin_s.unwrap_or(0), rules.confirmed_blocks),
                },
                _ => c.verdict.clone(),
            };
            CriterionCost { name: c.name.clone(), now: c.verdict.clone(), after }
        })
        .collect();
    RebootCost { uptime_lost_s: uptime_s, downtime_s, downtime_measured_over: u64::try_from(over).unwrap_or(u64::MAX), confirmation_margin_s: margin_s, misses_confirmation, criteria }
}

/// The cost as `cairnctl reboot` prints it before asking.
pub fn text(c: &RebootCost) -> String {
    use super::show::duration;
    let verdict = |v: &Verdict| match v {
        Verdict::Met => "met".to_owned(),
        Verdict::MetIn { eta_s } => format!("met in {}", duration(*eta_s)),
        Verdict::Cannot { reason } => format!("not met: {reason}"),
    };
    let measured = match c.downtime_measured_over {
        0 => "assumed: no planned reboot of this node measured yet".to_owned(),
        n => format!("this node's median over its last {n} planned reboots"),
    };
    let mut out = format!("A reboot now costs:\n  OS uptime lost   {}\n  downtime         about {} ({measured})\n", duration(c.uptime_lost_s), duration(c.downtime_s));
    match c.confirmation_margin_s {
        Some(m) if c.misses_confirmation => out.push_str(&format!("  confirmation     MISSED: due within {}, the node would expire\n", duration(m))),
        Some(m) => out.push_str(&format!("  confirmation     due within {}: back in time\n", duration(m))),
        None => {}
    }
    for k in &c.criteria {
        out.push_str(&format!("  {:<16} {} -> {}\n", k.name, verdict(&k.now), verdict(&k.after)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eligibility::criteria::Unit;

    fn criteria() -> Vec<Criterion> {
        let c = |name: &str, verdict| Criterion { name: name.into(), value: Some(1), threshold: 2, unit: Unit::Seconds, verdict };
        vec![c("os-uptime", Verdict::Met), c("confirmed-blocks", Verdict::MetIn { eta_s: 600 })]
    }

    #[test]
    fn a_reboot_costs_the_uptime_and_starts_its_criterion_again() {
        let c = of(&Rules::default(), &criteria(), Some(3_000), 40 * 86_400, Some((45, 3)));
        assert_eq!((c.uptime_lost_s, c.downtime_s, c.downtime_measured_over, c.misses_confirmation), (40 * 86_400, 45, 3, false));
        assert_eq!(c.criteria[0].after, Verdict::MetIn { eta_s: 30 * 86_400 + 45 });
        assert_eq!(c.criteria[1].after, Verdict::MetIn { eta_s: 600 }, "blocks count on through a reboot back in time");
        let shown = text(&c);
        assert!(shown.contains("OS uptime lost   40 d 0 h") && shown.contains("last 3 planned reboots") && shown.contains("back in time"), "{shown}");
    }

    #[test]
    fn a_reboot_longer_than_the_confirmation_margin_says_the_node_would_expire() {
        let c = of(&Rules::default(), &criteria(), Some(100), 3_600, None);
        assert_eq!((c.downtime_s, c.downtime_measured_over, c.misses_confirmation), (ASSUMED_DOWN_S, 0, true));
        assert!(matches!(&c.criteria[1].after, Verdict::Cannot { reason } if reason.contains("expire")), "{:?}", c.criteria[1]);
        assert!(text(&c).contains("MISSED"), "{}", text(&c));
    }
}
