//! `cairn-init`: Cairn's PID 1. The same binary is stage 1 (as `/init` in the initramfs,
//! recognised by /etc/initrd-release) and stage 2 (as `/sbin/init` in the verified root).
//!
//! PID 1 must never exit or panic: the kernel would panic with it. Every step returns an
//! error, and this file decides: stage 1 errors fail the slot over; stage 2 errors reboot.

use cairn_init::sys::{Power, RealSys, Sys};
use cairn_init::{say, stage1, stage2};

fn main() {
    let start_ms = cairn_init::log::uptime_ms();
    let sys = RealSys;
    if std::process::id() != 1 {
        eprintln!("cairn-init is Cairn's PID 1 and only runs as such; use `cairnctl` to talk to it");
        std::process::exit(2);
    }
    let stage1 = std::path::Path::new("/etc/initrd-release").exists();
    let outcome = std::panic::catch_unwind(|| {
        if stage1 {
            if let Err((slot, e)) = stage1::run(&sys, start_ms) {
                stage1::fail(&sys, slot, &e);
            }
        } else if let Err(e) = stage2::run(&sys, start_ms) {
            say!("FATAL: {e}");
            stage2::record_failure(&sys);
        }
    });
    if outcome.is_err() {
        say!("FATAL: PID 1 hit a bug (panic) in stage {}; rebooting", if stage1 { 1 } else { 2 });
        if !stage1 {
            stage2::record_failure(&sys);
        }
    }
    // Only reached on a fatal error: never return to the kernel.
    sys.sync();
    loop {
        let _ = sys.power(Power::Reboot);
        std::thread::sleep(std::time::Duration::from_secs(5));
    }
}
