//! A relation's rows <-> its topic's records: key columns through the key
//! format, the rest through the value format, event time from the
//! `timestamp` column or the record's own timestamp.

use std::ops::Range;
use std::sync::Arc;

use rill_sql::catalog::{RelationDesc, PSEUDO_COLUMNS};
use rill_sql::dataflow::Change;
use rill_sql::expr::func;
use rill_sql::parser::{RelationKind, WindowKind};
use rill_sql::{DataType, Row, Value};
use rill_storage::Record;

use crate::error::{Error, Result};
use crate::format::{Decoder, Encoder, FormatKind, FormatOptions, SchemaRegistry};

/// How a windowed table's record key carries its window, as Kafka Streams'
/// windowed serdes (and so ksqlDB) write it, big-endian after the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WindowedKey {
    /// Tumbling and hopping windows: the start (8 bytes); the end is the
    /// start plus the window size.
    Time { size: i64 },
    /// Session windows: the end, then the start (8 bytes each).
    Session,
}

impl WindowedKey {
    fn of(kind: &WindowKind) -> WindowedKey {
        match kind {
            WindowKind::Tumbling { size } | WindowKind::Hopping { size, .. } => {
                WindowedKey::Time { size: *size }
            }
            WindowKind::Session { .. } => WindowedKey::Session,
        }
    }

    fn len(self) -> usize {
        match self {
            WindowedKey::Time { .. } => 8,
            WindowedKey::Session => 16,
        }
    }

    fn write(self, start: i64, end: i64, out: &mut Vec<u8>) {
        match self {
            WindowedKey::Time { .. } => out.extend_from_slice(&start.to_be_bytes()),
            WindowedKey::Session => {
                out.extend_from_slice(&end.to_be_bytes());
                out.extend_from_slice(&start.to_be_bytes());
            }
        }
    }

    /// (start, end) from the trailing bytes (`len()` of them).
    fn read(self, bytes: &[u8]) -> (i64, i64) {
        let at = |i: usize| {
            bytes
                .get(i..i + 8)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_be_bytes)
                .unwrap_or_default()
        };
        match self {
            WindowedKey::Time { size } => (at(0), at(0).saturating_add(size)),
            WindowedKey::Session => (at(8), at(0)),
        }
    }
}

/// A record's key and value bytes (`None`: no key / a tombstone).
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Where an encoded key and value are in a buffer.
pub type KeyValueAt = (Option<Range<usize>>, Option<Range<usize>>);

/// Encodes and decodes the records of one relation.
pub struct RecordCodec {
    kind: RelationKind,
    width: usize,
    key_idx: Vec<usize>,
    value_idx: Vec<usize>,
    /// The value columns are the row's first columns, in order, so a
    /// value decodes straight into its row.
    value_first: bool,
    /// Windowed tables: WINDOWSTART/WINDOWEND positions, and how the
    /// bounds trail the key columns in the record key.
    window_idx: Option<(usize, usize, WindowedKey)>,
    key_dec: Decoder,
    value_dec: Decoder,
    key_enc: Encoder,
    value_enc: Encoder,
    timestamp: Option<(usize, DataType, Option<String>)>,
    scratch: Vec<Value>,
    round_robin: u32,
}

fn value_options(rel: &RelationDesc) -> Result<FormatOptions> {
    let mut o = FormatOptions::default();
    if let Some(d) = &rel.format.value_delimiter {
        o.delimiter = FormatOptions::parse_delimiter(d)?;
    }
    if let Some(w) = rel.format.wrap_single_value {
        o.wrap_single_value = w;
    }
    Ok(o)
}

/// Whether records of `a` and `b` encode their values alike: the same
/// value columns (names and types, in the same places of the row) in JSON
/// objects. A canonical value read from one is then what the other writes.
pub fn same_value_encoding(a: &RelationDesc, b: &RelationDesc) -> bool {
    let json = |r: &RelationDesc| {
        FormatKind::parse(&r.format.value_format).is_ok_and(|k| k == FormatKind::Json)
    };
    let (sa, sb) = (Sides::of(a), Sides::of(b));
    json(a)
        && json(b)
        && sa.value == sb.value
        && sa.value_idx == sb.value_idx
        && a.format.wrap_single_value == b.format.wrap_single_value
}

