//! Every capture from a live node (../shared/fixtures/flux/, copied into
//! qemu-tests/fixtures/flux/ and checked identical there) parses and maps to its state.

use super::*;
use serde_json::json;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../../../qemu-tests/fixtures/flux/", $name))
    };
}

/// A FluxOS capture's `data`, as fluxd itself would answer it: `{"result", "error", "id"}`.
fn as_fluxd(method: &str, capture: &str) -> Result<Value, FluxdError> {
    let v: Value = serde_json::from_str(capture).expect("a capture is JSON");
    assert_eq!(v["status"], "success", "{method}: the capture is an answer");
    let body = json!({"result": v["data"], "error": null, "id": 1}).to_string();
    result(method, 200, body.as_bytes())
}

fn chain() -> Result<Value, FluxdError> {
    as_fluxd("getblockchaininfo", fixture!("fluxos_daemon_getblockchaininfo.json"))
}

fn node() -> Value {
    as_fluxd("getfluxnodestatus", fixture!("fluxos_daemon_getfluxnodestatus.json")).expect("status")
}

#[test]
fn the_captured_confirmed_node_maps_to_confirmed_at_the_captured_height() {
    let Fluxd::Node { height, node } = Fluxd::from_answers(chain(), Ok(node())) else { panic!("not a node state") };
    assert_eq!(height, 2_996_915);
    assert_eq!(node.status, Status::Confirmed);
    assert_eq!(node.tier.as_deref(), Some("STRATUS"));
    assert_eq!((node.added_height, node.confirmed_height), (Some(2_029_943), Some(2_029_946)));
    assert_eq!((node.last_confirmed_height, node.last_paid_height), (Some(2_996_541), Some(2_995_263)));
}

#[test]
fn heights_given_as_strings_read_as_the_same_integers() {
    let mut v = node();
    for k in ["added_height", "confirmed_height", "last_confirmed_height", "last_paid_height"] {
        v[k] = json!(v[k].to_string());
    }
    assert!(v["confirmed_height"].is_string());
    let as_text = Fluxd::from_answers(chain(), Ok(v));
    assert_eq!(as_text, Fluxd::from_answers(chain(), Ok(node())));
}

#[test]
fn the_expired_only_form_is_an_expired_node_with_no_heights() {
    let v = json!({"status": "expired", "collateral": "COutPoint(b7032eb067c6e96703f386bcddd24075b56f78c5f46af6af702447a0e8ee455d, 0)"});
    let Fluxd::Node { node, .. } = Fluxd::from_answers(chain(), Ok(v)) else { panic!("not a node state") };
    assert_eq!(node.status, Status::Expired);
    assert_eq!((node.confirmed_height, node.last_confirmed_height, node.tier), (None, None, None));
}

#[test]
fn each_status_fluxd_gives_maps_to_its_own() {
    for (text, status) in [("STARTED", Status::Started), ("OFFLINE", Status::Offline), ("DOS", Status::Dos), ("CONFIRMED", Status::Confirmed), ("expired", Status::Expired), ("NEW_ONE", Status::Other("NEW_ONE".into()))] {
        let mut v = node();
        v["status"] = json!(text);
        let Fluxd::Node { node, .. } = Fluxd::from_answers(chain(), Ok(v)) else { panic!("{text}: not a node state") };
        assert_eq!(node.status, status, "{text}");
    }
}

#[test]
fn a_daemon_behind_its_headers_is_syncing_whatever_it_says_of_the_node() {
    let mut c = chain().expect("chain");
    c["blocks"] = json!(2_900_000);
    assert_eq!(Fluxd::from_answers(Ok(c), Ok(node())), Fluxd::Syncing { blocks: 2_900_000, headers: 2_996_915 });
}

