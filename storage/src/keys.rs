//! The layout of keys in the state store.
//!
//! Everything rill keeps in sled lives in one tree so that a commit is one
//! atomic `apply_batch`. Kinds of keys are told apart by a one-byte
//! namespace, and names inside a key are length-prefixed, so a prefix scan
//! over one object can never see another object's keys:
//!
//! | kind      | key                                                    |
//! |-----------|--------------------------------------------------------|
//! | catalog   | `c` id:u64be                                           |
//! | state     | `s` len:u32be query  key-bytes                         |
//! | table row | `t` len:u32be table  key-bytes                         |
//! | offset    | `o` len:u32be query  len:u32be topic  partition:u32be  |
//! | log end   | `l` len:u32be topic  partition:u32be                   |
//! | meta      | `m` len:u32be name                                     |
//!
//! # Invariants
//!
//! - A key built for one (kind, object) never starts with the prefix of a
//!   different (kind, object): `state_prefix("a")` is not a prefix of any key
//!   of query `"ab"`.
//! - Under one object, keys sort by the caller's key bytes, and catalog
//!   entries sort by id (big-endian), so range scans follow the caller's
//!   order.
//! - This layout is on disk: changing a namespace byte or the length
//!   encoding needs a migration.

use crate::error::{Result, StorageError};

const CATALOG: u8 = b'c';
const STATE: u8 = b's';
const TABLE: u8 = b't';
const OFFSET: u8 = b'o';
const LOG_END: u8 = b'l';
const META: u8 = b'm';

/// Appends a name with its length in front, so that names of different
/// lengths can never produce a common prefix.
///
/// Names longer than 4 GiB cannot reach this function (statements are far
/// smaller); the length saturates rather than panicking.
fn push_name(out: &mut Vec<u8>, name: &str) {
    let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(name.as_bytes());
}

fn with_name(namespace: u8, name: &str, extra: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 4 + name.len() + extra);
    key.push(namespace);
    push_name(&mut key, name);
    key
}

/// Reads a length-prefixed name from the front of `bytes`, returning it and
/// the rest.
fn take_name(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    if rest.len() < len {
        return None;
    }
    let (name, rest) = rest.split_at(len);
    Some((std::str::from_utf8(name).ok()?, rest))
}

fn take_u32(bytes: &[u8]) -> Option<u32> {
    let arr: [u8; 4] = bytes.try_into().ok()?;
    Some(u32::from_be_bytes(arr))
}

