//! A year of releases fed to three reboot policies (issue 10's benchmark, `cairn-bench-year`,
//! `./dev bench year`), minute by minute, with this node's measured downtimes.
//!
//! The chain: a block every 30 s; the node confirms 560 blocks after its last confirmation
//! (give or take 40, seeded), or as soon as it is back if it was down then; a node still down
//! 640 blocks after its last confirmation has missed it: it expires and starts again, its
//! confirmed blocks from zero. Eligible: up, OS uptime of 30 days, 21,600 blocks confirmed.
//!
//! The releases: userspace every week, a new kernel every month, six security releases (three
//! of them kernels) with 72 h deadlines. Releases are whole images: one after a new kernel
//! carries that kernel. A release can start softly only if its kernel is the running one.
//!
//! The policies: every release at once by a full reboot (as image-based systems reboot for
//! every update); a fixed weekly window (Sunday 03:00) with a full reboot for whatever is
//! pending; Cairn's: the daily window 03:00-05:00 and `cairn_updater::reboot::moment`, the
//! same function the update service asks (soft reboots, full ones batched and timed after a
//! confirmation, deadlines kept).

use cairn_updater::reboot::moment::{decide_moment, Batch, Confirmation, Moment, Restart, KERNEL_AFTER_S};
use cairn_updater::reboot::Policy;

const MIN: i64 = 60;
const DAY_MIN: i64 = 1440;
const BLOCK_S: i64 = 30;
const WINDOW_BLOCKS: i64 = 640;
const EARLIEST_BLOCKS: i64 = 500;
const CONFIRM_AT_BLOCKS: i64 = 560;
const UPTIME_NEEDED_MIN: i64 = 30 * DAY_MIN;
const BLOCKS_NEEDED: i64 = 21_600;
/// After an expiry, the node is started again and confirmed this long after it is back.
const RESTART_MIN: i64 = 10;
/// Monday 2027-01-04T00:00:00Z: the year starts on a Monday at midnight UTC.
const EPOCH_S: i64 = 1_830_556_800;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    AtOnce,
    Weekly,
    Cairn,
}

impl Which {
    pub const ALL: [Which; 3] = [Which::AtOnce, Which::Weekly, Which::Cairn];

    pub fn name(self) -> &'static str {
        match self {
            Which::AtOnce => "reboot at once",
            Which::Weekly => "weekly window (Sun 03:00)",
            Which::Cairn => "Cairn (soft, batched, after confirmations)",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Release {
    pub at_min: i64,
    pub kernel: u32,
    pub deadline_min: Option<i64>,
}

/// The year's releases, oldest first.
pub fn releases() -> Vec<Release> {
    let mut events: Vec<(i64, bool, bool)> = Vec::new(); // (minute, new kernel, security)
    let at = |day: i64| day * DAY_MIN + 14 * 60;
    for week in 0..52 {
        events.push((at(week * 7 + 1), false, false));
    }
    for month in 0..12 {
        events.push((at(month * 30 + 10), true, false));
    }
    for (i, day) in [40i64, 95, 150, 205, 260, 315].into_iter().enumerate() {
        events.push((at(day) + 60, i % 2 == 0, true));
    }
    events.sort_by_key(|e| e.0);
    let mut kernel = 0;
    events
        .into_iter()
        .map(|(at_min, new_kernel, security)| {
            kernel += u32::from(new_kernel);
            Release { at_min, kernel, deadline_min: security.then_some(at_min + 72 * 60) }
        })
        .collect()
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub eligible_days: f64,
    pub downtime_s: i64,
    pub full_reboots: u32,
    pub soft_reboots: u32,
    pub missed_confirmations: u32,
    /// The longest a security release waited, from its publication to running.
    pub longest_security_wait_min: i64,
    pub deadlines_missed: u32,
}

/// A small deterministic generator (xorshift) for the confirmation jitter.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        i64::try_from(self.0 % u64::try_from(n).unwrap_or(1)).unwrap_or(0)
    }
}

