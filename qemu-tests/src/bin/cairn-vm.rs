//! `cairn-vm`: boot a Cairn disk image in QEMU and show what an operator wants to see: the
//! console as it boots, the boot timeline, the node's status; then a clean poweroff through
//! the ACPI power button (or, with --keep, leave it running until Ctrl-C).
//!
//!   cairn-vm --disk target/cairn/default/disk.img [--firmware bios|uefi] [--keep]

use cairn_qemu_tests::machine::BOOT_TIMEOUT;
use cairn_qemu_tests::{Firmware, Machine, MachineConfig};
use std::io::Write;
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// Prints console text as it arrives until `done` finds something in it.
fn follow<T>(m: &Machine, timeout: Duration, mut done: impl FnMut(&str) -> Option<T>) -> Option<T> {
    let start = Instant::now();
    let mut shown = 0;
    while start.elapsed() < timeout {
        let text = m.console_log();
        if text.len() > shown {
            let _ = std::io::stdout().write_all(&text.as_bytes()[shown..]);
            let _ = std::io::stdout().flush();
            shown = text.len();
        }
        if let Some(t) = done(&text) {
            return Some(t);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(disk) = arg(&args, "--disk") else {
        eprintln!("usage: cairn-vm --disk DISK.img [--firmware bios|uefi] [--keep]");
        std::process::exit(2);
    };
    let firmware = match arg(&args, "--firmware").as_deref() {
        None | Some("bios") => Firmware::Bios,
        Some("uefi") => Firmware::Uefi,
        Some(o) => {
            eprintln!("cairn-vm: unknown firmware {o:?}: use bios or uefi");
            std::process::exit(2);
        }
    };
    let keep = args.iter().any(|a| a == "--keep");
    println!("== booting {disk} under {} ({}) ==", if firmware == Firmware::Bios { "SeaBIOS" } else { "OVMF (UEFI)" }, cairn_qemu_tests::kvm::accel());
    let mut m = match Machine::start(MachineConfig::new("cairn-vm", std::path::Path::new(&disk), firmware)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cairn-vm: {e}");
            std::process::exit(1);
        }
    };
    let ready = follow(&m, BOOT_TIMEOUT, |t| t.lines().find(|l| l.contains("CAIRN READY")).and_then(cairn_qemu_tests::ReadyLine::parse));
    let wall = m.started().elapsed();
    let Some(r) = ready else {
        eprintln!("\ncairn-vm: no ready line within {} s; console log in {}", BOOT_TIMEOUT.as_secs(), m.log_dir().display());
        std::process::exit(1);
    };
    let uptime = r.kernel_ms + r.stage1_ms + r.stage2_ms;
    let firmware_ms = (wall.as_millis() as u64).saturating_sub(uptime);
    println!("\n== boot timeline (QEMU {}) ==", cairn_qemu_tests::kvm::accel());
    println!("  firmware + GRUB  {firmware_ms:>6} ms   (QEMU start to kernel start, from the host's clock)");
    println!("  kernel           {:>6} ms", r.kernel_ms);
    println!("  stage 1          {:>6} ms   (modules, dm-verity root, /data)", r.stage1_ms);
    println!("  stage 2          {:>6} ms   (hardening, services, mark good)", r.stage2_ms);
    println!("  total            {:>6} ms", wall.as_millis());
    println!("\n== node status ==");
    println!("  slot {}   version {}   boot id {}   PID 1 resident {} KiB", r.slot, r.version, r.boot_id, r.pid1_rss_kib);
    for l in m.console_log().lines().filter(|l| l.starts_with("cairn: ") && !l.contains("CAIRN READY")) {
        println!("  {}", l.trim_start_matches("cairn: "));
    }
    if keep {
        println!("\nthe machine keeps running (console log: {}); Ctrl-C ends it", m.log_dir().join("console.log").display());
        follow::<()>(&m, Duration::from_secs(u64::MAX / 4), |_| None);
    }
    println!("\n== pressing the ACPI power button ==");
    let t = Instant::now();
    let status = m.power_button().and_then(|_| m.wait_for_exit(Duration::from_secs(120)));
    match status {
        Ok(st) if st.success() => println!("powered off cleanly in {} ms", t.elapsed().as_millis()),
        Ok(st) => {
            eprintln!("QEMU exited with {st}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("cairn-vm: {e}");
            std::process::exit(1);
        }
    }
}
