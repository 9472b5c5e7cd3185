//! Byte encodings of values for the state store.
//!
//! Two formats, both self-describing (every value starts with a type tag,
//! so decoding needs no schema):
//!
//! * **Keys** ([`encode_key`] / [`decode_key`]) are *memcomparable*: for
//!   tuples whose positions hold values of the same type, comparing the
//!   encodings byte-wise gives the same answer as comparing the tuples with
//!   [`Value`]'s `Ord`, lexicographically. Every value's encoding is
//!   self-delimiting, so the encoding of a tuple is the concatenation of its
//!   values' encodings and the encoding of a prefix of a tuple is a byte
//!   prefix of the tuple's encoding. The store can therefore prefix-scan
//!   "all windows of this group" and range-scan "windows starting between
//!   t1 and t2" by encoding the group key followed by a window start.
//! * **Rows** ([`encode_row`] / [`decode_row`]) are compact and fast rather
//!   than ordered: a version byte, a value count, then tagged values with
//!   varint integers and length-prefixed strings.
//!
//! # Key layout
//! | value | bytes |
//! |---|---|
//! | NULL | `01` (sorts before every other tag) |
//! | BOOLEAN | `02` false, `03` true |
//! | INT / BIGINT | `10` / `11`, big-endian with the sign bit flipped |
//! | DOUBLE | `12`, IEEE bits: negatives inverted, positives sign-flipped; -0.0 is written as 0.0, every NaN as one NaN that sorts last |
//! | DECIMAL | `13` negative / `14` zero / `15` positive, then a biased decimal exponent byte and one byte per significant digit ending `00` (all inverted for negatives) |
//! | STRING / BYTES | `20` / `21`, bytes with `00` escaped as `00 FF`, ending `00 00` |
//! | TIMESTAMP / DATE / TIME | `30` / `31` / `32`, like BIGINT / INT / BIGINT |
//! | ARRAY / MAP / STRUCT | `40` / `41` / `42`, the elements (map: key, value, key, value...) each with its own tag, then `00` |
//!
//! # Invariants
//! Only values of one type are ordered by their keys: INT 3 and BIGINT 3 are
//! equal `Value`s but have different tags, so callers must encode a column's
//! values at the column's type. Decimals are normalized before encoding so
//! that equal values (1.0 and 1.00) get equal keys; a decoded key decimal
//! therefore has no trailing zeros. Rows keep decimals and doubles exactly.

use std::sync::Arc;

use rust_decimal::Decimal;
use thiserror::Error;

use crate::value::Value;

/// Nesting deeper than this is refused when decoding, so corrupt input
/// cannot overflow the stack. Types nest only as deep as a schema says.
pub const MAX_DEPTH: usize = 512;

/// Bytes that cannot be decoded: the store is corrupt or was written by an
/// incompatible version.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The bytes stop in the middle of a value (or a count promises more
    /// values than there are bytes).
    #[error("encoded value ends early at byte {offset}")]
    Truncated { offset: usize },
    /// A byte where a value should start is no known tag.
    #[error("unknown type tag 0x{tag:02x} at byte {offset}")]
    UnknownTag { tag: u8, offset: usize },
    /// A key string or BYTES value has `00` followed by neither `00` nor `FF`.
    #[error("invalid escape sequence at byte {offset}")]
    BadEscape { offset: usize },
    /// A STRING value's bytes are not UTF-8.
    #[error("string at byte {offset} is not valid UTF-8")]
    InvalidUtf8 { offset: usize },
    /// Digits, exponent or scale of a DECIMAL are out of range.
    #[error("invalid decimal at byte {offset}")]
    InvalidDecimal { offset: usize },
    /// A row varint is too long or does not fit its type.
    #[error("malformed variable-length integer at byte {offset}")]
    BadVarint { offset: usize },
    /// Arrays, maps or structs nest deeper than [`MAX_DEPTH`].
    #[error("values nested deeper than {MAX_DEPTH} levels at byte {offset}")]
    TooDeep { offset: usize },
    /// A row has bytes left over after its last value.
    #[error("{count} unexpected bytes after the encoded values")]
    TrailingBytes { count: usize },
    /// A row starts with a format version this build does not know.
    #[error("unsupported row format version {0}")]
    UnknownVersion(u8),
    /// Decoded values that do not have the shape their reader expects.
    #[error("corrupt {0}")]
    Corrupt(String),
}

impl CodecError {
    /// Always `XX001` (data_corrupted): a value the engine wrote cannot be
    /// read back.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            CodecError::Truncated { .. }
            | CodecError::UnknownTag { .. }
            | CodecError::BadEscape { .. }
            | CodecError::InvalidUtf8 { .. }
            | CodecError::InvalidDecimal { .. }
            | CodecError::BadVarint { .. }
            | CodecError::TooDeep { .. }
            | CodecError::TrailingBytes { .. }
            | CodecError::UnknownVersion(_)
            | CodecError::Corrupt(_) => "XX001",
        }
    }
}

