//! What the history keeps: a year, compacted. The last week at full resolution (a sample a
//! minute), older samples one per ten minutes, nothing older than a year; and every sample
//! where fluxd's state or the node's status changed, whatever its age, so no transition
//! (a confirmation lost, an expiry, a DOS) is ever thinned away. A year is then about
//! 60,000 samples (9 MB) instead of 525,600.
//!
//! Age is by the wall clock the sample recorded, the one use of it: a clock that steps
//! back makes samples look younger (kept longer), never lost early by more than the step.

const DAY: u64 = 24 * 3600;
/// Kept at full resolution.
pub const FULL_S: u64 = 7 * DAY;
/// Older samples: the first of each bucket this long.
pub const COARSE_S: u64 = 600;
/// Dropped after this.
pub const KEEP_S: u64 = 366 * DAY;
/// Compaction runs at start and after this many new samples (a week of minutes).
pub const EVERY: u64 = 7 * 1440;

/// One sample as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point<'a> {
    /// Seconds since the epoch when it was sampled; 0 if not recorded (kept).
    pub wall_s: u64,
    /// fluxd's state and the node's status: a change is a transition.
    pub state: (&'a str, Option<&'a str>),
}

/// Which of `points` (oldest first) to keep at `now`.
pub fn keep(points: &[Point<'_>], now: u64) -> Vec<bool> {
    let mut last_bucket = None;
    let mut previous = None;
    points
        .iter()
        .map(|p| {
            let transition = previous.is_some_and(|s| s != p.state);
            previous = Some(p.state);
            let age = now.saturating_sub(p.wall_s);
            if p.wall_s == 0 || transition || age <= FULL_S {
                return true;
            }
            if age > KEEP_S {
                return false;
            }
            let bucket = p.wall_s / COARSE_S;
            let first = last_bucket != Some(bucket);
            last_bucket = Some(bucket);
            first
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_year_of_minutes_thins_to_a_week_in_full_and_ten_minute_steps_before_and_keeps_every_transition() {
        let now = 400 * DAY;
        // 380 days of a sample a minute, the node CONFIRMED but for one hour 100 days ago.
        let points: Vec<(u64, &str)> = (0..380 * 1440).map(|m| (now - 380 * DAY + m * 60, if (280 * 1440..280 * 1440 + 60).contains(&m) { "expired" } else { "CONFIRMED" })).collect();
        let p: Vec<Point<'_>> = points.iter().map(|&(w, s)| Point { wall_s: w, state: ("node", Some(s)) }).collect();
        let kept = keep(&p, now);
        let walls: Vec<u64> = p.iter().zip(&kept).filter(|(_, k)| **k).map(|(p, _)| p.wall_s).collect();
        assert!(walls.iter().all(|&w| now - w <= KEEP_S), "a sample older than a year is kept");
        assert_eq!(walls.iter().filter(|&&w| now - w <= FULL_S).count(), p.iter().filter(|x| now - x.wall_s <= FULL_S).count(), "the last week is thinned");
        let older = walls.iter().filter(|&&w| now - w > FULL_S).count() as u64;
        assert!((359 * 144..359 * 144 + 10).contains(&older), "{older} older samples kept: one per ten minutes is {}", 359 * 144);
        // The hour of expiry: its first and the return to CONFIRMED are kept though old.
        for m in [280 * 1440, 280 * 1440 + 60] {
            assert!(kept[m as usize], "the transition at minute {m} was thinned away");
        }
        assert!(walls.len() < 70_000, "{} samples for a year", walls.len());
    }

    #[test]
    fn a_clock_stepped_back_keeps_samples_and_unknown_times_are_kept() {
        let p = [Point { wall_s: 1_000_000, state: ("down", None) }, Point { wall_s: 0, state: ("down", None) }];
        assert_eq!(keep(&p, 10), [true, true]);
    }
}
