//! The report in Prometheus's text exposition format (version 0.0.4), so a fleet of nodes
//! shows in Grafana: `cairnctl eligibility --metrics`, and the file the tracker writes for
//! node_exporter's textfile collector (`--collector.textfile.directory=/run/cairn/metrics`).

use super::criteria::{Unit, Verdict};
use super::tracker::Report;
use std::fmt::Write;

/// fluxd's states, each a series of its own (1 for the current one), so a dashboard can
/// count nodes per state.
const FLUXD_STATES: [&str; 5] = ["not-installed", "down", "garbage", "syncing", "node"];

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} gauge");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", label(v))).collect();
        let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
        let _ = writeln!(self.0, "{name}{labels} {value}");
    }
}

pub fn render(r: &Report) -> String {
    let mut o = Out(String::new());
    o.family("cairn_uptime_seconds", "Kernel uptime (CLOCK_BOOTTIME) at the last sample.");
    o.sample("cairn_uptime_seconds", &[], r.sample.uptime_s);
    o.family("cairn_eligible", "1 if every eligibility criterion is met.");
    o.sample("cairn_eligible", &[], u64::from(r.eligible));
    o.family("cairn_criterion_met", "1 if the criterion is met.");
    for c in &r.criteria {
        o.sample("cairn_criterion_met", &[("criterion", &c.name)], u64::from(c.met()));
    }
    for (unit, suffix) in [(Unit::Seconds, "seconds"), (Unit::Blocks, "blocks")] {
        let of_unit: Vec<_> = r.criteria.iter().filter(|c| c.unit == unit).collect();
        if of_unit.is_empty() {
            continue;
        }
        let (value, threshold) = (format!("cairn_criterion_value_{suffix}"), format!("cairn_criterion_threshold_{suffix}"));
        o.family(&value, "The criterion's current value (absent while unknown).");
        for c in &of_unit {
            if let Some(v) = c.value {
                o.sample(&value, &[("criterion", &c.name)], v);
            }
        }
        o.family(&threshold, "The value the criterion needs.");
        for c in &of_unit {
            o.sample(&threshold, &[("criterion", &c.name)], c.threshold);
        }
    }
    o.family("cairn_criterion_eta_seconds", "Seconds until the criterion is met if nothing goes wrong (only for criteria on their way).");
    for c in &r.criteria {
        if let Verdict::MetIn { eta_s } = c.verdict {
            o.sample("cairn_criterion_eta_seconds", &[("criterion", &c.name)], eta_s);
        }
    }
    o.family("cairn_fluxd_state", "1 for fluxd's state at the last sample.");
    for s in FLUXD_STATES {
        o.sample("cairn_fluxd_state", &[("state", s)], u64::from(r.sample.fluxd.state == s));
    }
    if let (Some(status), Some(height)) = (&r.sample.fluxd.status, r.sample.fluxd.height) {
        o.family("cairn_fluxd_node_status", "1 for the node's status as fluxd gives it.");
        o.sample("cairn_fluxd_node_status", &[("status", status)], 1);
        o.family("cairn_fluxd_height_blocks", "The chain height fluxd is at.");
        o.sample("cairn_fluxd_height_blocks", &[], height);
    }
    if let Some(m) = r.confirmation_margin {
        o.family("cairn_confirmation_margin_blocks", "Blocks left before the node must confirm again.");
        o.sample("cairn_confirmation_margin_blocks", &[], m.blocks);
    }
    if let Some(c) = &r.reboot_cost {
        o.family("cairn_reboot_downtime_seconds", "Expected downtime of a reboot (this node's median of planned reboots, else assumed).");
        o.sample("cairn_reboot_downtime_seconds", &[], c.downtime_s);
        o.family("cairn_reboot_misses_confirmation", "1 if a reboot now would outlast the confirmation margin.");
        o.sample("cairn_reboot_misses_confirmation", &[], u64::from(c.misses_confirmation));
    }
    o.family("cairn_soft_reboots", "Soft reboots in this boot (updates that kept the kernel and its uptime).");
    o.sample("cairn_soft_reboots", &[], r.soft_reboots.len() as u64);
    if let Some(last) = r.soft_reboots.last() {
        o.family("cairn_last_soft_reboot_downtime_seconds", "How long services were down in the last soft reboot.");
        let _ = writeln!(o.0, "cairn_last_soft_reboot_downtime_seconds {:.3}", last.down_ms as f64 / 1000.0);
    }
    if let Some(b) = &r.last_boot {
        o.family("cairn_last_boot_ended", "1 for how the boot before this one ended.");
        o.sample("cairn_last_boot_ended", &[("ended", &serde_json::to_value(b.previous.ended).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())], 1);
    }
    if let Some(u) = &r.update {
        o.family("cairn_release_info", "1, labelled with the running slot and release.");
        o.sample("cairn_release_info", &[("slot", &u.slot), ("version", &u.version)], 1);
        o.family("cairn_update_install_state", "1 for the state of this boot's last update install.");
        for state in ["none", "installing", "installed", "failed", "interrupted"] {
            o.sample("cairn_update_install_state", &[("state", state)], u64::from(u.install == state));
        }
    }
    o.family("cairn_history_records", "Samples kept in the history on /data.");
    o.sample("cairn_history_records", &[], r.history_records);
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eligibility::criteria::{Rules, Sample};
    use crate::eligibility::fluxd::{Fluxd, NodeStatus, Status};
    use std::time::Duration;

    fn report(fluxd: Fluxd) -> Report {
        Report::new(&Rules::default(), "b00d", &Sample { uptime: Duration::from_secs(3600), fluxd }, 3, None)
    }

    /// Prometheus's own parser: promtool, which `./dev setup` unpacks from Debian's
    /// prometheus package.
    pub(crate) fn promtool_check(text: &str) {
        use std::io::Write as _;
        let tool = std::env::var("CAIRN_PROMTOOL").unwrap_or_else(|_| "/var/cache/cairn/promtool/usr/bin/promtool".into());
        let mut child = std::process::Command::new(&tool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("promtool ({tool}): {e}; `./dev setup` unpacks it from Debian's prometheus package"));
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
        let out = child.wait_with_output().expect("promtool");
        assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(), "promtool: {}{}\n{text}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    fn metrics_of_every_fluxd_state_pass_promtool() {
        let node = NodeStatus { status: Status::Other("WEIRD \"ONE\"\\".into()), tier: None, added_height: None, confirmed_height: Some(10), last_confirmed_height: Some(900), last_paid_height: None };
        let confirmed = NodeStatus { status: Status::Confirmed, ..node.clone() };
        for f in [Fluxd::NotInstalled, Fluxd::Down("refused".into()), Fluxd::Syncing { blocks: 1, headers: 9 }, Fluxd::Node { height: 1000, node }, Fluxd::Node { height: 1000, node: confirmed }] {
            promtool_check(&render(&report(f)));
        }
    }

    #[test]
    fn the_series_say_what_the_report_says() {
        let confirmed = NodeStatus { status: Status::Confirmed, tier: None, added_height: None, confirmed_height: Some(10), last_confirmed_height: Some(900), last_paid_height: None };
        let text = render(&report(Fluxd::Node { height: 1000, node: confirmed }));
        for line in ["cairn_uptime_seconds 3600", "cairn_eligible 0", "cairn_criterion_value_blocks{criterion=\"confirmed-blocks\"} 990", "cairn_fluxd_state{state=\"node\"} 1", "cairn_fluxd_state{state=\"down\"} 0", "cairn_fluxd_node_status{status=\"CONFIRMED\"} 1", "cairn_confirmation_margin_blocks 540", "cairn_criterion_eta_seconds{criterion=\"os-uptime\"} 2588400"] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
    }

    #[test]
    fn boots_soft_reboots_and_the_update_state_show_and_pass_promtool() {
        use crate::eligibility::boots::{Boot, Ended, PreviousBoot, SoftReboot};
        let mut r = report(Fluxd::NotInstalled);
        r.last_boot = Some(Boot { boot_id: "b".into(), wall_s: 1, uptime_s: 20, previous: PreviousBoot { boot_id: "a".into(), ended: Ended::PowerLoss, ran_s: 9, down_s: Some(40) }, release: None });
        r.soft_reboots = vec![SoftReboot { boot_id: "b".into(), wall_s: 2, count: 1, from_slot: "a".into(), slot: "b".into(), version: "0.2.0".into(), down_ms: 16_964 }];
        r.update = Some(super::super::tracker::UpdateSummary { slot: "b".into(), version: "0.2.0".into(), install: "installed".into(), install_version: "0.3.0".into() });
        let text = render(&r);
        promtool_check(&text);
        for line in ["cairn_last_boot_ended{ended=\"power-loss\"} 1", "cairn_soft_reboots 1", "cairn_last_soft_reboot_downtime_seconds 16.964", "cairn_release_info{slot=\"b\",version=\"0.2.0\"} 1", "cairn_update_install_state{state=\"installed\"} 1", "cairn_reboot_downtime_seconds 120"] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
    }
}
