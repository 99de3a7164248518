//! `cairnctl eligibility`: the report as a table an operator reads at a glance.

use super::criteria::{Unit, Verdict};
use super::tracker::Report;

/// "3 d 4 h", "2 h 5 min", "40 s".
pub fn duration(s: u64) -> String {
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

pub fn table(r: &Report) -> String {
    let f = &r.sample.fluxd;
    let mut out = String::new();
    let fluxd = match (&f.status, f.height, &f.reason) {
        (Some(status), Some(h), _) => format!("{status} at height {h}"),
        (_, _, Some(reason)) => format!("{}: {reason}", f.state),
        _ => f.state.clone(),
    };
    out.push_str(&format!("eligible   {}\nfluxd      {fluxd}\n", if r.eligible { "yes" } else { "no" }));
    if let Some(m) = r.confirmation_margin {
        out.push_str(&format!("confirm    within {} blocks (about {})\n", m.blocks, duration(m.seconds)));
    }
    if let Some(b) = &r.last_boot {
        let p = &b.previous;
        let down = p.down_s.map(|d| format!(", down {}", duration(d))).unwrap_or_default();
        let release = b.release.as_deref().map(|r| format!("; this boot runs {r}")).unwrap_or_default();
        out.push_str(&format!("last boot  {} after {}{down}{release}\n", p.ended, duration(p.ran_s)));
    }
    if let Some(last) = r.soft_reboots.last() {
        out.push_str(&format!("soft       {} soft reboot(s) this boot, the kernel's uptime carried on; the last into {} (slot {}): services down {:.1} s\n", r.soft_reboots.len(), last.version, last.slot, last.down_ms as f64 / 1000.0));
    }
    if let Some(c) = &r.reboot_cost {
        out.push_str(&format!("a reboot   costs {} of uptime, about {} down{}\n", duration(c.uptime_lost_s), duration(c.downtime_s), if c.misses_confirmation { ", and MISSES the confirmation" } else { "" }));
    }
    out.push_str(&format!("\n{:<18} {:>12} {:>12}  {}\n", "CRITERION", "VALUE", "THRESHOLD", "STATE"));
    for c in &r.criteria {
        let show = |n: u64| match c.unit {
            Unit::Seconds => duration(n),
            Unit::Blocks => format!("{n} blocks"),
        };
        let value = c.value.map(show).unwrap_or_else(|| "-".into());
        let state = match &c.verdict {
            Verdict::Met => "met".to_owned(),
            Verdict::MetIn { eta_s } => format!("met in {}", duration(*eta_s)),
            Verdict::Cannot { reason } => format!("not met: {reason}"),
        };
        out.push_str(&format!("{:<18} {value:>12} {:>12}  {state}\n", c.name, show(c.threshold)));
    }
    if let Some(e) = &r.config_error {
        out.push_str(&format!("\nconfiguration refused (defaults in use): {e}\n"));
    }
    out
}
