//! Values to Postgres wire format, text and binary.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use pgwire::api::Type;
use pgwire::types::format::FormatOptions;
use pgwire::types::ToSqlText;
use postgres_types::{to_sql_checked, IsNull, ToSql};
use rill_sql::{DataType, Value};

/// The Postgres type a column of `t` is sent as. Nested types go as JSON.
pub fn pg_type(t: &DataType) -> Type {
    match t {
        DataType::Boolean => Type::BOOL,
        DataType::Int => Type::INT4,
        DataType::BigInt => Type::INT8,
        DataType::Double => Type::FLOAT8,
        DataType::Decimal { .. } => Type::NUMERIC,
        DataType::String => Type::VARCHAR,
        DataType::Bytes => Type::BYTEA,
        DataType::Timestamp => Type::TIMESTAMP,
        DataType::Date => Type::DATE,
        DataType::Time => Type::TIME,
        DataType::Array(_) | DataType::Map(..) | DataType::Struct(_) => Type::JSON,
    }
}

/// A value with its column type, encodable by pgwire.
#[derive(Debug)]
pub struct PgValue<'a> {
    pub value: &'a Value,
    pub ty: &'a DataType,
}

/// Days between 1970-01-01 and 2000-01-01 (the Postgres epoch).
const PG_EPOCH_DAYS: i64 = 10_957;
const PG_EPOCH_MS: i64 = PG_EPOCH_DAYS * 86_400_000;

/// Nested values as JSON text.
pub fn to_json(v: &Value, t: &DataType) -> serde_json::Value {
    use serde_json::Value as J;
    match (v, t) {
        (Value::Null, _) => J::Null,
        (Value::Boolean(b), _) => J::Bool(*b),
        (Value::Int(i), _) => J::from(*i),
        (Value::BigInt(i), _) => J::from(*i),
        (Value::Double(d), _) => serde_json::Number::from_f64(*d)
            .map(J::Number)
            .unwrap_or(J::Null),
        (Value::Decimal(d), _) => {
            serde_json::from_str(&d.to_string()).unwrap_or_else(|_| J::String(d.to_string()))
        }
        (Value::Array(items), DataType::Array(et)) => {
            J::Array(items.iter().map(|x| to_json(x, et)).collect())
        }
        (Value::Map(entries), DataType::Map(_, vt)) => J::Object(
            entries
                .iter()
                .map(|(k, x)| (k.to_string(), to_json(x, vt)))
                .collect(),
        ),
        (Value::Struct(fields), DataType::Struct(ft)) => J::Object(
            fields
                .iter()
                .zip(ft)
                .map(|(x, (name, t))| (name.clone(), to_json(x, t)))
                .collect(),
        ),
        (other, _) => J::String(other.to_string()),
    }
}

fn nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Array(_) | DataType::Map(..) | DataType::Struct(_)
    )
}

impl ToSqlText for PgValue<'_> {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self.value {
            Value::Null => return Ok(IsNull::Yes),
            Value::Boolean(b) => out.put_slice(if *b { b"t" } else { b"f" }),
            v if nested(self.ty) => out.put_slice(to_json(v, self.ty).to_string().as_bytes()),
            v => out.put_slice(v.to_string().as_bytes()),
        }
        Ok(IsNull::No)
    }
}

impl ToSql for PgValue<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self.value {
            Value::Null => return Ok(IsNull::Yes),
            Value::Boolean(b) => out.put_u8(u8::from(*b)),
            Value::Int(i) => out.put_i32(*i),
            Value::BigInt(i) => out.put_i64(*i),
            Value::Double(d) => out.put_f64(*d),
            Value::Decimal(d) => return d.to_sql(ty, out),
            Value::String(s) => out.put_slice(s.as_bytes()),
            Value::Bytes(b) => out.put_slice(b),
            Value::Timestamp(ms) => out.put_i64((ms - PG_EPOCH_MS) * 1000),
            Value::Date(d) => out.put_i32((i64::from(*d) - PG_EPOCH_DAYS) as i32),
            Value::Time(ms) => out.put_i64(ms * 1000),
            v @ (Value::Array(_) | Value::Map(_) | Value::Struct(_)) => {
                out.put_slice(to_json(v, self.ty).to_string().as_bytes())
            }
        }
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}
