//! Persistent queries: CREATE STREAM/TABLE ... AS SELECT, INSERT INTO ...
//! SELECT, TERMINATE.

use std::sync::Arc;

use rill_sql::binder::{bind_select, sink_properties, BoundQuery, SelectMode, TopicProperties};
use rill_sql::catalog::{Catalog as _, RelationDesc};
use rill_sql::dataflow::window;
use rill_sql::parser::{CreateAs, RelationKind, Select};
use rill_sql::plan::plan_query;
use rill_sql::{BindError, DataType};
use rill_storage::WriteBatch;
use tracing::info;

use super::ddl::{ensure_topic, initial_offsets, remove_query, TopicUse};
use super::schemas::register_schemas;
use super::Output;
use crate::engine::{self, lock, Catalog, CatalogEntry, Engine, QueryDesc, QueryKind};
use crate::error::{Error, Result};
use crate::runtime::changelog;
use crate::session::Session;

/// Kafka Streams keeps a windowed changelog this much longer than the
/// windows themselves.
const DAY_MS: u64 = 24 * 3600 * 1000;

fn source_of(bound: &BoundQuery) -> Result<RelationDesc> {
    bound
        .source
        .clone()
        .ok_or_else(|| Error::Invalid("a persistent query needs FROM".into()))
}

/// The relations a query joins to its first source.
fn joined(bound: &BoundQuery) -> Vec<String> {
    bound
        .joins
        .iter()
        .map(|j| j.relation.name.clone())
        .collect()
}

/// `SET 'processing.guarantee'`: whether a new query commits through Kafka
/// transactions. The embedded log is exactly once anyway; with Kafka,
/// exactly once needs the state topics (a command topic).
fn exactly_once(engine: &Engine, session: &Session) -> Result<bool> {
    let Some(g) = session.get("processing.guarantee") else {
        return Ok(false);
    };
    match g.to_ascii_lowercase().as_str() {
        "at_least_once" => Ok(false),
        "exactly_once" | "exactly_once_v2" if engine.config.kafka_brokers.is_none() => Ok(false),
        "exactly_once" | "exactly_once_v2" if !changelog::enabled(&engine.config) => {
            Err(Error::Unsupported(
                "processing.guarantee 'exactly_once' keeps each query's state in a Kafka topic \
                 in the same transaction as its outputs: give --kafka-command-topic a name"
                    .into(),
            ))
        }
        "exactly_once" | "exactly_once_v2" => Ok(true),
        other => Err(Error::Invalid(format!(
            "processing.guarantee must be 'at_least_once' or 'exactly_once', not '{other}'"
        ))),
    }
}

pub(super) fn create_as(
    engine: &Arc<Engine>,
    session: &Session,
    c: CreateAs,
    sql: &str,
) -> Result<Output> {
    let exactly_once = exactly_once(engine, session)?;
    let _ddl = lock(&engine.ddl);
    let mut catalog = (*engine.catalog()).clone();
    let tag = format!("CREATE {}", c.kind.name().to_uppercase());
    let existing = catalog.relation(&c.name).cloned();
    if let Some(old) = &existing {
        if c.if_not_exists {
            return Ok(Output::Command(tag));
        }
        if !c.or_replace {
            return Err(BindError::Duplicate {
                kind: old.kind.name(),
                name: c.name.clone(),
            }
            .into());
        }
    }
    let bound = bind_select(&c.select, &catalog, SelectMode::Persistent)?;
    let source = source_of(&bound)?;
    match (c.kind, bound.produces_table()) {
        (RelationKind::Stream, true) => {
            return Err(Error::Invalid(
                "this query produces a TABLE (it aggregates, or reads only tables): use CREATE TABLE ... AS SELECT".into(),
            ))
        }
        (RelationKind::Table, false) => {
            return Err(Error::Invalid(
                "this query produces a STREAM (it reads a stream without GROUP BY): use CREATE STREAM ... AS SELECT".into(),
            ))
        }
        _ => {}
    }
    plan_query(&bound)?;
    let props = sink_properties(&c, &source.format)?;
    let mut format = props.format.clone();
    let key_types: Vec<&DataType> = bound
        .output
        .iter()
        .filter(|k| k.key && k.name != "WINDOWSTART" && k.name != "WINDOWEND")
        .map(|k| &k.data_type)
        .collect();
    let key_format_given = c
        .properties
        .iter()
        .any(|(n, _)| n == "KEY_FORMAT" || n == "FORMAT");
    if !key_format_given && !key_types.is_empty() {
        // The KAFKA format holds one primitive column; anything else
        // (several columns, BOOLEAN, DECIMAL, ...) gets JSON keys.
        let kafka_fits = matches!(
            key_types.as_slice(),
            [DataType::Int
                | DataType::BigInt
                | DataType::Double
                | DataType::String
                | DataType::Bytes]
        );
        if !kafka_fits {
            format.key_format = "JSON".into();
        } else if format.key_format == "NONE" {
            format.key_format = "KAFKA".into();
        }
    }

    if let Some(old) = &existing {
        return replace(engine, catalog, old, c, bound, format, sql);
    }

    let id = format!(
        "{}_{}_{}",
        if c.kind == RelationKind::Stream {
            "CSAS"
        } else {
            "CTAS"
        },
        c.name,
        catalog.next_id
    );
    let topic = props.topic.clone().unwrap_or_else(|| c.name.clone());
    // A new output topic gets the source's partition count.
    let layout = TopicProperties {
        partitions: props
            .layout
            .partitions
            .or_else(|| engine.log.topic_partitions(&source.topic)),
        ..props.layout
    };
    let sink = RelationDesc {
        name: c.name.clone(),
        kind: c.kind,
        columns: bound.output.clone(),
        window: bound.window().map(|w| w.kind),
        topic: topic.clone(),
        partitions: layout.partitions.unwrap_or(1),
        format,
        timestamp_column: None,
        timestamp_format: None,
        read_only: false,
        written_by: Some(id.clone()),
        // Every new windowed table is bounded: RETENTION, else a default.
        retention_ms: bound.window().map(window::retention_ms),
    };
    let mut sink = sink;
    register_schemas(engine, &mut sink)?;
    engine.codec(&sink)?;
    let topic_use = match c.kind {
        RelationKind::Stream => TopicUse::Stream,
        RelationKind::Table => TopicUse::Changelog {
            retention_ms: sink
                .retention_ms
                .and_then(|r| u64::try_from(r).ok())
                .map(|r| r.saturating_add(DAY_MS)),
        },
    };
    sink.partitions = ensure_topic(engine, &topic, layout, topic_use)?;
    let desc = QueryDesc {
        id: id.clone(),
        kind: if c.kind == RelationKind::Stream {
            QueryKind::CreateStreamAs
        } else {
            QueryKind::CreateTableAs
        },
        sql: sql.to_string(),
        source: source.name.clone(),
        joined: joined(&bound),
        sink: c.name.clone(),
        earliest: session.earliest(),
        exactly_once,
    };
    let mut batch = WriteBatch::new();
    let rid = engine.catalog_put(
        &mut catalog,
        &mut batch,
        &CatalogEntry::Relation(sink.clone()),
    )?;
    catalog.relations.insert(c.name.clone(), (rid, sink));
    start_query(engine, catalog, batch, desc, &bound)?;
    Ok(Output::Command(tag))
}

