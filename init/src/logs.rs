//! Service output: every service's stdout and stderr go into one pipe whose read end PID 1
//! keeps. A log thread reads them all, keeps the last lines of each service in memory (for
//! `cairnctl logs`), and forwards every line to journald with `UNIT=NAME.service` and
//! `SYSLOG_IDENTIFIER=NAME`, so `journalctl -u NAME` finds it (journalctl matches `UNIT=`
//! on messages from the service manager's cgroup, /init.scope: see `cgroup::Tree::setup`).
//!
//! Nothing is lost before journald runs: lines wait in a bounded queue and are replayed
//! once the supervisor says journald is ready ([`LogHub::journal_ready`]). After that they
//! go through `journal.rs`, whose bounded queue means a journald that stops reading costs
//! lines (counted), never a blocked log thread holding the lock PID 1's loop needs.
//!
//! The thread must never die: if it stopped reading, every service's pipe would fill and
//! every service would block in write(2) while PID 1's main loop, and so the watchdog, kept
//! turning. Each turn runs under `catch_unwind`, the pipes live in the hub (not on the
//! thread's stack, so a panic does not close them), and [`LogHub::check`], called from the
//! main loop, restarts a thread that ended anyway.

use log::Level;
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

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
    new_fds: Vec<(String, OwnedFd)>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("services", &self.rings.len()).field("pending", &self.pending.len()).field("journal_up", &self.journal_up).finish()
    }
}

/// One service's output pipe and the bytes of a line not yet ended.
#[derive(Debug)]
struct Source {
    service: String,
    fd: OwnedFd,
    partial: Vec<u8>,
}

/// Shared between the supervisor (attaches pipes, records events), the log thread and the
/// control API (reads recent lines).
#[derive(Debug)]
pub struct LogHub {
    inner: Mutex<Inner>,
    /// Only the log thread locks this; it outlives a panicking turn so no pipe is closed.
    sources: Mutex<Vec<Source>>,
    wake: OwnedFd,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Turns that panicked, and threads restarted (both reported by [`LogHub::check`]).
    panics: AtomicU64,
    restarts: AtomicU64,
}

