//! PROTOBUF in Confluent's schema-registry wire format: a zero magic byte,
//! the schema id (4 bytes, big-endian), the message indexes (which message
//! of the `.proto` file: zig-zag varints, the count first; `[0]`, the first
//! message, is the single byte 0), then the encoded message.
//!
//! Schemas are `.proto` source as the registry keeps it, compiled with
//! protox (well-known `google/protobuf/*` imports resolve). Fields match
//! columns by name, case-insensitively. As in ksqlDB, proto3 scalars have
//! no NULL: an absent scalar reads as its default and a NULL is written as
//! an absent field; message-typed and `optional` fields read NULL when
//! absent.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use protox::prost::Message as _;
use protox::prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage,
    Value as Proto,
};
use protox::Compiler;
use rill_sql::{DataType, Value};

use super::registry::{RawSchema, SchemaRegistry, SchemaType};
use super::{FormatError, FormatKind};

/// The name the registry's schema text is compiled under.
const SCHEMA_FILE: &str = "registered.proto";
/// Nesting deeper than this is refused (recursive messages).
const MAX_DEPTH: usize = 32;
const TIMESTAMP: &str = "google.protobuf.Timestamp";

/// Serves the registered schema text, and nothing else, to the compiler.
struct Registered(String);

impl FileResolver for Registered {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == SCHEMA_FILE {
            File::from_source(name, &self.0)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

/// Compiles a registered PROTOBUF schema; returns its top-level messages.
fn compile(raw: &RawSchema) -> Result<Vec<MessageDescriptor>, FormatError> {
    if raw.schema_type != SchemaType::Protobuf {
        return Err(FormatError::Registry {
            reason: format!(
                "expected a PROTOBUF schema, found {}",
                raw.schema_type.name()
            ),
        });
    }
    let mut resolver = ChainFileResolver::new();
    resolver.add(Registered(raw.text.clone()));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = Compiler::with_file_resolver(resolver);
    let invalid = |e: protox::Error| FormatError::Registry {
        reason: format!("not a valid PROTOBUF schema: {e}"),
    };
    compiler.open_file(SCHEMA_FILE).map_err(invalid)?;
    let pool = compiler.descriptor_pool();
    let file = pool
        .get_file_by_name(SCHEMA_FILE)
        .ok_or_else(|| FormatError::Registry {
            reason: "the PROTOBUF schema compiled to nothing".into(),
        })?;
    let messages: Vec<MessageDescriptor> = file.messages().collect();
    if messages.is_empty() {
        return Err(FormatError::Registry {
            reason: "the PROTOBUF schema has no message".into(),
        });
    }
    Ok(messages)
}

/// The columns of the first message of a registered schema.
pub fn columns_of(raw: &RawSchema) -> Result<Vec<(String, DataType)>, FormatError> {
    let messages = compile(raw)?;
    message_columns(&messages[0], 0)
}

fn message_columns(
    m: &MessageDescriptor,
    depth: usize,
) -> Result<Vec<(String, DataType)>, FormatError> {
    m.fields()
        .map(|f| Ok((f.name().to_uppercase(), field_type(&f, depth)?)))
        .collect()
}

fn field_type(f: &FieldDescriptor, depth: usize) -> Result<DataType, FormatError> {
    if f.is_map() {
        let Kind::Message(entry) = f.kind() else {
            return Err(unsupported(f, "a map without an entry message"));
        };
        if !matches!(entry.map_entry_key_field().kind(), Kind::String) {
            return Err(unsupported(
                f,
                "map keys other than string have no SQL type",
            ));
        }
        let value = entry.map_entry_value_field();
        return Ok(DataType::Map(
            Box::new(DataType::String),
            Box::new(kind_type(&value.kind(), &value, depth)?),
        ));
    }
    let t = kind_type(&f.kind(), f, depth)?;
    Ok(if f.is_list() {
        DataType::Array(Box::new(t))
    } else {
        t
    })
}

fn unsupported(f: &FieldDescriptor, reason: &str) -> FormatError {
    FormatError::UnsupportedSchema {
        field: f.name().to_string(),
        reason: reason.to_string(),
    }
}

/// A google.protobuf wrapper's SQL type (`Int32Value` -> INT, ...).
fn wrapper_type(full_name: &str) -> Option<DataType> {
    Some(match full_name {
        "google.protobuf.BoolValue" => DataType::Boolean,
        "google.protobuf.Int32Value" => DataType::Int,
        "google.protobuf.Int64Value"
        | "google.protobuf.UInt32Value"
        | "google.protobuf.UInt64Value" => DataType::BigInt,
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => DataType::Double,
        "google.protobuf.StringValue" => DataType::String,
        "google.protobuf.BytesValue" => DataType::Bytes,
        _ => return None,
    })
}

fn kind_type(kind: &Kind, f: &FieldDescriptor, depth: usize) -> Result<DataType, FormatError> {
    Ok(match kind {
        Kind::Bool => DataType::Boolean,
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => DataType::Int,
        Kind::Uint32
        | Kind::Fixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64
        | Kind::Uint64
        | Kind::Fixed64 => DataType::BigInt,
        Kind::Float | Kind::Double => DataType::Double,
        Kind::String | Kind::Enum(_) => DataType::String,
        Kind::Bytes => DataType::Bytes,
        Kind::Message(m) if m.full_name() == TIMESTAMP => DataType::Timestamp,
        Kind::Message(m) => match wrapper_type(m.full_name()) {
            Some(t) => t,
            None if depth >= MAX_DEPTH => {
                return Err(unsupported(f, "messages nested this deep (recursive?)"))
            }
            None => DataType::Struct(message_columns(m, depth + 1)?),
        },
    })
}

/// The proto3 schema rill registers for `columns`: message
/// `ConnectDefault1` (as ksqlDB names it) with one field per column, in
/// order, nested structs as further messages.
pub fn schema_of(columns: &[(String, DataType)]) -> Result<String, FormatError> {
    let raw = RawSchema {
        schema_type: SchemaType::Protobuf,
        text: proto_text(columns)?,
    };
    compile(&raw).map_err(|e| FormatError::UnsupportedColumns {
        format: FormatKind::Protobuf,
        reason: format!("cannot hold these columns: {e}"),
    })?;
    Ok(raw.text)
}

/// The `.proto` text of [`schema_of`], not compiled; refuses the column
/// types protobuf cannot hold.
fn proto_text(columns: &[(String, DataType)]) -> Result<String, FormatError> {
    let mut messages = Vec::new();
    let mut imports_timestamp = false;
    message_text(columns, &mut messages, &mut imports_timestamp)?;
    let mut out = String::from("syntax = \"proto3\";\n\n");
    if imports_timestamp {
        out.push_str("import \"google/protobuf/timestamp.proto\";\n\n");
    }
    for m in messages {
        out.push_str(&m);
    }
    Ok(out)
}

/// Appends the message for `fields` (and those it nests) to `messages`;
/// returns its name.
fn message_text(
    fields: &[(String, DataType)],
    messages: &mut Vec<String>,
    timestamp: &mut bool,
) -> Result<String, FormatError> {
    let name = format!("ConnectDefault{}", messages.len() + 1);
    let slot = messages.len();
    messages.push(String::new());
    let mut body = format!("message {name} {{\n");
    for (i, (field, t)) in fields.iter().enumerate() {
        if !super::avro::valid_name(field) {
            return Err(FormatError::UnsupportedColumns {
                format: FormatKind::Protobuf,
                reason: format!(
                    "needs field names of letters, digits and '_' not starting with a digit, found \"{field}\""
                ),
            });
        }
        let ty = match t {
            DataType::Array(item) => format!(
                "repeated {}",
                scalar_text(item, field, messages, timestamp)?
            ),
            DataType::Map(k, v) => {
                if **k != DataType::String {
                    return Err(type_refused(field, t, "PROTOBUF map keys are strings here"));
                }
                format!(
                    "map<string, {}>",
                    scalar_text(v, field, messages, timestamp)?
                )
            }
            t => scalar_text(t, field, messages, timestamp)?,
        };
        let _ = writeln!(body, "  {ty} {field} = {};", i + 1);
    }
    body.push_str("}\n");
    messages[slot] = body;
    Ok(name)
}

fn type_refused(column: &str, t: &DataType, reason: &'static str) -> FormatError {
    FormatError::UnsupportedType {
        format: FormatKind::Protobuf,
        column: column.to_string(),
        data_type: t.clone(),
        reason,
    }
}

/// The proto type of a single (not repeated, not map) value of type `t`.
fn scalar_text(
    t: &DataType,
    column: &str,
    messages: &mut Vec<String>,
    timestamp: &mut bool,
) -> Result<String, FormatError> {
    Ok(match t {
        DataType::Boolean => "bool".into(),
        DataType::Int => "int32".into(),
        DataType::BigInt => "int64".into(),
        DataType::Double => "double".into(),
        DataType::String => "string".into(),
        DataType::Bytes => "bytes".into(),
        DataType::Timestamp => {
            *timestamp = true;
            TIMESTAMP.into()
        }
        DataType::Struct(fields) => message_text(fields, messages, timestamp)?,
        DataType::Decimal { .. } | DataType::Date | DataType::Time => {
            return Err(type_refused(
                column,
                t,
                "rill writes no PROTOBUF type for it yet; use DOUBLE, STRING, BIGINT or TIMESTAMP",
            ))
        }
        DataType::Array(_) | DataType::Map(..) => {
            return Err(type_refused(
                column,
                t,
                "protobuf cannot nest a repeated or map field directly; wrap it in a STRUCT",
            ))
        }
    })
}

/// Reads a zig-zag varint.
fn read_varint(bytes: &mut &[u8]) -> Option<i64> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            #[allow(clippy::cast_possible_wrap)]
            return Some((n >> 1) as i64 ^ -((n & 1) as i64));
        }
    }
    None
}