/// Persists a new query (with its first offsets) and starts it.
fn start_query(
    engine: &Arc<Engine>,
    mut catalog: Catalog,
    mut batch: WriteBatch,
    desc: QueryDesc,
    bound: &BoundQuery,
) -> Result<()> {
    let qid = engine.catalog_put(&mut catalog, &mut batch, &CatalogEntry::Query(desc.clone()))?;
    catalog.queries.insert(desc.id.clone(), (qid, desc.clone()));
    for rel in bound.inputs() {
        initial_offsets(engine, &mut batch, &desc.id, &rel.topic, desc.earliest)?;
    }
    engine.commit(batch, &[], true)?;
    *engine::write(&engine.catalog) = Arc::new(catalog);
    info!(query = %desc.id, earliest = desc.earliest, "started query");
    engine.runtime.start(engine, desc)
}

/// CREATE OR REPLACE of a query's output: the new query takes over the old
/// one's offsets and state, which is only sound when the aggregation and
/// the output schema are unchanged (filters and projections may change).
fn replace(
    engine: &Arc<Engine>,
    mut catalog: Catalog,
    old: &RelationDesc,
    c: CreateAs,
    bound: BoundQuery,
    format: rill_sql::catalog::FormatSpec,
    sql: &str,
) -> Result<Output> {
    let Some(old_id) = old.written_by.clone() else {
        return Err(Error::Invalid(format!(
            "\"{}\" is not the output of a query: drop it first",
            c.name
        )));
    };
    let Some(old_query) = catalog.query(&old_id).cloned() else {
        return Err(Error::UnknownQuery(old_id));
    };
    let old_bound = {
        let parsed = rill_sql::parser::parse_statement(&old_query.sql)?;
        match parsed.statement {
            rill_sql::parser::Statement::CreateAs(oc) => {
                bind_select(&oc.select, &catalog, SelectMode::Persistent)?
            }
            _ => return Err(Error::Internal("old query is not CREATE AS".into())),
        }
    };
    if old_bound.aggregate != bound.aggregate
        || old.columns != bound.output
        || old.kind != c.kind
        || old_query.source != source_of(&bound)?.name
        || old_query.joined != joined(&bound)
    {
        return Err(Error::Unsupported(format!(
            "cannot replace \"{}\" in place: the source, aggregation or output columns changed; DROP it and create it again",
            c.name
        )));
    }
    engine.runtime.stop(&old_id);
    let mut desc = old_query.clone();
    desc.sql = sql.to_string();
    let (qid, _) = catalog
        .queries
        .get(&old_id)
        .cloned()
        .ok_or_else(|| Error::UnknownQuery(old_id.clone()))?;
    catalog.queries.insert(old_id.clone(), (qid, desc.clone()));
    let mut batch = WriteBatch::new();
    let bytes = serde_json::to_vec(&CatalogEntry::Query(desc.clone()))
        .map_err(|e| Error::Internal(e.to_string()))?;
    batch.put(rill_storage::keys::catalog(qid), bytes);
    if let Some((rid, rel)) = catalog.relations.get_mut(&c.name) {
        rel.format = format;
        register_schemas(engine, rel)?;
        let bytes = serde_json::to_vec(&CatalogEntry::Relation(rel.clone()))
            .map_err(|e| Error::Internal(e.to_string()))?;
        batch.put(rill_storage::keys::catalog(*rid), bytes);
    }
    engine.commit(batch, &[], true)?;
    *engine::write(&engine.catalog) = Arc::new(catalog);
    engine.runtime.start(engine, desc)?;
    Ok(Output::Command(format!(
        "CREATE {}",
        c.kind.name().to_uppercase()
    )))
}

