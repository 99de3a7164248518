//! Readiness and health probes: a file check inline, a command as the service runs it (its
//! user, sandbox and cgroup), TCP and HTTP on a short-lived thread; each result comes back
//! tagged with the unit's start generation, so a late answer about an earlier run is ignored.

use super::unit::{ProbeFor, State};
use super::Supervisor;
use crate::service::definition::CheckKind;
use crate::service::{check, spawn};
use log::Level;
use std::time::{Duration, Instant};

/// How often a readiness probe that failed is tried again.
const PROBE_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub(super) struct ProbeResult {
    pub(super) service: usize,
    pub(super) generation: u64,
    pub(super) what: ProbeFor,
    pub(super) result: Result<(), String>,
}

impl Supervisor {
    pub(super) fn probe(&mut self, i: usize, what: ProbeFor, now: Instant) {
        let u = &mut self.units[i];
        let Some(def) = &u.def else { return };
        let (kind, timeout) = match what {
            ProbeFor::Readiness => match &def.readiness {
                Some(r) => (r.kind(), r.timeout.map_or(Duration::from_secs(5), |t| Duration::from_secs(t).min(Duration::from_secs(5)))),
                None => return,
            },
            ProbeFor::Health => match &def.health {
                Some(h) => (h.check.kind(), Duration::from_secs(h.check.timeout.unwrap_or(10))),
                None => return,
            },
        };
        let Ok(kind) = kind else { return };
        let (generation, service) = (u.generation, i);
        u.next_probe = None;
        match kind {
            CheckKind::Notify => {}
            CheckKind::File(path) => {
                // Cheap enough to do right here.
                let result = check::file(&path);
                self.probe_done(ProbeResult { service, generation, what, result }, now);
            }
            CheckKind::Command(argv) => {
                u.probe_inflight = true;
                // As the service runs: its user, sandbox and cgroup (see spawn_probe).
                let procs = match &self.tree {
                    Some(tree) => tree.procs(&u.name).map(Some).map_err(|e| e.to_string()),
                    None => Ok(None),
                };
                let identity = u.identity.as_ref().ok_or_else(|| "the service has no current run to probe".to_owned());
                let spawned = procs.and_then(|procs| spawn::spawn_probe(def, identity?, &argv, procs, self.last_cap).map_err(|e| e.to_string()));
                match spawned {
                    Ok(pid) => {
                        self.probe_pids.insert(pid, (i, generation, what, now + timeout));
                    }
                    Err(e) => self.probe_done(ProbeResult { service, generation, what, result: Err(e) }, now),
                }
            }
            CheckKind::Tcp(addr) | CheckKind::Http(addr) => {
                u.probe_inflight = true;
                let http = addr.starts_with("http://");
                let tx = self.probes_tx.clone();
                let waker = self.waker.clone();
                let spawned = std::thread::Builder::new().name("probe".into()).stack_size(64 * 1024).spawn(move || {
                    let result = if http { check::http(&addr, timeout) } else { check::tcp(&addr, timeout) };
                    let _ = tx.send(ProbeResult { service, generation, what, result });
                    waker.wake();
                });
                if let Err(e) = spawned {
                    self.probe_done(ProbeResult { service, generation, what, result: Err(format!("cannot start a probe thread: {e}")) }, now);
                }
            }
        }
    }

    pub(super) fn probe_done(&mut self, p: ProbeResult, now: Instant) {
        let Some(u) = self.units.get_mut(p.service) else { return };
        if u.generation != p.generation {
            return;
        }
        u.probe_inflight = false;
        match (p.what, p.result) {
            (ProbeFor::Readiness, Ok(())) if u.state == State::Starting => self.became_ready(p.service, now),
            (ProbeFor::Readiness, _) => u.next_probe = Some(now + PROBE_EVERY),
            (ProbeFor::Health, result) => {
                let Some(h) = u.def.as_ref().and_then(|d| d.health.clone()) else { return };
                u.next_probe = Some(now + Duration::from_secs(h.interval));
                match result {
                    Ok(()) => u.health_failures = 0,
                    Err(e) => {
                        u.health_failures += 1;
                        let n = u.health_failures;
                        self.event(p.service, Level::Warn, &format!("health check failed ({n}/{}): {e}", h.failures));
                        if n >= h.failures && self.units[p.service].state == State::Running {
                            self.units[p.service].forced_failure = Some(format!("{n} failed health checks"));
                            self.event(p.service, Level::Warn, "unhealthy: killing it; its restart policy decides what next");
                            self.kill(p.service);
                        }
                    }
                }
            }
        }
    }
}
