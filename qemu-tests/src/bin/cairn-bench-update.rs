//! `cairn-bench-update` (`./dev bench update`): what an update costs, in one VM and one run.
//!
//! - Install throughput: payload bytes written per second by `cairnctl update install` from a
//!   bundle on a USB stick (zstd decoding, SHA-256 of every payload, every byte read back and
//!   its dm-verity root hash recomputed) beside `dd` of the same payload bytes, uncompressed,
//!   into the same partitions (conv=fsync), alternating round by round. Beside them the floor
//!   of any install that checks what it writes: one SHA-256 pass over the same bytes alone
//!   (`sha256sum`), which under TCG, every instruction emulated, is far below `dd`. So the
//!   same engine is also measured natively on the build host, into files, beside a copy of
//!   the same bytes.
//! - Bundle size against the payloads it carries (the root image is already compressed
//!   squashfs) and against the disk image.
//! - Time from `update install` to the new slot committed: the install, then the reboot
//!   until PID 1 marks the new slot good.
//!
//!   cairn-bench-update [--rounds N]
//!
//! Needs `./dev test`'s test image and bundles (`./dev bench update` makes them).

use cairn_qemu_tests::image::{bundle_drive, test_image};
use cairn_qemu_tests::machine::BOOT_TIMEOUT;
use cairn_qemu_tests::{Firmware, Machine, MachineConfig};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A host file copied and padded to whole sectors, to attach as a raw drive.
fn padded(from: &Path, to: &Path) -> Result<PathBuf, String> {
    std::fs::copy(from, to).map_err(|e| format!("copy {}: {e}", from.display()))?;
    let f = std::fs::OpenOptions::new().write(true).open(to).map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    f.set_len(len.div_ceil(512) * 512).map_err(|e| e.to_string())?;
    Ok(to.to_owned())
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The same engine natively on the build host: the bundle installed into files on the
/// host's disk (`cairn_updater::install::install`, exactly what the node runs: decode,
/// SHA-256, the verity tree, fsync, the cache dropped and every byte read back), beside a
/// copy of the same payload bytes into files with fsync. Returns (copy, install) bytes/s.
fn native_round(bundle: &Path, root: &Path, verity: &Path, trusted_root: &Path, work: &Path) -> Result<(f64, f64), String> {
    use cairn_updater::bundle::{PayloadKind, Policy, Trust, Version};
    use cairn_updater::install::{install, SlotTarget};
    use cairn_updater::slot::Slot;
    use std::io::Write;
    let _ = std::fs::remove_dir_all(work);
    let esp = work.join("esp");
    for d in ["grub", "a", "b"] {
        std::fs::create_dir_all(esp.join(d)).map_err(|e| e.to_string())?;
    }
    let payload = size(root) + size(verity);
    // dd's side: the payloads copied into two files, each synced.
    let t = Instant::now();
    for (from, to) in [(root, work.join("dd-root")), (verity, work.join("dd-verity"))] {
        let mut out = std::fs::File::create(&to).map_err(|e| e.to_string())?;
        std::io::copy(&mut std::fs::File::open(from).map_err(|e| e.to_string())?, &mut out).map_err(|e| e.to_string())?;
        out.flush().and_then(|()| out.sync_all()).map_err(|e| e.to_string())?;
    }
    let copy_rate = payload as f64 / t.elapsed().as_secs_f64();

    let raw = std::fs::read(trusted_root).map_err(|e| format!("{}: {e}", trusted_root.display()))?;
    let trust = Trust::targets_of(&cairn_updater::tuf::client::self_signed_root(&raw).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let policy = Policy {
        compatible: "test".into(),
        running: Version::parse("0.1.0").map_err(|e| e.to_string())?,
        minimum: None,
        room: [(PayloadKind::Root, 4 << 30), (PayloadKind::Verity, 1 << 30)].into(),
        failed: None,
    };
    let target = SlotTarget { slot: Slot::B, root: work.join("root-b"), verity: work.join("verity-b"), esp, roots: Vec::new() };
    for p in [&target.root, &target.verity] {
        std::fs::File::create(p).map_err(|e| e.to_string())?;
    }
    let t = Instant::now();
    let f = std::fs::File::open(bundle).map_err(|e| e.to_string())?;
    install(std::io::BufReader::with_capacity(1 << 20, f), &trust, &policy, Slot::A, &target, &mut |_| {}).map_err(|e| format!("native install: {e:?}"))?;
    let install_rate = payload as f64 / t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(work);
    Ok((copy_rate, install_rate))
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.iter().position(|a| a == "--rounds").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(3);
    let image = test_image().map_err(|e| e.to_string())?;
    let dir = image.disk_path().parent().map(Path::to_owned).ok_or("image dir")?;
    let bundles = std::env::var_os("CAIRN_TEST_BUNDLES").map(PathBuf::from).unwrap_or_else(|| cairn_qemu_tests::workspace().join("target/cairn/test-bundles"));
    let bundle = bundles.join("0.2.0.bundle");
    let (root, verity) = (dir.join("root.squashfs"), dir.join("root.verity"));
    let payload = size(&root) + size(&verity);
    let carried = payload + size(&dir.join("vmlinuz")) + size(&dir.join("initrd"));
    if size(&bundle) == 0 || payload == 0 {
        return Err(format!("{} or the test image's root.squashfs is missing: run `./dev bench update` (or `./dev test`) first", bundle.display()));
    }

    // Natively first: the build host's disk, the same engine, no emulation.
    let trusted_root = cairn_qemu_tests::workspace().join("target/cairn/test-repo/metadata/1.root.json");
    let native_dir = cairn_qemu_tests::workspace().join("target/cairn/bench-update-native");
    let (mut copy_rates, mut native_rates) = (Vec::new(), Vec::new());
    for n in 0..rounds {
        let (c, i) = native_round(&bundle, &root, &verity, &trusted_root, &native_dir)?;
        eprintln!("native round {n}: copy {:.0} MiB/s; install {:.0} MiB/s: {:.2}x", c / 1_048_576.0, i / 1_048_576.0, i / c);
        copy_rates.push(c);
        native_rates.push(i);
    }

    let work = std::env::temp_dir().join("cairn-bench-update");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let mut cfg = MachineConfig::new("bench-update", &image.disk_path(), Firmware::Bios);
    // vdb: the bundle, as on a USB stick; vdc, vdd: the raw payloads for dd.
    cfg.extra_drives = vec![
        bundle_drive("0.2.0", &work).map_err(|e| e.to_string())?,
        padded(&root, &work.join("root.img"))?,
        padded(&verity, &work.join("verity.img"))?,
    ];
    // sha256sum reads the whole drives: the payload padded to sectors.
    let padded_payload = size(&work.join("root.img")) + size(&work.join("verity.img"));
    let m = Machine::start(cfg).map_err(|e| e.to_string())?;
    m.wait_for_ready(BOOT_TIMEOUT).map_err(|e| e.to_string())?;
    m.wait_for_agent(Duration::from_secs(60)).map_err(|e| e.to_string())?;
    let part = |label: &str| -> Result<String, String> {
        let out = m
            .succeed(&format!("for d in /sys/class/block/*; do grep -qx PARTNAME={label} $d/uevent && echo ${{d##*/}}; done; true"))
            .map_err(|e| e.to_string())?;
        Ok(out.trim().to_owned())
    };
    let (root_b, verity_b) = (part("root-b")?, part("verity-b")?);
    let dd = format!(
        "t0=$(date +%s%N); dd if=/dev/vdc of=/dev/{root_b} bs=1M count={} iflag=count_bytes conv=fsync 2>/dev/null && dd if=/dev/vdd of=/dev/{verity_b} bs=1M count={} iflag=count_bytes conv=fsync 2>/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 ))",
        size(&root),
        size(&verity)
    );
    let sha = "t0=$(date +%s%N); sha256sum /dev/vdc /dev/vdd >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 ))";
    let (mut dd_rates, mut install_rates, mut install_secs, mut sha_rates) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut stage_rates = std::collections::BTreeMap::<&str, Vec<f64>>::new();
    for n in 0..rounds {
        // The page cache holds neither side's input from the round before.
        m.succeed("sync; echo 3 > /proc/sys/vm/drop_caches").map_err(|e| e.to_string())?;
        let ms: f64 = m.succeed(&dd).map_err(|e| e.to_string())?.trim().parse().map_err(|e| format!("dd timing: {e}"))?;
        m.succeed("sync; echo 3 > /proc/sys/vm/drop_caches").map_err(|e| e.to_string())?;
        let sha_ms: f64 = m.succeed(sha).map_err(|e| e.to_string())?.trim().parse().map_err(|e| format!("sha256sum timing: {e}"))?;
        sha_rates.push(padded_payload as f64 / (sha_ms / 1000.0));
        m.succeed("sync; echo 3 > /proc/sys/vm/drop_caches").map_err(|e| e.to_string())?;
        let (code, out) = m.execute("cairnctl --json update install /dev/vdb", Duration::from_secs(1800)).map_err(|e| e.to_string())?;
        if code != 0 {
            return Err(format!("install failed: {out}"));
        }
        // Progress objects come first (stderr, merged by the agent); the result is the last line.
        let last = out.trim().lines().last().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(last).map_err(|e| format!("install JSON: {e}: {out}"))?;
        let secs = v["seconds"].as_f64().ok_or("no seconds in the install's JSON")?;
        // Each stage's rate, as its last progress object gives it (measured over the stage).
        for stage in ["writing", "reading-back"] {
            let rate = out.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).filter(|p| p["progress"]["stage"] == stage).filter_map(|p| p["rate_mib_s"].as_f64()).next_back();
            stage_rates.entry(stage).or_default().push(rate.unwrap_or(0.0) * 1_048_576.0);
        }
        let (dd_rate, rate) = (payload as f64 / (ms / 1000.0), payload as f64 / secs);
        eprintln!("round {n}: dd {:.1} MiB/s ({ms:.0} ms); install {:.1} MiB/s ({secs:.1} s): {:.2}x dd", dd_rate / 1_048_576.0, rate / 1_048_576.0, rate / dd_rate);
        dd_rates.push(dd_rate);
        install_rates.push(rate);
        install_secs.push(secs);
    }
    // The last install stands: boot it and time until PID 1 commits it.
    let t = Instant::now();
    m.reboot().map_err(|e| e.to_string())?;
    m.wait_for_console_text("slot b marked good", BOOT_TIMEOUT).map_err(|e| e.to_string())?;
    let reboot_to_commit = t.elapsed().as_secs_f64();
    drop(m);
    let _ = std::fs::remove_dir_all(&work);

    let (dd_rate, rate) = (median(dd_rates), median(install_rates));
    let mib = |b: f64| b / 1_048_576.0;
    println!("install throughput (median of {rounds}, payload {:.1} MiB: root + verity tree)", mib(payload as f64));
    println!("  dd of the payload into root-b + verity-b    {:>7.1} MiB/s", mib(dd_rate));
    let sha_rate = median(sha_rates);
    println!("  sha256sum of the same bytes, nothing else   {:>7.1} MiB/s   {:.2}x dd: the floor of a checked install", mib(sha_rate), sha_rate / dd_rate);
    println!("  cairnctl update install from a USB stick    {:>7.1} MiB/s   {:.2}x dd, {:.2}x sha256sum", mib(rate), rate / dd_rate, rate / sha_rate);
    let (copy_rate, native_rate) = (median(copy_rates), median(native_rates));
    for (stage, what) in [("writing", "the stream: decode, SHA-256, write"), ("reading-back", "the read-back: dm-verity on every core")] {
        println!("    {what:<42}{:>7.1} MiB/s", mib(median(stage_rates.remove(stage).unwrap_or_default())));
    }
    println!("  natively on the build host (files on its disk, same engine, same bytes):");
    println!("  copy of the payload + fsync                 {:>7.1} MiB/s", mib(copy_rate));
    println!("  install::install of the bundle              {:>7.1} MiB/s   {:.2}x the copy", mib(native_rate), native_rate / copy_rate);
    println!("bundle size");
    println!("  bundle                                      {:>7.1} MiB", mib(size(&bundle) as f64));
    println!("  payloads it carries (root, verity, kernel, initramfs) {:.1} MiB: bundle is {:+.2}%", mib(carried as f64), (size(&bundle) as f64 / carried as f64 - 1.0) * 100.0);
    println!("  disk image                                  {:>7.1} MiB: bundle is {:.1}% of it", mib(image.disk.bytes as f64), size(&bundle) as f64 * 100.0 / image.disk.bytes as f64);
    println!("time from `update install` to the new slot committed");
    println!("  install (median)                            {:>7.1} s", median(install_secs.clone()));
    println!("  reboot until slot b is marked good          {:>7.1} s", reboot_to_commit);
    println!("  total                                       {:>7.1} s", median(install_secs) + reboot_to_commit);
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("cairn-bench-update: {e}");
        std::process::exit(1);
    }
}