fn malformed(reason: String) -> FormatError {
    FormatError::Malformed {
        format: FormatKind::Protobuf,
        reason,
    }
}

/// Splits a record into schema id, message indexes and message bytes.
fn header(bytes: &[u8]) -> Result<(u32, Vec<usize>, &[u8]), FormatError> {
    let [0, a, b, c, d, rest @ ..] = bytes else {
        return Err(malformed(
            "no schema registry header (a zero byte and a 4-byte schema id)".into(),
        ));
    };
    let id = u32::from_be_bytes([*a, *b, *c, *d]);
    let mut rest = rest;
    let bad = || malformed("unreadable message indexes".into());
    let count = read_varint(&mut rest).ok_or_else(bad)?;
    let indexes = if count == 0 {
        vec![0]
    } else {
        if !(1..=MAX_DEPTH as i64).contains(&count) {
            return Err(bad());
        }
        (0..count)
            .map(|_| {
                read_varint(&mut rest)
                    .and_then(|i| usize::try_from(i).ok())
                    .ok_or_else(bad)
            })
            .collect::<Result<_, _>>()?
    };
    Ok((id, indexes, rest))
}

/// The message the indexes name: the top-level message, then nested ones.
fn message_at(messages: &[MessageDescriptor], indexes: &[usize]) -> Option<MessageDescriptor> {
    let (first, nested) = indexes.split_first()?;
    let mut m = messages.get(*first)?.clone();
    for i in nested {
        let child = m.child_messages().nth(*i)?;
        m = child;
    }
    Some(m)
}

