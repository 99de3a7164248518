//! First-boot configuration: a node configures itself from what a cloud or a person gives
//! it, before any service starts (`cairnctl provision`, run by PID 1 with a time limit).
//!
//! Sources, in the order they are applied (a later one wins key by key):
//! 1. NoCloud: a FAT or ISO 9660 volume labelled `cidata` with `user-data`, `meta-data`
//!    and `network-config`; or ConfigDrive, labelled `config-2`, with
//!    `openstack/latest/{meta_data.json,user_data,network_data.json}`.
//! 2. `cairn.toml` on the ESP, which an operator edits after flashing (any laptop reads FAT).
//!
//! Each source is parsed and checked whole ([`config`], [`cloud`]); one with any error is
//! refused and the node keeps what it had. A source is applied when its contents change or
//! the instance changes; a new instance id (a cloned VM) also gets a new machine id, new SSH
//! host keys and new RPC credentials, as cloud-init does. Secrets from the ESP are removed
//! from it once they are on /data. What happened goes to [`REPORT`], which `cairnctl status`
//! shows, and to the console and the journal (PID 1 logs this program's output).

pub mod apply;
pub mod cloud;
pub mod config;
pub mod volume;

use crate::sys::Sys;
use config::Config;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// This boot's report, for `cairnctl status`.
pub const REPORT: &str = "/run/cairn/provision.json";
/// The file on the ESP an operator edits.
pub const ESP_FILE: &str = "cairn.toml";

/// Where everything lives on a node (tests point these into a temporary directory).
#[derive(Debug, Clone)]
pub struct Paths {
    pub sys_block: PathBuf,
    pub dev: PathBuf,
    pub sys_net: PathBuf,
    /// Mount points for the volumes read.
    pub mnt: PathBuf,
    /// The ESP's device, if the boot disk is known.
    pub esp: Option<String>,
    pub state: PathBuf,
    pub report: PathBuf,
    pub hostname: PathBuf,
    pub machine_id: PathBuf,
    pub authorized_keys: PathBuf,
    pub host_keys: PathBuf,
    pub network: PathBuf,
    pub flux_conf: PathBuf,
}

impl Paths {
    pub fn node() -> Paths {
        let esp = crate::blockdev::recorded_boot_disk("")
            .and_then(|disk| crate::blockdev::find_by_label(Path::new("/sys/class/block"), cairn_updater::slot::ESP_LABEL, &disk))
            .map(|p| p.dev_path());
        Paths {
            sys_block: "/sys/class/block".into(),
            dev: "/dev".into(),
            sys_net: "/sys/class/net".into(),
            mnt: "/run/cairn/provision".into(),
            esp,
            state: "/data/cairn/provision/state.json".into(),
            report: REPORT.into(),
            hostname: "/data/etc/hostname".into(),
            machine_id: "/data/etc/machine-id".into(),
            authorized_keys: format!("{}/operator", crate::ssh::AUTHORIZED_KEYS_DIR).into(),
            host_keys: crate::ssh::HOST_KEY_DIR.into(),
            network: "/data/cairn/network.toml".into(),
            flux_conf: "/data/flux/fluxd/flux.conf".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Nocloud,
    ConfigDrive,
    Esp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Applied,
    /// The same contents as last time, same instance: nothing to do.
    Unchanged,
    /// An error: nothing of it was applied; the node keeps its last good configuration.
    Refused,
}

/// One source as this boot found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    pub kind: Kind,
    pub device: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Keys present but not applied (cloud-config Cairn does not take).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub sources: Vec<SourceReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub new_instance: bool,
    /// What was written ("hostname n1", "1 SSH key for operator", ...).
    pub applied: Vec<String>,
    /// Problems outside any one source (a write that failed, the ESP not found).
    pub errors: Vec<String>,
}

impl Report {
    /// Lines for the console and `cairnctl status`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.sources {
            match (&s.outcome, &s.error) {
                (Outcome::Refused, Some(e)) => out.push(format!("ERROR: {} {}: {e}; nothing of it was applied, the last good configuration stays", kind_name(s.kind), s.device)),
                (o, _) => out.push(format!("{} {}: {}", kind_name(s.kind), s.device, if *o == Outcome::Applied { "applied" } else { "unchanged since it was applied" })),
            }
            if !s.ignored.is_empty() {
                out.push(format!("WARNING: {} {}: not applied (Cairn does not take these keys): {}", kind_name(s.kind), s.device, s.ignored.join(", ")));
            }
        }
        if self.new_instance {
            out.push(format!("new instance {}: new machine id, SSH host keys and RPC credentials", self.instance_id.as_deref().unwrap_or("?")));
        }
        if !self.applied.is_empty() {
            out.push(format!("set: {}", self.applied.join("; ")));
        }
        out.extend(self.errors.iter().map(|e| format!("ERROR: {e}")));
        out
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.sources.iter().any(|s| s.outcome == Outcome::Refused)
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Nocloud => "NoCloud",
        Kind::ConfigDrive => "ConfigDrive",
        Kind::Esp => "ESP cairn.toml",
    }
}