/// A relation's columns split into the record's sides: positions and
/// (name, type) of the key columns, then of the value columns. Window
/// bounds are in neither: they travel as trailing key bytes.
pub struct Sides {
    pub key_idx: Vec<usize>,
    pub value_idx: Vec<usize>,
    pub key: Vec<(String, DataType)>,
    pub value: Vec<(String, DataType)>,
}

impl Sides {
    pub fn of(rel: &RelationDesc) -> Sides {
        let windowed = rel.window.is_some();
        let is_window_col = |n: &str| windowed && (n == "WINDOWSTART" || n == "WINDOWEND");
        let mut sides = Sides {
            key_idx: Vec::new(),
            value_idx: Vec::new(),
            key: Vec::new(),
            value: Vec::new(),
        };
        for (i, c) in rel.columns.iter().enumerate() {
            if is_window_col(&c.name) {
                continue;
            }
            let (idx, cols) = if c.key {
                (&mut sides.key_idx, &mut sides.key)
            } else {
                (&mut sides.value_idx, &mut sides.value)
            };
            idx.push(i);
            cols.push((c.name.clone(), c.data_type.clone()));
        }
        sides
    }

    /// The key's format: NONE when there are no key columns.
    pub fn key_kind(&self, rel: &RelationDesc) -> Result<FormatKind> {
        if self.key.is_empty() {
            return Ok(FormatKind::None);
        }
        Ok(FormatKind::parse(&rel.format.key_format)?)
    }

    /// The options each side is read and written with.
    pub fn options(
        rel: &RelationDesc,
        registry: Option<&Arc<SchemaRegistry>>,
    ) -> Result<(FormatOptions, FormatOptions)> {
        let key = FormatOptions {
            registry: registry.cloned(),
            schema_id: rel.format.key_schema_id,
            ..FormatOptions::for_key()
        };
        let value = FormatOptions {
            registry: registry.cloned(),
            schema_id: rel.format.value_schema_id,
            ..value_options(rel)?
        };
        Ok((key, value))
    }
}

impl RecordCodec {
    /// Prepares the codec of `rel`; `registry` serves schema-registry
    /// formats (AVRO).
    pub fn try_new(
        rel: &RelationDesc,
        registry: Option<&Arc<SchemaRegistry>>,
    ) -> Result<RecordCodec> {
        RecordCodec::try_new_reading(rel, registry, None)
    }

    /// Like [`RecordCodec::try_new`], but decoding only the columns marked
    /// in `read` (and the timestamp column) where the value format can skip
    /// fields (JSON objects): the others decode as NULL, and are not checked.
    pub fn try_new_reading(
        rel: &RelationDesc,
        registry: Option<&Arc<SchemaRegistry>>,
        read: Option<&[bool]>,
    ) -> Result<RecordCodec> {
        let sides = Sides::of(rel);
        let key_kind = sides.key_kind(rel)?;
        let value_kind = FormatKind::parse(&rel.format.value_format)?;
        let (key_opts, value_opts) = Sides::options(rel, registry)?;
        let (key_cols, value_cols) = (&sides.key, &sides.value);
        let timestamp = match &rel.timestamp_column {
            Some(name) => {
                let i = rel
                    .column_index(name)
                    .ok_or_else(|| Error::Internal(format!("timestamp column {name} missing")))?;
                Some((
                    i,
                    rel.columns[i].data_type.clone(),
                    rel.timestamp_format.clone(),
                ))
            }
            None => None,
        };
        let ts_col = timestamp.as_ref().map(|t| t.0);
        // Per value column; the timestamp column is always read.
        let value_read: Option<Vec<bool>> = read.map(|read| {
            sides
                .value_idx
                .iter()
                .map(|&i| read.get(i).copied().unwrap_or(true) || ts_col == Some(i))
                .collect()
        });
        let window_idx = if let Some(kind) = &rel.window {
            match (
                rel.column_index("WINDOWSTART"),
                rel.column_index("WINDOWEND"),
            ) {
                (Some(s), Some(e)) => Some((s, e, WindowedKey::of(kind))),
                _ => {
                    return Err(Error::Internal(format!(
                        "windowed table {} lacks window columns",
                        rel.name
                    )))
                }
            }
        } else {
            None
        };
        Ok(RecordCodec {
            kind: rel.kind,
            width: rel.columns.len(),
            key_dec: Decoder::try_new(key_kind, key_cols, &key_opts)?,
            value_dec: Decoder::try_new_reading(
                value_kind,
                value_cols,
                value_read.as_deref(),
                &value_opts,
            )?,
            key_enc: Encoder::try_new(key_kind, key_cols, &key_opts)?,
            value_enc: Encoder::try_new(value_kind, value_cols, &value_opts)?,
            value_first: rel.window.is_none()
                && sides.key_idx.is_empty()
                && sides.value_idx.iter().copied().eq(0..rel.columns.len()),
            key_idx: sides.key_idx,
            value_idx: sides.value_idx,
            window_idx,
            timestamp,
            scratch: Vec::new(),
            round_robin: 0,
        })
    }

