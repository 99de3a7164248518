//! The EFI system partition and GRUB for both firmware types.
//!
//! One FAT file system serves both: UEFI firmware starts `EFI/BOOT/BOOTX64.EFI`, and the
//! BIOS core image (in its own partition, see `disk.rs`) reads partition 2 of the disk the
//! BIOS booted. Neither searches other disks (a USB stick with another Cairn image has the
//! same FAT volume id). Both read `grub/grub.cfg`, which picks the slot from `grub/grubenv`
//! (RAUC's A/B scheme) and names the ESP it booted from to the kernel (`cairn.esp=`).

use crate::grub::{Grub, GrubError, Platform};
use crate::tool::{self, ToolError};
use cairn_updater::grubenv::GrubEnv;
use cairn_updater::install::{ESP_MANIFEST, ESP_SIGNATURES};
use cairn_updater::slot::Slot;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum EspError {
    #[error("{0}")]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Grub(#[from] GrubError),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("grubenv: {0}")]
    Grubenv(#[from] cairn_updater::grubenv::GrubenvError),
    #[error("the ESP content needs {need_mib} MiB but partitions.esp is {have_mib} MiB: raise partitions.esp to at least {need_mib}")]
    TooSmall { need_mib: u64, have_mib: u64 },
}

/// GRUB modules both images carry. `probe` reads the ESP's partition GUID, `loadenv` reads
/// and writes grubenv, `serial`/`terminal` put the menu on the serial console.
const GRUB_MODULES: &[&str] = &[
    "part_gpt", "fat", "normal", "linux", "probe", "configfile", "loadenv", "test", "echo", "sleep", "reboot", "halt", "serial",
    "terminal", "true",
];

/// The ESP's partition number in the disk layout (`build.rs` checks it): the BIOS core
/// image's prefix names it on the boot disk, `(,gpt2)`, which GRUB completes with the
/// drive the BIOS booted.
pub const ESP_PARTITION: u32 = 2;

/// Where each core image finds grub.cfg: EFI GRUB on the device it was loaded from, BIOS
/// GRUB on partition ESP_PARTITION of the boot drive.
fn prefix(platform: Platform) -> String {
    match platform {
        Platform::I386Pc => format!("(,gpt{ESP_PARTITION})/grub"),
        Platform::X86_64Efi => "/grub".into(),
    }
}

/// What goes into each slot's directory on the ESP.
#[derive(Debug)]
pub struct SlotBoot<'a> {
    pub slot: Slot,
    pub vmlinuz: &'a Path,
    pub initrd: &'a Path,
    pub root_hash: &'a str,
    /// The slot's signed manifest and its signatures (`manifest.toml`, `manifest.sig`), which
    /// stage 1 checks the root hash against; None for an image without update keys.
    pub signed: Option<(&'a Path, &'a Path)>,
}

#[derive(Debug)]
pub struct Esp {
    pub image: PathBuf,
    pub bios_core: PathBuf,
}

/// The GRUB script. Slot choice, in order of ORDER: the first slot with OK=1 and TRY=0 is
/// booted. A slot on trial (TRIAL=1: written by an update, not yet committed) has its LEFT
/// counted down before it boots, and on its last try gets TRY=1; PID 1 commits it (TRY=0,
/// TRIAL=0) once it proved healthy, so a trial that keeps dying before that is skipped after
/// `TRIAL_TRIES` boots (an old grubenv without LEFT gives one). A committed slot gets no TRY:
/// a power cut during its boot must not cost it (failures with a record are counted by
/// PID 1 in `X_FAILS`, which sets TRY itself at the limit; see `cairn_updater::grubenv`).
///
/// The state comes from the first of the two grubenv copies that loads (a zeroed or torn
/// block fails load_env's header check); if neither does, the defaults set first boot A,
/// then B, and PID 1 rewrites both copies at its next change. TRY and LEFT go to both
/// copies before the kernel starts.
pub fn grub_cfg(cmdline: &str) -> String {
    let (trial_a, trial_b) = (count_try('A'), count_try('B'));
    format!(
        r#"# Cairn boot script, written by cairn-image. The slot state lives in grubenv.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
set ORDER="A B"
set A_OK=1
set A_TRY=0
set B_OK=1
set B_TRY=0
set A_TRIAL=0
set B_TRIAL=0
set A_LEFT=0
set B_LEFT=0
if load_env -f $prefix/grubenv ORDER A_OK A_TRY A_TRIAL A_LEFT B_OK B_TRY B_TRIAL B_LEFT; then
  true
elif load_env -f $prefix/grubenv.b ORDER A_OK A_TRY A_TRIAL A_LEFT B_OK B_TRY B_TRIAL B_LEFT; then
  echo "cairn: grubenv does not read; using its second copy grubenv.b"
else
  echo "cairn: neither grubenv copy reads; booting in the default order A B"
fi
set cairn_slot=""
for s in $ORDER; do
  if [ -z "$cairn_slot" ]; then
    if [ "$s" = "A" ]; then
      if [ "$A_OK" = "1" -a "$A_TRY" = "0" ]; then set cairn_slot=a; if [ "$A_TRIAL" = "1" ]; then {trial_a}; fi; fi
    fi
    if [ "$s" = "B" ]; then
      if [ "$B_OK" = "1" -a "$B_TRY" = "0" ]; then set cairn_slot=b; if [ "$B_TRIAL" = "1" ]; then {trial_b}; fi; fi
    fi
  fi
done
if [ -z "$cairn_slot" ]; then
  echo "cairn: no slot is bootable (A_OK=$A_OK A_TRY=$A_TRY B_OK=$B_OK B_TRY=$B_TRY)."
  echo "cairn: clearing the try flags of slots still marked OK and retrying in 10 s."
  set A_TRY=0
  set B_TRY=0
  save_env -f $prefix/grubenv A_TRY B_TRY
  save_env -f $prefix/grubenv.b A_TRY B_TRY
  sleep 10
  reboot
fi
save_env -f $prefix/grubenv A_TRY B_TRY A_LEFT B_LEFT
save_env -f $prefix/grubenv.b A_TRY B_TRY A_LEFT B_LEFT
source /$cairn_slot/slot.cfg
# The boot disk, for stage 1: the partition GUID of this ESP (each disk's own after its
# first boot).
probe --set=cairn_esp --part-uuid $root
echo "cairn: booting slot $cairn_slot"
linux /$cairn_slot/vmlinuz {cmdline} cairn.slot=$cairn_slot cairn.roothash=$cairn_roothash cairn.esp=$cairn_esp
initrd /$cairn_slot/initrd
boot
"#
    )
}

