//! DELIMITED: one line of fields in column order, separated by the
//! delimiter, with CSV quoting (RFC 4180, as ksqlDB's Apache Commons CSV
//! reads it): a field in double quotes may hold the delimiter, line breaks
//! and doubled quotes. An empty field, quoted or not, is NULL. Only
//! primitive types; field text is parsed as in [`super::scalar`].

use rill_sql::{DataType, Value};

use super::scalar::{parse_text, prim, quoted, write_text, Prim, Scalar};
use super::{check_delimiter, FormatError, FormatKind, FormatOptions};

/// The columns of a DELIMITED side; nested types are refused.
fn try_fields(
    columns: &[(String, DataType)],
    options: &FormatOptions,
) -> Result<(Vec<String>, Vec<Scalar>), FormatError> {
    check_delimiter(options.delimiter)?;
    let mut names = Vec::with_capacity(columns.len());
    let mut fields = Vec::with_capacity(columns.len());
    for (name, data_type) in columns {
        let scalar = Scalar::of(data_type).ok_or_else(|| FormatError::UnsupportedType {
            format: FormatKind::Delimited,
            column: name.clone(),
            data_type: data_type.clone(),
            reason: "it holds no ARRAY, MAP or STRUCT; use the JSON format for nested types",
        })?;
        names.push(name.clone());
        fields.push(scalar);
    }
    Ok((names, fields))
}

/// Decodes a DELIMITED side.
///
/// Field `i` of the line is column `i`. Projection pushdown would give each
/// field an optional output slot and skip parsing the others.
pub(crate) struct DelimitedDecoder {
    names: Vec<String>,
    fields: Vec<Scalar>,
    delimiter: u8,
    /// A quoted field with doubled quotes, unescaped.
    unquoted: Vec<u8>,
    /// Decoded base64.
    scratch: Vec<u8>,
}

impl DelimitedDecoder {
    pub(crate) fn try_new(
        columns: &[(String, DataType)],
        options: &FormatOptions,
    ) -> Result<Self, FormatError> {
        let (names, fields) = try_fields(columns, options)?;
        Ok(DelimitedDecoder {
            names,
            fields,
            delimiter: options.delimiter,
            unquoted: Vec::new(),
            scratch: Vec::new(),
        })
    }

    pub(crate) fn decode(&mut self, bytes: &[u8], out: &mut Vec<Value>) -> Result<(), FormatError> {
        // A line written by a tool that ends records with a newline.
        let line = match bytes {
            [rest @ .., b'\r', b'\n'] | [rest @ .., b'\n'] => rest,
            _ => bytes,
        };
        let expected = self.fields.len();
        if expected == 0 && line.is_empty() {
            return Ok(());
        }
        let mut index = 0;
        let mut pos = Some(0);
        while let Some(start) = pos {
            let (field, next) =
                split_field(line, start, self.delimiter, &mut self.unquoted, index)?;
            pos = next;
            if let (Some(&scalar), Some(name)) = (self.fields.get(index), self.names.get(index)) {
                out.push(parse_field(scalar, name, field, &mut self.scratch)?);
            }
            index += 1;
        }
        if index != expected {
            return Err(FormatError::FieldCount {
                expected,
                found: index,
            });
        }
        Ok(())
    }
}

/// The field starting at `start` (0-based field number `index`) and where
/// the next one starts, if any. A quoted field with doubled quotes is
/// unescaped into `unquoted`.
fn split_field<'a>(
    line: &'a [u8],
    start: usize,
    delimiter: u8,
    unquoted: &'a mut Vec<u8>,
    index: usize,
) -> Result<(&'a [u8], Option<usize>), FormatError> {
    let rest = &line[start.min(line.len())..];
    if rest.first() != Some(&b'"') {
        return Ok(match rest.iter().position(|&b| b == delimiter) {
            Some(end) => (&rest[..end], Some(start + end + 1)),
            None => (rest, None),
        });
    }
    let malformed = |what: &str| FormatError::Malformed {
        format: FormatKind::Delimited,
        reason: format!("{what} {}", index + 1),
    };
    // Inside the quotes: copy runs between doubled quotes only if there are
    // any; a plain quoted field is borrowed as is.
    let body = &rest[1..];
    let mut escaped = false;
    let mut run = 0;
    let mut i = 0;
    loop {
        let quote = body[i..]
            .iter()
            .position(|&b| b == b'"')
            .map(|q| i + q)
            .ok_or_else(|| malformed("unterminated quote in field"))?;
        if body.get(quote + 1) == Some(&b'"') {
            if !escaped {
                unquoted.clear();
                escaped = true;
            }
            unquoted.extend_from_slice(&body[run..=quote]);
            i = quote + 2;
            run = i;
            continue;
        }
        let after = quote + 1;
        let next = match body.get(after) {
            None => None,
            Some(&b) if b == delimiter => Some(start + 1 + after + 1),
            Some(_) => {
                return Err(malformed(
                    "unexpected character after the closing quote of field",
                ))
            }
        };
        let field: &'a [u8] = if escaped {
            unquoted.extend_from_slice(&body[run..quote]);
            unquoted
        } else {
            &body[..quote]
        };
        return Ok((field, next));
    }
}

