//! cgroup v2: one cgroup per service, `/sys/fs/cgroup/system.slice/NAME.service`.
//!
//! The path has systemd's shape on purpose: journald derives `_SYSTEMD_UNIT` from it, and
//! tools that read /proc/PID/cgroup understand it. Limits are written before every start,
//! so an edited or removed limit never lingers from an earlier run.

use super::definition::{parse_bytes, Limits};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub const ROOT: &str = "/sys/fs/cgroup";
const SLICE: &str = "system.slice";
/// PID 1's own cgroup, named as systemd names it.
const INIT_SCOPE: &str = "init.scope";
const CONTROLLERS: &[&str] = &["cpu", "memory", "pids", "io"];

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {what}: {source}")]
    Io { path: PathBuf, what: &'static str, source: std::io::Error },
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io { path: path.to_owned(), what, source }
}

/// The cgroup tree under one root (a parameter so tests can use a plain directory).
#[derive(Debug, Clone)]
pub struct Tree {
    root: PathBuf,
}

impl Default for Tree {
    fn default() -> Self {
        Tree { root: PathBuf::from(ROOT) }
    }
}

impl Tree {
    pub fn at(root: &Path) -> Tree {
        Tree { root: root.to_owned() }
    }

    /// Moves PID 1 into `init.scope`, then enables the controllers for children of the root
    /// and of system.slice. A controller the kernel lacks is reported, not fatal.
    ///
    /// `init.scope` is where journald (systemd 257) looks for the service manager: `journalctl
    /// -u NAME` matches `UNIT=NAME` only on entries whose sender's `_SYSTEMD_CGROUP` is
    /// `/init.scope` (older journalctl matched `_PID=1`), so PID 1 staying in the root cgroup
    /// hides every line PID 1 forwards for a service from `journalctl -u`.
    pub fn setup(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let scope = self.root.join(INIT_SCOPE);
        let moved = std::fs::create_dir_all(&scope).and_then(|()| std::fs::write(scope.join("cgroup.procs"), std::process::id().to_string()));
        if let Err(e) = moved {
            warnings.push(format!("cannot move PID 1 into {}: {e}; `journalctl -u` will not show service output", scope.display()));
        }
        let slice = self.root.join(SLICE);
        let _ = std::fs::create_dir_all(&slice);
        for dir in [&self.root, &slice] {
            for c in CONTROLLERS {
                if let Err(e) = std::fs::write(dir.join("cgroup.subtree_control"), format!("+{c}")) {
                    warnings.push(format!("cannot enable the {c} controller in {}: {e}", dir.display()));
                }
            }
        }
        warnings
    }

    pub fn path(&self, service: &str) -> PathBuf {
        self.root.join(SLICE).join(format!("{service}.service"))
    }

    /// Creates the service's cgroup, writes its limits, and opens `cgroup.procs` for the
    /// child to move itself into.
    pub fn prepare(&self, service: &str, limits: &Limits) -> Result<OwnedFd, CgroupError> {
        let dir = self.path(service);
        std::fs::create_dir_all(&dir).map_err(io(&dir, "cannot create"))?;
        let memory = limits.memory_max.as_deref().and_then(parse_bytes).map_or("max".to_owned(), |b| b.to_string());
        let pids = limits.pids_max.map_or("max".to_owned(), |p| p.to_string());
        let cpu = limits.cpu_weight.unwrap_or(100).to_string();
        let io_w = format!("default {}", limits.io_weight.unwrap_or(100));
        for (file, value) in [("memory.max", memory), ("pids.max", pids), ("cpu.weight", cpu), ("io.weight", io_w)] {
            let p = dir.join(file);
            // A kernel without the controller has no such file: then there is nothing to
            // limit, and the definition was still honoured as far as it can be.
            if p.exists() {
                std::fs::write(&p, value).map_err(io(&p, "cannot write limit"))?;
            }
        }
        // Swap would let a service exceed memory.max silently; a node has none, but be sure.
        let swap = dir.join("memory.swap.max");
        if swap.exists() {
            let _ = std::fs::write(&swap, "0");
        }
        self.procs(service)
    }

    /// Opens the (existing) cgroup's `cgroup.procs` for a child to move itself into: the
    /// service's main process, or a command probe of it, which counts against its limits.
    pub fn procs(&self, service: &str) -> Result<OwnedFd, CgroupError> {
        let procs = self.path(service).join("cgroup.procs");
        let f = std::fs::OpenOptions::new().write(true).open(&procs).map_err(io(&procs, "cannot open"))?;
        Ok(f.into())
    }

    /// The processes in the service's cgroup.
    pub fn pids(&self, service: &str) -> Vec<i32> {
        std::fs::read_to_string(self.path(service).join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILLs every process in the cgroup at once (cgroup.kill, Linux 5.14+), falling
    /// back to signalling each listed process.
    pub fn kill_all(&self, service: &str) {
        if std::fs::write(self.path(service).join("cgroup.kill"), "1").is_err() {
            self.signal_all(service, nix::sys::signal::Signal::SIGKILL);
        }
    }

    pub fn signal_all(&self, service: &str, sig: nix::sys::signal::Signal) {
        for pid in self.pids(service) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
    }

    /// memory.events' `oom_kill` count: how often the kernel killed a process of this
    /// service for going over memory.max.
    pub fn oom_kills(&self, service: &str) -> u64 {
        std::fs::read_to_string(self.path(service).join("memory.events"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// The service a process belongs to, from /proc/PID/cgroup (`0::/system.slice/NAME.service`).
pub fn service_of(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup.lines().find_map(|l| l.strip_prefix("0::/system.slice/")).and_then(|rest| rest.split('/').next()).and_then(|u| u.strip_suffix(".service"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_written_and_reset() {
        let root = std::env::temp_dir().join(format!("cairn-cg-{}", std::process::id()));
        let t = Tree::at(&root);
        let dir = t.path("web");
        let _ = std::fs::create_dir_all(&dir);
        for f in ["memory.max", "pids.max", "cpu.weight", "io.weight", "cgroup.procs"] {
            let _ = std::fs::write(dir.join(f), "");
        }
        let limits = Limits { memory_max: Some("64M".into()), cpu_weight: Some(50), pids_max: Some(100), io_weight: None, ..Default::default() };
        assert!(t.prepare("web", &limits).is_ok());
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("pids.max"), "100");
        assert_eq!(read("cpu.weight"), "50");
        assert_eq!(read("io.weight"), "default 100");
        assert!(t.prepare("web", &Limits::default()).is_ok());
        assert_eq!(read("memory.max"), "max", "a removed limit is reset on the next start");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn setup_moves_pid1_into_init_scope() {
        let root = std::env::temp_dir().join(format!("cairn-cg-scope-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&root);
        let _ = Tree::at(&root).setup();
        let procs = std::fs::read_to_string(root.join("init.scope/cgroup.procs")).unwrap_or_default();
        assert_eq!(procs, std::process::id().to_string(), "journalctl -u matches UNIT= only from /init.scope");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn service_of_a_process() {
        assert_eq!(service_of("0::/system.slice/journald.service\n"), Some("journald"));
        assert_eq!(service_of("0::/docker/abc\n"), None);
        assert_eq!(service_of("0::/\n"), None);
    }
}
