//! What the control API's integration tests share: a recording fake behind the API, a
//! private dbus-daemon, and cairnctl run against it.

#![allow(dead_code)] // each test file uses its own part

use cairn_init::control::{Control, ControlError, ServiceInfo, SystemStatus};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Fake {
    pub calls: Mutex<Vec<String>>,
}

impl Fake {
    pub fn calls(&self) -> Vec<String> {
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
    fn reboot(&self, why: cairn_init::eligibility::boots::Why) -> Result<(), ControlError> {
        self.record(format!("reboot {why:?}"));
        Ok(())
    }
    fn poweroff(&self) -> Result<(), ControlError> {
        self.record("poweroff".into());
        Ok(())
    }
}

pub struct Bus {
    daemon: Child,
    dir: std::path::PathBuf,
    pub address: String,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub const OPERATOR_GID: u32 = 4242;

pub fn private_bus(tag: &str) -> Bus {
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

pub fn cairnctl(bus: &Bus, args: &[&str], uid: Option<(u32, u32)>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairnctl"));
    cmd.args(args).env("CAIRNCTL_BUS_ADDRESS", &bus.address);
    if let Some((uid, gid)) = uid {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().expect("run cairnctl");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The policy the tests serve with: operators by OPERATOR_GID, no log readers.
pub fn policy() -> cairn_init::api::Policy {
    cairn_init::api::Policy { operator_gid: Some(OPERATOR_GID), log_reader_gids: Vec::new() }
}
