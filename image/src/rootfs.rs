//! The root file system: Debian packages through mmdebstrap, then Cairn's own files.

use crate::debian;
use crate::profile::Profile;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error(transparent)]
    Debian(#[from] debian::DebianError),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the root file system has no kernel in /boot (is a linux-image-* package in debian.packages?)")]
    NoKernel,
    #[error("the root file system has {0} kernels in /lib/modules; install exactly one linux-image-* package")]
    KernelCount(usize),
    #[error("service {name} is enabled in the profile but {path} does not exist (image/services/ holds the definitions)")]
    NoService { name: String, path: PathBuf },
    #[error("the root file system's /etc/group has no `operator` group (Debian's base-passwd gives it gid 37): the operator account cannot be made")]
    NoOperatorGroup,
}

/// What the image needs from the root besides the tree itself.
#[derive(Debug)]
pub struct Rootfs {
    pub dir: PathBuf,
    pub kernel_version: String,
    /// The kernel image, moved out of the root (it lives on the ESP, not in the slot).
    pub vmlinuz: PathBuf,
}

/// The binaries that Cairn adds to a Debian root.
#[derive(Debug)]
pub struct CairnBinaries {
    pub init: PathBuf,
    pub cairnctl: PathBuf,
    pub test_agent: Option<PathBuf>,
    /// The Flux daemon test double (test images only).
    pub flux_double: Option<PathBuf>,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RootfsError + 'a {
    move |source| RootfsError::Io { what, path: path.to_owned(), source }
}

pub fn build(profile: &Profile, work: &Path, cache: &Path, epoch: u64, log: &Path) -> Result<Rootfs, RootfsError> {
    let dir = work.join("rootfs");
    let sources = profile.debian.sources();
    let tree = debian::Tree { what: "root file system", suite: &profile.debian.suite, sources: &sources, packages: &profile.debian.packages };
    // The kernel's postinst builds a Debian initramfs we never use; `customise` drops /boot.
    debian::mmdebstrap(&tree, &dir, cache, epoch, log)?;

    let modules = dir.join("lib/modules");
    let versions: Vec<String> = std::fs::read_dir(&modules)
        .map_err(io("cannot list", &modules))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    let [kernel_version] = versions.as_slice() else { return Err(RootfsError::KernelCount(versions.len())) };
    let kernel_version = kernel_version.clone();
    let vmlinuz_in_root = dir.join(format!("boot/vmlinuz-{kernel_version}"));
    if !vmlinuz_in_root.is_file() {
        return Err(RootfsError::NoKernel);
    }
    let vmlinuz = work.join("vmlinuz");
    std::fs::rename(&vmlinuz_in_root, &vmlinuz).map_err(io("cannot move kernel", &vmlinuz_in_root))?;
    Ok(Rootfs { dir, kernel_version, vmlinuz })
}

/// Where Cairn's own files for the root come from: service definitions (`services/NAME.toml`)
/// and a tree copied over the root as is (`files/`), both beside the profiles directory.
#[derive(Debug, Clone)]
pub struct Sources {
    pub services: PathBuf,
    pub files: PathBuf,
}

impl Sources {
    /// `image/profiles/x.toml` -> `image/services`, `image/files`. A profile kept elsewhere
    /// (with no `services/` beside its directory) uses this repository's `image/`.
    pub fn beside(profile_path: &Path) -> Sources {
        let base = profile_path.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let base = if base.join("services").is_dir() { base } else { PathBuf::from(env!("CARGO_MANIFEST_DIR")) };
        Sources { services: base.join("services"), files: base.join("files") }
    }
}

// Where the image keeps the TUF root it trusts first (the node copies it to its store on
// /data and follows rotations from there; the initramfs carries it too, as stage 1's keyring).
use cairn_updater::slot_trust::KEYRING as UPDATE_ROOT;

