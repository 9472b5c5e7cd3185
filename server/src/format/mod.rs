//! Record formats: the bytes of one side of a topic record (its key or its
//! value) <-> the values of that side's columns.
//!
//! A stream's KEY columns travel in the record key and the others in the
//! value, each side in its own format (`KEY_FORMAT`, `VALUE_FORMAT`). A
//! [`Decoder`] or [`Encoder`] is prepared once per source or sink from the
//! side's columns and then runs once per record, so everything that depends
//! only on the schema (name lookups, pre-escaped JSON field names, per-column
//! parsers) is built in `try_new`. The formats read and write what ksqlDB
//! does, so topics written by ksqlDB, Kafka Connect or a console producer
//! read correctly.
//!
//! This module never touches a transport (embedded log, Kafka), never
//! panics or allocates per record beyond the decoded values themselves, and
//! never drops a bad record silently: it returns an error naming the column
//! and the input, and the caller counts and logs it.

use std::fmt;
use std::sync::Arc;

use rill_sql::{DataType, Value};

pub mod avro;
mod delimited;
mod json;
mod kafka;
pub mod protobuf;
pub mod registry;
mod scalar;

pub use registry::SchemaRegistry;

/// A serialization format, as named by `KEY_FORMAT`, `VALUE_FORMAT` or
/// `FORMAT` in a `WITH` clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FormatKind {
    /// A JSON object per record, or a bare JSON value for a single unwrapped
    /// column.
    Json,
    /// One line of separated fields, CSV quoting.
    Delimited,
    /// A single primitive as Kafka's own serializers write it.
    Kafka,
    /// No data: the side has no columns (a key-less stream).
    None,
    /// Avro in the schema registry's wire format.
    Avro,
    /// Protobuf in the schema registry's wire format.
    Protobuf,
}

impl FormatKind {
    /// The format named `name`, case-insensitively.
    pub fn parse(name: &str) -> Result<FormatKind, FormatError> {
        let name = name.trim();
        Ok(match name.to_ascii_uppercase().as_str() {
            "JSON" => FormatKind::Json,
            "DELIMITED" => FormatKind::Delimited,
            "KAFKA" => FormatKind::Kafka,
            "NONE" => FormatKind::None,
            "AVRO" => FormatKind::Avro,
            "PROTOBUF" => FormatKind::Protobuf,
            "PROTOBUF_NOSR" | "JSON_SR" => {
                return Err(FormatError::NotSupportedYet {
                    name: name.to_ascii_uppercase(),
                })
            }
            _ => {
                return Err(FormatError::UnknownFormat {
                    name: name.to_owned(),
                })
            }
        })
    }

    /// The name as written in SQL.
    pub fn name(self) -> &'static str {
        match self {
            FormatKind::Json => "JSON",
            FormatKind::Delimited => "DELIMITED",
            FormatKind::Kafka => "KAFKA",
            FormatKind::None => "NONE",
            FormatKind::Avro => "AVRO",
            FormatKind::Protobuf => "PROTOBUF",
        }
    }

    /// Whether the format keeps its schemas in a schema registry.
    pub fn uses_registry(self) -> bool {
        match self {
            FormatKind::Avro | FormatKind::Protobuf => true,
            FormatKind::Json | FormatKind::Delimited | FormatKind::Kafka | FormatKind::None => {
                false
            }
        }
    }
}

impl fmt::Display for FormatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Format settings from the `WITH` clause, and the schema registry.
#[derive(Clone)]
pub struct FormatOptions {
    /// The DELIMITED field separator (`VALUE_DELIMITER`); a single ASCII
    /// character other than `"`, CR and LF. Default `,`.
    pub delimiter: u8,
    /// `WRAP_SINGLE_VALUE`: whether a side with exactly one column is a JSON
    /// object holding it (`{"X": 1}`) or the bare value (`1`). Only JSON
    /// looks at it, and only for a single column. Default true, as ksqlDB
    /// does for values; keys are never wrapped, see [`FormatOptions::for_key`].
    pub wrap_single_value: bool,
    /// The registry AVRO reads writer schemas from (`--schema-registry`).
    pub registry: Option<Arc<SchemaRegistry>>,
    /// The registered schema AVRO writes with (`KEY_SCHEMA_ID`,
    /// `VALUE_SCHEMA_ID`).
    pub schema_id: Option<u32>,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            delimiter: b',',
            wrap_single_value: true,
            registry: None,
            schema_id: None,
        }
    }
}

