//! The sandbox a service runs in: its resource limits and OOM score, its own user and
//! groups, a smaller capability bounding set, no_new_privs, read-only paths and a private
//! /tmp (the last two in a private mount namespace).
//!
//! For a service with its own user, `capabilities` are also the ones it *has*: they are kept
//! across setuid (PR_SET_KEEPCAPS) and raised in the ambient set, which execve(2) passes to
//! an ordinary program, so `user = "x"` with CAP_NET_BIND_SERVICE can bind port 80 (as
//! systemd's AmbientCapabilities= does). A root service has every capability its bounding
//! set allows anyway.
//!
//! It is built in two steps because the second runs in the forked child, between fork(2)
//! and execve(2), where a multi-threaded parent's locks may be held: [`Sandbox::prepare`]
//! (in the parent) does every allocation, and [`Prepared::enter`] (in the child) makes only
//! system calls through rustix.

use rustix::ffi::{CStr, CString};
use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::thread::{CapabilitySet, UnshareFlags};

pub use rustix::process::Resource;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("unknown capability {0:?} (names look like CAP_NET_BIND_SERVICE)")]
    UnknownCapability(String),
    #[error("path {0:?} contains a NUL byte")]
    BadPath(String),
}

/// Capability names in kernel order (linux/capability.h); the index is the number.
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
];

pub fn capability_by_name(name: &str) -> Option<u32> {
    CAPABILITIES.iter().position(|c| c.eq_ignore_ascii_case(name)).map(|i| i as u32)
}

/// What a service definition asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// Switch to this user and group (and these supplementary groups); None stays root.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Vec<u32>,
    pub no_new_privileges: bool,
    /// Capabilities kept in the bounding set, and given (ambient) to a non-root user; None
    /// keeps the bounding set whole and gives a non-root user none.
    pub capabilities: Option<Vec<String>>,
    pub read_only_paths: Vec<String>,
    pub private_tmp: bool,
    /// setrlimit(2), soft and hard alike; None is unlimited.
    pub rlimits: Vec<(Resource, Option<u64>)>,
    pub oom_score_adj: Option<i32>,
}

/// A sandbox ready to enter in a forked child: nothing left to allocate.
#[derive(Debug)]
pub struct Prepared {
    uid: Option<rustix::process::Uid>,
    gid: Option<rustix::process::Gid>,
    groups: Vec<rustix::process::Gid>,
    no_new_privileges: bool,
    /// Bounding-set capabilities to drop, each a single-bit set.
    drop: Vec<CapabilitySet>,
    /// What a non-root user keeps across setuid and raises as ambient: all of them together,
    /// and each alone (PR_CAP_AMBIENT_RAISE takes one at a time).
    give: CapabilitySet,
    ambient: Vec<CapabilitySet>,
    read_only: Vec<CString>,
    private_tmp: bool,
    rlimits: Vec<(Resource, rustix::process::Rlimit)>,
    /// The decimal text written to /proc/self/oom_score_adj.
    oom_score_adj: Option<Vec<u8>>,
}

