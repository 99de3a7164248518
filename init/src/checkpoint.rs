//! Holding an install at its checkpoints, for the power-cut test: with
//! `CAIRN_UPDATE_PAUSE=DIR` in its environment, `cairnctl update install` writes `DIR/paused`
//! ("N label") at each checkpoint and waits until that file is removed. The test freezes the
//! disk's state there (QEMU's `blockdev-snapshot-sync`), lets the install go on, and later
//! boots every frozen state as if the power had been cut at that moment. Unset (always, on a
//! real node), this does nothing.
//!
//! The checkpoints: the slot marked bad and each fifth of the stream (download, decode, write
//! and hash are one pass), each half of the read-back, each commit step before it starts,
//! and the flip done.

use cairn_updater::install::{Progress, Stage};
use std::path::PathBuf;
use std::time::Duration;

pub const ENV: &str = "CAIRN_UPDATE_PAUSE";

/// The checkpoint `p` falls in (consecutive events in one checkpoint are held once).
pub fn label(p: &Progress) -> String {
    let share = |parts: u64| (p.done.min(p.total) * parts).checked_div(p.total).map_or(100, |n| n * (100 / parts));
    match (p.stage, p.step) {
        (Stage::Writing, _) => format!("stream {}%", share(5)),
        (Stage::ReadingBack, _) => format!("read-back {}%", share(2)),
        (Stage::Committing, Some(step)) => format!("before {step}"),
        (Stage::Committing, None) => "committing".into(),
        (Stage::Done, _) => "flipped".into(),
    }
}

#[derive(Debug)]
pub struct Checkpoints {
    dir: Option<PathBuf>,
    last: Option<String>,
    count: u32,
}

impl Checkpoints {
    pub fn from_env() -> Checkpoints {
        Checkpoints { dir: std::env::var_os(ENV).map(PathBuf::from), last: None, count: 0 }
    }

    /// Holds the install here if `p` starts a new checkpoint (and pausing is asked for).
    pub fn at(&mut self, p: &Progress) {
        let Some(dir) = &self.dir else { return };
        let label = label(p);
        if self.last.as_deref() == Some(label.as_str()) {
            return;
        }
        self.count += 1;
        let (tmp, paused) = (dir.join("paused.new"), dir.join("paused"));
        // Written whole, then renamed: the test never reads half a line.
        let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&tmp, format!("{} {label}\n", self.count))).and_then(|()| std::fs::rename(&tmp, &paused));
        self.last = Some(label);
        if written.is_err() {
            return;
        }
        while paused.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_updater::install::Step;

    fn p(stage: Stage, done: u64, step: Option<Step>) -> Progress {
        Progress { stage, done, total: 1000, step }
    }

    #[test]
    fn checkpoints_are_fifths_of_the_stream_halves_of_the_read_back_and_each_step() {
        let labels: Vec<String> = [p(Stage::Writing, 0, None), p(Stage::Writing, 199, None), p(Stage::Writing, 200, None), p(Stage::Writing, 1000, None), p(Stage::ReadingBack, 600, None), p(Stage::Committing, 1000, Some(Step::Flip)), p(Stage::Done, 1000, None)]
            .iter()
            .map(label)
            .collect();
        assert_eq!(labels, ["stream 0%", "stream 0%", "stream 20%", "stream 100%", "read-back 50%", "before grubenv flip", "flipped"]);
    }

    #[test]
    fn without_the_variable_nothing_is_held_or_written() {
        let mut c = Checkpoints { dir: None, last: None, count: 0 };
        c.at(&p(Stage::Writing, 0, None));
        assert_eq!(c.count, 0);
    }
}
