//! The node daemon (fluxd) as the eligibility tracker sees it: its JSON-RPC answers parsed
//! into types, and one [`Fluxd`] state per sample. fluxd down, syncing or answering
//! garbage is a state the tracker records, never an error that stops it.
//!
//! fluxd speaks JSON-RPC 1.0 over HTTP POST on 127.0.0.1:16124 with Basic auth from
//! flux.conf's `rpcuser`/`rpcpassword`, and answers `{"result": ..., "error": ..., "id": ...}`
//! (the captures in ../shared/fixtures/flux/ came through FluxOS, which wraps the same value
//! as `{"status","data"}`). Heights are integers on live nodes although fluxd's help text
//! calls them strings: both are accepted. A node the daemon does not know answers only
//! `{"status": "expired", "collateral": ...}`.

use serde::Deserialize;
use serde_json::Value;

/// The daemon's RPC port unless flux.conf sets `rpcport`.
pub const RPC_PORT: u16 = 16124;
/// Blocks the tip may trail the best header and still count as synced: a block or two is
/// in flight on any healthy node.
const SYNC_SLACK: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum FluxdError {
    #[error("flux.conf has no {0}= line")]
    Conf(&'static str),
    #[error("flux.conf's rpcport={0:?} is not a port")]
    Port(String),
    #[error("fluxd refused the RPC credentials from flux.conf (HTTP 401)")]
    Unauthorized,
    #[error("fluxd answered {method} with error {code}: {message}")]
    Daemon { method: String, code: i64, message: String },
    #[error("fluxd's answer to {method} is not JSON-RPC (HTTP {http})")]
    Envelope { method: String, http: u16, source: serde_json::Error },
    #[error("fluxd's answer to {method} is not what it answers on a live node")]
    Shape { method: String, source: serde_json::Error },
}

/// What the tracker needs from flux.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    pub rpcuser: String,
    pub rpcpassword: String,
    pub rpcport: u16,
}

impl Conf {
    /// flux.conf's `key=value` lines; the last of a repeated key counts, as in fluxd.
    pub fn parse(text: &str) -> Result<Conf, FluxdError> {
        let get = |key: &str| text.lines().filter_map(|l| l.trim().split_once('=')).filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim().to_owned()).next_back();
        let rpcport = match get("rpcport") {
            None => RPC_PORT,
            Some(p) => p.parse().map_err(|_| FluxdError::Port(p))?,
        };
        Ok(Conf { rpcuser: get("rpcuser").ok_or(FluxdError::Conf("rpcuser"))?, rpcpassword: get("rpcpassword").ok_or(FluxdError::Conf("rpcpassword"))?, rpcport })
    }
}

/// The `result` of one JSON-RPC exchange, from the HTTP status and body: bitcoind-derived
/// daemons answer errors with HTTP 404 or 500 and the error in the body.
pub fn result(method: &str, http: u16, body: &[u8]) -> Result<Value, FluxdError> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        result: Value,
        #[serde(default)]
        error: Option<RpcError>,
    }
    #[derive(Deserialize)]
    struct RpcError {
        code: i64,
        message: String,
    }
    if http == 401 {
        return Err(FluxdError::Unauthorized);
    }
    let e: Envelope = serde_json::from_slice(body).map_err(|source| FluxdError::Envelope { method: method.to_owned(), http, source })?;
    match e.error {
        Some(err) => Err(FluxdError::Daemon { method: method.to_owned(), code: err.code, message: err.message }),
        None => Ok(e.result),
    }
}

/// `getfluxnodestatus`'s `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Confirmed by the network: the only status that earns rewards and counts blocks.
    Confirmed,
    /// Its start transaction is in a block; not yet confirmed (expires after 240 blocks).
    Started,
    Offline,
    /// Denial of service: failed to confirm in time, barred for a while.
    Dos,
    /// Missed its confirmation window, or unknown to the daemon: it lost its place.
    Expired,
    /// Anything else fluxd may say one day, kept verbatim.
    Other(String),
}

