//! String functions. Positions and lengths count Unicode characters (Java
//! counts UTF-16 units, which differs only outside the Basic Multilingual
//! Plane); the BYTES overloads count bytes.

use std::sync::Arc;

use super::{
    arg_int, arg_str, is_integer, usage_error, wrong_arg, FunctionCategory, ScalarFunction,
};
use crate::error::EvalError;
use crate::types::DataType;
use crate::value::Value;

const CAT: FunctionCategory = FunctionCategory::String;

pub(super) static FUNCTIONS: &[ScalarFunction] = &[
    ScalarFunction {
        name: "UCASE",
        usage: UNARY_STRING,
        description: "Converts a string to upper case.",
        category: CAT,
        deterministic: true,
        return_type: |args| unary_string("UCASE", args),
        eval: |args| map_str("UCASE", args, |s| s.to_uppercase()),
    },
    ScalarFunction {
        name: "LCASE",
        usage: UNARY_STRING,
        description: "Converts a string to lower case.",
        category: CAT,
        deterministic: true,
        return_type: |args| unary_string("LCASE", args),
        eval: |args| map_str("LCASE", args, |s| s.to_lowercase()),
    },
    ScalarFunction {
        name: "TRIM",
        usage: UNARY_STRING,
        description: "Removes spaces and control characters from both ends of a string.",
        category: CAT,
        deterministic: true,
        return_type: |args| unary_string("TRIM", args),
        // Java's String.trim(): everything up to and including U+0020.
        eval: |args| map_str("TRIM", args, |s| s.trim_matches(|c| c <= ' ').to_owned()),
    },
    ScalarFunction {
        name: "INITCAP",
        usage: UNARY_STRING,
        description: "Capitalizes the first letter of each whitespace-delimited word and \
                      lower-cases the rest.",
        category: CAT,
        deterministic: true,
        return_type: |args| unary_string("INITCAP", args),
        eval: |args| map_str("INITCAP", args, initcap),
    },
    ScalarFunction {
        name: "LEN",
        usage: LEN_USAGE,
        description: "The number of characters in a string, or of bytes in a BYTES value.",
        category: CAT,
        deterministic: true,
        return_type: len_type,
        eval: eval_len,
    },
    ScalarFunction {
        name: "CONCAT",
        usage: CONCAT_USAGE,
        description: "Concatenates strings (or BYTES); NULL arguments count as empty.",
        category: CAT,
        deterministic: true,
        return_type: concat_type,
        eval: eval_concat,
    },
    ScalarFunction {
        name: "CONCAT_WS",
        usage: CONCAT_WS_USAGE,
        description: "Concatenates strings (or BYTES) with a separator between them, skipping \
                      NULLs; NULL if the separator is NULL.",
        category: CAT,
        deterministic: true,
        return_type: concat_ws_type,
        eval: eval_concat_ws,
    },
    ScalarFunction {
        name: "SUBSTRING",
        usage: SUBSTRING_USAGE,
        description: "The part of a string (or BYTES) from 1-based position pos, of length len \
                      or to the end; a negative pos counts from the end.",
        category: CAT,
        deterministic: true,
        return_type: substring_type,
        eval: eval_substring,
    },
    ScalarFunction {
        name: "REPLACE",
        usage: REPLACE_USAGE,
        description: "Replaces every occurrence of a substring with another string.",
        category: CAT,
        deterministic: true,
        return_type: replace_type,
        eval: eval_replace,
    },
    ScalarFunction {
        name: "SPLIT",
        usage: SPLIT_USAGE,
        description: "Splits a string (or BYTES) on a literal delimiter into an array; an empty \
                      delimiter splits into characters (bytes).",
        category: CAT,
        deterministic: true,
        return_type: split_type,
        eval: eval_split,
    },
    ScalarFunction {
        name: "INSTR",
        usage: INSTR_USAGE,
        description: "The 1-based position of the n-th occurrence of a substring, searching \
                      from position (backwards if negative); 0 if not found.",
        category: CAT,
        deterministic: true,
        return_type: instr_type,
        eval: eval_instr,
    },
    ScalarFunction {
        name: "LPAD",
        usage: PAD_USAGE,
        description: "Left-pads a string (or BYTES) with a padding to a length, truncating if \
                      longer; NULL if the padding is empty or the length negative.",
        category: CAT,
        deterministic: true,
        return_type: |args| pad_type("LPAD", args),
        eval: |args| eval_pad("LPAD", args, true),
    },
    ScalarFunction {
        name: "RPAD",
        usage: PAD_USAGE,
        description: "Right-pads a string (or BYTES) with a padding to a length, truncating if \
                      longer; NULL if the padding is empty or the length negative.",
        category: CAT,
        deterministic: true,
        return_type: |args| pad_type("RPAD", args),
        eval: |args| eval_pad("RPAD", args, false),
    },
];

