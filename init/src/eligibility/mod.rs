//! What Progressive Node Rewards count, tracked outside PID 1 (issue 10; the design is in
//! ../shared/ARCHITECTURE.md, "Eligibility"). So far: what the node daemon says, read once
//! into types ([`fluxd`]) so that everything after works on values, never on JSON, and the
//! configured criteria evaluated from one sample ([`criteria`]), fluxd's RPC ([`rpc`]), and
//! the power-cut-safe file the history is kept in ([`store`]) and what it keeps for how long
//! ([`retention`]); the tracker service ([`tracker`]) samples, keeps and reports, as a table
//! ([`show`]) and as Prometheus metrics ([`metrics`]). Still to come: how each boot ended,
//! the cost of a reboot, soft reboots.

pub mod boots;
pub mod cost;
pub mod criteria;
pub mod dbus;
pub mod fluxd;
pub mod metrics;
pub mod retention;
pub mod rpc;
pub mod show;
pub mod store;
pub mod tracker;
