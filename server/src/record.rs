//! A relation's rows <-> its topic's records: key columns through the key
//! format, the rest through the value format, event time from the
//! `timestamp` column or the record's own timestamp.

use std::sync::Arc;

use rill_sql::catalog::{RelationDesc, PSEUDO_COLUMNS};
use rill_sql::dataflow::Change;
use rill_sql::expr::func;
use rill_sql::parser::RelationKind;
use rill_sql::{DataType, Row, Value};
use rill_storage::Record;

use crate::error::{Error, Result};
use crate::format::{Decoder, Encoder, FormatKind, FormatOptions, SchemaRegistry};

/// A record's key and value bytes (`None`: no key / a tombstone).
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Encodes and decodes the records of one relation.
pub struct RecordCodec {
    kind: RelationKind,
    width: usize,
    key_idx: Vec<usize>,
    value_idx: Vec<usize>,
    /// Windowed tables: WINDOWSTART/WINDOWEND positions, carried as 16
    /// trailing key bytes (start, end; big-endian) after the key columns.
    window_idx: Option<(usize, usize)>,
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
        let windowed = rel.window.is_some();
        let sides = Sides::of(rel);
        let key_kind = sides.key_kind(rel)?;
        let value_kind = FormatKind::parse(&rel.format.value_format)?;
        let (key_opts, value_opts) = Sides::options(rel, registry)?;
        let (key_cols, value_cols) = (&sides.key, &sides.value);
        let window_idx = if windowed {
            match (
                rel.column_index("WINDOWSTART"),
                rel.column_index("WINDOWEND"),
            ) {
                (Some(s), Some(e)) => Some((s, e)),
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
        Ok(RecordCodec {
            kind: rel.kind,
            width: rel.columns.len(),
            key_dec: Decoder::try_new(key_kind, key_cols, &key_opts)?,
            value_dec: Decoder::try_new(value_kind, value_cols, &value_opts)?,
            key_enc: Encoder::try_new(key_kind, key_cols, &key_opts)?,
            value_enc: Encoder::try_new(value_kind, value_cols, &value_opts)?,
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
        let key = if self.key_idx.is_empty() && self.window_idx.is_none() {
            None
        } else {
            self.scratch.clear();
            self.scratch.extend(
                self.key_idx
                    .iter()
                    .map(|&i| row.get(i).cloned().unwrap_or_default()),
            );
            let mut k = Vec::new();
            self.key_enc.encode(&self.scratch, &mut k)?;
            if let Some((s, e)) = self.window_idx {
                for i in [s, e] {
                    let v = row.get(i).and_then(Value::as_i64).unwrap_or_default();
                    k.extend_from_slice(&v.to_be_bytes());
                }
            }
            Some(k)
        };
        if tombstone {
            return Ok((key, None));
        }
        self.scratch.clear();
        self.scratch.extend(
            self.value_idx
                .iter()
                .map(|&i| row.get(i).cloned().unwrap_or_default()),
        );
        let mut v = Vec::new();
        let present = self.value_enc.encode_opt(&self.scratch, &mut v)?;
        Ok((key, present.then_some(v)))
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
        row.resize(self.width, Value::Null);
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
                if let Some((s, e)) = self.window_idx {
                    if key.len() < 16 {
                        return Err("windowed key is shorter than its window bounds".into());
                    }
                    let (k, w) = key.split_at(key.len() - 16);
                    let (ws, we) = w.split_at(8);
                    let be = |b: &[u8]| b.try_into().map(i64::from_be_bytes).unwrap_or_default();
                    row[s] = Value::BigInt(be(ws));
                    row[e] = Value::BigInt(be(we));
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
                -1
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
        Ok(Some(Change { row, time, diff }))
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
mod tests {
    use super::murmur2;

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
}
