//! Records and their on-disk framing.
//!
//! A record on disk is a frame: an 8-byte header (body length and CRC32 of
//! the body, both little-endian u32) followed by the body:
//!
//! ```text
//! len:u32 crc:u32 | offset:u64 timestamp:i64 key_len:u32 value_len:u32 key value
//! ```
//!
//! A length of `u32::MAX` means the key (or value) is absent; an absent
//! value is a tombstone. The length in front lets a reader skip a record
//! without decoding it; the CRC lets recovery tell a torn write from data.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::error::{Result, StorageError};

/// Bytes of the frame header (length and CRC).
pub(crate) const HEADER_LEN: usize = 8;
/// Bytes of the body before the key and value.
const BODY_FIXED_LEN: usize = 24;
/// Length marking an absent key or value.
const ABSENT: u32 = u32::MAX;
/// Largest body a frame may have. Anything larger in a header is garbage,
/// and refusing it keeps a corrupt length from triggering a huge allocation.
const MAX_BODY_LEN: usize = 1 << 30;
/// Largest key plus value an appended record may carry.
pub(crate) const MAX_RECORD_DATA: usize = MAX_BODY_LEN - BODY_FIXED_LEN;

/// A record to append, borrowed from the caller so that appending does not
/// copy keys and values twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Event or ingestion time in ms since the epoch (`ROWTIME`).
    pub timestamp: i64,
    /// The record key; partitioning and compaction go by it.
    pub key: Option<&'a [u8]>,
    /// The payload; `None` is a tombstone (a delete of `key` in a changelog).
    pub value: Option<&'a [u8]>,
}

/// A record read back from the log, with the offset it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in its partition; consecutive within a partition.
    pub offset: u64,
    /// Event or ingestion time in ms since the epoch (`ROWTIME`).
    pub timestamp: i64,
    /// The record key.
    pub key: Option<Vec<u8>>,
    /// The payload; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
}

impl Record {
    /// Borrows this record in the form [`crate::Log::append`] takes, e.g. to
    /// copy records from one topic to another.
    pub fn as_record_ref(&self) -> RecordRef<'_> {
        RecordRef {
            timestamp: self.timestamp,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
        }
    }
}

/// Size of the key and value of `record`, checked against the format's limit.
pub(crate) fn data_len(record: &RecordRef<'_>) -> Result<usize> {
    let bytes = record.key.map_or(0, <[u8]>::len) + record.value.map_or(0, <[u8]>::len);
    if bytes > MAX_RECORD_DATA {
        return Err(StorageError::RecordTooLarge {
            bytes: bytes as u64,
            limit: MAX_RECORD_DATA as u64,
        });
    }
    Ok(bytes)
}

/// Size of the whole frame of a record with `data_len` bytes of key and value.
pub(crate) fn frame_len(data_len: usize) -> usize {
    HEADER_LEN + BODY_FIXED_LEN + data_len
}

fn opt_len(bytes: Option<&[u8]>) -> u32 {
    // Lengths were checked by `data_len`, so they fit below `ABSENT`.
    bytes.map_or(ABSENT, |b| u32::try_from(b.len()).unwrap_or(ABSENT - 1))
}

/// Appends the frame of `record` at `offset` to `buf`.
///
/// The caller has checked the record with [`data_len`].
pub(crate) fn encode(buf: &mut Vec<u8>, offset: u64, record: &RecordRef<'_>) {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER_LEN]);
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&record.timestamp.to_le_bytes());
    buf.extend_from_slice(&opt_len(record.key).to_le_bytes());
    buf.extend_from_slice(&opt_len(record.value).to_le_bytes());
    if let Some(key) = record.key {
        buf.extend_from_slice(key);
    }
    if let Some(value) = record.value {
        buf.extend_from_slice(value);
    }
    let body = &buf[start + HEADER_LEN..];
    let crc = crc32fast::hash(body);
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A decoded body, borrowing the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Body<'a> {
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

impl Body<'_> {
    pub(crate) fn to_record(self) -> Record {
        Record {
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
        }
    }
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let arr: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(arr))
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let arr: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(arr))
}

/// The offset stored in a body, without decoding the rest; how records
/// before the requested offset are skipped cheaply.
pub(crate) fn body_offset(body: &[u8]) -> Option<u64> {
    le_u64(body, 0)
}

/// Decodes a body; `None` if its lengths do not add up to its size.
pub(crate) fn decode_body(body: &[u8]) -> Option<Body<'_>> {
    let offset = le_u64(body, 0)?;
    let timestamp = le_u64(body, 8)? as i64;
    let key_len = le_u32(body, 16)?;
    let value_len = le_u32(body, 20)?;
    let mut at = BODY_FIXED_LEN;
    let mut take = |len: u32| -> Option<Option<&[u8]>> {
        if len == ABSENT {
            return Some(None);
        }
        let len = usize::try_from(len).ok()?;
        let part = body.get(at..at.checked_add(len)?)?;
        at += len;
        Some(Some(part))
    };
    let key = take(key_len)?;
    let value = take(value_len)?;
    if at != body.len() {
        return None;
    }
    Some(Body {
        offset,
        timestamp,
        key,
        value,
    })
}

