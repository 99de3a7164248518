//! First-boot configuration as clouds and people hand it to a node, made on the host with
//! the tools they use: a NoCloud seed (FAT, mkfs.vfat + mtools, as `cloud-localds -f vfat`),
//! a ConfigDrive (ISO 9660, xorriso, as OpenStack's), a volume with the wrong file system
//! (ext4), the ESP's `cairn.toml`; and the operator's side of SSH (a key, a login).

use crate::HarnessError;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn tool(cmd: &mut Command, what: &str, package: &str) -> Result<Output, HarnessError> {
    let out = cmd.output().map_err(|e| HarnessError::Check(format!("cannot run {what} ({e}); install it: apt-get install {package} (./dev setup does)")))?;
    if !out.status.success() {
        return Err(HarnessError::Check(format!("{what} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))));
    }
    Ok(out)
}

/// A directory tree of `files` (path → text) under `dir`.
fn tree(dir: &Path, files: &[(&str, &str)]) -> Result<(), HarnessError> {
    let _ = std::fs::remove_dir_all(dir);
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap_or(dir)).map_err(HarnessError::io("seed tree"))?;
        std::fs::write(&p, text).map_err(HarnessError::io("seed file"))?;
    }
    Ok(())
}

/// A FAT volume labelled `label` holding `files` (flat names), 2 MiB.
pub fn fat(out: &Path, label: &str, files: &[(&str, &str)]) -> Result<PathBuf, HarnessError> {
    let _ = std::fs::remove_file(out);
    tool(Command::new("mkfs.vfat").args(["-C", "-n", label]).arg(out).arg("2048"), "mkfs.vfat", "dosfstools")?;
    let dir = out.with_extension("files");
    tree(&dir, files)?;
    for (name, _) in files {
        tool(Command::new("mcopy").arg("-i").arg(out).arg(dir.join(name)).arg(format!("::{name}")), "mcopy", "mtools")?;
    }
    Ok(out.to_owned())
}

/// An ISO 9660 volume labelled `label` holding `files` (paths may have directories), with
/// Rock Ridge and Joliet names as cloud tools make them.
pub fn iso(out: &Path, label: &str, files: &[(&str, &str)]) -> Result<PathBuf, HarnessError> {
    let dir = out.with_extension("files");
    tree(&dir, files)?;
    let _ = std::fs::remove_file(out);
    tool(Command::new("xorriso").args(["-as", "mkisofs", "-quiet", "-J", "-r", "-V", label, "-o"]).arg(out).arg(&dir), "xorriso", "xorriso")?;
    Ok(out.to_owned())
}

/// An ext4 volume labelled `label` holding `files`: a configuration volume Cairn must refuse.
pub fn ext4(out: &Path, label: &str, files: &[(&str, &str)]) -> Result<PathBuf, HarnessError> {
    let dir = out.with_extension("files");
    tree(&dir, files)?;
    let _ = std::fs::remove_file(out);
    tool(Command::new("mkfs.ext4").args(["-q", "-F", "-L", label, "-d"]).arg(&dir).arg(out).arg("4M"), "mkfs.ext4", "e2fsprogs")?;
    Ok(out.to_owned())
}

/// The test image's ESP with `cairn.toml` holding `text` (None: without it), to be written
/// over the machine's ESP with `Machine::write_disk(offset, &bytes)` before it boots.
pub fn esp_with(dir: &Path, text: Option<&str>) -> Result<(u64, Vec<u8>), HarnessError> {
    let image = crate::image::test_image()?;
    let (first, last) = image.partition("esp").ok_or_else(|| HarnessError::Check("the test image has no partition labelled esp".into()))?;
    let (offset, len) = (first * 512, (last - first + 1) * 512);
    let disk = std::fs::read(image.disk_path()).map_err(HarnessError::io("read the test image"))?;
    let esp = disk.get(offset as usize..(offset + len) as usize).ok_or_else(|| HarnessError::Check("the ESP lies past the image's end".into()))?;
    std::fs::create_dir_all(dir).map_err(HarnessError::io("esp dir"))?;
    let file = dir.join("esp.img");
    std::fs::write(&file, esp).map_err(HarnessError::io("esp copy"))?;
    if let Some(text) = text {
        let src = dir.join("cairn.toml");
        std::fs::write(&src, text).map_err(HarnessError::io("cairn.toml"))?;
        tool(Command::new("mcopy").args(["-o", "-i"]).arg(&file).arg(&src).arg("::cairn.toml"), "mcopy", "mtools")?;
    }
    Ok((offset, std::fs::read(&file).map_err(HarnessError::io("esp copy"))?))
}

/// An operator's ed25519 key pair in `dir`: (private key path, public key line).
pub fn keypair(dir: &Path, name: &str) -> Result<(PathBuf, String), HarnessError> {
    std::fs::create_dir_all(dir).map_err(HarnessError::io("key dir"))?;
    let key = dir.join(name);
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(key.with_extension("pub"));
    tool(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", &format!("{name}@test")]).arg("-f").arg(&key), "ssh-keygen", "openssh-client")?;
    let line = std::fs::read_to_string(key.with_extension("pub")).map_err(HarnessError::io("public key"))?;
    Ok((key, line.trim().to_owned()))
}

/// How an SSH attempt ended.
#[derive(Debug)]
pub struct Ssh {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// `ssh -p PORT user@127.0.0.1 CMD` with `extra` options, never asking anything (BatchMode)
/// and not keeping host keys (each test node has its own).
pub fn ssh(port: u16, user: &str, key: Option<&Path>, extra: &[&str], cmd: &str) -> Result<Ssh, HarnessError> {
    let mut c = Command::new("ssh");
    c.args(["-p", &port.to_string(), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=30", "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes"]);
    if let Some(k) = key {
        c.arg("-i").arg(k);
    }
    c.args(extra).arg(format!("{user}@127.0.0.1")).arg(cmd);
    let out = c.output().map_err(|e| HarnessError::Check(format!("cannot run ssh ({e}); install it: apt-get install openssh-client")))?;
    Ok(Ssh { ok: out.status.success(), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() })
}

/// Logs in until sshd answers (it starts with the node's services), at most `timeout`.
pub fn wait_ssh(port: u16, user: &str, key: &Path, timeout: Duration) -> Result<Ssh, HarnessError> {
    let start = std::time::Instant::now();
    loop {
        let s = ssh(port, user, Some(key), &[], "true")?;
        if s.ok || start.elapsed() > crate::deadline(timeout) {
            return Ok(s);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// A free TCP port on the host's loopback for a forward.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}
