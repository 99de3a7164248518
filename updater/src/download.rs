//! Downloads over HTTP(S) with ureq: the TUF metadata of a repository on any static server or
//! CDN ([`Http`], a [`Fetch`]), and a bundle as one stream that survives dropped
//! connections ([`Resuming`]): after an error it asks again from the byte it stopped at with
//! a Range request, so a flaky link costs only the bytes in flight.
//!
//! Nothing here is trusted: metadata is verified by the TUF client, and the bundle by its
//! reader as it streams (its signed manifest carries every payload's SHA-256). A server that
//! answers a Range request with other bytes is caught there, or by the target's length and
//! SHA-256 from the TUF targets role, checked here at the end of the stream.

use crate::tuf::client::{read_bounded, Fetch};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::time::{Duration, Instant};

/// How long a download keeps retrying a server that went away.
pub const RESUME_WINDOW: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// No response for this long is a failed request.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// One response body is read for at most this long; then the download resumes on a new one.
const BODY_TIMEOUT: Duration = Duration::from_secs(120);

/// The certificates HTTPS is verified against: Mozilla's roots (webpki-roots), unless the
/// node's update configuration names its own (`trust_only`).
static ROOTS: std::sync::OnceLock<ureq::tls::RootCerts> = std::sync::OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("it is not PEM")]
    Pem(#[source] ureq::Error),
    #[error("it holds no certificate")]
    Empty,
    #[error("this process already verifies HTTPS against other certificates")]
    AlreadySet,
}

/// From now on this process verifies HTTPS servers against the certificates in `pem` only,
/// instead of the public web roots: a private mirror with its own CA. Returns how many.
pub fn trust_only(pem: &[u8]) -> Result<usize, CaError> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        if let ureq::tls::PemItem::Certificate(c) = item.map_err(CaError::Pem)? {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        return Err(CaError::Empty);
    }
    let n = certs.len();
    ROOTS.set(ureq::tls::RootCerts::new_with_certs(&certs)).map_err(|_| CaError::AlreadySet)?;
    Ok(n)
}

fn agent() -> ureq::Agent {
    let roots = ROOTS.get().cloned().unwrap_or(ureq::tls::RootCerts::WebPki);
    ureq::Agent::config_builder()
        .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(READ_TIMEOUT))
        // ureq's timeouts bound a whole phase, not a silence: a body that takes longer is
        // cut and the download resumes from where it was, so a stalled connection costs
        // at most this long.
        .timeout_recv_body(Some(BODY_TIMEOUT))
        // The status is ours to judge (404 is "no such file" for TUF).
        .http_status_as_error(false)
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// A TUF repository at `base` (`https://updates.example.com/repo/`).
#[derive(Debug)]
pub struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    pub fn new(base: &str) -> Http {
        Http { agent: agent(), base: base.trim_end_matches('/').to_owned() }
    }

    pub fn url(&self, path: &str) -> String {
        join(&self.base, path)
    }
}

/// The URL of `path` in the repository at `base`.
pub fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

impl Fetch for Http {
    fn fetch(&mut self, path: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        let url = self.url(path);
        let resp = self.agent.get(&url).call().map_err(other)?;
        match resp.status().as_u16() {
            200 => read_bounded(resp.into_body().into_reader(), max).map(Some),
            404 | 403 => Ok(None),
            code => Err(other(format!("GET {url}: HTTP {code}"))),
        }
    }
}

/// What a download reports as it goes: a connection dropped and resumed at `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Resumed { offset: u64, after: String },
}

/// A bundle at `url` as one `Read`: resumed with `Range: bytes=N-` after any error, for up
/// to [`RESUME_WINDOW`] without progress. With `expected` (the TUF target's length and
/// SHA-256), reading past the length is an error and the end of the stream is checked.
pub struct Resuming<'a> {
    agent: ureq::Agent,
    url: String,
    offset: u64,
    expected: Option<(u64, String)>,
    hash: Sha256,
    /// The length the TUF target or else the server gave: an end of stream before it is a
    /// dropped connection.
    known_len: Option<u64>,
    body: Option<Box<dyn Read + Send + Sync + 'static>>,
    on_event: Box<dyn FnMut(Event) + 'a>,
    /// How long to keep trying without a byte of progress.
    pub window: Duration,
}

impl std::fmt::Debug for Resuming<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resuming").field("url", &self.url).field("offset", &self.offset).field("expected", &self.expected).finish_non_exhaustive()
    }
}

