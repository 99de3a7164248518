//! The audit: each baseline item, applied or not, as read back from the running system.

use crate::mounts::{self, POLICY};
use crate::sysctl::{self, BASELINE};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Applied,
    NotApplied,
    Unsupported,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    pub kind: &'static str,
    pub name: String,
    pub expected: String,
    pub actual: String,
    pub status: Status,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub items: Vec<Item>,
}

pub fn audit(proc_sys: &Path, mountinfo: &str) -> Report {
    let mut items = Vec::new();
    for s in BASELINE {
        let (actual, status) = match std::fs::read_to_string(sysctl::key_to_path(proc_sys, s.key)) {
            Ok(v) if sysctl::same_value(&v, s.value) => (v.trim().to_owned(), Status::Applied),
            Ok(v) => (v.trim().to_owned(), Status::NotApplied),
            Err(_) => ("missing".to_owned(), Status::Unsupported),
        };
        items.push(Item { kind: "sysctl", name: s.key.to_owned(), expected: s.value.to_owned(), actual, status });
    }
    let entries = mounts::parse_mountinfo(mountinfo).unwrap_or_default();
    for p in POLICY {
        let expected = p.option_names().join(",");
        // The last mount on a mount point is the one in effect.
        let (actual, status) = match entries.iter().rev().find(|e| e.mount_point == p.path) {
            None => ("not mounted".to_owned(), Status::NotApplied),
            Some(e) => {
                let has = |o: &str| e.options.iter().any(|x| x == o);
                let ok = p.option_names().iter().all(|o| has(o));
                (e.options.join(","), if ok { Status::Applied } else { Status::NotApplied })
            }
        };
        items.push(Item { kind: "mount", name: p.path.to_owned(), expected, actual, status });
    }
    Report { items }
}

impl Report {
    pub fn applied(&self) -> usize {
        self.items.iter().filter(|i| i.status == Status::Applied).count()
    }

    pub fn not_applied(&self) -> Vec<&Item> {
        self.items.iter().filter(|i| i.status != Status::Applied).collect()
    }

    pub fn to_text(&self) -> String {
        let mut out = format!("{:<12} {:<7} {:<42} {:<14} {}\n", "STATUS", "KIND", "NAME", "EXPECTED", "ACTUAL");
        for i in &self.items {
            let st = match i.status {
                Status::Applied => "applied",
                Status::NotApplied => "NOT APPLIED",
                Status::Unsupported => "unsupported",
            };
            out.push_str(&format!("{st:<12} {:<7} {:<42} {:<14} {}\n", i.kind, i.name, i.expected, i.actual));
        }
        out.push_str(&format!("{}/{} applied\n", self.applied(), self.items.len()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysctl::apply;

    #[test]
    fn apply_then_audit_in_a_fake_proc_sys() {
        let root = std::env::temp_dir().join(format!("cairn-procsys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // Every knob exists except the Yama one (a kernel without Yama).
        for s in BASELINE.iter().filter(|s| s.key != "kernel.yama.ptrace_scope") {
            let p = sysctl::key_to_path(&root, s.key);
            assert!(std::fs::create_dir_all(p.parent().unwrap_or(&root)).is_ok());
            assert!(std::fs::write(&p, "7\n").is_ok());
        }
        let results = apply(&root, BASELINE);
        assert_eq!(results.iter().filter(|a| a.result.is_err()).count(), 1);
        let mountinfo = "22 1 253:0 / / ro,relatime - squashfs /dev/dm-0 ro\n\
            30 22 0:40 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw\n\
            31 22 254:7 / /data rw,nosuid,nodev,relatime shared:1 - ext4 /dev/vda7 rw\n";
        let r = audit(&root, mountinfo);
        let get = |n: &str| r.items.iter().find(|i| i.name == n).map(|i| i.status);
        assert_eq!(get("kernel.kptr_restrict"), Some(Status::Applied));
        assert_eq!(get("kernel.yama.ptrace_scope"), Some(Status::Unsupported));
        assert_eq!(get("/"), Some(Status::Applied));
        assert_eq!(get("/data"), Some(Status::Applied));
        assert_eq!(get("/tmp"), Some(Status::NotApplied), "no noexec on /tmp");
        assert_eq!(get("/run"), Some(Status::NotApplied), "not mounted");
        assert!(r.to_text().contains(&format!("{}/{} applied", r.applied(), r.items.len())));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn mountinfo_escapes_and_optional_fields() {
        let e = mounts::parse_mountinfo("36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n").unwrap_or_default();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].mount_point, "/mnt two");
        assert!(e[0].options.contains(&"errors=continue".to_owned()));
        assert!(mounts::parse_mountinfo("garbage").is_err());
    }

    #[test]
    fn audits_this_host_without_error() {
        let r = audit(Path::new("/proc/sys"), &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
        assert_eq!(r.items.len(), BASELINE.len() + POLICY.len());
    }
}
