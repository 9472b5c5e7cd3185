//! Kafka mode: the command topic (`--kafka-command-topic`, default
//! `_rill_commands`) keeps every statement that changed the catalog, in
//! order, with the session properties it ran with. A rill started with an
//! empty data dir against the same Kafka replays it: every stream, table and
//! query comes back, and each query's state, materialized rows and offsets
//! come from its state topic (`runtime::changelog`), so it resumes where it
//! was.

use std::collections::BTreeMap;
use std::sync::Arc;

use rill_sql::parser::parse_statement;
use rill_storage::RecordRef;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::backend::TopicSpec;
use crate::engine::{Engine, PROCESSING_LOG};
use crate::error::{Error, Result};
use crate::session::Session;

#[derive(Serialize, Deserialize)]
struct Command {
    sql: String,
    props: BTreeMap<String, String>,
}

/// The command topic, when this rill keeps one.
fn topic(engine: &Engine) -> Option<&str> {
    engine.config.kafka_brokers.as_ref()?;
    Some(engine.config.kafka_command_topic.as_str()).filter(|t| !t.is_empty())
}

/// Creates the command topic if it is missing; without it (a cluster with
/// no admin API, say) this rill keeps no command topic and says so.
pub fn ensure_topic(engine: &Engine) -> bool {
    let Some(topic) = topic(engine) else {
        return false;
    };
    let spec = TopicSpec {
        partitions: 1,
        replicas: None,
        compacted: false,
        retention: Default::default(),
    };
    match engine.log.create_topic(topic, &spec) {
        Ok(()) => true,
        Err(e) => {
            warn!(topic, error = %e, "no command topic: a lost data dir cannot be rebuilt from Kafka");
            false
        }
    }
}

/// Appends a statement that changed the catalog. The statement already took
/// effect here; if the append fails the error says so, and that a rebuild
/// from Kafka would miss it.
pub fn record(engine: &Engine, session: &Session, sql: &str) -> Result<()> {
    let Some(topic) = topic(engine) else {
        return Ok(());
    };
    if engine.replaying() {
        return Ok(());
    }
    let command = Command {
        sql: sql.to_string(),
        props: session.props(),
    };
    let value = serde_json::to_vec(&command).map_err(|e| Error::Internal(e.to_string()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let record = RecordRef {
        timestamp: now,
        key: None,
        value: Some(&value),
    };
    let appended = engine
        .log
        .append(topic, 0, &[record])
        .and_then(|end| engine.log.sync(topic, 0, end));
    appended.map_err(|e| {
        Error::Internal(format!(
            "the statement took effect, but command topic \"{topic}\" did not record it ({e}): \
             a data dir rebuilt from Kafka would miss it"
        ))
    })
}

/// Whether the store's catalog holds nothing but what every rill creates.
fn fresh(engine: &Engine) -> bool {
    let catalog = engine.catalog();
    catalog.queries.is_empty() && catalog.relations.keys().all(|n| n == PROCESSING_LOG)
}

/// With an empty catalog, runs every command of the command topic again;
/// returns how many ran.
pub async fn replay(engine: &Arc<Engine>) -> Result<usize> {
    let Some(topic) = topic(engine).map(str::to_string) else {
        return Ok(0);
    };
    if !fresh(engine) || engine.log.topic_partitions(&topic).is_none() {
        return Ok(0);
    }
    let mut next = engine.log.start_offset(&topic, 0)?;
    let end = engine.log.end_offset(&topic, 0)?;
    let mut commands = Vec::new();
    let mut records = Vec::new();
    while next < end {
        records.clear();
        engine.log.read(&topic, 0, next, 1024, &mut records)?;
        let Some(last) = records.last() else {
            break;
        };
        next = last.offset + 1;
        for r in &records {
            match r.value.as_deref().map(serde_json::from_slice::<Command>) {
                Some(Ok(c)) => commands.push(c),
                _ => warn!(topic, offset = r.offset, "unreadable command skipped"),
            }
        }
    }
    if commands.is_empty() {
        return Ok(0);
    }
    info!(
        topic,
        commands = commands.len(),
        "rebuilding the catalog from the command topic"
    );
    engine.set_replaying(true);
    let mut ran = 0;
    for c in &commands {
        let session = Session::default();
        for (k, v) in &c.props {
            session.set(k, v);
        }
        let outcome = match parse_statement(&c.sql) {
            Ok(stmt) => super::execute(engine, &session, stmt).await.map(|_| ()),
            Err(e) => Err(e.into()),
        };
        match outcome {
            Ok(()) => ran += 1,
            // It failed the first time too, or what it needs is gone.
            Err(e) => warn!(sql = %c.sql, error = %e, "command not replayed"),
        }
    }
    engine.set_replaying(false);
    info!(commands = ran, "catalog rebuilt from the command topic");
    Ok(ran)
}
