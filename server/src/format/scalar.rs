//! Primitive column types and their text forms, shared by every format.
//!
//! JSON strings (`"42"` for an INTEGER), DELIMITED fields and JSON map keys
//! all go through [`parse_text`] and [`write_text`], so a value reads the same
//! way whichever format carried it. Nothing here allocates except the output
//! value itself.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::num::IntErrorKind;
use std::str::FromStr;
use std::sync::Arc;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use chrono::{Datelike, NaiveDate};
use rill_sql::{DataType, Value};
use rust_decimal::Decimal;

use super::FormatError;

/// Standard base64 (the alphabet Jackson and `java.util.Base64` write),
/// padded on output and accepted with or without padding on input.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const MS_PER_DAY: i64 = 86_400_000;
/// `NaiveDate::num_days_from_ce` of 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A column type that is not nested: what DELIMITED and KAFKA can hold and
/// what JSON nests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    Boolean,
    Int,
    BigInt,
    Double,
    Decimal { precision: u8, scale: u8 },
    String,
    Bytes,
    Timestamp,
    Date,
    Time,
}

impl Scalar {
    /// The scalar for `t`, or `None` for ARRAY, MAP and STRUCT.
    pub(crate) fn of(t: &DataType) -> Option<Scalar> {
        Some(match t {
            DataType::Boolean => Scalar::Boolean,
            DataType::Int => Scalar::Int,
            DataType::BigInt => Scalar::BigInt,
            DataType::Double => Scalar::Double,
            DataType::Decimal { precision, scale } => Scalar::Decimal {
                precision: *precision,
                scale: *scale,
            },
            DataType::String => Scalar::String,
            DataType::Bytes => Scalar::Bytes,
            DataType::Timestamp => Scalar::Timestamp,
            DataType::Date => Scalar::Date,
            DataType::Time => Scalar::Time,
            DataType::Array(_) | DataType::Map(..) | DataType::Struct(_) => return None,
        })
    }

    /// The SQL type, for error messages.
    pub(crate) fn data_type(self) -> DataType {
        match self {
            Scalar::Boolean => DataType::Boolean,
            Scalar::Int => DataType::Int,
            Scalar::BigInt => DataType::BigInt,
            Scalar::Double => DataType::Double,
            Scalar::Decimal { precision, scale } => DataType::Decimal { precision, scale },
            Scalar::String => DataType::String,
            Scalar::Bytes => DataType::Bytes,
            Scalar::Timestamp => DataType::Timestamp,
            Scalar::Date => DataType::Date,
            Scalar::Time => DataType::Time,
        }
    }
}

/// Why input could not become a value of the wanted type. The caller knows
/// the column and the input, and turns this into a [`FormatError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Not a value of the type at all (`"abc"` for an INTEGER).
    Invalid,
    /// A value of the type, but too large for the column.
    OutOfRange,
}

impl Reject {
    /// The error for `column`, with `found` the offending input as shown to
    /// the user.
    pub(crate) fn into_error(self, column: &str, expected: DataType, found: String) -> FormatError {
        let column = column.to_owned();
        match self {
            Reject::Invalid => FormatError::InvalidValue {
                column,
                expected,
                found,
            },
            Reject::OutOfRange => FormatError::OutOfRange {
                column,
                expected,
                found,
            },
        }
    }
}

/// Shows a piece of input text in an error: quoted, and cut short so a huge
/// field does not flood the log.
pub(crate) fn quoted(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("\"{}...\"", &text[..cut]),
        None => format!("\"{text}\""),
    }
}

