//! Push queries: a transient pipeline on its own thread that streams rows
//! to one client until its LIMIT, a cancel, or the client going away.

use std::sync::Arc;
use std::time::Duration;

use rill_sql::binder::BoundQuery;
use rill_sql::dataflow::Change;
use rill_sql::plan::plan_query;
use rill_sql::Row;
use tokio::sync::mpsc;

use super::source::SourceReader;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Rows of a push query as they come; an `Err` ends the stream with that
/// message.
pub type PushRows = mpsc::Receiver<std::result::Result<Row, String>>;

/// Starts a push query over a bound `SELECT ... EMIT CHANGES`.
pub fn start(engine: &Arc<Engine>, bound: BoundQuery, earliest: bool) -> Result<PushRows> {
    let source = bound
        .source
        .clone()
        .ok_or_else(|| Error::Invalid("a push query needs FROM".into()))?;
    let mut pipeline = plan_query(&bound)?.pipeline;
    let log = engine.log.clone();
    let topic = source.topic.clone();
    let partitions = log.topic_partitions(&topic).unwrap_or(source.partitions);
    let mut offsets = Vec::with_capacity(partitions as usize);
    for p in 0..partitions {
        offsets.push(if earliest {
            log.start_offset(&topic, p)?
        } else {
            log.end_offset(&topic, p)?
        });
    }
    let mut reader = SourceReader::try_new(&source, offsets)?;
    let limit = bound.limit;
    let (tx, rx) = mpsc::channel(1024);
    std::thread::Builder::new()
        .name("push".into())
        .spawn(move || {
            let mut sent = 0u64;
            let mut changes: Vec<Change> = Vec::new();
            let mut out: Vec<Change> = Vec::new();
            loop {
                if limit.is_some_and(|l| sent >= l) || tx.is_closed() {
                    return;
                }
                let seen = log.appended();
                let got = match reader.read(log.as_ref(), 1024, &mut changes, |_| {}) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e.to_string()));
                        return;
                    }
                };
                if got == 0 {
                    log.wait_for_append(seen, Duration::from_millis(200));
                    continue;
                }
                pipeline.process(&mut changes, &mut out);
                for c in out.drain(..) {
                    if c.diff <= 0 {
                        continue;
                    }
                    if limit.is_some_and(|l| sent >= l) || tx.blocking_send(Ok(c.row)).is_err() {
                        return;
                    }
                    sent += 1;
                }
            }
        })
        .map_err(|e| Error::Internal(format!("cannot start push query: {e}")))?;
    Ok(rx)
}
