//! Extended-protocol parameters: decode each bound value by its type and
//! substitute it into the statement text as a literal.

use bytes::Bytes;
use pgwire::api::Type;
use postgres_types::FromSql;
use rill_sql::parser::KsqlDialect;
use rill_sql::Value;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, Result};

fn bad(i: usize, t: &Type, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!(
        "parameter ${} is not a valid {}: {e}",
        i + 1,
        t.name()
    ))
}

/// Decodes parameter `i` sent in `binary` or text form as type `t`.
pub fn decode(i: usize, t: &Type, bytes: Option<&Bytes>, binary: bool) -> Result<Value> {
    let Some(bytes) = bytes else {
        return Ok(Value::Null);
    };
    if !binary {
        let text = std::str::from_utf8(bytes).map_err(|e| bad(i, t, e))?;
        return Ok(match *t {
            Type::BOOL => Value::Boolean(matches!(text, "t" | "true" | "1" | "TRUE" | "on")),
            Type::INT2 | Type::INT4 => Value::Int(text.trim().parse().map_err(|e| bad(i, t, e))?),
            Type::INT8 => Value::BigInt(text.trim().parse().map_err(|e| bad(i, t, e))?),
            Type::FLOAT4 | Type::FLOAT8 => {
                Value::Double(text.trim().parse().map_err(|e| bad(i, t, e))?)
            }
            Type::NUMERIC => Value::Decimal(text.trim().parse().map_err(|e| bad(i, t, e))?),
            _ => Value::str(text),
        });
    }
    let raw: &[u8] = bytes;
    Ok(match *t {
        Type::BOOL => Value::Boolean(bool::from_sql(t, raw).map_err(|e| bad(i, t, e))?),
        Type::INT2 => Value::Int(i32::from(i16::from_sql(t, raw).map_err(|e| bad(i, t, e))?)),
        Type::INT4 => Value::Int(i32::from_sql(t, raw).map_err(|e| bad(i, t, e))?),
        Type::INT8 => Value::BigInt(i64::from_sql(t, raw).map_err(|e| bad(i, t, e))?),
        Type::FLOAT4 => Value::Double(f64::from(f32::from_sql(t, raw).map_err(|e| bad(i, t, e))?)),
        Type::FLOAT8 => Value::Double(f64::from_sql(t, raw).map_err(|e| bad(i, t, e))?),
        Type::NUMERIC => {
            Value::Decimal(rust_decimal::Decimal::from_sql(t, raw).map_err(|e| bad(i, t, e))?)
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_sql(&Type::INT8, raw).map_err(|e| bad(i, t, e))?;
            Value::Timestamp(micros.div_euclid(1000) + 10_957 * 86_400_000)
        }
        Type::DATE => {
            Value::Date(i32::from_sql(&Type::INT4, raw).map_err(|e| bad(i, t, e))? + 10_957)
        }
        Type::TIME => {
            Value::Time(i64::from_sql(&Type::INT8, raw).map_err(|e| bad(i, t, e))? / 1000)
        }
        Type::BYTEA => Value::Bytes(raw.into()),
        _ => Value::str(std::str::from_utf8(raw).map_err(|e| bad(i, t, e))?),
    })
}

/// The value as a SQL literal the binder coerces back to its column type.
fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Boolean(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Value::Int(_) | Value::BigInt(_) | Value::Decimal(_) => v.to_string(),
        Value::Double(d) if d.is_finite() => format!("{d:?}"),
        Value::Bytes(b) => format!(
            "X'{}'",
            b.iter().map(|x| format!("{x:02X}")).collect::<String>()
        ),
        other => format!("'{}'", other.to_string().replace('\'', "''")),
    }
}

/// Replaces the `$n` parameter markers in `sql` with the values as literals.
pub fn substitute(sql: &str, values: &[Value]) -> Result<String> {
    let tokens = Tokenizer::new(&KsqlDialect, sql)
        .with_unescape(false)
        .tokenize()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let mut out = String::with_capacity(sql.len());
    for t in tokens {
        match &t {
            Token::Placeholder(p) => {
                let n: usize = p.trim_start_matches('$').parse().unwrap_or(0);
                let Some(v) = n.checked_sub(1).and_then(|i| values.get(i)) else {
                    return Err(Error::Invalid(format!(
                        "there is no parameter {p}: {} given",
                        values.len()
                    )));
                };
                out.push_str(&literal(v));
            }
            other => out.push_str(&other.to_string()),
        }
    }
    Ok(out)
}