/// Cuts `text` to at most `max` bytes without splitting a character (String::truncate
/// panics off a char boundary, and a service's output is any UTF-8 it likes).
pub fn truncate_on_char_boundary(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

impl LogHub {
    /// Creates the hub and starts its thread.
    pub fn start() -> std::io::Result<Arc<LogHub>> {
        let wake = nix::sys::eventfd::EventFd::from_value_and_flags(0, nix::sys::eventfd::EfdFlags::EFD_CLOEXEC | nix::sys::eventfd::EfdFlags::EFD_NONBLOCK)
            .map_err(std::io::Error::from)?;
        let hub = Arc::new(LogHub {
            inner: Mutex::new(Inner::default()),
            sources: Mutex::new(Vec::new()),
            wake: wake.into(),
            thread: Mutex::new(None),
            panics: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
        });
        hub.spawn_thread()?;
        Ok(hub)
    }

    fn spawn_thread(self: &Arc<Self>) -> std::io::Result<()> {
        let h = self.clone();
        let handle = std::thread::Builder::new().name("logs".into()).stack_size(64 * 1024).spawn(move || h.run())?;
        *self.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(())
    }

    /// Called from PID 1's main loop: reports panicked turns and restarts the thread if it
    /// ended. Returns false only if the thread is gone and cannot be started again, which
    /// the caller must treat as fatal (the services would block on their full pipes).
    pub fn check(self: &Arc<Self>) -> bool {
        let panics = self.panics.swap(0, Ordering::Relaxed);
        if panics > 0 {
            crate::say!("WARNING: the service log thread hit a bug {panics} time(s); the lines it was handling may be lost, the pipes stay open");
        }
        let finished = self.thread.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_none_or(|t| t.is_finished());
        if !finished {
            return true;
        }
        self.restarts.fetch_add(1, Ordering::Relaxed);
        crate::say!("WARNING: the service log thread ended; starting it again");
        self.spawn_thread().is_ok()
    }

    /// How often [`LogHub::check`] had to start the thread again.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
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
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.turn(&mut buf)));
            if turn.is_err() {
                self.panics.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One poll over the wake-up fd and every pipe, and the lines that came in.
    fn turn(&self, buf: &mut [u8]) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let new: Vec<(String, OwnedFd)> = std::mem::take(&mut self.lock().new_fds);
        sources.extend(new.into_iter().map(|(service, fd)| Source { service, fd, partial: Vec::new() }));
        let mut polls = vec![nix::poll::PollFd::new(self.wake.as_fd(), nix::poll::PollFlags::POLLIN)];
        polls.extend(sources.iter().map(|s| nix::poll::PollFd::new(s.fd.as_fd(), nix::poll::PollFlags::POLLIN)));
        if nix::poll::poll(&mut polls, nix::poll::PollTimeout::NONE).is_err() {
            drop(polls);
            drop(sources);
            std::thread::sleep(std::time::Duration::from_millis(10));
            return;
        }
        let ready: Vec<bool> = polls.iter().map(|p| p.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(polls);
        if ready[0] {
            let mut b = [0u8; 8];
            let _ = rustix::io::read(self.wake.as_fd(), &mut b);
        }
        let mut closed = Vec::new();
        for (i, src) in sources.iter_mut().enumerate() {
            if !ready[i + 1] {
                continue;
            }
            match rustix::io::read(src.fd.as_fd(), &mut *buf) {
                Ok(0) | Err(_) => {
                    if !src.partial.is_empty() {
                        let line = std::mem::take(&mut src.partial);
                        self.push_line(&src.service, &line);
                    }
                    closed.push(i);
                }
                Ok(n) => {
                    src.partial.extend_from_slice(&buf[..n]);
                    let mut lines = Vec::new();
                    while let Some(pos) = src.partial.iter().position(|b| *b == b'\n') {
                        let rest = src.partial.split_off(pos + 1);
                        let mut line = std::mem::replace(&mut src.partial, rest);
                        line.pop();
                        lines.push(line);
                    }
                    if src.partial.len() > MAX_LINE {
                        lines.push(std::mem::take(&mut src.partial));
                    }
                    for l in lines {
                        self.push_line(&src.service, &l);
                    }
                }
            }
        }
        for i in closed.into_iter().rev() {
            sources.remove(i);
        }
    }

    fn push_line(&self, service: &str, bytes: &[u8]) {
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        truncate_on_char_boundary(&mut text, MAX_LINE);
        self.lock().push(Line { service: service.to_owned(), level: Level::Info, text });
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

    /// To journald through the journal writer: never blocks; a full queue drops the line
    /// and counts it (`journal::Writer::take_dropped`).
    fn send(&mut self, line: &Line) {
        crate::journal::Writer::global().send(crate::journal::Entry {
            identifier: line.service.clone(),
            service: Some(line.service.clone()),
            level: line.level,
            text: line.text.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn truncation_never_splits_a_character() {
        let mut s = "é".repeat(10); // 20 bytes, every char 2 bytes
        truncate_on_char_boundary(&mut s, 7);
        assert_eq!(s, "ééé");
        let mut s = "ab€".to_owned(); // € is 3 bytes: 2..5
        truncate_on_char_boundary(&mut s, 4);
        assert_eq!(s, "ab");
        let mut s = "short".to_owned();
        truncate_on_char_boundary(&mut s, 100);
        assert_eq!(s, "short");
    }

    /// Issue 8 item 5: a 20 KiB line of two-byte characters used to panic the log thread at
    /// `String::truncate`, after which nothing read the pipes. The line after them must
    /// still arrive, through the same thread.
    #[test]
    fn long_multibyte_lines_do_not_stop_the_log_thread() {
        let hub = LogHub::start().expect("log thread");
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        hub.attach("wide", read);
        let writer = std::thread::spawn(move || {
            let mut f = std::fs::File::from(write);
            // 10 lines, each 20 KiB of 'é' (so MAX_LINE falls inside a character), then one
            // more line: 200 KiB, more than a pipe holds, so the writer needs a live reader.
            let line = format!("x{}\n", "é".repeat(10 * 1024));
            for _ in 0..10 {
                std::io::Write::write_all(&mut f, line.as_bytes()).expect("write");
            }
            std::io::Write::write_all(&mut f, b"still here\n").expect("write");
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while !hub.recent("wide", RING_LINES).iter().any(|l| l == "still here") {
            assert!(Instant::now() < deadline, "the line after the long ones never arrived: the log thread stopped reading");
            std::thread::sleep(Duration::from_millis(20));
        }
        writer.join().expect("writer");
        let lines = hub.recent("wide", RING_LINES);
        assert!(lines.len() >= 11, "{} lines", lines.len());
        assert!(lines.iter().all(|l| l.len() <= MAX_LINE), "a line longer than {MAX_LINE} bytes was kept");
        assert!(hub.check(), "the log thread is not running");
        assert_eq!(hub.restarts(), 0);
        assert_eq!(hub.panics.load(Ordering::Relaxed), 0);
    }
}
