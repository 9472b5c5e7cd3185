//! Binding CREATE STREAM/TABLE, CREATE ... AS properties and INSERT VALUES.

use super::expr::{coerce_to, ExprBinder, Scope};
use super::types::resolve_type;
use crate::catalog::{ColumnDesc, FormatSpec, RelationDesc, PSEUDO_COLUMNS};
use crate::error::BindError;
use crate::expr::Expr;
use crate::parser::{
    CreateAs, CreateSource, InsertValues, KeyKind, Properties, PropertyValue, RelationKind,
};
use crate::types::DataType;
use crate::value::{Row, Value};

/// Names no declared column may take.
const RESERVED: [&str; 5] = [
    "ROWTIME",
    "ROWPARTITION",
    "ROWOFFSET",
    "WINDOWSTART",
    "WINDOWEND",
];

const SOURCE_PROPS: [&str; 14] = [
    "KAFKA_TOPIC",
    "VALUE_FORMAT",
    "KEY_FORMAT",
    "FORMAT",
    "PARTITIONS",
    "REPLICAS",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "VALUE_DELIMITER",
    "WRAP_SINGLE_VALUE",
    "RETENTION_MS",
    "RETENTION_BYTES",
    "KEY_SCHEMA_ID",
    "VALUE_SCHEMA_ID",
];