/// Parses the text form of a value: what a DELIMITED field or a JSON string
/// holds. `scratch` is reused for decoding base64.
///
/// Numbers, booleans and temporal values may have surrounding whitespace;
/// STRING keeps the text as is.
pub(crate) fn parse_text(s: Scalar, text: &str, scratch: &mut Vec<u8>) -> Result<Value, Reject> {
    Ok(match s {
        Scalar::String => Value::String(Arc::from(text)),
        Scalar::Boolean => {
            let t = text.trim();
            if t.eq_ignore_ascii_case("true") {
                Value::Boolean(true)
            } else if t.eq_ignore_ascii_case("false") {
                Value::Boolean(false)
            } else {
                return Err(Reject::Invalid);
            }
        }
        Scalar::Int => Value::Int(parse_int(text)?),
        Scalar::BigInt => Value::BigInt(parse_int(text)?),
        Scalar::Double => Value::Double(text.trim().parse().map_err(|_| Reject::Invalid)?),
        Scalar::Decimal { precision, scale } => {
            Value::Decimal(fit_decimal(parse_decimal(text.trim())?, precision, scale)?)
        }
        Scalar::Bytes => {
            scratch.clear();
            BASE64
                .decode_vec(text.trim(), scratch)
                .map_err(|_| Reject::Invalid)?;
            Value::Bytes(Arc::from(&scratch[..]))
        }
        Scalar::Timestamp => Value::Timestamp(parse_timestamp(text.trim())?),
        Scalar::Date => Value::Date(parse_date(text.trim())?),
        Scalar::Time => Value::Time(parse_time(text.trim())?),
    })
}

fn parse_int<T: FromStr<Err = std::num::ParseIntError>>(text: &str) -> Result<T, Reject> {
    text.trim()
        .parse()
        .map_err(|e: std::num::ParseIntError| match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => Reject::OutOfRange,
            _ => Reject::Invalid,
        })
}

/// Parses a decimal number, with or without an exponent (`1.5`, `-2E+3`).
pub(crate) fn parse_decimal(text: &str) -> Result<Decimal, Reject> {
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str(text)
    };
    parsed.map_err(|_| {
        // A well-formed number that rust_decimal cannot hold is too large,
        // not malformed.
        if text.parse::<f64>().is_ok_and(f64::is_finite) {
            Reject::OutOfRange
        } else {
            Reject::Invalid
        }
    })
}

/// Rounds `d` half away from zero to `scale` digits, as ksqlDB does, and
/// checks it has at most `precision` digits in all.
pub(crate) fn fit_decimal(mut d: Decimal, precision: u8, scale: u8) -> Result<Decimal, Reject> {
    let scale = u32::from(scale);
    d.rescale(scale);
    let limit = 10u128.checked_pow(u32::from(precision));
    if d.scale() != scale || limit.is_some_and(|limit| d.mantissa().unsigned_abs() >= limit) {
        return Err(Reject::OutOfRange);
    }
    Ok(d)
}

/// True for an optionally signed run of ASCII digits.
fn is_integer(t: &str) -> bool {
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A TIMESTAMP from milliseconds since the epoch (`1700000000000`) or an
/// ISO-8601 date-time: `YYYY-MM-DD[(T| )HH:MM[:SS[.fff]][Z|±HH[:MM]]]`.
/// Without a zone the time is UTC. Digits past milliseconds are dropped.
pub(crate) fn parse_timestamp(t: &str) -> Result<i64, Reject> {
    if is_integer(t) {
        return parse_int(t);
    }
    let (days, rest) = parse_ymd(t.as_bytes()).ok_or(Reject::Invalid)?;
    let mut ms = i64::from(days) * MS_PER_DAY;
    let Some((&sep, rest)) = rest.split_first() else {
        return Ok(ms);
    };
    if !matches!(sep, b'T' | b't' | b' ') {
        return Err(Reject::Invalid);
    }
    let (time, rest) = parse_hms(rest).ok_or(Reject::Invalid)?;
    ms += time;
    match rest {
        [] | [b'Z' | b'z'] => Ok(ms),
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let (h, m) = match zone {
                [h1, h2] => (two_digits(*h1, *h2), Some(0)),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (two_digits(*h1, *h2), two_digits(*m1, *m2))
                }
                _ => return Err(Reject::Invalid),
            };
            let (Some(h), Some(m)) = (h, m) else {
                return Err(Reject::Invalid);
            };
            if h > 18 || m > 59 {
                return Err(Reject::Invalid);
            }
            let offset = (h * 60 + m) * 60_000;
            Ok(if *sign == b'+' {
                ms - offset
            } else {
                ms + offset
            })
        }
        _ => Err(Reject::Invalid),
    }
}

