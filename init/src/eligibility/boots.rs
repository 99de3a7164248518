//! How each boot ended, and how long the node was down in between.
//!
//! PID 1 knows why it shuts down: when an orderly shutdown starts it writes a marker on
//! /data naming the boot, why (the operator, an update, or the platform: the ACPI button or
//! a signal from the hypervisor) and the wall time (`record_end`). A boot that ends any
//! other way leaves no marker for its boot id, so the tracker, seeing a new boot id, tells
//! what happened from what the hardware kept (`how_it_ended`): a watchdog that reset the
//! machine says so in its `bootstatus`; a kernel panic leaves its record in pstore; anything
//! else is a power loss (or a reset, or a hypervisor that killed the machine).
//!
//! The downtime between boots can only be measured by the wall clock (no other clock runs
//! across a reboot): it is the time from the end (the marker, or the boot's last sample)
//! to this boot's first sample, and is dropped if the clock went backwards.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The marker PID 1 writes when a shutdown starts.
pub const MARKER: &str = "/data/cairn/boot/ended.json";
/// Set in a watchdog's `bootstatus` when it reset the machine (linux/watchdog.h).
const WDIOF_CARDRESET: u32 = 0x0020;
/// More than this between two boots is not a reboot but a node that was off.
const PLAUSIBLE_DOWN_S: u64 = 7 * 24 * 3600;

/// Why PID 1 shuts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    /// Asked through the API (`cairnctl reboot`, `poweroff`) or Ctrl-Alt-Del at the console.
    Operator,
    /// To boot an installed update, or back from one that failed its health gate.
    Update,
    /// The platform asked: the ACPI power button, SIGTERM or SIGPWR (a hypervisor, a UPS).
    Clean,
}

/// How a boot ended, as the history keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ended {
    Operator,
    Update,
    Clean,
    /// The hardware watchdog reset a machine whose PID 1 stopped petting it.
    Watchdog,
    /// The kernel panicked (its record is in pstore).
    Panic,
    /// No shutdown and no trace: power lost, reset, or the machine killed.
    PowerLoss,
}

impl Ended {
    /// A reboot somebody chose: its downtime is what a planned reboot costs.
    pub fn planned(self) -> bool {
        matches!(self, Ended::Operator | Ended::Update | Ended::Clean)
    }
}

impl From<Why> for Ended {
    fn from(w: Why) -> Ended {
        match w {
            Why::Operator => Ended::Operator,
            Why::Update => Ended::Update,
            Why::Clean => Ended::Clean,
        }
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ended::Operator => "rebooted or powered off by the operator",
            Ended::Update => "rebooted for an update",
            Ended::Clean => "shut down cleanly by the platform (power button or signal)",
            Ended::Watchdog => "reset by the hardware watchdog",
            Ended::Panic => "kernel panic",
            Ended::PowerLoss => "power loss, reset or crash (no shutdown was recorded)",
        })
    }
}

/// What PID 1 writes when a shutdown starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub boot_id: String,
    pub why: Why,
    /// Seconds since the epoch when the services began to stop.
    pub wall_s: u64,
    /// CLOCK_BOOTTIME seconds then: how long the boot ran.
    pub uptime_s: u64,
}

/// Writes `marker` to `path` (a new file renamed over the old, then synced): PID 1 calls
/// this once, as a shutdown starts, before any service stops.
pub fn record_end(path: &Path, marker: &Marker) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("new");
    let mut f = std::fs::File::create(&tmp)?;
    // A marker of strings and integers always serializes.
    f.write_all(&serde_json::to_vec(marker).unwrap_or_default())?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The marker at `path`, if there is one that parses.
pub fn read_marker(path: &Path) -> Option<Marker> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(path).ok()?.take(4096).read_to_end(&mut text).ok()?;
    serde_json::from_slice(&text).ok()
}

/// What the hardware kept of a boot that ended without a shutdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traces {
    /// The watchdogs' `bootstatus` values.
    pub watchdog_bootstatus: Vec<u32>,
    /// pstore holds a kernel panic's log.
    pub pstore_panic: bool,
}

