//! Downloads against a real HTTP server on loopback (no VM): whole files, the server stopping
//! mid-download and coming back (the download resumes with a Range request where it stopped),
//! and the ways a server can lie.

use cairn_qemu_tests::http::Server;
use cairn_updater::download::{Event, Http, Resuming};
use cairn_updater::tuf::client::Fetch;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

fn served(name: &str, len: usize) -> (PathBuf, Vec<u8>, Server) {
    let dir = std::env::temp_dir().join(format!("cairn-download-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("targets")).expect("dir");
    let bytes: Vec<u8> = (0..len).map(|i| u8::try_from((i * 7 + i / 251) % 256).unwrap_or(0)).collect();
    std::fs::write(dir.join("targets/b.bundle"), &bytes).expect("write");
    let server = Server::start(&dir).expect("server");
    (dir, bytes, server)
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[test]
fn a_download_resumes_where_the_server_stopped() {
    let (dir, bytes, server) = served("resume", 3 << 20);
    let cut = 1_234_567u64;
    server.stop_once_at("targets/b.bundle", cut, Duration::from_secs(2));
    let mut events = Vec::new();
    let mut got = Vec::new();
    let url = format!("{}/targets/b.bundle", server.url());
    Resuming::new(&url, Some((bytes.len() as u64, sha(&bytes))), |e| events.push(e)).read_to_end(&mut got).expect("the download completes");
    assert!(got == bytes, "the resumed download is not the file");
    let Some(Event::Resumed { offset, .. }) = events.first() else { panic!("no resume reported: {events:?}") };
    assert_eq!(*offset, cut, "resumed at the byte the server stopped at");
    let reqs = server.requests();
    assert_eq!(reqs.first().map(|r| (r.range_start, r.sent)), Some((None, cut)), "{reqs:?}");
    assert_eq!(reqs.last().map(|r| (r.range_start, r.status, r.sent)), Some((Some(cut), 206, bytes.len() as u64 - cut)), "{reqs:?}");
    // The server was down for a while: those attempts failed to connect and left no request.
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn without_a_tuf_length_the_server_s_length_still_tells_a_drop_from_the_end() {
    let (dir, bytes, server) = served("nolength", 1 << 20);
    server.stop_once_at("targets/b.bundle", 300_000, Duration::from_secs(1));
    let mut got = Vec::new();
    let url = format!("{}/targets/b.bundle", server.url());
    Resuming::new(&url, None, |_| {}).read_to_end(&mut got).expect("the download completes");
    assert!(got == bytes);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_server_that_lies_about_the_bytes_is_caught() {
    let (dir, bytes, server) = served("lies", 100_000);
    let url = format!("{}/targets/b.bundle", server.url());
    let mut sink = Vec::new();
    let e = Resuming::new(&url, Some((bytes.len() as u64, "00".repeat(32))), |_| {}).read_to_end(&mut sink).expect_err("wrong hash");
    assert!(e.to_string().contains("SHA-256"), "{e}");
    // Longer than the signed length: the extra bytes are never passed on.
    let mut sink = Vec::new();
    let e = Resuming::new(&url, Some((1000, sha(&bytes[..1000]))), |_| {}).read_to_end(&mut sink).expect_err("too long");
    assert!(e.to_string().contains("longer than the 1000 bytes"), "{e}");
    assert!(sink.len() <= 1000);
    let e = Resuming::new(&format!("{}/targets/none", server.url()), None, |_| {}).read_to_end(&mut Vec::new()).expect_err("404");
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tuf_metadata_fetches_are_bounded_and_a_missing_file_is_none() {
    let (dir, bytes, server) = served("fetch", 5000);
    let mut h = Http::new(&format!("{}/", server.url()));
    assert_eq!(h.fetch("targets/b.bundle", 5000).expect("fetch"), Some(bytes));
    assert!(h.fetch("targets/b.bundle", 4999).is_err(), "a file over the bound is an error, not a cut");
    assert_eq!(h.fetch("metadata/2.root.json", 5000).expect("fetch"), None);
    let _ = std::fs::remove_dir_all(dir);
}