/// What a [`FrameReader`] found at its position.
pub(crate) enum Next<'b> {
    /// A complete frame (the CRC is not checked yet).
    Frame {
        /// File position of the frame's header.
        pos: u64,
        /// CRC stored in the header.
        crc: u32,
        /// The body bytes.
        body: &'b [u8],
    },
    /// The region ended exactly at a frame boundary.
    End,
    /// The bytes at `pos` are not a complete frame: a torn write at the
    /// tail, or corruption anywhere else.
    Torn {
        /// File position where the bad frame starts.
        pos: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Reads frames sequentially from a region of a segment file in large
/// chunks, so a scan costs one `pread` per chunk instead of one per record.
pub(crate) struct FrameReader<'a> {
    file: &'a File,
    path: &'a Path,
    buf: &'a mut Vec<u8>,
    /// File position of `buf[0]`.
    buf_pos: u64,
    /// Next unread byte in `buf`.
    cur: usize,
    /// Bytes of `buf` holding file data.
    filled: usize,
    /// End of the region to read (exclusive).
    limit: u64,
    chunk: usize,
}

impl<'a> FrameReader<'a> {
    /// A reader of `[start, limit)` of `file` using `buf` (reused between
    /// calls by the caller) with reads of `chunk` bytes.
    pub(crate) fn new(
        file: &'a File,
        path: &'a Path,
        buf: &'a mut Vec<u8>,
        start: u64,
        limit: u64,
        chunk: usize,
    ) -> FrameReader<'a> {
        FrameReader {
            file,
            path,
            buf,
            buf_pos: start,
            cur: 0,
            filled: 0,
            limit,
            chunk,
        }
    }

    /// File position of the next frame.
    pub(crate) fn position(&self) -> u64 {
        self.buf_pos + self.cur as u64
    }

    /// Makes at least `need` bytes available at `cur` unless the region
    /// ends first; moves the unread tail to the front and reads one chunk.
    fn fill(&mut self, need: usize) -> Result<()> {
        if self.filled - self.cur >= need {
            return Ok(());
        }
        let pos = self.position();
        let left = usize::try_from(self.limit.saturating_sub(pos)).unwrap_or(usize::MAX);
        let want = need.max(self.chunk).min(left);
        self.buf.copy_within(self.cur..self.filled, 0);
        self.filled -= self.cur;
        self.cur = 0;
        self.buf_pos = pos;
        if want <= self.filled {
            return Ok(());
        }
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        let read_at = pos + self.filled as u64;
        read_exact_at(self.file, &mut self.buf[self.filled..want], read_at)
            .map_err(|e| StorageError::io(self.path, e))?;
        self.filled = want;
        Ok(())
    }

    /// The next frame, the end of the region, or a torn frame.
    pub(crate) fn next_frame(&mut self) -> Result<Next<'_>> {
        let pos = self.position();
        if pos >= self.limit {
            return Ok(Next::End);
        }
        self.fill(HEADER_LEN)?;
        if self.filled - self.cur < HEADER_LEN {
            return Ok(Next::Torn {
                pos,
                reason: "incomplete record header",
            });
        }
        let len = le_u32(self.buf, self.cur).unwrap_or(0);
        let crc = le_u32(self.buf, self.cur + 4).unwrap_or(0);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if !(BODY_FIXED_LEN..=MAX_BODY_LEN).contains(&len) {
            return Ok(Next::Torn {
                pos,
                reason: "impossible record length",
            });
        }
        self.fill(HEADER_LEN + len)?;
        if self.filled - self.cur < HEADER_LEN + len {
            return Ok(Next::Torn {
                pos,
                reason: "incomplete record",
            });
        }
        let start = self.cur + HEADER_LEN;
        self.cur = start + len;
        Ok(Next::Frame {
            pos,
            crc,
            body: &self.buf[start..start + len],
        })
    }
}

/// Reads exactly `buf.len()` bytes at `pos` without moving a shared file
/// cursor, so many readers can use one file handle at once.
#[cfg(unix)]
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, pos)
}

/// Reads exactly `buf.len()` bytes at `pos`.
#[cfg(windows)]
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, pos) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encode_then_decode_keeps_absent_and_empty_apart() {
        let mut buf = Vec::new();
        let rec = RecordRef {
            timestamp: -5,
            key: Some(b""),
            value: None,
        };
        encode(&mut buf, 9, &rec);
        assert_eq!(buf.len(), frame_len(0));
        let body = &buf[HEADER_LEN..];
        assert_eq!(crc32fast::hash(body), le_u32(&buf, 4).unwrap());
        let decoded = decode_body(body).unwrap();
        assert_eq!(decoded.offset, 9);
        assert_eq!(decoded.timestamp, -5);
        assert_eq!(decoded.key, Some(b"".as_slice()));
        assert_eq!(decoded.value, None);
    }

    #[test]
    fn inconsistent_lengths_do_not_decode() {
        let mut buf = Vec::new();
        let rec = RecordRef {
            timestamp: 0,
            key: Some(b"abc"),
            value: Some(b"d"),
        };
        encode(&mut buf, 0, &rec);
        let body = &buf[HEADER_LEN..];
        assert!(decode_body(&body[..body.len() - 1]).is_none());
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(decode_body(&longer).is_none());
    }

    proptest! {
        #[test]
        fn frames_round_trip(
            offset: u64,
            timestamp: i64,
            key in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
            value in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        ) {
            let rec = RecordRef { timestamp, key: key.as_deref(), value: value.as_deref() };
            let mut buf = Vec::new();
            encode(&mut buf, offset, &rec);
            prop_assert_eq!(buf.len(), frame_len(data_len(&rec).unwrap()));
            let body = decode_body(&buf[HEADER_LEN..]).unwrap();
            prop_assert_eq!(body.to_record(), Record { offset, timestamp, key, value });
        }
    }
}
