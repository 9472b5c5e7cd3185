//! Push queries and PRINT: a transient reader on its own thread that
//! streams rows to one client until its LIMIT, a cancel, or the client
//! going away.

use std::sync::Arc;
use std::time::Duration;

use rill_sql::binder::BoundQuery;
use rill_sql::catalog::RelationDesc;
use rill_sql::dataflow::Change;
use rill_sql::plan::plan_query;
use rill_sql::{Row, Value};
use rill_storage::Record;
use tokio::sync::mpsc;

use super::source::Inputs;
use crate::backend::LogBackend;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Rows of a push query as they come; an `Err` ends the stream with that
/// message.
pub type PushRows = mpsc::Receiver<std::result::Result<Row, String>>;

/// Where a transient reader starts in each partition of `topic`.
fn start_offsets(log: &dyn LogBackend, topic: &str, earliest: bool) -> Result<Vec<u64>> {
    let partitions = log
        .topic_partitions(topic)
        .ok_or_else(|| Error::Invalid(format!("topic '{topic}' does not exist")))?;
    (0..partitions)
        .map(|p| {
            Ok(if earliest {
                log.start_offset(topic, p)?
            } else {
                log.end_offset(topic, p)?
            })
        })
        .collect()
}

/// Runs `poll` on its own thread until `limit` rows were sent, it fails, or
/// the client goes away. Each call appends new rows to its argument and
/// returns how many input records it consumed (0: wait for more).
fn spawn(
    log: Arc<dyn LogBackend>,
    limit: Option<u64>,
    mut poll: impl FnMut(&mut Vec<Row>) -> Result<u64> + Send + 'static,
) -> Result<PushRows> {
    let (tx, rx) = mpsc::channel(1024);
    std::thread::Builder::new()
        .name("push".into())
        .spawn(move || {
            let mut sent = 0u64;
            let mut rows = Vec::new();
            loop {
                if limit.is_some_and(|l| sent >= l) || tx.is_closed() {
                    return;
                }
                let seen = log.appended();
                match poll(&mut rows) {
                    Ok(0) => {
                        log.wait_for_append(seen, Duration::from_millis(200));
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e.to_string()));
                        return;
                    }
                }
                for row in rows.drain(..) {
                    if limit.is_some_and(|l| sent >= l) || tx.blocking_send(Ok(row)).is_err() {
                        return;
                    }
                    sent += 1;
                }
            }
        })
        .map_err(|e| Error::Internal(format!("cannot start a push query: {e}")))?;
    Ok(rx)
}

/// Starts a push query over a bound `SELECT ... EMIT CHANGES`.
pub fn start(engine: &Arc<Engine>, bound: BoundQuery, earliest: bool) -> Result<PushRows> {
    if bound.source.is_none() {
        return Err(Error::Invalid("a push query needs FROM".into()));
    }
    let mut pipeline = plan_query(&bound)?.pipeline;
    let log = engine.log.clone();
    let sources: Vec<RelationDesc> = bound.inputs().cloned().collect();
    let offsets = sources
        .iter()
        .map(|s| start_offsets(log.as_ref(), &s.topic, earliest))
        .collect::<Result<Vec<_>>>()?;
    let mut inputs = Inputs::try_new(engine, &sources, offsets, &pipeline)?;
    let mut changes: Vec<Change> = Vec::new();
    let mut out: Vec<Change> = Vec::new();
    let reader_log = log.clone();
    spawn(log, bound.limit, move |rows| {
        let got = inputs.read(
            reader_log.as_ref(),
            1024,
            &mut changes,
            |input, changes| pipeline.process(input, changes, &mut out),
            |_, _| {},
        )?;
        rows.extend(out.drain(..).filter(|c| c.diff > 0).map(|c| c.row));
        Ok(got)
    })
}

/// The columns PRINT shows.
pub const PRINT_COLUMNS: [(&str, rill_sql::DataType); 5] = [
    ("ROWTIME", rill_sql::DataType::BigInt),
    ("PARTITION", rill_sql::DataType::Int),
    ("OFFSET", rill_sql::DataType::BigInt),
    ("KEY", rill_sql::DataType::String),
    ("VALUE", rill_sql::DataType::String),
];

/// `PRINT 'topic'`: the topic's raw records, bytes shown as text (lossy
/// UTF-8), tombstones and missing keys as NULL.
pub fn print(
    engine: &Arc<Engine>,
    topic: &str,
    from_beginning: bool,
    limit: Option<u64>,
) -> Result<PushRows> {
    let log = engine.log.clone();
    let mut offsets = start_offsets(log.as_ref(), topic, from_beginning)?;
    let topic = topic.to_string();
    let reader_log = log.clone();
    let mut records: Vec<Record> = Vec::new();
    let text = |b: &Option<Vec<u8>>| {
        b.as_deref()
            .map(|b| Value::str(&String::from_utf8_lossy(b)))
            .unwrap_or(Value::Null)
    };
    spawn(log, limit, move |rows| {
        let mut got = 0;
        for (p, offset) in offsets.iter_mut().enumerate() {
            records.clear();
            reader_log.read(&topic, p as u32, *offset, 1024, &mut records)?;
            for r in &records {
                *offset = r.offset + 1;
                got += 1;
                rows.push(vec![
                    Value::BigInt(r.timestamp),
                    Value::Int(p as i32),
                    Value::BigInt(r.offset as i64),
                    text(&r.key),
                    text(&r.value),
                ]);
            }
        }
        Ok(got)
    })
}
