//! One persistent query's thread: read, process, commit, repeat.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use rill_sql::binder::{bind_select, SelectMode};
use rill_sql::catalog::RelationDesc;
use rill_sql::dataflow::{Change, Pipeline};
use rill_sql::parser::{parse_statement, RelationKind, Statement};
use rill_sql::plan::plan_query;
use rill_sql::Value;
use rill_storage::{keys, StateLog, StorageError, WriteBatch};
use tracing::{debug, error, info, warn};

use super::changelog;
use super::sink::Sink;
use super::source::{BadRecord, Inputs};
use super::{QueryState, QueryStatus};
use crate::engine::{lock, processing_log_desc, Engine, QueryDesc, QueryKind};
use crate::error::{Error, Result};

/// Records read per partition per round.
const READ_BATCH: usize = 4096;
/// A query commits once its sink holds this much output, even before the
/// commit interval: the buffers stay small enough to be reused, and in
/// cache, rather than freed and faulted in again at every commit.
const COMMIT_BYTES: usize = 4 << 20;
/// First and longest pause between reads of a source that is unavailable.
const UNAVAILABLE_PAUSE: Duration = Duration::from_millis(100);
const MAX_UNAVAILABLE_PAUSE: Duration = Duration::from_secs(2);

pub(super) struct QueryTask {
    engine: Arc<Engine>,
    desc: QueryDesc,
    /// A reader per source; offsets are stored under each one's topic.
    inputs: Inputs,
    pipeline: Pipeline,
    /// Where the pipeline's state is committed.
    state_log: StateLog,
    sink: Sink,
    /// Writes bad input records to the processing log.
    problems: Sink,
    /// Kafka mode: the query's state topic and the store prefixes mirrored
    /// to it.
    state_topic: Option<(String, Vec<Vec<u8>>)>,
    /// Exactly once: the transactional writer its commits go through.
    transaction: Option<String>,

    pub(super) status: Arc<QueryStatus>,
    pub(super) stop: Arc<AtomicBool>,
}

/// The pipeline a query's statement plans to (empty for a source table:
/// its records go straight to the table).
pub fn plan_pipeline(engine: &Engine, desc: &QueryDesc) -> Result<Pipeline> {
    if desc.kind == QueryKind::SourceTable {
        return Ok(Pipeline::new(Vec::new()));
    }
    let parsed = parse_statement(&desc.sql)?;
    let select = match parsed.statement {
        Statement::CreateAs(c) => c.select,
        Statement::InsertSelect { select, .. } => select,
        _ => return Err(Error::Internal(format!("query {} has no SELECT", desc.id))),
    };
    let catalog = engine.catalog();
    let bound = bind_select(&select, &*catalog, SelectMode::Persistent)?;
    Ok(plan_query(&bound)?.pipeline)
}

fn relation(engine: &Engine, name: &str) -> Result<RelationDesc> {
    engine
        .catalog()
        .relation(name)
        .cloned()
        .ok_or_else(|| Error::Internal(format!("relation {name} is missing from the catalog")))
}

