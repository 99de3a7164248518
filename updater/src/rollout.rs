//! Which nodes take a release, and when they look (issue 9 item 7).
//!
//! A publisher may send a release to a share of the nodes first: the TUF target's custom
//! metadata carries `cairn.rollout`, the time the release was published and its waves, each
//! "this many per cent of nodes, from this long after publishing" (`5@0h,50@24h,100@48h`).
//! Each node draws a seed once (0..10000, kept on /data) and takes the release once the
//! open share covers its seed; no `rollout` means every node at once. The seed never changes,
//! so a node in the first 5% is in the first 5% of every release (Bottlerocket's scheme):
//! the same canaries each time, and nobody can reroll their way to the front.
//!
//! Nodes poll with jitter so a fleet started together does not ask all at once: the first
//! poll after a boot comes at a random point of the first interval, the next ones one
//! interval later, give or take a quarter.

use std::time::Duration;

/// Seeds are drawn from 0..SEEDS: a hundredth of a per cent of the fleet each.
pub const SEEDS: u16 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Wave {
    /// Seconds after `published` the wave opens.
    pub after_s: u64,
    /// The share of nodes that may take the release from then on, in per cent.
    pub percent: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rollout {
    /// Seconds since the epoch.
    pub published: i64,
    pub waves: Vec<Wave>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RolloutError {
    #[error("rollout wave {0:?} is not PERCENT@HOURSh (like 5@0h or 100@48h)")]
    Wave(String),
    #[error("rollout waves must open later and cover more nodes each time, up to 100%: {0}")]
    Order(String),
}

impl Rollout {
    /// `5@0h,50@24h,100@48h`: the last wave must reach 100%, each opens later and covers more.
    pub fn parse(spec: &str, published: i64) -> Result<Rollout, RolloutError> {
        let mut waves = Vec::new();
        for part in spec.split(',').map(str::trim) {
            let bad = || RolloutError::Wave(part.to_owned());
            let (pct, hours) = part.split_once('@').ok_or_else(bad)?;
            let percent: u8 = pct.trim_end_matches('%').parse().map_err(|_| bad())?;
            let hours: u64 = hours.strip_suffix('h').unwrap_or(hours).parse().map_err(|_| bad())?;
            if percent == 0 || percent > 100 {
                return Err(bad());
            }
            waves.push(Wave { after_s: hours * 3600, percent });
        }
        let rising = waves.windows(2).all(|w| w[0].after_s < w[1].after_s && w[0].percent < w[1].percent);
        if !rising || waves.last().map(|w| w.percent) != Some(100) {
            return Err(RolloutError::Order(spec.to_owned()));
        }
        Ok(Rollout { published, waves })
    }

    /// The share of nodes (per cent) the release is open to at `now`.
    pub fn open_percent(&self, now: i64) -> u8 {
        let since = u64::try_from(now.saturating_sub(self.published)).unwrap_or(0);
        if now < self.published {
            return 0;
        }
        self.waves.iter().filter(|w| w.after_s <= since).map(|w| w.percent).max().unwrap_or(0)
    }

    /// Whether the node with `seed` may take the release at `now`.
    pub fn admits(&self, seed: u16, now: i64) -> bool {
        u32::from(seed) < u32::from(self.open_percent(now)) * u32::from(SEEDS) / 100
    }

    /// When the node with `seed` is admitted (seconds since the epoch), for the status.
    pub fn admits_from(&self, seed: u16) -> Option<i64> {
        let wave = self.waves.iter().find(|w| u32::from(seed) < u32::from(w.percent) * u32::from(SEEDS) / 100)?;
        Some(self.published.saturating_add(i64::try_from(wave.after_s).unwrap_or(i64::MAX)))
    }
}

/// The wait before a poll: the first after a boot at `random` (0..1) of an interval, later
/// ones an interval give or take a quarter.
pub fn poll_delay(interval: Duration, first: bool, random: f64) -> Duration {
    let r = random.clamp(0.0, 1.0);
    if first {
        interval.mul_f64(r)
    } else {
        interval.mul_f64(0.75 + r / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn waves_open_to_more_nodes_over_time_and_a_seed_keeps_its_place() {
        let r = Rollout::parse("5@0h,50@24h,100@48h", 1_000_000).expect("parses");
        assert_eq!(r.open_percent(999_999), 0, "not before it is published");
        assert_eq!(r.open_percent(1_000_000), 5);
        assert_eq!(r.open_percent(1_000_000 + DAY - 1), 5);
        assert_eq!(r.open_percent(1_000_000 + DAY), 50);
        assert_eq!(r.open_percent(1_000_000 + 3 * DAY), 100);
        // Seeds 0..500 are the first 5%.
        assert!(r.admits(499, 1_000_000) && !r.admits(500, 1_000_000));
        assert!(r.admits(500, 1_000_000 + DAY) && !r.admits(5_000, 1_000_000 + DAY));
        assert!(r.admits(SEEDS - 1, 1_000_000 + 2 * DAY));
        assert_eq!(r.admits_from(42), Some(1_000_000));
        assert_eq!(r.admits_from(7_000), Some(1_000_000 + 2 * DAY));
        // Of 10,000 evenly spread seeds, exactly 5% in the first wave.
        assert_eq!((0..SEEDS).filter(|&s| r.admits(s, 1_000_000)).count(), 500);
    }

    #[test]
    fn a_bad_rollout_is_refused_with_the_reason() {
        for bad in ["5", "5@x", "0@0h", "101@0h", "five@0h"] {
            assert!(matches!(Rollout::parse(bad, 0), Err(RolloutError::Wave(_))), "{bad}");
        }
        for bad in ["5@0h,50@24h", "50@0h,5@24h,100@48h", "5@24h,50@0h,100@48h"] {
            assert!(matches!(Rollout::parse(bad, 0), Err(RolloutError::Order(_))), "{bad}");
        }
        assert!(Rollout::parse("100@0h", 0).is_ok());
    }

    #[test]
    fn polls_are_spread_over_an_interval() {
        let hour = Duration::from_secs(3600);
        assert_eq!(poll_delay(hour, true, 0.0), Duration::ZERO);
        assert_eq!(poll_delay(hour, true, 0.5), hour / 2);
        assert_eq!(poll_delay(hour, false, 0.0), hour.mul_f64(0.75));
        assert_eq!(poll_delay(hour, false, 1.0), hour.mul_f64(1.25));
        assert_eq!(poll_delay(hour, false, 7.0), hour.mul_f64(1.25), "clamped");
    }
}
