//! The tracker service (`cairnctl eligibility track`, supervised as `eligibility`): every
//! `interval_s` it samples the kernel's uptime and boot id and fluxd, evaluates the
//! criteria, appends the sample to the history on /data and writes the report that
//! `cairnctl eligibility` shows. It runs outside PID 1 and never stops on what fluxd does:
//! not installed, down, syncing or garbage are states in the report.
//!
//! Its lines go to stdout, which the supervisor sends to the journal.

use super::boots::{self, Boot, LastSeen, SoftReboot};
use super::cost::{self, RebootCost};
use super::criteria::{self, Criterion, Rules, Sample};
use super::fluxd::Fluxd;
use super::retention;
use super::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The last report, for `cairnctl eligibility` (this boot only).
pub const REPORT: &str = "/run/cairn/eligibility.json";
/// The same in Prometheus's text format, for node_exporter's textfile collector.
pub const METRICS: &str = "/run/cairn/metrics/eligibility.prom";
/// The history and anything else the tracker keeps.
pub const STATE: &str = "/data/cairn/eligibility";
const HISTORY: &str = "history";
/// The operator's settings over the image's; the first that exists counts.
const CONFIGS: [&str; 2] = ["/data/cairn/eligibility.toml", "/etc/cairn/eligibility.toml"];
/// Where fluxd, run with `-datadir=/data/flux/fluxd`, reads its configuration.
pub const FLUX_CONF: &str = "/data/flux/fluxd/flux.conf";
/// A report this large is not one of ours.
const MAX_REPORT: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("{} is not a valid eligibility configuration", .0.display())]
    Config(PathBuf, #[source] toml::de::Error),
    #[error("cannot read {}", .0.display())]
    ConfigRead(PathBuf, #[source] std::io::Error),
    #[error("cannot create {STATE}")]
    State(#[source] std::io::Error),
    #[error("the history")]
    Store(#[from] StoreError),
    #[error("no eligibility report in {REPORT}: is the `eligibility` service running? (`cairnctl services`)")]
    NoReport(#[source] std::io::Error),
    #[error("{REPORT} is not an eligibility report")]
    BadReport(#[source] serde_json::Error),
}

/// `eligibility.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Seconds between samples.
    pub interval_s: u64,
    /// fluxd's configuration (its RPC port and credentials).
    pub flux_conf: PathBuf,
    pub rules: Rules,
}

impl Default for Config {
    fn default() -> Config {
        Config { interval_s: 60, flux_conf: FLUX_CONF.into(), rules: Rules::default() }
    }
}

/// The configuration from the first of `paths` that exists; none is the defaults.
pub fn config_from(paths: &[&Path]) -> Result<Config, TrackerError> {
    for path in paths {
        match std::fs::read_to_string(path) {
            Ok(text) => return toml::from_str(&text).map_err(|e| TrackerError::Config(path.to_path_buf(), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(TrackerError::ConfigRead(path.to_path_buf(), e)),
        }
    }
    Ok(Config::default())
}

/// The node's configuration (the operator's over the image's), the defaults if it is refused.
pub fn config() -> Config {
    let paths: Vec<&Path> = CONFIGS.iter().map(Path::new).collect();
    config_from(&paths).unwrap_or_default()
}

/// What fluxd was, in the report and the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FluxdSummary {
    /// not-installed, down, garbage, syncing or node.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// The node's status as fluxd gives it (CONFIRMED, expired, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_height: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_confirmed_height: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl FluxdSummary {
    pub fn of(f: &Fluxd) -> FluxdSummary {
        let plain = |state: &str, reason: Option<String>| FluxdSummary { state: state.into(), height: None, status: None, confirmed_height: None, last_confirmed_height: None, reason };
        match f {
            Fluxd::NotInstalled => plain("not-installed", None),
            Fluxd::Down(why) => plain("down", Some(why.clone())),
            Fluxd::Garbage(why) => plain("garbage", Some(why.clone())),
            Fluxd::Syncing { blocks, headers } => FluxdSummary { height: Some(*blocks), ..plain("syncing", Some(format!("block {blocks} of {headers}"))) },
            Fluxd::Node { height, node } => FluxdSummary {
                height: Some(*height),
                status: Some(node.status.to_string()),
                confirmed_height: node.confirmed_height,
                last_confirmed_height: node.last_confirmed_height,
                ..plain("node", None)
            },
        }
    }
}

/// One sample as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Seconds since the epoch: only to age the sample out of the history (`retention`),
    /// never for a criterion.
    #[serde(default)]
    pub wall_s: u64,
    pub boot_id: String,
    /// CLOCK_BOOTTIME seconds.
    pub uptime_s: u64,
    pub fluxd: FluxdSummary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Margin {
    pub blocks: u64,
    pub seconds: u64,
}

/// One entry of the history: a sample, or a boot (how the one before ended).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Entry {
    Boot { boot: Boot },
    Soft { soft: SoftReboot },
    Sample(Record),
}

/// What `cairnctl eligibility` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub eligible: bool,
    pub criteria: Vec<Criterion>,
    /// Blocks (and seconds) left before a confirmed node must confirm again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_margin: Option<Margin>,
    #[serde(flatten)]
    pub sample: Record,
    /// Samples in the history on /data.
    pub history_records: u64,
    /// A configuration that was refused (the defaults are used meanwhile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    /// This boot, and how the one before it ended; none before the first boot the tracker saw
    /// end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_boot: Option<Boot>,
    /// What rebooting now would cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_cost: Option<RebootCost>,
    /// Soft reboots in this boot (updates that kept the kernel): its uptime counts on, and
    /// each says how long the services were down.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub soft_reboots: Vec<SoftReboot>,
    /// The running release and the last install of this boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateSummary>,
}

/// What the update side looks like, for the report and the metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateSummary {
    pub slot: String,
    pub version: String,
    /// The last install this boot: none, installing, installed (waiting for its restart),
    /// failed or interrupted.
    pub install: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub install_version: String,
}

impl Report {
    /// `measured`: this node's planned-reboot downtime and how many reboots it is from.
    pub fn new(rules: &Rules, boot_id: &str, sample: &Sample, history_records: u64, measured: Option<(u64, usize)>) -> Report {
        let criteria = criteria::evaluate(rules, sample);
        let margin = criteria::confirmation_margin(rules, &sample.fluxd).map(|(blocks, d)| Margin { blocks, seconds: d.as_secs() });
        Report {
            eligible: criteria::eligible(&criteria),
            reboot_cost: Some(cost::of(rules, &criteria, margin.map(|m| m.seconds), sample.uptime.as_secs(), measured)),
            confirmation_margin: margin,
            criteria,
            sample: Record { wall_s: wall_s(), boot_id: boot_id.to_owned(), uptime_s: sample.uptime.as_secs(), fluxd: FluxdSummary::of(&sample.fluxd) },
            history_records,
            config_error: None,
            last_boot: None,
            soft_reboots: Vec::new(),
            update: None,
        }
    }
}

/// CLOCK_BOOTTIME: the kernel's uptime, suspend included; no wall-clock step moves it.
pub fn uptime() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).map(Duration::from).unwrap_or_default()
}

