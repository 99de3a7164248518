//! The control API: [`Control`] served on the D-Bus system bus with zbus, as
//! `org.cairn.Init1` at `/org/cairn/Init1`, interface `org.cairn.Init1.Manager`.
//! Standard tools reach it (`busctl introspect org.cairn.Init1 /org/cairn/Init1`).
//!
//! Status, ListServices and UpdateProgress are open to every caller. Logs is for root, the operator group
//! and the journal's readers (adm, systemd-journal), as `journalctl` is. Changes
//! (StartService, StopService, RestartService, Reboot, RebootForUpdate, PowerOff) are refused with
//! `org.cairn.Init1.Error.AccessDenied` unless the caller is root or in the operator group.
//!
//! Who the caller is comes from the bus (GetConnectionCredentials: UnixUserID and
//! UnixGroupIDs), which recorded the credentials of the socket when the caller connected.
//! It is never read from /proc/PID afterwards: that PID may have exited and been reused by
//! another process, or the caller may have changed its groups since (the polkit
//! CVE-2013-4288 class).

use crate::control::{Control, ControlError, ServiceInfo, SystemStatus, UpdateProgress, BUS_NAME, OBJECT_PATH};
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

/// Which groups may do what besides root.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// May change things (and read logs).
    pub operator_gid: Option<u32>,
    /// May read logs: the journal's readers (adm, systemd-journal).
    pub log_reader_gids: Vec<u32>,
}

impl Policy {
    /// The operator group and the journal's reader groups, by name from /etc/group.
    pub fn from_groups(group_text: &str, operator_group: &str) -> Policy {
        let gid = |name: &str| crate::service::users::group(group_text, name);
        Policy { operator_gid: gid(operator_group), log_reader_gids: ["adm", "systemd-journal"].into_iter().filter_map(gid).collect() }
    }

    fn may_change(&self, c: &Caller) -> bool {
        c.uid == 0 || self.operator_gid.is_some_and(|g| c.gids.contains(&g))
    }

    fn may_read_logs(&self, c: &Caller) -> bool {
        self.may_change(c) || c.gids.iter().any(|g| self.log_reader_gids.contains(g))
    }
}

/// A caller as the bus knows it: the credentials of its socket when it connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    /// Primary and supplementary groups (the bus's UnixGroupIDs); empty if it has none.
    pub gids: Vec<u32>,
}

struct Manager {
    control: Arc<dyn Control>,
    policy: Policy,
}

impl Manager {
    /// GetConnectionCredentials of the message's sender.
    async fn caller(header: &Header<'_>, conn: &zbus::Connection) -> Result<Caller, Fault> {
        let sender = header.sender().ok_or_else(|| Fault::AccessDenied("a message without a sender cannot be authorized".into()))?;
        let dbus = zbus::fdo::DBusProxy::new(conn).await.map_err(Fault::ZBus)?;
        let creds = dbus.get_connection_credentials(zbus::names::BusName::from(sender.to_owned())).await.map_err(|e| Fault::ZBus(e.into()))?;
        let uid = creds.unix_user_id().ok_or_else(|| Fault::AccessDenied("the bus does not know the caller's user".into()))?;
        Ok(Caller { uid, gids: creds.unix_group_ids().cloned().unwrap_or_default() })
    }

    /// Root, or a member of the operator group, may change things.
    async fn authorize(&self, header: &Header<'_>, conn: &zbus::Connection, what: &str) -> Result<(), Fault> {
        if self.policy.may_change(&Self::caller(header, conn).await?) {
            return Ok(());
        }
        Err(Fault::AccessDenied(format!("only root or members of the operator group may {what}")))
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

    /// The update install of this boot, as its process last reported it (stage, bytes, rate,
    /// ETA; how it ended). The install runs outside PID 1; this reads its report from /run.
    async fn update_progress(&self) -> UpdateProgress {
        crate::update::progress::read(std::path::Path::new(crate::update::RUN))
    }

    /// The last `lines` lines of a service's output and PID 1's messages about it.
    async fn logs(&self, name: &str, lines: u32, #[zbus(header)] header: Header<'_>, #[zbus(connection)] conn: &zbus::Connection) -> Result<Vec<String>, Fault> {
        if !self.policy.may_read_logs(&Self::caller(&header, conn).await?) {
            return Err(Fault::AccessDenied("only root, the operator group and the journal's readers (adm, systemd-journal) may read service logs".into()));
        }
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
        Ok(self.control.reboot(crate::eligibility::boots::Why::Operator)?)
    }

    /// A reboot to boot an installed update (`cairnctl update reboot`, the update service):
    /// the history then says the boot ended for an update, not by the operator's hand.
    async fn reboot_for_update(&self, #[zbus(header)] header: Header<'_>, #[zbus(connection)] conn: &zbus::Connection) -> Result<(), Fault> {
        self.authorize(&header, conn, "reboot the node").await?;
        Ok(self.control.reboot(crate::eligibility::boots::Why::Update)?)
    }

    async fn power_off(&self, #[zbus(header)] header: Header<'_>, #[zbus(connection)] conn: &zbus::Connection) -> Result<(), Fault> {
        self.authorize(&header, conn, "power off the node").await?;
        Ok(self.control.poweroff()?)
    }
}

/// Connects to the system bus (or `address`), takes the bus name and serves the object.
pub fn serve(address: Option<&str>, control: Arc<dyn Control>, policy: Policy) -> Result<ApiHandle, ApiError> {
    let builder = match address {
        Some(a) => zbus::blocking::connection::Builder::address(a)?,
        None => zbus::blocking::connection::Builder::system()?,
    };
    let connection = builder.name(BUS_NAME)?.serve_at(OBJECT_PATH, Manager { control, policy })?.build()?;
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
    fn who_may_do_what() {
        let policy = Policy { operator_gid: Some(4242), log_reader_gids: vec![4] };
        let caller = |uid, gids: &[u32]| Caller { uid, gids: gids.to_vec() };
        assert!(policy.may_change(&caller(0, &[])));
        assert!(policy.may_change(&caller(1000, &[100, 4242])));
        assert!(!policy.may_change(&caller(1000, &[4])));
        assert!(policy.may_read_logs(&caller(1000, &[4])));
        assert!(!policy.may_read_logs(&caller(65534, &[65534])));
        assert!(!Policy::default().may_change(&caller(1000, &[4242])));
    }

    #[test]
    fn groups_are_found_by_name() {
        let p = Policy::from_groups("root:x:0:\nadm:x:4:syslog\nsystemd-journal:x:999:\noperator:x:37:\n", "operator");
        assert_eq!((p.operator_gid, p.log_reader_gids), (Some(37), vec![4, 999]));
    }
}