impl Sandbox {
    /// `last_cap` is /proc/sys/kernel/cap_last_cap (capabilities above it do not exist here).
    pub fn prepare(&self, last_cap: u32) -> Result<Prepared, SandboxError> {
        let mut kept = Vec::new();
        for name in self.capabilities.iter().flatten() {
            kept.push(capability_by_name(name).ok_or_else(|| SandboxError::UnknownCapability(name.clone()))?);
        }
        let drop = match &self.capabilities {
            None => Vec::new(),
            Some(_) => (0..=last_cap.min(63)).filter(|c| !kept.contains(c)).map(|c| CapabilitySet::from_bits_retain(1u64 << c)).collect(),
        };
        let non_root = self.uid.is_some_and(|u| u != 0);
        let ambient: Vec<CapabilitySet> =
            if non_root { kept.iter().filter(|c| **c <= last_cap.min(63)).map(|c| CapabilitySet::from_bits_retain(1u64 << c)).collect() } else { Vec::new() };
        let give = ambient.iter().fold(CapabilitySet::empty(), |all, c| all | *c);
        let read_only = self
            .read_only_paths
            .iter()
            .map(|p| CString::new(p.as_str()).map_err(|_| SandboxError::BadPath(p.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Prepared {
            uid: self.uid.map(rustix::process::Uid::from_raw),
            gid: self.gid.map(rustix::process::Gid::from_raw),
            groups: self.groups.iter().copied().map(rustix::process::Gid::from_raw).collect(),
            no_new_privileges: self.no_new_privileges,
            drop,
            give,
            ambient,
            read_only,
            private_tmp: self.private_tmp,
            rlimits: self.rlimits.iter().map(|(r, v)| (*r, rustix::process::Rlimit { current: *v, maximum: *v })).collect(),
            oom_score_adj: self.oom_score_adj.map(|a| a.to_string().into_bytes()),
        })
    }
}

const ROOT: &CStr = c"/";
const TMP: &CStr = c"/tmp";
const TMPFS: &CStr = c"tmpfs";
const EMPTY: &CStr = c"";
const OOM_SCORE_ADJ: &CStr = c"/proc/self/oom_score_adj";

impl Prepared {
    /// Enters the sandbox. Call only in a forked child before execve: it changes the whole
    /// process (mount namespace, credentials) and makes no allocation.
    ///
    /// Order matters: mounts need CAP_SYS_ADMIN, so they come before the capability drop and
    /// the switch to the service's user; no_new_privs comes last so nothing after it could
    /// regain what was dropped.
    pub fn enter(&self) -> std::io::Result<()> {
        for (resource, limit) in &self.rlimits {
            // setrlimit(2) while still root: raising a hard limit needs CAP_SYS_RESOURCE.
            rustix::process::setrlimit(*resource, *limit)?;
        }
        if let Some(text) = &self.oom_score_adj {
            // open(2) and write(2) /proc/self/oom_score_adj: lowering it needs
            // CAP_SYS_RESOURCE too, so before the switch of user.
            let fd = rustix::fs::open(OOM_SCORE_ADJ, rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())?;
            rustix::io::write(&fd, text)?;
        }
        if self.private_tmp || !self.read_only.is_empty() {
            // SAFETY: unshare(CLONE_NEWNS) gives this process its own mount table. The
            // "unsafe" in rustix concerns CLONE_FILES (fd tables shared with other threads);
            // we do not pass it, and the forked child has a single thread anyway.
            unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS)? };
            // mount(2) MS_REC|MS_PRIVATE on /: our mounts below must not reach the host.
            rustix::mount::mount_change(ROOT, MountPropagationFlags::REC | MountPropagationFlags::PRIVATE)?;
            if self.private_tmp {
                // mount(2) a fresh tmpfs over /tmp: the service sees nobody else's files.
                rustix::mount::mount(TMPFS, TMP, TMPFS, MountFlags::NOSUID | MountFlags::NODEV, Some(c"mode=1777"))?;
            }
            for p in &self.read_only {
                // mount(2) MS_BIND then MS_REMOUNT|MS_BIND|MS_RDONLY: a bind mount can only be
                // made read-only by a remount of itself.
                rustix::mount::mount_bind_recursive(p.as_c_str(), p.as_c_str())?;
                rustix::mount::mount_remount(p.as_c_str(), MountFlags::BIND | MountFlags::RDONLY, EMPTY)?;
            }
        }
        for cap in &self.drop {
            // prctl(2) PR_CAPBSET_DROP: what is not in the bounding set can never be gained.
            rustix::thread::remove_capability_from_bounding_set(*cap)?;
        }
        if let Some(gid) = self.gid {
            // setgroups(2), then setgid(2): while still root, so both are allowed.
            rustix::thread::set_thread_groups(&self.groups)?;
            rustix::thread::set_thread_gid(gid)?;
        }
        if !self.ambient.is_empty() {
            // prctl(2) PR_SET_KEEPCAPS: setuid below keeps the permitted set instead of
            // clearing it (the effective set is cleared either way).
            rustix::thread::set_keep_capabilities(true)?;
        }
        if let Some(uid) = self.uid {
            // setuid(2) last: after it the process can no longer change groups. The raw
            // per-thread call is right here: the child has exactly one thread.
            rustix::thread::set_thread_uid(uid)?;
        }
        if !self.ambient.is_empty() {
            // capset(2): exactly the given capabilities, permitted and effective, and
            // inheritable, which PR_CAP_AMBIENT_RAISE requires.
            let sets = rustix::thread::CapabilitySets { effective: self.give, permitted: self.give, inheritable: self.give };
            rustix::thread::set_capabilities(None, sets)?;
            for cap in &self.ambient {
                // prctl(2) PR_CAP_AMBIENT_RAISE: the capability survives execve(2) of a
                // program without file capabilities, for a non-root user.
                rustix::thread::configure_capability_in_ambient_set(*cap, true)?;
            }
        }
        if self.no_new_privileges {
            // prctl(2) PR_SET_NO_NEW_PRIVS: setuid binaries and file capabilities stop
            // granting anything to this process and its children.
            rustix::thread::set_no_new_privs(true)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_are_in_kernel_order() {
        assert_eq!(capability_by_name("CAP_CHOWN"), Some(0));
        assert_eq!(capability_by_name("CAP_NET_BIND_SERVICE"), Some(10));
        assert_eq!(capability_by_name("cap_sys_admin"), Some(21));
        assert_eq!(capability_by_name("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability_by_name("CAP_FLY"), None);
    }

    #[test]
    fn prepare_drops_all_but_the_kept_capabilities() {
        let s = Sandbox { capabilities: Some(vec!["CAP_NET_BIND_SERVICE".into()]), ..Default::default() };
        let p = s.prepare(40).expect("valid sandbox");
        assert_eq!(p.drop.len(), 40);
        assert!(!p.drop.contains(&CapabilitySet::from_bits_retain(1 << 10)));
        assert!(Sandbox { capabilities: Some(vec!["CAP_FLY".into()]), ..Default::default() }.prepare(40).is_err());
        assert!(Sandbox::default().prepare(40).map(|p| p.drop.is_empty()).unwrap_or(false));
    }

    /// Issue 8 item 10: a non-root user is given its capabilities as ambient; root, or no
    /// list, gives none.
    #[test]
    fn a_non_root_user_is_given_its_capabilities_as_ambient() {
        let bind = CapabilitySet::from_bits_retain(1 << 10);
        let user = Sandbox { uid: Some(65534), capabilities: Some(vec!["CAP_NET_BIND_SERVICE".into()]), ..Default::default() };
        let p = user.prepare(40).expect("valid");
        assert_eq!((p.give, p.ambient.as_slice()), (bind, &[bind][..]));
        let root = Sandbox { uid: None, ..user.clone() }.prepare(40).expect("valid");
        assert!(root.ambient.is_empty() && root.give.is_empty());
        let all = Sandbox { capabilities: None, ..user }.prepare(40).expect("valid");
        assert!(all.ambient.is_empty(), "a user without a list gets no capabilities");
    }
}
