//! The test image: built once by `./dev test` (or here, if missing) and read from its
//! manifest.json.

use crate::HarnessError;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Debug, Deserialize)]
pub struct Artifact {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Deserialize)]
pub struct PartitionInfo {
    pub label: String,
    pub first_lba: u64,
    pub last_lba: u64,
}

#[derive(Debug, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub source_date_epoch: u64,
    pub disk: Artifact,
    pub partitions: Vec<PartitionInfo>,
    #[serde(skip)]
    pub dir: PathBuf,
}

impl Manifest {
    pub fn disk_path(&self) -> PathBuf {
        self.dir.join(&self.disk.path)
    }
    pub fn partition(&self, label: &str) -> Option<(u64, u64)> {
        self.partitions.iter().find(|p| p.label == label).map(|p| (p.first_lba, p.last_lba))
    }
}

static TEST_IMAGE: OnceLock<Result<Manifest, String>> = OnceLock::new();
static DEFAULT_IMAGE: OnceLock<Result<Manifest, String>> = OnceLock::new();
static BAREMETAL_IMAGE: OnceLock<Result<Manifest, String>> = OnceLock::new();

/// Where the test image is: `CAIRN_TEST_IMAGE_DIR`, or `target/cairn/test`.
pub fn image_dir() -> PathBuf {
    std::env::var_os("CAIRN_TEST_IMAGE_DIR").map(PathBuf::from).unwrap_or_else(|| crate::workspace().join("target/cairn/test"))
}

/// Where the default (production) image is: `CAIRN_DEFAULT_IMAGE_DIR`, or `target/cairn/default`.
pub fn default_image_dir() -> PathBuf {
    std::env::var_os("CAIRN_DEFAULT_IMAGE_DIR").map(PathBuf::from).unwrap_or_else(|| crate::workspace().join("target/cairn/default"))
}

/// Where the bare-metal image (with the test agent added) is: `CAIRN_BAREMETAL_IMAGE_DIR`,
/// or `target/cairn/baremetal`.
pub fn baremetal_image_dir() -> PathBuf {
    std::env::var_os("CAIRN_BAREMETAL_IMAGE_DIR").map(PathBuf::from).unwrap_or_else(|| crate::workspace().join("target/cairn/baremetal"))
}

pub fn load(dir: &std::path::Path) -> Result<Manifest, String> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut m: Manifest = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    m.dir = dir.to_owned();
    Ok(m)
}

/// The test image, building it first if it is not there.
pub fn test_image() -> Result<&'static Manifest, HarnessError> {
    built(&TEST_IMAGE, "test", image_dir(), &[])
}

/// The default image operators run (no test agent), building it first if it is not there.
pub fn default_image() -> Result<&'static Manifest, HarnessError> {
    built(&DEFAULT_IMAGE, "default", default_image_dir(), &[])
}

/// The bare-metal image operators flash, with the test agent added (`--test-agent`), so
/// the tests inspect that very image; building it first if it is not there.
pub fn baremetal_image() -> Result<&'static Manifest, HarnessError> {
    built(&BAREMETAL_IMAGE, "baremetal", baremetal_image_dir(), &["--test-agent"])
}