/// Turns the Debian tree into a Cairn root: our PID 1 and CLI, mount points, no /boot.
pub fn customise(root: &Rootfs, profile: &Profile, bins: &CairnBinaries, src: &Sources, update_root: Option<&Path>) -> Result<(), RootfsError> {
    let d = &root.dir;
    // /boot holds Debian's initramfs and a second kernel copy: neither is used by a slot.
    for entry in std::fs::read_dir(d.join("boot")).map_err(io("cannot list", &d.join("boot")))?.flatten() {
        remove(&entry.path())?;
    }
    for name in ["initrd.img", "initrd.img.old", "vmlinuz", "vmlinuz.old"] {
        remove(&d.join(name))?;
    }
    for dir in ["data", "boot/efi", "run", "tmp", "etc/cairn/services", "usr/libexec"] {
        let p = d.join(dir);
        std::fs::create_dir_all(&p).map_err(io("cannot create", &p))?;
    }
    if profile.init == crate::profile::Init::Cairn {
        install(&bins.init, &d.join("sbin/init"))?;
    }
    install(&bins.cairnctl, &d.join("usr/bin/cairnctl"))?;
    if let Some(agent) = &bins.test_agent {
        install(agent, &d.join("usr/libexec/cairn-test-agent"))?;
        if profile.init == crate::profile::Init::Systemd {
            // The benchmark baseline runs the same agent, as a systemd unit.
            enable_unit(
                d,
                "cairn-test-agent.service",
                "multi-user.target",
                "[Unit]\nDescription=Cairn test agent (benchmark and test images only)\n\n\
                 [Service]\nExecStart=/usr/libexec/cairn-test-agent\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n",
            )?;
            // systemd's getty generator puts a login prompt on every virtualizer console,
            // hvc0 included: that is the agent's channel, so the getty is masked.
            let getty = d.join("etc/systemd/system/serial-getty@hvc0.service");
            remove(&getty)?;
            std::os::unix::fs::symlink("/dev/null", &getty).map_err(io("cannot link", &getty))?;
        } else {
            write(
                &d.join("etc/cairn/services/test-agent.toml"),
                "# Test images only: the VM test harness's command channel on /dev/hvc0.\n\
                 command = \"/usr/libexec/cairn-test-agent\"\n",
            )?;
        }
    }
    if profile.init == crate::profile::Init::Cairn {
        for name in &profile.services.enabled {
            let from = src.services.join(format!("{name}.toml"));
            if !from.is_file() {
                return Err(RootfsError::NoService { name: name.clone(), path: from });
            }
            // "test/fluxd" installs image/services/test/fluxd.toml as the service "fluxd".
            let installed = name.rsplit('/').next().unwrap_or(name);
            let to = d.join(format!("etc/cairn/services/{installed}.toml"));
            std::fs::copy(&from, &to).map_err(io("cannot copy into the root", &to))?;
        }
        copy_tree(&src.files, d)?;
        if let Some(double) = &bins.flux_double {
            install(double, &d.join("usr/libexec/cairn-flux-double"))?;
        }
        // The build host's resolv.conf must not leak into the image; the DHCP client writes
        // the node's own into /run.
        let resolv = d.join("etc/resolv.conf");
        remove(&resolv)?;
        std::os::unix::fs::symlink("../run/resolv.conf", &resolv).map_err(io("cannot link", &resolv))?;
    }
    write(
        &d.join("etc/cairn/release"),
        &format!("NAME={}\nVERSION={}\nKERNEL={}\n", profile.name, profile.version, root.kernel_version),
    )?;
    if let Some(from) = update_root {
        let to = d.join(UPDATE_ROOT);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
        }
        std::fs::copy(from, &to).map_err(io("cannot copy into the root", &to))?;
    }
    write(&d.join("etc/hostname"), "cairn\n")?;
    write(&d.join("etc/fstab"), "# Cairn mounts everything itself (cairn-init); see README.md.\n")?;
    // dockerd writes /etc/docker/key.json at start: on a read-only root that lives on /data
    // (Cairn's docker service makes the directory; the baseline's /var unit does).
    let etc_docker = d.join("etc/docker");
    if etc_docker.is_dir() {
        remove(&etc_docker)?;
        std::os::unix::fs::symlink("../var/lib/docker-etc", &etc_docker).map_err(io("cannot link", &etc_docker))?;
    }
    if profile.init == crate::profile::Init::Systemd {
        baseline_report(d)?;
        baseline_var(d)?;
        if profile.debian.packages.iter().any(|p| p == "cloud-init") {
            baseline_cloud_init(d)?;
        }
    }
    // The root is read-only: machine-id lives on /data, created by stage 2 on first boot.
    // (systemd, in the baseline image, handles a read-only root's machine-id itself.)
    if profile.init == crate::profile::Init::Cairn {
        operator_account(d)?;
        let mid = d.join("etc/machine-id");
        remove(&mid)?;
        std::os::unix::fs::symlink("/data/etc/machine-id", &mid).map_err(io("cannot link", &mid))?;
    }
    Ok(())
}

