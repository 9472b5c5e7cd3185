//! Log backends: where topics live. The embedded log (segment files) is the
//! default; Kafka comes with `--kafka-brokers`. Everything above this module
//! sees topics only through [`LogBackend`].

pub mod embedded;
pub mod kafka;

use std::collections::HashMap;
use std::time::Duration;

use rill_storage::{Record, RecordRef, Result, Retention};

/// Retention of a stream's topic when RETENTION_MS is not given (Kafka's
/// and ksqlDB's default: 7 days).
pub const STREAM_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;

fn no_transactions() -> rill_storage::StorageError {
    rill_storage::StorageError::InvalidArgument("this log has no transactions".into())
}

/// How to lay out a topic that rill creates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopicSpec {
    pub partitions: u32,
    /// Replication factor; `None` takes the cluster's default. The embedded
    /// log keeps one copy whatever this says.
    pub replicas: Option<u16>,
    /// A table's changelog: Kafka keeps the latest record per key. The
    /// embedded log keeps every record either way.
    pub compacted: bool,
    /// How long (and how much) the topic keeps; for a compacted topic, the
    /// limit on top of compaction.
    pub retention: Retention,
}

/// Topics of partitioned, offset-addressed records.
///
/// # Invariants
/// Offsets in a partition are consecutive from `start_offset`; a record
/// below `end_offset` never changes once `sync` covered it.
pub trait LogBackend: Send + Sync {
    /// Creates a topic, or checks an existing one has `spec.partitions`.
    fn create_topic(&self, name: &str, spec: &TopicSpec) -> Result<()>;
    fn topic_partitions(&self, name: &str) -> Option<u32>;
    /// All topics with their partition counts, sorted by name.
    fn topics(&self) -> Vec<(String, u32)>;
    fn delete_topic(&self, name: &str) -> Result<()>;
    /// Appends records (not yet durable); returns the new end offset.
    fn append(&self, topic: &str, partition: u32, records: &[RecordRef<'_>]) -> Result<u64>;
    /// Makes everything below `upto` durable.
    fn sync(&self, topic: &str, partition: u32, upto: u64) -> Result<()>;
    /// Exactly-once writers (Kafka transactions, `writer` being the
    /// transactional id): what `append_in` produces between this and
    /// `commit_transaction` becomes visible to read_committed readers
    /// together, or not at all. The first use fences an earlier process
    /// with the same writer and aborts its open transaction. A backend
    /// whose commits are atomic anyway has none.
    fn begin_transaction(&self, _writer: &str) -> Result<()> {
        Err(no_transactions())
    }
    /// Takes over `writer` before reading what it committed: fences an
    /// earlier process using it and aborts that process's open
    /// transaction, so read_committed readers are not held back by it.
    fn fence(&self, _writer: &str) -> Result<()> {
        Err(no_transactions())
    }
    fn append_in(
        &self,
        _writer: &str,
        _topic: &str,
        _partition: u32,
        _records: &[RecordRef<'_>],
    ) -> Result<u64> {
        Err(no_transactions())
    }
    fn commit_transaction(&self, _writer: &str) -> Result<()> {
        Err(no_transactions())
    }
    fn abort_transaction(&self, _writer: &str) -> Result<()> {
        Err(no_transactions())
    }
    /// Appends up to `max` records at offsets >= `from` to `out`; returns
    /// the offset to read from next: past the last record appended, or
    /// further when the log holds offsets without records (the markers of
    /// Kafka transactions) up to where the read stopped.
    fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
        out: &mut Vec<Record>,
    ) -> Result<u64>;
    fn start_offset(&self, topic: &str, partition: u32) -> Result<u64>;
    /// The end readers see: past the last committed record.
    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64>;
    /// At startup, before any reader: cuts every partition back to its
    /// committed end in `ends` (absent: 0), dropping records of appends
    /// whose commit did not land, and publishes those ends. A backend that
    /// cannot cut a log back (Kafka) keeps its records.
    fn recover(&self, ends: &HashMap<(String, u32), u64>) -> Result<()>;
    /// Makes records below `end` visible to readers once the commit that
    /// covers them has landed in the store.
    ///
    /// # Invariants
    /// A reader never sees a record that a crash could still cut away, so
    /// no query's state or offsets can count a record that recovery drops.
    fn publish_end(&self, topic: &str, partition: u32, end: u64);
    /// After a commit failed: drops records appended to `topic` past its
    /// committed ends, so the writer can retry without duplicating them.
    /// The caller excludes other writers of the topic. A backend that
    /// cannot cut a log back (Kafka) keeps them: its sinks are
    /// at-least-once.
    fn discard_uncommitted(&self, _topic: &str) -> Result<()> {
        Ok(())
    }
    /// A counter bumped by every append anywhere.
    fn appended(&self) -> u64;
    /// Blocks until `appended()` differs from `seen` or the timeout passes.
    fn wait_for_append(&self, seen: u64, timeout: Duration) -> u64;
    /// Publishes how far consumer group `group` has read `topic` (the next
    /// offset per partition) so lag tools can show it. Informative only:
    /// queries resume from the offsets in rill's own store.
    fn report_progress(&self, _group: &str, _topic: &str, _offsets: &[u64]) -> Result<()> {
        Ok(())
    }
    /// A short name for SHOW and logs.
    fn name(&self) -> &'static str;
}
