//! The moment within what the policy allows (issue 10 item 5): a restart is timed against
//! the node's confirmation window, as the eligibility tracker measures it.
//!
//! - A **soft** reboot (same kernel) costs seconds of service and no OS uptime: it happens
//!   as soon as the policy allows, if the node is back well before its next confirmation is
//!   due; otherwise just after that confirmation.
//! - A **full** reboot costs the OS uptime too: it happens right after a confirmation (the
//!   most margin there is), or, inside a window that closes before the next confirmation
//!   can come, when the margin still covers it.
//! - A full reboot for a release **without a deadline is batched**: it waits until the OS
//!   has been up `kernel_after_s` (by default 60 days), so the uptime criterion (30 days)
//!   holds for part of every cycle instead of never; the newest release then goes in one
//!   reboot.
//! - A security release's **deadline** overrides all of these: a fix never waits past it.
//!
//! Only the window policy is timed so: `now` is the operator asking for at once, and
//! `confirm` for their own command.

use super::{decide, Decision, Policy, DAY};

/// Seconds a restart must leave between the node being back and its confirmation due.
pub const SLACK_S: u64 = 300;
/// A confirmation this recent counts as "just confirmed": the best moment for a full reboot.
pub const JUST_CONFIRMED_S: u64 = 1800;

/// What a restart costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Services down for `down_s`; the kernel carries on.
    Soft { down_s: u64 },
    /// The node down for `down_s`, its OS uptime lost.
    Full { down_s: u64 },
}

impl Restart {
    fn down_s(self) -> u64 {
        match self {
            Restart::Soft { down_s } | Restart::Full { down_s } => down_s,
        }
    }
}

/// The node's confirmation, as the tracker last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmation {
    /// Seconds left before the node must have confirmed again; `None` when it is not a
    /// confirmed node (nothing to protect).
    pub margin_s: Option<u64>,
    /// The whole window after a confirmation (640 blocks of 30 s).
    pub window_s: u64,
    /// The soonest the network takes the next confirmation after one (500 blocks).
    pub earliest_s: u64,
}

impl Confirmation {
    /// Seconds since the last confirmation.
    fn since_s(&self) -> Option<u64> {
        self.margin_s.map(|m| self.window_s.saturating_sub(m))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "reboot", content = "at")]
pub enum Moment {
    Now,
    /// The policy's own time (a window's start, a deadline): ask again then.
    At(i64),
    /// When the operator runs `cairnctl update reboot`.
    Operator,
    /// Just after the node's next confirmation: ask again once the tracker has seen it.
    AfterConfirmation,
}

/// Full reboots for releases without a deadline wait until the OS has been up this long.
pub const KERNEL_AFTER_S: u64 = 60 * 86_400;

/// The kernel's uptime now, and how long a full reboot without a deadline waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub uptime_s: u64,
    pub kernel_after_s: u64,
}

/// When to restart into an installed release, at `now`.
pub fn decide_moment(policy: Policy, now: i64, deadline: Option<i64>, restart: Restart, c: Confirmation, batch: Batch) -> Moment {
    if let (Restart::Full { .. }, None, Policy::Window { .. }) = (restart, deadline, policy) {
        if let Some(wait) = batch.kernel_after_s.checked_sub(batch.uptime_s).filter(|&w| w > 0) {
            return Moment::At(now + i64::try_from(wait).unwrap_or(i64::MAX / 2));
        }
    }
    match decide(policy, now, deadline) {
        Decision::Operator => return Moment::Operator,
        Decision::At(t) => return Moment::At(t),
        Decision::Now if policy == Policy::Now => return Moment::Now,
        Decision::Now => {}
    }
    if deadline.is_some_and(|d| d <= now) {
        return Moment::Now;
    }
    let (Some(margin), Some(since)) = (c.margin_s, c.since_s()) else { return Moment::Now };
    let fits = margin > restart.down_s() + SLACK_S;
    let good = match restart {
        Restart::Soft { .. } => fits,
        Restart::Full { .. } => fits && (since <= JUST_CONFIRMED_S || no_confirmation_before_window_ends(policy, now, since, c)),
    };
    if good {
        Moment::Now
    } else if let Some(d) = deadline.filter(|&d| next_confirmation_after(now, since, c) > d) {
        // Waiting for the confirmation would miss the deadline: reboot at it.
        Moment::At(d)
    } else {
        Moment::AfterConfirmation
    }
}

/// The soonest the next confirmation can come (seconds since the epoch).
fn next_confirmation_after(now: i64, since: u64, c: Confirmation) -> i64 {
    now + i64::try_from(c.earliest_s.saturating_sub(since)).unwrap_or(0)
}

