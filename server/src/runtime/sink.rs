//! Where a query's output goes: a stream's topic, or a table's rows (in
//! memory for pull queries, in the store as a log of commits) plus its
//! changelog topic.

use std::ops::Range;
use std::sync::Arc;

// foldhash, seeded per process: a row per group and window changes at
// every commit, and SipHash was a tenth of a windowed query's time.
use foldhash::{HashMap, HashMapExt};

use rill_sql::catalog::RelationDesc;
use rill_sql::codec;
use rill_sql::dataflow::Change;
use rill_sql::parser::RelationKind;
use rill_sql::Value;
use rill_storage::state_log::StateWrite;
use rill_storage::{RecordRef, StateLog, Store, WriteBatch};
use tracing::debug;

use super::expiry::ExpiryIndex;
use crate::backend::LogBackend;
use crate::engine::{self, Engine, TableRows};
use crate::error::Result;
use crate::record::RecordCodec;

/// A record waiting to be appended at the next commit; its key and value
/// are in [`Sink::bytes`].
struct Pending {
    partition: u32,
    timestamp: i64,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
}

/// What [`Sink::bytes`] keeps of its allocation between commits.
const KEEP_BYTES: usize = 16 << 20;

/// A table row changed since the last commit.
struct RowChange {
    row: Vec<Value>,
    time: i64,
    live: bool,
}

/// A windowed table's retention and the index that finds its expired rows.
struct Retention {
    /// The WINDOWEND column.
    end_col: usize,
    /// A row goes once its WINDOWEND is this far (ms) behind the latest
    /// event time written.
    ms: i64,
    /// Every live row of the table by WINDOWEND.
    index: ExpiryIndex,
}

/// A table sink's rows.
struct Table {
    name: String,
    store: Store,
    /// The rows in the store: one sequence of writes per commit.
    log: StateLog,
    /// The rows as of the last commit, which pull queries read.
    rows: Arc<TableRows>,
    /// The writes of the commit in flight, published to `rows` once it
    /// has landed.
    writes: Vec<StateWrite>,
}

/// The output side of a persistent query.
///
/// # Invariants
/// - Nothing reaches the store or the log until [`Sink::flush`], which the
///   query calls as part of its commit.
/// - A table's rows in memory change only in [`Sink::publish`], after the
///   commit holding their writes landed.
pub struct Sink {
    table: Option<Table>,
    key_idx: Vec<usize>,
    /// The topic written, with its partition count (None for a source
    /// table, whose topic already holds the records).
    topic: Option<(String, u32)>,
    codec: RecordCodec,
    rows: HashMap<Vec<u8>, RowChange>,
    records: Vec<Pending>,
    /// The encoded keys and values of `records`, one after another: one
    /// buffer rather than two allocations per record.
    bytes: Vec<u8>,
    /// Windowed tables with a retention (every new one has it).
    retention: Option<Retention>,
    /// The latest event time written; for a table with a retention, also
    /// what its stored rows say (so a restart keeps the horizon).
    max_time: i64,
    pub bad_rows: u64,
    pub last_error: Option<String>,
}

