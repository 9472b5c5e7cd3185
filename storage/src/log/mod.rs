//! The embedded topic log: Kafka's log design on local files.
//!
//! Each topic partition is a directory of append-only segment files,
//! `<dir>/log/<topic>/<partition>/<base_offset:020>.seg`; records get
//! consecutive offsets per partition. Appends are one buffered write per
//! batch and reads are large sequential `pread`s, so both run at disk speed;
//! sled is never on this path.
//!
//! Durability is explicit: [`Log::append`] does not fsync, [`Log::sync`]
//! does, once for all callers that queued meanwhile (group commit). After a
//! crash, [`Log::open`] drops a torn tail, and the server then
//! [`Log::truncate`]s each partition back to the end committed in the state
//! store, so records of a commit that never finished are never seen.
//!
//! This module never interprets keys or values, and never blocks on
//! anything but its own locks and the disk.

mod partition;
mod record;
mod segment;
mod signal;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

pub use record::{Record, RecordRef};

use crate::error::{Result, StorageError};
use partition::Partition;
use signal::AppendSignal;

/// Tuning of the embedded log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Size at which a partition starts a new segment file. Bigger segments
    /// mean fewer files; smaller ones make truncation and retention finer
    /// grained. A batch is never split, so a segment can exceed this
    /// by one batch.
    pub segment_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            segment_bytes: 64 << 20,
        }
    }
}

/// Directory entries starting with this are work in progress (a topic being
/// created or deleted). It cannot start a valid topic name, and such
/// leftovers are removed at open.
const SCRATCH_PREFIX: char = '~';

/// How long a topic keeps records, as Kafka's `retention.ms` and
/// `retention.bytes` (per partition): whole segments other than the one
/// being written are deleted, oldest first, once they are older than `ms`
/// (by the time of their last append) or the partition is larger than
/// `bytes` without them. `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Retention {
    pub ms: Option<u64>,
    pub bytes: Option<u64>,
}

/// A topic's settings, kept in `<topic>/topic.json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct TopicConfig {
    retention: Retention,
}

const TOPIC_CONFIG_FILE: &str = "topic.json";

struct Topic {
    config: TopicConfig,
    partitions: Vec<Arc<Partition>>,
}

