//! JSON: a record is an object whose fields are the columns, or, for a
//! single unwrapped column (every single-column key, and a value with
//! `WRAP_SINGLE_VALUE=false`), the bare value.
//!
//! Decoding streams through the document: an object of scalar fields by
//! hand (`flat`), anything else with serde_json. No JSON tree is built,
//! fields that are not columns are skipped without being converted, and
//! field names are matched to columns through a lookup built once.
//! Values are coerced as ksqlDB coerces them (numeric strings for numbers,
//! numbers and booleans as text for STRING, epoch numbers or ISO-8601 text
//! for temporal types, base64 for BYTES). DOUBLE and DECIMAL are parsed
//! from the number's own digits, so they are exact.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rill_sql::{DataType, Value};
use rust_decimal::Decimal;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer as _};
use serde_json::value::RawValue;

use super::scalar::{
    arc_str, check_time, encode_mismatch, fit_decimal, parse_decimal, parse_text, prim, quoted,
    write_base64, write_double, write_text, Prim, Reject, Scalar,
};
use super::{FormatError, FormatKind, FormatOptions};

mod flat;

/// A column's type, prepared for decoding and encoding.
enum Node {
    Scalar(Scalar),
    Array(Box<Node>),
    /// JSON object keys are strings; they are parsed as the key type.
    Map(Scalar, Box<Node>),
    Struct(StructNode),
}

struct StructNode {
    names: Vec<String>,
    fields: Vec<Node>,
    lookup: NameLookup,
    /// `"NAME":`, JSON-escaped, with a leading comma for all but the first.
    prefixes: Vec<Vec<u8>>,
}

impl Node {
    fn try_new(t: &DataType, column: &str) -> Result<Node, FormatError> {
        if let Some(s) = Scalar::of(t) {
            return Ok(Node::Scalar(s));
        }
        Ok(match t {
            DataType::Array(elem) => Node::Array(Box::new(Node::try_new(elem, column)?)),
            DataType::Map(key, value) => {
                let key = Scalar::of(key).ok_or_else(|| FormatError::UnsupportedType {
                    format: FormatKind::Json,
                    column: column.to_owned(),
                    data_type: t.clone(),
                    reason: "map keys must be of a primitive type",
                })?;
                Node::Map(key, Box::new(Node::try_new(value, column)?))
            }
            DataType::Struct(fields) => Node::Struct(StructNode::try_new(fields, column)?),
            _ => {
                return Err(FormatError::UnsupportedType {
                    format: FormatKind::Json,
                    column: column.to_owned(),
                    data_type: t.clone(),
                    reason: "no JSON form is defined for it",
                })
            }
        })
    }

    /// The SQL type, for error messages only.
    fn data_type(&self) -> DataType {
        match self {
            Node::Scalar(s) => s.data_type(),
            Node::Array(elem) => DataType::Array(Box::new(elem.data_type())),
            Node::Map(key, value) => {
                DataType::Map(Box::new(key.data_type()), Box::new(value.data_type()))
            }
            Node::Struct(st) => DataType::Struct(
                st.names
                    .iter()
                    .zip(&st.fields)
                    .map(|(name, field)| (name.clone(), field.data_type()))
                    .collect(),
            ),
        }
    }
}

impl StructNode {
    fn try_new(fields: &[(String, DataType)], column: &str) -> Result<StructNode, FormatError> {
        let names: Vec<String> = fields.iter().map(|(name, _)| name.clone()).collect();
        let nodes = fields
            .iter()
            .map(|(_, t)| Node::try_new(t, column))
            .collect::<Result<_, _>>()?;
        Ok(StructNode {
            lookup: NameLookup::new(&names),
            prefixes: field_prefixes(&names),
            names,
            fields: nodes,
        })
    }
}

/// `"A":`, `,"B":`, ... for an object with these field names.
fn field_prefixes(names: &[String]) -> Vec<Vec<u8>> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut prefix = Vec::with_capacity(name.len() + 4);
            if i > 0 {
                prefix.push(b',');
            }
            write_json_string(name, &mut prefix);
            prefix.push(b':');
            prefix
        })
        .collect()
}

/// Maps JSON field names to column slots the way ksqlDB matches them: a
/// field named exactly like a column wins; otherwise names match
/// case-insensitively (so `pageId` fills the unquoted column `PAGEID`).
///
/// Built once; a lookup allocates nothing. Most fields are settled without
/// hashing: a field whose length and first letter no column name has is
/// skipped at once, and a field that names the same column as the field
/// at the same position of the previous record (producers keep their field
/// order) hits its hint.
struct NameLookup {
    /// Open addressing: 0 is empty, otherwise an index into `entries` + 1.
    table: Vec<u32>,
    entries: Vec<Entry>,
    mask: usize,
    /// `filter[n]` has bit `c & 63` set if a name is `n` bytes long (63: or
    /// more) and starts with the upper-case ASCII byte `c`. Valid only if
    /// every name is ASCII: case folding then keeps lengths.
    filter: Vec<u64>,
    ascii: bool,
}

struct Entry {
    name: Box<str>,
    /// [`fold_hash`] of the name.
    hash: u64,
    slot: usize,
    /// Another name equals this one case-insensitively, so a field that
    /// matches this one without case may still belong to the other.
    twin: bool,
}

/// No hint: the field at this position matched no column last time.
const NO_HINT: u32 = u32::MAX;

/// The slot of a column that is not decoded: no slot is this one.
const NO_SLOT: usize = usize::MAX;

impl NameLookup {
    /// Slot `i` is `names[i]`.
    fn new(names: &[String]) -> NameLookup {
        let slots: Vec<(usize, &str)> = names.iter().map(String::as_str).enumerate().collect();
        NameLookup::of_slots(&slots)
    }

    /// Each name with its slot; [`NO_SLOT`] for a name whose field is
    /// skipped (it still takes the field from a name equal but for case).
    fn of_slots(names: &[(usize, &str)]) -> NameLookup {
        let size = (names.len() * 2).max(4).next_power_of_two();
        let mut lookup = NameLookup {
            table: vec![0; size],
            entries: Vec::with_capacity(names.len()),
            mask: size - 1,
            filter: vec![0; 64],
            ascii: names.iter().all(|(_, name)| name.is_ascii()),
        };
        for (at, &(slot, name)) in names.iter().enumerate() {
            let hash = fold_hash(name);
            let mut i = hash as usize & lookup.mask;
            while lookup.table[i] != 0 {
                i = (i + 1) & lookup.mask;
            }
            lookup.entries.push(Entry {
                name: name.into(),
                hash,
                slot,
                twin: names
                    .iter()
                    .enumerate()
                    .any(|(other, &(_, n))| other != at && eq_fold(n, name)),
            });
            lookup.table[i] = u32::try_from(lookup.entries.len()).unwrap_or(u32::MAX);
            if let Some(bits) = lookup.filter.get_mut(name.len().min(63)) {
                *bits |= filter_bit(name.as_bytes());
            }
        }
        lookup
    }

    /// The slot of the column `key` names, if any.
    fn get(&self, key: &str) -> Option<usize> {
        let entry = self.find(key)?;
        self.entries.get(entry as usize).map(|e| e.slot)
    }

