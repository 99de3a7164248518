//! The cloud formats, turned into a [`Config`]: user-data (Cairn's TOML or the
//! `#cloud-config` subset providers inject), NoCloud's meta-data and network-config
//! (version 2), and ConfigDrive's meta_data.json and network_data.json.
//!
//! Only what a node uses is read; every other cloud-config key is named in `ignored`, so an
//! operator sees what was not applied instead of wondering.

use super::config::{self, Config};
use crate::netconfig::{Interface, NetworkConfig};
use yaml_rust2::{Yaml, YamlLoader};

/// One source's configuration with what it left out.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub config: Config,
    pub ignored: Vec<String>,
}

/// The interface a MAC address belongs to (`/sys/class/net/*/address`), for formats that
/// name interfaces by address.
pub type ByMac<'a> = &'a dyn Fn(&str) -> Option<String>;

/// user-data: `#cloud-config` YAML, or Cairn's TOML. A script is refused: Cairn runs none.
pub fn user_data(text: &str) -> Result<Parsed, String> {
    let first = text.lines().next().unwrap_or_default().trim_end();
    if first == "#cloud-config" {
        return cloud_config(text);
    }
    if first.starts_with("#!") || first.starts_with("#include") || first.starts_with("Content-Type:") {
        return Err(format!("user-data starting {first:?} is not supported: Cairn reads #cloud-config or its own TOML and runs no scripts"));
    }
    Ok(Parsed { config: config::parse_toml(text)?, ignored: Vec::new() })
}

fn load_yaml(text: &str, what: &str) -> Result<Yaml, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("{what} is not valid YAML: {e}"))?;
    Ok(docs.into_iter().next().unwrap_or(Yaml::Null))
}

fn strings(y: &Yaml, what: &str) -> Result<Vec<String>, String> {
    match y {
        Yaml::Array(items) => items.iter().map(|i| i.as_str().map(str::to_owned).ok_or_else(|| format!("{what}: every entry must be a string"))).collect(),
        Yaml::String(s) => Ok(vec![s.clone()]),
        _ => Err(format!("{what} must be a list of strings")),
    }
}

/// The subset of cloud-config a node takes: hostname, ssh_authorized_keys and
/// users[].ssh_authorized_keys (all users' keys go to the `operator` account).
fn cloud_config(text: &str) -> Result<Parsed, String> {
    let doc = load_yaml(text, "#cloud-config user-data")?;
    let map = match &doc {
        Yaml::Hash(h) => h,
        Yaml::Null => return Ok(Parsed::default()),
        _ => return Err("#cloud-config user-data must be a mapping of keys".into()),
    };
    let mut p = Parsed::default();
    let mut keys: Option<Vec<String>> = None;
    for (k, v) in map {
        let key = k.as_str().ok_or("#cloud-config user-data has a key that is not a string")?;
        match key {
            "hostname" => p.config.hostname = Some(v.as_str().ok_or("hostname must be a string")?.to_owned()),
            "ssh_authorized_keys" => keys.get_or_insert_with(Vec::new).extend(strings(v, "ssh_authorized_keys")?),
            "users" => {
                let Yaml::Array(users) = v else { return Err("users must be a list".into()) };
                for (i, u) in users.iter().enumerate() {
                    match u {
                        // "default" is cloud-init's distribution user: here, `operator`.
                        Yaml::String(s) if s == "default" => {}
                        Yaml::Hash(h) => {
                            for (uk, uv) in h {
                                match uk.as_str() {
                                    Some("ssh_authorized_keys") => keys.get_or_insert_with(Vec::new).extend(strings(uv, &format!("users[{i}].ssh_authorized_keys"))?),
                                    Some("name") => {}
                                    Some(other) => note(&mut p.ignored, format!("users[].{other}")),
                                    None => return Err(format!("users[{i}] has a key that is not a string")),
                                }
                            }
                        }
                        _ => return Err(format!("users[{i}] must be \"default\" or a mapping")),
                    }
                }
            }
            other => note(&mut p.ignored, other.to_owned()),
        }
    }
    p.config.ssh_authorized_keys = keys;
    p.config.check()?;
    Ok(p)
}

fn note(ignored: &mut Vec<String>, key: String) {
    if !ignored.contains(&key) {
        ignored.push(key);
    }
}

/// NoCloud meta-data: `instance-id` and `local-hostname`.
pub fn meta_data(text: &str) -> Result<(Option<String>, Option<String>), String> {
    let doc = load_yaml(text, "meta-data")?;
    let get = |k: &str| -> Result<Option<String>, String> {
        match &doc[k] {
            Yaml::BadValue | Yaml::Null => Ok(None),
            Yaml::String(s) => Ok(Some(s.clone())),
            Yaml::Integer(n) => Ok(Some(n.to_string())),
            _ => Err(format!("meta-data {k} must be a string")),
        }
    };
    let (id, host) = (get("instance-id")?, get("local-hostname")?);
    if let Some(id) = &id {
        config::instance_id(id)?;
    }
    if let Some(h) = &host {
        config::hostname(h).map_err(|e| format!("meta-data local-hostname: {e}"))?;
    }
    Ok((id, host))
}

