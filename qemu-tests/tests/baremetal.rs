//! Issue 11 item 2: the bare-metal image (image/profiles/baremetal.toml, Debian's generic
//! kernel, built with the test agent added) boots from the buses servers and USB sticks
//! have, with a server NIC (Intel e1000e) instead of virtio.
//!
//! Each test is one boot and checks the properties themselves:
//! - stage 1 loaded the boot disk's controller driver because it found the device (its
//!   console line), and not the drivers of controllers the machine does not have;
//! - the root's disk hangs off that bus in sysfs, and /data is ext4 on that disk;
//! - udev (supervised, not PID 1) loaded the NIC's driver, named it as udev names NICs, and
//!   made /dev/disk/by-partlabel and by-uuid pointing at the real partitions;
//! - the NIC got QEMU's DHCP address.
//!
//! Together the three cover SeaBIOS and OVMF.

use cairn_qemu_tests::image::baremetal_image;
use cairn_qemu_tests::machine::BOOT_TIMEOUT;
use cairn_qemu_tests::{Bus, Firmware, HarnessError, Machine, MachineConfig};
use std::time::Duration;

type R = Result<(), HarnessError>;

/// What one bus must show.
struct Expect {
    /// The stage-1 drivers the controller needs (from its console line).
    drivers: &'static [&'static str],
    /// Drivers of controllers this machine does not have: never loaded.
    absent: &'static [&'static str],
    /// A component of the boot disk's sysfs path that only this bus has.
    sysfs: &'static str,
}

fn boots_from(name: &str, bus: Bus, firmware: Firmware, want: &Expect) -> R {
    let image = baremetal_image()?;
    let mut cfg = MachineConfig::new(name, &image.dir.join("disk.img"), firmware);
    cfg.bus = bus;
    cfg.nic = "e1000e";
    cfg.network = true;
    // The generic kernel's root slots are larger: the disk is ~2.2 GiB before /data grows.
    cfg.disk_size_mb = 4096;
    let m = Machine::start(cfg)?;
    let ready = m.wait_for_ready(BOOT_TIMEOUT)?;
    assert_eq!(ready.slot, "a");
    m.wait_for_agent(Duration::from_secs(60))?;
    let log = m.console_log();

    // Stage 1: the controller's drivers, chosen by modalias, and nothing for absent ones.
    let found: Vec<&str> = log.lines().filter_map(|l| l.split("stage 1: drivers for the hardware found: ").nth(1)).flat_map(|l| l.split(", ")).map(str::trim).collect();
    for d in want.drivers {
        assert!(found.contains(d), "stage 1 did not load {d} for the boot disk's controller; it loaded {found:?}\n{log}");
    }
    for d in want.absent {
        assert!(!found.contains(d), "stage 1 loaded {d} with no such controller: {found:?}");
        m.fail(&format!("test -e /sys/module/{d}"))?;
    }
    assert!(!log.contains("did not load"), "a driver failed in stage 1:\n{log}");

    // The boot disk is on that bus, and /data is ext4 on it (not the tmpfs fallback).
    let disk = m.succeed("cat /run/cairn/boot-disk")?.trim().to_owned();
    let path = m.succeed(&format!("readlink -f /sys/block/{disk}"))?;
    assert!(path.contains(want.sysfs), "boot disk {disk} is at {path}, not on the {:?} bus", want.sysfs);
    // The device /data lives on (major:minor), not the mount's source text (stage 1 mounts it
    // before the switch, as /sysroot/dev/...).
    let fstype = m.succeed("findmnt -n -o FSTYPE /data")?;
    assert_eq!(fstype.trim(), "ext4", "/data is not the data partition's ext4");
    let data_dev = m.succeed("mountpoint -d /data")?.trim().to_owned();
    let on_disk = m.succeed(&format!("grep -lx '{data_dev}' /sys/block/{disk}/{disk}*/dev || true"))?;
    assert!(!on_disk.trim().is_empty(), "/data ({data_dev}) is not a partition of the boot disk {disk}");

    // udev: running under the supervisor, its links point at the real partitions.
    m.succeed("cairnctl services | grep -qE '^udev +running '")?;
    let by_label = m.succeed("cat /sys/class/block/$(basename $(readlink -f /dev/disk/by-partlabel/data))/dev")?;
    assert_eq!(by_label.trim(), data_dev, "/dev/disk/by-partlabel/data is not /data's partition");
    let uuids = m.succeed("ls /dev/disk/by-uuid | wc -l")?;
    assert!(uuids.trim().parse::<u32>().unwrap_or(0) >= 2, "/dev/disk/by-uuid has {uuids} entries");

    // The NIC: e1000e's driver loaded by udev (stage 1 carries no NIC driver), the name udev
    // gave it, and QEMU's DHCP address on it.
    let nic = m.succeed("for i in /sys/class/net/*; do [ \"$(basename \"$(readlink -f $i/device/driver)\")\" = e1000e ] && basename $i; done; true")?;
    let nic = nic.trim();
    assert!(nic.starts_with("en"), "the e1000e NIC is {nic:?}: udev did not name it");
    let addr = m.wait_until_succeeds(&format!("ip -4 -o addr show dev {nic} | grep -o 'inet 10\\.0\\.2\\.15/24'"), Duration::from_secs(90))?;
    assert!(addr.contains("10.0.2.15"), "{addr}");
    println!("{name}: ready in {} ms (kernel {} + stage 1 {} + stage 2 {}); stage 1 drivers {found:?}; disk {disk} at {}; NIC {nic}", ready.kernel_ms + ready.stage1_ms + ready.stage2_ms, ready.kernel_ms, ready.stage1_ms, ready.stage2_ms, path.trim());
    Ok(())
}

#[test]
fn the_bare_metal_image_boots_from_sata_ahci_under_seabios_and_gets_dhcp_on_an_e1000e() -> R {
    boots_from("baremetal_ahci", Bus::Ahci, Firmware::Bios, &Expect { drivers: &["ahci"], absent: &["nvme", "xhci_pci", "usb_storage"], sysfs: "/ata" })
}

#[test]
fn the_bare_metal_image_boots_from_nvme_under_ovmf_and_gets_dhcp_on_an_e1000e() -> R {
    boots_from("baremetal_nvme", Bus::Nvme, Firmware::Uefi, &Expect { drivers: &["nvme"], absent: &["xhci_pci", "usb_storage"], sysfs: "/nvme" })
}

#[test]
fn the_bare_metal_image_boots_from_a_usb_stick_on_xhci_and_gets_dhcp_on_an_e1000e() -> R {
    boots_from("baremetal_usb", Bus::Usb, Firmware::Bios, &Expect { drivers: &["xhci_pci", "usb_storage", "sd_mod"], absent: &["nvme"], sysfs: "/usb" })
}
