use super::*;
use crate::sys::Recorder;
use cairn_updater::bundle::{writer, Payload, SlotVerity, Version};
use cairn_updater::install::{ESP_MANIFEST, ESP_SIGNATURES};
use cairn_updater::keys::SigningKey;
use cairn_updater::tuf::repo::{root_for, RoleKeys};

const MOUNTINFO: &str = "22 1 253:0 / / ro - squashfs /dev/dm-0 ro\n\
    23 22 0:5 / /dev rw - devtmpfs devtmpfs rw\n\
    30 23 0:25 / /dev/pts rw - devpts devpts rw\n\
    24 22 0:20 / /proc rw - proc proc rw\n\
    25 22 0:21 / /sys rw - sysfs sysfs rw\n\
    28 25 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n\
    26 22 0:23 / /run rw - tmpfs tmpfs rw\n\
    27 22 254:7 / /data rw - ext4 /dev/vda7 rw\n\
    31 22 254:7 /var/lib/docker /var/lib/docker rw - ext4 /dev/vda7 rw\n\
    32 22 0:30 / /tmp rw - tmpfs tmpfs rw\n";

#[test]
fn everything_but_what_stage_1_hands_over_is_unmounted_deepest_first() {
    assert_eq!(unmount_plan(MOUNTINFO), ["/tmp", "/var/lib/docker", "/sys/fs/cgroup", "/dev/pts"]);
}

#[test]
fn the_handed_over_mounts_move_into_the_new_root_before_the_pivot_and_the_old_root_is_detached() {
    let r = Recorder::default();
    pivot_calls(&r).expect("switch");
    assert_eq!(
        r.calls(),
        ["mount none /  MsFlags(MS_REC | MS_PRIVATE) ", "move /dev /mnt/dev", "move /proc /mnt/proc", "move /sys /mnt/sys", "move /run /mnt/run", "move /data /mnt/data", "chdir /mnt", "pivot_root . .", "umount . detach", "chdir /"]
    );
}

#[test]
fn a_move_that_fails_stops_the_switch_before_the_pivot() {
    let r = Recorder { fail: vec![("move /data".into(), nix::Error::EINVAL)], ..Default::default() };
    let e = pivot_calls(&r).expect_err("a failed move");
    assert!(e.to_string().contains("move /data"), "{e}");
    assert!(!r.calls().iter().any(|c| c.starts_with("pivot_root")), "{:?}", r.calls());
}

fn keys() -> RoleKeys {
    let k = |n: u8| vec![SigningKey::from_seed([n; 32])];
    RoleKeys { root: k(1), targets: k(2), snapshot: k(3), timestamp: k(4) }
}

/// An ESP with slots a and b, each signed, with kernels and initramfs as given.
struct Esp {
    dir: std::path::PathBuf,
    keyring: Vec<u8>,
}

