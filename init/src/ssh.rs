//! Operator access: Debian's OpenSSH server, run by the `ssh` service through
//! `cairnctl ssh run -- /usr/sbin/sshd -D -e`, which first makes the node's host key.
//!
//! The root is read-only and the same on every node, so nothing node-specific is in it:
//! the ed25519 host key is made on the first start and kept on /data (a new instance gets a
//! new one: `provision` removes the old), and the operator's keys come from first-boot
//! configuration. sshd's settings: `image/files/etc/ssh/sshd_config.d/cairn.conf`.

use std::path::{Path, PathBuf};

/// Host keys (root only) and the authorized keys directory.
pub const HOST_KEY_DIR: &str = "/data/cairn/ssh";
/// One file per account (sshd: `AuthorizedKeysFile /data/cairn/ssh/authorized_keys/%u`),
/// owned by root so the account cannot add keys sshd would then trust.
pub const AUTHORIZED_KEYS_DIR: &str = "/data/cairn/ssh/authorized_keys";

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot prepare {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("cannot run ssh-keygen to make the host key {path}")]
    Keygen { path: PathBuf, source: std::io::Error },
    #[error("ssh-keygen could not make the host key {path}: {stderr}")]
    KeygenFailed { path: PathBuf, stderr: String },
}

/// The directories sshd reads, root's and not writable by others (sshd's StrictModes checks
/// every directory up the path), and the host key, made if missing.
pub fn prepare(dir: &Path) -> Result<Option<PathBuf>, SshError> {
    use std::os::unix::fs::PermissionsExt;
    for d in [dir.to_owned(), dir.join("authorized_keys")] {
        std::fs::create_dir_all(&d).map_err(|source| SshError::Dir { path: d.clone(), source })?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).map_err(|source| SshError::Dir { path: d.clone(), source })?;
    }
    let key = dir.join("ssh_host_ed25519_key");
    if key.is_file() && key.with_extension("pub").is_file() {
        return Ok(None);
    }
    // Made under another name and renamed, private key last: a power cut never leaves a key
    // without its public half for sshd to choke on.
    let tmp = dir.join(".new_host_key");
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_file(tmp.with_extension("pub"));
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", ""])
        .arg("-f")
        .arg(&tmp)
        .output()
        .map_err(|source| SshError::Keygen { path: key.clone(), source })?;
    if !out.status.success() {
        return Err(SshError::KeygenFailed { path: key, stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned() });
    }
    let rename = |from: &Path, to: &Path| std::fs::rename(from, to).map_err(|source| SshError::Dir { path: to.to_owned(), source });
    rename(&tmp.with_extension("pub"), &key.with_extension("pub"))?;
    rename(&tmp, &key)?;
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_key_is_made_once_with_private_modes() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().expect("test setup");
        let dir = t.path().join("ssh");
        let made = super::prepare(&dir).expect("ssh-keygen (openssh-client) on the host");
        let key = made.expect("made on the first call");
        let first = std::fs::read(&key).expect("test setup");
        assert_eq!(std::fs::metadata(&key).expect("test setup").permissions().mode() & 0o077, 0, "the private key is the owner's only");
        assert!(std::fs::read_to_string(key.with_extension("pub")).expect("test setup").starts_with("ssh-ed25519 "));
        assert_eq!(super::prepare(&dir).expect("test setup"), None, "kept on the second");
        assert_eq!(std::fs::read(&key).expect("test setup"), first);
        assert_eq!(std::fs::metadata(dir.join("authorized_keys")).expect("test setup").permissions().mode() & 0o777, 0o755);
    }
}
