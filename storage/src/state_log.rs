//! A query's operator state, or a materialized table's rows, in the store
//! as a log of commits, not as one store key per entry.
//!
//! sled pays several microseconds per key written, and a windowed query
//! changes thousands of groups per commit: written one key each, the state
//! alone took half of a windowed query's time, and the table's rows as much
//! again. Here a commit's state writes
//! are serialized back to back and stored as a few chunks of
//! [`CHUNK_BYTES`] under one sequence number, in the same atomic batch as
//! the query's outputs and offsets. When the log has grown well past the
//! live state, a commit writes a snapshot instead: every live entry, as the
//! new first sequence, with the older chunks deleted in the same batch, so
//! the log stays proportional to the live state.
//!
//! Keys (under [`keys::state_prefix`] or [`keys::table_prefix`]):
//! `0xff seq:u64be chunk:u32be`. An entry's own key never starts with
//! `0xff` (pipelines prefix state keys with an operator index; a table's
//! keys start with a type tag below it), so entries stored one key each by
//! an older rill are read as a base under the log and dropped by the first
//! snapshot.
//!
//! Chunk bytes: writes back to back, each `key_len:u32le key tag:u8
//! [value_len:u32le value]` (tag 1 puts, 0 deletes); a write may span
//! chunks.
//!
//! # Invariants
//! - [`StateLog::open`] returns exactly the entries of the last commit that
//!   landed: a commit's chunks are in one batch with its offsets.
//! - What is stored (the last snapshot and the commits since) stays under
//!   three times the last snapshot plus [`MIN_LOG_BYTES`] and one commit,
//!   so a restart reads about three times the live state at most.

use std::collections::BTreeMap;

use crate::error::{Result, StorageError};
use crate::{keys, Store, WriteBatch};

/// A state write: the entry's key and its value, `None` deleting it.
pub type StateWrite = (Vec<u8>, Option<Vec<u8>>);

/// Live state entries by key.
pub type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// Largest chunk value. sled writes a node bigger than a quarter of its
/// 512 KiB segment to a file of its own; a leaf of 16 such chunks stays
/// below that.
pub const CHUNK_BYTES: usize = 4096;

/// The log may grow this far past three snapshots' size before a
/// snapshot replaces it, so that small states do not snapshot every commit.
pub const MIN_LOG_BYTES: u64 = 16 << 10;

/// How much of a snapshot is serialized before its chunks go into the
/// batch.
const SNAPSHOT_BUF_BYTES: usize = 16 * CHUNK_BYTES;

const LOG_TAG: u8 = 0xff;
const PUT: u8 = 1;
const DELETE: u8 = 0;

/// The log of one query's state or one table's rows (see the module docs).
#[derive(Debug)]
pub struct StateLog {
    /// The store prefix it lives under.
    prefix: Vec<u8>,
    /// What it holds, for errors: "state of query q1".
    what: String,
    /// Sequence number of the next commit.
    next_seq: u64,
    /// Bytes stored: the last snapshot and the commits since.
    logged: u64,
    /// Bytes of the last snapshot (at open: what one of the state would
    /// take).
    snapshot: u64,
    buf: Vec<u8>,
}

impl StateLog {
    /// Reads the state of `query` as of its last commit: the log, and every
    /// live entry in key order.
    pub fn open(store: &Store, query: &str) -> Result<(StateLog, Entries)> {
        Self::open_under(
            store,
            keys::state_prefix(query),
            format!("state of query {query}"),
        )
    }

    /// Reads the rows of `table` as of its last commit, as [`StateLog::open`]
    /// does a query's state.
    pub fn open_table(store: &Store, table: &str) -> Result<(StateLog, Entries)> {
        Self::open_under(
            store,
            keys::table_prefix(table),
            format!("rows of table {table}"),
        )
    }

