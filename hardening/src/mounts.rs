//! The mount policy: which mounts must carry which restrictions, and a mountinfo parser to
//! check them.

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct MountPolicy {
    pub path: &'static str,
    pub read_only: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
    pub why: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum MountsError {
    #[error("mountinfo line {0} is malformed: {1:?}")]
    Line(usize, String),
}

const fn m(path: &'static str, read_only: bool, nosuid: bool, nodev: bool, noexec: bool, why: &'static str) -> MountPolicy {
    MountPolicy { path, read_only, nosuid, nodev, noexec, why }
}

pub const POLICY: &[MountPolicy] = &[
    m("/", true, false, false, false, "the verified root never changes at run time"),
    m("/data", false, true, true, false, "no set-uid or device files on the writable disk; exec stays: operator-supplied node daemons live here"),
    m("/run", false, true, true, false, "no set-uid or devices; exec stays: container runtimes keep runtime state and shims there"),
    m("/tmp", false, true, true, true, "world-writable: nothing is run from it"),
    m("/dev/shm", false, true, true, true, "world-writable shared memory: nothing is run from it"),
    m("/proc", false, true, true, true, "kernel interface only"),
    m("/sys", false, true, true, true, "kernel interface only"),
];

impl MountPolicy {
    pub fn option_names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (on, name) in [(self.read_only, "ro"), (self.nosuid, "nosuid"), (self.nodev, "nodev"), (self.noexec, "noexec")] {
            if on {
                v.push(name);
            }
        }
        v
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MountEntry {
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
    pub options: Vec<String>,
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() + 0 && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses /proc/self/mountinfo: "id parent maj:min root mount-point options [optional...] - fstype source super-options".
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountEntry>, MountsError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || MountsError::Line(n + 1, line.to_owned());
        let (left, right) = line.split_once(" - ").ok_or_else(bad)?;
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 6 || r.len() < 3 {
            return Err(bad());
        }
        let mut options: Vec<String> = l[5].split(',').map(str::to_owned).collect();
        options.extend(r[2].split(',').filter(|o| !options.iter().any(|x| x == o)).map(str::to_owned).collect::<Vec<_>>());
        out.push(MountEntry { mount_point: unescape(l[4]), fs_type: r[0].to_owned(), source: unescape(r[1]), options });
    }
    Ok(out)
}
