//! The PROTOBUF format with a Confluent-compatible schema registry
//! (`--schema-registry`), as ksqlDB users know it: value columns inferred
//! from the first message of the latest `.proto` schema of subject
//! `<topic>-value`, proto3 schemas registered for declared columns and for
//! the outputs of `CREATE ... AS SELECT`, records in Confluent's wire format
//! (byte 0, 4-byte big-endian schema id, the message-index array as zig-zag
//! varints, the protobuf message), and records that are not valid skipped
//! into `RILL_PROCESSING_LOG`.
//!
//! The registry is [`rill_tests::registry::Registry`], served over real HTTP
//! on 127.0.0.1. The tests encode protobuf by hand (the wire format is a few
//! varints) and decode what rill writes with a small `.proto` reader of
//! their own, from the schema the registry holds for the id in each record,
//! so nothing here shares code with rill's. The interop test uses Confluent's
//! own Python `ProtobufSerializer` and `ProtobufDeserializer`, with protoc
//! (grpcio-tools) compiling the schemas, and is skipped with a message when
//! they are not installed (`.ci/run` installs them).
//!
//! The Kafka tests run against librdkafka's in-process mock cluster, which
//! has no admin API: every topic rill reads or writes is created first.
//! What the Avro tests share with these is in [`rill_tests::formats`] and,
//! for the rdkafka clients, `tests/tests/common`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{consume_raw, mock_cluster, produce_keyed, producer, NO_COMMAND_TOPIC};
use rdkafka::producer::FutureRecord;
use rill_tests::formats::{
    aggregate_pageviews, assert_no_subject_is_a_clear_error, columns, create_all_types_streams,
    create_and_fill_pageviews, describe, hex, processing_log, property, python_imports, query_of,
    raw_values, registry_flag_problems, reprinted, run_python, start_with_registry, unhex,
};
use rill_tests::registry::Registry;
use rill_tests::{describe_error, exec, expect_sqlstate, plain, query, Server};
use serde_json::{json, Value as Json};

/// The interpreter flags of every python3 run here: warnings off, so a
/// failure's stderr holds the scripts' own messages.
const PYTHON_FLAGS: &[&str] = &["-W", "ignore"];

// ------------------------------------------------------- wire format ---

/// The message-index array of the first message of a file, as Confluent
/// writes it: the single byte 0 (for the array `[0]`).
const FIRST: &[u8] = &[0];

/// A Confluent-framed protobuf record: magic byte 0, the schema id
/// big-endian, the message-index bytes, the message.
fn frame(id: u32, indexes: &[u8], message: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(indexes);
    out.extend_from_slice(message);
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Reads a varint at `*pos`, panicking with the bytes when it is cut off.
fn read_varint(bytes: &[u8], pos: &mut usize) -> u64 {
    let mut result = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = bytes.get(*pos) else {
            panic!("varint cut off at byte {} of {bytes:02x?}", *pos);
        };
        *pos += 1;
        result |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return result;
        }
    }
    panic!("varint longer than 10 bytes in {bytes:02x?}")
}

/// A protobuf message under construction, one field at a time.
#[derive(Debug, Default, Clone)]
struct Pb(Vec<u8>);

impl Pb {
    fn new() -> Pb {
        Pb::default()
    }

    fn tag(mut self, field: u32, wire_type: u8) -> Pb {
        put_varint(&mut self.0, u64::from(field) << 3 | u64::from(wire_type));
        self
    }

    /// int32, int64, uint32, uint64, bool, enum: the plain varint (a
    /// negative int32 is sign-extended to ten bytes, as protobuf does).
    fn int(self, field: u32, v: i64) -> Pb {
        let mut p = self.tag(field, 0);
        put_varint(&mut p.0, v as u64);
        p
    }

    /// sint32, sint64.
    fn sint(self, field: u32, v: i64) -> Pb {
        let mut p = self.tag(field, 0);
        put_varint(&mut p.0, zigzag(v));
        p
    }

    /// fixed32, sfixed32, float (as bits).
    fn fixed32(self, field: u32, v: u32) -> Pb {
        let mut p = self.tag(field, 5);
        p.0.extend_from_slice(&v.to_le_bytes());
        p
    }

    /// fixed64, sfixed64, double (as bits).
    fn fixed64(self, field: u32, v: u64) -> Pb {
        let mut p = self.tag(field, 1);
        p.0.extend_from_slice(&v.to_le_bytes());
        p
    }

    fn double(self, field: u32, v: f64) -> Pb {
        self.fixed64(field, v.to_bits())
    }

    fn bytes(self, field: u32, v: &[u8]) -> Pb {
        let mut p = self.tag(field, 2);
        put_varint(&mut p.0, v.len() as u64);
        p.0.extend_from_slice(v);
        p
    }

    fn string(self, field: u32, v: &str) -> Pb {
        self.bytes(field, v.as_bytes())
    }

    fn message(self, field: u32, m: Pb) -> Pb {
        self.bytes(field, &m.0)
    }

    /// A packed repeated varint field (proto3's default for numbers).
    fn packed(self, field: u32, vs: &[i64]) -> Pb {
        let mut body = Vec::new();
        for v in vs {
            put_varint(&mut body, *v as u64);
        }
        self.bytes(field, &body)
    }

    /// A map entry (key field 1, value field 2) of field `field`.
    fn entry(self, field: u32, key: &str, value: Pb) -> Pb {
        let mut e = Pb::new().string(1, key);
        e.0.extend_from_slice(&value.0);
        self.message(field, e)
    }

    /// A google.protobuf.Timestamp of `ms` milliseconds since the epoch.
    fn timestamp(self, field: u32, ms: i64) -> Pb {
        let ts = Pb::new()
            .int(1, ms.div_euclid(1000))
            .int(2, ms.rem_euclid(1000) * 1_000_000);
        self.message(field, ts)
    }
}

/// One field as it travels: varint, 64-bit, length-delimited or 32-bit.
#[derive(Debug, Clone)]
enum Wire {
    Varint(u64),
    I64(u64),
    Len(Vec<u8>),
    I32(u32),
}

/// The fields of a message in wire order; panics on bytes that are not a
/// protobuf message (rill must never write such a record).
fn wire_fields(bytes: &[u8]) -> Vec<(u32, Wire)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let key = read_varint(bytes, &mut pos);
        let field = (key >> 3) as u32;
        let take = |pos: &mut usize, n: usize| -> Vec<u8> {
            let end = *pos + n;
            assert!(end <= bytes.len(), "field {field} cut off in {bytes:02x?}");
            let v = bytes[*pos..end].to_vec();
            *pos = end;
            v
        };
        let value = match key & 7 {
            0 => Wire::Varint(read_varint(bytes, &mut pos)),
            1 => Wire::I64(u64::from_le_bytes(
                take(&mut pos, 8).try_into().expect("8 bytes"),
            )),
            2 => {
                let n = read_varint(bytes, &mut pos) as usize;
                Wire::Len(take(&mut pos, n))
            }
            5 => Wire::I32(u32::from_le_bytes(
                take(&mut pos, 4).try_into().expect("4 bytes"),
            )),
            t => panic!("wire type {t} of field {field} in {bytes:02x?}"),
        };
        out.push((field, value));
    }
    out
}

// ------------------------------------------------ a small .proto reader ---

#[derive(Debug, Clone, Copy, PartialEq)]
enum Label {
    Plain,
    Optional,
    Repeated,
}

#[derive(Debug, Clone)]
struct FieldDef {
    label: Label,
    /// The type as written (`int32`, `Point`, `google.protobuf.Timestamp`);
    /// for a map, its value type.
    ty: String,
    /// The key type of a `map<K, V>` field.
    map_key: Option<String>,
    name: String,
    number: u32,
}

#[derive(Debug, Clone)]
struct MessageDef {
    name: String,
    fields: Vec<FieldDef>,
    messages: Vec<MessageDef>,
    enums: Vec<EnumDef>,
}

#[derive(Debug, Clone)]
struct EnumDef {
    name: String,
    values: Vec<(String, i64)>,
}

/// What these tests need of a `.proto` file: its messages (nested ones
/// too), fields and enums. Options are skipped, imports taken as given.
#[derive(Debug, Clone)]
struct ProtoFile {
    syntax: String,
    messages: Vec<MessageDef>,
    enums: Vec<EnumDef>,
}

fn proto_tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '"' || c == '\'' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(chars[start..i.min(chars.len())].iter().collect());
        } else if c.is_alphanumeric() || c == '_' || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_.".contains(chars[i])) {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

struct ProtoParser {
    tokens: Vec<String>,
    pos: usize,
    text: String,
}

