//! One install at a time. The update service and an operator's `cairnctl update install` both
//! write the other slot; two of them at once would interleave their bytes in it, and the
//! second flip could make bootable a slot the first one half overwrote. Each install holds an
//! exclusive `flock(2)` on `RUN/lock` for as long as it runs; the kernel drops the lock when
//! the holder exits, however it exits, so a killed install never leaves the node locked.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another update install is running{}; one install at a time (`cairnctl update progress` shows it)", .0.map(|p| format!(" (PID {p})")).unwrap_or_default())]
    Busy(Option<u32>),
    #[error("cannot take the install lock {}", .0.display())]
    Io(PathBuf, #[source] std::io::Error),
}

/// Held for as long as this value lives.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock in `dir` without waiting, and writes this process's PID into it so
    /// the refusal of a second install can name the first.
    pub fn take(dir: &Path) -> Result<Lock, LockError> {
        let path = dir.join("lock");
        let fail = |e: std::io::Error| LockError::Io(path.clone(), e);
        std::fs::create_dir_all(dir).map_err(fail)?;
        let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(fail)?;
        // flock(2) through rustix: an advisory lock on the open file description, dropped
        // by the kernel when the last descriptor of it closes (our exit included).
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Busy(text.trim().parse().ok()));
            }
            Err(e) => return Err(fail(e.into())),
        }
        file.set_len(0).and_then(|()| file.rewind()).and_then(|()| writeln!(file, "{}", std::process::id())).map_err(fail)?;
        Ok(Lock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_install_is_refused_naming_the_first_and_the_lock_is_free_once_it_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Lock::take(dir.path()).expect("the first install takes the lock");
        // flock conflicts between open file descriptions, so a second open in this same
        // process stands for a second process.
        match Lock::take(dir.path()) {
            Err(LockError::Busy(pid)) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("a second install while the first runs: {other:?}"),
        }
        drop(first);
        Lock::take(dir.path()).expect("free again once the first ended");
    }
}
