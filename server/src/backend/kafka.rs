//! The Kafka log backend: every topic is a topic of a Kafka cluster, reached
//! through librdkafka (the rdkafka crate).
//!
//! This is the only module that names rdkafka types (DESIGN.md): the rest of
//! the server sees a [`LogBackend`] whose offsets are Kafka offsets. The
//! trait is synchronous and is called from plain threads and from
//! `tokio::task::block_in_place`, so futures rdkafka hands out are driven
//! with `futures::executor::block_on`; this module never starts a runtime.
//!
//! Clients, all created once by [`KafkaLog::connect`] except the readers:
//! - one idempotent producer (acks=all) for every append;
//! - one admin client for creating and deleting topics;
//! - a pool of readers, one `BaseConsumer` each, assigned by hand to one
//!   partition (no group subscription, no offset commits: rill keeps its
//!   offsets in sled with the state they produced).
//!
//! What Kafka cannot do that the embedded log does: cut a partition back
//! ([`LogBackend::recover`] keeps every record), keep a
//! batch contiguous when two processes append to one partition at once, and
//! make offsets consecutive in compacted or transactional topics (readers go
//! by each record's offset, never by counting).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use rill_storage::log::validate_topic_name;
use rill_storage::{Record, RecordRef, Result, Retention, StorageError};
use tracing::{debug, info, warn};

use super::{LogBackend, TopicSpec};

mod batch;

/// How long a metadata, watermark or admin request may take before the
/// operation fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long transaction calls (init, commit, abort) may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `create_topic` (and `delete_topic`) wait for the metadata to
/// show the change. Leaders need not be elected yet: the producer holds
/// records until they are.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read waits for its first record before asking the broker
/// whether there is anything to wait for: short, because the caller reads
/// every partition in turn; it lets a fetch already under way deliver.
const FIRST_RECORD_WAIT: Duration = Duration::from_millis(10);
/// How long a read that got nothing asks the broker for the partition's
/// end before giving up for this call (the broker may be away).
const END_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a read waits when the broker says records past `from` exist
/// (a fresh reader still connecting), so that "no records" keeps meaning
/// "at the end" for callers that scan up to a high-water mark.
const KNOWN_RECORDS_WAIT: Duration = Duration::from_secs(5);
/// Longest wait in [`LogBackend::wait_for_append`]: records produced by
/// other processes do not bump the local counter, so waiters must look
/// again soon.
const MAX_APPEND_WAIT: Duration = Duration::from_millis(100);
/// Idle readers kept per partition; more are closed, least recently used
/// first.
const MAX_IDLE_READERS: usize = 8;
/// An idle reader at another position than asked is reassigned only after
/// this long without use, so two interleaved sequential readers of one
/// partition do not keep moving one reader back and forth (each move drops
/// its prefetched records).
const REUSE_AFTER: Duration = Duration::from_secs(1);
/// Idle readers unused this long are closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// librdkafka's default `message.max.bytes`, the limit reported when a
/// record is refused for its size and the setting was not changed.
const DEFAULT_MESSAGE_MAX_BYTES: u64 = 1_000_000;

/// Topics of a Kafka cluster as a [`LogBackend`].
///
/// # Invariants
/// - `append` returns only after every record was acknowledged by all
///   in-sync replicas (acks=all), so `sync` has nothing left to do.
/// - A reader in the pool is idle: no thread polls it. `next` is the offset
///   its consumer will deliver next (records below it were handed out).
pub struct KafkaLog {
    /// The bootstrap servers, for messages.
    brokers: String,
    /// Settings every reader is created with.
    consumer_config: ClientConfig,
    /// `message.max.bytes` of the producer, for size errors.
    message_max_bytes: u64,
    producer: Arc<KafkaProducer>,
    admin: AdminClient<DefaultClientContext>,
    readers: Mutex<ReaderPool>,
    /// The highest end offset per partition this process knows of (its own
    /// appends, and ends it looked up): a reader knows records are coming
    /// even before its fetch returns them.
    known_ends: Mutex<HashMap<(String, u32), u64>>,
    /// A consumer that finds a partition's end by reading (see `end_of`).
    end_probe: Mutex<BaseConsumer>,
    /// What that read found, by the high watermark it started from: while
    /// the watermark stays, no batch was added, so the end is the same.
    probed_ends: Mutex<HashMap<(String, u32), (u64, u64)>>,
    appends: AppendSignal,
    /// One consumer per query's group, used only to commit its progress.
    progress: Mutex<HashMap<String, BaseConsumer>>,
    /// Settings of the producer, for the transactional ones.
    producer_config: ClientConfig,
    /// A transactional producer per exactly-once writer.
    transactions: Mutex<HashMap<String, Arc<KafkaProducer>>>,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("brokers", &self.brokers)
            .finish_non_exhaustive()
    }
}

/// The producers: every record's delivery report goes to the tally of the
/// append that sent it (no future or channel per record).
type KafkaProducer = ThreadedProducer<DeliveryContext>;

/// The producers' context: counts each delivery into its append's
/// [`Deliveries`] (called on the producer's polling thread).
struct DeliveryContext;

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<Deliveries>;

    fn delivery(&self, result: &DeliveryResult<'_>, deliveries: Arc<Deliveries>) {
        let mut tally = lock(&deliveries.tally);
        match result {
            Ok(msg) => tally.last = tally.last.max(u64::try_from(msg.offset()).ok()),
            Err((e, msg)) => {
                if tally.error.is_none() {
                    let bytes =
                        msg.key().map_or(0, <[u8]>::len) + msg.payload().map_or(0, <[u8]>::len);
                    tally.error = Some((e.clone(), bytes));
                }
            }
        }
        tally.delivered += 1;
        if tally.awaited.is_some_and(|n| tally.delivered >= n) {
            deliveries.settled.notify_all();
        }
    }
}

/// The delivery reports of one append so far.
#[derive(Default)]
struct Deliveries {
    tally: Mutex<Tally>,
    settled: Condvar,
}

#[derive(Default)]
struct Tally {
    delivered: usize,
    /// How many records the appending thread waits for, once all are sent.
    awaited: Option<usize>,
    /// The highest offset written.
    last: Option<u64>,
    /// The first failure and the size of its record.
    error: Option<(KafkaError, usize)>,
}

impl Deliveries {
    /// Waits until `sent` records were reported on (librdkafka reports
    /// every record, at the latest when `message.timeout.ms` has passed).
    fn wait_for(&self, sent: usize) -> MutexGuard<'_, Tally> {
        let mut tally = lock(&self.tally);
        tally.awaited = Some(sent);
        while tally.delivered < sent {
            tally = self
                .settled
                .wait(tally)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        tally
    }
}

/// One consumer assigned to one partition.
struct Reader {
    consumer: BaseConsumer,
    /// Offset of the next record the consumer returns.
    next: u64,
    /// The partition ended at `next` when last looked at (the consumer's
    /// end event or the broker's high watermark said so), and nothing was
    /// delivered since.
    at_eof: bool,
    last_used: Instant,
}

/// Idle readers by (topic, partition).
struct ReaderPool {
    idle: HashMap<(String, u32), Vec<Reader>>,
    last_sweep: Instant,
}

