//! One segment file of a partition and its sparse index.
//!
//! A partition is a sequence of segments; each holds the records from its
//! base offset (in the file name) up to the next segment's base. Only the
//! last segment is written to.
//!
//! # Invariants
//!
//! - `len` counts bytes of complete frames only; it is published after the
//!   bytes are written, so a reader that stays below `len` never sees a
//!   partial write.
//! - A segment that is not the last of its partition was fsynced before the
//!   next one was created: after a crash only the last segment can have a
//!   torn tail.
//! - Offsets inside a segment are consecutive from `base`.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::record::{self, FrameReader, Next};
use crate::error::{Result, StorageError};

/// Bytes between two entries of the sparse index: a read seeks to the
/// entry at or before its offset and scans at most this much to reach it.
pub(crate) const INDEX_INTERVAL: u64 = 4096;

/// Size of one sequential read from a segment file.
pub(crate) const READ_CHUNK: usize = 256 * 1024;

/// A segment file, opened once and shared by the writer and all readers
/// (reads use positional I/O, so they need no cursor and no lock).
pub(crate) struct Segment {
    /// Offset of the first record in this segment.
    pub(crate) base: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    /// Bytes of complete records (see the module invariants).
    len: AtomicU64,
    index: RwLock<SparseIndex>,
}

/// Offset -> file position, one entry about every [`INDEX_INTERVAL`] bytes.
/// Entries are relative to the segment (offset minus base, position) and
/// stored as u32 to halve the memory; entries that do not fit are skipped,
/// which only makes reads scan further.
#[derive(Default)]
struct SparseIndex {
    entries: Vec<(u32, u32)>,
    /// True once the entries cover the whole segment. Segments found on
    /// disk at open start incomplete and are indexed on their first read, so
    /// opening a large log does not read all of it.
    complete: bool,
}

impl Segment {
    /// The file name of the segment starting at `base`; zero-padded so that
    /// names sort like offsets.
    pub(crate) fn file_name(base: u64) -> String {
        format!("{base:020}.seg")
    }

