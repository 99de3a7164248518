//! Eligibility on a running node (issue 10): the tracker reads the fluxd double, each boot
//! is kept with how the one before ended, and nothing reboots without saying what it costs.
//! A module of the services test binary, so it resumes the same ready snapshot.

use super::{boot, wait_service, R};
use cairn_qemu_tests::machine::BOOT_TIMEOUT;
use cairn_qemu_tests::{HarnessError, Machine};
use serde_json::Value;
use std::time::Duration;

#[test]
fn the_flux_daemon_doubles_answer_and_the_eligibility_tracker_reads_the_captured_node() -> R {
    let m = boot("the_flux_daemon_doubles_answer_and_the_eligibility_tracker_reads_the_captured_node")?;
    for name in ["fluxd", "fluxbenchd"] {
        let s = wait_service(&m, name, Duration::from_secs(60), |s| s["readiness"] == "ready")?;
        assert_eq!(s["state"], "running", "{s}");
    }
    // The tracker samples at its start and then every minute: restarted, it samples the
    // double now (it may have sampled before the double listened).
    let before = m.succeed("wc -c < /data/cairn/eligibility/history 2>/dev/null || echo 0")?.trim().parse::<u64>().unwrap_or(0);
    m.succeed("cairnctl restart eligibility")?;
    m.wait_until_succeeds("cairnctl --json eligibility | grep -q '\"state\":\"node\"'", Duration::from_secs(60))?;
    let r: Value = serde_json::from_str(&m.succeed("cairnctl --json eligibility")?).unwrap_or_default();
    let criterion = |name: &str| r["criteria"].as_array().and_then(|a| a.iter().find(|c| c["name"] == name)).cloned().unwrap_or_default();
    // The captured node: confirmed at 2,029,946, the chain at 2,996,915.
    let blocks = criterion("confirmed-blocks");
    assert_eq!((blocks["value"].as_u64(), blocks["verdict"].as_str()), (Some(2_996_915 - 2_029_946), Some("met")), "{r}");
    assert_eq!(r["confirmation_margin"]["blocks"].as_u64(), Some(2_996_541 + 640 - 2_996_915), "{r}");
    // OS uptime is the kernel's, and the boot is this one.
    let (uptime, boot_id) = (m.succeed("cut -d. -f1 /proc/uptime")?.trim().parse::<u64>().unwrap_or(0), m.succeed("cat /proc/sys/kernel/random/boot_id")?);
    let up = criterion("os-uptime");
    assert!(up["value"].as_u64().is_some_and(|v| v <= uptime && v + 120 >= uptime), "os-uptime {up} against /proc/uptime {uptime}");
    assert_eq!((up["verdict"].as_str(), r["eligible"].as_bool()), (Some("met-in"), Some(false)), "{r}");
    assert_eq!(r["boot_id"].as_str(), Some(boot_id.trim()), "{r}");
    // The sample is in the history on /data, not only in the report.
    let after = m.succeed("wc -c < /data/cairn/eligibility/history")?.trim().parse::<u64>().unwrap_or(0);
    assert!(after > before && r["history_records"].as_u64().is_some_and(|n| n >= 1), "history {before} -> {after} bytes: {r}");
    let table = m.succeed("cairnctl eligibility")?;
    assert!(table.contains("CONFIRMED at height 2996915") && table.contains("966969 blocks"), "{table}");
    // The same report on the tracker's own D-Bus interface, beside PID 1's.
    let served = m.wait_until_succeeds("busctl --json=short call org.cairn.Eligibility1 /org/cairn/Eligibility1 org.cairn.Eligibility1 Report", Duration::from_secs(60))?;
    let served: Value = serde_json::from_str(&served).unwrap_or_default();
    let served: Value = serde_json::from_str(served["data"][0].as_str().unwrap_or("")).unwrap_or_default();
    assert_eq!((served["boot_id"].as_str(), served["criteria"][1]["value"].as_u64()), (Some(boot_id.trim()), Some(966_969)), "{served}");
    // The metrics, as the node serves them, through Prometheus's own parser on the host.
    let metrics = m.succeed("cairnctl eligibility --metrics")?;
    assert!(metrics.lines().any(|l| l == "cairn_criterion_value_blocks{criterion=\"confirmed-blocks\"} 966969"), "{metrics}");
    assert_eq!(metrics, m.succeed("cat /run/cairn/metrics/eligibility.prom")?, "the textfile collector's file is the same report");
    promtool_check(&metrics);

    // The wall clock stepped a day forward, then back (an NTP step, an operator's `date`):
    // no uptime, no blocks, no ETA moves by more than the real time that passed.
    let mut last = r;
    for (step, sign) in [("forward", 1i64), ("back", -1)] {
        m.succeed(&format!("date -s @$(( $(date +%s) + {} )) >/dev/null; sleep 1", sign * 86_400))?;
        let next = fresh_eligibility(&m, &last)?;
        let wall = next["wall_s"].as_i64().unwrap_or(0) - last["wall_s"].as_i64().unwrap_or(0);
        assert!((wall - sign * 86_400).abs() < 120, "{step}: the guest's clock did not step ({wall} s)");
        let of = |r: &Value, name: &str, key: &str| r["criteria"].as_array().and_then(|a| a.iter().find(|c| c["name"] == name)).map(|c| c[key].as_i64().unwrap_or(-1)).unwrap_or(-1);
        let up = of(&next, "os-uptime", "value") - of(&last, "os-uptime", "value");
        assert!((0..120).contains(&up), "{step}: OS uptime moved {up} s");
        assert_eq!(of(&next, "os-uptime", "value") + of(&next, "os-uptime", "eta_s"), of(&next, "os-uptime", "threshold"), "{step}: the ETA is not the uptime still needed: {next}");
        assert_eq!(of(&next, "confirmed-blocks", "value"), of(&last, "confirmed-blocks", "value"), "{step}");
        assert_eq!(next["confirmation_margin"], last["confirmation_margin"], "{step}");
        last = next;
    }
    Ok(())
}