// ---------------------------------------------------------------------------
// Keys

mod key_tag {
    /// Ends arrays, maps and structs; below every tag so shorter sorts first.
    pub const END: u8 = 0x00;
    pub const NULL: u8 = 0x01;
    pub const FALSE: u8 = 0x02;
    pub const TRUE: u8 = 0x03;
    pub const INT: u8 = 0x10;
    pub const BIGINT: u8 = 0x11;
    pub const DOUBLE: u8 = 0x12;
    pub const DECIMAL_NEG: u8 = 0x13;
    pub const DECIMAL_ZERO: u8 = 0x14;
    pub const DECIMAL_POS: u8 = 0x15;
    pub const STRING: u8 = 0x20;
    pub const BYTES: u8 = 0x21;
    pub const TIMESTAMP: u8 = 0x30;
    pub const DATE: u8 = 0x31;
    pub const TIME: u8 = 0x32;
    pub const ARRAY: u8 = 0x40;
    pub const MAP: u8 = 0x41;
    pub const STRUCT: u8 = 0x42;
}

/// Bias added to a decimal's exponent so it fits an unsigned byte. The
/// exponent of a `rust_decimal` lies within -27..=29.
const DECIMAL_EXP_BIAS: i32 = 64;

/// Appends the order-preserving encoding of `values` to `out`.
///
/// Appending is composable: encoding `a` then `b` into one buffer gives the
/// same bytes as encoding `a` and `b` together, so a caller can build a
/// group key and then append a window start for range scans.
pub fn encode_key(values: &[Value], out: &mut Vec<u8>) {
    for v in values {
        encode_key_value(v, out);
    }
}

/// Decodes a key written by [`encode_key`] back into its values.
pub fn decode_key(bytes: &[u8]) -> Result<Vec<Value>, CodecError> {
    let mut r = Reader::new(bytes);
    let mut values = Vec::new();
    while !r.at_end() {
        values.push(decode_key_value(&mut r, 0)?);
    }
    Ok(values)
}

/// The smallest byte string greater than every key that starts with
/// `prefix`: the exclusive end of a prefix scan for stores that only offer
/// range scans. `None` when no such bound exists (empty prefix or all
/// `FF`), meaning "scan to the end".
pub fn key_prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

fn encode_key_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(key_tag::NULL),
        Value::Boolean(false) => out.push(key_tag::FALSE),
        Value::Boolean(true) => out.push(key_tag::TRUE),
        Value::Int(i) => {
            out.push(key_tag::INT);
            out.extend_from_slice(&flip_i32(*i));
        }
        Value::BigInt(i) => {
            out.push(key_tag::BIGINT);
            out.extend_from_slice(&flip_i64(*i));
        }
        Value::Double(f) => {
            out.push(key_tag::DOUBLE);
            out.extend_from_slice(&double_key(*f).to_be_bytes());
        }
        Value::Decimal(d) => encode_key_decimal(d, out),
        Value::String(s) => {
            out.push(key_tag::STRING);
            encode_escaped(s.as_bytes(), out);
        }
        Value::Bytes(b) => {
            out.push(key_tag::BYTES);
            encode_escaped(b, out);
        }
        Value::Timestamp(ms) => {
            out.push(key_tag::TIMESTAMP);
            out.extend_from_slice(&flip_i64(*ms));
        }
        Value::Date(days) => {
            out.push(key_tag::DATE);
            out.extend_from_slice(&flip_i32(*days));
        }
        Value::Time(ms) => {
            out.push(key_tag::TIME);
            out.extend_from_slice(&flip_i64(*ms));
        }
        Value::Array(items) => {
            out.push(key_tag::ARRAY);
            encode_key(items, out);
            out.push(key_tag::END);
        }
        Value::Map(entries) => {
            out.push(key_tag::MAP);
            for (k, v) in entries.iter() {
                encode_key_value(k, out);
                encode_key_value(v, out);
            }
            out.push(key_tag::END);
        }
        Value::Struct(fields) => {
            out.push(key_tag::STRUCT);
            encode_key(fields, out);
            out.push(key_tag::END);
        }
    }
}

fn flip_i32(i: i32) -> [u8; 4] {
    ((i as u32) ^ (1 << 31)).to_be_bytes()
}

fn flip_i64(i: i64) -> [u8; 8] {
    ((i as u64) ^ (1 << 63)).to_be_bytes()
}