const UNARY_STRING: &str = "(STRING)";
const LEN_USAGE: &str = "(STRING) or (BYTES)";
const CONCAT_USAGE: &str = "(STRING, ...) or (BYTES, ...)";
const CONCAT_WS_USAGE: &str = "(STRING, STRING, ...) or (BYTES, BYTES, ...)";
const SUBSTRING_USAGE: &str = "(STRING, INTEGER [, INTEGER]) or (BYTES, INTEGER [, INTEGER])";
const REPLACE_USAGE: &str = "(STRING, STRING, STRING)";
const SPLIT_USAGE: &str = "(STRING, STRING) or (BYTES, BYTES)";
const INSTR_USAGE: &str = "(STRING, STRING [, INTEGER [, INTEGER]])";
const PAD_USAGE: &str = "(STRING, INTEGER, STRING) or (BYTES, INTEGER, BYTES)";

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::String | DataType::Bytes)
}

fn unary_string(name: &str, args: &[DataType]) -> Result<DataType, String> {
    match args {
        [DataType::String] => Ok(DataType::String),
        _ => Err(usage_error(name, UNARY_STRING, args)),
    }
}

/// Applies `f` to a single STRING argument, passing NULL through.
fn map_str(name: &str, args: &[Value], f: impl Fn(&str) -> String) -> Result<Value, EvalError> {
    Ok(match arg_str(name, args, 0)? {
        Some(s) => Value::String(Arc::from(f(s))),
        None => Value::Null,
    })
}

/// A STRING or BYTES argument, borrowed; lets one implementation serve
/// both overloads of functions like SUBSTRING and SPLIT.
enum Text<'a> {
    Str(&'a str),
    Bytes(&'a [u8]),
}

fn arg_text<'a>(name: &str, args: &'a [Value], i: usize) -> Result<Option<Text<'a>>, EvalError> {
    match args.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(Text::Str(s))),
        Some(Value::Bytes(b)) => Ok(Some(Text::Bytes(b))),
        Some(v) => Err(wrong_arg(name, i, "a STRING or BYTES", v)),
    }
}

