//! Static network addresses from the operator's `/data/cairn/network.toml`, turned into the
//! configuration of Debian's dhcpcd (the `network` service), which then does DHCP on every
//! interface except those given static addresses here.
//!
//! ```toml
//! [[interface]]
//! name = "eth0"
//! addresses = ["192.0.2.10/24", "2001:db8::10/64"]
//! gateway = "192.0.2.1"
//! dns = ["192.0.2.1", "2001:db8::1"]
//! ```
//!
//! The `network` service runs `cairnctl network run -- /usr/sbin/dhcpcd ...`, which renders
//! the file on every (re)start and then becomes dhcpcd. A file that does not parse or names a
//! bad address never takes the node off the network: the last file that was good is used
//! instead (kept beside it), or plain DHCP when there has never been one, and the error is
//! printed to the service's log. `cairnctl network check` says whether a file is good.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Where the files live on a node.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The operator's file.
    pub config: PathBuf,
    /// A copy of the last `config` that was good.
    pub last_good: PathBuf,
    /// Debian's dhcpcd.conf, the base of the rendered file.
    pub base: PathBuf,
    /// What dhcpcd reads (`-f`).
    pub rendered: PathBuf,
}

impl Paths {
    pub fn node() -> Paths {
        Paths {
            config: "/data/cairn/network.toml".into(),
            last_good: "/data/cairn/network.last-good.toml".into(),
            base: "/etc/dhcpcd.conf".into(),
            rendered: "/run/cairn/dhcpcd.conf".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}; dhcpcd would run without its configuration")]
    Write { path: PathBuf, source: std::io::Error },
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    #[serde(default)]
    pub interface: Vec<Interface>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Kernel interface name (`eth0`, `ens3`: see `ip link`).
    pub name: String,
    /// Addresses with prefix length, IPv4 and IPv6.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// IPv4 default gateway (IPv6 routes come from router advertisements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Name servers for /etc/resolv.conf.
    #[serde(default)]
    pub dns: Vec<String>,
}

/// Parses and checks a network.toml; the message says what is wrong and where.
pub fn parse(text: &str) -> Result<NetworkConfig, String> {
    let cfg: NetworkConfig = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    validate(&cfg)?;
    Ok(cfg)
}

/// Checks a configuration however it was written (network.toml, or first-boot configuration
/// turned into this form); the message says what is wrong and where.
pub fn validate(cfg: &NetworkConfig) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for i in &cfg.interface {
        let bad = |m: String| format!("interface {:?}: {m}", i.name);
        if i.name.is_empty() || i.name.len() > 15 || !i.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) {
            return Err(bad("not an interface name (1-15 letters, digits, - _ . @)".into()));
        }
        if !seen.insert(i.name.as_str()) {
            return Err(bad("listed twice".into()));
        }
        if i.addresses.is_empty() {
            return Err(bad("no addresses (leave an interface out to use DHCP on it)".into()));
        }
        for a in &i.addresses {
            cidr(a).map_err(bad)?;
        }
        if let Some(g) = &i.gateway {
            match g.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => {}
                Ok(IpAddr::V6(_)) => return Err(bad(format!("gateway {g}: only an IPv4 gateway can be set; IPv6 routes come from router advertisements"))),
                Err(_) => return Err(bad(format!("gateway {g:?} is not an IP address"))),
            }
            if !i.addresses.iter().any(|a| matches!(cidr(a), Ok((IpAddr::V4(_), _)))) {
                return Err(bad(format!("gateway {g} needs an IPv4 address on the interface")));
            }
        }
        for d in &i.dns {
            d.parse::<IpAddr>().map_err(|_| bad(format!("dns {d:?} is not an IP address")))?;
        }
    }
    Ok(())
}

/// `192.0.2.10/24` → (address, prefix length).
fn cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = s.split_once('/').ok_or_else(|| format!("address {s:?} needs a prefix length, as in 192.0.2.10/24"))?;
    let addr: IpAddr = addr.parse().map_err(|_| format!("address {s:?}: {addr:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match len.parse::<u8>() {
        Ok(n) if n <= max => Ok((addr, n)),
        _ => Err(format!("address {s:?}: prefix length must be 0-{max}")),
    }
}

