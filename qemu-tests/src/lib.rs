//! The VM test harness: boot a Cairn disk image in QEMU and drive it, in the spirit of the
//! NixOS test driver. See [`machine::Machine`] for the API.
//!
//! - the base image is never modified: every machine runs on a qcow2 overlay;
//! - the serial console goes to `target/qemu-tests/<test>/console.log` (kept after a failure);
//! - commands run in the guest through the test agent on a virtconsole ([`agent`]);
//! - reset, power button and Ctrl-Alt-Del go through QMP ([`qmp`]).

pub mod agent;
pub mod console;
pub mod container;
pub mod flux;
pub mod http;
pub mod image;
pub mod kvm;
pub mod machine;
pub mod power_cut;
pub mod qmp;
pub mod seed;
pub mod shared;
pub mod snapshot;
pub mod tls;
pub mod year;

pub use machine::{Bus, Firmware, Machine, MachineConfig, ReadyLine};

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{tool} not found: apt-get install {package} (or run ./dev setup)")]
    Missing { tool: String, package: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("timed out after {secs} s waiting for {what}; console log: {log}")]
    Timeout { what: String, secs: u64, log: String },
    #[error("QMP: {0}")]
    Qmp(String),
    #[error("guest command `{cmd}` {expectation}, status {status}; output:\n{output}")]
    Command { cmd: String, expectation: &'static str, status: i32, output: String },
    #[error("the test image is not available: {0}")]
    Image(String),
    #[error("QEMU exited unexpectedly ({status}); console log: {log}")]
    Exited { status: String, log: String },
    /// A test's own expectation about the guest did not hold (for tests built on the harness).
    #[error("{0}")]
    Check(String),
}

impl HarnessError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
        let what = what.into();
        move |source| HarnessError::Io { what, source }
    }
}

/// The workspace root (this crate's parent directory).
pub fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(std::path::Path::to_owned).unwrap_or_default()
}

/// The factor every harness deadline is multiplied by: `CAIRN_TEST_TIME_SCALE` (a number,
/// 1 to 10; default 1). Deadlines are tuned for a quiet 2-core machine; on one about twice
/// as slow, or loaded, run the suite with `CAIRN_TEST_TIME_SCALE=2`. Only deadlines scale:
/// no test asserts on how long something took.
pub fn time_scale() -> f64 {
    static SCALE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *SCALE.get_or_init(|| match std::env::var("CAIRN_TEST_TIME_SCALE") {
        Err(_) => 1.0,
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(f) if (1.0..=10.0).contains(&f) => f,
            _ => panic!("CAIRN_TEST_TIME_SCALE={v:?} is not a number from 1 to 10 (the factor every VM test deadline is multiplied by)"),
        },
    })
}

/// `d` scaled by [`time_scale`].
pub fn deadline(d: std::time::Duration) -> std::time::Duration {
    d.mul_f64(time_scale())
}

/// Waits on `pair`'s condition variable until `check` returns something or `timeout` (scaled
/// by [`time_scale`]) passes. The agent and the console both wait this way for data their
/// reader threads deliver.
pub(crate) fn wait_on<T, R>(
    pair: &(std::sync::Mutex<T>, std::sync::Condvar),
    timeout: std::time::Duration,
    mut check: impl FnMut(&mut T) -> Option<R>,
) -> Option<R> {
    let deadline = std::time::Instant::now() + deadline(timeout);
    let (m, cv) = pair;
    let mut g = m.lock().ok()?;
    loop {
        if let Some(r) = check(&mut g) {
            return Some(r);
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return None;
        }
        g = cv.wait_timeout(g, deadline - now).ok()?.0;
    }
}