    /// Like [`NameLookup::get`], trying `hint` (the entry this position
    /// named last time) first, and updating it.
    fn get_hinted(&self, key: &str, hint: &mut u32) -> Option<usize> {
        // Equal but for ASCII case implies equal when folded; anything
        // subtler takes the full lookup.
        if let Some(slot) = self.hinted(key.as_bytes(), *hint) {
            return Some(slot);
        }
        let entry = self.find(key);
        *hint = entry.unwrap_or(NO_HINT);
        self.entries.get(entry? as usize).map(|e| e.slot)
    }

    /// The slot of the column `key` names if it is the entry `hint` (see
    /// [`NameLookup::get_hinted`]); `key` need not be UTF-8: only ASCII
    /// matches an ASCII name.
    fn hinted(&self, key: &[u8], hint: u32) -> Option<usize> {
        let e = self.entries.get(hint as usize)?;
        let name = e.name.as_bytes();
        (!e.twin && (name == key || name.eq_ignore_ascii_case(key))).then_some(e.slot)
    }

    /// [`NameLookup::get_hinted`] (or `get` without a hint) for a field
    /// name not yet checked to be UTF-8; `None` if it is not. Most names
    /// are settled before that check: by the hint, or as no column's.
    fn get_bytes(&self, key: &[u8], hint: Option<&mut u32>) -> Option<Option<usize>> {
        if let Some(slot) = hint.as_ref().and_then(|h| self.hinted(key, **h)) {
            return Some(Some(slot));
        }
        if self.ascii && key.is_ascii() && !self.may_name(key) {
            if let Some(h) = hint {
                *h = NO_HINT;
            }
            return Some(None);
        }
        let key = std::str::from_utf8(key).ok()?;
        Some(match hint {
            Some(h) => self.get_hinted(key, h),
            None => self.get(key),
        })
    }

    /// Whether an ASCII `key` passes the length and first-letter filter.
    fn may_name(&self, key: &[u8]) -> bool {
        let bits = self.filter.get(key.len().min(63)).copied().unwrap_or(0);
        bits & filter_bit(key) != 0
    }

    /// The index in `entries` of the column `key` names.
    fn find(&self, key: &str) -> Option<u32> {
        if self.ascii && key.is_ascii() && !self.may_name(key.as_bytes()) {
            return None;
        }
        let hash = fold_hash(key);
        let mut i = hash as usize & self.mask;
        let mut folded = None;
        while let Some(entry) = self.table[i].checked_sub(1) {
            if let Some(e) = self.entries.get(entry as usize) {
                if e.hash == hash && eq_fold(&e.name, key) {
                    if *e.name == *key {
                        return Some(entry);
                    }
                    folded = folded.or(Some(entry));
                }
            }
            i = (i + 1) & self.mask;
        }
        folded
    }
}

/// The bit of `name`'s first byte, upper-cased, in [`NameLookup::filter`].
fn filter_bit(name: &[u8]) -> u64 {
    1 << (name.first().copied().unwrap_or(0).to_ascii_uppercase() & 63)
}

fn mix(h: u64, c: u32) -> u64 {
    (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
}

/// FNV-1a over the upper-cased characters.
fn fold_hash(s: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325;
    if s.is_ascii() {
        for b in s.bytes() {
            h = mix(h, u32::from(b.to_ascii_uppercase()));
        }
    } else {
        for c in s.chars().flat_map(char::to_uppercase) {
            h = mix(h, u32::from(c));
        }
    }
    h
}

fn eq_fold(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars()
            .flat_map(char::to_uppercase)
            .eq(b.chars().flat_map(char::to_uppercase))
    }
}

/// Decodes a JSON side.
///
/// Each column has an output slot and the lookup maps field names to
/// slots; the columns not read map to [`NO_SLOT`], so their fields are
/// skipped like unknown ones (and their slots stay NULL).
pub(crate) struct JsonDecoder {
    names: Vec<String>,
    columns: Vec<Node>,
    lookup: NameLookup,
    /// Per field position of the top-level object: the lookup entry that
    /// position named in the previous record.
    hints: Vec<u32>,
    unwrapped: bool,
    ctx: Ctx,
    /// Whether to tell canonical records (see [`JsonDecoder::canonical`]).
    check_canonical: bool,
    /// The last record decoded was canonical.
    canonical: bool,
}

/// Field positions past this are looked up without hints.
const MAX_HINTS: usize = 64;

impl JsonDecoder {
    /// `read`: the columns to decode, if not all.
    pub(crate) fn try_new(
        columns: &[(String, DataType)],
        read: Option<&[bool]>,
        options: &FormatOptions,
    ) -> Result<Self, FormatError> {
        let names: Vec<String> = columns.iter().map(|(name, _)| name.clone()).collect();
        let nodes = columns
            .iter()
            .map(|(name, t)| Node::try_new(t, name))
            .collect::<Result<_, _>>()?;
        let wanted = |i: usize| read.is_none_or(|r| r.get(i).copied().unwrap_or(true));
        let slots: Vec<(usize, &str)> = names
            .iter()
            .enumerate()
            .map(|(i, name)| (if wanted(i) { i } else { NO_SLOT }, name.as_str()))
            .collect();
        Ok(JsonDecoder {
            lookup: NameLookup::of_slots(&slots),
            hints: vec![NO_HINT; MAX_HINTS],
            names,
            columns: nodes,
            unwrapped: columns.len() == 1 && !options.wrap_single_value,
            ctx: Ctx {
                error: None,
                scratch: Vec::new(),
            },
            check_canonical: false,
            canonical: false,
        })
    }

    /// From now on, tell whether each record decoded is exactly what
    /// [`JsonEncoder`] writes for its values (an object of every column by
    /// its name, in order, without whitespace, each value in the encoder's
    /// form), so that it can be written on as it is.
    pub(crate) fn check_canonical(&mut self) {
        self.check_canonical = true;
    }

    /// Whether the last record decoded was canonical (always false unless
    /// [`JsonDecoder::check_canonical`] was called).
    pub(crate) fn canonical(&self) -> bool {
        self.canonical
    }

    pub(crate) fn decode(&mut self, bytes: &[u8], out: &mut Vec<Value>) -> Result<(), FormatError> {
        if !self.unwrapped {
            let base = out.len();
            out.resize(base + self.columns.len(), Value::Null);
            let slots = &mut out[base..];
            let (lookup, scratch) = (&self.lookup, &mut self.ctx.scratch);
            let names = self.check_canonical.then_some(self.names.as_slice());
            if let Some(canonical) = flat::decode(
                bytes,
                lookup,
                &mut self.hints,
                &self.columns,
                slots,
                scratch,
                names,
            ) {
                self.canonical = canonical;
                return Ok(());
            }
            out.truncate(base);
        }
        self.canonical = false;
        self.decode_serde(bytes, out)
    }

