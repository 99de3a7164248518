//! GRUB from the image's own Debian suite, never from the build host.
//!
//! The boot loader is part of what runs on the node, so its modules, `boot.img` and the
//! core images must come from the same suite as the slot: the same profile then gives the
//! same disk on a Debian 12 and a Debian 13 host. A small tools tree (the Essential set plus
//! grub-pc-bin and grub-efi-amd64-bin, made by mmdebstrap from the package cache like every
//! other tree) holds them; its `grub-mkimage` needs the suite's libc, so it runs under the
//! tree's own dynamic loader with the tree's libraries (no chroot, no mounts, no root), as
//! mkosi runs tools from its ToolsTree.

use crate::debian::{self, DebianError, Package};
use crate::tool::{self, ToolError};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum GrubError {
    #[error("making the GRUB tools tree failed")]
    Tree(#[source] DebianError),
    #[error("the GRUB tools tree has no {0}: is the suite's grub-pc-bin/grub-efi-amd64-bin layout different?")]
    Missing(PathBuf),
    #[error("making GRUB's {format} core image failed")]
    Mkimage { format: &'static str, source: ToolError },
}

/// The packages the tools tree holds besides the Essential set.
pub const PACKAGES: &[&str] = &["grub-pc-bin", "grub-efi-amd64-bin"];

/// A GRUB target platform: its directory name under /usr/lib/grub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// BIOS: core.img goes into the BIOS boot partition, boot.img into the MBR.
    I386Pc,
    /// UEFI: BOOTX64.EFI on the ESP.
    X86_64Efi,
}

impl Platform {
    pub fn dir_name(self) -> &'static str {
        match self {
            Platform::I386Pc => "i386-pc",
            Platform::X86_64Efi => "x86_64-efi",
        }
    }
}

/// A prepared tools tree.
#[derive(Debug)]
pub struct Grub {
    tree: PathBuf,
    /// The GRUB packages that made the boot loader (for the manifest and the SBOM).
    pub packages: Vec<Package>,
}

impl Grub {
    /// Makes the tools tree in `dir` from `suite`.
    pub fn prepare(suite: &str, sources: &[String], dir: &Path, cache: &Path, epoch: u64, log: &Path) -> Result<Grub, GrubError> {
        let packages: Vec<String> = PACKAGES.iter().map(|p| (*p).to_owned()).collect();
        let tree = debian::Tree { what: "boot-loader tools", suite, sources, packages: &packages };
        debian::mmdebstrap(&tree, dir, cache, epoch, log).map_err(GrubError::Tree)?;
        let installed = debian::installed(dir).map_err(GrubError::Tree)?;
        // Absolute: the tree's loader and binaries are run by path.
        let tree = std::path::absolute(dir).map_err(|e| GrubError::Missing(dir.join(format!("({e})"))))?;
        let grub = Grub { tree, packages: installed.into_iter().filter(|p| p.source == "grub2").collect() };
        for p in [grub.loader(), grub.tree.join("usr/bin/grub-mkimage"), grub.boot_img()] {
            if !p.is_file() {
                return Err(GrubError::Missing(p));
            }
        }
        Ok(grub)
    }

    /// The tree's dynamic loader: running a binary through it with `--library-path` uses the
    /// tree's libc and libraries, not the host's.
    fn loader(&self) -> PathBuf {
        self.tree.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    }

    /// The MBR boot code for BIOS disks.
    pub fn boot_img(&self) -> PathBuf {
        self.modules_dir(Platform::I386Pc).join("boot.img")
    }

    fn modules_dir(&self, platform: Platform) -> PathBuf {
        self.tree.join("usr/lib/grub").join(platform.dir_name())
    }

    /// `grub-mkimage -O <platform>` from the tree, with the tree's modules: a core image
    /// with `modules` built in and `prefix` (where grub.cfg is) compiled in.
    pub fn mkimage(&self, platform: Platform, prefix: &str, modules: &[&str], out: &Path, log: &Path) -> Result<(), GrubError> {
        // grub-mkimage's format names are the platforms' directory names.
        let format = platform.dir_name();
        let mut cmd = Command::new(self.loader());
        cmd.arg("--inhibit-cache")
            .arg("--library-path")
            .arg(self.tree.join("usr/lib/x86_64-linux-gnu"))
            .arg(self.tree.join("usr/bin/grub-mkimage"))
            .arg("-d")
            .arg(self.modules_dir(platform))
            .args(["-O", format, "-p", prefix])
            .arg("-o")
            .arg(out)
            .args(modules);
        tool::run(cmd, log).map_err(|source| GrubError::Mkimage { format, source })
    }
}
