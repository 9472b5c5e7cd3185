//! KAFKA: one primitive column, written as Kafka's own serializers write it
//! (`IntegerSerializer`, `LongSerializer`, `DoubleSerializer`,
//! `StringSerializer`, `ByteArraySerializer`), so keys produced by any Kafka
//! client read correctly. These are exactly the types ksqlDB's KAFKA format
//! takes: INT (4 bytes big-endian), BIGINT (8 bytes big-endian), DOUBLE
//! (8 bytes IEEE 754 big-endian), STRING (UTF-8) and BYTES (raw).

use std::sync::Arc;

use rill_sql::{DataType, Value};

use super::scalar::{prim, Prim, Scalar};
use super::{FormatError, FormatKind};

/// The one column of a KAFKA side; `None` when the side has no columns.
fn try_column(columns: &[(String, DataType)]) -> Result<Option<(String, Scalar)>, FormatError> {
    let (name, data_type) = match columns {
        [] => return Ok(None),
        [column] => column,
        _ => {
            return Err(FormatError::UnsupportedColumns {
                format: FormatKind::Kafka,
                reason: format!(
                "supports a single column, found {}; use the JSON or DELIMITED format for several",
                columns.len()
            ),
            })
        }
    };
    match Scalar::of(data_type) {
        Some(s @ (Scalar::Int | Scalar::BigInt | Scalar::Double | Scalar::String | Scalar::Bytes)) => {
            Ok(Some((name.clone(), s)))
        }
        _ => Err(FormatError::UnsupportedType {
            format: FormatKind::Kafka,
            column: name.clone(),
            data_type: data_type.clone(),
            reason: "it supports INTEGER, BIGINT, DOUBLE, STRING and BYTES; use the JSON format for other types",
        }),
    }
}

/// Decodes a KAFKA side.
pub(crate) struct KafkaDecoder {
    name: String,
    scalar: Scalar,
}

impl KafkaDecoder {
    /// `None` for a side without columns, which has nothing to decode.
    pub(crate) fn try_new(columns: &[(String, DataType)]) -> Result<Option<Self>, FormatError> {
        Ok(try_column(columns)?.map(|(name, scalar)| KafkaDecoder { name, scalar }))
    }

    pub(crate) fn decode(&self, bytes: &[u8], out: &mut Vec<Value>) -> Result<(), FormatError> {
        // Kafka's deserializers reject an empty INT, BIGINT or DOUBLE; rill
        // reads it as NULL, which is what `encode` writes for NULL when the
        // transport cannot carry a null.
        let value = match self.scalar {
            Scalar::Int if bytes.is_empty() => Value::Null,
            Scalar::BigInt | Scalar::Double if bytes.is_empty() => Value::Null,
            Scalar::Int => Value::Int(i32::from_be_bytes(self.fixed(bytes)?)),
            Scalar::BigInt => Value::BigInt(i64::from_be_bytes(self.fixed(bytes)?)),
            Scalar::Double => Value::Double(f64::from_be_bytes(self.fixed(bytes)?)),
            Scalar::String => match std::str::from_utf8(bytes) {
                Ok(s) => Value::String(Arc::from(s)),
                Err(e) => {
                    return Err(FormatError::Malformed {
                        format: FormatKind::Kafka,
                        reason: format!(
                            "column \"{}\" is not valid UTF-8 (at byte {})",
                            self.name,
                            e.valid_up_to()
                        ),
                    })
                }
            },
            Scalar::Bytes => Value::Bytes(Arc::from(bytes)),
            // `try_column` admits only the five types above.
            Scalar::Boolean
            | Scalar::Decimal { .. }
            | Scalar::Timestamp
            | Scalar::Date
            | Scalar::Time => Value::Null,
        };
        out.push(value);
        Ok(())
    }

    fn fixed<const N: usize>(&self, bytes: &[u8]) -> Result<[u8; N], FormatError> {
        <[u8; N]>::try_from(bytes).map_err(|_| FormatError::WrongLength {
            data_type: self.scalar.data_type(),
            expected: N,
            found: bytes.len(),
        })
    }
}

/// Encodes a KAFKA side.
pub(crate) struct KafkaEncoder {
    name: String,
    scalar: Scalar,
}

impl KafkaEncoder {
    /// `None` for a side without columns, which encodes to nothing.
    pub(crate) fn try_new(columns: &[(String, DataType)]) -> Result<Option<Self>, FormatError> {
        Ok(try_column(columns)?.map(|(name, scalar)| KafkaEncoder { name, scalar }))
    }

