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
}

/// Module paths relative to `/lib/modules/<version>/`, dependencies first, no duplicates.
/// A requested module that is built into the kernel (modules.builtin) is skipped.
pub fn resolve(moddir: &Path, wanted: &[String]) -> Result<Vec<String>, ModulesError> {
    let dep_path = moddir.join("modules.dep");
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|source| ModulesError::Read { path: p.to_owned(), source });
    let dep_text = read(&dep_path)?;
    let builtin = read(&moddir.join("modules.builtin")).unwrap_or_default();
    let mut deps: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in dep_text.lines() {
        let Some((path, rest)) = line.split_once(':') else { continue };
        deps.insert(module_name(path), (path.to_owned(), rest.split_whitespace().map(str::to_owned).collect()));
    }
    let builtin: HashSet<String> = builtin.lines().map(module_name).collect();
    let by_path: BTreeMap<String, Vec<String>> =
        deps.values().map(|(p, d)| (p.clone(), d.clone())).collect();

    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for name in wanted {
        let key = normalise(name);
        match deps.get(&key) {
            Some((path, _)) => visit(path, &by_path, &mut seen, &mut order),
            None if builtin.contains(&key) => {}
            None => return Err(ModulesError::Unknown { name: name.clone(), dep: dep_path }),
        }
    }
    Ok(order)
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
}
