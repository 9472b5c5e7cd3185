//! The query runtime: each persistent query is a pipeline on its own
//! thread that reads its source topic from its committed offsets, runs the
//! operators, and commits state, outputs and offsets together.
//!
//! Threads talk to the async world only through the status they publish
//! (a watch channel of committed offsets, for read-your-writes).

pub mod changelog;
mod expiry;
mod fresh;
pub mod push;
mod query;
pub mod sink;
mod source;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rill_sql::dataflow::Metrics;
use tokio::sync::watch;

use crate::engine::{lock, Engine, QueryDesc};
use crate::error::Result;
pub use fresh::wait_fresh;

/// Lifecycle of a persistent query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryState {
    Running,
    /// Stopped by an error; the message says why.
    Error(String),
}

/// What a running query publishes about itself.
#[derive(Debug)]
pub struct QueryStatus {
    pub state: Mutex<QueryState>,
    pub rows_in: AtomicU64,
    pub rows_out: AtomicU64,
    /// Records that could not be decoded.
    pub bad_records: AtomicU64,
    pub last_bad_record: Mutex<Option<String>>,
    pub metrics: Mutex<Metrics>,
    pub state_entries: AtomicU64,
    /// Per join, the state entries of its left and right side.
    pub join_state: Mutex<Vec<(usize, usize)>>,
    /// Committed offsets per source (in FROM order), one per partition.
    pub committed: watch::Sender<Vec<Vec<u64>>>,
}

impl QueryStatus {
    fn new(offsets: Vec<Vec<u64>>) -> QueryStatus {
        QueryStatus {
            state: Mutex::new(QueryState::Running),
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            bad_records: AtomicU64::new(0),
            last_bad_record: Mutex::new(None),
            metrics: Mutex::new(Metrics::default()),
            state_entries: AtomicU64::new(0),
            join_state: Mutex::new(Vec::new()),
            committed: watch::channel(offsets).0,
        }
    }

    pub fn state(&self) -> QueryState {
        lock(&self.state).clone()
    }
}

struct QueryHandle {
    status: Arc<QueryStatus>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The running queries.
#[derive(Default)]
pub struct Runtime {
    queries: Mutex<BTreeMap<String, QueryHandle>>,
}

impl Runtime {
    /// Builds the query's pipeline from the catalog and store and starts its
    /// thread.
    pub fn start(&self, engine: &Arc<Engine>, desc: QueryDesc) -> Result<()> {
        if engine.replaying() {
            let topic = changelog::state_topic(&engine.config, &desc.id);
            let n = changelog::restore(engine.log.as_ref(), &engine.store, &topic)?;
            tracing::info!(query = %desc.id, entries = n, "state restored from the state topic");
        }
        let task = query::QueryTask::try_new(engine, desc.clone())?;
        let status = task.status.clone();
        let stop = task.stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("q-{}", desc.id))
            .spawn(move || task.run())
            .map_err(|e| crate::error::Error::Internal(format!("cannot start thread: {e}")))?;
        lock(&self.queries).insert(
            desc.id,
            QueryHandle {
                status,
                stop,
                thread: Some(thread),
            },
        );
        Ok(())
    }

    /// Records a query that could not start, so SHOW QUERIES says why.
    pub fn record_failure(&self, id: &str, message: String) {
        let status = Arc::new(QueryStatus::new(Vec::new()));
        *lock(&status.state) = QueryState::Error(message);
        lock(&self.queries).insert(
            id.to_string(),
            QueryHandle {
                status,
                stop: Arc::new(AtomicBool::new(true)),
                thread: None,
            },
        );
    }

    pub fn status(&self, id: &str) -> Option<Arc<QueryStatus>> {
        lock(&self.queries).get(id).map(|h| h.status.clone())
    }

    pub fn count(&self) -> usize {
        lock(&self.queries).len()
    }

    /// Stops a query (after its final commit) and forgets it.
    pub fn stop(&self, id: &str) {
        let handle = lock(&self.queries).remove(id);
        if let Some(mut h) = handle {
            h.stop.store(true, Ordering::SeqCst);
            if let Some(t) = h.thread.take() {
                let _ = t.join();
            }
        }
    }

    pub fn stop_all(&self) {
        let ids: Vec<String> = lock(&self.queries).keys().cloned().collect();
        for h in lock(&self.queries).values() {
            h.stop.store(true, Ordering::SeqCst);
        }
        for id in ids {
            self.stop(&id);
        }
    }
}
