//! The engine: the state every session shares. It owns the store, the log
//! backend, the catalog and the running queries, recovers them at startup,
//! and is the one place that commits catalog changes and log ends.

pub mod catalog;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rill_sql::catalog::{ColumnDesc, FormatSpec, RelationDesc};
use rill_sql::parser::RelationKind;
use rill_sql::DataType;
use rill_storage::state_log::Entries;
use rill_storage::{keys, Retention, StateLog, Store, WriteBatch};
use tracing::{info, warn};

use crate::backend::embedded::EmbeddedLog;
use crate::backend::kafka::KafkaLog;
use crate::backend::{LogBackend, TopicSpec, STREAM_RETENTION_MS};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::SchemaRegistry;
use crate::record::RecordCodec;
use crate::runtime::Runtime;
pub use catalog::{Catalog, CatalogEntry, QueryDesc, QueryKind};

/// The stream where queries report records they could not process.
pub const PROCESSING_LOG: &str = "RILL_PROCESSING_LOG";

/// `RILL_PROCESSING_LOG`: one JSON record per bad input record, queryable
/// like any stream.
pub fn processing_log_desc() -> RelationDesc {
    let col = |n: &str, t: DataType| ColumnDesc::new(n, t, false);
    RelationDesc {
        name: PROCESSING_LOG.into(),
        kind: RelationKind::Stream,
        columns: vec![
            col("QUERY_ID", DataType::String),
            col("TOPIC", DataType::String),
            col("PARTITION", DataType::Int),
            col("OFFSET", DataType::BigInt),
            col("ERROR", DataType::String),
            col("RECORD", DataType::String),
        ],
        window: None,
        topic: "rill_processing_log".into(),
        partitions: 1,
        format: FormatSpec {
            key_format: "NONE".into(),
            value_format: "JSON".into(),
            value_delimiter: None,
            wrap_single_value: None,
            key_schema_id: None,
            value_schema_id: None,
        },
        timestamp_column: None,
        timestamp_format: None,
        read_only: true,
        written_by: None,
        retention_ms: None,
    }
}

pub struct Engine {
    pub config: Config,
    pub store: Store,
    pub log: Arc<dyn LogBackend>,
    pub catalog: RwLock<Arc<Catalog>>,
    pub runtime: Runtime,
    /// The schema registry of the AVRO format, when configured.
    pub registry: Option<Arc<SchemaRegistry>>,
    /// Committed end of every topic partition written so far. Held while a
    /// batch that moves ends commits, so ends only ever grow in the store.
    log_ends: Mutex<HashMap<(String, u32), u64>>,
    /// Serializes statements that change the catalog.
    pub ddl: Mutex<()>,
    /// Per topic: INSERTs append under the read side, a query's commit
    /// under the write side (see [`Engine::topic_writers`]).
    writers: Mutex<HashMap<String, Arc<RwLock<()>>>>,
    /// Set while the catalog is rebuilt from the command topic.
    replaying: AtomicBool,
    /// Materialized tables' rows by table, loaded on first use (see
    /// [`TableRows`]).
    tables: Mutex<HashMap<String, Arc<TableRows>>>,
}

/// A materialized table's rows, encoded key -> encoded row plus ROWTIME,
/// as of the last commit of the query writing it. Pull queries read them
/// here; the store holds them as a log of commits
/// ([`StateLog::open_table`]), which the writing query's sink appends to
/// and publishes here once the commit has landed.
pub type TableRows = RwLock<Entries>;

