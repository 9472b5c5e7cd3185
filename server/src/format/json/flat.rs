//! The fast path of JSON decoding: an object whose fields are scalars,
//! which is what nearly every record is, scanned by hand.
//!
//! serde's visitor machinery costs about as much as the scan itself, and
//! every value takes several indirect calls; here a record is one pass over
//! its bytes with no calls per byte. The path only ever accepts what the
//! serde path accepts, with the same values: on anything else (an escape in
//! a column's string, a nested value, a fraction for an integer column, a
//! value of the wrong type, any syntax error) it gives up and the serde
//! path decodes the record again, with its exact errors.

use std::sync::Arc;

use rill_sql::Value;

use super::{from_bool, from_i64, from_number, parse_text, NameLookup, Node, Scalar};

/// Decodes `bytes` into `slots` (all NULL on entry), one per column.
/// `None`: not decoded here; `slots` may be partly written. With `names`
/// (every column's, in order), also says whether `bytes` are exactly what
/// the encoder writes for the decoded values: each column once, in
/// order, by its exact name, no whitespace, and every value in the form
/// the encoder gives it (see [`Cursor::value`]).
pub(super) fn decode(
    bytes: &[u8],
    lookup: &NameLookup,
    hints: &mut [u32],
    columns: &[Node],
    slots: &mut [Value],
    scratch: &mut Vec<u8>,
    names: Option<&[String]>,
) -> Option<bool> {
    let mut c = Cursor { bytes, pos: 0 };
    let mut canonical = names.is_some();
    canonical &= !c.skip_ws();
    c.expect(b'{')?;
    canonical &= !c.skip_ws();
    let mut fields = 0;
    if c.peek() == Some(b'}') {
        c.pos += 1;
    } else {
        let mut hints = hints.iter_mut();
        loop {
            c.expect(b'"')?;
            let key = c.plain_bytes()?;
            if canonical {
                canonical = names
                    .and_then(|n| n.get(fields))
                    .is_some_and(|name| name.as_bytes() == key);
            }
            fields += 1;
            canonical &= !c.skip_ws();
            c.expect(b':')?;
            canonical &= !c.skip_ws();
            let slot = lookup.get_bytes(key, hints.next())?;
            match slot.and_then(|i| Some((slots.get_mut(i)?, columns.get(i)?))) {
                Some((slot, node)) => canonical &= c.value(node, scratch, slot)?,
                None => {
                    c.skip_value()?;
                    canonical = false;
                }
            }
            canonical &= !c.skip_ws();
            match c.next()? {
                b',' => canonical &= !c.skip_ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    canonical &= !c.skip_ws();
    canonical &= names.is_some_and(|n| n.len() == fields);
    (c.pos == bytes.len()).then_some(canonical)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(word.len())?;
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// Skips whitespace; says whether there was any.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
        self.pos > start
    }

    /// After an opening quote: the bytes up to the closing one, if there
    /// are no escapes (JSON forbids raw control characters). Not checked
    /// to be UTF-8.
    fn plain_bytes(&mut self) -> Option<&'a [u8]> {
        let start = self.pos;
        let end = start + special_byte(self.bytes.get(start..)?)?;
        if self.bytes.get(end) != Some(&b'"') {
            return None;
        }
        self.pos = end + 1;
        self.bytes.get(start..end)
    }

    /// Like [`Cursor::plain_bytes`], as text: it must be UTF-8.
    fn plain_string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.plain_bytes()?).ok()
    }

    /// After an opening quote: past the closing one, escapes and all. Like
    /// serde_json's, this does not check the skipped text is UTF-8.
    fn skip_string(&mut self) -> Option<()> {
        loop {
            self.pos += special_byte(self.bytes.get(self.pos..)?)?;
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let hex = self.bytes.get(self.pos..self.pos + 4)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        let code = u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                        // Surrogates have rules of their own: leave them
                        // to serde_json.
                        if (0xd800..0xe000).contains(&code) {
                            return None;
                        }
                        self.pos += 4;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// A number as JSON writes it: its text, and its value if serde_json
    /// reads it as an integer (no fraction, no exponent, not `-0`) that
    /// fits an i64.
    fn number(&mut self) -> Option<(&'a str, Option<i64>)> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits_start = self.pos;
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let digits = self.bytes.get(digits_start..self.pos)?;
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.some_digits()?;
            integer = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.some_digits()?;
            integer = false;
        }
        // Only ASCII was passed over.
        let text = std::str::from_utf8(self.bytes.get(start..self.pos)?).ok()?;
        let negative = digits_start > start;
        let value = match integer {
            // serde_json reads `-0` as the double -0.0.
            true if negative && digits == b"0" => None,
            // 18 digits cannot overflow.
            true if digits.len() <= 18 => {
                let v = digits
                    .iter()
                    .fold(0i64, |v, d| v * 10 + i64::from(d - b'0'));
                Some(if negative { -v } else { v })
            }
            true => text.parse().ok(),
            false => None,
        };
        Some((text, value))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }

    /// A field that is no column: skipped if it is a scalar.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.pos += 1;
                self.skip_string()
            }
            b'-' | b'0'..=b'9' => self.number().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => None,
        }
    }

    /// A column's value into `slot`, converted as the serde path converts
    /// it. Written in place: returning values through `Option`s and
    /// `Result`s cost more than the scan (the moves stall on store
    /// forwarding). Says whether the encoder writes the value as it was:
    /// `null`; a string (this scan takes only strings without escapes) for
    /// STRING; `true` or `false` for BOOLEAN; an integer (taken only in its
    /// shortest form) for INT, BIGINT or TIMESTAMP. Other values are
    /// decoded all the same, and re-encoded.
    fn value(&mut self, node: &Node, scratch: &mut Vec<u8>, slot: &mut Value) -> Option<bool> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            *slot = Value::Null;
            return Some(true);
        }
        let Node::Scalar(s) = *node else {
            return None;
        };
        Some(match self.peek()? {
            b'"' => {
                self.pos += 1;
                let text = self.plain_string()?;
                *slot = match s {
                    Scalar::String => Value::String(Arc::from(text)),
                    _ => parse_text(s, text, scratch).ok()?,
                };
                s == Scalar::String
            }
            b't' => {
                self.literal(b"true")?;
                *slot = from_bool(s, true).ok()?;
                s == Scalar::Boolean
            }
            b'f' => {
                self.literal(b"false")?;
                *slot = from_bool(s, false).ok()?;
                s == Scalar::Boolean
            }
            b'-' | b'0'..=b'9' => {
                let (text, integer) = self.number()?;
                *slot = match (s, integer) {
                    (Scalar::Double | Scalar::Decimal { .. }, _) => from_number(s, text).ok()?,
                    (Scalar::BigInt, Some(v)) => Value::BigInt(v),
                    (_, Some(v)) => from_i64(s, v).ok()?,
                    (_, None) => return None,
                };
                matches!(s, Scalar::Int | Scalar::BigInt | Scalar::Timestamp)
            }
            _ => return None,
        })
    }
}

