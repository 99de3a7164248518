//! sd_notify: services with `readiness = { notify = true }` send `READY=1` to one datagram
//! socket; SO_PASSCRED names the sender, and its cgroup names the service.

use super::unit::State;
use super::Supervisor;
use crate::service::cgroup;
use std::time::Instant;

/// Where services with `readiness = { notify = true }` send `READY=1`.
pub const NOTIFY_SOCKET: &str = "/run/cairn/notify";

impl Supervisor {
    pub(super) fn read_notify(&mut self, now: Instant) {
        let Some(sock) = &self.notify else { return };
        let mut ready_pids = Vec::new();
        loop {
            let mut buf = [0u8; 4096];
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
            let msg = match nix::sys::socket::recvmsg::<()>(std::os::fd::AsRawFd::as_raw_fd(sock), &mut iov, Some(&mut cmsg), nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
                Ok(m) => m,
                Err(_) => break,
            };
            let pid = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|m| match m {
                    nix::sys::socket::ControlMessageOwned::ScmCredentials(cred) => Some(cred.pid()),
                    _ => None,
                })
            });
            let n = msg.bytes;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if let Some(pid) = pid {
                if text.lines().any(|l| l == "READY=1") {
                    ready_pids.push(pid);
                }
            }
        }
        for pid in ready_pids {
            // The sender is the main process or one of its children: find it by cgroup.
            let by_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok().and_then(|c| cgroup::service_of(&c).map(str::to_owned));
            let i = self.units.iter().position(|u| u.pid == Some(pid) || by_cgroup.as_deref() == Some(u.name.as_str()));
            if let Some(i) = i {
                let notify = self.units[i].def.as_ref().and_then(|d| d.readiness.as_ref()).is_some_and(|r| r.notify);
                if notify && self.units[i].state == State::Starting {
                    self.became_ready(i, now);
                }
            }
        }
    }
}

pub(super) fn bind_notify_socket() -> Option<std::os::unix::net::UnixDatagram> {
    let _ = std::fs::create_dir_all("/run/cairn");
    let _ = std::fs::remove_file(NOTIFY_SOCKET);
    let sock = match std::os::unix::net::UnixDatagram::bind(NOTIFY_SOCKET) {
        Ok(s) => s,
        Err(e) => {
            crate::say!("WARNING: cannot bind {NOTIFY_SOCKET}: {e}; notify readiness will time out");
            return None;
        }
    };
    let _ = sock.set_nonblocking(true);
    // SO_PASSCRED: every datagram carries the sender's pid, which names the service. Any
    // user may send (services run as their own users); the pid cannot be forged.
    let _ = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::PassCred, &true);
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(NOTIFY_SOCKET, std::fs::Permissions::from_mode(0o777));
    Some(sock)
}
