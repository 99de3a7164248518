//! `cairnctl`: the operator's command line for a Cairn node.
//!
//! Exit codes: 0 success, 1 the request failed, 2 bad usage.

use std::process::ExitCode;

const STATUS_FILE: &str = "/run/cairn/status.json";

fn usage() -> ExitCode {
    eprintln!("usage: cairnctl [--json] <status|services|reboot|poweroff|hardening>");
    ExitCode::from(2)
}

fn signal_init(sig: nix::sys::signal::Signal, what: &str) -> ExitCode {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(1), sig) {
        Ok(()) => {
            println!("{what} requested");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cairnctl: cannot ask PID 1 to {what}: {e} (only root may)");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let cmd: Vec<&str> = args.iter().filter(|a| !a.starts_with("--")).map(String::as_str).collect();
    match cmd.as_slice() {
        ["status"] | ["services"] => {
            let text = match std::fs::read_to_string(STATUS_FILE) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("cairnctl: cannot read {STATUS_FILE}: {e} (is this a Cairn node that finished booting?)");
                    return ExitCode::from(1);
                }
            };
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if json {
                println!("{}", if cmd == ["status"] { v.clone() } else { v["services"].clone() });
            } else if cmd == ["status"] {
                println!("slot      {}", v["slot"].as_str().unwrap_or("?"));
                println!("version   {}", v["version"].as_str().unwrap_or("?"));
                println!("boot id   {}", v["boot_id"].as_str().unwrap_or("?"));
                let t = &v["timeline_ms"];
                println!("boot      kernel {} ms, stage 1 {} ms, stage 2 {} ms", t["kernel"], t["stage1"], t["stage2"]);
            } else if let Some(map) = v["services"].as_object() {
                println!("{:<24} STATE", "SERVICE");
                for (name, state) in map {
                    println!("{:<24} {}", name, state.as_str().unwrap_or("?"));
                }
            }
            ExitCode::SUCCESS
        }
        ["hardening"] => match std::fs::read_to_string("/run/cairn/hardening.json") {
            Ok(t) => {
                println!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cairnctl: no hardening report: {e}");
                ExitCode::from(1)
            }
        },
        ["reboot"] => signal_init(nix::sys::signal::Signal::SIGINT, "reboot"),
        ["poweroff"] => signal_init(nix::sys::signal::Signal::SIGPWR, "poweroff"),
        _ => usage(),
    }
}
