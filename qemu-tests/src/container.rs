//! A container image built on the host, for the Docker tests: Debian's static busybox
//! serving one page with its httpd, written in the `docker save` tarball format so the guest
//! can `docker load` it without any registry.

use sha2::{Digest, Sha256};
use std::path::Path;

pub const IMAGE: &str = "cairn-test/httpd:1";
pub const PAGE: &str = "hello from a cairn container\n";
/// The port httpd listens on inside the container.
pub const PORT: u16 = 8080;
const BUSYBOX: &str = "/bin/busybox";

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("{BUSYBOX} is missing on the host; install it: apt-get install -y busybox-static")]
    NoBusybox,
    #[error("writing the image tarball {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn append(t: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    t.append_data(&mut h, path, data)
}

/// Writes the image tarball to `out` (its size is a multiple of 512, so it can also be
/// attached to the VM as a raw disk and read back with `docker load -i /dev/vdb`).
pub fn write_image_tarball(out: &Path) -> Result<(), ContainerError> {
    let busybox = std::fs::read(BUSYBOX).map_err(|_| ContainerError::NoBusybox)?;
    let err = |source| ContainerError::Io { path: out.display().to_string(), source };
    let mut layer = tar::Builder::new(Vec::new());
    append(&mut layer, "bin/busybox", 0o755, &busybox).map_err(err)?;
    append(&mut layer, "www/index.html", 0o644, PAGE.as_bytes()).map_err(err)?;
    let layer = layer.into_inner().map_err(err)?;
    let diff_id = sha256_hex(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Cmd": ["/bin/busybox", "httpd", "-f", "-v", "-p", PORT.to_string(), "-h", "/www"],
            "ExposedPorts": { format!("{PORT}/tcp"): {} },
        },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
    })
    .to_string();
    let config_name = format!("{}.json", sha256_hex(config.as_bytes()));
    let manifest = serde_json::json!([{ "Config": config_name, "RepoTags": [IMAGE], "Layers": [format!("{diff_id}/layer.tar")] }]).to_string();
    let mut outer = tar::Builder::new(Vec::new());
    append(&mut outer, &format!("{diff_id}/layer.tar"), 0o644, &layer).map_err(err)?;
    append(&mut outer, &config_name, 0o644, config.as_bytes()).map_err(err)?;
    append(&mut outer, "manifest.json", 0o644, manifest.as_bytes()).map_err(err)?;
    let mut bytes = outer.into_inner().map_err(err)?;
    // A virtio disk is whole sectors; tar's end-of-archive zeros make that true already, this
    // is only a guard.
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    std::fs::write(out, bytes).map_err(err)
}

/// A plain HTTP GET from the host (e.g. through QEMU's port forwarding): the body, or None.
pub fn http_get(port: u16, timeout: std::time::Duration) -> Option<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    write!(s, "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200").then(|| body.to_owned()).or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarball_has_the_docker_save_layout() {
        let out = std::env::temp_dir().join(format!("cairn-img-{}.tar", std::process::id()));
        write_image_tarball(&out).expect("busybox-static is installed by ./dev setup");
        let bytes = std::fs::read(&out).unwrap_or_default();
        assert_eq!(bytes.len() % 512, 0);
        let mut names = Vec::new();
        let mut a = tar::Archive::new(bytes.as_slice());
        for e in a.entries().expect("a tar") {
            let e = e.expect("an entry");
            names.push(e.path().expect("a path").display().to_string());
        }
        assert!(names.iter().any(|n| n.ends_with("/layer.tar")) && names.contains(&"manifest.json".to_string()), "{names:?}");
        let _ = std::fs::remove_file(&out);
    }
}
