//! What a first-boot configuration can set, parsed once into types and checked whole: a
//! source with any error is refused as a whole (the node keeps what it had), never half
//! applied.
//!
//! Cairn's own form is TOML, strict (an unknown key is an error):
//!
//! ```toml
//! instance_id = "node-7"              # optional; clouds give theirs in meta-data
//! hostname = "flux-node-7"
//! ssh_authorized_keys = ["ssh-ed25519 AAAAC3Nza... me@laptop"]
//!
//! [[network.interface]]               # as /data/cairn/network.toml (docs/provisioning.md)
//! name = "eth0"
//! addresses = ["192.0.2.10/24"]
//! gateway = "192.0.2.1"
//! dns = ["192.0.2.1"]
//!
//! [flux]                              # into flux.conf (mode 0600); removed from the ESP
//! zelnodeprivkey = "5J..."
//! zelnodeoutpoint = "59ca9d...f619"
//! zelnodeindex = 0
//! externalip = "203.0.113.7"
//! ```

use crate::netconfig::NetworkConfig;
use serde::Deserialize;
use std::net::IpAddr;

/// A configuration from one source, checked.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Only in cairn.toml: clouds name the instance in their meta-data.
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    /// The `operator` account's keys. Absent: the keys the node has stay.
    #[serde(default)]
    pub ssh_authorized_keys: Option<Vec<String>>,
    #[serde(default)]
    pub network: Option<NetworkConfig>,
    #[serde(default)]
    pub flux: Option<Flux>,
}

/// The node's Flux identity, as flux.conf names it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Flux {
    pub zelnodeprivkey: String,
    pub zelnodeoutpoint: String,
    pub zelnodeindex: u32,
    #[serde(default)]
    pub externalip: Option<String>,
}

/// Parses Cairn's TOML form and checks every value.
pub fn parse_toml(text: &str) -> Result<Config, String> {
    let cfg: Config = toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))?;
    cfg.check()?;
    Ok(cfg)
}

impl Config {
    /// Every value is checked before anything is written: an error names the key.
    pub fn check(&self) -> Result<(), String> {
        if let Some(id) = &self.instance_id {
            instance_id(id)?;
        }
        if let Some(h) = &self.hostname {
            hostname(h)?;
        }
        for (i, key) in self.ssh_authorized_keys.iter().flatten().enumerate() {
            ssh_key(key).map_err(|e| format!("ssh_authorized_keys[{i}]: {e}"))?;
        }
        if let Some(n) = &self.network {
            crate::netconfig::validate(n).map_err(|e| format!("network: {e}"))?;
        }
        if let Some(f) = &self.flux {
            f.check()?;
        }
        Ok(())
    }

    /// `later`'s values where it has them (the ESP file, edited by the person at the machine,
    /// goes over the cloud's).
    pub fn overlay(mut self, later: &Config) -> Config {
        let l = later.clone();
        self.instance_id = l.instance_id.or(self.instance_id);
        self.hostname = l.hostname.or(self.hostname);
        self.ssh_authorized_keys = l.ssh_authorized_keys.or(self.ssh_authorized_keys);
        self.network = l.network.or(self.network);
        self.flux = l.flux.or(self.flux);
        self
    }
}

impl Flux {
    fn check(&self) -> Result<(), String> {
        // A WIF private key: base58, 51 or 52 characters.
        const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        let k = &self.zelnodeprivkey;
        if !(51..=52).contains(&k.len()) || !k.chars().all(|c| BASE58.contains(c)) {
            return Err("flux.zelnodeprivkey is not a private key in WIF (51 or 52 base58 characters, as `fluxd createzelnodekey` prints)".into());
        }
        let o = &self.zelnodeoutpoint;
        if o.len() != 64 || !o.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("flux.zelnodeoutpoint {o:?} is not a transaction id (64 hex digits)"));
        }
        if self.zelnodeindex > 9999 {
            return Err(format!("flux.zelnodeindex {} is not an output index", self.zelnodeindex));
        }
        if let Some(ip) = &self.externalip {
            ip.parse::<IpAddr>().map_err(|_| format!("flux.externalip {ip:?} is not an IP address"))?;
        }
        Ok(())
    }
}

pub fn instance_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("instance id {id:?} must be 1-128 printable characters without spaces"));
    }
    Ok(())
}

/// RFC 1123: dot-separated labels of letters, digits and '-', 1-63 each, 253 in all.
pub fn hostname(h: &str) -> Result<(), String> {
    let ok_label = |l: &str| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-') && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if h.is_empty() || h.len() > 253 || !h.split('.').all(ok_label) {
        return Err(format!("hostname {h:?} is not a host name (letters, digits and '-', labels of 1-63 separated by '.')"));
    }
    Ok(())
}

/// The key types sshd accepts by default (OpenSSH 10).
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "sk-ssh-ed25519@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
];