/// A DATE from days since the epoch (`19675`) or `YYYY-MM-DD`.
pub(crate) fn parse_date(t: &str) -> Result<i32, Reject> {
    if is_integer(t) {
        return parse_int(t);
    }
    match parse_ymd(t.as_bytes()) {
        Some((days, [])) => Ok(days),
        _ => Err(Reject::Invalid),
    }
}

/// A TIME from milliseconds since midnight (`3723004`) or
/// `HH:MM[:SS[.fff]]`.
pub(crate) fn parse_time(t: &str) -> Result<i64, Reject> {
    if is_integer(t) {
        return check_time(parse_int(t)?);
    }
    match parse_hms(t.as_bytes()) {
        Some((ms, [])) => Ok(ms),
        _ => Err(Reject::Invalid),
    }
}

/// A time of day must lie within one day.
pub(crate) fn check_time(ms: i64) -> Result<i64, Reject> {
    if (0..MS_PER_DAY).contains(&ms) {
        Ok(ms)
    } else {
        Err(Reject::OutOfRange)
    }
}

fn two_digits(a: u8, b: u8) -> Option<i64> {
    if a.is_ascii_digit() && b.is_ascii_digit() {
        Some(i64::from(a - b'0') * 10 + i64::from(b - b'0'))
    } else {
        None
    }
}

/// `YYYY-MM-DD` at the start of `b`: days since the epoch and the rest.
fn parse_ymd(b: &[u8]) -> Option<(i32, &[u8])> {
    let ([y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2], rest) = b.split_first_chunk::<10>()? else {
        return None;
    };
    let year = two_digits(*y1, *y2)? * 100 + two_digits(*y3, *y4)?;
    let month = two_digits(*m1, *m2)?;
    let day = two_digits(*d1, *d2)?;
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(year).ok()?,
        u32::try_from(month).ok()?,
        u32::try_from(day).ok()?,
    )?;
    Some((date.num_days_from_ce() - EPOCH_DAYS_FROM_CE, rest))
}

/// `HH:MM[:SS[.f+]]` at the start of `b`: milliseconds and the rest.
fn parse_hms(b: &[u8]) -> Option<(i64, &[u8])> {
    let ([h1, h2, b':', m1, m2], mut rest) = b.split_first_chunk::<5>()? else {
        return None;
    };
    let (h, m) = (two_digits(*h1, *h2)?, two_digits(*m1, *m2)?);
    let mut s = 0;
    let mut frac = 0;
    if let Some(([b':', s1, s2], r)) = rest.split_first_chunk::<3>() {
        s = two_digits(*s1, *s2)?;
        rest = r;
        if let Some((b'.', r)) = rest.split_first() {
            let digits = r.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            for i in 0..3 {
                frac = frac * 10
                    + r.get(i)
                        .filter(|_| i < digits)
                        .map_or(0, |d| i64::from(d - b'0'));
            }
            rest = &r[digits..];
        }
    }
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    Some((((h * 60 + m) * 60 + s) * 1000 + frac, rest))
}

