//! `cairn-bench` (`./dev bench`): boot time, PID 1 memory and image sizes of the default
//! Cairn image beside a stock Debian 13 + systemd root built and booted the same way (same
//! kernel, GRUB, verity, stage 1: image/profiles/baseline-debian.toml), alternating boot by
//! boot in one run so host speed drift hits both alike.
//!
//! A second part boots each system with its services up and measures PID 1's memory with
//! (at least) ten services running and the time from a crash of dockerd (kill -9) to dockerd
//! being ready again as its supervisor sees it (Cairn: the test image, whose agent runs the
//! commands; baseline: the same Debian root with systemd starting Debian's own units).
//!
//!   cairn-bench [--rounds N] [--reuse-images]
//!
//! Builds the three images first (default, baseline-debian, test), so the figures are for
//! this checkout; `--reuse-images` keeps images already under target/cairn.

use cairn_qemu_tests::image::load;
use cairn_qemu_tests::machine::BOOT_TIMEOUT;
use cairn_qemu_tests::{Firmware, Machine, MachineConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Default, Clone)]
struct Sample {
    wall_ms: u64,
    kernel_ms: u64,
    stage1_ms: u64,
    /// Cairn: stage 2 to ready. Baseline: systemd from its start to multi-user.target.
    init_ms: u64,
    pid1_rss_kib: u64,
}

fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok()).unwrap_or(0)
}

