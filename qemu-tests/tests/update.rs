//! Update acceptance tests (issue 9): signed bundles installed on a running node, booted,
//! committed, refused. Each boots the test image (which trusts `./dev test`'s test
//! repository) with bundles attached as read-only drives, as a USB stick would be.

use cairn_qemu_tests::image::{bundle_drive, test_image};
use cairn_qemu_tests::machine::BOOT_TIMEOUT;
use cairn_qemu_tests::{Firmware, HarnessError, Machine, MachineConfig};
use std::time::Duration;

type R = Result<(), HarnessError>;

/// An install streams a few hundred MiB through zstd, SHA-256 and dm-verity under TCG.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// The kernel name of the boot disk's partition `label` (e.g. vda4).
fn partition(m: &Machine, label: &str) -> Result<String, HarnessError> {
    let out = m.succeed(&format!("for d in /sys/class/block/*; do grep -qx PARTNAME={label} $d/uevent && echo ${{d##*/}}; done; true"))?;
    let name = out.trim().to_owned();
    assert!(!name.is_empty() && !name.contains('\n'), "partition {label}: {out:?}");
    Ok(name)
}

fn status(m: &Machine) -> Result<serde_json::Value, HarnessError> {
    Ok(serde_json::from_str(&m.succeed("cairnctl update status --json")?).expect("update status prints JSON"))
}

/// `cairnctl update status`'s entry for `slot`.
fn slot(st: &serde_json::Value, slot: &str) -> serde_json::Value {
    st["slots"].as_array().and_then(|s| s.iter().find(|x| x["slot"] == slot)).cloned().unwrap_or_default()
}

/// The partitions the root file system's dm-verity device reads (data and hash tree).
fn root_partitions(m: &Machine) -> Result<Vec<String>, HarnessError> {
    let dm = m.succeed("grep ' / ' /proc/self/mountinfo | grep -o 'dm-[0-9]*'")?;
    let slaves = m.succeed(&format!("ls /sys/block/{}/slaves", dm.trim()))?;
    Ok(slaves.split_whitespace().map(str::to_owned).collect())
}

/// The root is slot `on`'s partitions and none of `off`'s.
#[track_caller]
fn assert_root_on(m: &Machine, on: &str, off: &str) {
    let parts = root_partitions(m).expect("dm slaves");
    assert!(parts.iter().any(|p| p == on) && !parts.iter().any(|p| p == off), "root reads {parts:?}; expected {on}, not {off}");
}

fn install(m: &Machine, drive: &str) -> Result<(i32, String), HarnessError> {
    m.execute(&format!("cairnctl update install /dev/{drive} 2>&1"), INSTALL_TIMEOUT)
}

#[test]
fn version_n_updates_to_n_plus_1_from_a_usb_stick_and_n_plus_2_lands_back_in_slot_a() -> R {
    let name = "version_n_updates_to_n_plus_1_from_a_usb_stick_and_n_plus_2_lands_back_in_slot_a";
    let image = test_image()?;
    let mut cfg = MachineConfig::new(name, &image.disk_path(), Firmware::Bios);
    let sticks = std::env::temp_dir().join(format!("cairn-{name}"));
    cfg.extra_drives = vec![bundle_drive("0.2.0", &sticks)?, bundle_drive("0.3.0", &sticks)?];
    let mut m = Machine::start(cfg)?;
    let ready = m.wait_for_ready(BOOT_TIMEOUT)?;
    assert_eq!(ready.slot, "a");
    m.wait_for_agent(Duration::from_secs(60))?;
    let (root_a, root_b) = (partition(&m, "root-a")?, partition(&m, "root-b")?);
    assert_root_on(&m, &root_a, &root_b);
    // The image build wrote slot b too: wipe its start, so only the install can make it boot.
    m.succeed(&format!("dd if=/dev/zero of=/dev/{root_b} bs=1M count=8 conv=fsync 2>&1"))?;

    // The drives come after the boot disk: vdb holds 0.2.0, vdc 0.3.0.
    let (code, out) = install(&m, "vdb")?;
    assert_eq!(code, 0, "install 0.2.0 failed:\n{out}");
    assert!(out.contains("installed 0.2.0 into slot b"), "{out}");
    let st = status(&m)?;
    assert_eq!(st["next_boot"], "b", "{st}");
    let b = slot(&st, "b");
    assert_eq!((b["version"].as_str(), b["signature"].as_str(), b["on_trial"].as_bool()), (Some("0.2.0"), Some("signed"), Some(true)), "{st}");

    m.succeed("cairnctl update reboot")?;
    let ready = m.wait_for_ready(BOOT_TIMEOUT)?;
    assert_eq!(ready.slot, "b", "the node did not boot the new slot");
    m.wait_for_agent(Duration::from_secs(60))?;
    assert_root_on(&m, &root_b, &root_a);
    // Committed once its health gate held (the ready line): no longer on trial.
    let st = status(&m)?;
    let b = slot(&st, "b");
    assert_eq!((b["running"].as_bool(), b["on_trial"].as_bool(), b["bootable"].as_bool()), (Some(true), Some(false), Some(true)), "{st}");

    // Running 0.2.0 now (slot b's signed manifest): 0.2.0 again is not newer.
    let (code, out) = install(&m, "vdb")?;
    assert_ne!(code, 0, "0.2.0 installed over itself:\n{out}");
    assert!(out.contains("not newer than the running 0.2.0"), "{out}");
    assert_eq!(status(&m)?["next_boot"], "b", "a refused bundle changed the boot order");

    let (code, out) = install(&m, "vdc")?;
    assert_eq!(code, 0, "install 0.3.0 failed:\n{out}");
    assert!(out.contains("installed 0.3.0 into slot a"), "{out}");
    m.succeed("cairnctl update reboot")?;
    let ready = m.wait_for_ready(BOOT_TIMEOUT)?;
    assert_eq!(ready.slot, "a", "0.3.0 did not land back in slot a");
    m.wait_for_agent(Duration::from_secs(60))?;
    assert_root_on(&m, &root_a, &root_b);
    let st = status(&m)?;
    assert_eq!(slot(&st, "a")["version"], "0.3.0", "{st}");
    assert_eq!(slot(&st, "b")["version"], "0.2.0", "{st}");
    m.shutdown(Duration::from_secs(60))?;
    let _ = std::fs::remove_dir_all(&sticks);
    Ok(())
}
