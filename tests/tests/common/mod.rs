//! rdkafka clients shared by the Kafka-mode test files (`mod common;` in
//! each). They live here and not in the harness because rdkafka is a
//! dev-dependency of the tests crate, which its library cannot use.
//!
//! What they talk to is librdkafka's in-process mock cluster, which has no
//! admin API: every topic rill reads or writes is created first.

// Each test file is a crate of its own and uses only some of these.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use rill_tests::formats::WAIT;

/// Turns off rill's command topic and state topics: the mock cluster has
/// no admin API to create them.
pub const NO_COMMAND_TOPIC: &str = "--kafka-command-topic=";

/// A mock cluster as [`mock_cluster`] returns it.
pub type Cluster = MockCluster<'static, DefaultProducerContext>;

/// A Kafka record's (key, value) bytes.
pub type RawRecord = (Option<Vec<u8>>, Option<Vec<u8>>);

/// A one-broker mock cluster with `topics`, one partition each, and its
/// bootstrap servers.
pub fn mock_cluster(topics: &[&str]) -> (Cluster, String) {
    let cluster = MockCluster::new(1).expect("mock cluster");
    for topic in topics {
        cluster.create_topic(topic, 1, 1).expect("create topic");
    }
    let brokers = cluster.bootstrap_servers();
    (cluster, brokers)
}

/// A producer as an outside application would configure it, giving up on
/// a record after 10 s.
pub fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer")
}

/// Produces `records` (key, value) to partition 0 of `topic`, one at a
/// time, each acknowledged before the next is sent.
pub async fn produce_keyed(p: &FutureProducer, topic: &str, records: &[(&str, Vec<u8>)]) {
    for (key, value) in records {
        p.send(
            FutureRecord::to(topic)
                .key(*key)
                .payload(value)
                .partition(0),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    }
}

/// Every record of `partition` of `topic` from the start, as raw
/// (key, value): waits up to [`WAIT`] for at least `min`, then until none
/// arrives for a second.
pub fn consume_raw(brokers: &str, topic: &str, partition: i32, min: usize) -> Vec<RawRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "rill-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut idle_since = Instant::now();
    while Instant::now() < deadline
        && (out.len() < min || idle_since.elapsed() < Duration::from_secs(1))
    {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec)));
            idle_since = Instant::now();
        }
    }
    out
}
