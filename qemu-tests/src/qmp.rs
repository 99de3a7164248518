//! A minimal QMP client: the greeting, `qmp_capabilities`, then one command at a time.

use crate::HarnessError;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// Connects to a unix socket QEMU creates, retrying until it exists.
pub fn connect(path: &Path, timeout: Duration) -> Result<UnixStream, HarnessError> {
    let start = Instant::now();
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e) if start.elapsed() > timeout => return Err(HarnessError::Io { what: format!("connect {}", path.display()), source: e }),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Is this line an asynchronous event?
pub fn is_event(v: &Value) -> bool {
    v.get("event").is_some()
}

/// Is this line a reply (not an asynchronous event)?
pub fn is_reply(v: &Value) -> bool {
    v.get("return").is_some() || v.get("error").is_some()
}

impl Qmp {
    pub fn open(path: &Path) -> Result<Qmp, HarnessError> {
        let stream = connect(path, Duration::from_secs(20))?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(HarnessError::io("qmp timeout"))?;
        let writer = stream.try_clone().map_err(HarnessError::io("qmp clone"))?;
        let mut q = Qmp { reader: BufReader::new(stream), writer };
        // QEMU may emit an event (RESUME after -loadvm) to a client that connected while the
        // machine was still being set up, before the greeting: skip events, refuse anything else.
        loop {
            let line = q.read()?;
            if line.get("QMP").is_some() {
                break;
            }
            if !is_event(&line) {
                return Err(HarnessError::Qmp(format!("unexpected greeting {line}")));
            }
        }
        q.execute("qmp_capabilities", json!({}))?;
        Ok(q)
    }

    fn read(&mut self) -> Result<Value, HarnessError> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(HarnessError::io("qmp read"))?;
        if n == 0 {
            return Err(HarnessError::Qmp("QEMU closed the QMP socket".into()));
        }
        serde_json::from_str(&line).map_err(|e| HarnessError::Qmp(format!("bad QMP line {line:?}: {e}")))
    }

    pub fn execute(&mut self, cmd: &str, args: Value) -> Result<Value, HarnessError> {
        let msg = json!({"execute": cmd, "arguments": args});
        writeln!(self.writer, "{msg}").map_err(HarnessError::io("qmp write"))?;
        loop {
            let v = self.read()?;
            if is_reply(&v) {
                if let Some(e) = v.get("error") {
                    return Err(HarnessError::Qmp(format!("{cmd}: {e}")));
                }
                return Ok(v["return"].clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_events_are_told_apart() {
        assert!(is_reply(&json!({"return": {}})));
        assert!(is_reply(&json!({"error": {"class": "GenericError"}})));
        assert!(!is_reply(&json!({"event": "POWERDOWN", "timestamp": {}})));
        assert!(is_event(&json!({"event": "RESUME", "timestamp": {}})));
        assert!(!is_event(&json!({"QMP": {"version": {}}})));
    }
}