    /// [`JsonDecoder::decode`] without the fast path: every document, and
    /// the errors.
    fn decode_serde(&mut self, bytes: &[u8], out: &mut Vec<Value>) -> Result<(), FormatError> {
        self.ctx.error = None;
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let parsed = match (self.unwrapped, self.columns.first()) {
            (true, Some(node)) => ValueSeed {
                node,
                ctx: &mut self.ctx,
            }
            .deserialize(&mut de)
            .map(|v| out.push(v)),
            _ => {
                let base = out.len();
                out.resize(base + self.columns.len(), Value::Null);
                de.deserialize_any(RowVisitor {
                    names: &self.names,
                    columns: &self.columns,
                    lookup: &self.lookup,
                    hints: &mut self.hints,
                    slots: &mut out[base..],
                    ctx: &mut self.ctx,
                })
            }
        };
        match parsed.and_then(|()| de.end()) {
            Ok(()) => Ok(()),
            Err(e) => Err(match (self.ctx.error.take(), self.unwrapped) {
                (Some(err), true) => err.in_column(self.names.first().map_or("", String::as_str)),
                (Some(err), false) => err,
                (None, _) => FormatError::Malformed {
                    format: FormatKind::Json,
                    reason: e.to_string(),
                },
            }),
        }
    }
}

/// State shared by the visitors of one decode.
struct Ctx {
    /// The error a visitor hit. serde only carries strings, so the visitor
    /// leaves the structured error here and aborts with a stand-in message;
    /// enclosing visitors add their part of the column path on the way out.
    error: Option<FormatError>,
    /// Decoded base64.
    scratch: Vec<u8>,
}

impl Ctx {
    fn fail<E: de::Error>(&mut self, err: FormatError) -> E {
        self.error = Some(err);
        E::custom("invalid value")
    }

    fn reject<E: de::Error>(&mut self, r: Reject, expected: DataType, found: Found<'_>) -> E {
        self.fail(r.into_error("", expected, found.describe()))
    }

    fn prefix(&mut self, segment: fmt::Arguments<'_>) {
        if let Some(err) = &mut self.error {
            err.prefix_column(&segment.to_string());
        }
    }
}

/// The JSON input a column could not take, as shown in the error.
#[derive(Clone, Copy)]
enum Found<'a> {
    Str(&'a str),
    Int(i128),
    Float(f64),
    Bool(bool),
    Raw(&'a str),
    Array,
    Object,
}

impl Found<'_> {
    fn describe(self) -> String {
        match self {
            Found::Str(s) => quoted(s),
            Found::Int(v) => v.to_string(),
            Found::Float(v) => format!("{v:?}"),
            Found::Bool(b) => b.to_string(),
            Found::Raw(s) => s.chars().take(40).collect(),
            Found::Array => "an array".to_owned(),
            Found::Object => "an object".to_owned(),
        }
    }
}

/// The top-level object of a wrapped record: fills `slots`.
struct RowVisitor<'a> {
    names: &'a [String],
    columns: &'a [Node],
    lookup: &'a NameLookup,
    hints: &'a mut [u32],
    slots: &'a mut [Value],
    ctx: &'a mut Ctx,
}

impl RowVisitor<'_> {
    fn not_object<E: de::Error>(self, found: Found<'_>) -> E {
        let hint = if self.columns.len() == 1 {
            "; a single column written as a bare value needs WRAP_SINGLE_VALUE=false"
        } else {
            ""
        };
        self.ctx.fail(FormatError::Malformed {
            format: FormatKind::Json,
            reason: format!("expected a JSON object, found {}{hint}", found.describe()),
        })
    }
}

impl<'de> Visitor<'de> for RowVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        Err(self.not_object(Found::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        Err(self.not_object(Found::Int(i128::from(v))))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        Err(self.not_object(Found::Int(i128::from(v))))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        Err(self.not_object(Found::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        Err(self.not_object(Found::Str(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_object(Found::Array))
    }

    /// A `null` record: every column NULL.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut hints = self.hints.iter_mut();
        while let Some(slot) = map.next_key_seed(KeySeed {
            lookup: self.lookup,
            hint: hints.next(),
        })? {
            let (Some(i), Some(node)) = (slot, slot.and_then(|i| self.columns.get(i))) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            match map.next_value_seed(ValueSeed {
                node,
                ctx: &mut *self.ctx,
            }) {
                Ok(v) => {
                    if let Some(s) = self.slots.get_mut(i) {
                        *s = v;
                    }
                }
                Err(e) => {
                    let name = self.names.get(i).map_or("", String::as_str);
                    self.ctx.prefix(format_args!("{name}"));
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// A field name: the slot of the column it names, if any.
struct KeySeed<'a> {
    lookup: &'a NameLookup,
    hint: Option<&'a mut u32>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(match self.hint {
            Some(hint) => self.lookup.get_hinted(v, hint),
            None => self.lookup.get(v),
        })
    }
}

/// A value of type `node`.
struct ValueSeed<'a> {
    node: &'a Node,
    ctx: &'a mut Ctx,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.node {
            // serde_json would round these through f64 (and not always to
            // the nearest double); take the digits as written instead.
            Node::Scalar(s @ (Scalar::Double | Scalar::Decimal { .. })) => {
                let raw = <&RawValue>::deserialize(d)?;
                number_from_raw(*s, raw.get(), self.ctx)
            }
            _ => d.deserialize_any(ValueVisitor {
                node: self.node,
                ctx: self.ctx,
            }),
        }
    }
}

/// A DOUBLE or DECIMAL from the raw JSON text of its value.
fn number_from_raw<E: de::Error>(s: Scalar, raw: &str, ctx: &mut Ctx) -> Result<Value, E> {
    let raw = raw.trim();
    let found = match raw.as_bytes().first() {
        Some(b'n') => return Ok(Value::Null),
        Some(b'"') => {
            let inner = raw.get(1..raw.len() - 1).unwrap_or_default();
            if !inner.contains('\\') {
                return text_value(s, inner, ctx);
            }
            return match serde_json::from_str::<String>(raw) {
                Ok(text) => text_value(s, &text, ctx),
                Err(e) => Err(E::custom(e)),
            };
        }
        Some(b't') => Found::Bool(true),
        Some(b'f') => Found::Bool(false),
        Some(b'[') => Found::Array,
        Some(b'{') => Found::Object,
        _ => return from_number(s, raw).map_err(|r| ctx.reject(r, s.data_type(), Found::Raw(raw))),
    };
    Err(ctx.reject(Reject::Invalid, s.data_type(), found))
}

/// A DOUBLE or DECIMAL from the digits of a JSON number.
fn from_number(s: Scalar, raw: &str) -> Result<Value, Reject> {
    match s {
        Scalar::Decimal { precision, scale } => parse_decimal(raw)
            .and_then(|d| fit_decimal(d, precision, scale))
            .map(Value::Decimal),
        _ => raw.parse().map(Value::Double).map_err(|_| Reject::Invalid),
    }
}

/// A JSON boolean as a scalar: BOOLEAN, or STRING text.
fn from_bool(s: Scalar, v: bool) -> Result<Value, Reject> {
    match s {
        Scalar::Boolean => Ok(Value::Boolean(v)),
        Scalar::String => Ok(Value::str(if v { "true" } else { "false" })),
        _ => Err(Reject::Invalid),
    }
}

/// A scalar from the text of a JSON string.
fn text_value<E: de::Error>(s: Scalar, text: &str, ctx: &mut Ctx) -> Result<Value, E> {
    parse_text(s, text, &mut ctx.scratch)
        .map_err(|r| ctx.reject(r, s.data_type(), Found::Str(text)))
}

/// A JSON integer as a scalar: ksqlDB reads integers as any numeric or
/// temporal type (epoch milliseconds or days) and as STRING text.
fn from_i64(s: Scalar, v: i64) -> Result<Value, Reject> {
    let small = |v: i64| i32::try_from(v).map_err(|_| Reject::OutOfRange);
    Ok(match s {
        Scalar::Int => Value::Int(small(v)?),
        Scalar::BigInt => Value::BigInt(v),
        Scalar::Double => Value::Double(v as f64),
        Scalar::Decimal { precision, scale } => {
            Value::Decimal(fit_decimal(Decimal::from(v), precision, scale)?)
        }
        Scalar::String => Value::String(arc_str(format_args!("{v}"))),
        Scalar::Timestamp => Value::Timestamp(v),
        Scalar::Date => Value::Date(small(v)?),
        Scalar::Time => Value::Time(check_time(v)?),
        Scalar::Boolean | Scalar::Bytes => return Err(Reject::Invalid),
    })
}

/// A JSON fraction as a scalar. Integer types truncate it toward zero, as
/// ksqlDB (Jackson's `intValue`/`asLong`) does.
fn from_f64(s: Scalar, v: f64) -> Result<Value, Reject> {
    // 2^63: the smallest double above every i64.
    const I64_END: f64 = 9_223_372_036_854_775_808.0;
    let whole = v.trunc();
    let as_i64 = if v.is_finite() && (-I64_END..I64_END).contains(&whole) {
        Ok(whole as i64)
    } else {
        Err(Reject::OutOfRange)
    };
    match s {
        Scalar::Double => Ok(Value::Double(v)),
        Scalar::Decimal { precision, scale } => {
            let d = Decimal::try_from(v).map_err(|_| Reject::OutOfRange)?;
            Ok(Value::Decimal(fit_decimal(d, precision, scale)?))
        }
        Scalar::String => Ok(Value::String(arc_str(format_args!("{v:?}")))),
        Scalar::Int | Scalar::BigInt | Scalar::Timestamp | Scalar::Date | Scalar::Time => {
            from_i64(s, as_i64?)
        }
        Scalar::Boolean | Scalar::Bytes => Err(Reject::Invalid),
    }
}

struct ValueVisitor<'a> {
    node: &'a Node,
    ctx: &'a mut Ctx,
}

