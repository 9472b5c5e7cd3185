//! Resolving written type names to [`DataType`]s.

use sqlparser::ast as sql;

use crate::error::BindError;
use crate::parser::types::parse_type_text;
use crate::parser::TypeName;
use crate::types::DataType;

/// Resolves a type as written in DDL or CAST.
pub fn resolve_type(t: &TypeName) -> Result<DataType, BindError> {
    Ok(match t {
        TypeName::Array(inner) => DataType::Array(Box::new(resolve_type(inner)?)),
        TypeName::Map(k, v) => {
            let k = resolve_type(k)?;
            if k != DataType::String {
                return Err(BindError::Unsupported(format!(
                    "MAP keys must be STRING (as in ksqlDB), found {k}"
                )));
            }
            DataType::Map(Box::new(k), Box::new(resolve_type(v)?))
        }
        TypeName::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|(n, t)| Ok((n.clone(), resolve_type(t)?)))
                .collect::<Result<_, BindError>>()?,
        ),
        TypeName::Simple { name, args } => {
            let no_args = |t: DataType| -> Result<DataType, BindError> {
                if args.is_empty() || matches!(name.as_str(), "VARCHAR" | "CHAR" | "STRING") {
                    Ok(t)
                } else {
                    Err(BindError::TypeMismatch(format!(
                        "type {name} takes no arguments"
                    )))
                }
            };
            match name.as_str() {
                "BOOLEAN" | "BOOL" => no_args(DataType::Boolean)?,
                "INT" | "INTEGER" | "INT4" | "SMALLINT" | "TINYINT" => no_args(DataType::Int)?,
                "BIGINT" | "INT8" | "LONG" => no_args(DataType::BigInt)?,
                "DOUBLE" | "FLOAT" | "FLOAT8" | "REAL" => no_args(DataType::Double)?,
                "VARCHAR" | "STRING" | "TEXT" | "CHAR" => no_args(DataType::String)?,
                "BYTES" | "BYTEA" => no_args(DataType::Bytes)?,
                "TIMESTAMP" => no_args(DataType::Timestamp)?,
                "DATE" => no_args(DataType::Date)?,
                "TIME" => no_args(DataType::Time)?,
                "DECIMAL" | "NUMERIC" => {
                    let (precision, scale) = match args.as_slice() {
                        [p, s] => (*p, *s),
                        [p] => (*p, 0),
                        _ => {
                            return Err(BindError::TypeMismatch(
                                "DECIMAL needs a precision and scale, e.g. DECIMAL(10, 2)".into(),
                            ))
                        }
                    };
                    if precision == 0 || precision > 28 || scale > precision {
                        return Err(BindError::Unsupported(format!(
                            "DECIMAL({precision}, {scale}) is not supported: precision must be 1 to 28 and scale at most the precision"
                        )));
                    }
                    DataType::Decimal {
                        precision: precision as u8,
                        scale: scale as u8,
                    }
                }
                other => {
                    return Err(BindError::TypeMismatch(format!(
                        "type \"{other}\" does not exist: use BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL(p, s), \
                         STRING, BYTES, TIMESTAMP, DATE, TIME, ARRAY<T>, MAP<STRING, T> or STRUCT<...>"
                    )))
                }
            }
        }
    })
}

/// Resolves the text of a type (what `CAST(x AS <type>)` carries).
pub fn resolve_type_text(text: &str) -> Result<DataType, BindError> {
    let t = parse_type_text(text).map_err(BindError::Invalid)?;
    resolve_type(&t)
}

/// Resolves a sqlparser type (typed literals such as `DATE '2024-01-02'`).
pub fn resolve_sql_type(t: &sql::DataType) -> Result<DataType, BindError> {
    resolve_type_text(&t.to_string())
}
