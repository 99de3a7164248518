//! A service as the supervisor tracks it: its definition, its state and the counters behind
//! what `cairnctl services` shows, and the pure rules over them (backoff, crash loop).

use crate::control::ServiceInfo;
use crate::service::definition::{Definition, DefinitionError};
use nix::sys::wait::WaitStatus;
use std::time::{Duration, Instant};

/// Above this many failures in a row a service in backoff shows as `failing`.
pub(super) const FAILING_AFTER: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Wanted, waiting for its dependencies.
    Waiting,
    Starting,
    Running,
    Backoff,
    Stopping,
    /// Not wanted (never started, or stopped by the operator or the shutdown).
    Stopped,
    /// Exited and its restart policy says no.
    Exited,
    NotInstalled,
    Broken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProbeFor {
    Readiness,
    Health,
}

#[derive(Debug)]
pub(super) struct Unit {
    pub(super) name: String,
    pub(super) def: Option<Definition>,
    pub(super) error: String,
    pub(super) state: State,
    pub(super) want: bool,
    pub(super) pid: Option<i32>,
    /// Who the current run runs as; its command probes run the same way.
    pub(super) identity: Option<crate::service::spawn::Identity>,
    /// Counts starts; a probe result from an earlier run is ignored.
    pub(super) generation: u64,
    pub(super) restarts: u32,
    pub(super) failures_in_row: u32,
    pub(super) last_exit: String,
    pub(super) started_at: Option<Instant>,
    /// Milliseconds of uptime at this boot's first start and first
    /// readiness: the critical path to ready, as `cairnctl services` and the bench show it.
    pub(super) first_start_ms: u64,
    pub(super) first_ready_ms: u64,
    pub(super) ready: bool,
    pub(super) ever_ready: bool,
    pub(super) ready_deadline: Option<Instant>,
    pub(super) next_probe: Option<Instant>,
    pub(super) probe_inflight: bool,
    pub(super) health_failures: u32,
    pub(super) next_start: Option<Instant>,
    pub(super) stop_deadline: Option<Instant>,
    pub(super) killed: bool,
    pub(super) restart_after_stop: bool,
    /// The exit should count as a failure whatever its status (health or readiness failed).
    pub(super) forced_failure: Option<String>,
    pub(super) oom_before: u64,
}

impl Unit {
    pub(super) fn new(name: String, def: Result<Definition, DefinitionError>) -> Unit {
        let (def, error, state) = match def {
            Ok(d) => (Some(d), String::new(), State::Stopped),
            Err(e) => (None, e.to_string(), State::Broken),
        };
        let want = def.as_ref().is_some_and(|d| d.autostart);
        Unit {
            name,
            def,
            error,
            state: if want { State::Waiting } else { state },
            want,
            pid: None,
            identity: None,
            generation: 0,
            restarts: 0,
            failures_in_row: 0,
            last_exit: String::new(),
            started_at: None,
            first_start_ms: 0,
            first_ready_ms: 0,
            ready: false,
            ever_ready: false,
            ready_deadline: None,
            next_probe: None,
            probe_inflight: false,
            health_failures: 0,
            next_start: None,
            stop_deadline: None,
            killed: false,
            restart_after_stop: false,
            forced_failure: None,
            oom_before: 0,
        }
    }

    pub(super) fn active(&self) -> bool {
        matches!(self.state, State::Starting | State::Running | State::Stopping)
    }

    /// Crashed at least FAILING_AFTER times in a row and has not yet run for its reset
    /// period since the last start: it still counts as failing while it runs, as systemd
    /// shows a unit in auto-restart, so a crash loop never looks healthy between crashes.
    pub(super) fn crash_looping(&self, now: Instant) -> bool {
        let reset = self.def.as_ref().map_or(Duration::ZERO, |d| Duration::from_secs(d.restart.reset_after_s));
        self.failures_in_row >= FAILING_AFTER && self.started_at.is_none_or(|s| now.saturating_duration_since(s) < reset)
    }

    pub(super) fn info(&self, now: Instant) -> ServiceInfo {
        let state = match self.state {
            State::Waiting => "waiting",
            State::Starting | State::Running if self.crash_looping(now) => "failing",
            State::Starting => "starting",
            State::Running => "running",
            State::Backoff if self.failures_in_row >= FAILING_AFTER => "failing",
            State::Backoff => "backoff",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Exited => "exited",
            State::NotInstalled => "not-installed",
            State::Broken => "broken",
        };
        let readiness = match (&self.def, self.state) {
            (None, _) => "none",
            (Some(_), _) if self.health_failures > 0 => "unhealthy",
            (Some(_), _) if self.ready => "ready",
            (Some(d), _) if d.readiness.is_none() && d.health.is_none() => "none",
            _ => "waiting",
        };
        ServiceInfo {
            name: self.name.clone(),
            state: state.into(),
            readiness: readiness.into(),
            pid: self.pid.unwrap_or(0) as u32,
            restarts: self.restarts,
            last_exit: self.last_exit.clone(),
            next_start_ms: match (self.state, self.next_start) {
                (State::Backoff, Some(at)) => at.saturating_duration_since(now).as_millis() as u64,
                _ => 0,
            },
            error: self.error.clone(),
            first_start_ms: self.first_start_ms,
            first_ready_ms: self.first_ready_ms,
        }
    }
}

/// initial, 2×initial, 4×initial ... up to the cap.
pub fn backoff(initial_ms: u64, max_ms: u64, failures_in_row: u32) -> Duration {
    let shift = failures_in_row.saturating_sub(1).min(32);
    Duration::from_millis(initial_ms.saturating_mul(1u64 << shift).min(max_ms))
}

pub fn describe(st: &WaitStatus) -> (String, bool) {
    match st {
        WaitStatus::Exited(_, code) => (format!("exited with status {code}"), *code == 0),
        WaitStatus::Signaled(_, sig, core) => (format!("killed by {sig}{}", if *core { " (core dumped)" } else { "" }), false),
        other => (format!("{other:?}"), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 8: a crash-looping service showed `running ready` between two crashes.
    #[test]
    fn a_crash_looping_service_shows_failing_while_it_runs_until_its_reset_period() {
        let def: Definition = toml::from_str("command = \"/bin/false\"\nrestart = { reset_after_s = 10 }").expect("definition");
        let mut u = Unit::new("loop".into(), Ok(def));
        let t0 = Instant::now();
        u.state = State::Running;
        u.started_at = Some(t0);
        u.failures_in_row = FAILING_AFTER;
        assert_eq!(u.info(t0 + Duration::from_secs(1)).state, "failing", "between two crashes");
        u.state = State::Starting;
        assert_eq!(u.info(t0 + Duration::from_secs(1)).state, "failing");
        u.state = State::Running;
        assert_eq!(u.info(t0 + Duration::from_secs(10)).state, "running", "stable for the reset period");
        u.failures_in_row = FAILING_AFTER - 1;
        assert_eq!(u.info(t0 + Duration::from_secs(1)).state, "running", "a few restarts are not a crash loop");
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let d: Vec<u128> = (1..=7).map(|n| backoff(100, 1600, n).as_millis()).collect();
        assert_eq!(d, [100, 200, 400, 800, 1600, 1600, 1600]);
        assert_eq!(backoff(500, 30_000, 200), Duration::from_secs(30));
    }
}
