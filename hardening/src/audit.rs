//! The audit: every baseline item as read back from the running system, not as PID 1 meant
//! to set it. Writing a sysctl can silently not stick (a one-way knob, a kernel that clamps
//! values, a later writer) and a mount can be shadowed by another, so only reading back
//! tells the operator what is really in effect (`cairnctl hardening`).
//!
//! The audit never fails: an unreadable item is reported as such, because a partial report
//! is worth more to an operator than none. It therefore has no error enum of its own.

use crate::mounts::{self, MountEntry, MountPolicy, POLICY};
use crate::sysctl::{self, Setting, BASELINE};
use std::path::Path;

/// Whether one item is in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In effect.
    Applied,
    /// Could be in effect on this kernel but is not: worth an operator's attention.
    NotApplied,
    /// This kernel has no such knob; nothing to fix short of another kernel.
    Unsupported,
}

impl Status {
    /// The label in [`Report::to_text`]; "NOT_APPLIED" is loud on purpose, and a single
    /// word keeps the table splittable by whitespace.
    fn label(self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::NotApplied => "NOT_APPLIED",
            Status::Unsupported => "unsupported",
        }
    }
}

/// One audited item.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    /// `"sysctl"` or `"mount"`.
    pub kind: &'static str,
    /// The sysctl key or the mount point.
    pub name: String,
    /// The sysctl value, or the required mount options joined by commas.
    pub expected: String,
    /// What was found: the value (fields joined by single spaces), the mount's relevant
    /// options, `absent`, `not mounted`, or why it could not be read.
    pub actual: String,
    pub status: Status,
}

/// The whole audit, sysctls first, then mounts, each in baseline order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub items: Vec<Item>,
}

/// Reads every [`BASELINE`] value back from `proc_sys` and checks every [`POLICY`] path
/// against `mountinfo` (the text of `/proc/self/mountinfo`).
///
/// When several mounts stack on one mount point, the last one listed is the visible one and
/// is the one checked. A policy path that is not a mount point is `NotApplied` with actual
/// `not mounted`.
pub fn audit(proc_sys: &Path, mountinfo: &str) -> Report {
    let mut items: Vec<Item> = BASELINE.iter().map(|s| audit_sysctl(proc_sys, s)).collect();
    match mounts::parse_mountinfo(mountinfo) {
        Ok(entries) => items.extend(POLICY.iter().map(|p| audit_mount(p, &entries))),
        // Unparsable mountinfo means nothing about the mounts can be confirmed; say why on
        // every mount item rather than pretending they are merely "not mounted".
        Err(e) => items.extend(POLICY.iter().map(|p| Item {
            kind: "mount",
            name: p.path.to_owned(),
            expected: expected_options(p),
            actual: format!("cannot check: {e}"),
            status: Status::NotApplied,
        })),
    }
    Report { items }
}

fn audit_sysctl(proc_sys: &Path, setting: &Setting) -> Item {
    let path = sysctl::key_to_path(proc_sys, setting.key);
    let (actual, status) = match std::fs::read_to_string(&path) {
        Ok(v) if sysctl::values_match(&v, setting.value) => (sysctl::normalize(&v), Status::Applied),
        Ok(v) => (sysctl::normalize(&v), Status::NotApplied),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ("absent".to_owned(), Status::Unsupported),
        // Present but unreadable (permissions, EIO): the knob exists, so its state is unknown,
        // which must not count as applied.
        Err(e) => (format!("unreadable: {e}"), Status::NotApplied),
    };
    Item { kind: "sysctl", name: setting.key.to_owned(), expected: sysctl::normalize(setting.value), actual, status }
}

fn audit_mount(policy: &MountPolicy, entries: &[MountEntry]) -> Item {
    let (actual, status) = match entries.iter().rev().find(|e| e.mount_point == policy.path) {
        None => ("not mounted".to_owned(), Status::NotApplied),
        Some(entry) => {
            let ok = policy.option_names().into_iter().all(|o| entry.has_option(o));
            (relevant_options(entry), if ok { Status::Applied } else { Status::NotApplied })
        }
    };
    Item { kind: "mount", name: policy.path.to_owned(), expected: expected_options(policy), actual, status }
}

fn expected_options(policy: &MountPolicy) -> String {
    let names = policy.option_names();
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(",")
    }
}

/// Only the options the policy speaks about, so the table stays readable (`size=`, `mode=`,
/// `relatime` and friends are noise here).
fn relevant_options(entry: &MountEntry) -> String {
    let rw = if entry.has_option("ro") { "ro" } else { "rw" };
    let mut shown = vec![rw];
    shown.extend(["nosuid", "nodev", "noexec"].into_iter().filter(|o| entry.has_option(o)));
    shown.join(",")
}

impl Report {
    /// How many items are in effect.
    pub fn applied(&self) -> usize {
        self.with_status(Status::Applied).len()
    }

