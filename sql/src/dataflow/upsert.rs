//! Turns a table's topic (upserts and tombstones by key) into a changelog
//! of retractions and inserts, so downstream operators can undo a row's old
//! contribution (a user moving from region A to B moves one count).

use std::collections::HashMap;

use super::{Change, StateWrite};
use crate::codec::{self, CodecError};
use crate::value::{Row, Value};

/// # Invariants
/// `rows` holds the current row of every live key; `dirty` the keys changed
/// since the last [`Upsert::drain_dirty`].
#[derive(Debug)]
pub struct Upsert {
    key_indices: Vec<usize>,
    rows: HashMap<Vec<Value>, Row>,
    dirty: Vec<Vec<Value>>,
}

impl Upsert {
    pub fn new(key_indices: Vec<usize>) -> Upsert {
        Upsert {
            key_indices,
            rows: HashMap::new(),
            dirty: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// `diff` +1 is an upsert of the row, -1 a tombstone for its key.
    pub fn process(&mut self, input: &mut Vec<Change>, out: &mut Vec<Change>) {
        for c in input.drain(..) {
            let key: Vec<Value> = self
                .key_indices
                .iter()
                .map(|&i| c.row.get(i).cloned().unwrap_or_default())
                .collect();
            let old = if c.diff > 0 {
                if self.rows.get(&key) == Some(&c.row) {
                    continue; // unchanged
                }
                self.rows.insert(key.clone(), c.row.clone())
            } else {
                self.rows.remove(&key)
            };
            if let Some(old) = old {
                out.push(Change::retract(old, c.time));
            }
            if c.diff > 0 {
                out.push(Change::insert(c.row, c.time));
            }
            self.dirty.push(key);
        }
    }

    pub fn drain_dirty(&mut self, out: &mut Vec<StateWrite>) {
        for key in self.dirty.drain(..) {
            let v = self.rows.get(&key).map(Self::row_state);
            out.push((Self::key_state(&key), v));
        }
    }

    /// Every live state entry (what [`Upsert::restore`] rebuilds it from).
    pub fn snapshot(&self, out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        for (key, row) in &self.rows {
            out.push((Self::key_state(key), Self::row_state(row)));
        }
    }

    fn key_state(key: &[Value]) -> Vec<u8> {
        let mut k = Vec::new();
        codec::encode_key(key, &mut k);
        k
    }

    fn row_state(row: &Row) -> Vec<u8> {
        let mut v = Vec::new();
        codec::encode_row(row, &mut v);
        v
    }

    pub fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), CodecError> {
        let key = codec::decode_key(key)?;
        let row = codec::decode_row(value)?;
        self.rows.insert(key, row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: &str, v: &str) -> Row {
        vec![Value::str(k), Value::str(v)]
    }

    #[test]
    fn updates_retract_the_old_row() {
        let mut u = Upsert::new(vec![0]);
        let mut out = Vec::new();
        let mut input = vec![
            Change::insert(row("u1", "A"), 1),
            Change::insert(row("u1", "B"), 2),
            Change::insert(row("u1", "B"), 3),
            Change::retract(vec![Value::str("u1"), Value::Null], 4),
        ];
        u.process(&mut input, &mut out);
        assert_eq!(
            out,
            vec![
                Change::insert(row("u1", "A"), 1),
                Change::retract(row("u1", "A"), 2),
                Change::insert(row("u1", "B"), 2),
                Change::retract(row("u1", "B"), 4),
            ]
        );
        assert!(u.is_empty());
    }

    #[test]
    fn state_round_trips() {
        let mut u = Upsert::new(vec![0]);
        u.process(
            &mut vec![Change::insert(row("u1", "A"), 1)],
            &mut Vec::new(),
        );
        let mut writes = Vec::new();
        u.drain_dirty(&mut writes);
        let mut v = Upsert::new(vec![0]);
        for (k, val) in &writes {
            v.restore(k, val.as_deref().expect("live"))
                .expect("restores");
        }
        let mut out = Vec::new();
        v.process(&mut vec![Change::insert(row("u1", "B"), 2)], &mut out);
        assert_eq!(out[0], Change::retract(row("u1", "A"), 2));
    }
}
