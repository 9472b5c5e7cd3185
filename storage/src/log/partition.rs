//! One topic partition: an ordered list of segments, one writer, many
//! readers.
//!
//! # Invariants
//!
//! - Appends, rolls, truncation and retention are serialized by the writer mutex;
//!   readers never take it.
//! - `view.end` is published only after the records below it are written
//!   and their segment's length is published, so a reader bounded by a
//!   snapshot of the view never sees a partial record. The segment list and
//!   the end are published together, so a snapshot never has an end in a
//!   segment it does not list.
//! - `synced <= end`, and every record below `synced` has been fsynced.
//!   Only segments other than the last of the list were fsynced at roll, so
//!   `sync` fsyncs just the last segment.
//! - Lock order: writer, then sync lock, then view.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::record::{self, FrameReader, Next, Record, RecordRef};
use super::segment::{self, Segment, INDEX_INTERVAL, READ_CHUNK};
use super::Retention;
use crate::error::{Result, StorageError};

/// Write buffers larger than this are released after use, so one huge batch
/// does not pin its memory for the life of the partition.
const KEEP_BUFFER_BYTES: usize = 16 << 20;

thread_local! {
    /// Read buffer reused by every read on this thread: reading is the hot
    /// path of every query and should not allocate a chunk per call.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What readers see: the segments and the end offset, replaced together.
#[derive(Clone)]
struct View {
    segments: Arc<Vec<Arc<Segment>>>,
    end: u64,
}

/// State only the (single, serialized) writer touches.
struct Writer {
    active: Arc<Segment>,
    next_offset: u64,
    /// Position in `active` from which the next record gets an index entry.
    next_index_pos: u64,
    /// Encoded frames of the batch being appended, reused between appends.
    buf: Vec<u8>,
    /// Index entries of the batch being appended, reused between appends.
    entries: Vec<(u64, u64)>,
    state: WriterState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WriterState {
    Open,
    /// A write failed and the file could not be cut back: the partition's
    /// file may hold garbage after the last good record. Reopening the log
    /// recovers (the torn tail is dropped).
    Failed,
    /// The topic was deleted; its files are gone.
    Deleted,
}

/// One partition of a topic.
pub(crate) struct Partition {
    topic: String,
    id: u32,
    dir: PathBuf,
    segment_bytes: u64,
    writer: Mutex<Writer>,
    view: Mutex<View>,
    synced: AtomicU64,
    sync_lock: Mutex<()>,
}

fn plain_lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks (a view snapshot, a unit) cannot be left
    // half-updated by a panic, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Partition {
    /// Opens the partition in `dir`: finds its segments (creating the first
    /// one if there is none), drops a torn tail of the last one and fsyncs
    /// it.
    pub(crate) fn open(topic: &str, id: u32, dir: &Path, segment_bytes: u64) -> Result<Partition> {
        let mut bases = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io(dir, e))?;
            if let Some(base) = entry
                .file_name()
                .to_str()
                .and_then(Segment::parse_file_name)
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for &base in &bases {
            segments.push(Arc::new(Segment::open(dir, base)?));
        }
        let end = match segments.last() {
            Some(last) => last.recover()?,
            None => {
                let first = Arc::new(Segment::create(dir, 0)?);
                segment::sync_dir(dir)?;
                segments.push(first);
                0
            }
        };
        let active = match segments.last() {
            Some(last) => Arc::clone(last),
            None => return Err(StorageError::Internal("partition without segments".into())),
        };
        let next_index_pos = active.next_index_pos();
        Ok(Partition {
            topic: topic.to_string(),
            id,
            dir: dir.to_path_buf(),
            segment_bytes,
            writer: Mutex::new(Writer {
                active,
                next_offset: end,
                next_index_pos,
                buf: Vec::new(),
                entries: Vec::new(),
                state: WriterState::Open,
            }),
            view: Mutex::new(View {
                segments: Arc::new(segments),
                end,
            }),
            synced: AtomicU64::new(end),
            sync_lock: Mutex::new(()),
        })
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, Writer>> {
        let writer = self.writer.lock().map_err(|_| {
            StorageError::Internal(format!(
                "log partition {}/{} was left inconsistent by a panic; restart the server",
                self.topic, self.id
            ))
        })?;
        match writer.state {
            WriterState::Open => Ok(writer),
            WriterState::Failed => Err(StorageError::Internal(format!(
                "log partition {}/{} failed a write and could not roll it back; restart the server",
                self.topic, self.id
            ))),
            WriterState::Deleted => Err(StorageError::UnknownTopic {
                topic: self.topic.clone(),
            }),
        }
    }

    fn snapshot(&self) -> View {
        plain_lock(&self.view).clone()
    }

    /// Marks the partition deleted: later appends fail as for an unknown
    /// topic. Waits for an append in progress to finish.
    pub(crate) fn mark_deleted(&self) {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.state = WriterState::Deleted;
    }

    /// The next offset to be written.
    pub(crate) fn end_offset(&self) -> u64 {
        plain_lock(&self.view).end
    }

    /// The first offset still in the log.
    pub(crate) fn start_offset(&self) -> u64 {
        plain_lock(&self.view)
            .segments
            .first()
            .map_or(0, |s| s.base)
    }

    /// Appends `records` with consecutive offsets in one write; returns the
    /// end offset after them.
    pub(crate) fn append(&self, records: &[RecordRef<'_>]) -> Result<u64> {
        let mut size = 0u64;
        for rec in records {
            size += record::frame_len(record::data_len(rec)?) as u64;
        }
        let mut guard = self.lock_writer()?;
        let w = &mut *guard;
        if records.is_empty() {
            return Ok(w.next_offset);
        }
        if w.active.len() > 0 && w.active.len().saturating_add(size) > self.segment_bytes {
            self.roll(w)?;
        }
        let seg_start = w.active.len();
        w.buf.clear();
        w.entries.clear();
        let mut offset = w.next_offset;
        for rec in records {
            let pos = seg_start + w.buf.len() as u64;
            if pos >= w.next_index_pos {
                w.entries.push((offset, pos));
                w.next_index_pos = pos + INDEX_INTERVAL;
            }
            record::encode(&mut w.buf, offset, rec);
            offset += 1;
        }
        if let Err(e) = write_all(&w.active.file, &w.buf) {
            // Cut off whatever part of the batch reached the file so the
            // next append does not land after garbage.
            if w.active.file.set_len(seg_start).is_err() {
                w.state = WriterState::Failed;
            }
            return Err(StorageError::io(&w.active.path, e));
        }
        w.active.publish_len(seg_start + w.buf.len() as u64);
        if !w.entries.is_empty() {
            w.active.add_index_entries(&w.entries);
        }
        if w.buf.capacity() > KEEP_BUFFER_BYTES {
            w.buf = Vec::new();
        }
        w.next_offset = offset;
        plain_lock(&self.view).end = offset;
        Ok(offset)
    }

    /// Seals the active segment (fsync) and starts a new one at the next
    /// offset.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        w.active
            .file
            .sync_data()
            .map_err(|e| StorageError::io(&w.active.path, e))?;
        let next = Arc::new(Segment::create(&self.dir, w.next_offset)?);
        segment::sync_dir(&self.dir)?;
        {
            let mut view = plain_lock(&self.view);
            let mut segments = Vec::with_capacity(view.segments.len() + 1);
            segments.extend(view.segments.iter().cloned());
            segments.push(Arc::clone(&next));
            view.segments = Arc::new(segments);
        }
        tracing::debug!(topic = %self.topic, partition = self.id, base = next.base, "rolled log segment");
        w.active = next;
        w.next_index_pos = 0;
        Ok(())
    }

    /// Deletes the oldest segments that `retention` no longer keeps: by age
    /// (the segment's last append, its file's modification time, is more
    /// than `retention.ms` before `now`) or by size (the partition stays
    /// over `retention.bytes` without it), stopping at the first segment
    /// kept. The active segment and any segment holding records at or past
    /// `below` (not yet committed) are never deleted. Returns the number of
    /// records deleted.
    ///
    /// Files go oldest first, so a crash midway leaves a shorter prefix
    /// deleted, never a hole.
    pub(crate) fn apply_retention(
        &self,
        retention: Retention,
        now: SystemTime,
        below: u64,
    ) -> Result<u64> {
        if retention == Retention::default() {
            return Ok(0);
        }
        let _writer = self.lock_writer()?;
        let old = self.snapshot();
        let mut total: u64 = old.segments.iter().map(|s| s.len()).sum();
        let mut dropped = 0;
        for pair in old.segments.windows(2) {
            let (seg, next_base) = (&pair[0], pair[1].base);
            if next_base > below {
                break;
            }
            let too_big = retention
                .bytes
                .is_some_and(|limit| total.saturating_sub(seg.len()) >= limit);
            let too_old = match retention.ms {
                Some(ms) => {
                    let modified = seg
                        .file
                        .metadata()
                        .and_then(|m| m.modified())
                        .map_err(|e| StorageError::io(&seg.path, e))?;
                    modified + Duration::from_millis(ms) < now
                }
                None => false,
            };
            if !too_big && !too_old {
                break;
            }
            total -= seg.len();
            dropped += 1;
        }
        if dropped == 0 {
            return Ok(0);
        }
        let start = old.segments[dropped].base;
        {
            let mut view = plain_lock(&self.view);
            view.segments = Arc::new(view.segments[dropped..].to_vec());
        }
        // Readers that took the old view finish on the unlinked files.
        for seg in &old.segments[..dropped] {
            std::fs::remove_file(&seg.path).map_err(|e| StorageError::io(&seg.path, e))?;
        }
        segment::sync_dir(&self.dir)?;
        let deleted = start - old.segments[0].base;
        tracing::info!(
            topic = %self.topic,
            partition = self.id,
            segments = dropped,
            records = deleted,
            start,
            "retention deleted old log segments"
        );
        Ok(deleted)
    }

    /// Makes every record below `upto` (clamped to the end) durable,
    /// fsyncing at most once for all callers that wait meanwhile.
    pub(crate) fn sync(&self, upto: u64) -> Result<bool> {
        if self.synced.load(Ordering::Acquire) >= upto {
            return Ok(false);
        }
        let _sync = plain_lock(&self.sync_lock);
        let synced = self.synced.load(Ordering::Acquire);
        if synced >= upto {
            return Ok(false);
        }
        // Sync everything appended so far, not just up to `upto`: the
        // sessions that queued behind this one are covered by this fsync.
        let view = self.snapshot();
        if view.end <= synced {
            return Ok(false);
        }
        if let Some(last) = view.segments.last() {
            last.file
                .sync_data()
                .map_err(|e| StorageError::io(&last.path, e))?;
        }
        self.synced.fetch_max(view.end, Ordering::AcqRel);
        Ok(true)
    }

    /// Appends to `out` up to `max_records` records with offsets `from` or
    /// later (from the start offset if `from` is before it).
    pub(crate) fn read(&self, from: u64, max_records: usize, out: &mut Vec<Record>) -> Result<()> {
        if max_records == 0 {
            return Ok(());
        }
        let view = self.snapshot();
        if from >= view.end {
            return Ok(());
        }
        READ_BUF.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                let result = read_view(&view, from, max_records, out, &mut buf);
                if buf.len() > 4 * READ_CHUNK {
                    *buf = Vec::new();
                }
                result
            }
            Err(_) => read_view(&view, from, max_records, out, &mut Vec::new()),
        })
    }

    /// Drops every record at `end` or later; a no-op if `end` is at or past
    /// the end. Later segments are removed newest first, so a crash midway
    /// leaves a contiguous log that a repeated truncate finishes.
    pub(crate) fn truncate(&self, end: u64) -> Result<()> {
        let mut guard = self.lock_writer()?;
        let w = &mut *guard;
        if end >= w.next_offset {
            return Ok(());
        }
        let old = self.snapshot();
        let keep = old.segments.partition_point(|s| s.base < end);
        let mut removed = 0usize;
        for seg in old.segments[keep..].iter().rev() {
            std::fs::remove_file(&seg.path).map_err(|e| StorageError::io(&seg.path, e))?;
            removed += 1;
        }
        let mut segments: Vec<Arc<Segment>> = old.segments[..keep].to_vec();
        match segments.last() {
            Some(last) => last.truncate_to(end)?,
            None => segments.push(Arc::new(Segment::create(&self.dir, end)?)),
        }
        if removed > 0 || keep == 0 {
            segment::sync_dir(&self.dir)?;
        }
        let active = match segments.last() {
            Some(last) => Arc::clone(last),
            None => return Err(StorageError::Internal("partition without segments".into())),
        };
        tracing::info!(
            topic = %self.topic,
            partition = self.id,
            from = w.next_offset,
            to = end,
            "truncated log partition"
        );
        w.next_index_pos = active.next_index_pos();
        w.active = active;
        w.next_offset = end;
        {
            let mut view = plain_lock(&self.view);
            view.segments = Arc::new(segments);
            view.end = end;
        }
        // After the view: a sync still working on the old view finishes
        // first, and its result is lowered here.
        let _sync = plain_lock(&self.sync_lock);
        self.synced.fetch_min(end, Ordering::AcqRel);
        Ok(())
    }
}

