//! An install's progress where everyone can see it: the installing process (the update
//! service or an operator's `cairnctl update install`) writes `RUN/progress.json` as it goes,
//! and the control API's `UpdateProgress` reads it, so `cairnctl update progress` and
//! `busctl` show an install that another process runs (issue 9 item 4: stage, bytes, rate,
//! ETA through the API). The file is on /run: it describes this boot only.
//!
//! Reporting never fails an install: a report that cannot be written is skipped.

use crate::control::UpdateProgress;
use cairn_updater::install::{Progress, Stage};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FILE: &str = "progress.json";
/// More than any report: a larger file is not one of ours.
const MAX_BYTES: u64 = 64 * 1024;
/// At least this often while bytes move, besides every percent and every stage or step.
const EVERY: Duration = Duration::from_secs(1);

/// What the file holds: the report and who wrote it. A PID alone could name a later process
/// after the installer died; with its start time (field 22 of /proc/PID/stat) it cannot.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Record {
    start_ticks: u64,
    progress: UpdateProgress,
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks since boot.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn stage_name(stage: Stage) -> String {
    serde_json::to_value(stage).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Rate and ETA over the current stage. Each stage counts its bytes from zero (the read-back
/// starts again at 0 of its own total), so a rate over the whole install would start the
/// read-back at a fraction of its true speed and an ETA of many minutes.
#[derive(Debug, Default)]
pub struct StageRate {
    /// The stage measured: when it was first seen and its bytes then.
    stage: Option<(Stage, Instant, u64)>,
}

impl StageRate {
    /// Bytes per second over the stage so far, and seconds left at that rate.
    pub fn update(&mut self, p: &Progress, now: Instant) -> (u64, u64) {
        let (stage, began, base) = match self.stage {
            Some(s) if s.0 == p.stage => s,
            _ => (p.stage, now, p.done),
        };
        self.stage = Some((stage, began, base));
        let secs = now.duration_since(began).as_secs_f64();
        let moved = p.done.saturating_sub(base);
        let rate = if secs > 0.0 { (moved as f64 / secs) as u64 } else { 0 };
        (rate, p.total.saturating_sub(p.done).checked_div(rate).unwrap_or(0))
    }
}

/// Reports one install's progress into `dir`.
#[derive(Debug)]
pub struct Tracker {
    path: PathBuf,
    start_ticks: u64,
    started: Instant,
    rate: StageRate,
    last_write: Option<(Instant, u64, String)>,
    report: UpdateProgress,
}

impl Tracker {
    pub fn start(dir: &Path, source: &str) -> Tracker {
        let pid = std::process::id();
        let report = UpdateProgress { state: "installing".into(), pid, source: source.to_owned(), ..UpdateProgress::default() };
        let mut t = Tracker { path: dir.join(FILE), start_ticks: start_ticks(pid).unwrap_or(0), started: Instant::now(), rate: StageRate::default(), last_write: None, report };
        t.write();
        t
    }

    pub fn update(&mut self, p: Progress) {
        let now = Instant::now();
        let r = &mut self.report;
        (r.rate, r.eta_s) = self.rate.update(&p, now);
        r.stage = stage_name(p.stage);
        r.step = p.step.map(|s| s.to_string()).unwrap_or_default();
        (r.done, r.total) = (p.done, p.total);
        let percent = (p.done * 100).checked_div(p.total).unwrap_or(0);
        let key = format!("{}/{}", r.stage, r.step);
        let due = self.last_write.as_ref().is_none_or(|(at, pct, k)| *k != key || *pct != percent || now.duration_since(*at) >= EVERY);
        if due {
            self.last_write = Some((now, percent, key));
            self.write();
        }
    }

    /// The install ended: with the version it installed, or with why it did not.
    pub fn finish(mut self, result: Result<String, String>) {
        match result {
            Ok(version) => (self.report.state, self.report.version) = ("installed".into(), version),
            Err(error) => (self.report.state, self.report.error) = ("failed".into(), error),
        }
        (self.report.rate, self.report.eta_s) = (0, 0);
        self.write();
    }

    fn write(&mut self) {
        self.report.elapsed_s = self.started.elapsed().as_secs();
        let record = Record { start_ticks: self.start_ticks, progress: self.report.clone() };
        let Ok(bytes) = serde_json::to_vec(&record) else { return };
        // Whole or not at all for a reader: a temporary file renamed over the report. No
        // fsync: /run does not outlive the boot.
        let tmp = self.path.with_extension("json.new");
        let _ = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &self.path));
    }
}

