//! The control API on a real dbus-daemon (a private bus), driven by busctl and cairnctl, with
//! a recording fake behind it: the interface is visible to standard tools, cairnctl's
//! output and exit codes hold, and a caller who is not root nor in the operator group is
//! refused.

use cairn_init::control::{Control, ControlError, ServiceInfo, SystemStatus};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
}

impl Fake {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
    fn record(&self, c: String) {
        if let Ok(mut v) = self.calls.lock() {
            v.push(c);
        }
    }
    fn known(&self, name: &str) -> Result<(), ControlError> {
        if name == "web" { Ok(()) } else { Err(ControlError::NoSuchService(name.into())) }
    }
}

impl Control for Fake {
    fn status(&self) -> SystemStatus {
        SystemStatus { slot: "a".into(), version: "0.1.0".into(), boot_id: "b00t".into(), uptime_s: 42, root_hash: "abc".into(), ready: true }
    }
    fn services(&self) -> Vec<ServiceInfo> {
        vec![ServiceInfo {
            name: "web".into(),
            state: "running".into(),
            readiness: "ready".into(),
            pid: 123,
            restarts: 2,
            last_exit: "exited with status 1".into(),
            next_start_ms: 0,
            error: String::new(),
            first_start_ms: 900,
            first_ready_ms: 1200,
        }]
    }
    fn logs(&self, name: &str, lines: u32) -> Result<Vec<String>, ControlError> {
        self.known(name)?;
        Ok((0..lines.min(3)).map(|i| format!("line {i}")).collect())
    }
    fn start(&self, name: &str) -> Result<(), ControlError> {
        self.known(name)?;
        self.record(format!("start {name}"));
        Ok(())
    }
    fn stop(&self, name: &str) -> Result<(), ControlError> {
        self.known(name)?;
        self.record(format!("stop {name}"));
        Ok(())
    }
    fn restart(&self, name: &str) -> Result<(), ControlError> {
        self.known(name)?;
        self.record(format!("restart {name}"));
        Ok(())
    }
    fn reboot(&self) -> Result<(), ControlError> {
        self.record("reboot".into());
        Ok(())
    }
    fn poweroff(&self) -> Result<(), ControlError> {
        self.record("poweroff".into());
        Ok(())
    }
}

struct Bus {
    daemon: Child,
    dir: std::path::PathBuf,
    address: String,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const OPERATOR_GID: u32 = 4242;

fn private_bus(tag: &str) -> Bus {
    use std::os::unix::fs::PermissionsExt;
    assert!(Command::new("dbus-daemon").arg("--version").output().is_ok(), "dbus-daemon is missing; install it: apt-get install -y dbus");
    let dir = std::env::temp_dir().join(format!("cairn-api-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let sock = dir.join("bus");
    let config = dir.join("bus.conf");
    std::fs::write(
        &config,
        format!(
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\" \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
             <busconfig><type>system</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>\n\
             <policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/><allow send_destination=\"*\"/><allow receive_sender=\"*\"/></policy></busconfig>\n",
            sock.display()
        ),
    )
    .expect("bus config");
    let daemon = Command::new("dbus-daemon").arg(format!("--config-file={}", config.display())).arg("--nofork").arg("--nopidfile").spawn().expect("start dbus-daemon");
    let start = Instant::now();
    while !sock.exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777));
    Bus { daemon, address: format!("unix:path={}", sock.display()), dir }
}

fn cairnctl(bus: &Bus, args: &[&str], uid: Option<(u32, u32)>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairnctl"));
    cmd.args(args).env("CAIRNCTL_BUS_ADDRESS", &bus.address);
    if let Some((uid, gid)) = uid {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().expect("run cairnctl");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn busctl_sees_the_interface_and_cairnctl_drives_it() {
    let bus = private_bus("drive");
    let fake = Arc::new(Fake::default());
    let _api = cairn_init::api::serve(Some(&bus.address), fake.clone(), Some(OPERATOR_GID)).expect("serve the API");

    let intro = Command::new("busctl").args(["--address", &bus.address, "introspect", "org.cairn.Init1", "/org/cairn/Init1"]).output();
    let intro = intro.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).expect("busctl is missing; install it: apt-get install -y systemd");
    for m in ["org.cairn.Init1.Manager", ".ListServices", ".RestartService", ".Logs", ".Status", ".PowerOff"] {
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
}

#[test]
fn callers_that_are_not_root_or_operators_are_refused() {
    let bus = private_bus("deny");
    let fake = Arc::new(Fake::default());
    let _api = cairn_init::api::serve(Some(&bus.address), fake.clone(), Some(OPERATOR_GID)).expect("serve the API");
    let nobody = Some((65534, 65534));
    let (code, _, err) = cairnctl(&bus, &["restart", "web"], nobody);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("permission denied"), "{err}");
    assert_eq!(cairnctl(&bus, &["poweroff"], nobody).0, 4);
    assert_eq!(cairnctl(&bus, &["services"], nobody).0, 0, "reading is open to everyone");
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
