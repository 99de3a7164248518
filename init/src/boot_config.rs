//! The steps between mounting /data and starting services: first-boot configuration
//! (`cairnctl provision`) and the firewall (`cairnctl firewall apply`).
//!
//! PID 1 runs them as child processes, one after the other, each with a time limit: what
//! they read is untrusted (a cloud's volume, a file anyone can edit on the ESP) and what
//! they wait on (a slow disk, nft) is not PID 1's to block on. Their output goes to the
//! console and the journal through PID 1's log; their reports stay in /run for
//! `cairnctl status`. A step that fails or overruns is reported and the boot goes on.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const CAIRNCTL: &str = "/usr/bin/cairnctl";
/// Enough for a slow USB stick; after this the step is killed and the boot goes on.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `argv`, passing each line it prints to `say`, killing it after `timeout`.
/// Returns whether it exited 0.
pub fn run_step(argv: &[&str], timeout: Duration, say: &dyn Fn(&str)) -> bool {
    let mut child = match Command::new(argv[0]).args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) => {
            say(&format!("WARNING: cannot run {}: {e}", argv.join(" ")));
            return false;
        }
    };
    // Lines are read on threads: a child that fills a pipe must not stall, and PID 1 only
    // waits here for as long as the limit says.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    for pipe in [child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>), child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>)].into_iter().flatten() {
        let tx = tx.clone();
        let _ = std::thread::Builder::new().name("boot-step".into()).spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok).take(200) {
                let _ = tx.send(line.chars().take(400).collect());
            }
        });
    }
    drop(tx);
    let start = Instant::now();
    loop {
        while let Ok(line) = rx.try_recv() {
            say(&line);
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                // What is left in the pipes, briefly.
                while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                    say(&line);
                }
                return status.success();
            }
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                say(&format!("WARNING: {} did not finish within {} s and was stopped; the boot goes on", argv.join(" "), timeout.as_secs()));
                return false;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                say(&format!("WARNING: waiting for {}: {e}", argv.join(" ")));
                return false;
            }
        }
    }
}

/// `cairnctl provision`: applies first-boot configuration; prints the report's lines.
/// Exit 1 when a source was refused (the boot goes on either way).
pub fn provision() -> i32 {
    let report = crate::provision::run(&crate::sys::RealSys, &crate::provision::Paths::node());
    for line in report.lines() {
        println!("config: {line}");
    }
    i32::from(report.has_errors())
}

/// `cairnctl firewall apply`.
pub fn firewall() -> i32 {
    let paths = crate::firewall::Paths::node();
    let report = crate::firewall::apply(&paths, &crate::firewall::run_nft);
    if let Ok(json) = serde_json::to_vec(&report) {
        let _ = crate::atomic::write(&paths.report, &json, 0o644);
    }
    println!("{}", report.line());
    i32::from(report.error.is_some())
}

/// `cairnctl ssh run -- SSHD ARGS...`: the host key, then become sshd.
pub fn ssh_run(sshd: &[String]) -> i32 {
    match crate::ssh::prepare(std::path::Path::new(crate::ssh::HOST_KEY_DIR)) {
        Ok(Some(key)) => eprintln!("ssh: made the host key {} ({})", key.display(), fingerprint(&key.with_extension("pub"))),
        Ok(None) => {}
        Err(e) => {
            eprintln!("ssh: ERROR: {}", crate::log::chain(&e));
            return 1;
        }
    }
    use std::os::unix::process::CommandExt;
    let e = Command::new(&sshd[0]).args(&sshd[1..]).exec();
    eprintln!("ssh: cannot run {}: {e}", sshd[0]);
    1
}

fn fingerprint(pub_key: &std::path::Path) -> String {
    Command::new("ssh-keygen").arg("-l").arg("-f").arg(pub_key).output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
}

/// The lines `cairnctl status` adds: first-boot configuration and firewall, this boot.
pub fn status_lines() -> Vec<String> {
    let mut out = Vec::new();
    match std::fs::read(crate::provision::REPORT).ok().and_then(|b| serde_json::from_slice::<crate::provision::Report>(&b).ok()) {
        Some(r) if r.sources.is_empty() && r.errors.is_empty() => out.push("no first-boot configuration found (NoCloud, ConfigDrive or the ESP's cairn.toml)".into()),
        Some(r) => out.extend(r.lines()),
        None => out.push("first-boot configuration: no report this boot".into()),
    }
    match std::fs::read(crate::firewall::REPORT).ok().and_then(|b| serde_json::from_slice::<crate::firewall::Report>(&b).ok()) {
        Some(r) => out.push(r.line()),
        None => out.push("firewall: no report this boot".into()),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_step_s_lines_are_passed_on_and_one_that_overruns_is_stopped() {
        let said = Mutex::new(Vec::<String>::new());
        let say = |l: &str| said.lock().expect("lock").push(l.to_owned());
        assert!(run_step(&["/bin/sh", "-c", "echo one; echo two >&2"], Duration::from_secs(10), &say));
        let mut lines = said.lock().expect("lock").clone();
        lines.sort();
        assert_eq!(lines, ["one", "two"]);
        let start = Instant::now();
        assert!(!run_step(&["/bin/sh", "-c", "sleep 30"], Duration::from_millis(300), &say));
        assert!(start.elapsed() < Duration::from_secs(10), "not stopped at its limit");
        assert!(said.lock().expect("lock").last().is_some_and(|l| l.contains("did not finish")));
        assert!(!run_step(&["/nonexistent/cairnctl"], Duration::from_secs(1), &say));
    }
}