/// What was applied last, kept on /data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    instance_id: Option<String>,
    /// Kind → SHA-256 of the source's files as last applied.
    applied: std::collections::BTreeMap<String, String>,
}

/// One source read and parsed.
struct Found {
    report: SourceReport,
    config: Option<Config>,
    digest: String,
    /// The ESP file's text, when it held a [flux] table to remove once imported.
    esp_text: Option<String>,
}

fn digest(parts: &[&Option<String>]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_deref().unwrap_or("\0absent\0").as_bytes());
        h.update(b"\0\0");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The interface with this MAC address.
fn by_mac(sys_net: &Path) -> impl Fn(&str) -> Option<String> + '_ {
    move |mac: &str| {
        std::fs::read_dir(sys_net).ok()?.flatten().find_map(|e| {
            let a = std::fs::read_to_string(e.path().join("address")).ok()?;
            a.trim().eq_ignore_ascii_case(mac).then(|| e.file_name().to_string_lossy().into_owned())
        })
    }
}

fn read_cloud(sys: &dyn Sys, v: &volume::Volume, paths: &Paths) -> Found {
    let kind = if v.label == "cidata" { Kind::Nocloud } else { Kind::ConfigDrive };
    let mut report = SourceReport { kind, device: v.dev.clone(), outcome: Outcome::Refused, error: None, ignored: Vec::new() };
    let parsed = (|| -> Result<(Config, String), String> {
        let m = volume::Mounted::mount(sys, v, &paths.mnt.join(&v.label))?;
        let by_mac = by_mac(&paths.sys_net);
        if kind == Kind::Nocloud {
            let (user, meta, net) = (m.read("user-data")?, m.read("meta-data")?, m.read("network-config")?);
            let meta_text = meta.clone().ok_or("the volume has no meta-data file (NoCloud needs one, with instance-id)")?;
            let (id, local_hostname) = cloud::meta_data(&meta_text)?;
            let mut p = match &user {
                Some(u) => cloud::user_data(u)?,
                None => cloud::Parsed::default(),
            };
            p.config.instance_id = id;
            p.config.hostname = p.config.hostname.or(local_hostname);
            if let Some(n) = &net {
                let (network, ignored) = cloud::network_config(n, &by_mac)?;
                p.config.network = network.or(p.config.network);
                p.ignored.extend(ignored);
            }
            report.ignored = p.ignored;
            Ok((p.config, digest(&[&user, &meta, &net])))
        } else {
            let base = "openstack/latest";
            let (meta, user, net) = (m.read(&format!("{base}/meta_data.json"))?, m.read(&format!("{base}/user_data"))?, m.read(&format!("{base}/network_data.json"))?);
            let meta_text = meta.clone().ok_or("the volume has no openstack/latest/meta_data.json")?;
            let mut p = cloud::openstack_meta_data(&meta_text)?;
            if let Some(u) = &user {
                let ud = cloud::user_data(u)?;
                p.config = p.config.overlay(&Config { instance_id: None, ..ud.config });
                p.ignored.extend(ud.ignored);
            }
            if let Some(n) = &net {
                if let Some(network) = cloud::openstack_network_data(n, &by_mac)? {
                    p.config.network = Some(network);
                }
            }
            report.ignored = p.ignored;
            Ok((p.config, digest(&[&meta, &user, &net])))
        }
    })();
    match parsed {
        Ok((config, digest)) => Found { report, config: Some(config), digest, esp_text: None },
        Err(e) => {
            report.error = Some(e);
            Found { report, config: None, digest: String::new(), esp_text: None }
        }
    }
}

fn read_esp(sys: &dyn Sys, dev: &str, paths: &Paths) -> Option<Found> {
    let v = volume::Volume { dev: dev.to_owned(), fs: volume::Fs::Vfat, label: "esp".into() };
    // Read-only: the ESP is mounted writable only to remove imported secrets.
    let text = {
        let m = volume::Mounted::mount(sys, &v, &paths.mnt.join("esp"));
        match m.and_then(|m| m.read(ESP_FILE)) {
            Ok(None) => return None,
            Ok(Some(t)) => Ok(t),
            Err(e) => Err(e),
        }
    };
    let mut report = SourceReport { kind: Kind::Esp, device: dev.to_owned(), outcome: Outcome::Refused, error: None, ignored: Vec::new() };
    match text.and_then(|t| config::parse_toml(&t).map(|c| (c, t))) {
        Ok((config, t)) => {
            let esp_text = config.flux.is_some().then(|| t.clone());
            Some(Found { report, config: Some(config), digest: digest(&[&Some(t)]), esp_text })
        }
        Err(e) => {
            report.error = Some(format!("{ESP_FILE}: {e}"));
            Some(Found { report, config: None, digest: String::new(), esp_text: None })
        }
    }
}

