//! When an installed update reboots the node (issue 9 item 8): at once, in the operator's
//! maintenance window, or only when the operator says so (`cairnctl update reboot`). A
//! security release's deadline brings a window reboot forward. This is the one place the
//! decision is made, so the eligibility work can weigh the cost of a reboot here too.

pub mod moment;

const DAY: i64 = 86_400;

/// The operator's reboot policy, from `reboot` in the update config: `"now"`, `"confirm"`,
/// or a daily UTC window `"02:00-04:00"` (it may wrap past midnight: `"23:30-01:00"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Now,
    Window { start_s: i64, end_s: i64 },
    Confirm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "reboot", content = "at")]
pub enum Decision {
    Now,
    /// At this time (seconds since the epoch).
    At(i64),
    /// When the operator runs `cairnctl update reboot`.
    Operator,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("reboot policy {0:?} is not \"now\", \"confirm\" or a UTC window like \"02:00-04:00\"")]
pub struct PolicyError(String);

fn minute_of_day(s: &str) -> Option<i64> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 3600 + m * 60)
}

impl Policy {
    pub fn parse(s: &str) -> Result<Policy, PolicyError> {
        match s.trim() {
            "now" => Ok(Policy::Now),
            "confirm" => Ok(Policy::Confirm),
            w => {
                let (a, b) = w.split_once('-').ok_or_else(|| PolicyError(s.to_owned()))?;
                match (minute_of_day(a), minute_of_day(b)) {
                    (Some(start_s), Some(end_s)) if start_s != end_s => Ok(Policy::Window { start_s, end_s }),
                    _ => Err(PolicyError(s.to_owned())),
                }
            }
        }
    }
}

/// When to reboot into a slot installed now (`now`, seconds since the epoch), given the
/// release's security deadline if it has one.
pub fn decide(policy: Policy, now: i64, deadline: Option<i64>) -> Decision {
    match policy {
        Policy::Now => Decision::Now,
        Policy::Confirm => Decision::Operator,
        Policy::Window { start_s, end_s } => {
            let day = now - now.rem_euclid(DAY);
            let in_window = |t: i64| {
                let s = t.rem_euclid(DAY);
                if start_s < end_s { (start_s..end_s).contains(&s) } else { s >= start_s || s < end_s }
            };
            if in_window(now) {
                return Decision::Now;
            }
            let next = if day + start_s > now { day + start_s } else { day + DAY + start_s };
            match deadline {
                Some(d) if d <= now => Decision::Now,
                Some(d) if d < next => Decision::At(d),
                _ => Decision::At(next),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;
    /// 2026-12-05T00:00:00Z.
    const MIDNIGHT: i64 = 1_796_428_800;

    #[test]
    fn policies_parse_and_bad_ones_are_refused() {
        assert_eq!(Policy::parse("now"), Ok(Policy::Now));
        assert_eq!(Policy::parse("confirm"), Ok(Policy::Confirm));
        assert_eq!(Policy::parse("02:00-04:30"), Ok(Policy::Window { start_s: 2 * H, end_s: 4 * H + 1800 }));
        for bad in ["later", "25:00-02:00", "02:00", "02:00-02:00", "2-4"] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_window_waits_for_its_start_unless_a_security_deadline_comes_first() {
        let w = Policy::parse("02:00-04:00").expect("window");
        assert_eq!(decide(w, MIDNIGHT + 3 * H, None), Decision::Now, "inside the window");
        assert_eq!(decide(w, MIDNIGHT + H, None), Decision::At(MIDNIGHT + 2 * H), "later today");
        assert_eq!(decide(w, MIDNIGHT + 5 * H, None), Decision::At(MIDNIGHT + 26 * H), "tomorrow");
        assert_eq!(decide(w, MIDNIGHT + 5 * H, Some(MIDNIGHT + 6 * H)), Decision::At(MIDNIGHT + 6 * H), "the deadline comes first");
        assert_eq!(decide(w, MIDNIGHT + 5 * H, Some(MIDNIGHT + 4 * H)), Decision::Now, "the deadline has passed");
        assert_eq!(decide(w, MIDNIGHT + 5 * H, Some(MIDNIGHT + 30 * H)), Decision::At(MIDNIGHT + 26 * H), "the window comes first");
        let wrap = Policy::parse("23:00-01:00").expect("window");
        assert_eq!(decide(wrap, MIDNIGHT + H / 2, None), Decision::Now, "past midnight, still inside");
        assert_eq!(decide(wrap, MIDNIGHT + 12 * H, None), Decision::At(MIDNIGHT + 23 * H));
    }

    #[test]
    fn now_and_confirm_ignore_the_clock() {
        assert_eq!(decide(Policy::Now, MIDNIGHT, None), Decision::Now);
        assert_eq!(decide(Policy::Confirm, MIDNIGHT, Some(MIDNIGHT - 1)), Decision::Operator, "only the window policy has a deadline");
    }
}