/// Reads a std RwLock, recovering the data if a panicking thread poisoned
/// it.
pub fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// Writes a std RwLock, recovering the data if a panicking thread poisoned
/// it.
pub fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it
/// (our critical sections leave data consistent at every step).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// The codec of `rel`'s records.
    pub fn codec(&self, rel: &RelationDesc) -> Result<RecordCodec> {
        RecordCodec::try_new(rel, self.registry.as_ref())
    }

    /// Opens the data directory, cuts every log back to its committed end,
    /// loads the catalog and starts the persistent queries.
    pub fn open(config: Config) -> Result<Arc<Engine>> {
        let started = Instant::now();
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            Error::Internal(format!("cannot create {}: {e}", config.data_dir.display()))
        })?;
        let store = Store::open(&config.data_dir)?;
        let log: Arc<dyn LogBackend> = match &config.kafka_brokers {
            Some(brokers) => Arc::new(KafkaLog::connect(brokers, &config.kafka_config)?),
            None => EmbeddedLog::open(
                &config.data_dir,
                config.log_segment_bytes,
                Duration::from_millis(config.log_retention_check_ms.max(1)),
            )?,
        };

        // Records past the committed end were never acknowledged (an INSERT
        // that did not return, a query commit that did not land): drop them.
        let mut log_ends = HashMap::new();
        for entry in store.scan_prefix(&keys::all_log_ends_prefix()) {
            let (k, v) = entry?;
            let Some((topic, partition)) = keys::decode_log_end(&k) else {
                continue;
            };
            log_ends.insert((topic.to_string(), partition), keys::decode_u64(&v)?);
        }
        log.recover(&log_ends)?;

        let mut catalog = Catalog::default();
        for entry in store.scan_prefix(&keys::catalog_prefix()) {
            let (k, v) = entry?;
            let Some(id) = keys::decode_catalog(&k) else {
                continue;
            };
            let entry: CatalogEntry = serde_json::from_slice(&v)
                .map_err(|e| Error::Internal(format!("catalog entry {id} is unreadable: {e}")))?;
            catalog.load(id, entry);
        }
        if catalog.relation(PROCESSING_LOG).is_none() {
            let desc = processing_log_desc();
            let spec = TopicSpec {
                partitions: 1,
                replicas: None,
                compacted: false,
                retention: Retention {
                    ms: Some(STREAM_RETENTION_MS),
                    bytes: None,
                },
            };
            if let Err(e) = log.create_topic(&desc.topic, &spec) {
                warn!(topic = %desc.topic, error = %e, "cannot create the processing log topic: bad records will only be counted");
            }
            let mut batch = WriteBatch::new();
            let id = catalog.next_id;
            catalog.next_id += 1;
            let bytes = serde_json::to_vec(&CatalogEntry::Relation(desc.clone()))
                .map_err(|e| Error::Internal(e.to_string()))?;
            batch.put(keys::catalog(id), bytes);
            store.commit(batch, true)?;
            catalog.relations.insert(desc.name.clone(), (id, desc));
        }
        let queries: Vec<QueryDesc> = {
            let mut qs: Vec<(u64, QueryDesc)> = catalog.queries.values().cloned().collect();
            qs.sort_by_key(|(id, _)| *id);
            qs.into_iter().map(|(_, q)| q).collect()
        };
        let registry = config
            .schema_registry
            .as_deref()
            .map(|url| Arc::new(SchemaRegistry::new(url)));
        let engine = Arc::new(Engine {
            config,
            registry,
            store,
            log,
            catalog: RwLock::new(Arc::new(catalog)),
            runtime: Runtime::default(),
            log_ends: Mutex::new(log_ends),
            ddl: Mutex::new(()),
            writers: Mutex::new(HashMap::new()),
            replaying: AtomicBool::new(false),
            tables: Mutex::new(HashMap::new()),
        });
        for q in queries {
            if let Err(e) = engine.runtime.start(&engine, q.clone()) {
                warn!(query = %q.id, error = %e, "query failed to start");
                engine.runtime.record_failure(&q.id, e.to_string());
            }
        }
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            queries = engine.runtime.count(),
            "recovered"
        );
        Ok(engine)
    }

    /// A snapshot of the catalog for binding.
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&read(&self.catalog))
    }

    /// Commits `batch` with the new committed ends of the log partitions it
    /// wrote (the records must already be synced).
    pub fn commit(
        &self,
        mut batch: WriteBatch,
        ends: &[(String, u32, u64)],
        durable: bool,
    ) -> Result<()> {
        let mut current = lock(&self.log_ends);
        let mut updated = Vec::new();
        for (topic, partition, end) in ends {
            let key = (topic.clone(), *partition);
            let end = current.get(&key).copied().unwrap_or(0).max(*end);
            batch.put(
                keys::log_end(topic, *partition),
                keys::encode_u64(end).to_vec(),
            );
            updated.push((key, end));
        }
        self.store.commit(batch, durable)?;
        for ((topic, partition), end) in &updated {
            self.log.publish_end(topic, *partition, *end);
        }
        current.extend(updated);
        Ok(())
    }

    /// The lock that orders writers of `topic`. A query holds the write side
    /// from its first append to its commit landing, so no other writer's
    /// commit can publish an end past the query's records while they are
    /// uncommitted, and a failed commit can cut them away
    /// ([`LogBackend::discard_uncommitted`]). INSERTs share the read side:
    /// they run concurrently (group commit), and an INSERT that fails after
    /// appending has an unknown outcome, as after a crash.
    pub fn topic_writers(&self, topic: &str) -> Arc<RwLock<()>> {
        lock(&self.writers)
            .entry(topic.to_string())
            .or_default()
            .clone()
    }

    /// The rows of `table`, read from the store the first time they are
    /// asked for.
    pub fn table_rows(&self, table: &str) -> Result<Arc<TableRows>> {
        let mut tables = lock(&self.tables);
        if let Some(rows) = tables.get(table) {
            return Ok(rows.clone());
        }
        let (_, entries) = StateLog::open_table(&self.store, table)?;
        let rows = Arc::new(RwLock::new(entries));
        tables.insert(table.to_string(), rows.clone());
        Ok(rows)
    }

    /// Makes `entries` the rows of `table`: its writing query just read them
    /// from the store, as it starts.
    pub fn install_table_rows(&self, table: &str, entries: Entries) -> Arc<TableRows> {
        let rows = lock(&self.tables)
            .entry(table.to_string())
            .or_default()
            .clone();
        *write(&rows) = entries;
        rows
    }

    /// Drops the rows of a dropped table from memory.
    pub fn forget_table_rows(&self, table: &str) {
        lock(&self.tables).remove(table);
    }

    /// Whether statements are being replayed from the command topic.
    pub fn replaying(&self) -> bool {
        self.replaying.load(Ordering::SeqCst)
    }

    pub fn set_replaying(&self, on: bool) {
        self.replaying.store(on, Ordering::SeqCst);
    }

    /// Forgets the committed ends of a deleted topic.
    pub fn forget_topic(&self, topic: &str, batch: &mut WriteBatch) -> Result<()> {
        self.store
            .delete_prefix_into(&keys::log_end_prefix(topic), batch)?;
        lock(&self.log_ends).retain(|(t, _), _| t != topic);
        Ok(())
    }

    /// Adds catalog entries to a batch, returning their ids.
    pub fn catalog_put(
        &self,
        catalog: &mut Catalog,
        batch: &mut WriteBatch,
        entry: &CatalogEntry,
    ) -> Result<u64> {
        let id = catalog.next_id;
        catalog.next_id += 1;
        let bytes = serde_json::to_vec(entry).map_err(|e| Error::Internal(e.to_string()))?;
        batch.put(keys::catalog(id), bytes);
        Ok(id)
    }

    /// Stops every query after a final commit (graceful shutdown).
    pub fn shutdown(&self) {
        self.runtime.stop_all();
        if let Err(e) = self.store.flush() {
            warn!(error = %e, "final flush failed");
        }
    }
}
