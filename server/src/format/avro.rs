//! AVRO in Confluent's schema-registry wire format: a zero magic byte, the
//! writer schema's id (4 bytes, big-endian), then the Avro binary datum.
//!
//! Reading takes each record's own writer schema from the registry (cached
//! by id) and matches record fields to columns by name, case-insensitively,
//! as ksqlDB does, so producers may add, drop or reorder fields. Writing
//! uses one registered schema, the relation's (`schema_of` for the schemas
//! rill registers itself, in ksqlDB's shape: a record of nullable fields).
//! A single unwrapped column (a key) is a bare Avro value, not a record.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::schema::{RecordSchema, UnionSchema};
use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use rill_sql::{DataType, Value};
use rust_decimal::Decimal;

use super::registry::{RawSchema, SchemaRegistry, SchemaType};
use super::scalar::fit_decimal;
use super::FormatError;
use super::FormatKind;

/// The first byte of every schema-registry record.
const MAGIC: u8 = 0;
/// Magic byte plus schema id.
const HEADER: usize = 5;

/// The columns a record schema describes, for CREATE without columns:
/// one per field, named as the field upper-cased. A schema that is not a
/// record is one column, `ROWKEY` for a key, `ROWVAL` for a value.
pub fn columns_of(schema: &Schema, key: bool) -> Result<Vec<(String, DataType)>, FormatError> {
    match schema {
        Schema::Record(r) => r
            .fields
            .iter()
            .map(|f| Ok((f.name.to_uppercase(), data_type_of(&f.schema, &f.name)?)))
            .collect(),
        other => {
            let name = if key { "ROWKEY" } else { "ROWVAL" };
            Ok(vec![(name.to_string(), data_type_of(other, name)?)])
        }
    }
}

/// The SQL type that reads Avro type `schema` (of field `field`).
fn data_type_of(schema: &Schema, field: &str) -> Result<DataType, FormatError> {
    let unsupported = |what: String| FormatError::UnsupportedSchema {
        field: field.to_string(),
        reason: what,
    };
    Ok(match schema {
        Schema::Boolean => DataType::Boolean,
        Schema::Int => DataType::Int,
        Schema::Long => DataType::BigInt,
        Schema::Float | Schema::Double => DataType::Double,
        Schema::String | Schema::Enum(_) | Schema::Uuid => DataType::String,
        Schema::Bytes | Schema::Fixed(_) => DataType::Bytes,
        Schema::Decimal(d) => {
            let precision = u8::try_from(d.precision)
                .ok()
                .filter(|p| *p <= 28)
                .ok_or_else(|| {
                    unsupported(format!("decimal precision {} is above 28", d.precision))
                })?;
            let scale = u8::try_from(d.scale)
                .ok()
                .filter(|s| *s <= precision)
                .ok_or_else(|| unsupported(format!("decimal scale {} is out of range", d.scale)))?;
            DataType::Decimal { precision, scale }
        }
        Schema::TimestampMillis | Schema::TimestampMicros => DataType::Timestamp,
        Schema::Date => DataType::Date,
        Schema::TimeMillis | Schema::TimeMicros => DataType::Time,
        Schema::Array(a) => DataType::Array(Box::new(data_type_of(&a.items, field)?)),
        Schema::Map(m) => DataType::Map(
            Box::new(DataType::String),
            Box::new(data_type_of(&m.types, field)?),
        ),
        Schema::Record(r) => DataType::Struct(
            r.fields
                .iter()
                .map(|f| Ok((f.name.to_uppercase(), data_type_of(&f.schema, &f.name)?)))
                .collect::<Result<_, FormatError>>()?,
        ),
        Schema::Union(u) => {
            let mut others = u.variants().iter().filter(|v| **v != Schema::Null);
            match (others.next(), others.next()) {
                (Some(only), None) => data_type_of(only, field)?,
                _ => {
                    return Err(unsupported(
                        "unions other than [\"null\", T] have no SQL type".to_string(),
                    ))
                }
            }
        }
        other => return Err(unsupported(format!("Avro type {other:?} has no SQL type"))),
    })
}