/// The embedded log of one data directory. Share it behind an `Arc`: every
/// method takes `&self` and is safe to call from many threads.
///
/// # Invariants
///
/// - Offsets of a partition are consecutive; a read never returns a record
///   that is not completely appended, and never skips one.
/// - After [`Log::sync`]`(t, p, n)` returns, records below `n` survive a
///   crash; appended but unsynced records may be lost, but only as a suffix.
pub struct Log {
    root: PathBuf,
    options: LogOptions,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    signal: AppendSignal,
    fsyncs: AtomicU64,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("root", &self.root)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Checks a topic name against Kafka's rules (so a statement works on both
/// backends), which also makes it a safe directory name.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("a topic name cannot be empty")
    } else if name.len() > 249 {
        Some("a topic name can have at most 249 characters")
    } else if name == "." || name == ".." {
        Some("a topic name cannot be \".\" or \"..\"")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        Some("use only ASCII letters, digits, '.', '_' and '-'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StorageError::InvalidTopicName {
            topic: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

impl Log {
    /// Opens (or creates) the log under `<dir>/log` with default options.
    pub fn open(dir: &Path) -> Result<Log> {
        Log::open_with(dir, LogOptions::default())
    }

    /// Opens (or creates) the log under `<dir>/log`: finds every topic,
    /// drops torn tails of the last segment of each partition, and removes
    /// leftovers of topic creations or deletions cut short by a crash.
    pub fn open_with(dir: &Path, options: LogOptions) -> Result<Log> {
        let root = dir.join("log");
        std::fs::create_dir_all(&root).map_err(|e| StorageError::io(&root, e))?;
        let mut topics = BTreeMap::new();
        let entries = std::fs::read_dir(&root).map_err(|e| StorageError::io(&root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io(&root, e))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                tracing::warn!(path = %path.display(), "ignoring non-utf-8 entry in log directory");
                continue;
            };
            let is_dir = entry
                .file_type()
                .map_err(|e| StorageError::io(&path, e))?
                .is_dir();
            if name.starts_with(SCRATCH_PREFIX) {
                let removed = if is_dir {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(|e| StorageError::io(&path, e))?;
                continue;
            }
            if !is_dir || validate_topic_name(&name).is_err() {
                tracing::warn!(path = %path.display(), "ignoring unexpected entry in log directory");
                continue;
            }
            let topic = load_topic(&name, &path, options)?;
            topics.insert(name, Arc::new(topic));
        }
        tracing::info!(root = %root.display(), topics = topics.len(), "log opened");
        Ok(Log {
            root,
            options,
            topics: RwLock::new(topics),
            signal: AppendSignal::default(),
            fsyncs: AtomicU64::new(0),
        })
    }

    fn read_topics(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        // The map is only replaced entry by entry; a panic cannot leave it
        // half-updated.
        self.topics.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_topics(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(|e| e.into_inner())
    }

    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>> {
        let topics = self.read_topics();
        let Some(t) = topics.get(topic) else {
            return Err(StorageError::UnknownTopic {
                topic: topic.to_string(),
            });
        };
        match usize::try_from(partition)
            .ok()
            .and_then(|p| t.partitions.get(p))
        {
            Some(p) => Ok(Arc::clone(p)),
            None => Err(StorageError::UnknownPartition {
                topic: topic.to_string(),
                partition,
                partitions: u32::try_from(t.partitions.len()).unwrap_or(u32::MAX),
            }),
        }
    }

    /// Creates a topic with `partitions` empty partitions. Creating an
    /// existing topic with the same count succeeds (so `CREATE STREAM` over
    /// an existing topic works); a different count is an error, because
    /// keys would be routed to other partitions than before.
    ///
    /// Creation is atomic on disk: the topic is built in a scratch directory
    /// and renamed into place.
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        self.create_topic_with(name, partitions, Retention::default())
    }

    /// [`Log::create_topic`] with a retention for a new topic (an existing
    /// topic keeps its own).
    pub fn create_topic_with(
        &self,
        name: &str,
        partitions: u32,
        retention: Retention,
    ) -> Result<()> {
        validate_topic_name(name)?;
        if partitions == 0 {
            return Err(StorageError::InvalidArgument(format!(
                "topic \"{name}\" needs at least one partition"
            )));
        }
        let mut topics = self.write_topics();
        if let Some(existing) = topics.get(name) {
            let existing = u32::try_from(existing.partitions.len()).unwrap_or(u32::MAX);
            if existing == partitions {
                return Ok(());
            }
            return Err(StorageError::TopicExists {
                topic: name.to_string(),
                existing,
                requested: partitions,
            });
        }
        let scratch = self.root.join(format!("{SCRATCH_PREFIX}new-{name}"));
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch).map_err(|e| StorageError::io(&scratch, e))?;
        }
        for p in 0..partitions {
            let dir = scratch.join(p.to_string());
            std::fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
            segment::Segment::create(&dir, 0)?;
            segment::sync_dir(&dir)?;
        }
        let config = TopicConfig { retention };
        let path = scratch.join(TOPIC_CONFIG_FILE);
        let bytes = serde_json::to_vec(&config)
            .map_err(|e| StorageError::Internal(format!("topic config: {e}")))?;
        std::fs::write(&path, bytes).map_err(|e| StorageError::io(&path, e))?;
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| StorageError::io(&path, e))?;
        segment::sync_dir(&scratch)?;
        let dir = self.root.join(name);
        std::fs::rename(&scratch, &dir).map_err(|e| StorageError::io(&dir, e))?;
        segment::sync_dir(&self.root)?;
        let topic = load_topic(name, &dir, self.options)?;
        topics.insert(name.to_string(), Arc::new(topic));
        tracing::info!(topic = name, partitions, ?retention, "topic created");
        Ok(())
    }

    /// The retention of `name`, `None` if the topic does not exist.
    pub fn topic_retention(&self, name: &str) -> Option<Retention> {
        self.read_topics().get(name).map(|t| t.config.retention)
    }

    /// Deletes what retention no longer keeps in every partition (see
    /// [`Retention`]), never records at or past `committed(topic,
    /// partition)`. Returns the number of records deleted. Readers at a
    /// deleted offset continue from the new start offset.
    pub fn apply_retention(
        &self,
        now: std::time::SystemTime,
        committed: impl Fn(&str, u32) -> u64,
    ) -> Result<u64> {
        let topics: Vec<(String, Arc<Topic>)> = self
            .read_topics()
            .iter()
            .map(|(n, t)| (n.clone(), Arc::clone(t)))
            .collect();
        let mut deleted = 0;
        for (name, topic) in topics {
            for (p, partition) in (0u32..).zip(&topic.partitions) {
                let below = committed(&name, p);
                deleted += partition.apply_retention(topic.config.retention, now, below)?;
            }
        }
        Ok(deleted)
    }

    /// The partition count of `name`, `None` if the topic does not exist.
    pub fn topic_partitions(&self, name: &str) -> Option<u32> {
        self.read_topics()
            .get(name)
            .map(|t| u32::try_from(t.partitions.len()).unwrap_or(u32::MAX))
    }

    /// Every topic with its partition count, sorted by name (for `SHOW
    /// TOPICS`).
    pub fn topics(&self) -> Vec<(String, u32)> {
        self.read_topics()
            .iter()
            .map(|(name, t)| {
                let n = u32::try_from(t.partitions.len()).unwrap_or(u32::MAX);
                (name.clone(), n)
            })
            .collect()
    }

    /// Deletes a topic and its files. Appends racing with the deletion fail
    /// as for an unknown topic; reads already running finish on the
    /// unlinked files.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let mut topics = self.write_topics();
        if !topics.contains_key(name) {
            return Err(StorageError::UnknownTopic {
                topic: name.to_string(),
            });
        }
        let dir = self.root.join(name);
        let scratch = self.root.join(format!("{SCRATCH_PREFIX}del-{name}"));
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch).map_err(|e| StorageError::io(&scratch, e))?;
        }
        // Rename first so a crash midway never leaves a half-deleted topic
        // that open would load, and a failed rename leaves the topic intact.
        std::fs::rename(&dir, &scratch).map_err(|e| StorageError::io(&dir, e))?;
        segment::sync_dir(&self.root)?;
        if let Some(topic) = topics.remove(name) {
            for p in &topic.partitions {
                p.mark_deleted();
            }
        }
        drop(topics);
        std::fs::remove_dir_all(&scratch).map_err(|e| StorageError::io(&scratch, e))?;
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Appends `records` to one partition with consecutive offsets, in one
    /// write and without fsync; returns the end offset after them (the last
    /// record's offset plus one). Call [`Log::sync`] with that end before
    /// acknowledging the records to a client.
    ///
    /// Appends to one partition from many threads are serialized; each
    /// batch stays contiguous.
    pub fn append(&self, topic: &str, partition: u32, records: &[RecordRef<'_>]) -> Result<u64> {
        let end = self.partition(topic, partition)?.append(records)?;
        if !records.is_empty() {
            self.signal.bump();
        }
        Ok(end)
    }

    /// Makes every record of the partition below `upto` durable. If another
    /// caller's fsync already covered `upto` it returns at once; otherwise
    /// it fsyncs everything appended so far, covering the callers queued
    /// behind it (group commit). `upto` past the end covers the end.
    pub fn sync(&self, topic: &str, partition: u32, upto: u64) -> Result<()> {
        if self.partition(topic, partition)?.sync(upto)? {
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Number of fsyncs [`Log::sync`] has done since open; compared with
    /// the number of calls it shows how well group commit is working.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Appends to `out` up to `max_records` records of the partition with
    /// offsets `from` or later, in offset order. Records not completely
    /// appended yet are not returned; a `from` before the start offset reads
    /// from the start. Returns nothing when `from` is at the end: wait with
    /// [`Log::wait_for_append`] and read again.
    pub fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max_records: usize,
        out: &mut Vec<Record>,
    ) -> Result<()> {
        self.partition(topic, partition)?
            .read(from, max_records, out)
    }

    /// The offset the next appended record will get (Kafka's high-water
    /// mark, since every append is visible at once).
    pub fn end_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        Ok(self.partition(topic, partition)?.end_offset())
    }

    /// The first offset still in the partition.
    pub fn start_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        Ok(self.partition(topic, partition)?.start_offset())
    }

    /// Drops every record at offset `end` or later, durably. Used at
    /// recovery to cut a partition back to the end committed in the state
    /// store. A no-op when `end` is at or past the end offset.
    ///
    /// # Invariants
    ///
    /// Not meant to run while the partition is being read: a concurrent
    /// read may return records being dropped or fail as corrupt.
    pub fn truncate(&self, topic: &str, partition: u32, end: u64) -> Result<()> {
        self.partition(topic, partition)?.truncate(end)
    }

    /// Wakes `wait_for_append` waiters without an append: something else
    /// they wait for (records becoming committed) happened.
    pub fn notify(&self) {
        self.signal.bump();
    }

    /// A counter bumped on every non-empty append to any partition. Read it
    /// before reading the log, then pass it to [`Log::wait_for_append`], so
    /// an append between the read and the wait is not missed.
    pub fn appended(&self) -> u64 {
        self.signal.current()
    }

    /// Blocks the calling (non-async) thread until the append counter
    /// differs from `seen` or `timeout` passes; returns the counter.
    pub fn wait_for_append(&self, seen: u64, timeout: Duration) -> u64 {
        self.signal.wait(seen, timeout)
    }
}

