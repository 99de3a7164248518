//! Whole or not at all: a file written beside its destination, synced, renamed over it, and
//! the directory synced, so a power cut leaves the old file or the new one, never half.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `data` to `path` with `mode` (the new file has it from its creation: a secret is
/// never readable by others, not even for an instant). Makes the parent directory.
pub fn write(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.new"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_file_has_its_mode_and_no_temporary_is_left() {
        let t = tempfile::tempdir().expect("test setup");
        let p = t.path().join("d/secret.conf");
        super::write(&p, b"one", 0o600).expect("test setup");
        super::write(&p, b"two", 0o600).expect("test setup");
        assert_eq!(std::fs::read(&p).expect("test setup"), b"two");
        assert_eq!(std::fs::metadata(&p).expect("test setup").permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(t.path().join("d")).expect("test setup").count(), 1);
    }
}
