//! The sysctl baseline: the Kernel Self-Protection Project's recommended knobs, minus the
//! ones a container host cannot live with.
//!
//! A Cairn node runs dockerd/containerd with the Flux node's app containers: arbitrary
//! third-party images, possibly rootless or user-namespaced. So the baseline keeps everything
//! those need (IP forwarding, user namespaces, module autoloading for netfilter and overlay)
//! and restricts what only an attacker needs (kernel addresses, unprivileged BPF, kexec, ...).
//!
//! Deliberately NOT set, and why:
//! - `net.ipv4.ip_forward`: Docker's bridge and port publishing need it; dockerd sets it.
//! - `user.max_user_namespaces` / `kernel.unprivileged_userns_clone`: rootless and
//!   userns-remapped containers need user namespaces.
//! - `kernel.modules_disabled`: dockerd loads `overlay`, `br_netfilter` and netfilter modules on
//!   demand long after boot; only a signed root with a fixed module list could afford it.
//! - `kernel.yama.ptrace_scope=2`: see the entry below; 1 is the compromise.
//! - `rp_filter=1` (strict): see the entries below; loose (2) is what we set.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// One kernel knob, its hardened value, and the reason an operator can read in the audit.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Setting {
    /// Dotted name as `sysctl(8)` prints it, e.g. `kernel.kptr_restrict`.
    pub key: &'static str,
    /// The value to write; multi-value knobs separate fields by single spaces.
    pub value: &'static str,
    /// Why this value, in one line.
    pub why: &'static str,
}