#[allow(clippy::too_many_arguments)]
pub fn build(grub: &Grub, work: &Path, size_mib: u64, volume_id: u32, slots: &[SlotBoot<'_>], epoch: u64, cmdline: &str, log: &Path) -> Result<Esp, EspError> {
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| EspError::Io { what, path, source }
    };
    let grub_dir = work.join("grub");
    std::fs::create_dir_all(&grub_dir).map_err(io("cannot create", &grub_dir))?;
    let bios_core = grub_dir.join("core.img");
    let efi = grub_dir.join("BOOTX64.EFI");
    for (platform, out, extra) in [(Platform::I386Pc, &bios_core, &["biosdisk"][..]), (Platform::X86_64Efi, &efi, &[][..])] {
        let modules: Vec<&str> = GRUB_MODULES.iter().chain(extra).copied().collect();
        grub.mkimage(platform, &prefix(platform), &modules, out, log)?;
    }

    let cfg = grub_dir.join("grub.cfg");
    std::fs::write(&cfg, grub_cfg(cmdline)).map_err(io("cannot write", &cfg))?;
    let env = grub_dir.join("grubenv");
    std::fs::write(&env, GrubEnv::new_ab().to_block()?).map_err(io("cannot write", &env))?;

    // Files to copy: (host path, ESP path).
    let mut files: Vec<(PathBuf, String)> = vec![
        (efi.clone(), "/EFI/BOOT/BOOTX64.EFI".into()),
        (cfg, "/grub/grub.cfg".into()),
        (env.clone(), "/grub/grubenv".into()),
        (env, "/grub/grubenv.b".into()),
    ];
    for s in slots {
        let slot_cfg = grub_dir.join(format!("slot-{}.cfg", s.slot.lower()));
        std::fs::write(&slot_cfg, format!("set cairn_roothash={}\n", s.root_hash)).map_err(io("cannot write", &slot_cfg))?;
        let dir = s.slot.lower();
        files.push((s.vmlinuz.to_owned(), format!("/{dir}/vmlinuz")));
        files.push((s.initrd.to_owned(), format!("/{dir}/initrd")));
        files.push((slot_cfg, format!("/{dir}/slot.cfg")));
        if let Some((manifest, sigs)) = s.signed {
            files.push((manifest.to_owned(), format!("/{dir}/{ESP_MANIFEST}")));
            files.push((sigs.to_owned(), format!("/{dir}/{ESP_SIGNATURES}")));
        }
    }
    let mut need = 0u64;
    let mut largest_slot = 0u64;
    for s in slots {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).map_err(io("cannot stat", p));
        largest_slot = largest_slot.max(size(s.vmlinuz)? + size(s.initrd)?);
    }
    for (p, _) in &files {
        need += std::fs::metadata(p).map_err(io("cannot stat", p))?.len();
    }
    // Room for FAT's tables and cluster slack, and for one more slot's kernel and initramfs:
    // an update writes the new ones beside the old before it removes anything.
    let need_mib = (need + largest_slot).div_ceil(1 << 20) + 4;
    if need_mib > size_mib {
        return Err(EspError::TooSmall { need_mib, have_mib: size_mib });
    }

    let image = work.join("esp.img");
    let _ = std::fs::remove_file(&image);
    let mut mkfs = Command::new("mkfs.vfat");
    mkfs.args(["--invariant", "-i", &format!("{volume_id:08x}"), "-n", "ESP", "-C"]).arg(&image).arg((size_mib * 1024).to_string());
    tool::run(mkfs, log)?;
    let mtools = |prog: &str| {
        let mut c = Command::new(prog);
        // mtools stamps directory entries with SOURCE_DATE_EPOCH; skip its geometry check
        // because the "disk" is a plain file.
        c.env("SOURCE_DATE_EPOCH", epoch.to_string()).env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(&image);
        c
    };
    let mut dirs = vec!["/EFI".to_string(), "/EFI/BOOT".into(), "/grub".into()];
    dirs.extend(slots.iter().map(|s| format!("/{}", s.slot.lower())));
    let mut mmd = mtools("mmd");
    mmd.args(dirs.iter().map(|d| format!("::{d}")));
    tool::run(mmd, log)?;
    for (host, dest) in &files {
        set_mtime(host, epoch).map_err(io("cannot set the time of", host))?;
        let mut mcopy = mtools("mcopy");
        mcopy.arg("-m").arg(host).arg(format!("::{dest}"));
        tool::run(mcopy, log)?;
    }
    Ok(Esp { image, bios_core })
}

