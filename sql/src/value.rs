//! Runtime values. One enum for every [`DataType`]; `Null` is untyped.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rust_decimal::Decimal;

use crate::types::DataType;

/// A single SQL value.
///
/// # Invariants
/// `Eq`, `Ord` and `Hash` agree and are total (NaN equals NaN and sorts last
/// among doubles) so values can be group keys and sort keys. Values of
/// different types order by a fixed type rank; the binder makes sure only
/// values of one type meet in a comparison.
#[derive(Debug, Clone, Default)]
pub enum Value {
    #[default]
    Null,
    Boolean(bool),
    Int(i32),
    BigInt(i64),
    Double(f64),
    Decimal(Decimal),
    String(Arc<str>),
    Bytes(Arc<[u8]>),
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// Days since the Unix epoch.
    Date(i32),
    /// Milliseconds since midnight.
    Time(i64),
    Array(Arc<Vec<Value>>),
    /// Entries in insertion order; keys are unique.
    Map(Arc<Vec<(Value, Value)>>),
    /// Field values in the order of the struct type's fields.
    Struct(Arc<Vec<Value>>),
}

/// A row: one value per column of its schema.
pub type Row = Vec<Value>;

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::String(Arc::from(s))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as an i64 if it is an integer of any width.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(i64::from(*v)),
            Value::BigInt(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as an f64 if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        use rust_decimal::prelude::ToPrimitive;
        match self {
            Value::Int(v) => Some(f64::from(*v)),
            Value::BigInt(v) => Some(*v as f64),
            Value::Double(v) => Some(*v),
            Value::Decimal(d) => d.to_f64(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Boolean(_) => 1,
            Value::Int(_) | Value::BigInt(_) | Value::Double(_) | Value::Decimal(_) => 2,
            Value::String(_) => 3,
            Value::Bytes(_) => 4,
            Value::Timestamp(_) => 5,
            Value::Date(_) => 6,
            Value::Time(_) => 7,
            Value::Array(_) => 8,
            Value::Map(_) => 9,
            Value::Struct(_) => 10,
        }
    }

    /// Whether this value can be stored in a column of type `t` as is.
    pub fn fits(&self, t: &DataType) -> bool {
        matches!(
            (self, t),
            (Value::Null, _)
                | (Value::Boolean(_), DataType::Boolean)
                | (Value::Int(_), DataType::Int)
                | (Value::BigInt(_), DataType::BigInt)
                | (Value::Double(_), DataType::Double)
                | (Value::Decimal(_), DataType::Decimal { .. })
                | (Value::String(_), DataType::String)
                | (Value::Bytes(_), DataType::Bytes)
                | (Value::Timestamp(_), DataType::Timestamp)
                | (Value::Date(_), DataType::Date)
                | (Value::Time(_), DataType::Time)
                | (Value::Array(_), DataType::Array(_))
                | (Value::Map(_), DataType::Map(..))
                | (Value::Struct(_), DataType::Struct(_))
        )
    }
}

fn cmp_f64(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b)
        .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
}

fn cmp_numeric(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Decimal(x), Value::Decimal(y)) => x.cmp(y),
        _ => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => match (a, b) {
                (Value::Decimal(x), y) | (y, Value::Decimal(x)) if y.as_i64().is_some() => {
                    let y = Decimal::from(y.as_i64().unwrap_or_default());
                    let o = x.cmp(&y);
                    if matches!(a, Value::Decimal(_)) {
                        o
                    } else {
                        o.reverse()
                    }
                }
                _ => cmp_f64(
                    a.as_f64().unwrap_or(f64::NAN),
                    b.as_f64().unwrap_or(f64::NAN),
                ),
            },
        },
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        use Value::*;
        match (self, other) {
            // The commonest keys first: group and join keys compare often.
            (BigInt(a), BigInt(b)) => a.cmp(b),
            (Null, Null) => Ordering::Equal,
            (Boolean(a), Boolean(b)) => a.cmp(b),
            (String(a), String(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Time(a), Time(b)) => a.cmp(b),
            (Array(a), Array(b)) => a.cmp(b),
            (Map(a), Map(b)) => a.cmp(b),
            (Struct(a), Struct(b)) => a.cmp(b),
            (a, b) if a.rank() == 2 && b.rank() == 2 => cmp_numeric(a, b),
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            // Group and join keys compare often: the same type, mostly.
            (BigInt(a), BigInt(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (String(a), String(b)) => a == b,
            _ => self.cmp(other) == Ordering::Equal,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rank().hash(state);
        match self {
            Value::Null => {}
            Value::Boolean(b) => b.hash(state),
            // Numbers that compare equal must hash equal: hash integral
            // values as i64 and everything else by its f64 bits. Integers
            // below 9e15 are their own f64 and take the integral branch.
            Value::Int(v) => i64::from(*v).hash(state),
            Value::BigInt(v) if v.unsigned_abs() < 9_000_000_000_000_000 => v.hash(state),
            Value::BigInt(_) | Value::Double(_) | Value::Decimal(_) => {
                let f = self.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    (f as i64).hash(state)
                } else if f.is_nan() {
                    u64::MAX.hash(state)
                } else {
                    f.to_bits().hash(state)
                }
            }
            Value::String(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::Timestamp(v) | Value::Time(v) => v.hash(state),
            Value::Date(v) => v.hash(state),
            Value::Array(a) => a.hash(state),
            Value::Map(m) => m.hash(state),
            Value::Struct(s) => s.hash(state),
        }
    }
}

/// Formats a timestamp (ms since epoch) as `YYYY-MM-DD HH:MM:SS[.fff]`.
pub fn format_timestamp(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) if ms.rem_euclid(1000) == 0 => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => ms.to_string(),
    }
}

