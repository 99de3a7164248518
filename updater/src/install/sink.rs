//! The bundle reader's [`Sink`] that writes the target slot: the policy check, the slot
//! marked bad before its first byte changes, each payload streamed to its place.

use super::{InstallError, Progress, SlotTarget, Stage};
use crate::bundle::{BundleError, Manifest, Payload, PayloadKind, Policy, Signed, Sink};
use crate::grubenv;
use std::io::{self, Read};
use std::path::Path;

pub(super) struct SlotWriter<'a> {
    target: &'a SlotTarget,
    policy: &'a Policy,
    pub(super) progress: &'a mut dyn FnMut(Progress),
    signed: Option<Signed>,
    /// The first failure of the slot's own devices (the reader only sees an `io::Error`).
    error: Option<InstallError>,
    done: u64,
    total: u64,
}

impl<'a> SlotWriter<'a> {
    pub(super) fn new(target: &'a SlotTarget, policy: &'a Policy, progress: &'a mut dyn FnMut(Progress)) -> SlotWriter<'a> {
        SlotWriter { target, policy, progress, signed: None, error: None, done: 0, total: 0 }
    }

    pub(super) fn take_error(&mut self) -> Option<InstallError> {
        self.error.take()
    }

    /// The verified manifest bytes, once every payload was written and checked.
    pub(super) fn finish(&mut self) -> Result<Signed, InstallError> {
        self.signed.take().ok_or(InstallError::Bundle(BundleError::Truncated("manifest".into())))
    }

    /// Keeps the cause and gives the reader an `io::Error` to stop on.
    fn fail(&mut self, e: InstallError) -> io::Error {
        let text = e.to_string();
        self.error.get_or_insert(e);
        io::Error::other(text)
    }

    fn write_to(&mut self, path: &Path, create: bool, data: &mut dyn Read) -> io::Result<()> {
        let opened = std::fs::OpenOptions::new().write(true).create(create).truncate(create).open(path);
        let mut f = opened.map_err(|e| self.fail(InstallError::Io { what: "cannot open", path: path.to_owned(), source: e }))?;
        let mut counted = Counted { inner: data, done: &mut self.done, total: self.total, progress: &mut *self.progress };
        crate::bundle::reader::copy(&mut counted, &mut f).and_then(|()| f.sync_all()).map_err(|e| self.fail(InstallError::Io { what: "cannot write", path: path.to_owned(), source: e }))
    }
}

impl Sink for SlotWriter<'_> {
    fn manifest(&mut self, m: &Manifest, signed: &Signed) -> Result<(), BundleError> {
        self.policy.check(m).map_err(BundleError::Refused)?;
        self.total = m.payloads.iter().map(|p| p.size).sum();
        // From here on the slot is being changed: it must not boot until step 6.
        let grub = self.target.grub_dir();
        let mut env = grubenv::read_pair(&grub).env;
        env.mark_bad(self.target.slot);
        grubenv::write_pair(&grub, &env).map_err(|e| BundleError::Sink { kind: PayloadKind::Root, source: io::Error::other(self.fail(e.into())) })?;
        self.signed = Some(signed.clone());
        // Marked bad, nothing written yet.
        (self.progress)(Progress { stage: Stage::Writing, done: 0, total: self.total, step: None });
        Ok(())
    }

    fn payload(&mut self, p: &Payload, data: &mut dyn Read) -> io::Result<()> {
        let target = self.target;
        match p.kind {
            PayloadKind::Root => self.write_to(&target.root, false, data),
            PayloadKind::Verity => self.write_to(&target.verity, false, data),
            PayloadKind::Vmlinuz | PayloadKind::Initrd => {
                let dir = target.slot_dir();
                std::fs::create_dir_all(&dir).map_err(|e| self.fail(InstallError::Io { what: "cannot create", path: dir.clone(), source: e }))?;
                self.write_to(&dir.join(format!("{}.new", p.kind.entry())), true, data)
            }
        }
    }
}

/// Reports progress every MiB.
struct Counted<'a, 'p> {
    inner: &'a mut dyn Read,
    done: &'a mut u64,
    total: u64,
    progress: &'a mut (dyn FnMut(Progress) + 'p),
}

impl Read for Counted<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let before = *self.done >> 20;
        *self.done += n as u64;
        if *self.done >> 20 != before || *self.done == self.total {
            (self.progress)(Progress { stage: Stage::Writing, done: *self.done, total: self.total, step: None });
        }
        Ok(n)
    }
}