fn wall_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Opens the history and thins it by `retention`, rewriting it only if that drops a sample.
/// Returns the store and the entries it holds (`None` for one this version cannot read).
pub fn open_compacted(path: &Path, now: u64) -> Result<(Store, Vec<Option<Entry>>), TrackerError> {
    let (mut store, opened) = Store::open(path)?;
    if opened.torn > 0 || opened.skipped > 0 {
        println!("history: {} bytes of a torn last write cut off, {} damaged bytes skipped; {} samples kept", opened.torn, opened.skipped, opened.records.len());
    }
    let decoded: Vec<Option<Entry>> = opened.records.iter().map(|r| serde_json::from_slice(r).ok()).collect();
    // A record this version cannot read is kept as it is (no time: never aged out). A boot
    // is a state of its own, so it and the sample after it count as transitions: kept.
    let points: Vec<retention::Point<'_>> = decoded
        .iter()
        .map(|r| match r {
            Some(Entry::Sample(r)) => retention::Point { wall_s: r.wall_s, state: (r.fluxd.state.as_str(), r.fluxd.status.as_deref()) },
            Some(Entry::Boot { boot }) => retention::Point { wall_s: boot.wall_s, state: ("boot", Some(boot.boot_id.as_str())) },
            Some(Entry::Soft { soft }) => retention::Point { wall_s: soft.wall_s, state: ("soft-reboot", Some(soft.version.as_str())) },
            None => retention::Point { wall_s: 0, state: ("", None) },
        })
        .collect();
    let keep = retention::keep(&points, now);
    if keep.iter().all(|&k| k) {
        return Ok((store, decoded));
    }
    let kept: Vec<Vec<u8>> = opened.records.into_iter().zip(&keep).filter(|(_, k)| **k).map(|(r, _)| r).collect();
    store.rewrite(&kept)?;
    println!("history: compacted to {} entries ({} thinned or older than a year)", kept.len(), keep.len() - kept.len());
    let decoded = decoded.into_iter().zip(&keep).filter(|(_, k)| **k).map(|(r, _)| r).collect();
    Ok((store, decoded))
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_owned()).unwrap_or_default()
}

