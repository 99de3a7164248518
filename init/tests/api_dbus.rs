//! The control API on a real dbus-daemon (a private bus), driven by busctl and cairnctl, with
//! a recording fake behind it: the interface is visible to standard tools, cairnctl's
//! output and exit codes hold, and a caller who is not root nor in the operator group is
//! refused.

mod common;

use common::{cairnctl, policy, private_bus, Fake, OPERATOR_GID};
use std::process::Command;
use std::sync::Arc;

#[test]
fn busctl_sees_the_interface_and_cairnctl_drives_it() {
    let bus = private_bus("drive");
    let fake = Arc::new(Fake::default());
    let _api = cairn_init::api::serve(Some(&bus.address), fake.clone(), policy()).expect("serve the API");

    let intro = Command::new("busctl").args(["--address", &bus.address, "introspect", "org.cairn.Init1", "/org/cairn/Init1"]).output();
    let intro = intro.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).expect("busctl is missing; install it: apt-get install -y systemd");
    for m in ["org.cairn.Init1.Manager", ".ListServices", ".RestartService", ".Logs", ".Status", ".PowerOff", ".RebootForUpdate", ".UpdateProgress"] {
        assert!(intro.contains(m), "{m} missing from busctl introspect:\n{intro}");
    }

    let (code, out, err) = cairnctl(&bus, &["services"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.starts_with("web") && l.contains("running") && l.contains("123")), "{out}");
    let (code, out, _) = cairnctl(&bus, &["--json", "services"], None);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v[0]["name"], "web");
    assert_eq!(v[0]["restarts"], 2);
    assert_eq!(v[0]["last_exit"], "exited with status 1");
    let (code, out, _) = cairnctl(&bus, &["--json", "logs", "web", "-n", "2"], None);
    assert_eq!((code, out.trim()), (0, r#"["line 0","line 1"]"#));
    let (code, out, _) = cairnctl(&bus, &["status"], None);
    assert_eq!(code, 0);
    assert!(out.contains("slot       a"), "{out}");

    assert_eq!(cairnctl(&bus, &["restart", "web"], None).0, 0);
    let (code, _, err) = cairnctl(&bus, &["restart", "nosuch"], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no service named nosuch"), "{err}");
    assert_eq!(cairnctl(&bus, &["frobnicate"], None).0, 2);
    assert_eq!(fake.calls(), ["restart web"]);

    // Nothing reboots without saying what it costs: with no terminal to ask on, only --yes.
    let (code, out, err) = cairnctl(&bus, &["reboot"], None);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("no terminal") && out.contains("cost of a reboot"), "{out}{err}");
    let (code, out, _) = cairnctl(&bus, &["--json", "reboot"], None);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!((code, v["rebooting"].as_bool()), (1, Some(false)), "{out}");
    assert_eq!(fake.calls(), ["restart web"], "refused means no reboot asked for");
    assert_eq!(cairnctl(&bus, &["reboot", "--yes"], None).0, 0);
    // An update's reboot says so, for the history of how boots ended.
    assert_eq!(cairnctl(&bus, &["update", "reboot"], None).0, 0);
    assert_eq!(fake.calls(), ["restart web", "reboot Operator", "reboot Update"]);
}

#[test]
fn callers_that_are_not_root_or_operators_are_refused() {
    let bus = private_bus("deny");
    let fake = Arc::new(Fake::default());
    let _api = cairn_init::api::serve(Some(&bus.address), fake.clone(), policy()).expect("serve the API");
    let nobody = Some((65534, 65534));
    let (code, _, err) = cairnctl(&bus, &["restart", "web"], nobody);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("permission denied"), "{err}");
    assert_eq!(cairnctl(&bus, &["poweroff"], nobody).0, 4);
    assert_eq!(cairnctl(&bus, &["services"], nobody).0, 0, "the service table is open to everyone");
    let (code, _, err) = cairnctl(&bus, &["logs", "web"], nobody);
    assert_eq!(code, 4, "service logs are for root, operators and the journal's readers: {err}");
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    // An operator (here by primary group) may.
    let (code, _, err) = cairnctl(&bus, &["restart", "web"], Some((65534, OPERATOR_GID)));
    assert_eq!(code, 0, "{err}");
    assert_eq!(fake.calls(), ["restart web"]);
}

#[test]
fn an_unreachable_api_exits_3() {
    let (code, _, err) = {
        let out = Command::new(env!("CARGO_BIN_EXE_cairnctl")).args(["services"]).env("CAIRNCTL_BUS_ADDRESS", "unix:path=/nonexistent/bus").output().expect("run");
        (out.status.code().unwrap_or(-1), (), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is this a Cairn node"), "{err}");
}

/// The eligibility tracker's interface, beside PID 1's: the last report and the cost of a
/// reboot as JSON, `Eligible` as a property, readable by anyone.
#[test]
fn the_tracker_serves_its_report_and_the_reboot_cost_on_d_bus() {
    use cairn_init::eligibility::criteria::{Rules, Sample};
    use cairn_init::eligibility::fluxd::Fluxd;
    use cairn_init::eligibility::{dbus, tracker::Report};
    let bus = private_bus("eligibility");
    let latest = dbus::Latest::default();
    let _conn = dbus::serve(Some(&bus.address), latest.clone()).expect("serve the tracker's interface");
    let busctl = |args: &[&str], uid: Option<(u32, u32)>| {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new("busctl");
        c.args(["--address", &bus.address]).args(args);
        if let Some((u, g)) = uid {
            c.uid(u).gid(g);
        }
        let o = c.output().expect("busctl is missing; install it: apt-get install -y systemd");
        (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let call = ["call", dbus::BUS_NAME, dbus::OBJECT_PATH, dbus::BUS_NAME, "Report"];
    let (ok, _, err) = busctl(&call, None);
    assert!(!ok && err.contains("has not sampled yet"), "{err}");
    let report = Report::new(&Rules::default(), "b00d", &Sample { uptime: std::time::Duration::from_secs(90_000), fluxd: Fluxd::NotInstalled }, 1, None);
    *latest.lock().expect("lock") = Some(report.clone());
    // Anyone may read it.
    let (ok, out, err) = busctl(&["--json=short"].iter().chain(call.iter()).copied().collect::<Vec<_>>(), Some((65534, 65534)));
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("busctl JSON");
    let served: Report = serde_json::from_str(v["data"][0].as_str().expect("a string")).expect("the report as JSON");
    assert_eq!(served, report);
    let (ok, out, _) = busctl(&["--json=short", "call", dbus::BUS_NAME, dbus::OBJECT_PATH, dbus::BUS_NAME, "RebootCost"], None);
    let cost: serde_json::Value = serde_json::from_str(serde_json::from_str::<serde_json::Value>(&out).expect("JSON")["data"][0].as_str().unwrap_or("")).expect("cost JSON");
    assert!(ok && cost["uptime_lost_s"] == 90_000, "{cost}");
    let (ok, out, _) = busctl(&["get-property", dbus::BUS_NAME, dbus::OBJECT_PATH, dbus::BUS_NAME, "Eligible"], None);
    assert!(ok && out.trim() == "b false", "{out}");
}
