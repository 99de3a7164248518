//! Service output: every service's stdout and stderr go into one pipe whose read end PID 1
//! keeps. A log thread reads them all, keeps the last lines of each service in memory (for
//! `cairnctl logs`), and forwards every line to journald with `UNIT=NAME.service` and
//! `SYSLOG_IDENTIFIER=NAME`, so `journalctl -u NAME` finds it (journalctl matches `UNIT=`
//! on messages from the service manager's cgroup, /init.scope: see `cgroup::Tree::setup`).
//!
//! Nothing is lost before journald runs: lines wait in a bounded queue and are replayed
//! once the supervisor says journald is ready ([`LogHub::journal_ready`]).

use log::Level;
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use systemd_journal_logger::JournalLog;

/// Lines kept per service for `cairnctl logs`.
pub const RING_LINES: usize = 200;
/// Lines held back while journald is not up yet (all services together).
pub const PENDING_LINES: usize = 20_000;
/// A longer line is cut (journald's own default line maximum is 48 KiB).
const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone)]
struct Line {
    service: String,
    level: Level,
    text: String,
}

#[derive(Default)]
struct Inner {
    rings: BTreeMap<String, VecDeque<String>>,
    pending: VecDeque<Line>,
    dropped: u64,
    journal_up: bool,
    /// One journal client per service (its extra fields carry the service's identity).
    clients: BTreeMap<String, JournalLog>,
    new_fds: Vec<(String, OwnedFd)>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("services", &self.rings.len()).field("pending", &self.pending.len()).field("journal_up", &self.journal_up).finish()
    }
}

/// Shared between the supervisor (attaches pipes, records events), the log thread and the
/// control API (reads recent lines).
#[derive(Debug)]
pub struct LogHub {
    inner: Mutex<Inner>,
    wake: OwnedFd,
}

impl LogHub {
    /// Creates the hub and starts its thread.
    pub fn start() -> std::io::Result<Arc<LogHub>> {
        let wake = nix::sys::eventfd::EventFd::from_value_and_flags(0, nix::sys::eventfd::EfdFlags::EFD_CLOEXEC | nix::sys::eventfd::EfdFlags::EFD_NONBLOCK)
            .map_err(std::io::Error::from)?;
        let hub = Arc::new(LogHub { inner: Mutex::new(Inner::default()), wake: wake.into() });
        let h = hub.clone();
        std::thread::Builder::new().name("logs".into()).stack_size(64 * 1024).spawn(move || h.run())?;
        Ok(hub)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update; the data is still
        // lines of text, so keep going rather than lose logging in PID 1.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn poke(&self) {
        let _ = rustix::io::write(self.wake.as_fd(), &1u64.to_ne_bytes());
    }

    /// Takes the read end of a service's output pipe.
    pub fn attach(&self, service: &str, fd: OwnedFd) {
        self.lock().new_fds.push((service.to_owned(), fd));
        self.poke();
    }

    /// A message from PID 1 about a service (started, exited, restarting ...).
    pub fn event(&self, service: &str, level: Level, text: &str) {
        self.lock().push(Line { service: service.to_owned(), level, text: text.to_owned() });
    }

    /// The last `n` lines of a service, oldest first.
    pub fn recent(&self, service: &str, n: usize) -> Vec<String> {
        let inner = self.lock();
        let Some(ring) = inner.rings.get(service) else { return Vec::new() };
        ring.iter().skip(ring.len().saturating_sub(n)).cloned().collect()
    }

    /// journald accepts messages now: replay what waited.
    pub fn journal_ready(&self) {
        let mut inner = self.lock();
        inner.journal_up = true;
        let pending: Vec<Line> = inner.pending.drain(..).collect();
        let dropped = std::mem::take(&mut inner.dropped);
        if dropped > 0 {
            inner.send(&Line { service: "cairn-init".into(), level: Level::Warn, text: format!("{dropped} service log lines were dropped before journald started") });
        }
        for l in &pending {
            inner.send(l);
        }
    }

    fn run(self: Arc<Self>) {
        let mut fds: Vec<(String, OwnedFd, Vec<u8>)> = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let new: Vec<(String, OwnedFd)> = std::mem::take(&mut self.lock().new_fds);
            fds.extend(new.into_iter().map(|(s, f)| (s, f, Vec::new())));
            let mut polls = vec![nix::poll::PollFd::new(self.wake.as_fd(), nix::poll::PollFlags::POLLIN)];
            polls.extend(fds.iter().map(|(_, f, _)| nix::poll::PollFd::new(f.as_fd(), nix::poll::PollFlags::POLLIN)));
            if nix::poll::poll(&mut polls, nix::poll::PollTimeout::NONE).is_err() {
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            let ready: Vec<bool> = polls.iter().map(|p| p.revents().is_some_and(|r| !r.is_empty())).collect();
            drop(polls);
            if ready[0] {
                let mut b = [0u8; 8];
                let _ = rustix::io::read(self.wake.as_fd(), &mut b);
            }
            let mut closed = Vec::new();
            for (i, (service, fd, partial)) in fds.iter_mut().enumerate() {
                if !ready[i + 1] {
                    continue;
                }
                match rustix::io::read(fd.as_fd(), &mut buf) {
                    Ok(0) | Err(_) => {
                        if !partial.is_empty() {
                            let text = String::from_utf8_lossy(partial).into_owned();
                            partial.clear();
                            self.lock().push(Line { service: service.clone(), level: Level::Info, text });
                        }
                        closed.push(i);
                    }
                    Ok(n) => {
                        partial.extend_from_slice(&buf[..n]);
                        let mut lines = Vec::new();
                        while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
                            let rest = partial.split_off(pos + 1);
                            let mut line = std::mem::replace(partial, rest);
                            line.pop();
                            lines.push(line);
                        }
                        if partial.len() > MAX_LINE {
                            lines.push(std::mem::take(partial));
                        }
                        let mut inner = self.lock();
                        for l in lines {
                            let mut text = String::from_utf8_lossy(&l).into_owned();
                            text.truncate(MAX_LINE);
                            inner.push(Line { service: service.clone(), level: Level::Info, text });
                        }
                    }
                }
            }
            for i in closed.into_iter().rev() {
                fds.remove(i);
            }
        }
    }
}

impl Inner {
    fn push(&mut self, line: Line) {
        let ring = self.rings.entry(line.service.clone()).or_default();
        if ring.len() == RING_LINES {
            ring.pop_front();
        }
        ring.push_back(line.text.clone());
        if self.journal_up {
            self.send(&line);
        } else if self.pending.len() < PENDING_LINES {
            self.pending.push_back(line);
        } else {
            self.dropped += 1;
        }
    }

    fn send(&mut self, line: &Line) {
        if !self.clients.contains_key(&line.service) {
            let Ok(client) = JournalLog::empty() else { return };
            let client = client
                .with_syslog_identifier(line.service.clone())
                .with_extra_fields([("UNIT", format!("{}.service", line.service)), ("CAIRN_SERVICE", line.service.clone())]);
            self.clients.insert(line.service.clone(), client);
        }
        if let Some(c) = self.clients.get(&line.service) {
            let sent = c.journal_send(&log::Record::builder().args(format_args!("{}", line.text)).level(line.level).target(&line.service).build());
            if sent.is_err() {
                // journald went away (restarting): hold the line until it is back.
                self.journal_up = false;
                self.clients.clear();
                if self.pending.len() < PENDING_LINES {
                    self.pending.push_back(line.clone());
                }
            }
        }
    }
}
