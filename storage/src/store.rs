//! The sled handle and the atomic commit.
//!
//! The catalog, operator state, materialized table rows, source offsets and
//! the embedded log's committed ends all live in ONE sled tree (kinds are
//! told apart by key prefix, see [`crate::keys`]), because sled's
//! `apply_batch` is atomic only within a tree. That single batch is what
//! lets a query resume after a crash from offsets that match its state.
//!
//! sled is slow per write, so nothing here is meant for the per-event path:
//! callers gather dirty entries in a [`WriteBatch`] and commit once per
//! commit interval.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Result, StorageError};

/// The durable key-value state of a rill server.
///
/// Cheap to clone (a handle to the same database), safe to share between
/// threads.
///
/// # Invariants
///
/// - A [`Store::commit`] is all or nothing, also across a crash: after a
///   restart either every write of a batch is visible or none is.
/// - A commit with `durable = true` survives a crash once it returns; one
///   with `durable = false` survives a clean shutdown and, after a crash,
///   may be lost as a whole (sled flushes in the background every 500 ms).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    path: Arc<Path>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Writes gathered for one atomic [`Store::commit`].
///
/// Kept as an ordered map rather than a `sled::Batch` so callers can ask how
/// big it is (to commit early when it grows) and so a later write to a key
/// replaces an earlier one instead of both being applied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteBatch {
    /// `None` is a delete.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Sets `key` to `value` at commit; replaces any earlier write of `key`
    /// in this batch.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes.insert(key.into(), Some(value.into()));
    }

    /// Removes `key` at commit; replaces any earlier write of `key` in this
    /// batch.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.writes.insert(key.into(), None);
    }

    /// True when committing would change nothing, so a caller can skip the
    /// commit (and its fsync) entirely.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Number of distinct keys written, to bound batch size (sled is fastest
    /// around a thousand keys per batch and slow to reopen after huge ones).
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// The writes in key order: `(key, Some(value))` or `(key, None)` for a
    /// delete.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.writes
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    /// The pending write of `key` in this batch: `Some(None)` for a delete,
    /// `None` if the batch does not touch it. Lets a caller read its own
    /// uncommitted writes.
    pub fn pending(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.writes.get(key).map(|v| v.as_deref())
    }
}

impl Store {
    /// Opens (or creates) the store at `<dir>/state`.
    ///
    /// Fails with an I/O error if another process (or another live `Store`
    /// in this one) has the same data dir open: sled holds a file lock.
    pub fn open(dir: &Path) -> Result<Store> {
        let path: PathBuf = dir.join("state");
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let db = open_db(&path)?;
        tracing::debug!(path = %path.display(), "state store opened");
        Ok(Store {
            db,
            path: Arc::from(path),
        })
    }

    fn err(&self, error: sled::Error) -> StorageError {
        StorageError::from_sled(&self.path, error)
    }

    /// Applies every write of `batch` atomically. With `durable`, also
    /// fsyncs before returning, which is what makes a commit point (offsets
    /// and state that must survive a crash) real.
    pub fn commit(&self, batch: WriteBatch, durable: bool) -> Result<()> {
        if batch.is_empty() && !durable {
            return Ok(());
        }
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch.writes {
            match value {
                Some(value) => sled_batch.insert(key, value),
                None => sled_batch.remove(key),
            }
        }
        self.db.apply_batch(sled_batch).map_err(|e| self.err(e))?;
        if durable {
            self.flush()?;
        }
        Ok(())
    }

    /// The current value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .db
            .get(key)
            .map_err(|e| self.err(e))?
            .map(|v| v.to_vec()))
    }

    /// Every (key, value) whose key starts with `prefix`, in key order; how
    /// a query's state, a table or the catalog is loaded.
    pub fn scan_prefix(&self, prefix: &[u8]) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> {
        ScanIter {
            inner: Some(self.db.scan_prefix(prefix)),
            path: Arc::clone(&self.path),
        }
    }

    /// Every (key, value) with `start <= key < end`, in key order; an empty
    /// iterator when `start >= end`.
    pub fn range(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> {
        let inner = (start < end).then(|| self.db.range(start..end));
        ScanIter {
            inner,
            path: Arc::clone(&self.path),
        }
    }

    /// Adds to `batch` a delete of every key stored under `prefix`, so
    /// dropping a table or query is part of the same atomic commit as the
    /// catalog change. Puts already in `batch` under the prefix become
    /// deletes too. Returns the number of keys the batch now deletes under
    /// the prefix.
    pub fn delete_prefix_into(&self, prefix: &[u8], batch: &mut WriteBatch) -> Result<usize> {
        for item in self.db.scan_prefix(prefix).keys() {
            let key = item.map_err(|e| self.err(e))?;
            batch.writes.insert(key.to_vec(), None);
        }
        let mut deleted = 0;
        for (_, value) in batch
            .writes
            .range_mut::<[u8], _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(key, _)| key.starts_with(prefix))
        {
            *value = None;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Makes every commit so far durable (fsync). Returns once the data is
    /// on disk.
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// How long [`open_db`] keeps retrying while the sled lock is held.
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// Opens sled at `path`, retrying briefly while its file lock is taken.
///
/// sled releases the lock from background threads shortly after the last
/// handle is dropped, so a reopen right after a drop (a restart inside one
/// process, as tests do) can find it still held for a few milliseconds.
/// A lock held by another process still fails, after [`LOCK_WAIT`].
fn open_db(path: &Path) -> Result<sled::Db> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match sled::Config::new().path(path).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(StorageError::from_sled(path, e)),
        }
    }
}

