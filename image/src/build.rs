//! The whole pipeline: profile -> root file system -> slot image + verity -> initramfs ->
//! ESP with GRUB -> GPT disk -> manifest. Work happens in `<out>/.work`; the finished
//! `disk.img` and `manifest.json` appear only at the very end, so a failed build never
//! leaves anything that looks like a finished image.

use crate::profile::Profile;
use crate::{debian, disk, esp, grub, initramfs, manifest, rootfs, sbom, slot};
use anyhow::{Context, Result};
use cairn_updater::gpt::types;
use cairn_updater::slot::{Slot, BIOS_LABEL, DATA_LABEL, ESP_LABEL};
use cairn_updater::verity::{self, VerityParams};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug)]
pub struct Options {
    pub profile_path: PathBuf,
    pub out: PathBuf,
    pub cache: PathBuf,
    pub epoch: u64,
    pub bins: rootfs::CairnBinaries,
    /// A prepared root file system (Buildroot's target dir) instead of mmdebstrap.
    pub prepared_root: Option<PreparedRoot>,
    /// The TUF root.json the image trusts for updates (checked when the build starts).
    pub update_root: Option<PathBuf>,
    /// The keys directory whose targets key signs the initial slots (with `update_root`).
    pub keys: Option<PathBuf>,
}

#[derive(Debug)]
pub struct PreparedRoot {
    pub dir: PathBuf,
    pub kernel: PathBuf,
}

/// Everything reproducible comes from this seed: GUIDs, verity salt, FAT volume id.
pub fn seed(profile: &Profile, epoch: u64) -> [u8; 32] {
    Sha256::digest(format!("cairn:{}:{}:{}", profile.name, profile.version, epoch)).into()
}

fn derive(seed: &[u8], what: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(what.as_bytes());
    h.finalize().into()
}

struct Progress {
    step: usize,
    total: usize,
    start: Instant,
}

impl Progress {
    fn step<T>(&mut self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.step += 1;
        eprintln!("[{}/{}] {what} ...", self.step, self.total);
        let t = Instant::now();
        let r = f()?;
        eprintln!("[{}/{}] {what}: done in {:.1} s", self.step, self.total, t.elapsed().as_secs_f64());
        Ok(r)
    }
}