#[test]
fn garbage_and_silence_are_states_with_their_reason() {
    // Not JSON-RPC at all.
    let e = result("getblockchaininfo", 200, b"<html>502 Bad Gateway</html>");
    assert!(matches!(Fluxd::from_answers(e, Ok(node())), Fluxd::Garbage(r) if r.contains("getblockchaininfo")));
    // JSON-RPC, but not a node status: a height that is no number, a status that is no string.
    for bad in [json!({"status": "CONFIRMED", "confirmed_height": "soon"}), json!({"status": 7}), json!([1, 2])] {
        let s = Fluxd::from_answers(chain(), Ok(bad.clone()));
        assert!(matches!(&s, Fluxd::Garbage(r) if r.contains("getfluxnodestatus")), "{bad}: {s:?}");
    }
    // The daemon's own error (warming up) and refused credentials: down, with what it said.
    let warming = result("getblockchaininfo", 500, br#"{"result":null,"error":{"code":-28,"message":"Loading block index..."},"id":1}"#);
    assert!(matches!(Fluxd::from_answers(warming, Ok(node())), Fluxd::Down(r) if r.contains("Loading block index")));
    assert!(matches!(result("getblockchaininfo", 401, b""), Err(FluxdError::Unauthorized)));
    let missing = result("nosuchmethod", 404, br#"{"result":null,"error":{"code":-32601,"message":"Method not found"},"id":1}"#);
    assert!(matches!(missing, Err(FluxdError::Daemon { code: -32601, .. })));
}

#[test]
fn every_daemon_capture_is_a_json_rpc_result() {
    for (method, capture) in [
        ("getblockcount", fixture!("fluxos_daemon_getblockcount.json")),
        ("getinfo", fixture!("fluxos_daemon_getinfo.json")),
        ("getbenchmarks", fixture!("fluxos_daemon_getbenchmarks.json")),
        ("getbenchstatus", fixture!("fluxos_daemon_getbenchstatus.json")),
        ("getzelnodecount", fixture!("fluxos_daemon_getzelnodecount.json")),
    ] {
        assert!(!as_fluxd(method, capture).expect(method).is_null(), "{method}");
    }
    assert_eq!(as_fluxd("getblockcount", fixture!("fluxos_daemon_getblockcount.json")).expect("count"), json!(2_996_952));
}

#[test]
fn flux_conf_gives_the_rpc_credentials_and_port() {
    let conf = Conf::parse(fixture!("flux_conf_sample_from_fluxos_repo.conf")).expect("the sample conf");
    assert_eq!(conf, Conf { rpcuser: "FluxNodeByZelcoreTestNODE".into(), rpcpassword: "testpasswordpleasechange".into(), rpcport: RPC_PORT });
    assert_eq!(Conf::parse("rpcuser=a\nrpcpassword=b\nrpcport=16134\nrpcport=16144\n").expect("conf").rpcport, 16144);
    assert!(matches!(Conf::parse("rpcuser=a\n"), Err(FluxdError::Conf("rpcpassword"))));
    assert!(matches!(Conf::parse("rpcuser=a\nrpcpassword=b\nrpcport=http\n"), Err(FluxdError::Port(p)) if p == "http"));
}

#[test]
fn the_captured_node_has_been_confirmed_for_966_969_blocks_and_must_confirm_within_266() {
    use crate::eligibility::criteria::{confirmation_margin, evaluate, Rules, Sample, Verdict};
    let rules = Rules::default();
    let fluxd = Fluxd::from_answers(chain(), Ok(node()));
    let c = evaluate(&rules, &Sample { uptime: std::time::Duration::from_secs(444_150), fluxd: fluxd.clone() });
    assert_eq!((c[1].name.as_str(), c[1].value, c[1].verdict.clone()), ("confirmed-blocks", Some(2_996_915 - 2_029_946), Verdict::Met));
    // fluxos_flux_uptime.json: 444,150 s up, short of 30 days by the rest.
    assert_eq!(c[0].verdict, Verdict::MetIn { eta_s: 30 * 86_400 - 444_150 });
    assert_eq!(confirmation_margin(&rules, &fluxd).map(|m| m.0), Some(2_996_541 + 640 - 2_996_915));
}
