//! A test double of the Flux node daemon (fluxd, JSON-RPC on 16124) and the benchmark daemon
//! (fluxbenchd, 16224). The real daemons cannot run on these machines; this one speaks their
//! protocol (JSON-RPC 1.0 over HTTP POST with Basic auth from flux.conf's rpcuser and
//! rpcpassword) and answers with the responses captured from live nodes in
//! `qemu-tests/fixtures/flux/` (copies of ../shared/fixtures/flux, checked by a test).
//!
//! FluxOS wraps what the daemon returns as {"status","data"}; the daemon itself answers
//! {"result": data, "error": null, "id": id}. Unknown methods get HTTP 404 with JSON-RPC
//! error -32601, as bitcoind-derived daemons do; bad credentials get HTTP 401.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

pub mod chain;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// fluxd: node status, chain, benchmarks passed through.
    Daemon,
    /// fluxbenchd: the benchmark daemon.
    Bench,
}

#[derive(Debug, thiserror::Error)]
pub enum FluxError {
    #[error("fixture {name}: {reason}")]
    Fixture { name: String, reason: String },
    #[error("flux.conf has no {0}= line")]
    Conf(&'static str),
}

/// The fixtures, compiled in so the double is one static file in a test image.
const FIXTURES: &[(&str, &str)] = &[
    ("daemon/getfluxnodestatus", include_str!("../fixtures/flux/fluxos_daemon_getfluxnodestatus.json")),
    ("daemon/getinfo", include_str!("../fixtures/flux/fluxos_daemon_getinfo.json")),
    ("daemon/getblockchaininfo", include_str!("../fixtures/flux/fluxos_daemon_getblockchaininfo.json")),
    ("daemon/getblockcount", include_str!("../fixtures/flux/fluxos_daemon_getblockcount.json")),
    ("daemon/getbenchmarks", include_str!("../fixtures/flux/fluxos_daemon_getbenchmarks.json")),
    ("daemon/getbenchstatus", include_str!("../fixtures/flux/fluxos_daemon_getbenchstatus.json")),
    ("daemon/fluxnodecurrentwinner", include_str!("../fixtures/flux/fluxos_daemon_fluxnodecurrentwinner.json")),
    ("daemon/getdoslist", include_str!("../fixtures/flux/fluxos_daemon_getdoslist.json")),
    ("daemon/getstartlist", include_str!("../fixtures/flux/fluxos_daemon_getstartlist.json")),
    ("daemon/getzelnodecount", include_str!("../fixtures/flux/fluxos_daemon_getzelnodecount.json")),
    ("bench/getstatus", include_str!("../fixtures/flux/fluxos_benchmark_getstatus.json")),
    ("bench/getbenchmarks", include_str!("../fixtures/flux/fluxos_benchmark_getbenchmarks.json")),
    ("bench/getinfo", include_str!("../fixtures/flux/fluxos_benchmark_getinfo.json")),
];

pub const SAMPLE_CONF: &str = include_str!("../fixtures/flux/flux_conf_sample_from_fluxos_repo.conf");

/// What the double answers: method -> result, per role.
#[derive(Debug, Clone)]
pub struct Double {
    role: Role,
    results: BTreeMap<String, Value>,
    auth: String,
    /// A scripted chain drives heights and the node's status (`chain`).
    chain: Option<chain::Chain>,
}

/// rpcuser and rpcpassword from flux.conf text.
pub fn credentials(conf: &str) -> Result<(String, String), FluxError> {
    let get = |k: &'static str| {
        conf.lines().find_map(|l| l.trim().strip_prefix(k)?.strip_prefix('=').map(|v| v.trim().to_owned())).ok_or(FluxError::Conf(k))
    };
    Ok((get("rpcuser")?, get("rpcpassword")?))
}

impl Double {
    pub fn new(role: Role, conf: &str) -> Result<Double, FluxError> {
        let prefix = match role {
            Role::Daemon => "daemon/",
            Role::Bench => "bench/",
        };
        let mut results = BTreeMap::new();
        for (name, text) in FIXTURES {
            let Some(method) = name.strip_prefix(prefix) else { continue };
            let v: Value = serde_json::from_str(text).map_err(|e| FluxError::Fixture { name: name.to_string(), reason: e.to_string() })?;
            if v["status"] != "success" {
                return Err(FluxError::Fixture { name: name.to_string(), reason: "status is not success".into() });
            }
            results.insert(method.to_owned(), v["data"].clone());
        }
        let (user, pass) = credentials(conf)?;
        use base64::Engine;
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")));
        Ok(Double { role, results, auth, chain: None })
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Replaces one method's answer (tests drive node states through this).
    pub fn set(&mut self, method: &str, result: Value) {
        self.results.insert(method.to_owned(), result);
    }

    /// From now on, heights and the node's status follow `chain` (fluxd only).
    pub fn with_chain(mut self, chain: chain::Chain) -> Double {
        self.chain = Some(chain);
        self
    }

    /// One HTTP exchange: (status code, body); `None` while a scripted fluxd is away (the
    /// connection is dropped unanswered).
    pub fn handle(&self, authorization: Option<&str>, body: &[u8]) -> Option<(u16, String)> {
        let at = self.chain.as_ref().map(|c| c.at(c.height()));
        if at.as_ref().is_some_and(|a| a.down) {
            return None;
        }
        if authorization.map(str::trim) != Some(self.auth.as_str()) {
            return Some((401, String::new()));
        }
        let req: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => return Some((500, json!({"result": null, "error": {"code": -32700, "message": "Parse error"}, "id": null}).to_string())),
        };
        let id = req["id"].clone();
        let method = req["method"].as_str().unwrap_or_default();
        let scripted = self.chain.as_ref().zip(at.as_ref()).and_then(|(c, at)| c.answer(at, method, self.results.get(method)));
        Some(match scripted.as_ref().or_else(|| self.results.get(method)) {
            Some(r) => (200, json!({"result": r, "error": null, "id": id}).to_string()),
            None => (404, json!({"result": null, "error": {"code": -32601, "message": "Method not found"}, "id": id}).to_string()),
        })
    }

    /// Serves HTTP on `listener` until the process ends, one thread per connection.
    pub fn serve(self, listener: TcpListener) {
        let me = std::sync::Arc::new(self);
        for stream in listener.incoming().flatten() {
            let me = me.clone();
            std::thread::spawn(move || {
                let _ = me.connection(stream);
            });
        }
    }

    fn connection(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut out = stream;
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line)? == 0 {
                return Ok(());
            }
            let (mut length, mut auth, mut close) = (0usize, None, false);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap_or((h.as_str(), ""));
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "authorization" => auth = Some(v.trim().to_owned()),
                    "connection" => close = v.trim().eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
            let mut body = vec![0u8; length.min(1 << 20)];
            reader.read_exact(&mut body)?;
            let answer = if request_line.starts_with("POST ") { self.handle(auth.as_deref(), &body) } else { Some((405, String::new())) };
            let Some((code, text)) = answer else { return Ok(()) };
            let reason = match code {
                200 => "OK",
                401 => "Unauthorized",
                404 => "Not Found",
                405 => "Method Not Allowed",
                _ => "Internal Server Error",
            };
            let extra = if code == 401 { "WWW-Authenticate: Basic realm=\"jsonrpc\"\r\n" } else { "" };
            write!(out, "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{text}", text.len())?;
            out.flush()?;
            if close {
                return Ok(());
            }
        }
    }
}