    fn open_under(store: &Store, prefix: Vec<u8>, what: String) -> Result<(StateLog, Entries)> {
        let mut entries = BTreeMap::new();
        let mut log = StateLog {
            prefix: prefix.clone(),
            what,
            next_seq: 0,
            logged: 0,
            snapshot: 0,
            buf: Vec::new(),
        };
        // One sequence's chunks, gathered until the next sequence starts.
        let mut current: Option<u64> = None;
        let mut bytes = Vec::new();
        for item in store.scan_prefix(&prefix) {
            let (key, value) = item?;
            let own = &key[prefix.len()..];
            let Some((&LOG_TAG, pos)) = own.split_first() else {
                // Stored one key each by an older rill.
                log.logged += (own.len() + value.len()) as u64;
                entries.insert(own.to_vec(), value);
                continue;
            };
            let (seq, chunk) = log.position(pos)?;
            if current != Some(seq) {
                if current.is_some() {
                    log.replay(&bytes, &mut entries)?;
                    bytes.clear();
                }
                if chunk != 0 {
                    return Err(log.corrupt(format!("sequence {seq} starts at chunk {chunk}")));
                }
                current = Some(seq);
                log.next_seq = seq + 1;
            }
            bytes.extend_from_slice(&value);
        }
        if current.is_some() {
            log.replay(&bytes, &mut entries)?;
        }
        // What a snapshot of it would take.
        log.snapshot = entries
            .iter()
            .map(|(k, v)| (9 + k.len() + v.len()) as u64)
            .sum();
        Ok((log, entries))
    }

    fn corrupt(&self, detail: String) -> StorageError {
        StorageError::corrupt(format!("the log of the {}", self.what), detail)
    }

    fn position(&self, pos: &[u8]) -> Result<(u64, u32)> {
        let parsed = pos.split_first_chunk::<8>().and_then(|(seq, rest)| {
            let chunk: [u8; 4] = rest.try_into().ok()?;
            Some((u64::from_be_bytes(*seq), u32::from_be_bytes(chunk)))
        });
        parsed.ok_or_else(|| self.corrupt(format!("bad chunk key {pos:?}")))
    }

    /// Applies one sequence's writes to `entries`.
    fn replay(&mut self, mut bytes: &[u8], entries: &mut Entries) -> Result<()> {
        self.logged += bytes.len() as u64;
        while !bytes.is_empty() {
            let key = take_bytes(&mut bytes).ok_or_else(|| self.corrupt("truncated key".into()))?;
            match bytes.split_first() {
                Some((&PUT, rest)) => {
                    bytes = rest;
                    let value = take_bytes(&mut bytes)
                        .ok_or_else(|| self.corrupt("truncated value".into()))?;
                    entries.insert(key.to_vec(), value.to_vec());
                }
                Some((&DELETE, rest)) => {
                    bytes = rest;
                    entries.remove(key);
                }
                _ => return Err(self.corrupt("bad write tag".into())),
            }
        }
        Ok(())
    }

    /// Whether the next commit should write a snapshot instead of
    /// appending (the log has outgrown the state it describes).
    pub fn wants_snapshot(&self) -> bool {
        self.logged
            > self
                .snapshot
                .saturating_mul(3)
                .saturating_add(MIN_LOG_BYTES)
    }

    /// Adds one commit's state writes to `batch`.
    pub fn append(&mut self, writes: &[StateWrite], batch: &mut WriteBatch) {
        if writes.is_empty() {
            return;
        }
        self.buf.clear();
        for (key, value) in writes {
            push_write(&mut self.buf, key, value.as_deref());
        }
        let seq = self.take_seq();
        self.logged += self.put_chunks(seq, &mut 0, true, batch);
    }