/// Counter of this process's appends with a condition variable to wait on.
#[derive(Default)]
struct AppendSignal {
    count: AtomicU64,
    lock: Mutex<()>,
    changed: Condvar,
}

impl AppendSignal {
    fn bump(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        // Taking the lock orders this notify after a waiter's check.
        let _guard = lock(&self.lock);
        self.changed.notify_all();
    }

    fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut guard = lock(&self.lock);
        loop {
            let now = self.count.load(Ordering::SeqCst);
            let left = deadline.saturating_duration_since(Instant::now());
            if now != seen || left.is_zero() {
                return now;
            }
            guard = match self.changed.wait_timeout(guard, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked
/// (every critical section here is a single map update).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wraps a Kafka failure with what rill was doing.
fn kafka_error(doing: impl std::fmt::Display, e: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(format!("kafka: cannot {doing}: {e}"))
}

/// A failed Kafka call: `Unavailable` when the cluster could not be reached
/// (worth waiting for), else `Internal`.
fn kafka_call_error(doing: impl std::fmt::Display, e: &KafkaError) -> StorageError {
    match e.rdkafka_error_code() {
        Some(code) if is_transient(code) => {
            StorageError::Unavailable(format!("kafka: cannot {doing}: {e}"))
        }
        _ => kafka_error(doing, e),
    }
}

/// Codes of a cluster that is away or busy, not of a bad request.
fn is_transient(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::Resolve
    )
}

/// The broker (or librdkafka) says it does not implement the request.
fn is_unsupported(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnsupportedFeature
            | RDKafkaErrorCode::UnsupportedVersion
            | RDKafkaErrorCode::InvalidRequest
    )
}

/// The error code of a failed admin request (rdkafka reports it only in
/// `AdminOp`).
fn admin_code(e: &KafkaError) -> RDKafkaErrorCode {
    match e {
        KafkaError::AdminOp(code) => *code,
        other => other.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
    }
}

fn is_timeout(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::OperationTimedOut | RDKafkaErrorCode::RequestTimedOut
    )
}

fn is_unknown_topic(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
    )
}

/// The timestamp to produce for `rowtime`. librdkafka replaces 0 with the
/// current time, so 0 goes out as Kafka's "no timestamp" (-1), which reads
/// back as 0: ROWTIME 0 round-trips. (-1 itself therefore reads back as 0.)
fn kafka_timestamp(rowtime: i64) -> i64 {
    if rowtime == 0 {
        -1
    } else {
        rowtime
    }
}

/// Kafka's partition number for `partition`.
fn kafka_partition(partition: u32) -> Result<i32> {
    i32::try_from(partition).map_err(|_| {
        StorageError::InvalidArgument(format!("partition {partition} is out of Kafka's range"))
    })
}

impl KafkaLog {
    /// Connects to the cluster at `brokers` (`host:port[,host:port]`) with
    /// `extra` librdkafka settings (SASL, SSL, ...) applied to every client,
    /// and checks that the cluster answers.
    ///
    /// A few settings are forced after `extra` because the backend's
    /// contract depends on them: readers never commit offsets and report the
    /// end of a partition; the producer never creates topics by itself
    /// (a typo in `kafka_topic` must not create a topic with the broker's
    /// default partition count).
    pub fn connect(brokers: &str, extra: &[(String, String)]) -> Result<KafkaLog> {
        if brokers.trim().is_empty() {
            return Err(StorageError::InvalidArgument(
                "the Kafka broker list is empty: give --kafka-brokers host:port".to_string(),
            ));
        }
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", brokers)
            .set("client.id", "rill");

        let mut producer_config = base.clone();
        producer_config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000");
        let mut consumer_config = base.clone();
        consumer_config
            // librdkafka needs a group for `assign`; it is never joined
            // and nothing is committed to it.
            .set("group.id", "rill")
            .set("auto.offset.reset", "earliest")
            .set("queued.min.messages", "20000")
            .set("queued.max.messages.kbytes", "16384")
            // librdkafka pauses a full prefetch queue for 1 s by default,
            // which a reader draining 4096 records at a time hits at once.
            .set("fetch.queue.backoff.ms", "10");
        let mut admin_config = base;
        for (key, value) in extra {
            producer_config.set(key, value);
            consumer_config.set(key, value);
            admin_config.set(key, value);
        }
        producer_config.set("allow.auto.create.topics", "false");
        consumer_config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("allow.auto.create.topics", "false");

        let invalid = |e: KafkaError| {
            StorageError::InvalidArgument(format!("invalid Kafka client settings: {e}"))
        };
        let producer: KafkaProducer = producer_config
            .create_with_context(DeliveryContext)
            .map_err(invalid)?;
        let admin: AdminClient<DefaultClientContext> = admin_config.create().map_err(invalid)?;
        // Validate the reader settings now rather than at the first read.
        let _: BaseConsumer = consumer_config.create().map_err(invalid)?;
        let end_probe: BaseConsumer = consumer_config
            .clone()
            .set("fetch.wait.max.ms", "10")
            .create()
            .map_err(invalid)?;
        let message_max_bytes = producer_config
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);

