//! Services: definitions from /etc/cairn/services/*.toml, started at boot and restarted when
//! they exit, with exponential backoff.
//!
//! This is the first cut of the supervisor (issue 3 grows it: dependencies, readiness,
//! cgroups, sandbox, logs). A broken definition is reported and skipped; the rest start.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("service {name}: cannot read {path}: {reason}")]
    Read { name: String, path: String, reason: String },
    #[error("service {name}: {path} is not valid: {reason}")]
    Parse { name: String, path: String, reason: String },
    #[error("service {name}: command {command} does not exist in the image")]
    Missing { name: String, command: String },
    #[error("service {name}: cannot start {command}: {reason}")]
    Spawn { name: String, command: String, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    #[default]
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub restart: Restart,
    /// Seconds between SIGTERM and SIGKILL at shutdown.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: u64,
}

fn default_stop_timeout() -> u64 {
    10
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Running { pid: i32 },
    /// Exited; waiting for `at` to start again.
    Backoff { at: Instant },
    Stopped,
}

#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub def: Definition,
    pub state: State,
    pub restarts: u32,
    pub last_exit: Option<String>,
    started: Option<Instant>,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A run this long resets the backoff: the service was healthy, this is a new failure.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// Loads every `*.toml` in `dir`, sorted by name. Broken files come back as errors.
pub fn load_dir(dir: &Path) -> (Vec<Service>, Vec<ServiceError>) {
    let mut files: Vec<_> = std::fs::read_dir(dir).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for path in files {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let p = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                bad.push(ServiceError::Read { name, path: p, reason: e.to_string() });
                continue;
            }
        };
        match toml::from_str::<Definition>(&text) {
            Ok(def) if !Path::new(&def.command).is_file() => bad.push(ServiceError::Missing { name, command: def.command }),
            Ok(def) => ok.push(Service { name, def, state: State::Stopped, restarts: 0, last_exit: None, started: None }),
            Err(e) => bad.push(ServiceError::Parse { name, path: p, reason: e.to_string().trim().to_owned() }),
        }
    }
    (ok, bad)
}

impl Service {
    pub fn start(&mut self) -> Result<i32, ServiceError> {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(&self.def.command);
        cmd.args(&self.def.args).stdin(std::process::Stdio::null());
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // async-signal-safe functions: sigprocmask(2) (PID 1 blocks the signals it reads
        // through its signalfd; a child must not inherit that mask) and setsid(2).
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::signal::SigSet::all().thread_unblock()?;
                nix::unistd::setsid()?;
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| ServiceError::Spawn { name: self.name.clone(), command: self.def.command.clone(), reason: e.to_string() })?;
        // PID 1 reaps every child through waitpid(-1) in its signalfd loop; dropping the
        // handle neither waits nor kills.
        let pid = child.id() as i32;
        self.state = State::Running { pid };
        self.started = Some(Instant::now());
        Ok(pid)
    }

    /// Records an exit and decides when (if ever) to start again.
    pub fn exited(&mut self, how: String, success: bool, now: Instant) {
        self.last_exit = Some(how);
        let again = match self.def.restart {
            Restart::Always => true,
            Restart::OnFailure => !success,
            Restart::Never => false,
        };
        if !again {
            self.state = State::Stopped;
            return;
        }
        let ran = self.started.map(|s| now.duration_since(s)).unwrap_or_default();
        if ran >= STABLE_RUN {
            self.restarts = 0;
        }
        self.restarts += 1;
        self.state = State::Backoff { at: now + backoff(self.restarts) };
    }
}

/// 0.5 s, 1 s, 2 s, ... up to 30 s.
pub fn backoff(restarts: u32) -> Duration {
    BACKOFF_FIRST.saturating_mul(1u32 << restarts.saturating_sub(1).min(16)).min(BACKOFF_CAP)
}

/// The services by name, for status output.
pub fn summary(services: &[Service]) -> BTreeMap<String, String> {
    services
        .iter()
        .map(|s| {
            let st = match &s.state {
                State::Running { pid } => format!("running pid={pid} restarts={}", s.restarts),
                State::Backoff { .. } => format!("restarting restarts={}", s.restarts),
                State::Stopped => "stopped".to_owned(),
            };
            (s.name.clone(), st)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(20), BACKOFF_CAP);
    }

    #[test]
    fn broken_definitions_are_reported_and_skipped() {
        let dir = std::env::temp_dir().join(format!("cairn-svc-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let ok = std::fs::write(dir.join("good.toml"), "command = \"/bin/sh\"\nargs = [\"-c\", \"true\"]\n").is_ok()
            && std::fs::write(dir.join("typo.toml"), "comand = \"/bin/sh\"\n").is_ok()
            && std::fs::write(dir.join("gone.toml"), "command = \"/no/such/binary\"\n").is_ok();
        assert!(ok);
        let (good, bad) = load_dir(&dir);
        assert_eq!(good.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["good"]);
        let msgs: Vec<String> = bad.iter().map(|e| e.to_string()).collect();
        assert!(msgs.iter().any(|m| m.contains("typo") && m.contains("comand")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.contains("gone") && m.contains("does not exist")), "{msgs:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
