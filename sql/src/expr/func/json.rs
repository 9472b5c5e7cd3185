//! JSON functions over STRING columns holding JSON text.
//!
//! EXTRACTJSONFIELD walks the document with serde's streaming deserializer
//! instead of building a tree: only the selected value is copied out, and
//! objects keep their key order (serde_json's `Value` would sort keys).

use std::fmt::{self, Write as _};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{arg_str, usage_error, FunctionCategory, ScalarFunction};
use crate::error::EvalError;
use crate::types::DataType;
use crate::value::Value;

const CAT: FunctionCategory = FunctionCategory::Json;

pub(super) static FUNCTIONS: &[ScalarFunction] = &[
    ScalarFunction {
        name: "EXTRACTJSONFIELD",
        usage: "(json STRING, path STRING)",
        description: "The value at a JSONPath ($.a.b, $.a[0], $['a']) as a STRING: strings \
                      unquoted, objects and arrays as JSON text; NULL if the path is missing, \
                      the value is null, or the input is not JSON.",
        category: CAT,
        deterministic: true,
        return_type: |args| match args {
            [DataType::String, DataType::String] => Ok(DataType::String),
            _ => Err(usage_error(
                "EXTRACTJSONFIELD",
                "(json STRING, path STRING)",
                args,
            )),
        },
        eval: eval_extract,
    },
    ScalarFunction {
        name: "IS_JSON_STRING",
        usage: "(STRING)",
        description: "Whether a string parses as a JSON value; false for NULL.",
        category: CAT,
        deterministic: true,
        return_type: |args| match args {
            [DataType::String] => Ok(DataType::Boolean),
            _ => Err(usage_error("IS_JSON_STRING", "(STRING)", args)),
        },
        eval: |args| {
            let json = arg_str("IS_JSON_STRING", args, 0)?;
            Ok(Value::Boolean(json.is_some_and(|j| {
                serde_json::from_str::<IgnoredAny>(j).is_ok()
            })))
        },
    },
    ScalarFunction {
        name: "JSON_ARRAY_LENGTH",
        usage: "(STRING)",
        description: "The number of elements of a top-level JSON array; NULL if the string is \
                      not a JSON array.",
        category: CAT,
        deterministic: true,
        return_type: |args| match args {
            [DataType::String] => Ok(DataType::Int),
            _ => Err(usage_error("JSON_ARRAY_LENGTH", "(STRING)", args)),
        },
        eval: eval_array_length,
    },
];

fn eval_extract(args: &[Value]) -> Result<Value, EvalError> {
    let json = arg_str("EXTRACTJSONFIELD", args, 0)?;
    let path = arg_str("EXTRACTJSONFIELD", args, 1)?;
    let (Some(json), Some(path)) = (json, path) else {
        return Ok(Value::Null);
    };
    let tokens = parse_path(path).map_err(|e| {
        EvalError::InvalidInput(format!(
            "EXTRACTJSONFIELD: invalid JSONPath \"{path}\": {e}"
        ))
    })?;
    let mut de = serde_json::Deserializer::from_str(json);
    let found = Seek { path: &tokens }
        .deserialize(&mut de)
        .and_then(|found| de.end().map(|()| found));
    Ok(match found {
        Ok(Some(text)) => Value::str(&text),
        // Missing path, JSON null, or not JSON at all.
        Ok(None) | Err(_) => Value::Null,
    })
}

fn eval_array_length(args: &[Value]) -> Result<Value, EvalError> {
    let Some(json) = arg_str("JSON_ARRAY_LENGTH", args, 0)? else {
        return Ok(Value::Null);
    };
    let mut de = serde_json::Deserializer::from_str(json);
    let len = de
        .deserialize_any(ArrayLength)
        .and_then(|len| de.end().map(|()| len));
    Ok(match len {
        Ok(Some(n)) => Value::Int(i32::try_from(n).map_err(|_| EvalError::Overflow("integer"))?),
        Ok(None) | Err(_) => Value::Null,
    })
}

/// Splits ksqlDB's JSONPath subset into member names / array indexes:
/// `$`, then any of `.name`, `[0]`, `['name']`, `["name"]`. Whether a token
/// is a name or an index is decided by the node it meets, as in ksqlDB.
fn parse_path(path: &str) -> Result<Vec<String>, String> {
    let mut rest = path
        .strip_prefix('$')
        .ok_or_else(|| "a path starts with '$'".to_owned())?;
    let mut tokens = Vec::new();
    while let Some(c) = rest.chars().next() {
        match c {
            '.' => {
                let seg = &rest[1..];
                let end = seg.find(['.', '[']).unwrap_or(seg.len());
                if end == 0 {
                    return Err("empty member name after '.'".into());
                }
                tokens.push(seg[..end].to_owned());
                rest = &seg[end..];
            }
            '[' => {
                let inner = &rest[1..];
                let (token, after) = match inner.chars().next() {
                    Some(q @ ('\'' | '"')) => {
                        let body = &inner[1..];
                        let close = body
                            .find(q)
                            .ok_or_else(|| format!("unterminated {q}quoted{q} member name"))?;
                        (body[..close].to_owned(), &body[close + 1..])
                    }
                    _ => {
                        let close = inner.find(']').ok_or_else(|| "missing ']'".to_owned())?;
                        let token = inner[..close].trim();
                        if token.is_empty() {
                            return Err("empty subscript '[]'".into());
                        }
                        (token.to_owned(), &inner[close..])
                    }
                };
                rest = after
                    .strip_prefix(']')
                    .ok_or_else(|| "missing ']' after subscript".to_owned())?;
                tokens.push(token);
            }
            other => return Err(format!("unexpected '{other}'; use .name or [index]")),
        }
    }
    Ok(tokens)
}

