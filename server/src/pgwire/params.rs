//! Extended-protocol parameters: decode each bound value by its type and
//! substitute it into the parsed statement as a literal.

use std::ops::ControlFlow;

use bytes::Bytes;
use pgwire::api::Type;
use postgres_types::FromSql;
use rill_sql::parser::Statement;
use rill_sql::Value;
use sqlparser::ast::{self as sql, visit_expressions, visit_expressions_mut};

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

/// The value as the SQL literal the binder coerces back to its column type.
fn literal(v: &Value) -> sql::Value {
    match v {
        Value::Null => sql::Value::Null,
        Value::Boolean(b) => sql::Value::Boolean(*b),
        Value::Int(_) | Value::BigInt(_) | Value::Decimal(_) => {
            sql::Value::Number(v.to_string(), false)
        }
        Value::Double(d) if d.is_finite() => sql::Value::Number(format!("{d:?}"), false),
        Value::Bytes(b) => {
            sql::Value::HexStringLiteral(b.iter().map(|x| format!("{x:02X}")).collect::<String>())
        }
        other => sql::Value::SingleQuotedString(other.to_string()),
    }
}

/// Refuses a statement that defines objects with `$n` markers in it, when
/// it is prepared, rather than at its first execution.
pub fn check_takes_none(stmt: &Statement) -> Result<()> {
    let query = match stmt {
        Statement::CreateAs(c) => &c.select.query,
        Statement::InsertSelect { select, .. } => &select.query,
        Statement::Explain(inner) => return check_takes_none(inner),
        _ => return Ok(()),
    };
    let found = visit_expressions(query, |e| match e {
        sql::Expr::Value(v) if matches!(v.value, sql::Value::Placeholder(_)) => {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    });
    match found {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(takes_none()),
    }
}

fn takes_none() -> Error {
    Error::Unsupported("only SELECT and INSERT ... VALUES take parameters ($1, $2, ...)".into())
}

/// Replaces the `$n` parameter markers in a parsed statement with the
/// values as literals, as if they had been written in its text.
pub fn substitute(stmt: &mut Statement, values: &[Value]) -> Result<()> {
    let mut replace = |e: &mut sql::Expr| {
        let sql::Expr::Value(v) = e else {
            return ControlFlow::Continue(());
        };
        let sql::Value::Placeholder(p) = &v.value else {
            return ControlFlow::Continue(());
        };
        let n: usize = p.trim_start_matches('$').parse().unwrap_or(0);
        match n.checked_sub(1).and_then(|i| values.get(i)) {
            Some(value) => {
                v.value = literal(value);
                ControlFlow::Continue(())
            }
            None => ControlFlow::Break(Error::Invalid(format!(
                "there is no parameter {p}: {} given",
                values.len()
            ))),
        }
    };
    let flow = match stmt {
        Statement::Select(select) => visit_expressions_mut(&mut select.query, &mut replace),
        Statement::InsertValues(insert) => visit_expressions_mut(&mut insert.rows, &mut replace),
        Statement::Explain(inner) => return substitute(inner, values),
        // As in Postgres: statements that define objects take no
        // parameters (a persistent query's text is what it runs after a
        // restart).
        _ => return Err(takes_none()),
    };
    match flow {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}
