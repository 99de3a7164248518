//! `cairn-image`: builds a Cairn disk image on a build host from Debian packages.
//!
//! Pipeline (see `build.rs`): profile -> root file system (mmdebstrap) -> slot image
//! (squashfs + dm-verity) -> initramfs (cairn-init + the boot's kernel modules) -> ESP (GRUB
//! for UEFI and BIOS, grubenv) -> GPT disk -> manifest.json. It needs no loop devices and
//! never mounts what it builds.

pub mod build;
pub mod cpio;
pub mod debian;
pub mod disk;
pub mod esp;
pub mod formats;
pub mod grub;
pub mod initramfs;
pub mod manifest;
pub mod modules;
pub mod profile;
pub mod release;
pub mod rootfs;
pub mod sbom;
pub mod slot;
pub mod tool;