impl Esp {
    fn new(name: &str) -> Esp {
        let dir = std::env::temp_dir().join(format!("cairn-soft-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let k = keys();
        let keyring = cairn_updater::tuf::sign(&root_for(&k, 1, 4_102_444_800), &[&k.root[0]]);
        Esp { dir, keyring }
    }

    fn slot(&self, slot: &str, root_hash: &str, kernel: &[u8], initrd: &[u8]) {
        let d = self.dir.join(slot);
        std::fs::create_dir_all(&d).expect("slot dir");
        std::fs::write(d.join("vmlinuz"), kernel).expect("kernel");
        std::fs::write(d.join("initrd"), initrd).expect("initrd");
        std::fs::write(d.join("slot.cfg"), format!("set cairn_roothash={root_hash}\n")).expect("slot.cfg");
        let sha = |b: &[u8]| {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(b))
        };
        let m = Manifest {
            format: 1,
            version: Version::parse(if slot == "a" { "0.1.0" } else { "0.2.0" }).expect("version"),
            compatible: "test".into(),
            min_version: Version::parse("0").expect("version"),
            security: false,
            deadline: None,
            verity: SlotVerity { root_hash: root_hash.into(), salt: "cd".repeat(32), data_blocks: 3 },
            payloads: vec![
                Payload { kind: PayloadKind::Root, size: 1, sha256: "00".repeat(32) },
                Payload { kind: PayloadKind::Verity, size: 1, sha256: "00".repeat(32) },
                Payload { kind: PayloadKind::Vmlinuz, size: kernel.len() as u64, sha256: sha(kernel) },
                Payload { kind: PayloadKind::Initrd, size: initrd.len() as u64, sha256: sha(initrd) },
            ],
        };
        let text = m.to_toml().into_bytes();
        std::fs::write(d.join(ESP_MANIFEST), &text).expect("manifest");
        std::fs::write(d.join(ESP_SIGNATURES), writer::sign(&text, &[&keys().targets[0]])).expect("signatures");
    }

    fn check(&self, to: Slot) -> Result<Target, SoftError> {
        check(&self.dir, Path::new("/etc/cairn/update/root.json"), &self.keyring, (Slot::A, &"aa".repeat(32)), to)
    }
}

impl Drop for Esp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_signed_slot_with_the_running_kernel_and_initramfs_is_started_softly() {
    let esp = Esp::new("same");
    esp.slot("a", &"aa".repeat(32), b"kernel 1", b"initrd 1");
    esp.slot("b", &"bb".repeat(32), b"kernel 1", b"initrd 1");
    assert_eq!(esp.check(Slot::B).expect("soft"), Target { slot: Slot::B, root_hash: "bb".repeat(32), version: "0.2.0".into() });
}

#[test]
fn a_new_kernel_or_initramfs_or_one_changed_on_the_esp_needs_a_full_reboot() {
    let esp = Esp::new("kernel");
    esp.slot("a", &"aa".repeat(32), b"kernel 1", b"initrd 1");
    esp.slot("b", &"bb".repeat(32), b"kernel 2", b"initrd 1");
    assert!(matches!(esp.check(Slot::B), Err(SoftError::KernelDiffers { what: "kernel", .. })));
    esp.slot("b", &"bb".repeat(32), b"kernel 1", b"initrd 2");
    assert!(matches!(esp.check(Slot::B), Err(SoftError::KernelDiffers { what: "initramfs", .. })));
    // Signed the same, but the file GRUB would load was changed after: not the same kernel.
    esp.slot("b", &"bb".repeat(32), b"kernel 1", b"initrd 1");
    std::fs::write(esp.dir.join("b/initrd"), b"garbage").expect("damage");
    assert!(matches!(esp.check(Slot::B), Err(SoftError::KernelDiffers { what: "initramfs", .. })));
}

#[test]
fn a_slot_that_does_not_verify_is_not_started() {
    let esp = Esp::new("forged");
    esp.slot("a", &"aa".repeat(32), b"kernel 1", b"initrd 1");
    esp.slot("b", &"bb".repeat(32), b"kernel 1", b"initrd 1");
    // slot.cfg names a root hash the signed manifest does not carry.
    std::fs::write(esp.dir.join("b/slot.cfg"), format!("set cairn_roothash={}\n", "cc".repeat(32))).expect("forge");
    assert!(matches!(esp.check(Slot::B), Err(SoftError::Trust { slot: Slot::B, .. })));
    std::fs::write(esp.dir.join("b/slot.cfg"), "").expect("empty");
    assert!(matches!(esp.check(Slot::B), Err(SoftError::SlotCfg(Slot::B))));
}

#[test]
fn the_state_reads_back_and_names_the_running_slot() {
    let dir = std::env::temp_dir().join(format!("cairn-soft-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("soft-reboot.json");
    let s = State { slot: "b".into(), root_hash: "bb".repeat(32), version: "0.2.0".into(), from_slot: "a".into(), from_root_hash: "aa".repeat(32), count: 1, stopping_ms: 10, down_ms: None };
    std::fs::write(&path, serde_json::to_vec(&s).expect("json")).expect("write");
    assert_eq!(read_state(&path), Some(s));
    std::fs::write(&path, "{").expect("write");
    assert_eq!(read_state(&path), None);
    let _ = std::fs::remove_dir_all(&dir);
}