/// A non-NULL value checked against its column's scalar type, ready to be
/// written by any format.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Prim<'a> {
    Bool(bool),
    I32(i32),
    I64(i64),
    F64(f64),
    Dec(Decimal),
    Str(&'a str),
    Bytes(&'a [u8]),
    Timestamp(i64),
    Date(i32),
    Time(i64),
}

/// Checks `v` against a column of type `s` for encoding: `None` for NULL.
///
/// Integers widen to BIGINT, DOUBLE and DECIMAL, so a plan need not cast a
/// literal; decimals are rounded to the column's scale. The error's column
/// is empty: the caller prefixes it.
pub(crate) fn prim(s: Scalar, v: &Value) -> Result<Option<Prim<'_>>, FormatError> {
    Ok(Some(match (s, v) {
        (_, Value::Null) => return Ok(None),
        (Scalar::Boolean, Value::Boolean(b)) => Prim::Bool(*b),
        (Scalar::Int, Value::Int(i)) => Prim::I32(*i),
        (Scalar::BigInt, Value::Int(_) | Value::BigInt(_)) => {
            Prim::I64(v.as_i64().unwrap_or_default())
        }
        (
            Scalar::Double,
            Value::Int(_) | Value::BigInt(_) | Value::Double(_) | Value::Decimal(_),
        ) => Prim::F64(v.as_f64().unwrap_or(f64::NAN)),
        (
            Scalar::Decimal { precision, scale },
            Value::Decimal(_) | Value::Int(_) | Value::BigInt(_),
        ) => {
            let d = match v {
                Value::Decimal(d) => *d,
                _ => Decimal::from(v.as_i64().unwrap_or_default()),
            };
            let fitted = fit_decimal(d, precision, scale)
                .map_err(|r| r.into_error("", s.data_type(), d.to_string()))?;
            Prim::Dec(fitted)
        }
        (Scalar::String, Value::String(s)) => Prim::Str(s),
        (Scalar::Bytes, Value::Bytes(b)) => Prim::Bytes(b),
        (Scalar::Timestamp, Value::Timestamp(t)) => Prim::Timestamp(*t),
        (Scalar::Date, Value::Date(d)) => Prim::Date(*d),
        (Scalar::Time, Value::Time(t)) => Prim::Time(*t),
        _ => return Err(encode_mismatch(s.data_type(), v)),
    }))
}

/// The error for a value whose type does not match its column.
pub(crate) fn encode_mismatch(expected: DataType, v: &Value) -> FormatError {
    FormatError::EncodeType {
        column: String::new(),
        expected,
        found: value_kind(v),
    }
}

/// "a STRING value" etc., for encode errors.
fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "a NULL value",
        Value::Boolean(_) => "a BOOLEAN value",
        Value::Int(_) => "an INTEGER value",
        Value::BigInt(_) => "a BIGINT value",
        Value::Double(_) => "a DOUBLE value",
        Value::Decimal(_) => "a DECIMAL value",
        Value::String(_) => "a STRING value",
        Value::Bytes(_) => "a BYTES value",
        Value::Timestamp(_) => "a TIMESTAMP value",
        Value::Date(_) => "a DATE value",
        Value::Time(_) => "a TIME value",
        Value::Array(_) => "an ARRAY value",
        Value::Map(_) => "a MAP value",
        Value::Struct(_) => "a STRUCT value",
    }
}

/// Appends the text form of `p`, the inverse of [`parse_text`]: numbers as
/// digits, temporal values as their epoch numbers (as ksqlDB writes them),
/// BYTES as base64.
pub(crate) fn write_text(p: Prim<'_>, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = match p {
        Prim::Bool(b) => out.write_all(if b { b"true" } else { b"false" }),
        // itoa: integers are most of what a record's text holds, and fmt's
        // machinery was a few percent of a JSON sink's time.
        Prim::I32(v) | Prim::Date(v) => out.write_all(itoa::Buffer::new().format(v).as_bytes()),
        Prim::I64(v) | Prim::Timestamp(v) | Prim::Time(v) => {
            out.write_all(itoa::Buffer::new().format(v).as_bytes())
        }
        Prim::F64(v) => {
            write_double(v, out);
            Ok(())
        }
        Prim::Dec(d) => write!(out, "{d}"),
        Prim::Str(s) => out.write_all(s.as_bytes()),
        Prim::Bytes(b) => {
            write_base64(b, out);
            Ok(())
        }
    };
}

