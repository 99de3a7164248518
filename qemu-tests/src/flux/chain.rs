//! A scripted chain for the fluxd double, so days of chain time pass in a test minute:
//! heights advance at `blocks_per_s` real blocks a second from `start_height`; at chosen
//! heights the node's status changes (STARTED, CONFIRMED, expired, DOS) or fluxd goes away
//! and comes back; while CONFIRMED the node confirms again every `confirm_every` blocks,
//! as a healthy node does inside its 640-block window.
//!
//! What the double then answers is the captured fixture with the scripted values put in,
//! so the shape stays the live node's: `getblockcount`, `getblockchaininfo` (blocks and
//! headers) and `getfluxnodestatus` (status and heights; the expired form is the bare
//! `{"status": "expired", "collateral": ...}` fluxd gives for a node it no longer knows).
//!
//! A script is TOML, for `cairn-flux-double --chain FILE`:
//!
//! ```toml
//! start_height = 2000000
//! blocks_per_s = 2000
//! confirm_every = 600
//! at = [
//!   { height = 2000000, status = "STARTED" },
//!   { height = 2000010, status = "CONFIRMED" },
//!   { height = 2030000, down = true },
//!   { height = 2030500, down = false },
//! ]
//! ```

use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("not a chain script")]
    Toml(#[from] toml::de::Error),
    #[error("blocks_per_s must be at least 1")]
    Rate,
    #[error("confirm_every must be between 1 and 640 blocks (the confirmation window)")]
    Confirm,
    #[error("step {0}: heights must not go down, and must not start before start_height")]
    Order(usize),
    #[error("step {index}: status {status:?} is not one fluxd gives (STARTED, CONFIRMED, expired, DOS, OFFLINE)")]
    Status { index: usize, status: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub start_height: u64,
    pub blocks_per_s: u64,
    #[serde(default = "confirm_every")]
    pub confirm_every: u64,
    #[serde(default)]
    pub at: Vec<Step>,
}

fn confirm_every() -> u64 {
    600
}

/// From `height` on: a new status, or fluxd away (`down = true`) or back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub height: u64,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub down: Option<bool>,
}

const STATUSES: [&str; 5] = ["STARTED", "CONFIRMED", "expired", "DOS", "OFFLINE"];

impl Script {
    pub fn parse(text: &str) -> Result<Script, ChainError> {
        let s: Script = toml::from_str(text)?;
        if s.blocks_per_s == 0 {
            return Err(ChainError::Rate);
        }
        if s.confirm_every == 0 || s.confirm_every > 640 {
            return Err(ChainError::Confirm);
        }
        let mut last = s.start_height;
        for (index, step) in s.at.iter().enumerate() {
            if step.height < last {
                return Err(ChainError::Order(index));
            }
            last = step.height;
            if let Some(status) = &step.status {
                if !STATUSES.contains(&status.as_str()) {
                    return Err(ChainError::Status { index, status: status.clone() });
                }
            }
        }
        Ok(s)
    }
}

/// Where the scripted node stands at one height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub height: u64,
    /// None before the first status step: a node fluxd does not know (the expired form).
    pub status: Option<String>,
    /// The height the current status began.
    pub since: u64,
    /// The height of the last STARTED (fluxd's added_height).
    pub added: Option<u64>,
    pub down: bool,
}

/// A script running from the moment it was made.
#[derive(Debug, Clone)]
pub struct Chain {
    script: Script,
    started: Instant,
}

impl Chain {
    pub fn start(script: Script) -> Chain {
        Chain { script, started: Instant::now() }
    }

    /// The tip now.
    pub fn height(&self) -> u64 {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.script.start_height.saturating_add(ms.saturating_mul(self.script.blocks_per_s) / 1000)
    }

    /// The script's state at `height`.
    pub fn at(&self, height: u64) -> At {
        let mut at = At { height, status: None, since: self.script.start_height, added: None, down: false };
        for step in self.script.at.iter().take_while(|s| s.height <= height) {
            if let Some(status) = &step.status {
                at.status = Some(status.clone());
                at.since = step.height;
                if status == "STARTED" {
                    at.added = Some(step.height);
                }
            }
            if let Some(down) = step.down {
                at.down = down;
            }
        }
        at
    }