    /// Whether the relation has key columns.
    pub fn keyed(&self) -> bool {
        !self.key_idx.is_empty()
    }

    /// Encodes a row: (key bytes, value bytes); value `None` for a tombstone
    /// (`tombstone` true: a deleted table row).
    pub fn encode(&mut self, row: &[Value], tombstone: bool) -> Result<KeyValue> {
        let mut bytes = Vec::new();
        let (key, value) = self.encode_into(row, tombstone, &mut bytes)?;
        let part = |r: Option<Range<usize>>| r.and_then(|r| bytes.get(r)).map(<[u8]>::to_vec);
        Ok((part(key), part(value)))
    }

    /// Like [`RecordCodec::encode`], appending the key and the value to
    /// `out`; returns where they are in it. A failure leaves `out` as it
    /// was.
    pub fn encode_into(
        &mut self,
        row: &[Value],
        tombstone: bool,
        out: &mut Vec<u8>,
    ) -> Result<KeyValueAt> {
        let start = out.len();
        let encoded = self.encode_parts(row, tombstone, out);
        if encoded.is_err() {
            out.truncate(start);
        }
        encoded
    }

    /// Like [`RecordCodec::encode_into`], but with `value` as the record's
    /// value: bytes this codec's value encoder writes for the row's values
    /// (a canonical record read by a codec of the same value encoding, see
    /// [`same_value_encoding`]).
    pub fn encode_into_with_value(
        &mut self,
        row: &[Value],
        value: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<KeyValueAt> {
        let (key, _) = self.encode_into(row, true, out)?;
        let value_start = out.len();
        out.extend_from_slice(value);
        Ok((key, Some(value_start..out.len())))
    }

    /// From now on, tell whether each record's value is exactly what this
    /// codec's encoder writes for it ([`RecordCodec::value_canonical`]).
    /// Returns whether the value format can tell (JSON).
    pub fn check_canonical_values(&mut self) -> bool {
        self.value_dec.check_canonical()
    }

    /// Whether the value of the last record decoded was canonical.
    pub fn value_canonical(&self) -> bool {
        self.value_dec.canonical()
    }

    fn encode_parts(
        &mut self,
        row: &[Value],
        tombstone: bool,
        out: &mut Vec<u8>,
    ) -> Result<KeyValueAt> {
        let key_start = out.len();
        let key = if self.key_idx.is_empty() && self.window_idx.is_none() {
            None
        } else {
            self.scratch.clear();
            self.scratch.extend(
                self.key_idx
                    .iter()
                    .map(|&i| row.get(i).cloned().unwrap_or_default()),
            );
            // A NULL key of a single-column format is no key at all.
            let present = self.key_enc.encode_opt(&self.scratch, out)?;
            if let Some((s, e, layout)) = self.window_idx {
                let bound = |i: usize| row.get(i).and_then(Value::as_i64).unwrap_or_default();
                layout.write(bound(s), bound(e), out);
            }
            if present || self.window_idx.is_some() {
                Some(key_start..out.len())
            } else {
                out.truncate(key_start);
                None
            }
        };
        if tombstone {
            return Ok((key, None));
        }
        let value_start = out.len();
        let present = match row.get(..self.width) {
            // The row's first columns are the value: no copy of them.
            Some(values) if self.value_first => self.value_enc.encode_opt(values, out)?,
            _ => {
                self.scratch.clear();
                self.scratch.extend(
                    self.value_idx
                        .iter()
                        .map(|&i| row.get(i).cloned().unwrap_or_default()),
                );
                self.value_enc.encode_opt(&self.scratch, out)?
            }
        };
        if !present {
            out.truncate(value_start);
        }
        Ok((key, present.then_some(value_start..out.len())))
    }

    /// The partition for a record with this key: Kafka's default
    /// partitioner (murmur2), so rill and Java clients agree on where a key
    /// lives.
    pub fn partition(&mut self, key: Option<&[u8]>, partitions: u32) -> u32 {
        let n = partitions.max(1);
        match key {
            Some(k) => (murmur2(k) & 0x7fff_ffff) as u32 % n,
            None => {
                self.round_robin = self.round_robin.wrapping_add(1);
                self.round_robin % n
            }
        }
    }

    /// Decodes a record into a change whose row is the relation's query
    /// schema (columns, then ROWTIME, ROWPARTITION, ROWOFFSET). `None` for
    /// a record that carries nothing (a stream tombstone).
    pub fn decode(
        &mut self,
        partition: u32,
        rec: &Record,
    ) -> std::result::Result<Option<Change>, String> {
        let mut row: Row = Vec::with_capacity(self.width + PSEUDO_COLUMNS.len());
        if !self.value_first {
            row.resize(self.width, Value::Null);
        }
        // Key.
        if !self.key_idx.is_empty() || self.window_idx.is_some() {
            let key = match rec.key.as_deref() {
                Some(key) => Some(key),
                // As in ksqlDB: a stream record without a key has NULL key
                // columns; a table row needs its key.
                None if self.kind == RelationKind::Stream && self.window_idx.is_none() => None,
                None => return Err("record has no key".into()),
            };
            if let Some(mut key) = key {
                if let Some((s, e, layout)) = self.window_idx {
                    if key.len() < layout.len() {
                        return Err("windowed key is shorter than its window bounds".into());
                    }
                    let (k, w) = key.split_at(key.len() - layout.len());
                    let (start, end) = layout.read(w);
                    row[s] = Value::BigInt(start);
                    row[e] = Value::BigInt(end);
                    key = k;
                }
                self.scratch.clear();
                self.key_dec
                    .decode(key, &mut self.scratch)
                    .map_err(|e| format!("key: {e}"))?;
                for (v, &i) in self.scratch.drain(..).zip(&self.key_idx) {
                    row[i] = v;
                }
            }
        }
        // Value.
        let diff = match rec.value.as_deref() {
            None => {
                if self.kind == RelationKind::Stream {
                    return Ok(None);
                }
                row.resize(self.width, Value::Null);
                -1
            }
            Some(bytes) if self.value_first => {
                self.value_dec
                    .decode(bytes, &mut row)
                    .map_err(|e| format!("value: {e}"))?;
                1
            }
            Some(bytes) => {
                self.scratch.clear();
                self.value_dec
                    .decode(bytes, &mut self.scratch)
                    .map_err(|e| format!("value: {e}"))?;
                for (v, &i) in self.scratch.drain(..).zip(&self.value_idx) {
                    row[i] = v;
                }
                1
            }
        };
        let time = match self.column_time(&row)? {
            Some(t) => t,
            None if self.timestamp.is_none() || diff < 0 => rec.timestamp,
            None => return Err("timestamp column is NULL".into()),
        };
        row.push(Value::BigInt(time));
        row.push(Value::Int(partition as i32));
        row.push(Value::BigInt(rec.offset as i64));
        Ok(Some(Change::new(row, time, diff)))
    }

    /// The event time the `timestamp` column gives for a row: `None` without
    /// such a column or when it is NULL; an error when its text does not
    /// parse with `timestamp_format`.
    pub fn column_time(&self, row: &[Value]) -> std::result::Result<Option<i64>, String> {
        let Some((i, t, fmt)) = &self.timestamp else {
            return Ok(None);
        };
        match (&row[*i], t) {
            (Value::BigInt(ms) | Value::Timestamp(ms), _) => Ok(Some(*ms)),
            (Value::Null, _) => Ok(None),
            (Value::String(s), DataType::String) => {
                let f = func::lookup("STRINGTOTIMESTAMP")
                    .ok_or("STRINGTOTIMESTAMP is not registered")?;
                let pattern = Value::str(fmt.as_deref().unwrap_or("yyyy-MM-dd'T'HH:mm:ss.SSS"));
                match (f.eval)(&[Value::String(s.clone()), pattern]) {
                    Ok(v) => v
                        .as_i64()
                        .map(Some)
                        .ok_or_else(|| "timestamp column did not parse".into()),
                    Err(e) => Err(format!("timestamp column: {e}")),
                }
            }
            (other, _) => Err(format!("timestamp column has unexpected value {other}")),
        }
    }
}

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() == 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rill_sql::catalog::{ColumnDesc, FormatSpec};

