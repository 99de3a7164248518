//! The firewall from the host's side, on the node the Docker test booted: through QEMU's
//! port forwarding, with something listening on every port tried (host-network busybox
//! httpd containers, and one on 16124 in fluxd's place), so a port that gets no answer is
//! held by the firewall, not merely unused.

use super::*;
use std::io::{Read, Write};

#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// It said something (an HTTP reply, an SSH banner).
    Data(String),
    /// The connection was closed or refused: the node answered, with a reset.
    Closed,
    /// Nothing within the wait: the node dropped what was sent.
    Nothing,
}

/// What the guest's port behind the host's `port` answers to a request, within `wait`.
/// (QEMU's user network accepts the host's connection itself and then tries the guest: a
/// dropped SYN shows as silence, a refused one as a close.)
pub fn probe(port: u16, wait: Duration) -> Answer {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, wait) else { return Answer::Closed };
    let _ = s.set_read_timeout(Some(wait));
    let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => Answer::Closed,
        Ok(n) => Answer::Data(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Answer::Nothing,
        Err(_) => Answer::Closed,
    }
}

/// A host-network container serving the test page on `port` (all addresses).
fn listen(m: &Machine, port: u16) -> R {
    m.succeed(&format!("docker run -d --network host --name listen-{port} {} /bin/busybox httpd -f -p 0.0.0.0:{port} -h /www", container::IMAGE))?;
    m.wait_until_succeeds(&format!("grep -q ':{port:04X} 00000000:0000 0A' /proc/net/tcp"), Duration::from_secs(60))?;
    Ok(())
}

/// SSH, Flux P2P and the FluxOS API answer; 16124 (fluxd RPC) and a port nobody allowed
/// (16130, between the FluxOS ranges) get no answer at all, though something listens on
/// each; a container's published port still answers.
pub fn check(m: &mut Machine, published: u16) -> R {
    let report = m.succeed("cat /run/cairn/firewall.json")?;
    assert!(report.contains("\"applied\":\"configured\""), "{report}");
    // fluxd's RPC port: the double listens on 127.0.0.1 only; in its place, a listener on
    // every address, as a misconfigured fluxd (rpcbind=0.0.0.0) would be.
    m.succeed("cairnctl stop fluxd")?;
    m.wait_until_succeeds("! grep -q ':3EFC 00000000:0000 0A' /proc/net/tcp", Duration::from_secs(60))?;
    for port in [16124, 16125, 16127, 16130] {
        listen(m, port)?;
    }
    let mut fwd = std::collections::BTreeMap::new();
    for guest in [22, 16124, 16125, 16127, 16130] {
        let host = free_port();
        m.forward(host, guest)?;
        fwd.insert(guest, host);
    }
    let wait = Duration::from_secs(5);
    let ssh = probe(fwd[&22], wait);
    assert!(matches!(&ssh, Answer::Data(b) if b.starts_with("SSH-2.0-OpenSSH")), "SSH (22): {ssh:?}");
    for open in [16125, 16127] {
        let a = probe(fwd[&open], wait);
        assert!(matches!(&a, Answer::Data(b) if b.starts_with("HTTP/1.1 200")), "Flux port {open} must answer: {a:?}");
    }
    for closed in [16124, 16130] {
        assert_eq!(probe(fwd[&closed], wait), Answer::Nothing, "port {closed} must get no answer from outside");
        // ...while on the node itself it answers: it is the firewall, not the listener.
        m.succeed(&format!("cairn_page=$(docker exec listen-{closed} /bin/busybox wget -qO- http://127.0.0.1:{closed}/) && [ -n \"$cairn_page\" ]"))?;
    }
    assert_eq!(wait_http(published, Duration::from_secs(60)).as_deref(), Some(container::PAGE), "the container's published port, through Docker's own chains");
    Ok(())
}