impl FormatOptions {
    /// The options of a record key: like ksqlDB, a single key column is
    /// never wrapped (`"u1"`, `42`), several key columns make an object.
    pub fn for_key() -> Self {
        FormatOptions {
            wrap_single_value: false,
            ..FormatOptions::default()
        }
    }

    /// Parses a `VALUE_DELIMITER`: one character, or `SPACE` or `TAB` (the
    /// names ksqlDB takes for those two).
    pub fn parse_delimiter(text: &str) -> Result<u8, FormatError> {
        let delimiter = if text.eq_ignore_ascii_case("SPACE") {
            b' '
        } else if text.eq_ignore_ascii_case("TAB") {
            b'\t'
        } else {
            match text.as_bytes() {
                [b] => *b,
                _ => {
                    return Err(FormatError::InvalidDelimiter {
                        value: text.to_owned(),
                    })
                }
            }
        };
        check_delimiter(delimiter)?;
        Ok(delimiter)
    }
}

fn check_delimiter(d: u8) -> Result<(), FormatError> {
    if !d.is_ascii() || matches!(d, b'"' | b'\r' | b'\n') {
        return Err(FormatError::InvalidDelimiter {
            value: char::from(d).escape_default().to_string(),
        });
    }
    Ok(())
}

/// Why a format could not be set up, or a record not decoded or encoded.
///
/// Column paths in messages name nested parts as SQL does: `ADDRESS.CITY`,
/// `TAGS[1]` (1-based), `ATTRS[key]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The format name is not one rill knows.
    #[error(
        "unknown format \"{name}\"; choose one of JSON, DELIMITED, KAFKA, AVRO, PROTOBUF or NONE"
    )]
    UnknownFormat { name: String },
    /// A ksqlDB format that rill does not implement yet.
    #[error(
        "format {name} is not supported yet; use JSON, DELIMITED, KAFKA, AVRO, PROTOBUF or NONE"
    )]
    NotSupportedYet { name: String },
    /// AVRO without `--schema-registry`.
    #[error("the {format} format needs a schema registry: start rill with --schema-registry URL")]
    NoRegistry { format: FormatKind },
    /// The registry could not be reached.
    #[error("schema registry {url} is unavailable: {reason}")]
    RegistryUnavailable { url: String, reason: String },
    /// The registry has no such subject, version or id.
    #[error("{what} was not found in the schema registry")]
    NoSchema { what: String },
    /// The registry refused a request or answered nonsense.
    #[error("schema registry: {reason}")]
    Registry { reason: String },
    /// A registered schema with a field SQL cannot type.
    #[error("field \"{field}\" of the schema cannot be a column: {reason}")]
    UnsupportedSchema { field: String, reason: String },
    /// The format cannot hold a column of this type.
    #[error("the {format} format does not support {data_type} (column \"{column}\"): {reason}")]
    UnsupportedType {
        format: FormatKind,
        column: String,
        data_type: DataType,
        reason: &'static str,
    },
    /// The format cannot hold this set of columns (e.g. KAFKA with two).
    #[error("the {format} format {reason}")]
    UnsupportedColumns { format: FormatKind, reason: String },
    /// A `VALUE_DELIMITER` that is not a single usable character.
    #[error("invalid VALUE_DELIMITER \"{value}\": use a single character other than '\"', or SPACE or TAB")]
    InvalidDelimiter { value: String },
    /// The bytes are not a record of the format at all (bad JSON syntax,
    /// an unterminated quote, invalid UTF-8).
    #[error("malformed {format} record: {reason}")]
    Malformed { format: FormatKind, reason: String },
    /// A DELIMITED record with the wrong number of fields.
    #[error("malformed DELIMITED record: expected {expected} columns, found {found}")]
    FieldCount { expected: usize, found: usize },
    /// A KAFKA record whose length does not fit its fixed-width type.
    #[error("malformed KAFKA record: expected {expected} bytes for {data_type}, found {found}")]
    WrongLength {
        data_type: DataType,
        expected: usize,
        found: usize,
    },
    /// A field that cannot be read as its column's type.
    #[error("column \"{column}\" expects {expected}, found {found}")]
    InvalidValue {
        column: String,
        expected: DataType,
        found: String,
    },
    /// A field of the right kind that does not fit its column's type.
    #[error("value {found} is out of range for column \"{column}\" of type {expected}")]
    OutOfRange {
        column: String,
        expected: DataType,
        found: String,
    },
    /// A value handed to an encoder that does not match its column.
    #[error("cannot encode {found} into column \"{column}\" of type {expected}")]
    EncodeType {
        column: String,
        expected: DataType,
        found: &'static str,
    },
    /// An encoder was handed a row of the wrong width (a planner bug).
    #[error("internal error: expected {expected} values to encode, got {found}")]
    ValueCount { expected: usize, found: usize },
}

