//! The health gate (issue 9 item 6): the services that must have been ready, then the check
//! command (`check` in gate.toml), the operator's own test that the node works beyond its
//! services being ready (say, that fluxd answers and is synced). The check runs once the
//! gate's services hold, as root and unsandboxed like an operator's shell command, with no
//! input or output, killed if it overruns; it is tried again every `RETRY` until it exits 0
//! or the gate's deadline passes.
//!
//! PID 1 reaps every child with `waitpid(-1)` (`Supervisor::reap`), so the check's exit
//! status comes back through there, never through a blocking wait of its own.

use super::unit::State;
use super::Supervisor;
use crate::service::spawn;
use std::time::{Duration, Instant};

/// Between a failed run and the next.
pub const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(super) struct GateCheck {
    argv: Vec<String>,
    timeout: Duration,
    /// The run in progress: its pid and when it is killed.
    running: Option<(i32, Instant)>,
    timed_out: bool,
    /// No run before this (after a failure).
    next: Option<Instant>,
    passed: bool,
    /// How the last run failed.
    last: Option<String>,
}

impl GateCheck {
    pub fn new(argv: Vec<String>, timeout: Duration) -> GateCheck {
        GateCheck { argv, timeout, running: None, timed_out: false, next: None, passed: false, last: None }
    }

    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// Whether a run should start now.
    pub fn due(&self, now: Instant) -> bool {
        !self.passed && self.running.is_none() && self.next.is_none_or(|t| t <= now)
    }

    pub fn started(&mut self, pid: i32, now: Instant) {
        (self.running, self.timed_out) = (Some((pid, now + self.timeout)), false);
    }

    /// A run could not start at all.
    pub fn not_started(&mut self, why: String, now: Instant) {
        (self.last, self.next) = (Some(why), Some(now + RETRY));
    }

    pub fn pid(&self) -> Option<i32> {
        self.running.map(|r| r.0)
    }

    /// The run overran: `Some(pid)` to kill, once.
    pub fn overran(&mut self, now: Instant) -> Option<i32> {
        match self.running {
            Some((pid, deadline)) if deadline <= now && !self.timed_out => {
                self.timed_out = true;
                Some(pid)
            }
            _ => None,
        }
    }

    /// The run ended: `Ok` for exit status 0, else how it ended (`unit::describe`).
    pub fn ended(&mut self, result: Result<(), String>, now: Instant) {
        self.running = None;
        match result {
            Ok(()) => (self.passed, self.last) = (true, None),
            Err(how) => {
                let how = if self.timed_out { format!("did not finish within {} s", self.timeout.as_secs()) } else { how };
                (self.last, self.next) = (Some(how), Some(now + RETRY));
            }
        }
    }

    /// The next moment this needs the supervisor's loop: a kill or a retry.
    pub fn deadline(&self) -> Option<Instant> {
        if self.passed {
            return None;
        }
        self.running.map(|r| r.1).or(self.next)
    }

    /// What the gate still waits for, for its reason: `None` once the check passed.
    pub fn waiting(&self) -> Option<String> {
        if self.passed {
            return None;
        }
        let how = self.last.as_deref().unwrap_or(if self.running.is_some() { "still running" } else { "not run: the services are not ready" });
        Some(format!("check `{}` ({how})", self.argv.join(" ")))
    }
}

impl Supervisor {
    /// The health gate's check command (gate.toml `check`), run once the services hold.
    pub fn set_gate_check(&mut self, argv: Vec<String>, timeout: Duration) {
        self.gate_check = Some(GateCheck::new(argv, timeout));
    }

    /// The health gate: every service in `required` (by default every service that should
    /// run) has been ready at least once, and then the check command, if any, exited 0
    /// (started here when due). Returns whether it holds and what it waits for.
    pub fn gate(&mut self, required: Option<&[String]>) -> (bool, Vec<String>) {
        let mut waiting: Vec<String> = match required {
            Some(names) => names
                .iter()
                .filter(|n| !self.units.iter().any(|u| &u.name == *n && u.ever_ready))
                .map(|n| if self.units.iter().any(|u| &u.name == n) { format!("{n} not ready") } else { format!("{n} (no such service)") })
                .collect(),
            None => self
                .units
                .iter()
                .filter(|u| u.def.as_ref().is_some_and(|d| d.autostart) && !matches!(u.state, State::Broken | State::NotInstalled) && !u.ever_ready)
                .map(|u| format!("{} not ready", u.name))
                .collect(),
        };
        let now = Instant::now();
        if let Some(check) = self.gate_check.as_mut() {
            if waiting.is_empty() && check.due(now) {
                match spawn::spawn_gate_check(check.argv()) {
                    Ok(pid) => check.started(pid, now),
                    Err(e) => check.not_started(e.to_string(), now),
                }
            }
            waiting.extend(check.waiting());
        }
        (waiting.is_empty(), waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_check_is_retried_after_a_pause_and_passes_for_good_once_it_exits_0() {
        let t0 = Instant::now();
        let mut c = GateCheck::new(vec!["/usr/bin/fluxd-ok".into()], Duration::from_secs(30));
        assert!(c.due(t0));
        assert_eq!(c.waiting().as_deref(), Some("check `/usr/bin/fluxd-ok` (not run: the services are not ready)"));
        c.started(42, t0);
        assert!(!c.due(t0), "one run at a time");
        assert_eq!(c.pid(), Some(42));
        c.ended(Err("exited with status 3".into()), t0 + Duration::from_secs(1));
        assert_eq!(c.waiting().as_deref(), Some("check `/usr/bin/fluxd-ok` (exited with status 3)"));
        assert!(!c.due(t0 + Duration::from_secs(2)), "not again before the retry pause");
        assert_eq!(c.deadline(), Some(t0 + Duration::from_secs(1) + RETRY));
        assert!(c.due(t0 + Duration::from_secs(1) + RETRY));
        c.started(43, t0 + Duration::from_secs(7));
        c.ended(Ok(()), t0 + Duration::from_secs(8));
        assert!(c.waiting().is_none() && c.deadline().is_none() && !c.due(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn an_overrunning_check_is_killed_once_and_says_it_overran() {
        let t0 = Instant::now();
        let mut c = GateCheck::new(vec!["sleep".into(), "99".into()], Duration::from_secs(10));
        c.started(7, t0);
        assert_eq!(c.overran(t0 + Duration::from_secs(9)), None);
        assert_eq!(c.deadline(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(c.overran(t0 + Duration::from_secs(10)), Some(7));
        assert_eq!(c.overran(t0 + Duration::from_secs(11)), None, "killed once");
        c.ended(Err("killed by SIGKILL".into()), t0 + Duration::from_secs(11));
        assert_eq!(c.waiting().as_deref(), Some("check `sleep 99` (did not finish within 10 s)"));
    }
}
