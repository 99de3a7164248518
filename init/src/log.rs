//! Console messages. PID 1's stdout is /dev/console; a failed write must never panic it.

use std::io::Write;

pub fn say(msg: &str) {
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
