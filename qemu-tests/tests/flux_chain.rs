//! The eligibility tracker against a scripted chain (issue 10's acceptance "a scripted
//! chain"): the fluxd double, on loopback, plays days of chain time in half a minute, and the
//! tracker itself (`Tracker::step`, as the service runs it, with its history and report in a
//! temporary directory) samples it over real JSON-RPC with flux.conf's credentials.

use cairn_init::eligibility::criteria::{Sample, Verdict};
use cairn_init::eligibility::store::Store;
use cairn_init::eligibility::tracker::{self, Paths, Report, Tracker};
use cairn_init::eligibility::rpc;
use cairn_qemu_tests::flux::chain::{Chain, Script};
use cairn_qemu_tests::flux::{Double, Role, SAMPLE_CONF};
use std::time::Duration;

const START: u64 = 2_000_000;
/// Two seconds of test time a phase: long enough for several samples on a loaded machine.
const PHASE: u64 = 4_000;
const CONFIRMED_1: u64 = START + PHASE;
const EXPIRED: u64 = CONFIRMED_1 + 21_600 + PHASE;
const CONFIRMED_2: u64 = EXPIRED + 2 * PHASE;
const DOS: u64 = CONFIRMED_2 + PHASE;
const DOWN: u64 = DOS + PHASE;
const UP: u64 = DOWN + PHASE;
const END: u64 = UP + PHASE / 2;

fn script() -> String {
    format!(
        "start_height = {START}\nblocks_per_s = 2000\nconfirm_every = 600\nat = [\n\
         {{ height = {START}, status = \"STARTED\" }},\n\
         {{ height = {CONFIRMED_1}, status = \"CONFIRMED\" }},\n\
         {{ height = {EXPIRED}, status = \"expired\" }},\n\
         {{ height = {}, status = \"STARTED\" }},\n\
         {{ height = {CONFIRMED_2}, status = \"CONFIRMED\" }},\n\
         {{ height = {DOS}, status = \"DOS\" }},\n\
         {{ height = {DOWN}, down = true }},\n\
         {{ height = {UP}, down = false }},\n]\n",
        EXPIRED + PHASE
    )
}

fn blocks(r: &Report) -> (Option<u64>, Verdict) {
    let c = r.criteria.iter().find(|c| c.name == "confirmed-blocks").expect("a confirmed-blocks criterion");
    (c.value, c.verdict.clone())
}

fn reason(r: &Report) -> String {
    match blocks(r).1 {
        Verdict::Cannot { reason } => reason,
        other => format!("{other:?}"),
    }
}