/// The schema rill registers for `columns`, as schema JSON text, in
/// ksqlDB's shape: a record `io.confluent.ksql.avro_schemas.KsqlDataSourceSchema`
/// of nullable fields (nested records named after their path), or, for a
/// single unwrapped column, its nullable bare type. (Text, not a parsed
/// schema: Avro's canonical form drops the logical types.)
pub fn schema_of(columns: &[(String, DataType)], wrap: bool) -> Result<String, FormatError> {
    let mut json = match (wrap, columns) {
        (false, [(name, t)]) => nullable(json_type(t, name, "KsqlDataSourceSchema")?),
        _ => record_json(columns, "KsqlDataSourceSchema")?,
    };
    if let Some(obj) = json.as_object_mut() {
        obj.insert(
            "namespace".into(),
            serde_json::Value::from("io.confluent.ksql.avro_schemas"),
        );
    }
    Schema::parse(&json).map_err(|e| FormatError::UnsupportedColumns {
        format: FormatKind::Avro,
        reason: format!("cannot hold these columns: {e}"),
    })?;
    Ok(json.to_string())
}

fn nullable(t: serde_json::Value) -> serde_json::Value {
    serde_json::json!(["null", t])
}

fn record_json(
    fields: &[(String, DataType)],
    name: &str,
) -> Result<serde_json::Value, FormatError> {
    let fields = fields
        .iter()
        .map(|(f, t)| {
            if !valid_name(f) {
                return Err(FormatError::UnsupportedColumns {
                    format: FormatKind::Avro,
                    reason: format!(
                        "needs field names of letters, digits and '_' not starting with a digit, found \"{f}\""
                    ),
                });
            }
            let nested = format!("{name}_{f}");
            Ok(serde_json::json!({
                "name": f,
                "type": nullable(json_type(t, f, &nested)?),
                "default": null,
            }))
        })
        .collect::<Result<Vec<_>, FormatError>>()?;
    Ok(serde_json::json!({ "type": "record", "name": name, "fields": fields }))
}

