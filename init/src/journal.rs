//! Sending to journald without ever blocking PID 1.
//!
//! journald's socket is a datagram socket: when journald stops reading (SIGSTOP, a hung
//! disk), its queue fills and every send(2) blocks. PID 1's own messages and every service
//! line go through here instead: into a bounded queue that a writer thread drains with
//! systemd-journal-logger. When the queue is full the line is dropped and counted
//! ([`Writer::take_dropped`]); the main loop reports the count on the console. A send that
//! fails (journald restarting) is retried for a few seconds by the writer alone.

use log::Level;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::Duration;
use systemd_journal_logger::JournalLog;

/// Lines waiting for journald; beyond this they are dropped and counted.
pub const QUEUE: usize = 4096;
/// How long the writer keeps retrying one line while journald does not take it.
const RETRY_FOR: Duration = Duration::from_secs(5);

/// One journal entry: the sender's identity and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// SYSLOG_IDENTIFIER: the service's name, or "cairn-init".
    pub identifier: String,
    /// UNIT= (and CAIRN_SERVICE=) for a service's line, so `journalctl -u` finds it.
    pub service: Option<String>,
    pub level: Level,
    pub text: String,
}

#[derive(Debug)]
pub struct Writer {
    tx: SyncSender<Entry>,
    dropped: AtomicU64,
}

impl Writer {
    /// The writer PID 1 uses (its thread starts on first use).
    pub fn global() -> &'static Writer {
        static W: OnceLock<Writer> = OnceLock::new();
        W.get_or_init(|| Writer::start(QUEUE, send_with))
    }

    /// A writer whose thread hands each entry to `send` (tests pass a fake).
    pub fn start(capacity: usize, mut send: impl FnMut(&Entry) -> std::io::Result<()> + Send + 'static) -> Writer {
        let (tx, rx) = sync_channel::<Entry>(capacity);
        let spawned = std::thread::Builder::new().name("journal".into()).stack_size(64 * 1024).spawn(move || drain(&rx, &mut send));
        if let Err(e) = spawned {
            // Without the thread nothing is ever received: every line counts as dropped.
            crate::log::console(&format!("WARNING: cannot start the journal writer thread: {e}"));
        }
        Writer { tx, dropped: AtomicU64::new(0) }
    }

    /// Queues an entry; never blocks. False if it was dropped (queue full).
    pub fn send(&self, entry: Entry) -> bool {
        match self.tx.try_send(entry) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Lines dropped since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }
}

fn drain(rx: &Receiver<Entry>, send: &mut dyn FnMut(&Entry) -> std::io::Result<()>) {
    while let Ok(entry) = rx.recv() {
        let mut waited = Duration::ZERO;
        while send(&entry).is_err() && waited < RETRY_FOR {
            std::thread::sleep(Duration::from_millis(100));
            waited += Duration::from_millis(100);
        }
    }
}

/// The real send: one systemd-journal-logger client per identifier (its fields are fixed
/// when it is made). Only the writer thread calls this.
fn send_with(entry: &Entry) -> std::io::Result<()> {
    thread_local! {
        static CLIENTS: std::cell::RefCell<BTreeMap<String, JournalLog>> = const { std::cell::RefCell::new(BTreeMap::new()) };
    }
    CLIENTS.with(|clients| {
        let mut clients = clients.borrow_mut();
        if !clients.contains_key(&entry.identifier) {
            let mut client = JournalLog::empty()?.with_syslog_identifier(entry.identifier.clone());
            if let Some(s) = &entry.service {
                client = client.with_extra_fields([("UNIT", format!("{s}.service")), ("CAIRN_SERVICE", s.clone())]);
            }
            clients.insert(entry.identifier.clone(), client);
        }
        let client = clients.get(&entry.identifier).ok_or(std::io::ErrorKind::NotFound)?;
        let sent = client.journal_send(&log::Record::builder().args(format_args!("{}", entry.text)).level(entry.level).target(&entry.identifier).build());
        if sent.is_err() {
            // journald may have restarted: a new client next time.
            clients.remove(&entry.identifier);
        }
        sent
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    fn entry(n: usize) -> Entry {
        Entry { identifier: "svc".into(), service: Some("svc".into()), level: Level::Info, text: format!("line {n}") }
    }

    /// Issue 8 item 6: journald stops reading (its send blocks forever); the caller, PID 1,
    /// must not block with it. Lines beyond the queue are dropped and counted.
    #[test]
    fn a_journald_that_stops_reading_never_blocks_the_sender() {
        let stuck = Arc::new(Mutex::new(()));
        let hold = stuck.lock().expect("lock");
        let s = stuck.clone();
        let sent = Arc::new(AtomicU64::new(0));
        let n = sent.clone();
        let w = Writer::start(8, move |_| {
            let _wait = s.lock(); // blocks like a send(2) into a full socket queue
            n.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        let t = Instant::now();
        let accepted = (0..1000).filter(|i| w.send(entry(*i))).count();
        assert!(t.elapsed() < Duration::from_secs(10), "the sender blocked");
        // The writer holds one entry in its stuck send; the queue holds 8 more.
        assert!(accepted <= 9, "{accepted} accepted");
        assert_eq!(w.take_dropped(), 1000 - accepted as u64);
        assert_eq!(w.take_dropped(), 0, "the count is taken once");
        drop(hold);
        let deadline = Instant::now() + Duration::from_secs(10);
        while sent.load(Ordering::Relaxed) < accepted as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(sent.load(Ordering::Relaxed), accepted as u64, "what was queued reaches journald once it reads again");
    }
}
