//! Schemas of the schema-registry formats (AVRO, PROTOBUF), at statement
//! time:
//! columns inferred from the registry for a `CREATE STREAM|TABLE` side
//! declared without columns, and the schema of every side rill writes
//! registered before its first record, so the relation's descriptor holds
//! the ids its records are written with.

use rill_sql::catalog::{ColumnDesc, FormatSpec, RelationDesc};
use rill_sql::parser::{CreateSource, KeyKind};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::format::registry::subject;
use crate::format::{registry_columns, registry_schema, FormatError, FormatKind, SchemaRegistry};
use crate::record::Sides;

fn registry(engine: &Engine, format: FormatKind) -> Result<&SchemaRegistry> {
    Ok(engine
        .registry
        .as_deref()
        .ok_or(FormatError::NoRegistry { format })?)
}

/// The columns the registry supplies for the sides of `c` whose format
/// keeps schemas in the registry and that declare no columns: from the
/// schema `KEY_SCHEMA_ID`/`VALUE_SCHEMA_ID` names, else the latest one of
/// the topic's subject. Records the ids in `format`.
pub(super) fn infer_columns(
    engine: &Engine,
    c: &CreateSource,
    topic: &str,
    format: &mut FormatSpec,
) -> Result<Vec<ColumnDesc>> {
    let mut inferred = Vec::new();
    let value_kind = FormatKind::parse(&format.value_format)?;
    if value_kind.uses_registry() && c.columns.iter().all(|col| col.key != KeyKind::None) {
        let (id, columns) = fetch(engine, value_kind, topic, false, format.value_schema_id)?;
        format.value_schema_id = Some(id);
        inferred.extend(columns);
    }
    let key_kind = FormatKind::parse(&format.key_format)?;
    if key_kind.uses_registry() && c.columns.iter().all(|col| col.key == KeyKind::None) {
        // Without a key schema the relation simply has no key columns.
        match fetch(engine, key_kind, topic, true, format.key_schema_id) {
            Ok((id, columns)) => {
                format.key_schema_id = Some(id);
                inferred.splice(0..0, columns);
            }
            Err(Error::Format(FormatError::NoSchema { .. })) if format.key_schema_id.is_none() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(inferred)
}

fn fetch(
    engine: &Engine,
    kind: FormatKind,
    topic: &str,
    key: bool,
    id: Option<u32>,
) -> Result<(u32, Vec<ColumnDesc>)> {
    let registry = registry(engine, kind)?;
    let (id, schema) = match id {
        Some(id) => (id, registry.schema(id)?),
        None => registry.latest(&subject(topic, key))?,
    };
    let columns = registry_columns(kind, &schema, key)?
        .into_iter()
        .map(|(name, t)| ColumnDesc::new(name, t, key))
        .collect();
    Ok((id, columns))
}

/// Registers the schema of each side of `rel` whose format keeps schemas
/// in the registry and that has no schema id yet, under the subject of
/// `rel`'s topic, and records the ids.
pub(super) fn register_schemas(engine: &Engine, rel: &mut RelationDesc) -> Result<()> {
    let sides = Sides::of(rel);
    let key_kind = sides.key_kind(rel)?;
    if key_kind.uses_registry() && rel.format.key_schema_id.is_none() {
        // A single key column is a bare value, as ksqlDB writes keys.
        let schema = registry_schema(key_kind, &sides.key, sides.key.len() > 1)?;
        let id = registry(engine, key_kind)?.register(&subject(&rel.topic, true), &schema)?;
        rel.format.key_schema_id = Some(id);
    }
    let value_kind = FormatKind::parse(&rel.format.value_format)?;
    if value_kind.uses_registry() && rel.format.value_schema_id.is_none() {
        let wrap = rel.format.wrap_single_value.unwrap_or(true) || sides.value.len() != 1;
        let schema = registry_schema(value_kind, &sides.value, wrap)?;
        let id = registry(engine, value_kind)?.register(&subject(&rel.topic, false), &schema)?;
        rel.format.value_schema_id = Some(id);
    }
    Ok(())
}
