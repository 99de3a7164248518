//! `cairn-hardening`: the security baseline Cairn's PID 1 applies at boot, and the audit that
//! reads it back.
//!
//! - [`sysctl`]: the kernel knobs ([`sysctl::BASELINE`]) and [`sysctl::apply`], which writes
//!   them under `/proc/sys` and reports each result without ever stopping early.
//! - [`mounts`]: which mount points must be read-only / nosuid / nodev / noexec
//!   ([`mounts::POLICY`]), and a `/proc/self/mountinfo` parser.
//! - [`sandbox`]: what a service runs in (user, capability bounding set, no_new_privs,
//!   read-only paths, private /tmp), entered between fork and exec.
//! - [`audit`]: both, as actually in effect on the running system; stage 2 stores the report
//!   as JSON and `cairnctl hardening` prints it.
//!
//! Everything here runs inside PID 1, so nothing panics: every
//! failure is a value (a `Result` per item, or a status in the report). The baseline is
//! chosen for a container host: it never disables IP forwarding, user namespaces or module
//! loading, which dockerd and the Flux node's app containers need.

pub mod audit;
pub mod mounts;
pub mod sandbox;
pub mod sysctl;