impl Traces {
    /// From /sys: every watchdog's bootstatus, and pstore's dmesg records.
    pub fn read(sys: &Path) -> Traces {
        let watchdog_bootstatus = std::fs::read_dir(sys.join("class/watchdog"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("bootstatus")).ok()?.trim().parse().ok())
            .collect();
        let pstore_panic = std::fs::read_dir(sys.join("fs/pstore"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("dmesg-"))
            .any(|e| std::fs::read(e.path()).is_ok_and(|b| String::from_utf8_lossy(&b).contains("Kernel panic")));
        Traces { watchdog_bootstatus, pstore_panic }
    }
}

/// How the boot `previous` ended: the marker if it names that boot, else the traces.
pub fn how_it_ended(previous: &str, marker: Option<&Marker>, traces: &Traces) -> Ended {
    match marker {
        Some(m) if m.boot_id == previous => m.why.into(),
        _ if traces.pstore_panic => Ended::Panic,
        _ if traces.watchdog_bootstatus.iter().any(|s| s & WDIOF_CARDRESET != 0) => Ended::Watchdog,
        _ => Ended::PowerLoss,
    }
}

/// A boot as the history keeps it: recorded once, at the tracker's first sample in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boot {
    /// The new boot.
    pub boot_id: String,
    /// Seconds since the epoch at its first sample.
    pub wall_s: u64,
    /// Its uptime then: how long it took from power-on to the tracker's first sample.
    pub uptime_s: u64,
    pub previous: PreviousBoot,
    /// The release it booted (the slot's signed version): after a boot that ended for an
    /// update, the update applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousBoot {
    pub boot_id: String,
    pub ended: Ended,
    /// How long it ran (its uptime at the shutdown, or at its last sample).
    pub ran_s: u64,
    /// From its end to this boot's first sample, by the wall clock; none if the clock went
    /// backwards or the node was off longer than a reboot takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_s: Option<u64>,
}

/// The last sample of a boot, as far as the tracker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSeen {
    pub boot_id: String,
    pub wall_s: u64,
    pub uptime_s: u64,
}

/// The boot record for a boot whose first sample is `now_wall_s`/`now_uptime_s`, after
/// `last` (the previous boot's last sample); `None` if it is the same boot.
pub fn new_boot(boot_id: &str, now_wall_s: u64, now_uptime_s: u64, last: &LastSeen, marker: Option<&Marker>, traces: &Traces) -> Option<Boot> {
    if last.boot_id == boot_id {
        return None;
    }
    let ended = how_it_ended(&last.boot_id, marker, traces);
    let (end_wall, ran_s) = match marker {
        Some(m) if m.boot_id == last.boot_id => (m.wall_s, m.uptime_s),
        _ => (last.wall_s, last.uptime_s),
    };
    let down_s = now_wall_s.checked_sub(end_wall).filter(|&d| d <= PLAUSIBLE_DOWN_S);
    Some(Boot { boot_id: boot_id.to_owned(), wall_s: now_wall_s, uptime_s: now_uptime_s, previous: PreviousBoot { boot_id: last.boot_id.clone(), ended, ran_s, down_s }, release: None })
}

/// A soft reboot (`soft_reboot`): the boot and the kernel's uptime carry on, the services
/// were down for `down_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftReboot {
    pub boot_id: String,
    /// The tracker's first sample after it (seconds since the epoch).
    pub wall_s: u64,
    /// The count of soft reboots in this boot, this one included.
    pub count: u32,
    pub from_slot: String,
    pub slot: String,
    pub version: String,
    pub down_ms: u64,
}