    use super::*;

    fn windowed(window: WindowKind) -> RelationDesc {
        let col = |n: &str, t: DataType, key: bool| ColumnDesc::new(n, t, key);
        RelationDesc {
            name: "W".into(),
            kind: RelationKind::Table,
            columns: vec![
                col("ID", DataType::String, true),
                col("WINDOWSTART", DataType::BigInt, true),
                col("WINDOWEND", DataType::BigInt, true),
                col("N", DataType::BigInt, false),
            ],
            window: Some(window),
            topic: "W".into(),
            partitions: 1,
            format: FormatSpec {
                key_format: "KAFKA".into(),
                value_format: "JSON".into(),
                value_delimiter: None,
                wrap_single_value: None,
                key_schema_id: None,
                value_schema_id: None,
            },
            timestamp_column: None,
            timestamp_format: None,
            read_only: false,
            written_by: Some("CTAS_W_1".into()),
            retention_ms: None,
        }
    }

    /// Kafka Streams' windowed key layouts, so ksqlDB and Kafka Streams
    /// read rill's windowed changelogs (and rill reads theirs).
    #[test]
    fn windowed_keys_are_laid_out_as_kafka_streams_writes_them() {
        let row = vec![
            Value::str("u1"),
            Value::BigInt(60_000),
            Value::BigInt(120_000),
            Value::BigInt(3),
        ];
        let time = windowed(WindowKind::Tumbling { size: 60_000 });
        let session = windowed(WindowKind::Session { gap: 5_000 });
        let mut expected_time = b"u1".to_vec();
        expected_time.extend_from_slice(&60_000i64.to_be_bytes());
        let mut expected_session = b"u1".to_vec();
        expected_session.extend_from_slice(&120_000i64.to_be_bytes());
        expected_session.extend_from_slice(&60_000i64.to_be_bytes());
        for (rel, expected) in [(time, expected_time), (session, expected_session)] {
            let mut codec = RecordCodec::try_new(&rel, None).unwrap();
            let (key, value) = codec.encode(&row, false).unwrap();
            assert_eq!(key.as_deref(), Some(&expected[..]), "{:?}", rel.window);
            let record = Record {
                offset: 0,
                timestamp: 1,
                key,
                value,
            };
            let change = codec.decode(0, &record).unwrap().unwrap();
            assert_eq!(&change.row[..4], &row[..], "{:?}", rel.window);
        }
    }

