//! Reading and writing a stopped machine's disk with qemu-io: the damage a failing disk
//! does, the state another tool left behind, and what the node wrote.

use super::{need, Machine};
use crate::HarnessError;
use std::process::Command;

impl Machine {
    /// Overwrites `len` bytes of the machine's disk at `offset` with `byte`, as a failing
    /// disk would, while QEMU is stopped (qemu-io on the overlay; the base image is shared).
    pub fn damage_disk(&self, offset: u64, len: u64, byte: u8) -> Result<(), HarnessError> {
        self.qemu_io_write(&format!("write -P {byte} {offset} {len}"))
    }

    /// Writes `bytes` at `offset` of the machine's disk while QEMU is stopped (a state an
    /// operator or another tool left behind, such as a grubenv).
    pub fn write_disk(&self, offset: u64, bytes: &[u8]) -> Result<(), HarnessError> {
        let src = self.dir.join("write_disk.bin");
        std::fs::write(&src, bytes).map_err(HarnessError::io("write_disk source"))?;
        self.qemu_io_write(&format!("write -s {} {offset} {}", src.display(), bytes.len()))
    }

    fn qemu_io_write(&self, command: &str) -> Result<(), HarnessError> {
        if self.child.is_some() {
            return Err(HarnessError::Qmp("writing the disk needs the machine stopped (shutdown or wait_for_exit first)".into()));
        }
        need("qemu-io", "qemu-utils")?;
        let out = Command::new("qemu-io")
            .args(["-f", "qcow2", "-c", command])
            .arg(&self.top)
            .output()
            .map_err(HarnessError::io("qemu-io"))?;
        if !out.status.success() || String::from_utf8_lossy(&out.stdout).contains("failed") {
            return Err(HarnessError::Qmp(format!("qemu-io {command}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))));
        }
        Ok(())
    }

    /// Reads `len` bytes of the machine's disk at `offset` while QEMU is stopped.
    pub fn read_disk(&self, offset: u64, len: usize) -> Result<Vec<u8>, HarnessError> {
        need("qemu-io", "qemu-utils")?;
        let out = Command::new("qemu-io")
            .args(["-f", "qcow2", "-r", "-c", &format!("read -v {offset} {len}")])
            .arg(&self.top)
            .output()
            .map_err(HarnessError::io("qemu-io"))?;
        if !out.status.success() {
            return Err(HarnessError::Qmp(format!("qemu-io read: {}", String::from_utf8_lossy(&out.stderr))));
        }
        let bytes = parse_hexdump(&String::from_utf8_lossy(&out.stdout), len);
        if bytes.len() != len {
            return Err(HarnessError::Qmp(format!("qemu-io read {len} bytes at {offset}: got {}", bytes.len())));
        }
        Ok(bytes)
    }
}

/// qemu-io's `read -v` dump: "0000fff0:  45 46 ... 2a  EFI.PART..." with 16 bytes a line,
/// each as two hex digits and a space from column 11 (the text column may hold anything).
fn parse_hexdump(dump: &str, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    for line in dump.lines() {
        let Some((addr, rest)) = line.split_once(":  ") else { continue };
        if addr.len() != 8 || !addr.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        let n = (len - bytes.len()).min(16);
        for i in 0..n {
            match rest.get(3 * i..3 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => bytes.push(b),
                None => return bytes,
            }
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_io_dumps_parse() {
        let dump = "00000200:  45 46 49 20 50 41 52 54 00 00 01 00 5c 00 00 00  EFI PART....\\...\n00000210:  e1 4b e5 2a  .K..\nread 20/20 bytes at offset 512\n";
        assert_eq!(parse_hexdump(dump, 20)[..9], [0x45, 0x46, 0x49, 0x20, 0x50, 0x41, 0x52, 0x54, 0]);
        assert_eq!(parse_hexdump(dump, 20)[16..], [0xe1, 0x4b, 0xe5, 0x2a]);
    }
}