/// Debian's dhcpcd.conf followed by one `interface` block per static interface.
pub fn render(base: &str, cfg: &NetworkConfig) -> String {
    let mut out = String::from("# Written by Cairn from /etc/dhcpcd.conf and /data/cairn/network.toml; edit those, not this.\n");
    out.push_str(base);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    for i in &cfg.interface {
        let (v4, v6): (Vec<&String>, Vec<&String>) = i.addresses.iter().partition(|a| matches!(cidr(a), Ok((IpAddr::V4(_), _))));
        out.push_str(&format!("\ninterface {}\n", i.name));
        if !v4.is_empty() {
            out.push_str(&format!("static ip_address={}\n", join(&v4)));
        }
        if !v6.is_empty() {
            out.push_str(&format!("static ip6_address={}\n", join(&v6)));
        }
        if let Some(g) = &i.gateway {
            out.push_str(&format!("static routers={g}\n"));
        }
        if !i.dns.is_empty() {
            out.push_str(&format!("static domain_name_servers={}\n", i.dns.join(" ")));
        }
    }
    out
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

/// Which file the rendered configuration came from.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    /// No network.toml: DHCP everywhere.
    Dhcp,
    /// The operator's file.
    Config,
    /// The operator's file is broken; the last good one is used.
    LastGood,
    /// The operator's file is broken and there is no good one: DHCP everywhere.
    DhcpAfterError,
}

/// What [`prepare`] did: where the configuration came from and, when the operator's file
/// was rejected, why.
#[derive(Debug)]
pub struct Prepared {
    pub source: Source,
    pub rejected: Option<NetConfigError>,
}

/// Reads and checks a network.toml; `None` when there is none.
pub fn read_config(path: &Path) -> Result<Option<NetworkConfig>, NetConfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => parse(&t).map(Some).map_err(|message| NetConfigError::Invalid { path: path.to_owned(), message }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(NetConfigError::Read { path: path.to_owned(), source }),
    }
}

/// Renders `paths.rendered` from the operator's file, falling back to the last good one.
/// Only a failure to write the rendered file (or read Debian's base) is an error.
pub fn prepare(paths: &Paths) -> Result<Prepared, NetConfigError> {
    let base = std::fs::read_to_string(&paths.base).map_err(|source| NetConfigError::Read { path: paths.base.clone(), source })?;
    let (cfg, source, rejected) = match read_config(&paths.config) {
        Ok(None) => (NetworkConfig::default(), Source::Dhcp, None),
        Ok(Some(cfg)) => {
            // Keep it for the day the operator's file breaks; a failure here only costs
            // the fallback, so it is not an error.
            let _ = std::fs::copy(&paths.config, &paths.last_good);
            (cfg, Source::Config, None)
        }
        Err(e) => match read_config(&paths.last_good) {
            Ok(Some(cfg)) => (cfg, Source::LastGood, Some(e)),
            _ => (NetworkConfig::default(), Source::DhcpAfterError, Some(e)),
        },
    };
    let text = render(&base, &cfg);
    let write = |source| NetConfigError::Write { path: paths.rendered.clone(), source };
    if let Some(dir) = paths.rendered.parent() {
        std::fs::create_dir_all(dir).map_err(write)?;
    }
    let tmp = paths.rendered.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(write)?;
    std::fs::rename(&tmp, &paths.rendered).map_err(write)?;
    Ok(Prepared { source, rejected })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[interface]]