/// Whether `n` is a field name Avro and protobuf both accept.
pub(super) fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The Avro type (as schema JSON) that holds SQL type `t`; `name` names a
/// nested record.
fn json_type(t: &DataType, column: &str, name: &str) -> Result<serde_json::Value, FormatError> {
    use serde_json::json;
    Ok(match t {
        DataType::Boolean => json!("boolean"),
        DataType::Int => json!("int"),
        DataType::BigInt => json!("long"),
        DataType::Double => json!("double"),
        DataType::String => json!("string"),
        DataType::Bytes => json!("bytes"),
        DataType::Decimal { precision, scale } => {
            json!({"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale})
        }
        DataType::Timestamp => json!({"type": "long", "logicalType": "timestamp-millis"}),
        DataType::Date => json!({"type": "int", "logicalType": "date"}),
        DataType::Time => json!({"type": "int", "logicalType": "time-millis"}),
        DataType::Array(item) => {
            json!({"type": "array", "items": nullable(json_type(item, column, name)?)})
        }
        DataType::Map(k, v) => {
            if **k != DataType::String {
                return Err(FormatError::UnsupportedType {
                    format: FormatKind::Avro,
                    column: column.to_string(),
                    data_type: t.clone(),
                    reason: "Avro map keys are strings",
                });
            }
            json!({"type": "map", "values": nullable(json_type(v, column, name)?)})
        }
        DataType::Struct(fields) => record_json(fields, name)?,
    })
}

/// Parses a registered AVRO schema.
pub fn parse(raw: &RawSchema) -> Result<Schema, FormatError> {
    if raw.schema_type != SchemaType::Avro {
        return Err(FormatError::Registry {
            reason: format!("expected an AVRO schema, found {}", raw.schema_type.name()),
        });
    }
    Schema::parse_str(&raw.text).map_err(|e| FormatError::Registry {
        reason: format!("not a valid AVRO schema: {e}"),
    })
}

/// Reads the schema id of a schema-registry record.
fn header(bytes: &[u8]) -> Result<(u32, &[u8]), FormatError> {
    match bytes {
        [MAGIC, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        _ => Err(FormatError::Malformed {
            format: FormatKind::Avro,
            reason: "no schema registry header (a zero byte and a 4-byte schema id)".into(),
        }),
    }
}

/// How to read records written with one writer schema.
struct WriterPlan {
    schema: Arc<Schema>,
    /// Per field of a record schema: the column it fills.
    fields: Vec<Option<usize>>,
}

pub struct AvroDecoder {
    columns: Vec<(String, DataType)>,
    registry: Arc<SchemaRegistry>,
    plans: HashMap<u32, WriterPlan>,
    slots: Vec<Value>,
}

impl AvroDecoder {
    pub fn try_new(
        columns: &[(String, DataType)],
        registry: Arc<SchemaRegistry>,
    ) -> Result<AvroDecoder, FormatError> {
        for (name, t) in columns {
            json_type(t, name, "check")?;
        }
        Ok(AvroDecoder {
            columns: columns.to_vec(),
            registry,
            plans: HashMap::new(),
            slots: Vec::with_capacity(columns.len()),
        })
    }

    /// Fetches and plans writer schema `id` the first time it is seen.
    fn ensure_plan(&mut self, id: u32) -> Result<(), FormatError> {
        if self.plans.contains_key(&id) {
            return Ok(());
        }
        let schema = Arc::new(parse(&*self.registry.schema(id)?)?);
        let fields = match &*schema {
            Schema::Record(r) => r
                .fields
                .iter()
                .map(|f| {
                    self.columns
                        .iter()
                        .position(|(c, _)| c.eq_ignore_ascii_case(&f.name))
                })
                .collect(),
            _ => Vec::new(),
        };
        self.plans.insert(id, WriterPlan { schema, fields });
        Ok(())
    }

    pub fn decode(&mut self, bytes: &[u8], out: &mut Vec<Value>) -> Result<(), FormatError> {
        let (id, mut body) = header(bytes)?;
        self.ensure_plan(id)?;
        let (Some(plan), columns, slots) = (self.plans.get(&id), &self.columns, &mut self.slots)
        else {
            return Err(FormatError::Registry {
                reason: format!("schema id {id} is missing from the cache"),
            });
        };
        let datum = apache_avro::from_avro_datum(&plan.schema, &mut body, None).map_err(|e| {
            FormatError::Malformed {
                format: FormatKind::Avro,
                reason: format!("does not match schema id {id}: {e}"),
            }
        })?;
        if !body.is_empty() {
            return Err(FormatError::Malformed {
                format: FormatKind::Avro,
                reason: format!(
                    "{} bytes left over after the datum of schema id {id}",
                    body.len()
                ),
            });
        }
        let width = columns.len();
        slots.clear();
        slots.resize(width, Value::Null);
        let (datum, schema) = strip_union(datum, &plan.schema);
        let result = match (datum, schema) {
            (Avro::Record(fields), Schema::Record(r)) => {
                fill_record(fields, r, &plan.fields, columns, slots)
            }
            (Avro::Null, _) => Ok(()),
            (datum, schema) if width == 1 => {
                let (name, t) = &columns[0];
                to_sql(datum, schema, t)
                    .map(|v| slots[0] = v)
                    .map_err(|e| e.in_column(name))
            }
            _ => Err(FormatError::Malformed {
                format: FormatKind::Avro,
                reason: format!("schema id {id} is not a record, but {width} columns are expected"),
            }),
        };
        match result {
            Ok(()) => out.append(slots),
            Err(_) => slots.clear(),
        }
        result
    }
}

fn fill_record(
    fields: Vec<(String, Avro)>,
    schema: &RecordSchema,
    targets: &[Option<usize>],
    columns: &[(String, DataType)],
    slots: &mut [Value],
) -> Result<(), FormatError> {
    for (i, (_, value)) in fields.into_iter().enumerate() {
        let (Some(Some(col)), Some(field)) = (targets.get(i), schema.fields.get(i)) else {
            continue;
        };
        let (name, t) = &columns[*col];
        slots[*col] = to_sql(value, &field.schema, t).map_err(|e| e.in_column(name))?;
    }
    Ok(())
}

/// A union's chosen branch and its schema.
fn strip_union(v: Avro, schema: &Schema) -> (Avro, &Schema) {
    match (v, schema) {
        (Avro::Union(i, inner), Schema::Union(u)) => match u.variants().get(i as usize) {
            Some(s) => strip_union(*inner, s),
            None => (*inner, schema),
        },
        (v, s) => (v, s),
    }
}

fn kind_name(v: &Avro) -> String {
    let name = match v {
        Avro::Null => "null",
        Avro::Boolean(_) => "boolean",
        Avro::Int(_) => "int",
        Avro::Long(_) => "long",
        Avro::Float(_) => "float",
        Avro::Double(_) => "double",
        Avro::Bytes(_) => "bytes",
        Avro::String(_) => "string",
        Avro::Fixed(..) => "fixed",
        Avro::Enum(..) => "enum",
        Avro::Union(..) => "union",
        Avro::Array(_) => "array",
        Avro::Map(_) => "map",
        Avro::Record(_) => "record",
        Avro::Date(_) => "date",
        Avro::Decimal(_) | Avro::BigDecimal(_) => "decimal",
        Avro::TimeMillis(_) | Avro::TimeMicros(_) => "time",
        Avro::Duration(_) => "duration",
        Avro::Uuid(_) => "uuid",
        _ => "timestamp",
    };
    format!("Avro {name}")
}

/// Converts a datum of writer schema `schema` to SQL type `t`.
fn to_sql(v: Avro, schema: &Schema, t: &DataType) -> Result<Value, FormatError> {
    let (v, schema) = strip_union(v, schema);
    let invalid = |v: &Avro| FormatError::InvalidValue {
        column: String::new(),
        expected: t.clone(),
        found: kind_name(v),
    };
    let out_of_range = |found: String| FormatError::OutOfRange {
        column: String::new(),
        expected: t.clone(),
        found,
    };
    Ok(match (v, t) {
        (Avro::Null, _) => Value::Null,
        (Avro::Boolean(b), DataType::Boolean) => Value::Boolean(b),
        (Avro::Int(i), DataType::Int) => Value::Int(i),
        (Avro::Long(l), DataType::Int) => {
            Value::Int(i32::try_from(l).map_err(|_| out_of_range(l.to_string()))?)
        }
        (Avro::Int(i), DataType::BigInt) => Value::BigInt(i64::from(i)),
        (Avro::Long(l), DataType::BigInt) => Value::BigInt(l),
        (Avro::Float(f), DataType::Double) => Value::Double(f64::from(f)),
        (Avro::Double(d), DataType::Double) => Value::Double(d),
        (Avro::Int(i), DataType::Double) => Value::Double(f64::from(i)),
        #[allow(clippy::cast_precision_loss)]
        (Avro::Long(l), DataType::Double) => Value::Double(l as f64),
        (Avro::String(s) | Avro::Enum(_, s), DataType::String) => Value::str(&s),
        (Avro::Uuid(u), DataType::String) => Value::str(&u.to_string()),
        (Avro::Bytes(b) | Avro::Fixed(_, b), DataType::Bytes) => Value::Bytes(b.into()),
        (Avro::Decimal(d), DataType::Decimal { precision, scale }) => {
            let writer_scale = match schema {
                Schema::Decimal(ds) => ds.scale,
                _ => 0,
            };
            let bytes: Vec<u8> = Vec::try_from(&d).map_err(|e| out_of_range(e.to_string()))?;
            let unscaled =
                unscaled_of(&bytes).ok_or_else(|| out_of_range("a huge decimal".into()))?;
            let writer_scale =
                u32::try_from(writer_scale).map_err(|_| out_of_range("a huge scale".into()))?;
            let d = Decimal::try_from_i128_with_scale(unscaled, writer_scale)
                .map_err(|_| out_of_range(format!("{unscaled}e-{writer_scale}")))?;
            Value::Decimal(
                fit_decimal(d, *precision, *scale).map_err(|_| out_of_range(d.to_string()))?,
            )
        }
        (Avro::TimestampMillis(ms) | Avro::Long(ms), DataType::Timestamp) => Value::Timestamp(ms),
        (Avro::TimestampMicros(us), DataType::Timestamp) => Value::Timestamp(us.div_euclid(1000)),
        (Avro::Date(d) | Avro::Int(d), DataType::Date) => Value::Date(d),
        (Avro::TimeMillis(ms) | Avro::Int(ms), DataType::Time) => Value::Time(i64::from(ms)),
        (Avro::TimeMicros(us), DataType::Time) => Value::Time(us.div_euclid(1000)),
        (Avro::Array(items), DataType::Array(item_t)) => {
            let item_schema = match schema {
                Schema::Array(a) => &*a.items,
                _ => schema,
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                out.push(
                    to_sql(item, item_schema, item_t)
                        .map_err(|e| e.in_column(&format!("[{}]", i + 1)))?,
                );
            }
            Value::Array(Arc::new(out))
        }
        (Avro::Map(entries), DataType::Map(_, value_t)) => {
            let value_schema = match schema {
                Schema::Map(m) => &*m.types,
                _ => schema,
            };
            // Avro maps have no order; sort for a stable result.
            let mut entries: Vec<(String, Avro)> = entries.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let v =
                    to_sql(v, value_schema, value_t).map_err(|e| e.in_column(&format!("[{k}]")))?;
                out.push((Value::str(&k), v));
            }
            Value::Map(Arc::new(out))
        }
        (Avro::Record(fields), DataType::Struct(struct_fields)) => {
            let Schema::Record(r) = schema else {
                return Err(invalid(&Avro::Record(fields)));
            };
            let mut out = vec![Value::Null; struct_fields.len()];
            for (i, (name, value)) in fields.into_iter().enumerate() {
                let (Some(pos), Some(field)) = (
                    struct_fields
                        .iter()
                        .position(|(f, _)| f.eq_ignore_ascii_case(&name)),
                    r.fields.get(i),
                ) else {
                    continue;
                };
                let (fname, ft) = &struct_fields[pos];
                out[pos] = to_sql(value, &field.schema, ft)
                    .map_err(|e| e.in_column(&format!(".{fname}")))?;
            }
            Value::Struct(Arc::new(out))
        }
        (v, _) => return Err(invalid(&v)),
    })
}

/// The big-endian two's-complement integer in `bytes`, if it fits i128.
fn unscaled_of(bytes: &[u8]) -> Option<i128> {
    if bytes.len() > 16 {
        return None;
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut buf = if negative { [0xff; 16] } else { [0; 16] };
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    Some(i128::from_be_bytes(buf))
}

/// The shortest big-endian two's-complement bytes of `n`.
fn unscaled_bytes(n: i128) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

pub struct AvroEncoder {
    schema: Arc<Schema>,
    header: [u8; HEADER],
    /// Per field of a record schema: its name and the column it takes.
    fields: Vec<(String, Option<usize>)>,
    columns: Vec<(String, DataType)>,
}

impl AvroEncoder {
    /// An encoder writing records with registered schema `id`.
    pub fn try_new(
        columns: &[(String, DataType)],
        registry: &SchemaRegistry,
        id: u32,
    ) -> Result<AvroEncoder, FormatError> {
        let schema = Arc::new(parse(&*registry.schema(id)?)?);
        let mut fields = Vec::new();
        match &*schema {
            Schema::Record(r) => {
                for f in &r.fields {
                    let col = columns
                        .iter()
                        .position(|(c, _)| c.eq_ignore_ascii_case(&f.name));
                    if col.is_none() && !accepts_null(&f.schema) {
                        return Err(FormatError::UnsupportedColumns {
                            format: FormatKind::Avro,
                            reason: format!(
                                "schema id {id} requires field \"{}\", which no column holds",
                                f.name
                            ),
                        });
                    }
                    fields.push((f.name.clone(), col));
                }
                if let Some((c, _)) = columns
                    .iter()
                    .find(|(c, _)| !r.fields.iter().any(|f| f.name.eq_ignore_ascii_case(c)))
                {
                    return Err(FormatError::UnsupportedColumns {
                        format: FormatKind::Avro,
                        reason: format!("schema id {id} has no field for column \"{c}\""),
                    });
                }
            }
            _ if columns.len() == 1 => {}
            _ => {
                return Err(FormatError::UnsupportedColumns {
                    format: FormatKind::Avro,
                    reason: format!(
                        "schema id {id} is not a record, so it cannot hold {} columns",
                        columns.len()
                    ),
                })
            }
        }
        let mut header = [MAGIC; HEADER];
        header[1..].copy_from_slice(&id.to_be_bytes());
        Ok(AvroEncoder {
            schema,
            header,
            fields,
            columns: columns.to_vec(),
        })
    }

    /// Whether this encoder writes one bare value rather than a record.
    pub fn is_unwrapped(&self) -> bool {
        !matches!(&*self.schema, Schema::Record(_))
    }

    pub fn encode(&mut self, values: &[Value], out: &mut Vec<u8>) -> Result<(), FormatError> {
        let datum = match &*self.schema {
            Schema::Record(r) => {
                let mut fields = Vec::with_capacity(self.fields.len());
                for ((name, col), f) in self.fields.iter().zip(&r.fields) {
                    let v = match col {
                        Some(i) => {
                            let (cname, t) = &self.columns[*i];
                            to_avro(&values[*i], t, &f.schema).map_err(|e| e.in_column(cname))?
                        }
                        None => to_avro(&Value::Null, &DataType::String, &f.schema)?,
                    };
                    fields.push((name.clone(), v));
                }
                Avro::Record(fields)
            }
            schema => {
                let (cname, t) = &self.columns[0];
                to_avro(&values[0], t, schema).map_err(|e| e.in_column(cname))?
            }
        };
        let body = apache_avro::to_avro_datum(&self.schema, datum).map_err(|e| {
            FormatError::Malformed {
                format: FormatKind::Avro,
                reason: format!("cannot encode: {e}"),
            }
        })?;
        out.extend_from_slice(&self.header);
        out.extend_from_slice(&body);
        Ok(())
    }
}

fn accepts_null(schema: &Schema) -> bool {
    match schema {
        Schema::Null => true,
        Schema::Union(u) => u.is_nullable(),
        _ => false,
    }
}

/// Converts SQL value `v` of type `t` to a datum of schema `schema`.
fn to_avro(v: &Value, t: &DataType, schema: &Schema) -> Result<Avro, FormatError> {
    if let Schema::Union(u) = schema {
        return to_union(v, t, u);
    }
    let mismatch = || FormatError::EncodeType {
        column: String::new(),
        expected: t.clone(),
        found: "a value of another Avro type",
    };
    let out_of_range = |found: String| FormatError::OutOfRange {
        column: String::new(),
        expected: t.clone(),
        found,
    };
    Ok(match (v, schema) {
        (Value::Null, Schema::Null) => Avro::Null,
        (Value::Null, _) => {
            return Err(FormatError::EncodeType {
                column: String::new(),
                expected: t.clone(),
                found: "NULL (the Avro field is not nullable)",
            })
        }
        (Value::Boolean(b), Schema::Boolean) => Avro::Boolean(*b),
        (Value::Int(i), Schema::Int) => Avro::Int(*i),
        (Value::BigInt(l), Schema::Int) => {
            Avro::Int(i32::try_from(*l).map_err(|_| out_of_range(l.to_string()))?)
        }
        (Value::Int(i), Schema::Long) => Avro::Long(i64::from(*i)),
        (Value::BigInt(l) | Value::Timestamp(l), Schema::Long) => Avro::Long(*l),
        #[allow(clippy::cast_possible_truncation)]
        (Value::Double(d), Schema::Float) => Avro::Float(*d as f32),
        (Value::Double(d), Schema::Double) => Avro::Double(*d),
        (Value::Int(i), Schema::Double) => Avro::Double(f64::from(*i)),
        (Value::String(s), Schema::String) => Avro::String(s.to_string()),
        (Value::String(s), Schema::Enum(e)) => {
            let i =
                e.symbols.iter().position(|x| x == &**s).ok_or_else(|| {
                    out_of_range(format!("'{s}' (not a symbol of enum {})", e.name))
                })?;
            Avro::Enum(u32::try_from(i).unwrap_or(u32::MAX), s.to_string())
        }
        (Value::Bytes(b), Schema::Bytes) => Avro::Bytes(b.to_vec()),
        (Value::Bytes(b), Schema::Fixed(f)) if b.len() == f.size => Avro::Fixed(f.size, b.to_vec()),
        (Value::Decimal(d), Schema::Decimal(ds)) => {
            let scale = u32::try_from(ds.scale).map_err(|_| out_of_range(d.to_string()))?;
            let mut d = *d;
            d.rescale(scale);
            if d.scale() != scale {
                return Err(out_of_range(d.to_string()));
            }
            Avro::Decimal(apache_avro::Decimal::from(unscaled_bytes(d.mantissa())))
        }
        (Value::Timestamp(ms), Schema::TimestampMillis) => Avro::TimestampMillis(*ms),
        (Value::Timestamp(ms), Schema::TimestampMicros) => Avro::TimestampMicros(
            ms.checked_mul(1000)
                .ok_or_else(|| out_of_range(ms.to_string()))?,
        ),
        (Value::Date(d), Schema::Date | Schema::Int) => Avro::Date(*d),
        (Value::Time(ms), Schema::TimeMillis) => {
            Avro::TimeMillis(i32::try_from(*ms).map_err(|_| out_of_range(ms.to_string()))?)
        }
        (Value::Time(ms), Schema::TimeMicros) => Avro::TimeMicros(ms.saturating_mul(1000)),
        (Value::Array(items), Schema::Array(a)) => {
            let DataType::Array(item_t) = t else {
                return Err(mismatch());
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(
                    to_avro(item, item_t, &a.items)
                        .map_err(|e| e.in_column(&format!("[{}]", i + 1)))?,
                );
            }
            Avro::Array(out)
        }
        (Value::Map(entries), Schema::Map(m)) => {
            let DataType::Map(_, value_t) = t else {
                return Err(mismatch());
            };
            let mut out = HashMap::with_capacity(entries.len());
            for (k, v) in entries.iter() {
                let Value::String(k) = k else {
                    return Err(mismatch());
                };
                let v =
                    to_avro(v, value_t, &m.types).map_err(|e| e.in_column(&format!("[{k}]")))?;
                out.insert(k.to_string(), v);
            }
            Avro::Map(out)
        }
        (Value::Struct(values), Schema::Record(r)) => {
            let DataType::Struct(struct_fields) = t else {
                return Err(mismatch());
            };
            let mut out = Vec::with_capacity(r.fields.len());
            for f in &r.fields {
                let pos = struct_fields
                    .iter()
                    .position(|(n, _)| n.eq_ignore_ascii_case(&f.name));
                let datum = match pos {
                    Some(p) => to_avro(&values[p], &struct_fields[p].1, &f.schema)
                        .map_err(|e| e.in_column(&format!(".{}", struct_fields[p].0)))?,
                    None => to_avro(&Value::Null, &DataType::String, &f.schema)?,
                };
                out.push((f.name.clone(), datum));
            }
            Avro::Record(out)
        }
        _ => return Err(mismatch()),
    })
}

/// Picks the union branch for `v`: null for NULL, else the first branch
/// that takes the value.
fn to_union(v: &Value, t: &DataType, u: &UnionSchema) -> Result<Avro, FormatError> {
    let mut last_err = None;
    for (i, branch) in u.variants().iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        match (v, branch) {
            (Value::Null, Schema::Null) => return Ok(Avro::Union(index, Box::new(Avro::Null))),
            (Value::Null, _) | (_, Schema::Null) => {}
            _ => match to_avro(v, t, branch) {
                Ok(datum) => return Ok(Avro::Union(index, Box::new(datum))),
                Err(e) => last_err = Some(e),
            },
        }
    }
    Err(last_err.unwrap_or_else(|| FormatError::EncodeType {
        column: String::new(),
        expected: t.clone(),
        found: "NULL (the Avro field is not nullable)",
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::format::cols;

    fn every_type() -> Vec<(String, DataType)> {
        cols(&[
            ("B", DataType::Boolean),
            ("I", DataType::Int),
            ("L", DataType::BigInt),
            ("D", DataType::Double),
            (
                "DEC",
                DataType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            ("S", DataType::String),
            ("BY", DataType::Bytes),
            ("TS", DataType::Timestamp),
            ("DT", DataType::Date),
            ("TM", DataType::Time),
            ("A", DataType::Array(Box::new(DataType::Int))),
            (
                "M",
                DataType::Map(Box::new(DataType::String), Box::new(DataType::BigInt)),
            ),
            (
                "ST",
                DataType::Struct(vec![
                    ("CITY".into(), DataType::String),
                    ("ZIP".into(), DataType::Int),
                ]),
            ),
        ])
    }

    fn every_value() -> Vec<Value> {
        vec![
            Value::Boolean(true),
            Value::Int(-7),
            Value::BigInt(1 << 40),
            Value::Double(2.5),
            Value::Decimal(Decimal::new(-12345, 2)),
            Value::str("héllo"),
            Value::Bytes(vec![0, 255, 7].into()),
            Value::Timestamp(1_700_000_000_123),
            Value::Date(19_000),
            Value::Time(3_600_000),
            Value::Array(Arc::new(vec![Value::Int(1), Value::Null, Value::Int(3)])),
            Value::Map(Arc::new(vec![
                (Value::str("a"), Value::BigInt(1)),
                (Value::str("b"), Value::Null),
            ])),
            Value::Struct(Arc::new(vec![Value::str("Oslo"), Value::Int(150)])),
        ]
    }

    #[test]
    fn the_schema_rill_writes_reads_back_as_the_same_columns() {
        let columns = every_type();
        let text = schema_of(&columns, true).unwrap();
        // Registered as written: logical types survive (the canonical form
        // would drop them).
        assert!(
            text.contains(r#""logicalType":"timestamp-millis""#),
            "{text}"
        );
        let schema = Schema::parse_str(&text).unwrap();
        assert_eq!(columns_of(&schema, false).unwrap(), columns);
        let Schema::Record(r) = &schema else {
            panic!("not a record")
        };
        assert_eq!(
            r.name.fullname(None),
            "io.confluent.ksql.avro_schemas.KsqlDataSourceSchema"
        );
        // Every field is nullable with a null default, as ksqlDB writes them.
        assert!(r.fields.iter().all(|f| accepts_null(&f.schema)));
    }

    #[test]
    fn values_round_trip_through_avro_datums() {
        let columns = every_type();
        let schema = Schema::parse_str(&schema_of(&columns, true).unwrap()).unwrap();
        let Schema::Record(r) = &schema else {
            panic!("not a record")
        };
        let values = every_value();
        let fields: Vec<(String, Avro)> = r
            .fields
            .iter()
            .zip(columns.iter().zip(&values))
            .map(|(f, ((_, t), v))| (f.name.clone(), to_avro(v, t, &f.schema).unwrap()))
            .collect();
        let bytes = apache_avro::to_avro_datum(&schema, Avro::Record(fields)).unwrap();
        let datum = apache_avro::from_avro_datum(&schema, &mut bytes.as_slice(), None).unwrap();
        let Avro::Record(fields) = datum else {
            panic!("not a record")
        };
        let targets: Vec<Option<usize>> = (0..columns.len()).map(Some).collect();
        let mut slots = vec![Value::Null; columns.len()];
        fill_record(fields, r, &targets, &columns, &mut slots).unwrap();
        assert_eq!(slots, values);
    }

    #[test]
    fn fields_match_columns_case_insensitively_and_extra_fields_are_ignored() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "Bid", "fields": [
                {"name": "note", "type": "string"},
                {"name": "price", "type": "long"},
                {"name": "Auction", "type": ["null", "int"]}
            ]}"#,
        )
        .unwrap();
        let Schema::Record(r) = &schema else {
            panic!("not a record")
        };
        let columns = cols(&[("AUCTION", DataType::BigInt), ("PRICE", DataType::Double)]);
        let datum = Avro::Record(vec![
            ("note".into(), Avro::String("x".into())),
            ("price".into(), Avro::Long(42)),
            ("Auction".into(), Avro::Union(1, Box::new(Avro::Int(7)))),
        ]);
        let bytes = apache_avro::to_avro_datum(&schema, datum).unwrap();
        let Avro::Record(fields) =
            apache_avro::from_avro_datum(&schema, &mut bytes.as_slice(), None).unwrap()
        else {
            panic!("not a record")
        };
        let targets = vec![None, Some(1), Some(0)];
        let mut slots = vec![Value::Null; 2];
        fill_record(fields, r, &targets, &columns, &mut slots).unwrap();
        assert_eq!(slots, vec![Value::BigInt(7), Value::Double(42.0)]);
    }

    #[test]
    fn wrong_types_name_the_column_path() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "R", "fields": [
                {"name": "tags", "type": {"type": "array", "items": "string"}}
            ]}"#,
        )
        .unwrap();
        let Schema::Record(r) = &schema else {
            panic!("not a record")
        };
        let columns = cols(&[("TAGS", DataType::Array(Box::new(DataType::Int)))]);
        let fields = vec![(
            "tags".to_string(),
            Avro::Array(vec![Avro::String("x".into())]),
        )];
        let mut slots = vec![Value::Null];
        let err = fill_record(fields, r, &[Some(0)], &columns, &mut slots).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column \"TAGS[1]\" expects INTEGER, found Avro string"
        );
    }

    #[test]
    fn records_without_the_registry_header_are_malformed() {
        for bad in [&b""[..], b"\x01\0\0\0\x01rest", b"\0\0\0"] {
            assert!(matches!(
                header(bad),
                Err(FormatError::Malformed {
                    format: FormatKind::Avro,
                    ..
                })
            ));
        }
        assert_eq!(header(b"\0\0\0\x01\x2ax").unwrap(), (298, &b"x"[..]));
    }

    #[test]
    fn decimals_keep_their_value_across_scales() {
        for n in [0i128, 1, -1, 127, 128, -128, -129, 1 << 70, -(1 << 70)] {
            assert_eq!(unscaled_of(&unscaled_bytes(n)), Some(n), "{n}");
        }
        assert_eq!(unscaled_bytes(127), vec![0x7f]);
        assert_eq!(unscaled_bytes(128), vec![0x00, 0x80]);
        assert_eq!(unscaled_bytes(-1), vec![0xff]);
        // Written with scale 3, read into DECIMAL(6, 1): 12.345 -> 12.3.
        let schema = Schema::parse_str(
            r#"{"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 3}"#,
        )
        .unwrap();
        let v = to_sql(
            Avro::Decimal(apache_avro::Decimal::from(unscaled_bytes(12345))),
            &schema,
            &DataType::Decimal {
                precision: 6,
                scale: 1,
            },
        )
        .unwrap();
        assert_eq!(v, Value::Decimal(Decimal::new(123, 1)));
    }

    #[test]
    fn a_single_unwrapped_key_is_a_bare_nullable_value() {
        let schema =
            Schema::parse_str(&schema_of(&cols(&[("ID", DataType::String)]), false).unwrap())
                .unwrap();
        assert_eq!(schema.canonical_form(), r#"["null","string"]"#);
        assert_eq!(
            columns_of(&schema, true).unwrap(),
            cols(&[("ROWKEY", DataType::String)])
        );
    }

    #[test]
    fn schemas_without_a_sql_type_are_refused_at_create() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "R", "fields": [
                {"name": "either", "type": ["int", "string"]}
            ]}"#,
        )
        .unwrap();
        let err = columns_of(&schema, false).unwrap_err();
        assert!(err.to_string().contains("\"either\""), "{err}");
    }
}