fn prop<'a>(props: &'a Properties, name: &str) -> Option<&'a PropertyValue> {
    props.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn check_props(props: &Properties, allowed: &[&str]) -> Result<(), BindError> {
    for (name, _) in props {
        if !allowed.contains(&name.as_str()) {
            return Err(BindError::Invalid(format!(
                "unknown property \"{name}\" in WITH: expected one of {}",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

fn positive_int(props: &Properties, name: &str) -> Result<Option<u32>, BindError> {
    match prop(props, name) {
        None => Ok(None),
        Some(v) => match v.as_text().parse::<u32>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(BindError::Invalid(format!(
                "{name} must be a positive integer, found {}",
                v.as_text()
            ))),
        },
    }
}

/// A retention limit of a WITH clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `-1`, as in Kafka.
    Unlimited,
    At(u64),
}

impl Limit {
    pub fn value(self) -> Option<u64> {
        match self {
            Limit::Unlimited => None,
            Limit::At(n) => Some(n),
        }
    }
}

/// How a topic rill creates is laid out: `PARTITIONS`, `REPLICAS`,
/// `RETENTION_MS` and `RETENTION_BYTES` of a WITH clause, when given.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TopicProperties {
    pub partitions: Option<u32>,
    /// `None`: the cluster's default replication factor.
    pub replicas: Option<u16>,
    /// `None`: the default for the kind of topic.
    pub retention_ms: Option<Limit>,
    pub retention_bytes: Option<Limit>,
}

fn limit(props: &Properties, name: &str) -> Result<Option<Limit>, BindError> {
    let Some(v) = prop(props, name) else {
        return Ok(None);
    };
    match v.as_text().parse::<i64>() {
        Ok(-1) => Ok(Some(Limit::Unlimited)),
        Ok(n) if n > 0 => Ok(Some(Limit::At(n.unsigned_abs()))),
        _ => Err(BindError::Invalid(format!(
            "{name} must be a positive integer or -1 (no limit), found {}",
            v.as_text()
        ))),
    }
}

/// Reads `PARTITIONS`, `REPLICAS` and the retention from a WITH clause.
pub fn bind_topic_properties(props: &Properties) -> Result<TopicProperties, BindError> {
    let replicas = match positive_int(props, "REPLICAS")? {
        None => None,
        Some(n) => Some(u16::try_from(n).map_err(|_| {
            BindError::Invalid(format!("REPLICAS must be at most {}, found {n}", u16::MAX))
        })?),
    };
    Ok(TopicProperties {
        partitions: positive_int(props, "PARTITIONS")?,
        replicas,
        retention_ms: limit(props, "RETENTION_MS")?,
        retention_bytes: limit(props, "RETENTION_BYTES")?,
    })
}

fn schema_id(props: &Properties, name: &str) -> Result<Option<u32>, BindError> {
    match prop(props, name) {
        None => Ok(None),
        Some(v) => v.as_text().parse::<u32>().map(Some).map_err(|_| {
            BindError::Invalid(format!(
                "{name} must be a schema id (a non-negative integer), found {}",
                v.as_text()
            ))
        }),
    }
}

fn format_spec(props: &Properties, default_key: &str) -> Result<FormatSpec, BindError> {
    let both = prop(props, "FORMAT").map(|v| v.as_text().to_uppercase());
    let value_format = prop(props, "VALUE_FORMAT")
        .map(|v| v.as_text().to_uppercase())
        .or(both.clone())
        .unwrap_or_else(|| "JSON".into());
    let key_format = prop(props, "KEY_FORMAT")
        .map(|v| v.as_text().to_uppercase())
        .or(both)
        .unwrap_or_else(|| default_key.to_string());
    let wrap_single_value = match prop(props, "WRAP_SINGLE_VALUE") {
        None => None,
        Some(PropertyValue::Boolean(b)) => Some(*b),
        Some(v) => match v.as_text().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                return Err(BindError::Invalid(format!(
                    "WRAP_SINGLE_VALUE must be true or false, found {other}"
                )))
            }
        },
    };
    Ok(FormatSpec {
        key_format,
        value_format,
        value_delimiter: prop(props, "VALUE_DELIMITER").map(|v| v.as_text()),
        wrap_single_value,
        key_schema_id: schema_id(props, "KEY_SCHEMA_ID")?,
        value_schema_id: schema_id(props, "VALUE_SCHEMA_ID")?,
    })
}

/// The topic and formats a `CREATE STREAM|TABLE` statement names.
pub fn bind_source_format(c: &CreateSource) -> Result<(String, FormatSpec), BindError> {
    let default_key = if c.columns.iter().any(|c| c.key != KeyKind::None) {
        "KAFKA"
    } else {
        "NONE"
    };
    Ok((source_topic(c), format_spec(&c.properties, default_key)?))
}

fn source_topic(c: &CreateSource) -> String {
    prop(&c.properties, "KAFKA_TOPIC")
        .map(|v| v.as_text())
        .unwrap_or_else(|| c.name.clone())
}

/// Binds `CREATE STREAM|TABLE name (...) WITH (...)` into a descriptor.
/// `inferred` are columns read from a registered schema, after the
/// declared ones (ksqlDB lets a statement declare the key and infer the
/// value).
pub fn bind_create_source(
    c: &CreateSource,
    inferred: &[ColumnDesc],
) -> Result<RelationDesc, BindError> {
    check_props(&c.properties, &SOURCE_PROPS)?;
    let mut declared = Vec::with_capacity(c.columns.len());
    for col in &c.columns {
        let key = match (c.kind, col.key) {
            (_, KeyKind::None) => false,
            (RelationKind::Stream, KeyKind::Key) | (RelationKind::Table, KeyKind::PrimaryKey) => {
                true
            }
            (RelationKind::Stream, KeyKind::PrimaryKey) => {
                return Err(BindError::Invalid(format!(
                    "stream column \"{}\" cannot be a PRIMARY KEY: streams use KEY",
                    col.name
                )))
            }
            (RelationKind::Table, KeyKind::Key) => {
                return Err(BindError::Invalid(format!(
                    "table column \"{}\" must be declared PRIMARY KEY, not KEY",
                    col.name
                )))
            }
        };
        declared.push(ColumnDesc::new(
            col.name.clone(),
            resolve_type(&col.data_type)?,
            key,
        ));
    }
    let mut columns: Vec<ColumnDesc> = Vec::new();
    for col in declared.into_iter().chain(inferred.iter().cloned()) {
        if RESERVED.contains(&col.name.as_str()) {
            return Err(BindError::Invalid(format!(
                "\"{}\" is a reserved column name",
                col.name
            )));
        }
        if columns.iter().any(|x| x.name == col.name) {
            return Err(BindError::Duplicate {
                kind: "column",
                name: col.name.clone(),
            });
        }
        columns.push(col);
    }
    if columns.is_empty() {
        return Err(BindError::Invalid(format!(
            "{} \"{}\" needs at least one column",
            c.kind.name(),
            c.name
        )));
    }
    if c.kind == RelationKind::Table && !columns.iter().any(|c| c.key) {
        return Err(BindError::Invalid(format!(
            "table \"{}\" needs a PRIMARY KEY column",
            c.name
        )));
    }
    // ksqlDB shows key columns first.
    columns.sort_by_key(|c| !c.key);
    let timestamp_column = match prop(&c.properties, "TIMESTAMP") {
        None => None,
        Some(v) => {
            let name = v.as_text().to_uppercase();
            let Some(col) = columns
                .iter()
                .find(|c| c.name == name || c.name == v.as_text())
            else {
                return Err(BindError::UnknownColumn {
                    hint: crate::error::did_you_mean(
                        &name,
                        columns.iter().map(|c| c.name.as_str()),
                    ),
                    name,
                });
            };
            let has_format = prop(&c.properties, "TIMESTAMP_FORMAT").is_some();
            match (&col.data_type, has_format) {
                (DataType::BigInt | DataType::Timestamp, _) | (DataType::String, true) => {}
                (DataType::String, false) => {
                    return Err(BindError::Invalid(format!(
                        "timestamp column \"{}\" is a STRING: give TIMESTAMP_FORMAT too",
                        col.name
                    )))
                }
                (t, _) => {
                    return Err(BindError::TypeMismatch(format!(
                        "timestamp column \"{}\" must be BIGINT, TIMESTAMP or STRING, found {t}",
                        col.name
                    )))
                }
            }
            Some(col.name.clone())
        }
    };
    let default_key = if columns.iter().any(|c| c.key) {
        "KAFKA"
    } else {
        "NONE"
    };
    Ok(RelationDesc {
        name: c.name.clone(),
        kind: c.kind,
        columns,
        window: None,
        topic: source_topic(c),
        partitions: positive_int(&c.properties, "PARTITIONS")?.unwrap_or(1),
        format: format_spec(&c.properties, default_key)?,
        timestamp_column,
        timestamp_format: prop(&c.properties, "TIMESTAMP_FORMAT").map(|v| v.as_text()),
        read_only: c.source,
        written_by: None,
        retention_ms: None,
    })
}

/// The WITH properties of a CREATE ... AS SELECT.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkProperties {
    pub topic: Option<String>,
    pub layout: TopicProperties,
    pub format: FormatSpec,
}

