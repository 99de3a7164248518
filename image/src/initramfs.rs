//! The initramfs: `cairn-init` as `/init`, only the kernel modules the boot needs, and the
//! update keyring stage 1 checks the slot's signature with.
//!
//! `/etc/cairn/modules` lists the modules in load order (dependencies first), so stage 1
//! needs no modprobe. A profile's `kernel.drivers` adds hardware drivers that stage 1 loads
//! only for the devices it finds, from `/etc/cairn/drivers.alias` and `drivers.dep`
//! (modules.alias and modules.dep cut down to them).

use crate::cpio::Cpio;
use crate::modules;
use cairn_updater::slot_trust::KEYRING;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("{0}")]
    Modules(#[from] modules::ModulesError),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write the initramfs {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

#[derive(Debug)]
pub struct Initramfs {
    pub path: PathBuf,
    pub modules: Vec<String>,
    /// The hardware drivers stage 1 chooses among by modalias, dependencies included.
    pub drivers: Vec<String>,
}

pub fn build(
    init_bin: &Path,
    rootfs: &Path,
    kernel_version: &str,
    wanted: &[String],
    drivers: &[String],
    out: &Path,
    epoch: u64,
) -> Result<Initramfs, InitramfsError> {
    let moddir = rootfs.join("lib/modules").join(kernel_version);
    let order = modules::resolve(&moddir, wanted)?;
    let base = format!("lib/modules/{kernel_version}");
    let driver_set = modules::drivers(&moddir, &format!("/{base}"), drivers)?;
    let read = |p: &Path| std::fs::read(p).map_err(|source| InitramfsError::Read { path: p.to_owned(), source });

    let mut c = Cpio::new(epoch);
    for d in ["dev", "proc", "sys", "run", "sysroot", "etc", "etc/cairn", "lib", "lib/modules"] {
        c.dir(d);
    }
    c.char_dev("dev/console", 0o600, 5, 1);
    c.char_dev("dev/null", 0o666, 1, 3);
    // The marker that tells cairn-init it is running as stage 1.
    c.file("etc/initrd-release", 0o644, b"NAME=cairn-initramfs\n");
    c.file("init", 0o755, &read(init_bin)?);
    c.dir(&base);
    let mut dirs = std::collections::BTreeSet::new();
    let mut carried = std::collections::BTreeSet::new();
    let mut list = String::new();
    for m in order.iter().chain(&driver_set.files) {
        if !carried.insert(m) {
            continue;
        }
        let mut prefix = base.clone();
        for part in m.split('/').collect::<Vec<_>>().split_last().map(|(_, d)| d.to_vec()).unwrap_or_default() {
            prefix = format!("{prefix}/{part}");
            if dirs.insert(prefix.clone()) {
                c.dir(&prefix);
            }
        }
        c.file(&format!("{base}/{m}"), 0o644, &read(&moddir.join(m))?);
    }
    for m in &order {
        list.push_str(&format!("/{base}/{m}\n"));
    }
    if !driver_set.files.is_empty() {
        // Stage 1's modalias table (init/src/modalias.rs: ALIAS_FILE, DEP_FILE).
        c.file("etc/cairn/drivers.alias", 0o644, driver_set.alias.as_bytes());
        c.file("etc/cairn/drivers.dep", 0o644, driver_set.dep.as_bytes());
    }
    c.file("etc/cairn/modules", 0o644, list.as_bytes());
    // The keyring stage 1 checks the slot's signed manifest against: the TUF root the
    // image trusts (`cairn-image build --update-root`), if it has one.
    let keyring = rootfs.join(KEYRING);
    if keyring.exists() {
        c.dir("etc/cairn/update");
        c.file(KEYRING, 0o644, &read(&keyring)?);
    }
    let mut f = std::fs::File::create(out).map_err(|source| InitramfsError::Write { path: out.to_owned(), source })?;
    c.finish(&mut f).map_err(|source| InitramfsError::Write { path: out.to_owned(), source })?;
    Ok(Initramfs { path: out.to_owned(), modules: order, drivers: driver_set.files })
}