/// The tracker's report after it sampled again (restarted, it samples at once).
fn fresh_eligibility(m: &Machine, last: &Value) -> Result<Value, HarnessError> {
    let before = last["uptime_s"].as_u64().unwrap_or(0);
    m.succeed("cairnctl restart eligibility")?;
    m.wait_until_succeeds(&format!("cairnctl --json eligibility | grep -q '\"uptime_s\":' && ! cairnctl --json eligibility | grep -q '\"uptime_s\":{before},'"), Duration::from_secs(60))?;
    Ok(serde_json::from_str(&m.succeed("cairnctl --json eligibility")?).unwrap_or_default())
}

/// `promtool check metrics`: Prometheus's parser and linter (`./dev setup` unpacks it from
/// Debian's prometheus package).
fn promtool_check(text: &str) {
    use std::io::Write as _;
    let tool = std::env::var("CAIRN_PROMTOOL").unwrap_or_else(|_| "/var/cache/cairn/promtool/usr/bin/promtool".into());
    let mut child = std::process::Command::new(&tool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool ({tool}): {e}; `./dev setup` unpacks it from Debian's prometheus package"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool");
    assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(), "promtool: {}{}\n{text}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// `cairnctl --json eligibility`, parsed.
fn report(m: &Machine) -> Result<Value, HarnessError> {
    let out = m.succeed("cairnctl --json eligibility")?;
    serde_json::from_str(&out).map_err(|e| HarnessError::Check(format!("cairnctl --json eligibility: {e}: {out}")))
}

/// The tracker's report once it holds for `pred` (it samples every `interval_s`).
fn wait_report(m: &Machine, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value, HarnessError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(r) = report(m) {
            if pred(&r) {
                return Ok(r);
            }
            if std::time::Instant::now() >= deadline {
                return Err(HarnessError::Check(format!("the eligibility report never showed {what}: {r}")));
            }
        } else if std::time::Instant::now() >= deadline {
            return Err(HarnessError::Check(format!("no eligibility report showing {what}")));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn boot_id(m: &Machine) -> Result<String, HarnessError> {
    Ok(m.succeed("cat /proc/sys/kernel/random/boot_id")?.trim().to_owned())
}

/// A resumed snapshot's clock is the snapshot's: set it to the host's, so the wall-clock
/// downtime between two boots is the real one.
fn set_clock(m: &Machine) -> R {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    m.succeed(&format!("date -s @{now} >/dev/null")).map(|_| ())
}

/// The tracker sampling every second, restarted so it reads that now.
fn sample_every_second(m: &Machine) -> R {
    m.succeed("printf 'interval_s = 1\\n' > /data/cairn/eligibility.toml && cairnctl restart eligibility").map(|_| ())
}

#[test]
fn cairnctl_reboot_on_a_node_with_uptime_refuses_without_a_terminal_or_yes_prints_the_cost_and_the_next_boot_says_the_operator_ended_it() -> R {
    let mut m = boot("cairnctl_reboot_on_a_node_with_uptime_refuses_without_a_terminal_or_yes")?;
    set_clock(&m)?;
    sample_every_second(&m)?;
    let first = boot_id(&m)?;
    let before = wait_report(&m, "this boot sampled", |r| r["boot_id"] == first.as_str() && r["fluxd"]["state"] == "node")?;
    let uptime = m.succeed("cut -d. -f1 /proc/uptime")?.trim().parse::<u64>().unwrap_or(0);

    // No terminal (the agent's commands have none) and no --yes: the cost, and no reboot.
    let (code, out) = m.execute("cairnctl reboot </dev/null 2>&1", Duration::from_secs(30))?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("OS uptime lost") && out.contains("confirmation") && out.contains("no terminal to ask on"), "{out}");
    let (code, out) = m.execute("cairnctl --json reboot </dev/null 2>/dev/null", Duration::from_secs(30))?;
    let cost: Value = serde_json::from_str(&out).map_err(|e| HarnessError::Check(format!("cairnctl --json reboot: {e}: {out}")))?;
    assert_eq!((code, cost["rebooting"].as_bool()), (1, Some(false)), "{out}");
    let lost = cost["reboot_cost"]["uptime_lost_s"].as_u64().unwrap_or(0);
    assert!(lost <= uptime + 5 && lost + 10 >= uptime, "uptime lost {lost} s against /proc/uptime {uptime} s: {out}");
    // The captured node's margin: blocks left to confirm, at 30 s a block.
    assert_eq!(cost["reboot_cost"]["confirmation_margin_s"], before["confirmation_margin"]["seconds"], "{out}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(boot_id(&m)?, first, "a refused reboot rebooted");
    m.fail("test -e /data/cairn/boot/ended.json && grep -q $(cat /proc/sys/kernel/random/boot_id) /data/cairn/boot/ended.json")?;

    // With --yes it reboots; the next boot's first sample names how this one ended.
    m.mark_console();
    let _ = m.execute("cairnctl reboot --yes </dev/null", Duration::from_secs(10));
    m.wait_for_ready(BOOT_TIMEOUT)?;
    m.wait_for_agent(Duration::from_secs(60))?;
    let second = boot_id(&m)?;
    assert_ne!(second, first);
    let after = wait_report(&m, "the new boot sampled", |r| r["boot_id"] == second.as_str())?;
    let previous = &after["last_boot"]["previous"];
    assert_eq!((previous["boot_id"].as_str(), previous["ended"].as_str()), (Some(first.as_str()), Some("operator")), "{after}");
    let ran = previous["ran_s"].as_u64().unwrap_or(0);
    assert!(ran >= uptime, "the previous boot ran {ran} s, at least the {uptime} s it had");
    // That reboot's downtime is now this node's measure of the next one's.
    let down = previous["down_s"].as_u64().ok_or_else(|| HarnessError::Check(format!("no downtime measured: {after}")))?;
    assert!((1..600).contains(&down), "downtime {down} s");
    // OS uptime started again at power-on: at the new boot's first sample it fits inside
    // the downtime; carried on, it would be the {ran} s before plus that downtime.
    let up = after["last_boot"]["uptime_s"].as_u64().unwrap_or(u64::MAX);
    assert!(up <= down && after["uptime_s"].as_u64().is_some_and(|u| u >= up && u < ran + down), "uptime {up} s at the first sample, {down} s down, {ran} s before: {after}");
    let cost = &after["reboot_cost"];
    assert_eq!((cost["downtime_s"].as_u64(), cost["downtime_measured_over"].as_u64()), (Some(down), Some(1)), "{after}");
    println!("a reboot of this node, cairnctl reboot --yes to the tracker's first sample: {down} s down");
    let table = m.succeed("cairnctl eligibility")?;
    assert!(table.contains("last boot  rebooted or powered off by the operator"), "{table}");
    let _ = m.shutdown(Duration::from_secs(60));
    Ok(())
}

#[test]
fn a_power_cut_while_the_tracker_writes_keeps_every_acknowledged_sample_and_the_next_boot_says_power_loss() -> R {
    let mut m = boot("a_power_cut_while_the_tracker_writes")?;
    set_clock(&m)?;
    sample_every_second(&m)?;
    let first = boot_id(&m)?;
    let r = wait_report(&m, "samples every second", |r| r["boot_id"] == first.as_str() && r["fluxd"]["state"] == "node")?;
    let start = r["history_records"].as_u64().unwrap_or(0);
    let acknowledged = wait_report(&m, "five more samples", |r| r["history_records"].as_u64().unwrap_or(0) >= start + 5)?["history_records"].as_u64().unwrap_or(0);
    // The cut falls while the tracker appends a sample a second (each fdatasync'd before the
    // report that counts it is written).
    m.crash()?;
    m.wait_for_ready(BOOT_TIMEOUT)?;
    m.wait_for_agent(Duration::from_secs(60))?;
    let second = boot_id(&m)?;
    let after = wait_report(&m, "the new boot sampled", |r| r["boot_id"] == second.as_str())?;
    let previous = &after["last_boot"]["previous"];
    assert_eq!((previous["boot_id"].as_str(), previous["ended"].as_str()), (Some(first.as_str()), Some("power-loss")), "{after}");
    // Opened after the cut, the history holds every sample a report acknowledged: the
    // first report of this boot counts what was opened, this boot's entry and one sample.
    let opened = after["history_records"].as_u64().unwrap_or(0).saturating_sub(2);
    assert!(opened >= acknowledged, "{acknowledged} samples acknowledged before the cut, {opened} opened after it");
    let torn = m.succeed("journalctl -u eligibility -b 0 --no-pager -o cat | grep -c 'torn last write' || true")?;
    println!("power cut: {acknowledged} samples acknowledged, {opened} entries opened after the cut; torn tail reported {} time(s)", torn.trim());
    let _ = m.shutdown(Duration::from_secs(60));
    Ok(())
}