/// Validates and extracts the sink properties of CREATE ... AS SELECT;
/// formats default to the source's.
pub fn sink_properties(
    c: &CreateAs,
    source_format: &FormatSpec,
) -> Result<SinkProperties, BindError> {
    check_props(
        &c.properties,
        &[
            "KAFKA_TOPIC",
            "VALUE_FORMAT",
            "KEY_FORMAT",
            "FORMAT",
            "PARTITIONS",
            "REPLICAS",
            "VALUE_DELIMITER",
            "WRAP_SINGLE_VALUE",
            "RETENTION_MS",
            "RETENTION_BYTES",
        ],
    )?;
    let mut format = format_spec(&c.properties, &source_format.key_format)?;
    if prop(&c.properties, "VALUE_FORMAT").is_none() && prop(&c.properties, "FORMAT").is_none() {
        format.value_format = source_format.value_format.clone();
        if format.value_delimiter.is_none() {
            format.value_delimiter = source_format.value_delimiter.clone();
        }
    }
    Ok(SinkProperties {
        topic: prop(&c.properties, "KAFKA_TOPIC").map(|v| v.as_text()),
        layout: bind_topic_properties(&c.properties)?,
        format,
    })
}

/// INSERT VALUES, bound: full rows in the target's column order.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundInsert {
    /// Per row: the event time if ROWTIME was given, and the values.
    pub rows: Vec<(Option<i64>, Row)>,
}

