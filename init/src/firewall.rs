//! The node's firewall: one nftables table, `inet cairn`, applied by PID 1 (through
//! `cairnctl firewall apply`) before any network service starts.
//!
//! Inbound is dropped unless it is an answer, loopback, ICMP, DHCP, SSH (rate-limited per
//! source address) or one of Flux's public ports. fluxd's RPC (16124), zmq (16123) and the
//! benchmark daemon (16224/16225) stay reachable from the node itself only. The table has no
//! forward chain and never flushes the ruleset, so the chains Docker manages for published
//! container ports keep working beside it.
//!
//! Operators add rules for the input chain in `/data/cairn/firewall.d/*.nft` (one rule a
//! line, e.g. `tcp dport 8443 accept`). A ruleset nft refuses is never applied: the last one
//! that applied stays (or the base rules alone), and the error is reported.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const REPORT: &str = "/run/cairn/firewall.json";

/// FluxOS's API port is 16127, or 16137..16197 in steps of 10 for several nodes behind one
/// address; each has its UI below it and its TLS API and Syncthing above (RESEARCH.md).
pub fn flux_api_ports() -> Vec<(u16, u16)> {
    (0..8).map(|i| 16127 + 10 * i).map(|api| (api - 1, api + 2)).collect()
}

/// TCP ports open to everyone, for reports and tests: SSH, Flux P2P, app routing, and the
/// FluxOS ranges.
pub fn public_tcp() -> Vec<String> {
    let mut v: Vec<String> = ["22", "80", "443", "16125"].iter().map(|s| s.to_string()).collect();
    v.extend(flux_api_ports().iter().map(|(a, b)| format!("{a}-{b}")));
    v
}

/// The whole ruleset with the operator's rules in the input chain before its end.
pub fn render(additions: &str) -> String {
    let api: Vec<String> = flux_api_ports().iter().map(|(a, b)| format!("{a}-{b}")).collect();
    let syncthing: Vec<String> = flux_api_ports().iter().map(|(_, b)| b.to_string()).collect();
    format!(
        "# Cairn's firewall (init/src/firewall.rs). Replaces only its own table: Docker's stay.\n\
table inet cairn\n\
delete table inet cairn\n\
table inet cairn {{\n\
\tset ssh_v4 {{ type ipv4_addr; flags dynamic, timeout; timeout 1m; }}\n\
\tset ssh_v6 {{ type ipv6_addr; flags dynamic, timeout; timeout 1m; }}\n\
\tchain input {{\n\
\t\ttype filter hook input priority filter; policy drop;\n\
\t\tct state established,related accept\n\
\t\tct state invalid drop\n\
\t\tiif \"lo\" accept\n\
\t\tmeta l4proto {{ icmp, ipv6-icmp }} accept\n\
\t\tudp dport {{ 68, 546 }} accept comment \"DHCP answers\"\n\
\t\ttcp dport 22 ct state new update @ssh_v4 {{ ip saddr limit rate over 10/minute burst 20 packets }} drop comment \"SSH: a source over 10 new connections a minute waits\"\n\
\t\ttcp dport 22 ct state new update @ssh_v6 {{ ip6 saddr limit rate over 10/minute burst 20 packets }} drop\n\
\t\ttcp dport 22 accept comment \"SSH\"\n\
\t\ttcp dport 16125 accept comment \"Flux P2P\"\n\
\t\ttcp dport {{ 80, 443 }} accept comment \"Flux app routing\"\n\
\t\ttcp dport {{ {} }} accept comment \"FluxOS UI, API, TLS API, Syncthing\"\n\
\t\tudp dport {{ {} }} accept comment \"Syncthing (QUIC)\"\n\
\t\t# The operator's rules (/data/cairn/firewall.d/*.nft):\n\
{}\
\t}}\n\
}}\n",
        api.join(", "),
        syncthing.join(", "),
        additions.lines().filter(|l| !l.trim().is_empty()).map(|l| format!("\t\t{}\n", l.trim())).collect::<String>()
    )
}

#[derive(Debug, Clone)]
pub struct Paths {
    pub additions: PathBuf,
    pub last_good: PathBuf,
    pub report: PathBuf,
}

impl Paths {
    pub fn node() -> Paths {
        Paths { additions: "/data/cairn/firewall.d".into(), last_good: "/data/cairn/firewall.last-good.nft".into(), report: REPORT.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Applied {
    /// The base rules and the operator's current files.
    Configured,
    /// The operator's files were refused: the last ruleset that applied.
    LastGood,
    /// The operator's files were refused and none applied before: the base rules alone.
    Base,
    /// Nothing could be applied: the node has no firewall.
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub applied: Applied,
    pub public_tcp: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Report {
    pub fn line(&self) -> String {
        let what = match self.applied {
            Applied::Configured => "applied",
            Applied::LastGood => "the last good ruleset applied",
            Applied::Base => "the base rules applied (without the operator's)",
            Applied::None => "NOT applied: inbound is open",
        };
        let mut s = format!("firewall {what}; open to all: TCP {}", self.public_tcp.join(", "));
        if let Some(e) = &self.error {
            s = format!("ERROR: {e}; {s}");
        }
        s
    }
}

/// The operator's files, in name order; each at most 64 KiB.
pub fn read_additions(dir: &Path) -> Result<String, String> {
    let mut names: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(d) => d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "nft")).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    names.sort();
    let mut out = String::new();
    for p in names {
        let text = crate::provision::volume::read_small(&p)?.unwrap_or_default();
        if text.len() > 64 * 1024 {
            return Err(format!("{} is over 64 KiB", p.display()));
        }
        out.push_str(&text);
        out.push('\n');
    }
    Ok(out)
}

/// Applies the configured ruleset, or falls back; `nft(ruleset, check_only)` runs nft.
pub fn apply(paths: &Paths, nft: &dyn Fn(&str, bool) -> Result<(), String>) -> Report {
    let mut report = Report { applied: Applied::None, public_tcp: public_tcp(), error: None };
    let wanted = read_additions(&paths.additions).map(|a| render(&a));
    let checked = wanted.and_then(|r| nft(&r, true).map(|()| r).map_err(|e| format!("the operator's rules in {} were refused by nft: {e}", paths.additions.display())));
    match checked {
        Ok(ruleset) => match nft(&ruleset, false) {
            Ok(()) => {
                report.applied = Applied::Configured;
                if let Err(e) = crate::atomic::write(&paths.last_good, ruleset.as_bytes(), 0o644) {
                    report.error = Some(format!("cannot keep the ruleset as the last good one in {}: {e}", paths.last_good.display()));
                }
                return report;
            }
            Err(e) => report.error = Some(format!("nft could not apply the ruleset: {e}")),
        },
        Err(e) => report.error = Some(e),
    }
    if let Ok(Some(last)) = crate::provision::volume::read_small(&paths.last_good) {
        if nft(&last, false).is_ok() {
            report.applied = Applied::LastGood;
            return report;
        }
    }
    if nft(&render(""), false).is_ok() {
        report.applied = Applied::Base;
    }
    report
}

/// Runs Debian's nft on a ruleset given on its standard input (`-c`: check only).
pub fn run_nft(ruleset: &str, check_only: bool) -> Result<(), String> {
    use std::io::Write;
    let mut cmd = std::process::Command::new("/usr/sbin/nft");
    if check_only {
        cmd.arg("-c");
    }
    let mut child = cmd
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run /usr/sbin/nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(ruleset.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err.lines().filter(|l| !l.trim().is_empty()).take(6).collect::<Vec<_>>().join(" | "))
    }
}

#[cfg(test)]
mod tests;
