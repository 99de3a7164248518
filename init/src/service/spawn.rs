//! Starting one service process: its environment, its output pipe, its cgroup and its
//! sandbox, all set up between fork and exec so the process never runs a single instruction
//! of its own outside them.

use super::definition::Definition;
use super::users;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("user {0:?} does not exist in /etc/passwd")]
    NoUser(String),
    #[error("group {0:?} does not exist in /etc/group")]
    NoGroup(String),
    #[error("sandbox: {0}")]
    Sandbox(#[from] cairn_hardening::sandbox::SandboxError),
    #[error("cannot create the output pipe: {0}")]
    Pipe(std::io::Error),
    #[error("{0}")]
    Directory(#[from] super::directory::DirectoryError),
    #[error("cannot start {command}: {reason}")]
    Exec { command: String, reason: String },
}

/// What one start needs besides the definition.
#[derive(Debug)]
pub struct Spawn<'a> {
    pub def: &'a Definition,
    /// `cgroup.procs` of the service's cgroup, opened for writing; the child writes "0" to it
    /// (moves itself) before anything else.
    pub cgroup_procs: Option<OwnedFd>,
    /// `$NOTIFY_SOCKET` for services with notify readiness.
    pub notify_socket: Option<&'a str>,
    /// /proc/sys/kernel/cap_last_cap.
    pub last_cap: u32,
}

#[derive(Debug)]
pub struct Started {
    pub pid: i32,
    /// The read end of the service's stdout+stderr pipe.
    pub output: OwnedFd,
    /// Who it runs as, resolved once for this run: its probes run the same way.
    pub identity: Identity,
}

/// A service's sandbox with its user and groups resolved, and its home directory.
#[derive(Debug, Clone)]
pub struct Identity {
    pub sandbox: cairn_hardening::sandbox::Sandbox,
    pub home: Option<String>,
}

/// The sandbox a definition asks for, with names resolved against the user database.
pub fn sandbox_for(def: &Definition, passwd: &str, group_text: &str) -> Result<(cairn_hardening::sandbox::Sandbox, Option<String>), SpawnError> {
    let mut sb = cairn_hardening::sandbox::Sandbox {
        no_new_privileges: def.sandbox.no_new_privileges,
        capabilities: def.sandbox.capabilities.clone(),
        read_only_paths: def.sandbox.read_only_paths.clone(),
        private_tmp: def.sandbox.private_tmp,
        rlimits: [
            (cairn_hardening::sandbox::Resource::Nofile, def.limits.nofile),
            (cairn_hardening::sandbox::Resource::Nproc, def.limits.nproc),
            (cairn_hardening::sandbox::Resource::Core, def.limits.core),
            (cairn_hardening::sandbox::Resource::Memlock, def.limits.memlock),
        ]
        .into_iter()
        .filter_map(|(r, v)| Some((r, v?.0)))
        .collect(),
        oom_score_adj: def.oom_score_adj,
        ..Default::default()
    };
    let mut home = None;
    if let Some(name) = &def.user {
        let u = users::user(passwd, name).ok_or_else(|| SpawnError::NoUser(name.clone()))?;
        sb.uid = Some(u.uid);
        sb.gid = Some(u.gid);
        sb.groups = users::groups_of(group_text, name);
        home = Some(u.home);
    }
    if let Some(g) = &def.group {
        sb.gid = Some(users::group(group_text, g).ok_or_else(|| SpawnError::NoGroup(g.clone()))?);
    }
    if let Some(gid) = sb.gid {
        if !sb.groups.contains(&gid) {
            sb.groups.insert(0, gid);
        }
    }
    Ok((sb, home))
}