/// Reads the sample from the console text of one boot (after the console mark).
fn sample(log: &str, line: &str, wall_ms: u64, baseline: bool) -> Sample {
    let stage1_ms = log.lines().find_map(|l| l.split("stage 1: done in ").nth(1)?.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    if baseline {
        // The baseline's stage 1 is Cairn's: its "done" line says when the kernel handed over.
        let uptime = field(line, "uptime_ms");
        let kernel_ms = log
            .lines()
            .find_map(|l| l.split("kernel_start_ms=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .unwrap_or(0);
        Sample { wall_ms, kernel_ms, stage1_ms, init_ms: uptime.saturating_sub(kernel_ms + stage1_ms), pid1_rss_kib: field(line, "pid1_rss_kib") }
    } else {
        Sample { wall_ms, kernel_ms: field(line, "kernel_ms"), stage1_ms: field(line, "stage1_ms"), init_ms: field(line, "stage2_ms"), pid1_rss_kib: field(line, "pid1_rss_kib") }
    }
}

/// Boots an image twice: the first boot (creates /data) and, after a power-button poweroff,
/// a normal boot. Returns both samples.
fn boot_twice(disk: &Path, baseline: bool, n: usize) -> Result<(Sample, Sample), String> {
    let name = format!("bench-{}-{n}", if baseline { "baseline" } else { "cairn" });
    let mut m = Machine::start(MachineConfig::new(&name, disk, Firmware::Bios)).map_err(|e| e.to_string())?;
    let needle = if baseline { "BASELINE READY" } else { "CAIRN READY" };
    let mut samples = Vec::new();
    for round in 0..2 {
        if round == 1 {
            // The stock Debian baseline has no power-button handler (that is logind's job and
            // the minimal root has none): if the guest does not power off, cut the power.
            m.power_button().map_err(|e| e.to_string())?;
            match m.wait_for_exit(Duration::from_secs(30)) {
                Ok(_) => m.restart().map_err(|e| e.to_string())?,
                Err(_) => m.crash().map_err(|e| e.to_string())?,
            }
        }
        let before = m.console_log().len();
        let line = m.wait_for_console_text(needle, BOOT_TIMEOUT).map_err(|e| e.to_string())?;
        let wall_ms = m.started().elapsed().as_millis() as u64;
        let log = m.console_log();
        samples.push(sample(&log[before.min(log.len())..], &line, wall_ms, baseline));
    }
    drop(m);
    let second = samples.pop().unwrap_or_default();
    Ok((samples.pop().unwrap_or_default(), second))
}

/// What the services part measures on one system.
#[derive(Debug, Default, Clone)]
struct ServiceFigures {
    running: u64,
    pid1_rss_kib: u64,
    crash_to_ready_ms: Vec<u64>,
    /// Each service's first start and first ready, ms after the init system started.
    path: Vec<Step>,
}

#[derive(Debug, Default, Clone)]
struct Step {
    name: String,
    start_ms: u64,
    ready_ms: u64,
}

/// The chain to dockerd ready on both systems: docker requires containerd, and both come
/// after journald. What the init system adds is the chain's length minus each daemon's own
/// start-to-ready time.
const CHAIN: [&str; 3] = ["journald", "containerd", "docker"];

/// Cairn: `cairnctl services` gives each service's first start/ready in ms of uptime; the
/// zero is stage 2's start (the ready line's kernel_ms + stage1_ms).
/// Baseline: systemd's monotonic timestamps (µs) of each unit, from systemd's own start.
fn critical_path(m: &Machine, baseline: bool, ready_line: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    if baseline {
        let units = [("journald", "systemd-journald"), ("dbus", "dbus"), ("time", "chrony"), ("containerd", "containerd"), ("docker", "docker")];
        let zero = m.succeed("systemctl show -p UserspaceTimestampMonotonic --value").map_err(|e| e.to_string())?.trim().parse::<u64>().unwrap_or(0);
        for (name, unit) in units {
            let out = m
                .succeed(&format!("systemctl show {unit}.service -p ExecMainStartTimestampMonotonic -p ActiveEnterTimestampMonotonic --value"))
                .map_err(|e| e.to_string())?;
            let v: Vec<u64> = out.lines().map(|l| l.trim().parse().unwrap_or(0)).collect();
            let (start, ready) = (v.first().copied().unwrap_or(0), v.get(1).copied().unwrap_or(0));
            if start > 0 || ready > 0 {
                // A unit without a main process (none here) would have no start: use ready.
                let start = if start > 0 { start } else { ready };
                steps.push(Step { name: name.into(), start_ms: start.saturating_sub(zero) / 1000, ready_ms: ready.saturating_sub(zero) / 1000 });
            }
        }
    } else {
        let zero = field(ready_line, "kernel_ms") + field(ready_line, "stage1_ms");
        let out = m.succeed("cairnctl --json services").map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("cairnctl services: {e}"))?;
        for s in v.as_array().into_iter().flatten() {
            let (start, ready) = (s["first_start_ms"].as_u64().unwrap_or(0), s["first_ready_ms"].as_u64().unwrap_or(0));
            let name = s["name"].as_str().unwrap_or("").to_owned();
            if start > 0 && !name.starts_with("test") {
                steps.push(Step { name, start_ms: start.saturating_sub(zero), ready_ms: ready.saturating_sub(zero) });
            }
        }
    }
    steps.sort_by_key(|s| s.ready_ms);
    Ok(steps)
}

/// ms the init system adds on the chain to dockerd ready: docker's ready time minus the
/// daemons' own start-to-ready times along `CHAIN`.
fn init_overhead(path: &[Step]) -> Option<u64> {
    let find = |n: &str| path.iter().find(|s| s.name == n);
    let docker = find("docker")?;
    let own: u64 = CHAIN.iter().filter_map(|n| find(n)).map(|s| s.ready_ms.saturating_sub(s.start_ms)).sum();
    Some(docker.ready_ms.saturating_sub(own))
}

/// In-guest: kill -9 dockerd, then poll every 20 ms until its supervisor reports a new
/// dockerd ready; prints the milliseconds.
fn crash_script(baseline: bool) -> String {
    let ready = if baseline {
        r#"[ "$(systemctl show docker -p ActiveState --value)" = active ] && [ "$(systemctl show docker -p MainPID --value)" = "$NP" ]"#
    } else {
        r#"cairnctl --json services | grep -q '"name":"docker","state":"running","readiness":"ready","pid":'"$NP"','"#
    };
    format!(
        "P=$(cat /var/run/docker.pid); t0=$(date +%s%N); kill -9 $P; \
         while :; do NP=$(cat /var/run/docker.pid 2>/dev/null); \
         if [ -n \"$NP\" ] && [ \"$NP\" != \"$P\" ] && {ready}; then break; fi; sleep 0.02; done; \
         t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 ))"
    )
}

fn service_figures(disk: &Path, baseline: bool, crashes: usize) -> Result<ServiceFigures, String> {
    let name = format!("bench-services-{}", if baseline { "baseline" } else { "cairn" });
    let m = Machine::start(MachineConfig::new(&name, disk, Firmware::Bios)).map_err(|e| e.to_string())?;
    let ready_line = m.wait_for_console_text(if baseline { "BASELINE READY" } else { "CAIRN READY" }, BOOT_TIMEOUT).map_err(|e| e.to_string())?;
    m.wait_for_agent(Duration::from_secs(120)).map_err(|e| e.to_string())?;
    // Both: dockerd up before measuring.
    m.wait_until_succeeds("docker version --format '{{.Server.Version}}'", Duration::from_secs(300)).map_err(|e| e.to_string())?;
    let path = critical_path(&m, baseline, &ready_line)?;
    std::thread::sleep(Duration::from_secs(5));
    let count = if baseline {
        "systemctl list-units --type=service --state=running --no-legend | wc -l"
    } else {
        "cairnctl --json services | grep -o '\"state\":\"running\"' | wc -l"
    };
    let running = m.succeed(count).map_err(|e| e.to_string())?.trim().parse().unwrap_or(0);
    let pid1_rss_kib = m.succeed("awk '/^VmRSS/ {print $2}' /proc/1/status").map_err(|e| e.to_string())?.trim().parse().unwrap_or(0);
    let mut crash_to_ready_ms = Vec::new();
    for _ in 0..crashes {
        let (code, out) = m.execute(&crash_script(baseline), Duration::from_secs(300)).map_err(|e| e.to_string())?;
        if code != 0 {
            return Err(format!("crash measurement failed: {out}"));
        }
        crash_to_ready_ms.push(out.trim().parse().unwrap_or(0));
        // Each crash from a steady state: past Cairn's backoff reset (a stable run of 60 s)
        // and systemd's start limit (docker.service: 3 starts in 60 s).
        std::thread::sleep(Duration::from_secs(65));
    }
    Ok(ServiceFigures { running, pid1_rss_kib, crash_to_ready_ms, path })
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn ensure_image(profile: &str, out: &str, reuse: bool) -> PathBuf {
    cairn_qemu_tests::image::ensure_built(profile, out, reuse).unwrap_or_else(|e| {
        eprintln!("cairn-bench: {e}");
        std::process::exit(1);
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.iter().position(|a| a == "--rounds").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(3);
    let reuse = args.iter().any(|a| a == "--reuse-images");
    let cairn_dir = ensure_image("default", "default", reuse);
    let base_dir = ensure_image("baseline-debian", "baseline-debian", reuse);
    // Not target/cairn/test: `./dev test` builds that one trusting its test repository, with
    // signed slots; this benchmark needs only the agent.
    let test_dir = ensure_image("test", "bench-test", reuse);
    let (cairn, base) = match (load(&cairn_dir), load(&base_dir)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cairn-bench: {e}");
            std::process::exit(1);
        }
    };
    let (mut cs, mut bs, mut cfirst, mut bfirst) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for n in 0..rounds {
        for baseline in [false, true] {
            let disk = if baseline { base.disk_path() } else { cairn.disk_path() };
            match boot_twice(&disk, baseline, n) {
                Ok((first, s)) => {
                    eprintln!("round {n} {}: first boot {first:?}; normal boot {s:?}", if baseline { "baseline" } else { "cairn" });
                    if baseline {
                        bs.push(s);
                        bfirst.push(first);
                    } else {
                        cs.push(s);
                        cfirst.push(first);
                    }
                }
                Err(e) => {
                    eprintln!("cairn-bench: boot failed: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    let test = load(&test_dir).unwrap_or_else(|e| {
        eprintln!("cairn-bench: {e}");
        std::process::exit(1);
    });
    let figures = |disk: &Path, baseline: bool| {
        let f = service_figures(disk, baseline, 3).unwrap_or_else(|e| {
            eprintln!("cairn-bench: services part failed: {e}");
            std::process::exit(1);
        });
        eprintln!("services, {}: {f:?}", if baseline { "baseline" } else { "cairn" });
        f
    };
    let cf = figures(&test.disk_path(), false);
    let bf = figures(&base.disk_path(), true);
    let col = |v: &[Sample], f: fn(&Sample) -> u64| median(v.iter().map(f).collect());
    let size = |dir: &Path, name: &str| std::fs::metadata(dir.join(name)).map(|m| m.len()).unwrap_or(0);
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / 1048576.0);
    let mut out = String::new();
    out.push_str(&format!(
        "Normal boot (the second; the first also creates /data), median of {rounds} boots each, alternating, SeaBIOS, QEMU {}, 2 vCPUs, 1 GiB:\n\n",
        cairn_qemu_tests::kvm::accel()
    ));
    out.push_str("| figure | Cairn (default image) | Debian 13 + systemd (baseline) |\n| --- | --- | --- |\n");
    for (name, f) in [
        ("QEMU start to ready (wall)", (|s: &Sample| s.wall_ms) as fn(&Sample) -> u64),
        ("kernel (to stage 1 start)", |s| s.kernel_ms),
        ("stage 1 (initramfs, verity root, /data)", |s| s.stage1_ms),
        ("init to ready (Cairn stage 2 / systemd to multi-user)", |s| s.init_ms),
    ] {
        out.push_str(&format!("| {name} | {} ms | {} ms |\n", col(&cs, f), col(&bs, f)));
    }
    out.push_str(&format!("| first boot, QEMU start to ready (creates /data) | {} ms | {} ms |\n", col(&cfirst, |s| s.wall_ms), col(&bfirst, |s| s.wall_ms)));
    let fw = |v: &[Sample]| median(v.iter().map(|s| s.wall_ms.saturating_sub(s.kernel_ms + s.stage1_ms + s.init_ms)).collect());
    out.push_str(&format!("| firmware + GRUB (wall minus guest uptime) | {} ms | {} ms |\n", fw(&cs), fw(&bs)));
    out.push_str(&format!("| PID 1 resident memory at ready | {} KiB | {} KiB |\n", col(&cs, |s| s.pid1_rss_kib), col(&bs, |s| s.pid1_rss_kib)));
    out.push_str(&format!("| root image (squashfs, zstd) | {} | {} |\n", mib(size(&cairn_dir, "root.squashfs")), mib(size(&base_dir, "root.squashfs"))));
    out.push_str(&format!("| kernel + initramfs (per slot) | {} | {} |\n", mib(size(&cairn_dir, "vmlinuz") + size(&cairn_dir, "initrd")), mib(size(&base_dir, "vmlinuz") + size(&base_dir, "initrd"))));
    out.push_str(&format!("| disk.img (sparse, both slots) | {} | {} |\n", mib(cairn.disk.bytes), mib(base.disk.bytes)));
    out.push_str(&format!(
        "\nServices (Cairn: the test image; baseline: the same root under systemd with Debian's units), dockerd killed with SIGKILL 3 times, 65 s apart (each from a steady state), median:\n\n\
         | figure | Cairn | Debian 13 + systemd |\n| --- | --- | --- |\n\
         | services running | {} | {} |\n\
         | PID 1 resident memory with those services | {} KiB | {} KiB |\n\
         | dockerd crash to ready again (supervisor's view) | {} ms | {} ms |\n\
         | restart delay as configured (Cairn: docker.toml default initial_delay_ms; Debian: docker.service has no RestartSec) | 500 ms | 100 ms |\n",
        cf.running,
        bf.running,
        cf.pid1_rss_kib,
        bf.pid1_rss_kib,
        median(cf.crash_to_ready_ms.clone()),
        median(bf.crash_to_ready_ms.clone()),
    ));
    out.push_str(
        "\nCritical path of the init system to dockerd ready (the services boot above, first boot of that machine), \
         each service's first start and first ready in ms after the init system started (Cairn: stage 2; baseline: systemd):\n\n\
         | service | Cairn start | Cairn ready | Debian + systemd start | Debian + systemd ready |\n| --- | --- | --- | --- | --- |\n",
    );
    let mut names: Vec<&str> = cf.path.iter().map(|s| s.name.as_str()).collect();
    names.extend(bf.path.iter().map(|s| s.name.as_str()).filter(|n| !cf.path.iter().any(|c| c.name == *n)));
    let cell = |p: &[Step], n: &str, ready: bool| {
        p.iter().find(|s| s.name == n).map(|s| format!("{} ms", if ready { s.ready_ms } else { s.start_ms })).unwrap_or_else(|| "-".into())
    };
    for n in names {
        out.push_str(&format!("| {n} | {} | {} | {} | {} |\n", cell(&cf.path, n, false), cell(&cf.path, n, true), cell(&bf.path, n, false), cell(&bf.path, n, true)));
    }
    let ms = |v: Option<u64>| v.map(|v| format!("{v} ms")).unwrap_or_else(|| "-".into());
    out.push_str(&format!(
        "| **init system's own time on the chain to dockerd ready** (docker ready minus the start-to-ready times of {}) | {} | | {} | |\n",
        CHAIN.join(", "),
        ms(init_overhead(&cf.path)),
        ms(init_overhead(&bf.path)),
    ));
    println!("{out}");
    let path = cairn_qemu_tests::workspace().join("target/bench-boot.md");
    let _ = std::fs::write(&path, &out);
    eprintln!("written to {}", path.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_overhead_is_the_chain_minus_the_daemons_own_time() {
        let step = |name: &str, start_ms, ready_ms| Step { name: name.into(), start_ms, ready_ms };
        // journald 10..60, containerd 70..1070, docker 1100..8100: 50 + 1000 + 7000 own.
        let path = [step("journald", 10, 60), step("dbus", 5, 20), step("containerd", 70, 1070), step("docker", 1100, 8100)];
        assert_eq!(init_overhead(&path), Some(8100 - 8050));
        assert_eq!(init_overhead(&path[..3]), None, "no docker, no figure");
    }
}