/// Opens every partition of the topic in `dir`; partition directories must
/// be exactly `0..n`.
fn load_topic(name: &str, dir: &Path, options: LogOptions) -> Result<Topic> {
    let mut ids = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let file_name = entry.file_name();
        if file_name == TOPIC_CONFIG_FILE {
            continue;
        }
        match file_name.to_str().and_then(|n| n.parse::<u32>().ok()) {
            Some(id) if file_name.to_str() == Some(id.to_string().as_str()) => ids.push(id),
            _ => {
                tracing::warn!(path = %entry.path().display(), "ignoring unexpected entry in topic directory")
            }
        }
    }
    ids.sort_unstable();
    let contiguous = ids
        .iter()
        .enumerate()
        .all(|(i, &id)| u32::try_from(i).ok() == Some(id));
    if ids.is_empty() || !contiguous {
        return Err(StorageError::corrupt(
            dir.display().to_string(),
            format!("topic \"{name}\" has partition directories {ids:?}, expected 0..n"),
        ));
    }
    let partitions = ids
        .into_iter()
        .map(|id| {
            Partition::open(name, id, &dir.join(id.to_string()), options.segment_bytes)
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>>>()?;
    // Topics created before settings were kept have none: no retention.
    let path = dir.join(TOPIC_CONFIG_FILE);
    let config = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            StorageError::corrupt(path.display().to_string(), format!("topic settings: {e}"))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => TopicConfig::default(),
        Err(e) => return Err(StorageError::io(&path, e)),
    };
    Ok(Topic { config, partitions })
}

#[cfg(test)]
mod tests;
