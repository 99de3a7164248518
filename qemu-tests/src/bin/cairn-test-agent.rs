//! The in-guest test agent: runs shell commands for the VM test harness over /dev/hvc0
//! (a virtconsole). Present only in test images (profile `test_agent = true`).
//!
//! Protocol, one JSON object per line: the agent says `{"hello":"cairn-test-agent",
//! "boot_id":"..."}` when it starts; the host sends `{"id":N,"cmd":"...","timeout_s":T}`;
//! the agent answers `{"id":N,"status":S,"output":"..."}` (stdout and stderr together;
//! status 124 on timeout, 128+signal when killed).
//!
//! `cairn-test-agent freeze-pid1` instead stops PID 1's main thread with ptrace and holds it
//! stopped until the machine goes down: a stand-in for a PID 1 that hangs, which the
//! watchdog test needs (init cannot be sent SIGSTOP).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PORT: &str = "/dev/hvc0";

fn raw_mode(f: &std::fs::File) {
    if let Ok(mut t) = rustix::termios::tcgetattr(f) {
        t.make_raw();
        let _ = rustix::termios::tcsetattr(f, rustix::termios::OptionalActions::Now, &t);
    }
}

fn run(cmd: &str, timeout: Duration) -> (i32, String) {
    let (mut reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return (125, format!("agent: pipe: {e}")),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return (125, format!("agent: pipe: {e}")),
    };
    let mut child = match Command::new("/bin/sh").arg("-c").arg(cmd).stdin(Stdio::null()).stdout(writer).stderr(writer2).spawn() {
        Ok(c) => c,
        Err(e) => return (127, format!("agent: cannot run /bin/sh: {e}")),
    };
    let collector = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        out
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0)),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break 124;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break 125,
        }
    };
    // A command that left a background process holding the pipe must not hang us.
    let out = if status == 124 { Vec::new() } else { collector.join().unwrap_or_default() };
    (status, String::from_utf8_lossy(&out).into_owned())
}

fn serve() -> std::io::Result<()> {
    let port = std::fs::OpenOptions::new().read(true).write(true).open(PORT)?;
    raw_mode(&port);
    let mut out = port.try_clone()?;
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    writeln!(out, "{}", json!({"hello": "cairn-test-agent", "boot_id": boot_id.trim()}))?;
    for line in BufReader::new(port).lines() {
        let line = line?;
        let reply = match serde_json::from_str::<Value>(line.trim()) {
            Ok(req) if req["cmd"].is_string() => {
                let timeout = Duration::from_secs(req["timeout_s"].as_u64().unwrap_or(60));
                let (status, output) = run(req["cmd"].as_str().unwrap_or(""), timeout);
                json!({"id": req["id"], "status": status, "output": output})
            }
            Ok(_) | Err(_) if line.trim().is_empty() => continue,
            _ => json!({"id": null, "error": format!("bad request line: {:.80}", line)}),
        };
        writeln!(out, "{reply}")?;
    }
    Ok(())
}

/// PTRACE_SEIZE + PTRACE_INTERRUPT on PID 1 (root may trace anything under Cairn's
/// ptrace_scope=1), then wait: the tracee stays stopped for as long as this process lives.
fn freeze_pid1() -> ! {
    let pid1 = nix::unistd::Pid::from_raw(1);
    if let Err(e) = nix::sys::ptrace::seize(pid1, nix::sys::ptrace::Options::empty()).and_then(|()| nix::sys::ptrace::interrupt(pid1)) {
        eprintln!("cairn-test-agent: cannot stop PID 1 with ptrace: {e}");
        std::process::exit(1);
    }
    println!("PID 1 stopped");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// `listen PORT`: binds 0.0.0.0:PORT (for a service that needs a privileged port) and
/// answers each connection with "hello from uid N\n".
fn listen(port: &str) -> ! {
    let uid = rustix::process::getuid().as_raw();
    match std::net::TcpListener::bind(format!("0.0.0.0:{port}")) {
        Ok(l) => {
            println!("listening on 0.0.0.0:{port} as uid {uid}");
            for mut c in l.incoming().flatten() {
                let _ = std::io::Write::write_all(&mut c, format!("hello from uid {uid}\n").as_bytes());
            }
            std::process::exit(0)
        }
        Err(e) => {
            println!("cannot listen on 0.0.0.0:{port} as uid {uid}: {e}");
            std::process::exit(1)
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("freeze-pid1") => freeze_pid1(),
        Some("listen") => listen(args.get(2).map_or("80", String::as_str)),
        _ => {}
    }
    loop {
        if let Err(e) = serve() {
            eprintln!("cairn-test-agent: {PORT}: {e}; retrying");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