pub fn spawn(s: Spawn<'_>) -> Result<Started, SpawnError> {
    let def = s.def;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group_text = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let (sandbox, home) = sandbox_for(def, &passwd, &group_text)?;
    let prepared = sandbox.prepare(s.last_cap)?;
    let identity = Identity { sandbox, home };

    for d in &def.directories {
        super::directory::make(d, &passwd)?;
    }
    // Checked here because a failed bind mount in the child only shows as a failed exec.
    for p in &def.sandbox.read_only_paths {
        if !std::path::Path::new(p).exists() {
            return Err(SpawnError::Sandbox(cairn_hardening::sandbox::SandboxError::BadPath(format!("{p} (read-only path does not exist)"))));
        }
    }

    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SpawnError::Pipe(e.into()))?;
    let write2 = write.try_clone().map_err(SpawnError::Pipe)?;
    let mut cmd = command(def, &def.command, &def.args, identity.home.as_deref(), s.cgroup_procs, prepared);
    cmd.stdout(Stdio::from(write)).stderr(Stdio::from(write2));
    if let Some(sock) = s.notify_socket {
        cmd.env("NOTIFY_SOCKET", sock);
    }
    let child = cmd.spawn().map_err(|e| SpawnError::Exec { command: def.command.clone(), reason: e.to_string() })?;
    drop(cmd); // closes our copies of the pipe's write end
    // PID 1 reaps every child through waitpid(-1) in its loop; dropping the handle neither
    // waits nor kills.
    Ok(Started { pid: child.id() as i32, output: read, identity })
}

/// Starts a command probe (`readiness`/`health` with `command = [...]`) as the service's
/// current run does (`identity`, from its [`Started`]): its user, sandbox, limits,
/// environment and cgroup. Returns its pid; its output goes nowhere. As root in PID 1's
/// cgroup a probe could do what the service cannot, and would not count against the
/// service's limits. Nothing is read from the user database here: a probe every 200 ms
/// must not re-read /etc/passwd and /etc/group each time.
pub fn spawn_probe(def: &Definition, identity: &Identity, argv: &[String], cgroup_procs: Option<OwnedFd>, last_cap: u32) -> Result<i32, SpawnError> {
    let prepared = identity.sandbox.prepare(last_cap)?;
    let Some((program, args)) = argv.split_first() else { return Err(SpawnError::Exec { command: String::new(), reason: "empty probe command".into() }) };
    let mut cmd = command(def, program, args, identity.home.as_deref(), cgroup_procs, prepared);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let child = cmd.spawn().map_err(|e| SpawnError::Exec { command: program.clone(), reason: e.to_string() })?;
    Ok(child.id() as i32)
}

/// The health gate's check command (`supervisor::gate`): as root, unsandboxed (the
/// operator's own command from gate.toml, like one they type), a clean environment, no
/// input or output, in a session of its own so a kill reaches only it.
pub fn spawn_gate_check(argv: &[String]) -> Result<i32, SpawnError> {
    let Some((program, args)) = argv.split_first() else { return Err(SpawnError::Exec { command: String::new(), reason: "the health gate's check command is empty".into() }) };
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").env("HOME", "/root");
    cmd.current_dir("/").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: the closure runs in the forked child before execve and only makes the
    // async-signal-safe system calls sigprocmask and setsid; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            // PID 1 blocks the signals it reads through its signalfd; the check must not
            // inherit that mask.
            nix::sys::signal::SigSet::all().thread_unblock()?;
            nix::unistd::setsid()?;
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| SpawnError::Exec { command: program.clone(), reason: e.to_string() })?;
    Ok(child.id() as i32)
}

/// The command for a service's main process or one of its probes: clean environment plus
/// the definition's, and, between fork and exec, a fresh session, the service's cgroup and
/// its sandbox.
fn command(def: &Definition, program: &str, args: &[String], home: Option<&str>, cgroup_procs: Option<OwnedFd>, prepared: cairn_hardening::sandbox::Prepared) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", home.unwrap_or("/root"))
        .envs(&def.environment)
        .stdin(Stdio::null());
    if let Some(dir) = &def.working_directory {
        cmd.current_dir(dir);
    }
    let zero: &'static [u8] = b"0";
    // SAFETY: the closure runs in the forked child before execve. It only makes system calls
    // (sigprocmask, setsid, write, and the sandbox's setrlimit/unshare/mount/prctl/set*id,
    // which `Prepared::enter` documents as allocation-free); everything it touches was
    // prepared before, in the parent, and moved into it (the cgroup fd closes with the
    // Command, after spawn).
    unsafe {
        cmd.pre_exec(move || {
            // PID 1 blocks the signals it reads through its signalfd; a service must not
            // inherit that mask.
            nix::sys::signal::SigSet::all().thread_unblock()?;
            nix::unistd::setsid()?;
            if let Some(fd) = &cgroup_procs {
                // write(2) "0" to cgroup.procs: move this process into the service's cgroup,
                // so its limits hold from its first instruction and every child is counted.
                rustix::io::write(fd, zero)?;
            }
            prepared.enter()
        });
    }
    cmd
}