fn write_report(path: &Path, r: &Report) {
    put(path, &serde_json::to_vec_pretty(r).unwrap_or_default());
}

/// Whole or not at all for a reader: a temporary file renamed over the old one. A file that
/// cannot be written costs this sample's report, never the tracker.
fn put(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    let dir = path.parent().unwrap_or(Path::new("/"));
    let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&tmp, bytes)).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        println!("cannot write {}: {e}", path.display());
    }
}

/// The last report, for `cairnctl eligibility`.
pub fn read_report(path: &Path) -> Result<Report, TrackerError> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(path).and_then(|f| f.take(MAX_REPORT).read_to_end(&mut text)).map_err(TrackerError::NoReport)?;
    serde_json::from_slice(&text).map_err(TrackerError::BadReport)
}

/// Where the tracker reads and writes: the system's, or a test's.
#[derive(Debug, Clone)]
pub struct Paths {
    pub report: PathBuf,
    pub metrics: PathBuf,
    /// The history's directory.
    pub state: PathBuf,
    /// The configuration: the first of these that exists.
    pub configs: Vec<PathBuf>,
    /// PID 1's shutdown marker (`boots::MARKER`).
    pub marker: PathBuf,
    /// sysfs, for what the hardware kept of a boot that ended without a shutdown.
    pub sys: PathBuf,
    /// PID 1's record of the soft reboots of this boot (`soft_reboot::STATE`).
    pub soft: PathBuf,
    /// The update installs' reports (`update::RUN`).
    pub update: PathBuf,
    /// The running slot's signed version (`update::SLOT_VERSION_FILE`).
    pub slot_version: PathBuf,
}

impl Paths {
    pub fn system() -> Paths {
        Paths { report: REPORT.into(), metrics: METRICS.into(), state: STATE.into(), configs: CONFIGS.iter().map(PathBuf::from).collect(), marker: boots::MARKER.into(), sys: "/sys".into(), soft: crate::soft_reboot::STATE.into(), update: crate::update::RUN.into(), slot_version: crate::update::SLOT_VERSION_FILE.into() }
    }
}

