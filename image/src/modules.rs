//! Resolving kernel modules and their dependencies from `modules.dep`.
//!
//! The initramfs carries only the modules the boot needs. We read the kernel's own
//! dependency file instead of hard-coding an order, so a new kernel version cannot silently
//! need a module we forgot.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ModulesError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("kernel module {name:?} is not in {dep} (and not built in); check kernel.modules in the profile")]
    Unknown { name: String, dep: PathBuf },
    #[error("no kernel module's path in {dep} starts with {prefix:?}; check kernel.drivers in the profile")]
    NoDriver { prefix: String, dep: PathBuf },
}

/// Module paths relative to `/lib/modules/<version>/`, dependencies first, no duplicates.
/// A requested module that is built into the kernel (modules.builtin) is skipped.
pub fn resolve(moddir: &Path, wanted: &[String]) -> Result<Vec<String>, ModulesError> {
    let deps = Deps::read(moddir)?;
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for name in wanted {
        let key = normalise(name);
        match deps.by_name.get(&key) {
            Some(path) => visit(path, &deps.by_path, &mut seen, &mut order),
            None if deps.builtin.contains(&key) => {}
            None => return Err(ModulesError::Unknown { name: name.clone(), dep: deps.dep_path }),
        }
    }
    Ok(order)
}

/// The drivers stage 1 chooses among by modalias (init/src/modalias.rs).
#[derive(Debug, Default)]
pub struct DriverSet {
    /// Every file to carry, dependencies included, relative to `/lib/modules/<version>/`.
    pub files: Vec<String>,
    /// modules.alias's lines for the drivers (not their helper libraries, which match no
    /// device), as the kernel build wrote them.
    pub alias: String,
    /// modules.dep's lines for every file, with absolute paths (`base` + path): stage 1
    /// loads from them as they are.
    pub dep: String,
}

/// Every module whose path starts with one of `prefixes` ("kernel/drivers/ata/",
/// "kernel/drivers/scsi/sd_mod.ko"), with its dependencies. A prefix that matches no module
/// is an error: a typo would otherwise quietly leave a controller without its driver.
pub fn drivers(moddir: &Path, base: &str, prefixes: &[String]) -> Result<DriverSet, ModulesError> {
    if prefixes.is_empty() {
        return Ok(DriverSet::default());
    }
    let deps = Deps::read(moddir)?;
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    let mut names = HashSet::new();
    for prefix in prefixes {
        let matched: Vec<&String> = deps.by_path.keys().filter(|p| p.starts_with(prefix.as_str())).collect();
        if matched.is_empty() {
            return Err(ModulesError::NoDriver { prefix: prefix.clone(), dep: deps.dep_path });
        }
        for path in matched {
            names.insert(module_name(path));
            visit(path, &deps.by_path, &mut seen, &mut order);
        }
    }
    let alias_path = moddir.join("modules.alias");
    let alias_text = std::fs::read_to_string(&alias_path).map_err(|source| ModulesError::Read { path: alias_path, source })?;
    let mut alias = String::new();
    for line in alias_text.lines() {
        let mut w = line.split_whitespace();
        if w.next() == Some("alias") && w.nth(1).is_some_and(|m| names.contains(&normalise(m))) {
            alias.push_str(line);
            alias.push('\n');
        }
    }
    let mut dep = String::new();
    for path in &order {
        let ds = deps.by_path.get(path).map(|d| d.iter().map(|d| format!(" {base}/{d}")).collect::<String>()).unwrap_or_default();
        dep.push_str(&format!("{base}/{path}:{ds}\n"));
    }
    Ok(DriverSet { files: order, alias, dep })
}

/// modules.dep and modules.builtin, parsed.
struct Deps {
    dep_path: PathBuf,
    /// Module name -> its path.
    by_name: BTreeMap<String, String>,
    /// Path -> the paths it depends on, nearest first.
    by_path: BTreeMap<String, Vec<String>>,
    builtin: HashSet<String>,
}

impl Deps {
    fn read(moddir: &Path) -> Result<Deps, ModulesError> {
        let dep_path = moddir.join("modules.dep");
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|source| ModulesError::Read { path: p.to_owned(), source });
        let dep_text = read(&dep_path)?;
        let builtin = read(&moddir.join("modules.builtin")).unwrap_or_default();
        let mut by_name = BTreeMap::new();
        let mut by_path = BTreeMap::new();
        for line in dep_text.lines() {
            let Some((path, rest)) = line.split_once(':') else { continue };
            by_name.insert(module_name(path), path.to_owned());
            by_path.insert(path.to_owned(), rest.split_whitespace().map(str::to_owned).collect());
        }
        Ok(Deps { dep_path, by_name, by_path, builtin: builtin.lines().map(module_name).collect() })
    }
}