impl ProtoParser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    fn next(&mut self) -> String {
        let t = self
            .tokens
            .get(self.pos)
            .cloned()
            .unwrap_or_else(|| panic!("the schema ends too early:\n{}", self.text));
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: &str) {
        let got = self.next();
        assert_eq!(
            got, want,
            "schema token {} is not {want:?}:\n{}",
            self.pos, self.text
        );
    }

    /// Skips to the end of a statement (`;`) or of a block (`{ ... }`).
    fn skip_statement(&mut self) {
        let mut depth = 0;
        loop {
            match self.next().as_str() {
                "{" | "[" | "(" => depth += 1,
                "]" | ")" => depth -= 1,
                "}" => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                ";" if depth == 0 => return,
                _ => {}
            }
        }
    }

    fn enum_def(&mut self) -> EnumDef {
        self.expect("enum");
        let name = self.next();
        self.expect("{");
        let mut values = Vec::new();
        loop {
            match self.peek() {
                Some("}") => {
                    self.next();
                    return EnumDef { name, values };
                }
                Some("option" | "reserved") => self.skip_statement(),
                Some(";") => {
                    self.next();
                }
                _ => {
                    let symbol = self.next();
                    self.expect("=");
                    let mut number = self.next();
                    if number == "-" {
                        number = format!("-{}", self.next());
                    }
                    if self.peek() == Some("[") {
                        while self.next() != "]" {}
                    }
                    self.expect(";");
                    let n = number.parse().unwrap_or_else(|_| {
                        panic!("enum value {number:?} of {symbol}:\n{}", self.text)
                    });
                    values.push((symbol, n));
                }
            }
        }
    }

    fn field(&mut self) -> FieldDef {
        let mut label = Label::Plain;
        let mut ty = self.next();
        match ty.as_str() {
            "repeated" => {
                label = Label::Repeated;
                ty = self.next();
            }
            "optional" => {
                label = Label::Optional;
                ty = self.next();
            }
            "required" => ty = self.next(),
            _ => {}
        }
        let mut map_key = None;
        if ty == "map" && self.peek() == Some("<") {
            self.expect("<");
            map_key = Some(self.next());
            self.expect(",");
            ty = self.next();
            self.expect(">");
            label = Label::Repeated;
        }
        let name = self.next();
        self.expect("=");
        let number = self.next();
        let number = number
            .parse()
            .unwrap_or_else(|_| panic!("field number {number:?} of {name}:\n{}", self.text));
        if self.peek() == Some("[") {
            let mut depth = 0;
            loop {
                match self.next().as_str() {
                    "[" => depth += 1,
                    "]" => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
        self.expect(";");
        FieldDef {
            label,
            ty: ty.trim_start_matches('.').to_string(),
            map_key,
            name,
            number,
        }
    }

    fn message(&mut self) -> MessageDef {
        self.expect("message");
        let name = self.next();
        self.expect("{");
        let mut m = MessageDef {
            name,
            fields: Vec::new(),
            messages: Vec::new(),
            enums: Vec::new(),
        };
        loop {
            match self.peek() {
                Some("}") => {
                    self.next();
                    return m;
                }
                Some("message") => m.messages.push(self.message()),
                Some("enum") => m.enums.push(self.enum_def()),
                Some("option" | "reserved" | "extensions" | "extend") => self.skip_statement(),
                Some(";") => {
                    self.next();
                }
                Some("oneof") => {
                    self.next();
                    self.next();
                    self.expect("{");
                    while self.peek() != Some("}") {
                        if self.peek() == Some("option") {
                            self.skip_statement();
                        } else {
                            let mut f = self.field();
                            // A oneof member has presence, like `optional`.
                            f.label = Label::Optional;
                            m.fields.push(f);
                        }
                    }
                    self.next();
                }
                _ => m.fields.push(self.field()),
            }
        }
    }
}

/// Parses `.proto` text, panicking with the text when it cannot.
fn parse_proto(text: &str) -> ProtoFile {
    let mut p = ProtoParser {
        tokens: proto_tokens(text),
        pos: 0,
        text: text.to_string(),
    };
    let mut file = ProtoFile {
        syntax: "proto2".into(),
        messages: Vec::new(),
        enums: Vec::new(),
    };
    while let Some(t) = p.peek() {
        match t {
            "syntax" => {
                p.next();
                p.expect("=");
                file.syntax = p.next().trim_matches(|c| c == '"' || c == '\'').to_string();
                p.expect(";");
            }
            "package" | "import" | "option" | "edition" | "service" => p.skip_statement(),
            "message" => file.messages.push(p.message()),
            "enum" => file.enums.push(p.enum_def()),
            ";" => {
                p.next();
            }
            other => panic!("unexpected {other:?} at the top of the schema:\n{text}"),
        }
    }
    file
}

impl ProtoFile {
    /// The message named `name` (by its last dotted component), anywhere.
    fn message(&self, name: &str) -> Option<&MessageDef> {
        fn find<'a>(ms: &'a [MessageDef], name: &str) -> Option<&'a MessageDef> {
            ms.iter()
                .find(|m| m.name == name)
                .or_else(|| ms.iter().find_map(|m| find(&m.messages, name)))
        }
        find(&self.messages, name.rsplit('.').next().unwrap_or(name))
    }

    fn enum_def(&self, name: &str) -> Option<&EnumDef> {
        fn find<'a>(ms: &'a [MessageDef], name: &str) -> Option<&'a EnumDef> {
            ms.iter().find_map(|m| {
                m.enums
                    .iter()
                    .find(|e| e.name == name)
                    .or_else(|| find(&m.messages, name))
            })
        }
        let short = name.rsplit('.').next().unwrap_or(name);
        self.enums
            .iter()
            .find(|e| e.name == short)
            .or_else(|| find(&self.messages, short))
    }

    /// The first message of the file: what a record with indexes `[0]` is.
    fn first(&self) -> &MessageDef {
        self.messages
            .first()
            .unwrap_or_else(|| panic!("the schema has no message: {self:?}"))
    }

    fn is_message(&self, ty: &str) -> bool {
        ty.starts_with("google.protobuf.") || self.message(ty).is_some()
    }

    /// The (name, type) of each field of `message`, with `repeated ` or
    /// `optional ` before the type, `map<K, V>` for a map.
    fn field_types(message: &MessageDef) -> Vec<(String, String)> {
        message
            .fields
            .iter()
            .map(|f| {
                let ty = match (&f.map_key, f.label) {
                    (Some(k), _) => format!("map<{k}, {}>", f.ty),
                    (None, Label::Repeated) => format!("repeated {}", f.ty),
                    (None, Label::Optional) => format!("optional {}", f.ty),
                    (None, Label::Plain) => f.ty.clone(),
                };
                (f.name.clone(), ty)
            })
            .collect()
    }
}

/// What a reader sees for an absent field: NULL for messages and fields
/// with presence, the type's default for proto3 scalars, `[]`/`{}` for
/// repeated fields and maps.
fn absent(file: &ProtoFile, f: &FieldDef) -> Json {
    match (f.label, &f.map_key) {
        (_, Some(_)) => json!({}),
        (Label::Repeated, None) => json!([]),
        (Label::Optional, None) => Json::Null,
        (Label::Plain, None) if file.is_message(&f.ty) => Json::Null,
        (Label::Plain, None) => scalar_default(file, &f.ty),
    }
}

fn scalar_default(file: &ProtoFile, ty: &str) -> Json {
    match ty {
        "bool" => json!(false),
        "string" => json!(""),
        "bytes" => json!("\\x"),
        "float" | "double" => json!(0.0),
        "int32" | "int64" | "uint32" | "uint64" | "sint32" | "sint64" | "fixed32" | "fixed64"
        | "sfixed32" | "sfixed64" => json!(0),
        t => match file.enum_def(t) {
            Some(e) => json!(e
                .values
                .iter()
                .find(|(_, n)| *n == 0)
                .map(|(s, _)| s.clone())
                .unwrap_or_default()),
            None => panic!("no default for type {t}"),
        },
    }
}

/// The scalar type inside a google.protobuf wrapper, e.g. `int32` for
/// `google.protobuf.Int32Value`.
fn wrapped(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "google.protobuf.Int32Value" => "int32",
        "google.protobuf.Int64Value" => "int64",
        "google.protobuf.UInt32Value" => "uint32",
        "google.protobuf.UInt64Value" => "uint64",
        "google.protobuf.StringValue" => "string",
        "google.protobuf.BytesValue" => "bytes",
        "google.protobuf.BoolValue" => "bool",
        "google.protobuf.DoubleValue" => "double",
        "google.protobuf.FloatValue" => "float",
        _ => return None,
    })
}

/// A message as JSON with every field of `m`: absent ones as [`absent`]
/// says, Timestamps as epoch milliseconds, wrappers as their value, enums
/// as their symbol, bytes as `\x..` hex, maps with sorted keys.
fn decode_message(file: &ProtoFile, m: &MessageDef, bytes: &[u8]) -> Json {
    let wire = wire_fields(bytes);
    let known: Vec<u32> = m.fields.iter().map(|f| f.number).collect();
    if let Some((n, _)) = wire.iter().find(|(n, _)| !known.contains(n)) {
        panic!(
            "field number {n} is not in message {} ({bytes:02x?})",
            m.name
        );
    }
    let mut out = serde_json::Map::new();
    for f in &m.fields {
        let values: Vec<&Wire> = wire
            .iter()
            .filter(|(n, _)| *n == f.number)
            .map(|(_, w)| w)
            .collect();
        let v = if let Some(key_type) = &f.map_key {
            let mut entries = BTreeMap::new();
            for w in values {
                let Wire::Len(entry) = w else {
                    panic!("map entry of {} is not length-delimited: {w:?}", f.name)
                };
                let fields = wire_fields(entry);
                let part = |n: u32, ty: &str| match fields.iter().rev().find(|(i, _)| *i == n) {
                    Some((_, w)) => decode_value(file, ty, w),
                    None if file.is_message(ty) => Json::Null,
                    None => scalar_default(file, ty),
                };
                let key = match part(1, key_type) {
                    Json::String(s) => s,
                    other => other.to_string(),
                };
                entries.insert(key, part(2, &f.ty));
            }
            Json::Object(entries.into_iter().collect())
        } else if f.label == Label::Repeated {
            Json::Array(
                values
                    .into_iter()
                    .flat_map(|w| decode_repeated(file, &f.ty, w))
                    .collect(),
            )
        } else {
            match values.last() {
                None => absent(file, f),
                Some(w) => decode_value(file, &f.ty, w),
            }
        };
        out.insert(f.name.clone(), v);
    }
    Json::Object(out)
}

