//! Slot and partition names: the one place they are spelt.

use serde::{Deserialize, Serialize};

pub const BIOS_LABEL: &str = "bios";
pub const ESP_LABEL: &str = "esp";
pub const DATA_LABEL: &str = "data";

#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("{0:?} is not a slot name: expected a or b")]
    Unknown(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
    /// The name in grubenv: "A" / "B".
    pub fn letter(self) -> &'static str {
        match self {
            Slot::A => "A",
            Slot::B => "B",
        }
    }
    /// The name on the kernel command line and on the ESP: "a" / "b".
    pub fn lower(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
    pub fn root_label(self) -> &'static str {
        match self {
            Slot::A => "root-a",
            Slot::B => "root-b",
        }
    }
    pub fn verity_label(self) -> &'static str {
        match self {
            Slot::A => "verity-a",
            Slot::B => "verity-b",
        }
    }
    pub fn parse(s: &str) -> Result<Slot, SlotError> {
        match s {
            "a" | "A" => Ok(Slot::A),
            "b" | "B" => Ok(Slot::B),
            _ => Err(SlotError::Unknown(s.to_owned())),
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.lower())
    }
}
