//! The embedded log: topics as segment files under the data directory.

use std::path::Path;
use std::time::Duration;

use rill_storage::{Log, Record, RecordRef, Result};

use super::{LogBackend, TopicSpec};

pub struct EmbeddedLog {
    log: Log,
}

impl EmbeddedLog {
    pub fn open(dir: &Path) -> Result<EmbeddedLog> {
        Ok(EmbeddedLog {
            log: Log::open(dir)?,
        })
    }
}

impl LogBackend for EmbeddedLog {
    fn create_topic(&self, name: &str, spec: &TopicSpec) -> Result<()> {
        self.log.create_topic(name, spec.partitions)
    }

    fn topic_partitions(&self, name: &str) -> Option<u32> {
        self.log.topic_partitions(name)
    }

    fn topics(&self) -> Vec<(String, u32)> {
        self.log.topics()
    }

    fn delete_topic(&self, name: &str) -> Result<()> {
        self.log.delete_topic(name)
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
    ) -> Result<()> {
        self.log.read(topic, partition, from, max, out)
    }

    fn start_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        self.log.start_offset(topic, partition)
    }

    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        self.log.end_offset(topic, partition)
    }

    fn truncate(&self, topic: &str, partition: u32, end: u64) -> Result<()> {
        self.log.truncate(topic, partition, end)
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