        let metadata = producer
            .client()
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|e| kafka_error(format_args!("reach brokers \"{brokers}\""), e))?;
        info!(
            brokers,
            cluster_brokers = metadata.brokers().len(),
            topics = metadata.topics().len(),
            "connected to kafka"
        );
        Ok(KafkaLog {
            brokers: brokers.to_string(),
            consumer_config,
            message_max_bytes,
            producer: Arc::new(producer),
            admin,
            readers: Mutex::new(ReaderPool {
                idle: HashMap::new(),
                last_sweep: Instant::now(),
            }),
            known_ends: Mutex::new(HashMap::new()),
            end_probe: Mutex::new(end_probe),
            probed_ends: Mutex::new(HashMap::new()),
            appends: AppendSignal::default(),
            progress: Mutex::new(HashMap::new()),
            producer_config,
            transactions: Mutex::new(HashMap::new()),
        })
    }

    /// The transactional producer of `writer`, created (and its earlier
    /// incarnations fenced, their open transaction aborted) on first use.
    fn transactional(&self, writer: &str) -> Result<Arc<KafkaProducer>> {
        let mut producers = lock(&self.transactions);
        if let Some(p) = producers.get(writer) {
            return Ok(Arc::clone(p));
        }
        let producer: KafkaProducer = self
            .producer_config
            .clone()
            .set("transactional.id", writer)
            .create_with_context(DeliveryContext)
            .map_err(|e| {
                kafka_call_error(format_args!("create transactional producer {writer}"), &e)
            })?;
        producer
            .init_transactions(TRANSACTION_TIMEOUT)
            .map_err(|e| kafka_call_error(format_args!("start transactions of {writer}"), &e))?;
        let producer = Arc::new(producer);
        producers.insert(writer.to_string(), Arc::clone(&producer));
        Ok(producer)
    }

    /// Ends `writer`'s transaction; a failed commit is aborted, and the
    /// producer dropped so the next transaction starts clean.
    fn end_transaction(&self, writer: &str, commit: bool) -> Result<()> {
        let producer = self.transactional(writer)?;
        let ended = if commit {
            producer.commit_transaction(TRANSACTION_TIMEOUT)
        } else {
            producer.abort_transaction(TRANSACTION_TIMEOUT)
        };
        ended.map_err(|e| {
            lock(&self.transactions).remove(writer);
            kafka_call_error(
                format_args!(
                    "{} transaction of {writer}",
                    if commit { "commit" } else { "abort" }
                ),
                &e,
            )
        })
    }

    /// Produces `records` with `producer` and waits for every delivery;
    /// returns the end offset after them.
    fn append_with(
        &self,
        producer: &KafkaProducer,
        topic: &str,
        partition: u32,
        records: &[RecordRef<'_>],
    ) -> Result<u64> {
        if records.is_empty() {
            return self.end_offset(topic, partition);
        }
        let p = kafka_partition(partition)?;
        let deliveries = Arc::new(Deliveries::default());
        let mut sent = 0;
        let mut first_error = None;
        for rec in records {
            let mut br: BaseRecord<'_, [u8], [u8], Arc<Deliveries>> =
                BaseRecord::with_opaque_to(topic, Arc::clone(&deliveries))
                    .partition(p)
                    .timestamp(kafka_timestamp(rec.timestamp));
            if let Some(key) = rec.key {
                br = br.key(key);
            }
            if let Some(value) = rec.value {
                br = br.payload(value);
            }
            let queued = loop {
                match producer.send(br) {
                    Ok(()) => break Ok(()),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The local queue drains as the broker acknowledges.
                        br = back;
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => break Err(e),
                }
            };
            if let Err(e) = queued {
                let bytes = rec.key.map_or(0, <[u8]>::len) + rec.value.map_or(0, <[u8]>::len);
                first_error = Some(self.produce_error(topic, partition, bytes, &e));
                break;
            }
            sent += 1;
        }
        let tally = deliveries.wait_for(sent);
        if let Some(e) = first_error {
            return Err(e);
        }
        if let Some((e, bytes)) = &tally.error {
            return Err(self.produce_error(topic, partition, *bytes, e));
        }
        let Some(last) = tally.last else {
            return Err(StorageError::Internal(format!(
                "kafka: no delivery report for topic \"{topic}\" partition {partition}"
            )));
        };
        let end = last + 1;
        self.learn_end(topic, partition, end);
        self.appends.bump();
        Ok(end)
    }

    /// The partition count of `name` from fresh metadata; `None` when the
    /// cluster does not have the topic.
    fn describe(&self, name: &str) -> Result<Option<u32>> {
        let metadata = self
            .producer
            .client()
            .fetch_metadata(Some(name), REQUEST_TIMEOUT)
            .map_err(|e| {
                kafka_call_error(format_args!("fetch metadata of topic \"{name}\""), &e)
            })?;
        let Some(topic) = metadata.topics().iter().find(|t| t.name() == name) else {
            return Ok(None);
        };
        if let Some(err) = topic.error() {
            let code = RDKafkaErrorCode::from(err);
            if is_unknown_topic(code) {
                return Ok(None);
            }
            // Leader elections and the like: the partitions are still known.
            if topic.partitions().is_empty() {
                let doing = format!("fetch metadata of topic \"{name}\"");
                return Err(if is_transient(code) {
                    StorageError::Unavailable(format!("kafka: cannot {doing}: {code}"))
                } else {
                    kafka_error(doing, code)
                });
            }
        }
        Ok(Some(
            u32::try_from(topic.partitions().len()).unwrap_or(u32::MAX),
        ))
    }

    /// Fails unless `partition` exists in `topic`.
    fn check_partition(&self, topic: &str, partition: u32) -> Result<()> {
        match self.describe(topic)? {
            None => Err(StorageError::UnknownTopic {
                topic: topic.to_string(),
            }),
            Some(partitions) if partition >= partitions => Err(StorageError::UnknownPartition {
                topic: topic.to_string(),
                partition,
                partitions,
            }),
            Some(_) => Ok(()),
        }
    }

    /// Low and high watermarks of a partition.
    fn watermarks(&self, topic: &str, partition: u32) -> Result<(u64, u64)> {
        let p = kafka_partition(partition)?;
        match self
            .producer
            .client()
            .fetch_watermarks(topic, p, REQUEST_TIMEOUT)
        {
            Ok((low, high)) => Ok((
                u64::try_from(low).unwrap_or(0),
                u64::try_from(high).unwrap_or(0),
            )),
            Err(e) => {
                // A missing topic or partition shows as a timeout or an
                // unknown-partition error: say which.
                self.check_partition(topic, partition)?;
                Err(kafka_call_error(
                    format_args!("read the offsets of topic \"{topic}\" partition {partition}"),
                    &e,
                ))
            }
        }
    }

    /// The end of a partition: the broker's high watermark raised to this
    /// process's appends and to what a read from just below it returns.
    /// Some brokers (Tansu) answer ListOffsets(latest) with the first offset
    /// of the partition's last batch + 1; a fetch from there returns the
    /// whole batch, whose last offset + 1 is the end.
    fn end_of(&self, topic: &str, partition: u32, low: u64, high: u64) -> Result<u64> {
        let mut end = high.max(self.known_end(topic, partition));
        if high <= low {
            return Ok(end);
        }
        let key = (topic.to_string(), partition);
        if let Some(&(probed_high, probed_end)) = lock(&self.probed_ends).get(&key) {
            if probed_high == high {
                return Ok(end.max(probed_end));
            }
        }
        let from = i64::try_from(high - 1)
            .map_err(|_| StorageError::InvalidArgument(format!("offset {high} is out of range")))?;
        let probe = lock(&self.end_probe);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, kafka_partition(partition)?, Offset::Offset(from))
            .map_err(|e| kafka_error(format_args!("seek topic \"{topic}\" to {from}"), e))?;
        probe
            .assign(&tpl)
            .map_err(|e| kafka_error(format_args!("assign topic \"{topic}\""), e))?;
        let deadline = Instant::now() + END_CHECK_TIMEOUT;
        let mut got = false;
        loop {
            let wait = if got {
                Duration::ZERO
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            match probe.poll(wait) {
                Some(Ok(msg)) => {
                    if let Ok(o) = u64::try_from(msg.offset()) {
                        end = end.max(o + 1);
                    }
                    got = true;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => {
                    debug!(topic, partition, error = %e, "cannot read the end of a kafka partition");
                    break;
                }
                None => break,
            }
        }
        let _ = probe.unassign();
        if got {
            lock(&self.probed_ends).insert(key, (high, end));
        }
        self.learn_end(topic, partition, end);
        Ok(end)
    }

    /// Waits until the metadata shows `name`; fails if it shows another
    /// partition count (someone else created it meanwhile).
    fn await_topic(&self, name: &str, partitions: u32, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.describe(name) {
                Ok(Some(existing)) if existing == partitions => return Ok(true),
                Ok(Some(existing)) => {
                    return Err(StorageError::TopicExists {
                        topic: name.to_string(),
                        existing,
                        requested: partitions,
                    })
                }
                Ok(None) => {}
                Err(e) => debug!(topic = name, error = %e, "waiting for topic metadata"),
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn admin_options() -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(REQUEST_TIMEOUT))
            .operation_timeout(Some(REQUEST_TIMEOUT))
    }

    /// Maps a failed delivery or enqueue to the storage error a user can act on.
    fn produce_error(
        &self,
        topic: &str,
        partition: u32,
        bytes: usize,
        e: &KafkaError,
    ) -> StorageError {
        match e.rdkafka_error_code() {
            Some(code) if is_unknown_topic(code) => StorageError::UnknownTopic {
                topic: topic.to_string(),
            },
            Some(RDKafkaErrorCode::UnknownPartition) => match self.describe(topic) {
                Ok(Some(partitions)) => StorageError::UnknownPartition {
                    topic: topic.to_string(),
                    partition,
                    partitions,
                },
                _ => StorageError::UnknownTopic {
                    topic: topic.to_string(),
                },
            },
            Some(RDKafkaErrorCode::MessageSizeTooLarge) => StorageError::RecordTooLarge {
                bytes: bytes as u64,
                limit: self.message_max_bytes,
            },
            _ => kafka_error(
                format_args!("produce to topic \"{topic}\" partition {partition}"),
                e,
            ),
        }
    }

    /// An idle reader of the partition at `from`, else one idle long enough
    /// to be moved, else a new one.
    fn checkout(&self, topic: &str, partition: u32, from: u64) -> Result<Reader> {
        let key = (topic.to_string(), partition);
        {
            let mut pool = lock(&self.readers);
            if let Some(idle) = pool.idle.get_mut(&key) {
                if let Some(i) = idle.iter().position(|r| r.next == from) {
                    return Ok(idle.swap_remove(i));
                }
                if let Some(i) = idle
                    .iter()
                    .position(|r| r.last_used.elapsed() >= REUSE_AFTER)
                {
                    return Ok(idle.swap_remove(i));
                }
            }
        }
        self.check_partition(topic, partition)?;
        let consumer: BaseConsumer = self
            .consumer_config
            .create()
            .map_err(|e| kafka_error("create a Kafka consumer", e))?;
        let mut reader = Reader {
            consumer,
            next: from,
            at_eof: false,
            last_used: Instant::now(),
        };
        assign(&mut reader, topic, partition, from)?;
        debug!(topic, partition, from, "kafka reader created");
        Ok(reader)
    }

    /// Returns a reader to the pool; closes readers past the pool's limits.
    fn checkin(&self, topic: &str, partition: u32, mut reader: Reader) {
        reader.last_used = Instant::now();
        let mut closing = Vec::new();
        {
            let mut pool = lock(&self.readers);
            let idle = pool.idle.entry((topic.to_string(), partition)).or_default();
            idle.push(reader);
            if idle.len() > MAX_IDLE_READERS {
                if let Some(i) = idle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, r)| r.last_used)
                    .map(|(i, _)| i)
                {
                    closing.push(idle.swap_remove(i));
                }
            }
            if pool.last_sweep.elapsed() >= IDLE_TIMEOUT / 4 {
                pool.last_sweep = Instant::now();
                for idle in pool.idle.values_mut() {
                    let mut i = 0;
                    while i < idle.len() {
                        if idle[i].last_used.elapsed() >= IDLE_TIMEOUT {
                            closing.push(idle.swap_remove(i));
                        } else {
                            i += 1;
                        }
                    }
                }
                pool.idle.retain(|_, idle| !idle.is_empty());
            }
        }
        // Closing a consumer waits for its threads: not under the lock.
        drop(closing);
    }

    /// The highest end offset of the partition this process knows of.
    fn known_end(&self, topic: &str, partition: u32) -> u64 {
        lock(&self.known_ends)
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0)
    }

    fn learn_end(&self, topic: &str, partition: u32, end: u64) {
        let mut ends = lock(&self.known_ends);
        let slot = ends.entry((topic.to_string(), partition)).or_insert(0);
        *slot = (*slot).max(end);
    }

    /// Reads with a checked-out reader; see [`LogBackend::read`].
    fn read_with(
        &self,
        reader: &mut Reader,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
        out: &mut Vec<Record>,
    ) -> Result<()> {
        if reader.next != from {
            assign(reader, topic, partition, from)?;
        }
        let start = out.len();
        // At the end and no later end known here: do not wait at all, the
        // caller waits in `wait_for_append` instead.
        let quick = reader.at_eof && self.known_end(topic, partition) <= from;
        let mut deadline = Instant::now()
            + if quick {
                Duration::ZERO
            } else {
                FIRST_RECORD_WAIT
            };
        let mut asked_broker = quick;
        let mut batch = Vec::new();
        loop {
            let want = max - (out.len() - start);
            if want == 0 {
                break;
            }
            let got = out.len() > start;
            // Whatever is already fetched; with nothing yet, wait for one
            // record (a batch call waits until the batch is full).
            batch::consume(&reader.consumer, Duration::ZERO, want, &mut batch);
            let timeout = deadline.saturating_duration_since(Instant::now());
            if batch.is_empty() && !got && !timeout.is_zero() {
                batch::consume(&reader.consumer, timeout, 1, &mut batch);
            }
            if batch.is_empty() {
                if got {
                    break;
                }
                if Instant::now() < deadline {
                    continue;
                }
                if asked_broker {
                    break;
                }
                // Nothing arrived: wait longer only if the broker has
                // records for us (a reader still connecting).
                asked_broker = true;
                let p = kafka_partition(partition)?;
                let end = reader
                    .consumer
                    .fetch_watermarks(topic, p, END_CHECK_TIMEOUT)
                    .map_err(|e| kafka_error("read offsets", e))
                    .and_then(|(low, high)| {
                        let low = u64::try_from(low).unwrap_or(0);
                        let high = u64::try_from(high).unwrap_or(0);
                        self.end_of(topic, partition, low, high)
                    });
                match end {
                    Ok(end) if end <= from => {
                        // Known to be at the end now: later reads need not
                        // wait for the consumer's own end event (it comes
                        // with the next empty fetch, up to
                        // `fetch.wait.max.ms` later).
                        reader.at_eof = true;
                        break;
                    }
                    Ok(_) => deadline = Instant::now() + KNOWN_RECORDS_WAIT,
                    Err(e) => {
                        // No records this time; the caller reads again.
                        debug!(topic, partition, error = %e, "cannot read kafka offsets");
                        break;
                    }
                }
                continue;
            }
            // Every taken message is handled (the consumer has moved past
            // them): an end or an error stops the read only after the batch.
            let mut stop = false;
            for msg in batch.drain(..) {
                let got = out.len() > start;
                stop |= self.take_fetched(reader, topic, partition, from, &msg, got, out)?;
            }
            if stop {
                break;
            }
        }
        Ok(())
    }

    /// Handles one message a read took: a record goes to `out`; the end of
    /// the partition or an error says the read should stop (after its
    /// batch: the consumer has moved past every message taken). `got`:
    /// the read already has records.
    #[allow(clippy::too_many_arguments)]
    fn take_fetched(
        &self,
        reader: &mut Reader,
        topic: &str,
        partition: u32,
        from: u64,
        msg: &batch::Fetched,
        got: bool,
        out: &mut Vec<Record>,
    ) -> Result<bool> {
        match msg.error() {
            None => {
                let Ok(offset) = u64::try_from(msg.offset()) else {
                    return Ok(false);
                };
                reader.at_eof = false;
                if offset >= from {
                    reader.next = offset + 1;
                    out.push(Record {
                        offset,
                        timestamp: msg.timestamp().unwrap_or(0),
                        key: msg.key().map(<[u8]>::to_vec),
                        value: msg.payload().map(<[u8]>::to_vec),
                    });
                }
                Ok(false)
            }
            Some(RDKafkaErrorCode::PartitionEOF) => {
                // An end reported before this process appended more (the
                // event waited in the queue) is stale. The end's offset is
                // where the consumer fetches next: past the transaction
                // markers no record stands for.
                let position = u64::try_from(msg.offset()).unwrap_or(0).max(reader.next);
                if !got && self.known_end(topic, partition) > position {
                    return Ok(false);
                }
                if !got {
                    // Past markers: read on from there.
                    reader.next = position;
                }
                reader.at_eof = true;
                Ok(true)
            }
            Some(code) => {
                // Only a topic or partition that is really gone fails the
                // read; anything else (a broker away) is retried by
                // librdkafka while the caller reads again.
                if is_unknown_topic(code) {
                    if let Err(gone) = self.check_partition(topic, partition) {
                        if !matches!(
                            gone,
                            StorageError::Internal(_) | StorageError::Unavailable(_)
                        ) {
                            return Err(gone);
                        }
                    }
                }
                warn!(topic, partition, error = %msg.error_text(), "kafka consumer error");
                Ok(got)
            }
        }
    }
}