fn set_mtime(p: &Path, epoch: u64) -> std::io::Result<()> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    std::fs::File::options().write(true).open(p)?.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t))
}

/// GRUB script (which has no arithmetic) counting one try of slot `x` on trial down:
/// LEFT=3 becomes 2, 2 becomes 1, and the last try (LEFT 1, 0 or missing) sets TRY.
fn count_try(x: char) -> String {
    use cairn_updater::grubenv::TRIAL_TRIES;
    let mut s = String::new();
    for left in (2..=TRIAL_TRIES).rev() {
        let n = TRIAL_TRIES - left + 1;
        s.push_str(&format!("if [ \"${x}_LEFT\" = \"{left}\" ]; then set {x}_LEFT={}; echo \"cairn: slot {} is on trial: try {n} of {TRIAL_TRIES}\"; el", left - 1, x.to_ascii_lowercase()));
    }
    s.push_str(&format!("se set {x}_LEFT=0; set {x}_TRY=1; echo \"cairn: slot {} is on trial: its last try\"; fi", x.to_ascii_lowercase()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_images_read_the_boot_disk_only() {
        assert_eq!(prefix(Platform::I386Pc), "(,gpt2)/grub");
        assert_eq!(prefix(Platform::X86_64Efi), "/grub");
        let cfg = grub_cfg("console=ttyS0");
        assert!(!cfg.contains("search"), "grub.cfg must not look on other disks: {cfg}");
        assert!(cfg.contains("probe --set=cairn_esp --part-uuid $root") && cfg.contains("cairn.esp=$cairn_esp"));
    }

    /// GRUB's own parser reads the script (grub-common's grub-script-check).
    #[test]
    fn grub_cfg_parses_with_grub_script_check() {
        let path = std::env::temp_dir().join(format!("cairn-grub-cfg-{}", std::process::id()));
        std::fs::write(&path, grub_cfg("console=ttyS0")).expect("write grub.cfg");
        let out = std::process::Command::new("grub-script-check").arg(&path).output();
        let _ = std::fs::remove_file(&path);
        let out = out.expect("grub-script-check is missing: apt-get install grub-common (or ./dev setup)");
        assert!(out.status.success(), "grub-script-check: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    fn grub_cfg_marks_try_before_booting() {
        let cfg = grub_cfg("console=ttyS0");
        let save = cfg.find("save_env -f $prefix/grubenv A_TRY B_TRY A_LEFT B_LEFT\nsave_env -f $prefix/grubenv.b A_TRY B_TRY A_LEFT B_LEFT\nsource").unwrap_or(usize::MAX);
        let boot = cfg.find("\nboot\n").unwrap_or(0);
        assert!(save < boot, "TRY must be saved to both copies before the kernel starts");
        // With neither copy readable, both slots count as good: "none is good" never boots.
        let load = cfg.find("if load_env").unwrap_or(0);
        assert!(cfg[..load].contains("set A_OK=1") && cfg[..load].contains("set B_OK=1"), "{cfg}");
        assert!(cfg.contains("cairn.slot=$cairn_slot cairn.roothash=$cairn_roothash"));
        // Only a slot on trial gets TRY: a committed one must survive a power cut mid-boot.
        for x in ["A", "B"] {
            assert!(cfg.contains(&format!("if [ \"${x}_TRIAL\" = \"1\" ]; then if [ \"${x}_LEFT\" = \"3\" ]; then set {x}_LEFT=2;")), "{cfg}");
            assert!(cfg.contains(&format!("else set {x}_LEFT=0; set {x}_TRY=1;")), "the last try sets TRY: {cfg}");
            assert!(cfg.matches(&format!(" {x}_LEFT")).count() >= 4, "{x}_LEFT is not loaded from both copies and saved to both: {cfg}");
            assert!(cfg.matches(&format!(" {x}_TRIAL")).count() >= 2, "{x}_TRIAL is not loaded from both copies: {cfg}");
        }
    }
}