/// Turns sled's `IVec` pairs into owned bytes, attaching the store path to
/// errors.
struct ScanIter {
    inner: Option<sled::Iter>,
    path: Arc<Path>,
}

impl Iterator for ScanIter {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.as_mut()?.next()?;
        Some(
            item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(|e| StorageError::from_sled(&self.path, e)),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::keys;
    use proptest::prelude::*;

    fn contents(store: &Store) -> BTreeMap<Vec<u8>, Vec<u8>> {
        store.scan_prefix(b"").map(|r| r.unwrap()).collect()
    }

    #[test]
    fn later_writes_in_a_batch_win() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut batch = WriteBatch::new();
        batch.put(b"a".to_vec(), b"1".to_vec());
        batch.delete(b"a".to_vec());
        batch.put(b"b".to_vec(), b"1".to_vec());
        batch.put(b"b".to_vec(), b"2".to_vec());
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.pending(b"a"), Some(None));
        store.commit(batch, true).unwrap();
        assert_eq!(store.get(b"a").unwrap(), None);
        assert_eq!(store.get(b"b").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn commit_is_visible_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut batch = WriteBatch::new();
            batch.put(keys::offset("q", "t", 0), keys::encode_u64(17));
            batch.put(keys::state("q", b"k"), b"v".to_vec());
            store.commit(batch, true).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let offset = store.get(&keys::offset("q", "t", 0)).unwrap().unwrap();
        assert_eq!(keys::decode_u64(&offset).unwrap(), 17);
        assert_eq!(
            store.get(&keys::state("q", b"k")).unwrap(),
            Some(b"v".to_vec())
        );
    }

    #[test]
    fn second_open_of_the_same_dir_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let _store = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert_eq!(err.sqlstate(), "58030", "{err}");
    }

    #[test]
    fn prefix_scans_and_deletes_stay_inside_one_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut batch = WriteBatch::new();
        for k in [b"1".as_slice(), b"2", b"3"] {
            batch.put(keys::table_row("t", k), k.to_vec());
            batch.put(keys::table_row("tt", k), k.to_vec());
        }
        store.commit(batch, false).unwrap();
        let rows: Vec<_> = store
            .scan_prefix(&keys::table_prefix("t"))
            .map(|r| r.unwrap().1)
            .collect();
        assert_eq!(rows, vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
        let ranged: Vec<_> = store
            .range(&keys::table_row("t", b"2"), &keys::table_row("t", b"3"))
            .map(|r| r.unwrap().1)
            .collect();
        assert_eq!(ranged, vec![b"2".to_vec()]);
        assert_eq!(store.range(b"z", b"a").count(), 0);

        let mut batch = WriteBatch::new();
        batch.put(keys::table_row("t", b"4"), b"4".to_vec());
        assert_eq!(
            store
                .delete_prefix_into(&keys::table_prefix("t"), &mut batch)
                .unwrap(),
            4
        );
        store.commit(batch, false).unwrap();
        assert_eq!(store.scan_prefix(&keys::table_prefix("t")).count(), 0);
        assert_eq!(store.scan_prefix(&keys::table_prefix("tt")).count(), 3);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Commit(Vec<(u8, Option<u8>)>, bool),
        DeletePrefix(u8),
        Reopen,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (prop::collection::vec((0u8..24, prop::option::of(any::<u8>())), 0..12), any::<bool>())
                .prop_map(|(w, d)| Step::Commit(w, d)),
            1 => (0u8..3).prop_map(Step::DeletePrefix),
            1 => Just(Step::Reopen),
        ]
    }

    /// Keys share prefixes (`k % 3` picks one of three "objects"), so prefix
    /// deletes and overwrites are exercised.
    fn key(k: u8) -> Vec<u8> {
        keys::state(&format!("q{}", k % 3), &[k])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn store_matches_a_btreemap_across_reopens(steps in prop::collection::vec(step(), 1..24)) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = Store::open(dir.path()).unwrap();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for step in steps {
                match step {
                    Step::Commit(writes, durable) => {
                        let mut batch = WriteBatch::new();
                        for (k, v) in writes {
                            match v {
                                Some(v) => {
                                    batch.put(key(k), vec![v]);
                                    model.insert(key(k), vec![v]);
                                }
                                None => {
                                    batch.delete(key(k));
                                    model.remove(&key(k));
                                }
                            }
                        }
                        store.commit(batch, durable).unwrap();
                    }
                    Step::DeletePrefix(q) => {
                        let prefix = keys::state_prefix(&format!("q{q}"));
                        let mut batch = WriteBatch::new();
                        store.delete_prefix_into(&prefix, &mut batch).unwrap();
                        store.commit(batch, false).unwrap();
                        model.retain(|k, _| !k.starts_with(&prefix));
                    }
                    Step::Reopen => {
                        drop(store);
                        store = Store::open(dir.path()).unwrap();
                    }
                }
                prop_assert_eq!(&contents(&store), &model);
                for k in 0..24u8 {
                    let stored = store.get(&key(k)).unwrap();
                    prop_assert_eq!(stored.as_ref(), model.get(&key(k)));
                }
            }
        }
    }
}