impl FormatError {
    /// The Postgres SQLSTATE for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            FormatError::UnknownFormat { .. } => "22023",
            FormatError::NotSupportedYet { .. } => "0A000",
            FormatError::NoRegistry { .. } => "0A000",
            FormatError::RegistryUnavailable { .. } => "58000",
            FormatError::NoSchema { .. } => "42704",
            FormatError::Registry { .. } => "58000",
            FormatError::UnsupportedSchema { .. } => "0A000",
            FormatError::UnsupportedType { .. } => "0A000",
            FormatError::UnsupportedColumns { .. } => "0A000",
            FormatError::InvalidDelimiter { .. } => "22023",
            FormatError::Malformed { .. } => "22P02",
            FormatError::FieldCount { .. } => "22P02",
            FormatError::WrongLength { .. } => "22P02",
            FormatError::InvalidValue { .. } => "22P02",
            FormatError::OutOfRange { .. } => "22003",
            FormatError::EncodeType { .. } => "42804",
            FormatError::ValueCount { .. } => "XX000",
        }
    }

    /// Puts `segment` in front of the column path of a value error, as the
    /// error travels out of nested values (`[2]`, then `.TAGS`, then `X`).
    fn prefix_column(&mut self, segment: &str) {
        match self {
            FormatError::InvalidValue { column, .. }
            | FormatError::OutOfRange { column, .. }
            | FormatError::EncodeType { column, .. } => column.insert_str(0, segment),
            FormatError::UnknownFormat { .. }
            | FormatError::NotSupportedYet { .. }
            | FormatError::NoRegistry { .. }
            | FormatError::RegistryUnavailable { .. }
            | FormatError::NoSchema { .. }
            | FormatError::Registry { .. }
            | FormatError::UnsupportedSchema { .. }
            | FormatError::UnsupportedType { .. }
            | FormatError::UnsupportedColumns { .. }
            | FormatError::InvalidDelimiter { .. }
            | FormatError::Malformed { .. }
            | FormatError::FieldCount { .. }
            | FormatError::WrongLength { .. }
            | FormatError::ValueCount { .. } => {}
        }
    }

    fn in_column(mut self, segment: &str) -> FormatError {
        self.prefix_column(segment);
        self
    }
}

/// Decodes one side (key or value) of a record into the values of its
/// columns. Prepared once per source; reused for every record.
///
/// # Invariants
/// A successful decode appends exactly one value per column, in column
/// order, each NULL or fitting its column's type. A failed decode leaves
/// `out` as it was.
pub struct Decoder {
    kind: FormatKind,
    columns: usize,
    inner: DecoderImpl,
}

enum DecoderImpl {
    Json(json::JsonDecoder),
    Delimited(delimited::DelimitedDecoder),
    Kafka(kafka::KafkaDecoder),
    Avro(avro::AvroDecoder),
    Protobuf(protobuf::ProtobufDecoder),
    Nothing,
}

