//! The tracker's D-Bus interface, beside PID 1's: `org.cairn.Eligibility1` at
//! `/org/cairn/Eligibility1`, served by the tracker service itself (outside PID 1), open to
//! every caller: it only reads.
//!
//! - `Report() -> s`: the last report as JSON (what `cairnctl --json eligibility` prints).
//! - `RebootCost() -> s`: what a reboot now would cost, as JSON.
//! - property `Eligible` (b): every criterion met at the last sample.
//!
//! JSON strings rather than D-Bus structs: the report grows with the criteria, and every
//! client of it (cairnctl, a fleet agent, Grafana's JSON sources) already reads JSON.

use super::tracker::Report;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BUS_NAME: &str = "org.cairn.Eligibility1";
pub const OBJECT_PATH: &str = "/org/cairn/Eligibility1";

/// The report the interface serves; the tracker replaces it at each sample.
pub type Latest = Arc<Mutex<Option<Report>>>;

struct Eligibility {
    latest: Latest,
}

impl Eligibility {
    fn with<T>(&self, f: impl FnOnce(&Report) -> T) -> zbus::fdo::Result<T> {
        let guard = self.latest.lock().map_err(|_| zbus::fdo::Error::Failed("the tracker's report is unavailable".into()))?;
        guard.as_ref().map(f).ok_or_else(|| zbus::fdo::Error::Failed("the tracker has not sampled yet".into()))
    }
}

#[zbus::interface(name = "org.cairn.Eligibility1")]
impl Eligibility {
    fn report(&self) -> zbus::fdo::Result<String> {
        self.with(|r| serde_json::to_string(r).unwrap_or_default())
    }

    fn reboot_cost(&self) -> zbus::fdo::Result<String> {
        self.with(|r| serde_json::to_string(&r.reboot_cost).unwrap_or_default())
    }

    #[zbus(property)]
    fn eligible(&self) -> bool {
        self.with(|r| r.eligible).unwrap_or(false)
    }
}

/// Serves the interface on the system bus (or `address`).
pub fn serve(address: Option<&str>, latest: Latest) -> zbus::Result<zbus::blocking::Connection> {
    let builder = match address {
        Some(a) => zbus::blocking::connection::Builder::address(a)?,
        None => zbus::blocking::connection::Builder::system()?,
    };
    builder.name(BUS_NAME)?.serve_at(OBJECT_PATH, Eligibility { latest })?.build()
}

/// Serves it from a thread of its own, connecting again while the bus is not there (dbus
/// starts after the tracker, or restarts): sampling never waits on D-Bus.
pub fn serve_in_background(latest: Latest) {
    let spawned = std::thread::Builder::new().name("dbus".into()).spawn(move || {
        let mut said = false;
        loop {
            match serve(None, latest.clone()) {
                Ok(connection) => {
                    println!("D-Bus: {BUS_NAME} {OBJECT_PATH}");
                    said = false;
                    // Served by zbus's own thread; asking the bus its id tells when it went away.
                    while zbus::blocking::fdo::DBusProxy::new(&connection).and_then(|p| p.get_id().map_err(zbus::Error::from)).is_ok() {
                        std::thread::sleep(Duration::from_secs(30));
                    }
                    println!("D-Bus: the system bus went away; connecting again");
                }
                Err(e) if !said => {
                    println!("D-Bus: cannot serve {BUS_NAME} yet ({e}); trying again every 10 s");
                    said = true;
                }
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_secs(10));
        }
    });
    if let Err(e) = spawned {
        println!("D-Bus: cannot start its thread ({e}); the report stays in {}", super::tracker::REPORT);
    }
}
