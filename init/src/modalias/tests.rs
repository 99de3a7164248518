use super::*;

/// Lines as Debian 13's linux-image-amd64 has them in modules.alias.
const ALIAS: &str = "\
alias pci:v*d*sv*sd*bc01sc06i01* ahci
alias pci:v*d*sv*sd*bc01sc08i02* nvme
alias pci:v*d*sv*sd*bc0Csc03i30* xhci_pci
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip62in* uas
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* uas
alias scsi:t-0x00* sd_mod
alias scsi:t-0x0[47]* sd_mod
alias virtio:d00000002v* virtio_blk
";

const DEP: &str = "\
/m/kernel/drivers/ata/ahci.ko.xz: /m/kernel/drivers/ata/libahci.ko.xz /m/kernel/drivers/ata/libata.ko.xz /m/kernel/drivers/scsi/scsi_mod.ko.xz
/m/kernel/drivers/ata/libahci.ko.xz: /m/kernel/drivers/ata/libata.ko.xz /m/kernel/drivers/scsi/scsi_mod.ko.xz
/m/kernel/drivers/ata/libata.ko.xz: /m/kernel/drivers/scsi/scsi_mod.ko.xz
/m/kernel/drivers/scsi/scsi_mod.ko.xz:
/m/kernel/drivers/scsi/sd_mod.ko.xz: /m/kernel/drivers/scsi/scsi_mod.ko.xz
/m/kernel/drivers/nvme/host/nvme.ko.xz: /m/kernel/drivers/nvme/host/nvme-core.ko.xz
/m/kernel/drivers/nvme/host/nvme-core.ko.xz:
/m/kernel/drivers/usb/host/xhci-pci.ko.xz: /m/kernel/drivers/usb/host/xhci-hcd.ko.xz /m/kernel/drivers/usb/core/usbcore.ko.xz
/m/kernel/drivers/usb/host/xhci-hcd.ko.xz: /m/kernel/drivers/usb/core/usbcore.ko.xz
/m/kernel/drivers/usb/core/usbcore.ko.xz:
/m/kernel/drivers/usb/storage/usb-storage.ko.xz: /m/kernel/drivers/usb/core/usbcore.ko.xz /m/kernel/drivers/scsi/scsi_mod.ko.xz
/m/kernel/drivers/usb/storage/uas.ko.xz: /m/kernel/drivers/usb/storage/usb-storage.ko.xz /m/kernel/drivers/usb/core/usbcore.ko.xz /m/kernel/drivers/scsi/scsi_mod.ko.xz
";

/// QEMU's devices as the guest's sysfs shows them.
const Q35_AHCI: &str = "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01";
const NVME: &str = "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02";
const QEMU_XHCI: &str = "pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30";
const USB_STICK: &str = "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00";
const E1000E: &str = "pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00";

