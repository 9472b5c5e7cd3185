//! Kafka mode: every persistent query's commits also go to its state topic
//! `<command topic>-state-<query id>` (one partition, compacted), so a rill started
//! with an empty data dir against the same Kafka (see the command topic in
//! `exec::commands`) rebuilds each query's operator state, materialized
//! rows and source offsets from it and resumes where the query was,
//! instead of recomputing from the beginning.
//!
//! A record is one store write: the store key, and the value or a
//! tombstone. A record with an empty key (store keys never are) closes a
//! commit; records after the last one belong to a commit that did not
//! finish and are ignored.
//!
//! # Invariants
//! Records are produced after the store commit they mirror landed, so the
//! topic never holds state the store does not. When a process dies between
//! the two, the topic misses that commit: each time a query starts it
//! compares the topic with the store and produces the difference, so the
//! topic is whole again before the query commits anything new.

use std::collections::BTreeMap;

use rill_storage::{keys, RecordRef, Store, WriteBatch};
use tracing::info;

use crate::backend::{LogBackend, TopicSpec};
use crate::config::Config;
use crate::error::Result;

/// One store write: the key, and the value or `None` for a delete.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// The key of the record that closes a commit.
const COMMIT: &[u8] = b"";

/// How many records one read asks for.
const READ_BATCH: usize = 4096;

/// Whether queries keep state topics: in Kafka mode with a command topic.
pub fn enabled(config: &Config) -> bool {
    config.kafka_brokers.is_some() && !config.kafka_command_topic.is_empty()
}

/// The state topic of `query`, named after the command topic so that
/// several rills can share a Kafka cluster.
pub fn state_topic(config: &Config, query: &str) -> String {
    format!("{}-state-{query}", config.kafka_command_topic)
}

/// The store prefixes that hold a query's state: operator state, source
/// offsets and (for a table) its rows.
pub fn prefixes(query: &str, table: Option<&str>) -> Vec<Vec<u8>> {
    let mut p = vec![keys::state_prefix(query), keys::offset_prefix(query)];
    if let Some(t) = table {
        p.push(keys::table_prefix(t));
    }
    p
}

/// Creates the state topic if it is missing.
pub fn ensure_topic(log: &dyn LogBackend, topic: &str) -> Result<()> {
    let spec = TopicSpec {
        partitions: 1,
        replicas: None,
        compacted: true,
        retention: Default::default(),
    };
    log.create_topic(topic, &spec)?;
    Ok(())
}

/// The store entries the state topic holds as of its last complete commit.
pub fn read(log: &dyn LogBackend, topic: &str) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut state = BTreeMap::new();
    let mut pending: Vec<Write> = Vec::new();
    let mut next = log.start_offset(topic, 0)?;
    let end = log.end_offset(topic, 0)?;
    let mut records = Vec::new();
    while next < end {
        records.clear();
        log.read(topic, 0, next, READ_BATCH, &mut records)?;
        let Some(last) = records.last() else {
            break;
        };
        next = last.offset + 1;
        for r in records.drain(..) {
            match r.key {
                Some(k) if !k.is_empty() => pending.push((k, r.value)),
                _ => {
                    for (k, v) in pending.drain(..) {
                        match v {
                            Some(v) => state.insert(k, v),
                            None => state.remove(&k),
                        };
                    }
                }
            }
        }
    }
    Ok(state)
}

/// The store's entries under `prefixes`.
fn stored(store: &Store, prefixes: &[Vec<u8>]) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for p in prefixes {
        for entry in store.scan_prefix(p) {
            let (k, v) = entry?;
            out.insert(k, v);
        }
    }
    Ok(out)
}

/// Produces what the state topic lacks of the store (see the module
/// invariants); called as the query starts.
pub fn catch_up(
    log: &dyn LogBackend,
    store: &Store,
    topic: &str,
    prefixes: &[Vec<u8>],
) -> Result<()> {
    let topic_state = read(log, topic)?;
    let store_state = stored(store, prefixes)?;
    let mut diff: Vec<Write> = Vec::new();
    for (k, v) in &store_state {
        if topic_state.get(k) != Some(v) {
            diff.push((k.clone(), Some(v.clone())));
        }
    }
    for k in topic_state.keys() {
        if !store_state.contains_key(k) {
            diff.push((k.clone(), None));
        }
    }
    if !diff.is_empty() {
        info!(
            topic,
            entries = diff.len(),
            "state topic caught up with the store"
        );
        produce(log, topic, &diff, None)?;
    }
    Ok(())
}

/// Produces one commit's writes, then the record closing it (inside
/// `transaction` when given).
pub fn produce(
    log: &dyn LogBackend,
    topic: &str,
    writes: &[Write],
    transaction: Option<&str>,
) -> Result<()> {
    let mut records: Vec<RecordRef<'_>> = writes
        .iter()
        .map(|(k, v)| RecordRef {
            timestamp: 0,
            key: Some(k),
            value: v.as_deref(),
        })
        .collect();
    records.push(RecordRef {
        timestamp: 0,
        key: Some(COMMIT),
        value: Some(b"commit"),
    });
    let end = match transaction {
        Some(writer) => log.append_in(writer, topic, 0, &records)?,
        None => log.append(topic, 0, &records)?,
    };
    log.sync(topic, 0, end)?;
    Ok(())
}

/// Exactly once: the state topic, written in the same transactions as the
/// outputs, is the commit point and the store a copy; a process that died
/// after a transaction committed but before its store batch landed left
/// the store behind, so the topic's state replaces the store's.
pub fn adopt(log: &dyn LogBackend, store: &Store, topic: &str, prefixes: &[Vec<u8>]) -> Result<()> {
    let topic_state = read(log, topic)?;
    let store_state = stored(store, prefixes)?;
    if topic_state == store_state || topic_state.is_empty() {
        return Ok(());
    }
    let mut batch = WriteBatch::new();
    for k in store_state.keys() {
        if !topic_state.contains_key(k) {
            batch.delete(k.clone());
        }
    }
    for (k, v) in topic_state {
        batch.put(k, v);
    }
    info!(
        topic,
        writes = batch.len(),
        "store caught up with the state topic"
    );
    store.commit(batch, true)?;
    Ok(())
}

/// The writes of `batch` under `prefixes`, to produce once it commits.
pub fn writes_of(batch: &WriteBatch, prefixes: &[Vec<u8>]) -> Vec<Write> {
    batch
        .iter()
        .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
        .collect()
}

/// Puts what the state topic holds into the store, for a query being
/// rebuilt from the command topic; returns the number of entries.
pub fn restore(log: &dyn LogBackend, store: &Store, topic: &str) -> Result<usize> {
    if log.topic_partitions(topic).is_none() {
        return Ok(0);
    }
    let state = read(log, topic)?;
    let n = state.len();
    let mut batch = WriteBatch::new();
    for (k, v) in state {
        batch.put(k, v);
    }
    store.commit(batch, true)?;
    Ok(n)
}