/// Why one setting could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    /// The knob is absent: the kernel was built without it, or its module is not loaded yet.
    #[error(
        "sysctl {key} does not exist ({path} is missing): the kernel lacks this knob or its module \
         is not loaded; the rest of the baseline still applies"
    )]
    Unsupported { key: String, path: PathBuf },
    /// The knob exists but the kernel refused the write.
    #[error(
        "cannot set sysctl {key}={value} via {path}: {source} (EINVAL: the kernel rejects this value; \
         EPERM/EROFS: not root, /proc/sys mounted read-only, or a one-way knob already locked)"
    )]
    Write {
        key: String,
        value: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

const fn s(key: &'static str, value: &'static str, why: &'static str) -> Setting {
    Setting { key, value, why }
}

/// The baseline PID 1 applies at boot, in this order.
pub const BASELINE: &[Setting] = &[
    // --- Kernel information leaks ---
    s("kernel.kptr_restrict", "2", "hide kernel pointers in /proc from everyone, root included: they defeat KASLR"),
    s("kernel.dmesg_restrict", "1", "the kernel log leaks addresses and hardware details; only CAP_SYSLOG may read it"),
    s(
        "kernel.perf_event_paranoid",
        "3",
        "no perf events for unprivileged users (side channels, perf exploits); upstream kernels treat 3 as 2",
    ),
    // --- Attack surface for unprivileged code (including container workloads) ---
    // 1, not 2: Yama is not namespaced, so 2 (only CAP_SYS_PTRACE may trace) would apply inside
    // every app container too and break workloads that trace their own children (crash
    // reporters like crashpad/createdump, strace, proot, gVisor's ptrace platform). 1 still
    // stops the real threat: one compromised process reading a sibling's memory (the node
    // daemon's keys) just because it runs as the same uid.
    s(
        "kernel.yama.ptrace_scope",
        "1",
        "a process may only ptrace its own descendants: a compromised process cannot read a sibling's memory (2 would break tracing inside app containers)",
    ),
    s(
        "kernel.unprivileged_bpf_disabled",
        "1",
        "unprivileged eBPF is a recurring kernel exploit path; dockerd is root and unaffected (1 is locked until reboot)",
    ),
    s("net.core.bpf_jit_harden", "2", "blind constants in JIT-compiled BPF for every user, against JIT spraying"),
    s(
        "kernel.kexec_load_disabled",
        "1",
        "no loading a replacement kernel at run time: the only way in is the verified boot path (locked until reboot)",
    ),
    s("dev.tty.ldisc_autoload", "0", "unprivileged users cannot autoload TTY line-discipline modules (a known exploit path)"),
    s("vm.unprivileged_userfaultfd", "0", "userfaultfd lets unprivileged code stall the kernel mid-copy and win races"),
    // Since 6.6 (Debian 13's 6.12 has it; 6.1 did not). Nothing on a node needs io_uring:
    // dockerd, containerd and the Flux daemons use epoll, libuv falls back to its thread pool
    // when io_uring_setup fails, and Docker's default seccomp profile already denies it
    // inside containers. 2 closes it for the host's own processes too, root included.
    s(
        "kernel.io_uring_disabled",
        "2",
        "io_uring has been the kernel's most exploited interface of recent years and nothing on a node uses it: no process may create one",
    ),
    // Keyboard/serial SysRq only (writes to /proc/sysrq-trigger are root-only and not masked).
    // 176 = 16 sync + 32 remount read-only + 128 reboot/poweroff: whoever holds the VPS console
    // can already power-cycle the node, so this grants nothing new, but lets an operator reboot
    // a hung node without corrupting /data. Memory/task dumps (8), signalling all processes
    // (64), SAK (4) and log-level changes (2) stay off.
    s(
        "kernel.sysrq",
        "176",
        "console SysRq may only sync, remount read-only and reboot (a clean reboot of a hung node); no dumps, no killing processes",
    ),
    // --- Filesystem races in world-writable directories ---
    s("fs.protected_hardlinks", "1", "no hard links to files the user cannot read/write (hard-link TOCTOU attacks)"),
    s("fs.protected_symlinks", "1", "no following another user's symlink in a sticky world-writable directory (/tmp races)"),
    s("fs.protected_fifos", "2", "no opening another user's FIFO with O_CREAT in a sticky directory (data spoofing)"),
    s("fs.protected_regular", "2", "no opening another user's regular file with O_CREAT in a sticky directory (data spoofing)"),
    s("fs.suid_dumpable", "0", "processes that changed privileges never dump core: their memory holds secrets"),
    s("kernel.randomize_va_space", "2", "full ASLR: stack, mmap, vDSO and heap (brk) are randomised"),
    // --- Fail loudly, recover unattended ---
    s("kernel.panic", "10", "reboot 10 s after a panic: an unattended node must come back (and fall back to the other slot), not hang"),
    s(
        "kernel.panic_on_oops",
        "1",
        "after an oops the kernel is in an unknown, possibly attacker-controlled state: panic, and so reboot",
    ),
    // --- Network: a node is an end host with a container bridge, not a router ---
    s("net.ipv4.conf.all.accept_redirects", "0", "ICMP redirects let anyone on the link reroute the node's traffic"),
    s("net.ipv4.conf.default.accept_redirects", "0", "same, for interfaces created later (docker0, veth, wg)"),
    s("net.ipv4.conf.all.secure_redirects", "0", "not even redirects from the current gateway: it is spoofable on shared VPS links"),
    s("net.ipv4.conf.default.secure_redirects", "0", "same, for interfaces created later"),
    s("net.ipv4.conf.all.send_redirects", "0", "the node forwards for its containers but must not redirect LAN hosts"),
    s("net.ipv4.conf.default.send_redirects", "0", "same, for interfaces created later"),
    s("net.ipv4.conf.all.accept_source_route", "0", "source-routed packets choose their own path past filtering"),
    s("net.ipv4.conf.default.accept_source_route", "0", "same, for interfaces created later"),
    s("net.ipv6.conf.all.accept_redirects", "0", "ICMPv6 redirects let anyone on the link reroute the node's traffic"),
    s("net.ipv6.conf.default.accept_redirects", "0", "same, for interfaces created later"),
    s("net.ipv6.conf.all.accept_source_route", "0", "IPv6 source routing (routing headers) bypasses filtering"),
    s("net.ipv6.conf.default.accept_source_route", "0", "same, for interfaces created later"),
    // Loose (2), not strict (1). Strict works with a single-NIC Docker bridge, but Cairn runs on
    // arbitrary VPS and bare metal: failover IPs, several NICs, policy routing, macvlan/ipvlan
    // networks and VPN tunnels give asymmetric routes, and strict mode silently drops their
    // replies. That costs eligibility and is hard to diagnose. Loose is what systemd and Ubuntu
    // ship (Docker is proven on it) and still drops packets from unroutable sources. The
    // kernel uses max(all, <iface>), so "all" raises every interface, existing ones included.
    s(
        "net.ipv4.conf.all.rp_filter",
        "2",
        "loose reverse-path filtering: drop packets from unroutable sources; strict (1) breaks multi-homed hosts and Docker macvlan",
    ),
    s("net.ipv4.conf.default.rp_filter", "2", "same, for interfaces created later"),
    s("net.ipv4.tcp_syncookies", "1", "keep accepting connections on the node's public ports during a SYN flood"),
    s("net.ipv4.icmp_echo_ignore_broadcasts", "1", "do not answer broadcast pings (smurf amplification)"),
];

/// Maps a dotted key onto its file: `"a.b.c"` -> `proc_sys/a/b/c`.
///
/// Every dot is a separator: interface names containing a dot (VLANs such as `eth0.100`) need
/// `/` in sysctl(8) syntax, and the baseline only uses `all`/`default`, so this never matters here.
pub fn key_to_path(proc_sys: &Path, key: &str) -> PathBuf {
    let mut path = proc_sys.to_path_buf();
    path.extend(key.split('.').filter(|part| !part.is_empty()));
    path
}

/// The outcome of writing one setting.
#[derive(Debug)]
pub struct Applied {
    pub setting: Setting,
    pub result: Result<(), SysctlError>,
}

/// Writes every setting under `proc_sys` (normally `/proc/sys`).
///
/// Never stops at the first failure: one missing knob must not leave the rest of the node
/// unhardened. A missing key is [`SysctlError::Unsupported`]; any other I/O error is
/// [`SysctlError::Write`].
pub fn apply(proc_sys: &Path, settings: &[Setting]) -> Vec<Applied> {
    settings.iter().map(|&setting| Applied { setting, result: write_one(proc_sys, &setting) }).collect()
}

fn write_one(proc_sys: &Path, setting: &Setting) -> Result<(), SysctlError> {
    let path = key_to_path(proc_sys, setting.key);
    // No `create`: in /proc/sys a missing file means a missing knob, and creating it (which
    // only "works" outside procfs) would hide that. Truncate matches sysctl(8) and keeps a
    // plain-file stand-in (tests) exact.
    let file = std::fs::OpenOptions::new().write(true).truncate(true).open(&path);
    let written = file.and_then(|mut f| {
        // One write(2) call: procfs parses each write separately, so the value must not be split.
        f.write_all(format!("{}\n", setting.value).as_bytes())
    });
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(SysctlError::Unsupported { key: setting.key.to_owned(), path })
        }
        Err(source) => {
            Err(SysctlError::Write { key: setting.key.to_owned(), value: setting.value.to_owned(), path, source })
        }
    }
}