impl ValueVisitor<'_> {
    fn mismatch<E: de::Error>(self, found: Found<'_>) -> E {
        self.ctx
            .reject(Reject::Invalid, self.node.data_type(), found)
    }

    fn scalar<E: de::Error>(
        self,
        convert: impl FnOnce(Scalar) -> Result<Value, Reject>,
        found: Found<'_>,
    ) -> Result<Value, E> {
        match self.node {
            Node::Scalar(s) => convert(*s).map_err(|r| self.ctx.reject(r, s.data_type(), found)),
            _ => Err(self.mismatch(found)),
        }
    }
}

impl<'de> Visitor<'de> for ValueVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a value of type {}", self.node.data_type())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.scalar(|s| from_bool(s, v), Found::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.scalar(|s| from_i64(s, v), Found::Int(i128::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        if let Ok(v) = i64::try_from(v) {
            return self.visit_i64(v);
        }
        let convert = |s| match s {
            Scalar::Double => Ok(Value::Double(v as f64)),
            Scalar::Decimal { precision, scale } => Ok(Value::Decimal(fit_decimal(
                Decimal::from(v),
                precision,
                scale,
            )?)),
            Scalar::String => Ok(Value::String(arc_str(format_args!("{v}")))),
            Scalar::Boolean | Scalar::Bytes => Err(Reject::Invalid),
            _ => Err(Reject::OutOfRange),
        };
        self.scalar(convert, Found::Int(i128::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.scalar(|s| from_f64(s, v), Found::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        match self.node {
            Node::Scalar(s) => text_value(*s, v, self.ctx),
            _ => Err(self.mismatch(Found::Str(v))),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        match self.node {
            Node::Array(elem) => {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                loop {
                    let seed = ValueSeed {
                        node: elem,
                        ctx: &mut *self.ctx,
                    };
                    match seq.next_element_seed(seed) {
                        Ok(Some(v)) => items.push(v),
                        Ok(None) => break,
                        Err(e) => {
                            self.ctx.prefix(format_args!("[{}]", items.len() + 1));
                            return Err(e);
                        }
                    }
                }
                Ok(Value::Array(Arc::new(items)))
            }
            // ksqlDB keeps nested JSON in a STRING column as its text.
            Node::Scalar(Scalar::String) => {
                let tree =
                    serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Value::String(Arc::from(tree.to_string())))
            }
            _ => Err(self.mismatch(Found::Array)),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        match self.node {
            Node::Struct(st) => decode_struct(st, map, self.ctx),
            Node::Map(key, value) => decode_map(*key, value, map, self.ctx),
            Node::Scalar(Scalar::String) => {
                let tree =
                    serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Value::String(Arc::from(tree.to_string())))
            }
            _ => Err(self.mismatch(Found::Object)),
        }
    }
}

fn decode_struct<'de, A: MapAccess<'de>>(
    st: &StructNode,
    mut map: A,
    ctx: &mut Ctx,
) -> Result<Value, A::Error> {
    let mut fields = vec![Value::Null; st.fields.len()];
    while let Some(slot) = map.next_key_seed(KeySeed {
        lookup: &st.lookup,
        hint: None,
    })? {
        let (Some(i), Some(node)) = (slot, slot.and_then(|i| st.fields.get(i))) else {
            map.next_value::<IgnoredAny>()?;
            continue;
        };
        match map.next_value_seed(ValueSeed {
            node,
            ctx: &mut *ctx,
        }) {
            Ok(v) => {
                if let Some(f) = fields.get_mut(i) {
                    *f = v;
                }
            }
            Err(e) => {
                let name = st.names.get(i).map_or("", String::as_str);
                ctx.prefix(format_args!(".{name}"));
                return Err(e);
            }
        }
    }
    Ok(Value::Struct(Arc::new(fields)))
}

fn decode_map<'de, A: MapAccess<'de>>(
    key: Scalar,
    value: &Node,
    mut map: A,
    ctx: &mut Ctx,
) -> Result<Value, A::Error> {
    let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
    while let Some(k) = map.next_key_seed(MapKeySeed {
        scalar: key,
        ctx: &mut *ctx,
    })? {
        match map.next_value_seed(ValueSeed {
            node: value,
            ctx: &mut *ctx,
        }) {
            Ok(v) => entries.push((k, v)),
            Err(e) => {
                ctx.prefix(format_args!("[{k}]"));
                return Err(e);
            }
        }
    }
    dedup_keys(&mut entries);
    Ok(Value::Map(Arc::new(entries)))
}

/// Keeps map keys unique (a later duplicate replaces the earlier value in
/// its place), as a JSON parser building a map would.
fn dedup_keys(entries: &mut Vec<(Value, Value)>) {
    if entries.len() <= 32 {
        let mut i = 1;
        while i < entries.len() {
            let (seen, rest) = entries.split_at_mut(i);
            if let Some(first) = seen.iter_mut().find(|(k, _)| *k == rest[0].0) {
                std::mem::swap(&mut first.1, &mut rest[0].1);
                entries.remove(i);
            } else {
                i += 1;
            }
        }
        return;
    }
    let mut seen: HashMap<Value, usize> = HashMap::with_capacity(entries.len());
    let mut unique: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
    for (k, v) in entries.drain(..) {
        match seen.get(&k) {
            Some(&j) => unique[j].1 = v,
            None => {
                seen.insert(k.clone(), unique.len());
                unique.push((k, v));
            }
        }
    }
    *entries = unique;
}

/// A map key: the object key's text parsed as the key type.
struct MapKeySeed<'a> {
    scalar: Scalar,
    ctx: &'a mut Ctx,
}