fn decode_repeated(file: &ProtoFile, ty: &str, w: &Wire) -> Vec<Json> {
    let varints = [
        "int32", "int64", "uint32", "uint64", "sint32", "sint64", "bool",
    ];
    let packed_varint = varints.contains(&ty) || file.enum_def(ty).is_some();
    match w {
        Wire::Len(body) if packed_varint => {
            let mut pos = 0;
            let mut out = Vec::new();
            while pos < body.len() {
                let v = read_varint(body, &mut pos);
                out.push(decode_value(file, ty, &Wire::Varint(v)));
            }
            out
        }
        Wire::Len(body) if ["fixed32", "sfixed32", "float"].contains(&ty) => body
            .chunks(4)
            .map(|c| {
                decode_value(
                    file,
                    ty,
                    &Wire::I32(u32::from_le_bytes(c.try_into().expect("4"))),
                )
            })
            .collect(),
        Wire::Len(body) if ["fixed64", "sfixed64", "double"].contains(&ty) => body
            .chunks(8)
            .map(|c| {
                decode_value(
                    file,
                    ty,
                    &Wire::I64(u64::from_le_bytes(c.try_into().expect("8"))),
                )
            })
            .collect(),
        w => vec![decode_value(file, ty, w)],
    }
}

fn decode_value(file: &ProtoFile, ty: &str, w: &Wire) -> Json {
    match (ty, w) {
        ("google.protobuf.Timestamp", Wire::Len(b)) => {
            let mut seconds = 0i64;
            let mut nanos = 0i64;
            for (n, w) in wire_fields(b) {
                match (n, w) {
                    (1, Wire::Varint(v)) => seconds = v as i64,
                    (2, Wire::Varint(v)) => nanos = v as i64,
                    other => panic!("not a Timestamp field: {other:?}"),
                }
            }
            json!(seconds * 1000 + nanos / 1_000_000)
        }
        (t, Wire::Len(b)) if wrapped(t).is_some() => {
            let inner = wrapped(t).unwrap_or_default();
            match wire_fields(b).iter().rev().find(|(n, _)| *n == 1) {
                Some((_, w)) => decode_value(file, inner, w),
                None => scalar_default(file, inner),
            }
        }
        ("string", Wire::Len(b)) => json!(String::from_utf8(b.clone()).expect("UTF-8 string")),
        ("bytes", Wire::Len(b)) => json!(hex(b)),
        ("bool", Wire::Varint(v)) => json!(*v != 0),
        ("int32", Wire::Varint(v)) => json!(*v as i64 as i32),
        ("int64", Wire::Varint(v)) => json!(*v as i64),
        ("uint32" | "uint64", Wire::Varint(v)) => json!(v),
        ("sint32" | "sint64", Wire::Varint(v)) => json!(unzigzag(*v)),
        ("fixed32", Wire::I32(v)) => json!(v),
        ("sfixed32", Wire::I32(v)) => json!(*v as i32),
        ("float", Wire::I32(v)) => json!(f64::from(f32::from_bits(*v))),
        ("fixed64", Wire::I64(v)) => json!(v),
        ("sfixed64", Wire::I64(v)) => json!(*v as i64),
        ("double", Wire::I64(v)) => json!(f64::from_bits(*v)),
        (t, Wire::Varint(v)) if file.enum_def(t).is_some() => {
            let e = file.enum_def(t).expect("enum");
            match e.values.iter().find(|(_, n)| *n == *v as i64) {
                Some((s, _)) => json!(s),
                None => json!(*v as i64),
            }
        }
        (t, Wire::Len(b)) if file.message(t).is_some() => {
            decode_message(file, file.message(t).expect("message"), b)
        }
        (t, w) => panic!("a {w:?} value cannot be a {t}"),
    }
}

/// Splits a Confluent-framed protobuf record into (schema id, message
/// indexes, message), panicking with the bytes when it is not one.
fn unframe(bytes: &[u8]) -> (u32, Vec<i64>, &[u8]) {
    assert!(
        bytes.len() >= 6 && bytes[0] == 0,
        "not a Confluent-framed protobuf record (magic byte 0, 4-byte id, indexes): {bytes:02x?}"
    );
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let mut pos = 5;
    let count = unzigzag(read_varint(bytes, &mut pos));
    let indexes = if count == 0 {
        vec![0]
    } else {
        (0..count)
            .map(|_| unzigzag(read_varint(bytes, &mut pos)))
            .collect()
    };
    (id, indexes, &bytes[pos..])
}

/// Decodes a framed record with the schema the registry holds for its id,
/// as a consumer with Confluent's deserializer does; returns the id, the
/// message indexes and the message as JSON (see [`decode_message`]).
fn decode_framed(registry: &Registry, bytes: &[u8]) -> (u32, Vec<i64>, Json) {
    let (id, indexes, message) = unframe(bytes);
    let text = registry.schema_by_id(id).unwrap_or_else(|| {
        panic!("record carries schema id {id}, which the registry does not have")
    });
    assert_eq!(
        registry.schema_type(id).as_deref(),
        Some("PROTOBUF"),
        "schema {id} of a PROTOBUF record: {text}"
    );
    let file = parse_proto(&text);
    let mut m = file
        .messages
        .get(indexes[0] as usize)
        .unwrap_or_else(|| panic!("message index {indexes:?} out of range in {text}"));
    for i in &indexes[1..] {
        m = m
            .messages
            .get(*i as usize)
            .unwrap_or_else(|| panic!("message index {indexes:?} out of range in {text}"));
    }
    (id, indexes, decode_message(&file, m, message))
}

// --------------------------------------------------- SQL-side helpers ---

/// Rows as strings, with every JSON object or array cell (a STRUCT, MAP or
/// ARRAY) re-printed with sorted keys and every number as a double, so two
/// spellings of one value (`{"a":1,"b":0}`, `{"b":0.0,"a":1}`) compare
/// equal. (Field order and number spelling inside printed JSON are not what
/// these tests check.)
fn normalized(rows: Vec<Vec<&str>>) -> Vec<Vec<String>> {
    fn canon(v: Json) -> Json {
        match v {
            Json::Number(n) => json!(n.as_f64()),
            Json::Array(items) => Json::Array(items.into_iter().map(canon).collect()),
            Json::Object(fields) => {
                Json::Object(fields.into_iter().map(|(k, v)| (k, canon(v))).collect())
            }
            other => other,
        }
    }
    reprinted(rows, |v| match v {
        Json::Object(_) | Json::Array(_) => Some(canon(v)),
        _ => None,
    })
}

/// The latest (id, schema) of `subject`, which must be a PROTOBUF schema;
/// a failure names the subjects the registry has instead of a bare `None`.
fn latest_of(registry: &Registry, subject: &str) -> (u32, String) {
    let (id, text) = rill_tests::formats::latest_of(registry, subject);
    assert_eq!(
        registry.schema_type(id).as_deref(),
        Some("PROTOBUF"),
        "{subject} must be registered with schemaType PROTOBUF: {text}"
    );
    (id, text)
}

/// The (name, type) of each field of the first message of `text`, which
/// must be proto3.
fn first_message_fields(text: &str) -> Vec<(String, String)> {
    let file = parse_proto(text);
    assert_eq!(file.syntax, "proto3", "rill registers proto3: {text}");
    ProtoFile::field_types(file.first())
}

