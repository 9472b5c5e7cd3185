//! The embedded log: topics as segment files under the data directory.
//!
//! An append is in the segment files at once but committed only when the
//! store batch recording its end lands (an INSERT's, or a query's together
//! with its state). Readers see committed records only: recovery cuts every
//! partition back to its committed end, so a record seen before its commit
//! could vanish under a query that already counted it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use rill_storage::{Log, LogOptions, Record, RecordRef, Result};
use tracing::warn;

use super::{LogBackend, TopicSpec};

pub struct EmbeddedLog {
    log: Log,
    /// Committed end per partition; absent means 0.
    committed: Mutex<HashMap<(String, u32), u64>>,
}

impl EmbeddedLog {
    /// Opens the log under `dir` and starts a thread that applies topics'
    /// retention every `retention_check` (it ends with the log).
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        retention_check: Duration,
    ) -> Result<Arc<EmbeddedLog>> {
        let log = Arc::new(EmbeddedLog {
            log: Log::open_with(dir, LogOptions { segment_bytes })?,
            committed: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&log);
        let spawned = std::thread::Builder::new()
            .name("log-retention".into())
            .spawn(move || retention_loop(&weak, retention_check));
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start the log retention thread: topics keep every record");
        }
        Ok(log)
    }

    /// Deletes what topics' retention no longer keeps, never records that
    /// are not committed yet.
    fn apply_retention(&self) -> Result<u64> {
        self.log
            .apply_retention(SystemTime::now(), |t, p| self.committed_end(t, p))
    }

    fn committed(&self) -> MutexGuard<'_, HashMap<(String, u32), u64>> {
        self.committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn committed_end(&self, topic: &str, partition: u32) -> u64 {
        self.committed()
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0)
    }
}

impl LogBackend for EmbeddedLog {
    fn create_topic(&self, name: &str, spec: &TopicSpec) -> Result<()> {
        self.log
            .create_topic_with(name, spec.partitions, spec.retention)
    }

    fn topic_partitions(&self, name: &str) -> Option<u32> {
        self.log.topic_partitions(name)
    }

    fn topics(&self) -> Vec<(String, u32)> {
        self.log.topics()
    }

    fn delete_topic(&self, name: &str) -> Result<()> {
        self.log.delete_topic(name)?;
        self.committed().retain(|(t, _), _| t != name);
        Ok(())
    }

    fn append(&self, topic: &str, partition: u32, records: &[RecordRef<'_>]) -> Result<u64> {
        self.log.append(topic, partition, records)
    }

    fn sync(&self, topic: &str, partition: u32, upto: u64) -> Result<()> {
        self.log.sync(topic, partition, upto)
    }

    fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
        out: &mut Vec<Record>,
    ) -> Result<u64> {
        let end = self.committed_end(topic, partition);
        if from >= end {
            // Still an error for a topic or partition that does not exist.
            self.log.read(topic, partition, from, 0, out)?;
            return Ok(from);
        }
        let max = max.min(usize::try_from(end - from).unwrap_or(usize::MAX));
        let start = out.len();
        self.log.read(topic, partition, from, max, out)?;
        let keep = out[start..].partition_point(|r| r.offset < end);
        out.truncate(start + keep);
        if let Some(first) = out.get(start).filter(|r| r.offset > from) {
            warn!(
                topic,
                partition,
                from,
                to = first.offset,
                "records deleted by the topic's retention before they were read: skipped"
            );
        }
        Ok(out[start..].last().map_or(from, |r| r.offset + 1))
    }

    fn start_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        self.log.start_offset(topic, partition)
    }

    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        let appended = self.log.end_offset(topic, partition)?;
        Ok(appended.min(self.committed_end(topic, partition)))
    }

    fn recover(&self, ends: &HashMap<(String, u32), u64>) -> Result<()> {
        let mut committed = HashMap::new();
        for (topic, partitions) in self.log.topics() {
            for partition in 0..partitions {
                let key = (topic.clone(), partition);
                let end = ends.get(&key).copied().unwrap_or(0);
                if self.log.end_offset(&topic, partition)? > end {
                    warn!(topic, partition, end, "truncating uncommitted log tail");
                    self.log.truncate(&topic, partition, end)?;
                }
                committed.insert(key, end);
            }
        }
        *self.committed() = committed;
        Ok(())
    }

    fn discard_uncommitted(&self, topic: &str) -> Result<()> {
        for partition in 0..self.log.topic_partitions(topic).unwrap_or(0) {
            let end = self.committed_end(topic, partition);
            if self.log.end_offset(topic, partition)? > end {
                warn!(
                    topic,
                    partition, end, "discarding records of a failed commit"
                );
                self.log.truncate(topic, partition, end)?;
            }
        }
        Ok(())
    }

    fn publish_end(&self, topic: &str, partition: u32, end: u64) {
        let mut committed = self.committed();
        let slot = committed.entry((topic.to_string(), partition)).or_insert(0);
        if end > *slot {
            *slot = end;
            drop(committed);
            self.log.notify();
        }
    }

    fn appended(&self) -> u64 {
        self.log.appended()
    }

    fn wait_for_append(&self, seen: u64, timeout: Duration) -> u64 {
        self.log.wait_for_append(seen, timeout)
    }

    fn name(&self) -> &'static str {
        "embedded"
    }
}

fn retention_loop(log: &Weak<EmbeddedLog>, every: Duration) {
    loop {
        std::thread::sleep(every);
        let Some(log) = log.upgrade() else {
            return;
        };
        if let Err(e) = log.apply_retention() {
            warn!(error = %e, "log retention failed; trying again later");
        }
    }
}
