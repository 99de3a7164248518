//! A static file server for the update tests: what a repository on any web server or CDN
//! looks like to a node (GET, `Range: bytes=N-` answered with 206 and `Content-Range`), with
//! one fault a real network has: the server stopping mid-download and coming back.
//!
//! It listens on 127.0.0.1; a VM on QEMU's user network reaches it as 10.0.2.2. Every request
//! is logged with the byte it asked to start at, so a test can show where a download resumed.
//! With `start_tls` it speaks HTTPS (rustls) with a certificate of a test CA (`TestCa`, made
//! by openssl), as a private mirror would.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    /// The start of `Range: bytes=N-`, if the request had one.
    pub range_start: Option<u64>,
    pub status: u16,
    /// Body bytes sent before the connection ended.
    pub sent: u64,
}

#[derive(Debug, Default)]
struct State {
    log: Vec<Request>,
    /// Cut the next response whose range covers this file offset there, then go down.
    cut_at: Option<(String, u64, Duration)>,
    down_until: Option<Instant>,
}

#[derive(Debug)]
pub struct Server {
    port: u16,
    tls: bool,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serves the files under `root` on a free port of 127.0.0.1.
    pub fn start(root: &Path) -> std::io::Result<Server> {
        Server::spawn(root, None)
    }

    /// Serves the files under `root` over HTTPS with `ca`'s server certificate.
    pub fn start_tls(root: &Path, ca: &crate::tls::TestCa) -> std::io::Result<Server> {
        Server::spawn(root, Some(ca.server_config()?))
    }

    fn spawn(root: &Path, tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let (state, stop) = (Arc::new(Mutex::new(State::default())), Arc::new(AtomicBool::new(false)));
        let (st, sp, root, is_tls) = (state.clone(), stop.clone(), root.to_owned(), tls.is_some());
        let thread = std::thread::spawn(move || accept_loop(Some(listener), port, &root, &st, &sp, tls.as_ref()));
        Ok(Server { port, tls: is_tls, state, stop, thread: Some(thread) })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's address as a guest on QEMU's user network sees it.
    pub fn guest_url(&self) -> String {
        format!("{}://10.0.2.2:{}", self.scheme(), self.port)
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.port)
    }

    fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The next response for `path` that passes file offset `at` stops there; the server
    /// then refuses connections (its listening socket closed) for `down_for`.
    pub fn stop_once_at(&self, path: &str, at: u64, down_for: Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.cut_at = Some((path.trim_start_matches('/').to_owned(), at, down_for));
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().map(|s| s.log.clone()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(mut listener: Option<TcpListener>, port: u16, root: &Path, state: &Arc<Mutex<State>>, stop: &AtomicBool, tls: Option<&Arc<rustls::ServerConfig>>) {
    let _ = listener.as_ref().map(|l| l.set_nonblocking(true));
    while !stop.load(Ordering::SeqCst) {
        let down = state.lock().ok().and_then(|s| s.down_until).is_some_and(|t| Instant::now() < t);
        match (&listener, down) {
            // Going down: the socket closes, so connections are refused, as with a stopped server.
            (Some(_), true) => listener = None,
            (None, false) => {
                // Back up on the same port (std sets SO_REUSEADDR).
                listener = TcpListener::bind(("127.0.0.1", port)).ok();
                let _ = listener.as_ref().map(|l| l.set_nonblocking(true));
            }
            _ => {}
        }
        let Some(l) = &listener else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        match l.accept() {
            Ok((conn, _)) => {
                let (root, state, tls) = (root.to_owned(), state.clone(), tls.cloned());
                std::thread::spawn(move || {
                    let _ = conn.set_nonblocking(false).and_then(|()| conn.set_read_timeout(Some(Duration::from_secs(30))));
                    let _ = match tls {
                        Some(config) => match rustls::ServerConnection::new(config) {
                            Ok(session) => serve(rustls::StreamOwned::new(session, conn), &root, &state),
                            Err(e) => Err(std::io::Error::other(e)),
                        },
                        None => serve(conn, &root, &state),
                    };
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A connection the server answers on: plain TCP, or TLS over it.
trait Conn: Read + Write {
    /// Ends the connection at once, as a server that stops does.
    fn cut(&mut self);
}

impl Conn for TcpStream {
    fn cut(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn cut(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

fn serve(mut out: impl Conn, root: &Path, state: &Mutex<State>) -> std::io::Result<()> {
    // A GET has no body: nothing the reader buffers past the headers is lost.
    let mut reader = BufReader::new(&mut out);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_owned();
    let mut range_start = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range_start = value.trim().strip_prefix("bytes=").and_then(|r| r.split('-').next()).and_then(|s| s.parse::<u64>().ok());
            }
        }
    }
    drop(reader);
    let file: Option<PathBuf> = (!path.split('/').any(|c| c == ".." || c.is_empty())).then(|| root.join(&path)).filter(|p| p.is_file());
    let log = |status, sent| {
        if let Ok(mut s) = state.lock() {
            s.log.push(Request { path: path.clone(), range_start, status, sent });
        }
    };
    let Some(file) = file else {
        log(404, 0);
        return out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    };
    let mut f = std::fs::File::open(&file)?;
    let len = f.metadata()?.len();
    let start = range_start.unwrap_or(0).min(len);
    let head = match range_start {
        Some(_) => format!("HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{len}\r\nConnection: close\r\n\r\n", len - start, len.saturating_sub(1)),
        None => format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n"),
    };
    out.write_all(head.as_bytes())?;
    // Where this response stops early, if the test asked for a cut inside it.
    let cut = state.lock().ok().and_then(|mut s| match &s.cut_at {
        Some((p, at, down)) if *p == path && *at > start && *at < len => {
            let r = Some((*at, *down));
            s.cut_at = None;
            r
        }
        _ => None,
    });
    let end = cut.map_or(len, |(at, _)| at);
    f.seek(SeekFrom::Start(start))?;
    let mut sent = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = end - start;
    let mut result = Ok(());
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        if let Err(e) = f.read_exact(&mut buf[..want]).and_then(|()| out.write_all(&buf[..want])) {
            result = Err(e);
            break;
        }
        sent += want as u64;
        left -= want as u64;
    }
    log(if range_start.is_some() { 206 } else { 200 }, sent);
    if let Some((_, down)) = cut {
        let _ = out.flush();
        if let Ok(mut s) = state.lock() {
            s.down_until = Some(Instant::now() + down);
        }
        out.cut();
    }
    let _ = out.flush();
    result
}