/// Writes a batch; tests can make it fail partway (see [`faults`]).
fn write_all(file: &std::fs::File, buf: &[u8]) -> std::io::Result<()> {
    #[cfg(test)]
    if let Some(cut) = faults::take_write_failure() {
        std::io::Write::write_all(&mut &*file, &buf[..cut.min(buf.len())])?;
        return Err(std::io::ErrorKind::StorageFull.into());
    }
    std::io::Write::write_all(&mut &*file, buf)
}

/// The read loop over a snapshot of the segments.
fn read_view(
    view: &View,
    from: u64,
    max_records: usize,
    out: &mut Vec<Record>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let segments = &view.segments;
    let from = segments.first().map_or(from, |s| from.max(s.base));
    let first = segments
        .partition_point(|s| s.base <= from)
        .saturating_sub(1);
    let mut taken = 0usize;
    for seg in segments.iter().skip(first) {
        // Load the length before the index lookup: everything below the
        // snapshot's end in this segment is within it.
        let limit = seg.len();
        let (mut expected, start) = seg.lookup(from)?;
        let mut reader = FrameReader::new(&seg.file, &seg.path, buf, start, limit, READ_CHUNK);
        loop {
            let (pos, crc, body) = match reader.next_frame()? {
                Next::End => break,
                Next::Torn { pos, reason } => return Err(corrupt(seg, pos, reason)),
                Next::Frame { pos, crc, body } => (pos, crc, body),
            };
            let offset = record::body_offset(body).unwrap_or(u64::MAX);
            if offset != expected {
                return Err(corrupt(seg, pos, "unexpected offset"));
            }
            expected += 1;
            if offset >= view.end {
                return Ok(());
            }
            if offset < from {
                continue;
            }
            if crc32fast::hash(body) != crc {
                return Err(corrupt(seg, pos, "checksum mismatch"));
            }
            let Some(decoded) = record::decode_body(body) else {
                return Err(corrupt(seg, pos, "inconsistent record lengths"));
            };
            out.push(decoded.to_record());
            taken += 1;
            if taken == max_records {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn corrupt(seg: &Segment, pos: u64, reason: &str) -> StorageError {
    StorageError::corrupt(
        seg.path.display().to_string(),
        format!("{reason} at byte {pos}"),
    )
}

/// Injected write failures for tests: the next append on this thread
/// writes only the first `n` bytes of its batch, then fails as on a full
/// disk.
#[cfg(test)]
pub(crate) mod faults {
    use std::cell::Cell;

    thread_local! {
        static FAIL_NEXT_WRITE: Cell<Option<usize>> = const { Cell::new(None) };
    }

    pub(crate) fn fail_next_write(after_bytes: usize) {
        FAIL_NEXT_WRITE.with(|c| c.set(Some(after_bytes)));
    }

    pub(super) fn take_write_failure() -> Option<usize> {
        FAIL_NEXT_WRITE.with(Cell::take)
    }
}