impl Decoder {
    /// Prepares a decoder for `columns` (name and type, in column order)
    /// in format `kind`. Fails if the format cannot hold these columns:
    /// nested types in DELIMITED, anything but one INT, BIGINT, DOUBLE,
    /// STRING or BYTES column in KAFKA, any column in NONE.
    pub fn try_new(
        kind: FormatKind,
        columns: &[(String, DataType)],
        options: &FormatOptions,
    ) -> Result<Decoder, FormatError> {
        Decoder::try_new_reading(kind, columns, None, options)
    }

    /// Like [`Decoder::try_new`], but decoding only the columns marked in
    /// `read` where the format can skip fields (JSON objects): the others
    /// decode as NULL, and are not checked.
    pub fn try_new_reading(
        kind: FormatKind,
        columns: &[(String, DataType)],
        read: Option<&[bool]>,
        options: &FormatOptions,
    ) -> Result<Decoder, FormatError> {
        let inner = match kind {
            FormatKind::Json => {
                DecoderImpl::Json(json::JsonDecoder::try_new(columns, read, options)?)
            }
            FormatKind::Delimited => {
                DecoderImpl::Delimited(delimited::DelimitedDecoder::try_new(columns, options)?)
            }
            FormatKind::Kafka => match kafka::KafkaDecoder::try_new(columns)? {
                Some(d) => DecoderImpl::Kafka(d),
                None => DecoderImpl::Nothing,
            },
            FormatKind::Avro => DecoderImpl::Avro(avro::AvroDecoder::try_new(
                columns,
                registry(kind, options)?.clone(),
            )?),
            FormatKind::Protobuf => DecoderImpl::Protobuf(protobuf::ProtobufDecoder::try_new(
                columns,
                registry(kind, options)?.clone(),
            )?),
            FormatKind::None => {
                check_none(columns)?;
                DecoderImpl::Nothing
            }
        };
        Ok(Decoder {
            kind,
            columns: columns.len(),
            inner,
        })
    }

    /// The format this decoder reads.
    pub fn kind(&self) -> FormatKind {
        self.kind
    }

    /// Appends one value per column, decoded from `bytes`, to `out`.
    ///
    /// A record with no bytes at all (a tombstone, or a record without a
    /// key) is the caller's to handle, or [`Decoder::decode_opt`]'s.
    pub fn decode(&mut self, bytes: &[u8], out: &mut Vec<Value>) -> Result<(), FormatError> {
        let base = out.len();
        let result = match &mut self.inner {
            DecoderImpl::Json(d) => d.decode(bytes, out),
            DecoderImpl::Delimited(d) => d.decode(bytes, out),
            DecoderImpl::Kafka(d) => d.decode(bytes, out),
            DecoderImpl::Avro(d) => d.decode(bytes, out),
            DecoderImpl::Protobuf(d) => d.decode(bytes, out),
            DecoderImpl::Nothing => Ok(()),
        };
        if result.is_err() {
            out.truncate(base);
        }
        result
    }

    /// From now on, tell whether each record decoded is exactly what the
    /// encoder of the same format and columns writes for its values, so it
    /// can be written on as it was read. Only JSON tells; returns whether
    /// this decoder does.
    pub fn check_canonical(&mut self) -> bool {
        match &mut self.inner {
            DecoderImpl::Json(d) => {
                d.check_canonical();
                true
            }
            _ => false,
        }
    }

    /// Whether the last record decoded was canonical (see
    /// [`Decoder::check_canonical`]).
    pub fn canonical(&self) -> bool {
        match &self.inner {
            DecoderImpl::Json(d) => d.canonical(),
            _ => false,
        }
    }

    /// Like [`Decoder::decode`], but also takes a missing side (`None`):
    /// as Kafka's deserializers and ksqlDB read it, every column is then
    /// NULL (a stream record without a key has NULL key columns). The
    /// caller handles value tombstones before this.
    pub fn decode_opt(
        &mut self,
        bytes: Option<&[u8]>,
        out: &mut Vec<Value>,
    ) -> Result<(), FormatError> {
        match bytes {
            Some(bytes) => self.decode(bytes, out),
            None => {
                out.resize(out.len() + self.columns, Value::Null);
                Ok(())
            }
        }
    }
}