/// Maps a double to a u64 whose unsigned order is the total order `Value`
/// uses: -inf < ... < -0.0 = 0.0 < ... < +inf < NaN.
fn double_key(f: f64) -> u64 {
    let f = if f.is_nan() {
        f64::NAN
    } else if f == 0.0 {
        0.0 // folds -0.0, which compares equal
    } else {
        f
    };
    let bits = f.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn double_from_key(k: u64) -> f64 {
    let bits = if k >> 63 == 1 { k & !(1 << 63) } else { !k };
    f64::from_bits(bits)
}

/// Writes a non-zero decimal as `0.D1D2...Dn × 10^exp` with `D1 != 0` and
/// no trailing zeros: a larger exponent is a larger magnitude, and for one
/// exponent the digit strings compare like the numbers. Negatives invert
/// every byte after the tag so larger magnitudes sort first.
fn encode_key_decimal(d: &Decimal, out: &mut Vec<u8>) {
    if d.is_zero() {
        out.push(key_tag::DECIMAL_ZERO);
        return;
    }
    let negative = d.is_sign_negative();
    let digits = d.mantissa().unsigned_abs().to_string();
    // At most 29 digits and a scale of at most 28: both fit an i32.
    let exp = digits.len() as i32 - d.scale() as i32;
    let significant = digits.trim_end_matches('0');
    let invert = |b: u8| if negative { !b } else { b };
    out.push(if negative {
        key_tag::DECIMAL_NEG
    } else {
        key_tag::DECIMAL_POS
    });
    out.push(invert((exp + DECIMAL_EXP_BIAS) as u8));
    out.extend(significant.bytes().map(|c| invert(c - b'0' + 1)));
    out.push(invert(0));
}

fn encode_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in bytes.split(|&b| b == 0).enumerate() {
        if chunk.0 > 0 {
            out.extend_from_slice(&[0x00, 0xFF]);
        }
        out.extend_from_slice(chunk.1);
    }
    out.extend_from_slice(&[0x00, 0x00]);
}

fn decode_key_value(r: &mut Reader<'_>, depth: usize) -> Result<Value, CodecError> {
    let at = r.pos;
    let tag = r.byte()?;
    Ok(match tag {
        key_tag::NULL => Value::Null,
        key_tag::FALSE => Value::Boolean(false),
        key_tag::TRUE => Value::Boolean(true),
        key_tag::INT => Value::Int(r.flipped_i32()?),
        key_tag::BIGINT => Value::BigInt(r.flipped_i64()?),
        key_tag::DOUBLE => Value::Double(double_from_key(u64::from_be_bytes(r.array()?))),
        key_tag::DECIMAL_ZERO => Value::Decimal(Decimal::ZERO),
        key_tag::DECIMAL_NEG | key_tag::DECIMAL_POS => {
            Value::Decimal(decode_key_decimal(r, tag == key_tag::DECIMAL_NEG)?)
        }
        key_tag::STRING => {
            let start = r.pos;
            let bytes = r.escaped()?;
            let s =
                String::from_utf8(bytes).map_err(|_| CodecError::InvalidUtf8 { offset: start })?;
            Value::String(Arc::from(s))
        }
        key_tag::BYTES => Value::Bytes(Arc::from(r.escaped()?)),
        key_tag::TIMESTAMP => Value::Timestamp(r.flipped_i64()?),
        key_tag::DATE => Value::Date(r.flipped_i32()?),
        key_tag::TIME => Value::Time(r.flipped_i64()?),
        key_tag::ARRAY | key_tag::MAP | key_tag::STRUCT => {
            if depth >= MAX_DEPTH {
                return Err(CodecError::TooDeep { offset: at });
            }
            let mut items = Vec::new();
            while r.peek()? != key_tag::END {
                items.push(decode_key_value(r, depth + 1)?);
            }
            r.pos += 1; // END
            match tag {
                key_tag::ARRAY => Value::Array(Arc::new(items)),
                key_tag::STRUCT => Value::Struct(Arc::new(items)),
                _ => Value::Map(Arc::new(pairs(items, at)?)),
            }
        }
        tag => return Err(CodecError::UnknownTag { tag, offset: at }),
    })
}

/// Groups a map's flattened key, value, key, value... list into entries.
fn pairs(items: Vec<Value>, offset: usize) -> Result<Vec<(Value, Value)>, CodecError> {
    if !items.len().is_multiple_of(2) {
        return Err(CodecError::Truncated { offset });
    }
    let mut entries = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        entries.push((k, v));
    }
    Ok(entries)
}