/// Binds `INSERT INTO target [(cols)] VALUES ...` against the target.
pub fn bind_insert_values(
    ins: &InsertValues,
    target: &RelationDesc,
) -> Result<BoundInsert, BindError> {
    if target.read_only {
        return Err(BindError::Invalid(format!(
            "cannot insert into \"{}\": it was created with CREATE SOURCE and is read-only",
            target.name
        )));
    }
    if target.window.is_some() {
        return Err(BindError::Invalid(format!(
            "cannot insert into windowed table \"{}\"",
            target.name
        )));
    }
    if target.kind == RelationKind::Table && target.written_by.is_some() {
        return Err(BindError::Invalid(format!(
            "cannot insert into table \"{}\": it is the output of query {}",
            target.name,
            target.written_by.as_deref().unwrap_or("")
        )));
    }
    // Positions in the VALUES rows -> target column (None = ROWTIME).
    let names: Vec<String> = if ins.columns.is_empty() {
        target.columns.iter().map(|c| c.name.clone()).collect()
    } else {
        ins.columns.clone()
    };
    let mut slots: Vec<Option<usize>> = Vec::new();
    for n in &names {
        if n == PSEUDO_COLUMNS[0].0 {
            slots.push(None);
            continue;
        }
        let Some(i) = target.column_index(n) else {
            return Err(BindError::UnknownColumn {
                name: n.clone(),
                hint: crate::error::did_you_mean(n, target.columns.iter().map(|c| c.name.as_str())),
            });
        };
        if slots.contains(&Some(i)) {
            return Err(BindError::Invalid(format!("column \"{n}\" is given twice")));
        }
        slots.push(Some(i));
    }
    let scope = Scope::unqualified(&[]);
    let mut rows = Vec::new();
    for exprs in &ins.rows {
        if exprs.len() != slots.len() {
            return Err(BindError::Invalid(format!(
                "INSERT has {} columns but {} values",
                slots.len(),
                exprs.len()
            )));
        }
        let mut row = vec![Value::Null; target.columns.len()];
        let mut rowtime = None;
        let mut has_params = false;
        for (e, slot) in exprs.iter().zip(&slots) {
            let (b, t) = ExprBinder {
                scope: &scope,
                agg: None,
            }
            .bind(e)?;
            if !b.is_constant() {
                return Err(BindError::Invalid(
                    "VALUES takes constant expressions".into(),
                ));
            }
            let want = match slot {
                Some(i) => target.columns[*i].data_type.clone(),
                None => DataType::BigInt,
            };
            let b = coerce_to(b, &t, &want).map_err(|e| match e {
                BindError::TypeMismatch(m) => BindError::TypeMismatch(format!(
                    "column \"{}\": {m}",
                    slot.map(|i| target.columns[i].name.as_str())
                        .unwrap_or("ROWTIME")
                )),
                other => other,
            })?;
            if matches!(b, Expr::Param(_)) {
                // Only inferring parameter types: there is no value yet.
                has_params = true;
                continue;
            }
            let v = b.eval(&[]).map_err(|e| BindError::Data(e.to_string()))?;
            match slot {
                Some(i) => row[*i] = v,
                None => rowtime = v.as_i64(),
            }
        }
        if target.kind == RelationKind::Table && !has_params {
            for k in target.key_indices() {
                if row[k].is_null() {
                    return Err(BindError::Data(format!(
                        "primary key column \"{}\" cannot be NULL",
                        target.columns[k].name
                    )));
                }
            }
        }
        rows.push((rowtime, row));
    }
    Ok(BoundInsert { rows })
}
