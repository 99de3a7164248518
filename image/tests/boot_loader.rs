//! The boot loaders inside a built `disk.img` are the image suite's GRUB (Debian 13: 2.12),
//! whatever GRUB the build host has. Read from the disk itself: the GPT, the BIOS boot
//! partition's core image (LZMA-compressed, decompressed here) and BOOTX64.EFI on the ESP.

mod common;

use cairn_updater::gpt::{types, Gpt, Guid};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Command;

/// The version GRUB's `normal` module prints ("GNU GRUB  version %s"): the first NUL-ended
/// string that starts with "2." after the format string's neighbourhood.
fn grub_version(bytes: &[u8]) -> Option<String> {
    let marker = b"GNU GRUB  version %s";
    bytes.windows(marker.len()).position(|w| w == marker)?;
    // The version string is a separate constant (PACKAGE_VERSION): "2.12-9+deb13u4".
    let mut i = 0;
    while i + 2 < bytes.len() {
        if (i == 0 || bytes[i - 1] == 0) && bytes[i] == b'2' && bytes[i + 1] == b'.' && bytes[i + 2].is_ascii_digit() {
            let end = bytes[i..].iter().position(|&b| b == 0).map(|n| i + n)?;
            let s = &bytes[i..end];
            if s.len() < 32 && s.iter().all(|b| b.is_ascii_graphic()) && s.contains(&b'-') {
                return Some(String::from_utf8_lossy(s).into_owned());
            }
        }
        i += 1;
    }
    None
}

fn partition(disk: &Path, type_guid: &str) -> (u64, u64) {
    let mut f = File::open(disk).expect("open disk.img");
    let len = f.metadata().expect("stat").len();
    let gpt = Gpt::read(&mut f, len).expect("disk.img has a valid GPT");
    let want = Guid::parse(type_guid).expect("guid");
    let p = gpt.partitions.iter().find(|p| p.type_guid == want).unwrap_or_else(|| panic!("no partition of type {type_guid}"));
    (p.first_lba * 512, (p.last_lba + 1 - p.first_lba) * 512)
}

/// The i386-pc core image: diskboot (one sector), then the LZMA decompressor, whose header
/// holds the compressed and uncompressed sizes at 0x08 and 0x0c, then the compressed kernel
/// and modules (raw LZMA, lc=3 lp=0 pb=2, as grub-mkimage writes them).
fn decompress_bios_core(core: &[u8]) -> Vec<u8> {
    let word = |at: usize| u32::from_le_bytes(core[at..at + 4].try_into().expect("4 bytes")) as usize;
    let compressed = word(512 + 0x08);
    let uncompressed = word(512 + 0x0c);
    let used = core.iter().rposition(|&b| b != 0).expect("core image is not empty") + 1;
    // The decompressor's length is not recorded; the stream ends where the image's data
    // ends (up to a sector of zero padding; the stream's own last bytes may be zero too),
    // and a raw LZMA stream starts with a zero byte.
    let guess = used.checked_sub(512 + compressed).expect("compressed size fits the image");
    let last = core.len().checked_sub(512 + compressed).expect("compressed size fits the image").min(guess + 64);
    for dec_len in (guess.saturating_sub(511)..=last).rev() {
        let start = 512 + dec_len;
        if core[start] != 0 {
            continue;
        }
        let mut stream = vec![0x5d, 0x00, 0x00, 0x01, 0x00]; // props (lc=3, lp=0, pb=2), 64 KiB dictionary
        stream.extend_from_slice(&core[start..start + compressed]);
        let mut out = Vec::new();
        let opts = lzma_rs::decompress::Options {
            unpacked_size: lzma_rs::decompress::UnpackedSize::UseProvided(Some(uncompressed as u64)),
            ..Default::default()
        };
        if lzma_rs::lzma_decompress_with_options(&mut stream.as_slice(), &mut out, &opts).is_ok() && out.len() == uncompressed {
            return out;
        }
    }
    panic!("could not find GRUB's LZMA payload in the BIOS core image");
}

#[test]
fn bios_and_efi_grub_in_disk_img_are_the_suites_grub_2_12() {
    let dir = common::test_image(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("boot-loader-image"));
    let disk = dir.join("disk.img");
    let manifest = common::manifest(&dir);
    let recorded = |name: &str| {
        manifest["boot_loader"].as_array().and_then(|ps| ps.iter().find(|p| p["name"] == name)).and_then(|p| p["version"].as_str()).map(str::to_owned)
    };

    // BIOS: the core image in the BIOS boot partition.
    let (offset, size) = partition(&disk, types::BIOS_BOOT);
    let mut core = vec![0u8; usize::try_from(size).expect("size")];
    let mut f = File::open(&disk).expect("open");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.read_exact(&mut core).expect("read the BIOS boot partition");
    let bios = grub_version(&decompress_bios_core(&core)).expect("a GRUB version string in the BIOS core image");

    // UEFI: BOOTX64.EFI, copied out of the ESP's FAT with mtools.
    let (offset, _) = partition(&disk, types::ESP);
    let out = Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-n")
        .arg("-i")
        .arg(format!("{}@@{offset}", disk.display()))
        .args(["::/EFI/BOOT/BOOTX64.EFI", "-"])
        .output()
        .expect("mcopy (mtools; ./dev setup installs it)");
    assert!(out.status.success(), "mcopy: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(&out.stdout[..2], b"MZ", "BOOTX64.EFI is a PE image");
    let efi = grub_version(&out.stdout).expect("a GRUB version string in BOOTX64.EFI");

    for (what, v) in [("BIOS core image", &bios), ("BOOTX64.EFI", &efi)] {
        assert!(v.starts_with("2.12-"), "{what} is GRUB {v}, not Debian 13's 2.12");
    }
    assert_eq!(Some(bios.clone()), recorded("grub-pc-bin"), "the manifest records the GRUB the BIOS image was made from");
    assert_eq!(Some(efi.clone()), recorded("grub-efi-amd64-bin"), "the manifest records the GRUB the EFI image was made from");
    eprintln!("BIOS core image: GRUB {bios}; BOOTX64.EFI: GRUB {efi}");
}

#[test]
fn grub_version_is_read_from_its_string_constant() {
    let blob = b"\x00xx\x00GNU GRUB  version %s\x00\x002.12-9+deb13u4\x00prefix\x00";
    assert_eq!(grub_version(blob).as_deref(), Some("2.12-9+deb13u4"));
    assert_eq!(grub_version(b"\x002.12-9\x00"), None, "no version without GRUB's banner");
}