    /// Adds to `batch` a snapshot of every live entry, replacing all that
    /// the log held (including any write of this batch under it).
    pub fn write_snapshot<'a>(
        &mut self,
        store: &Store,
        entries: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        store.delete_prefix_into(&self.prefix, batch)?;
        let seq = self.take_seq();
        let mut chunk = 0;
        let mut bytes = 0;
        self.buf.clear();
        for (key, value) in entries {
            push_write(&mut self.buf, key, Some(value));
            // Into the batch as it goes: a snapshot of a large table is
            // not held whole a second time.
            if self.buf.len() >= SNAPSHOT_BUF_BYTES {
                bytes += self.put_chunks(seq, &mut chunk, false, batch);
            }
        }
        bytes += self.put_chunks(seq, &mut chunk, true, batch);
        self.snapshot = bytes;
        self.logged = bytes;
        Ok(())
    }

    /// The sequence number of a new commit.
    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq - 1
    }

    /// Moves the whole chunks at the front of `buf` (all of it when
    /// `last`) into `batch` as sequence `seq`'s chunks from `*chunk` on;
    /// returns the bytes moved.
    fn put_chunks(&mut self, seq: u64, chunk: &mut u32, last: bool, batch: &mut WriteBatch) -> u64 {
        let len = if last {
            self.buf.len()
        } else {
            self.buf.len() - self.buf.len() % CHUNK_BYTES
        };
        for bytes in self.buf[..len].chunks(CHUNK_BYTES) {
            let mut key = self.prefix.clone();
            key.push(LOG_TAG);
            key.extend_from_slice(&seq.to_be_bytes());
            key.extend_from_slice(&chunk.to_be_bytes());
            batch.put(key, bytes.to_vec());
            *chunk = chunk.saturating_add(1);
        }
        self.buf.drain(..len);
        len as u64
    }
}

