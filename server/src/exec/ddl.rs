//! CREATE STREAM/TABLE (with columns) and DROP.

use std::sync::Arc;

use rill_sql::binder::{
    bind_create_source, bind_source_format, bind_topic_properties, Limit, TopicProperties,
};
use rill_sql::catalog::RelationDesc;
use rill_sql::parser::{CreateSource, RelationKind};
use rill_sql::BindError;
use rill_storage::{keys, Retention, WriteBatch};
use tracing::info;

use super::schemas::{infer_columns, register_schemas};
use super::Output;
use crate::backend::{TopicSpec, STREAM_RETENTION_MS};
use crate::engine::{self, lock, CatalogEntry, Engine, QueryDesc, QueryKind};
use crate::error::{Error, Result};
use crate::session::Session;

fn tag(kind: RelationKind, verb: &str) -> String {
    format!("{verb} {}", kind.name().to_uppercase())
}

/// Refuses to change `name` while persistent queries read it.
fn refuse_if_read(catalog: &crate::engine::Catalog, name: &str, what: &str) -> Result<()> {
    let readers: Vec<String> = catalog
        .readers_of(name)
        .iter()
        .map(|q| q.id.clone())
        .collect();
    if readers.is_empty() {
        return Ok(());
    }
    Err(Error::InUse {
        message: format!(
            "cannot {what} \"{name}\": queries read it: {}",
            readers.join(", ")
        ),
        hint: Some(format!("TERMINATE {} first", readers.join(", "))),
    })
}

/// What a topic rill creates is for, which decides its default retention.
#[derive(Debug, Clone, Copy)]
pub(super) enum TopicUse {
    /// A stream's records: kept for [`STREAM_RETENTION_MS`].
    Stream,
    /// A table's changelog: compacted, kept forever; a windowed table's
    /// for the given time (its windows' retention plus a day, as Kafka
    /// Streams keeps windowed changelogs).
    Changelog { retention_ms: Option<u64> },
}

/// Creates the topic if it is missing and `layout` says how many
/// partitions it gets; returns its partition count. The retention in
/// `layout` applies to a topic created here; an existing topic keeps its
/// own (as in ksqlDB).
pub(super) fn ensure_topic(
    engine: &Engine,
    topic: &str,
    layout: TopicProperties,
    topic_use: TopicUse,
) -> Result<u32> {
    match (engine.log.topic_partitions(topic), layout.partitions) {
        (Some(n), Some(want)) if want != n => Err(Error::Invalid(format!(
            "topic '{topic}' already exists with {n} partitions, not {want}: leave PARTITIONS out or give {n}"
        ))),
        (Some(n), _) => Ok(n),
        (None, None) => Err(Error::Invalid(format!(
            "topic '{topic}' does not exist: to create it, give PARTITIONS (and optionally REPLICAS) \
             in the WITH clause, e.g. WITH (kafka_topic='{topic}', partitions=1)"
        ))),
        (None, Some(partitions)) => {
            let (compacted, default_ms) = match topic_use {
                TopicUse::Stream => (false, Some(STREAM_RETENTION_MS)),
                TopicUse::Changelog { retention_ms } => (true, retention_ms),
            };
            let retention = Retention {
                ms: layout.retention_ms.map_or(default_ms, Limit::value),
                bytes: layout.retention_bytes.and_then(Limit::value),
            };
            engine.log.create_topic(
                topic,
                &TopicSpec {
                    partitions,
                    replicas: layout.replicas,
                    compacted,
                    retention,
                },
            )?;
            Ok(partitions)
        }
    }
}

/// Adds the initial offsets of a new query to `batch`.
pub(super) fn initial_offsets(
    engine: &Engine,
    batch: &mut WriteBatch,
    query: &str,
    topic: &str,
    earliest: bool,
) -> Result<()> {
    let partitions = engine.log.topic_partitions(topic).unwrap_or(1);
    for p in 0..partitions {
        let off = if earliest {
            engine.log.start_offset(topic, p)?
        } else {
            engine.log.end_offset(topic, p)?
        };
        batch.put(
            keys::offset(query, topic, p),
            keys::encode_u64(off).to_vec(),
        );
    }
    Ok(())
}

