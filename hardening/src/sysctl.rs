//! The sysctl baseline: the kernel self-protection project's recommendations that a
//! container host (dockerd running the Flux node's app containers) can live with.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Setting {
    pub key: &'static str,
    pub value: &'static str,
    pub why: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("{0} does not exist on this kernel (module not loaded, or the knob is not built in)")]
    Unsupported(String),
    #[error("cannot write {key}: {source}")]
    Write { key: String, source: std::io::Error },
}

const fn s(key: &'static str, value: &'static str, why: &'static str) -> Setting {
    Setting { key, value, why }
}

pub const BASELINE: &[Setting] = &[
    s("kernel.kptr_restrict", "2", "hide kernel pointers from every user: they defeat KASLR"),
    s("kernel.dmesg_restrict", "1", "the kernel log leaks addresses and hardware details; root only"),
    s("kernel.yama.ptrace_scope", "2", "only CAP_SYS_PTRACE may ptrace: no process reads another's memory (no debuggers run on a node)"),
    s("kernel.unprivileged_bpf_disabled", "1", "unprivileged eBPF is a recurring kernel exploit path; 1 cannot be undone until reboot"),
    s("net.core.bpf_jit_harden", "2", "constant blinding in the BPF JIT for every user, against JIT spraying"),
    s("kernel.kexec_load_disabled", "1", "no replacing the running kernel without the verified boot path"),
    s("kernel.perf_event_paranoid", "3", "no perf events for unprivileged users (Debian's patch; side channels)"),
    s("kernel.sysrq", "0", "no magic SysRq: a serial console or VPS web console must not reboot or dump the node"),
    s("fs.protected_hardlinks", "1", "no hard links to files the user does not own (TOCTOU)"),
    s("fs.protected_symlinks", "1", "no following other users' symlinks in sticky directories"),
    s("fs.protected_fifos", "2", "no writing to other users' FIFOs in sticky directories"),
    s("fs.protected_regular", "2", "no writing to other users' files in sticky directories"),
    s("fs.suid_dumpable", "0", "set-uid programs never dump core (their memory holds secrets)"),
    s("kernel.randomize_va_space", "2", "full address space layout randomisation"),
    s("dev.tty.ldisc_autoload", "0", "no loading of line-discipline modules by unprivileged users"),
    s("vm.unprivileged_userfaultfd", "0", "userfaultfd stalls make kernel races easier to win"),
    s("kernel.panic", "10", "reboot 10 s after a panic: an unattended node must come back, not hang"),
    s("kernel.panic_on_oops", "1", "an oops leaves the kernel in an unknown state: panic (and so reboot)"),
    s("net.ipv4.conf.all.accept_redirects", "0", "ICMP redirects can reroute traffic"),
    s("net.ipv4.conf.default.accept_redirects", "0", "likewise for interfaces made later (docker0, veth)"),
    s("net.ipv4.conf.all.send_redirects", "0", "a node is not a router for its LAN"),
    s("net.ipv4.conf.default.send_redirects", "0", "likewise for interfaces made later"),
    s("net.ipv4.conf.all.accept_source_route", "0", "source routing bypasses filtering"),
    s("net.ipv4.conf.default.accept_source_route", "0", "likewise for interfaces made later"),
    s("net.ipv6.conf.all.accept_redirects", "0", "ICMPv6 redirects can reroute traffic"),
    s("net.ipv6.conf.default.accept_redirects", "0", "likewise for interfaces made later"),
    s("net.ipv4.tcp_syncookies", "1", "survive SYN floods on the node's public ports"),
];
// Deliberately not set: net.ipv4.ip_forward (Docker needs it), user namespaces (rootless
// containers need them), rp_filter=1 (strict reverse-path filtering breaks asymmetric
// Docker bridge routes on multi-homed hosts; the kernel default stays).

pub fn key_to_path(proc_sys: &Path, key: &str) -> PathBuf {
    key.split('.').fold(proc_sys.to_owned(), |p, part| p.join(part))
}

#[derive(Debug)]
pub struct Applied {
    pub setting: Setting,
    pub result: Result<(), SysctlError>,
}

/// Writes every setting; never stops at the first failure.
pub fn apply(proc_sys: &Path, settings: &[Setting]) -> Vec<Applied> {
    settings
        .iter()
        .map(|&setting| {
            let path = key_to_path(proc_sys, setting.key);
            let result = if !path.exists() {
                Err(SysctlError::Unsupported(setting.key.to_owned()))
            } else {
                std::fs::write(&path, setting.value).map_err(|source| SysctlError::Write { key: setting.key.to_owned(), source })
            };
            Applied { setting, result }
        })
        .collect()
}

/// Compares values as the kernel prints them (tabs, repeated spaces, trailing newline).
pub fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}
