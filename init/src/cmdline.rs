//! The kernel command line parameters Cairn reads.

use cairn_updater::gpt::Guid;
use cairn_updater::slot::Slot;

#[derive(Debug, thiserror::Error)]
pub enum CmdlineError {
    #[error("kernel command line has no {0}= (GRUB's grub.cfg sets it; was the kernel started another way?)")]
    Missing(&'static str),
    #[error("kernel command line: {0}")]
    Bad(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootParams {
    pub slot: Slot,
    pub root_hash: String,
    /// `cairn.esp=`: the partition GUID of the ESP GRUB booted from, which names the boot
    /// disk (GRUB's `probe --part-uuid`).
    pub esp: Guid,
}

pub fn value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_whitespace().filter_map(|w| w.strip_prefix(key)?.strip_prefix('=')).next_back()
}

pub fn parse(cmdline: &str) -> Result<BootParams, CmdlineError> {
    let slot = value(cmdline, "cairn.slot").ok_or(CmdlineError::Missing("cairn.slot"))?;
    let slot = Slot::parse(slot).map_err(|e| CmdlineError::Bad(e.to_string()))?;
    let root_hash = value(cmdline, "cairn.roothash").ok_or(CmdlineError::Missing("cairn.roothash"))?;
    if root_hash.len() != 64 || !root_hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CmdlineError::Bad(format!("cairn.roothash={root_hash:?} is not a sha256 hex digest")));
    }
    let esp = value(cmdline, "cairn.esp").filter(|v| !v.is_empty()).ok_or(CmdlineError::Missing("cairn.esp"))?;
    let esp = Guid::parse(esp).map_err(|e| CmdlineError::Bad(format!("cairn.esp: {e}")))?;
    Ok(BootParams { slot, root_hash: root_hash.to_owned(), esp })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_slot_and_hash() {
        let h = "ab".repeat(32);
        let esp = "0f3a6d1e-5b2c-4d8e-9a7b-1c2d3e4f5a6b";
        let p = parse(&format!("console=ttyS0 cairn.slot=b cairn.roothash={h} cairn.esp={esp} quiet"));
        assert_eq!(p.ok(), Some(BootParams { slot: Slot::B, root_hash: h.clone(), esp: Guid::parse(esp).unwrap_or(Guid([0; 16])) }));
        assert!(parse("console=ttyS0").is_err());
        assert!(parse("cairn.slot=a cairn.roothash=xyz").is_err());
        // GRUB without `probe --part-uuid` leaves it empty: an error, not "any disk".
        assert!(matches!(parse(&format!("cairn.slot=a cairn.roothash={h} cairn.esp=")), Err(CmdlineError::Missing("cairn.esp"))));
    }
}