/// How one message type's fields fill the columns.
struct Plan {
    message: MessageDescriptor,
    /// Per column: the field it reads.
    fields: Vec<Option<FieldDescriptor>>,
}

fn plan(message: MessageDescriptor, columns: &[(String, DataType)]) -> Plan {
    let mut fields: Vec<Option<FieldDescriptor>> = columns
        .iter()
        .map(|(c, _)| message.fields().find(|f| f.name().eq_ignore_ascii_case(c)))
        .collect();
    // A single column takes a single field whatever its name (a key
    // written by another tool as `message Key { string id = 1; }`).
    if let ([None], 1) = (fields.as_slice(), message.fields().len()) {
        fields[0] = message.fields().next();
    }
    Plan { message, fields }
}

pub struct ProtobufDecoder {
    columns: Vec<(String, DataType)>,
    registry: Arc<SchemaRegistry>,
    /// Compiled top-level messages per schema id.
    schemas: HashMap<u32, Vec<MessageDescriptor>>,
    plans: HashMap<(u32, Vec<usize>), Plan>,
}

impl ProtobufDecoder {
    pub fn try_new(
        columns: &[(String, DataType)],
        registry: Arc<SchemaRegistry>,
    ) -> Result<ProtobufDecoder, FormatError> {
        // Refuses what protobuf cannot hold, without compiling anything.
        proto_text(columns)?;
        Ok(ProtobufDecoder {
            columns: columns.to_vec(),
            registry,
            schemas: HashMap::new(),
            plans: HashMap::new(),
        })
    }

