//! PID 1's own messages. Each goes to the console (PID 1's stdout is /dev/console), and to
//! the journal through systemd-journal-logger once journald runs. Before that it goes to the
//! kernel log buffer (/dev/kmsg), which journald reads when it starts: nothing from the
//! boot is lost. A failed write never panics PID 1.

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use systemd_journal_logger::JournalLog;

fn journal() -> &'static Mutex<Option<JournalLog>> {
    static J: OnceLock<Mutex<Option<JournalLog>>> = OnceLock::new();
    J.get_or_init(|| Mutex::new(None))
}

/// journald is up: send from now on through the journal.
pub fn journal_ready() {
    if let Ok(j) = JournalLog::empty() {
        let j = j.with_syslog_identifier("cairn-init".into());
        if let Ok(mut g) = journal().lock() {
            *g = Some(j);
        }
    }
}

/// journald went away (it is being restarted or stopped): back to the kernel log.
pub fn journal_gone() {
    if let Ok(mut g) = journal().lock() {
        *g = None;
    }
}

/// Writes to the journal or, before journald runs, to the kernel log buffer.
pub fn record(level: log::Level, msg: &str) {
    let sent = journal().lock().ok().and_then(|g| {
        g.as_ref().map(|j| j.journal_send(&log::Record::builder().args(format_args!("{msg}")).level(level).target("cairn-init").build()).is_ok())
    });
    // Outside PID 1 (unit tests, a developer running pieces by hand) the kernel log is
    // not ours to fill.
    if sent != Some(true) && std::process::id() == 1 {
        // <N> is the syslog priority; 6 = info, 4 = warning, 3 = error.
        let prio = match level {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            _ => 6,
        };
        if let Ok(mut k) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
            // Facility daemon (3 << 3): journald then reads the "cairn-init:" identifier from it;
            // facility 0 would be filed as a kernel message.
            // One write(2) per record: /dev/kmsg makes a record of every write.
            let _ = k.write_all(format!("<{}>cairn-init: {msg}", 24 + prio).as_bytes());
        }
    }
}

/// A message on the console and in the log.
pub fn say(msg: &str) {
    console(msg);
    let level = if msg.starts_with("WARNING") {
        log::Level::Warn
    } else if msg.starts_with("FATAL") {
        log::Level::Error
    } else {
        log::Level::Info
    };
    record(level, msg);
}

/// Only the console (for lines the log gets by another way).
pub fn console(msg: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "cairn: {msg}");
    let _ = out.flush();
}

#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::log::say(&format!($($arg)*)) };
}

/// Milliseconds since the kernel started (CLOCK_BOOTTIME), for the boot timeline.
pub fn uptime_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
        .unwrap_or(0)
}
