//! Loading kernel modules with finit_module(2), in the order the image tool resolved.

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

pub fn load(path: &str) -> Result<(), KmodError> {
    let err = |reason: String| KmodError::Load { path: path.into(), reason };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let params = CString::default();
    match nix::kmod::finit_module(&file, &params, nix::kmod::ModuleInitFlags::empty()) {
        Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
        Err(e) => Err(err(e.to_string())),
    }
}