fn fields_of(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

// ------------------------------------------------------------ schemas ---

/// Every protobuf type the inference maps, one field each; the first
/// message is the value, the messages after it (and the one nested in it)
/// are its parts, and an older version of the subject comes first.
const ALL_TYPES: &str = r#"
syntax = "proto3";
package rill.test;

import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

// The value: the first message of the file.
message AllTypes {
  bool flag = 1;
  int32 i32 = 2;
  sint32 s32 = 3;
  sfixed32 sf32 = 4;
  uint32 u32 = 5;
  fixed32 f32 = 6;
  int64 i64 = 7;
  sint64 s64 = 8;
  sfixed64 sf64 = 9;
  uint64 u64 = 10;
  fixed64 f64 = 11;
  float ratio = 12;
  double score = 13;
  string name = 14;
  bytes raw = 15;
  Suit suit = 16;
  repeated string tags = 17;
  repeated int64 counts = 18;
  map<string, int64> attrs = 19;
  Point point = 20;
  google.protobuf.Timestamp at = 21;
  google.protobuf.Int32Value w_int = 22;
  google.protobuf.Int64Value w_big = 23;
  google.protobuf.StringValue w_text = 24;
  google.protobuf.BoolValue w_flag = 25;
  google.protobuf.DoubleValue w_num = 26;
  repeated Pair pairs = 27;
  optional int32 maybe = 28;
  Inner inner = 29;

  message Inner {
    string label = 1;
    repeated Point points = 2;
  }
}

enum Suit {
  HEARTS = 0;
  SPADES = 1;
}

message Point {
  int32 x = 1;
  int32 y = 2;
}

message Pair {
  string k = 1;
  double v = 2;
}
"#;

/// The columns ALL_TYPES infers, as DESCRIBE shows them.
const ALL_TYPES_COLUMNS: &[(&str, &str, &str)] = &[
    ("FLAG", "BOOLEAN", "NULL"),
    ("I32", "INTEGER", "NULL"),
    ("S32", "INTEGER", "NULL"),
    ("SF32", "INTEGER", "NULL"),
    ("U32", "BIGINT", "NULL"),
    ("F32", "BIGINT", "NULL"),
    ("I64", "BIGINT", "NULL"),
    ("S64", "BIGINT", "NULL"),
    ("SF64", "BIGINT", "NULL"),
    ("U64", "BIGINT", "NULL"),
    ("F64", "BIGINT", "NULL"),
    ("RATIO", "DOUBLE", "NULL"),
    ("SCORE", "DOUBLE", "NULL"),
    ("NAME", "STRING", "NULL"),
    ("RAW", "BYTES", "NULL"),
    ("SUIT", "STRING", "NULL"),
    ("TAGS", "ARRAY<STRING>", "NULL"),
    ("COUNTS", "ARRAY<BIGINT>", "NULL"),
    ("ATTRS", "MAP<STRING, BIGINT>", "NULL"),
    ("POINT", "STRUCT<X INTEGER, Y INTEGER>", "NULL"),
    ("AT", "TIMESTAMP", "NULL"),
    ("W_INT", "INTEGER", "NULL"),
    ("W_BIG", "BIGINT", "NULL"),
    ("W_TEXT", "STRING", "NULL"),
    ("W_FLAG", "BOOLEAN", "NULL"),
    ("W_NUM", "DOUBLE", "NULL"),
    ("PAIRS", "ARRAY<STRUCT<K STRING, V DOUBLE>>", "NULL"),
    ("MAYBE", "INTEGER", "NULL"),
    (
        "INNER",
        "STRUCT<LABEL STRING, POINTS ARRAY<STRUCT<X INTEGER, Y INTEGER>>>",
        "NULL",
    ),
];

/// ALL_TYPES with every field set, negative numbers where the type has
/// them, and an unknown field (99) a reader must skip.
fn all_types_message() -> Pb {
    Pb::new()
        .int(1, 1)
        .int(2, -3)
        .sint(3, -5)
        .fixed32(4, (-7i32) as u32)
        .int(5, 4_000_000_000)
        .fixed32(6, 3_000_000_000)
        .int(7, -9_000_000_000)
        .sint(8, -11)
        .fixed64(9, (-13i64) as u64)
        .int(10, 1 << 40)
        .fixed64(11, 17)
        .fixed32(12, 0.5f32.to_bits())
        .double(13, 2.25)
        .string(14, "zoë")
        .bytes(15, b"ok")
        .int(16, 1)
        .string(17, "a")
        .string(17, "b")
        .packed(18, &[1, -2, 300])
        .entry(19, "x", Pb::new().int(2, 1))
        .entry(19, "y", Pb::new().int(2, -2))
        .message(20, Pb::new().int(1, 3).int(2, -4))
        .timestamp(21, 1_704_164_645_123)
        .message(22, Pb::new().int(1, -1))
        .message(23, Pb::new().int(1, 1 << 33))
        .message(24, Pb::new().string(1, "wrapped"))
        .message(25, Pb::new().int(1, 1))
        .message(26, Pb::new().double(1, -0.5))
        .message(27, Pb::new().string(1, "p").double(2, 1.5))
        .message(27, Pb::new().string(1, "q"))
        .int(28, 0)
        .message(
            29,
            Pb::new()
                .string(1, "in")
                .message(2, Pb::new().int(1, 5).int(2, 6)),
        )
        .string(99, "a field rill's schema does not know")
}

/// The rows ALL_TYPES reads as, with every column: the full message above
/// and an empty message (proto3 defaults, NULL for messages, wrappers and
/// the `optional` field).
const ALL_TYPES_ROWS: [[&str; 29]; 2] = [
    [
        "t",
        "-3",
        "-5",
        "-7",
        "4000000000",
        "3000000000",
        "-9000000000",
        "-11",
        "-13",
        "1099511627776",
        "17",
        "0.5",
        "2.25",
        "zoë",
        "\\x6f6b",
        "SPADES",
        r#"["a","b"]"#,
        "[1,-2,300]",
        r#"{"x":1,"y":-2}"#,
        r#"{"X":3,"Y":-4}"#,
        "2024-01-02 03:04:05.123",
        "-1",
        "8589934592",
        "wrapped",
        "t",
        "-0.5",
        r#"[{"K":"p","V":1.5},{"K":"q","V":0}]"#,
        "0",
        r#"{"LABEL":"in","POINTS":[{"X":5,"Y":6}]}"#,
    ],
    [
        "f", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "", "\\x", "HEARTS", "[]",
        "[]", "{}", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "[]", "NULL", "NULL",
    ],
];

const ALL_TYPES_SELECT: &str = "SELECT flag, i32, s32, sf32, u32, f32, i64, s64, sf64, u64, f64, ratio, score, name, raw, suit, \
     tags, counts, attrs, point, at, w_int, w_big, w_text, w_flag, w_num, pairs, maybe, inner";

/// The test's own codec agrees with itself on ALL_TYPES, so a failure in
/// the tests below is rill's and not the reader's.
#[test]
fn the_test_codec_reads_what_it_writes() {
    let file = parse_proto(ALL_TYPES);
    assert_eq!(file.syntax, "proto3");
    let names: Vec<String> = file.messages.iter().map(|m| m.name.clone()).collect();
    assert_eq!(names, vec!["AllTypes", "Point", "Pair"]);
    let mut m = file.first().clone();
    let message = all_types_message();
    let err = std::panic::catch_unwind(|| decode_message(&file, &m, &message.0));
    assert!(err.is_err(), "field 99 is unknown to the strict reader");
    m.fields.push(FieldDef {
        label: Label::Plain,
        ty: "string".into(),
        map_key: None,
        name: "extra".into(),
        number: 99,
    });
    let v = decode_message(&file, &m, &message.0);
    assert_eq!(v["i32"], json!(-3));
    assert_eq!(v["sf32"], json!(-7));
    assert_eq!(v["u32"], json!(4_000_000_000_u64));
    assert_eq!(v["s64"], json!(-11));
    assert_eq!(v["ratio"], json!(0.5));
    assert_eq!(v["suit"], json!("SPADES"));
    assert_eq!(v["counts"], json!([1, -2, 300]));
    assert_eq!(v["attrs"], json!({"x": 1, "y": -2}));
    assert_eq!(v["at"], json!(1_704_164_645_123_i64));
    assert_eq!(v["w_int"], json!(-1));
    assert_eq!(
        v["pairs"],
        json!([{"k": "p", "v": 1.5}, {"k": "q", "v": 0.0}])
    );
    assert_eq!(v["maybe"], json!(0));
    assert_eq!(
        v["inner"],
        json!({"label": "in", "points": [{"x": 5, "y": 6}]})
    );
    let empty = decode_message(&file, file.first(), &[]);
    assert_eq!(empty["suit"], json!("HEARTS"));
    assert_eq!(empty["point"], Json::Null);
    assert_eq!(empty["maybe"], Json::Null);
    assert_eq!(empty["name"], json!(""));
    let framed = frame(7, &[0x02, 0x02], &message.0);
    let (id, indexes, rest) = unframe(&framed);
    assert_eq!((id, indexes, rest), (7, vec![1], &message.0[..]));
    assert_eq!(unframe(&frame(7, FIRST, &[])).1, vec![0]);
}

// ------------------------------------------------------------ embedded ---

/// `CREATE STREAM` without value columns infers every protobuf type's column
/// from the first message of the latest `<topic>-value` schema; the values
/// of a protobuf record with every field, and of an empty one, read as
/// ksqlDB reads them; INSERT writes the stream's schema id and indexes
/// `[0]`; a topic without a subject is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_columns_are_inferred_from_the_first_message_of_the_latest_schema() {
    let registry = Registry::start();
    registry.register_protobuf(
        "all_types-value",
        "syntax = \"proto3\"; message Old { string old = 1; }",
    );
    let source_id = registry.register_protobuf("all_types-value", ALL_TYPES);
    let (_server, client) = start_with_registry(&registry, &[]).await;

    create_all_types_streams(&client, "PROTOBUF", ALL_TYPES_COLUMNS).await;
    // Inferring registered nothing new.
    assert_eq!(registry.subjects(), vec!["all_types-value"]);
    assert_eq!(registry.versions("all_types-value").len(), 2);

    // A record with every field set and an empty one, through INSERT: the
    // values come back as they went in, NULLs as proto3 reads absent
    // fields.
    exec(
        &client,
        "INSERT INTO keyed (id, flag, i32, s32, sf32, u32, f32, i64, s64, sf64, u64, f64, ratio, score, name, raw, suit,
           tags, counts, attrs, point, at, w_int, w_big, w_text, w_flag, w_num, pairs, maybe, inner) VALUES
           ('full', true, -3, -5, -7, 4000000000, 3000000000, -9000000000, -11, -13, 1099511627776, 17, 0.5, 2.25, 'zoë',
            'ok', 'SPADES', ARRAY['a', 'b'], ARRAY[CAST(1 AS BIGINT), CAST(-2 AS BIGINT), CAST(300 AS BIGINT)],
            MAP('x' := CAST(1 AS BIGINT), 'y' := CAST(-2 AS BIGINT)), STRUCT(X := 3, Y := -4),
            '2024-01-02T03:04:05.123', -1, 8589934592, 'wrapped', true, -0.5,
            ARRAY[STRUCT(K := 'p', V := 1.5), STRUCT(K := 'q', V := 0.0)], 0,
            STRUCT(LABEL := 'in', POINTS := ARRAY[STRUCT(X := 5, Y := 6)]));",
    )
    .await;
    exec(&client, "INSERT INTO keyed (id) VALUES ('empty');").await;
    let rows = query(&client, &format!("{ALL_TYPES_SELECT} FROM keyed;")).await;
    let expected_rows: Vec<Vec<&str>> = ALL_TYPES_ROWS.iter().map(|r| r.to_vec()).collect();
    assert_eq!(normalized(plain(&rows)), normalized(expected_rows.clone()));
    let rows = query(&client, &format!("{ALL_TYPES_SELECT} FROM all_types;")).await;
    assert_eq!(normalized(plain(&rows)), normalized(expected_rows));

    // What INSERT wrote: framed with the id of the schema the stream was
    // inferred from, message indexes [0] as the single byte 0.
    let raw = raw_values(&client, "all_types_raw", "all_types").await;
    assert_eq!(raw.len(), 2);
    for r in &raw {
        assert_eq!(
            &r[..6],
            &frame(source_id, FIRST, &[])[..],
            "header of {r:02x?}"
        );
    }
    let (_, _, full) = decode_framed(&registry, &raw[0]);
    assert_eq!(
        full,
        json!({
            "flag": true, "i32": -3, "s32": -5, "sf32": -7, "u32": 4_000_000_000_u64,
            "f32": 3_000_000_000_u64, "i64": -9_000_000_000_i64, "s64": -11, "sf64": -13,
            "u64": 1_099_511_627_776_u64, "f64": 17, "ratio": 0.5, "score": 2.25, "name": "zoë",
            "raw": "\\x6f6b", "suit": "SPADES", "tags": ["a", "b"], "counts": [1, -2, 300],
            "attrs": {"x": 1, "y": -2}, "point": {"x": 3, "y": -4}, "at": 1_704_164_645_123_i64,
            "w_int": -1, "w_big": 8_589_934_592_i64, "w_text": "wrapped", "w_flag": true,
            "w_num": -0.5, "pairs": [{"k": "p", "v": 1.5}, {"k": "q", "v": 0.0}], "maybe": 0,
            "inner": {"label": "in", "points": [{"x": 5, "y": 6}]}
        })
    );
    let (_, _, empty) = decode_framed(&registry, &raw[1]);
    assert_eq!(
        empty,
        decode_message(&parse_proto(ALL_TYPES), parse_proto(ALL_TYPES).first(), &[])
    );

    // No subject for the topic: the statement fails and says which subject.
    assert_no_subject_is_a_clear_error(&client, "PROTOBUF").await;
}

