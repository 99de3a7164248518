//! Running tools (mmdebstrap, mksquashfs, mtools on the host; grub-mkimage in the tools tree) with clear errors.
//!
//! Each tool's output goes to a log file in the work directory; when a tool fails, the error
//! names the tool, the Debian package that provides it, and the last lines of its log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{tool} is not installed: run `apt-get install {package}` (or ./dev setup)")]
    Missing { tool: String, package: String },
    #[error("{tool} failed ({status}); last lines of {log}:\n{tail}")]
    Failed { tool: String, status: String, log: PathBuf, tail: String },
    #[error("cannot run {tool}: {source}")]
    Spawn { tool: String, source: std::io::Error },
}

/// The Debian package that provides each host tool we call.
pub fn package_of(tool: &str) -> &'static str {
    match tool {
        "mmdebstrap" => "mmdebstrap",
        "mksquashfs" => "squashfs-tools",
        "mkfs.vfat" => "dosfstools",
        "mcopy" | "mmd" => "mtools",
        _ => "the package that provides it",
    }
}

pub fn find(tool: &str) -> Result<PathBuf, ToolError> {
    if tool.contains('/') {
        // A path, not a name to look up (a tool from the boot-loader tools tree).
        let p = PathBuf::from(tool);
        return if p.is_file() { Ok(p) } else { Err(ToolError::Missing { tool: tool.into(), package: package_of(tool).into() }) };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .ok_or_else(|| ToolError::Missing { tool: tool.into(), package: package_of(tool).into() })
}

/// The host packages whose tools write bytes into the image (everything else that ends up
/// on the node comes from the image's own suite).
pub const HOST_PACKAGES: &[&str] = &["mmdebstrap", "squashfs-tools", "dosfstools", "mtools"];

/// Each of `HOST_PACKAGES` with its installed version, as dpkg on the build host reports it
/// ("unknown" on a host without dpkg or the package).
pub fn host_versions() -> std::collections::BTreeMap<String, String> {
    HOST_PACKAGES
        .iter()
        .map(|p| {
            let v = Command::new("dpkg-query")
                .args(["-W", "-f=${Version}", p])
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success() && !o.stdout.is_empty())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_else(|| "unknown".into());
            ((*p).to_owned(), v)
        })
        .collect()
}

/// Runs `cmd` with its stdout and stderr appended to `log`.
pub fn run(mut cmd: Command, log: &Path) -> Result<(), ToolError> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    find(&tool)?;
    let spawn_err = |source| ToolError::Spawn { tool: tool.clone(), source };
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(spawn_err)?;
    let file2 = file.try_clone().map_err(spawn_err)?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(file2))
        .status()
        .map_err(spawn_err)?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    Err(ToolError::Failed { tool, status: status.to_string(), log: log.to_owned(), tail })
}