/// Appends a double so that Java and Rust parse it back to the same bits:
/// shortest round-trip digits, `NaN`, `Infinity`, `-Infinity`.
pub(crate) fn write_double(v: f64, out: &mut Vec<u8>) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else if v != 0.0 && v.abs() < 1e-4 {
        // `{:?}` is the shortest round-trip form and switches to exponent
        // notation for very large and small magnitudes; ryu writes these
        // small ones without an exponent.
        let _ = write!(out, "{v:?}");
    } else {
        // The shortest round-trip form too, several times faster (a double
        // column was a tenth of Nexmark q1's time).
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

/// Appends `b` as padded standard base64.
pub(crate) fn write_base64(b: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let Some(len) = base64::encoded_len(b.len(), true) else {
        return;
    };
    out.resize(start + len, 0);
    match BASE64.encode_slice(b, &mut out[start..]) {
        Ok(written) => out.truncate(start + written),
        Err(_) => out.truncate(start),
    }
}

/// A string value from formatted text, without a temporary `String` for
/// short text.
pub(crate) fn arc_str(args: fmt::Arguments<'_>) -> Arc<str> {
    let mut buf = StackText {
        buf: [0; 64],
        len: 0,
    };
    if buf.write_fmt(args).is_ok() {
        // Only whole `&str`s are copied in, so the prefix is UTF-8.
        if let Ok(s) = std::str::from_utf8(&buf.buf[..buf.len]) {
            return Arc::from(s);
        }
    }
    Arc::from(args.to_string())
}

struct StackText {
    buf: [u8; 64],
    len: usize,
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn text(s: Scalar, t: &str) -> Result<Value, Reject> {
        parse_text(s, t, &mut Vec::new())
    }

    fn double_text(v: f64) -> String {
        let mut out = Vec::new();
        write_double(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn doubles_write_as_shortest_round_trip_digits() {
        for (v, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1234.5678 * 0.908, "1120.9875624000001"),
            (0.1 + 0.2, "0.30000000000000004"),
            (0.0001, "0.0001"),
            (0.00001, "1e-5"),
            (1e16, "1e16"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(double_text(v), want);
        }
    }

    proptest::proptest! {
        #[test]
        fn doubles_parse_back_to_their_bits(bits: u64) {
            let v = f64::from_bits(bits);
            proptest::prop_assume!(v.is_finite());
            let back: f64 = double_text(v).parse().unwrap();
            proptest::prop_assert_eq!(back.to_bits(), v.to_bits());
        }
    }

    #[test]
    fn timestamps_parse_from_millis_and_iso_8601() {
        assert_eq!(parse_timestamp("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20.123"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_timestamp("2023-11-14 22:13:20.1234567"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_timestamp("2023-11-14T23:13:20+01:00"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2023-11-14T21:13:20-0100"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13+00"),
            Ok(1_699_999_980_000)
        );
        assert_eq!(parse_timestamp("2023-11-14"), Ok(1_699_920_000_000));
        assert_eq!(parse_timestamp("1969-12-31T23:59:59.999Z"), Ok(-1));
        for bad in [
            "2023-02-30",
            "2023-11-14T25:00",
            "yesterday",
            "2023-11-14T22:13:20Q",
            "",
        ] {
            assert_eq!(parse_timestamp(bad), Err(Reject::Invalid), "{bad}");
        }
        assert_eq!(
            parse_timestamp("99999999999999999999"),
            Err(Reject::OutOfRange)
        );
    }

    #[test]
    fn dates_and_times_parse_from_numbers_and_text() {
        assert_eq!(parse_date("2023-11-14"), Ok(19_675));
        assert_eq!(parse_date("19675"), Ok(19_675));
        assert_eq!(parse_date("1969-12-31"), Ok(-1));
        assert_eq!(parse_date("2023-11-14T00:00"), Err(Reject::Invalid));
        assert_eq!(parse_time("01:02:03.004"), Ok(3_723_004));
        assert_eq!(parse_time("01:02"), Ok(3_720_000));
        assert_eq!(parse_time("3723004"), Ok(3_723_004));
        assert_eq!(parse_time("86400000"), Err(Reject::OutOfRange));
        assert_eq!(parse_time("1:02:03"), Err(Reject::Invalid));
    }

    #[test]
    fn decimals_round_half_up_to_scale_and_check_precision() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert_eq!(
            fit_decimal(d("1.5"), 4, 2).map(|d| d.to_string()),
            Ok("1.50".into())
        );
        assert_eq!(
            fit_decimal(d("1.235"), 4, 2).map(|d| d.to_string()),
            Ok("1.24".into())
        );
        assert_eq!(
            fit_decimal(d("-1.235"), 4, 2).map(|d| d.to_string()),
            Ok("-1.24".into())
        );
        assert_eq!(fit_decimal(d("99.99"), 4, 2), Ok(d("99.99")));
        assert_eq!(fit_decimal(d("100"), 4, 2), Err(Reject::OutOfRange));
        assert_eq!(parse_decimal("1.5E+2"), Ok(d("150")));
        assert_eq!(parse_decimal("12abc"), Err(Reject::Invalid));
        assert_eq!(
            parse_decimal("123456789012345678901234567890123"),
            Err(Reject::OutOfRange)
        );
    }

    #[test]
    fn text_forms_round_trip() {
        let cases = [
            (Scalar::Boolean, Value::Boolean(true)),
            (Scalar::Int, Value::Int(-42)),
            (Scalar::BigInt, Value::BigInt(i64::MIN)),
            (Scalar::Double, Value::Double(0.1)),
            (Scalar::Double, Value::Double(1e300)),
            (Scalar::Double, Value::Double(f64::NEG_INFINITY)),
            (Scalar::Double, Value::Double(f64::NAN)),
            (
                Scalar::Decimal {
                    precision: 10,
                    scale: 3,
                },
                Value::Decimal(Decimal::new(-12_345, 3)),
            ),
            (Scalar::String, Value::str("héllo, \"world\"")),
            (
                Scalar::Bytes,
                Value::Bytes(Arc::from(&[0u8, 1, 254, 255][..])),
            ),
            (Scalar::Timestamp, Value::Timestamp(1_700_000_000_123)),
            (Scalar::Date, Value::Date(-3)),
            (Scalar::Time, Value::Time(3_723_004)),
        ];
        for (s, v) in cases {
            let mut out = Vec::new();
            let p = prim(s, &v).unwrap().unwrap();
            write_text(p, &mut out);
            let t = std::str::from_utf8(&out).unwrap();
            assert_eq!(text(s, t), Ok(v.clone()), "{s:?} {t}");
        }
    }

    #[test]
    fn text_parsing_rejects_what_is_not_the_type() {
        assert_eq!(text(Scalar::Int, "abc"), Err(Reject::Invalid));
        assert_eq!(text(Scalar::Int, "1.5"), Err(Reject::Invalid));
        assert_eq!(text(Scalar::Int, "3000000000"), Err(Reject::OutOfRange));
        assert_eq!(text(Scalar::Int, " 7 "), Ok(Value::Int(7)));
        assert_eq!(text(Scalar::Boolean, "yes"), Err(Reject::Invalid));
        assert_eq!(text(Scalar::Boolean, "TRUE"), Ok(Value::Boolean(true)));
        assert_eq!(text(Scalar::Bytes, "not base64!"), Err(Reject::Invalid));
        assert_eq!(
            text(Scalar::Bytes, "AAE"),
            Ok(Value::Bytes(Arc::from(&[0u8, 1][..])))
        );
    }

    #[test]
    fn encoding_widens_integers_and_refuses_other_types() {
        assert!(matches!(
            prim(Scalar::BigInt, &Value::Int(3)),
            Ok(Some(Prim::I64(3)))
        ));
        assert!(matches!(
            prim(Scalar::Double, &Value::Int(3)),
            Ok(Some(Prim::F64(_)))
        ));
        assert!(matches!(prim(Scalar::Int, &Value::Null), Ok(None)));
        let err = prim(Scalar::Int, &Value::str("x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot encode a STRING value into column \"\" of type INTEGER"
        );
    }

    #[test]
    fn long_formatted_text_falls_back_to_the_heap() {
        let long = "x".repeat(100);
        assert_eq!(&*arc_str(format_args!("{long}")), long.as_str());
        assert_eq!(&*arc_str(format_args!("{}", 42)), "42");
    }
}
