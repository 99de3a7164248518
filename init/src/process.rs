//! Process primitives PID 1 needs wherever it handles children: the supervisor's loop, the
//! shutdown sequence and stage 2's start all reap through here.

use nix::sys::wait::{WaitPidFlag, WaitStatus};

/// Reaps every exited child (waitpid(-1, WNOHANG) until nothing is left); calls
/// `on_exit(pid, status)` for each. As PID 1 this includes orphans re-parented to us.
pub fn reap_all(on_exit: &mut dyn FnMut(i32, WaitStatus)) {
    loop {
        match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(st) => {
                if let Some(pid) = st.pid() {
                    on_exit(pid.as_raw(), st);
                }
            }
        }
    }
}
