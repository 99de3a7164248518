//! The service supervisor: starts services in dependency order (independent ones in
//! parallel), waits for their readiness, restarts them with backoff, probes their health,
//! stops them in reverse order at shutdown, and answers the control API.
//!
//! It never blocks. `stage2` calls [`Supervisor::tick`] whenever something happened (a
//! signal, a notify datagram, a wake-up from a probe thread or the API) or the deadline from
//! [`Supervisor::next_deadline`] passed, so a start that hangs can always be interrupted.

use crate::control::{Control, ControlError, SystemStatus};

mod gate;
mod handle;
mod notify;
mod probe;
mod unit;
use handle::{Ask, Handle, Request, Snapshot};
pub use handle::Waker;
pub use notify::NOTIFY_SOCKET;
use probe::ProbeResult;
use unit::{ProbeFor, State, Unit};
pub use unit::{backoff, describe};
use crate::logs::LogHub;
use crate::service::definition::{self, Definition, DefinitionError, RestartPolicy, StopMode};
use crate::service::{cgroup, order, spawn};
use crate::eligibility::boots::Why;
use crate::sys::Power;
use log::Level;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The service whose readiness means journald accepts messages.
pub const JOURNALD: &str = "journald";
const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug)]
pub struct Supervisor {
    units: Vec<Unit>,
    tree: Option<cgroup::Tree>,
    hub: Arc<LogHub>,
    waker: Waker,
    last_cap: u32,
    notify: Option<std::os::unix::net::UnixDatagram>,
    probes_tx: mpsc::Sender<ProbeResult>,
    probes_rx: mpsc::Receiver<ProbeResult>,
    requests_rx: mpsc::Receiver<Request>,
    requests_tx: mpsc::Sender<Request>,
    /// Command probes running as our children: pid -> (unit, generation, what, deadline).
    probe_pids: BTreeMap<i32, (usize, u64, ProbeFor, Instant)>,
    shutdown: Option<(Power, Instant)>,
    snapshot: Arc<Mutex<Snapshot>>,
    /// The health gate's check command, if gate.toml names one.
    gate_check: Option<gate::GateCheck>,
}