/// Inside a window that closes before the next confirmation can come, waiting for it means
/// waiting for another day's window: reboot now, while the margin covers it.
fn no_confirmation_before_window_ends(policy: Policy, now: i64, since: u64, c: Confirmation) -> bool {
    let Policy::Window { end_s, .. } = policy else { return false };
    let today = now - now.rem_euclid(DAY);
    let end = if today + end_s > now { today + end_s } else { today + DAY + end_s };
    next_confirmation_after(now, since, c) >= end
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;
    /// 2026-12-05T00:00:00Z.
    const MIDNIGHT: i64 = 1_796_428_800;
    const WINDOW_S: u64 = 640 * 30;
    const EARLIEST_S: u64 = 500 * 30;

    fn confirmed(since_s: u64) -> Confirmation {
        Confirmation { margin_s: Some(WINDOW_S - since_s), window_s: WINDOW_S, earliest_s: EARLIEST_S }
    }

    const FULL: Restart = Restart::Full { down_s: 60 };
    /// Up long enough: no batching in the way.
    const UP: Batch = Batch { uptime_s: 90 * 86_400, kernel_after_s: KERNEL_AFTER_S };

    fn all_day() -> Policy {
        Policy::parse("00:00-23:59").expect("window")
    }
    const SOFT: Restart = Restart::Soft { down_s: 20 };

    #[test]
    fn a_full_reboot_waits_for_a_confirmation_then_goes_right_after_it() {
        assert_eq!(decide_moment(all_day(), MIDNIGHT + H, None, FULL, confirmed(2 * 3600), UP), Moment::AfterConfirmation);
        assert_eq!(decide_moment(all_day(), MIDNIGHT + H, None, FULL, confirmed(600), UP), Moment::Now, "the double reported a confirmation 10 min ago");
        // "now" is the operator's: at once, whatever the chain.
        assert_eq!(decide_moment(Policy::Now, MIDNIGHT + H, None, FULL, confirmed(2 * 3600), UP), Moment::Now);
    }

    #[test]
    fn a_soft_reboot_goes_at_once_unless_the_confirmation_is_too_close() {
        assert_eq!(decide_moment(all_day(), MIDNIGHT + H, None, SOFT, confirmed(4 * 3600), UP), Moment::Now);
        assert_eq!(decide_moment(all_day(), MIDNIGHT + H, None, SOFT, confirmed(WINDOW_S - 200), UP), Moment::AfterConfirmation, "200 s left");
    }

    #[test]
    fn a_node_that_is_not_confirmed_has_nothing_to_protect() {
        let none = Confirmation { margin_s: None, window_s: WINDOW_S, earliest_s: EARLIEST_S };
        assert_eq!(decide_moment(all_day(), MIDNIGHT + H, None, FULL, none, UP), Moment::Now);
    }

    #[test]
    fn in_the_window_a_full_reboot_goes_after_a_confirmation_or_when_none_can_come_before_it_closes() {
        let w = Policy::parse("02:00-04:00").expect("window");
        // Outside the window: its start, whatever the chain.
        assert_eq!(decide_moment(w, MIDNIGHT + H, None, FULL, confirmed(600), UP), Moment::At(MIDNIGHT + 2 * H));
        // At 02:30, confirmed 2 h ago: the next can come in 2 h 10 min, after 04:00. Now.
        assert_eq!(decide_moment(w, MIDNIGHT + 2 * H + 1800, None, FULL, confirmed(2 * 3600), UP), Moment::Now);
        // At 02:00, confirmed 3 h 30 min ago: the next can come from 02:40, inside. Wait.
        assert_eq!(decide_moment(w, MIDNIGHT + 2 * H, None, FULL, confirmed(3 * 3600 + 1800), UP), Moment::AfterConfirmation);
    }

    #[test]
    fn a_security_deadline_is_never_missed() {
        // Past the deadline: now, even with little margin.
        assert_eq!(decide_moment(all_day(), MIDNIGHT + H, Some(MIDNIGHT + H - 1), FULL, confirmed(WINDOW_S - 100), UP), Moment::Now);
        // The next confirmation cannot come before the deadline: at the deadline.
        assert_eq!(decide_moment(all_day(), MIDNIGHT + H, Some(MIDNIGHT + H + 600), FULL, confirmed(3600), UP), Moment::At(MIDNIGHT + H + 600));
        // A window that opens after the deadline: the deadline.
        let w = Policy::parse("02:00-04:00").expect("window");
        assert_eq!(decide_moment(w, MIDNIGHT + 5 * H, Some(MIDNIGHT + 6 * H), FULL, confirmed(600), UP), Moment::At(MIDNIGHT + 6 * H));
    }

    #[test]
    fn a_full_reboot_without_a_deadline_is_batched_until_the_os_has_been_up_long_enough() {
        let fresh = Batch { uptime_s: 10 * 86_400, kernel_after_s: KERNEL_AFTER_S };
        assert_eq!(decide_moment(all_day(), MIDNIGHT + H, None, FULL, confirmed(600), fresh), Moment::At(MIDNIGHT + H + 50 * 86_400));
        // A soft reboot, or a deadline, is not batched.
        assert_eq!(decide_moment(all_day(), MIDNIGHT + H, None, SOFT, confirmed(600), fresh), Moment::Now);
        assert_eq!(decide_moment(all_day(), MIDNIGHT + H, Some(MIDNIGHT + 2 * H), FULL, confirmed(600), fresh), Moment::Now);
    }
}
