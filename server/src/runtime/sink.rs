//! Where a query's output goes: a stream's topic, or a table's rows in the
//! store plus its changelog topic.

use std::collections::HashMap;

use rill_sql::catalog::RelationDesc;
use rill_sql::codec;
use rill_sql::dataflow::Change;
use rill_sql::parser::RelationKind;
use rill_sql::Value;
use rill_storage::{keys, RecordRef, Store, WriteBatch};

use crate::backend::LogBackend;
use crate::engine::Engine;
use crate::error::Result;
use crate::record::RecordCodec;

/// A record waiting to be appended at the next commit.
struct Pending {
    partition: u32,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// A table row changed since the last commit.
struct RowChange {
    row: Vec<Value>,
    time: i64,
    live: bool,
}

/// The output side of a persistent query.
///
/// # Invariants
/// Nothing reaches the store or the log until [`Sink::flush`], which the
/// query calls as part of its commit.
pub struct Sink {
    /// Set for a table sink: its name in the store.
    table: Option<String>,
    key_idx: Vec<usize>,
    /// The topic written, with its partition count (None for a source
    /// table, whose topic already holds the records).
    topic: Option<(String, u32)>,
    codec: RecordCodec,
    rows: HashMap<Vec<u8>, RowChange>,
    records: Vec<Pending>,
    /// Windowed tables with RETENTION: (WINDOWEND column, retention ms), the
    /// latest event time written, and when expired rows were last removed.
    retention: Option<(usize, i64)>,
    max_time: i64,
    last_expiry: std::time::Instant,
    pub bad_rows: u64,
    pub last_error: Option<String>,
}

impl Sink {
    pub fn try_new(engine: &Engine, rel: &RelationDesc, write_topic: bool) -> Result<Sink> {
        Ok(Sink {
            table: (rel.kind == RelationKind::Table).then(|| rel.name.clone()),
            key_idx: rel.key_indices(),
            topic: write_topic.then(|| (rel.topic.clone(), rel.partitions)),
            codec: engine.codec(rel)?,
            rows: HashMap::new(),
            records: Vec::new(),
            retention: match (rel.retention_ms, rel.column_index("WINDOWEND")) {
                (Some(r), Some(i)) if rel.window.is_some() => Some((i, r)),
                _ => None,
            },
            max_time: i64::MIN,
            last_expiry: std::time::Instant::now(),
            bad_rows: 0,
            last_error: None,
        })
    }

    /// The topic this sink appends to (none for a source table).
    pub fn topic(&self) -> Option<&str> {
        self.topic.as_ref().map(|(t, _)| t.as_str())
    }

    /// Whether a flush would append anything.
    pub fn has_pending(&self) -> bool {
        !self.records.is_empty() || !self.rows.is_empty()
    }

    /// Takes output changes; returns how many rows they were. For a table,
    /// a retraction deletes the row's key and an insert upserts it, in
    /// order, so an update (retraction, then insert) leaves the new row.
    pub fn apply(&mut self, changes: &mut Vec<Change>) -> u64 {
        let mut n = 0;
        for c in changes.drain(..) {
            self.max_time = self.max_time.max(c.time);
            if self.table.is_some() {
                let key_values: Vec<Value> = self
                    .key_idx
                    .iter()
                    .map(|&i| c.row.get(i).cloned().unwrap_or_default())
                    .collect();
                let mut key = Vec::new();
                codec::encode_key(&key_values, &mut key);
                self.rows.insert(
                    key,
                    RowChange {
                        row: c.row,
                        time: c.time,
                        live: c.diff > 0,
                    },
                );
                n += 1;
            } else if c.diff > 0 {
                self.push_record(&c.row, c.time, false);
                n += 1;
            }
        }
        n
    }

    fn push_record(&mut self, row: &[Value], time: i64, tombstone: bool) {
        let Some((_, partitions)) = &self.topic else {
            return;
        };
        let partitions = *partitions;
        match self.codec.encode(row, tombstone) {
            Ok((key, value)) => {
                let partition = self.codec.partition(key.as_deref(), partitions);
                self.records.push(Pending {
                    partition,
                    timestamp: time,
                    key,
                    value,
                });
            }
            Err(e) => {
                self.bad_rows += 1;
                self.last_error = Some(e.to_string());
            }
        }
    }

    /// Removes windowed rows whose window ended more than the retention
    /// before the latest event time (at most once a second: it scans the
    /// table).
    fn expire(&mut self, store: &Store, table: &str, batch: &mut WriteBatch) -> Result<()> {
        let Some((end_col, retention)) = self.retention else {
            return Ok(());
        };
        if self.last_expiry.elapsed() < std::time::Duration::from_secs(1)
            || self.max_time == i64::MIN
        {
            return Ok(());
        }
        self.last_expiry = std::time::Instant::now();
        let horizon = self.max_time.saturating_sub(retention);
        for entry in store.scan_prefix(&keys::table_prefix(table)) {
            let (k, v) = entry?;
            let row = codec::decode_row(&v)?;
            if row
                .get(end_col)
                .and_then(Value::as_i64)
                .is_some_and(|end| end < horizon)
            {
                batch.delete(k);
            }
        }
        Ok(())
    }

    /// Writes everything buffered: appends (and syncs) topic records and
    /// adds table rows to `batch`; returns the new log ends to commit.
    pub fn flush(
        &mut self,
        log: &dyn LogBackend,
        store: &Store,
        batch: &mut WriteBatch,
    ) -> Result<Vec<(String, u32, u64)>> {
        if let Some(table) = self.table.clone() {
            self.expire(store, &table, batch)?;
            let rows = std::mem::take(&mut self.rows);
            for (key, change) in rows {
                let store_key = keys::table_row(&table, &key);
                if change.live {
                    let mut v = Vec::new();
                    let mut full = change.row.clone();
                    full.push(Value::BigInt(change.time));
                    codec::encode_row(&full, &mut v);
                    batch.put(store_key, v);
                } else {
                    batch.delete(store_key);
                }
                self.push_record(&change.row, change.time, !change.live);
            }
        }
        let mut ends = Vec::new();
        let Some((topic, partitions)) = self.topic.clone() else {
            self.records.clear();
            return Ok(ends);
        };
        for p in 0..partitions {
            let refs: Vec<RecordRef<'_>> = self
                .records
                .iter()
                .filter(|r| r.partition == p)
                .map(|r| RecordRef {
                    timestamp: r.timestamp,
                    key: r.key.as_deref(),
                    value: r.value.as_deref(),
                })
                .collect();
            if refs.is_empty() {
                continue;
            }
            let end = log.append(&topic, p, &refs)?;
            log.sync(&topic, p, end)?;
            ends.push((topic.clone(), p, end));
        }
        self.records.clear();
        Ok(ends)
    }
}