impl Supervisor {
    /// Loads the definitions from `dirs` and checks them; starts nothing yet.
    pub fn new(dirs: &[&std::path::Path], hub: Arc<LogHub>, waker: Waker, status: SystemStatus) -> Supervisor {
        let loaded = definition::load(dirs, &|c| std::path::Path::new(c).is_file());
        let mut units: Vec<Unit> = Vec::new();
        let mut defs = BTreeMap::new();
        let mut broken = BTreeSet::new();
        for l in loaded {
            // An optional service whose binary is missing is "not installed", not broken.
            let (def, not_installed) = match l.def {
                Err(DefinitionError::MissingBinary(cmd)) => match optional_definition(&l.path) {
                    Some(d) => (Ok(d), true),
                    None => (Err(DefinitionError::MissingBinary(cmd)), false),
                },
                other => (other, false),
            };
            match &def {
                Ok(d) => {
                    defs.insert(l.name.clone(), d.clone());
                }
                Err(e) => {
                    crate::say!("WARNING: service {}: {e}; skipping it, the rest of the node starts", l.name);
                    broken.insert(l.name.clone());
                }
            }
            let mut u = Unit::new(l.name, def);
            if not_installed {
                u.state = State::NotInstalled;
                u.error = format!("not installed: {} does not exist (the operator supplies it)", u.def.as_ref().map_or("", |d| d.command.as_str()));
            }
            units.push(u);
        }
        for (name, err) in order::check(&defs, &broken) {
            crate::say!("WARNING: service {name}: {err}; skipping it, the rest of the node starts");
            if let Some(u) = units.iter_mut().find(|u| u.name == name) {
                u.state = State::Broken;
                u.error = err.to_string();
                u.want = false;
            }
        }
        let tree = cgroup::Tree::default();
        let tree = if std::path::Path::new(cgroup::ROOT).join("cgroup.controllers").exists() {
            for w in tree.setup() {
                crate::say!("WARNING: {w}");
            }
            Some(tree)
        } else {
            crate::say!("WARNING: cgroup2 is not mounted at {}; services run without limits", cgroup::ROOT);
            None
        };
        let notify = notify::bind_notify_socket();
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40);
        let (probes_tx, probes_rx) = mpsc::channel();
        let (requests_tx, requests_rx) = mpsc::channel();
        let snapshot = Arc::new(Mutex::new(Snapshot { services: Vec::new(), status }));
        let s = Supervisor { units, tree, hub, waker, last_cap, notify, probes_tx, probes_rx, requests_rx, requests_tx, probe_pids: BTreeMap::new(), shutdown: None, snapshot, gate_check: None };
        s.publish();
        s
    }

    /// The handle the control API uses.
    pub fn handle(&self) -> Arc<dyn Control> {
        Arc::new(Handle { tx: Mutex::new(self.requests_tx.clone()), waker: self.waker.clone(), snapshot: self.snapshot.clone(), hub: self.hub.clone() })
    }

    pub fn notify_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.notify.as_ref().map(|s| s.as_fd())
    }

    pub fn set_ready(&self) {
        if let Ok(mut s) = self.snapshot.lock() {
            s.status.ready = true;
        }
    }

    pub fn is_ready(&self, name: &str) -> bool {
        self.units.iter().any(|u| u.name == name && u.ready)
    }

    /// Starts the orderly shutdown (idempotent: the first request wins). True if this
    /// request started it.
    pub fn request_shutdown(&mut self, how: Power) -> bool {
        let first = self.shutdown.is_none();
        if first {
            crate::say!("{}: stopping services", if how == Power::Reboot { "rebooting" } else { "powering off" });
            self.shutdown = Some((how, Instant::now()));
            for u in &mut self.units {
                u.want = false;
                if matches!(u.state, State::Waiting | State::Backoff) {
                    u.state = State::Stopped;
                }
            }
        }
        first
    }

    /// Some(how) once the shutdown has stopped every service (or its time is up).
    pub fn shutdown_done(&self) -> Option<Power> {
        let (how, since) = self.shutdown?;
        let bound = Duration::from_secs(self.units.iter().filter_map(|u| u.def.as_ref()).map(|d| d.stop.timeout).sum::<u64>() + 30);
        if self.units.iter().all(|u| !u.active()) || since.elapsed() > bound {
            Some(how)
        } else {
            None
        }
    }

    /// When the loop must call `tick` at the latest.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut at: Vec<Instant> = Vec::new();
        for u in &self.units {
            match u.state {
                State::Backoff => at.extend(u.next_start),
                State::Starting => at.extend(u.ready_deadline.into_iter().chain(u.next_probe)),
                State::Running => at.extend(u.next_probe),
                State::Stopping => at.extend(u.stop_deadline),
                _ => {}
            }
        }
        at.extend(self.probe_pids.values().map(|p| p.3));
        at.extend(self.gate_check.as_ref().and_then(gate::GateCheck::deadline));
        at.into_iter().min()
    }

    /// Does everything that is due. Returns a power request from the control API, if any.
    pub fn tick(&mut self) -> Option<(Power, Why)> {
        let now = Instant::now();
        self.waker.drain();
        self.reap(now);
        self.read_notify(now);
        while let Ok(p) = self.probes_rx.try_recv() {
            self.probe_done(p, now);
        }
        let mut power = None;
        while let Ok(r) = self.requests_rx.try_recv() {
            let answer = self.ask(r.what, now, &mut power);
            let _ = r.reply.send(answer);
        }
        self.timers(now);
        self.start_due(now);
        if self.shutdown.is_some() {
            self.stop_in_order(now);
        }
        self.publish();
        power
    }

    fn publish(&self) {
        let now = Instant::now();
        let infos = self.units.iter().map(|u| u.info(now)).collect();
        if let Ok(mut s) = self.snapshot.lock() {
            s.services = infos;
        }
    }

    fn reap(&mut self, now: Instant) {
        let mut exits = Vec::new();
        crate::process::reap_all(&mut |pid, st| exits.push((pid, st)));
        for (pid, st) in exits {
            if let Some((unit, generation, what, _)) = self.probe_pids.remove(&pid) {
                let result = match st {
                    WaitStatus::Exited(_, 0) => Ok(()),
                    other => Err(describe(&other).0),
                };
                self.probe_done(ProbeResult { service: unit, generation, what, result }, now);
            } else if let Some(check) = self.gate_check.as_mut().filter(|c| c.pid() == Some(pid)) {
                check.ended(if matches!(st, WaitStatus::Exited(_, 0)) { Ok(()) } else { Err(describe(&st).0) }, now);
            } else if let Some(i) = self.units.iter().position(|u| u.pid == Some(pid)) {
                self.exited(i, &st, now);
            }
            // Anything else was an orphan that ended up with PID 1: reaped, nothing to do.
        }
    }

    fn ask(&mut self, what: Ask, now: Instant, power: &mut Option<(Power, Why)>) -> Result<(), ControlError> {
        if self.shutdown.is_some() {
            return Err(ControlError::ShuttingDown);
        }
        let find = |units: &[Unit], n: &str| units.iter().position(|u| u.name == n).ok_or_else(|| ControlError::NoSuchService(n.to_owned()));
        match what {
            Ask::Power(p, why) => {
                *power = Some((p, why));
                Ok(())
            }
            Ask::Start(n) => {
                let i = find(&self.units, &n)?;
                self.check_startable(i)?;
                let u = &mut self.units[i];
                u.want = true;
                u.failures_in_row = 0;
                match u.state {
                    State::Backoff | State::Stopped | State::Exited | State::NotInstalled => u.state = State::Waiting,
                    _ => {}
                }
                self.event(i, Level::Info, "start requested by the operator");
                Ok(())
            }
            Ask::Stop(n) => {
                let i = find(&self.units, &n)?;
                self.units[i].want = false;
                self.event(i, Level::Info, "stop requested by the operator");
                self.stop(i, false, now);
                Ok(())
            }
            Ask::Restart(n) => {
                let i = find(&self.units, &n)?;
                self.check_startable(i)?;
                self.event(i, Level::Info, "restart requested by the operator");
                let u = &mut self.units[i];
                u.want = true;
                u.failures_in_row = 0;
                if u.pid.is_some() {
                    self.stop(i, true, now);
                } else {
                    u.state = State::Waiting;
                }
                Ok(())
            }
        }
    }

    fn check_startable(&mut self, i: usize) -> Result<(), ControlError> {
        let u = &mut self.units[i];
        match (&u.def, u.state) {
            (None, _) | (_, State::Broken) => Err(ControlError::CannotStart { name: u.name.clone(), reason: u.error.clone() }),
            (Some(d), State::NotInstalled) if !std::path::Path::new(&d.command).is_file() => Err(ControlError::CannotStart { name: u.name.clone(), reason: u.error.clone() }),
            _ => {
                u.error.clear();
                Ok(())
            }
        }
    }

    /// Whether every dependency that will run is ready.
    fn deps_ready(&self, i: usize) -> bool {
        let Some(def) = &self.units[i].def else { return false };
        let hard: BTreeSet<&String> = def.requires.iter().collect();
        def.requires.iter().chain(&def.after).all(|dep| {
            let Some(d) = self.units.iter().find(|u| &u.name == dep) else { return !hard.contains(dep) };
            if d.ready {
                return true;
            }
            // An `after` dependency that will not run does not hold anything up.
            !hard.contains(dep) && !d.want && !d.active()
        })
    }

    fn start_due(&mut self, now: Instant) {
        if self.shutdown.is_some() {
            return;
        }
        for i in 0..self.units.len() {
            let u = &self.units[i];
            let due = match u.state {
                State::Waiting => u.want,
                State::Backoff => u.want && u.next_start.is_some_and(|t| t <= now),
                _ => false,
            };
            if due && self.deps_ready(i) {
                self.start(i, now);
            } else if due && u.state == State::Backoff {
                self.units[i].state = State::Waiting;
            }
        }
    }

    fn start(&mut self, i: usize, now: Instant) {
        let Some(def) = self.units[i].def.clone() else { return };
        let name = self.units[i].name.clone();
        if def.optional && !std::path::Path::new(&def.command).is_file() {
            let u = &mut self.units[i];
            u.state = State::NotInstalled;
            u.error = format!("not installed: {} does not exist (the operator supplies it)", def.command);
            return;
        }
        let mut cgroup_procs = None;
        if let Some(tree) = &self.tree {
            self.units[i].oom_before = tree.oom_kills(&name);
            match tree.prepare(&name, &def.limits) {
                Ok(fd) => cgroup_procs = Some(fd),
                Err(e) => {
                    self.start_failed(i, &format!("cannot set up its cgroup: {e}"), now);
                    return;
                }
            }
        }
        let uses_notify = def.readiness.as_ref().is_some_and(|r| r.notify);
        let spawned = spawn::spawn(spawn::Spawn { def: &def, cgroup_procs, notify_socket: uses_notify.then_some(NOTIFY_SOCKET), last_cap: self.last_cap });
        match spawned {
            Err(e) => self.start_failed(i, &e.to_string(), now),
            Ok(started) => {
                self.hub.attach(&name, started.output);
                let u = &mut self.units[i];
                u.pid = Some(started.pid);
                u.identity = Some(started.identity);
                u.generation += 1;
                u.started_at = Some(now);
                if u.first_start_ms == 0 {
                    u.first_start_ms = crate::log::uptime_ms();
                }
                u.ready = false;
                u.health_failures = 0;
                u.killed = false;
                u.forced_failure = None;
                u.probe_inflight = false;
                u.next_probe = Some(now);
                u.state = State::Starting;
                let timeout = def.readiness.as_ref().and_then(|r| r.timeout).map_or(DEFAULT_READY_TIMEOUT, Duration::from_secs);
                u.ready_deadline = Some(now + timeout);
                let msg = format!("started (pid {})", started.pid);
                self.event(i, Level::Info, &msg);
                if def.readiness.is_none() {
                    self.became_ready(i, now);
                }
            }
        }
    }

    fn start_failed(&mut self, i: usize, why: &str, now: Instant) {
        self.event(i, Level::Error, &format!("cannot start: {why}"));
        self.units[i].last_exit = format!("failed to start: {why}");
        self.schedule_restart(i, false, now);
    }

    fn became_ready(&mut self, i: usize, now: Instant) {
        let u = &mut self.units[i];
        u.state = State::Running;
        u.ready = true;
        u.ever_ready = true;
        if u.first_ready_ms == 0 {
            u.first_ready_ms = crate::log::uptime_ms();
        }
        u.ready_deadline = None;
        u.probe_inflight = false;
        u.next_probe = u.def.as_ref().and_then(|d| d.health.as_ref()).map(|h| now + Duration::from_secs(h.interval));
        let has_check = u.def.as_ref().is_some_and(|d| d.readiness.is_some());
        if has_check {
            self.event(i, Level::Info, "ready");
        }
        if self.units[i].name == JOURNALD {
            crate::log::journal_ready();
            self.hub.journal_ready();
        }
    }

    fn exited(&mut self, i: usize, st: &WaitStatus, now: Instant) {
        let (mut how, mut success) = describe(st);
        let name = self.units[i].name.clone();
        if let Some(tree) = &self.tree {
            if tree.oom_kills(&name) > self.units[i].oom_before {
                how.push_str(" (over its memory.max: killed by the kernel's OOM killer)");
                success = false;
            }
            let main_only = self.units[i].def.as_ref().is_some_and(|d| d.stop.mode == StopMode::MainProcess);
            if !main_only {
                // The main process is gone; what it left behind in its cgroup goes too, so a
                // restart starts clean (systemd's KillMode=control-group).
                tree.kill_all(&name);
            }
        }
        if let Some(why) = self.units[i].forced_failure.take() {
            how = format!("{how} after {why}");
            success = false;
        }
        if name == JOURNALD {
            crate::log::journal_gone();
        }
        let u = &mut self.units[i];
        u.pid = None;
        u.ready = false;
        u.generation += 1;
        u.last_exit = how.clone();
        u.stop_deadline = None;
        if u.state == State::Stopping {
            let again = u.restart_after_stop && self.shutdown.is_none();
            u.restart_after_stop = false;
            u.state = if again { State::Waiting } else { State::Stopped };
            self.event(i, Level::Info, &format!("stopped ({how})"));
            return;
        }
        self.event(i, if success { Level::Info } else { Level::Warn }, &how);
        if self.shutdown.is_some() {
            self.units[i].state = State::Stopped;
            return;
        }
        self.schedule_restart(i, success, now);
    }

    fn schedule_restart(&mut self, i: usize, success: bool, now: Instant) {
        let u = &mut self.units[i];
        let Some(def) = &u.def else { return };
        let again = u.want
            && match def.restart.policy {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => !success,
                RestartPolicy::Never => false,
            };
        u.pid = None;
        if !again {
            u.state = State::Exited;
            return;
        }
        let ran = u.started_at.map(|s| now.duration_since(s)).unwrap_or_default();
        if ran >= Duration::from_secs(def.restart.reset_after_s) {
            u.failures_in_row = 0;
        }
        u.failures_in_row += 1;
        u.restarts += 1;
        let delay = backoff(def.restart.initial_delay_ms, def.restart.max_delay_ms, u.failures_in_row);
        u.next_start = Some(now + delay);
        u.state = State::Backoff;
        let (n, ms) = (u.restarts, delay.as_millis());
        // The journal gets every restart; the console only the first ones and then every
        // hundredth, so a crash loop cannot flood a slow serial line.
        let msg = format!("restart {n} in {ms} ms");
        if n <= 10 || n.is_multiple_of(100) {
            crate::log::console(&format!("service {}: {msg}", self.units[i].name));
        }
        self.hub.event(&self.units[i].name, Level::Info, &msg);
    }

    /// Asks a service to stop: its stop signal now, SIGKILL after its timeout.
    fn stop(&mut self, i: usize, restart: bool, now: Instant) {
        let name = self.units[i].name.clone();
        let u = &mut self.units[i];
        let Some(def) = &u.def else { return };
        match u.pid {
            None => {
                if !restart && !matches!(u.state, State::Broken | State::NotInstalled) {
                    u.state = State::Stopped;
                }
            }
            Some(pid) => {
                let sig = def.stop.signal;
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
                if def.stop.mode == StopMode::Cgroup {
                    if let Some(tree) = &self.tree {
                        tree.signal_all(&name, sig);
                    }
                }
                u.state = State::Stopping;
                u.restart_after_stop = restart;
                u.stop_deadline = Some(now + Duration::from_secs(def.stop.timeout));
            }
        }
    }

    fn kill(&mut self, i: usize) {
        let u = &mut self.units[i];
        u.killed = true;
        let main_only = u.def.as_ref().is_some_and(|d| d.stop.mode == StopMode::MainProcess);
        if let Some(pid) = u.pid {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
        if !main_only {
            if let Some(tree) = &self.tree {
                tree.kill_all(&u.name);
            }
        }
    }

    /// Stops, in reverse dependency order, every service nobody running depends on.
    fn stop_in_order(&mut self, now: Instant) {
        for i in 0..self.units.len() {
            if !matches!(self.units[i].state, State::Starting | State::Running) {
                continue;
            }
            let name = self.units[i].name.clone();
            let depended_on = self.units.iter().any(|o| o.active() && o.def.as_ref().is_some_and(|d| d.requires.contains(&name) || d.after.contains(&name)));
            if !depended_on {
                self.stop(i, false, now);
            }
        }
    }

    fn timers(&mut self, now: Instant) {
        // Command probes that overran.
        let late: Vec<i32> = self.probe_pids.iter().filter(|(_, p)| p.3 <= now).map(|(pid, _)| *pid).collect();
        let late_check = self.gate_check.as_mut().and_then(|c| c.overran(now));
        for pid in late.into_iter().chain(late_check) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
        for i in 0..self.units.len() {
            let u = &self.units[i];
            match u.state {
                State::Stopping if !u.killed && u.stop_deadline.is_some_and(|t| t <= now) => {
                    let secs = u.def.as_ref().map_or(0, |d| d.stop.timeout);
                    self.event(i, Level::Warn, &format!("did not stop within {secs} s: SIGKILL"));
                    self.kill(i);
                }
                State::Starting if u.ready_deadline.is_some_and(|t| t <= now) => {
                    self.units[i].forced_failure = Some("it did not become ready in time".into());
                    self.event(i, Level::Warn, "did not become ready in time: killing it");
                    self.units[i].ready_deadline = None;
                    self.kill(i);
                }
                State::Starting | State::Running if !u.probe_inflight && u.next_probe.is_some_and(|t| t <= now) => {
                    let what = if u.state == State::Starting { ProbeFor::Readiness } else { ProbeFor::Health };
                    self.probe(i, what, now);
                }
                _ => {}
            }
        }
    }

    /// A message about a service: the journal (UNIT=), its recent lines and the console.
    fn event(&self, i: usize, level: Level, msg: &str) {
        let name = &self.units[i].name;
        let quiet = self.units[i].restarts > 10 && !self.units[i].restarts.is_multiple_of(100);
        if !quiet || level != Level::Info {
            crate::log::console(&format!("service {name}: {msg}"));
        }
        self.hub.event(name, level, msg);
    }
}

/// Re-reads a definition ignoring the missing binary, when it is marked optional.
fn optional_definition(path: &std::path::Path) -> Option<Definition> {
    let text = std::fs::read_to_string(path).ok()?;
    let def: Definition = toml::from_str(&text).ok()?;
    (def.optional && def.validate().is_ok()).then_some(def)
}
