//! Service definitions: one TOML file per service, `NAME.toml`.
//!
//! The image ships them in `/etc/cairn/services`; an operator's file of the same name in
//! `/data/cairn/services` replaces the image's one as a whole (and a new name adds a
//! service). Every key is checked: an unknown key is an error, so a typo never silently
//! changes what runs. A broken file is reported and skipped; the rest of the node starts.
//! `docs/services.md` documents every key.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where definitions come from, later directories overriding earlier ones by name.
pub const DIRS: &[&str] = &["/etc/cairn/services", "/data/cairn/services"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} is not valid: {reason} (docs/services.md lists every key)")]
    Parse { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("command {0} does not exist in the image")]
    MissingBinary(String),
    #[error("dependency cycle: {0}")]
    Cycle(String),
    #[error("requires {dep}, which {why}")]
    BadDependency { dep: String, why: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StopMode {
    /// Signal every process in the service's cgroup (the default).
    #[default]
    Cgroup,
    /// Signal only the main process, leave the rest (containerd shims keep containers alive
    /// across a restart of the container runtime).
    MainProcess,
}

/// A check: how readiness or health is decided. Exactly one kind is set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// sd_notify: the service sends `READY=1` to `$NOTIFY_SOCKET` (readiness only).
    #[serde(default)]
    pub notify: bool,
    /// `host:port` accepts a TCP connection.
    pub tcp: Option<String>,
    /// `http://host:port/path` answers 200.
    pub http: Option<String>,
    /// A command (argv) that exits 0.
    pub command: Option<Vec<String>>,
    /// A file that exists.
    pub file: Option<String>,
    /// Seconds one probe may take (readiness: seconds until the start counts as failed).
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Notify,
    Tcp(String),
    Http(String),
    Command(Vec<String>),
    File(String),
}