impl Sink {
    /// For a table, reads its rows from the store (and makes them the rows
    /// pull queries read); with a retention, indexes them by window end.
    pub fn try_new(engine: &Engine, rel: &RelationDesc, write_topic: bool) -> Result<Sink> {
        let mut max_time = i64::MIN;
        let mut retention = None;
        let mut table = None;
        if rel.kind == RelationKind::Table {
            let (log, entries) = StateLog::open_table(&engine.store, &rel.name)?;
            if let (Some(ms), Some(end_col), Some(_)) =
                (rel.retention_ms, rel.column_index("WINDOWEND"), &rel.window)
            {
                let mut index = ExpiryIndex::new();
                for (k, v) in &entries {
                    // Stored rows are the visible row plus its event time.
                    let row = codec::decode_row(v)?;
                    if let Some(end) = row.get(end_col).and_then(Value::as_i64) {
                        index.upsert(k, end);
                    }
                    if let Some(t) = row.last().and_then(Value::as_i64) {
                        max_time = max_time.max(t);
                    }
                }
                retention = Some(Retention { end_col, ms, index });
            }
            table = Some(Table {
                name: rel.name.clone(),
                store: engine.store.clone(),
                log,
                rows: engine.install_table_rows(&rel.name, entries),
                writes: Vec::new(),
            });
        }
        Ok(Sink {
            table,
            key_idx: rel.key_indices(),
            topic: write_topic.then(|| (rel.topic.clone(), rel.partitions)),
            codec: engine.codec(rel)?,
            rows: HashMap::new(),
            records: Vec::new(),
            bytes: Vec::new(),
            retention,
            max_time,
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

    /// The bytes of the records waiting for the next commit.
    pub fn pending_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Takes output changes; returns how many rows they were. For a table,
    /// a retraction deletes the row's key and an insert upserts it, in
    /// order, so an update (retraction, then insert) leaves the new row.
    pub fn apply(&mut self, changes: &mut Vec<Change>) -> u64 {
        let mut n = 0;
        for c in changes.drain(..) {
            self.max_time = self.max_time.max(c.time);
            if self.table.is_some() {
                let mut key = Vec::new();
                for &i in &self.key_idx {
                    let v = c.row.get(i).unwrap_or(&Value::Null);
                    codec::encode_key(std::slice::from_ref(v), &mut key);
                }
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
                self.push_record(&c.row, c.raw.as_deref(), c.time, false);
                n += 1;
            }
        }
        n
    }

    /// Buffers the record of `row`; with `raw`, that is its value as it
    /// was read (see [`Change::raw`]), not encoded again.
    fn push_record(&mut self, row: &[Value], raw: Option<&[u8]>, time: i64, tombstone: bool) {
        let Some((_, partitions)) = &self.topic else {
            return;
        };
        let partitions = *partitions;
        let encoded = match raw {
            Some(value) if !tombstone => {
                self.codec
                    .encode_into_with_value(row, value, &mut self.bytes)
            }
            _ => self.codec.encode_into(row, tombstone, &mut self.bytes),
        };
        match encoded {
            Ok((key, value)) => {
                let key_bytes = key.clone().and_then(|k| self.bytes.get(k));
                let partition = self.codec.partition(key_bytes, partitions);
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

    /// Deletes the windowed rows whose window ended more than the retention
    /// before the latest event time written. Only the expired rows are
    /// visited, so this runs at every commit.
    ///
    /// A row cannot expire while its window can still change: the binder
    /// keeps RETENTION at least span plus grace, and the latest event time
    /// written is at most the aggregate's stream time.
    fn expire(&mut self, writes: &mut Vec<StateWrite>) {
        let Some(r) = &mut self.retention else {
            return;
        };
        if self.max_time == i64::MIN {
            return;
        }
        let horizon = self.max_time.saturating_sub(r.ms);
        let expired = r.index.take_expired(horizon);
        if expired.is_empty() {
            return;
        }
        debug!(
            table = self.table.as_ref().map(|t| t.name.as_str()),
            expired = expired.len(),
            live = r.index.len(),
            horizon,
            "windows expired"
        );
        writes.extend(expired.iter().map(|key| (key.to_vec(), None)));
    }

    /// Writes everything buffered: appends (and syncs) topic records, inside
    /// `transaction` when given, and adds the table's row writes, and the
    /// deletes of expired rows, to `batch`; returns the new log ends to
    /// commit. Once `batch` has landed, [`Sink::publish`] shows the rows to
    /// pull queries.
    pub fn flush(
        &mut self,
        log: &dyn LogBackend,
        batch: &mut WriteBatch,
        transaction: Option<&str>,
    ) -> Result<Vec<(String, u32, u64)>> {
        if self.table.is_some() {
            let mut writes = Vec::with_capacity(self.rows.len());
            for (key, change) in std::mem::take(&mut self.rows) {
                if let Some(r) = &mut self.retention {
                    let end = change.row.get(r.end_col).and_then(Value::as_i64);
                    match end {
                        Some(end) if change.live => r.index.upsert(&key, end),
                        _ => r.index.remove(&key),
                    }
                }
                let value = change.live.then(|| {
                    // The columns plus ROWTIME.
                    let mut v = Vec::new();
                    codec::encode_row_parts(&[&change.row, &[Value::BigInt(change.time)]], &mut v);
                    v
                });
                writes.push((key, value));
                self.push_record(&change.row, None, change.time, !change.live);
            }
            // After the writes: a delete applied after a put of the same key
            // removes it, so a row written already expired is not kept.
            self.expire(&mut writes);
            if let Some(table) = &mut self.table {
                table.writes = writes;
                table.log_writes(batch)?;
            }
        }
        let mut ends = Vec::new();
        let Some((topic, partitions)) = self.topic.clone() else {
            self.clear_records();
            return Ok(ends);
        };
        for p in 0..partitions {
            let bytes = &self.bytes;
            let part = |r: &Option<Range<usize>>| r.clone().and_then(|r| bytes.get(r));
            let refs: Vec<RecordRef<'_>> = self
                .records
                .iter()
                .filter(|r| r.partition == p)
                .map(|r| RecordRef {
                    timestamp: r.timestamp,
                    key: part(&r.key),
                    value: part(&r.value),
                })
                .collect();
            if refs.is_empty() {
                continue;
            }
            let end = match transaction {
                Some(writer) => log.append_in(writer, &topic, p, &refs)?,
                None => log.append(&topic, p, &refs)?,
            };
            log.sync(&topic, p, end)?;
            ends.push((topic.clone(), p, end));
        }
        self.clear_records();
        Ok(ends)
    }

    /// Shows the rows of the commit that just landed to pull queries.
    pub fn publish(&mut self) {
        let Some(table) = &mut self.table else {
            return;
        };
        if table.writes.is_empty() {
            return;
        }
        let mut rows = engine::write(&table.rows);
        for (key, value) in table.writes.drain(..) {
            match value {
                Some(v) => rows.insert(key, v),
                None => rows.remove(&key),
            };
        }
    }

    fn clear_records(&mut self) {
        self.records.clear();
        self.bytes.clear();
        if self.bytes.capacity() > KEEP_BYTES {
            self.bytes = Vec::new();
        }
    }
}

impl Table {
    /// Adds this commit's row writes to `batch`: appended to the log, or,
    /// when the log has outgrown the rows, as a snapshot of every row.
    fn log_writes(&mut self, batch: &mut WriteBatch) -> Result<()> {
        if self.writes.is_empty() {
            return Ok(());
        }
        if !self.log.wants_snapshot() {
            self.log.append(&self.writes, batch);
            return Ok(());
        }
        // The rows as of this commit, merged in key order without a copy
        // of the table (which doubled a large table's memory at each
        // snapshot).
        let rows = engine::read(&self.rows);
        let mut writes: Vec<&StateWrite> = self.writes.iter().collect();
        // Stable: of one key's writes, the last counts.
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        let merged = merge_writes(rows.iter(), &writes);
        self.log.write_snapshot(&self.store, merged, batch)?;
        Ok(())
    }
}

/// `rows` (in key order) with `writes` (sorted by key, stably) applied: a
/// put replaces or adds its row, a delete drops it; of several writes to
/// one key, the last counts.
fn merge_writes<'a>(
    rows: impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>,
    writes: &'a [&'a StateWrite],
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    let mut rows = rows.peekable();
    let mut writes = writes.iter().peekable();
    std::iter::from_fn(move || loop {
        let row_first = match (rows.peek(), writes.peek()) {
            (None, None) => return None,
            (Some((k, _)), w) => w.is_none_or(|w| w.0 > **k),
            (None, Some(_)) => false,
        };
        if row_first {
            return rows.next().map(|(k, v)| (k.as_slice(), v.as_slice()));
        }
        let mut last = writes.next()?;
        while writes.peek().is_some_and(|n| n.0 == last.0) {
            last = writes.next()?;
        }
        if rows.peek().is_some_and(|(k, _)| **k == last.0) {
            rows.next();
        }
        if let Some(v) = &last.1 {
            return Some((last.0.as_slice(), v.as_slice()));
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn merged_writes_are_the_writes_applied_in_order(
            rows in proptest::collection::btree_map(0u8..20, any::<u8>(), 0..12),
            writes in proptest::collection::vec((0u8..20, proptest::option::of(any::<u8>())), 0..20),
        ) {
            let rows: rill_storage::state_log::Entries =
                rows.into_iter().map(|(k, v)| (vec![k], vec![v])).collect();
            let writes: Vec<StateWrite> =
                writes.into_iter().map(|(k, v)| (vec![k], v.map(|v| vec![v]))).collect();
            let mut want = rows.clone();
            for (k, v) in &writes {
                match v {
                    Some(v) => want.insert(k.clone(), v.clone()),
                    None => want.remove(k),
                };
            }
            let mut sorted: Vec<&StateWrite> = writes.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let got: Vec<(Vec<u8>, Vec<u8>)> = merge_writes(rows.iter(), &sorted)
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect();
            prop_assert_eq!(got, want.into_iter().collect::<Vec<_>>());
        }
    }
}