/// The tracker between samples.
#[derive(Debug)]
pub struct Tracker {
    paths: Paths,
    pub config: Config,
    config_error: Option<String>,
    store: Store,
    records: u64,
    since_compaction: u64,
    boot_id: String,
    /// Every boot in the history, oldest first: the planned ones measure a reboot's downtime.
    boots: Vec<Boot>,
    /// The history's last sample from before this tracker started, until the first sample
    /// tells whether this is a new boot.
    last_seen: Option<LastSeen>,
    this_boot: Option<Boot>,
    /// This boot's soft reboots, as kept.
    soft_reboots: Vec<SoftReboot>,
    last_state: String,
}

impl Tracker {
    /// Reads the configuration (a refused one is reported, the defaults used) and opens the
    /// history, compacted.
    pub fn open(paths: Paths, boot_id: &str) -> Result<Tracker, TrackerError> {
        let configs: Vec<&Path> = paths.configs.iter().map(PathBuf::as_path).collect();
        let (config, config_error) = match config_from(&configs) {
            Ok(c) => (c, None),
            Err(e) => {
                let why = crate::log::chain(&e);
                println!("{why}; using the defaults until it is fixed");
                (Config::default(), Some(why))
            }
        };
        std::fs::create_dir_all(&paths.state).map_err(TrackerError::State)?;
        let (store, entries) = open_compacted(&paths.state.join(HISTORY), wall_s())?;
        let boots: Vec<Boot> = entries.iter().filter_map(|e| if let Some(Entry::Boot { boot }) = e { Some(boot.clone()) } else { None }).collect();
        let last_seen = entries.iter().rev().find_map(|e| if let Some(Entry::Sample(r)) = e { Some(LastSeen { boot_id: r.boot_id.clone(), wall_s: r.wall_s, uptime_s: r.uptime_s }) } else { None });
        let this_boot = boots.iter().rev().find(|b| b.boot_id == boot_id).cloned();
        let soft_reboots = entries.iter().filter_map(|e| if let Some(Entry::Soft { soft }) = e { Some(soft.clone()) } else { None }).filter(|s| s.boot_id == boot_id).collect();
        let records = entries.len() as u64;
        Ok(Tracker { paths, config, config_error, store, records, since_compaction: 0, boot_id: boot_id.to_owned(), boots, last_seen, this_boot, soft_reboots, last_state: String::new() })
    }

    /// Keeps one sample (and, at the first, the boot it is in if that is new), writes the
    /// report and the metrics, and returns the report.
    pub fn step(&mut self, sample: &Sample) -> Report {
        if let Some(last) = self.last_seen.take() {
            let marker = boots::read_marker(&self.paths.marker);
            let traces = boots::Traces::read(&self.paths.sys);
            if let Some(mut boot) = boots::new_boot(&self.boot_id, wall_s(), sample.uptime.as_secs(), &last, marker.as_ref(), &traces) {
                boot.release = std::fs::read_to_string(&self.paths.slot_version).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
                let p = &boot.previous;
                let down = p.down_s.map(|d| format!(", down {}", super::show::duration(d))).unwrap_or_default();
                let release = boot.release.as_deref().map(|r| format!("; it runs {r}")).unwrap_or_default();
                println!("boot {}: the previous boot {} ended: {} after {}{down}{release}", boot.boot_id, p.boot_id, p.ended, super::show::duration(p.ran_s));
                self.keep(&Entry::Boot { boot: boot.clone() });
                self.boots.push(boot.clone());
                self.this_boot = Some(boot);
            }
        }
        self.note_soft_reboot();
        let measured = boots::planned_downtime(&self.boots);
        let mut report = Report::new(&self.config.rules, &self.boot_id, sample, self.records, measured);
        report.config_error.clone_from(&self.config_error);
        report.last_boot.clone_from(&self.this_boot);
        report.soft_reboots.clone_from(&self.soft_reboots);
        report.update = Some(self.update_summary());
        self.keep(&Entry::Sample(report.sample.clone()));
        report.history_records = self.records;
        // A line when fluxd's state changes, not every minute.
        let state = format!("{} {}", report.sample.fluxd.state, report.sample.fluxd.status.as_deref().unwrap_or(""));
        if state != self.last_state {
            println!("fluxd: {}{}; eligible: {}", state.trim(), report.sample.fluxd.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(), if report.eligible { "yes" } else { "no" });
            self.last_state = state;
        }
        write_report(&self.paths.report, &report);
        put(&self.paths.metrics, super::metrics::render(&report).as_bytes());
        if self.since_compaction >= retention::EVERY {
            match open_compacted(&self.paths.state.join(HISTORY), wall_s()) {
                Ok((store, entries)) => (self.store, self.records, self.since_compaction) = (store, entries.len() as u64, 0),
                Err(e) => println!("cannot compact the history: {}", crate::log::chain(&e)),
            }
        }
        report
    }