/// Encodes the values of one side's columns into record bytes. Prepared
/// once per sink; reused for every record.
pub struct Encoder {
    kind: FormatKind,
    columns: usize,
    inner: EncoderImpl,
}

enum EncoderImpl {
    Json(json::JsonEncoder),
    Delimited(delimited::DelimitedEncoder),
    Kafka(kafka::KafkaEncoder),
    Avro(avro::AvroEncoder),
    Protobuf(protobuf::ProtobufEncoder),
    Nothing,
}

impl Encoder {
    /// Prepares an encoder; refuses the same schemas as [`Decoder::try_new`].
    pub fn try_new(
        kind: FormatKind,
        columns: &[(String, DataType)],
        options: &FormatOptions,
    ) -> Result<Encoder, FormatError> {
        let inner = match kind {
            FormatKind::Json => EncoderImpl::Json(json::JsonEncoder::try_new(columns, options)?),
            FormatKind::Delimited => {
                EncoderImpl::Delimited(delimited::DelimitedEncoder::try_new(columns, options)?)
            }
            FormatKind::Kafka => match kafka::KafkaEncoder::try_new(columns)? {
                Some(e) => EncoderImpl::Kafka(e),
                None => EncoderImpl::Nothing,
            },
            FormatKind::Avro => EncoderImpl::Avro(avro::AvroEncoder::try_new(
                columns,
                registry(kind, options)?,
                schema_id(options)?,
            )?),
            FormatKind::Protobuf => EncoderImpl::Protobuf(protobuf::ProtobufEncoder::try_new(
                columns,
                registry(kind, options)?,
                schema_id(options)?,
            )?),
            FormatKind::None => {
                check_none(columns)?;
                EncoderImpl::Nothing
            }
        };
        Ok(Encoder {
            kind,
            columns: columns.len(),
            inner,
        })
    }

    /// The format this encoder writes.
    pub fn kind(&self) -> FormatKind {
        self.kind
    }

    /// Appends the encoding of `values` (one per column, in column order)
    /// to `out`. On error `out` is left as it was.
    ///
    /// A NULL in a single KAFKA column appends nothing; use
    /// [`Encoder::encode_opt`] to write it as a null key or value.
    pub fn encode(&mut self, values: &[Value], out: &mut Vec<u8>) -> Result<(), FormatError> {
        if values.len() != self.columns {
            return Err(FormatError::ValueCount {
                expected: self.columns,
                found: values.len(),
            });
        }
        let base = out.len();
        let result = match &mut self.inner {
            EncoderImpl::Json(e) => e.encode(values, out),
            EncoderImpl::Delimited(e) => e.encode(values, out),
            EncoderImpl::Kafka(e) => e.encode(values, out),
            EncoderImpl::Avro(e) => e.encode(values, out),
            EncoderImpl::Protobuf(e) => e.encode(values, out),
            EncoderImpl::Nothing => Ok(()),
        };
        if result.is_err() {
            out.truncate(base);
        }
        result
    }

    /// Like [`Encoder::encode`], but returns `Ok(false)` and appends
    /// nothing when the side is to be written as null rather than as bytes,
    /// as ksqlDB writes it: the NONE format, and a NULL single KAFKA or
    /// unwrapped JSON column.
    pub fn encode_opt(&mut self, values: &[Value], out: &mut Vec<u8>) -> Result<bool, FormatError> {
        let null = match &self.inner {
            EncoderImpl::Json(e) => e.is_unwrapped() && values.first().is_some_and(Value::is_null),
            EncoderImpl::Kafka(_) => values.first().is_some_and(Value::is_null),
            EncoderImpl::Avro(e) => e.is_unwrapped() && values.first().is_some_and(Value::is_null),
            EncoderImpl::Delimited(_) | EncoderImpl::Protobuf(_) => false,
            EncoderImpl::Nothing => self.kind == FormatKind::None || self.columns == 0,
        };
        if null && values.len() == self.columns {
            return Ok(false);
        }
        self.encode(values, out)?;
        Ok(true)
    }
}