/// As fluxd spells it.
impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Confirmed => "CONFIRMED",
            Status::Started => "STARTED",
            Status::Offline => "OFFLINE",
            Status::Dos => "DOS",
            Status::Expired => "expired",
            Status::Other(s) => s,
        })
    }
}

impl Status {
    fn parse(s: &str) -> Status {
        match s.to_ascii_uppercase().as_str() {
            "CONFIRMED" => Status::Confirmed,
            "STARTED" => Status::Started,
            "OFFLINE" => Status::Offline,
            "DOS" => Status::Dos,
            "EXPIRED" => Status::Expired,
            _ => Status::Other(s.to_owned()),
        }
    }
}

/// `getfluxnodestatus`, as the tracker uses it. A height that fluxd leaves out (the expired
/// form) or gives as 0 or below is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeStatus {
    #[serde(deserialize_with = "status")]
    pub status: Status,
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default, deserialize_with = "height")]
    pub added_height: Option<u64>,
    #[serde(default, deserialize_with = "height")]
    pub confirmed_height: Option<u64>,
    #[serde(default, deserialize_with = "height")]
    pub last_confirmed_height: Option<u64>,
    #[serde(default, deserialize_with = "height")]
    pub last_paid_height: Option<u64>,
}

fn status<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
    String::deserialize(d).map(|s| Status::parse(&s))
}

/// A height as an integer or a string of digits; 0 or negative means none.
fn height<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Height {
        Int(i64),
        Text(String),
    }
    let n = match Option::<Height>::deserialize(d)? {
        None => return Ok(None),
        Some(Height::Int(n)) => n,
        Some(Height::Text(s)) => s.trim().parse::<i64>().map_err(|_| serde::de::Error::custom(format!("height {s:?} is not a number")))?,
    };
    Ok(u64::try_from(n).ok().filter(|&h| h > 0))
}

/// `getblockchaininfo`, the part that says how far the daemon has synced.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Chain {
    pub blocks: u64,
    pub headers: u64,
}

/// What fluxd was at one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fluxd {
    /// No flux.conf: this node runs no fluxd (yet).
    NotInstalled,
    /// No answer: not running, or not listening yet. The reason is the error's chain.
    Down(String),
    /// An answer that is not what fluxd says: the reason names the method.
    Garbage(String),
    /// Answering, but behind the network: its view of the node is not current.
    Syncing { blocks: u64, headers: u64 },
    /// Synced at `height`, and what it says of this node.
    Node { height: u64, node: NodeStatus },
}

impl Fluxd {
    /// One sample's state from the answers to `getblockchaininfo` and `getfluxnodestatus`
    /// (each already through [`result`]).
    pub fn from_answers(chain: Result<Value, FluxdError>, node: Result<Value, FluxdError>) -> Fluxd {
        let chain = match chain.and_then(|v| shape::<Chain>("getblockchaininfo", v)) {
            Ok(c) => c,
            Err(e) => return Fluxd::from_error(&e),
        };
        if chain.headers > chain.blocks + SYNC_SLACK {
            return Fluxd::Syncing { blocks: chain.blocks, headers: chain.headers };
        }
        match node.and_then(|v| shape::<NodeStatus>("getfluxnodestatus", v)) {
            Ok(node) => Fluxd::Node { height: chain.blocks, node },
            Err(e) => Fluxd::from_error(&e),
        }
    }

    /// The state an answer that is an error puts fluxd in: garbage if it was no answer
    /// fluxd gives, down otherwise (its own error, refused credentials).
    pub fn from_error(e: &FluxdError) -> Fluxd {
        let reason = crate::log::chain(e);
        match e {
            FluxdError::Envelope { .. } | FluxdError::Shape { .. } => Fluxd::Garbage(reason),
            _ => Fluxd::Down(reason),
        }
    }
}

fn shape<T: serde::de::DeserializeOwned>(method: &str, v: Value) -> Result<T, FluxdError> {
    serde_json::from_value(v).map_err(|source| FluxdError::Shape { method: method.to_owned(), source })
}

#[cfg(test)]
mod tests;
