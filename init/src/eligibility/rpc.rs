//! fluxd's JSON-RPC, as the tracker calls it: one POST per method to 127.0.0.1 with Basic
//! auth from flux.conf, each bounded in time and size, so a daemon that hangs or floods
//! costs one sample, never the tracker.

use super::fluxd::{self, Conf, Fluxd, FluxdError};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// A whole exchange: fluxd answers status calls in milliseconds even while it syncs.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Larger than any answer the tracker asks for (getblockchaininfo is about 1.3 KB).
const MAX_ANSWER: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("fluxd at {url} does not answer")]
    Unreachable { url: String, source: Box<ureq::Error> },
    #[error("reading fluxd's answer to {method}")]
    Body { method: String, source: Box<ureq::Error> },
    #[error(transparent)]
    Fluxd(#[from] FluxdError),
}

pub struct Client {
    agent: ureq::Agent,
    url: String,
    authorization: String,
}

/// Without the credentials: a debug line must not carry flux.conf's password.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(conf: &Conf) -> Client {
        use base64::Engine;
        let agent = ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).http_status_as_error(false).build().new_agent();
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", conf.rpcuser, conf.rpcpassword));
        Client { agent, url: format!("http://127.0.0.1:{}/", conf.rpcport), authorization: format!("Basic {credentials}") }
    }

    /// The `result` of `method` with no parameters.
    pub fn call(&self, method: &str) -> Result<Value, RpcError> {
        let request = json!({"jsonrpc": "1.0", "id": "cairn", "method": method, "params": []}).to_string();
        let response = self
            .agent
            .post(&self.url)
            .header("Authorization", &self.authorization)
            .header("Content-Type", "text/plain")
            .send(request)
            .map_err(|e| RpcError::Unreachable { url: self.url.clone(), source: Box::new(e) })?;
        let http = response.status().as_u16();
        let body = response.into_body().with_config().limit(MAX_ANSWER).read_to_vec().map_err(|e| RpcError::Body { method: method.to_owned(), source: Box::new(e) })?;
        Ok(fluxd::result(method, http, &body)?)
    }

    /// One sample of fluxd: its chain, then what it says of this node. No answer at all
    /// is `Down`; an answer is parsed for what it says (`Fluxd::from_answers`).
    pub fn sample(&self) -> Fluxd {
        let answer = |method: &str| match self.call(method) {
            Ok(v) => Ok(Ok(v)),
            Err(RpcError::Fluxd(e)) => Ok(Err(e)),
            Err(e) => Err(Fluxd::Down(crate::log::chain(&e))),
        };
        // An error for the chain is the state: the node is not asked.
        let chain = match answer("getblockchaininfo") {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => return Fluxd::from_error(&e),
            Err(down) => return down,
        };
        match answer("getfluxnodestatus") {
            Ok(node) => Fluxd::from_answers(chain, node),
            Err(down) => down,
        }
    }
}

/// fluxd as seen from this node: not installed without `conf` (flux.conf), else one sample.
pub fn sample(conf: &Path) -> Fluxd {
    match std::fs::read_to_string(conf) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Fluxd::NotInstalled,
        Err(e) => Fluxd::Down(format!("cannot read {}: {e}", conf.display())),
        Ok(text) => match Conf::parse(&text) {
            Ok(c) => Client::new(&c).sample(),
            Err(e) => Fluxd::Down(format!("{}: {}", conf.display(), crate::log::chain(&e))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eligibility::fluxd::Status;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// A server that answers each request with the next of `answers` (HTTP status, body)
    /// and records the requests' Authorization header and JSON body.
    fn serve(answers: Vec<(u16, String)>) -> (u16, std::thread::JoinHandle<Vec<(String, Value)>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (code, body) in answers {
                let (stream, _) = listener.accept().expect("accept");
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let (mut auth, mut length) = (String::new(), 0usize);
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).expect("header");
                    if line.trim().is_empty() {
                        break;
                    }
                    let (k, v) = line.split_once(':').unwrap_or((&line, ""));
                    match k.to_ascii_lowercase().as_str() {
                        "authorization" => auth = v.trim().to_owned(),
                        "content-length" => length = v.trim().parse().expect("length"),
                        _ => {}
                    }
                }
                let mut request = vec![0; length];
                reader.read_exact(&mut request).expect("body");
                seen.push((auth, serde_json::from_slice(&request).expect("a JSON request")));
                let mut out = stream;
                write!(out, "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).expect("answer");
            }
            seen
        });
        (port, seen)
    }

    fn conf(port: u16) -> Conf {
        Conf { rpcuser: "user".into(), rpcpassword: "secret".into(), rpcport: port }
    }

    #[test]
    fn a_sample_asks_the_chain_then_the_node_with_flux_conf_s_credentials() {
        let chain = r#"{"result":{"blocks":1000,"headers":1000},"error":null,"id":"cairn"}"#;
        let node = r#"{"result":{"status":"CONFIRMED","confirmed_height":"400","last_confirmed_height":900},"error":null,"id":"cairn"}"#;
        let (port, seen) = serve(vec![(200, chain.into()), (200, node.into())]);
        let client = Client::new(&conf(port));
        assert!(!format!("{client:?}").contains("secret") && !format!("{client:?}").contains("dXNlcjpzZWNyZXQ"), "credentials in a debug line");
        let Fluxd::Node { height, node } = client.sample() else { panic!("not a node state") };
        assert_eq!((height, node.status, node.confirmed_height), (1000, Status::Confirmed, Some(400)));
        let seen = seen.join().expect("server");
        assert_eq!(seen.iter().map(|(_, r)| r["method"].as_str().unwrap_or_default()).collect::<Vec<_>>(), ["getblockchaininfo", "getfluxnodestatus"]);
        // base64("user:secret")
        assert!(seen.iter().all(|(auth, _)| auth == "Basic dXNlcjpzZWNyZXQ="), "{seen:?}");
    }

    #[test]
    fn no_daemon_refused_credentials_and_no_flux_conf_are_states() {
        // A port nothing listens on: bind one, then close it.
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        assert!(matches!(Client::new(&conf(port)).sample(), Fluxd::Down(r) if r.contains("does not answer")));
        let (port, seen) = serve(vec![(401, String::new())]);
        assert!(matches!(Client::new(&conf(port)).sample(), Fluxd::Down(r) if r.contains("credentials")));
        assert_eq!(seen.join().expect("server").len(), 1, "a refused sample asks nothing more");
        assert_eq!(sample(Path::new("/nonexistent/flux.conf")), Fluxd::NotInstalled);
    }
}