    /// The last confirmation at or before `at.height` of a node CONFIRMED since `at.since`.
    pub fn last_confirmed(&self, at: &At) -> u64 {
        at.since + (at.height - at.since) / self.script.confirm_every * self.script.confirm_every
    }

    /// The answer to `method` at the tip: `None` for a method the script does not drive
    /// (the fixture's answer stands). `fixture` is the captured answer to the same method.
    pub fn answer(&self, at: &At, method: &str, fixture: Option<&Value>) -> Option<Value> {
        match method {
            "getblockcount" => Some(json!(at.height)),
            "getblockchaininfo" => {
                let mut v = fixture.cloned().unwrap_or_else(|| json!({}));
                v["blocks"] = json!(at.height);
                v["headers"] = json!(at.height);
                Some(v)
            }
            "getfluxnodestatus" => Some(self.node_status(at, fixture)),
            _ => None,
        }
    }

    fn node_status(&self, at: &At, fixture: Option<&Value>) -> Value {
        let fixture = fixture.cloned().unwrap_or_else(|| json!({}));
        let status = match at.status.as_deref() {
            None | Some("expired") => return json!({"status": "expired", "collateral": fixture["collateral"]}),
            Some(s) => s,
        };
        let mut v = fixture;
        let added = at.added.unwrap_or(at.since);
        let (confirmed, last) = match status {
            "CONFIRMED" => (at.since, self.last_confirmed(at)),
            _ => (0, 0),
        };
        v["status"] = json!(status);
        v["added_height"] = json!(added);
        v["confirmed_height"] = json!(confirmed);
        v["last_confirmed_height"] = json!(last);
        v["last_paid_height"] = json!(0);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(text: &str) -> Chain {
        Chain::start(Script::parse(text).expect("script"))
    }

    const SCRIPT: &str = "start_height = 100\nblocks_per_s = 10\nconfirm_every = 50\nat = [\n\
        { height = 100, status = \"STARTED\" },\n{ height = 110, status = \"CONFIRMED\" },\n\
        { height = 300, down = true },\n{ height = 320, down = false },\n{ height = 400, status = \"expired\" },\n]\n";

    #[test]
    fn the_script_sets_status_heights_and_confirmations_at_each_height() {
        let c = chain(SCRIPT);
        let started = c.at(105);
        assert_eq!((started.status.as_deref(), started.added, started.down), (Some("STARTED"), Some(100), false));
        let node = c.answer(&c.at(275), "getfluxnodestatus", None).expect("driven");
        assert_eq!((node["status"].as_str(), node["confirmed_height"].as_u64(), node["last_confirmed_height"].as_u64(), node["added_height"].as_u64()), (Some("CONFIRMED"), Some(110), Some(260), Some(100)));
        assert!(c.at(310).down && !c.at(320).down);
        let expired = c.answer(&c.at(400), "getfluxnodestatus", Some(&json!({"collateral": "C", "tier": "STRATUS"}))).expect("driven");
        assert_eq!(expired, json!({"status": "expired", "collateral": "C"}));
        assert_eq!(c.answer(&c.at(400), "getblockchaininfo", Some(&json!({"chain": "main"}))), Some(json!({"chain": "main", "blocks": 400, "headers": 400})));
        assert_eq!(c.answer(&c.at(400), "getbenchmarks", None), None);
    }

    #[test]
    fn a_script_that_cannot_be_a_chain_is_refused_with_the_reason() {
        assert!(matches!(Script::parse("start_height = 1\nblocks_per_s = 0\n"), Err(ChainError::Rate)));
        assert!(matches!(Script::parse("start_height = 1\nblocks_per_s = 1\nconfirm_every = 700\n"), Err(ChainError::Confirm)));
        assert!(matches!(Script::parse("start_height = 10\nblocks_per_s = 1\nat = [{ height = 5, status = \"DOS\" }]\n"), Err(ChainError::Order(0))));
        assert!(matches!(Script::parse("start_height = 1\nblocks_per_s = 1\nat = [{ height = 5, status = \"confirmed\" }]\n"), Err(ChainError::Status { index: 0, .. })));
        assert!(matches!(Script::parse("start_height = 1\nblocks_per_s = 1\nspeed = 3\n"), Err(ChainError::Toml(_))));
    }
}
