//! The mount policy: which mount points must carry which restrictions, and a parser for
//! `/proc/self/mountinfo` so the audit can check what is really in effect.
//!
//! The policy is data, not mounting code: PID 1 owns the mount syscalls (behind its `Sys`
//! trait) and asks [`MountPolicy::option_names`] which flags to pass, so this crate stays free
//! of rustix/nix and testable without root.

/// The restrictions one mount point must have.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct MountPolicy {
    pub path: &'static str,
    pub read_only: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
    /// Why, in one line, including why a restriction is deliberately left off.
    pub why: &'static str,
}

/// Why mountinfo text could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MountsError {
    #[error(
        "/proc/self/mountinfo line {line} is malformed ({reason}): {text:?}; pass the unmodified \
         contents of /proc/self/mountinfo (not /proc/mounts or fstab)"
    )]
    Malformed { line: usize, reason: &'static str, text: String },
}

const fn m(
    path: &'static str,
    read_only: bool,
    nosuid: bool,
    nodev: bool,
    noexec: bool,
    why: &'static str,
) -> MountPolicy {
    MountPolicy { path, read_only, nosuid, nodev, noexec, why }
}

/// The mount policy PID 1 enforces and the audit checks.
pub const POLICY: &[MountPolicy] = &[
    m(
        "/",
        true,
        false,
        false,
        false,
        "the dm-verity root is read-only: nothing can be planted in the OS itself; it must keep set-uid, devices and exec for the OS",
    ),
    // Bind mounts inherit their source's flags, so Docker volumes under /data are nosuid,nodev
    // inside containers too: programs in volumes run, set-uid files there grant nothing.
    // Container root filesystems are separate overlay mounts with their own flags: unaffected.
    m(
        "/data",
        false,
        true,
        true,
        false,
        "writable disk: no set-uid or device files; exec kept because operator-supplied node daemon binaries live here",
    ),
    // exec kept: the container runtime keeps per-container bundles and state under /run
    // (containerd's task directories, runc's state dir, which runc may also execute from), and
    // mounting it noexec is a known cause of containers failing to start. The root being
    // read-only and /run being tmpfs means nothing planted there survives a reboot.
    m(
        "/run",
        false,
        true,
        true,
        false,
        "tmpfs: no set-uid or device files; exec kept because container runtimes keep state and may execute from it",
    ),
    m("/tmp", false, true, true, true, "world-writable tmpfs: nothing runs from it, no set-uid, no device files"),
    // No nodev (it is where the device nodes are). noexec: devtmpfs holds only device nodes and
    // only root writes there. The one known casualty is Intel SGX (/dev/sgx_enclave needs
    // PROT_EXEC mappings), which Flux workloads do not use; drop noexec here if that changes.
    m("/dev", false, true, false, true, "device nodes only: no set-uid, nothing to execute (nodev would defeat its purpose)"),
    m("/dev/shm", false, true, true, true, "world-writable shared memory: nothing runs from it, no set-uid, no device files"),
    m("/proc", false, true, true, true, "kernel interface only: no executables, set-uid or device files belong there"),
    m("/sys", false, true, true, true, "kernel interface only: no executables, set-uid or device files belong there"),
];

impl MountPolicy {
    /// The mount option names for this path, in mount(8) spelling (`ro`, `nosuid`, `nodev`,
    /// `noexec`); empty when nothing is restricted. PID 1 maps them onto MS_* flags.
    pub fn option_names(&self) -> Vec<&'static str> {
        [(self.read_only, "ro"), (self.nosuid, "nosuid"), (self.nodev, "nodev"), (self.noexec, "noexec")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
    }
}

/// One line of mountinfo, reduced to what the policy checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MountEntry {
    /// Unescaped (`\040` is a space again).
    pub mount_point: String,
    pub fs_type: String,
    /// Unescaped; `none` or the fs name for virtual filesystems.
    pub source: String,
    /// Per-mount options followed by the superblock options not already listed. A read-only
    /// superblock under a `rw` mount shows both `rw` and `ro`; writes fail, so `ro` wins.
    pub options: Vec<String>,
}

impl MountEntry {
    /// Whether `option` (e.g. `noexec`) is in effect on this mount.
    pub fn has_option(&self, option: &str) -> bool {
        self.options.iter().any(|o| o == option)
    }
}

/// Parses `/proc/self/mountinfo` text.
///
/// Line format (proc(5)): `id parent major:minor root mount-point mount-options
/// [optional-fields...] - fs-type source super-options`. The optional fields (`shared:1`,
/// `master:2`, ...) vary in number; a lone `-` ends them. Fields are separated by single spaces
/// because the kernel escapes space, tab, newline and backslash in paths as `\ooo` octal.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountEntry>, MountsError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            parse_line(line).map_err(|reason| MountsError::Malformed { line: index + 1, reason, text: line.to_owned() })
        })
        .collect()
}

