//! The tracker's history on /data: an append-only file of records, each framed so that a
//! power cut during a write costs at most that record and never the file.
//!
//! A frame is `MAGIC (4) | length (4, LE) | CRC-32 of the payload (4, LE) | payload`. The
//! file is only ever appended to and fdatasync'd after each record. On open, frames are read
//! in order; a frame that does not check (a torn write at the end, a sector that rotted in
//! the middle) is skipped by searching for the next magic whose frame checks, so one bad
//! frame never hides the good ones after it. A torn tail is cut off before the next append,
//! so new records never follow garbage.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"CRH1";
const HEADER: usize = 12;
/// Larger than any record the tracker writes; a length above it is damage.
pub const MAX_RECORD: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} the history {}", .path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("a history record of {0} bytes is larger than the {MAX_RECORD} allowed")]
    TooLarge(usize),
}

/// What opening found: the records that checked, and what did not.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Opened {
    pub records: Vec<Vec<u8>>,
    /// Bytes skipped between good frames (damage in the middle).
    pub skipped: u64,
    /// Bytes cut off the end (a write a power cut tore).
    pub torn: u64,
}

#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    file: File,
}

impl Store {
    /// Opens (or creates) the history at `path` and reads every record that checks.
    pub fn open(path: &Path) -> Result<(Store, Opened), StoreError> {
        let err = |what| move |source| StoreError::Io { what, path: path.to_owned(), source };
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(err("cannot open"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(err("cannot read"))?;
        let (opened, good_end) = scan(&bytes);
        if (good_end as u64) < bytes.len() as u64 {
            // Only the tail after the last good frame goes: it holds no record that checks.
            file.set_len(good_end as u64).and_then(|()| file.sync_data()).map_err(err("cannot cut the torn end of"))?;
            file.seek(SeekFrom::End(0)).map_err(err("cannot seek in"))?;
        }
        Ok((Store { path: path.to_owned(), file }, opened))
    }

    /// Replaces the whole history with `records` (compaction): written to a new file,
    /// synced, renamed over the old one and the directory synced, so a cut at any moment
    /// leaves either the old history or the new one, whole.
    pub fn rewrite(&mut self, records: &[Vec<u8>]) -> Result<(), StoreError> {
        let tmp = self.path.with_extension("compacting");
        let err = |what, path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { what, path, source }
        };
        let mut bytes = Vec::new();
        for r in records {
            if r.len() > MAX_RECORD {
                return Err(StoreError::TooLarge(r.len()));
            }
            bytes.extend_from_slice(&frame_of(r));
        }
        let mut f = File::create(&tmp).map_err(err("cannot create", &tmp))?;
        f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(err("cannot write", &tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(err("cannot rename over", &self.path))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(err("cannot sync the directory of", &self.path))?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path).map_err(err("cannot reopen", &self.path))?;
        Ok(())
    }

    /// Appends one record and makes it durable.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        if payload.len() > MAX_RECORD {
            return Err(StoreError::TooLarge(payload.len()));
        }
        // One write: a cut tears at most this frame, which the next open drops.
        self.file.write_all(&frame_of(payload)).and_then(|()| self.file.sync_data()).map_err(|source| StoreError::Io { what: "cannot append to", path: self.path.clone(), source })
    }
}

/// `payload` framed (its length is at most `MAX_RECORD`, checked by the callers).
fn frame_of(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The frame starting at `at`, if it is whole and checks: (payload, its end).
fn frame(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(at..at + HEADER)?;
    if header[..4] != MAGIC {
        return None;
    }
    let len = usize::try_from(u32::from_le_bytes(header[4..8].try_into().ok()?)).ok()?;
    if len > MAX_RECORD {
        return None;
    }
    let crc = u32::from_le_bytes(header[8..12].try_into().ok()?);
    let payload = bytes.get(at + HEADER..at + HEADER + len)?;
    (crc32fast::hash(payload) == crc).then_some((payload, at + HEADER + len))
}

/// Every frame that checks, and where the last one ends.
fn scan(bytes: &[u8]) -> (Opened, usize) {
    let (mut opened, mut at, mut good_end) = (Opened::default(), 0, 0);
    while at < bytes.len() {
        match frame(bytes, at) {
            Some((payload, end)) => {
                opened.records.push(payload.to_vec());
                opened.skipped += (at - good_end) as u64;
                (at, good_end) = (end, end);
            }
            None => at += 1,
        }
    }
    opened.torn = (bytes.len() - good_end) as u64;
    (opened, good_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("{{\"sample\":{i},\"uptime_s\":{}}}", i * 60).into_bytes()).collect()
    }

    fn written(path: &Path, n: usize) -> Vec<u8> {
        let _ = std::fs::remove_file(path);
        let (mut s, _) = Store::open(path).expect("open");
        for r in records(n) {
            s.append(&r).expect("append");
        }
        std::fs::read(path).expect("read")
    }

    #[test]
    fn a_cut_at_any_byte_of_the_last_write_loses_that_record_alone_and_the_next_append_follows_the_good_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history");
        let whole = written(&path, 5);
        let last_start = written(&path, 4).len();
        for cut in last_start..whole.len() {
            std::fs::write(&path, &whole[..cut]).expect("cut");
            let (mut s, opened) = Store::open(&path).expect("open after a cut");
            assert_eq!(opened.records, records(4), "cut at byte {cut}");
            assert_eq!((opened.torn, opened.skipped), ((cut - last_start) as u64, 0), "cut at byte {cut}");
            s.append(b"after").expect("append");
            let (_, again) = Store::open(&path).expect("reopen");
            assert_eq!(again.records.len(), 5, "cut at byte {cut}: the new record follows the four");
            assert_eq!((again.records[4].as_slice(), again.torn), (b"after".as_slice(), 0));
        }
    }

    #[test]
    fn a_damaged_record_in_the_middle_costs_that_record_and_no_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history");
        let mut bytes = written(&path, 6);
        let third = written(&path, 2).len();
        bytes[third + HEADER + 3] ^= 0x40;
        std::fs::write(&path, &bytes).expect("damage");
        let (_, opened) = Store::open(&path).expect("open");
        let mut expected = records(6);
        expected.remove(2);
        assert_eq!(opened.records, expected);
        assert!(opened.skipped > 0 && opened.torn == 0, "{opened:?}");
        assert_eq!(std::fs::read(&path).expect("read").len(), bytes.len(), "damage in the middle is never cut off");
    }

    #[test]
    fn a_rewrite_replaces_the_history_whole_and_appends_follow_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history");
        written(&path, 6);
        let (mut s, opened) = Store::open(&path).expect("open");
        let kept: Vec<Vec<u8>> = opened.records.iter().step_by(2).cloned().collect();
        s.rewrite(&kept).expect("rewrite");
        s.append(b"after").expect("append");
        let (_, again) = Store::open(&path).expect("reopen");
        let mut expected = kept.clone();
        expected.push(b"after".to_vec());
        assert_eq!((again.records, again.torn, again.skipped), (expected, 0, 0));
        assert!(!path.with_extension("compacting").exists(), "the temporary file is left behind");
    }

    #[test]
    fn an_oversized_record_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history");
        let (mut s, _) = Store::open(&path).expect("open");
        assert!(matches!(s.append(&vec![b'x'; MAX_RECORD + 1]), Err(StoreError::TooLarge(_))));
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 0);
    }
}