/// NoCloud network-config, version 2 (netplan's form), the static part: `ethernets` with
/// `addresses`, `gateway4` or a default route, and `nameservers.addresses`. Interfaces on
/// DHCP need nothing (Cairn does DHCP on every interface not given addresses).
pub fn network_config(text: &str, by_mac: ByMac) -> Result<(Option<NetworkConfig>, Vec<String>), String> {
    let mut doc = load_yaml(text, "network-config")?;
    if let Yaml::Hash(h) = &doc {
        if let Some(inner) = h.get(&Yaml::String("network".into())) {
            doc = inner.clone();
        }
    }
    let mut ignored = Vec::new();
    match &doc["version"] {
        Yaml::Integer(2) => {}
        Yaml::Integer(1) => return Ok((None, vec!["network-config version 1 (use version 2, or [network] in Cairn's TOML)".into()])),
        other => return Err(format!("network-config: version must be 2, not {other:?}")),
    }
    if let Yaml::Hash(h) = &doc {
        for k in h.keys().filter_map(Yaml::as_str).filter(|k| !["version", "ethernets"].contains(k)) {
            note(&mut ignored, format!("network-config {k}"));
        }
    }
    let mut out = NetworkConfig::default();
    let Yaml::Hash(eths) = &doc["ethernets"] else { return Ok((None, ignored)) };
    for (id, e) in eths {
        let id = id.as_str().ok_or("network-config: an ethernets key is not a string")?;
        let mac = e["match"]["macaddress"].as_str();
        let name = match (e["set-name"].as_str(), mac) {
            (_, Some(mac)) => by_mac(mac).ok_or_else(|| format!("network-config: no interface has the MAC address {mac} ({id})"))?,
            (Some(set), None) => set.to_owned(),
            (None, None) => id.to_owned(),
        };
        let addresses = match &e["addresses"] {
            Yaml::BadValue => Vec::new(),
            y => strings(y, &format!("network-config {id}.addresses"))?,
        };
        if addresses.is_empty() {
            continue;
        }
        let mut gateway = e["gateway4"].as_str().map(str::to_owned);
        if let Yaml::Array(routes) = &e["routes"] {
            for r in routes {
                if matches!(r["to"].as_str(), Some("default" | "0.0.0.0/0")) {
                    gateway = r["via"].as_str().map(str::to_owned).or(gateway);
                }
            }
        }
        let dns = match &e["nameservers"]["addresses"] {
            Yaml::BadValue => Vec::new(),
            y => strings(y, &format!("network-config {id}.nameservers.addresses"))?,
        };
        out.interface.push(Interface { name, addresses, gateway, dns });
    }
    crate::netconfig::validate(&out).map_err(|e| format!("network-config: {e}"))?;
    Ok(((!out.interface.is_empty()).then_some(out), ignored))
}

/// ConfigDrive's openstack/latest/meta_data.json: `uuid` (the instance), `hostname`,
/// `public_keys` (name → key line).
pub fn openstack_meta_data(text: &str) -> Result<Parsed, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("meta_data.json is not valid JSON: {e}"))?;
    let mut p = Parsed::default();
    p.config.instance_id = v["uuid"].as_str().map(str::to_owned);
    if let Some(h) = v["hostname"].as_str() {
        // OpenStack gives "name.novalocal": the first label is the node's name.
        let short = h.split('.').next().unwrap_or(h);
        p.config.hostname = Some(short.to_owned());
    }
    if let Some(keys) = v["public_keys"].as_object() {
        let keys: Vec<String> = keys.values().filter_map(|k| k.as_str()).map(|k| k.trim().to_owned()).collect();
        if !keys.is_empty() {
            p.config.ssh_authorized_keys = Some(keys);
        }
    }
    p.config.check().map_err(|e| format!("meta_data.json: {e}"))?;
    Ok(p)
}

/// ConfigDrive's network_data.json: static `ipv4` networks on links named by MAC address,
/// the default route's gateway and `dns` services.
pub fn openstack_network_data(text: &str, by_mac: ByMac) -> Result<Option<NetworkConfig>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("network_data.json is not valid JSON: {e}"))?;
    let dns: Vec<String> = v["services"].as_array().into_iter().flatten().filter(|s| s["type"] == "dns").filter_map(|s| s["address"].as_str().map(str::to_owned)).collect();
    let mut out = NetworkConfig::default();
    for n in v["networks"].as_array().into_iter().flatten() {
        if n["type"] != "ipv4" {
            continue;
        }
        let link = n["link"].as_str().unwrap_or_default();
        let l = v["links"].as_array().into_iter().flatten().find(|l| l["id"] == link);
        let mac = l.and_then(|l| l["ethernet_mac_address"].as_str()).ok_or_else(|| format!("network_data.json: link {link:?} has no ethernet_mac_address"))?;
        let name = by_mac(mac).ok_or_else(|| format!("network_data.json: no interface has the MAC address {mac}"))?;
        let ip = n["ip_address"].as_str().ok_or("network_data.json: an ipv4 network has no ip_address")?;
        let mask: std::net::Ipv4Addr = n["netmask"].as_str().and_then(|m| m.parse().ok()).ok_or_else(|| format!("network_data.json: network {ip} has no valid netmask"))?;
        let prefix = u32::from(mask).leading_ones();
        let gateway = n["routes"].as_array().into_iter().flatten().find(|r| r["network"] == "0.0.0.0").and_then(|r| r["gateway"].as_str().map(str::to_owned));
        out.interface.push(Interface { name, addresses: vec![format!("{ip}/{prefix}")], gateway, dns: dns.clone() });
    }
    crate::netconfig::validate(&out).map_err(|e| format!("network_data.json: {e}"))?;
    Ok((!out.interface.is_empty()).then_some(out))
}

#[cfg(test)]
mod tests;