/// The last install's report in `dir`; state `none` if there was none this boot.
pub fn read(dir: &Path) -> UpdateProgress {
    use std::io::Read;
    let none = || UpdateProgress { state: "none".into(), ..UpdateProgress::default() };
    let mut bytes = Vec::new();
    let Ok(file) = std::fs::File::open(dir.join(FILE)) else { return none() };
    if file.take(MAX_BYTES).read_to_end(&mut bytes).is_err() {
        return none();
    }
    let Ok(Record { start_ticks: ticks, mut progress }) = serde_json::from_slice(&bytes) else { return none() };
    if progress.state == "installing" && start_ticks(progress.pid) != Some(ticks) {
        progress.state = "interrupted".into();
        (progress.rate, progress.eta_s) = (0, 0);
    }
    progress
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_updater::install::Step;

    fn p(stage: Stage, done: u64, step: Option<Step>) -> Progress {
        Progress { stage, done, total: 1000, step }
    }

    #[test]
    fn a_reader_sees_each_stage_and_step_and_how_the_install_ended() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).state, "none");
        let mut t = Tracker::start(dir.path(), "http://10.0.2.2/targets/0.2.0.bundle");
        let r = read(dir.path());
        assert_eq!((r.state.as_str(), r.pid, r.stage.as_str()), ("installing", std::process::id(), ""));
        t.update(p(Stage::Writing, 400, None));
        let r = read(dir.path());
        assert_eq!((r.stage.as_str(), r.done, r.total), ("writing", 400, 1000));
        t.update(p(Stage::Committing, 1000, Some(Step::Flip)));
        let r = read(dir.path());
        assert_eq!((r.stage.as_str(), r.step.as_str()), ("committing", "grubenv flip"));
        t.finish(Ok("0.2.0".into()));
        let r = read(dir.path());
        assert_eq!((r.state.as_str(), r.version.as_str()), ("installed", "0.2.0"));
    }

    #[test]
    fn rate_and_eta_are_measured_over_the_current_stage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = Tracker::start(dir.path(), "x");
        t.update(p(Stage::ReadingBack, 0, None));
        if let Some(s) = t.rate.stage.as_mut() {
            s.1 -= Duration::from_secs(2);
        }
        t.update(p(Stage::ReadingBack, 500, None));
        let r = read(dir.path());
        assert!((240..=250).contains(&r.rate), "500 bytes over 2 s: {}", r.rate);
        assert!((2..=3).contains(&r.eta_s), "500 more bytes at that rate: {}", r.eta_s);
    }

    #[test]
    fn an_install_whose_process_is_gone_reads_as_interrupted_and_a_failure_keeps_its_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = Tracker::start(dir.path(), "x");
        // The same PID with another start time: a later process that reused the PID.
        t.start_ticks += 1;
        t.update(p(Stage::Writing, 10, None));
        assert_eq!(read(dir.path()).state, "interrupted");
        t.finish(Err("the bundle was not installed: a truncated bundle".into()));
        let r = read(dir.path());
        assert_eq!((r.state.as_str(), r.error.as_str()), ("failed", "the bundle was not installed: a truncated bundle"));
    }

    #[test]
    fn a_file_that_is_not_a_report_reads_as_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE), b"{\"not\": \"ours\"}").expect("write");
        assert_eq!(read(dir.path()).state, "none");
    }
}
