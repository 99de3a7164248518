//! Services: what a definition says ([`definition`]), how definitions depend on each other
//! ([`order`]), and the parts of running one: its cgroup ([`cgroup`]), its process
//! ([`spawn`], with [`users`]) and its probes ([`check`]). The supervisor that drives them
//! is `crate::supervisor`.

pub mod cgroup;
pub mod check;
pub mod definition;
pub mod directory;
pub mod order;
pub mod spawn;
pub mod users;