// Depth-first: a module's dependencies are placed before it. modules.dep lists the full
// transitive closure already, but visiting recursively also gets the order right.
fn visit(path: &str, by_path: &BTreeMap<String, Vec<String>>, seen: &mut HashSet<String>, order: &mut Vec<String>) {
    if !seen.insert(path.to_owned()) {
        return;
    }
    if let Some(ds) = by_path.get(path) {
        // modules.dep lists dependencies nearest first; load the farthest first.
        for d in ds.iter().rev() {
            visit(d, by_path, seen, order);
        }
    }
    order.push(path.to_owned());
}

/// "kernel/drivers/md/dm-verity.ko" -> "dm_verity" (the kernel treats '-' and '_' alike).
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    normalise(stem)
}

fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_come_first_and_once() {
        let dir = std::env::temp_dir().join(format!("cairn-moddep-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let dep = "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n\
                   kernel/drivers/virtio/virtio.ko:\nkernel/drivers/virtio/virtio_ring.ko:\n\
                   kernel/drivers/md/dm-verity.ko: kernel/drivers/md/dm-bufio.ko kernel/drivers/md/dm-mod.ko\n\
                   kernel/drivers/md/dm-bufio.ko:\nkernel/drivers/md/dm-mod.ko:\n";
        assert!(std::fs::write(dir.join("modules.dep"), dep).is_ok());
        assert!(std::fs::write(dir.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").is_ok());
        let got = resolve(&dir, &["virtio_blk".into(), "dm_verity".into(), "ext4".into(), "virtio-blk".into()]);
        let got = got.unwrap_or_default();
        assert_eq!(
            got,
            [
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/block/virtio_blk.ko",
                "kernel/drivers/md/dm-mod.ko",
                "kernel/drivers/md/dm-bufio.ko",
                "kernel/drivers/md/dm-verity.ko",
            ]
        );
        let err = resolve(&dir, &["nosuch".into()]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("nosuch"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn drivers_under_a_prefix_bring_their_dependencies_and_only_their_own_aliases() {
        let dir = std::env::temp_dir().join(format!("cairn-drivers-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let dep = "kernel/drivers/ata/ahci.ko.xz: kernel/drivers/ata/libahci.ko.xz kernel/drivers/ata/libata.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz\n\
                   kernel/drivers/ata/libahci.ko.xz: kernel/drivers/ata/libata.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz\n\
                   kernel/drivers/ata/libata.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz\n\
                   kernel/drivers/scsi/scsi_mod.ko.xz:\n\
                   kernel/drivers/scsi/sd_mod.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz\n\
                   kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko.xz:\n";
        let alias = "alias pci:v*d*sv*sd*bc01sc06i01* ahci\nalias scsi:t-0x00* sd_mod\nalias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n";
        assert!(std::fs::write(dir.join("modules.dep"), dep).is_ok());
        assert!(std::fs::write(dir.join("modules.alias"), alias).is_ok());
        let set = drivers(&dir, "/lib/modules/6.12", &["kernel/drivers/ata/".into(), "kernel/drivers/scsi/sd_mod.ko".into()]).unwrap_or_default();
        assert_eq!(set.files, ["kernel/drivers/scsi/scsi_mod.ko.xz", "kernel/drivers/ata/libata.ko.xz", "kernel/drivers/ata/libahci.ko.xz", "kernel/drivers/ata/ahci.ko.xz", "kernel/drivers/scsi/sd_mod.ko.xz"]);
        assert_eq!(set.alias, "alias pci:v*d*sv*sd*bc01sc06i01* ahci\nalias scsi:t-0x00* sd_mod\n", "no NIC alias: not carried");
        assert!(set.dep.contains("/lib/modules/6.12/kernel/drivers/ata/ahci.ko.xz: /lib/modules/6.12/kernel/drivers/ata/libahci.ko.xz /lib/modules/6.12/kernel/drivers/ata/libata.ko.xz /lib/modules/6.12/kernel/drivers/scsi/scsi_mod.ko.xz\n"), "{}", set.dep);
        let err = drivers(&dir, "/lib/modules/6.12", &["kernel/drivers/nvme/".into()]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("kernel/drivers/nvme/") && err.contains("kernel.drivers"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
