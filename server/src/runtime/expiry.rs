//! Which rows of a windowed table have outlived their retention, found
//! without scanning the table: an in-memory index of the live rows ordered
//! by window end.
//!
//! The sink keeps one per windowed table, updates it with every row it
//! writes or deletes, and rebuilds it with one scan of the table when the
//! query starts. Expiring then visits only the rows it removes.

use std::collections::BTreeMap;
use std::sync::Arc;

use foldhash::HashMap;

/// Row keys (the table's key bytes, without the store prefix) by window end.
///
/// Windows share few ends (every key of a tumbling window has the same), so
/// a key goes in its end's bucket with a push, not a sorted insert. A key
/// rewritten with another end, or removed, leaves its old bucket entry
/// behind: an entry counts only while `ends` still gives the key that end.
///
/// # Invariants
/// - `ends[key] == end` implies `key` is in `by_end[end]`.
/// - Expiring takes a key only from the bucket of its current end, so a
///   row written again with another end (a session that grew) is never
///   expired by its stale end.
#[derive(Debug, Default)]
pub struct ExpiryIndex {
    by_end: BTreeMap<i64, Vec<Arc<[u8]>>>,
    ends: HashMap<Arc<[u8]>, i64>,
}

impl ExpiryIndex {
    pub fn new() -> ExpiryIndex {
        ExpiryIndex::default()
    }

    /// Records that the row `key` is live with window end `end`.
    pub fn upsert(&mut self, key: &[u8], end: i64) {
        let key = match self.ends.get_key_value(key) {
            Some((_, old)) if *old == end => return,
            Some((k, _)) => k.clone(),
            None => Arc::from(key),
        };
        self.by_end.entry(end).or_default().push(key.clone());
        self.ends.insert(key, end);
    }

    /// Records that the row `key` is gone (no-op when it is not indexed).
    pub fn remove(&mut self, key: &[u8]) {
        self.ends.remove(key);
    }

    /// Removes and returns every key whose window end is before `horizon`,
    /// earliest end first. Costs O(bucket entries visited).
    pub fn take_expired(&mut self, horizon: i64) -> Vec<Arc<[u8]>> {
        let mut out = Vec::new();
        while let Some(bucket) = self.by_end.first_entry() {
            if *bucket.key() >= horizon {
                break;
            }
            let (end, keys) = bucket.remove_entry();
            for key in keys {
                if self.ends.get(&key) == Some(&end) {
                    self.ends.remove(&key);
                    out.push(key);
                }
            }
        }
        out
    }

    /// Rows indexed (the table's live rows).
    pub fn len(&self) -> usize {
        self.ends.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn keys(v: Vec<Arc<[u8]>>) -> Vec<Vec<u8>> {
        v.into_iter().map(|k| k.to_vec()).collect()
    }

    #[test]
    fn expires_only_ends_before_the_horizon() {
        let mut ix = ExpiryIndex::new();
        ix.upsert(b"a", 10);
        ix.upsert(b"b", 20);
        ix.upsert(b"c", 30);
        assert!(ix.take_expired(10).is_empty(), "end 10 is not before 10");
        assert_eq!(
            keys(ix.take_expired(21)),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(ix.len(), 1);
        assert!(ix.take_expired(21).is_empty(), "taken once");
    }

    #[test]
    fn a_rewritten_row_is_indexed_once_under_its_new_end() {
        let mut ix = ExpiryIndex::new();
        ix.upsert(b"s", 10);
        ix.upsert(b"s", 50);
        ix.upsert(b"s", 50);
        assert_eq!(ix.len(), 1);
        assert!(ix.take_expired(40).is_empty(), "the stale end 10 is gone");
        assert_eq!(keys(ix.take_expired(51)), vec![b"s".to_vec()]);
        assert_eq!(ix.len(), 0);
    }

    #[test]
    fn a_removed_row_never_expires() {
        let mut ix = ExpiryIndex::new();
        ix.upsert(b"a", 10);
        ix.remove(b"a");
        ix.remove(b"never-written");
        assert!(ix.take_expired(i64::MAX).is_empty());
        assert_eq!(ix.len(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(u8, i64),
        Remove(u8),
        Expire(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..16, -5i64..40).prop_map(|(k, e)| Op::Upsert(k, e)),
            1 => (0u8..16).prop_map(Op::Remove),
            1 => (-5i64..45).prop_map(Op::Expire),
        ]
    }

    proptest! {
        /// Against a model that scans every row, as the sink once did.
        #[test]
        fn matches_a_full_scan(ops in proptest::collection::vec(op(), 0..200)) {
            let mut ix = ExpiryIndex::new();
            let mut model: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Upsert(k, e) => {
                        ix.upsert(&[k], e);
                        model.insert(vec![k], e);
                    }
                    Op::Remove(k) => {
                        ix.remove(&[k]);
                        model.remove(&vec![k]);
                    }
                    Op::Expire(h) => {
                        let mut got = keys(ix.take_expired(h));
                        got.sort();
                        let want: Vec<Vec<u8>> = model
                            .iter()
                            .filter(|(_, e)| **e < h)
                            .map(|(k, _)| k.clone())
                            .collect();
                        model.retain(|_, e| *e >= h);
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(ix.len(), model.len());
            }
        }
    }
}
