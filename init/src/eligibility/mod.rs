//! What Progressive Node Rewards count, tracked outside PID 1 (issue 10; the design is in
//! ../shared/ARCHITECTURE.md, "Eligibility"). So far: what the node daemon says, read once
//! into types ([`fluxd`]) so that everything after works on values, never on JSON, and the
//! configured criteria evaluated from one sample ([`criteria`]), fluxd's RPC ([`rpc`]), and
//! the power-cut-safe file the history will be kept in ([`store`]). The tracker service, the
//! history's records and the cost of a reboot build on these.

pub mod criteria;
pub mod fluxd;
pub mod metrics;
pub mod rpc;
pub mod show;
pub mod store;
pub mod tracker;
