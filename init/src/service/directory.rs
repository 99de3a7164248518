//! The directories a service definition asks for (`directories = [...]`), made by PID 1 as
//! root before each start.
//!
//! A service may own its directory, so by its next restart it may have replaced the
//! directory, or a directory above it, with a symlink to /etc/shadow. Every step therefore
//! goes through file descriptors: each path component is opened with O_NOFOLLOW relative to
//! the one before (openat(2)), and the mode and owner are set on the final descriptor
//! (fchmod(2), fchown(2)), never on a path that could be swapped between check and use.

use super::definition::Directory;
use super::users;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::os::fd::OwnedFd;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("directory {path}: {component:?} is a symlink; refusing to follow it as root (remove the link to let the service start)")]
    Symlink { path: String, component: String },
    #[error("directory {path}: {component:?} exists and is not a directory")]
    NotDirectory { path: String, component: String },
    #[error("directory {path}: {what}")]
    Io {
        path: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("directory {path}: owner {owner:?} does not exist in /etc/passwd")]
    NoOwner { path: String, owner: String },
    #[error("directory {path}: {mode:?} is not an octal mode")]
    BadMode { path: String, mode: String },
}

/// Makes `d.path` (and any missing parents, root-owned 0755), then sets its mode and owner.
pub fn make(d: &Directory, passwd: &str) -> Result<(), DirectoryError> {
    let path = d.path.as_str();
    let mode = match d.mode.as_deref() {
        None => 0o755,
        Some(m) => u32::from_str_radix(m, 8).map_err(|_| DirectoryError::BadMode { path: path.into(), mode: m.into() })?,
    };
    let owner = match &d.owner {
        None => None,
        Some(name) => Some(users::user(passwd, name).ok_or_else(|| DirectoryError::NoOwner { path: path.into(), owner: name.clone() })?),
    };
    let dir = open_beneath_root(path)?;
    let io = |what, e: Errno| DirectoryError::Io { path: path.into(), what, source: e.into() };
    // fchmod(2) and fchown(2) on the descriptor: they act on the directory we opened, even
    // if the path is renamed or replaced meanwhile.
    rustix::fs::fchmod(&dir, Mode::from_raw_mode(mode)).map_err(|e| io("fchmod", e))?;
    if let Some(u) = owner {
        let uid = rustix::fs::Uid::from_raw(u.uid);
        let gid = rustix::fs::Gid::from_raw(u.gid);
        rustix::fs::fchown(&dir, Some(uid), Some(gid)).map_err(|e| io("fchown", e))?;
    }
    Ok(())
}

/// Walks `path` from "/" one component at a time, making what is missing, and returns the
/// last directory opened. A symlink anywhere on the way is refused.
fn open_beneath_root(path: &str) -> Result<OwnedFd, DirectoryError> {
    let io = |what, e: Errno| DirectoryError::Io { path: path.into(), what, source: e.into() };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir = rustix::fs::open("/", flags, Mode::empty()).map_err(|e| io("open /", e))?;
    for component in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if component == ".." {
            return Err(io("a \"..\" component is not allowed", Errno::INVAL));
        }
        match rustix::fs::mkdirat(&dir, component, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(io("mkdirat", e)),
        }
        dir = match rustix::fs::openat(&dir, component, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                // Say which: fstatat(2) with AT_SYMLINK_NOFOLLOW looks at the entry itself.
                let st = rustix::fs::statat(&dir, component, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).map_err(|e| io("fstatat", e))?;
                let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
                return Err(match kind {
                    rustix::fs::FileType::Symlink => DirectoryError::Symlink { path: path.into(), component: component.into() },
                    rustix::fs::FileType::Directory => io("openat", e),
                    _ => DirectoryError::NotDirectory { path: path.into(), component: component.into() },
                });
            }
            Err(e) => return Err(io("openat", e)),
        };
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(path: &std::path::Path, mode: &str) -> Directory {
        Directory { path: path.to_string_lossy().into_owned(), owner: None, mode: Some(mode.into()) }
    }

    fn mode_of(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0)
    }

    #[test]
    fn makes_missing_parents_and_sets_the_mode() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("a/b/c");
        make(&dir(&p, "0710"), "").expect("made");
        assert_eq!(mode_of(&p), 0o710);
        // Again, on the existing directory: same result, no error.
        make(&dir(&p, "0700"), "").expect("made again");
        assert_eq!(mode_of(&p), 0o700);
    }

    /// Issue 8 item 11: the directory itself replaced by a symlink to a file PID 1 must not
    /// touch. Today's code chmods (and chowns) the target.
    #[test]
    fn a_symlinked_directory_is_refused_and_its_target_untouched() {
        let t = tempfile::tempdir().expect("tempdir");
        let secret = t.path().join("shadow");
        std::fs::write(&secret, "root:x").expect("write");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let link = t.path().join("state");
        std::os::unix::fs::symlink(&secret, &link).expect("symlink");
        let err = make(&dir(&link, "0777"), "").expect_err("a symlink must be refused");
        assert!(matches!(err, DirectoryError::Symlink { ref component, .. } if component == "state"), "{err}");
        assert_eq!(mode_of(&secret), 0o600, "the symlink's target was changed");
    }

    #[test]
    fn a_symlink_above_the_directory_is_refused_too() {
        let t = tempfile::tempdir().expect("tempdir");
        let elsewhere = t.path().join("etc");
        std::fs::create_dir(&elsewhere).expect("mkdir");
        std::os::unix::fs::symlink(&elsewhere, t.path().join("svc")).expect("symlink");
        let err = make(&dir(&t.path().join("svc/data"), "0777"), "").expect_err("refused");
        assert!(matches!(err, DirectoryError::Symlink { ref component, .. } if component == "svc"), "{err}");
        assert!(!elsewhere.join("data").exists(), "a directory was made through the symlink");
    }

    #[test]
    fn a_file_in_the_way_is_named() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::write(t.path().join("f"), "").expect("write");
        let err = make(&dir(&t.path().join("f"), "0755"), "").expect_err("refused");
        assert!(matches!(err, DirectoryError::NotDirectory { .. }), "{err}");
    }
}
