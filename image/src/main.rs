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
    /// Add the test agent to this profile's image, as a test profile has it: the VM tests of
    /// a production profile (the bare-metal one) inspect the very image operators flash.
    #[arg(long)]
    test_agent: bool,
    /// The update repository's root.json the image trusts (`publish` writes
    /// metadata/1.root.json); without it the node refuses every update.
    #[arg(long)]
    update_root: Option<PathBuf>,
    /// The keys directory (`keygen`) whose targets key signs the image's initial slots, so
    /// stage 1 can check them against the root; needed with --update-root.
    #[arg(long)]
    keys: Option<PathBuf>,
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
    /// Write the image in the formats clouds and flashing tools take (disk.img.zst with
    /// disk.img.bmap, disk.qcow2, a fixed VHD, GCE's disk.raw.tar.gz), listed in its manifest.
    Formats {
        /// The built image's output directory (`build --out`).
        #[arg(long)]
        image: PathBuf,
    },
    /// Make a new signing key for each TUF role (root, targets, snapshot, timestamp).
    Keygen {
        /// The keys directory (created mode 0700; an existing key is never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Build and sign an update bundle from a built image, or check one (`bundle verify`).
    #[command(args_conflicts_with_subcommands = true)]
    Bundle {
        #[command(subcommand)]
        action: Option<BundleCmd>,
        /// The built image's output directory (`build --out`).
        #[arg(long)]
        image: Option<PathBuf>,
        /// The keys directory (`keygen --out`); the bundle is signed with targets.key.
        #[arg(long)]
        keys: Option<PathBuf>,
        /// The bundle file to write.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The release's version [default: the image's].
        #[arg(long)]
        release_version: Option<String>,
        /// The oldest running version this bundle may replace.
        #[arg(long)]
        min_version: Option<String>,
        /// A security release (the reboot policy may reboot at --deadline).
        #[arg(long)]
        security: bool,
        /// The security release's deadline, a UTC time like 2027-01-31T00:00:00Z.
        #[arg(long, requires = "security")]
        deadline: Option<String>,
    },
    /// Add bundles to a TUF repository directory (created on first use) and re-sign it.
    Publish {
        /// The repository directory (serve it with any static HTTP server).
        #[arg(long)]
        repo: PathBuf,
        /// The keys directory.
        #[arg(long)]
        keys: PathBuf,
        /// Only re-sign the timestamp with a new expiry (run it at least weekly).
        #[arg(long)]
        refresh: bool,
        /// Roll the bundles out in waves from now: PERCENT@HOURSh, comma-separated, rising to
        /// 100 (e.g. 5@0h,50@24h,100@48h: 5% of nodes at once, half after a day, all after
        /// two). Each node draws its place once. Default: every node at once.
        #[arg(long)]
        rollout: Option<String>,
        /// Bundles to add.
        bundles: Vec<PathBuf>,
    },
    /// Rotate the repository's keys: a new root, signed by the old root key and the new keys.
    Rotate {
        #[arg(long)]
        repo: PathBuf,
        /// The keys directory whose root.key signed the current root.
        #[arg(long)]
        old_keys: PathBuf,
        /// The new keys directory (`keygen --out`).
        #[arg(long)]
        new_keys: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum BundleCmd {
    /// Check a bundle exactly as a node reads it: exit 0 only if it would install.
    Verify {
        /// The bundle file.
        file: PathBuf,
        /// The trusted TUF root (the repository's metadata/N.root.json, or the image's).
        #[arg(long)]
        root: PathBuf,
        /// Also apply the policy of a node running this built image (profile, version,
        /// partition sizes).
        #[arg(long)]
        image: Option<PathBuf>,
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
    if let Some(root) = &c.update_root {
        cairn_image::release::read_root(root).with_context(|| format!("--update-root {}", root.display()))?;
    }
    // Checked before the long build starts.
    match (&c.update_root, &c.keys) {
        (Some(_), None) => anyhow::bail!("--update-root needs --keys: the image's slots must be signed by the root's targets key, or stage 1 refuses them"),
        (None, Some(_)) => anyhow::bail!("--keys signs the slots for the root given with --update-root; pass both"),
        (Some(root), Some(keys)) => cairn_image::release::check_signer(keys, root)?,
        (None, None) => {}
    }
    let bins = binaries(c, profile.test_agent || c.test_agent)?;
    Ok(Options { profile_path: c.profile.clone(), out: c.out.clone(), cache, epoch, bins, prepared_root, update_root: c.update_root.clone(), keys: c.keys.clone() })
}

fn run(cli: &Cli) -> Result<()> {
    use cairn_image::release;
    let need = |v: &Option<PathBuf>, flag: &str| v.clone().with_context(|| format!("`cairn-image bundle` needs {flag}"));
    match &cli.command {
        Cmd::Build(c) => print_disk(&options(c, None).and_then(|o| build::build(&o))?),
        Cmd::Assemble { common, rootfs, kernel, modules: _ } => {
            print_disk(&options(common, Some(PreparedRoot { dir: rootfs.clone(), kernel: kernel.clone() })).and_then(|o| build::build(&o))?)
        }
        Cmd::Formats { image } => {
            let t = std::time::Instant::now();
            cairn_image::formats::write_all(image, &mut |name, a| {
                eprintln!("      {name}: {} MiB, sha256 {}", a.bytes.div_ceil(1 << 20), a.sha256);
            })?;
            eprintln!("formats of {} written in {:.1} s and listed in its manifest.json", image.display(), t.elapsed().as_secs_f64());
        }
        Cmd::Keygen { out } => {
            for (role, id) in release::keygen(out)? {
                println!("{role:<9} {id}  {}", out.join(format!("{role}.key")).display());
            }
            eprintln!("keep {} off every image and repository; back it up offline", out.display());
        }
        Cmd::Bundle { action: Some(BundleCmd::Verify { file, root, image }), .. } => {
            let m = release::verify_bundle(file, root, image.as_deref()).with_context(|| format!("{} would not be installed", file.display()))?;
            println!("ok: {} {} for {:?} (root hash {})", file.display(), m.version, m.compatible, m.verity.root_hash);
        }
        Cmd::Bundle { action: None, image, keys, out, release_version, min_version, security, deadline } => {
            let (image, keys, out) = (need(image, "--image")?, need(keys, "--keys")?, need(out, "--out")?);
            let o = release::BundleOptions { version: release_version.clone(), min_version: min_version.clone(), security: *security, deadline: deadline.clone() };
            let m = release::make_bundle(&image, &keys, &out, &o)?;
            let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            println!("{}: {} for {:?}, {bytes} bytes", out.display(), m.version, m.compatible);
        }
        Cmd::Publish { repo, keys, refresh, rollout, bundles } => {
            if bundles.is_empty() && !refresh {
                bail!("nothing to publish: give bundle files, or --refresh to re-sign the timestamp");
            }
            let rollout = match rollout {
                Some(spec) => Some(cairn_updater::rollout::Rollout::parse(spec, cairn_updater::tuf::time::now())?),
                None => None,
            };
            for name in release::publish(repo, keys, bundles, *refresh, rollout.as_ref())? {
                println!("published {name}");
            }
        }
        Cmd::Rotate { repo, old_keys, new_keys } => {
            let root = release::rotate(repo, old_keys, new_keys)?;
            println!("root version {} written to {}", root.version, repo.join(format!("metadata/{}.root.json", root.version)).display());
        }
    }
    Ok(())
}

fn print_disk(m: &cairn_image::manifest::Manifest) {
    println!("{}", serde_json::to_string(&m.disk).unwrap_or_default());
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
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
