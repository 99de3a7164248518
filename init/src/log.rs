//! PID 1's own messages. Each goes to the console (PID 1's stdout is /dev/console), and to
//! the journal through systemd-journal-logger once journald runs. Before that it goes to the
//! kernel log buffer (/dev/kmsg), which journald reads when it starts: nothing from the
//! boot is lost. A failed write never panics PID 1.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static JOURNAL_UP: AtomicBool = AtomicBool::new(false);
/// Console lines that did not fit (a slow or stopped serial line), not yet reported.
static CONSOLE_DROPPED: AtomicU64 = AtomicU64::new(0);

/// journald is up: send from now on through the journal.
pub fn journal_ready() {
    JOURNAL_UP.store(true, Ordering::Relaxed);
}

/// journald went away (it is being restarted or stopped): back to the kernel log.
pub fn journal_gone() {
    JOURNAL_UP.store(false, Ordering::Relaxed);
}

/// Writes to the journal (through the non-blocking journal writer) or, before journald
/// runs, to the kernel log buffer.
pub fn record(level: log::Level, msg: &str) {
    let sent = JOURNAL_UP.load(Ordering::Relaxed)
        && crate::journal::Writer::global().send(crate::journal::Entry { identifier: "cairn-init".into(), service: None, level, text: msg.to_owned() });
    // Outside PID 1 (unit tests, a developer running pieces by hand) the kernel log is
    // not ours to fill.
    if !sent && std::process::id() == 1 {
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
    let level = if msg.starts_with("WARNING") {
        log::Level::Warn
    } else if msg.starts_with("FATAL") {
        log::Level::Error
    } else {
        log::Level::Info
    };
    // The log first: before journald runs, the kernel echoes a warning or error it logs
    // onto the same serial console, and it does so inside this write. Written after our own
    // console line, that echo landed in the middle of the *next* line (a VM test's match on
    // "recorded a failed boot ..." failed that way).
    record(level, msg);
    console(msg);
}

/// Only the console (for lines the log gets by another way).
///
/// Stage 2 makes the console non-blocking ([`console_nonblocking`]): a serial line that
/// is slow or stopped (flow control, a console nobody reads) then costs lines, counted and
/// reported with the next line that fits, never a PID 1 stuck in write(2).
pub fn console(msg: &str) {
    console_to(rustix::stdio::stdout(), &CONSOLE_DROPPED, msg);
}

/// Sets O_NONBLOCK on PID 1's console (fd 1; fd 2 shares its open file description).
pub fn console_nonblocking() -> std::io::Result<()> {
    let fd = rustix::stdio::stdout();
    // fcntl(2) F_GETFL/F_SETFL: the flag is on the open file description of /dev/console
    // that only PID 1 holds; services write to their own pipes.
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// One write(2) of one line; a line that does not fit whole is dropped and counted.
fn console_to(fd: std::os::fd::BorrowedFd<'_>, dropped: &AtomicU64, msg: &str) {
    let before = dropped.load(Ordering::Relaxed);
    let line = if before > 0 { format!("cairn: ({before} console lines dropped: the console was not keeping up)\ncairn: {msg}\n") } else { format!("cairn: {msg}\n") };
    match rustix::io::write(fd, line.as_bytes()) {
        Ok(n) if n == line.len() => {
            dropped.fetch_sub(before, Ordering::Relaxed);
        }
        // A partial line is still one dropped line: the rest is not written later.
        _ => {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
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

/// An error and its causes on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// Issue 8 item 6: a console that does not drain (a full pipe stands in for a stopped
    /// serial line) costs lines, counted, and never blocks; the count is reported once the
    /// console drains.
    #[test]
    fn a_full_console_drops_and_counts_instead_of_blocking() {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK | rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
        let dropped = AtomicU64::new(0);
        let start = std::time::Instant::now();
        for i in 0..20_000 {
            console_to(write.as_fd(), &dropped, &format!("line {i} {}", "x".repeat(100)));
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        let lost = dropped.load(Ordering::Relaxed);
        assert!(lost > 10_000, "a 64 KiB pipe holds about 550 such lines, yet only {lost} were dropped");
        let mut buf = vec![0u8; 1 << 20];
        while rustix::io::read(&read, &mut buf).is_ok_and(|n| n > 0) {}
        console_to(write.as_fd(), &dropped, "after");
        let n = rustix::io::read(&read, &mut buf).expect("read");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert_eq!(text, format!("cairn: ({lost} console lines dropped: the console was not keeping up)\ncairn: after\n"));
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
    }
}
