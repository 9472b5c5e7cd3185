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
/// `None`: not decoded here; `slots` may be partly written.
pub(super) fn decode(
    bytes: &[u8],
    lookup: &NameLookup,
    hints: &mut [u32],
    columns: &[Node],
    slots: &mut [Value],
    scratch: &mut Vec<u8>,
) -> Option<()> {
    let mut c = Cursor { bytes, pos: 0 };
    c.skip_ws();
    c.expect(b'{')?;
    c.skip_ws();
    if c.peek() == Some(b'}') {
        c.pos += 1;
    } else {
        let mut hints = hints.iter_mut();
        loop {
            c.expect(b'"')?;
            let key = c.plain_bytes()?;
            c.skip_ws();
            c.expect(b':')?;
            c.skip_ws();
            let slot = lookup.get_bytes(key, hints.next())?;
            match slot.and_then(|i| Some((slots.get_mut(i)?, columns.get(i)?))) {
                Some((slot, node)) => c.value(node, scratch, slot)?,
                None => c.skip_value()?,
            }
            c.skip_ws();
            match c.next()? {
                b',' => c.skip_ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    c.skip_ws();
    (c.pos == bytes.len()).then_some(())
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

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
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
    /// forwarding).
    fn value(&mut self, node: &Node, scratch: &mut Vec<u8>, slot: &mut Value) -> Option<()> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            *slot = Value::Null;
            return Some(());
        }
        let Node::Scalar(s) = *node else {
            return None;
        };
        match self.peek()? {
            b'"' => {
                self.pos += 1;
                let text = self.plain_string()?;
                *slot = match s {
                    Scalar::String => Value::String(Arc::from(text)),
                    _ => parse_text(s, text, scratch).ok()?,
                };
            }
            b't' => {
                self.literal(b"true")?;
                *slot = from_bool(s, true).ok()?;
            }
            b'f' => {
                self.literal(b"false")?;
                *slot = from_bool(s, false).ok()?;
            }
            b'-' | b'0'..=b'9' => {
                let (text, integer) = self.number()?;
                *slot = match (s, integer) {
                    (Scalar::Double | Scalar::Decimal { .. }, _) => from_number(s, text).ok()?,
                    (Scalar::BigInt, Some(v)) => Value::BigInt(v),
                    (_, Some(v)) => from_i64(s, v).ok()?,
                    (_, None) => return None,
                };
            }
            _ => return None,
        }
        Some(())
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
    use rill_sql::{DataType, Value};

    use super::special_byte;
    use crate::format::cols;
    use crate::format::json::JsonDecoder;
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
        )
        .map(|()| slots)
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

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