/// Whether a value read back from `/proc/sys` equals the expected one.
///
/// The kernel prints multi-value knobs (`kernel.printk`, `net.ipv4.ip_local_port_range`) with
/// tabs and a trailing newline, while humans write spaces; only the fields matter.
pub(crate) fn values_match(actual: &str, expected: &str) -> bool {
    actual.split_whitespace().eq(expected.split_whitespace())
}

/// A value as shown in the audit: fields joined by single spaces.
pub(crate) fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashSet;

    /// A scratch directory that removes itself; std only, no tempfile crate.
    pub(crate) struct Scratch(pub PathBuf);

    impl Scratch {
        pub(crate) fn new(name: &str) -> std::io::Result<Self> {
            let dir = std::env::temp_dir().join(format!("cairn-hardening-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            Ok(Self(dir))
        }

        /// Creates the file for `key` holding `content`, like the kernel would expose it.
        pub(crate) fn knob(&self, key: &str, content: &str) -> std::io::Result<()> {
            let path = key_to_path(&self.0, key);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, content)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn key_to_path_splits_on_dots() {
        let p = key_to_path(Path::new("/proc/sys"), "net.ipv4.conf.all.rp_filter");
        assert_eq!(p, PathBuf::from("/proc/sys/net/ipv4/conf/all/rp_filter"));
    }

    #[test]
    fn baseline_is_well_formed() {
        let mut seen = HashSet::new();
        for s in BASELINE {
            assert!(seen.insert(s.key), "duplicate key {}", s.key);
            assert!(!s.value.trim().is_empty() && !s.why.is_empty(), "{}", s.key);
        }
        // The things that would break Docker must never sneak in.
        for forbidden in ["net.ipv4.ip_forward", "user.max_user_namespaces", "kernel.modules_disabled"] {
            assert!(!seen.contains(forbidden), "{forbidden} breaks the container runtime");
        }
        for required in ["kernel.kptr_restrict", "kernel.panic", "net.ipv4.tcp_syncookies", "fs.protected_regular"] {
            assert!(seen.contains(required), "{required} missing");
        }
    }

    #[test]
    fn apply_writes_present_knobs_and_reports_missing_ones() -> Result<(), Box<dyn std::error::Error>> {
        let dir = Scratch::new("apply")?;
        dir.knob("kernel.kptr_restrict", "0\n")?;
        dir.knob("kernel.printk", "7\t4\t1\t7\n")?;
        let settings = [
            s("kernel.kptr_restrict", "2", "t"),
            s("kernel.printk", "3 4 1 3", "t"),
            s("kernel.nonexistent_knob", "1", "t"),
        ];
        let out = apply(&dir.0, &settings);
        assert_eq!(out.len(), 3, "every setting gets a result");
        assert!(out[0].result.is_ok() && out[1].result.is_ok());
        assert!(matches!(out[2].result, Err(SysctlError::Unsupported { .. })));
        // apply must not have created the missing knob.
        assert!(!key_to_path(&dir.0, "kernel.nonexistent_knob").exists());
        assert_eq!(std::fs::read_to_string(key_to_path(&dir.0, "kernel.kptr_restrict"))?, "2\n");
        assert_eq!(std::fs::read_to_string(key_to_path(&dir.0, "kernel.printk"))?, "3 4 1 3\n");
        Ok(())
    }

    #[test]
    fn apply_reports_other_io_errors_as_write() -> Result<(), Box<dyn std::error::Error>> {
        let dir = Scratch::new("write-err")?;
        // A directory where a knob file should be: open for writing fails with EISDIR.
        std::fs::create_dir_all(key_to_path(&dir.0, "kernel.sysrq"))?;
        let out = apply(&dir.0, &[s("kernel.sysrq", "176", "t")]);
        assert!(matches!(out[0].result, Err(SysctlError::Write { .. })), "{:?}", out[0].result);
        Ok(())
    }

    #[test]
    fn values_compare_by_fields() {
        assert!(values_match("4\t4\t1\t7\n", "4 4 1 7"));
        assert!(values_match("  2 \n", "2"));
        assert!(!values_match("4\t4\t1\t7\n", "4 4 1"));
        assert!(!values_match("1\n", "2"));
        assert_eq!(normalize("32768\t60999\n"), "32768 60999");
    }
}