/// One policy over the year. `full_down_s` and `soft_down_s`: this node's measured downtime of
/// a full reboot and of a soft one.
pub fn simulate(which: Which, full_down_s: i64, soft_down_s: i64, seed: u64) -> Outcome {
    let releases = releases();
    let window = Policy::parse("03:00-05:00").unwrap_or(Policy::Now);
    let mut rng = Rng(seed | 1);
    let mut out = Outcome::default();
    // Steady state at the start: up 30 days, confirmed for 21,600 blocks, confirmed an hour ago.
    let (mut boot_min, mut confirmed_since_min, mut last_confirmation_min) = (-UPTIME_NEEDED_MIN, -BLOCKS_NEEDED * BLOCK_S / MIN, -60);
    let mut next_confirm_blocks = CONFIRM_AT_BLOCKS;
    let (mut running, mut kernel) = (None::<usize>, 0u32);
    let mut down_until_min = i64::MIN;
    let mut eligible_min = 0i64;
    let mut restart_pending: Option<(usize, bool)> = None;
    for now in 0..365 * DAY_MIN {
        let up = now >= down_until_min;
        // The chain.
        let since_blocks = (now - last_confirmation_min) * MIN / BLOCK_S;
        if since_blocks > WINDOW_BLOCKS && !up {
            // Down through the end of its window: expired. It starts again when back.
            out.missed_confirmations += 1;
            confirmed_since_min = down_until_min + RESTART_MIN;
            last_confirmation_min = confirmed_since_min;
        } else if up && since_blocks >= next_confirm_blocks && now >= last_confirmation_min {
            last_confirmation_min = now;
            next_confirm_blocks = CONFIRM_AT_BLOCKS - 40 + rng.next(81);
        }
        if up && now - boot_min >= UPTIME_NEEDED_MIN && now >= confirmed_since_min && (now - confirmed_since_min) * MIN / BLOCK_S >= BLOCKS_NEEDED {
            eligible_min += 1;
        }
        if !up {
            continue;
        }
        // A restart asked for (by the policy) ends here: the node runs the release.
        if let Some((r, full)) = restart_pending.take() {
            // Every security release this one brings (those after the one running) is fixed now.
            let first = running.map_or(0, |run| run + 1);
            for rel in &releases[first..=r] {
                if let Some(d) = rel.deadline_min {
                    out.longest_security_wait_min = out.longest_security_wait_min.max(now - rel.at_min);
                    out.deadlines_missed += u32::from(now > d);
                }
            }
            running = Some(r);
            kernel = releases[r].kernel;
            if full {
                boot_min = now;
            }
        }
        // The newest published release, if it is not running.
        let Some(newest) = releases.iter().rposition(|r| r.at_min <= now) else { continue };
        if running.is_some_and(|r| r >= newest) {
            continue;
        }
        let soft_ok = releases[newest].kernel == kernel;
        let deadline = releases.iter().enumerate().filter(|(i, _)| running.is_none_or(|run| *i > run) && *i <= newest).filter_map(|(_, r)| r.deadline_min).min();
        let go = match which {
            Which::AtOnce => Some(true),
            Which::Weekly => (now.rem_euclid(7 * DAY_MIN) == 6 * DAY_MIN + 3 * 60).then_some(true),
            Which::Cairn => {
                let restart = if soft_ok { Restart::Soft { down_s: u64::try_from(soft_down_s).unwrap_or(0) } } else { Restart::Full { down_s: u64::try_from(full_down_s).unwrap_or(0) } };
                let margin_blocks = WINDOW_BLOCKS - since_blocks;
                let c = Confirmation { margin_s: u64::try_from(margin_blocks * BLOCK_S).ok(), window_s: u64::try_from(WINDOW_BLOCKS * BLOCK_S).unwrap_or(0), earliest_s: u64::try_from(EARLIEST_BLOCKS * BLOCK_S).unwrap_or(0) };
                let batch = Batch { uptime_s: u64::try_from((now - boot_min) * MIN).unwrap_or(0), kernel_after_s: KERNEL_AFTER_S };
                let t = EPOCH_S + now * MIN;
                match decide_moment(window, t, deadline.map(|d| EPOCH_S + d * MIN), restart, c, batch) {
                    Moment::Now => Some(!soft_ok),
                    Moment::At(at) if at <= t => Some(!soft_ok),
                    _ => None,
                }
            }
        };
        let Some(full) = go else { continue };
        let down_s = if full { full_down_s } else { soft_down_s };
        out.downtime_s += down_s;
        if full {
            out.full_reboots += 1;
        } else {
            out.soft_reboots += 1;
        }
        down_until_min = now + (down_s + MIN - 1) / MIN;
        restart_pending = Some((newest, full));
    }
    out.eligible_days = eligible_min as f64 / DAY_MIN as f64;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_year_has_its_releases() {
        let r = releases();
        assert_eq!(r.len(), 52 + 12 + 6);
        assert_eq!(r.iter().filter(|r| r.deadline_min.is_some()).count(), 6);
        assert_eq!(r.last().map(|r| r.kernel), Some(15), "12 monthly kernels and 3 security kernels");
    }

    #[test]
    fn cairn_keeps_every_deadline_and_confirmation_and_is_eligible_far_longer() {
        let [at_once, weekly, cairn] = Which::ALL.map(|w| simulate(w, 60, 20, 7));
        assert_eq!((cairn.deadlines_missed, cairn.missed_confirmations), (0, 0), "{cairn:?}");
        assert!(cairn.eligible_days > 2.0 * at_once.eligible_days.max(weekly.eligible_days).max(10.0), "{at_once:?} {weekly:?} {cairn:?}");
        assert!(cairn.soft_reboots > 0 && cairn.full_reboots < at_once.full_reboots, "{cairn:?}");
    }
}