impl<'de> DeserializeSeed<'de> for MapKeySeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MapKeySeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a map key of type {}", self.scalar.data_type())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        text_value(self.scalar, v, self.ctx)
    }
}

/// Encodes a JSON side.
pub(crate) struct JsonEncoder {
    names: Vec<String>,
    columns: Vec<Node>,
    prefixes: Vec<Vec<u8>>,
    unwrapped: bool,
}

impl JsonEncoder {
    pub(crate) fn try_new(
        columns: &[(String, DataType)],
        options: &FormatOptions,
    ) -> Result<Self, FormatError> {
        let names: Vec<String> = columns.iter().map(|(name, _)| name.clone()).collect();
        let nodes = columns
            .iter()
            .map(|(name, t)| Node::try_new(t, name))
            .collect::<Result<_, _>>()?;
        Ok(JsonEncoder {
            prefixes: field_prefixes(&names),
            names,
            columns: nodes,
            unwrapped: columns.len() == 1 && !options.wrap_single_value,
        })
    }

    /// Whether the single column is written bare rather than in an object.
    pub(crate) fn is_unwrapped(&self) -> bool {
        self.unwrapped
    }

    /// Appends an object with the columns as fields (names as given), or
    /// the bare value of an unwrapped column.
    pub(crate) fn encode(&self, values: &[Value], out: &mut Vec<u8>) -> Result<(), FormatError> {
        if self.unwrapped {
            if let (Some(node), Some(name), Some(value)) =
                (self.columns.first(), self.names.first(), values.first())
            {
                return write_value(node, value, out).map_err(|e| e.in_column(name));
            }
        }
        out.push(b'{');
        for (((node, prefix), name), value) in self
            .columns
            .iter()
            .zip(&self.prefixes)
            .zip(&self.names)
            .zip(values)
        {
            out.extend_from_slice(prefix);
            write_value(node, value, out).map_err(|e| e.in_column(name))?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// Appends `v` as JSON: NULL as `null`, temporal types as epoch numbers,
/// DECIMAL as a number with its exact digits, BYTES as base64, MAP as an
/// object with the keys' text as names.
fn write_value(node: &Node, v: &Value, out: &mut Vec<u8>) -> Result<(), FormatError> {
    if v.is_null() {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    match (node, v) {
        (Node::Scalar(s), _) => {
            if let Some(p) = prim(*s, v)? {
                write_json_prim(p, out);
            }
        }
        (Node::Array(elem), Value::Array(items)) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(elem, item, out).map_err(|e| e.in_column(&format!("[{}]", i + 1)))?;
            }
            out.push(b']');
        }
        (Node::Map(key, value), Value::Map(entries)) => {
            out.push(b'{');
            for (i, (k, x)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match prim(*key, k)? {
                    None => {
                        return Err(FormatError::EncodeType {
                            column: String::new(),
                            expected: node.data_type(),
                            found: "a NULL map key",
                        })
                    }
                    Some(Prim::Str(s)) => write_json_string(s, out),
                    // Other key types' text needs no escaping.
                    Some(p) => {
                        out.push(b'"');
                        write_text(p, out);
                        out.push(b'"');
                    }
                }
                out.push(b':');
                write_value(value, x, out).map_err(|e| e.in_column(&format!("[{k}]")))?;
            }
            out.push(b'}');
        }
        (Node::Struct(st), Value::Struct(fields)) if fields.len() == st.fields.len() => {
            out.push(b'{');
            for (((node, prefix), name), x) in st
                .fields
                .iter()
                .zip(&st.prefixes)
                .zip(&st.names)
                .zip(fields.iter())
            {
                out.extend_from_slice(prefix);
                write_value(node, x, out).map_err(|e| e.in_column(&format!(".{name}")))?;
            }
            out.push(b'}');
        }
        _ => return Err(encode_mismatch(node.data_type(), v)),
    }
    Ok(())
}

fn write_json_prim(p: Prim<'_>, out: &mut Vec<u8>) {
    match p {
        Prim::Str(s) => write_json_string(s, out),
        Prim::Bytes(b) => {
            out.push(b'"');
            write_base64(b, out);
            out.push(b'"');
        }
        // JSON has no NaN or infinity; Jackson writes them as strings.
        Prim::F64(v) if !v.is_finite() => {
            out.push(b'"');
            write_double(v, out);
            out.push(b'"');
        }
        // Booleans, integers, finite doubles, decimals and epoch numbers:
        // their text is a JSON literal.
        _ => write_text(p, out),
    }
}

/// Appends `s` as a JSON string.
fn write_json_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut rest = s.as_bytes();
    // The bytes that need escaping are the ones the decoder looks for.
    while let Some(i) = flat::special_byte(rest) {
        let (run, tail) = rest.split_at(i);
        let Some((&b, after)) = tail.split_first() else {
            break;
        };
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => &[b],
        };
        out.extend_from_slice(run);
        out.extend_from_slice(escape);
        rest = after;
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::format::cols;
    use crate::format::{Decoder, Encoder};

    fn decode_with(
        columns: &[(String, DataType)],
        options: &FormatOptions,
        json: &str,
    ) -> Result<Vec<Value>, FormatError> {
        let mut d = Decoder::try_new(FormatKind::Json, columns, options)?;
        let mut out = Vec::new();
        d.decode(json.as_bytes(), &mut out)?;
        assert_eq!(out.len(), columns.len());
        Ok(out)
    }

    fn decode(columns: &[(String, DataType)], json: &str) -> Result<Vec<Value>, FormatError> {
        decode_with(columns, &FormatOptions::default(), json)
    }

    fn decode_one(t: DataType, json: &str) -> Result<Value, FormatError> {
        let columns = cols(&[("X", t)]);
        let mut values = decode_with(&columns, &FormatOptions::for_key(), json)?;
        Ok(values.remove(0))
    }

    fn encode_with(
        columns: &[(String, DataType)],
        options: &FormatOptions,
        values: &[Value],
    ) -> Result<String, FormatError> {
        let mut e = Encoder::try_new(FormatKind::Json, columns, options)?;
        let mut out = Vec::new();
        e.encode(values, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn encode(columns: &[(String, DataType)], values: &[Value]) -> Result<String, FormatError> {
        encode_with(columns, &FormatOptions::default(), values)
    }

    #[test]
    fn a_column_not_read_keeps_its_field_from_a_column_named_alike() {
        let columns = cols(&[("ab", DataType::BigInt), ("AB", DataType::BigInt)]);
        let read = [false, true];
        let mut d = Decoder::try_new_reading(
            FormatKind::Json,
            &columns,
            Some(&read),
            &FormatOptions::default(),
        )
        .unwrap();
        for (json, ab) in [
            (r#"{"ab": 7}"#, Value::Null),
            (r#"{"ab": 7, "AB": 5}"#, Value::BigInt(5)),
            (r#"{"ab": {"nested": 1}, "AB": 5}"#, Value::BigInt(5)),
        ] {
            let mut out = Vec::new();
            d.decode(json.as_bytes(), &mut out).unwrap();
            assert_eq!(out, [Value::Null, ab], "{json}");
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for text in [
            "",
            "plain text longer than one eight-byte word",
            "quote \" and backslash \\ and /",
            "\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f} controls",
            "é€😀 and \"",
            "\"\"\"\"\"\"\"\"\"",
        ] {
            let mut out = Vec::new();
            write_json_string(text, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(text).unwrap()
            );
        }
    }

    fn dec(s: &str) -> Value {
        Value::Decimal(Decimal::from_str(s).unwrap())
    }

    fn address() -> DataType {
        DataType::Struct(vec![
            ("CITY".to_owned(), DataType::String),
            ("ZIP".to_owned(), DataType::Int),
        ])
    }

    fn all_types() -> (Vec<(String, DataType)>, Vec<Value>) {
        let columns = cols(&[
            ("B", DataType::Boolean),
            ("I", DataType::Int),
            ("L", DataType::BigInt),
            ("D", DataType::Double),
            (
                "DEC",
                DataType::Decimal {
                    precision: 28,
                    scale: 10,
                },
            ),
            ("S", DataType::String),
            ("BY", DataType::Bytes),
            ("TS", DataType::Timestamp),
            ("DT", DataType::Date),
            ("TM", DataType::Time),
            ("TAGS", DataType::Array(Box::new(DataType::String))),
            (
                "ATTRS",
                DataType::Map(Box::new(DataType::String), Box::new(DataType::BigInt)),
            ),
            (
                "BY_ID",
                DataType::Map(Box::new(DataType::Int), Box::new(DataType::Double)),
            ),
            ("ADDR", address()),
            ("ADDRS", DataType::Array(Box::new(address()))),
        ]);
        let street = |city: &str, zip: Value| Value::Struct(Arc::new(vec![Value::str(city), zip]));
        let values = vec![
            Value::Boolean(true),
            Value::Int(i32::MIN),
            Value::BigInt(i64::MAX),
            Value::Double(0.1 + 0.2),
            dec("123456789012345678.0123456789"),
            Value::str("quote \" backslash \\ newline \n tab \t bell \u{7} é 🦀"),
            Value::Bytes(Arc::from(&b"\x00\xffbinary"[..])),
            Value::Timestamp(1_700_000_000_123),
            Value::Date(-719_162),
            Value::Time(86_399_999),
            Value::Array(Arc::new(vec![Value::str("a"), Value::Null, Value::str("")])),
            Value::Map(Arc::new(vec![
                (Value::str("x"), Value::BigInt(1)),
                (Value::str("y \"q\""), Value::Null),
            ])),
            Value::Map(Arc::new(vec![(Value::Int(-3), Value::Double(1e300))])),
            street("Paris", Value::Int(75001)),
            Value::Array(Arc::new(vec![street("Oslo", Value::Null), Value::Null])),
        ];
        (columns, values)
    }

    #[test]
    fn every_type_round_trips() {
        let (columns, values) = all_types();
        let json = encode(&columns, &values).unwrap();
        assert_eq!(decode(&columns, &json), Ok(values.clone()), "{json}");
        let nulls = vec![Value::Null; columns.len()];
        let json = encode(&columns, &nulls).unwrap();
        assert_eq!(decode(&columns, &json), Ok(nulls));
        // Each type alone, bare.
        for ((name, t), v) in columns.iter().zip(&values) {
            let one = vec![(name.clone(), t.clone())];
            let json =
                encode_with(&one, &FormatOptions::for_key(), std::slice::from_ref(v)).unwrap();
            assert_eq!(
                decode_with(&one, &FormatOptions::for_key(), &json),
                Ok(vec![v.clone()]),
                "{json}"
            );
        }
    }

    #[test]
    fn doubles_round_trip_exactly() {
        for v in [
            0.1,
            1.0 / 3.0,
            2.2250738585072014e-308,
            5e-324,
            1.7976931348623157e308,
            -0.0,
        ] {
            let bits = |v: &Value| match v {
                Value::Double(d) => d.to_bits(),
                _ => 0,
            };
            let json = encode_with(
                &cols(&[("X", DataType::Double)]),
                &FormatOptions::for_key(),
                &[Value::Double(v)],
            )
            .unwrap();
            let back = decode_one(DataType::Double, &json).unwrap();
            assert_eq!(bits(&back), v.to_bits(), "{json}");
        }
        // Not finite: written as Jackson writes them.
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let json = encode_with(
                &cols(&[("X", DataType::Double)]),
                &FormatOptions::for_key(),
                &[Value::Double(v)],
            )
            .unwrap();
            assert!(json.starts_with('"'), "{json}");
            assert_eq!(decode_one(DataType::Double, &json), Ok(Value::Double(v)));
        }
    }

    #[test]
    fn writes_what_ksqldb_writes() {
        let columns = cols(&[
            ("PAGE", DataType::String),
            ("TS", DataType::Timestamp),
            ("D", DataType::Date),
            ("T", DataType::Time),
            (
                "PRICE",
                DataType::Decimal {
                    precision: 6,
                    scale: 2,
                },
            ),
            ("RAW", DataType::Bytes),
            ("ADDR", address()),
            (
                "M",
                DataType::Map(Box::new(DataType::Int), Box::new(DataType::Boolean)),
            ),
            ("quoted \"name\"", DataType::Int),
        ]);
        let values = vec![
            Value::str("/home"),
            Value::Timestamp(1_700_000_000_000),
            Value::Date(19_675),
            Value::Time(3_723_004),
            dec("10.5"),
            Value::Bytes(Arc::from(&b"hi"[..])),
            Value::Struct(Arc::new(vec![Value::str("Oslo"), Value::Null])),
            Value::Map(Arc::new(vec![(Value::Int(1), Value::Boolean(false))])),
            Value::Null,
        ];
        assert_eq!(
            encode(&columns, &values).unwrap(),
            r#"{"PAGE":"/home","TS":1700000000000,"D":19675,"T":3723004,"PRICE":10.50,"RAW":"aGk=","ADDR":{"CITY":"Oslo","ZIP":null},"M":{"1":false},"quoted \"name\"":null}"#
        );
    }

    #[test]
    fn keys_are_bare_values_unless_there_are_several() {
        let key = cols(&[("USER_ID", DataType::String)]);
        let options = FormatOptions::for_key();
        assert_eq!(
            encode_with(&key, &options, &[Value::str("u1")]).unwrap(),
            "\"u1\""
        );
        assert_eq!(
            decode_with(&key, &options, "\"u1\""),
            Ok(vec![Value::str("u1")])
        );
        let key = cols(&[("ID", DataType::Int)]);
        assert_eq!(
            encode_with(&key, &options, &[Value::Int(42)]).unwrap(),
            "42"
        );
        assert_eq!(
            decode_with(&key, &options, " 42 "),
            Ok(vec![Value::Int(42)])
        );
        assert_eq!(decode_with(&key, &options, "null"), Ok(vec![Value::Null]));
        let key = cols(&[("A", DataType::Int), ("B", DataType::String)]);
        let json = encode_with(&key, &options, &[Value::Int(1), Value::str("x")]).unwrap();
        assert_eq!(json, r#"{"A":1,"B":"x"}"#);
        assert_eq!(
            decode_with(&key, &options, &json),
            Ok(vec![Value::Int(1), Value::str("x")])
        );
    }

    #[test]
    fn wrap_single_value_chooses_object_or_bare_value() {
        let value = cols(&[("ADDR", address())]);
        let v = Value::Struct(Arc::new(vec![Value::str("Oslo"), Value::Int(150)]));
        assert_eq!(
            encode(&value, std::slice::from_ref(&v)).unwrap(),
            r#"{"ADDR":{"CITY":"Oslo","ZIP":150}}"#
        );
        let unwrapped = FormatOptions {
            wrap_single_value: false,
            ..FormatOptions::default()
        };
        assert_eq!(
            encode_with(&value, &unwrapped, std::slice::from_ref(&v)).unwrap(),
            r#"{"CITY":"Oslo","ZIP":150}"#
        );
        assert_eq!(
            decode_with(&value, &unwrapped, r#"{"city":"Oslo","zip":150}"#),
            Ok(vec![v])
        );
        let err = decode(&cols(&[("N", DataType::Int)]), "7").unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed JSON record: expected a JSON object, found 7; a single column written as \
             a bare value needs WRAP_SINGLE_VALUE=false"
        );
    }

    #[test]
    fn reads_json_as_other_tools_write_it() {
        let columns = cols(&[
            ("USER_ID", DataType::String),
            ("PAGE", DataType::String),
            ("TS", DataType::Timestamp),
            ("ADDR", address()),
            ("VIEWS", DataType::BigInt),
        ]);
        // Other case, other order, extra fields (nested ones too), a
        // missing column, escapes in names.
        let json = r#"{
            "ts": 1700000000000,
            "extra": {"deep": [1, {"x": null}], "s": "\u0041"},
            "Page": "/home",
            "addr": {"City": "Paris", "zip": "75001", "country": "FR"},
            "user_\u0069d": "u1"
        }"#;
        assert_eq!(
            decode(&columns, json),
            Ok(vec![
                Value::str("u1"),
                Value::str("/home"),
                Value::Timestamp(1_700_000_000_000),
                Value::Struct(Arc::new(vec![Value::str("Paris"), Value::Int(75001)])),
                Value::Null,
            ])
        );
        assert_eq!(
            decode(&columns, r#"{"TS": "2023-11-14T22:13:20Z", "VIEWS": null}"#),
            Ok(vec![
                Value::Null,
                Value::Null,
                Value::Timestamp(1_700_000_000_000),
                Value::Null,
                Value::Null
            ])
        );
        // A null record reads as all NULL; an empty object too.
        assert_eq!(decode(&columns, "null"), Ok(vec![Value::Null; 5]));
        assert_eq!(decode(&columns, "{}"), Ok(vec![Value::Null; 5]));
    }

    #[test]
    fn exact_names_win_over_case_insensitive_matches() {
        let columns = cols(&[
            ("a", DataType::Int),
            ("A", DataType::Int),
            ("Ünï", DataType::Int),
        ]);
        assert_eq!(
            decode(&columns, r#"{"A": 2, "a": 1, "üNÏ": 3}"#),
            Ok(vec![Value::Int(1), Value::Int(2), Value::Int(3)])
        );
        let columns = cols(&[("PAGE", DataType::String)]);
        assert_eq!(
            decode(&columns, r#"{"page": "/a"}"#),
            Ok(vec![Value::str("/a")])
        );
    }

    #[test]
    fn field_order_and_case_may_change_between_records() {
        let columns = cols(&[
            ("A", DataType::Int),
            ("BB", DataType::Int),
            ("I", DataType::Int),
        ]);
        let mut d =
            Decoder::try_new(FormatKind::Json, &columns, &FormatOptions::default()).unwrap();
        let records = [
            (
                r#"{"A": 1, "BB": 2, "x": 0}"#,
                [Value::Int(1), Value::Int(2), Value::Null],
            ),
            (
                r#"{"BB": 3, "A": 4}"#,
                [Value::Int(4), Value::Int(3), Value::Null],
            ),
            (
                r#"{"bb": 5, "a": 6, "A": 7}"#,
                [Value::Int(7), Value::Int(5), Value::Null],
            ),
            (
                r#"{"x": 8, "A": 9, "CC": 1}"#,
                [Value::Int(9), Value::Null, Value::Null],
            ),
            // Dotless i upper-cases to I, as in Java.
            (r#"{"ı": 10}"#, [Value::Null, Value::Null, Value::Int(10)]),
        ];
        for (json, want) in records {
            let mut out = Vec::new();
            d.decode(json.as_bytes(), &mut out).unwrap();
            assert_eq!(out, want, "{json}");
        }
    }

    #[test]
    fn names_differing_only_in_case_stay_apart_across_records() {
        let columns = cols(&[("a", DataType::Int), ("A", DataType::Int)]);
        let mut d =
            Decoder::try_new(FormatKind::Json, &columns, &FormatOptions::default()).unwrap();
        for (json, want) in [
            (r#"{"a": 1, "A": 2}"#, [Value::Int(1), Value::Int(2)]),
            (r#"{"A": 3, "a": 4}"#, [Value::Int(4), Value::Int(3)]),
            (r#"{"A": 5}"#, [Value::Null, Value::Int(5)]),
            (r#"{"a": 6}"#, [Value::Int(6), Value::Null]),
        ] {
            let mut out = Vec::new();
            d.decode(json.as_bytes(), &mut out).unwrap();
            assert_eq!(out, want, "{json}");
        }
    }

    #[test]
    fn coerces_values_as_ksqldb_does() {
        let int = |json: &str| decode_one(DataType::Int, json);
        assert_eq!(int("42"), Ok(Value::Int(42)));
        assert_eq!(int("\"42\""), Ok(Value::Int(42)));
        assert_eq!(int("1.9"), Ok(Value::Int(1)));
        assert_eq!(int("-1.9"), Ok(Value::Int(-1)));
        assert_eq!(int("1e2"), Ok(Value::Int(100)));
        assert_eq!(
            decode_one(DataType::BigInt, "\"-9\""),
            Ok(Value::BigInt(-9))
        );
        assert_eq!(
            decode_one(DataType::Double, "\"1.5\""),
            Ok(Value::Double(1.5))
        );
        assert_eq!(decode_one(DataType::Double, "3"), Ok(Value::Double(3.0)));
        let d = DataType::Decimal {
            precision: 5,
            scale: 2,
        };
        assert_eq!(decode_one(d.clone(), "1.005"), Ok(dec("1.01")));
        assert_eq!(decode_one(d.clone(), "\"12.3\""), Ok(dec("12.30")));
        assert_eq!(decode_one(d.clone(), "12"), Ok(dec("12.00")));
        assert_eq!(decode_one(d, "1.5e1"), Ok(dec("15.00")));
        let s = |json: &str| decode_one(DataType::String, json);
        assert_eq!(s("12"), Ok(Value::str("12")));
        assert_eq!(s("1.5"), Ok(Value::str("1.5")));
        assert_eq!(s("true"), Ok(Value::str("true")));
        assert_eq!(s(r#"{"a": [1, "x"]}"#), Ok(Value::str(r#"{"a":[1,"x"]}"#)));
        assert_eq!(s("[1, 2]"), Ok(Value::str("[1,2]")));
        assert_eq!(
            decode_one(DataType::Boolean, "\"TRUE\""),
            Ok(Value::Boolean(true))
        );
        assert_eq!(
            decode_one(DataType::Boolean, "false"),
            Ok(Value::Boolean(false))
        );
        assert_eq!(decode_one(DataType::Date, "19675"), Ok(Value::Date(19_675)));
        assert_eq!(
            decode_one(DataType::Date, "\"2023-11-14\""),
            Ok(Value::Date(19_675))
        );
        assert_eq!(
            decode_one(DataType::Time, "3723004"),
            Ok(Value::Time(3_723_004))
        );
        assert_eq!(
            decode_one(DataType::Time, "\"01:02:03.004\""),
            Ok(Value::Time(3_723_004))
        );
        assert_eq!(
            decode_one(DataType::Timestamp, "\"2023-11-14T23:13:20.5+01:00\""),
            Ok(Value::Timestamp(1_700_000_000_500))
        );
        assert_eq!(
            decode_one(DataType::Bytes, "\"aGk=\""),
            Ok(Value::Bytes(Arc::from(&b"hi"[..])))
        );
        let map = DataType::Map(Box::new(DataType::String), Box::new(DataType::Int));
        assert_eq!(
            decode_one(map, r#"{"a": 1, "b": 2, "a": 3}"#),
            Ok(Value::Map(Arc::new(vec![
                (Value::str("a"), Value::Int(3)),
                (Value::str("b"), Value::Int(2)),
            ])))
        );
    }

    #[test]
    fn large_maps_keep_keys_unique() {
        let map = DataType::Map(Box::new(DataType::Int), Box::new(DataType::Int));
        let mut json = String::from("{");
        for i in 0..100 {
            json.push_str(&format!("\"{}\": {i},", i % 50));
        }
        json.push_str("\"07\": -1}");
        let Ok(Value::Map(entries)) = decode_one(map, &json) else {
            panic!("not a map");
        };
        assert_eq!(entries.len(), 50);
        assert_eq!(entries[0], (Value::Int(0), Value::Int(50)));
        assert_eq!(entries[7], (Value::Int(7), Value::Int(-1)));
    }

    #[test]
    fn wrong_types_name_the_column_and_the_input() {
        let columns = cols(&[
            ("X", DataType::Int),
            ("ADDRS", DataType::Array(Box::new(address()))),
        ]);
        let err = decode(&columns, r#"{"x": "abc"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column \"X\" expects INTEGER, found \"abc\""
        );
        assert_eq!(err.sqlstate(), "22P02");
        let err = decode(&columns, r#"{"x": 3000000000}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "value 3000000000 is out of range for column \"X\" of type INTEGER"
        );
        assert_eq!(err.sqlstate(), "22003");
        let err = decode(&columns, r#"{"x": true}"#).unwrap_err();
        assert_eq!(err.to_string(), "column \"X\" expects INTEGER, found true");
        let err = decode(&columns, r#"{"x": [1]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column \"X\" expects INTEGER, found an array"
        );
        let err = decode(&columns, r#"{"addrs": [{"zip": 1}, {"zip": "z"}]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column \"ADDRS[2].ZIP\" expects INTEGER, found \"z\""
        );
        let err = decode(&columns, r#"{"addrs": {"zip": 1}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column \"ADDRS\" expects ARRAY<STRUCT<CITY STRING, ZIP INTEGER>>, found an object"
        );
        let key = cols(&[("K", DataType::BigInt)]);
        let err = decode_with(&key, &FormatOptions::for_key(), "\"u1\"").unwrap_err();
        assert_eq!(err.to_string(), "column \"K\" expects BIGINT, found \"u1\"");
        let err = decode_one(DataType::Double, "{}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "column \"X\" expects DOUBLE, found an object"
        );
        let err = decode_one(DataType::Bytes, "\"%%%\"").unwrap_err();
        assert_eq!(err.to_string(), "column \"X\" expects BYTES, found \"%%%\"");
        let d = DataType::Decimal {
            precision: 3,
            scale: 1,
        };
        let err = decode_one(d, "123.4").unwrap_err();
        assert_eq!(
            err.to_string(),
            "value 123.4 is out of range for column \"X\" of type DECIMAL(3, 1)"
        );
        let map = DataType::Map(Box::new(DataType::String), Box::new(DataType::Int));
        let err = decode_one(map, r#"{"k": "v"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column \"X[k]\" expects INTEGER, found \"v\""
        );
    }

    #[test]
    fn bad_json_is_malformed() {
        let columns = cols(&[("X", DataType::Int)]);
        for (json, reason) in [
            (
                "{\"x\": 1",
                "EOF while parsing an object at line 1 column 7",
            ),
            ("{\"x\": 1} {}", "trailing characters at line 1 column 10"),
            ("", "EOF while parsing a value at line 1 column 0"),
            ("{\"y\": tru}", "expected ident at line 1 column 10"),
            (
                "[1]",
                "expected a JSON object, found an array; a single column written as a bare value \
                 needs WRAP_SINGLE_VALUE=false",
            ),
        ] {
            let err = decode(&columns, json).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("malformed JSON record: {reason}"),
                "{json}"
            );
            assert_eq!(err.sqlstate(), "22P02");
        }
        let mut d =
            Decoder::try_new(FormatKind::Json, &columns, &FormatOptions::default()).unwrap();
        let err = d.decode(b"{\"x\": \"\xff\"}", &mut Vec::new()).unwrap_err();
        assert!(matches!(err, FormatError::Malformed { .. }), "{err}");
    }

    #[test]
    fn encoding_checks_value_types_and_names_the_path() {
        let columns = cols(&[("ADDRS", DataType::Array(Box::new(address())))]);
        let bad = Value::Array(Arc::new(vec![Value::Struct(Arc::new(vec![
            Value::str("Oslo"),
            Value::str("0150"),
        ]))]));
        let err = encode(&columns, &[bad]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot encode a STRING value into column \"ADDRS[1].ZIP\" of type INTEGER"
        );
        assert_eq!(err.sqlstate(), "42804");
        let map = cols(&[(
            "M",
            DataType::Map(Box::new(DataType::String), Box::new(DataType::Int)),
        )]);
        let err = encode(
            &map,
            &[Value::Map(Arc::new(vec![(Value::Null, Value::Int(1))]))],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot encode a NULL map key into column \"M\" of type MAP<STRING, INTEGER>"
        );
    }

    #[test]
    fn map_keys_must_be_primitive() {
        let columns = cols(&[(
            "M",
            DataType::Map(
                Box::new(DataType::Array(Box::new(DataType::Int))),
                Box::new(DataType::Int),
            ),
        )]);
        let err = Decoder::try_new(FormatKind::Json, &columns, &FormatOptions::default())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "the JSON format does not support MAP<ARRAY<INTEGER>, INTEGER> (column \"M\"): map keys must be of a primitive type"
        );
    }
}