impl Check {
    pub fn kind(&self) -> Result<CheckKind, String> {
        let mut kinds = Vec::new();
        if self.notify {
            kinds.push(CheckKind::Notify);
        }
        if let Some(t) = &self.tcp {
            kinds.push(CheckKind::Tcp(t.clone()));
        }
        if let Some(h) = &self.http {
            if !h.starts_with("http://") {
                return Err(format!("http check {h:?} must start with http://"));
            }
            kinds.push(CheckKind::Http(h.clone()));
        }
        if let Some(c) = &self.command {
            if c.is_empty() {
                return Err("command check must not be empty".into());
            }
            kinds.push(CheckKind::Command(c.clone()));
        }
        if let Some(f) = &self.file {
            kinds.push(CheckKind::File(f.clone()));
        }
        match kinds.len() {
            1 => Ok(kinds.remove(0)),
            0 => Err("a check needs one of notify, tcp, http, command, file".into()),
            _ => Err("a check takes exactly one of notify, tcp, http, command, file".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Restart {
    pub policy: RestartPolicy,
    /// First delay before a restart; doubles on every failure in a row.
    pub initial_delay_ms: u64,
    /// The cap of the delay.
    pub max_delay_ms: u64,
    /// A run at least this long counts as stable: the delay starts from the beginning again.
    pub reset_after_s: u64,
}

impl Default for Restart {
    fn default() -> Self {
        Restart { policy: RestartPolicy::Always, initial_delay_ms: 500, max_delay_ms: 30_000, reset_after_s: 60 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    #[serde(flatten)]
    pub check: Check,
    /// Seconds between probes once the service is ready.
    pub interval: u64,
    /// Failed probes in a row before the service is restarted.
    pub failures: u32,
}

impl Default for Health {
    fn default() -> Self {
        Health { check: Check::default(), interval: 30, failures: 3 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stop {
    /// The signal that asks the service to stop, written by name ("SIGTERM", "SIGINT") and
    /// parsed when the definition is read.
    #[serde(deserialize_with = "signal_name")]
    pub signal: nix::sys::signal::Signal,
    /// Seconds after the stop signal before SIGKILL.
    pub timeout: u64,
    pub mode: StopMode,
}

impl Default for Stop {
    fn default() -> Self {
        Stop { signal: nix::sys::signal::Signal::SIGTERM, timeout: 10, mode: StopMode::Cgroup }
    }
}

fn signal_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<nix::sys::signal::Signal, D::Error> {
    let name = String::deserialize(d)?;
    name.parse().map_err(|_| serde::de::Error::custom(format!("signal {name:?} is not a signal name like \"SIGTERM\"")))
}

/// A directory a service needs, made before it starts (like systemd's RuntimeDirectory).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    pub path: String,
    /// User that owns it (name or number); root when absent.
    pub owner: Option<String>,
    /// Octal mode as a string, "0755" when absent.
    pub mode: Option<String>,
}

/// A resource limit (setrlimit(2)): a number, or "infinity". Soft and hard are set alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit(pub Option<u64>);

impl<'de> Deserialize<'de> for Rlimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Rlimit(Some(n))),
            Raw::Text(t) if t == "infinity" => Ok(Rlimit(None)),
            Raw::Text(t) => Err(serde::de::Error::custom(format!("{t:?} is not a number or \"infinity\""))),
        }
    }
}

/// cgroup v2 limits, written before every start, and the process's resource limits, set in
/// the child before exec (without them every daemon inherits the kernel's 1024 open files).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// RLIMIT_NOFILE: open files.
    pub nofile: Option<Rlimit>,
    /// RLIMIT_NPROC: processes of the service's user.
    pub nproc: Option<Rlimit>,
    /// RLIMIT_CORE: core dump size in bytes.
    pub core: Option<Rlimit>,
    /// RLIMIT_MEMLOCK: bytes of locked memory.
    pub memlock: Option<Rlimit>,
    /// memory.max: bytes, or with a K/M/G suffix ("512M").
    pub memory_max: Option<String>,
    /// cpu.weight, 1..=10000 (default 100).
    pub cpu_weight: Option<u32>,
    /// pids.max.
    pub pids_max: Option<u32>,
    /// io.weight, 1..=10000 (default 100).
    pub io_weight: Option<u32>,
}

/// The sandbox (see `cairn_hardening::sandbox`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxDef {
    #[serde(default)]
    pub no_new_privileges: bool,
    /// Capabilities kept in the bounding set, e.g. ["CAP_NET_BIND_SERVICE"]; absent keeps all.
    pub capabilities: Option<Vec<String>>,
    #[serde(default)]
    pub read_only_paths: Vec<String>,
    #[serde(default)]
    pub private_tmp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    #[serde(default)]
    pub description: String,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub working_directory: Option<String>,
    /// Directories made (if missing) before every start, e.g. under /run or /var.
    #[serde(default)]
    pub directories: Vec<Directory>,
    /// Started at boot (false: only by `cairnctl start`).
    #[serde(default = "yes")]
    pub autostart: bool,
    /// The binary may be absent (the operator supplies it): then the service shows
    /// `not-installed` instead of being broken.
    #[serde(default)]
    pub optional: bool,
    /// Must be ready before this one starts; if one cannot run, neither does this one.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Start after these if they run at all (ordering only).
    #[serde(default)]
    pub after: Vec<String>,
    pub readiness: Option<Check>,
    pub health: Option<Health>,
    #[serde(default)]
    pub restart: Restart,
    #[serde(default)]
    pub stop: Stop,
    #[serde(default)]
    pub limits: Limits,
    /// /proc/PID/oom_score_adj, -1000 (never killed) ..= 1000 (killed first); the container
    /// runtime gets a negative one so the OOM killer takes a container before it.
    pub oom_score_adj: Option<i32>,
    #[serde(default)]
    pub sandbox: SandboxDef,
}

fn yes() -> bool {
    true
}

impl Definition {
    /// Checks what serde cannot: values, check kinds, names.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        let bad = |m: String| Err(DefinitionError::Invalid(m));
        if !self.command.starts_with('/') {
            return bad(format!("command {:?} must be an absolute path", self.command));
        }
        if let Some(r) = &self.readiness {
            r.kind().map_err(|e| DefinitionError::Invalid(format!("readiness: {e}")))?;
        }
        if let Some(h) = &self.health {
            match h.check.kind() {
                Ok(CheckKind::Notify) => return bad("health: notify is a readiness check only".into()),
                Err(e) => return bad(format!("health: {e}")),
                Ok(_) => {}
            }
            if h.interval == 0 || h.failures == 0 {
                return bad("health: interval and failures must be at least 1".into());
            }
        }
        if self.restart.initial_delay_ms > self.restart.max_delay_ms {
            return bad("restart: initial_delay_ms is above max_delay_ms".into());
        }
        if let Some(m) = &self.limits.memory_max {
            if parse_bytes(m).is_none() {
                return bad(format!("limits: memory_max {m:?} is not a size like \"512M\""));
            }
        }
        for (what, v) in [("cpu_weight", self.limits.cpu_weight), ("io_weight", self.limits.io_weight)] {
            if v.is_some_and(|w| !(1..=10_000).contains(&w)) {
                return bad(format!("limits: {what} must be 1..=10000"));
            }
        }
        if self.oom_score_adj.is_some_and(|a| !(-1000..=1000).contains(&a)) {
            return bad("oom_score_adj must be -1000..=1000".into());
        }
        for d in &self.directories {
            if !d.path.starts_with('/') || d.mode.as_deref().is_some_and(|m| u32::from_str_radix(m, 8).is_err()) {
                return bad(format!("directories: {:?} needs an absolute path and an octal mode like \"0755\"", d.path));
            }
        }
        if let Some(caps) = &self.sandbox.capabilities {
            for c in caps {
                if cairn_hardening::sandbox::capability_by_name(c).is_none() {
                    return bad(format!("sandbox: unknown capability {c:?}"));
                }
            }
        }
        Ok(())
    }
}

/// "512M" -> 536870912. Accepts a plain number of bytes or a K, M, G suffix (powers of 1024).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// A loaded file: the definition, or why it cannot run.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub name: String,
    pub path: PathBuf,
    pub def: Result<Definition, DefinitionError>,
}

pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Loads every `*.toml` of `dirs` (later ones override earlier ones by name), sorted by name.
/// `exists` says whether a command path exists (a parameter so tests need no real files).
pub fn load(dirs: &[&Path], exists: &dyn Fn(&str) -> bool) -> Vec<Loaded> {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml") {
                if let Some(stem) = p.file_stem() {
                    by_name.insert(stem.to_string_lossy().into_owned(), p);
                }
            }
        }
    }
    by_name
        .into_iter()
        .map(|(name, path)| {
            let def = parse_file(&name, &path, exists);
            Loaded { name, path, def }
        })
        .collect()
}

fn parse_file(name: &str, path: &Path, exists: &dyn Fn(&str) -> bool) -> Result<Definition, DefinitionError> {
    let p = path.display().to_string();
    if !valid_name(name) {
        return Err(DefinitionError::Invalid(format!("{name:?} is not a service name (letters, digits, '-', '_')")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| DefinitionError::Read { path: p.clone(), reason: e.to_string() })?;
    let def: Definition = toml::from_str(&text).map_err(|e| DefinitionError::Parse { path: p, reason: one_line(&e.to_string()) })?;
    def.validate()?;
    if !exists(&def.command) {
        return Err(DefinitionError::MissingBinary(def.command.clone()));
    }
    Ok(def)
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('|')).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Definition, DefinitionError> {
        let def: Definition = toml::from_str(text).map_err(|e| DefinitionError::Parse { path: "t".into(), reason: e.to_string() })?;
        def.validate()?;
        Ok(def)
    }

    #[test]
    fn full_definition_parses() {
        let def = parse(
            r#"
            command = "/usr/sbin/dockerd"
            args = ["--live-restore"]
            environment = { DOCKER_RAMDISK = "0" }
            user = "root"
            requires = ["containerd"]
            after = ["network"]
            readiness = { file = "/run/docker.sock", timeout = 120 }
            health = { tcp = "127.0.0.1:2375", interval = 10, failures = 3 }
            restart = { policy = "on-failure", initial_delay_ms = 100, max_delay_ms = 1600 }
            stop = { signal = "SIGINT", timeout = 30, mode = "main-process" }
            limits = { memory_max = "512M", cpu_weight = 200, pids_max = 4096, io_weight = 50 }
            sandbox = { no_new_privileges = true, capabilities = ["CAP_NET_BIND_SERVICE"], read_only_paths = ["/data/etc"], private_tmp = true }
            "#,
        );
        let def = def.expect("parses");
        assert_eq!(def.stop.mode, StopMode::MainProcess);
        assert_eq!(def.restart.max_delay_ms, 1600);
        assert_eq!(def.restart.reset_after_s, 60);
        assert_eq!(def.readiness.map(|r| r.kind()), Some(Ok(CheckKind::File("/run/docker.sock".into()))));
        assert_eq!(parse_bytes(def.limits.memory_max.as_deref().unwrap_or("")), Some(512 << 20));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = parse("comand = \"/bin/true\"\ncommand = \"/bin/true\"").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("comand"), "{e}");
        assert!(parse("command = \"/bin/true\"\n[limits]\nmemory = \"1G\"").is_err());
        assert!(parse("command = \"/bin/true\"\n[limits]\nmemory_max = \"lots\"").is_err());
        assert!(parse("command = \"/bin/true\"\nreadiness = { tcp = \"x:1\", file = \"/f\" }").is_err());
        assert!(parse("command = \"/bin/true\"\nhealth = { notify = true }").is_err());
        let e = parse("command = \"/bin/true\"\nstop = { signal = \"SIGFOO\" }").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("\"SIGFOO\" is not a signal name"), "{e}");
        assert!(parse("command = \"true\"").is_err());
        assert!(parse("command = \"/bin/true\"\nsandbox = { capabilities = [\"CAP_FLY\"] }").is_err());
        assert!(parse("command = \"/bin/true\"\nlimits = { nofile = \"lots\" }").is_err());
        assert!(parse("command = \"/bin/true\"\noom_score_adj = -1001").is_err());
    }

    #[test]
    fn resource_limits_are_numbers_or_infinity() {
        let d = parse("command = \"/bin/true\"\noom_score_adj = -500\nlimits = { nofile = 1048576, nproc = \"infinity\" }").expect("valid");
        assert_eq!((d.limits.nofile, d.limits.nproc, d.limits.core), (Some(Rlimit(Some(1_048_576))), Some(Rlimit(None)), None));
        assert_eq!(d.oom_score_adj, Some(-500));
    }

    #[test]
    fn data_overrides_image_and_missing_binary_is_reported() {
        let base = std::env::temp_dir().join(format!("cairn-def-{}", std::process::id()));
        let (img, data) = (base.join("img"), base.join("data"));
        let _ = std::fs::create_dir_all(&img);
        let _ = std::fs::create_dir_all(&data);
        let ok = std::fs::write(img.join("a.toml"), "command = \"/bin/a\"\n").is_ok()
            && std::fs::write(data.join("a.toml"), "command = \"/bin/a2\"\n").is_ok()
            && std::fs::write(img.join("gone.toml"), "command = \"/no/such\"\n").is_ok()
            && std::fs::write(img.join("notes.txt"), "ignored").is_ok();
        assert!(ok);
        let loaded = load(&[&img, &data], &|c| c != "/no/such");
        let names: Vec<_> = loaded.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["a", "gone"]);
        assert_eq!(loaded[0].def.as_ref().map(|d| d.command.as_str()), Ok("/bin/a2"));
        assert_eq!(loaded[1].def.as_ref().err(), Some(&DefinitionError::MissingBinary("/no/such".into())));
        let _ = std::fs::remove_dir_all(&base);
    }
}