/// The `operator` account operators log in as over SSH (its group is the control API's
/// operator group, Debian's `operator`, gid 37), with its home on /data. No password:
/// `*` never matches one and sshd takes keys only. And no host keys in the image: openssh's
/// installer made some, which every node would share; each node makes its own on /data.
fn operator_account(d: &Path) -> Result<(), RootfsError> {
    let etc = d.join("etc");
    let group = std::fs::read_to_string(etc.join("group")).map_err(io("cannot read", &etc.join("group")))?;
    let gid = group.lines().find_map(|l| l.strip_prefix("operator:x:")).and_then(|r| r.split(':').next()).map(str::to_owned);
    let Some(gid) = gid else {
        return Err(RootfsError::NoOperatorGroup);
    };
    for (file, line) in [("passwd", format!("operator:x:1000:{gid}:Cairn operator:/data/home/operator:/bin/bash")), ("shadow", "operator:*:::::::".to_owned())] {
        let path = etc.join(file);
        let text = std::fs::read_to_string(&path).map_err(io("cannot read", &path))?;
        if !text.lines().any(|l| l.starts_with("operator:")) {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&path).map_err(io("cannot open", &path))?;
            writeln!(f, "{line}").map_err(io("cannot write", &path))?;
        }
    }
    for entry in std::fs::read_dir(etc.join("ssh")).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            remove(&entry.path())?;
        }
    }
    Ok(())
}

/// The benchmark baseline (stock Debian with systemd) reports on the console when it reached
/// multi-user.target, with systemd's resident memory, as Cairn's ready line does.
fn baseline_report(d: &Path) -> Result<(), RootfsError> {
    use std::os::unix::fs::PermissionsExt;
    let script = d.join("usr/local/sbin/cairn-bench-report");
    std::fs::create_dir_all(d.join("usr/local/sbin")).map_err(io("cannot create", &script))?;
    write(
        &script,
        "#!/bin/sh\n# Benchmark baseline only: say on the console that multi-user.target was reached.\n\
         up=$(awk '{printf \"%d\", $1*1000}' /proc/uptime)\n\
         rss=$(awk '/VmRSS/ {print $2}' /proc/1/status)\n\
         echo \"BASELINE READY uptime_ms=$up pid1_rss_kib=$rss\" > /dev/ttyS0\n",
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).map_err(io("cannot chmod", &script))?;
    enable_unit(
        d,
        "cairn-bench-report.service",
        "multi-user.target",
        "[Unit]\nDescription=Report boot completion (benchmark baseline only)\nAfter=multi-user.target\n\n\
         [Service]\nType=oneshot\nExecStart=/usr/local/sbin/cairn-bench-report\n\n[Install]\nWantedBy=multi-user.target\n",
    )
}

/// The benchmark baseline keeps /var on /data as Cairn does (stage 2's bind of /data/var):
/// without it containerd and dockerd fail on the read-only root. First boot copies Debian's
/// /var there. A oneshot unit before local-fs.target, so everything after sees it.
fn baseline_var(d: &Path) -> Result<(), RootfsError> {
    enable_unit(
        d,
        "cairn-baseline-var.service",
        "local-fs.target",
        "[Unit]\nDescription=/var on /data, as on Cairn (benchmark baseline only)\nDefaultDependencies=no\n\
         After=systemd-remount-fs.service\n\
         Before=local-fs.target systemd-journal-flush.service systemd-tmpfiles-setup.service systemd-random-seed.service\n\n\
         [Service]\nType=oneshot\nRemainAfterExit=yes\n\
         ExecStart=/bin/sh -c 'if [ ! -d /data/var ]; then rm -rf /data/var.new && mkdir /data/var.new && cp -a /var/. /data/var.new/ && mv /data/var.new /data/var; fi; mkdir -p /data/var/lib/docker-etc && mount --bind /data/var /var'\n\n\
         [Install]\nWantedBy=local-fs.target\n",
    )
}

