//! Casts between types, also used to coerce literals to column types (e.g.
//! `'2024-01-02'` into a DATE column).

use std::sync::Arc;

use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;

use crate::error::EvalError;
use crate::types::DataType;
use crate::value::{format_date, format_time, format_timestamp, Value};

fn invalid(v: &Value, to: &DataType) -> EvalError {
    EvalError::InvalidInput(format!("cannot cast \"{v}\" to {to}"))
}

/// The value as a decimal, if numeric.
pub fn to_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Int(i) => Some(Decimal::from(*i)),
        Value::BigInt(i) => Some(Decimal::from(*i)),
        Value::Double(d) => Decimal::from_f64(*d),
        Value::Decimal(d) => Some(*d),
        _ => None,
    }
}

/// Whether a cast from `from` to `to` is allowed at all (checked at bind time).
pub fn can_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to {
        return true;
    }
    match (from, to) {
        (_, String) => true,
        (String, _) => !matches!(to, Array(_) | Map(..) | Struct(_)),
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (Int | BigInt, Timestamp) | (Timestamp, BigInt) => true,
        (Timestamp, Date | Time) | (Date, Timestamp) => true,
        (Boolean, Int | BigInt) | (Int | BigInt, Boolean) => true,
        (Array(a), Array(b)) => can_cast(a, b),
        (Map(k1, v1), Map(k2, v2)) => can_cast(k1, k2) && can_cast(v1, v2),
        (Struct(a), Struct(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| can_cast(&x.1, &y.1))
        }
        _ => false,
    }
}

/// Converts a value to type `to`. NULL stays NULL.
pub fn cast(v: Value, to: &DataType) -> Result<Value, EvalError> {
    if v.is_null() {
        return Ok(v);
    }
    Ok(match to {
        DataType::Boolean => match &v {
            Value::Boolean(_) => v,
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "1" => Value::Boolean(true),
                "false" | "f" | "no" | "n" | "0" => Value::Boolean(false),
                _ => return Err(invalid(&v, to)),
            },
            _ => match v.as_i64() {
                Some(i) => Value::Boolean(i != 0),
                None => return Err(invalid(&v, to)),
            },
        },
        DataType::Int => match &v {
            Value::Int(_) => v,
            Value::Boolean(b) => Value::Int(i32::from(*b)),
            Value::String(s) => Value::Int(
                parse_int(s)
                    .ok_or_else(|| invalid(&v, to))?
                    .try_into()
                    .map_err(|_| EvalError::Overflow("integer"))?,
            ),
            _ => {
                let i = to_i64_truncating(&v).ok_or_else(|| invalid(&v, to))?;
                Value::Int(i32::try_from(i).map_err(|_| EvalError::Overflow("integer"))?)
            }
        },
        DataType::BigInt => match &v {
            Value::BigInt(_) => v,
            Value::Boolean(b) => Value::BigInt(i64::from(*b)),
            Value::Timestamp(t) => Value::BigInt(*t),
            Value::String(s) => Value::BigInt(parse_int(s).ok_or_else(|| invalid(&v, to))?),
            _ => Value::BigInt(to_i64_truncating(&v).ok_or_else(|| invalid(&v, to))?),
        },
        DataType::Double => match &v {
            Value::String(s) => Value::Double(s.trim().parse().map_err(|_| invalid(&v, to))?),
            _ => Value::Double(v.as_f64().ok_or_else(|| invalid(&v, to))?),
        },
        DataType::Decimal { precision, scale } => {
            let d = match &v {
                Value::String(s) => s.trim().parse::<Decimal>().map_err(|_| invalid(&v, to))?,
                _ => to_decimal(&v).ok_or_else(|| invalid(&v, to))?,
            };
            let d = d.round_dp_with_strategy(
                u32::from(*scale),
                rust_decimal::RoundingStrategy::MidpointAwayFromZero,
            );
            let mut d = d;
            d.rescale(u32::from(*scale));
            let digits = d.mantissa().unsigned_abs().to_string().len() as u8;
            if digits > (*precision).max(*scale) && !d.is_zero() {
                return Err(EvalError::Overflow("decimal"));
            }
            Value::Decimal(d)
        }
        DataType::String => match &v {
            Value::String(_) => v,
            Value::Array(_) | Value::Map(_) | Value::Struct(_) => {
                Value::String(Arc::from(v.to_string()))
            }
            Value::Timestamp(t) => Value::String(Arc::from(format_timestamp(*t))),
            Value::Date(d) => Value::String(Arc::from(format_date(*d))),
            Value::Time(t) => Value::String(Arc::from(format_time(*t))),
            _ => Value::String(Arc::from(v.to_string())),
        },
        DataType::Bytes => match &v {
            Value::Bytes(_) => v,
            Value::String(s) => Value::Bytes(Arc::from(s.as_bytes())),
            _ => return Err(invalid(&v, to)),
        },
        DataType::Timestamp => match &v {
            Value::Timestamp(_) => v,
            Value::Date(d) => Value::Timestamp(i64::from(*d) * 86_400_000),
            Value::String(s) => {
                Value::Timestamp(parse_timestamp(s).ok_or_else(|| invalid(&v, to))?)
            }
            _ => Value::Timestamp(v.as_i64().ok_or_else(|| invalid(&v, to))?),
        },
        DataType::Date => match &v {
            Value::Date(_) => v,
            Value::Timestamp(t) => Value::Date(t.div_euclid(86_400_000) as i32),
            Value::String(s) => Value::Date(parse_date(s).ok_or_else(|| invalid(&v, to))?),
            _ => Value::Date(
                v.as_i64()
                    .and_then(|d| i32::try_from(d).ok())
                    .ok_or_else(|| invalid(&v, to))?,
            ),
        },
        DataType::Time => match &v {
            Value::Time(_) => v,
            Value::Timestamp(t) => Value::Time(t.rem_euclid(86_400_000)),
            Value::String(s) => Value::Time(parse_time(s).ok_or_else(|| invalid(&v, to))?),
            _ => Value::Time(v.as_i64().ok_or_else(|| invalid(&v, to))?),
        },
        DataType::Array(t) => match v {
            Value::Array(items) => Value::Array(Arc::new(
                items
                    .iter()
                    .cloned()
                    .map(|x| cast(x, t))
                    .collect::<Result<_, _>>()?,
            )),
            other => return Err(invalid(&other, to)),
        },
        DataType::Map(kt, vt) => match v {
            Value::Map(entries) => Value::Map(Arc::new(
                entries
                    .iter()
                    .cloned()
                    .map(|(k, x)| Ok((cast(k, kt)?, cast(x, vt)?)))
                    .collect::<Result<_, EvalError>>()?,
            )),
            other => return Err(invalid(&other, to)),
        },
        DataType::Struct(fields) => match v {
            Value::Struct(values) if values.len() == fields.len() => Value::Struct(Arc::new(
                values
                    .iter()
                    .cloned()
                    .zip(fields)
                    .map(|(x, (_, t))| cast(x, t))
                    .collect::<Result<_, _>>()?,
            )),
            other => return Err(invalid(&other, to)),
        },
    })
}

