//! `cairn-bench-year` (`./dev bench year`): a year of releases fed to three reboot policies,
//! with this node's downtimes (`cairn_qemu_tests::year`). The downtimes are measured in a VM
//! by `cairn-bench-update --restarts` and given here; without them, the figures recorded in
//! SPECIFICATION.md are used.
//!
//!   cairn-bench-year [--full-down-s S] [--soft-down-s S] [--seed N]

use cairn_qemu_tests::year::{simulate, Which};

/// From SPECIFICATION.md ("Eligibility"): the VM's figures, the restart asked for to ready.
const FULL_DOWN_S: i64 = 32;
const SOFT_DOWN_S: i64 = 21;

fn arg(args: &[String], name: &str) -> Option<i64> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = arg(&args, "--full-down-s").unwrap_or(FULL_DOWN_S);
    let soft = arg(&args, "--soft-down-s").unwrap_or(SOFT_DOWN_S);
    let seed = u64::try_from(arg(&args, "--seed").unwrap_or(7)).unwrap_or(7);
    println!("a year: a userspace release a week, a kernel a month, 6 security releases (72 h deadlines); full reboot {full} s down, soft reboot {soft} s (seed {seed})\n");
    println!("| policy | eligible days | service downtime | full reboots | soft reboots | missed confirmations | longest security wait | deadlines missed |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for which in Which::ALL {
        let o = simulate(which, full, soft, seed);
        println!(
            "| {} | {:.1} | {} min {} s | {} | {} | {} | {:.1} h | {} |",
            which.name(),
            o.eligible_days,
            o.downtime_s / 60,
            o.downtime_s % 60,
            o.full_reboots,
            o.soft_reboots,
            o.missed_confirmations,
            o.longest_security_wait_min as f64 / 60.0,
            o.deadlines_missed
        );
    }
}