    #[test]
    fn murmur2_matches_kafkas_test_vectors() {
        // From Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }

    /// A stream of bids read by a query that uses only some columns: the
    /// others decode as NULL and are not checked; the read ones and the
    /// timestamp column still are.
    #[test]
    fn only_the_columns_read_are_decoded() {
        let col = |n: &str, t: DataType| ColumnDesc::new(n, t, false);
        let mut rel = windowed(WindowKind::Tumbling { size: 1000 });
        rel.kind = RelationKind::Stream;
        rel.window = None;
        rel.columns = vec![
            col("AUCTION", DataType::BigInt),
            col("BIDDER", DataType::BigInt),
            col("TS", DataType::BigInt),
        ];
        rel.format.key_format = "NONE".into();
        rel.timestamp_column = Some("TS".into());
        let read = [true, false, false];
        let mut codec = RecordCodec::try_new_reading(&rel, None, Some(&read)).unwrap();
        let rec = |value: &str| Record {
            offset: 0,
            timestamp: 5,
            key: None,
            value: Some(value.as_bytes().to_vec()),
        };
        let c = codec
            .decode(0, &rec(r#"{"auction": 7, "bidder": 1, "ts": 1700}"#))
            .unwrap()
            .unwrap();
        assert_eq!(
            &c.row[..3],
            &[Value::BigInt(7), Value::Null, Value::BigInt(1700)]
        );
        assert_eq!(c.time, 1700);
        // A wrong type in a column not read is not looked at...
        assert!(codec
            .decode(0, &rec(r#"{"auction": 7, "bidder": [1], "ts": 1700}"#))
            .is_ok());
        // ...in one read it is, and so is malformed JSON.
        assert!(codec
            .decode(0, &rec(r#"{"auction": "x", "bidder": 1, "ts": 1700}"#))
            .is_err());
        assert!(codec.decode(0, &rec(r#"{"auction": 7,"#)).is_err());
        // Without a projection every column is checked.
        let mut all = RecordCodec::try_new(&rel, None).unwrap();
        assert!(all
            .decode(0, &rec(r#"{"auction": 7, "bidder": [1], "ts": 1700}"#))
            .is_err());
    }
}
