//! INSERT INTO ... VALUES: encode, append, fsync, then acknowledge.

use std::collections::BTreeMap;
use std::sync::Arc;

use rill_sql::binder::bind_insert_values;
use rill_sql::error::did_you_mean;
use rill_sql::parser::InsertValues;
use rill_sql::BindError;
use rill_storage::{RecordRef, WriteBatch};

use super::Output;
use crate::engine::{self, Engine};
use crate::error::{Error, Result};
use crate::record::KeyValue;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

pub(super) fn insert_values(engine: &Arc<Engine>, ins: InsertValues) -> Result<Output> {
    let catalog = engine.catalog();
    let Some(rel) = catalog.relation(&ins.target) else {
        let names = rill_sql::catalog::Catalog::relation_names(&*catalog);
        return Err(BindError::UnknownRelation {
            kind: "stream or table",
            hint: did_you_mean(&ins.target, names.iter().map(String::as_str)),
            name: ins.target.clone(),
        }
        .into());
    };
    let bound = bind_insert_values(&ins, rel)?;
    let mut codec = engine.codec(rel)?;
    let partitions = engine
        .log
        .topic_partitions(&rel.topic)
        .unwrap_or(rel.partitions);
    let now = now_ms();
    let mut by_partition: BTreeMap<u32, Vec<(i64, KeyValue)>> = BTreeMap::new();
    for (rowtime, row) in &bound.rows {
        let time = match *rowtime {
            Some(t) => t,
            None => codec
                .column_time(row)
                .map_err(Error::Invalid)?
                .unwrap_or(now),
        };
        let (key, value) = codec.encode(row, false)?;
        let p = codec.partition(key.as_deref(), partitions);
        by_partition
            .entry(p)
            .or_default()
            .push((time, (key, value)));
    }
    let writers = engine.topic_writers(&rel.topic);
    let _shared = engine::read(&writers);
    let mut ends = Vec::new();
    for (p, records) in &by_partition {
        let refs: Vec<RecordRef<'_>> = records
            .iter()
            .map(|(t, (k, v))| RecordRef {
                timestamp: *t,
                key: k.as_deref(),
                value: v.as_deref(),
            })
            .collect();
        let end = engine.log.append(&rel.topic, *p, &refs)?;
        engine.log.sync(&rel.topic, *p, end)?;
        ends.push((rel.topic.clone(), *p, end));
    }
    // The committed end makes the records survive recovery's truncation.
    engine.commit(WriteBatch::new(), &ends, true)?;
    Ok(Output::Command(format!("INSERT 0 {}", bound.rows.len())))
}