/// The schema of the embedded-mode pipeline's source.
const PAGEVIEW: &str = r#"syntax = "proto3";

import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message Pageview {
  string page = 1;
  int32 duration = 2;
  bool premium = 3;
  double score = 4;
  google.protobuf.StringValue referrer = 5;
  repeated string tags = 6;
  google.protobuf.Timestamp viewed_at = 7;
}
"#;

/// Embedded mode end to end: inferred columns, INSERT writing framed
/// protobuf with the registered id, a CSAS whose proto3 output schema is
/// registered under `<TOPIC>-value` (schemaType PROTOBUF) and whose records
/// decode with it, pull and push queries, and CTAS aggregates (one with a
/// PROTOBUF key, registered under `-key`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_pipeline_over_a_protobuf_stream() {
    let registry = Registry::start();
    let source_id = registry.register_protobuf("pageviews-value", PAGEVIEW);
    let (_server, client) = start_with_registry(&registry, &[]).await;
    create_and_fill_pageviews(&client, "PROTOBUF").await;

    // What INSERT wrote: framed with the id of the schema the stream was
    // inferred from, and the message decodes with that schema.
    let raw = raw_values(&client, "pageviews_raw", "pageviews").await;
    assert_eq!(raw.len(), 3);
    let decoded: Vec<(u32, Vec<i64>, Json)> =
        raw.iter().map(|r| decode_framed(&registry, r)).collect();
    assert!(
        decoded
            .iter()
            .all(|(id, indexes, _)| *id == source_id && indexes == &[0]),
        "INSERT must write schema id {source_id} and indexes [0]: {decoded:?}"
    );
    assert_eq!(
        decoded[1].2,
        json!({
            "page": "/home", "duration": 30, "premium": false, "score": 1.5,
            "referrer": "google", "tags": ["a", "b"], "viewed_at": 1_704_164_646_250_i64
        })
    );
    assert_eq!(decoded[0].2["referrer"], Json::Null);

    // A CSAS writes PROTOBUF (the source's format) and registers a proto3
    // schema under the output topic's subject; the key is not in the value.
    exec(
        &client,
        "CREATE STREAM long_views AS SELECT viewer, page, duration * 2 AS d2, tags[1] AS first_tag, viewed_at
           FROM pageviews WHERE duration > 10 EMIT CHANGES;",
    )
    .await;
    assert_eq!(
        property(&client, "long_views", "value_format").await,
        "PROTOBUF"
    );
    assert_eq!(
        property(&client, "long_views", "kafka_topic").await,
        "LONG_VIEWS"
    );
    let rows = query(
        &client,
        "SELECT viewer, page, d2, first_tag, viewed_at FROM long_views;",
    )
    .await;
    assert_eq!(
        plain(&rows),
        vec![
            vec!["u2", "/home", "60", "a", "2024-01-02 03:04:06.250"],
            vec!["u1", "/about", "24", "c", "2024-01-02 03:04:07"]
        ]
    );
    let (out_id, out_schema) = latest_of(&registry, "LONG_VIEWS-value");
    assert_eq!(
        first_message_fields(&out_schema),
        fields_of(&[
            ("PAGE", "string"),
            ("D2", "int32"),
            ("FIRST_TAG", "string"),
            ("VIEWED_AT", "google.protobuf.Timestamp"),
        ]),
        "{out_schema}"
    );
    assert!(
        !registry.subjects().contains(&"LONG_VIEWS-key".to_string()),
        "a KAFKA key registers no schema: {:?}",
        registry.subjects()
    );
    let raw = raw_values(&client, "long_views_raw", "LONG_VIEWS").await;
    let decoded: Vec<(u32, Vec<i64>, Json)> =
        raw.iter().map(|r| decode_framed(&registry, r)).collect();
    assert_eq!(
        decoded,
        vec![
            (
                out_id,
                vec![0],
                json!({"PAGE": "/home", "D2": 60, "FIRST_TAG": "a", "VIEWED_AT": 1_704_164_646_250_i64})
            ),
            (
                out_id,
                vec![0],
                json!({"PAGE": "/about", "D2": 24, "FIRST_TAG": "c", "VIEWED_AT": 1_704_164_647_000_i64})
            ),
        ]
    );

    // A push query over the output, and aggregates over the PROTOBUF
    // stream; the value schema is registered, and with
    // key_format='PROTOBUF' the key schema too.
    aggregate_pageviews(&client, "PROTOBUF").await;
    let (_, per_page_schema) = latest_of(&registry, "PER_PAGE-value");
    // TOTAL's field has the type of the column (SUM of an INT).
    let total_type = match describe(&client, "per_page").await[2][1].as_str() {
        "INTEGER" => "int32",
        "BIGINT" => "int64",
        other => panic!("SUM(duration) is a {other}"),
    };
    assert_eq!(
        first_message_fields(&per_page_schema),
        fields_of(&[("N", "int64"), ("TOTAL", total_type)]),
        "{per_page_schema}"
    );
    let (_, per_viewer_schema) = latest_of(&registry, "PER_VIEWER-value");
    assert_eq!(
        first_message_fields(&per_viewer_schema),
        fields_of(&[("N", "int64"), ("BEST", "double")]),
        "{per_viewer_schema}"
    );
    let (key_id, key_schema) = latest_of(&registry, "PER_VIEWER-key");
    assert_eq!(
        first_message_fields(&key_schema),
        fields_of(&[("VIEWER", "string")]),
        "{key_schema}"
    );
    assert!(
        !registry.subjects().contains(&"PER_PAGE-key".to_string()),
        "PER_PAGE has a KAFKA key: {:?}",
        registry.subjects()
    );
    // The PROTOBUF keys of PER_VIEWER: a message holding the key column,
    // framed with the id of the key schema.
    exec(
        &client,
        "CREATE STREAM per_viewer_raw (k BYTES KEY, raw BYTES) WITH (kafka_topic='PER_VIEWER', key_format='KAFKA', value_format='KAFKA');",
    )
    .await;
    let rows = query(&client, "SELECT k FROM per_viewer_raw;").await;
    let mut keys: Vec<Json> = plain(&rows)
        .into_iter()
        .map(|r| {
            let (id, indexes, key) = decode_framed(&registry, &unhex(r[0]));
            assert_eq!(
                (id, indexes),
                (key_id, vec![0]),
                "key framed with the PER_VIEWER-key id"
            );
            key
        })
        .collect();
    keys.sort_by_key(Json::to_string);
    keys.dedup();
    assert_eq!(
        keys,
        vec![
            json!({"VIEWER": "u1"}),
            json!({"VIEWER": "u2"}),
            json!({"VIEWER": "u3"})
        ]
    );
    // A pull query on a PROTOBUF-keyed table finds its key.
    let rows = query(
        &client,
        "SELECT viewer, n FROM per_viewer WHERE viewer = 'u3';",
    )
    .await;
    assert_eq!(plain(&rows), vec![vec!["u3", "1"]]);
}