#[test]
fn a_scripted_chain_starts_confirms_becomes_eligible_expires_and_is_barred_and_the_tracker_follows() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    let chain = Chain::start(Script::parse(&script()).expect("the script"));
    let double = Double::new(Role::Daemon, SAMPLE_CONF).expect("double").with_chain(chain.clone());
    std::thread::spawn(move || double.serve(listener));

    let dir = tempfile_dir();
    let conf = dir.join("flux.conf");
    std::fs::write(&conf, format!("{SAMPLE_CONF}\nrpcport={port}\n")).expect("flux.conf");
    // OS uptime is this host's: its rule is set low so the blocks decide.
    std::fs::write(dir.join("eligibility.toml"), format!("flux_conf = {:?}\n[rules]\nos_uptime_s = 1\n", conf.display().to_string())).expect("config");
    let paths = Paths { report: dir.join("eligibility.json"), metrics: dir.join("eligibility.prom"), state: dir.join("state"), configs: vec![dir.join("eligibility.toml")], marker: dir.join("ended.json"), sys: dir.join("sys"), soft: dir.join("soft-reboot.json"), update: dir.join("update"), slot_version: dir.join("slot-version") };
    let mut t = Tracker::open(paths.clone(), "chain-test").expect("tracker");
    assert_eq!(t.config.rules.confirmed_blocks, 21_600, "the published rule, not a test's");

    let mut seen: Vec<Report> = Vec::new();
    while chain.height() < END {
        let sample = Sample { uptime: tracker::uptime(), fluxd: rpc::sample(&t.config.flux_conf) };
        seen.push(t.step(&sample));
        std::thread::sleep(Duration::from_millis(100));
    }

    // The states in the order the tracker saw them.
    let state = |r: &Report| format!("{} {}", r.sample.fluxd.state, r.sample.fluxd.status.as_deref().unwrap_or("")).trim().to_owned();
    let mut order: Vec<String> = seen.iter().map(state).collect();
    order.dedup();
    assert_eq!(order, ["node STARTED", "node CONFIRMED", "node expired", "node STARTED", "node CONFIRMED", "node DOS", "down", "node DOS"]);

    for r in &seen {
        let h = r.sample.fluxd.height.unwrap_or(0);
        match (r.sample.fluxd.state.as_str(), r.sample.fluxd.status.as_deref()) {
            ("node", Some("STARTED")) => assert_eq!((blocks(r), r.eligible), ((Some(0), Verdict::MetIn { eta_s: 21_600 * 30 }), false), "{r:?}"),
            ("node", Some("CONFIRMED")) => {
                let since = if h < EXPIRED { CONFIRMED_1 } else { CONFIRMED_2 };
                let n = h - since;
                let verdict = if n >= 21_600 { Verdict::Met } else { Verdict::MetIn { eta_s: (21_600 - n) * 30 } };
                assert_eq!((blocks(r), r.eligible), ((Some(n), verdict), n >= 21_600), "at {h}: {r:?}");
                let margin = r.confirmation_margin.expect("a confirmed node has a margin").blocks;
                assert!((1..=700).contains(&margin), "at {h}: margin {margin}");
            }
            ("node", Some("expired")) => assert!(!r.eligible && reason(r).contains("expired"), "{r:?}"),
            ("node", Some("DOS")) => assert!(!r.eligible && reason(r).contains("DOS"), "{r:?}"),
            ("down", None) => assert!(!r.eligible && reason(r).contains("does not answer"), "{r:?}"),
            other => panic!("a state the script has not: {other:?}"),
        }
    }
    // The first streak reached the configured blocks and made the node eligible; expiry
    // reset it: the second streak counts from its own confirmation, and never got there.
    assert!(seen.iter().any(|r| r.eligible), "never eligible");
    let streak = |from: u64, to: u64| seen.iter().filter(|r| r.sample.fluxd.status.as_deref() == Some("CONFIRMED") && (from..to).contains(&r.sample.fluxd.height.unwrap_or(0))).filter_map(|r| blocks(r).0).max();
    let (first, second) = (streak(CONFIRMED_1, EXPIRED), streak(CONFIRMED_2, DOS));
    assert!(first.is_some_and(|n| n >= 21_600) && second.is_some_and(|n| n < PHASE + 10), "streaks {first:?} then {second:?}");
    assert!(seen.iter().skip_while(|r| r.sample.fluxd.status.as_deref() != Some("expired")).all(|r| !r.eligible), "eligible after expiry");

    // Every sample is in the history, each transition with it.
    let (_, opened) = Store::open(&paths.state.join("history")).expect("history");
    assert_eq!(opened.records.len(), seen.len());
    let text = String::from_utf8_lossy(&std::fs::read(paths.state.join("history")).expect("history")).into_owned();
    for status in ["STARTED", "CONFIRMED", "expired", "DOS"] {
        assert!(text.contains(&format!("\"status\":\"{status}\"")), "{status} is not in the history");
    }
}

/// A fresh directory under the target directory (no tempfile crate in this crate).
fn tempfile_dir() -> std::path::PathBuf {
    let dir = cairn_qemu_tests::workspace().join("target/cairn/flux-chain-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test directory");
    dir
}
