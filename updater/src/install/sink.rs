//! The bundle reader's [`Sink`] that writes the target slot: the policy check, the slot
//! marked bad before its first byte changes, each payload streamed to its place.

use super::{InstallError, Progress, SlotTarget, Stage};
use crate::bundle::{BundleError, Manifest, Payload, PayloadKind, Policy, Signed, Sink};
use crate::grubenv;
use crate::verity::{self, VerityParams};
use std::io::{self, Read, Write};
use std::path::Path;

pub(super) struct SlotWriter<'a> {
    target: &'a SlotTarget,
    policy: &'a Policy,
    pub(super) progress: &'a mut dyn FnMut(Progress),
    signed: Option<Signed>,
    salt: [u8; 32],
    /// The dm-verity root hash computed over the root image as it streamed past.
    pub(super) root_hash: Option<String>,
    /// The first failure of the slot's own devices (the reader only sees an `io::Error`).
    error: Option<InstallError>,
    done: u64,
    total: u64,
}

impl<'a> SlotWriter<'a> {
    pub(super) fn new(target: &'a SlotTarget, policy: &'a Policy, progress: &'a mut dyn FnMut(Progress)) -> SlotWriter<'a> {
        SlotWriter { target, policy, progress, signed: None, salt: [0; 32], root_hash: None, error: None, done: 0, total: 0 }
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

    fn write_to(&mut self, path: &Path, create: bool, p: &Payload, data: &mut dyn Read) -> io::Result<()> {
        let opened = std::fs::OpenOptions::new().write(true).create(create).truncate(create).open(path);
        let mut f = opened.map_err(|e| self.fail(InstallError::Io { what: "cannot open", path: path.to_owned(), source: e }))?;
        let mut counted = Counted { inner: data, done: &mut self.done, total: self.total, progress: &mut *self.progress };
        let result = if p.kind == PayloadKind::Root {
            // Hash the tree over exactly what is written: the signed root hash must come out.
            let params = VerityParams { salt: self.salt, uuid: [0; 16] };
            let mut tee = Tee { inner: &mut counted, out: &mut f };
            match verity::build(&mut tee, p.size, &params, &mut io::sink()) {
                Ok(info) => {
                    self.root_hash = Some(info.root_hash);
                    Ok(())
                }
                // The stream ended early: the reader reports the truncation.
                Err(verity::VerityError::Read(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(()),
                Err(e) => Err(io::Error::other(e)),
            }
        } else {
            io::copy(&mut counted, &mut f).map(drop)
        };
        result.and_then(|()| f.sync_all()).map_err(|e| self.fail(InstallError::Io { what: "cannot write", path: path.to_owned(), source: e }))
    }
}

impl Sink for SlotWriter<'_> {
    fn manifest(&mut self, m: &Manifest, signed: &Signed) -> Result<(), BundleError> {
        self.policy.check(m).map_err(BundleError::Refused)?;
        hex::decode_to_slice(&m.verity.salt, &mut self.salt).map_err(|_| BundleError::Manifest(crate::bundle::manifest::ManifestError::Hex { field: "verity salt", len: 64 }))?;
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
            PayloadKind::Root => self.write_to(&target.root, false, p, data),
            PayloadKind::Verity => self.write_to(&target.verity, false, p, data),
            PayloadKind::Vmlinuz | PayloadKind::Initrd => {
                let dir = target.slot_dir();
                std::fs::create_dir_all(&dir).map_err(|e| self.fail(InstallError::Io { what: "cannot create", path: dir.clone(), source: e }))?;
                self.write_to(&dir.join(format!("{}.new", p.kind.entry())), true, p, data)
            }
        }
    }
}

/// Copies what is read to `out` as well.
struct Tee<'a, R, W> {
    inner: &'a mut R,
    out: &'a mut W,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
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
