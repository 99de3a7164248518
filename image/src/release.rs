//! Releases on the build host: signing keys, bundles made from a built image, and the TUF
//! repository nodes poll. Private keys stay in a keys directory on the build host; neither an
//! image nor a repository ever holds one.

use crate::manifest::{Manifest as ImageManifest, FILE as IMAGE_MANIFEST};
use anyhow::{bail, Context, Result};
use cairn_updater::bundle::{self, Manifest, Payload, PayloadKind, Policy, SlotVerity, Trust, Version};
use cairn_updater::keys::SigningKey;
use cairn_updater::tuf::metadata::Metadata;
use cairn_updater::tuf::repo::{Repository, RoleKeys, ROLES};
use cairn_updater::tuf::{self, Envelope, Root};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// zstd level of bundles: the root image is already zstd-compressed squashfs, so a higher
/// level buys nothing but time.
const BUNDLE_ZSTD_LEVEL: i32 = 3;
/// The zstd window the build host compresses with (2^23 = 8 MiB), far under the node's
/// decoding limit.
const BUNDLE_ZSTD_WINDOW_LOG: u32 = 23;

/// Writes a new key per role into `dir` (mode 0600); refuses to overwrite any key.
pub fn keygen(dir: &Path) -> Result<Vec<(String, String)>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(|| format!("cannot restrict {}", dir.display()))?;
    for role in ROLES {
        let path = dir.join(format!("{role}.key"));
        if path.exists() {
            bail!("{} exists; keys are never overwritten (move it away to make new ones)", path.display());
        }
    }
    let mut ids = Vec::new();
    for role in ROLES {
        let key = SigningKey::generate()?;
        let path = dir.join(format!("{role}.key"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        f.write_all(key.to_file_text().as_bytes()).and_then(|()| f.sync_all()).with_context(|| format!("cannot write {}", path.display()))?;
        ids.push((role.to_owned(), key.keyid()));
    }
    Ok(ids)
}

fn load_key(dir: &Path, role: &str) -> Result<SigningKey> {
    let path = dir.join(format!("{role}.key"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read the {role} key {} (make keys with `cairn-image keygen`)", path.display()))?;
    SigningKey::from_file_text(&text).with_context(|| format!("{} is not a Cairn signing key", path.display()))
}

/// The four role keys of a keys directory.
pub fn load_keys(dir: &Path) -> Result<RoleKeys> {
    Ok(RoleKeys {
        root: vec![load_key(dir, "root")?],
        targets: vec![load_key(dir, "targets")?],
        snapshot: vec![load_key(dir, "snapshot")?],
        timestamp: vec![load_key(dir, "timestamp")?],
    })
}

#[derive(Debug, Clone, Default)]
pub struct BundleOptions {
    /// The release's version [default: the image's]. A slot's version is its signed
    /// manifest's, so one image can be released again as a new version.
    pub version: Option<String>,
    /// The oldest running version the bundle may replace [default: 0.0.0, any].
    pub min_version: Option<String>,
    pub security: bool,
    pub deadline: Option<String>,
}

fn read_image_manifest(image: &Path) -> Result<ImageManifest> {
    let path = image.join(IMAGE_MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {} (is {} a built image's output directory?)", path.display(), image.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not an image manifest", path.display()))
}

/// Builds and signs a bundle of a built image (`cairn-image build --out IMAGE`) into `out`.
pub fn make_bundle(image: &Path, keys: &Path, out: &Path, o: &BundleOptions) -> Result<Manifest> {
    let im = read_image_manifest(image)?;
    let targets = load_key(keys, "targets")?;
    let slot = im.slots.get("a").context("the image manifest has no slot a")?;
    let mut payloads = Vec::new();
    for kind in PayloadKind::ALL {
        let a = im.artifacts.get(kind.entry()).with_context(|| format!("the image manifest lists no {}", kind.entry()))?;
        // The files must still be what the manifest describes: a bundle signs these bytes.
        let sha = crate::manifest::sha256_of(&image.join(&a.path)).with_context(|| format!("cannot read {}", image.join(&a.path).display()))?;
        if sha != a.sha256 {
            bail!("{} changed since the image was built (SHA-256 differs from manifest.json); rebuild the image", a.path);
        }
        payloads.push(Payload { kind, size: a.bytes, sha256: a.sha256.clone() });
    }
    let manifest = Manifest {
        format: bundle::manifest::FORMAT,
        version: Version::parse(o.version.as_deref().unwrap_or(&im.version)).with_context(|| format!("the version {:?}", o.version.as_deref().unwrap_or(&im.version)))?,
        compatible: im.name.clone(),
        min_version: Version::parse(o.min_version.as_deref().unwrap_or("0")).context("--min-version")?,
        security: o.security,
        deadline: o.deadline.clone(),
        verity: SlotVerity { root_hash: slot.root_hash.clone(), salt: slot.salt.clone(), data_blocks: slot.data_blocks },
        payloads,
    };
    let (text, sigs) = sign_manifest(&manifest, &targets)?;

    let partial = out.with_extension("partial");
    let file = std::fs::File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let mut enc = zstd::Encoder::new(std::io::BufWriter::new(file), BUNDLE_ZSTD_LEVEL)?;
    enc.window_log(BUNDLE_ZSTD_WINDOW_LOG)?;
    enc.include_checksum(true)?;
    let open = |k: PayloadKind| -> std::io::Result<Box<dyn std::io::Read>> { Ok(Box::new(std::io::BufReader::new(std::fs::File::open(image.join(k.entry()))?))) };
    let enc = bundle::writer::write(enc, &manifest, text.as_bytes(), &sigs, open).with_context(|| format!("cannot write {}", partial.display()))?;
    let file = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&partial, out).with_context(|| format!("cannot rename {}", partial.display()))?;
    Ok(manifest)
}

/// The manifest's exact bytes and `manifest.sig` by the targets key.
fn sign_manifest(manifest: &Manifest, targets: &SigningKey) -> Result<(String, Vec<u8>)> {
    let text = manifest.to_toml();
    // What the node will parse: check it here, so nothing leaves the build host unreadable.
    Manifest::parse(text.as_bytes()).context("the slot manifest does not parse back")?;
    let sigs = bundle::writer::sign(text.as_bytes(), &[targets]);
    Ok((text, sigs))
}

/// The signed manifest of a slot the image build writes (the one a bundle of the image
/// would carry), checked against the root the image trusts the way stage 1 will check it.
pub fn sign_slot(keys: &Path, root: &Path, manifest: &Manifest) -> Result<(Vec<u8>, Vec<u8>)> {
    let targets = load_key(keys, "targets")?;
    let (text, sigs) = sign_manifest(manifest, &targets)?;
    let trust = Trust::targets_of(&read_root(root)?)?;
    bundle::Signed { manifest: text.clone().into_bytes(), signatures: sigs.clone() }
        .verify(&trust)
        .with_context(|| format!("the targets key in {} is not one that {} trusts: the slots would not boot", keys.display(), root.display()))?;
    Ok((text.into_bytes(), sigs))
}

/// Checks, before a long build, that the targets key in `keys` is one `root` trusts.
pub fn check_signer(keys: &Path, root: &Path) -> Result<()> {
    let id = load_key(keys, "targets")?.keyid();
    let trusted = read_root(root)?;
    if !trusted.role("targets")?.keyids.contains(&id) {
        bail!("the targets key in {} ({id}) is not one that {} trusts: the slots would not boot", keys.display(), root.display());
    }
    Ok(())
}

/// Reads a root.json the way a node first trusts one: signed by its own root keys.
pub fn read_root(path: &Path) -> Result<Root> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let env: Envelope = serde_json::from_slice(&raw).with_context(|| format!("{} is not TUF metadata", path.display()))?;
    let unverified = Root::from_signed(env.signed)?;
    let signed = tuf::verify(&raw, "root", unverified.role("root")?, &unverified.keys)?;
    Ok(Root::from_signed(signed)?)
}

/// The policy of a node running `image`: its profile, its version, its partition sizes.
pub fn policy_of(image: &Path) -> Result<Policy> {
    let im = read_image_manifest(image)?;
    let mut room = BTreeMap::new();
    for p in &im.partitions {
        let bytes = (p.last_lba + 1 - p.first_lba) * 512;
        match p.label.as_str() {
            "root-a" => room.insert(PayloadKind::Root, bytes),
            "verity-a" => room.insert(PayloadKind::Verity, bytes),
            _ => None,
        };
    }
    Ok(Policy { compatible: im.name, running: Version::parse(&im.version)?, minimum: None, room, failed: None })
}

/// `bundle verify`: the node's reader over the whole file; with `image`, also the policy of
/// a node running that image.
pub fn verify_bundle(file: &Path, root: &Path, image: Option<&Path>) -> Result<Manifest> {
    let root = read_root(root)?;
    root.check_expiry(tuf::time::now()).context("the trusted root")?;
    let trust = Trust::targets_of(&root)?;
    let policy = image.map(policy_of).transpose()?;
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let m = bundle::read(std::io::BufReader::new(f), &trust, &mut bundle::Verify { policy })?;
    Ok(m)
}

/// `publish`: adds bundles to the repository (creating it on first use), or only re-signs the
/// timestamp.
pub fn publish(repo: &Path, keys: &Path, bundles: &[PathBuf], refresh: bool, rollout: Option<&cairn_updater::rollout::Rollout>) -> Result<Vec<String>> {
    let keys = load_keys(keys)?;
    let r = Repository::open(repo);
    if !repo.join("metadata/1.root.json").exists() {
        r.init(&keys).with_context(|| format!("cannot create the repository in {}", repo.display()))?;
    }
    let root = r.root()?;
    // Metadata signed with keys the root no longer lists would be refused by every node.
    for (role, ks) in [("targets", &keys.targets), ("snapshot", &keys.snapshot), ("timestamp", &keys.timestamp)] {
        let listed = root.role(role)?;
        if let Some(k) = ks.iter().find(|k| !listed.keyids.contains(&k.keyid())) {
            bail!("the {role} key {} is not a {role} key of the repository's root version {} (retired by a rotation? use the keys directory of the newest `rotate`)", k.keyid(), root.version);
        }
    }
    let trust = Trust::targets_of(&root)?;
    let mut names = Vec::new();
    for b in bundles {
        // Only what a node would accept under the repository's own root is published.
        let f = std::fs::File::open(b).with_context(|| format!("cannot open {}", b.display()))?;
        let m = bundle::read(std::io::BufReader::new(f), &trust, &mut bundle::Verify::default())
            .with_context(|| format!("{} does not verify under the repository's root (signed by this repository's targets key?)", b.display()))?;
        let name = format!("cairn-{}-{}.bundle", m.compatible, m.version);
        let mut custom = serde_json::json!({"cairn": {"version": m.version.to_string(), "compatible": m.compatible, "security": m.security}});
        if let Some(r) = rollout {
            custom["cairn"]["rollout"] = serde_json::to_value(r)?;
        }
        r.add_target(&keys, &name, b, Some(custom))?;
        names.push(name);
    }
    if refresh {
        r.refresh_timestamp(&keys)?;
    }
    Ok(names)
}

/// `rotate`: a new root with the keys in `new_keys`, signed by the old root key too.
pub fn rotate(repo: &Path, old_keys: &Path, new_keys: &Path) -> Result<Root> {
    let old = load_key(old_keys, "root")?;
    let keys = load_keys(new_keys)?;
    let r = Repository::open(repo);
    let current = r.root()?;
    if !current.roles.get("root").is_some_and(|role| role.keyids.contains(&old.keyid())) {
        bail!("{} is not a root key of the repository's root version {}", old_keys.join("root.key").display(), current.version);
    }
    Ok(r.rotate(&[old], &keys)?)
}