name = "eth0"
addresses = ["192.0.2.10/24", "2001:db8::10/64"]
gateway = "192.0.2.1"
dns = ["192.0.2.1", "2001:db8::1"]
"#;

    #[test]
    fn renders_debians_base_then_one_block_per_interface() {
        let text = render("persistent\nslaac private\n", &parse(GOOD).expect("parses"));
        assert!(text.contains("persistent\nslaac private\n\ninterface eth0\n"), "{text}");
        assert!(text.contains("static ip_address=192.0.2.10/24\n"));
        assert!(text.contains("static ip6_address=2001:db8::10/64\n"));
        assert!(text.contains("static routers=192.0.2.1\n"));
        assert!(text.contains("static domain_name_servers=192.0.2.1 2001:db8::1\n"));
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        for (text, says) in [
            ("[[interface]]\nname = \"eth0\"\naddresses = [\"192.0.2.10\"]\n", "needs a prefix length"),
            ("[[interface]]\nname = \"eth0\"\naddresses = [\"192.0.2.300/24\"]\n", "is not an IP address"),
            ("[[interface]]\nname = \"eth0\"\naddresses = [\"192.0.2.3/33\"]\n", "prefix length must be 0-32"),
            ("[[interface]]\nname = \"eth0\"\naddresses = []\n", "no addresses"),
            ("[[interface]]\nname = \"eth0\"\naddresses = [\"192.0.2.3/24\"]\ngateway = \"2001:db8::1\"\n", "only an IPv4 gateway"),
            ("[[interface]]\nname = \"eth0\"\naddresses = [\"2001:db8::3/64\"]\ngateway = \"192.0.2.1\"\n", "needs an IPv4 address"),
            ("[[interface]]\nname = \"eth0 x\"\naddresses = [\"192.0.2.3/24\"]\n", "not an interface name"),
            ("[[interface]]\nname = \"eth0\"\naddress = [\"192.0.2.3/24\"]\n", "unknown field `address`"),
            ("[[interface]]\nname = \"eth0\"\naddresses = [\"192.0.2.3/24\"]\ndns = [\"one\"]\n", "dns \"one\""),
            ("[[interface]]\nname = \"eth0\"\naddresses = [\"192.0.2.3/24\"]\n[[interface]]\nname = \"eth0\"\naddresses = [\"192.0.2.4/24\"]\n", "listed twice"),
        ] {
            let e = parse(text).expect_err("must be refused");
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cairn-net-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    fn paths(dir: &Path) -> Paths {
        std::fs::write(dir.join("dhcpcd.conf"), "persistent\n").expect("write");
        Paths {
            config: dir.join("network.toml"),
            last_good: dir.join("network.last-good.toml"),
            base: dir.join("dhcpcd.conf"),
            rendered: dir.join("run/dhcpcd.conf"),
        }
    }

    #[test]
    fn a_broken_file_keeps_the_last_good_one() {
        let dir = scratch("fallback");
        let p = paths(&dir);
        assert_eq!(prepare(&p).expect("prepare").source, Source::Dhcp);
        assert_eq!(std::fs::read_to_string(&p.rendered).expect("rendered").lines().nth(1), Some("persistent"));

        std::fs::write(&p.config, GOOD).expect("write");
        assert_eq!(prepare(&p).expect("prepare").source, Source::Config);
        let good = std::fs::read_to_string(&p.rendered).expect("rendered");
        assert!(good.contains("static ip_address=192.0.2.10/24"));

        std::fs::write(&p.config, "[[interface]]\nname = \"eth0\"\naddresses = [\"192.0.2.10\"]\n").expect("write");
        let prepared = prepare(&p).expect("prepare");
        assert_eq!(prepared.source, Source::LastGood);
        assert!(prepared.rejected.expect("rejected").to_string().contains("needs a prefix length"));
        assert_eq!(std::fs::read_to_string(&p.rendered).expect("rendered"), good);
    }

    #[test]
    fn a_broken_file_without_a_good_one_means_dhcp() {
        let dir = scratch("nogood");
        let p = paths(&dir);
        std::fs::write(&p.config, "not toml [").expect("write");
        let prepared = prepare(&p).expect("prepare");
        assert_eq!(prepared.source, Source::DhcpAfterError);
        assert!(!std::fs::read_to_string(&p.rendered).expect("rendered").contains("interface "));
        assert!(!p.last_good.exists(), "a broken file must never become the last good one");
    }
}