/// Finds, checks and applies every source; never fails as a whole (each problem is in the
/// report), so the boot goes on whatever a source holds.
pub fn run(sys: &dyn Sys, paths: &Paths) -> Report {
    let mut report = Report::default();
    let mut found: Vec<Found> = Vec::new();
    let volumes = volume::find(&paths.sys_block, &paths.dev, &["cidata", "config-2"]);
    // One cloud source: NoCloud before ConfigDrive, the first device of a kind.
    let chosen = volumes.iter().find(|v| v.label == "cidata").or_else(|| volumes.first());
    for v in &volumes {
        if Some(v) != chosen {
            report.errors.push(format!("{} (labelled {}) was not read: only one cloud configuration volume is used, and {} was", v.dev, v.label, chosen.map_or("", |c| c.dev.as_str())));
        }
    }
    if let Some(v) = chosen {
        found.push(read_cloud(sys, v, paths));
    }
    match &paths.esp {
        Some(dev) => found.extend(read_esp(sys, dev, paths)),
        None => report.errors.push("the ESP was not found on the boot disk: cairn.toml was not read".into()),
    }

    let state: State = std::fs::read(&paths.state).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let good: Vec<&Found> = found.iter().filter(|f| f.config.is_some()).collect();
    let instance = good.iter().find_map(|f| f.config.as_ref().and_then(|c| c.instance_id.clone()));
    report.instance_id = instance.clone();
    report.new_instance = instance.is_some() && state.instance_id.is_some() && instance != state.instance_id;
    let changed = report.new_instance || good.iter().any(|f| state.applied.get(kind_key(f.report.kind)) != Some(&f.digest));

    if report.new_instance {
        renew_identity(paths, &mut report);
    }
    let mut new_state = State { instance_id: instance.or(state.instance_id.clone()), applied: state.applied.clone() };
    let mut applied_ok = false;
    if changed {
        let merged = good.iter().filter_map(|f| f.config.as_ref()).fold(Config::default(), |acc, c| acc.overlay(c));
        match apply::apply(&merged, paths, report.new_instance) {
            Ok(done) => {
                applied_ok = true;
                report.applied = done;
                for f in &good {
                    new_state.applied.insert(kind_key(f.report.kind).into(), f.digest.clone());
                }
            }
            Err(e) => report.errors.push(e),
        }
    }
    for f in &mut found {
        if f.config.is_some() {
            f.report.outcome = if applied_ok { Outcome::Applied } else if changed { Outcome::Refused } else { Outcome::Unchanged };
            if changed && !applied_ok {
                f.report.error = Some("it could not be written (see the errors below)".into());
            }
        }
    }
    // The ESP's secrets are on /data now: take them off the FAT partition.
    if let (Some(f), Some(dev)) = (found.iter().find(|f| f.esp_text.is_some() && f.report.outcome == Outcome::Applied), &paths.esp) {
        if let Err(e) = wipe_esp_secrets(sys, dev, f.esp_text.as_deref().unwrap_or_default(), paths) {
            report.errors.push(e);
        } else {
            // The file changed on purpose: what was applied is what it held before.
            let t = apply::without_flux(f.esp_text.as_deref().unwrap_or_default(), &paths.flux_conf);
            new_state.applied.insert(kind_key(Kind::Esp).into(), digest(&[&Some(t)]));
            report.applied.push(format!("Flux identity removed from the ESP's {ESP_FILE}"));
        }
    }
    report.sources = found.into_iter().map(|f| f.report).collect();
    if let Ok(json) = serde_json::to_vec_pretty(&new_state) {
        if let Err(e) = crate::atomic::write(&paths.state, &json, 0o600) {
            report.errors.push(format!("cannot record what was applied in {}: {e}", paths.state.display()));
        }
    }
    if let Ok(json) = serde_json::to_vec(&report) {
        let _ = crate::atomic::write(&paths.report, &json, 0o644);
    }
    report
}

fn kind_key(k: Kind) -> &'static str {
    match k {
        Kind::Nocloud => "nocloud",
        Kind::ConfigDrive => "config-drive",
        Kind::Esp => "esp",
    }
}

/// A new instance (a cloned disk): what identifies a node must not be shared with the
/// original. Stage 2 makes a new machine id, the ssh service new host keys.
fn renew_identity(paths: &Paths, report: &mut Report) {
    let mut remove = |p: &Path| {
        if let Err(e) = std::fs::remove_file(p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                report.errors.push(format!("cannot remove {} for the new instance: {e}", p.display()));
            }
        }
    };
    remove(&paths.machine_id);
    for entry in std::fs::read_dir(&paths.host_keys).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            remove(&entry.path());
        }
    }
}

fn wipe_esp_secrets(sys: &dyn Sys, dev: &str, text: &str, paths: &Paths) -> Result<(), String> {
    use nix::mount::MsFlags;
    let dir = paths.mnt.join("esp-write");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let d = dir.display().to_string();
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    sys.mount(dev, &d, "vfat", flags, "flush").map_err(|e| format!("cannot mount the ESP {dev} to remove the imported Flux identity from {ESP_FILE}: {e}"))?;
    let out = apply::without_flux(text, &paths.flux_conf);
    let written = crate::atomic::write(&dir.join(ESP_FILE), out.as_bytes(), 0o644).map_err(|e| format!("cannot rewrite the ESP's {ESP_FILE} without the Flux identity: {e}; remove [flux] from it by hand"));
    sys.sync();
    let _ = sys.umount(&d, false);
    written
}

#[cfg(test)]
mod tests;