impl<'a> Resuming<'a> {
    pub fn new(url: &str, expected: Option<(u64, String)>, on_event: impl FnMut(Event) + 'a) -> Resuming<'a> {
        let known_len = expected.as_ref().map(|(len, _)| *len);
        Resuming { agent: agent(), url: url.to_owned(), offset: 0, expected, hash: Sha256::new(), known_len, body: None, on_event: Box::new(on_event), window: RESUME_WINDOW }
    }

    /// Bytes received so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The total length, if the TUF target or the server said.
    pub fn length(&self) -> Option<u64> {
        self.known_len
    }

    fn open(&mut self) -> io::Result<Box<dyn Read + Send + Sync + 'static>> {
        let mut req = self.agent.get(&self.url);
        if self.offset > 0 {
            req = req.header("Range", format!("bytes={}-", self.offset));
        }
        let resp = req.call().map_err(other)?;
        let code = resp.status().as_u16();
        match (code, self.offset) {
            (200, 0) => {
                let len = resp.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
                self.known_len = self.known_len.or(len);
            }
            (206, n) if n > 0 => {
                // "bytes N-M/T": the server must resume exactly where we stopped.
                let range = resp.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or("");
                let start = range.strip_prefix("bytes ").and_then(|r| r.split('-').next()).and_then(|s| s.parse::<u64>().ok());
                if start != Some(n) {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("GET {}: asked for bytes {n}- and got {range:?}", self.url)));
                }
            }
            (200, n) => return Err(io::Error::new(io::ErrorKind::Unsupported, format!("GET {}: the server ignores Range requests; cannot resume at byte {n}", self.url))),
            (404, _) => return Err(io::Error::new(io::ErrorKind::NotFound, format!("GET {}: HTTP 404 (not in the repository)", self.url))),
            (code, _) => return Err(other(format!("GET {}: HTTP {code}", self.url))),
        }
        Ok(Box::new(resp.into_body().into_reader()))
    }

    /// The stream ended: it must be the whole target.
    fn check_end(&mut self) -> io::Result<()> {
        let Some((len, sha)) = &self.expected else { return Ok(()) };
        if self.offset != *len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{} ended at byte {} of {len}", self.url, self.offset)));
        }
        let got = hex::encode(self.hash.clone().finalize());
        if !got.eq_ignore_ascii_case(sha) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} does not have the SHA-256 its TUF target gives", self.url)));
        }
        Ok(())
    }
}

impl Read for Resuming<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let last_progress = Instant::now();
        let mut delay = Duration::from_millis(500);
        let mut last_error: Option<String> = None;
        loop {
            if let Some((len, _)) = &self.expected {
                if self.offset >= *len {
                    // Never read past the signed length (a server that streams forever).
                    let mut probe = [0u8; 1];
                    let extra = self.body.as_mut().map_or(Ok(0), |b| b.read(&mut probe));
                    return match extra {
                        Ok(0) | Err(_) => self.check_end().map(|()| 0),
                        Ok(_) => Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} is longer than the {len} bytes its TUF target gives", self.url))),
                    };
                }
            }
            let result = match self.body.as_mut() {
                Some(b) => b.read(buf),
                None => match self.open() {
                    Ok(b) => {
                        if let Some(after) = last_error.take() {
                            (self.on_event)(Event::Resumed { offset: self.offset, after });
                        }
                        self.body = Some(b);
                        continue;
                    }
                    // Not worth retrying: the server cannot resume, or has no such file.
                    Err(e) if matches!(e.kind(), io::ErrorKind::Unsupported | io::ErrorKind::NotFound | io::ErrorKind::InvalidData) => return Err(e),
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(0) if self.known_len.is_none_or(|len| self.offset >= len) => return self.check_end().map(|()| 0),
                Ok(0) => {
                    // The connection closed early: the server went away mid-stream.
                    self.body = None;
                    last_error = Some(format!("the connection closed at byte {}", self.offset));
                }
                Ok(n) => {
                    let n = match &self.expected {
                        // Bytes beyond the signed length are not ours to pass on.
                        Some((len, _)) => n.min(usize::try_from(len - self.offset).unwrap_or(usize::MAX)),
                        None => n,
                    };
                    self.hash.update(&buf[..n]);
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) => {
                    self.body = None;
                    last_error = Some(e.to_string());
                }
            }
            if last_progress.elapsed() >= self.window {
                return Err(io::Error::new(io::ErrorKind::TimedOut, format!("{}: no progress for {} s at byte {} ({})", self.url, self.window.as_secs(), self.offset, last_error.unwrap_or_default())));
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
}
