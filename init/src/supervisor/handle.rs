//! The supervisor's side of the control API: the [`Handle`] the API thread calls, the
//! snapshot it reads, the requests it sends into the supervisor's loop, and the [`Waker`]
//! that wakes that loop.

use crate::control::{Control, ControlError, ServiceInfo, SystemStatus};
use crate::logs::LogHub;
use crate::eligibility::boots::Why;
use crate::sys::Power;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A change the control API asks for, with where to send the answer.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) what: Ask,
    pub(super) reply: mpsc::SyncSender<Result<(), ControlError>>,
}

#[derive(Debug)]
pub(super) enum Ask {
    Start(String),
    Stop(String),
    Restart(String),
    Power(Power, Why),
}

/// What the API thread reads without asking the supervisor.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    pub(super) services: Vec<ServiceInfo>,
    pub(super) status: SystemStatus,
}

/// Wakes the stage 2 loop from another thread.
#[derive(Debug, Clone)]
pub struct Waker(Arc<OwnedFd>);

impl Waker {
    pub fn new() -> std::io::Result<Waker> {
        use nix::sys::eventfd::{EfdFlags, EventFd};
        let fd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(std::io::Error::from)?;
        Ok(Waker(Arc::new(fd.into())))
    }
    pub fn wake(&self) {
        let _ = rustix::io::write(self.0.as_fd(), &1u64.to_ne_bytes());
    }
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
    pub fn drain(&self) {
        let mut b = [0u8; 8];
        let _ = rustix::io::read(self.0.as_fd(), &mut b);
    }
}

/// The control API's view of the supervisor: reads come from the snapshot, changes go to
/// the supervisor's loop and wait for its answer.
#[derive(Debug)]
pub(super) struct Handle {
    pub(super) tx: Mutex<mpsc::Sender<Request>>,
    pub(super) waker: Waker,
    pub(super) snapshot: Arc<Mutex<Snapshot>>,
    pub(super) hub: Arc<LogHub>,
}

impl Handle {
    fn ask(&self, what: Ask) -> Result<(), ControlError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let sent = self.tx.lock().map(|tx| tx.send(Request { what, reply }).is_ok()).unwrap_or(false);
        if !sent {
            return Err(ControlError::ShuttingDown);
        }
        self.waker.wake();
        answer.recv_timeout(Duration::from_secs(30)).unwrap_or(Err(ControlError::ShuttingDown))
    }
}

impl Control for Handle {
    fn status(&self) -> SystemStatus {
        let mut s = self.snapshot.lock().map(|s| s.status.clone()).unwrap_or_default();
        s.uptime_s = crate::log::uptime_ms() / 1000;
        s
    }
    fn services(&self) -> Vec<ServiceInfo> {
        self.snapshot.lock().map(|s| s.services.clone()).unwrap_or_default()
    }
    fn logs(&self, name: &str, lines: u32) -> Result<Vec<String>, ControlError> {
        if !self.services().iter().any(|s| s.name == name) {
            return Err(ControlError::NoSuchService(name.to_owned()));
        }
        Ok(self.hub.recent(name, lines as usize))
    }
    fn start(&self, name: &str) -> Result<(), ControlError> {
        self.ask(Ask::Start(name.to_owned()))
    }
    fn stop(&self, name: &str) -> Result<(), ControlError> {
        self.ask(Ask::Stop(name.to_owned()))
    }
    fn restart(&self, name: &str) -> Result<(), ControlError> {
        self.ask(Ask::Restart(name.to_owned()))
    }
    fn reboot(&self, why: Why) -> Result<(), ControlError> {
        self.ask(Ask::Power(Power::Reboot, why))
    }
    fn poweroff(&self) -> Result<(), ControlError> {
        self.ask(Ask::Power(Power::PowerOff, Why::Operator))
    }
}
