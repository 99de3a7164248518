//! The orderly shutdown: stop services, kill what is left, unmount, sync, reboot(2).
//! systemd's shutdown.c is the model: unmount repeatedly until nothing changes, and fall
//! back to read-only remounts for what stays busy, so the file systems are clean.

use crate::say;
use crate::sys::{Power, Sys};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// Waits until `done()` or the timeout, reaping children meanwhile.
pub fn wait_reaping(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        crate::process::reap_all(&mut |_, _| {});
        if done() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Mount points to take down, deepest first, from /proc/self/mountinfo text. The kernel's
/// own file systems and / are left: / is read-only already, the rest hold no user data.
pub fn unmount_order(mountinfo: &str) -> Vec<String> {
    let keep = ["/", "/proc", "/sys", "/dev"];
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| !keep.contains(&p.as_str()) && !p.starts_with("/proc/") && !p.starts_with("/sys/"))
        .collect();
    points.reverse();
    points
}

/// The end of every shutdown: everything after the services have been stopped.
pub fn finish(sys: &dyn Sys, how: Power, mountinfo: &dyn Fn() -> String) -> ! {
    kill_rest(sys);
    sys.sync();
    unmount_all(sys, mountinfo);
    sys.sync();
    say!("{}", if how == Power::Reboot { "rebooting now" } else { "powering off now" });
    loop {
        let _ = sys.power(how);
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// SIGTERM to every process left, then SIGKILL to what is still there after 3 s; reaps them.
pub fn kill_rest(sys: &dyn Sys) {
    say!("sending SIGTERM to all processes");
    let _ = sys.kill_all(Signal::SIGTERM);
    let all_gone = || matches!(nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)), Err(nix::Error::ECHILD));
    if !wait_reaping(Duration::from_secs(3), all_gone) {
        say!("sending SIGKILL to all processes");
        let _ = sys.kill_all(Signal::SIGKILL);
        wait_reaping(Duration::from_secs(2), all_gone);
    }
}

/// Unmounts until a pass changes nothing, then remounts what is left read-only.
pub fn unmount_all(sys: &dyn Sys, mountinfo: &dyn Fn() -> String) {
    for _ in 0..5 {
        let points = unmount_order(&mountinfo());
        if points.is_empty() {
            return;
        }
        let mut progress = false;
        for p in &points {
            if sys.umount(p, false).is_ok() {
                progress = true;
            }
        }
        if !progress {
            for p in &points {
                match sys.remount_ro(p) {
                    Ok(()) => say!("{p} is busy: remounted read-only"),
                    Err(e) => say!("{p} is busy and cannot be remounted read-only: {e}"),
                }
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Recorder;

    const MOUNTINFO: &str = "22 1 253:0 / / ro,relatime - squashfs /dev/dm-0 ro\n\
        23 22 0:5 / /dev rw - devtmpfs devtmpfs rw\n\
        24 22 0:20 / /proc rw - proc proc rw\n\
        25 22 0:21 / /run rw - tmpfs tmpfs rw\n\
        26 22 254:7 / /data rw - ext4 /dev/vda7 rw\n\
        27 26 0:30 / /data/some\\040dir rw - tmpfs tmpfs rw\n\
        28 22 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";

    #[test]
    fn unmounts_deepest_first_and_keeps_kernel_mounts() {
        assert_eq!(unmount_order(MOUNTINFO), ["/data/some dir", "/data", "/run"]);
    }

    #[test]
    fn busy_mounts_are_remounted_read_only() {
        let r = Recorder { busy: vec!["/data".into()], ..Default::default() };
        unmount_all(&r, &|| "26 22 254:7 / /data rw - ext4 /dev/vda7 rw\n".to_owned());
        assert_eq!(r.calls(), ["umount /data", "remount-ro /data"]);
    }
}