#[test]
fn glob_is_fnmatch_for_the_forms_modules_alias_uses() {
    for (p, t, want) in [
        ("pci:v*d*sv*sd*bc01sc06i01*", Q35_AHCI, true),
        ("pci:v*d*sv*sd*bc01sc06i01*", NVME, false),
        ("scsi:t-0x00*", "scsi:t-0x00", true),
        ("scsi:t-0x0[47]*", "scsi:t-0x07", true),
        ("scsi:t-0x0[47]*", "scsi:t-0x05", false),
        ("acpi*:PNP0C0[9A]:*", "acpi:PNP0C0A:", true),
        ("x[!a-c]y", "xdy", true),
        ("x[!a-c]y", "xby", false),
        ("x[^a-c]y", "xay", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("*", "", true),
        ("a*b*c", "aXXbYYbc", true),
        ("a*b*c", "aXXbYYb", false),
        ("abc", "abcd", false),
        ("x[ab", "x[ab", false),
    ] {
        assert_eq!(glob(p.as_bytes(), t.as_bytes()), want, "{p} ~ {t}");
    }
}

#[test]
fn each_storage_controller_finds_its_driver_and_a_nic_finds_none_here() {
    let t = Table::parse(ALIAS, DEP);
    assert_eq!(t.modules_for(Q35_AHCI), ["ahci"]);
    assert_eq!(t.modules_for(NVME), ["nvme"]);
    assert_eq!(t.modules_for(QEMU_XHCI), ["xhci_pci"]);
    // usb-storage first (table order), then uas, named once though two of uas's lines match.
    assert_eq!(t.modules_for(USB_STICK), ["usb_storage", "uas"]);
    assert!(t.modules_for(E1000E).is_empty(), "NICs are udev's, after switch_root");
    assert_eq!(t.files("nvme").map(<[String]>::to_vec).unwrap_or_default(), ["/m/kernel/drivers/nvme/host/nvme-core.ko.xz", "/m/kernel/drivers/nvme/host/nvme.ko.xz"]);
    assert_eq!(t.files("usb_storage").map(<[String]>::len), Some(3), "usb-storage.ko's name is usb_storage");
}

fn device(root: &Path, rel: &str, modalias: &str) {
    let d = root.join(rel);
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(d.join("modalias"), format!("{modalias}\n")).expect("modalias");
}

#[test]
fn scans_load_each_driver_once_dependencies_first_and_pick_up_devices_that_appear_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let devices = dir.path().join("devices");
    device(&devices, "pci0000:00/0000:00:1f.2", Q35_AHCI);
    device(&devices, "pci0000:00/0000:00:02.0", E1000E);
    device(&devices, "pci0000:00/0000:00:03.0", QEMU_XHCI);
    // sysfs's links lead back up the tree: a walk that followed them would never end.
    std::os::unix::fs::symlink(&devices, devices.join("pci0000:00/0000:00:03.0/subsystem")).expect("symlink");
    let mut d = Drivers::new(Table::parse(ALIAS, DEP));
    let log = std::cell::RefCell::new(Vec::<String>::new());
    let mut load = |f: &str| {
        log.borrow_mut().push(f.rsplit('/').next().unwrap_or(f).to_owned());
        Ok(())
    };
    let mut first = d.scan(&devices, &mut load);
    first.sort();
    assert_eq!(first, ["ahci", "xhci_pci"]);
    // Dependencies before their users; scsi_mod once though both paths need it... and only
    // what the devices found need: no nvme, no usb-storage yet.
    let calls = log.borrow().clone();
    let pos = |calls: &[String], f: &str| calls.iter().position(|c| c == f).unwrap_or(usize::MAX);
    assert!(pos(&calls, "scsi_mod.ko.xz") < pos(&calls, "libata.ko.xz"));
    assert!(pos(&calls, "libata.ko.xz") < pos(&calls, "libahci.ko.xz"));
    assert!(pos(&calls, "libahci.ko.xz") < pos(&calls, "ahci.ko.xz"));
    assert!(pos(&calls, "usbcore.ko.xz") < pos(&calls, "xhci-hcd.ko.xz"));
    assert_eq!(calls.len(), 7, "{calls:?}");
    // Nothing new: nothing loaded.
    assert!(d.scan(&devices, &mut load).is_empty());
    assert_eq!(log.borrow().len(), 7);
    // The controller's driver made a stick appear, and the stick a SCSI disk.
    device(&devices, "pci0000:00/0000:00:03.0/usb2/2-1/2-1:1.0", USB_STICK);
    device(&devices, "pci0000:00/0000:00:03.0/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0", "scsi:t-0x00");
    let mut second = d.scan(&devices, &mut load);
    second.sort();
    assert_eq!(second, ["sd_mod", "uas", "usb_storage"]);
    // usb-storage, uas, sd_mod: the shared usbcore and scsi_mod are not loaded again.
    assert_eq!(log.borrow().len(), 10, "{:?}", log.borrow());
    assert_eq!(d.loaded.len(), 5);
    assert!(d.failed.is_empty());
}

#[test]
fn a_driver_that_fails_is_recorded_once_and_not_retried_and_the_rest_still_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let devices = dir.path().join("devices");
    device(&devices, "pci0000:00/0000:00:04.0", NVME);
    device(&devices, "pci0000:00/0000:00:1f.2", Q35_AHCI);
    let mut d = Drivers::new(Table::parse(ALIAS, DEP));
    let mut tries = 0;
    let mut load = |f: &str| {
        if f.ends_with("/nvme.ko.xz") {
            tries += 1;
            return Err("Invalid argument".to_owned());
        }
        Ok(())
    };
    assert_eq!(d.scan(&devices, &mut load), ["ahci"]);
    // A second device of the same kind does not try the broken driver again.
    device(&devices, "pci0000:00/0000:00:05.0", &NVME.replace("d00000010", "d00000011"));
    assert!(d.scan(&devices, &mut load).is_empty());
    assert_eq!(tries, 1);
    assert_eq!(d.failed, [("nvme".to_owned(), "Invalid argument".to_owned())]);
}

#[test]
fn an_image_without_a_driver_table_has_none_and_a_broken_one_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alias = dir.path().join("drivers.alias");
    let dep = dir.path().join("drivers.dep");
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    assert!(matches!(Table::load(&s(&alias), &s(&dep)), Ok(None)));
    std::fs::write(&alias, ALIAS).expect("alias");
    let err = Table::load(&s(&alias), &s(&dep)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("drivers.dep"), "{err}");
    std::fs::write(&dep, DEP).expect("dep");
    assert!(matches!(Table::load(&s(&alias), &s(&dep)), Ok(Some(_))));
}