    pub fn decode(&mut self, bytes: &[u8], out: &mut Vec<Value>) -> Result<(), FormatError> {
        let (id, indexes, body) = header(bytes)?;
        let key = (id, indexes);
        if !self.plans.contains_key(&key) {
            if !self.schemas.contains_key(&id) {
                let messages = compile(&*self.registry.schema(id)?)?;
                self.schemas.insert(id, messages);
            }
            let message = self
                .schemas
                .get(&id)
                .and_then(|m| message_at(m, &key.1))
                .ok_or_else(|| {
                    malformed(format!(
                        "message indexes {:?} are not in schema id {id}",
                        key.1
                    ))
                })?;
            self.plans.insert(key.clone(), plan(message, &self.columns));
        }
        let Some(plan) = self.plans.get(&key) else {
            return Err(malformed(format!(
                "schema id {id} is missing from the cache"
            )));
        };
        let message = DynamicMessage::decode(plan.message.clone(), body)
            .map_err(|e| malformed(format!("does not match schema id {id}: {e}")))?;
        let base = out.len();
        for ((name, t), field) in self.columns.iter().zip(&plan.fields) {
            let v = match field {
                Some(f) => read_field(&message, f, t).map_err(|e| e.in_column(name)),
                None => Ok(Value::Null),
            };
            match v {
                Ok(v) => out.push(v),
                Err(e) => {
                    out.truncate(base);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// A field's value: NULL when a field with presence is absent.
fn read_field(m: &DynamicMessage, f: &FieldDescriptor, t: &DataType) -> Result<Value, FormatError> {
    if f.supports_presence() && !m.has_field(f) {
        return Ok(Value::Null);
    }
    field_to_sql(&m.get_field(f), f, t)
}

fn field_to_sql(v: &Proto, f: &FieldDescriptor, t: &DataType) -> Result<Value, FormatError> {
    match (v, t) {
        (Proto::Map(entries), DataType::Map(_, value_t)) => {
            let Kind::Message(entry) = f.kind() else {
                return Err(invalid(t, "map"));
            };
            let value_field = entry.map_entry_value_field();
            let mut out: Vec<(&str, Value)> = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let MapKey::String(k) = k else {
                    return Err(invalid(t, "a map with non-string keys"));
                };
                let v = kind_to_sql(v, &value_field.kind(), value_t)
                    .map_err(|e| e.in_column(&format!("[{k}]")))?;
                out.push((k, v));
            }
            // Protobuf maps have no order; sort for a stable result.
            out.sort_by(|a, b| a.0.cmp(b.0));
            let out = out.into_iter().map(|(k, v)| (Value::str(k), v)).collect();
            Ok(Value::Map(Arc::new(out)))
        }
        (Proto::List(items), DataType::Array(item_t)) => {
            let kind = f.kind();
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(
                    kind_to_sql(item, &kind, item_t)
                        .map_err(|e| e.in_column(&format!("[{}]", i + 1)))?,
                );
            }
            Ok(Value::Array(Arc::new(out)))
        }
        (v, t) => kind_to_sql(v, &f.kind(), t),
    }
}

fn invalid(t: &DataType, found: &str) -> FormatError {
    FormatError::InvalidValue {
        column: String::new(),
        expected: t.clone(),
        found: format!("protobuf {found}"),
    }
}

fn out_of_range(t: &DataType, found: String) -> FormatError {
    FormatError::OutOfRange {
        column: String::new(),
        expected: t.clone(),
        found,
    }
}

fn kind_to_sql(v: &Proto, kind: &Kind, t: &DataType) -> Result<Value, FormatError> {
    Ok(match (v, t) {
        (Proto::Bool(b), DataType::Boolean) => Value::Boolean(*b),
        (Proto::I32(i), DataType::Int) => Value::Int(*i),
        (Proto::I32(i), DataType::BigInt) => Value::BigInt(i64::from(*i)),
        (Proto::U32(u), DataType::BigInt) => Value::BigInt(i64::from(*u)),
        (Proto::I64(i), DataType::BigInt) => Value::BigInt(*i),
        (Proto::U64(u), DataType::BigInt) => {
            Value::BigInt(i64::try_from(*u).map_err(|_| out_of_range(t, u.to_string()))?)
        }
        (Proto::I64(i), DataType::Int) => {
            Value::Int(i32::try_from(*i).map_err(|_| out_of_range(t, i.to_string()))?)
        }
        (Proto::U32(u), DataType::Int) => {
            Value::Int(i32::try_from(*u).map_err(|_| out_of_range(t, u.to_string()))?)
        }
        (Proto::F32(f), DataType::Double) => Value::Double(f64::from(*f)),
        (Proto::F64(f), DataType::Double) => Value::Double(*f),
        (Proto::I32(i), DataType::Double) => Value::Double(f64::from(*i)),
        (Proto::String(s), DataType::String) => Value::str(s),
        (Proto::Bytes(b), DataType::Bytes) => Value::Bytes(b.to_vec().into()),
        (Proto::EnumNumber(n), DataType::String) => match kind {
            Kind::Enum(e) => match e.get_value(*n) {
                Some(v) => Value::str(v.name()),
                None => Value::str(&n.to_string()),
            },
            _ => Value::str(&n.to_string()),
        },
        (Proto::Message(m), DataType::Timestamp) if m.descriptor().full_name() == TIMESTAMP => {
            let seconds = m.get_field_by_name("seconds");
            let nanos = m.get_field_by_name("nanos");
            let seconds = seconds.as_deref().and_then(Proto::as_i64).unwrap_or(0);
            let nanos = nanos.as_deref().and_then(Proto::as_i32).unwrap_or(0);
            let ms = seconds
                .checked_mul(1000)
                .and_then(|ms| ms.checked_add(i64::from(nanos).div_euclid(1_000_000)))
                .ok_or_else(|| out_of_range(t, format!("{seconds} s")))?;
            Value::Timestamp(ms)
        }
        (Proto::Message(m), t) if wrapper_type(m.descriptor().full_name()).is_some() => {
            match m.descriptor().get_field_by_name("value") {
                Some(f) => kind_to_sql(&m.get_field(&f), &f.kind(), t)?,
                None => Value::Null,
            }
        }
        (Proto::Message(m), DataType::Struct(fields)) => {
            let desc = m.descriptor();
            let mut out = Vec::with_capacity(fields.len());
            for (name, ft) in fields {
                let v = match desc.fields().find(|f| f.name().eq_ignore_ascii_case(name)) {
                    Some(f) => {
                        read_field(m, &f, ft).map_err(|e| e.in_column(&format!(".{name}")))?
                    }
                    None => Value::Null,
                };
                out.push(v);
            }
            Value::Struct(Arc::new(out))
        }
        (v, t) => return Err(invalid(t, proto_kind_name(v))),
    })
}

fn proto_kind_name(v: &Proto) -> &'static str {
    match v {
        Proto::Bool(_) => "bool",
        Proto::I32(_) => "int32",
        Proto::I64(_) => "int64",
        Proto::U32(_) => "uint32",
        Proto::U64(_) => "uint64",
        Proto::F32(_) => "float",
        Proto::F64(_) => "double",
        Proto::String(_) => "string",
        Proto::Bytes(_) => "bytes",
        Proto::EnumNumber(_) => "enum",
        Proto::Message(_) => "message",
        Proto::List(_) => "repeated field",
        Proto::Map(_) => "map",
    }
}

pub struct ProtobufEncoder {
    /// Magic byte, schema id, message indexes `[0]`.
    header: [u8; 6],
    plan: Plan,
    columns: Vec<(String, DataType)>,
}

impl ProtobufEncoder {
    /// An encoder writing the first message of registered schema `id`.
    pub fn try_new(
        columns: &[(String, DataType)],
        registry: &SchemaRegistry,
        id: u32,
    ) -> Result<ProtobufEncoder, FormatError> {
        let messages = compile(&*registry.schema(id)?)?;
        let plan = plan(messages[0].clone(), columns);
        if let Some(((c, _), _)) = columns.iter().zip(&plan.fields).find(|(_, f)| f.is_none()) {
            return Err(FormatError::UnsupportedColumns {
                format: FormatKind::Protobuf,
                reason: format!(
                    "message {} of schema id {id} has no field for column \"{c}\"",
                    plan.message.full_name()
                ),
            });
        }
        let mut header = [0u8; 6];
        header[1..5].copy_from_slice(&id.to_be_bytes());
        Ok(ProtobufEncoder {
            header,
            plan,
            columns: columns.to_vec(),
        })
    }

    pub fn encode(&mut self, values: &[Value], out: &mut Vec<u8>) -> Result<(), FormatError> {
        let mut message = DynamicMessage::new(self.plan.message.clone());
        for (((name, t), field), v) in self.columns.iter().zip(&self.plan.fields).zip(values) {
            let Some(f) = field else { continue };
            if let Some(v) = field_to_proto(v, f, t).map_err(|e| e.in_column(name))? {
                message.set_field(f, v);
            }
        }
        out.extend_from_slice(&self.header);
        message
            .encode(out)
            .map_err(|e| malformed(format!("cannot encode: {e}")))
    }
}

/// `None` for NULL: the field stays absent.
fn field_to_proto(
    v: &Value,
    f: &FieldDescriptor,
    t: &DataType,
) -> Result<Option<Proto>, FormatError> {
    let mismatch = || FormatError::EncodeType {
        column: String::new(),
        expected: t.clone(),
        found: "a value of another protobuf type",
    };
    Ok(Some(match (v, t) {
        (Value::Null, _) => return Ok(None),
        (Value::Map(entries), DataType::Map(_, value_t)) if f.is_map() => {
            let Kind::Message(entry) = f.kind() else {
                return Err(mismatch());
            };
            let value_field = entry.map_entry_value_field();
            let mut out = HashMap::with_capacity(entries.len());
            for (k, v) in entries.iter() {
                let Value::String(k) = k else {
                    return Err(mismatch());
                };
                let v = kind_to_proto(v, &value_field.kind(), value_t)
                    .map_err(|e| e.in_column(&format!("[{k}]")))?
                    .unwrap_or_else(|| Proto::default_value(&value_field.kind()));
                out.insert(MapKey::String(k.to_string()), v);
            }
            Proto::Map(out)
        }
        (Value::Array(items), DataType::Array(item_t)) if f.is_list() => {
            let kind = f.kind();
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let item = kind_to_proto(item, &kind, item_t)
                    .map_err(|e| e.in_column(&format!("[{}]", i + 1)))?
                    .ok_or(FormatError::EncodeType {
                        column: format!("[{}]", i + 1),
                        expected: (**item_t).clone(),
                        found: "NULL (protobuf repeated fields hold no NULL)",
                    })?;
                out.push(item);
            }
            Proto::List(out)
        }
        (v, t) => return kind_to_proto(v, &f.kind(), t),
    }))
}

fn kind_to_proto(v: &Value, kind: &Kind, t: &DataType) -> Result<Option<Proto>, FormatError> {
    let mismatch = || FormatError::EncodeType {
        column: String::new(),
        expected: t.clone(),
        found: "a value of another protobuf type",
    };
    let int = |n: i64| -> Result<Proto, FormatError> {
        let range = || out_of_range(t, n.to_string());
        Ok(match kind {
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                Proto::I32(i32::try_from(n).map_err(|_| range())?)
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Proto::I64(n),
            Kind::Uint32 | Kind::Fixed32 => Proto::U32(u32::try_from(n).map_err(|_| range())?),
            Kind::Uint64 | Kind::Fixed64 => Proto::U64(u64::try_from(n).map_err(|_| range())?),
            #[allow(clippy::cast_precision_loss)]
            Kind::Double => Proto::F64(n as f64),
            _ => return Err(mismatch()),
        })
    };
    Ok(Some(match (v, kind) {
        (Value::Null, _) => return Ok(None),
        (v, Kind::Message(m)) if wrapper_type(m.full_name()).is_some() => {
            let Some(f) = m.get_field_by_name("value") else {
                return Err(mismatch());
            };
            let mut wrapper = DynamicMessage::new(m.clone());
            if let Some(inner) = kind_to_proto(v, &f.kind(), t)? {
                wrapper.set_field(&f, inner);
            }
            Proto::Message(wrapper)
        }
        (Value::Boolean(b), Kind::Bool) => Proto::Bool(*b),
        (Value::Int(i), _) => int(i64::from(*i))?,
        (Value::BigInt(i), _) => int(*i)?,
        (Value::Double(d), Kind::Double) => Proto::F64(*d),
        #[allow(clippy::cast_possible_truncation)]
        (Value::Double(d), Kind::Float) => Proto::F32(*d as f32),
        (Value::String(s), Kind::String) => Proto::String(s.to_string()),
        (Value::String(s), Kind::Enum(e)) => match e.get_value_by_name(s) {
            Some(v) => Proto::EnumNumber(v.number()),
            None => {
                return Err(out_of_range(
                    t,
                    format!("'{s}' (not a value of enum {})", e.name()),
                ))
            }
        },
        (Value::Bytes(b), Kind::Bytes) => Proto::Bytes(b.to_vec().into()),
        (Value::Timestamp(ms), Kind::Message(m)) if m.full_name() == TIMESTAMP => {
            let mut ts = DynamicMessage::new(m.clone());
            let nanos = i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0);
            ts.set_field_by_name("seconds", Proto::I64(ms.div_euclid(1000)));
            ts.set_field_by_name("nanos", Proto::I32(nanos));
            Proto::Message(ts)
        }
        (Value::Timestamp(ms), _) => int(*ms)?,
        (Value::Struct(values), Kind::Message(m)) => {
            let DataType::Struct(fields) = t else {
                return Err(mismatch());
            };
            let mut out = DynamicMessage::new(m.clone());
            for ((name, ft), v) in fields.iter().zip(values.iter()) {
                let Some(f) = m.fields().find(|f| f.name().eq_ignore_ascii_case(name)) else {
                    continue;
                };
                if let Some(v) =
                    field_to_proto(v, &f, ft).map_err(|e| e.in_column(&format!(".{name}")))?
                {
                    out.set_field(&f, v);
                }
            }
            Proto::Message(out)
        }
        _ => return Err(mismatch()),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::format::cols;

    fn raw(text: &str) -> RawSchema {
        RawSchema {
            schema_type: SchemaType::Protobuf,
            text: text.to_string(),
        }
    }

    fn columns() -> Vec<(String, DataType)> {
        cols(&[
            ("B", DataType::Boolean),
            ("I", DataType::Int),
            ("L", DataType::BigInt),
            ("D", DataType::Double),
            ("S", DataType::String),
            ("BY", DataType::Bytes),
            ("TS", DataType::Timestamp),
            ("A", DataType::Array(Box::new(DataType::String))),
            (
                "M",
                DataType::Map(Box::new(DataType::String), Box::new(DataType::BigInt)),
            ),
            (
                "ST",
                DataType::Struct(vec![
                    ("CITY".into(), DataType::String),
                    ("AT".into(), DataType::Timestamp),
                ]),
            ),
        ])
    }

    #[test]
    fn the_schema_rill_writes_reads_back_as_the_same_columns() {
        let text = schema_of(&columns()).unwrap();
        assert!(text.starts_with("syntax = \"proto3\";"), "{text}");
        assert!(text.contains("message ConnectDefault1 {"), "{text}");
        assert_eq!(columns_of(&raw(&text)).unwrap(), columns());
    }

    #[test]
    fn values_round_trip_through_the_wire_format() {
        let columns = columns();
        let messages = compile(&raw(&schema_of(&columns).unwrap())).unwrap();
        let plan = plan(messages[0].clone(), &columns);
        let mut encoder = ProtobufEncoder {
            header: [0, 0, 0, 0, 7, 0],
            plan,
            columns: columns.clone(),
        };
        let values = vec![
            Value::Boolean(true),
            Value::Int(-7),
            Value::BigInt(1 << 40),
            Value::Double(2.5),
            Value::str("héllo"),
            Value::Bytes(vec![0, 255].into()),
            Value::Timestamp(1_700_000_000_123),
            Value::Array(Arc::new(vec![Value::str("x"), Value::str("y")])),
            Value::Map(Arc::new(vec![
                (Value::str("a"), Value::BigInt(1)),
                (Value::str("b"), Value::BigInt(2)),
            ])),
            Value::Struct(Arc::new(vec![Value::str("Oslo"), Value::Null])),
        ];
        let mut bytes = Vec::new();
        encoder.encode(&values, &mut bytes).unwrap();
        let (id, indexes, body) = header(&bytes).unwrap();
        assert_eq!((id, indexes), (7, vec![0]));
        let plan = super::plan(messages[0].clone(), &columns);
        let message = DynamicMessage::decode(plan.message.clone(), body).unwrap();
        let decoded: Vec<Value> = columns
            .iter()
            .zip(&plan.fields)
            .map(|((_, t), f)| read_field(&message, f.as_ref().unwrap(), t).unwrap())
            .collect();
        assert_eq!(decoded, values);
    }

    #[test]
    fn absent_scalars_read_as_defaults_and_absent_messages_as_null() {
        let columns = cols(&[
            ("N", DataType::Int),
            ("S", DataType::String),
            ("TS", DataType::Timestamp),
        ]);
        let messages = compile(&raw(&schema_of(&columns).unwrap())).unwrap();
        let plan = plan(messages[0].clone(), &columns);
        let message = DynamicMessage::new(plan.message.clone());
        let decoded: Vec<Value> = columns
            .iter()
            .zip(&plan.fields)
            .map(|((_, t), f)| read_field(&message, f.as_ref().unwrap(), t).unwrap())
            .collect();
        assert_eq!(decoded, vec![Value::Int(0), Value::str(""), Value::Null]);
    }

    #[test]
    fn other_tools_schemas_infer_columns() {
        let schema = raw(r#"
            syntax = "proto3";
            package shop;
            import "google/protobuf/wrappers.proto";
            enum Color { RED = 0; BLUE = 1; }
            message Order {
              string id = 1;
              uint32 qty = 2;
              Color color = 3;
              google.protobuf.Int32Value maybe = 4;
              message Line { string sku = 1; }
              repeated Line lines = 5;
              optional int64 note = 6;
            }
        "#);
        assert_eq!(
            columns_of(&schema).unwrap(),
            cols(&[
                ("ID", DataType::String),
                ("QTY", DataType::BigInt),
                ("COLOR", DataType::String),
                ("MAYBE", DataType::Int),
                (
                    "LINES",
                    DataType::Array(Box::new(DataType::Struct(vec![(
                        "SKU".into(),
                        DataType::String
                    )])))
                ),
                ("NOTE", DataType::BigInt),
            ])
        );
    }

    #[test]
    fn message_indexes_follow_confluents_encoding() {
        // [0] is the single byte 0; [1, 0] is count 2 (zig-zag 4), 1 (2), 0.
        let (_, i, rest) = header(&[0, 0, 0, 0, 1, 0, 0xAA]).unwrap();
        assert_eq!((i, rest), (vec![0], &[0xAA][..]));
        let (_, i, _) = header(&[0, 0, 0, 0, 1, 4, 2, 0]).unwrap();
        assert_eq!(i, vec![1, 0]);
        assert!(header(&[1, 0, 0, 0, 1, 0]).is_err());
        assert!(header(&[0, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn types_protobuf_cannot_hold_are_refused() {
        let err = schema_of(&cols(&[(
            "P",
            DataType::Decimal {
                precision: 4,
                scale: 2,
            },
        )]))
        .unwrap_err();
        assert_eq!(err.sqlstate(), "0A000");
        let nested = DataType::Array(Box::new(DataType::Array(Box::new(DataType::Int))));
        assert!(schema_of(&cols(&[("A", nested)])).is_err());
    }
}