/// Points the reader's consumer at `from` of the partition. A reassignment
/// drops what the consumer had prefetched.
fn assign(reader: &mut Reader, topic: &str, partition: u32, from: u64) -> Result<()> {
    let offset = i64::try_from(from)
        .map_err(|_| StorageError::InvalidArgument(format!("offset {from} is out of range")))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, kafka_partition(partition)?, Offset::Offset(offset))
        .map_err(|e| kafka_error(format_args!("seek topic \"{topic}\" to {from}"), e))?;
    reader.consumer.assign(&tpl).map_err(|e| {
        kafka_error(
            format_args!("assign topic \"{topic}\" partition {partition}"),
            e,
        )
    })?;
    reader.next = from;
    reader.at_eof = false;
    Ok(())
}

impl LogBackend for KafkaLog {
    /// Creates the topic with the admin API (compacted for a changelog), then
    /// waits until the metadata shows it. An existing topic with the same
    /// partition count is fine; another count is an error.
    ///
    /// When the admin request fails or is not answered, the metadata
    /// decides: a topic that exists by then with the right count is fine.
    /// That is how a cluster without the admin API works: librdkafka's mock
    /// cluster never answers CreateTopics (the request times out after
    /// 5 s), and its topics are made with `MockCluster::create_topic`.
    fn create_topic(&self, name: &str, spec: &TopicSpec) -> Result<()> {
        let partitions = spec.partitions;
        validate_topic_name(name)?;
        if partitions == 0 {
            return Err(StorageError::InvalidArgument(format!(
                "topic \"{name}\" needs at least one partition"
            )));
        }
        if let Some(existing) = self.describe(name)? {
            if existing == partitions {
                return Ok(());
            }
            return Err(StorageError::TopicExists {
                topic: name.to_string(),
                existing,
                requested: partitions,
            });
        }
        let count = i32::try_from(partitions).map_err(|_| {
            StorageError::InvalidArgument(format!("{partitions} partitions are too many for Kafka"))
        })?;
        // -1 asks the cluster for its `default.replication.factor`.
        let replicas = spec.replicas.map_or(-1, i32::from);
        let mut new_topic = NewTopic::new(name, count, TopicReplication::Fixed(replicas));
        let limited = spec.retention != Retention::default();
        if spec.compacted {
            let policy = if limited { "compact,delete" } else { "compact" };
            new_topic = new_topic.set("cleanup.policy", policy);
        }
        let retention_ms = spec
            .retention
            .ms
            .map_or("-1".to_string(), |ms| ms.to_string());
        let retention_bytes = spec.retention.bytes.map(|b| b.to_string());
        if !spec.compacted || spec.retention.ms.is_some() {
            new_topic = new_topic.set("retention.ms", &retention_ms);
        }
        if let Some(bytes) = &retention_bytes {
            new_topic = new_topic.set("retention.bytes", bytes);
        }
        let outcome = block_on(
            self.admin
                .create_topics([&new_topic], &Self::admin_options()),
        );
        let failure = match outcome {
            Ok(results) => results.into_iter().find_map(|r| r.err()).map(|(_, c)| c),
            Err(e) => Some(admin_code(&e)),
        };
        match failure {
            None | Some(RDKafkaErrorCode::TopicAlreadyExists) => {}
            Some(RDKafkaErrorCode::InvalidTopic) => {
                return Err(StorageError::InvalidTopicName {
                    topic: name.to_string(),
                    reason: "the Kafka cluster refuses this name",
                })
            }
            Some(
                code @ (RDKafkaErrorCode::InvalidPartitions
                | RDKafkaErrorCode::InvalidReplicationFactor
                | RDKafkaErrorCode::PolicyViolation),
            ) => {
                let replicas = spec
                    .replicas
                    .map_or("its default replication factor".to_string(), |r| {
                        format!("{r} replicas")
                    });
                return Err(StorageError::InvalidArgument(format!(
                    "the Kafka cluster refuses topic \"{name}\" with {partitions} partitions \
                     and {replicas}: {code}"
                )));
            }
            Some(code) => {
                // The request failed or was not answered; the topic may
                // still exist (made meanwhile, or by hand where the cluster
                // has no admin API).
                if self.await_topic(name, partitions, Duration::ZERO)? {
                    return Ok(());
                }
                return Err(StorageError::Internal(format!(
                    "kafka: cannot create topic \"{name}\": {code}; if the cluster has no \
                     admin API (CreateTopics), create the topic with {partitions} partitions first"
                )));
            }
        }
        if self.await_topic(name, partitions, CREATE_TIMEOUT)? {
            info!(topic = name, partitions, "kafka topic created");
            return Ok(());
        }
        Err(StorageError::Internal(format!(
            "kafka: topic \"{name}\" was created but did not show in the metadata within {} s",
            CREATE_TIMEOUT.as_secs()
        )))
    }

