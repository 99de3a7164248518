//! Issue 8 item 9: the API decides who a caller is from the credentials the bus recorded
//! when the caller connected, not from /proc/<pid> at the time of the call (which races PID
//! reuse, and follows a caller that changed its groups since).
//!
//! A separate test binary because the client half changes its own process's credentials:
//! the test re-runs this binary as that client (`CAIRN_API_CLIENT_BUS` set), which connects
//! as nobody without groups, then gains the operator group (through its saved root uid),
//! drops to nobody again and calls RestartService. Read from /proc, it would now look like
//! an operator; the bus still says it is not.

mod common;

use common::{policy, private_bus, Fake, OPERATOR_GID};
use std::sync::Arc;

const CLIENT_ENV: &str = "CAIRN_API_CLIENT_BUS";
const NOBODY: u32 = 65534;

/// The client half; does nothing unless the test below started this binary as its client.
#[test]
fn client_half_of_a_caller_whose_group_changed_after_it_connected() {
    let Ok(address) = std::env::var(CLIENT_ENV) else { return };
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let (root, nobody) = (Uid::from_raw(0), Uid::from_raw(NOBODY));
    setgroups(&[]).expect("setgroups");
    setresgid(Gid::from_raw(NOBODY), Gid::from_raw(NOBODY), Gid::from_raw(0)).expect("setresgid");
    // Nobody, but root is kept as the saved uid to come back to.
    setresuid(nobody, nobody, root).expect("setresuid");
    let conn = zbus::blocking::connection::Builder::address(address.as_str()).and_then(|b| b.build()).expect("connect as nobody");
    setresuid(nobody, root, root).expect("back to root through the saved uid");
    setgroups(&[Gid::from_raw(OPERATOR_GID)]).expect("join the operator group");
    setresuid(nobody, nobody, nobody).expect("drop root for good");
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    assert!(status.lines().any(|l| l.starts_with("Groups:") && l.contains(&OPERATOR_GID.to_string())), "the client is not in the operator group now:\n{status}");
    let reply = conn.call_method(Some("org.cairn.Init1"), "/org/cairn/Init1", Some("org.cairn.Init1.Manager"), "RestartService", &("web",));
    match reply {
        Err(zbus::Error::MethodError(name, msg, _)) => println!("CLIENT REFUSED {} {}", name.as_str(), msg.unwrap_or_default()),
        Err(e) => println!("CLIENT ERROR {e}"),
        Ok(_) => println!("CLIENT ALLOWED"),
    }
}

#[test]
fn the_api_refuses_a_caller_whose_group_changed_after_it_connected() {
    assert!(nix::unistd::geteuid().is_root(), "this test changes credentials in a child and needs root");
    let bus = private_bus("creds");
    let fake = Arc::new(Fake::default());
    let _api = cairn_init::api::serve(Some(&bus.address), fake.clone(), policy()).expect("serve the API");
    let me = std::env::current_exe().expect("this test binary");
    let out = std::process::Command::new(me)
        .args(["--exact", "client_half_of_a_caller_whose_group_changed_after_it_connected", "--nocapture", "--test-threads=1"])
        .env(CLIENT_ENV, &bus.address)
        .output()
        .expect("run the client half");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the client half failed:\n{text}");
    assert!(text.contains("CLIENT REFUSED org.cairn.Init1.Error.AccessDenied"), "a caller that joined the operator group after connecting was not refused:\n{text}");
    assert!(fake.calls().is_empty(), "the restart went through: {:?}", fake.calls());
}
