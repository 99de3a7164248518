//! The system calls that change the machine's state, behind one small trait.
//!
//! Stage 1's switch to the real root and stage 2's shutdown are sequences whose order
//! matters (move a mount before chroot, kill before unmount, sync before reboot). They call
//! [`Sys`], so unit tests can run them against [`Recorder`] and check the order without root.

use nix::mount::{MntFlags, MsFlags};
use nix::sys::signal::Signal;
use std::sync::Mutex;

pub type Result<T> = std::result::Result<T, nix::Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Reboot,
    PowerOff,
}

pub trait Sys {
    /// mount(2): attach `source` (of type `fstype`) at `target`.
    fn mount(&self, source: &str, target: &str, fstype: &str, flags: MsFlags, data: &str) -> Result<()>;
    /// mount(2) with MS_MOVE: move an existing mount to another place.
    fn move_mount(&self, from: &str, to: &str) -> Result<()>;
    /// mount(2) with MS_REMOUNT|MS_RDONLY: keep the mount, stop writes (for busy mounts).
    fn remount_ro(&self, target: &str) -> Result<()>;
    /// umount2(2).
    fn umount(&self, target: &str, detach: bool) -> Result<()>;
    /// chdir(2).
    fn chdir(&self, path: &str) -> Result<()>;
    /// chroot(2).
    fn chroot(&self, path: &str) -> Result<()>;
    /// kill(2) with pid -1: every process but PID 1.
    fn kill_all(&self, sig: Signal) -> Result<()>;
    /// sync(2).
    fn sync(&self);
    /// reboot(2). Returns only on failure.
    fn power(&self, how: Power) -> Result<()>;
}

/// The real implementation over nix.
#[derive(Debug, Default)]
pub struct RealSys;

impl Sys for RealSys {
    fn mount(&self, source: &str, target: &str, fstype: &str, flags: MsFlags, data: &str) -> Result<()> {
        let data = (!data.is_empty()).then_some(data);
        nix::mount::mount(Some(source), target, Some(fstype), flags, data)
    }
    fn move_mount(&self, from: &str, to: &str) -> Result<()> {
        nix::mount::mount(Some(from), to, None::<&str>, MsFlags::MS_MOVE, None::<&str>)
    }
    fn remount_ro(&self, target: &str) -> Result<()> {
        nix::mount::mount(None::<&str>, target, None::<&str>, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>)
    }
    fn umount(&self, target: &str, detach: bool) -> Result<()> {
        nix::mount::umount2(target, if detach { MntFlags::MNT_DETACH } else { MntFlags::empty() })
    }
    fn chdir(&self, path: &str) -> Result<()> {
        nix::unistd::chdir(path)
    }
    fn chroot(&self, path: &str) -> Result<()> {
        nix::unistd::chroot(path)
    }
    fn kill_all(&self, sig: Signal) -> Result<()> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(-1), sig)
    }
    fn sync(&self) {
        nix::unistd::sync();
    }
    fn power(&self, how: Power) -> Result<()> {
        let mode = match how {
            Power::Reboot => nix::sys::reboot::RebootMode::RB_AUTOBOOT,
            Power::PowerOff => nix::sys::reboot::RebootMode::RB_POWER_OFF,
        };
        nix::sys::reboot::reboot(mode).map(|_| ())
    }
}

/// A fake that records every call as one line, for tests.
#[derive(Debug, Default)]
pub struct Recorder {
    pub calls: Mutex<Vec<String>>,
    /// Targets whose umount fails with EBUSY.
    pub busy: Vec<String>,
}

impl Recorder {
    fn log(&self, line: String) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(line);
        }
    }
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Sys for Recorder {
    fn mount(&self, source: &str, target: &str, fstype: &str, flags: MsFlags, data: &str) -> Result<()> {
        self.log(format!("mount {source} {target} {fstype} {:?} {data}", flags));
        Ok(())
    }
    fn move_mount(&self, from: &str, to: &str) -> Result<()> {
        self.log(format!("move {from} {to}"));
        Ok(())
    }
    fn remount_ro(&self, target: &str) -> Result<()> {
        self.log(format!("remount-ro {target}"));
        Ok(())
    }
    fn umount(&self, target: &str, detach: bool) -> Result<()> {
        self.log(format!("umount {target}{}", if detach { " detach" } else { "" }));
        if self.busy.iter().any(|b| b == target) {
            return Err(nix::Error::EBUSY);
        }
        Ok(())
    }
    fn chdir(&self, path: &str) -> Result<()> {
        self.log(format!("chdir {path}"));
        Ok(())
    }
    fn chroot(&self, path: &str) -> Result<()> {
        self.log(format!("chroot {path}"));
        Ok(())
    }
    fn kill_all(&self, sig: Signal) -> Result<()> {
        self.log(format!("kill -1 {sig}"));
        Ok(())
    }
    fn sync(&self) {
        self.log("sync".into());
    }
    fn power(&self, how: Power) -> Result<()> {
        self.log(format!("power {how:?}"));
        Ok(())
    }
}
