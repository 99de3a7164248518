//! The watchdog: if PID 1's main loop stops turning (a deadlock, a hung system call, a
//! kernel that no longer schedules it), the node reboots by itself instead of sitting dead
//! until an operator notices. Stage 1 loads `softdog` (the cloud kernel has no hardware
//! watchdog driver for QEMU's i6300esb); on hardware whose driver registered first,
//! /dev/watchdog0 is that one.
//!
//! Armed once and never disarmed: PID 1 never writes the magic 'V' that would stop it, so it
//! stays armed through shutdown too, and a shutdown that hangs after the services stopped
//! ends in a reboot rather than a dead node (systemd's shutdown watchdog does the same).

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How long the main loop may stall before the node reboots. Long enough for a slow
/// shutdown step on a loaded machine, short enough that a hung node is back within minutes.
pub const TIMEOUT: Duration = Duration::from_secs(60);
pub const DEVICE: &str = "/dev/watchdog0";

#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    #[error("cannot open {DEVICE}: {0} (is the softdog module in the profile's kernel.modules?); the node runs without a watchdog")]
    Open(std::io::Error),
    #[error("{DEVICE} refused a {secs} s timeout: {source}; the node runs without a watchdog")]
    SetTimeout { secs: u32, source: nix::Error },
}

// <linux/watchdog.h>: WDIOC_KEEPALIVE = _IOR('W', 5, int), WDIOC_SETTIMEOUT = _IOWR('W', 6, int).
nix::ioctl_read!(wdioc_keepalive, b'W', 5, libc::c_int);
nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, libc::c_int);

#[derive(Debug)]
pub struct Watchdog {
    device: std::fs::File,
    timeout: Duration,
    last_pet: Instant,
}

impl Watchdog {
    /// Opens and arms the watchdog with `timeout` (the driver may round it; the value it
    /// settles on is what `timeout()` reports).
    pub fn arm(timeout: Duration) -> Result<Watchdog, WatchdogError> {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening the device starts the timer. O_CLOEXEC: a service that inherited the fd
        // could keep petting on behalf of a hung PID 1.
        let device = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_CLOEXEC).open(DEVICE).map_err(WatchdogError::Open)?;
        let mut secs = timeout.as_secs().clamp(1, i32::MAX as u64) as libc::c_int;
        let asked = secs as u32;
        // SAFETY: WDIOC_SETTIMEOUT reads and writes one int through the pointer, which points
        // to a live local; the fd is the watchdog device just opened.
        unsafe { wdioc_settimeout(device.as_raw_fd(), &mut secs) }.map_err(|source| WatchdogError::SetTimeout { secs: asked, source })?;
        let mut w = Watchdog { device, timeout: Duration::from_secs(secs.max(1) as u64), last_pet: Instant::now() };
        w.pet();
        Ok(w)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Pets the watchdog at most once a second ([`due`]): the main loop turns at least once a
    /// second, so the reset comes `TIMEOUT` after the loop last turned, never sooner.
    pub fn pet_if_due(&mut self) {
        if due(self.last_pet, Instant::now(), self.timeout) {
            self.pet();
        }
    }

    fn pet(&mut self) {
        let mut dummy: libc::c_int = 0;
        // SAFETY: WDIOC_KEEPALIVE writes at most one int through the pointer, a live local.
        if unsafe { wdioc_keepalive(self.device.as_raw_fd(), &mut dummy) }.is_ok() {
            self.last_pet = Instant::now();
        }
    }
}

/// How often the watchdog is petted, at most. It used to be a third of the timeout, which let
/// the reset come as early as 40 s after the main loop last turned: the stall monitor, which
/// records the failed boot at 40 s (`stage2::STALL_RECORD`), then lost the race to the reset
/// and the reset left no record (seen in CI). Petting on every turn, at most once a second,
/// leaves the monitor 19 s or more; the ioctl costs nothing.
pub const PET_EVERY: Duration = Duration::from_secs(1);

/// Is a pet due at `now`, the last one having been at `last`? (`timeout` bounds the interval
/// for a watchdog with a timeout shorter than [`PET_EVERY`].)
pub fn due(last: Instant, now: Instant, timeout: Duration) -> bool {
    now.saturating_duration_since(last) >= PET_EVERY.min(timeout / 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pets_every_second_so_the_reset_comes_a_full_timeout_after_the_last_turn() {
        let t0 = Instant::now();
        assert!(!due(t0, t0 + Duration::from_millis(999), TIMEOUT));
        assert!(due(t0, t0 + Duration::from_secs(1), TIMEOUT));
        assert!(due(t0, t0 + Duration::from_secs(59), TIMEOUT));
        // The loop turns at least once a second and pets when due: the last pet is at most
        // 1 s older than the last turn, so the reset leaves the stall monitor its window.
        assert!(TIMEOUT - PET_EVERY > Duration::from_secs(40) + Duration::from_secs(15));
        // A clock that seems to go backwards never triggers (and never panics).
        assert!(!due(t0 + Duration::from_secs(5), t0, TIMEOUT));
    }
}