/// Formats a date (days since epoch) as `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(i64::from(days))))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| days.to_string())
}

/// Formats a time of day (ms since midnight) as `HH:MM:SS[.fff]`.
pub fn format_time(ms: i64) -> String {
    let (h, m, s, f) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if f == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{f:03}")
    }
}

/// Formats a double the way Postgres' text output does for common values
/// (`1`, `1.5`, `1e+20`, `NaN`, `Infinity`).
pub fn format_double(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if v != 0.0 && (v.abs() >= 1e15 || v.abs() < 1e-4) {
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        format!("{v}")
    }
}

/// The text form of a value as psql shows it. Nested values render like
/// ksqlDB's JSON-ish output: `[1, 2]`, `{a=1}`, `{F1=x, F2=2}`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Boolean(b) => f.write_str(if *b { "true" } else { "false" }),
            Value::Int(v) => write!(f, "{v}"),
            Value::BigInt(v) => write!(f, "{v}"),
            Value::Double(v) => f.write_str(&format_double(*v)),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::String(s) => f.write_str(s),
            Value::Bytes(b) => {
                f.write_str("\\x")?;
                for byte in b.iter() {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
            Value::Timestamp(ms) => f.write_str(&format_timestamp(*ms)),
            Value::Date(d) => f.write_str(&format_date(*d)),
            Value::Time(t) => f.write_str(&format_time(*t)),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                f.write_str("}")
            }
            Value::Struct(fields) => {
                f.write_str("{")?;
                for (i, v) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn h(v: &Value) -> u64 {
        let mut s = DefaultHasher::new();
        v.hash(&mut s);
        s.finish()
    }

    #[test]
    fn numbers_of_different_widths_compare_and_hash_alike() {
        assert_eq!(Value::Int(3), Value::BigInt(3));
        assert_eq!(h(&Value::Int(3)), h(&Value::BigInt(3)));
        assert_eq!(Value::Double(3.0), Value::BigInt(3));
        assert_eq!(h(&Value::Double(3.0)), h(&Value::BigInt(3)));
        assert!(Value::Double(2.5) < Value::Int(3));
        assert_eq!(Value::Decimal(Decimal::new(300, 2)), Value::Int(3));
        assert!(Value::Decimal(Decimal::new(250, 2)) < Value::BigInt(3));
        // Around the integers' own hashing cut-off, and past f64's precision.
        for v in [
            -9_000_000_000_000_001i64,
            -8_999_999_999_999_999,
            8_999_999_999_999_999,
        ] {
            assert_eq!(h(&Value::BigInt(v)), h(&Value::Double(v as f64)), "{v}");
            assert_eq!(
                h(&Value::BigInt(v)),
                h(&Value::Decimal(Decimal::from(v))),
                "{v}"
            );
        }
        assert_eq!(
            h(&Value::Int(-7)),
            h(&Value::Decimal(Decimal::new(-700, 2)))
        );
    }

    #[test]
    fn nan_is_equal_to_itself_and_sorts_last() {
        assert_eq!(Value::Double(f64::NAN), Value::Double(f64::NAN));
        assert!(Value::Double(f64::INFINITY) < Value::Double(f64::NAN));
    }

    #[test]
    fn display_matches_postgres_text() {
        assert_eq!(Value::Double(1.0).to_string(), "1");
        assert_eq!(Value::Double(0.25).to_string(), "0.25");
        assert_eq!(Value::Timestamp(0).to_string(), "1970-01-01 00:00:00");
        assert_eq!(
            Value::Timestamp(1500).to_string(),
            "1970-01-01 00:00:01.500"
        );
        assert_eq!(Value::Date(1).to_string(), "1970-01-02");
        assert_eq!(Value::Time(3_723_004).to_string(), "01:02:03.004");
    }
}
