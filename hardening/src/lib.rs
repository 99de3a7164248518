//! `cairn-hardening`: the security baseline PID 1 applies at boot and the audit that reports
//! it. [`sysctl`] holds the kernel knobs, [`mounts`] the mount policy, [`audit`] reads both
//! back from the running system (`cairnctl hardening`).

pub mod audit;
pub mod mounts;
pub mod sysctl;