pub(super) fn insert_select(
    engine: &Arc<Engine>,
    session: &Session,
    target: String,
    select: Select,
    sql: &str,
) -> Result<Output> {
    let exactly_once = exactly_once(engine, session)?;
    let _ddl = lock(&engine.ddl);
    let catalog = (*engine.catalog()).clone();
    let Some(target_rel) = catalog.relation(&target).cloned() else {
        return Err(BindError::UnknownRelation {
            kind: "stream",
            hint: rill_sql::error::did_you_mean(
                &target,
                catalog.relation_names().iter().map(String::as_str),
            ),
            name: target,
        }
        .into());
    };
    if target_rel.kind != RelationKind::Stream {
        return Err(Error::Invalid(format!(
            "INSERT INTO ... SELECT needs a stream target; \"{target}\" is a table"
        )));
    }
    let bound = bind_select(&select, &catalog, SelectMode::Persistent)?;
    let source = source_of(&bound)?;
    if bound.produces_table() {
        return Err(Error::Invalid(
            "INSERT INTO ... SELECT must read a stream without GROUP BY".into(),
        ));
    }
    let same = bound.output.len() == target_rel.columns.len()
        && bound
            .output
            .iter()
            .zip(&target_rel.columns)
            .all(|(a, b)| a.name == b.name && a.data_type == b.data_type);
    if !same {
        let describe = |cols: &[rill_sql::catalog::ColumnDesc]| {
            cols.iter()
                .map(|c| format!("{} {}", c.name, c.data_type))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(BindError::TypeMismatch(format!(
            "the query's columns ({}) do not match the columns of \"{}\" ({})",
            describe(&bound.output),
            target,
            describe(&target_rel.columns)
        ))
        .into());
    }
    plan_query(&bound)?;
    let desc = QueryDesc {
        id: format!("INSERTQUERY_{}", catalog.next_id),
        kind: QueryKind::InsertInto,
        sql: sql.to_string(),
        source: source.name.clone(),
        joined: joined(&bound),
        sink: target,
        earliest: session.earliest(),
        exactly_once,
    };
    start_query(engine, catalog, WriteBatch::new(), desc, &bound)?;
    Ok(Output::Command("INSERT 0 0".into()))
}

/// `RESTART QUERY id`: stops the query (a running one commits first) and
/// starts it again from its committed state and offsets, as a server
/// restart would; after a query stopped with ERROR (a full disk, say) this
/// resumes it without losing or repeating anything.
pub(super) fn restart(engine: &Arc<Engine>, id: &str) -> Result<Output> {
    let _ddl = lock(&engine.ddl);
    let Some(desc) = engine.catalog().query(id).cloned() else {
        return Err(Error::UnknownQuery(id.to_string()));
    };
    engine.runtime.stop(id);
    if let Err(e) = engine.runtime.start(engine, desc) {
        engine.runtime.record_failure(id, e.to_string());
        return Err(e);
    }
    info!(query = id, "query restarted");
    Ok(Output::Command("RESTART QUERY".into()))
}

pub(super) fn terminate(engine: &Arc<Engine>, id: Option<&str>) -> Result<Output> {
    let _ddl = lock(&engine.ddl);
    let mut catalog = (*engine.catalog()).clone();
    let ids: Vec<String> = match id {
        Some(id) => {
            match catalog.query(id) {
                None => return Err(Error::UnknownQuery(id.to_string())),
                Some(q) if q.kind == QueryKind::SourceTable => {
                    return Err(Error::Invalid(format!(
                        "query {id} materializes source table {}: DROP TABLE {} instead",
                        q.sink, q.sink
                    )))
                }
                Some(_) => {}
            }
            vec![id.to_string()]
        }
        None => catalog
            .queries
            .values()
            .filter(|(_, q)| q.kind != QueryKind::SourceTable)
            .map(|(_, q)| q.id.clone())
            .collect(),
    };
    let mut batch = WriteBatch::new();
    for id in &ids {
        engine.runtime.stop(id);
        remove_query(engine, &mut catalog, &mut batch, id)?;
    }
    engine.commit(batch, &[], true)?;
    *engine::write(&engine.catalog) = Arc::new(catalog);
    Ok(Output::Command("TERMINATE".into()))
}