/// Key of catalog entry `id`; ids sort numerically so the catalog replays in
/// creation order.
pub fn catalog(id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(CATALOG);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// Prefix of every catalog entry, for loading the catalog at startup.
pub fn catalog_prefix() -> Vec<u8> {
    vec![CATALOG]
}

/// Recovers the id from a key made by [`catalog`]; `None` for any other key.
pub fn decode_catalog(key: &[u8]) -> Option<u64> {
    let (&ns, rest) = key.split_first()?;
    if ns != CATALOG {
        return None;
    }
    let arr: [u8; 8] = rest.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

/// Key of one operator state entry of a persistent query. `key` is the
/// operator's own encoding (operator id, group key, window...): state of a
/// query is dropped with one prefix delete when the query is dropped.
pub fn state(query: &str, key: &[u8]) -> Vec<u8> {
    let mut out = with_name(STATE, query, key.len());
    out.extend_from_slice(key);
    out
}

/// Prefix of all state of `query`, for restoring or dropping it.
pub fn state_prefix(query: &str) -> Vec<u8> {
    with_name(STATE, query, 0)
}

/// Key of one row of a materialized table stored on its own, as rill
/// stored them before they became a log of commits (`StateLog::open_table`
/// reads such rows as the base under the log); `key` is the row's encoded
/// primary key.
pub fn table_row(table: &str, key: &[u8]) -> Vec<u8> {
    let mut out = with_name(TABLE, table, key.len());
    out.extend_from_slice(key);
    out
}

/// Prefix of all rows of `table` (the log of its commits), for reading
/// them and for `DROP TABLE`.
pub fn table_prefix(table: &str) -> Vec<u8> {
    with_name(TABLE, table, 0)
}

/// Key of the next source offset to read by `query` from one topic
/// partition. Written in the same batch as the state it produced, so after a
/// crash state and position agree.
pub fn offset(query: &str, topic: &str, partition: u32) -> Vec<u8> {
    let mut out = with_name(OFFSET, query, 4 + topic.len() + 4);
    push_name(&mut out, topic);
    out.extend_from_slice(&partition.to_be_bytes());
    out
}

/// Prefix of all source offsets of `query`, for resuming it.
pub fn offset_prefix(query: &str) -> Vec<u8> {
    with_name(OFFSET, query, 0)
}

/// Splits a key made by [`offset`] into (query, topic, partition); `None`
/// for any other key.
pub fn decode_offset(key: &[u8]) -> Option<(&str, &str, u32)> {
    let (&ns, rest) = key.split_first()?;
    if ns != OFFSET {
        return None;
    }
    let (query, rest) = take_name(rest)?;
    let (topic, rest) = take_name(rest)?;
    Some((query, topic, take_u32(rest)?))
}

/// Key of the committed end offset of an embedded-log partition: on
/// recovery the partition is truncated back to it, so records appended by a
/// commit that never reached sled are never seen.
pub fn log_end(topic: &str, partition: u32) -> Vec<u8> {
    let mut out = with_name(LOG_END, topic, 4);
    out.extend_from_slice(&partition.to_be_bytes());
    out
}

/// Prefix of the committed ends of every partition of `topic`.
pub fn log_end_prefix(topic: &str) -> Vec<u8> {
    with_name(LOG_END, topic, 0)
}

/// Prefix of the committed ends of every topic, for recovery at startup.
pub fn all_log_ends_prefix() -> Vec<u8> {
    vec![LOG_END]
}

/// Splits a key made by [`log_end`] into (topic, partition); `None` for any
/// other key.
pub fn decode_log_end(key: &[u8]) -> Option<(&str, u32)> {
    let (&ns, rest) = key.split_first()?;
    if ns != LOG_END {
        return None;
    }
    let (topic, rest) = take_name(rest)?;
    Some((topic, take_u32(rest)?))
}

/// Key of a server-wide value (format version, next catalog id...).
pub fn meta(name: &str) -> Vec<u8> {
    with_name(META, name, 0)
}

/// Encodes a u64 value big-endian, the one encoding of counters and offsets
/// in the store (so they also sort numerically when used in keys).
pub fn encode_u64(value: u64) -> [u8; 8] {
    value.to_be_bytes()
}

/// Decodes a value written by [`encode_u64`]; any other length is
/// corruption, not a number.
pub fn decode_u64(bytes: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| {
        StorageError::corrupt(
            "state store value",
            format!("expected an 8-byte u64, found {} bytes", bytes.len()),
        )
    })?;
    Ok(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_of_different_lengths_do_not_share_prefixes() {
        assert!(!state("ab", b"x").starts_with(&state_prefix("a")));
        assert!(!table_row("ab", b"").starts_with(&table_prefix("a")));
        assert!(!offset("ab", "t", 0).starts_with(&offset_prefix("a")));
        assert!(!log_end("ab", 0).starts_with(&log_end_prefix("a")));
        assert!(table_row("a", b"bc").starts_with(&table_prefix("a")));
    }

    #[test]
    fn kinds_do_not_collide() {
        assert!(!state("q", b"").starts_with(&table_prefix("q")));
        assert!(!meta("q").starts_with(&state_prefix("q")));
        assert!(!catalog(0).starts_with(&meta("")));
    }

    #[test]
    fn decoders_invert_builders_and_reject_other_kinds() {
        assert_eq!(decode_catalog(&catalog(42)), Some(42));
        assert_eq!(decode_offset(&offset("q", "t", 3)), Some(("q", "t", 3)));
        assert_eq!(decode_log_end(&log_end("t", 7)), Some(("t", 7)));
        assert_eq!(decode_catalog(&meta("x")), None);
        assert_eq!(decode_offset(&log_end("t", 7)), None);
        assert_eq!(decode_log_end(&offset("q", "t", 3)), None);
        assert_eq!(decode_log_end(&log_end("t", 7)[..6]), None);
    }

    #[test]
    fn u64_values_round_trip_and_reject_bad_lengths() {
        assert_eq!(
            decode_u64(&encode_u64(u64::MAX - 1)).ok(),
            Some(u64::MAX - 1)
        );
        let err = decode_u64(&[1, 2, 3]).err();
        assert_eq!(err.map(|e| e.sqlstate()), Some("XX001"));
    }

    proptest! {
        #[test]
        fn catalog_keys_sort_by_id(a: u64, b: u64) {
            prop_assert_eq!(a.cmp(&b), catalog(a).cmp(&catalog(b)));
        }

        #[test]
        fn row_keys_sort_by_caller_bytes(a: Vec<u8>, b: Vec<u8>) {
            prop_assert_eq!(a.cmp(&b), table_row("t", &a).cmp(&table_row("t", &b)));
        }

        #[test]
        fn prefixes_of_distinct_objects_never_nest(
            a in "[a-c]{0,4}", b in "[a-c]{0,4}", ka: Vec<u8>,
        ) {
            prop_assume!(a != b);
            prop_assert!(!state(&a, &ka).starts_with(&state_prefix(&b)));
            prop_assert!(!table_row(&a, &ka).starts_with(&table_prefix(&b)));
            prop_assert!(!offset(&a, "t", 1).starts_with(&offset_prefix(&b)));
        }
    }
}
