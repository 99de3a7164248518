//! `cairn-updater`: the one home of every on-disk format Cairn has. The image tool writes
//! them, PID 1 reads and changes them, the installer (to come) rewrites them; nobody keeps a
//! second copy.
//!
//! - [`slot`]: slot and partition names;
//! - [`grubenv`]: GRUB's environment block and the A/B state in it;
//! - [`verity`]: the dm-verity hash tree and superblock;
//! - [`gpt`]: GUID partition tables;
//! - [`keys`]: ed25519 keys and signatures in TUF's form;
//! - [`tuf`]: The Update Framework's metadata, client workflow and repository writer;
//! - [`bundle`]: the update bundle, its signed manifest and its reader;
//! - [`install`]: the install engine, a bundle into the other slot;
//! - [`slot_trust`]: what stage 1 checks before it trusts a slot's root hash;
//! - [`rollout`]: rollout waves and poll jitter; [`reboot`]: when an update reboots;
//! - [`download`] (feature `http`): TUF metadata and bundles over HTTP(S), resumed after a drop.

pub mod bundle;
#[cfg(feature = "http")]
pub mod download;
pub mod gpt;
pub mod install;
pub mod grubenv;
pub mod keys;
pub mod reboot;
pub mod rollout;
pub mod slot;
pub mod slot_trust;
pub mod tuf;
pub mod verity;