fn decode_key_decimal(r: &mut Reader<'_>, negative: bool) -> Result<Decimal, CodecError> {
    let at = r.pos;
    let invert = |b: u8| if negative { !b } else { b };
    let exp = i32::from(invert(r.byte()?)) - DECIMAL_EXP_BIAS;
    let mut mantissa: u128 = 0;
    let mut digits: i32 = 0;
    loop {
        let b = invert(r.byte()?);
        if b == 0 {
            break;
        }
        if !(1..=10).contains(&b) || digits >= 29 {
            return Err(CodecError::InvalidDecimal { offset: at });
        }
        mantissa = mantissa * 10 + u128::from(b - 1);
        digits += 1;
    }
    if digits == 0 {
        return Err(CodecError::InvalidDecimal { offset: at });
    }
    // value = 0.D × 10^exp = D × 10^(exp - digits)
    let mut scale = digits - exp;
    while scale < 0 {
        mantissa = mantissa
            .checked_mul(10)
            .ok_or(CodecError::InvalidDecimal { offset: at })?;
        scale += 1;
    }
    let signed = i128::try_from(mantissa).map_err(|_| CodecError::InvalidDecimal { offset: at })?;
    let signed = if negative { -signed } else { signed };
    let scale = u32::try_from(scale).map_err(|_| CodecError::InvalidDecimal { offset: at })?;
    Decimal::try_from_i128_with_scale(signed, scale)
        .map_err(|_| CodecError::InvalidDecimal { offset: at })
}

// ---------------------------------------------------------------------------
// Rows

/// The first byte of every encoded row; bump it when the layout changes.
const ROW_VERSION: u8 = 1;

mod row_tag {
    pub const NULL: u8 = 0;
    pub const FALSE: u8 = 1;
    pub const TRUE: u8 = 2;
    pub const INT: u8 = 3;
    pub const BIGINT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const DECIMAL: u8 = 6;
    pub const STRING: u8 = 7;
    pub const BYTES: u8 = 8;
    pub const TIMESTAMP: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const ARRAY: u8 = 12;
    pub const MAP: u8 = 13;
    pub const STRUCT: u8 = 14;
}

/// Appends the compact encoding of a row to `out`: version byte, varint
/// count, then each value as a tag and a payload (zigzag varints for
/// integers and temporals, little-endian bits for doubles, scale byte and
/// zigzag mantissa for decimals, varint length and bytes for strings,
/// varint count and elements for arrays, maps and structs). Exact: doubles
/// keep their bits and decimals their scale.
pub fn encode_row(values: &[Value], out: &mut Vec<u8>) {
    encode_row_parts(&[values], out);
}

/// Encodes the concatenation of `parts` as one row, as [`encode_row`]
/// would, without building it.
pub fn encode_row_parts(parts: &[&[Value]], out: &mut Vec<u8>) {
    out.push(ROW_VERSION);
    put_varint(parts.iter().map(|p| p.len()).sum::<usize>() as u64, out);
    for v in parts.iter().flat_map(|p| p.iter()) {
        encode_row_value(v, out);
    }
}

/// Decodes a row written by [`encode_row`].
pub fn decode_row(bytes: &[u8]) -> Result<Vec<Value>, CodecError> {
    let mut r = Reader::new(bytes);
    let version = r.byte()?;
    if version != ROW_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    let values = decode_row_values(&mut r, 0)?;
    if !r.at_end() {
        return Err(CodecError::TrailingBytes {
            count: bytes.len() - r.pos,
        });
    }
    Ok(values)
}

fn encode_row_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(row_tag::NULL),
        Value::Boolean(false) => out.push(row_tag::FALSE),
        Value::Boolean(true) => out.push(row_tag::TRUE),
        Value::Int(i) => {
            out.push(row_tag::INT);
            put_varint(zigzag(i64::from(*i)), out);
        }
        Value::BigInt(i) => {
            out.push(row_tag::BIGINT);
            put_varint(zigzag(*i), out);
        }
        Value::Double(f) => {
            out.push(row_tag::DOUBLE);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Decimal(d) => {
            out.push(row_tag::DECIMAL);
            // rust_decimal's scale is at most 28.
            out.push(d.scale() as u8);
            let m = d.mantissa();
            put_varint_u128(((m << 1) ^ (m >> 127)) as u128, out);
        }
        Value::String(s) => {
            out.push(row_tag::STRING);
            put_varint(s.len() as u64, out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(row_tag::BYTES);
            put_varint(b.len() as u64, out);
            out.extend_from_slice(b);
        }
        Value::Timestamp(ms) => {
            out.push(row_tag::TIMESTAMP);
            put_varint(zigzag(*ms), out);
        }
        Value::Date(days) => {
            out.push(row_tag::DATE);
            put_varint(zigzag(i64::from(*days)), out);
        }
        Value::Time(ms) => {
            out.push(row_tag::TIME);
            put_varint(zigzag(*ms), out);
        }
        Value::Array(items) => {
            out.push(row_tag::ARRAY);
            put_varint(items.len() as u64, out);
            items.iter().for_each(|v| encode_row_value(v, out));
        }
        Value::Map(entries) => {
            out.push(row_tag::MAP);
            put_varint(entries.len() as u64, out);
            for (k, v) in entries.iter() {
                encode_row_value(k, out);
                encode_row_value(v, out);
            }
        }
        Value::Struct(fields) => {
            out.push(row_tag::STRUCT);
            put_varint(fields.len() as u64, out);
            fields.iter().for_each(|v| encode_row_value(v, out));
        }
    }
}

