//! The update bundle: one file, a zstd-compressed tar stream of `manifest.toml`, the
//! signatures over its exact bytes (`manifest.sig`, by the TUF targets role's keys), and the
//! payloads (root image, verity tree, kernel, initramfs) in a fixed order.
//!
//! - [`manifest`]: the signed manifest and versions;
//! - [`reader`]: the streaming reader every consumer uses (the node's installer,
//!   `cairn-image bundle verify`);
//! - [`policy`]: whether this node may install what a manifest describes;
//! - [`writer`]: the build host's side.

pub mod manifest;
pub mod policy;
pub mod reader;
pub mod writer;

pub use manifest::{Manifest, Payload, PayloadKind, SlotVerity, Version};
pub use policy::{Policy, Refusal};
pub use reader::{read, BundleError, Signed, Sink, Trust, Verify};

#[cfg(test)]
mod tests;
