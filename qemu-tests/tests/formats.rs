//! The default image in every format clouds and flashing tools take (`cairn-image
//! formats`): each listed in the manifest with its size and SHA-256; the flashing formats
//! give back disk.img byte for byte through the tools operators use; the VHD is what Azure
//! takes and boots under OVMF. (The qcow2 boots in `boot.rs`, as the default image's test.)

use cairn_qemu_tests::image::default_image;
use cairn_qemu_tests::machine::BOOT_TIMEOUT;
use cairn_qemu_tests::{Firmware, HarnessError, Machine, MachineConfig};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use std::process::Command;

type R = Result<(), HarnessError>;

const FORMATS: [&str; 5] = ["disk.img.zst", "disk.img.bmap", "disk.qcow2", "disk.vhd", "disk.raw.tar.gz"];

fn sha256_reader(mut r: impl Read) -> Result<String, HarnessError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).map_err(HarnessError::io("read"))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn sha256_file(p: &Path) -> Result<String, HarnessError> {
    sha256_reader(std::fs::File::open(p).map_err(HarnessError::io(format!("open {}", p.display())))?)
}

fn tool(cmd: &mut Command, what: &str) -> Result<std::process::Output, HarnessError> {
    let out = cmd.output().map_err(|e| HarnessError::Check(format!("cannot run {what}: {e} (./dev setup installs it)")))?;
    if !out.status.success() {
        return Err(HarnessError::Check(format!("{what}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))));
    }
    Ok(out)
}

#[test]
fn every_format_is_in_the_manifest_and_the_bmap_copy_the_zst_and_gce_s_disk_raw_are_byte_identical_to_disk_img() -> R {
    let image = default_image()?;
    let dir = &image.dir;
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).map_err(HarnessError::io("manifest"))?).map_err(|e| HarnessError::Check(e.to_string()))?;
    for f in FORMATS {
        let a = &manifest["artifacts"][f];
        assert!(a.is_object(), "{f} is not in the manifest: run `cairn-image formats --image {}` (./dev test does)", dir.display());
        assert_eq!(a["sha256"].as_str(), Some(sha256_file(&dir.join(f))?.as_str()), "{f}'s SHA-256 in the manifest");
        assert_eq!(a["bytes"].as_u64(), std::fs::metadata(dir.join(f)).ok().map(|m| m.len()), "{f}'s size in the manifest");
    }
    let want = image.disk.sha256.clone();
    // bmaptool, as an operator flashes a stick: the compressed image and its block map.
    let copy = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bmap-copy.img");
    let _ = std::fs::remove_file(&copy);
    tool(Command::new("bmaptool").args(["copy", "--bmap"]).arg(dir.join("disk.img.bmap")).arg(dir.join("disk.img.zst")).arg(&copy), "bmaptool copy (bmap-tools)")?;
    assert_eq!(sha256_file(&copy)?, want, "the bmaptool copy differs from disk.img");
    let _ = std::fs::remove_file(&copy);
    let zst = zstd::Decoder::new(std::fs::File::open(dir.join("disk.img.zst")).map_err(HarnessError::io("disk.img.zst"))?).map_err(HarnessError::io("zstd"))?;
    assert_eq!(sha256_reader(zst)?, want, "disk.img.zst does not decompress to disk.img");
    // GCE: exactly one member, disk.raw, in the old GNU format, holding disk.img.
    let list = tool(Command::new("tar").arg("-tvzf").arg(dir.join("disk.raw.tar.gz")), "tar")?;
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.trim_end().ends_with(" disk.raw"), "{list}");
    let mut tar = Command::new("tar").arg("-xOzf").arg(dir.join("disk.raw.tar.gz")).arg("disk.raw").stdout(std::process::Stdio::piped()).spawn().map_err(HarnessError::io("tar"))?;
    let sha = sha256_reader(tar.stdout.take().ok_or_else(|| HarnessError::Check("tar's output".into()))?)?;
    let _ = tar.wait();
    assert_eq!(sha, want, "disk.raw in the GCE tarball differs from disk.img");
    Ok(())
}

#[test]
fn the_vhd_is_fixed_its_size_a_whole_number_of_mib_and_it_boots_to_ready_under_ovmf() -> R {
    let image = default_image()?;
    let vhd = image.dir.join("disk.vhd");
    let info = tool(Command::new("qemu-img").args(["info", "-f", "vpc", "--output=json"]).arg(&vhd), "qemu-img info")?;
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).map_err(|e| HarnessError::Check(e.to_string()))?;
    let size = info["virtual-size"].as_u64().unwrap_or_default();
    assert_eq!(size, image.disk.bytes, "the VHD's disk is not disk.img's size: {info}");
    assert_eq!(size % (1 << 20), 0, "Azure needs the size in whole MiB: {size}");
    // Fixed: the data, then the 512-byte footer ("conectix") and nothing else.
    let len = std::fs::metadata(&vhd).map_err(HarnessError::io("disk.vhd"))?.len();
    assert_eq!(len, size + 512, "not a fixed VHD");
    let m = Machine::start(MachineConfig::new("the_vhd_boots_under_ovmf", &vhd, Firmware::Uefi))?;
    let ready = m.wait_for_ready(BOOT_TIMEOUT)?;
    assert_eq!(ready.slot, "a");
    Ok(())
}