/// The position of the first `"`, `\` or control character in `bytes`,
/// eight bytes at a time.
pub(super) fn special_byte(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        // A byte of `v ^ pattern` is zero where `v` has the pattern's byte;
        // `x - ONES & !x & HIGH` flags zero bytes, and `v - 0x20 * ONES &
        // !v & HIGH` bytes below 0x20 (with false positives only above a
        // true one, so any flag means the chunk holds such a byte).
        let quote = v ^ (ONES * u64::from(b'"'));
        let slash = v ^ (ONES * u64::from(b'\\'));
        let found = (quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (v.wrapping_sub(ONES * 0x20) & !v);
        if found & HIGH != 0 {
            break;
        }
        base += 8;
    }
    bytes
        .get(base..)?
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| base + i)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;
    use proptest::strategy::{BoxedStrategy, ValueTree};
    use rill_sql::{DataType, Value};

    use super::special_byte;
    use crate::format::cols;
    use crate::format::json::{JsonDecoder, JsonEncoder};
    use crate::format::FormatOptions;

    #[test]
    fn special_byte_finds_the_first_quote_backslash_or_control_character() {
        assert_eq!(special_byte(b"abcdefghijk\"lm"), Some(11));
        assert_eq!(special_byte(b"ab\\c\""), Some(2));
        assert_eq!(special_byte(b"abcdefgh\x1f"), Some(8));
        assert_eq!(
            special_byte("é\u{7f}€ and more text\"".as_bytes()),
            Some(20)
        );
        assert_eq!(special_byte(b"no end in sight"), None);
        assert_eq!(special_byte(b""), None);
    }

    fn columns() -> Vec<(String, DataType)> {
        cols(&[
            ("ID", DataType::BigInt),
            ("N", DataType::Int),
            ("D", DataType::Double),
            (
                "DEC",
                DataType::Decimal {
                    precision: 6,
                    scale: 2,
                },
            ),
            ("S", DataType::String),
            ("B", DataType::Boolean),
            ("T", DataType::Timestamp),
            ("ARR", DataType::Array(Box::new(DataType::Int))),
            // Names equal but for case: only an exact match settles them.
            ("Ab", DataType::String),
            ("AB", DataType::BigInt),
        ])
    }

    /// The fast path's answer, if it gives one.
    fn fast(d: &mut JsonDecoder, doc: &str) -> Option<Vec<Value>> {
        let mut slots = vec![Value::Null; d.columns.len()];
        let (lookup, scratch) = (&d.lookup, &mut d.ctx.scratch);
        super::decode(
            doc.as_bytes(),
            lookup,
            &mut d.hints,
            &d.columns,
            &mut slots,
            scratch,
            None,
        )
        .map(|_| slots)
    }

    #[test]
    fn takes_plain_records_and_leaves_the_rest_to_serde() {
        let mut d = JsonDecoder::try_new(&columns(), None, &FormatOptions::default()).unwrap();
        let plain =
            r#" { "id": -42, "s" : "hé", "b": true, "other": "x\"y", "n": null, "d": 2.5e1 } "#;
        let row = fast(&mut d, plain).expect("a flat record takes the fast path");
        assert_eq!(row[0], Value::BigInt(-42));
        assert_eq!(row[2], Value::Double(25.0));
        assert_eq!(row[4], Value::str("hé"));
        assert_eq!(row[5], Value::Boolean(true));
        for doc in [
            r#"{"s": "esc\naped"}"#,
            r#"{"arr": [1, 2]}"#,
            r#"{"other": {"nested": 1}}"#,
            r#"{"id": 1.5}"#,
            r#"{"n": 3000000000}"#,
            r#"{"id": 1,}"#,
            r#"{"id": 01}"#,
            r#"{"id": 1} x"#,
            r#"[1]"#,
        ] {
            assert_eq!(fast(&mut d, doc), None, "{doc}");
        }
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("id"),
            Just("ID"),
            Just("Id"),
            Just("n"),
            Just("d"),
            Just("dec"),
            Just("s"),
            Just("b"),
            Just("t"),
            Just("arr"),
            Just("Ab"),
            Just("AB"),
            Just("ab"),
            Just("other"),
            Just("é"),
            Just("I\\u0044"),
            Just("x\\"),
            Just(""),
        ]
        .prop_map(str::to_owned)
    }

    fn value() -> impl Strategy<Value = String> {
        let fixed = prop_oneof![
            Just("0"),
            Just("-0"),
            Just("01"),
            Just("-"),
            Just("1."),
            Just("1.5"),
            Just("-2e3"),
            Just("1E+2"),
            Just("2.50"),
            Just("123456789012345678"),
            Just("9223372036854775807"),
            Just("-9223372036854775808"),
            Just("9223372036854775808"),
            Just("18446744073709551616"),
            Just("\"abc\""),
            Just("\"with \\\"esc\\\"\""),
            Just("\"\\u00e9\""),
            Just("\"é€\""),
            Just("\"\\ud83d\\ude00\""),
            Just("\"\\ud83d\""),
            Just("\"2024-01-02T03:04:05Z\""),
            Just("\"123\""),
            Just("\" 7 \""),
            Just("\"true\""),
            Just("\"1.25\""),
            Just("\"\u{1}\""),
            Just("\"unterminated"),
            Just("true"),
            Just("false"),
            Just("null"),
            Just("nul"),
            Just("[1,2]"),
            Just("[]"),
            Just("{\"a\":1}"),
            Just("\"\\q\""),
        ]
        .prop_map(str::to_owned);
        prop_oneof![
            fixed,
            any::<i64>().prop_map(|v| v.to_string()),
            any::<i32>().prop_map(|v| v.to_string())
        ]
    }

    fn ws() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just(""), Just(""), Just(" "), Just("\n\t "), Just("\r")]
    }

    fn document() -> impl Strategy<Value = String> {
        let field = (key(), value(), ws(), ws());
        let sep = prop_oneof![8 => Just(","), 1 => Just(",,"), 1 => Just("")];
        (
            proptest::collection::vec((field, sep), 0..8),
            ws(),
            prop_oneof![8 => Just(""), 1 => Just("x"), 1 => Just("}")],
        )
            .prop_map(|(fields, pad, tail)| {
                let mut doc = format!("{pad}{{");
                let last = fields.len().saturating_sub(1);
                for (i, ((k, v, w1, w2), sep)) in fields.into_iter().enumerate() {
                    doc.push_str(&format!("{w1}\"{k}\"{w2}:{w1}{v}{w2}"));
                    if i < last {
                        doc.push_str(sep);
                    }
                }
                doc.push('}');
                doc.push_str(pad);
                doc.push_str(tail);
                doc
            })
    }

    /// Columns of the types whose values a canonical record may hold,
    /// with two names equal but for case.
    fn plain_columns() -> Vec<(String, DataType)> {
        cols(&[
            ("ID", DataType::BigInt),
            ("N", DataType::Int),
            ("S", DataType::String),
            ("B", DataType::Boolean),
            ("T", DataType::Timestamp),
            ("Ab", DataType::String),
            ("AB", DataType::BigInt),
        ])
    }

    /// A value as the encoder writes one of type `t`, or (one in ten)
    /// anything [`value`] gives.
    fn typed_value(t: DataType) -> BoxedStrategy<String> {
        let typed = match t {
            DataType::Int => any::<i32>().prop_map(|v| v.to_string()).boxed(),
            DataType::BigInt | DataType::Timestamp => {
                any::<i64>().prop_map(|v| v.to_string()).boxed()
            }
            DataType::Boolean => any::<bool>().prop_map(|v| v.to_string()).boxed(),
            _ => prop_oneof![9 => "[a-zé€ ]{0,6}", 1 => "[a\"\\\\\u{1}]{1,3}"]
                .prop_map(|s| serde_json::to_string(&s).unwrap_or_default())
                .boxed(),
        };
        prop_oneof![8 => typed, 1 => Just("null".to_string()), 1 => value()].boxed()
    }

    /// A record close to what the encoder writes for [`plain_columns`]:
    /// every column in order by its name, but now and then a field left
    /// out, a name in other case, whitespace, or a field that is no column.
    fn nearly_canonical() -> impl Strategy<Value = String> {
        let columns = plain_columns();
        let fields: Vec<_> = columns
            .iter()
            .map(|(_, t)| {
                (
                    prop_oneof![19 => Just(true), 1 => Just(false)],
                    prop_oneof![19 => Just(false), 1 => Just(true)],
                    typed_value(t.clone()),
                    prop_oneof![39 => Just(""), 1 => Just(" ")],
                )
            })
            .collect();
        let names: Vec<String> = columns.into_iter().map(|(n, _)| n).collect();
        (
            fields,
            prop_oneof![19 => Just(None), 1 => (0..names.len()).prop_map(Some)],
        )
            .prop_map(move |(fields, extra)| {
                let mut parts = Vec::new();
                for (i, ((keep, lower, v, w), name)) in fields.into_iter().zip(&names).enumerate() {
                    if extra == Some(i) {
                        parts.push("\"other\":1".to_string());
                    }
                    if keep {
                        let name = if lower {
                            name.to_lowercase()
                        } else {
                            name.clone()
                        };
                        parts.push(format!("\"{name}\":{w}{v}"));
                    }
                }
                format!("{{{}}}", parts.join(","))
            })
    }

    /// Whether the decoder calls `doc` canonical, and if so its row.
    fn canonical_row(doc: &str) -> Option<Vec<Value>> {
        let mut d =
            JsonDecoder::try_new(&plain_columns(), None, &FormatOptions::default()).unwrap();
        d.check_canonical();
        let mut row = Vec::new();
        (d.decode(doc.as_bytes(), &mut row).is_ok() && d.canonical()).then_some(row)
    }

    #[test]
    fn nearly_canonical_records_are_often_canonical() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = nearly_canonical();
        let canonical = (0..500)
            .filter(|_| {
                let doc = strategy.new_tree(&mut runner).unwrap().current();
                canonical_row(&doc).is_some()
            })
            .count();
        assert!((50..450).contains(&canonical), "{canonical} of 500");
    }

    #[test]
    fn tells_records_the_encoder_writes_as_they_are() {
        let columns = cols(&[
            ("ID", DataType::BigInt),
            ("N", DataType::Int),
            ("S", DataType::String),
            ("B", DataType::Boolean),
            ("T", DataType::Timestamp),
        ]);
        let mut d = JsonDecoder::try_new(&columns, None, &FormatOptions::default()).unwrap();
        d.check_canonical();
        let canonical = |d: &mut JsonDecoder, doc: &str| {
            let mut row = Vec::new();
            d.decode(doc.as_bytes(), &mut row).unwrap();
            d.canonical()
        };
        let doc = r#"{"ID":-42,"N":7,"S":"hé","B":true,"T":1700000000000}"#;
        assert!(canonical(&mut d, doc));
        assert!(canonical(
            &mut d,
            r#"{"ID":null,"N":null,"S":null,"B":null,"T":null}"#
        ));
        for doc in [
            r#"{"ID":-42,"N":7,"S":"hé","B":true}"#,
            r#"{"ID":-42,"N":7,"S":"hé","B":true,"T":1,"X":1}"#,
            r#"{"id":-42,"N":7,"S":"hé","B":true,"T":1}"#,
            r#"{"N":7,"ID":-42,"S":"hé","B":true,"T":1}"#,
            r#"{"ID": -42,"N":7,"S":"hé","B":true,"T":1}"#,
            r#" {"ID":-42,"N":7,"S":"hé","B":true,"T":1}"#,
            r#"{"ID":"-42","N":7,"S":"hé","B":true,"T":1}"#,
            r#"{"ID":-42,"N":7,"S":"h\u00e9","B":true,"T":1}"#,
            r#"{"ID":-42,"N":7,"S":"hé","B":true,"T":"2024-01-02T03:04:05Z"}"#,
            r#"{"ID":-42,"N":7,"S":1,"B":true,"T":1}"#,
        ] {
            assert!(!canonical(&mut d, doc), "{doc}");
        }
        // Without the check, nothing is.
        let mut plain = JsonDecoder::try_new(&columns, None, &FormatOptions::default()).unwrap();
        assert!(!canonical(&mut plain, doc));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// A record called canonical is byte for byte what the encoder
        /// writes for its decoded values.
        #[test]
        fn canonical_records_encode_to_themselves(doc in nearly_canonical()) {
            if let Some(row) = canonical_row(&doc) {
                let e = JsonEncoder::try_new(&plain_columns(), &FormatOptions::default()).unwrap();
                let mut out = Vec::new();
                e.encode(&row, &mut out).unwrap();
                prop_assert_eq!(String::from_utf8(out).unwrap(), doc);
            }
        }

        /// Whatever the fast path accepts, serde accepts with the same
        /// values: documents in sequence, so hints carry over.
        #[test]
        fn agrees_with_serde(docs in proptest::collection::vec(document(), 1..4), cut in any::<prop::sample::Index>()) {
            let columns = columns();
            let mut d = JsonDecoder::try_new(&columns, None, &FormatOptions::default()).unwrap();
            let mut docs = docs;
            // Also a truncated copy of the first.
            let first = docs[0].clone();
            docs.push(first.get(..cut.index(first.len() + 1)).unwrap_or_default().to_owned());
            for doc in &docs {
                let fast = fast(&mut d, doc);
                let mut slow = Vec::new();
                let serde = d.decode_serde(doc.as_bytes(), &mut slow);
                if let Some(fast) = fast {
                    prop_assert!(serde.is_ok(), "fast path took {doc:?}; serde: {serde:?}");
                    prop_assert_eq!(fast, slow, "{}", doc);
                }
            }
        }
    }
}
