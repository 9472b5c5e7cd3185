//! SQL data types as ksqlDB names them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A column type. Names and nesting follow ksqlDB (`ARRAY<T>`, `MAP<K, V>`,
/// `STRUCT<name T, ...>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    Boolean,
    /// 32-bit signed integer.
    Int,
    /// 64-bit signed integer.
    BigInt,
    Double,
    /// Exact decimal; `scale` digits after the point. Precision above 28 is
    /// refused at bind time (the limit of `rust_decimal`).
    Decimal {
        precision: u8,
        scale: u8,
    },
    String,
    Bytes,
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp,
    /// Days since the Unix epoch.
    Date,
    /// Milliseconds since midnight.
    Time,
    Array(Box<DataType>),
    Map(Box<DataType>, Box<DataType>),
    Struct(Vec<(String, DataType)>),
}

impl DataType {
    /// True for INT, BIGINT, DOUBLE and DECIMAL.
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            DataType::Int | DataType::BigInt | DataType::Double | DataType::Decimal { .. }
        )
    }

    /// The type both operands of an arithmetic or comparison are widened to,
    /// if any: INT < BIGINT < DECIMAL < DOUBLE.
    pub fn common_numeric(a: &DataType, b: &DataType) -> Option<DataType> {
        use DataType::*;
        Some(match (a, b) {
            (Int, Int) => Int,
            (Int | BigInt, Int | BigInt) => BigInt,
            (Double, x) | (x, Double) if x.is_numeric() => Double,
            (
                Decimal {
                    precision: p1,
                    scale: s1,
                },
                Decimal {
                    precision: p2,
                    scale: s2,
                },
            ) => Decimal {
                precision: (*p1).max(*p2),
                scale: (*s1).max(*s2),
            },
            (Decimal { precision, scale }, Int | BigInt)
            | (Int | BigInt, Decimal { precision, scale }) => Decimal {
                precision: (*precision).max(19 + *scale).min(28),
                scale: *scale,
            },
            _ => return None,
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Boolean => f.write_str("BOOLEAN"),
            DataType::Int => f.write_str("INTEGER"),
            DataType::BigInt => f.write_str("BIGINT"),
            DataType::Double => f.write_str("DOUBLE"),
            DataType::Decimal { precision, scale } => write!(f, "DECIMAL({precision}, {scale})"),
            DataType::String => f.write_str("STRING"),
            DataType::Bytes => f.write_str("BYTES"),
            DataType::Timestamp => f.write_str("TIMESTAMP"),
            DataType::Date => f.write_str("DATE"),
            DataType::Time => f.write_str("TIME"),
            DataType::Array(t) => write!(f, "ARRAY<{t}>"),
            DataType::Map(k, v) => write!(f, "MAP<{k}, {v}>"),
            DataType::Struct(fields) => {
                f.write_str("STRUCT<")?;
                for (i, (name, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name} {t}")?;
                }
                f.write_str(">")
            }
        }
    }
}