fn registry(
    kind: FormatKind,
    options: &FormatOptions,
) -> Result<&Arc<SchemaRegistry>, FormatError> {
    options
        .registry
        .as_ref()
        .ok_or(FormatError::NoRegistry { format: kind })
}

fn schema_id(options: &FormatOptions) -> Result<u32, FormatError> {
    options.schema_id.ok_or_else(|| FormatError::Registry {
        reason: "no schema is registered for this side of the topic".into(),
    })
}

/// The columns a registered schema describes, for CREATE without columns.
pub fn registry_columns(
    kind: FormatKind,
    schema: &registry::RawSchema,
    key: bool,
) -> Result<Vec<(String, DataType)>, FormatError> {
    match kind {
        FormatKind::Avro => avro::columns_of(&avro::parse(schema)?, key),
        FormatKind::Protobuf => protobuf::columns_of(schema),
        FormatKind::Json | FormatKind::Delimited | FormatKind::Kafka | FormatKind::None => {
            Err(FormatError::UnsupportedColumns {
                format: kind,
                reason: "keeps no schemas in a registry: declare the columns".into(),
            })
        }
    }
}

/// The schema rill registers for one side's `columns` in format `kind`;
/// `wrap` false writes a single column bare where the format can.
pub fn registry_schema(
    kind: FormatKind,
    columns: &[(String, DataType)],
    wrap: bool,
) -> Result<registry::RawSchema, FormatError> {
    let (schema_type, text) = match kind {
        FormatKind::Avro => (registry::SchemaType::Avro, avro::schema_of(columns, wrap)?),
        FormatKind::Protobuf => (
            registry::SchemaType::Protobuf,
            protobuf::schema_of(columns)?,
        ),
        FormatKind::Json | FormatKind::Delimited | FormatKind::Kafka | FormatKind::None => {
            return Err(FormatError::UnsupportedColumns {
                format: kind,
                reason: "keeps no schemas in a registry".into(),
            })
        }
    };
    Ok(registry::RawSchema { schema_type, text })
}

/// `(name, type)` columns from literals, for the format tests.
#[cfg(test)]
pub(crate) fn cols(c: &[(&str, DataType)]) -> Vec<(String, DataType)> {
    c.iter()
        .map(|(n, t)| ((*n).to_owned(), t.clone()))
        .collect()
}

