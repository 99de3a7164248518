//! Writing a checked configuration where the node reads it, each file whole or not at all
//! (`crate::atomic`), secrets with mode 0600 from the moment they exist.

use super::config::{Config, Flux};
use super::Paths;
use std::path::Path;

/// What was written, for the report ("hostname", "2 SSH keys", ...).
pub fn apply(cfg: &Config, paths: &Paths, new_instance: bool) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    let write = |p: &Path, text: &str, mode: u32| crate::atomic::write(p, text.as_bytes(), mode).map_err(|e| format!("cannot write {}: {e}", p.display()));
    if let Some(h) = &cfg.hostname {
        write(&paths.hostname, &format!("{h}\n"), 0o644)?;
        done.push(format!("hostname {h}"));
    }
    if let Some(keys) = &cfg.ssh_authorized_keys {
        let mut text = String::from("# Written by Cairn's first-boot configuration; the next configuration replaces it.\n");
        for k in keys {
            text.push_str(k.trim());
            text.push('\n');
        }
        write(&paths.authorized_keys, &text, 0o644)?;
        done.push(format!("{} SSH key{} for operator", keys.len(), if keys.len() == 1 { "" } else { "s" }));
    }
    if let Some(n) = &cfg.network {
        let text = toml::to_string(n).map_err(|e| format!("cannot render the network configuration: {e}"))?;
        write(&paths.network, &format!("# Written by Cairn's first-boot configuration.\n{text}"), 0o644)?;
        done.push(format!("static network on {}", n.interface.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")));
    }
    // flux.conf: the identity when given; fresh RPC credentials for a new instance (a cloned
    // VM must not share them) or a file that has none yet.
    let existing = std::fs::read_to_string(&paths.flux_conf).ok();
    if cfg.flux.is_some() || (existing.is_some() && new_instance) {
        let text = flux_conf(existing.as_deref().unwrap_or(FLUX_CONF_BASE), cfg.flux.as_ref(), new_instance, &random_hex)?;
        write(&paths.flux_conf, &text, 0o600)?;
        if cfg.flux.is_some() {
            done.push("Flux identity".into());
        }
        if new_instance || existing.is_none() {
            done.push("new RPC credentials".into());
        }
    }
    Ok(done)
}

/// A new node's flux.conf: what fluxd needs to run as a node (RESEARCH.md: the keys a real
/// node's file has), RPC on the node itself and the Docker bridge only.
pub const FLUX_CONF_BASE: &str = "# Written by Cairn on first boot; the operator's settings are kept when it is rewritten.\n\
rpcallowip=127.0.0.1\nrpcallowip=172.18.0.1\nrpcport=16124\nport=16125\nzelnode=1\nserver=1\nlisten=1\n\
txindex=1\naddressindex=1\ntimestampindex=1\nspentindex=1\ninsightexplorer=1\nexperimentalfeatures=1\n\
logtimestamps=1\nmaxconnections=256\nzmqpubhashblock=tcp://127.0.0.1:16123\nzmqpubhashtx=tcp://127.0.0.1:16123\n";

/// `base` with the identity's keys set (each once, where it was or at the end) and RPC
/// credentials made when missing or when `renew`.
pub fn flux_conf(base: &str, flux: Option<&Flux>, renew: bool, random: &dyn Fn() -> Result<String, String>) -> Result<String, String> {
    let mut lines: Vec<String> = base.lines().map(str::to_owned).collect();
    let mut set = |key: &str, value: String, replace: bool| {
        let prefix = format!("{key}=");
        let at = lines.iter().position(|l| l.trim_start().starts_with(&prefix));
        if at.is_some() && !replace {
            return;
        }
        lines.retain(|l| !l.trim_start().starts_with(&prefix));
        let line = format!("{key}={value}");
        match at {
            Some(i) => lines.insert(i.min(lines.len()), line),
            None => lines.push(line),
        }
    };
    set("rpcuser", format!("cairn{}", &random()?[..8]), renew);
    set("rpcpassword", random()?, renew);
    if let Some(f) = flux {
        set("zelnodeprivkey", f.zelnodeprivkey.clone(), true);
        set("zelnodeoutpoint", f.zelnodeoutpoint.clone(), true);
        set("zelnodeindex", f.zelnodeindex.to_string(), true);
        if let Some(ip) = &f.externalip {
            set("externalip", ip.clone(), true);
        }
    }
    // fluxd must stay in the foreground under the supervisor.
    set("daemon", "0".into(), true);
    Ok(lines.join("\n") + "\n")
}

/// 32 hex digits from the kernel's random pool (getrandom(2)).
pub fn random_hex() -> Result<String, String> {
    let mut b = [0u8; 16];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).map_err(|e| format!("no random bytes from the kernel: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// cairn.toml without its `[flux]` table (the private key must not stay on a FAT partition
/// anyone can read), the operator's other lines and comments as they were.
pub fn without_flux(text: &str, imported_to: &Path) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            inside = t == "[flux]" || t.starts_with("[flux.");
            if inside {
                out.push_str(&format!("# [flux] was imported into {} (mode 0600) and removed from here.\n", imported_to.display()));
            }
        }
        if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> impl Fn() -> Result<String, String> {
        let n = std::cell::Cell::new(0u32);
        move || {
            n.set(n.get() + 1);
            Ok(format!("{:032x}", n.get()))
        }
    }

    fn flux() -> Flux {
        Flux { zelnodeprivkey: "5J2Hf3T8LpjKEkY46qhPLFF8DjQfCSBh6aWRfeDwQSMJKomvHFa".into(), zelnodeoutpoint: "ab".repeat(32), zelnodeindex: 1, externalip: Some("203.0.113.7".into()) }
    }

    #[test]
    fn the_identity_goes_in_once_and_credentials_are_kept_unless_renewed() {
        let first = flux_conf(FLUX_CONF_BASE, Some(&flux()), false, &counter()).expect("test setup");
        assert_eq!(first.matches("zelnodeprivkey=").count(), 1);
        assert!(first.contains("rpcuser=cairn00000000") && first.contains("daemon=0") && first.contains("externalip=203.0.113.7"));
        // The same identity again: nothing doubles, the credentials stay.
        let again = flux_conf(&first, Some(&flux()), false, &counter()).expect("test setup");
        assert_eq!(again, first);
        // A new instance: new credentials, the rest kept.
        let renewed = flux_conf(&first, None, true, &|| Ok("f".repeat(32))).expect("test setup");
        assert!(renewed.contains(&format!("rpcpassword={}", "f".repeat(32))));
        assert!(renewed.contains("zelnodeindex=1"));
    }

    #[test]
    fn the_flux_table_leaves_the_esp_file_and_the_rest_stays() {
        let text = "# my node\nhostname = \"n1\"\n[flux]\nzelnodeprivkey = \"5J...\"\nzelnodeindex = 0\n[[network.interface]]\nname = \"eth0\"\n";
        let out = without_flux(text, Path::new("/data/flux/fluxd/flux.conf"));
        assert!(!out.contains("zelnodeprivkey") && out.contains("# my node") && out.contains("name = \"eth0\"") && out.contains("imported into"));
        // What is left still parses as Cairn's TOML (the comment replaced the table).
        toml::from_str::<toml::Table>(&out).expect("still TOML");
    }
}