    /// The base offset encoded in a segment file name, `None` for any other
    /// file.
    pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
        let digits = name.strip_suffix(".seg")?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    fn open_file(path: &Path, create: bool) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(create)
            .truncate(false)
            .open(path)
            .map_err(|e| StorageError::io(path, e))
    }

    /// Creates an empty segment starting at `base` in `dir`, replacing a
    /// leftover file of the same name (one can only be left by a roll that
    /// failed before any record went into it). The caller fsyncs `dir`.
    pub(crate) fn create(dir: &Path, base: u64) -> Result<Segment> {
        let path = dir.join(Segment::file_name(base));
        let file = Segment::open_file(&path, true)?;
        file.set_len(0).map_err(|e| StorageError::io(&path, e))?;
        Ok(Segment {
            base,
            path,
            file,
            len: AtomicU64::new(0),
            index: RwLock::new(SparseIndex {
                entries: Vec::new(),
                complete: true,
            }),
        })
    }

    /// Opens an existing segment file, trusting its size: for the last
    /// segment of a partition call [`Segment::recover`] next.
    pub(crate) fn open(dir: &Path, base: u64) -> Result<Segment> {
        let path = dir.join(Segment::file_name(base));
        let file = Segment::open_file(&path, false)?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(&path, e))?
            .len();
        Ok(Segment {
            base,
            path,
            file,
            len: AtomicU64::new(len),
            index: RwLock::new(SparseIndex::default()),
        })
    }

    /// Bytes of complete records in the file.
    pub(crate) fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    /// Publishes that the file now holds `len` bytes of complete records.
    /// Called by the writer after the bytes are written.
    pub(crate) fn publish_len(&self, len: u64) {
        self.len.store(len, Ordering::Release);
    }

    fn read_index(&self) -> RwLockReadGuard<'_, SparseIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_index(&self) -> RwLockWriteGuard<'_, SparseIndex> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    fn relative(&self, offset: u64, pos: u64) -> Option<(u32, u32)> {
        let rel = u32::try_from(offset.checked_sub(self.base)?).ok()?;
        Some((rel, u32::try_from(pos).ok()?))
    }

    /// Adds index entries for records just written by the writer, as
    /// (offset, file position) pairs in increasing order.
    pub(crate) fn add_index_entries(&self, entries: &[(u64, u64)]) {
        let mut index = self.write_index();
        index.entries.extend(
            entries
                .iter()
                .filter_map(|&(offset, pos)| self.relative(offset, pos)),
        );
    }

    /// File position at or after which the writer should add the next index
    /// entry, when this segment becomes the one written to.
    pub(crate) fn next_index_pos(&self) -> u64 {
        self.read_index()
            .entries
            .last()
            .map_or(0, |&(_, pos)| u64::from(pos) + INDEX_INTERVAL)
    }

    /// The greatest indexed (offset, file position) at or before `offset`:
    /// where a read of `offset` starts scanning.
    pub(crate) fn lookup(&self, offset: u64) -> Result<(u64, u64)> {
        {
            let index = self.read_index();
            if index.complete {
                return Ok(self.search(&index, offset));
            }
        }
        self.build_index()?;
        Ok(self.search(&self.read_index(), offset))
    }

    fn search(&self, index: &SparseIndex, offset: u64) -> (u64, u64) {
        let rel = offset.saturating_sub(self.base);
        let i = index.entries.partition_point(|&(o, _)| u64::from(o) <= rel);
        match i.checked_sub(1).and_then(|i| index.entries.get(i)) {
            Some(&(o, pos)) => (self.base + u64::from(o), u64::from(pos)),
            None => (self.base, 0),
        }
    }

    /// Scans the whole segment once to build its index (headers and offsets
    /// only; CRCs are checked when records are read).
    fn build_index(&self) -> Result<()> {
        let mut index = self.write_index();
        if index.complete {
            return Ok(());
        }
        let mut buf = Vec::new();
        let mut reader =
            FrameReader::new(&self.file, &self.path, &mut buf, 0, self.len(), READ_CHUNK);
        let mut entries = Vec::new();
        let mut next_pos = 0;
        loop {
            match reader.next_frame()? {
                Next::End => break,
                Next::Torn { pos, reason } => {
                    return Err(StorageError::corrupt(
                        self.path.display().to_string(),
                        format!("{reason} at byte {pos}"),
                    ))
                }
                Next::Frame { pos, body, .. } => {
                    if pos >= next_pos {
                        let offset = record::body_offset(body).unwrap_or(self.base);
                        entries.extend(self.relative(offset, pos));
                        next_pos = pos + INDEX_INTERVAL;
                    }
                }
            }
        }
        index.entries = entries;
        index.complete = true;
        Ok(())
    }

    /// Validates the segment from the start, cuts the file at the first
    /// frame that is incomplete, fails its CRC or breaks the offset
    /// sequence (a write torn by a crash), fsyncs, and builds the index.
    /// Returns the offset after the last good record.
    pub(crate) fn recover(&self) -> Result<u64> {
        let file_len = self.len();
        let mut buf = Vec::new();
        let mut reader =
            FrameReader::new(&self.file, &self.path, &mut buf, 0, file_len, READ_CHUNK);
        let mut entries = Vec::new();
        let mut next_pos = 0;
        let mut expected = self.base;
        let (good_len, problem) = loop {
            match reader.next_frame()? {
                Next::End => break (file_len, None),
                Next::Torn { pos, reason } => break (pos, Some(reason)),
                Next::Frame { pos, crc, body } => {
                    if crc32fast::hash(body) != crc {
                        break (pos, Some("checksum mismatch"));
                    }
                    match record::decode_body(body) {
                        None => break (pos, Some("inconsistent record lengths")),
                        Some(b) if b.offset != expected => break (pos, Some("unexpected offset")),
                        Some(_) => {}
                    }
                    if pos >= next_pos {
                        entries.extend(self.relative(expected, pos));
                        next_pos = pos + INDEX_INTERVAL;
                    }
                    expected += 1;
                }
            }
        };
        if let Some(reason) = problem {
            tracing::warn!(
                segment = %self.path.display(),
                at = good_len,
                dropped_bytes = file_len - good_len,
                reason,
                "dropping torn tail of log segment"
            );
            self.file
                .set_len(good_len)
                .map_err(|e| StorageError::io(&self.path, e))?;
        }
        // What a crashed process left in the page cache counts as appended
        // from now on, so it must reach the disk before anyone relies on it.
        self.file
            .sync_all()
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.publish_len(good_len);
        let mut index = self.write_index();
        index.entries = entries;
        index.complete = true;
        Ok(expected)
    }

    /// Cuts every record at offset `end` or later from this segment and
    /// fsyncs. Only the writer calls it, with no reader of this segment
    /// expected (recovery).
    pub(crate) fn truncate_to(&self, end: u64) -> Result<()> {
        let (_, start) = self.lookup(end)?;
        let len = self.len();
        let mut buf = Vec::new();
        let mut reader = FrameReader::new(&self.file, &self.path, &mut buf, start, len, READ_CHUNK);
        let cut = loop {
            match reader.next_frame()? {
                Next::End => break len,
                Next::Torn { pos, reason } => {
                    return Err(StorageError::corrupt(
                        self.path.display().to_string(),
                        format!("{reason} at byte {pos}"),
                    ))
                }
                Next::Frame { pos, body, .. } => {
                    if record::body_offset(body).is_some_and(|o| o >= end) {
                        break pos;
                    }
                }
            }
        };
        if cut == len {
            return Ok(());
        }
        self.file
            .set_len(cut)
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.file
            .sync_all()
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.publish_len(cut);
        let mut index = self.write_index();
        let base = self.base;
        index
            .entries
            .retain(|&(o, pos)| base + u64::from(o) < end && u64::from(pos) < cut);
        Ok(())
    }
}

/// Fsyncs a directory so that files created, renamed or removed in it stay
/// that way after a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StorageError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_sort_like_offsets_and_parse_back() {
        assert_eq!(Segment::file_name(42), "00000000000000000042.seg");
        assert!(Segment::file_name(9) < Segment::file_name(10));
        assert_eq!(
            Segment::parse_file_name(&Segment::file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(Segment::parse_file_name("42.seg"), None);
        assert_eq!(Segment::parse_file_name("0000000000000000004x.seg"), None);
        assert_eq!(Segment::parse_file_name("00000000000000000042.tmp"), None);
    }
}