/// The cloud-init baseline (`./dev bench provision`): cloud-init and OpenSSH as on a Debian
/// cloud image, which write /etc and /home: on this read-only root they are copied to /data
/// on first boot and bound there, before cloud-init's first stage. DHCP by dhcpcd, as on
/// Cairn; cloud-init reads NoCloud only and leaves the network to it.
fn baseline_cloud_init(d: &Path) -> Result<(), RootfsError> {
    write(&d.join("etc/cloud/cloud.cfg.d/99-cairn-bench.cfg"), "# Benchmark baseline only.\ndatasource_list: [ NoCloud, None ]\nnetwork: {config: disabled}\n")?;
    enable_unit(
        d,
        "cairn-baseline-etc.service",
        "local-fs.target",
        "[Unit]\nDescription=/etc and /home on /data (benchmark baseline only)\nDefaultDependencies=no\n\
         After=systemd-remount-fs.service cairn-baseline-var.service\n\
         Before=local-fs.target cloud-init-local.service systemd-tmpfiles-setup.service\n\n\
         [Service]\nType=oneshot\nRemainAfterExit=yes\n\
         ExecStart=/bin/sh -c 'for t in etc home; do if [ ! -d /data/$t ]; then rm -rf /data/$t.new && mkdir /data/$t.new && cp -a /$t/. /data/$t.new/ && mv /data/$t.new /data/$t; fi; mount --bind /data/$t /$t; done'\n\n\
         [Install]\nWantedBy=local-fs.target\n",
    )?;
    enable_unit(
        d,
        "cairn-baseline-dhcp.service",
        "multi-user.target",
        "[Unit]\nDescription=DHCP by dhcpcd (benchmark baseline only)\nAfter=network-pre.target\nBefore=network.target\nWants=network.target\n\n\
         [Service]\nExecStart=/usr/sbin/dhcpcd -B --nodev --noipv4ll\n\n[Install]\nWantedBy=multi-user.target\n",
    )
}

/// Writes a systemd unit into /etc/systemd/system and enables it as `systemctl enable`
/// would: a link in `<target>.wants/` (the baseline image only; no systemctl at build time).
fn enable_unit(d: &Path, name: &str, target: &str, text: &str) -> Result<(), RootfsError> {
    write(&d.join("etc/systemd/system").join(name), text)?;
    let wants = d.join("etc/systemd/system").join(format!("{target}.wants"));
    std::fs::create_dir_all(&wants).map_err(io("cannot create", &wants))?;
    let link = wants.join(name);
    remove(&link)?;
    std::os::unix::fs::symlink(format!("../{name}"), &link).map_err(io("cannot link", &link))
}

fn remove(p: &Path) -> Result<(), RootfsError> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).map_err(io("cannot remove", p)),
        Ok(_) => std::fs::remove_file(p).map_err(io("cannot remove", p)),
        Err(_) => Ok(()),
    }
}

fn install(from: &Path, to: &Path) -> Result<(), RootfsError> {
    use std::os::unix::fs::PermissionsExt;
    remove(to)?;
    std::fs::copy(from, to).map_err(io("cannot copy into the root", to))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).map_err(io("cannot chmod", to))
}

fn write(p: &Path, text: &str) -> Result<(), RootfsError> {
    std::fs::write(p, text).map_err(io("cannot write", p))
}

/// Copies a directory tree over the root (files replace what is there).
fn copy_tree(from: &Path, to: &Path) -> Result<(), RootfsError> {
    let Ok(entries) = std::fs::read_dir(from) else { return Ok(()) };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            std::fs::create_dir_all(&dst).map_err(io("cannot create", &dst))?;
            copy_tree(&src, &dst)?;
        } else {
            remove(&dst)?;
            std::fs::copy(&src, &dst).map_err(io("cannot copy into the root", &dst))?;
        }
    }
    Ok(())
}