pub(super) fn create_source(
    engine: &Arc<Engine>,
    _session: &Session,
    c: CreateSource,
    sql: &str,
) -> Result<Output> {
    let _ddl = lock(&engine.ddl);
    let mut catalog = (*engine.catalog()).clone();
    if catalog.relation(&c.name).is_some() {
        if c.if_not_exists {
            return Ok(Output::Command(tag(c.kind, "CREATE")));
        }
        if !c.or_replace {
            return Err(BindError::Duplicate {
                kind: if c.kind == RelationKind::Stream {
                    "stream"
                } else {
                    "table"
                },
                name: c.name.clone(),
            }
            .into());
        }
    }
    let (topic, mut format) = bind_source_format(&c)?;
    let inferred = infer_columns(engine, &c, &topic, &mut format)?;
    let mut desc = bind_create_source(&c, &inferred)?;
    // The same formats, now with the ids of the schemas inferred from.
    desc.format = format;
    register_schemas(engine, &mut desc)?;
    engine.codec(&desc)?;
    let mut batch = WriteBatch::new();
    let replacing = catalog.relation(&c.name).cloned();
    if let Some(old) = &replacing {
        if old.kind != desc.kind {
            return Err(Error::Invalid(format!(
                "\"{}\" is a {}: cannot replace it with a {}",
                c.name,
                old.kind.name(),
                desc.kind.name()
            )));
        }
        if old.written_by.is_some() {
            return Err(Error::Invalid(format!(
                "\"{}\" is the output of query {}: drop it first",
                c.name,
                old.written_by.as_deref().unwrap_or("")
            )));
        }
        refuse_if_read(&catalog, &c.name, "replace")?;
        drop_relation(engine, &mut catalog, &mut batch, &c.name, false)?;
    }
    desc.partitions = ensure_topic(
        engine,
        &desc.topic,
        bind_topic_properties(&c.properties)?,
        match desc.kind {
            RelationKind::Stream => TopicUse::Stream,
            RelationKind::Table => TopicUse::Changelog { retention_ms: None },
        },
    )?;
    let kind = desc.kind;
    let name = desc.name.clone();
    let topic = desc.topic.clone();
    engine.catalog_put(
        &mut catalog,
        &mut batch,
        &CatalogEntry::Relation(desc.clone()),
    )?;
    catalog
        .relations
        .insert(name.clone(), (catalog.next_id - 1, desc));
    let mut query = None;
    if kind == RelationKind::Table {
        // A source table is materialized from its whole topic.
        let id = format!("CST_{}_{}", name, catalog.next_id);
        let q = QueryDesc {
            id: id.clone(),
            kind: QueryKind::SourceTable,
            sql: sql.to_string(),
            source: name.clone(),
            joined: Vec::new(),
            sink: name.clone(),
            earliest: true,
            exactly_once: false,
        };
        engine.catalog_put(&mut catalog, &mut batch, &CatalogEntry::Query(q.clone()))?;
        catalog
            .queries
            .insert(id.clone(), (catalog.next_id - 1, q.clone()));
        initial_offsets(engine, &mut batch, &id, &topic, true)?;
        query = Some(q);
    }
    engine.commit(batch, &[], true)?;
    *engine::write(&engine.catalog) = Arc::new(catalog);
    if let Some(q) = query {
        engine.runtime.start(engine, q)?;
    }
    info!(name = %name, topic = %topic, "created {}", kind.name());
    Ok(Output::Command(tag(kind, "CREATE")))
}

/// Removes a relation, its rows and the queries writing it from the
/// catalog, adding the store deletes to `batch`.
fn drop_relation(
    engine: &Engine,
    catalog: &mut crate::engine::Catalog,
    batch: &mut WriteBatch,
    name: &str,
    delete_topic: bool,
) -> Result<()> {
    let writers: Vec<String> = catalog
        .writers_of(name)
        .iter()
        .map(|q| q.id.clone())
        .collect();
    for id in writers {
        engine.runtime.stop(&id);
        remove_query(engine, catalog, batch, &id)?;
    }
    if let Some((id, rel)) = catalog.relations.remove(name) {
        batch.delete(keys::catalog(id));
        engine
            .store
            .delete_prefix_into(&keys::table_prefix(name), batch)?;
        engine.forget_table_rows(name);
        if delete_topic
            && !catalog
                .relations
                .values()
                .any(|(_, r)| r.topic == rel.topic)
        {
            engine.log.delete_topic(&rel.topic)?;
            engine.forget_topic(&rel.topic, batch)?;
        }
    }
    Ok(())
}

/// Removes a (stopped) query's catalog entry, state and offsets.
pub(super) fn remove_query(
    engine: &Engine,
    catalog: &mut crate::engine::Catalog,
    batch: &mut WriteBatch,
    id: &str,
) -> Result<()> {
    if let Some((cid, q)) = catalog.queries.remove(id) {
        batch.delete(keys::catalog(cid));
        engine
            .store
            .delete_prefix_into(&keys::state_prefix(id), batch)?;
        engine
            .store
            .delete_prefix_into(&keys::offset_prefix(id), batch)?;
        if let Some((rid, rel)) = catalog.relations.get_mut(&q.sink) {
            if rel.written_by.as_deref() == Some(id) {
                rel.written_by = None;
                let bytes = serde_json::to_vec(&CatalogEntry::Relation(rel.clone()))
                    .map_err(|e| Error::Internal(e.to_string()))?;
                batch.put(keys::catalog(*rid), bytes);
            }
        }
    }
    Ok(())
}

pub(super) fn drop(
    engine: &Arc<Engine>,
    kind: RelationKind,
    name: &str,
    if_exists: bool,
    delete_topic: bool,
) -> Result<Output> {
    let _ddl = lock(&engine.ddl);
    let mut catalog = (*engine.catalog()).clone();
    if name == crate::engine::PROCESSING_LOG {
        return Err(Error::Invalid(format!(
            "{name} is built in and cannot be dropped"
        )));
    }
    let Some(rel): Option<RelationDesc> = catalog.relation(name).cloned() else {
        if if_exists {
            return Ok(Output::Command(tag(kind, "DROP")));
        }
        let names = rill_sql::catalog::Catalog::relation_names(&catalog);
        return Err(BindError::UnknownRelation {
            kind: kind.name(),
            hint: rill_sql::error::did_you_mean(name, names.iter().map(String::as_str)),
            name: name.to_string(),
        }
        .into());
    };
    if rel.kind != kind {
        return Err(Error::Invalid(format!(
            "\"{name}\" is a {}, not a {}: use DROP {}",
            rel.kind.name(),
            kind.name(),
            rel.kind.name().to_uppercase()
        )));
    }
    refuse_if_read(&catalog, name, &format!("drop {}", kind.name()))?;
    let mut batch = WriteBatch::new();
    drop_relation(engine, &mut catalog, &mut batch, name, delete_topic)?;
    engine.commit(batch, &[], true)?;
    *engine::write(&engine.catalog) = Arc::new(catalog);
    info!(name, "dropped {}", kind.name());
    Ok(Output::Command(tag(kind, "DROP")))
}