    fn update_summary(&self) -> UpdateSummary {
        let (slot, _) = crate::soft_reboot::running();
        let version = std::fs::read_to_string(&self.paths.slot_version).map(|v| v.trim().to_owned()).unwrap_or_default();
        let p = crate::update::progress::read(&self.paths.update);
        UpdateSummary { slot: slot.map(|s| s.to_string()).unwrap_or_default(), version, install: p.state, install_version: p.version }
    }

    /// Keeps a soft reboot PID 1 recorded, once it is over (the new slot ready) and once.
    fn note_soft_reboot(&mut self) {
        let Some(state) = crate::soft_reboot::read_state(&self.paths.soft) else { return };
        let Some(down_ms) = state.down_ms else { return };
        if self.soft_reboots.iter().any(|s| s.count >= state.count) {
            return;
        }
        let soft = SoftReboot { boot_id: self.boot_id.clone(), wall_s: wall_s(), count: state.count, from_slot: state.from_slot, slot: state.slot, version: state.version, down_ms };
        println!("soft reboot {} of this boot: slot {} -> {} (version {}), services down {} ms; OS uptime carries on", soft.count, soft.from_slot, soft.slot, soft.version, soft.down_ms);
        self.keep(&Entry::Soft { soft: soft.clone() });
        self.soft_reboots.push(soft);
    }

    /// Appends one entry to the history; one that cannot be kept costs only itself.
    fn keep(&mut self, entry: &Entry) {
        // An entry of strings and integers always serializes.
        match self.store.append(&serde_json::to_vec(entry).unwrap_or_default()) {
            Ok(()) => {
                self.records += 1;
                self.since_compaction += 1;
            }
            Err(e) => println!("cannot keep this {}: {}", match entry {
                Entry::Boot { .. } => "boot",
                Entry::Soft { .. } => "soft reboot",
                Entry::Sample(_) => "sample",
            }, crate::log::chain(&e)),
        }
    }
}