fn parse_line(line: &str) -> Result<MountEntry, &'static str> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    // Six fixed fields come before the optional ones, so the separator is at index 6 or later.
    let sep = fields.iter().skip(6).position(|f| *f == "-").map(|p| p + 6).ok_or("no \" - \" separator")?;
    let (Some(id), Some(parent), Some(dev)) = (fields.first(), fields.get(1), fields.get(2)) else {
        return Err("too few fields");
    };
    if id.parse::<u64>().is_err() || parent.parse::<u64>().is_err() {
        return Err("mount ids are not numbers");
    }
    if !dev.split_once(':').is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok()) {
        return Err("device is not major:minor");
    }
    let (Some(mount_point), Some(mount_opts)) = (fields.get(4), fields.get(5)) else {
        return Err("too few fields");
    };
    let (Some(fs_type), Some(source)) = (fields.get(sep + 1), fields.get(sep + 2)) else {
        return Err("fs type or source missing after the separator");
    };
    let mut options: Vec<String> = mount_opts.split(',').filter(|o| !o.is_empty()).map(str::to_owned).collect();
    // Superblock options may be absent on odd kernels; treat that as none rather than fail.
    for opt in fields.get(sep + 3).map_or("", |s| s).split(',').filter(|o| !o.is_empty()) {
        if !options.iter().any(|o| o == opt) {
            options.push(opt.to_owned());
        }
    }
    Ok(MountEntry {
        mount_point: unescape(mount_point),
        fs_type: unescape(fs_type),
        source: unescape(source),
        options,
    })
}

/// Undoes the kernel's `\ooo` octal escaping. Anything that is not a valid three-digit octal
/// escape of a byte is kept literally, so odd input cannot make this fail or panic.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            if let Some(v) = bytes.get(i + 1..i + 4).and_then(octal_byte) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn octal_byte(digits: &[u8]) -> Option<u8> {
    let mut v: u32 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        v = v * 8 + u32::from(d - b'0');
    }
    u8::try_from(v).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Shaped like a real node: verity root, stacked mounts, optional fields, an escaped space.
    pub(crate) const SAMPLE: &str = "\
1 1 0:2 / / rw - rootfs rootfs rw
22 1 253:0 / / ro,relatime shared:1 - squashfs /dev/mapper/root ro,errors=continue
23 22 0:5 / /dev rw,nosuid,noexec,relatime shared:2 - devtmpfs devtmpfs rw,size=4096k,nr_inodes=1024,mode=755
24 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:3 - proc proc rw
25 22 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:4 - sysfs sysfs rw
26 22 0:24 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755
27 22 254:7 / /data rw,nosuid,nodev,relatime shared:6 master:1 - ext4 /dev/vda7 rw
28 22 0:40 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw,mode=1777
29 27 254:7 /docker/volumes/my\\040vol/_data /data/mnt\\040point\\134x rw,nosuid,nodev,relatime shared:7 - ext4 /dev/vda7 rw
";

    #[test]
    fn parses_a_realistic_sample() -> Result<(), MountsError> {
        let entries = parse_mountinfo(SAMPLE)?;
        assert_eq!(entries.len(), 9);
        let root = &entries[1];
        assert_eq!(
            root,
            &MountEntry {
                mount_point: "/".into(),
                fs_type: "squashfs".into(),
                source: "/dev/mapper/root".into(),
                options: vec!["ro".into(), "relatime".into(), "errors=continue".into()],
            }
        );
        // Two optional fields before the separator, and superblock options merged without dups.
        let data = &entries[6];
        assert_eq!(data.mount_point, "/data");
        assert_eq!(data.fs_type, "ext4");
        assert_eq!(data.options, ["rw", "nosuid", "nodev", "relatime"]);
        // \040 is a space, \134 a backslash.
        assert_eq!(entries[8].mount_point, "/data/mnt point\\x");
        assert!(entries[2].has_option("noexec") && !entries[2].has_option("nodev"));
        Ok(())
    }

    #[test]
    fn rejects_what_is_not_mountinfo() {
        // /proc/mounts format: no separator.
        assert!(parse_mountinfo("/dev/vda1 / ext4 rw,relatime 0 0\n").is_err());
        let err = parse_mountinfo("22 1 253:0 / / ro\nx y 1:2 / /a rw - tmpfs tmpfs rw\n");
        match err {
            Err(MountsError::Malformed { line, .. }) => assert_eq!(line, 1),
            Ok(v) => panic!("parsed {v:?}"),
        }
        assert!(parse_mountinfo("x 1 1:2 / /a rw - tmpfs tmpfs rw").is_err());
        assert!(matches!(parse_mountinfo("\n\n"), Ok(v) if v.is_empty()));
    }

    #[test]
    fn unescape_never_panics_on_odd_escapes() {
        assert_eq!(unescape("a\\777b"), "a\\777b", "above 255 is kept literally");
        assert_eq!(unescape("tail\\04"), "tail\\04");
        assert_eq!(unescape("\\011tab"), "\ttab");
        assert_eq!(unescape("\\"), "\\");
    }

    #[test]
    fn option_names_follow_the_flags() {
        let get = |p: &str| POLICY.iter().find(|m| m.path == p).map(MountPolicy::option_names);
        assert_eq!(get("/"), Some(vec!["ro"]));
        assert_eq!(get("/tmp"), Some(vec!["nosuid", "nodev", "noexec"]));
        assert_eq!(get("/data"), Some(vec!["nosuid", "nodev"]));
        assert_eq!(get("/run"), Some(vec!["nosuid", "nodev"]));
        assert_eq!(get("/dev"), Some(vec!["nosuid", "noexec"]));
        for p in ["/dev/shm", "/proc", "/sys"] {
            assert_eq!(get(p), Some(vec!["nosuid", "nodev", "noexec"]), "{p}");
        }
    }
}