fn initcap(s: &str) -> String {
    // ksqlDB lower-cases everything, then upper-cases the first character of
    // each run of non-whitespace (Java's `\s`).
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r');
    let mut out = String::with_capacity(s.len());
    let mut at_word_start = true;
    for c in s.chars() {
        if is_space(c) {
            out.push(c);
            at_word_start = true;
        } else if at_word_start {
            out.extend(c.to_uppercase());
            at_word_start = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn len_type(args: &[DataType]) -> Result<DataType, String> {
    match args {
        [t] if is_text(t) => Ok(DataType::Int),
        _ => Err(usage_error("LEN", LEN_USAGE, args)),
    }
}

fn eval_len(args: &[Value]) -> Result<Value, EvalError> {
    let n = match arg_text("LEN", args, 0)? {
        None => return Ok(Value::Null),
        Some(Text::Str(s)) => s.chars().count(),
        Some(Text::Bytes(b)) => b.len(),
    };
    i32::try_from(n)
        .map(Value::Int)
        .map_err(|_| EvalError::Overflow("integer"))
}

fn concat_type(args: &[DataType]) -> Result<DataType, String> {
    match args {
        [first, ..] if is_text(first) && args.iter().all(|t| t == first) => Ok(first.clone()),
        _ => Err(usage_error("CONCAT", CONCAT_USAGE, args)),
    }
}

fn eval_concat(args: &[Value]) -> Result<Value, EvalError> {
    let bytes = args.iter().any(|v| matches!(v, Value::Bytes(_)));
    join("CONCAT", args.iter().enumerate(), b"", bytes)
}

fn concat_ws_type(args: &[DataType]) -> Result<DataType, String> {
    match args {
        [first, _, ..] if is_text(first) && args.iter().all(|t| t == first) => Ok(first.clone()),
        _ => Err(usage_error("CONCAT_WS", CONCAT_WS_USAGE, args)),
    }
}

fn eval_concat_ws(args: &[Value]) -> Result<Value, EvalError> {
    let (sep, bytes): (&[u8], bool) = match args.first() {
        None | Some(Value::Null) => return Ok(Value::Null),
        Some(Value::String(s)) => (s.as_bytes(), false),
        Some(Value::Bytes(b)) => (b, true),
        Some(v) => return Err(wrong_arg("CONCAT_WS", 0, "a STRING or BYTES", v)),
    };
    join("CONCAT_WS", args.iter().enumerate().skip(1), sep, bytes)
}

/// Joins the non-NULL values with `sep`. Strings and BYTES are both joined
/// as bytes; joining valid UTF-8 with a UTF-8 separator stays valid UTF-8.
fn join<'a>(
    name: &str,
    args: impl Iterator<Item = (usize, &'a Value)>,
    sep: &[u8],
    bytes: bool,
) -> Result<Value, EvalError> {
    let mut out: Vec<u8> = Vec::new();
    let mut first = true;
    for (i, v) in args {
        let part: &[u8] = match v {
            Value::Null => continue,
            Value::String(s) if !bytes => s.as_bytes(),
            Value::Bytes(b) if bytes => b,
            v => {
                let expected = if bytes { "BYTES" } else { "a STRING" };
                return Err(wrong_arg(name, i, expected, v));
            }
        };
        if !first {
            out.extend_from_slice(sep);
        }
        first = false;
        out.extend_from_slice(part);
    }
    if bytes {
        return Ok(Value::Bytes(Arc::from(out)));
    }
    String::from_utf8(out)
        .map(|s| Value::String(Arc::from(s)))
        .map_err(|_| EvalError::InvalidInput(format!("{name} produced invalid UTF-8")))
}

fn substring_type(args: &[DataType]) -> Result<DataType, String> {
    match args {
        [t, rest @ ..]
            if is_text(t) && (1..=2).contains(&rest.len()) && rest.iter().all(is_integer) =>
        {
            Ok(t.clone())
        }
        _ => Err(usage_error("SUBSTRING", SUBSTRING_USAGE, args)),
    }
}

/// The 0-based `[start, end)` range ksqlDB's SUBSTRING selects from a value
/// of `len` units: `pos` is 1-based, negative counts from the end, 0 acts
/// like 1; everything is clamped to the value.
fn substring_range(len: usize, pos: i64, sub_len: Option<i64>) -> (usize, usize) {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let start = if pos < 0 {
        len_i.saturating_add(pos).max(0)
    } else {
        pos.saturating_sub(1).clamp(0, len_i)
    };
    let end = match sub_len {
        None => len_i,
        Some(l) => start.saturating_add(l).min(len_i).max(start),
    };
    // Both are within 0..=len by construction.
    (
        usize::try_from(start).unwrap_or(0),
        usize::try_from(end).unwrap_or(0),
    )
}

fn eval_substring(args: &[Value]) -> Result<Value, EvalError> {
    let text = arg_text("SUBSTRING", args, 0)?;
    let pos = arg_int("SUBSTRING", args, 1)?;
    let sub_len = if args.len() > 2 {
        match arg_int("SUBSTRING", args, 2)? {
            Some(l) => Some(l),
            None => return Ok(Value::Null),
        }
    } else {
        None
    };
    let (Some(text), Some(pos)) = (text, pos) else {
        return Ok(Value::Null);
    };
    Ok(match text {
        Text::Str(s) => {
            let chars: Vec<char> = s.chars().collect();
            let (start, end) = substring_range(chars.len(), pos, sub_len);
            Value::String(Arc::from(chars[start..end].iter().collect::<String>()))
        }
        Text::Bytes(b) => {
            let (start, end) = substring_range(b.len(), pos, sub_len);
            Value::Bytes(Arc::from(&b[start..end]))
        }
    })
}

fn replace_type(args: &[DataType]) -> Result<DataType, String> {
    match args {
        [DataType::String, DataType::String, DataType::String] => Ok(DataType::String),
        _ => Err(usage_error("REPLACE", REPLACE_USAGE, args)),
    }
}

fn eval_replace(args: &[Value]) -> Result<Value, EvalError> {
    let s = arg_str("REPLACE", args, 0)?;
    let old = arg_str("REPLACE", args, 1)?;
    let new = arg_str("REPLACE", args, 2)?;
    Ok(match (s, old, new) {
        (Some(s), Some(old), Some(new)) => Value::String(Arc::from(s.replace(old, new))),
        _ => Value::Null,
    })
}

fn split_type(args: &[DataType]) -> Result<DataType, String> {
    match args {
        [a, b] if is_text(a) && a == b => Ok(DataType::Array(Box::new(a.clone()))),
        _ => Err(usage_error("SPLIT", SPLIT_USAGE, args)),
    }
}

fn eval_split(args: &[Value]) -> Result<Value, EvalError> {
    let text = arg_text("SPLIT", args, 0)?;
    let delim = arg_text("SPLIT", args, 1)?;
    let parts: Vec<Value> = match (text, delim) {
        (Some(Text::Str(s)), Some(Text::Str(d))) => {
            if d.is_empty() {
                // Java's split on an empty pattern: one element per character,
                // and a single empty element for an empty input.
                if s.is_empty() {
                    vec![Value::str("")]
                } else {
                    s.chars()
                        .map(|c| Value::str(c.encode_utf8(&mut [0; 4])))
                        .collect()
                }
            } else {
                s.split(d).map(Value::str).collect()
            }
        }
        (Some(Text::Bytes(b)), Some(Text::Bytes(d))) => {
            if d.is_empty() {
                b.iter()
                    .map(|byte| Value::Bytes(Arc::from([*byte].as_slice())))
                    .collect()
            } else {
                split_bytes(b, d)
                    .into_iter()
                    .map(|p| Value::Bytes(Arc::from(p)))
                    .collect()
            }
        }
        (None, _) | (_, None) => return Ok(Value::Null),
        (Some(_), Some(_)) => {
            return Err(EvalError::InvalidInput(
                "SPLIT needs a delimiter of the same type as the value".into(),
            ))
        }
    };
    Ok(Value::Array(Arc::new(parts)))
}

fn split_bytes<'a>(b: &'a [u8], delim: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + delim.len() <= b.len() {
        if &b[i..i + delim.len()] == delim {
            parts.push(&b[start..i]);
            i += delim.len();
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&b[start..]);
    parts
}

fn instr_type(args: &[DataType]) -> Result<DataType, String> {
    match args {
        [DataType::String, DataType::String, rest @ ..]
            if rest.len() <= 2 && rest.iter().all(is_integer) =>
        {
            Ok(DataType::Int)
        }
        _ => Err(usage_error("INSTR", INSTR_USAGE, args)),
    }
}

fn eval_instr(args: &[Value]) -> Result<Value, EvalError> {
    let s = arg_str("INSTR", args, 0)?;
    let sub = arg_str("INSTR", args, 1)?;
    let position = if args.len() > 2 {
        arg_int("INSTR", args, 2)?
    } else {
        Some(1)
    };
    let occurrence = if args.len() > 3 {
        arg_int("INSTR", args, 3)?
    } else {
        Some(1)
    };
    let (Some(s), Some(sub), Some(position), Some(occurrence)) = (s, sub, position, occurrence)
    else {
        return Ok(Value::Null);
    };
    let found = instr(s, sub, position, occurrence);
    i32::try_from(found)
        .map(Value::Int)
        .map_err(|_| EvalError::Overflow("integer"))
}

/// Oracle-style INSTR over characters. Returns the 1-based position where
/// the `occurrence`-th match starts, searching forwards from `position`, or
/// backwards from the `-position`-th character from the end; 0 if none.
fn instr(s: &str, sub: &str, position: i64, occurrence: i64) -> usize {
    let hay: Vec<char> = s.chars().collect();
    let needle: Vec<char> = sub.chars().collect();
    let len = hay.len();
    let Ok(from) = usize::try_from(position.unsigned_abs()) else {
        return 0;
    };
    let Ok(occurrence) = usize::try_from(occurrence) else {
        return 0;
    };
    if from == 0 || from > len || occurrence == 0 || needle.len() > len {
        return 0;
    }
    let matches_at = |i: usize| hay[i..].starts_with(&needle);
    let last_start = len - needle.len();
    let mut seen = 0;
    if position > 0 {
        for i in (from - 1)..=last_start {
            if matches_at(i) {
                seen += 1;
                if seen == occurrence {
                    return i + 1;
                }
            }
        }
    } else {
        // The match must end at or before the from-th character from the end.
        let end_limit = len + 1 - from; // exclusive end index bound
        if end_limit < needle.len() {
            return 0;
        }
        for i in (0..=(end_limit - needle.len()).min(last_start)).rev() {
            if matches_at(i) {
                seen += 1;
                if seen == occurrence {
                    return i + 1;
                }
            }
        }
    }
    0
}

fn pad_type(name: &str, args: &[DataType]) -> Result<DataType, String> {
    match args {
        [t, len, p] if is_text(t) && is_integer(len) && p == t => Ok(t.clone()),
        _ => Err(usage_error(name, PAD_USAGE, args)),
    }
}

fn eval_pad(name: &str, args: &[Value], left: bool) -> Result<Value, EvalError> {
    let input = arg_text(name, args, 0)?;
    let target = arg_int(name, args, 1)?;
    let padding = arg_text(name, args, 2)?;
    let (Some(input), Some(target), Some(padding)) = (input, target, padding) else {
        return Ok(Value::Null);
    };
    let Ok(target) = usize::try_from(target) else {
        return Ok(Value::Null); // negative length
    };
    Ok(match (input, padding) {
        (Text::Str(s), Text::Str(p)) => {
            let s: Vec<char> = s.chars().collect();
            let p: Vec<char> = p.chars().collect();
            match pad(&s, target, &p, left) {
                Some(out) => Value::String(Arc::from(out.into_iter().collect::<String>())),
                None => Value::Null,
            }
        }
        (Text::Bytes(b), Text::Bytes(p)) => match pad(b, target, p, left) {
            Some(out) => Value::Bytes(Arc::from(out)),
            None => Value::Null,
        },
        _ => {
            return Err(EvalError::InvalidInput(format!(
                "{name} needs a padding of the same type as the value"
            )))
        }
    })
}

/// Pads `input` to `target` units with repetitions of `padding` (on the
/// left or right), or truncates it to `target`. `None` for an empty padding.
fn pad<T: Copy>(input: &[T], target: usize, padding: &[T], left: bool) -> Option<Vec<T>> {
    if padding.is_empty() {
        return None;
    }
    if input.len() >= target {
        return Some(input[..target].to_vec());
    }
    let fill = padding.iter().copied().cycle().take(target - input.len());
    let mut out = Vec::with_capacity(target);
    if left {
        out.extend(fill);
        out.extend_from_slice(input);
    } else {
        out.extend_from_slice(input);
        out.extend(fill);
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::{call, s, typecheck};
    use super::*;

    fn b(v: &[u8]) -> Value {
        Value::Bytes(Arc::from(v))
    }

    fn arr(items: &[&str]) -> Value {
        Value::Array(Arc::new(items.iter().map(|i| s(i)).collect()))
    }

    #[test]
    fn case_conversion() {
        assert_eq!(call("UCASE", &[s("Hello ß")]).unwrap(), s("HELLO SS"));
        assert_eq!(call("LCASE", &[s("HeLLo")]).unwrap(), s("hello"));
        assert_eq!(call("UCASE", &[Value::Null]).unwrap(), Value::Null);
        assert_eq!(
            typecheck("LCASE", &[DataType::String]).unwrap(),
            DataType::String
        );
        assert!(typecheck("LCASE", &[DataType::Int]).is_err());
        assert!(typecheck("LCASE", &[]).is_err());
    }

    #[test]
    fn trim_strips_whitespace_and_controls_at_both_ends() {
        assert_eq!(call("TRIM", &[s("  a b \t\n")]).unwrap(), s("a b"));
        assert_eq!(call("TRIM", &[s("   ")]).unwrap(), s(""));
        assert_eq!(call("TRIM", &[Value::Null]).unwrap(), Value::Null);
    }

    #[test]
    fn initcap_capitalizes_words() {
        assert_eq!(
            call("INITCAP", &[s("the FOX  jumped")]).unwrap(),
            s("The Fox  Jumped")
        );
        assert_eq!(
            call("INITCAP", &[s("o'neil-smith x")]).unwrap(),
            s("O'neil-smith X")
        );
        assert_eq!(call("INITCAP", &[s("")]).unwrap(), s(""));
        assert_eq!(call("INITCAP", &[Value::Null]).unwrap(), Value::Null);
    }

    #[test]
    fn len_counts_characters_or_bytes() {
        assert_eq!(call("LEN", &[s("héllo")]).unwrap(), Value::Int(5));
        assert_eq!(call("LEN", &[b(&[1, 2, 3])]).unwrap(), Value::Int(3));
        assert_eq!(call("LEN", &[Value::Null]).unwrap(), Value::Null);
        assert_eq!(typecheck("LEN", &[DataType::Bytes]).unwrap(), DataType::Int);
        assert!(typecheck("LEN", &[DataType::Int]).is_err());
    }

    #[test]
    fn concat_skips_nulls() {
        assert_eq!(
            call("CONCAT", &[s("a"), Value::Null, s("b"), s("c")]).unwrap(),
            s("abc")
        );
        assert_eq!(call("CONCAT", &[Value::Null, Value::Null]).unwrap(), s(""));
        assert_eq!(call("CONCAT", &[b(&[1]), b(&[2])]).unwrap(), b(&[1, 2]));
        assert_eq!(
            typecheck(
                "CONCAT",
                &[DataType::String, DataType::String, DataType::String]
            )
            .unwrap(),
            DataType::String
        );
        assert!(typecheck("CONCAT", &[DataType::String, DataType::Int]).is_err());
        assert!(typecheck("CONCAT", &[]).is_err());
    }

    #[test]
    fn concat_ws_separates_and_skips_nulls() {
        assert_eq!(
            call(
                "CONCAT_WS",
                &[s(", "), s("apple"), s("banana"), Value::Null, s("date")]
            )
            .unwrap(),
            s("apple, banana, date")
        );
        assert_eq!(
            call("CONCAT_WS", &[Value::Null, s("a")]).unwrap(),
            Value::Null
        );
        assert_eq!(call("CONCAT_WS", &[s("-"), Value::Null]).unwrap(), s(""));
        assert_eq!(
            call("CONCAT_WS", &[b(&[0]), b(&[1]), b(&[2])]).unwrap(),
            b(&[1, 0, 2])
        );
        assert!(typecheck("CONCAT_WS", &[DataType::String]).is_err());
    }

    #[test]
    fn substring_follows_ksqldb_positions() {
        let sub = |pos: i64, len: Option<i64>| {
            let mut args = vec![s("stream"), Value::BigInt(pos)];
            args.extend(len.map(Value::BigInt));
            call("SUBSTRING", &args).unwrap()
        };
        assert_eq!(sub(1, Some(4)), s("stre"));
        assert_eq!(sub(3, None), s("ream"));
        assert_eq!(sub(0, Some(2)), s("st"));
        assert_eq!(sub(-3, None), s("eam"));
        assert_eq!(sub(-3, Some(2)), s("ea"));
        assert_eq!(sub(-10, Some(2)), s("st"));
        assert_eq!(sub(10, None), s(""));
        assert_eq!(sub(2, Some(-1)), s(""));
        assert_eq!(sub(2, Some(100)), s("tream"));
        assert_eq!(sub(i64::MIN, Some(i64::MAX)), s("stream"));
        assert_eq!(
            call("SUBSTRING", &[s("héllo"), Value::Int(2), Value::Int(2)]).unwrap(),
            s("él")
        );
        assert_eq!(
            call("SUBSTRING", &[b(&[1, 2, 3, 4]), Value::Int(-2)]).unwrap(),
            b(&[3, 4])
        );
        assert_eq!(
            call("SUBSTRING", &[Value::Null, Value::Int(1)]).unwrap(),
            Value::Null
        );
        assert_eq!(
            call("SUBSTRING", &[s("a"), Value::Null]).unwrap(),
            Value::Null
        );
        assert_eq!(
            call("SUBSTRING", &[s("a"), Value::Int(1), Value::Null]).unwrap(),
            Value::Null
        );
        assert_eq!(
            typecheck(
                "SUBSTRING",
                &[DataType::String, DataType::BigInt, DataType::Int]
            )
            .unwrap(),
            DataType::String
        );
        assert!(typecheck("SUBSTRING", &[DataType::String]).is_err());
    }

    #[test]
    fn replace_all_occurrences() {
        assert_eq!(
            call("REPLACE", &[s("a.b.c"), s("."), s("::")]).unwrap(),
            s("a::b::c")
        );
        assert_eq!(
            call("REPLACE", &[s("abc"), s("x"), s("y")]).unwrap(),
            s("abc")
        );
        assert_eq!(
            call("REPLACE", &[s("abc"), Value::Null, s("y")]).unwrap(),
            Value::Null
        );
        assert!(typecheck("REPLACE", &[DataType::String, DataType::String]).is_err());
    }

    #[test]
    fn split_on_literal_delimiters() {
        assert_eq!(
            call("SPLIT", &[s("a.b..c"), s(".")]).unwrap(),
            arr(&["a", "b", "", "c"])
        );
        assert_eq!(
            call("SPLIT", &[s(",a,"), s(",")]).unwrap(),
            arr(&["", "a", ""])
        );
        assert_eq!(call("SPLIT", &[s("abc"), s("|")]).unwrap(), arr(&["abc"]));
        assert_eq!(
            call("SPLIT", &[s("abc"), s("")]).unwrap(),
            arr(&["a", "b", "c"])
        );
        assert_eq!(call("SPLIT", &[s(""), s("")]).unwrap(), arr(&[""]));
        assert_eq!(
            call("SPLIT", &[s("abc"), Value::Null]).unwrap(),
            Value::Null
        );
        assert_eq!(
            call("SPLIT", &[b(&[1, 0, 2, 0]), b(&[0])]).unwrap(),
            Value::Array(Arc::new(vec![b(&[1]), b(&[2]), b(&[])]))
        );
        assert_eq!(
            typecheck("SPLIT", &[DataType::String, DataType::String]).unwrap(),
            DataType::Array(Box::new(DataType::String))
        );
        assert!(typecheck("SPLIT", &[DataType::String, DataType::Bytes]).is_err());
    }

    #[test]
    fn instr_matches_the_ksqldb_examples() {
        let instr = |args: &[Value]| call("INSTR", args).unwrap();
        let corp = || s("CORPORATE FLOOR");
        assert_eq!(instr(&[corp(), s("OR")]), Value::Int(2));
        assert_eq!(instr(&[corp(), s("OR"), Value::Int(3)]), Value::Int(5));
        assert_eq!(
            instr(&[corp(), s("OR"), Value::Int(3), Value::Int(2)]),
            Value::Int(14)
        );
        assert_eq!(instr(&[corp(), s("OR"), Value::Int(-3)]), Value::Int(5));
        assert_eq!(
            instr(&[corp(), s("OR"), Value::Int(-3), Value::Int(2)]),
            Value::Int(2)
        );
        assert_eq!(instr(&[corp(), s("MISSING")]), Value::Int(0));
        assert_eq!(
            instr(&[corp(), s("OR"), Value::Int(3), Value::Int(9)]),
            Value::Int(0)
        );
        assert_eq!(instr(&[corp(), s("FLO"), Value::Int(-1)]), Value::Int(11));
        assert_eq!(instr(&[corp(), s("OR"), Value::Int(99)]), Value::Int(0));
        assert_eq!(instr(&[corp(), s("OR"), Value::Int(0)]), Value::Int(0));
        assert_eq!(instr(&[Value::Null, s("OR")]), Value::Null);
        assert_eq!(instr(&[corp(), s("OR"), Value::Null]), Value::Null);
        assert!(typecheck(
            "INSTR",
            &[DataType::String, DataType::String, DataType::Double]
        )
        .is_err());
    }

    #[test]
    fn pad_left_and_right() {
        let pad = |name: &str, input: &str, len: i32, p: &str| {
            call(name, &[s(input), Value::Int(len), s(p)]).unwrap()
        };
        assert_eq!(pad("LPAD", "Foo", 7, "Bar"), s("BarBFoo"));
        assert_eq!(pad("LPAD", "Foo", 2, "Bar"), s("Fo"));
        assert_eq!(pad("LPAD", "", 2, "Bar"), s("Ba"));
        assert_eq!(pad("LPAD", "123", 5, "0"), s("00123"));
        assert_eq!(pad("RPAD", "Foo", 7, "Bar"), s("FooBarB"));
        assert_eq!(pad("RPAD", "Foo", 2, "Bar"), s("Fo"));
        assert_eq!(pad("LPAD", "Foo", 5, ""), Value::Null);
        assert_eq!(pad("LPAD", "Foo", -1, "x"), Value::Null);
        assert_eq!(
            call("RPAD", &[b(&[1]), Value::Int(3), b(&[9])]).unwrap(),
            b(&[1, 9, 9])
        );
        assert_eq!(
            call("LPAD", &[s("a"), Value::Int(3), Value::Null]).unwrap(),
            Value::Null
        );
        assert!(typecheck("LPAD", &[DataType::String, DataType::Int, DataType::Bytes]).is_err());
    }
}
