//! KVM or TCG. /dev/kvm can exist and still hang (it does on these build machines), so we
//! probe it by running SeaBIOS under KVM for a moment, with a timeout, once per process.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static ACCEL: OnceLock<&'static str> = OnceLock::new();

/// "kvm" if a KVM guest really runs here, else "tcg". `CAIRN_QEMU_ACCEL` overrides.
pub fn accel() -> &'static str {
    ACCEL.get_or_init(|| match std::env::var("CAIRN_QEMU_ACCEL").as_deref() {
        Ok("kvm") => "kvm",
        Ok("tcg") => "tcg",
        _ => {
            if probe_kvm(Duration::from_secs(5)) {
                "kvm"
            } else {
                "tcg"
            }
        }
    })
}

pub fn probe_kvm(timeout: Duration) -> bool {
    if std::fs::metadata("/dev/kvm").is_err() {
        return false;
    }
    let Ok(mut child) = Command::new("qemu-system-x86_64")
        .args(["-accel", "kvm", "-machine", "q35", "-m", "64", "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let mut out = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut seen = String::new();
        while let Some(Ok(n)) = out.as_mut().map(|o| o.read(&mut buf)) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains("SeaBIOS") {
                let _ = tx.send(());
                break;
            }
        }
    });
    let start = Instant::now();
    let ok = rx.recv_timeout(timeout.saturating_sub(start.elapsed())).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    ok
}

#[cfg(test)]
mod tests {
    #[test]
    fn probe_returns_within_its_timeout() {
        let t = std::time::Instant::now();
        let _ = super::probe_kvm(std::time::Duration::from_secs(3));
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
    }
}