/// One authorized_keys line: `TYPE BASE64 [COMMENT]`. Options (`command=...`) are refused:
/// a configuration gives keys, not rules, and a line sshd would skip must not look accepted.
pub fn ssh_key(line: &str) -> Result<(), String> {
    let line = line.trim();
    let short: String = line.chars().take(40).collect();
    if line.contains(['\n', '\r', '\0']) {
        return Err(format!("{short:?}... holds a line break; give one key per list entry"));
    }
    let mut words = line.split_whitespace();
    let (Some(kind), Some(blob)) = (words.next(), words.next()) else {
        return Err(format!("{short:?} is not a public key line (TYPE BASE64 [COMMENT], as in a .pub file)"));
    };
    if !KEY_TYPES.contains(&kind) {
        return Err(format!("{short:?}: key type {kind:?} is not one sshd takes ({})", KEY_TYPES.join(", ")));
    }
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(blob).map_err(|_| format!("{short:?}: the key is not valid base64"))?;
    // The blob is SSH strings (u32 length, bytes): its own type first, then the key's parts,
    // all of them and nothing after (a key cut short when pasted fails here).
    let mut parts = Vec::new();
    let mut rest = raw.as_slice();
    while !rest.is_empty() {
        let n = rest.get(..4).map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize);
        let Some(part) = n.and_then(|n| rest.get(4..4 + n)) else {
            return Err(format!("{short:?}: the key data is cut short (pasted wrong?)"));
        };
        parts.push(part);
        rest = &rest[4 + part.len()..];
    }
    if parts.first() != Some(&kind.as_bytes()) {
        return Err(format!("{short:?}: the key data does not hold a {kind} key (pasted wrong?)"));
    }
    let whole = match kind {
        "ssh-ed25519" => parts.len() == 2 && parts[1].len() == 32,
        "sk-ssh-ed25519@openssh.com" => parts.len() == 3 && parts[1].len() == 32,
        "ssh-rsa" => parts.len() == 3 && parts[2].len() >= 256,
        k if k.starts_with("sk-") => parts.len() == 4,
        _ => parts.len() == 3,
    };
    if !whole {
        return Err(format!("{short:?}: the key data is not a whole {kind} key (cut short, or RSA under 2048 bits)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICNyYsl3lBRT8Vxs6biOdm8P4tPINHyUDYy+8eS2UhMq test@host";

    #[test]
    fn a_full_config_parses_and_an_unknown_key_is_named() {
        let text = format!(
            "hostname = \"flux-7\"\nssh_authorized_keys = [\"{KEY}\"]\n[[network.interface]]\nname = \"eth0\"\naddresses = [\"192.0.2.10/24\"]\ngateway = \"192.0.2.1\"\n\
             [flux]\nzelnodeprivkey = \"5J2Hf3T8LpjKEkY46qhPLFF8DjQfCSBh6aWRfeDwQSMJKomvHFa\"\nzelnodeoutpoint = \"59ca9df148fdfb901f8c617a55470c08585b6ac09f9aa1bc83eac19ffc25f619\"\nzelnodeindex = 0\nexternalip = \"203.0.113.7\"\n"
        );
        let c = parse_toml(&text).expect("valid");
        assert_eq!(c.hostname.as_deref(), Some("flux-7"));
        assert_eq!(c.flux.as_ref().map(|f| f.zelnodeindex), Some(0));
        let e = parse_toml("hostname = \"a\"\nhostnme = \"b\"\n").expect_err("must be refused");
        assert!(e.contains("hostnme"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (text, says) in [
            ("hostname = \"-bad\"", "hostname"),
            ("hostname = \"a b\"", "hostname"),
            ("ssh_authorized_keys = [\"ssh-ed25519\"]", "not a public key line"),
            ("ssh_authorized_keys = [\"ssh-dss AAAAB3NzaC1kc3M= x\"]", "key type"),
            ("ssh_authorized_keys = [\"ssh-ed25519 AAAA!!!! x\"]", "base64"),
            // a valid base64 blob that holds an RSA key, labelled ed25519
            ("ssh_authorized_keys = [\"ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQAB x\"]", "does not hold"),
            ("[[network.interface]]\nname = \"eth0\"\naddresses = [\"192.0.2.300/24\"]", "network"),
            ("[flux]\nzelnodeprivkey = \"short\"\nzelnodeoutpoint = \"00\"\nzelnodeindex = 0", "zelnodeprivkey"),
        ] {
            let e = parse_toml(text).expect_err("must be refused");
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn a_real_ed25519_line_passes() {
        ssh_key(KEY).expect("valid");
    }

    #[test]
    fn the_later_source_wins_key_by_key() {
        let cloud = Config { hostname: Some("cloud".into()), ssh_authorized_keys: Some(vec![KEY.into()]), ..Config::default() };
        let esp = Config { hostname: Some("esp".into()), ..Config::default() };
        let c = cloud.overlay(&esp);
        assert_eq!(c.hostname.as_deref(), Some("esp"));
        assert_eq!(c.ssh_authorized_keys.map(|k| k.len()), Some(1));
    }
}