    /// Appends the column's bytes; nothing for NULL.
    pub(crate) fn encode(&self, values: &[Value], out: &mut Vec<u8>) -> Result<(), FormatError> {
        let Some(value) = values.first() else {
            return Ok(());
        };
        match prim(self.scalar, value).map_err(|e| e.in_column(&self.name))? {
            None => {}
            Some(Prim::I32(v)) => out.extend_from_slice(&v.to_be_bytes()),
            Some(Prim::I64(v)) => out.extend_from_slice(&v.to_be_bytes()),
            Some(Prim::F64(v)) => out.extend_from_slice(&v.to_be_bytes()),
            Some(Prim::Str(s)) => out.extend_from_slice(s.as_bytes()),
            Some(Prim::Bytes(b)) => out.extend_from_slice(b),
            // `prim` returns only the kinds of the five KAFKA types.
            Some(
                Prim::Bool(_) | Prim::Dec(_) | Prim::Timestamp(_) | Prim::Date(_) | Prim::Time(_),
            ) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::format::{Decoder, Encoder, FormatOptions};

    fn key(t: DataType) -> Vec<(String, DataType)> {
        vec![("K".to_owned(), t)]
    }

    fn decode(t: DataType, bytes: &[u8]) -> Result<Value, FormatError> {
        let mut d = Decoder::try_new(FormatKind::Kafka, &key(t), &FormatOptions::for_key())?;
        let mut out = Vec::new();
        d.decode(bytes, &mut out)?;
        assert_eq!(out.len(), 1);
        Ok(out.remove(0))
    }

    fn encode(t: DataType, v: Value) -> Result<Vec<u8>, FormatError> {
        let mut e = Encoder::try_new(FormatKind::Kafka, &key(t), &FormatOptions::for_key())?;
        let mut out = Vec::new();
        e.encode(&[v], &mut out)?;
        Ok(out)
    }

    #[test]
    fn reads_what_kafka_serializers_write() {
        // IntegerSerializer / LongSerializer / DoubleSerializer output.
        assert_eq!(decode(DataType::Int, &[0, 0, 1, 0]), Ok(Value::Int(256)));
        assert_eq!(
            decode(DataType::Int, &[0xff, 0xff, 0xff, 0xfe]),
            Ok(Value::Int(-2))
        );
        assert_eq!(
            decode(DataType::BigInt, &[0, 0, 1, 0x8b, 0xcf, 0xe5, 0x68, 0]),
            Ok(Value::BigInt(1_700_000_000_000))
        );
        assert_eq!(
            decode(DataType::Double, &[0x3f, 0xf8, 0, 0, 0, 0, 0, 0]),
            Ok(Value::Double(1.5))
        );
        assert_eq!(decode(DataType::String, b"u1"), Ok(Value::str("u1")));
        assert_eq!(decode(DataType::String, b""), Ok(Value::str("")));
        assert_eq!(
            decode(DataType::Bytes, &[0, 255]),
            Ok(Value::Bytes(Arc::from(&[0u8, 255][..])))
        );
    }

    #[test]
    fn every_type_round_trips() {
        let cases = [
            (DataType::Int, Value::Int(i32::MIN)),
            (DataType::BigInt, Value::BigInt(-7)),
            (DataType::Double, Value::Double(-0.1)),
            (DataType::Double, Value::Double(f64::INFINITY)),
            (DataType::String, Value::str("héllo")),
            (DataType::Bytes, Value::Bytes(Arc::from(&b"\x00\x01"[..]))),
            (DataType::Int, Value::Null),
            (DataType::BigInt, Value::Null),
            (DataType::Double, Value::Null),
        ];
        for (t, v) in cases {
            let bytes = encode(t.clone(), v.clone()).unwrap();
            assert_eq!(decode(t, &bytes), Ok(v));
        }
        assert_eq!(encode(DataType::Int, Value::Int(1)), Ok(vec![0, 0, 0, 1]));
        assert_eq!(
            encode(DataType::BigInt, Value::Int(1)),
            Ok(vec![0, 0, 0, 0, 0, 0, 0, 1])
        );
    }

    #[test]
    fn wrong_lengths_and_bad_utf8_are_errors() {
        let err = decode(DataType::Int, &[0, 0, 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed KAFKA record: expected 4 bytes for INTEGER, found 3"
        );
        assert_eq!(err.sqlstate(), "22P02");
        let err = decode(DataType::BigInt, &[0, 0, 0, 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed KAFKA record: expected 8 bytes for BIGINT, found 4"
        );
        let err = decode(DataType::String, &[b'a', 0xff]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed KAFKA record: column \"K\" is not valid UTF-8 (at byte 1)"
        );
    }

    #[test]
    fn refuses_types_and_shapes_kafka_cannot_hold() {
        for t in [
            DataType::Boolean,
            DataType::Decimal {
                precision: 4,
                scale: 2,
            },
            DataType::Timestamp,
            DataType::Array(Box::new(DataType::Int)),
        ] {
            let err = Decoder::try_new(
                FormatKind::Kafka,
                &key(t.clone()),
                &FormatOptions::for_key(),
            )
            .err()
            .unwrap();
            assert_eq!(
                err.to_string(),
                format!(
                    "the KAFKA format does not support {t} (column \"K\"): it supports INTEGER, \
                     BIGINT, DOUBLE, STRING and BYTES; use the JSON format for other types"
                )
            );
            assert_eq!(err.sqlstate(), "0A000");
        }
        let two = vec![
            ("A".to_owned(), DataType::Int),
            ("B".to_owned(), DataType::Int),
        ];
        let err = Encoder::try_new(FormatKind::Kafka, &two, &FormatOptions::for_key())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "the KAFKA format supports a single column, found 2; use the JSON or DELIMITED format for several"
        );
    }

    #[test]
    fn encoding_a_value_of_another_type_is_an_error() {
        let err = encode(DataType::Int, Value::str("1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot encode a STRING value into column \"K\" of type INTEGER"
        );
    }
}