/// Declared value columns register a proto3 schema for them under
/// `<topic>-value` (field names = column names, TIMESTAMP as
/// google.protobuf.Timestamp); NULLs are written as absent fields and read
/// back as proto3 defaults (NULL for messages); a second stream inferring
/// from that subject reads the same rows; DECIMAL, DATE and TIME are
/// refused with SQLSTATE 0A000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_columns_register_a_proto3_schema() {
    let registry = Registry::start();
    let (_server, client) = start_with_registry(&registry, &[]).await;
    exec(
        &client,
        "CREATE STREAM clicks (id VARCHAR KEY, x INT, label STRING, big BIGINT, ok BOOLEAN, ratio DOUBLE, blob BYTES,
           at TIMESTAMP, tags ARRAY<STRING>, point STRUCT<X INT, Y INT>, attrs MAP<STRING, DOUBLE>)
           WITH (kafka_topic='clicks', value_format='PROTOBUF', partitions=1);",
    )
    .await;
    let (id, schema) = latest_of(&registry, "clicks-value");
    let fields = first_message_fields(&schema);
    assert_eq!(
        fields.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        vec!["X", "LABEL", "BIG", "OK", "RATIO", "BLOB", "AT", "TAGS", "POINT", "ATTRS"],
        "{schema}"
    );
    let types: BTreeMap<&str, &str> = fields
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    assert_eq!(types["X"], "int32", "{schema}");
    assert_eq!(types["LABEL"], "string", "{schema}");
    assert_eq!(types["BIG"], "int64", "{schema}");
    assert_eq!(types["OK"], "bool", "{schema}");
    assert_eq!(types["RATIO"], "double", "{schema}");
    assert_eq!(types["BLOB"], "bytes", "{schema}");
    assert_eq!(types["AT"], "google.protobuf.Timestamp", "{schema}");
    assert_eq!(types["TAGS"], "repeated string", "{schema}");
    assert_eq!(types["ATTRS"], "map<string, double>", "{schema}");
    let file = parse_proto(&schema);
    let point = file
        .message(types["POINT"])
        .unwrap_or_else(|| panic!("POINT's type is a message of the schema: {schema}"));
    assert_eq!(
        ProtoFile::field_types(point),
        fields_of(&[("X", "int32"), ("Y", "int32")]),
        "{schema}"
    );
    assert_eq!(registry.subjects(), vec!["clicks-value"]);

    exec(
        &client,
        "INSERT INTO clicks (id, x, label, big, ok, ratio, blob, at, tags, point, attrs) VALUES
           ('k', 7, 'hi', -5000000000, true, 0.25, 'hi', '2024-01-02T03:04:05.123', ARRAY['t'], STRUCT(X := 1, Y := -1), MAP('m' := 1.5)),
           ('j', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    )
    .await;
    let select = "SELECT id, x, label, big, ok, ratio, blob, at, tags, point, attrs";
    let expected = vec![
        vec![
            "k",
            "7",
            "hi",
            "-5000000000",
            "t",
            "0.25",
            "\\x6869",
            "2024-01-02 03:04:05.123",
            r#"["t"]"#,
            r#"{"X":1,"Y":-1}"#,
            r#"{"m":1.5}"#,
        ],
        vec![
            "j", "0", "", "0", "f", "0", "\\x", "NULL", "[]", "NULL", "{}",
        ],
    ];
    let rows = query(&client, &format!("{select} FROM clicks;")).await;
    assert_eq!(normalized(plain(&rows)), normalized(expected.clone()));
    let raw = raw_values(&client, "clicks_raw", "clicks").await;
    let decoded: Vec<(u32, Vec<i64>, Json)> =
        raw.iter().map(|r| decode_framed(&registry, r)).collect();
    assert_eq!(
        decoded[0],
        (
            id,
            vec![0],
            json!({"X": 7, "LABEL": "hi", "BIG": -5_000_000_000_i64, "OK": true, "RATIO": 0.25,
                   "BLOB": "\\x6869", "AT": 1_704_164_645_123_i64, "TAGS": ["t"],
                   "POINT": {"X": 1, "Y": -1}, "ATTRS": {"m": 1.5}})
        )
    );
    // The NULLs are absent fields: nothing but the header.
    assert_eq!(
        raw[1],
        frame(id, FIRST, &[]),
        "a row of NULLs is an empty message"
    );

    exec(
        &client,
        "CREATE STREAM clicks_again WITH (kafka_topic='clicks', value_format='PROTOBUF');",
    )
    .await;
    assert_eq!(
        describe(&client, "clicks_again").await,
        columns(&[
            ("X", "INTEGER", "NULL"),
            ("LABEL", "STRING", "NULL"),
            ("BIG", "BIGINT", "NULL"),
            ("OK", "BOOLEAN", "NULL"),
            ("RATIO", "DOUBLE", "NULL"),
            ("BLOB", "BYTES", "NULL"),
            ("AT", "TIMESTAMP", "NULL"),
            ("TAGS", "ARRAY<STRING>", "NULL"),
            ("POINT", "STRUCT<X INTEGER, Y INTEGER>", "NULL"),
            ("ATTRS", "MAP<STRING, DOUBLE>", "NULL"),
        ])
    );
    let rows = query(
        &client,
        "SELECT x, label, big, ok, ratio, blob, at, tags, point, attrs FROM clicks_again;",
    )
    .await;
    let without_key: Vec<Vec<&str>> = expected.iter().map(|r| r[1..].to_vec()).collect();
    assert_eq!(normalized(plain(&rows)), normalized(without_key));
    // Re-declaring the same columns over the same topic registers nothing
    // new: the registry gives the same id back.
    exec(
        &client,
        "CREATE STREAM clicks_same (id VARCHAR KEY, x INT, label STRING, big BIGINT, ok BOOLEAN, ratio DOUBLE, blob BYTES,
           at TIMESTAMP, tags ARRAY<STRING>, point STRUCT<X INT, Y INT>, attrs MAP<STRING, DOUBLE>)
           WITH (kafka_topic='clicks', value_format='PROTOBUF');",
    )
    .await;
    assert_eq!(registry.versions("clicks-value"), vec![id]);

    // key_format='PROTOBUF': the key columns are a message registered
    // under `<topic>-key`, and the key reads back.
    exec(
        &client,
        "CREATE STREAM keyed_clicks (id VARCHAR KEY, v INT) WITH (kafka_topic='keyed_clicks', key_format='PROTOBUF',
           value_format='PROTOBUF', partitions=1);",
    )
    .await;
    let (key_id, key_schema) = latest_of(&registry, "keyed_clicks-key");
    assert_eq!(
        first_message_fields(&key_schema),
        fields_of(&[("ID", "string")]),
        "{key_schema}"
    );
    exec(
        &client,
        "INSERT INTO keyed_clicks (id, v) VALUES ('a', 1), ('b', 2);",
    )
    .await;
    let rows = query(&client, "SELECT id, v FROM keyed_clicks;").await;
    assert_eq!(plain(&rows), vec![vec!["a", "1"], vec!["b", "2"]]);
    exec(
        &client,
        "CREATE STREAM keyed_clicks_raw (k BYTES KEY, raw BYTES) WITH (kafka_topic='keyed_clicks', key_format='KAFKA', value_format='KAFKA');",
    )
    .await;
    let rows = query(&client, "SELECT k FROM keyed_clicks_raw;").await;
    let keys: Vec<(u32, Vec<i64>, Json)> = plain(&rows)
        .into_iter()
        .map(|r| decode_framed(&registry, &unhex(r[0])))
        .collect();
    assert_eq!(
        keys,
        vec![
            (key_id, vec![0], json!({"ID": "a"})),
            (key_id, vec![0], json!({"ID": "b"}))
        ]
    );
    let subjects = vec!["clicks-value", "keyed_clicks-key", "keyed_clicks-value"];
    assert_eq!(registry.subjects(), subjects);

    // Types protobuf has no plain field for: refused, and nothing is
    // created or registered.
    for (column, ty) in [
        ("amount", "DECIMAL(6, 2)"),
        ("day", "DATE"),
        ("tod", "TIME"),
    ] {
        let sql = format!(
            "CREATE STREAM refused (id VARCHAR KEY, {column} {ty}) WITH (kafka_topic='refused', value_format='PROTOBUF', partitions=1);"
        );
        let err = expect_sqlstate(&client, &sql, "0A000").await;
        let message = describe_error(&err);
        let type_name = ty.split('(').next().unwrap_or(ty);
        assert!(
            message.contains(type_name),
            "the error for a {ty} column should name the type: {message}"
        );
    }
    let rows = query(&client, "SHOW STREAMS;").await;
    assert!(
        !plain(&rows).iter().any(|r| r[0] == "REFUSED"),
        "a refused CREATE left a stream behind: {rows:?}"
    );
    assert_eq!(registry.subjects(), subjects);
}

/// Without `--schema-registry`, a statement using PROTOBUF fails and says
/// which flag is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_without_a_registry_is_a_clear_error() {
    let server = Server::start().await.expect("start rill");
    let client = server.connect().await.expect("connect");
    let wrong = registry_flag_problems(&client, "PROTOBUF").await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------- Kafka ---

/// The source schema of the Kafka test: a nested message, repeated
/// strings and packed ints, a wrapper, a Timestamp, bytes and an enum; the
/// nested message and the enum come after the value message.
const ORDER: &str = r#"
syntax = "proto3";
package shop;

