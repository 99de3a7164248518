//! Cairn's PID 1 and its parts; see `main.rs` for how the two stages are chosen.

pub mod api;
pub mod blockdev;
pub mod bootctl;
pub mod checkpoint;
pub mod cmdline;
pub mod control;
pub mod data;
pub mod dm;
pub mod eligibility;
pub mod journal;
pub mod kmod;
pub mod log;
pub mod logs;
pub mod net;
pub mod netconfig;
pub mod process;
pub mod service;
pub mod shutdown;
pub mod soft_reboot;
pub mod stage1;
pub mod stage2;
pub mod supervisor;
pub mod sys;
pub mod update;
pub mod watchdog;