/// Appends one write in the chunk format (see the module docs).
fn push_write(out: &mut Vec<u8>, key: &[u8], value: Option<&[u8]>) {
    push_bytes(out, key);
    match value {
        Some(v) => {
            out.push(PUT);
            push_bytes(out, v);
        }
        None => out.push(DELETE),
    }
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // State entries are far below 4 GiB (rows and keys of one record).
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn take_bytes<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    *bytes = rest;
    Some(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn commit(store: &Store, batch: WriteBatch) {
        store.commit(batch, false).unwrap();
    }

    fn pairs(entries: &[(Vec<u8>, Vec<u8>)]) -> impl Iterator<Item = (&[u8], &[u8])> {
        entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    #[test]
    fn entries_from_an_older_rill_are_a_base_the_first_snapshot_drops() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut batch = WriteBatch::new();
        batch.put(keys::state("q", b"\x00a"), b"1".to_vec());
        batch.put(keys::state("q", b"\x00b"), b"2".to_vec());
        commit(&store, batch);

        let (mut log, entries) = StateLog::open(&store, "q").unwrap();
        assert_eq!(entries.len(), 2);
        let mut batch = WriteBatch::new();
        log.append(&[(b"\x00a".to_vec(), None)], &mut batch);
        commit(&store, batch);
        let (mut log, entries) = StateLog::open(&store, "q").unwrap();
        let live: Vec<_> = entries.into_iter().collect();
        assert_eq!(live, vec![(b"\x00b".to_vec(), b"2".to_vec())]);

        let mut batch = WriteBatch::new();
        log.write_snapshot(&store, pairs(&live), &mut batch)
            .unwrap();
        commit(&store, batch);
        let stored: Vec<_> = store
            .scan_prefix(&keys::state_prefix("q"))
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(stored.len(), 1, "one snapshot chunk, no older keys");
        let (_, entries) = StateLog::open(&store, "q").unwrap();
        assert_eq!(entries.into_iter().collect::<Vec<_>>(), live);
    }

    #[test]
    fn a_tables_rows_stored_one_key_each_read_as_the_base_of_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut batch = WriteBatch::new();
        batch.put(keys::table_row("t", b"\x11a"), b"1".to_vec());
        batch.put(keys::table_row("t", b"\x11b"), b"2".to_vec());
        batch.put(keys::table_row("tt", b"\x11c"), b"3".to_vec());
        commit(&store, batch);

        let (mut log, entries) = StateLog::open_table(&store, "t").unwrap();
        assert_eq!(entries.len(), 2, "only the rows of t");
        let mut batch = WriteBatch::new();
        log.append(&[(b"\x11a".to_vec(), Some(b"9".to_vec()))], &mut batch);
        commit(&store, batch);
        let (_, entries) = StateLog::open_table(&store, "t").unwrap();
        let live: Vec<_> = entries.into_iter().collect();
        assert_eq!(
            live,
            vec![
                (b"\x11a".to_vec(), b"9".to_vec()),
                (b"\x11b".to_vec(), b"2".to_vec())
            ]
        );
        let (_, other) = StateLog::open_table(&store, "tt").unwrap();
        assert_eq!(other.len(), 1);
    }

    #[test]
    fn a_truncated_chunk_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut key = keys::state("q", &[LOG_TAG]);
        key.extend_from_slice(&0u64.to_be_bytes());
        key.extend_from_slice(&0u32.to_be_bytes());
        let mut batch = WriteBatch::new();
        batch.put(key, vec![9, 0, 0, 0, b'k']);
        commit(&store, batch);
        let err = StateLog::open(&store, "q").unwrap_err();
        assert_eq!(err.sqlstate(), "XX001", "{err}");
    }

    #[test]
    fn a_snapshot_larger_than_its_buffer_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (mut log, _) = StateLog::open(&store, "q").unwrap();
        let live: Vec<(Vec<u8>, Vec<u8>)> = (0..200u16)
            .map(|i| {
                (
                    vec![0, (i >> 8) as u8, i as u8],
                    vec![i as u8; 1000 + usize::from(i)],
                )
            })
            .collect();
        let mut batch = WriteBatch::new();
        log.write_snapshot(&store, pairs(&live), &mut batch)
            .unwrap();
        commit(&store, batch);
        let (reopened, entries) = StateLog::open(&store, "q").unwrap();
        assert_eq!(entries.into_iter().collect::<Vec<_>>(), live);
        assert_eq!(
            reopened.snapshot, log.snapshot,
            "the size a snapshot counts"
        );
        assert!(log.snapshot > SNAPSHOT_BUF_BYTES as u64);
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// Writes of one commit: key, and value or delete.
        Commit(Vec<(u8, Option<Vec<u8>>)>),
        Snapshot,
        Reopen,
    }

    fn step() -> impl Strategy<Value = Step> {
        let value = prop::collection::vec(any::<u8>(), 0..3000);
        prop_oneof![
            6 => prop::collection::vec((0u8..32, prop::option::of(value)), 0..8).prop_map(Step::Commit),
            1 => Just(Step::Snapshot),
            2 => Just(Step::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Values up to 3 KB make writes span chunks.
        #[test]
        fn the_log_reads_back_as_the_writes_applied_in_order(steps in prop::collection::vec(step(), 1..20)) {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let (mut log, _) = StateLog::open(&store, "q").unwrap();
            let mut model = Entries::new();
            for step in steps {
                match step {
                    Step::Commit(writes) => {
                        let writes: Vec<StateWrite> =
                            writes.into_iter().map(|(k, v)| (vec![0, k], v)).collect();
                        for (k, v) in &writes {
                            match v {
                                Some(v) => model.insert(k.clone(), v.clone()),
                                None => model.remove(k),
                            };
                        }
                        let mut batch = WriteBatch::new();
                        log.append(&writes, &mut batch);
                        commit(&store, batch);
                    }
                    Step::Snapshot => {
                        let live: Vec<_> = model.clone().into_iter().collect();
                        let mut batch = WriteBatch::new();
                        log.write_snapshot(&store, pairs(&live), &mut batch).unwrap();
                        commit(&store, batch);
                    }
                    Step::Reopen => {
                        let (reopened, entries) = StateLog::open(&store, "q").unwrap();
                        prop_assert_eq!(&entries, &model);
                        log = reopened;
                    }
                }
            }
            let (_, entries) = StateLog::open(&store, "q").unwrap();
            prop_assert_eq!(&entries, &model);
        }
    }
}