import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message Order {
  int64 order_id = 1;
  Customer customer = 2;
  repeated string items = 3;
  google.protobuf.StringValue coupon = 4;
  double amount = 5;
  google.protobuf.Timestamp placed_at = 6;
  bytes blob = 7;
  Status status = 8;
  repeated int32 qty = 9;
}

message Customer {
  string name = 1;
  int32 tier = 2;
}

enum Status {
  NEW = 0;
  PAID = 1;
  SHIPPED = 2;
}
"#;

/// An ORDER message; `None` leaves a field out.
fn order_message(
    order_id: i64,
    customer: Option<(&str, i32)>,
    items: &[&str],
    coupon: Option<&str>,
    amount: f64,
    placed_at: i64,
    status: i64,
) -> Pb {
    let mut m = Pb::new().int(1, order_id);
    if let Some((name, tier)) = customer {
        m = m.message(2, Pb::new().string(1, name).int(2, i64::from(tier)));
    }
    for i in items {
        m = m.string(3, i);
    }
    if let Some(c) = coupon {
        m = m.message(4, Pb::new().string(1, c));
    }
    m.double(5, amount)
        .timestamp(6, placed_at)
        .bytes(7, &[1, 2, 255])
        .int(8, status)
        .packed(9, &[1, 2])
}

/// Kafka mode: an outside producer writes Confluent-framed protobuf
/// (encoded by the test, with the registry's id) and malformed records (no
/// magic byte, an unknown schema id, bytes that are no protobuf message, a
/// message index out of range); rill's stream, CSAS and CTAS see the right
/// values (absent fields as proto3 defaults or NULL, an unknown field
/// ignored, the long form of the indexes `[0]` accepted), the four bad
/// records land in the processing log and are counted while the queries
/// keep running, INSERT writes framed records with the source's id, and the
/// CSAS output topic decodes with the schema the registry holds for each
/// record's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_protobuf_from_an_outside_producer() {
    let (_cluster, brokers) = mock_cluster(&[
        "orders",
        "BIG_ORDERS",
        "SPEND",
        "all_types",
        "rill_processing_log",
    ]);
    let registry = Registry::start();
    let order_id = registry.register_protobuf("orders-value", ORDER);
    let all_types_id = registry.register_protobuf("all_types-value", ALL_TYPES);

    let good1 = order_message(
        1,
        Some(("Al", 2)),
        &["pen", "ink"],
        None,
        12.5,
        1_700_000_000_123,
        1,
    );
    // Sparse: no customer tier, no items, amount 0 and status NEW left out
    // as proto3 writers do.
    let good2 = Pb::new()
        .int(1, 2)
        .message(2, Pb::new().string(1, "Bo"))
        .message(4, Pb::new().string(1, "SAVE10"))
        .timestamp(6, 1_700_000_001_000);
    // An unknown field (15) after the known ones.
    let good3 = order_message(
        3,
        Some(("Al", 2)),
        &["pad"],
        Some("VIP"),
        999.99,
        1_700_000_002_000,
        2,
    )
    .string(15, "from a newer schema")
    .int(16, 42);
    let records: Vec<(&str, Vec<u8>)> = vec![
        ("c1", frame(order_id, FIRST, &good1.0)),
        ("c1", b"plain text, no magic byte".to_vec()),
        ("c2", frame(order_id, FIRST, &good2.0)),
        ("c2", frame(9999, FIRST, &good2.0)),
        // The indexes [0] written out: count 1, index 0.
        ("c1", frame(order_id, &[0x02, 0x00], &good3.0)),
        // Wire type 7 does not exist.
        ("c1", frame(order_id, FIRST, &[0x0f, 0x01, 0x02])),
        // Message index [5]: the schema has two messages.
        ("c2", frame(order_id, &[0x02, 0x0a], &good1.0)),
    ];
    let p = producer(&brokers);
    // Every type of ALL_TYPES as another writer encodes it (negative
    // varints in ten bytes, zig-zag, fixed widths, packed numbers, an
    // unknown field 99, the long form of the indexes [0]), and an empty
    // message.
    for value in [
        frame(all_types_id, &[0x02, 0x00], &all_types_message().0),
        frame(all_types_id, FIRST, &[]),
    ] {
        p.send(
            FutureRecord::<(), _>::to("all_types")
                .payload(&value)
                .partition(0),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    }
    produce_keyed(&p, "orders", &records).await;

    let (_server, client) =
        start_with_registry(&registry, &["--kafka-brokers", &brokers, NO_COMMAND_TOPIC]).await;
    exec(
        &client,
        "CREATE STREAM orders (customer_id VARCHAR KEY) WITH (kafka_topic='orders', value_format='PROTOBUF');",
    )
    .await;
    assert_eq!(
        describe(&client, "orders").await,
        columns(&[
            ("CUSTOMER_ID", "STRING", "KEY"),
            ("ORDER_ID", "BIGINT", "NULL"),
            ("CUSTOMER", "STRUCT<NAME STRING, TIER INTEGER>", "NULL"),
            ("ITEMS", "ARRAY<STRING>", "NULL"),
            ("COUPON", "STRING", "NULL"),
            ("AMOUNT", "DOUBLE", "NULL"),
            ("PLACED_AT", "TIMESTAMP", "NULL"),
            ("BLOB", "BYTES", "NULL"),
            ("STATUS", "STRING", "NULL"),
            ("QTY", "ARRAY<INTEGER>", "NULL"),
        ])
    );
    exec(
        &client,
        "CREATE STREAM all_types WITH (kafka_topic='all_types', value_format='PROTOBUF');",
    )
    .await;
    let rows = query(&client, &format!("{ALL_TYPES_SELECT} FROM all_types;")).await;
    assert_eq!(
        normalized(plain(&rows)),
        normalized(ALL_TYPES_ROWS.iter().map(|r| r.to_vec()).collect())
    );

    exec(
        &client,
        "CREATE STREAM big_orders AS SELECT customer_id, order_id, customer->name AS name, items, coupon, amount, placed_at, status
           FROM orders WHERE amount > 10 EMIT CHANGES;",
    )
    .await;
    exec(
        &client,
        "CREATE TABLE spend AS SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY customer_id;",
    )
    .await;

    let rows = query(
        &client,
        "SELECT customer_id, n, total FROM spend ORDER BY customer_id;",
    )
    .await;
    assert_eq!(
        plain(&rows),
        vec![vec!["c1", "2", "1012.49"], vec!["c2", "1", "0"]]
    );
    let rows = query(
        &client,
        "SELECT customer_id, order_id, customer, customer->tier, items, coupon, amount, placed_at, blob, status, qty FROM orders;",
    )
    .await;
    assert_eq!(
        normalized(plain(&rows)),
        normalized(vec![
            vec![
                "c1",
                "1",
                r#"{"NAME":"Al","TIER":2}"#,
                "2",
                r#"["pen","ink"]"#,
                "NULL",
                "12.5",
                "2023-11-14 22:13:20.123",
                "\\x0102ff",
                "PAID",
                "[1,2]"
            ],
            vec![
                "c2",
                "2",
                r#"{"NAME":"Bo","TIER":0}"#,
                "0",
                "[]",
                "SAVE10",
                "0",
                "2023-11-14 22:13:21",
                "\\x",
                "NEW",
                "[]"
            ],
            vec![
                "c1",
                "3",
                r#"{"NAME":"Al","TIER":2}"#,
                "2",
                r#"["pad"]"#,
                "VIP",
                "999.99",
                "2023-11-14 22:13:22",
                "\\x0102ff",
                "SHIPPED",
                "[1,2]"
            ],
        ])
    );

    // The four bad records, once per persistent query, and nothing else.
    let bad = ["1", "3", "5", "6"];
    let (csas, _, _) = query_of(&client, "BIG_ORDERS").await;
    let (ctas, _, _) = query_of(&client, "SPEND").await;
    let log = processing_log(&client, &[&csas, &ctas], bad.len()).await;
    for q in [&csas, &ctas] {
        let mut offsets: Vec<(&str, &str, &str)> = log
            .iter()
            .filter(|r| &r[0] == q)
            .map(|r| (r[1].as_str(), r[2].as_str(), r[3].as_str()))
            .collect();
        offsets.sort();
        assert_eq!(
            offsets,
            bad.iter().map(|o| ("orders", "0", *o)).collect::<Vec<_>>(),
            "processing log entries of {q}: {log:?}"
        );
        let error_at = |offset: &str| {
            log.iter()
                .find(|r| &r[0] == q && r[3] == offset)
                .map(|r| r[4].clone())
                .unwrap_or_default()
        };
        assert!(
            error_at("3").contains("9999"),
            "the error for the unknown schema id should name it: {:?}",
            error_at("3")
        );
        for offset in bad {
            assert!(
                !error_at(offset).is_empty() && error_at(offset) != "NULL",
                "offset {offset} of {q} has an error message: {log:?}"
            );
        }
        for r in log.iter().filter(|r| &r[0] == q) {
            assert_ne!(r[5], "NULL", "the bad record itself is logged: {r:?}");
        }
    }
    assert!(
        log.iter()
            .all(|r| r[1] == "orders" && bad.contains(&r[3].as_str())),
        "only the four bad records are logged: {log:?}"
    );
    for sink in ["BIG_ORDERS", "SPEND"] {
        let (id, status, errors) = query_of(&client, sink).await;
        assert_eq!((status.as_str(), errors.as_str()), ("RUNNING", "4"), "{id}");
    }

    // INSERT writes a framed record with the source's schema id, and the
    // queries (still running) pick it up.
    exec(
        &client,
        "INSERT INTO orders (customer_id, order_id, customer, items, coupon, amount, placed_at, blob, status, qty)
           VALUES ('c3', 4, STRUCT(NAME := 'Cy', TIER := 3), ARRAY['x', 'y'], NULL, 20.05, '2024-01-02T03:04:05.123', NULL, 'PAID', ARRAY[7, -1]);",
    )
    .await;
    let rows = query(
        &client,
        "SELECT n, total FROM spend WHERE customer_id = 'c3';",
    )
    .await;
    assert_eq!(plain(&rows), vec![vec!["1", "20.05"]]);
    let source = consume_raw(&brokers, "orders", 0, records.len() + 1);
    assert_eq!(
        source.len(),
        records.len() + 1,
        "the produced records and one INSERT"
    );
    let (key, value) = &source[records.len()];
    assert_eq!(key.as_deref(), Some(&b"c3"[..]));
    let value = value.as_deref().expect("a value");
    let (id, indexes, inserted) = decode_framed(&registry, value);
    assert_eq!(
        (id, indexes),
        (order_id, vec![0]),
        "INSERT uses the id of the stream's schema"
    );
    assert_eq!(
        inserted,
        json!({
            "order_id": 4, "customer": {"name": "Cy", "tier": 3}, "items": ["x", "y"],
            "coupon": null, "amount": 20.05, "placed_at": 1_704_164_645_123_i64, "blob": "\\x",
            "status": "PAID", "qty": [7, -1]
        })
    );

    // The CSAS output in Kafka: framed with the id of BIG_ORDERS-value.
    let (out_id, out_schema) = latest_of(&registry, "BIG_ORDERS-value");
    assert_eq!(
        first_message_fields(&out_schema),
        fields_of(&[
            ("ORDER_ID", "int64"),
            ("NAME", "string"),
            ("ITEMS", "repeated string"),
            ("COUPON", "string"),
            ("AMOUNT", "double"),
            ("PLACED_AT", "google.protobuf.Timestamp"),
            ("STATUS", "string"),
        ]),
        "{out_schema}"
    );
    let out = consume_raw(&brokers, "BIG_ORDERS", 0, 3);
    type Decoded = (Option<Vec<u8>>, (u32, Vec<i64>, Json));
    let decoded: Vec<Decoded> = out
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                decode_framed(&registry, v.as_deref().expect("a value")),
            )
        })
        .collect();
    assert_eq!(
        decoded,
        vec![
            (
                Some(b"c1".to_vec()),
                (
                    out_id,
                    vec![0],
                    json!({"ORDER_ID": 1, "NAME": "Al", "ITEMS": ["pen", "ink"], "COUPON": "",
                           "AMOUNT": 12.5, "PLACED_AT": 1_700_000_000_123_i64, "STATUS": "PAID"})
                )
            ),
            (
                Some(b"c1".to_vec()),
                (
                    out_id,
                    vec![0],
                    json!({"ORDER_ID": 3, "NAME": "Al", "ITEMS": ["pad"], "COUPON": "VIP",
                           "AMOUNT": 999.99, "PLACED_AT": 1_700_000_002_000_i64, "STATUS": "SHIPPED"})
                )
            ),
            (
                Some(b"c3".to_vec()),
                (
                    out_id,
                    vec![0],
                    json!({"ORDER_ID": 4, "NAME": "Cy", "ITEMS": ["x", "y"], "COUPON": "",
                           "AMOUNT": 20.05, "PLACED_AT": 1_704_164_645_123_i64, "STATUS": "PAID"})
                )
            ),
        ]
    );
    latest_of(&registry, "SPEND-value");
}