impl QueryTask {
    pub(super) fn try_new(engine: &Arc<Engine>, desc: QueryDesc) -> Result<QueryTask> {
        let sources = desc
            .sources()
            .map(|s| relation(engine, s))
            .collect::<Result<Vec<_>>>()?;
        let sink_rel = relation(engine, &desc.sink)?;
        // Before anything reads the store: with exactly once the state
        // topic may be ahead of it.
        let state_topic = if changelog::enabled(&engine.config) {
            let table = (sink_rel.kind == RelationKind::Table).then_some(sink_rel.name.as_str());
            let prefixes = changelog::prefixes(&desc.id, table);
            let log = engine.log.as_ref();
            let topic = changelog::state_topic(&engine.config, &desc.id);
            let synced = changelog::ensure_topic(log, &topic).and_then(|()| {
                if desc.exactly_once {
                    // The transactional id is the state topic's name.
                    log.fence(&topic)?;
                    changelog::adopt(log, &engine.store, &topic, &prefixes)
                } else {
                    changelog::catch_up(log, &engine.store, &topic, &prefixes)
                }
            });
            match synced {
                Ok(()) => Some((topic, prefixes)),
                Err(e) if desc.exactly_once => return Err(e),
                Err(e) => {
                    warn!(query = %desc.id, error = %e, "no state topic: this query cannot be rebuilt from Kafka");
                    None
                }
            }
        } else {
            None
        };
        let transaction = state_topic
            .as_ref()
            .filter(|_| desc.exactly_once)
            .map(|(topic, _)| topic.clone());
        let mut pipeline = plan_pipeline(engine, &desc)?;
        // Its output only counts once committed: a group changed by many
        // batches of a commit is written once.
        pipeline.coalesce_changes();
        let (state_log, entries) = StateLog::open(&engine.store, &desc.id)?;
        for (k, v) in &entries {
            pipeline.restore(k, v)?;
        }
        let mut offsets = Vec::with_capacity(sources.len());
        for source in &sources {
            let partitions = engine
                .log
                .topic_partitions(&source.topic)
                .unwrap_or(source.partitions);
            let mut of_topic = vec![0u64; partitions as usize];
            for (p, slot) in of_topic.iter_mut().enumerate() {
                let key = keys::offset(&desc.id, &source.topic, p as u32);
                *slot = match engine.store.get(&key)? {
                    Some(v) => keys::decode_u64(&v)?,
                    None => engine.log.start_offset(&source.topic, p as u32)?,
                };
            }
            offsets.push(of_topic);
        }
        let sink = Sink::try_new(engine, &sink_rel, desc.kind != QueryKind::SourceTable)?;
        let status = Arc::new(QueryStatus::new(offsets.clone()));
        status
            .state_entries
            .store(pipeline.state_size() as u64, Ordering::Relaxed);
        let mut inputs = Inputs::try_new(engine, &sources, offsets, &pipeline)?;
        // Output records that are the input's unchanged are written on as
        // they were read, where they are what the sink would write anyway.
        let streams = sink_rel.kind == RelationKind::Stream
            && sources.iter().all(|s| s.kind == RelationKind::Stream);
        if streams && pipeline.passes_rows_through(sink_rel.columns.len()) {
            let raw = inputs.keep_raw_values(&sources, &sink_rel);
            debug!(query = %desc.id, raw, "output records are the input's");
        }
        Ok(QueryTask {
            engine: engine.clone(),
            inputs,
            desc,
            pipeline,
            state_log,
            sink,
            problems: Sink::try_new(engine, &processing_log_desc(), true)?,
            state_topic,
            transaction,

            status,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    pub(super) fn run(mut self) {
        if let Err(e) = self.run_loop() {
            error!(query = %self.desc.id, error = %e, "query stopped");
            *lock(&self.status.state) = QueryState::Error(e.to_string());
        }
    }

    fn run_loop(&mut self) -> Result<()> {
        let interval = self.engine.config.commit_interval();
        let mut changes: Vec<Change> = Vec::new();
        let mut out: Vec<Change> = Vec::new();
        let mut dirty = false;
        let mut last_commit = Instant::now();
        let mut unavailable_for = Duration::ZERO;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                if dirty {
                    self.commit()?;
                }
                return Ok(());
            }
            let seen = self.engine.log.appended();
            let status = &self.status;
            let mut bad_records = Vec::new();
            let (pipeline, sink) = (&mut self.pipeline, &mut self.sink);
            let mut rows_out = 0;
            let read = self.inputs.read(
                self.engine.log.as_ref(),
                READ_BATCH,
                &mut changes,
                |input, changes| {
                    pipeline.process(input, changes, &mut out);
                    rows_out += sink.apply(&mut out);
                },
                |input, bad| {
                    status.bad_records.fetch_add(1, Ordering::Relaxed);
                    *lock(&status.last_bad_record) = Some(format!(
                        "partition {} offset {}: {}",
                        bad.partition, bad.offset, bad.error
                    ));
                    bad_records.push((input, bad));
                },
            );
            if !bad_records.is_empty() {
                self.report(bad_records);
            }
            // A broker away fails the read without reading anything: the
            // query waits and reads again, it does not stop.
            let (got, unavailable) = match read {
                Ok(got) => (got, false),
                Err(Error::Storage(StorageError::Unavailable(reason))) => {
                    if unavailable_for.is_zero() {
                        warn!(query = %self.desc.id, %reason, "source unavailable: waiting");
                    }
                    (0, true)
                }
                Err(e) => return Err(e),
            };
            if got > 0 {
                self.status.rows_in.fetch_add(got, Ordering::Relaxed);
                self.status.rows_out.fetch_add(rows_out, Ordering::Relaxed);
                dirty = true;
            }
            dirty |= self.inputs.take_skipped();
            // Commit when the input is drained, the interval has passed or
            // the output buffered is large.
            if dirty
                && (got == 0
                    || last_commit.elapsed() >= interval
                    || self.sink.pending_bytes() >= COMMIT_BYTES)
            {
                self.commit()?;
                dirty = false;
                last_commit = Instant::now();
            }
            if unavailable {
                let pause = (unavailable_for / 2).clamp(UNAVAILABLE_PAUSE, MAX_UNAVAILABLE_PAUSE);
                std::thread::sleep(pause);
                unavailable_for += pause;
            } else {
                if !unavailable_for.is_zero() {
                    info!(query = %self.desc.id, waited_ms = unavailable_for.as_millis() as u64, "source available again");
                    unavailable_for = Duration::ZERO;
                }
                if got == 0 {
                    self.engine
                        .log
                        .wait_for_append(seen, Duration::from_millis(200));
                }
            }
        }
    }

    /// Queues bad records for the processing log (written at commit).
    fn report(&mut self, bad: Vec<(usize, BadRecord)>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let mut changes: Vec<Change> = bad
            .into_iter()
            .map(|(input, b)| {
                let row = vec![
                    Value::str(&self.desc.id),
                    Value::str(self.inputs.readers[input].topic()),
                    Value::Int(b.partition as i32),
                    Value::BigInt(b.offset as i64),
                    Value::str(&b.error),
                    Value::str(&b.excerpt),
                ];
                Change::insert(row, now)
            })
            .collect();
        self.problems.apply(&mut changes);
    }

    /// State, outputs and offsets in one atomic batch. Other writers of the
    /// output topics wait until it lands; if it fails, what it appended is
    /// cut away again, so a restarted query appends it once.
    fn commit(&mut self) -> Result<()> {
        let mut out = Vec::new();
        self.pipeline.flush(&mut out);
        let rows_out = self.sink.apply(&mut out);
        self.status.rows_out.fetch_add(rows_out, Ordering::Relaxed);
        let sink_writers = self.sink.topic().map(|t| self.engine.topic_writers(t));
        let _sink = sink_writers
            .as_ref()
            .map(|w| w.write().unwrap_or_else(PoisonError::into_inner));
        let problems_writers = self
            .problems
            .has_pending()
            .then(|| self.problems.topic().map(|t| self.engine.topic_writers(t)))
            .flatten();
        let _problems = problems_writers
            .as_ref()
            .map(|w| w.write().unwrap_or_else(PoisonError::into_inner));
        let mirror = match self.commit_locked() {
            Ok(mirror) => mirror,
            Err(e) => {
                if let Some(writer) = &self.transaction {
                    // Nothing of it becomes visible (a no-op if the
                    // transaction had committed and the store failed).
                    let _ = self.engine.log.abort_transaction(writer);
                }
                if let Some(topic) = self.sink.topic() {
                    self.discard(topic);
                }
                if problems_writers.is_some() {
                    if let Some(topic) = self.problems.topic() {
                        self.discard(topic);
                    }
                }
                return Err(e);
            }
        };
        drop((_sink, _problems));
        // After the store: the state topic never holds what the store does
        // not (see `changelog`).
        if let Some((topic, writes)) = mirror {
            changelog::produce(self.engine.log.as_ref(), &topic, &writes, None)?;
        }
        Ok(())
    }

    /// Cuts away what a failed commit appended to `topic` (its writer lock
    /// is held).
    fn discard(&self, topic: &str) {
        if let Err(e) = self.engine.log.discard_uncommitted(topic) {
            error!(query = %self.desc.id, topic, error = %e, "cannot discard the appends of a failed commit");
        }
    }

    /// The commit itself; returns the writes to mirror to the state topic.
    fn commit_locked(&mut self) -> Result<Option<(String, Vec<changelog::Write>)>> {
        let mut batch = WriteBatch::new();
        let mut writes = Vec::new();
        self.pipeline.drain_dirty(&mut writes);
        if !writes.is_empty() && self.state_log.wants_snapshot() {
            let mut entries = Vec::new();
            self.pipeline.snapshot(&mut entries);
            self.state_log.write_snapshot(
                &self.engine.store,
                entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
                &mut batch,
            )?;
        } else {
            self.state_log.append(&writes, &mut batch);
        }
        let log = self.engine.log.as_ref();
        let transaction = self.transaction.as_deref();
        if let Some(writer) = transaction {
            log.begin_transaction(writer)?;
        }
        let mut ends = self.sink.flush(log, &mut batch, transaction)?;
        // The processing log is best effort: a query never stops for it.
        match self.problems.flush(log, &mut batch, None) {
            Ok(e) => ends.extend(e),
            Err(e) => {
                warn!(query = %self.desc.id, error = %e, "processing log not written");
                if let Some(topic) = self.problems.topic() {
                    self.discard(topic);
                }
            }
        }
        for reader in &self.inputs.readers {
            for (p, off) in reader.offsets.iter().enumerate() {
                batch.put(
                    keys::offset(&self.desc.id, reader.topic(), p as u32),
                    keys::encode_u64(*off).to_vec(),
                );
            }
        }
        let mut mirror = self
            .state_topic
            .as_ref()
            .map(|(topic, prefixes)| (topic.clone(), changelog::writes_of(&batch, prefixes)))
            .filter(|(_, writes)| !writes.is_empty());
        if let Some(writer) = transaction {
            // Exactly once: the state goes in the outputs' transaction, and
            // its commit is the query's (the store is a copy; see `adopt`).
            if let Some((topic, writes)) = mirror.take() {
                changelog::produce(log, &topic, &writes, Some(writer))?;
            }
            log.commit_transaction(writer)?;
        }
        self.engine.commit(batch, &ends, false)?;
        self.sink.publish();
        // Lag tools see the query as consumer group `rill-<query id>`.
        let group = format!("rill-{}", self.desc.id);
        for reader in &self.inputs.readers {
            if let Err(e) = log.report_progress(&group, reader.topic(), &reader.offsets) {
                debug!(query = %self.desc.id, error = %e, "progress not reported");
            }
        }
        self.status
            .state_entries
            .store(self.pipeline.state_size() as u64, Ordering::Relaxed);
        *lock(&self.status.join_state) = self.pipeline.join_sizes();
        let mut m = self.pipeline.metrics.clone();
        m.errors += self.sink.bad_rows;
        if self.sink.last_error.is_some() {
            m.last_error.clone_from(&self.sink.last_error);
        }
        *lock(&self.status.metrics) = m;
        // Last: waking read-your-writes waiters must find the metrics too.
        let offsets = self.inputs.offsets();
        debug!(query = %self.desc.id, ?offsets, "committed");
        self.status.committed.send_replace(offsets);
        Ok(mirror)
    }
}