fn parse_field(
    scalar: Scalar,
    name: &str,
    field: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<Value, FormatError> {
    if field.is_empty() {
        return Ok(Value::Null);
    }
    let text = std::str::from_utf8(field).map_err(|e| FormatError::Malformed {
        format: FormatKind::Delimited,
        reason: format!(
            "column \"{name}\" is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ),
    })?;
    parse_text(scalar, text, scratch)
        .map_err(|r| r.into_error(name, scalar.data_type(), quoted(text)))
}

/// Encodes a DELIMITED side.
pub(crate) struct DelimitedEncoder {
    names: Vec<String>,
    fields: Vec<Scalar>,
    delimiter: u8,
    /// A field that needs quoting, before it is quoted.
    scratch: Vec<u8>,
}

impl DelimitedEncoder {
    pub(crate) fn try_new(
        columns: &[(String, DataType)],
        options: &FormatOptions,
    ) -> Result<Self, FormatError> {
        let (names, fields) = try_fields(columns, options)?;
        Ok(DelimitedEncoder {
            names,
            fields,
            delimiter: options.delimiter,
            scratch: Vec::new(),
        })
    }

    /// Appends one line (without a line break). NULL is an empty field; an
    /// empty string is written `""`, though it reads back as NULL, as in
    /// ksqlDB.
    pub(crate) fn encode(
        &mut self,
        values: &[Value],
        out: &mut Vec<u8>,
    ) -> Result<(), FormatError> {
        for (i, ((scalar, name), value)) in
            self.fields.iter().zip(&self.names).zip(values).enumerate()
        {
            if i > 0 {
                out.push(self.delimiter);
            }
            match prim(*scalar, value).map_err(|e| e.in_column(name))? {
                None => {}
                Some(Prim::Str("")) => out.extend_from_slice(b"\"\""),
                Some(p) => {
                    let start = out.len();
                    write_text(p, out);
                    let field = &out[start..];
                    if field
                        .iter()
                        .any(|&b| b == self.delimiter || matches!(b, b'"' | b'\r' | b'\n'))
                    {
                        self.scratch.clear();
                        self.scratch.extend_from_slice(field);
                        out.truncate(start);
                        out.push(b'"');
                        for &b in &self.scratch {
                            if b == b'"' {
                                out.push(b'"');
                            }
                            out.push(b);
                        }
                        out.push(b'"');
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use rust_decimal::Decimal;

    use super::*;
    use crate::format::cols;
    use crate::format::{Decoder, Encoder};

    fn decode_with(
        columns: &[(String, DataType)],
        options: &FormatOptions,
        line: &str,
    ) -> Result<Vec<Value>, FormatError> {
        let mut d = Decoder::try_new(FormatKind::Delimited, columns, options)?;
        let mut out = Vec::new();
        d.decode(line.as_bytes(), &mut out)?;
        assert_eq!(out.len(), columns.len());
        Ok(out)
    }

    fn decode(columns: &[(String, DataType)], line: &str) -> Result<Vec<Value>, FormatError> {
        decode_with(columns, &FormatOptions::default(), line)
    }

    fn encode_with(
        columns: &[(String, DataType)],
        options: &FormatOptions,
        values: &[Value],
    ) -> Result<String, FormatError> {
        let mut e = Encoder::try_new(FormatKind::Delimited, columns, options)?;
        let mut out = Vec::new();
        e.encode(values, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn all_types() -> (Vec<(String, DataType)>, Vec<Value>) {
        let columns = cols(&[
            ("B", DataType::Boolean),
            ("I", DataType::Int),
            ("L", DataType::BigInt),
            ("D", DataType::Double),
            (
                "DEC",
                DataType::Decimal {
                    precision: 6,
                    scale: 2,
                },
            ),
            ("S", DataType::String),
            ("BY", DataType::Bytes),
            ("TS", DataType::Timestamp),
            ("DT", DataType::Date),
            ("TM", DataType::Time),
        ]);
        let values = vec![
            Value::Boolean(false),
            Value::Int(-5),
            Value::BigInt(1 << 40),
            Value::Double(2.5e-8),
            Value::Decimal(Decimal::new(-1234, 2)),
            Value::str("a, \"quoted\"\nline"),
            Value::Bytes(Arc::from(&b"\xff\x00/+"[..])),
            Value::Timestamp(1_700_000_000_123),
            Value::Date(19_675),
            Value::Time(3_723_004),
        ];
        (columns, values)
    }

    #[test]
    fn every_type_round_trips() {
        let (columns, values) = all_types();
        for delimiter in [b',', b'|', b'\t', b' ', b'-', b'/'] {
            let options = FormatOptions {
                delimiter,
                ..FormatOptions::default()
            };
            let line = encode_with(&columns, &options, &values).unwrap();
            assert_eq!(
                decode_with(&columns, &options, &line),
                Ok(values.clone()),
                "{line}"
            );
            let nulls = vec![Value::Null; columns.len()];
            let line = encode_with(&columns, &options, &nulls).unwrap();
            assert_eq!(decode_with(&columns, &options, &line), Ok(nulls));
        }
    }

    #[test]
    fn writes_what_ksqldb_writes() {
        let (columns, values) = all_types();
        assert_eq!(
            encode_with(&columns, &FormatOptions::default(), &values).unwrap(),
            "false,-5,1099511627776,2.5e-8,-12.34,\"a, \"\"quoted\"\"\nline\",/wAvKw==,\
             1700000000123,19675,3723004"
        );
    }

    #[test]
    fn reads_csv_as_other_tools_write_it() {
        let columns = cols(&[
            ("ID", DataType::BigInt),
            ("NAME", DataType::String),
            ("AGE", DataType::Int),
        ]);
        assert_eq!(
            decode(&columns, "120,\"Smith, Bob\",49\r\n"),
            Ok(vec![
                Value::BigInt(120),
                Value::str("Smith, Bob"),
                Value::Int(49)
            ])
        );
        assert_eq!(
            decode(&columns, "120,\"say \"\"hi\"\"\",49"),
            Ok(vec![
                Value::BigInt(120),
                Value::str("say \"hi\""),
                Value::Int(49)
            ])
        );
        // Empty fields, quoted or not, are NULL; padding around numbers is
        // tolerated.
        assert_eq!(
            decode(&columns, ",\"\", 49 "),
            Ok(vec![Value::Null, Value::Null, Value::Int(49)])
        );
        assert_eq!(
            decode(&columns, "1,bob,"),
            Ok(vec![Value::BigInt(1), Value::str("bob"), Value::Null])
        );
        let one = cols(&[("S", DataType::String)]);
        assert_eq!(decode(&one, ""), Ok(vec![Value::Null]));
        assert_eq!(decode(&one, "a\"b"), Ok(vec![Value::str("a\"b")]));
    }

    #[test]
    fn temporal_fields_read_from_numbers_or_text() {
        let columns = cols(&[
            ("TS", DataType::Timestamp),
            ("D", DataType::Date),
            ("T", DataType::Time),
        ]);
        assert_eq!(
            decode(&columns, "2023-11-14T22:13:20.123Z,2023-11-14,01:02:03.004"),
            Ok(vec![
                Value::Timestamp(1_700_000_000_123),
                Value::Date(19_675),
                Value::Time(3_723_004)
            ])
        );
    }

    #[test]
    fn malformed_lines_name_the_problem() {
        let columns = cols(&[("ID", DataType::BigInt), ("X", DataType::Int)]);
        let err = decode(&columns, "1,2,3").unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed DELIMITED record: expected 2 columns, found 3"
        );
        assert_eq!(err.sqlstate(), "22P02");
        assert_eq!(
            decode(&columns, "1").unwrap_err().to_string(),
            "malformed DELIMITED record: expected 2 columns, found 1"
        );
        let err = decode(&columns, "1,abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "column \"X\" expects INTEGER, found \"abc\""
        );
        assert_eq!(err.sqlstate(), "22P02");
        let err = decode(&columns, "1,3000000000").unwrap_err();
        assert_eq!(
            err.to_string(),
            "value \"3000000000\" is out of range for column \"X\" of type INTEGER"
        );
        assert_eq!(err.sqlstate(), "22003");
        assert_eq!(
            decode(&columns, "1,\"2").unwrap_err().to_string(),
            "malformed DELIMITED record: unterminated quote in field 2"
        );
        assert_eq!(
            decode(&columns, "\"1\"x,2").unwrap_err().to_string(),
            "malformed DELIMITED record: unexpected character after the closing quote of field 1"
        );
        let strings = cols(&[("S", DataType::String)]);
        let mut d =
            Decoder::try_new(FormatKind::Delimited, &strings, &FormatOptions::default()).unwrap();
        assert_eq!(
            d.decode(b"ab\xff", &mut Vec::new())
                .unwrap_err()
                .to_string(),
            "malformed DELIMITED record: column \"S\" is not valid UTF-8 (at byte 2)"
        );
    }

    #[test]
    fn nested_types_and_bad_delimiters_are_refused() {
        let columns = cols(&[("TAGS", DataType::Array(Box::new(DataType::String)))]);
        let err = Decoder::try_new(FormatKind::Delimited, &columns, &FormatOptions::default())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "the DELIMITED format does not support ARRAY<STRING> (column \"TAGS\"): it holds no \
             ARRAY, MAP or STRUCT; use the JSON format for nested types"
        );
        assert_eq!(err.sqlstate(), "0A000");
        let options = FormatOptions {
            delimiter: b'"',
            ..FormatOptions::default()
        };
        let err = Encoder::try_new(
            FormatKind::Delimited,
            &cols(&[("A", DataType::Int)]),
            &options,
        )
        .err()
        .unwrap();
        assert_eq!(err.sqlstate(), "22023");
    }
}
