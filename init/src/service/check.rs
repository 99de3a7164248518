//! Readiness and health probes that need no child process: a TCP port that accepts, an
//! HTTP URL that answers 200, a file that exists. They block (with a timeout), so the
//! supervisor runs them on a short-lived thread and never in its own loop. Command checks
//! are child processes and belong to the supervisor, which reaps every child.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connects to `host:port`.
pub fn tcp(addr: &str, timeout: Duration) -> Result<(), String> {
    let addrs: Vec<_> = addr.to_socket_addrs().map_err(|e| format!("{addr}: {e}"))?.collect();
    let mut last = format!("{addr}: no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(last)
}

/// GETs an `http://host:port/path` URL and wants status 200.
pub fn http(url: &str, timeout: Duration) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// is supported"))?;
    let (hostport, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let hostport = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:80") };
    let addr = hostport.to_socket_addrs().map_err(|e| format!("{hostport}: {e}"))?.next().ok_or_else(|| format!("{hostport}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{hostport}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let host = hostport.rsplit_once(':').map_or(hostport.as_str(), |(h, _)| h);
    // One write: `write!` on a bare socket sends each piece separately, and a server that
    // answers after the first segment and closes would make the rest fail with EPIPE.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: cairn-init\r\nConnection: close\r\n\r\n");
    let sent = s.write_all(request.as_bytes());
    // A server may answer (and close) before reading all of the request: its status line
    // is what counts, so read it even when the write failed.
    // The status line may arrive in pieces: read until its end (or 64 bytes, or EOF).
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < head.len() && !head[..n].contains(&b'\n') {
        match s.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if n == 0 => return Err(sent.err().unwrap_or(e).to_string()),
            Err(_) => break,
        }
    }
    if n == 0 {
        return Err(sent.err().map_or_else(|| "closed without an answer".to_owned(), |e| e.to_string()));
    }
    status_is_200(&head[..n])
}

fn status_is_200(head: &[u8]) -> Result<(), String> {
    let line = String::from_utf8_lossy(head);
    let line = line.lines().next().unwrap_or("");
    match line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => Err(format!("HTTP status {code}")),
        None => Err(format!("not an HTTP answer: {line:?}")),
    }
}

pub fn file(path: &str) -> Result<(), String> {
    if std::path::Path::new(path).exists() {
        Ok(())
    } else {
        Err(format!("{path} does not exist"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_tcp_probes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            for (i, conn) in listener.incoming().take(3).enumerate() {
                let Ok(mut c) = conn else { continue };
                // Reads the whole request, as a server does.
                let mut req = Vec::new();
                let mut buf = [0u8; 512];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(n) if n > 0 => req.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                }
                let status = if i == 1 { "200 OK" } else { "503 Service Unavailable" };
                let _ = write!(c, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let t = Duration::from_secs(5);
        assert_eq!(tcp(&addr.to_string(), t), Ok(()));
        assert_eq!(http(&format!("http://{addr}/health"), t), Ok(()));
        assert_eq!(http(&format!("http://{addr}/health"), t), Err("HTTP status 503".into()));
        let _ = server.join();
        assert!(tcp(&addr.to_string(), t).is_err(), "nothing listens any more");
        assert!(file("/proc/self/status").is_ok() && file("/no/such").is_err());
    }
}