fn to_i64_truncating(v: &Value) -> Option<i64> {
    match v {
        Value::Int(_) | Value::BigInt(_) => v.as_i64(),
        Value::Double(d) if d.is_finite() && d.abs() < 9.2e18 => Some(d.trunc() as i64),
        Value::Decimal(d) => d.trunc().to_i64(),
        _ => None,
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    s.parse::<i64>().ok().or_else(|| {
        s.parse::<f64>()
            .ok()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            .map(|f| f as i64)
    })
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<i32> {
    let d = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((d - epoch).num_days()).ok()
}

/// Parses `HH:MM[:SS[.fff]]` into ms since midnight.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let t = chrono::NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveTime::parse_from_str(s, "%H:%M"))
        .ok()?;
    use chrono::Timelike;
    Some(i64::from(t.num_seconds_from_midnight()) * 1000 + i64::from(t.nanosecond() / 1_000_000))
}

/// Parses an ISO-8601 timestamp (`2024-01-02T03:04:05[.fff][Z|+hh:mm]`, a
/// space instead of `T`, or a bare date) into ms since the epoch, UTC.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(t) = chrono::DateTime::parse_from_str(s, fmt) {
            return Some(t.timestamp_millis());
        }
    }
    let naive = s.trim_end_matches('Z');
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    parse_date(s).map(|d| i64::from(d) * 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_literals_coerce_to_temporal_types() {
        assert_eq!(
            cast(Value::str("1970-01-02"), &DataType::Date),
            Ok(Value::Date(1))
        );
        assert_eq!(
            cast(Value::str("00:00:01.5"), &DataType::Time),
            Ok(Value::Time(1500))
        );
        assert_eq!(
            cast(Value::str("1970-01-01T00:00:01Z"), &DataType::Timestamp),
            Ok(Value::Timestamp(1000))
        );
        assert_eq!(
            cast(Value::str("1970-01-01 00:00:02.250"), &DataType::Timestamp),
            Ok(Value::Timestamp(2250))
        );
        assert!(cast(Value::str("yesterday"), &DataType::Date).is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(cast(Value::Double(2.9), &DataType::Int), Ok(Value::Int(2)));
        assert_eq!(
            cast(Value::str(" 42 "), &DataType::BigInt),
            Ok(Value::BigInt(42))
        );
        assert_eq!(
            cast(
                Value::Double(1.5),
                &DataType::Decimal {
                    precision: 4,
                    scale: 2
                }
            )
            .map(|v| v.to_string()),
            Ok("1.50".to_string())
        );
        assert!(cast(
            Value::Int(12345),
            &DataType::Decimal {
                precision: 4,
                scale: 2
            }
        )
        .is_err());
        assert!(cast(Value::BigInt(i64::MAX), &DataType::Int).is_err());
        assert_eq!(cast(Value::Int(5), &DataType::String), Ok(Value::str("5")));
    }
}
