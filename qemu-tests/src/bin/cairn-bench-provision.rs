//! `cairn-bench-provision` (`./dev bench provision`): power-on to the first successful SSH
//! login on a first boot, configured by a NoCloud seed (SeaBIOS, TCG), for Cairn's default
//! image beside the systemd baseline with Debian's cloud-init and OpenSSH added
//! (image/profiles/baseline-cloud-init.toml: the same kernel, boot loader and stage 1).
//! Both get the same seed: `#cloud-config` with a hostname and the operator's key. Boots
//! alternate, Cairn then baseline, so host speed drift hits both alike; a login counts only
//! if it lands on the configured hostname. Then the sizes of every format of the image.
//!
//!   cairn-bench-provision [--rounds N] [--reuse-images]

use cairn_qemu_tests::image::{ensure_built, load};
use cairn_qemu_tests::seed::{self, keypair, ssh};
use cairn_qemu_tests::{Firmware, Machine, MachineConfig};
use std::path::Path;
use std::time::{Duration, Instant};

const HOSTNAME: &str = "bench-node";

fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("cairn-bench-provision: {e}");
    std::process::exit(1)
}

/// Seconds from QEMU's start to the first login that runs `hostname` and prints the seed's.
fn first_login(name: &str, disk: &Path, seed_img: &Path, key: &Path, user: &str) -> Result<f64, String> {
    let port = seed::free_port();
    let mut cfg = MachineConfig::new(name, disk, Firmware::Bios);
    cfg.host_port_forwards.push((port, 22));
    cfg.extra_drives.push(seed_img.to_owned());
    let m = Machine::start(cfg).map_err(|e| e.to_string())?;
    let started = m.started();
    // Once a second: Cairn's firewall lets a source open 10 new SSH connections a minute
    // after a burst of 20, which a faster poll would exhaust before sshd is up.
    while started.elapsed() < Duration::from_secs(300) {
        let tried = Instant::now();
        let s = ssh(port, user, Some(key), &["-o", "ConnectTimeout=5"], "hostname").map_err(|e| e.to_string())?;
        if s.ok && s.stdout.trim() == HOSTNAME {
            return Ok(started.elapsed().as_secs_f64());
        }
        if s.ok {
            return Err(format!("{name}: logged in, but the hostname is {:?}, not the seed's", s.stdout.trim()));
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tried.elapsed()));
    }
    Err(format!("{name}: no SSH login within 300 s (console log: {})", m.log_dir().join("console.log").display()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.iter().position(|a| a == "--rounds").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(3);
    let reuse = args.iter().any(|a| a == "--reuse-images");
    let cairn_dir = ensure_built("default", "default", reuse).unwrap_or_else(|e| fail(e));
    let base_dir = ensure_built("baseline-cloud-init", "baseline-cloud-init", reuse).unwrap_or_else(|e| fail(e));
    let (cairn, base) = (load(&cairn_dir).unwrap_or_else(|e| fail(e)), load(&base_dir).unwrap_or_else(|e| fail(e)));
    let work = cairn_qemu_tests::workspace().join("target/qemu-tests/bench-provision");
    let _ = std::fs::create_dir_all(&work);
    let (key, line) = keypair(&work, "operator").unwrap_or_else(|e| fail(e));
    let user_data = format!("#cloud-config\nhostname: {HOSTNAME}\nssh_authorized_keys:\n  - {line}\n");
    let (mut c, mut b) = (Vec::new(), Vec::new());
    for n in 0..rounds {
        for baseline in [false, true] {
            // A new instance each boot, on a fresh copy of the image: always a first boot.
            let seed_img = seed::fat(&work.join(format!("seed-{n}-{baseline}.img")), "CIDATA", &[("meta-data", &format!("instance-id: bench-{n}-{baseline}\n")), ("user-data", &user_data)])
                .unwrap_or_else(|e| fail(e));
            let (name, disk, user) = if baseline { (format!("bench-provision-baseline-{n}"), base.disk_path(), "debian") } else { (format!("bench-provision-cairn-{n}"), cairn.disk_path(), "operator") };
            let s = first_login(&name, &disk, &seed_img, &key, user).unwrap_or_else(|e| fail(e));
            eprintln!("round {n} {}: first SSH login {s:.1} s after power-on", if baseline { "baseline (systemd + cloud-init)" } else { "cairn" });
            if baseline { b.push(s) } else { c.push(s) };
        }
    }
    let (cm, bm) = (median(c.clone()), median(b.clone()));
    let fmt = |v: &[f64]| v.iter().map(|s| format!("{s:.1}")).collect::<Vec<_>>().join(", ");
    println!("| figure | Cairn (default image) | Debian 13 + systemd + cloud-init + OpenSSH |\n| --- | --- | --- |");
    println!("| power-on to first SSH login, first boot, NoCloud seed (median of {rounds}) | {cm:.1} s | {bm:.1} s |");
    println!("| each boot | {} | {} |", fmt(&c), fmt(&b));
    println!("| ratio (baseline / Cairn) | {:.2} | |", if cm > 0.0 { bm / cm } else { 0.0 });
    println!("| disk.img, actual data (sparse) | {} MiB | {} MiB |", allocated_mib(&cairn.disk_path()), allocated_mib(&base.disk_path()));
    println!("\nImage sizes (the default image, `cairn-image formats`):\n\n| file | bytes | MiB |\n| --- | --- | --- |");
    println!("| {} | {} | {} |", cairn.disk.path, cairn.disk.bytes, cairn.disk.bytes.div_ceil(1 << 20));
    let manifest: serde_json::Value = std::fs::read_to_string(cairn_dir.join("manifest.json")).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    for f in ["disk.img.zst", "disk.img.bmap", "disk.qcow2", "disk.vhd", "disk.raw.tar.gz"] {
        match manifest["artifacts"][f]["bytes"].as_u64() {
            Some(n) => println!("| {f} | {n} | {} |", n.div_ceil(1 << 20)),
            None => println!("| {f} | (run `cairn-image formats --image {}`) | |", cairn_dir.display()),
        }
    }
}

/// What a sparse file really holds on disk, in MiB.
fn allocated_mib(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).map(|m| (m.blocks() * 512).div_ceil(1 << 20)).unwrap_or(0)
}