/// The schema the interop test's Python producer writes with.
const PAYMENT: &str = r#"syntax = "proto3";
package pay;

import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message Payment {
  int64 id = 1;
  double amount = 2;
  Currency currency = 3;
  google.protobuf.StringValue note = 4;
  google.protobuf.Timestamp paid_at = 5;
  Meta meta = 6;
  repeated string tags = 7;
  map<string, int64> attrs = 8;
}

enum Currency {
  EUR = 0;
  USD = 1;
}

message Meta {
  string source = 1;
  int32 retries = 2;
}
"#;

/// Interop with Confluent's own Python serializers: records produced with
/// `ProtobufSerializer` (which registers its schema over HTTP, as a base64
/// FileDescriptorProto the registry knows as the `.proto` text registered
/// first) are read by rill, and rill's output topic is read back with
/// `ProtobufDeserializer` (which fetches the writer schema by the id in
/// each record and resolves its message indexes), after protoc has
/// compiled the schema rill registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_python_serializers_interoperate() {
    if !python_imports(
        PYTHON_FLAGS,
        "import grpc_tools.protoc; \
         from confluent_kafka.schema_registry.protobuf import ProtobufSerializer, ProtobufDeserializer",
        "confluent_kafka's Protobuf serializers or grpcio-tools",
    ) {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("rill-protobuf-interop-")
        .tempdir()
        .expect("temp dir");
    let (_cluster, brokers) = mock_cluster(&["payments", "PAYMENTS_OUT", "rill_processing_log"]);
    let registry = Registry::start();
    let python = |args: &[&str]| run_python(PYTHON_FLAGS, "protobuf_interop.py", args);
    // Registers `text` as protobuf's serialized form of schema `id` too.
    let give_serialized_form = |id: u32, text: &str, file: &str| -> String {
        let path = dir.path().join(file);
        std::fs::write(&path, text).expect("write the schema");
        let path = path.to_string_lossy().into_owned();
        let out = python(&["descriptor", &path]);
        let form = out[0]["serialized"]
            .as_str()
            .expect("serialized")
            .to_string();
        registry.set_serialized(id, &form);
        path
    };

    let url = registry.url();
    let payments_id = registry.register_protobuf("payments-value", PAYMENT);
    let payment_file = give_serialized_form(payments_id, PAYMENT, "payment.proto");
    let produced = python(&["produce", &brokers, &url, "payments", &payment_file]);
    assert_eq!(
        produced,
        vec![json!({"schema_id": payments_id, "message_indexes": [0]})],
        "ProtobufSerializer found the registered schema"
    );
    assert_eq!(registry.versions("payments-value"), vec![payments_id]);

    let (_server, client) =
        start_with_registry(&registry, &["--kafka-brokers", &brokers, NO_COMMAND_TOPIC]).await;
    exec(
        &client,
        "CREATE STREAM payments (payer VARCHAR KEY) WITH (kafka_topic='payments', value_format='PROTOBUF');",
    )
    .await;
    assert_eq!(
        describe(&client, "payments").await,
        columns(&[
            ("PAYER", "STRING", "KEY"),
            ("ID", "BIGINT", "NULL"),
            ("AMOUNT", "DOUBLE", "NULL"),
            ("CURRENCY", "STRING", "NULL"),
            ("NOTE", "STRING", "NULL"),
            ("PAID_AT", "TIMESTAMP", "NULL"),
            ("META", "STRUCT<SOURCE STRING, RETRIES INTEGER>", "NULL"),
            ("TAGS", "ARRAY<STRING>", "NULL"),
            ("ATTRS", "MAP<STRING, BIGINT>", "NULL"),
        ])
    );
    let rows = query(
        &client,
        "SELECT payer, id, amount, currency, note, paid_at, meta, tags, attrs FROM payments;",
    )
    .await;
    assert_eq!(
        normalized(plain(&rows)),
        normalized(vec![
            vec![
                "alice",
                "1",
                "1.5",
                "EUR",
                "NULL",
                "2023-11-14 22:13:20",
                r#"{"SOURCE":"web","RETRIES":0}"#,
                r#"["a"]"#,
                r#"{"x":1}"#
            ],
            vec![
                "bob",
                "2",
                "0.25",
                "USD",
                "first",
                "2023-11-14 22:13:21.500",
                "NULL",
                "[]",
                "{}"
            ],
            vec![
                "alice",
                "3",
                "10",
                "EUR",
                "again",
                "2023-11-14 22:13:22",
                r#"{"SOURCE":"app","RETRIES":2}"#,
                r#"["b","c"]"#,
                r#"{"y":-2}"#
            ],
        ])
    );
    exec(
        &client,
        "CREATE STREAM payments_out AS SELECT payer, id, amount * 2 AS doubled, currency, note, paid_at, meta->retries AS retries, tags
           FROM payments WHERE amount > 1 EMIT CHANGES;",
    )
    .await;
    let rows = query(&client, "SELECT id FROM payments_out;").await;
    assert_eq!(plain(&rows), vec![vec!["1"], vec!["3"]]);

    let (out_id, out_schema) = latest_of(&registry, "PAYMENTS_OUT-value");
    let out_file = give_serialized_form(out_id, &out_schema, "payments_out.proto");
    let consumed = python(&["consume", &brokers, &url, "PAYMENTS_OUT", "2", &out_file]);
    assert_eq!(
        consumed,
        vec![
            json!({"key": "alice", "schema_id": out_id, "value": {
                "ID": 1, "DOUBLED": 3.0, "CURRENCY": "EUR", "NOTE": "",
                "PAID_AT": "2023-11-14T22:13:20.000+00:00", "RETRIES": 0, "TAGS": ["a"]}}),
            json!({"key": "alice", "schema_id": out_id, "value": {
                "ID": 3, "DOUBLED": 20.0, "CURRENCY": "EUR", "NOTE": "again",
                "PAID_AT": "2023-11-14T22:13:22.000+00:00", "RETRIES": 2, "TAGS": ["b", "c"]}}),
        ],
        "rill's schema: {out_schema}"
    );
}
