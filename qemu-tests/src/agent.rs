//! The host side of the test agent's protocol (see the agent binary for the wire format).

use crate::HarnessError;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
struct State {
    replies: HashMap<u64, (i32, String)>,
    hellos: Vec<String>,
}

#[derive(Debug)]
pub struct Agent {
    writer: Mutex<UnixStream>,
    state: Arc<(Mutex<State>, Condvar)>,
    next_id: Mutex<u64>,
}

/// What one line from the agent means.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    Hello { boot_id: String },
    Reply { id: u64, status: i32, output: String },
    Other,
}

pub fn parse(line: &str) -> Message {
    let Ok(v) = serde_json::from_str::<Value>(line.trim()) else { return Message::Other };
    if v["hello"].is_string() {
        return Message::Hello { boot_id: v["boot_id"].as_str().unwrap_or("").to_owned() };
    }
    match (v["id"].as_u64(), v["status"].as_i64()) {
        (Some(id), Some(status)) => Message::Reply { id, status: status as i32, output: v["output"].as_str().unwrap_or("").to_owned() },
        _ => Message::Other,
    }
}

pub fn request(id: u64, cmd: &str, timeout: Duration) -> String {
    json!({"id": id, "cmd": cmd, "timeout_s": timeout.as_secs().max(1)}).to_string()
}

impl Agent {
    pub fn new(stream: UnixStream) -> Result<Agent, HarnessError> {
        let reader = stream.try_clone().map_err(HarnessError::io("agent socket"))?;
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let st = state.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                let (m, cv) = &*st;
                if let Ok(mut g) = m.lock() {
                    match parse(&line) {
                        Message::Hello { boot_id } => g.hellos.push(boot_id),
                        Message::Reply { id, status, output } => {
                            g.replies.insert(id, (status, output));
                        }
                        Message::Other => {}
                    }
                }
                cv.notify_all();
            }
        });
        // Ids start high and differ per connection so a stale reply never matches.
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64 % 1_000_000).unwrap_or(0);
        Ok(Agent { writer: Mutex::new(stream), state, next_id: Mutex::new(seed * 1000) })
    }

    pub fn hellos(&self) -> usize {
        self.state.0.lock().map(|g| g.hellos.len()).unwrap_or(0)
    }

    /// Waits for a hello beyond the first `seen`; returns its boot id.
    pub fn wait_hello(&self, seen: usize, timeout: Duration) -> Option<String> {
        crate::wait_on(&self.state, timeout, |g| if g.hellos.len() > seen { g.hellos.last().cloned() } else { None })
    }

    /// Sends a command; returns its id without waiting.
    pub fn send(&self, cmd: &str, timeout: Duration) -> Result<u64, HarnessError> {
        let id = {
            let mut n = self.next_id.lock().map_err(|_| HarnessError::Qmp("agent lock".into()))?;
            *n += 1;
            *n
        };
        let mut w = self.writer.lock().map_err(|_| HarnessError::Qmp("agent lock".into()))?;
        writeln!(w, "{}", request(id, cmd, timeout)).map_err(HarnessError::io("agent write"))?;
        Ok(id)
    }

    pub fn wait_reply(&self, id: u64, timeout: Duration) -> Option<(i32, String)> {
        crate::wait_on(&self.state, timeout, |g| g.replies.remove(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_lines() {
        assert_eq!(parse(r#"{"hello":"cairn-test-agent","boot_id":"abc"}"#), Message::Hello { boot_id: "abc".into() });
        assert_eq!(parse(r#"{"id":7,"status":0,"output":"hi\n"}"#), Message::Reply { id: 7, status: 0, output: "hi\n".into() });
        assert_eq!(parse("garbage"), Message::Other);
        let r: Value = serde_json::from_str(&request(3, "echo 'x'", Duration::from_secs(9))).unwrap_or_default();
        assert_eq!((r["id"].as_u64(), r["cmd"].as_str(), r["timeout_s"].as_u64()), (Some(3), Some("echo 'x'"), Some(9)));
    }
}
