//! Loading kernel modules with finit_module(2), in the order the image tool resolved.
//!
//! Debian 13's kernels ship their modules xz-compressed (`.ko.xz`) and decompress them
//! themselves (CONFIG_MODULE_DECOMPRESS): a compressed file is handed to the kernel with
//! MODULE_INIT_COMPRESSED_FILE, as kmod does, so the initramfs carries Debian's exact bytes.

use std::ffi::CString;

#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    #[error("cannot read the module list {path}: {source}")]
    List { path: String, source: std::io::Error },
    #[error("cannot load kernel module {path}: {reason}")]
    Load { path: String, reason: String },
}

/// Loads each module listed (one path per line) in `list`. A module already loaded or built
/// in (EEXIST) is fine. Returns how many were loaded.
pub fn load_list(list: &str) -> Result<usize, KmodError> {
    let text = std::fs::read_to_string(list).map_err(|source| KmodError::List { path: list.into(), source })?;
    let mut n = 0;
    for path in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        load(path)?;
        n += 1;
    }
    Ok(n)
}

/// `MODULE_INIT_COMPRESSED_FILE` from <linux/module.h> (Linux 5.17+); nix and libc do not
/// name it yet.
const MODULE_INIT_COMPRESSED_FILE: nix::libc::c_uint = 4;

/// The finit_module(2) flags for a module file: compressed ones are decompressed by the
/// kernel (EOPNOTSUPP from a kernel built without CONFIG_MODULE_DECOMPRESS).
pub fn flags_for(path: &str) -> nix::kmod::ModuleInitFlags {
    if [".ko.xz", ".ko.zst", ".ko.gz"].iter().any(|ext| path.ends_with(ext)) {
        nix::kmod::ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE)
    } else {
        nix::kmod::ModuleInitFlags::empty()
    }
}

pub fn load(path: &str) -> Result<(), KmodError> {
    let err = |reason: String| KmodError::Load { path: path.into(), reason };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let params = CString::default();
    match nix::kmod::finit_module(&file, &params, flags_for(path)) {
        Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
        Err(nix::Error::EOPNOTSUPP) => Err(err("the kernel cannot decompress modules itself (CONFIG_MODULE_DECOMPRESS is off); ship them uncompressed".into())),
        Err(e) => Err(err(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_modules_are_handed_to_the_kernel_as_such() {
        assert_eq!(flags_for("/lib/modules/6.12/kernel/fs/squashfs/squashfs.ko.xz").bits(), MODULE_INIT_COMPRESSED_FILE);
        assert_eq!(flags_for("/lib/modules/6.12/kernel/x.ko.zst").bits(), MODULE_INIT_COMPRESSED_FILE);
        assert!(flags_for("/lib/modules/6.1/kernel/fs/squashfs/squashfs.ko").is_empty());
    }
}
