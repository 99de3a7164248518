//! Running host tools (mmdebstrap, mksquashfs, grub-mkimage, mtools) with clear errors.
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
        "grub-mkimage" => "grub-common grub-pc-bin grub-efi-amd64-bin",
        _ => "the package that provides it",
    }
}

pub fn find(tool: &str) -> Result<PathBuf, ToolError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .ok_or_else(|| ToolError::Missing { tool: tool.into(), package: package_of(tool).into() })
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
