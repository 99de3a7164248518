//! The `cairn-image` command line.

use anyhow::{bail, Context, Result};
use cairn_image::build::{self, Options, PreparedRoot};
use cairn_image::rootfs::CairnBinaries;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Parser, Debug)]
#[command(name = "cairn-image", about = "Build Cairn disk images from Debian packages", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Debug)]
struct Common {
    /// The image profile (TOML), e.g. image/profiles/default.toml.
    #[arg(long)]
    profile: PathBuf,
    /// Output directory: disk.img, manifest.json and the slot artifacts.
    #[arg(long)]
    out: PathBuf,
    /// Download cache, kept between builds [default: $CAIRN_CACHE_DIR or ~/.cache/cairn].
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Static cairn-init binary [default: built from this workspace with cargo].
    #[arg(long)]
    init_bin: Option<PathBuf>,
    /// Static cairnctl binary [default: built from this workspace with cargo].
    #[arg(long)]
    cairnctl_bin: Option<PathBuf>,
    /// Static test agent (test profiles only) [default: built from this workspace].
    #[arg(long)]
    agent_bin: Option<PathBuf>,
    /// Static Flux daemon test double (test profiles only) [default: built from this workspace].
    #[arg(long)]
    flux_double_bin: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build a disk image: Debian packages -> verified A/B GPT disk.
    Build(Common),
    /// Build a disk image from a prepared root file system (Buildroot's post-image step).
    Assemble {
        #[command(flatten)]
        common: Common,
        /// The root file system directory.
        #[arg(long)]
        rootfs: PathBuf,
        /// The kernel image (bzImage).
        #[arg(long)]
        kernel: PathBuf,
        /// The modules directory (must be <rootfs>/lib/modules; accepted for clarity).
        #[arg(long)]
        modules: Option<PathBuf>,
    },
}

const MUSL: &str = "x86_64-unknown-linux-musl";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_owned).unwrap_or_default()
}

/// Builds the static binaries that go into the image, unless given on the command line.
fn binaries(c: &Common, test_agent: bool) -> Result<CairnBinaries> {
    let need_build = c.init_bin.is_none() || c.cairnctl_bin.is_none() || (test_agent && (c.agent_bin.is_none() || c.flux_double_bin.is_none()));
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"));
    let built = |name: &str| target.join(MUSL).join("release").join(name);
    if need_build {
        eprintln!("building static binaries for the image (cargo build --release --target {MUSL}) ...");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(workspace()).args(["build", "--release", "--locked", "--target", MUSL, "-p", "cairn-init"]);
        if test_agent {
            cmd.args(["-p", "cairn-qemu-tests", "--bin", "cairn-test-agent", "--bin", "cairn-flux-double", "--bin", "cairn-init", "--bin", "cairnctl"]);
        }
        let status = cmd.status().context("cannot run cargo")?;
        if !status.success() {
            bail!("building the image's binaries failed; if the musl target is missing run `rustup target add {MUSL}`");
        }
    }
    Ok(CairnBinaries {
        init: c.init_bin.clone().unwrap_or_else(|| built("cairn-init")),
        cairnctl: c.cairnctl_bin.clone().unwrap_or_else(|| built("cairnctl")),
        test_agent: test_agent.then(|| c.agent_bin.clone().unwrap_or_else(|| built("cairn-test-agent"))),
        // The Flux daemon test double goes wherever the test agent goes: test images only.
        flux_double: test_agent.then(|| c.flux_double_bin.clone().unwrap_or_else(|| built("cairn-flux-double"))),
    })
}

fn source_date_epoch() -> Result<u64> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"));
    }
    // Default: the time of the last commit, so two builds of one checkout agree.
    let out = Command::new("git").current_dir(workspace()).args(["log", "-1", "--format=%ct"]).output();
    Ok(out.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(1_700_000_000))
}

fn options(c: &Common, prepared_root: Option<PreparedRoot>) -> Result<Options> {
    let profile = cairn_image::profile::Profile::load(&c.profile)?;
    let cache = c.cache.clone().or_else(|| std::env::var_os("CAIRN_CACHE_DIR").map(PathBuf::from)).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/cache"));
        home.join(".cache/cairn")
    });
    let epoch = source_date_epoch()?;
    let bins = binaries(c, profile.test_agent)?;
    Ok(Options { profile_path: c.profile.clone(), out: c.out.clone(), cache, epoch, bins, prepared_root })
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Cmd::Build(c) => options(c, None).and_then(|o| build::build(&o)),
        Cmd::Assemble { common, rootfs, kernel, modules: _ } => {
            options(common, Some(PreparedRoot { dir: rootfs.clone(), kernel: kernel.clone() })).and_then(|o| build::build(&o))
        }
    };
    match result {
        Ok(m) => println!("{}", serde_json::to_string(&m.disk).unwrap_or_default()),
        Err(e) => {
            // Print the chain of causes, skipping any whose text its parent already shows.
            let mut msg = String::new();
            for cause in e.chain() {
                let text = cause.to_string();
                if !msg.contains(&text) {
                    msg = if msg.is_empty() { text } else { format!("{msg}: {text}") };
                }
            }
            eprintln!("cairn-image: error: {msg}");
            std::process::exit(1);
        }
    }
}