/// What a planned reboot costs in downtime on this node: the median of its measured planned
/// reboots (newest `LAST` of them), with how many it is from; `None` with none measured.
pub fn planned_downtime(boots: &[Boot]) -> Option<(u64, usize)> {
    const LAST: usize = 9;
    let mut downs: Vec<u64> = boots.iter().rev().filter(|b| b.previous.ended.planned()).filter_map(|b| b.previous.down_s).take(LAST).collect();
    if downs.is_empty() {
        return None;
    }
    downs.sort_unstable();
    Some((downs[downs.len() / 2], downs.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(boot_id: &str, why: Why) -> Marker {
        Marker { boot_id: boot_id.into(), why, wall_s: 1_000, uptime_s: 500 }
    }

    fn last(boot_id: &str) -> LastSeen {
        LastSeen { boot_id: boot_id.into(), wall_s: 990, uptime_s: 490 }
    }

    #[test]
    fn a_marker_for_the_previous_boot_says_why_and_when_it_ended() {
        let b = new_boot("new", 1_030, 25, &last("old"), Some(&marker("old", Why::Update)), &Traces::default()).expect("a new boot");
        assert_eq!(b.previous, PreviousBoot { boot_id: "old".into(), ended: Ended::Update, ran_s: 500, down_s: Some(30) });
        assert_eq!(new_boot("old", 1_030, 25, &last("old"), None, &Traces::default()), None, "the same boot is no new boot");
    }

    #[test]
    fn without_a_marker_for_it_a_boot_ended_by_panic_watchdog_or_power_loss() {
        // A marker of an older boot says nothing of this one.
        let stale = marker("older", Why::Operator);
        let cases = [
            (Traces::default(), Ended::PowerLoss),
            (Traces { watchdog_bootstatus: vec![0, WDIOF_CARDRESET], pstore_panic: false }, Ended::Watchdog),
            (Traces { watchdog_bootstatus: vec![0], pstore_panic: true }, Ended::Panic),
        ];
        for (traces, ended) in cases {
            let b = new_boot("new", 1_100, 25, &last("old"), Some(&stale), &traces).expect("a new boot");
            assert_eq!((b.previous.ended, b.previous.ran_s, b.previous.down_s), (ended, 490, Some(110)), "{traces:?}");
        }
    }

    #[test]
    fn a_clock_that_went_back_or_a_node_off_for_weeks_measures_no_reboot() {
        let back = new_boot("new", 900, 25, &last("old"), Some(&marker("old", Why::Operator)), &Traces::default()).expect("boot");
        assert_eq!(back.previous.down_s, None);
        let weeks = new_boot("new", 1_000 + 30 * 86_400, 25, &last("old"), Some(&marker("old", Why::Operator)), &Traces::default()).expect("boot");
        assert_eq!(weeks.previous.down_s, None);
    }

    #[test]
    fn the_planned_downtime_is_the_median_of_planned_reboots_only() {
        let boot = |ended, down_s| Boot { boot_id: "b".into(), wall_s: 0, uptime_s: 0, previous: PreviousBoot { boot_id: "a".into(), ended, ran_s: 0, down_s }, release: None };
        assert_eq!(planned_downtime(&[]), None);
        let boots = [boot(Ended::Operator, Some(40)), boot(Ended::PowerLoss, Some(9_000)), boot(Ended::Update, Some(20)), boot(Ended::Clean, None), boot(Ended::Operator, Some(30))];
        assert_eq!(planned_downtime(&boots), Some((30, 3)));
    }

    #[test]
    fn the_marker_reads_back_as_written_and_a_foreign_file_is_no_marker() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("boot/ended.json");
        record_end(&path, &marker("b", Why::Clean)).expect("write");
        assert_eq!(read_marker(&path), Some(marker("b", Why::Clean)));
        std::fs::write(&path, "not json").expect("write");
        assert_eq!(read_marker(&path), None);
        assert_eq!(read_marker(&dir.path().join("none")), None);
    }

    #[test]
    fn traces_are_read_from_sysfs() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("class/watchdog/watchdog0")).expect("mkdir");
        std::fs::write(dir.path().join("class/watchdog/watchdog0/bootstatus"), "32\n").expect("write");
        std::fs::create_dir_all(dir.path().join("fs/pstore")).expect("mkdir");
        std::fs::write(dir.path().join("fs/pstore/dmesg-efi-1"), "<0>Kernel panic - not syncing: VFS").expect("write");
        assert_eq!(Traces::read(dir.path()), Traces { watchdog_bootstatus: vec![32], pstore_panic: true });
        assert_eq!(Traces::read(&dir.path().join("none")), Traces::default());
    }
}