    /// From fresh cluster metadata (one request, no cache, so topics created
    /// anywhere show at once). A failed request reads as a missing topic.
    fn topic_partitions(&self, name: &str) -> Option<u32> {
        match self.describe(name) {
            Ok(n) => n,
            Err(e) => {
                warn!(topic = name, error = %e, "cannot read topic metadata");
                None
            }
        }
    }

    /// Every topic of the cluster except Kafka's internal ones (`__*`).
    fn topics(&self) -> Vec<(String, u32)> {
        let metadata = match self.producer.client().fetch_metadata(None, REQUEST_TIMEOUT) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "cannot read kafka metadata");
                return Vec::new();
            }
        };
        let mut topics: Vec<(String, u32)> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
            .map(|t| {
                let n = u32::try_from(t.partitions().len()).unwrap_or(u32::MAX);
                (t.name().to_string(), n)
            })
            .collect();
        topics.sort();
        topics
    }

    /// Deletes with the admin API and waits (bounded) until the metadata
    /// no longer shows the topic. An unsupported or unanswered request (the
    /// mock cluster never answers) keeps the topic: that is logged, not an
    /// error, since the catalog object is gone either way; other failures
    /// (the cluster cannot be reached) are errors.
    fn delete_topic(&self, name: &str) -> Result<()> {
        if self.describe(name)?.is_none() {
            return Err(StorageError::UnknownTopic {
                topic: name.to_string(),
            });
        }
        let closing: Vec<Reader> = {
            let mut pool = lock(&self.readers);
            let keys: Vec<_> = pool.idle.keys().filter(|k| k.0 == name).cloned().collect();
            keys.iter()
                .filter_map(|k| pool.idle.remove(k))
                .flatten()
                .collect()
        };
        drop(closing);
        lock(&self.probed_ends).retain(|(topic, _), _| topic != name);
        let outcome = block_on(self.admin.delete_topics(&[name], &Self::admin_options()));
        let failure = match outcome {
            Ok(results) => results.into_iter().find_map(|r| r.err()).map(|(_, c)| c),
            Err(e) => Some(admin_code(&e)),
        };
        lock(&self.known_ends).retain(|k, _| k.0 != name);
        match failure {
            None => {}
            Some(code) if is_unknown_topic(code) => {
                return Err(StorageError::UnknownTopic {
                    topic: name.to_string(),
                })
            }
            // Deletion may still be under way (a timeout), or the cluster
            // has no admin API (the mock times out too): the catalog object
            // goes either way, the topic may stay.
            Some(code) if is_unsupported(code) || is_timeout(code) => {
                warn!(topic = name, error = %code, "kafka did not confirm deleting the topic; it may remain");
                return Ok(());
            }
            Some(code) => return Err(kafka_error(format_args!("delete topic \"{name}\""), code)),
        }
        let deadline = Instant::now() + CREATE_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(self.describe(name), Ok(None)) {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        info!(topic = name, "kafka topic deleted");
        Ok(())
    }

    /// Produces every record to the partition (key, value or tombstone,
    /// timestamp) and waits for all delivery reports. Records reach the
    /// partition in order (idempotent producer); another process appending
    /// to the same partition may interleave with them. On an error some
    /// records may have been written anyway: Kafka has no atomic batch
    /// outside transactions.
    fn append(&self, topic: &str, partition: u32, records: &[RecordRef<'_>]) -> Result<u64> {
        self.append_with(&self.producer, topic, partition, records)
    }

    fn begin_transaction(&self, writer: &str) -> Result<()> {
        self.transactional(writer)?
            .begin_transaction()
            .map_err(|e| kafka_call_error(format_args!("begin a transaction of {writer}"), &e))
    }

    fn fence(&self, writer: &str) -> Result<()> {
        self.transactional(writer).map(|_| ())
    }

    fn append_in(
        &self,
        writer: &str,
        topic: &str,
        partition: u32,
        records: &[RecordRef<'_>],
    ) -> Result<u64> {
        let producer = self.transactional(writer)?;
        self.append_with(&producer, topic, partition, records)
    }

    fn commit_transaction(&self, writer: &str) -> Result<()> {
        self.end_transaction(writer, true)
    }

    fn abort_transaction(&self, writer: &str) -> Result<()> {
        self.end_transaction(writer, false)
    }

    /// Nothing to do: `append` returned only after the in-sync replicas
    /// acknowledged every record (acks=all), which is Kafka's durability.
    fn sync(&self, _topic: &str, _partition: u32, _upto: u64) -> Result<()> {
        Ok(())
    }

    /// Reads with a pooled consumer assigned to the partition, so a
    /// sequential reader keeps its consumer and its prefetched records. Waits
    /// up to 10 ms for a first record (not at all when the reader is known
    /// to be at the end), up to 5 s when the broker says records past
    /// `from` exist, then takes only what is already fetched. No records
    /// means the end was reached as far as this process knows.
    fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
        out: &mut Vec<Record>,
    ) -> Result<u64> {
        if max == 0 {
            return Ok(from);
        }
        let mut reader = self.checkout(topic, partition, from)?;
        self.read_with(&mut reader, topic, partition, from, max, out)?;
        let next = reader.next.max(from);
        self.checkin(topic, partition, reader);
        Ok(next)
    }

    /// The low watermark.
    fn start_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        Ok(self.watermarks(topic, partition)?.0)
    }

    /// The high watermark.
    fn end_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        let (low, high) = self.watermarks(topic, partition)?;
        self.end_of(topic, partition, low, high)
    }

    /// A no-op: Kafka cannot cut a partition back; records of a commit
    /// that did not land stay in the topic (at-least-once) until
    /// exactly-once production (transactions) is done.
    fn recover(&self, _ends: &HashMap<(String, u32), u64>) -> Result<()> {
        Ok(())
    }

    /// A no-op: what the broker acknowledged is there for every reader.
    fn publish_end(&self, _topic: &str, _partition: u32, _end: u64) {}

    /// Counts this process's appends only; see `wait_for_append`.
    fn appended(&self) -> u64 {
        self.appends.count.load(Ordering::SeqCst)
    }

    /// Waits at most 100 ms whatever `timeout` says: records produced by
    /// other processes do not bump the counter, so callers must read again
    /// soon to see them.
    fn wait_for_append(&self, seen: u64, timeout: Duration) -> u64 {
        self.appends.wait(seen, timeout.min(MAX_APPEND_WAIT))
    }

    fn report_progress(&self, group: &str, topic: &str, offsets: &[u64]) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (p, off) in offsets.iter().enumerate() {
            tpl.add_partition_offset(
                topic,
                kafka_partition(p as u32)?,
                Offset::Offset(*off as i64),
            )
            .map_err(|e| kafka_error(format_args!("prepare the offsets of group {group}"), e))?;
        }
        let mut consumers = lock(&self.progress);
        if !consumers.contains_key(group) {
            let mut config = self.consumer_config.clone();
            config.set("group.id", group);
            let consumer: BaseConsumer = config
                .create()
                .map_err(|e| kafka_error(format_args!("create a consumer for group {group}"), e))?;
            consumers.insert(group.to_string(), consumer);
        }
        if let Some(consumer) = consumers.get(group) {
            consumer
                .commit(&tpl, CommitMode::Async)
                .map_err(|e| kafka_error(format_args!("commit the offsets of group {group}"), e))?;
            // Serve the commit's callbacks without waiting.
            let _ = consumer.poll(Duration::ZERO);
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "kafka"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Against librdkafka's in-process mock cluster: a real Kafka-protocol
    //! broker over TCP (no admin API; topics are made with
    //! `MockCluster::create_topic`).

    use std::sync::Arc;

    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext};

    use super::*;

    type Cluster = MockCluster<'static, DefaultProducerContext>;

    /// A mock cluster of `brokers` brokers with `topics` created, and a
    /// backend connected to it.
    fn setup(brokers: i32, topics: &[(&str, i32)]) -> (Cluster, KafkaLog) {
        let cluster = MockCluster::new(brokers).unwrap();
        for (name, partitions) in topics {
            cluster.create_topic(name, *partitions, 1).unwrap();
        }
        let log = KafkaLog::connect(&cluster.bootstrap_servers(), &[]).unwrap();
        (cluster, log)
    }

    fn plain(partitions: u32) -> TopicSpec {
        TopicSpec {
            partitions,
            replicas: Some(1),
            compacted: false,
            retention: Retention::default(),
        }
    }

    fn rec<'a>(ts: i64, key: Option<&'a str>, value: Option<&'a str>) -> RecordRef<'a> {
        RecordRef {
            timestamp: ts,
            key: key.map(str::as_bytes),
            value: value.map(str::as_bytes),
        }
    }

    fn owned(offset: u64, r: &RecordRef<'_>) -> Record {
        Record {
            offset,
            timestamp: r.timestamp,
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.map(<[u8]>::to_vec),
        }
    }

    /// Reads the partition from `from` until `end`, `max` at a time, as the
    /// query runtime does; fails the test after 10 s.
    fn read_until(
        log: &KafkaLog,
        topic: &str,
        p: u32,
        from: u64,
        end: u64,
        max: usize,
    ) -> Vec<Record> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut next = from;
        let mut all = Vec::new();
        while next < end {
            assert!(
                Instant::now() < deadline,
                "timed out at offset {next} of {end}"
            );
            let mut batch = Vec::new();
            log.read(topic, p, next, max, &mut batch).unwrap();
            assert!(batch.len() <= max);
            if let Some(last) = batch.last() {
                next = last.offset + 1;
            }
            all.extend(batch);
        }
        all
    }

    #[test]
    fn records_round_trip_across_partitions() {
        let (_cluster, log) = setup(3, &[("orders", 3)]);
        log.create_topic("orders", &plain(3)).unwrap();
        assert_eq!(log.name(), "kafka");
        let mut expected: Vec<Vec<Record>> = vec![Vec::new(); 3];
        for p in 0..3u32 {
            let batch = [
                rec(1_000 + i64::from(p), Some("k1"), Some("{\"v\":1}")),
                rec(2_000, Some("k2"), Some("")),
                rec(3_000, Some("k1"), None),
                rec(4_000, None, Some("keyless")),
                rec(5_000, Some(""), Some("empty key")),
                rec(0, Some("k0"), Some("time zero")),
            ];
            let end = log.append("orders", p, &batch).unwrap();
            assert_eq!(end, 6);
            log.sync("orders", p, end).unwrap();
            // A second append continues the offsets.
            let more = [rec(6_000 + i64::from(p), Some("k3"), Some("six"))];
            assert_eq!(log.append("orders", p, &more).unwrap(), 7);
            expected[p as usize] = batch
                .iter()
                .chain(more.iter())
                .enumerate()
                .map(|(i, r)| owned(i as u64, r))
                .collect();
        }
        for p in 0..3u32 {
            assert_eq!(log.start_offset("orders", p).unwrap(), 0);
            assert_eq!(log.end_offset("orders", p).unwrap(), 7);
            let got = read_until(&log, "orders", p, 0, 7, 100);
            assert_eq!(got, expected[p as usize], "partition {p}");
            // Small batches, sequential: same records, nothing repeated.
            let got = read_until(&log, "orders", p, 0, 7, 2);
            assert_eq!(got, expected[p as usize], "partition {p} in steps of 2");
            // From the middle, after a reader was at the end.
            let got = read_until(&log, "orders", p, 3, 7, 100);
            assert_eq!(got, expected[p as usize][3..], "partition {p} from 3");
        }
        // At the end: nothing, and no error.
        let mut none = Vec::new();
        log.read("orders", 1, 7, 100, &mut none).unwrap();
        assert!(none.is_empty());
        // An empty append reports the end.
        assert_eq!(log.append("orders", 2, &[]).unwrap(), 7);
    }

    #[test]
    fn create_topic_is_idempotent_and_checks_the_partition_count() {
        let (_cluster, log) = setup(1, &[("three", 3), ("one", 1)]);
        log.create_topic("three", &plain(3)).unwrap();
        log.create_topic("three", &plain(3)).unwrap();
        let err = log.create_topic("three", &plain(2)).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::TopicExists {
                    existing: 3,
                    requested: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "topic \"three\" already exists with 3 partitions, not 2"
        );
        assert_eq!(log.topic_partitions("three"), Some(3));
        assert_eq!(log.topic_partitions("one"), Some(1));
        assert_eq!(log.topic_partitions("missing"), None);
        let topics = log.topics();
        assert_eq!(
            topics,
            vec![("one".to_string(), 1), ("three".to_string(), 3)]
        );
        assert!(matches!(
            log.create_topic("bad name", &plain(1)),
            Err(StorageError::InvalidTopicName { .. })
        ));
        assert!(matches!(
            log.create_topic("zero", &plain(0)),
            Err(StorageError::InvalidArgument(_))
        ));
        // Looking a topic up never creates it.
        assert_eq!(log.topic_partitions("missing"), None);
        assert!(!log.topics().iter().any(|(t, _)| t == "missing"));
    }

    #[test]
    fn ssl_and_sasl_settings_are_accepted() {
        // librdkafka refuses these at client creation when built without
        // OpenSSL (an InvalidArgument); with it, connecting gets as far as
        // finding no broker there.
        let settings: Vec<(String, String)> = [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-256"),
            ("sasl.username", "me"),
            ("sasl.password", "secret"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let err = KafkaLog::connect("127.0.0.1:9", &settings).unwrap_err();
        assert!(err.to_string().contains("cannot reach brokers"), "{err}");
    }

    #[test]
    fn the_mock_cluster_cannot_create_topics_and_says_so() {
        let (cluster, log) = setup(1, &[]);
        let err = log.create_topic("fresh", &plain(2)).unwrap_err();
        assert!(
            err.to_string()
                .contains("create the topic with 2 partitions first"),
            "{err}"
        );
        assert_eq!(log.topic_partitions("fresh"), None);
        // Once it exists, create_topic accepts it.
        cluster.create_topic("fresh", 2, 1).unwrap();
        log.create_topic("fresh", &plain(2)).unwrap();
    }

    #[test]
    fn unknown_topics_and_partitions_are_errors() {
        let (_cluster, log) = setup(1, &[("two", 2)]);
        let mut out = Vec::new();
        let err = log.read("nope", 0, 0, 10, &mut out).unwrap_err();
        assert!(matches!(err, StorageError::UnknownTopic { .. }), "{err}");
        let err = log.read("two", 5, 0, 10, &mut out).unwrap_err();
        assert!(
            matches!(err, StorageError::UnknownPartition { partitions: 2, .. }),
            "{err}"
        );
        let err = log.end_offset("nope", 0).unwrap_err();
        assert!(matches!(err, StorageError::UnknownTopic { .. }), "{err}");
        let err = log.delete_topic("nope").unwrap_err();
        assert!(matches!(err, StorageError::UnknownTopic { .. }), "{err}");
        let err = log
            .append("two", 7, &[rec(1, None, Some("x"))])
            .unwrap_err();
        assert!(
            matches!(err, StorageError::UnknownPartition { partitions: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn an_append_waits_for_every_delivery_and_reports_a_record_too_large() {
        let (_cluster, log) = setup(1, &[("sized", 1)]);
        let values: Vec<String> = (0..5000).map(|i| format!("v{i}")).collect();
        let refs: Vec<RecordRef<'_>> = values
            .iter()
            .map(|v| rec(1, None, Some(v.as_str())))
            .collect();
        assert_eq!(log.append("sized", 0, &refs).unwrap(), 5000);

        let huge = "x".repeat(2_000_000);
        let err = log
            .append("sized", 0, &[rec(1, None, Some(&huge))])
            .unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::RecordTooLarge {
                    bytes: 2_000_000,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            log.append("sized", 0, &[rec(2, None, Some("after"))])
                .unwrap(),
            5001
        );
        let got = read_until(&log, "sized", 0, 4999, 5001, 10);
        assert_eq!(got[1].value.as_deref(), Some(&b"after"[..]));
    }

    #[test]
    fn records_of_other_producers_are_read() {
        let (cluster, log) = setup(1, &[("events", 2)]);
        // The backend is at the end of the empty partition first.
        let mut out = Vec::new();
        log.read("events", 1, 0, 10, &mut out).unwrap();
        assert!(out.is_empty());

        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        producer
            .send(
                BaseRecord::to("events")
                    .partition(1)
                    .key("user-7")
                    .payload("{\"page\":\"/\"}")
                    .timestamp(1_700_000_000_123),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        producer
            .send(
                BaseRecord::<str, str>::to("events")
                    .partition(1)
                    .key("user-7"),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();

        assert_eq!(log.end_offset("events", 1).unwrap(), 2);
        let got = read_until(&log, "events", 1, 0, 2, 10);
        assert_eq!(
            got,
            vec![
                Record {
                    offset: 0,
                    timestamp: 1_700_000_000_123,
                    key: Some(b"user-7".to_vec()),
                    value: Some(b"{\"page\":\"/\"}".to_vec()),
                },
                Record {
                    offset: 1,
                    timestamp: got[1].timestamp,
                    key: Some(b"user-7".to_vec()),
                    value: None,
                },
            ]
        );
        // Without an explicit timestamp the producer stamps the time.
        assert!(got[1].timestamp > 1_700_000_000_000, "{}", got[1].timestamp);
    }

    #[test]
    fn a_scan_up_to_the_end_offset_sees_every_record() {
        // What a pull query does: take the end, then read until it; an
        // empty read must mean the end, even for a fresh reader.
        let (_cluster, log) = setup(1, &[("scan", 1)]);
        let batch: Vec<String> = (0..500).map(|i| format!("value {i}")).collect();
        let refs: Vec<RecordRef<'_>> = batch
            .iter()
            .map(|v| rec(7, Some("k"), Some(v.as_str())))
            .collect();
        log.append("scan", 0, &refs).unwrap();
        for _ in 0..3 {
            let end = log.end_offset("scan", 0).unwrap();
            let mut next = log.start_offset("scan", 0).unwrap();
            let mut n = 0;
            while next < end {
                let mut out = Vec::new();
                log.read("scan", 0, next, 64, &mut out).unwrap();
                let Some(last) = out.last() else { break };
                next = last.offset + 1;
                n += out.iter().filter(|r| r.offset < end).count();
            }
            assert_eq!(n as u64, end);
            log.append("scan", 0, &refs[..1]).unwrap();
            assert_eq!(log.end_offset("scan", 0).unwrap(), end + 1);
        }
    }

    #[test]
    fn wait_for_append_wakes_after_an_append() {
        let (_cluster, log) = setup(1, &[("wake", 1)]);
        let log = Arc::new(log);
        let seen = log.appended();
        // Without appends the wait is capped, so other producers' records
        // are looked for soon.
        let started = Instant::now();
        assert_eq!(log.wait_for_append(seen, Duration::from_secs(30)), seen);
        assert!(started.elapsed() < Duration::from_secs(1));

        let waiter = {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    let now = log.wait_for_append(seen, Duration::from_secs(20));
                    if now != seen || Instant::now() >= deadline {
                        return now;
                    }
                }
            })
        };
        thread::sleep(Duration::from_millis(300));
        log.append("wake", 0, &[rec(1, None, Some("x"))]).unwrap();
        let woke = waiter.join().unwrap();
        assert!(woke > seen);
        assert_eq!(log.appended(), woke);
    }

    #[test]
    fn recovery_and_sync_are_no_ops_and_delete_is_tolerated() {
        let (_cluster, log) = setup(1, &[("kept", 1)]);
        let end = log
            .append(
                "kept",
                0,
                &[rec(1, None, Some("a")), rec(2, None, Some("b"))],
            )
            .unwrap();
        log.recover(&HashMap::from([(("kept".to_string(), 0), 0)]))
            .unwrap();
        log.sync("kept", 0, end).unwrap();
        assert_eq!(log.end_offset("kept", 0).unwrap(), 2);
        // The mock has no admin API: the topic stays, the call succeeds.
        log.delete_topic("kept").unwrap();
    }

    #[test]
    fn interleaved_readers_of_one_partition_keep_their_places() {
        let (_cluster, log) = setup(1, &[("shared", 1)]);
        let values: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
        let refs: Vec<RecordRef<'_>> = values
            .iter()
            .map(|v| rec(9, None, Some(v.as_str())))
            .collect();
        log.append("shared", 0, &refs).unwrap();
        let (mut a, mut b) = (0u64, 20u64);
        let mut seen_a = Vec::new();
        let mut seen_b = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while (a < 20 || b < 40) && Instant::now() < deadline {
            for (next, seen) in [(&mut a, &mut seen_a), (&mut b, &mut seen_b)] {
                let mut out = Vec::new();
                log.read("shared", 0, *next, 3, &mut out).unwrap();
                if let Some(last) = out.last() {
                    *next = last.offset + 1;
                }
                seen.extend(out.into_iter().map(|r| r.offset));
            }
        }
        assert_eq!(seen_a[..20], (0..20).collect::<Vec<u64>>()[..]);
        assert_eq!(seen_b, (20..40).collect::<Vec<u64>>());
    }

    #[test]
    fn reads_pause_while_the_broker_is_down_and_resume() {
        let (cluster, log) = setup(1, &[("flaky", 1)]);
        log.append("flaky", 0, &[rec(1, None, Some("before"))])
            .unwrap();
        assert_eq!(read_until(&log, "flaky", 0, 0, 1, 10).len(), 1);
        let mut out = Vec::new();
        log.read("flaky", 0, 1, 10, &mut out).unwrap();

        cluster.broker_down(1).unwrap();
        let started = Instant::now();
        for _ in 0..3 {
            log.read("flaky", 0, 1, 10, &mut out).unwrap();
        }
        assert!(out.is_empty());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        cluster.broker_up(1).unwrap();
        log.append("flaky", 0, &[rec(2, None, Some("after"))])
            .unwrap();
        let got = read_until(&log, "flaky", 0, 1, 2, 10);
        assert_eq!(got[0].value.as_deref(), Some(&b"after"[..]));
    }

    #[test]
    fn bad_settings_are_reported() {
        let cluster = MockCluster::new(1).unwrap();
        let extra = [("no.such.setting".to_string(), "1".to_string())];
        let err = KafkaLog::connect(&cluster.bootstrap_servers(), &extra).unwrap_err();
        assert!(matches!(err, StorageError::InvalidArgument(_)), "{err}");
        assert!(err.to_string().contains("no.such.setting"), "{err}");
        assert!(matches!(
            KafkaLog::connect(" ", &[]),
            Err(StorageError::InvalidArgument(_))
        ));
        // Extra settings reach the clients.
        let extra = [("socket.keepalive.enable".to_string(), "true".to_string())];
        KafkaLog::connect(&cluster.bootstrap_servers(), &extra).unwrap();
    }
}
