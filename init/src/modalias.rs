//! Drivers for the hardware stage 1 finds: every device's `modalias` in sysfs matched against
//! `modules.alias`, the kernel build's own table of which module drives which device, as
//! udev's kmod builtin does after boot. One bare-metal initramfs then boots from whatever
//! storage controller the machine has (AHCI, NVMe, USB, virtio, SAS and RAID HBAs) without
//! a fixed list per machine.
//!
//! The image tool puts the profile's `kernel.drivers` into the initramfs with
//! [`ALIAS_FILE`] (`modules.alias` cut down to them) and [`DEP_FILE`] (`modules.dep` cut down
//! likewise, with absolute paths). An image without them (the cloud images: their few
//! drivers are in the fixed list) skips all of this.

use std::collections::{HashMap, HashSet};
use std::path::Path;

pub const ALIAS_FILE: &str = "/etc/cairn/drivers.alias";
pub const DEP_FILE: &str = "/etc/cairn/drivers.dep";
/// sysfs nests devices deeply (PCI bridge, USB hub, SCSI host, target, LUN) but not this deep.
const MAX_DEPTH: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum ModaliasError {
    #[error("cannot read the driver table {path}")]
    Read { path: String, source: std::io::Error },
}

/// `modules.alias` and `modules.dep` for the drivers the initramfs carries.
#[derive(Debug, Default)]
pub struct Table {
    /// (pattern, module name) in file order: the kernel's tools try them in this order too.
    aliases: Vec<(String, String)>,
    /// Module name -> its file and its dependencies' files, dependencies first.
    load_order: HashMap<String, Vec<String>>,
}

impl Table {
    /// Reads the table; `None` when the image carries none.
    pub fn load(alias: &str, dep: &str) -> Result<Option<Table>, ModaliasError> {
        if !Path::new(alias).exists() {
            return Ok(None);
        }
        let read = |p: &str| std::fs::read_to_string(p).map_err(|source| ModaliasError::Read { path: p.into(), source });
        Ok(Some(Table::parse(&read(alias)?, &read(dep)?)))
    }

    /// `alias PATTERN MODULE` lines, and `PATH: DEP DEP...` lines (nearest dependency first,
    /// as depmod writes them).
    pub fn parse(alias_text: &str, dep_text: &str) -> Table {
        let aliases = alias_text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("alias")).then_some(())?;
                Some((w.next()?.to_owned(), normalise(w.next()?)))
            })
            .collect();
        let load_order = dep_text
            .lines()
            .filter_map(|l| {
                let (path, deps) = l.split_once(':')?;
                let mut order: Vec<String> = deps.split_whitespace().rev().map(str::to_owned).collect();
                order.push(path.trim().to_owned());
                Some((module_name(path.trim()), order))
            })
            .collect();
        Table { aliases, load_order }
    }

    /// The modules whose aliases match `modalias`, each once, in table order.
    pub fn modules_for(&self, modalias: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (pattern, module) in &self.aliases {
            if !out.contains(&module.as_str()) && glob(pattern.as_bytes(), modalias.as_bytes()) {
                out.push(module);
            }
        }
        out
    }

    /// The files to load for `module`, dependencies first.
    pub fn files(&self, module: &str) -> Option<&[String]> {
        self.load_order.get(module).map(Vec::as_slice)
    }
}

/// What stage 1 has done with the devices it found, across passes.
#[derive(Debug, Default)]
pub struct Drivers {
    table: Table,
    /// Modaliases already handled: a device seen again costs nothing.
    seen: HashSet<String>,
    /// Module files loaded (or found loaded): shared dependencies load once.
    files: HashSet<String>,
    /// Modules loaded, in order, for the boot log.
    pub loaded: Vec<String>,
    /// (module, why) for the modules that did not load: said once, never fatal here (a
    /// driver for a device the boot does not need may fail; the boot disk's absence is the
    /// error that counts, and it names the drivers that did not load).
    pub failed: Vec<(String, String)>,
}

impl Drivers {
    pub fn new(table: Table) -> Drivers {
        Drivers { table, ..Drivers::default() }
    }

    /// One pass over the devices under `devices` (`/sys/devices`): loads, through `load`,
    /// the drivers of every device not seen before. Returns the modules this pass loaded.
    /// Loading a driver makes new devices (a USB controller's ports, a SCSI host's disks),
    /// so callers pass again until what they wait for appears.
    pub fn scan(&mut self, devices: &Path, load: &mut dyn FnMut(&str) -> Result<(), String>) -> Vec<String> {
        let mut found = Vec::new();
        modaliases(devices, 0, &mut found);
        let mut now = Vec::new();
        for alias in found {
            if !self.seen.insert(alias.clone()) {
                continue;
            }
            let modules: Vec<String> = self.table.modules_for(&alias).into_iter().map(str::to_owned).collect();
            for module in modules {
                if self.loaded.contains(&module) || self.failed.iter().any(|(m, _)| *m == module) {
                    continue;
                }
                let files = self.table.files(&module).map(<[String]>::to_vec).unwrap_or_default();
                let result = if files.is_empty() {
                    Err(format!("{module} is in the alias table but not in {DEP_FILE}"))
                } else {
                    files.iter().try_for_each(|f| {
                        if !self.files.contains(f) {
                            load(f)?;
                            self.files.insert(f.clone());
                        }
                        Ok(())
                    })
                };
                match result {
                    Ok(()) => {
                        self.loaded.push(module.clone());
                        now.push(module);
                    }
                    Err(why) => self.failed.push((module, why)),
                }
            }
        }
        now
    }
}

/// Every `modalias` file's content below `dir`. Symbolic links are not followed: every
/// device is under /sys/devices once, and the links (subsystem, driver, ...) lead in circles.
fn modaliases(dir: &Path, depth: usize, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() && depth < MAX_DEPTH {
            modaliases(&entry.path(), depth + 1, out);
        } else if kind.is_file() && entry.file_name() == "modalias" {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                let text = text.trim();
                if !text.is_empty() {
                    out.push(text.to_owned());
                }
            }
        }
    }
}

/// fnmatch(3) without flags, as kmod matches aliases: `*`, `?` and `[...]` classes (ranges,
/// `!` or `^` to negate); everything else is literal.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was and the text position it currently stands for, to backtrack.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class(pattern, p, text[t]),
            Some(&c) => (c == text[t]).then_some(p + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                t += 1;
            }
            (None, Some((sp, st))) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[at] == b'['`: the position after the
/// class if it matches. An unterminated `[` matches nothing (no kernel alias has one).
fn class(pattern: &[u8], at: usize, c: u8) -> Option<usize> {
    let mut i = at + 1;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let &lo = pattern.get(i)?;
        if lo == b']' && !first {
            break;
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&hi| hi != b']') {
            let hi = pattern[i + 2];
            hit |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
    (hit != negate).then_some(i + 1)
}

/// "/lib/modules/6.12/kernel/drivers/ata/libata.ko.xz" -> "libata" ('-' as '_': the kernel
/// treats them alike, and modules.alias writes '_').
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    normalise(file.split(".ko").next().unwrap_or(file))
}

fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

#[cfg(test)]
mod tests;
