//! Downloads over HTTPS against a real TLS server on loopback (rustls, a certificate from a
//! test CA made by openssl; no VM). A test binary of its own: the CA a process trusts is set
//! once per process (`download::trust_only`), as `cairnctl` does from `ca_file`.

use cairn_qemu_tests::http::Server;
use cairn_qemu_tests::tls::TestCa;
use cairn_updater::download::{self, Event, Http, Resuming};
use cairn_updater::tuf::client::Fetch;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::time::Duration;

#[test]
fn an_https_mirror_with_its_own_ca_is_refused_under_the_public_roots_and_resumes_a_download_under_its_ca() {
    let dir = std::env::temp_dir().join(format!("cairn-https-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www/targets")).expect("dir");
    let ca = TestCa::make(&dir.join("ca")).expect("make the test CA");
    let bytes: Vec<u8> = (0..(2usize << 20)).map(|i| u8::try_from((i * 13 + i / 509) % 256).unwrap_or(0)).collect();
    std::fs::write(dir.join("www/targets/b.bundle"), &bytes).expect("write");
    let server = Server::start_tls(&dir.join("www"), &ca).expect("HTTPS server");
    assert!(server.url().starts_with("https://127.0.0.1:"));

    // Under the public web roots (the default), the mirror's certificate is not trusted.
    let err = Http::new(&server.url()).fetch("targets/b.bundle", 1 << 30).expect_err("a certificate of an unknown CA");
    assert!(err.to_string().contains("UnknownIssuer"), "the refusal says why: {err}");
    assert!(server.requests().is_empty(), "no request went over the untrusted connection");

    // Under its CA, a download that the server cuts resumes over a new TLS connection.
    assert_eq!(download::trust_only(ca.ca_pem().expect("ca.pem").as_bytes()).expect("the CA parses"), 1);
    let cut = 777_777u64;
    server.stop_once_at("targets/b.bundle", cut, Duration::from_secs(1));
    let sha = hex::encode(Sha256::digest(&bytes));
    let (mut events, mut got) = (Vec::new(), Vec::new());
    Resuming::new(&format!("{}/targets/b.bundle", server.url()), Some((bytes.len() as u64, sha)), |e| events.push(e)).read_to_end(&mut got).expect("the download completes");
    assert!(got == bytes, "the download over HTTPS is not the file");
    assert!(matches!(events.first(), Some(Event::Resumed { offset, .. }) if *offset == cut), "{events:?}");
    let reqs = server.requests();
    assert_eq!(reqs.last().map(|r| (r.range_start, r.status)), Some((Some(cut), 206)), "{reqs:?}");
    let _ = std::fs::remove_dir_all(dir);
}