/// Follows `path` into the value being deserialized and yields the text of
/// what it finds; the rest of the document is only validated.
struct Seek<'p> {
    path: &'p [String],
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        match self.path.split_first() {
            None => de.deserialize_any(Leaf),
            Some((head, rest)) => de.deserialize_any(Step { head, rest }),
        }
    }
}

/// One step of a path: a member of an object or an element of an array.
/// Scalars have no children, so the path is missing there.
struct Step<'p> {
    head: &'p str,
    rest: &'p [String],
}

impl<'de> Visitor<'de> for Step<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.head {
                // The last of duplicate keys wins, as in Jackson.
                found = map.next_value_seed(Seek { path: self.rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let index: Option<usize> = self.head.parse().ok();
        let mut found = None;
        let mut i = 0;
        loop {
            if Some(i) == index {
                match seq.next_element_seed(Seek { path: self.rest })? {
                    Some(v) => found = v,
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// The value at the end of the path: a string's contents, JSON null as SQL
/// NULL, anything else as compact JSON text.
struct Leaf;

impl<'de> Visitor<'de> for Leaf {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        let mut out = String::new();
        Transcode { out: &mut out }.visit_f64::<E>(v)?;
        Ok(Some(out))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let mut out = String::new();
        Transcode { out: &mut out }.visit_seq(seq)?;
        Ok(Some(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let mut out = String::new();
        Transcode { out: &mut out }.visit_map(map)?;
        Ok(Some(out))
    }
}

/// Re-emits the value being deserialized as compact JSON, in document order.
struct Transcode<'o> {
    out: &'o mut String,
}

impl<'de> DeserializeSeed<'de> for Transcode<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl Transcode<'_> {
    fn quoted(&mut self, s: &str) {
        // serde_json's escaping; serializing a &str cannot fail.
        match serde_json::to_string(s) {
            Ok(q) => self.out.push_str(&q),
            Err(_) => self.out.push_str("\"\""),
        }
    }
}

impl<'de> Visitor<'de> for Transcode<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        let _ = write!(self.out, "{v}");
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        let _ = write!(self.out, "{v}");
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        match serde_json::Number::from_f64(v) {
            Some(n) => {
                let _ = write!(self.out, "{n}");
            }
            None => self.out.push_str("null"), // not reachable from JSON text
        }
        Ok(())
    }
    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        self.quoted(v);
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.out.push_str("null");
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push('[');
        let mut first = true;
        loop {
            let mark = self.out.len();
            if !first {
                self.out.push(',');
            }
            if seq
                .next_element_seed(Transcode { out: self.out })?
                .is_none()
            {
                self.out.truncate(mark);
                break;
            }
            first = false;
        }
        self.out.push(']');
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.out.push('{');
        let mut first = true;
        while let Some(key) = map.next_key::<String>()? {
            if !first {
                self.out.push(',');
            }
            first = false;
            self.quoted(&key);
            self.out.push(':');
            map.next_value_seed(Transcode { out: self.out })?;
        }
        self.out.push('}');
        Ok(())
    }
}

/// Counts the elements of a top-level array; `None` for anything else.
struct ArrayLength;

impl<'de> Visitor<'de> for ArrayLength {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(Some(n))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::{call, s, typecheck};
    use super::*;

    const DOC: &str = r#"{
        "log": {"cloud": "gcp836Csd", "app": "ksProcessor", "instance": 4},
        "tags": ["a", {"z": 1, "b": [true, null, 1.5]}],
        "nothing": null,
        "odd key": "x",
        "0": "zero"
    }"#;

    fn extract(json: &str, path: &str) -> Value {
        call("EXTRACTJSONFIELD", &[s(json), s(path)]).unwrap()
    }

    #[test]
    fn extracts_nested_fields_as_strings() {
        assert_eq!(extract(DOC, "$.log.cloud"), s("gcp836Csd"));
        assert_eq!(extract(DOC, "$.log.instance"), s("4"));
        assert_eq!(extract(DOC, "$['log'][\"app\"]"), s("ksProcessor"));
        assert_eq!(extract(DOC, "$.tags[0]"), s("a"));
        assert_eq!(extract(DOC, "$.tags.1.b[2]"), s("1.5"));
        assert_eq!(extract(DOC, "$.tags[1].b[0]"), s("true"));
        assert_eq!(extract(DOC, "$['odd key']"), s("x"));
        assert_eq!(extract(DOC, "$.0"), s("zero"));
        assert_eq!(extract(r#""top""#, "$"), s("top"));
    }

    #[test]
    fn objects_and_arrays_come_back_as_compact_json_in_document_order() {
        assert_eq!(
            extract(DOC, "$.log"),
            s(r#"{"cloud":"gcp836Csd","app":"ksProcessor","instance":4}"#)
        );
        assert_eq!(
            extract(DOC, "$.tags"),
            s(r#"["a",{"z":1,"b":[true,null,1.5]}]"#)
        );
        assert_eq!(
            extract(r#"{"a": ["q\"uote", []]}"#, "$.a"),
            s(r#"["q\"uote",[]]"#)
        );
        assert_eq!(extract(r#"{"a": {}}"#, "$.a"), s("{}"));
    }

    #[test]
    fn missing_null_or_invalid_gives_null() {
        assert_eq!(extract(DOC, "$.log.region"), Value::Null);
        assert_eq!(extract(DOC, "$.tags[7]"), Value::Null);
        assert_eq!(extract(DOC, "$.tags[-1]"), Value::Null);
        assert_eq!(extract(DOC, "$.tags.x"), Value::Null);
        assert_eq!(extract(DOC, "$.log.cloud.deeper"), Value::Null);
        assert_eq!(extract(DOC, "$.nothing"), Value::Null);
        assert_eq!(extract("not json", "$.a"), Value::Null);
        assert_eq!(extract(r#"{"a": 1"#, "$.a"), Value::Null);
        assert_eq!(extract(r#"{"a": 1} trailing"#, "$.a"), Value::Null);
        assert_eq!(extract("", "$"), Value::Null);
        assert_eq!(
            call("EXTRACTJSONFIELD", &[Value::Null, s("$.a")]).unwrap(),
            Value::Null
        );
        assert_eq!(
            call("EXTRACTJSONFIELD", &[s("{}"), Value::Null]).unwrap(),
            Value::Null
        );
    }

    #[test]
    fn malformed_paths_are_errors() {
        for path in ["a.b", "$.", "$..a", "$[0", "$['a]", "$[]", "$x", "$.a[0]b"] {
            match call("EXTRACTJSONFIELD", &[s(DOC), s(path)]) {
                Err(EvalError::InvalidInput(m)) => assert!(m.contains("invalid JSONPath"), "{m}"),
                other => panic!("{path}: {other:?}"),
            }
        }
        assert_eq!(parse_path("$").unwrap(), Vec::<String>::new());
        assert_eq!(parse_path("$.a[10]['b.c']").unwrap(), ["a", "10", "b.c"]);
    }

    #[test]
    fn extract_type_check() {
        assert_eq!(
            typecheck("EXTRACTJSONFIELD", &[DataType::String, DataType::String]).unwrap(),
            DataType::String
        );
        assert!(typecheck("EXTRACTJSONFIELD", &[DataType::String]).is_err());
        assert!(typecheck("EXTRACTJSONFIELD", &[DataType::Bytes, DataType::String]).is_err());
    }

    #[test]
    fn is_json_string_matches_the_ksqldb_examples() {
        let is = |v: Value| call("IS_JSON_STRING", &[v]).unwrap();
        for yes in ["[1, 2, 3]", "{}", "1", "\"abc\"", "null"] {
            assert_eq!(is(s(yes)), Value::Boolean(true), "{yes}");
        }
        for no in ["", "abc", "{", "[1,]"] {
            assert_eq!(is(s(no)), Value::Boolean(false), "{no}");
        }
        assert_eq!(is(Value::Null), Value::Boolean(false));
        assert_eq!(
            typecheck("IS_JSON_STRING", &[DataType::String]).unwrap(),
            DataType::Boolean
        );
    }

    #[test]
    fn json_array_length_matches_the_ksqldb_examples() {
        let len = |v: Value| call("JSON_ARRAY_LENGTH", &[v]).unwrap();
        assert_eq!(len(s("[1, 2, 3]")), Value::Int(3));
        assert_eq!(len(s("[1, [1, [2]], 3]")), Value::Int(3));
        assert_eq!(len(s("[]")), Value::Int(0));
        assert_eq!(len(s("{}")), Value::Null);
        assert_eq!(len(s(r#"{"a": [1]}"#)), Value::Null);
        assert_eq!(len(s("123")), Value::Null);
        assert_eq!(len(s("abc")), Value::Null);
        assert_eq!(len(s("[1, 2")), Value::Null);
        assert_eq!(len(Value::Null), Value::Null);
        assert_eq!(
            typecheck("JSON_ARRAY_LENGTH", &[DataType::String]).unwrap(),
            DataType::Int
        );
        assert!(typecheck("JSON_ARRAY_LENGTH", &[DataType::Int]).is_err());
    }
}