pub fn build(opts: &Options) -> Result<manifest::Manifest> {
    let profile = Profile::load(&opts.profile_path)?;
    std::fs::create_dir_all(&opts.out).with_context(|| format!("cannot create output directory {}", opts.out.display()))?;
    // Remove the outputs of an earlier build first: if this one fails, nothing stale remains
    // that a test or an operator could mistake for its result.
    for name in [manifest::FILE, sbom::FILE, "disk.img", "disk.img.partial"] {
        let _ = std::fs::remove_file(opts.out.join(name));
    }
    let work = opts.out.join(".work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let result = build_in(&profile, opts, &work);
    // The root and tools trees are hundreds of MiB; never keep them, whatever happened.
    let _ = std::fs::remove_dir_all(work.join("rootfs"));
    let _ = std::fs::remove_dir_all(work.join("tools"));
    match result {
        Ok(m) => {
            let _ = std::fs::remove_dir_all(&work);
            Ok(m)
        }
        Err(e) => {
            let _ = std::fs::remove_file(opts.out.join("disk.img.partial"));
            Err(e.context(format!("building image {:?} failed; build logs are in {}", profile.name, work.display())))
        }
    }
}

fn build_in(profile: &Profile, opts: &Options, work: &Path) -> Result<manifest::Manifest> {
    let seed = seed(profile, opts.epoch);
    let log = work.join("build.log");
    let mut p = Progress { step: 0, total: 7, start: Instant::now() };
    let suite = &profile.debian.suite;

    let root = p.step(&format!("root file system from Debian {suite} packages"), || match &opts.prepared_root {
        None => Ok(rootfs::build(profile, work, &opts.cache, opts.epoch, &log)?),
        Some(pr) => prepared(pr, work),
    })?;
    // What dpkg installed, read before Cairn's files go in (a prepared Buildroot root has
    // no dpkg database: its manifest lists no packages).
    let packages = match &opts.prepared_root {
        None => debian::installed(&root.dir)?,
        Some(_) => Vec::new(),
    };
    let debian_version = std::fs::read_to_string(root.dir.join("etc/debian_version")).map(|s| s.trim().to_owned()).unwrap_or_default();
    rootfs::customise(&root, profile, &opts.bins, &rootfs::Sources::beside(&opts.profile_path), opts.update_root.as_deref())?;
    let grub = p.step(&format!("boot-loader tools tree (GRUB from Debian {suite})"), || {
        Ok(grub::Grub::prepare(suite, &profile.debian.sources(), &work.join("tools"), &opts.cache, opts.epoch, &log)?)
    })?;

    let params = VerityParams { salt: derive(&seed, "verity-salt"), uuid: derive(&seed, "verity-uuid")[..16].try_into()? };
    let slot_img = p.step("slot image (squashfs + dm-verity)", || Ok(slot::build(&root.dir, work, opts.epoch, &params, &log)?))?;

    let initrd = work.join("initrd");
    let initramfs = p.step("initramfs", || {
        Ok(initramfs::build(&opts.bins.init, &root.dir, &root.kernel_version, &profile.kernel.modules, &profile.kernel.drivers, &initrd, opts.epoch)?)
    })?;

    let signed = match (&opts.update_root, &opts.keys) {
        (Some(trusted), Some(keys)) => Some(sign_slots(profile, &slot_img, &root.vmlinuz, &initrd, trusted, keys, work)?),
        (None, None) => None,
        _ => anyhow::bail!("--update-root and --keys go together: an image that trusts a root needs its slots signed by that root's targets key"),
    };
    let fat_id = u32::from_le_bytes(derive(&seed, "fat-volume-id")[..4].try_into()?);
    let boots: Vec<esp::SlotBoot<'_>> = Slot::ALL
        .iter()
        .map(|&slot| esp::SlotBoot { slot, vmlinuz: &root.vmlinuz, initrd: &initrd, root_hash: &slot_img.verity.root_hash, signed: signed.as_ref().map(|(m, s)| (m.as_path(), s.as_path())) })
        .collect();
    let esp = p.step("ESP with GRUB for BIOS and UEFI", || {
        Ok(esp::build(&grub, work, profile.partitions.esp, fat_id, &boots, opts.epoch, &profile.kernel.cmdline, &log)?)
    })?;

    let verity_mib = verity::hash_size_for(profile.partitions.root << 20).div_ceil(1 << 20).max(1);
    let part = |label: &str, type_guid, mib, content: Option<&Path>, knob| disk::Part {
        label: label.to_owned(),
        type_guid,
        mib,
        content: content.map(Path::to_owned),
        knob,
    };
    let parts = vec![
        part(BIOS_LABEL, types::BIOS_BOOT, 1, Some(&esp.bios_core), "(fixed)"),
        part(ESP_LABEL, types::ESP, profile.partitions.esp, Some(&esp.image), "esp"),
        part(Slot::A.root_label(), types::ROOT_X86_64, profile.partitions.root, Some(&slot_img.squashfs), "root"),
        part(Slot::A.verity_label(), types::ROOT_VERITY_X86_64, verity_mib, Some(&slot_img.hash_tree), "root"),
        part(Slot::B.root_label(), types::ROOT_X86_64, profile.partitions.root, Some(&slot_img.squashfs), "root"),
        part(Slot::B.verity_label(), types::ROOT_VERITY_X86_64, verity_mib, Some(&slot_img.hash_tree), "root"),
        // Left empty: stage 1 creates the file system on first boot and grows it to the disk.
        part(DATA_LABEL, types::LINUX_DATA, profile.partitions.data, None, "data"),
    ];
    // The BIOS core image looks for grub.cfg on this partition number of the boot disk.
    anyhow::ensure!(parts.iter().position(|p| p.label == ESP_LABEL).map(|i| i + 1) == Some(esp::ESP_PARTITION as usize), "the ESP must be partition {}", esp::ESP_PARTITION);
    let gpt = disk::layout(&parts, &seed)?;
    let partial = opts.out.join("disk.img.partial");
    p.step("GPT disk image", || {
        disk::patch_core(&esp.bios_core, gpt.partitions[0].first_lba)?;
        disk::write(&partial, &gpt, &parts, &grub.boot_img())?;
        Ok(())
    })?;

    let m = p.step("manifest, SBOM and checksums", || {
        // Slot artifacts stay beside the disk: the update bundle tool reads them.
        for (from, to) in [(&slot_img.squashfs, "root.squashfs"), (&slot_img.hash_tree, "root.verity"), (&root.vmlinuz, "vmlinuz"), (&initrd, "initrd")] {
            std::fs::rename(from, opts.out.join(to)).with_context(|| format!("cannot move {}", from.display()))?;
        }
        let disk_path = opts.out.join("disk.img");
        std::fs::rename(&partial, &disk_path)?;
        let contents = manifest::Contents {
            suite: suite.clone(),
            debian_version: debian_version.clone(),
            packages: packages.clone(),
            boot_loader: grub.packages.clone(),
            host_tools: crate::tool::host_versions(),
        };
        let m = manifest::Manifest::new(profile, opts.epoch, &opts.out, &gpt, &slot_img.verity, &root.kernel_version, &initramfs.modules, contents)?;
        m.write(&opts.out)?;
        let located: Vec<(debian::Package, sbom::Location)> = packages
            .iter()
            .map(|p| (p.clone(), sbom::Location::Slot))
            .chain(grub.packages.iter().map(|p| (p.clone(), sbom::Location::Esp)))
            .collect();
        let init_sha = manifest::sha256_of(&opts.bins.init)?;
        let ctl_sha = manifest::sha256_of(&opts.bins.cairnctl)?;
        let own = [sbom::OwnFile { name: "cairn-init", sha256: &init_sha }, sbom::OwnFile { name: "cairnctl", sha256: &ctl_sha }];
        let serial: [u8; 16] = derive(&seed, "sbom-serial")[..16].try_into()?;
        sbom::write(
            &opts.out,
            &sbom::Input { image_name: &profile.name, image_version: &profile.version, debian_version: &debian_version, epoch: opts.epoch, serial, packages: &located, own: &own },
        )?;
        Ok(m)
    })?;
    eprintln!("built {} in {:.1} s: {} ({} MiB)", profile.name, p.start.elapsed().as_secs_f64(), opts.out.join("disk.img").display(), m.disk.bytes >> 20);
    Ok(m)
}

/// The initial slots' signed manifest (issue 9 item 5): both slots hold this build, so they
/// share one. Returns the paths of `manifest.toml` and `manifest.sig` in `work`.
fn sign_slots(profile: &Profile, img: &slot::SlotImage, vmlinuz: &Path, initrd: &Path, trusted: &Path, keys: &Path, work: &Path) -> Result<(PathBuf, PathBuf)> {
    use cairn_updater::bundle::{manifest::FORMAT, Manifest, Payload, PayloadKind, SlotVerity, Version};
    let mut payloads = Vec::new();
    for (kind, path) in [(PayloadKind::Root, &img.squashfs), (PayloadKind::Verity, &img.hash_tree), (PayloadKind::Vmlinuz, &vmlinuz.to_owned()), (PayloadKind::Initrd, &initrd.to_owned())] {
        let size = std::fs::metadata(path).with_context(|| format!("cannot stat {}", path.display()))?.len();
        payloads.push(Payload { kind, size, sha256: manifest::sha256_of(path)? });
    }
    let m = Manifest {
        format: FORMAT,
        version: Version::parse(&profile.version).with_context(|| format!("the profile's version {:?}", profile.version))?,
        compatible: profile.name.clone(),
        min_version: Version::parse("0")?,
        security: false,
        deadline: None,
        verity: SlotVerity { root_hash: img.verity.root_hash.clone(), salt: img.verity.salt.clone(), data_blocks: img.verity.data_blocks },
        payloads,
    };
    let (text, sigs) = crate::release::sign_slot(keys, trusted, &m)?;
    let (mpath, spath) = (work.join("slot-manifest.toml"), work.join("slot-manifest.sig"));
    std::fs::write(&mpath, text).with_context(|| format!("cannot write {}", mpath.display()))?;
    std::fs::write(&spath, sigs).with_context(|| format!("cannot write {}", spath.display()))?;
    eprintln!("      slots signed: version {} by the targets key in {}", m.version, keys.display());
    Ok((mpath, spath))
}

fn prepared(pr: &PreparedRoot, work: &Path) -> Result<rootfs::Rootfs> {
    let dir = work.join("rootfs");
    let status = std::process::Command::new("cp").arg("-a").arg(&pr.dir).arg(&dir).status()?;
    anyhow::ensure!(status.success(), "cannot copy {} to {}", pr.dir.display(), dir.display());
    let versions: Vec<_> = std::fs::read_dir(dir.join("lib/modules"))?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    let [kernel_version] = versions.as_slice() else { anyhow::bail!("{} must hold exactly one lib/modules/<version>", pr.dir.display()) };
    let vmlinuz = work.join("vmlinuz");
    std::fs::copy(&pr.kernel, &vmlinuz)?;
    Ok(rootfs::Rootfs { dir, kernel_version: kernel_version.clone(), vmlinuz })
}
