//! The system calls that change the machine's state, behind one small trait.
//!
//! Stage 1's switch to the real root, its /data decisions and stage 2's shutdown are
//! sequences whose order matters (move a mount before chroot, kill before unmount, sync
//! before reboot, never format what e2fsck could repair). They call [`Sys`], so unit tests
//! can run them against [`Recorder`], inject failures, and check the order without root.

use nix::mount::{MntFlags, MsFlags};
use nix::sys::signal::Signal;
use std::sync::Mutex;

pub type Result<T> = std::result::Result<T, nix::Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Reboot,
    PowerOff,
}

/// How a tool run by [`Sys::run_tool`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolExit {
    /// The exit code; None if a signal ended it.
    pub code: Option<i32>,
    /// Its standard error, trimmed, for the console.
    pub stderr: String,
}

impl ToolExit {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
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
    /// pivot_root(2): `new_root` becomes /, the old root is put at `put_old`.
    fn pivot_root(&self, new_root: &str, put_old: &str) -> Result<()>;
    /// kill(2) with pid -1: every process but PID 1.
    fn kill_all(&self, sig: Signal) -> Result<()>;
    /// sync(2).
    fn sync(&self);
    /// reboot(2). Returns only on failure.
    fn power(&self, how: Power) -> Result<()>;
    /// fork(2), chroot(2) into `root`, execve(2) `argv` with a clean environment, wait: the
    /// file system tools (mke2fs, e2fsck) live in the verified root, not the initramfs.
    fn run_tool(&self, root: &str, argv: &[&str]) -> std::io::Result<ToolExit>;
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
    fn pivot_root(&self, new_root: &str, put_old: &str) -> Result<()> {
        nix::unistd::pivot_root(new_root, put_old)
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
    fn run_tool(&self, root: &str, argv: &[&str]) -> std::io::Result<ToolExit> {
        use std::os::unix::process::CommandExt;
        let Some((program, args)) = argv.split_first() else { return Err(std::io::ErrorKind::InvalidInput.into()) };
        let mut cmd = std::process::Command::new(program);
        cmd.args(args).env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        let root = root.to_owned();
        // SAFETY: chroot(2) and chdir(2) are async-signal-safe, as pre_exec requires, and
        // touch only the child; `root` was allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::chroot(root.as_str())?;
                nix::unistd::chdir("/")?;
                Ok(())
            });
        }
        let out = cmd.output()?;
        Ok(ToolExit { code: out.status.code(), stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned() })
    }
}

/// A fake that records every call as one line, for tests, and fails the calls it is told to.
#[derive(Debug, Default)]
pub struct Recorder {
    pub calls: Mutex<Vec<String>>,
    /// Targets whose umount fails with EBUSY.
    pub busy: Vec<String>,
    /// A call whose recorded line starts with one of these prefixes fails with that errno
    /// (every time it is made).
    pub fail: Vec<(String, nix::Error)>,
    /// Exit codes for [`Sys::run_tool`], by prefix of its recorded line ("run e2fsck -y");
    /// a tool not named here exits 0.
    pub exit_codes: Vec<(String, i32)>,
}

impl Recorder {
    fn log(&self, line: String) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(line);
        }
    }
    /// Records the call and returns the injected failure for it, if any.
    fn call(&self, line: String) -> Result<()> {
        let failure = self.fail.iter().find(|(prefix, _)| line.starts_with(prefix.as_str())).map(|(_, e)| *e);
        self.log(line);
        failure.map_or(Ok(()), Err)
    }
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Sys for Recorder {
    fn mount(&self, source: &str, target: &str, fstype: &str, flags: MsFlags, data: &str) -> Result<()> {
        self.call(format!("mount {source} {target} {fstype} {:?} {data}", flags))
    }
    fn move_mount(&self, from: &str, to: &str) -> Result<()> {
        self.call(format!("move {from} {to}"))
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
    fn pivot_root(&self, new_root: &str, put_old: &str) -> Result<()> {
        self.call(format!("pivot_root {new_root} {put_old}"))
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
    fn run_tool(&self, root: &str, argv: &[&str]) -> std::io::Result<ToolExit> {
        let line = format!("run {}", argv.join(" "));
        let code = self.exit_codes.iter().find(|(prefix, _)| line.starts_with(prefix.as_str())).map_or(0, |(_, c)| *c);
        self.log(format!("{line} (in {root})"));
        Ok(ToolExit { code: Some(code), stderr: if code == 0 { String::new() } else { format!("exit {code}") } })
    }
}