/// The service: samples until killed (or once, with `once`).
pub fn track(once: bool) -> Result<(), TrackerError> {
    let mut tracker = Tracker::open(Paths::system(), &boot_id())?;
    let latest = super::dbus::Latest::default();
    if !once {
        super::dbus::serve_in_background(latest.clone());
    }
    loop {
        let sample = Sample { uptime: uptime(), fluxd: super::rpc::sample(&tracker.config.flux_conf) };
        let report = tracker.step(&sample);
        if let Ok(mut l) = latest.lock() {
            *l = Some(report);
        }
        if once {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(tracker.config.interval_s.max(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eligibility::fluxd::{NodeStatus, Status};

    #[test]
    fn the_operator_s_configuration_counts_over_the_image_s_and_a_typo_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, image) = (dir.path().join("data.toml"), dir.path().join("image.toml"));
        assert_eq!(config_from(&[&data, &image]).expect("defaults"), Config::default());
        std::fs::write(&image, "interval_s = 30\n").expect("image");
        assert_eq!(config_from(&[&data, &image]).expect("image").interval_s, 30);
        std::fs::write(&data, "[rules]\nconfirmed_blocks = 100\n").expect("data");
        let c = config_from(&[&data, &image]).expect("data");
        assert_eq!((c.interval_s, c.rules.confirmed_blocks, c.rules.os_uptime_s), (60, 100, Rules::default().os_uptime_s));
        std::fs::write(&data, "[rules]\nconfirmed_block = 100\n").expect("typo");
        let e = config_from(&[&data, &image]).expect_err("typo");
        assert!(crate::log::chain(&e).contains("confirmed_block"), "{}", crate::log::chain(&e));
    }

    #[test]
    fn opening_the_history_ages_out_old_samples_and_keeps_the_rest_as_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history");
        let now = 1_000 * 86_400;
        let record = |wall_s: u64| Record { wall_s, boot_id: "b".into(), uptime_s: 1, fluxd: FluxdSummary::of(&Fluxd::NotInstalled) };
        {
            let (mut s, _) = Store::open(&path).expect("open");
            for r in [record(now - 400 * 86_400), record(now - 60)] {
                s.append(&serde_json::to_vec(&r).expect("json")).expect("append");
            }
            s.append(b"a record from another version").expect("append");
        }
        let (_, entries) = open_compacted(&path, now).expect("compact");
        assert_eq!(entries.len(), 2, "the year-old sample goes; the recent one and the unreadable one stay");
        let (_, opened) = Store::open(&path).expect("reopen");
        assert_eq!(opened.records[0], serde_json::to_vec(&record(now - 60)).expect("json"));
        assert_eq!(opened.records[1], b"a record from another version");
    }

    #[test]
    fn a_report_reads_back_as_written_and_says_what_fluxd_was() {
        let node = NodeStatus { status: Status::Confirmed, tier: None, added_height: Some(10), confirmed_height: Some(10), last_confirmed_height: Some(900), last_paid_height: None };
        let sample = Sample { uptime: Duration::from_secs(3600), fluxd: Fluxd::Node { height: 1000, node } };
        let report = Report::new(&Rules::default(), "b00d", &sample, 7, None);
        assert_eq!(report.confirmation_margin, Some(Margin { blocks: 540, seconds: 540 * 30 }));
        assert_eq!((report.sample.fluxd.state.as_str(), report.sample.fluxd.status.as_deref()), ("node", Some("CONFIRMED")));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("eligibility.json");
        write_report(&path, &report);
        assert_eq!(read_report(&path).expect("read"), report);
        std::fs::write(&path, "{}").expect("foreign");
        assert!(matches!(read_report(&path), Err(TrackerError::BadReport(_))));
        assert!(matches!(read_report(&dir.path().join("none")), Err(TrackerError::NoReport(_))));
    }

    fn paths(dir: &Path) -> Paths {
        Paths { report: dir.join("eligibility.json"), metrics: dir.join("eligibility.prom"), state: dir.join("state"), configs: vec![dir.join("eligibility.toml")], marker: dir.join("ended.json"), sys: dir.join("sys"), soft: dir.join("soft-reboot.json"), update: dir.join("update"), slot_version: dir.join("slot-version") }
    }

    fn sample(uptime_s: u64) -> Sample {
        Sample { uptime: Duration::from_secs(uptime_s), fluxd: Fluxd::NotInstalled }
    }

    #[test]
    fn each_new_boot_is_kept_once_with_how_the_one_before_ended_and_its_downtime_costs_the_next_reboot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = paths(dir.path());
        // The first boot the tracker sees: nothing before it to say anything of.
        let mut t = Tracker::open(paths.clone(), "one").expect("open");
        let r = t.step(&sample(20));
        assert_eq!((r.last_boot, r.history_records), (None, 1));
        let cost = r.reboot_cost.expect("a cost");
        assert_eq!((cost.uptime_lost_s, cost.downtime_s, cost.downtime_measured_over), (20, cost::ASSUMED_DOWN_S, 0));
        t.step(&sample(80));
        drop(t);
        // The operator reboots: PID 1's marker names boot "one".
        boots::record_end(&paths.marker, &boots::Marker { boot_id: "one".into(), why: boots::Why::Operator, wall_s: wall_s() - 30, uptime_s: 90 }).expect("marker");
        std::fs::write(&paths.slot_version, "0.2.0\n").expect("slot version");
        let mut t = Tracker::open(paths.clone(), "two").expect("open");
        let r = t.step(&sample(25));
        let boot = r.last_boot.clone().expect("a boot record");
        assert_eq!((boot.boot_id.as_str(), boot.previous.boot_id.as_str(), boot.previous.ended, boot.previous.ran_s), ("two", "one", boots::Ended::Operator, 90));
        assert_eq!(boot.release.as_deref(), Some("0.2.0"), "the release the boot runs");
        assert!(boot.previous.down_s.is_some_and(|d| (30..40).contains(&d)), "{boot:?}");
        assert_eq!(r.sample.uptime_s, 25, "OS uptime is this boot's");
        let measured = r.reboot_cost.expect("a cost");
        assert_eq!((measured.downtime_s, measured.downtime_measured_over), (boot.previous.down_s.unwrap_or(0), 1));
        // The tracker restarted in the same boot records no second boot.
        drop(t);
        let mut t = Tracker::open(paths.clone(), "two").expect("open");
        assert_eq!(t.step(&sample(26)).last_boot, Some(boot));
        drop(t);
        // A power cut: the marker is boot one's, not two's.
        let mut t = Tracker::open(paths.clone(), "three").expect("open");
        let r = t.step(&sample(30));
        assert_eq!(r.last_boot.map(|b| (b.previous.boot_id, b.previous.ended, b.previous.ran_s)), Some(("two".to_owned(), boots::Ended::PowerLoss, 26)));
        let (_, opened) = Store::open(&paths.state.join(HISTORY)).expect("history");
        let kinds: Vec<&str> = opened.records.iter().map(|r| match serde_json::from_slice(r) {
            Ok(Entry::Boot { .. }) => "boot",
            Ok(Entry::Soft { .. }) => "soft",
            Ok(Entry::Sample(_)) => "sample",
            Err(_) => "?",
        }).collect();
        assert_eq!(kinds, ["sample", "sample", "boot", "sample", "sample", "boot", "sample"]);
    }

    #[test]
    fn a_soft_reboot_is_kept_once_when_the_new_slot_is_ready_and_the_uptime_carries_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = paths(dir.path());
        let mut state = crate::soft_reboot::State { slot: "b".into(), root_hash: "bb".repeat(32), version: "0.2.0".into(), from_slot: "a".into(), from_root_hash: "aa".repeat(32), count: 1, stopping_ms: 1_000, down_ms: None };
        let write = |s: &crate::soft_reboot::State| std::fs::write(&paths.soft, serde_json::to_vec(s).expect("json")).expect("state");
        write(&state);
        let mut t = Tracker::open(paths.clone(), "boot").expect("open");
        assert!(t.step(&sample(100)).soft_reboots.is_empty(), "not over until the new slot is ready");
        state.down_ms = Some(8_500);
        write(&state);
        let r = t.step(&sample(101));
        assert_eq!(r.soft_reboots.iter().map(|s| (s.count, s.slot.as_str(), s.down_ms)).collect::<Vec<_>>(), [(1, "b", 8_500)]);
        assert_eq!((r.sample.uptime_s, r.last_boot), (101, None), "the kernel's uptime, no new boot");
        assert_eq!(t.step(&sample(102)).soft_reboots.len(), 1, "kept once");
        drop(t);
        // The tracker restarted by the new slot's PID 1 keeps it once too.
        let mut t = Tracker::open(paths.clone(), "boot").expect("open");
        assert_eq!(t.step(&sample(103)).soft_reboots.len(), 1);
        let (_, opened) = Store::open(&paths.state.join(HISTORY)).expect("history");
        assert_eq!(opened.records.iter().filter(|r| matches!(serde_json::from_slice(r), Ok(Entry::Soft { .. }))).count(), 1);
    }
}