fn check_none(columns: &[(String, DataType)]) -> Result<(), FormatError> {
    if columns.is_empty() {
        Ok(())
    } else {
        Err(FormatError::UnsupportedColumns {
            format: FormatKind::None,
            reason: format!(
                "holds no columns, found {}; choose a format such as KAFKA or JSON",
                columns.len()
            ),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn format_names_parse_case_insensitively() {
        assert_eq!(FormatKind::parse("json"), Ok(FormatKind::Json));
        assert_eq!(FormatKind::parse("Delimited"), Ok(FormatKind::Delimited));
        assert_eq!(FormatKind::parse("KAFKA"), Ok(FormatKind::Kafka));
        assert_eq!(FormatKind::parse("none"), Ok(FormatKind::None));
        let err = FormatKind::parse("xml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown format \"xml\"; choose one of JSON, DELIMITED, KAFKA, AVRO, PROTOBUF or NONE"
        );
        assert_eq!(err.sqlstate(), "22023");
        let err = FormatKind::parse("json_sr").unwrap_err();
        assert_eq!(
            err.to_string(),
            "format JSON_SR is not supported yet; use JSON, DELIMITED, KAFKA, AVRO, PROTOBUF or NONE"
        );
        assert_eq!(err.sqlstate(), "0A000");
    }

    #[test]
    fn delimiters_parse_like_ksqldb() {
        assert_eq!(FormatOptions::parse_delimiter("|"), Ok(b'|'));
        assert_eq!(FormatOptions::parse_delimiter("TAB"), Ok(b'\t'));
        assert_eq!(FormatOptions::parse_delimiter("space"), Ok(b' '));
        assert!(FormatOptions::parse_delimiter("||").is_err());
        assert!(FormatOptions::parse_delimiter("\"").is_err());
        assert!(FormatOptions::parse_delimiter("é").is_err());
    }

    #[test]
    fn none_holds_no_columns_and_no_bytes() {
        let mut d = Decoder::try_new(FormatKind::None, &[], &FormatOptions::for_key()).unwrap();
        let mut out = Vec::new();
        d.decode(b"whatever", &mut out).unwrap();
        d.decode_opt(None, &mut out).unwrap();
        assert!(out.is_empty());
        let mut e = Encoder::try_new(FormatKind::None, &[], &FormatOptions::for_key()).unwrap();
        let mut bytes = Vec::new();
        e.encode(&[], &mut bytes).unwrap();
        assert!(bytes.is_empty());
        assert_eq!(e.encode_opt(&[], &mut bytes), Ok(false));

        let err = Decoder::try_new(
            FormatKind::None,
            &cols(&[("K", DataType::Int)]),
            &FormatOptions::for_key(),
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            "the NONE format holds no columns, found 1; choose a format such as KAFKA or JSON"
        );
        assert_eq!(err.sqlstate(), "0A000");
    }

    #[test]
    fn a_missing_side_decodes_as_nulls() {
        let columns = cols(&[("A", DataType::Int), ("B", DataType::String)]);
        for kind in [FormatKind::Json, FormatKind::Delimited] {
            let mut d = Decoder::try_new(kind, &columns, &FormatOptions::default()).unwrap();
            let mut out = vec![Value::Int(9)];
            d.decode_opt(None, &mut out).unwrap();
            assert_eq!(out, vec![Value::Int(9), Value::Null, Value::Null]);
        }
    }

    #[test]
    fn failed_decodes_leave_the_output_untouched() {
        let columns = cols(&[("A", DataType::Int), ("B", DataType::String)]);
        for (kind, bad) in [
            (FormatKind::Json, &b"{\"a\": 1, \"b\": [}"[..]),
            (FormatKind::Delimited, &b"1,x,3"[..]),
        ] {
            let mut d = Decoder::try_new(kind, &columns, &FormatOptions::default()).unwrap();
            let mut out = vec![Value::Int(9)];
            assert!(d.decode(bad, &mut out).is_err());
            assert_eq!(out, vec![Value::Int(9)]);
        }
    }

    #[test]
    fn encoders_check_the_row_width_and_restore_the_output() {
        let columns = cols(&[("A", DataType::Int), ("B", DataType::String)]);
        let mut e =
            Encoder::try_new(FormatKind::Json, &columns, &FormatOptions::default()).unwrap();
        let mut out = b"keep".to_vec();
        let err = e.encode(&[Value::Int(1)], &mut out).unwrap_err();
        assert_eq!(err.sqlstate(), "XX000");
        let err = e
            .encode(&[Value::Int(1), Value::Int(2)], &mut out)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot encode an INTEGER value into column \"B\" of type STRING"
        );
        assert_eq!(err.sqlstate(), "42804");
        assert_eq!(out, b"keep");
    }

    #[test]
    fn null_single_columns_encode_as_null_records() {
        let key = cols(&[("K", DataType::String)]);
        for kind in [FormatKind::Json, FormatKind::Kafka] {
            let mut e = Encoder::try_new(kind, &key, &FormatOptions::for_key()).unwrap();
            let mut out = Vec::new();
            assert_eq!(e.encode_opt(&[Value::Null], &mut out), Ok(false));
            assert!(out.is_empty());
            assert_eq!(e.encode_opt(&[Value::str("u1")], &mut out), Ok(true));
            assert!(!out.is_empty());
        }
        let mut e = Encoder::try_new(FormatKind::Json, &key, &FormatOptions::default()).unwrap();
        let mut out = Vec::new();
        assert_eq!(e.encode_opt(&[Value::Null], &mut out), Ok(true));
        assert_eq!(out, b"{\"K\":null}");
    }
}
