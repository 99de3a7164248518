//! `cairn-flux-double`: the Flux node daemon or benchmark daemon stand-in, for test images
//! only (see `cairn_qemu_tests::flux`).
//!
//!   cairn-flux-double --role fluxd|fluxbenchd [--listen ADDR] [--conf flux.conf | --install-conf PATH]
//!   defaults: fluxd on 127.0.0.1:16124, fluxbenchd on 127.0.0.1:16224, the sample flux.conf
//!   --install-conf: write the sample flux.conf to PATH unless a file is there, and use PATH
//!   --chain SCRIPT: heights and the node's status follow a scripted chain (`flux::chain`)
//!   --chain-if-present SCRIPT: the same if SCRIPT exists when the double starts (a test
//!   writes it and restarts the service), else the captured node

use cairn_qemu_tests::flux::chain::{Chain, Script};
use cairn_qemu_tests::flux::{Double, Role, SAMPLE_CONF};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (role, port) = match arg(&args, "--role").as_deref() {
        Some("fluxd") | None => (Role::Daemon, 16124),
        Some("fluxbenchd") => (Role::Bench, 16224),
        Some(other) => {
            eprintln!("cairn-flux-double: unknown role {other:?}: use fluxd or fluxbenchd");
            std::process::exit(2);
        }
    };
    if let Some(p) = arg(&args, "--install-conf") {
        if !std::path::Path::new(&p).exists() {
            if let Err(e) = std::fs::write(&p, SAMPLE_CONF) {
                eprintln!("cairn-flux-double: cannot write {p}: {e}");
                std::process::exit(1);
            }
        }
    }
    let conf = match arg(&args, "--conf").or_else(|| arg(&args, "--install-conf")) {
        Some(p) => std::fs::read_to_string(&p).unwrap_or_else(|e| {
            eprintln!("cairn-flux-double: cannot read {p}: {e}");
            std::process::exit(1);
        }),
        None => SAMPLE_CONF.to_owned(),
    };
    let listen = arg(&args, "--listen").unwrap_or_else(|| format!("127.0.0.1:{port}"));
    let double = Double::new(role, &conf).unwrap_or_else(|e| {
        eprintln!("cairn-flux-double: {e}");
        std::process::exit(1);
    });
    let script = arg(&args, "--chain").or_else(|| arg(&args, "--chain-if-present").filter(|p| std::path::Path::new(p).exists()));
    let double = match script {
        None => double,
        Some(p) => match std::fs::read_to_string(&p).map_err(|e| e.to_string()).and_then(|t| Script::parse(&t).map_err(|e| format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()))) {
            Ok(script) => {
                eprintln!("cairn-flux-double: the chain follows {p}");
                double.with_chain(Chain::start(script))
            }
            Err(e) => {
                eprintln!("cairn-flux-double: {p}: {e}");
                std::process::exit(1);
            }
        },
    };
    let listener = std::net::TcpListener::bind(&listen).unwrap_or_else(|e| {
        eprintln!("cairn-flux-double: cannot listen on {listen}: {e}");
        std::process::exit(1);
    });
    eprintln!("cairn-flux-double: {role:?} listening on {listen}");
    double.serve(listener);
}