    /// The items this kernel supports but that are not in effect. `Unsupported` items are
    /// left out on purpose: no operator action fixes them, so a check such as "nothing is
    /// not applied" must not fail forever on a kernel without, say, Yama.
    pub fn not_applied(&self) -> Vec<&Item> {
        self.with_status(Status::NotApplied)
    }

    /// The items this kernel has no knob for.
    pub fn unsupported(&self) -> Vec<&Item> {
        self.with_status(Status::Unsupported)
    }

    fn with_status(&self, status: Status) -> Vec<&Item> {
        self.items.iter().filter(|i| i.status == status).collect()
    }

    /// An aligned table (`STATUS KIND NAME EXPECTED ACTUAL`) followed by `N/M applied`.
    pub fn to_text(&self) -> String {
        let header = ["STATUS", "KIND", "NAME", "EXPECTED", "ACTUAL"];
        let rows: Vec<[&str; 5]> = self
            .items
            .iter()
            .map(|i| [i.status.label(), i.kind, i.name.as_str(), i.expected.as_str(), i.actual.as_str()])
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&rows) {
            let mut line = String::new();
            for (col, (cell, w)) in row.iter().zip(widths).enumerate() {
                if col + 1 == row.len() {
                    // The last column is not padded: no trailing spaces.
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  "));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str(&format!("{}/{} applied\n", self.applied(), self.items.len()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::tests::SAMPLE;
    use crate::sysctl::tests::Scratch;
    use crate::sysctl::{apply, SysctlError};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn status(r: &Report, name: &str) -> Option<Status> {
        r.items.iter().find(|i| i.name == name).map(|i| i.status)
    }

    fn item<'a>(r: &'a Report, name: &str) -> Option<&'a Item> {
        r.items.iter().find(|i| i.name == name)
    }

    #[test]
    fn apply_then_audit_in_a_fake_proc_sys() -> TestResult {
        let dir = Scratch::new("apply-audit")?;
        // A kernel without Yama and without IPv6: every other knob exists, set to something wrong.
        let missing = |k: &str| k == "kernel.yama.ptrace_scope" || k.starts_with("net.ipv6.");
        for s in BASELINE.iter().filter(|s| !missing(s.key)) {
            dir.knob(s.key, "99\n")?;
        }
        let before = audit(&dir.0, SAMPLE);
        assert_eq!(status(&before, "kernel.kptr_restrict"), Some(Status::NotApplied));
        assert_eq!(item(&before, "kernel.kptr_restrict").map(|i| i.actual.as_str()), Some("99"));

        let results = apply(&dir.0, BASELINE);
        assert_eq!(results.len(), BASELINE.len(), "apply never stops early");
        for a in &results {
            if missing(a.setting.key) {
                assert!(matches!(a.result, Err(SysctlError::Unsupported { .. })), "{}: {:?}", a.setting.key, a.result);
            } else {
                assert!(a.result.is_ok(), "{}: {:?}", a.setting.key, a.result);
            }
        }

        let r = audit(&dir.0, SAMPLE);
        assert_eq!(r.items.len(), BASELINE.len() + POLICY.len());
        let sysctls: Vec<&Item> = r.items.iter().filter(|i| i.kind == "sysctl").collect();
        for i in &sysctls {
            let want = if missing(&i.name) { Status::Unsupported } else { Status::Applied };
            assert_eq!(i.status, want, "{i:?}");
        }
        assert_eq!(item(&r, "kernel.yama.ptrace_scope").map(|i| i.actual.as_str()), Some("absent"));
        let unsupported = BASELINE.iter().filter(|s| missing(s.key)).count();
        assert_eq!(r.unsupported().len(), unsupported);
        // Unsupported is not "not applied": only the two broken mounts in SAMPLE are.
        let not_applied: Vec<&str> = r.not_applied().iter().map(|i| i.name.as_str()).collect();
        assert_eq!(not_applied, ["/tmp", "/dev/shm"]);
        assert_eq!(r.applied(), r.items.len() - unsupported - 2);
        Ok(())
    }

    #[test]
    fn value_comparison_ignores_whitespace() -> TestResult {
        let dir = Scratch::new("whitespace")?;
        dir.knob("kernel.kptr_restrict", "\t2 \n")?;
        dir.knob("kernel.sysrq", " 176\n\n")?;
        dir.knob("kernel.panic", "1 0\n")?;
        let r = audit(&dir.0, "");
        assert_eq!(status(&r, "kernel.kptr_restrict"), Some(Status::Applied));
        assert_eq!(status(&r, "kernel.sysrq"), Some(Status::Applied));
        assert_eq!(status(&r, "kernel.panic"), Some(Status::NotApplied), "\"1 0\" is not \"10\"");
        assert_eq!(item(&r, "kernel.kptr_restrict").map(|i| i.actual.as_str()), Some("2"));

        // A multi-value knob as the kernel prints it (tabs) against the spaced form.
        let printk = Setting { key: "kernel.printk", value: "4 4 1 7", why: "t" };
        dir.knob(printk.key, "4\t4\t1\t7\n")?;
        let i = audit_sysctl(&dir.0, &printk);
        assert_eq!((i.status, i.actual.as_str()), (Status::Applied, "4 4 1 7"));
        dir.knob(printk.key, "4\t4\t1\t6\n")?;
        assert_eq!(audit_sysctl(&dir.0, &printk).status, Status::NotApplied);
        Ok(())
    }

    #[test]
    fn mount_audit_flags_missing_restrictions() {
        let r = audit(Path::new("/nonexistent-proc-sys"), SAMPLE);
        // /tmp lacks noexec.
        let tmp = item(&r, "/tmp");
        assert_eq!(tmp.map(|i| i.status), Some(Status::NotApplied));
        assert_eq!(tmp.map(|i| i.actual.as_str()), Some("rw,nosuid,nodev"));
        assert_eq!(tmp.map(|i| i.expected.as_str()), Some("nosuid,nodev,noexec"));
        // The last mount on "/" (the verity squashfs, ro) wins over the initramfs rootfs (rw).
        assert_eq!(status(&r, "/"), Some(Status::Applied));
        assert_eq!(status(&r, "/data"), Some(Status::Applied));
        assert_eq!(status(&r, "/run"), Some(Status::Applied));
        assert_eq!(status(&r, "/dev"), Some(Status::Applied));
        assert_eq!(status(&r, "/proc"), Some(Status::Applied));
        // Not a mount point at all.
        assert_eq!(item(&r, "/dev/shm").map(|i| (i.status, i.actual.as_str())), Some((Status::NotApplied, "not mounted")));

        // A later, weaker mount stacked on /tmp hides the good one: the last one counts.
        let stacked = format!("{SAMPLE}40 28 0:41 / /tmp rw,nosuid,nodev,noexec - tmpfs tmpfs rw\n");
        assert_eq!(status(&audit(Path::new("/x"), &stacked), "/tmp"), Some(Status::Applied));
        let shadowed = format!("{stacked}41 40 0:42 / /tmp rw - tmpfs tmpfs rw\n");
        assert_eq!(status(&audit(Path::new("/x"), &shadowed), "/tmp"), Some(Status::NotApplied));
    }

    #[test]
    fn unparsable_mountinfo_is_reported_not_hidden() {
        let r = audit(Path::new("/x"), "/dev/vda1 / ext4 rw 0 0\n");
        let mounts: Vec<&Item> = r.items.iter().filter(|i| i.kind == "mount").collect();
        assert_eq!(mounts.len(), POLICY.len());
        assert!(mounts.iter().all(|i| i.status == Status::NotApplied && i.actual.starts_with("cannot check")));
    }

    #[test]
    fn text_table_is_aligned_and_summarised() {
        let r = audit(Path::new("/nonexistent-proc-sys"), SAMPLE);
        let text = r.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), r.items.len() + 2);
        let header = lines.first().copied().unwrap_or_default();
        assert!(header.starts_with("STATUS"), "{header}");
        // Every row starts its NAME column at the same offset as the header.
        let name_col = header.find("NAME").unwrap_or(usize::MAX);
        for (line, it) in lines.iter().skip(1).zip(&r.items) {
            assert_eq!(line.get(name_col..name_col + it.name.len()), Some(it.name.as_str()), "{line}");
            assert_eq!(line, &line.trim_end());
        }
        assert_eq!(lines.last().copied(), Some(format!("{}/{} applied", r.applied(), r.items.len()).as_str()));
    }

    #[test]
    fn report_serializes_for_cairnctl() -> TestResult {
        let r = audit(Path::new("/nonexistent-proc-sys"), SAMPLE);
        let v: serde_json::Value = serde_json::to_value(&r)?;
        let first = &v["items"][0];
        assert_eq!(first["kind"], "sysctl");
        assert_eq!(first["status"], "unsupported");
        assert!(v["items"].as_array().is_some_and(|a| a.iter().any(|i| i["status"] == "not_applied")));
        Ok(())
    }

    #[test]
    fn audits_this_host_without_error() -> TestResult {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        let r = audit(Path::new("/proc/sys"), &mountinfo);
        assert_eq!(r.items.len(), BASELINE.len() + POLICY.len());
        // The host's real mountinfo must parse: no mount item may say "cannot check".
        assert!(r.items.iter().all(|i| !i.actual.starts_with("cannot check")), "{}", r.to_text());
        // Print it: handy when running `cargo test -- --nocapture` on a node.
        println!("{}", r.to_text());
        Ok(())
    }
}