/// A varint count followed by that many values.
fn decode_row_values(r: &mut Reader<'_>, depth: usize) -> Result<Vec<Value>, CodecError> {
    let n = r.count()?;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        values.push(decode_row_value(r, depth)?);
    }
    Ok(values)
}

fn decode_row_value(r: &mut Reader<'_>, depth: usize) -> Result<Value, CodecError> {
    let at = r.pos;
    let tag = r.byte()?;
    let nested = |depth: usize| {
        if depth >= MAX_DEPTH {
            Err(CodecError::TooDeep { offset: at })
        } else {
            Ok(depth + 1)
        }
    };
    Ok(match tag {
        row_tag::NULL => Value::Null,
        row_tag::FALSE => Value::Boolean(false),
        row_tag::TRUE => Value::Boolean(true),
        row_tag::INT => {
            let v = unzigzag(r.varint()?);
            Value::Int(i32::try_from(v).map_err(|_| CodecError::BadVarint { offset: at })?)
        }
        row_tag::BIGINT => Value::BigInt(unzigzag(r.varint()?)),
        row_tag::DOUBLE => Value::Double(f64::from_bits(u64::from_le_bytes(r.array()?))),
        row_tag::DECIMAL => {
            let scale = u32::from(r.byte()?);
            let z = r.varint_u128()?;
            let m = ((z >> 1) as i128) ^ -((z & 1) as i128);
            Value::Decimal(
                Decimal::try_from_i128_with_scale(m, scale)
                    .map_err(|_| CodecError::InvalidDecimal { offset: at })?,
            )
        }
        row_tag::STRING => {
            let n = r.count()?;
            let start = r.pos;
            let s = std::str::from_utf8(r.take(n)?)
                .map_err(|_| CodecError::InvalidUtf8 { offset: start })?;
            Value::String(Arc::from(s))
        }
        row_tag::BYTES => {
            let n = r.count()?;
            Value::Bytes(Arc::from(r.take(n)?))
        }
        row_tag::TIMESTAMP => Value::Timestamp(unzigzag(r.varint()?)),
        row_tag::DATE => {
            let v = unzigzag(r.varint()?);
            Value::Date(i32::try_from(v).map_err(|_| CodecError::BadVarint { offset: at })?)
        }
        row_tag::TIME => Value::Time(unzigzag(r.varint()?)),
        row_tag::ARRAY => Value::Array(Arc::new(decode_row_values(r, nested(depth)?)?)),
        row_tag::STRUCT => Value::Struct(Arc::new(decode_row_values(r, nested(depth)?)?)),
        row_tag::MAP => {
            let depth = nested(depth)?;
            let n = r.count()?;
            let mut entries = Vec::with_capacity(n / 2);
            for _ in 0..n {
                let k = decode_row_value(r, depth)?;
                let v = decode_row_value(r, depth)?;
                entries.push((k, v));
            }
            Value::Map(Arc::new(entries))
        }
        tag => return Err(CodecError::UnknownTag { tag, offset: at }),
    })
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_u128(mut v: u128, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

// ---------------------------------------------------------------------------
// Reading

/// A cursor over encoded bytes; every read checks bounds.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn truncated(&self) -> CodecError {
        CodecError::Truncated { offset: self.pos }
    }

    fn peek(&self) -> Result<u8, CodecError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.truncated())
    }

    fn byte(&mut self) -> Result<u8, CodecError> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| self.truncated())?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn flipped_i32(&mut self) -> Result<i32, CodecError> {
        Ok((u32::from_be_bytes(self.array()?) ^ (1 << 31)) as i32)
    }

    fn flipped_i64(&mut self) -> Result<i64, CodecError> {
        Ok((u64::from_be_bytes(self.array()?) ^ (1 << 63)) as i64)
    }

    /// Undoes [`encode_escaped`].
    fn escaped(&mut self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        loop {
            let rest = &self.buf[self.pos..];
            let zero = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or(CodecError::Truncated {
                    offset: self.buf.len(),
                })?;
            out.extend_from_slice(&rest[..zero]);
            self.pos += zero + 1;
            match self.byte()? {
                0x00 => return Ok(out),
                0xFF => out.push(0),
                _ => {
                    return Err(CodecError::BadEscape {
                        offset: self.pos - 1,
                    })
                }
            }
        }
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let at = self.pos;
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7F);
            if shift == 63 && bits > 1 {
                return Err(CodecError::BadVarint { offset: at });
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::BadVarint { offset: at })
    }

    fn varint_u128(&mut self) -> Result<u128, CodecError> {
        let at = self.pos;
        let mut v: u128 = 0;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            let bits = u128::from(b & 0x7F);
            if shift == 126 && bits > 3 {
                return Err(CodecError::BadVarint { offset: at });
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::BadVarint { offset: at })
    }

    /// A varint length or element count. Every element takes at least one
    /// byte, so a count larger than what is left is corrupt; checking it
    /// keeps a bad count from causing a huge allocation.
    fn count(&mut self) -> Result<usize, CodecError> {
        let at = self.pos;
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.buf.len() - self.pos)
            .ok_or(CodecError::Truncated { offset: at })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cmp::Ordering;
    use std::str::FromStr;

    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::types::DataType;

    fn key(values: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key(values, &mut out);
        out
    }

    fn row(values: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_row(values, &mut out);
        out
    }

    fn dec(s: &str) -> Value {
        Value::Decimal(Decimal::from_str(s).unwrap())
    }

    // -- strategies ---------------------------------------------------------

    fn arb_type() -> impl Strategy<Value = DataType> {
        let leaf = prop_oneof![
            Just(DataType::Boolean),
            Just(DataType::Int),
            Just(DataType::BigInt),
            Just(DataType::Double),
            Just(DataType::Decimal {
                precision: 28,
                scale: 4
            }),
            Just(DataType::String),
            Just(DataType::Bytes),
            Just(DataType::Timestamp),
            Just(DataType::Date),
            Just(DataType::Time),
        ];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|t| DataType::Array(Box::new(t))),
                (inner.clone(), inner.clone())
                    .prop_map(|(k, v)| DataType::Map(Box::new(k), Box::new(v))),
                vec(inner, 1..3).prop_map(|ts| DataType::Struct(
                    ts.into_iter()
                        .enumerate()
                        .map(|(i, t)| (format!("F{i}"), t))
                        .collect()
                )),
            ]
        })
    }

    fn arb_i64() -> impl Strategy<Value = i64> {
        prop_oneof![-3i64..3, Just(i64::MIN), Just(i64::MAX), any::<i64>()]
    }

    fn arb_i32() -> impl Strategy<Value = i32> {
        prop_oneof![-3i32..3, Just(i32::MIN), Just(i32::MAX), any::<i32>()]
    }

    fn arb_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            (-6i32..6).prop_map(|i| f64::from(i) / 2.0),
            prop::sample::select(vec![
                0.0,
                -0.0,
                f64::NAN,
                -f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::MIN_POSITIVE,
                -f64::MIN_POSITIVE,
                5e-324,
                f64::MAX,
                f64::MIN,
            ]),
            any::<f64>(),
        ]
    }

    fn arb_decimal() -> impl Strategy<Value = Decimal> {
        let max = (1i128 << 96) - 1;
        prop_oneof![
            (-30i128..30, 0u32..4),
            (any::<i64>().prop_map(i128::from), 0u32..=28),
            (-max..=max, 0u32..=28),
        ]
        .prop_map(|(m, s)| Decimal::from_i128_with_scale(m, s))
    }

    /// Values of type `t`, NULL included; small domains so that equal
    /// values and shared prefixes are common.
    fn arb_of(t: &DataType) -> BoxedStrategy<Value> {
        let value: BoxedStrategy<Value> = match t {
            DataType::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
            DataType::Int => arb_i32().prop_map(Value::Int).boxed(),
            DataType::BigInt => arb_i64().prop_map(Value::BigInt).boxed(),
            DataType::Double => arb_f64().prop_map(Value::Double).boxed(),
            DataType::Decimal { .. } => arb_decimal().prop_map(Value::Decimal).boxed(),
            DataType::String => "[ab\u{0}é\u{10FFFF}]{0,4}"
                .prop_map(|s| Value::str(&s))
                .boxed(),
            DataType::Bytes => vec(
                prop_oneof![Just(0u8), Just(1), Just(0xFF), any::<u8>()],
                0..4,
            )
            .prop_map(|b| Value::Bytes(Arc::from(b)))
            .boxed(),
            DataType::Timestamp => arb_i64().prop_map(Value::Timestamp).boxed(),
            DataType::Date => arb_i32().prop_map(Value::Date).boxed(),
            DataType::Time => arb_i64().prop_map(Value::Time).boxed(),
            DataType::Array(e) => vec(arb_of(e), 0..3)
                .prop_map(|v| Value::Array(Arc::new(v)))
                .boxed(),
            DataType::Map(k, v) => vec((arb_of(k), arb_of(v)), 0..3)
                .prop_map(|e| Value::Map(Arc::new(e)))
                .boxed(),
            DataType::Struct(fields) => fields
                .iter()
                .map(|(_, t)| arb_of(t))
                .collect::<Vec<_>>()
                .prop_map(|v| Value::Struct(Arc::new(v)))
                .boxed(),
        };
        prop_oneof![1 => Just(Value::Null), 6 => value].boxed()
    }

    /// A tuple of random values of random types.
    fn arb_tuple() -> impl Strategy<Value = Vec<Value>> {
        vec(arb_type(), 0..4).prop_flat_map(|types| types.iter().map(arb_of).collect::<Vec<_>>())
    }

    /// Two tuples whose positions have the same types, each cut to a random
    /// length so that prefixes of one another are compared too.
    fn arb_tuple_pair() -> impl Strategy<Value = (Vec<Value>, Vec<Value>)> {
        vec(arb_type(), 1..4).prop_flat_map(|types| {
            let n = types.len();
            let a: Vec<_> = types.iter().map(arb_of).collect();
            let b: Vec<_> = types.iter().map(arb_of).collect();
            (a, b, 0..=n, 0..=n).prop_map(|(mut a, mut b, la, lb)| {
                a.truncate(la);
                b.truncate(lb);
                (a, b)
            })
        })
    }

    // -- properties ---------------------------------------------------------

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn key_order_is_value_order((a, b) in arb_tuple_pair()) {
            prop_assert_eq!(key(&a).cmp(&key(&b)), a.cmp(&b), "{:?} vs {:?}", a, b);
        }

        #[test]
        fn key_round_trips(values in arb_tuple()) {
            let decoded = decode_key(&key(&values)).unwrap();
            prop_assert_eq!(decoded, values);
        }

        #[test]
        fn key_of_a_prefix_is_a_byte_prefix(values in arb_tuple(), cut in 0usize..4) {
            let cut = cut.min(values.len());
            let full = key(&values);
            let prefix = key(&values[..cut]);
            prop_assert!(full.starts_with(&prefix));
            prop_assert_eq!(decode_key(&prefix).unwrap(), values[..cut].to_vec());
            if let Some(end) = key_prefix_end(&prefix) {
                prop_assert!(full < end);
            }
        }

        #[test]
        fn row_round_trips_exactly(values in arb_tuple()) {
            let decoded = decode_row(&row(&values)).unwrap();
            // Debug shows decimal scale and distinguishes INT from BIGINT.
            prop_assert_eq!(format!("{decoded:?}"), format!("{values:?}"));
        }

        #[test]
        fn garbage_never_panics(bytes in vec(any::<u8>(), 0..64)) {
            let _ = decode_key(&bytes);
            let mut with_version = vec![ROW_VERSION];
            with_version.extend_from_slice(&bytes);
            let _ = decode_row(&with_version);
        }

        #[test]
        fn truncated_encodings_are_errors(values in arb_tuple(), cut in any::<prop::sample::Index>()) {
            let r = row(&values);
            let cut = cut.index(r.len());
            prop_assert!(decode_row(&r[..cut]).is_err());
        }
    }

    // -- examples -----------------------------------------------------------

    #[test]
    fn null_sorts_first_and_shorter_tuples_before_longer() {
        assert!(key(&[Value::Null]) < key(&[Value::Int(i32::MIN)]));
        assert!(key(&[Value::str("a")]) < key(&[Value::str("a"), Value::Null]));
        assert!(key(&[Value::str("a")]) < key(&[Value::str("a\0")]));
        assert!(key(&[Value::str("a"), Value::Int(9)]) < key(&[Value::str("a\0")]));
        assert!(key(&[Value::str("ab")]) < key(&[Value::str("b")]));
    }

    #[test]
    fn equal_values_get_equal_keys() {
        assert_eq!(key(&[Value::Double(-0.0)]), key(&[Value::Double(0.0)]));
        assert_eq!(
            key(&[Value::Double(f64::NAN)]),
            key(&[Value::Double(-f64::NAN)])
        );
        assert_eq!(key(&[dec("1.0")]), key(&[dec("1.000")]));
        assert_eq!(key(&[dec("-100")]), key(&[dec("-100.00")]));
        assert!(key(&[dec("-0.5")]) < key(&[dec("0")]));
        assert!(key(&[dec("99.99")]) < key(&[dec("100")]));
        assert!(key(&[dec("-100")]) < key(&[dec("-99.99")]));
    }

    #[test]
    fn layout_is_as_documented() {
        assert_eq!(key(&[Value::Int(1)]), [0x10, 0x80, 0, 0, 1]);
        assert_eq!(
            key(&[Value::str("a\0")]),
            [0x20, b'a', 0x00, 0xFF, 0x00, 0x00]
        );
        assert_eq!(key(&[Value::Boolean(true), Value::Null]), [0x03, 0x01]);
        assert_eq!(key(&[dec("12.5")]), [0x15, 64 + 2, 2, 3, 6, 0]);
        assert_eq!(
            key(&[Value::Array(Arc::new(vec![Value::Null]))]),
            [0x40, 0x01, 0x00]
        );
        assert_eq!(
            row(&[Value::Int(-1), Value::str("hi")]),
            [1, 2, 3, 1, 7, 2, b'h', b'i']
        );
    }

    #[test]
    fn a_row_in_parts_encodes_as_the_whole_row() {
        let (a, b) = (
            [Value::BigInt(7), Value::str("x")],
            [Value::Null, Value::BigInt(-1)],
        );
        let mut parts = Vec::new();
        encode_row_parts(&[&a, &[], &b], &mut parts);
        let whole = [a.as_slice(), b.as_slice()].concat();
        assert_eq!(parts, row(&whole));
        assert_eq!(decode_row(&parts).unwrap(), whole);
    }

    #[test]
    fn decoded_key_decimals_are_normalized_but_rows_keep_scale() {
        let k = decode_key(&key(&[dec("1.500")])).unwrap();
        assert_eq!(format!("{:?}", k[0]), format!("{:?}", dec("1.5")));
        let r = decode_row(&row(&[dec("1.500")])).unwrap();
        assert_eq!(r[0].to_string(), "1.500");
    }

    #[test]
    fn corrupt_input_is_reported() {
        assert_eq!(
            decode_key(&[0x10, 0x80]),
            Err(CodecError::Truncated { offset: 1 })
        );
        assert_eq!(
            decode_key(&[0x7F]),
            Err(CodecError::UnknownTag {
                tag: 0x7F,
                offset: 0
            })
        );
        assert_eq!(
            decode_key(&[0x20, b'a', 0x00, 0x05]),
            Err(CodecError::BadEscape { offset: 3 })
        );
        assert_eq!(
            decode_key(&[0x20, 0xC3, 0x00, 0x00]),
            Err(CodecError::InvalidUtf8 { offset: 1 })
        );
        assert!(matches!(
            decode_key(&[0x15, 64, 0x0B, 0x00]),
            Err(CodecError::InvalidDecimal { .. })
        ));
        assert_eq!(decode_row(&[9]), Err(CodecError::UnknownVersion(9)));
        assert_eq!(
            decode_row(&[1, 0, 0]),
            Err(CodecError::TrailingBytes { count: 1 })
        );
        assert_eq!(
            decode_row(&[1, 1, 7, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
            Err(CodecError::Truncated { offset: 3 })
        );
        assert!(matches!(
            decode_row(&[1, 1, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            Err(CodecError::BadVarint { .. })
        ));
        assert_eq!(CodecError::TrailingBytes { count: 1 }.sqlstate(), "XX001");
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep_key = vec![key_tag::ARRAY; 100_000];
        assert!(matches!(
            decode_key(&deep_key),
            Err(CodecError::TooDeep { .. })
        ));
        let mut deep_row = vec![ROW_VERSION, 1];
        for _ in 0..100_000 {
            deep_row.extend_from_slice(&[row_tag::ARRAY, 1]);
        }
        assert!(matches!(
            decode_row(&deep_row),
            Err(CodecError::TooDeep { .. })
        ));

        // Anything up to the limit round-trips.
        let mut v = Value::Null;
        for _ in 0..MAX_DEPTH {
            v = Value::Array(Arc::new(vec![v]));
        }
        assert_eq!(decode_key(&key(&[v.clone()])).unwrap(), [v.clone()]);
        assert_eq!(decode_row(&row(&[v.clone()])).unwrap(), [v]);
    }

    #[test]
    fn prefix_end_bounds_a_prefix_scan() {
        assert_eq!(key_prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(key_prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(key_prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(key_prefix_end(&[]), None);
        let group = key(&[Value::str("user-1")]);
        let end = key_prefix_end(&group).unwrap();
        let mut windowed = group.clone();
        encode_key(&[Value::Timestamp(i64::MAX)], &mut windowed);
        assert!(group < windowed && windowed < end);
        assert!(key(&[Value::str("user-1\0")]) >= end);
        assert_eq!(
            key(&[Value::str("user-1")]).cmp(&key(&[Value::str("user-2")])),
            Ordering::Less
        );
    }
}
