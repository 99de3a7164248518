//! The control API: [`Control`] served on the D-Bus system bus with zbus, as
//! `org.cairn.Init1` at `/org/cairn/Init1`, interface `org.cairn.Init1.Manager`.
//! Standard tools reach it (`busctl introspect org.cairn.Init1 /org/cairn/Init1`).
//!
//! Reads (Status, ListServices, Logs) are open to every caller. Changes (StartService,
//! StopService, RestartService, Reboot, PowerOff) are refused with
//! `org.cairn.Init1.Error.AccessDenied` unless the caller is root or in the operator group;
//! the bus tells us who the caller is (GetConnectionUnixUser / ...ProcessID), so it cannot
//! be forged.

use crate::control::{Control, ControlError, ServiceInfo, SystemStatus, BUS_NAME, OBJECT_PATH};
use std::sync::Arc;
use zbus::message::Header;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot serve {BUS_NAME} on D-Bus: {0} (is dbus-daemon running, and does /etc/dbus-1/system.d/org.cairn.Init1.conf allow root to own the name?)")]
    Bus(#[from] zbus::Error),
}

/// The errors callers see, as D-Bus error names under `org.cairn.Init1.Error`.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.cairn.Init1.Error")]
pub enum Fault {
    #[zbus(error)]
    ZBus(zbus::Error),
    AccessDenied(String),
    NoSuchService(String),
    CannotStart(String),
    ShuttingDown(String),
}

impl From<ControlError> for Fault {
    fn from(e: ControlError) -> Fault {
        let msg = e.to_string();
        match e {
            ControlError::NoSuchService(_) => Fault::NoSuchService(msg),
            ControlError::CannotStart { .. } => Fault::CannotStart(msg),
            ControlError::ShuttingDown => Fault::ShuttingDown(msg),
        }
    }
}

/// Keeps the bus connection (and so the served object) alive.
#[derive(Debug)]
pub struct ApiHandle {
    _connection: zbus::blocking::Connection,
}

struct Manager {
    control: Arc<dyn Control>,
    operator_gid: Option<u32>,
}

/// The gids a process has (primary and supplementary), from /proc/PID/status.
fn gids_of(pid: u32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mut out = Vec::new();
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("Gid:") {
            out.extend(rest.split_whitespace().take(2).filter_map(|g| g.parse::<u32>().ok()));
        }
        if let Some(rest) = line.strip_prefix("Groups:") {
            out.extend(rest.split_whitespace().filter_map(|g| g.parse::<u32>().ok()));
        }
    }
    out
}

impl Manager {
    /// Root, or a member of the operator group, may change things.
    async fn authorize(&self, header: &Header<'_>, conn: &zbus::Connection, what: &str) -> Result<(), Fault> {
        let denied = || Fault::AccessDenied(format!("only root or members of the operator group may {what}"));
        let Some(sender) = header.sender() else { return Err(denied()) };
        let dbus = zbus::fdo::DBusProxy::new(conn).await.map_err(Fault::ZBus)?;
        let name = zbus::names::BusName::from(sender.to_owned());
        let uid = dbus.get_connection_unix_user(name.clone()).await.map_err(|e| Fault::ZBus(e.into()))?;
        if uid == 0 {
            return Ok(());
        }
        if let Some(gid) = self.operator_gid {
            let pid = dbus.get_connection_unix_process_id(name).await.map_err(|e| Fault::ZBus(e.into()))?;
            if gids_of(pid).contains(&gid) {
                return Ok(());
            }
        }
        Err(denied())
    }
}

#[zbus::interface(name = "org.cairn.Init1.Manager")]
impl Manager {
    /// Slot, version, boot id, uptime, root hash, and whether the node is ready.
    async fn status(&self) -> SystemStatus {
        self.control.status()
    }

    /// Every service: state, readiness, pid, restarts, last exit, next start, error.
    async fn list_services(&self) -> Vec<ServiceInfo> {
        self.control.services()
    }

    /// The last `lines` lines of a service's output and PID 1's messages about it.
    async fn logs(&self, name: &str, lines: u32) -> Result<Vec<String>, Fault> {
        Ok(self.control.logs(name, lines)?)
    }

    async fn start_service(&self, name: &str, #[zbus(header)] header: Header<'_>, #[zbus(connection)] conn: &zbus::Connection) -> Result<(), Fault> {
        self.authorize(&header, conn, "start services").await?;
        Ok(self.control.start(name)?)
    }

    async fn stop_service(&self, name: &str, #[zbus(header)] header: Header<'_>, #[zbus(connection)] conn: &zbus::Connection) -> Result<(), Fault> {
        self.authorize(&header, conn, "stop services").await?;
        Ok(self.control.stop(name)?)
    }

    async fn restart_service(&self, name: &str, #[zbus(header)] header: Header<'_>, #[zbus(connection)] conn: &zbus::Connection) -> Result<(), Fault> {
        self.authorize(&header, conn, "restart services").await?;
        Ok(self.control.restart(name)?)
    }

    async fn reboot(&self, #[zbus(header)] header: Header<'_>, #[zbus(connection)] conn: &zbus::Connection) -> Result<(), Fault> {
        self.authorize(&header, conn, "reboot the node").await?;
        Ok(self.control.reboot()?)
    }

    async fn power_off(&self, #[zbus(header)] header: Header<'_>, #[zbus(connection)] conn: &zbus::Connection) -> Result<(), Fault> {
        self.authorize(&header, conn, "power off the node").await?;
        Ok(self.control.poweroff()?)
    }
}

/// Connects to the system bus (or `address`), takes the bus name and serves the object.
pub fn serve(address: Option<&str>, control: Arc<dyn Control>, operator_gid: Option<u32>) -> Result<ApiHandle, ApiError> {
    let builder = match address {
        Some(a) => zbus::blocking::connection::Builder::address(a)?,
        None => zbus::blocking::connection::Builder::system()?,
    };
    let connection = builder.name(BUS_NAME)?.serve_at(OBJECT_PATH, Manager { control, operator_gid })?.build()?;
    Ok(ApiHandle { _connection: connection })
}

/// Whether the system bus socket exists (dbus-daemon is up).
pub fn system_bus_ready() -> bool {
    std::path::Path::new("/run/dbus/system_bus_socket").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_gids_are_read_from_proc() {
        let gids = gids_of(std::process::id());
        assert!(!gids.is_empty());
        assert!(gids.contains(&nix::unistd::getgid().as_raw()));
    }
}
