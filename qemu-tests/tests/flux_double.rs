//! The Flux daemon test double speaks the real protocol and agrees with the captured
//! fixtures. Real TCP on loopback, a plain HTTP/1.1 client.

use cairn_qemu_tests::flux::{credentials, Double, Role, SAMPLE_CONF};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

fn start(role: Role) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let double = Double::new(role, SAMPLE_CONF).expect("double");
    std::thread::spawn(move || double.serve(listener));
    addr
}

/// POSTs a JSON-RPC 1.0 request the way fluxd's clients do; returns (HTTP status, body).
fn call(addr: SocketAddr, user: &str, pass: &str, method: &str) -> (u16, String) {
    use base64::Engine;
    let body = json!({"jsonrpc": "1.0", "id": "cairn-test", "method": method, "params": []}).to_string();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let code = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (code, body)
}

fn fixture(name: &str) -> Value {
    let p = cairn_qemu_tests::workspace().join("qemu-tests/fixtures/flux").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("fixture JSON")
}

fn sample_credentials() -> (String, String) {
    credentials(SAMPLE_CONF).expect("sample flux.conf has rpcuser and rpcpassword")
}

#[test]
fn fixtures_are_the_shared_captures() {
    let shared = cairn_qemu_tests::workspace().join("../shared/fixtures/flux");
    assert!(shared.is_dir(), "{} is missing: the team's shared/ folder must sit beside the repository", shared.display());
    for e in std::fs::read_dir(cairn_qemu_tests::workspace().join("qemu-tests/fixtures/flux")).expect("fixtures").flatten() {
        let theirs = std::fs::read(shared.join(e.file_name())).unwrap_or_default();
        assert_eq!(std::fs::read(e.path()).unwrap_or_default(), theirs, "{:?} differs from shared/fixtures/flux", e.file_name());
    }
}

#[test]
fn fluxd_answers_getfluxnodestatus_like_a_live_node() {
    let addr = start(Role::Daemon);
    let (user, pass) = sample_credentials();
    let (code, body) = call(addr, &user, &pass, "getfluxnodestatus");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON-RPC reply");
    assert_eq!(v["id"], "cairn-test");
    assert!(v["error"].is_null());
    assert_eq!(v["result"], fixture("fluxos_daemon_getfluxnodestatus.json")["data"]);
    assert_eq!(v["result"]["status"], "CONFIRMED");
    assert_eq!(v["result"]["tier"], "STRATUS");
    let (_, count) = call(addr, &user, &pass, "getblockcount");
    let count: Value = serde_json::from_str(&count).expect("json");
    assert!(count["result"].as_u64().unwrap_or(0) > 2_020_000, "{count}");
}

#[test]
fn fluxd_passes_benchmark_output_through_as_a_string() {
    let addr = start(Role::Daemon);
    let (user, pass) = sample_credentials();
    let (code, body) = call(addr, &user, &pass, "getbenchmarks");
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    let inner: Value = serde_json::from_str(v["result"].as_str().expect("a JSON string, as fluxd passes it")).expect("decodes twice");
    assert!(inner.is_object(), "{inner}");
}

#[test]
fn fluxbenchd_reports_a_secure_system() {
    let addr = start(Role::Bench);
    let (user, pass) = sample_credentials();
    let (code, body) = call(addr, &user, &pass, "getstatus");
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["result"]["systemsecure"], true);
    assert_eq!(v["result"]["benchmarking"], "STRATUS");
}

#[test]
fn wrong_credentials_are_refused() {
    let addr = start(Role::Daemon);
    let (user, _) = sample_credentials();
    let (code, body) = call(addr, &user, "not-the-password", "getfluxnodestatus");
    assert_eq!(code, 401);
    assert!(!body.contains("CONFIRMED"));
}

#[test]
fn unknown_method_is_a_json_rpc_error() {
    let addr = start(Role::Daemon);
    let (user, pass) = sample_credentials();
    let (code, body) = call(addr, &user, &pass, "stop");
    assert_eq!(code, 404);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["code"], -32601);
    assert_eq!(v["id"], "cairn-test");
}