fn built(cell: &'static OnceLock<Result<Manifest, String>>, profile: &str, dir: PathBuf, options: &[&str]) -> Result<&'static Manifest, HarnessError> {
    cell.get_or_init(|| {
        if !dir.join("manifest.json").is_file() {
            eprintln!("{profile} image missing in {}: building it (./dev test does this up front)", dir.display());
            let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(crate::workspace())
                .args(["run", "--release", "-q", "-p", "cairn-image", "--", "build", "--profile", &format!("image/profiles/{profile}.toml"), "--out"])
                .arg(&dir)
                .args(options)
                .status()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            if !status.success() {
                return Err(format!("building the {profile} image failed ({status}); run `./dev test` to see why"));
            }
        }
        load(&dir)
    })
    .as_ref()
    .map_err(|e| HarnessError::Image(e.clone()))
}

/// A signed update bundle `./dev test` made of the test image (`<version>.bundle` in
/// `CAIRN_TEST_BUNDLES`, or `target/cairn/test-bundles`), copied into `dir` and padded with
/// zeros to whole sectors, as it is when written to a USB stick: ready to attach as a drive.
pub fn bundle_drive(version: &str, dir: &std::path::Path) -> Result<PathBuf, HarnessError> {
    let bundles = std::env::var_os("CAIRN_TEST_BUNDLES").map(PathBuf::from).unwrap_or_else(|| crate::workspace().join("target/cairn/test-bundles"));
    let from = bundles.join(format!("{version}.bundle"));
    if !from.is_file() {
        return Err(HarnessError::Image(format!(
            "{} is missing: `./dev test` makes the update bundles (cairn-image bundle --image target/cairn/test --release-version {version})",
            from.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(HarnessError::io(format!("create {}", dir.display())))?;
    let to = dir.join(format!("{version}.bundle.img"));
    std::fs::copy(&from, &to).map_err(HarnessError::io(format!("copy {}", from.display())))?;
    let f = std::fs::OpenOptions::new().write(true).open(&to).map_err(HarnessError::io(format!("open {}", to.display())))?;
    let len = f.metadata().map_err(HarnessError::io("stat"))?.len();
    f.set_len(len.div_ceil(512) * 512).map_err(HarnessError::io("pad"))?;
    Ok(to)
}

/// `./dev test`'s test publisher: its repository copied to `dir` (the first time), then the
/// bundles of `versions` published into it with `cairn-image publish` and its keys, as a
/// publisher would release them (`rollout`: its `--rollout` waves).
pub fn publish(dir: &std::path::Path, versions: &[&str], rollout: Option<&str>) -> Result<(), HarnessError> {
    publish_with(dir, KEYS[0], versions, rollout)
}

/// The test publisher's key sets: the first is the test repository's; `./dev test` makes the
/// others for key rotations (target/cairn/test-keys-2, -3), and signs the 0.4.0 bundle with
/// the last.
pub const KEYS: [&str; 3] = ["test-keys", "test-keys-2", "test-keys-3"];

fn publisher(keys: &str) -> Result<(PathBuf, PathBuf, PathBuf), HarnessError> {
    let ws = crate::workspace();
    let (repo, keys, tool) = (ws.join("target/cairn/test-repo"), ws.join("target/cairn").join(keys), ws.join("target/release/cairn-image"));
    for need in [&repo, &keys, &tool] {
        if !need.exists() {
            return Err(HarnessError::Image(format!("{} is missing: `./dev test` makes the test publisher (keys, repository) and builds cairn-image", need.display())));
        }
    }
    Ok((repo, keys, tool))
}

fn run_tool(mut c: std::process::Command, what: &str) -> Result<(), HarnessError> {
    let out = c.output().map_err(HarnessError::io(format!("run cairn-image {what}")))?;
    if !out.status.success() {
        return Err(HarnessError::Image(format!("cairn-image {what} failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(())
}

/// `publish` with the key set `keys` (one of `KEYS`: the repository's current one).
pub fn publish_with(dir: &std::path::Path, keys: &str, versions: &[&str], rollout: Option<&str>) -> Result<(), HarnessError> {
    let (repo, keys, tool) = publisher(keys)?;
    let bundles = std::env::var_os("CAIRN_TEST_BUNDLES").map(PathBuf::from).unwrap_or_else(|| crate::workspace().join("target/cairn/test-bundles"));
    if !dir.join("metadata").is_dir() {
        let _ = std::fs::remove_dir_all(dir);
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(HarnessError::io(format!("create {}", parent.display())))?;
        }
        let ok = std::process::Command::new("cp").arg("-a").arg(&repo).arg(dir).status().map_err(HarnessError::io("run cp"))?.success();
        if !ok {
            return Err(HarnessError::Image(format!("cannot copy {} to {}", repo.display(), dir.display())));
        }
    }
    let mut c = std::process::Command::new(&tool);
    c.arg("publish").arg("--repo").arg(dir).arg("--keys").arg(&keys).arg("--refresh");
    if let Some(r) = rollout {
        c.arg("--rollout").arg(r);
    }
    for v in versions {
        c.arg(bundles.join(format!("{v}.bundle")));
    }
    run_tool(c, "publish")
}

/// The publisher rotates the repository at `dir` from key set `from` to `to` (`KEYS`): a new
/// root, signed by the old root key and the new one, and the other roles re-signed.
pub fn rotate(dir: &std::path::Path, from: &str, to: &str) -> Result<(), HarnessError> {
    let (_, old, tool) = publisher(from)?;
    let (_, new, _) = publisher(to)?;
    let mut c = std::process::Command::new(&tool);
    c.arg("rotate").arg("--repo").arg(dir).arg("--old-keys").arg(&old).arg("--new-keys").arg(&new);
    run_tool(c, "rotate")
}

/// Builds `profile` into target/cairn/`out` for a benchmark (unless `reuse` and it is there).
pub fn ensure_built(profile: &str, out: &str, reuse: bool) -> Result<PathBuf, String> {
    let dir = crate::workspace().join("target/cairn").join(out);
    if !reuse || !dir.join("manifest.json").is_file() {
        eprintln!("building image {profile} (about 90 s) ...");
        let st = std::process::Command::new("cargo")
            .current_dir(crate::workspace())
            .args(["run", "--release", "--locked", "-q", "-p", "cairn-image", "--", "build", "--profile", &format!("image/profiles/{profile}.toml"), "--out"])
            .arg(&dir)
            .status();
        if !st.map(|s| s.success()).unwrap_or(false) {
            return Err(format!("building image {profile} failed"));
        }
    }
    Ok(dir)
}
