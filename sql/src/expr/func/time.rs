//! Date and time functions.
//!
//! Patterns are Java `DateTimeFormatter` patterns, as ksqlDB users write
//! them (`yyyy-MM-dd'T'HH:mm:ss.SSSX`); [`java_pattern`] turns one into
//! chrono format items. Time zones are `UTC` or fixed offsets (`+02:00`):
//! there is no tz database here, so named zones are refused with a message
//! saying what works. When parsing, fields the pattern leaves out default
//! to 1970-01-01 00:00:00, as in ksqlDB, and an offset in the text wins
//! over the time zone argument.

use std::fmt::Write as _;

use chrono::format::{Fixed, Item, Numeric, Pad, Parsed, StrftimeItems};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, Offset, Timelike, Utc};

use super::{
    arg_int, arg_str, is_integer, usage_error, wrong_arg, FunctionCategory, ScalarFunction,
};
use crate::error::EvalError;
use crate::types::DataType;
use crate::value::Value;

const CAT: FunctionCategory = FunctionCategory::DateTime;

pub(super) static FUNCTIONS: &[ScalarFunction] = &[
    ScalarFunction {
        name: "UNIX_TIMESTAMP",
        usage: "([TIMESTAMP])",
        description: "Milliseconds since the Unix epoch of a TIMESTAMP, or of now when called \
                      without arguments.",
        category: CAT,
        deterministic: false,
        return_type: |args| match args {
            [] | [DataType::Timestamp] => Ok(DataType::BigInt),
            _ => Err(usage_error("UNIX_TIMESTAMP", "([TIMESTAMP])", args)),
        },
        eval: |args| match args.first() {
            None => Ok(Value::BigInt(Utc::now().timestamp_millis())),
            Some(Value::Null) => Ok(Value::Null),
            Some(Value::Timestamp(ms)) => Ok(Value::BigInt(*ms)),
            Some(v) => Err(wrong_arg("UNIX_TIMESTAMP", 0, "a TIMESTAMP", v)),
        },
    },
    ScalarFunction {
        name: "UNIX_DATE",
        usage: "([DATE])",
        description: "Days since 1970-01-01 of a DATE, or of today (UTC) when called without \
                      arguments.",
        category: CAT,
        deterministic: false,
        return_type: |args| match args {
            [] | [DataType::Date] => Ok(DataType::Int),
            _ => Err(usage_error("UNIX_DATE", "([DATE])", args)),
        },
        eval: |args| match args.first() {
            None => Ok(Value::Int(days_of(Utc::now().date_naive()))),
            Some(Value::Null) => Ok(Value::Null),
            Some(Value::Date(d)) => Ok(Value::Int(*d)),
            Some(v) => Err(wrong_arg("UNIX_DATE", 0, "a DATE", v)),
        },
    },
    ScalarFunction {
        name: "FROM_UNIXTIME",
        usage: "(BIGINT)",
        description: "The TIMESTAMP a number of milliseconds after the Unix epoch.",
        category: CAT,
        deterministic: true,
        return_type: |args| match args {
            [t] if is_integer(t) => Ok(DataType::Timestamp),
            _ => Err(usage_error("FROM_UNIXTIME", "(BIGINT)", args)),
        },
        eval: |args| Ok(arg_int("FROM_UNIXTIME", args, 0)?.map_or(Value::Null, Value::Timestamp)),
    },
    ScalarFunction {
        name: "FROM_DAYS",
        usage: "(INTEGER)",
        description: "The DATE a number of days after 1970-01-01.",
        category: CAT,
        deterministic: true,
        return_type: |args| match args {
            [t] if is_integer(t) => Ok(DataType::Date),
            _ => Err(usage_error("FROM_DAYS", "(INTEGER)", args)),
        },
        eval: |args| match arg_int("FROM_DAYS", args, 0)? {
            None => Ok(Value::Null),
            Some(d) => i32::try_from(d)
                .map(Value::Date)
                .map_err(|_| EvalError::Overflow("date")),
        },
    },
    ScalarFunction {
        name: "FORMAT_TIMESTAMP",
        usage: FORMAT_TIMESTAMP_USAGE,
        description: "Formats a TIMESTAMP with a Java DateTimeFormatter pattern, in UTC or the \
                      given time zone.",
        category: CAT,
        deterministic: true,
        return_type: |args| {
            signature(
                "FORMAT_TIMESTAMP",
                FORMAT_TIMESTAMP_USAGE,
                args,
                is_timestamp,
                2..=3,
            )
            .map(|()| DataType::String)
        },
        eval: |args| {
            let ms = arg_timestamp("FORMAT_TIMESTAMP", args, 0)?;
            format_instant("FORMAT_TIMESTAMP", ms, args)
        },
    },
    ScalarFunction {
        name: "TIMESTAMPTOSTRING",
        usage: TIMESTAMPTOSTRING_USAGE,
        description: "Formats milliseconds since the epoch with a Java DateTimeFormatter \
                      pattern, in UTC or the given time zone (deprecated: FORMAT_TIMESTAMP).",
        category: CAT,
        deterministic: true,
        return_type: |args| {
            signature(
                "TIMESTAMPTOSTRING",
                TIMESTAMPTOSTRING_USAGE,
                args,
                is_integer,
                2..=3,
            )
            .map(|()| DataType::String)
        },
        eval: |args| {
            let ms = arg_int("TIMESTAMPTOSTRING", args, 0)?;
            format_instant("TIMESTAMPTOSTRING", ms, args)
        },
    },
    ScalarFunction {
        name: "PARSE_TIMESTAMP",
        usage: PARSE_TIMESTAMP_USAGE,
        description: "Parses a string with a Java DateTimeFormatter pattern into a TIMESTAMP; \
                      the text is read in UTC or the given time zone unless it has an offset.",
        category: CAT,
        deterministic: true,
        return_type: |args| {
            signature(
                "PARSE_TIMESTAMP",
                PARSE_TIMESTAMP_USAGE,
                args,
                is_string,
                2..=3,
            )
            .map(|()| DataType::Timestamp)
        },
        eval: |args| {
            Ok(parse_instant("PARSE_TIMESTAMP", args)?.map_or(Value::Null, Value::Timestamp))
        },
    },
    ScalarFunction {
        name: "STRINGTOTIMESTAMP",
        usage: PARSE_TIMESTAMP_USAGE,
        description: "Parses a string with a Java DateTimeFormatter pattern into milliseconds \
                      since the epoch (deprecated: PARSE_TIMESTAMP).",
        category: CAT,
        deterministic: true,
        return_type: |args| {
            signature(
                "STRINGTOTIMESTAMP",
                PARSE_TIMESTAMP_USAGE,
                args,
                is_string,
                2..=3,
            )
            .map(|()| DataType::BigInt)
        },
        eval: |args| {
            Ok(parse_instant("STRINGTOTIMESTAMP", args)?.map_or(Value::Null, Value::BigInt))
        },
    },
    ScalarFunction {
        name: "FORMAT_DATE",
        usage: "(DATE, STRING)",
        description: "Formats a DATE with a Java DateTimeFormatter pattern.",
        category: CAT,
        deterministic: true,
        return_type: |args| {
            signature(
                "FORMAT_DATE",
                "(DATE, STRING)",
                args,
                |t| *t == DataType::Date,
                2..=2,
            )
            .map(|()| DataType::String)
        },
        eval: |args| {
            let days = match args.first() {
                None | Some(Value::Null) => None,
                Some(Value::Date(d)) => Some(i64::from(*d)),
                Some(v) => return Err(wrong_arg("FORMAT_DATE", 0, "a DATE", v)),
            };
            format_days("FORMAT_DATE", days, args)
        },
    },
    ScalarFunction {
        name: "DATETOSTRING",
        usage: "(INTEGER, STRING)",
        description: "Formats days since 1970-01-01 with a Java DateTimeFormatter pattern \
                      (deprecated: FORMAT_DATE).",
        category: CAT,
        deterministic: true,
        return_type: |args| {
            signature("DATETOSTRING", "(INTEGER, STRING)", args, is_integer, 2..=2)
                .map(|()| DataType::String)
        },
        eval: |args| {
            let days = arg_int("DATETOSTRING", args, 0)?;
            format_days("DATETOSTRING", days, args)
        },
    },
    ScalarFunction {
        name: "PARSE_DATE",
        usage: "(STRING, STRING)",
        description: "Parses a string with a Java DateTimeFormatter pattern into a DATE.",
        category: CAT,
        deterministic: true,
        return_type: |args| {
            signature("PARSE_DATE", "(STRING, STRING)", args, is_string, 2..=2)
                .map(|()| DataType::Date)
        },
        eval: |args| Ok(parse_days("PARSE_DATE", args)?.map_or(Value::Null, Value::Date)),
    },
    ScalarFunction {
        name: "STRINGTODATE",
        usage: "(STRING, STRING)",
        description: "Parses a string with a Java DateTimeFormatter pattern into days since \
                      1970-01-01 (deprecated: PARSE_DATE).",
        category: CAT,
        deterministic: true,
        return_type: |args| {
            signature("STRINGTODATE", "(STRING, STRING)", args, is_string, 2..=2)
                .map(|()| DataType::Int)
        },
        eval: |args| Ok(parse_days("STRINGTODATE", args)?.map_or(Value::Null, Value::Int)),
    },
    ScalarFunction {
        name: "FORMAT_TIME",
        usage: "(TIME, STRING)",
        description: "Formats a TIME with a Java DateTimeFormatter pattern.",
        category: CAT,
        deterministic: true,
        return_type: |args| {
            signature(
                "FORMAT_TIME",
                "(TIME, STRING)",
                args,
                |t| *t == DataType::Time,
                2..=2,
            )
            .map(|()| DataType::String)
        },
        eval: eval_format_time,
    },
    ScalarFunction {
        name: "PARSE_TIME",
        usage: "(STRING, STRING)",
        description: "Parses a string with a Java DateTimeFormatter pattern into a TIME.",
        category: CAT,
        deterministic: true,
        return_type: |args| {
            signature("PARSE_TIME", "(STRING, STRING)", args, is_string, 2..=2)
                .map(|()| DataType::Time)
        },
        eval: eval_parse_time,
    },
];

const FORMAT_TIMESTAMP_USAGE: &str = "(TIMESTAMP, pattern STRING [, time_zone STRING])";
const TIMESTAMPTOSTRING_USAGE: &str = "(BIGINT, pattern STRING [, time_zone STRING])";
const PARSE_TIMESTAMP_USAGE: &str = "(STRING, pattern STRING [, time_zone STRING])";

/// The time zones [`parse_zone`] accepts, for error messages.
const ZONES_HINT: &str = "use 'UTC' or a fixed offset such as '+02:00' or '-0530' \
                          (named zones such as 'Europe/London' are not supported)";

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;
const MS_PER_DAY: i64 = 86_400_000;

fn is_string(t: &DataType) -> bool {
    *t == DataType::String
}

fn is_timestamp(t: &DataType) -> bool {
    *t == DataType::Timestamp
}

/// Checks "a first argument accepted by `first`, then only STRINGs, and
/// `arity` arguments in all".
fn signature(
    name: &str,
    usage: &str,
    args: &[DataType],
    first: fn(&DataType) -> bool,
    arity: std::ops::RangeInclusive<usize>,
) -> Result<(), String> {
    match args {
        [head, rest @ ..]
            if arity.contains(&args.len()) && first(head) && rest.iter().all(is_string) =>
        {
            Ok(())
        }
        _ => Err(usage_error(name, usage, args)),
    }
}

fn arg_timestamp(name: &str, args: &[Value], i: usize) -> Result<Option<i64>, EvalError> {
    match args.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Timestamp(ms)) => Ok(Some(*ms)),
        Some(v) => Err(wrong_arg(name, i, "a TIMESTAMP", v)),
    }
}

/// Pattern (argument 1) and optional time zone (argument 2) of a
/// formatting or parsing call; `None` if either is NULL.
fn pattern_and_zone<'a>(
    name: &str,
    args: &'a [Value],
) -> Result<Option<(&'a str, FixedOffset)>, EvalError> {
    let Some(pattern) = arg_str(name, args, 1)? else {
        return Ok(None);
    };
    let zone = if args.len() > 2 {
        match arg_str(name, args, 2)? {
            Some(z) => parse_zone(z)?,
            None => return Ok(None),
        }
    } else {
        utc()
    };
    Ok(Some((pattern, zone)))
}

fn utc() -> FixedOffset {
    Utc.fix()
}

fn format_instant(name: &str, ms: Option<i64>, args: &[Value]) -> Result<Value, EvalError> {
    let Some((pattern, zone)) = pattern_and_zone(name, args)? else {
        return Ok(Value::Null);
    };
    let Some(ms) = ms else {
        return Ok(Value::Null);
    };
    let instant = DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| EvalError::InvalidInput(format!("{name}: timestamp {ms} is out of range")))?
        .with_timezone(&zone);
    let items = items_for(name, pattern)?;
    render(
        name,
        pattern,
        "timestamp",
        instant.format_with_items(items.iter()),
    )
}

fn parse_instant(name: &str, args: &[Value]) -> Result<Option<i64>, EvalError> {
    let input = arg_str(name, args, 0)?;
    let (Some(input), Some((pattern, zone))) = (input, pattern_and_zone(name, args)?) else {
        return Ok(None);
    };
    let items = items_for(name, pattern)?;
    let mut parsed = parse_fields(name, input, pattern, &items)?;
    let fail = |e: chrono::format::ParseError| cannot_parse(name, input, pattern, e);
    let date = resolve_date(&mut parsed).map_err(fail)?;
    let time = resolve_time(&mut parsed).map_err(fail)?;
    let offset = match parsed.offset() {
        Some(secs) => FixedOffset::east_opt(secs).ok_or_else(|| {
            EvalError::InvalidInput(format!("{name}: offset in \"{input}\" is out of range"))
        })?,
        None => zone,
    };
    let instant = date
        .and_time(time)
        .and_local_timezone(offset)
        .single()
        .ok_or_else(|| EvalError::InvalidInput(format!("{name}: \"{input}\" is out of range")))?;
    Ok(Some(instant.timestamp_millis()))
}

fn format_days(name: &str, days: Option<i64>, args: &[Value]) -> Result<Value, EvalError> {
    let (Some(days), Some(pattern)) = (days, arg_str(name, args, 1)?) else {
        return Ok(Value::Null);
    };
    let date = date_of(days)
        .ok_or_else(|| EvalError::InvalidInput(format!("{name}: date {days} is out of range")))?;
    let items = items_for(name, pattern)?;
    render(name, pattern, "date", date.format_with_items(items.iter()))
}

fn parse_days(name: &str, args: &[Value]) -> Result<Option<i32>, EvalError> {
    let (Some(input), Some(pattern)) = (arg_str(name, args, 0)?, arg_str(name, args, 1)?) else {
        return Ok(None);
    };
    let items = items_for(name, pattern)?;
    let mut parsed = parse_fields(name, input, pattern, &items)?;
    let date = resolve_date(&mut parsed).map_err(|e| cannot_parse(name, input, pattern, e))?;
    Ok(Some(days_of(date)))
}

fn eval_format_time(args: &[Value]) -> Result<Value, EvalError> {
    const NAME: &str = "FORMAT_TIME";
    let ms = match args.first() {
        None | Some(Value::Null) => return Ok(Value::Null),
        Some(Value::Time(ms)) => *ms,
        Some(v) => return Err(wrong_arg(NAME, 0, "a TIME", v)),
    };
    let Some(pattern) = arg_str(NAME, args, 1)? else {
        return Ok(Value::Null);
    };
    let time = time_of(ms).ok_or_else(|| {
        EvalError::InvalidInput(format!(
            "{NAME}: time {ms} is not milliseconds within a day"
        ))
    })?;
    let items = items_for(NAME, pattern)?;
    render(NAME, pattern, "time", time.format_with_items(items.iter()))
}

fn eval_parse_time(args: &[Value]) -> Result<Value, EvalError> {
    const NAME: &str = "PARSE_TIME";
    let (Some(input), Some(pattern)) = (arg_str(NAME, args, 0)?, arg_str(NAME, args, 1)?) else {
        return Ok(Value::Null);
    };
    let items = items_for(NAME, pattern)?;
    let mut parsed = parse_fields(NAME, input, pattern, &items)?;
    let time = resolve_time(&mut parsed).map_err(|e| cannot_parse(NAME, input, pattern, e))?;
    Ok(Value::Time(ms_of(time)))
}

fn items_for(name: &str, pattern: &str) -> Result<Vec<Item<'static>>, EvalError> {
    java_pattern(pattern)
        .map_err(|e| EvalError::InvalidInput(format!("{name}: invalid pattern \"{pattern}\": {e}")))
}

/// Writes a chrono `DelayedFormat`. Formatting fails (rather than panics,
/// as `to_string` would) when the pattern asks for a field the value does
/// not have, such as an hour of a DATE.
fn render(
    name: &str,
    pattern: &str,
    what: &str,
    formatted: impl std::fmt::Display,
) -> Result<Value, EvalError> {
    let mut out = String::new();
    write!(out, "{formatted}").map_err(|_| {
        EvalError::InvalidInput(format!(
            "{name}: pattern \"{pattern}\" asks for fields a {what} does not have"
        ))
    })?;
    Ok(Value::str(&out))
}

fn parse_fields(
    name: &str,
    input: &str,
    pattern: &str,
    items: &[Item<'static>],
) -> Result<Parsed, EvalError> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, input, items.iter())
        .map_err(|e| cannot_parse(name, input, pattern, e))?;
    Ok(parsed)
}

fn cannot_parse(
    name: &str,
    input: &str,
    pattern: &str,
    e: chrono::format::ParseError,
) -> EvalError {
    EvalError::InvalidInput(format!(
        "{name}: cannot parse \"{input}\" with pattern \"{pattern}\": {e}"
    ))
}

/// The date in `parsed`, with missing fields defaulted as ksqlDB does
/// (1970, January, day 1) and two-digit years read as 20xx like Java's
/// `DateTimeFormatter`.
fn resolve_date(parsed: &mut Parsed) -> chrono::format::ParseResult<NaiveDate> {
    if parsed.year().is_none() && parsed.year_div_100().is_none() {
        match parsed.year_mod_100() {
            Some(yy) => parsed.set_year(2000 + i64::from(yy))?,
            None => parsed.set_year(1970)?,
        }
    }
    if parsed.ordinal().is_none() {
        if parsed.month().is_none() {
            parsed.set_month(1)?;
        }
        if parsed.day().is_none() {
            parsed.set_day(1)?;
        }
    }
    parsed.to_naive_date()
}

/// The time of day in `parsed`, missing fields defaulting to zero (and a
/// 12-hour clock without AM/PM to AM).
fn resolve_time(parsed: &mut Parsed) -> chrono::format::ParseResult<NaiveTime> {
    match (parsed.hour_div_12(), parsed.hour_mod_12()) {
        (None, None) => parsed.set_hour(0)?,
        (None, Some(_)) => parsed.set_ampm(false)?,
        (Some(_), None) => parsed.set_hour12(12)?,
        (Some(_), Some(_)) => {}
    }
    if parsed.minute().is_none() {
        parsed.set_minute(0)?;
    }
    if parsed.second().is_none() {
        parsed.set_second(0)?;
    }
    parsed.to_naive_time()
}

fn date_of(days: i64) -> Option<NaiveDate> {
    let ce = days.checked_add(i64::from(EPOCH_DAYS_FROM_CE))?;
    NaiveDate::from_num_days_from_ce_opt(i32::try_from(ce).ok()?)
}

fn days_of(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - EPOCH_DAYS_FROM_CE
}

fn time_of(ms: i64) -> Option<NaiveTime> {
    if !(0..MS_PER_DAY).contains(&ms) {
        return None;
    }
    let secs = u32::try_from(ms / 1000).ok()?;
    let nanos = u32::try_from(ms % 1000).ok()? * 1_000_000;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
}

fn ms_of(time: NaiveTime) -> i64 {
    // A leap second (nanosecond >= 1e9) stays within the same second.
    let millis = (time.nanosecond() / 1_000_000).min(999);
    i64::from(time.num_seconds_from_midnight()) * 1000 + i64::from(millis)
}

/// Reads a time zone argument: `UTC`, `GMT`, `UT` or `Z`, optionally
/// followed by an offset, or a bare offset `+H`, `+HH`, `+HHMM`, `+HH:MM`
/// (or `-`), at most 18 hours as in Java.
fn parse_zone(zone: &str) -> Result<FixedOffset, EvalError> {
    let bad = || EvalError::InvalidInput(format!("unsupported time zone \"{zone}\": {ZONES_HINT}"));
    let upper = zone.trim().to_ascii_uppercase();
    let rest = ["UTC", "GMT", "UT", "Z"]
        .iter()
        .find_map(|prefix| upper.strip_prefix(prefix))
        .unwrap_or(&upper);
    if rest.is_empty() {
        return Ok(utc());
    }
    let (sign, digits) = match rest.as_bytes().first() {
        Some(b'+') => (1, &rest[1..]),
        Some(b'-') => (-1, &rest[1..]),
        _ => return Err(bad()),
    };
    let (hours, minutes) = match digits.split_once(':') {
        Some((h, m)) if (1..=2).contains(&h.len()) && m.len() == 2 => (h, m),
        Some(_) => return Err(bad()),
        None if (1..=2).contains(&digits.len()) => (digits, "0"),
        None if digits.len() == 4 => digits.split_at(2),
        None => return Err(bad()),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(hours) || !all_digits(minutes) {
        return Err(bad());
    }
    let hours: i32 = hours.parse().map_err(|_| bad())?;
    let minutes: i32 = minutes.parse().map_err(|_| bad())?;
    if hours > 18 || minutes > 59 || (hours == 18 && minutes > 0) {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).ok_or_else(bad)
}

/// Converts a Java `DateTimeFormatter` pattern into chrono format items,
/// usable both to format and to parse.
///
/// Supported letters: `y`/`u` year (`yy` two digits), `M`/`L` month (`MMM`
/// short name, `MMMM` full name), `d` day, `D` day of year, `E` weekday
/// name, `a` AM/PM, `H` hour 0-23, `h` hour 1-12, `m` minute, `s` second,
/// `SSS`/`SSSSSS`/`SSSSSSSSS` fraction of second, and the offsets `X`, `XX`,
/// `XXX` (`Z` for zero), `x`, `xx`, `xxx`, `Z`, `ZZZZZ`. Text in single
/// quotes is literal, `''` is a quote, and other non-letters are literal.
/// Single `X` prints `+HHMM` where Java prints `+HH`.
fn java_pattern(pattern: &str) -> Result<Vec<Item<'static>>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut items: Vec<Item<'static>> = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                literal.push('\'');
                i += 2;
                continue;
            }
            // Quoted text up to the closing quote; '' inside is a quote.
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated quoted text".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        literal.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        literal.push(other);
                        i += 1;
                    }
                }
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            if matches!(c, '[' | ']' | '{' | '}' | '#') {
                return Err(format!("'{c}' (optional sections) is not supported"));
            }
            literal.push(c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        i += run;
        if !literal.is_empty() {
            items.push(Item::OwnedLiteral(
                std::mem::take(&mut literal).into_boxed_str(),
            ));
        }
        items.push(letter_item(c, run)?);
    }
    if !literal.is_empty() {
        items.push(Item::OwnedLiteral(literal.into_boxed_str()));
    }
    Ok(items)
}

/// The chrono item for `count` repetitions of pattern letter `c`.
fn letter_item(c: char, count: usize) -> Result<Item<'static>, String> {
    let num = |n: Numeric, count: usize| -> Result<Item<'static>, String> {
        match count {
            1 => Ok(Item::Numeric(n, Pad::None)),
            2 => Ok(Item::Numeric(n, Pad::Zero)),
            _ => Err(format!("too many '{c}' (at most 2)")),
        }
    };
    let fixed = |f: Fixed| Ok(Item::Fixed(f));
    match (c, count) {
        ('y' | 'u', 2) => Ok(Item::Numeric(Numeric::YearMod100, Pad::Zero)),
        ('y' | 'u', 1 | 3) => Ok(Item::Numeric(Numeric::Year, Pad::None)),
        ('y' | 'u', _) => Ok(Item::Numeric(Numeric::Year, Pad::Zero)),
        ('M' | 'L', 1 | 2) => num(Numeric::Month, count),
        ('M' | 'L', 3) => fixed(Fixed::ShortMonthName),
        ('M' | 'L', 4) => fixed(Fixed::LongMonthName),
        ('d', _) => num(Numeric::Day, count),
        ('D', 1 | 2) => Ok(Item::Numeric(Numeric::Ordinal, Pad::None)),
        ('D', 3) => Ok(Item::Numeric(Numeric::Ordinal, Pad::Zero)),
        ('E', 1..=3) => fixed(Fixed::ShortWeekdayName),
        ('E', 4) => fixed(Fixed::LongWeekdayName),
        ('a', 1) => fixed(Fixed::UpperAmPm),
        ('H', _) => num(Numeric::Hour, count),
        ('h', _) => num(Numeric::Hour12, count),
        ('m', _) => num(Numeric::Minute, count),
        ('s', _) => num(Numeric::Second, count),
        ('S', 3 | 6 | 9) => {
            // chrono's fixed-width fractions without a leading dot are only
            // reachable through strftime syntax.
            let spec = match count {
                3 => "%3f",
                6 => "%6f",
                _ => "%9f",
            };
            StrftimeItems::new(spec)
                .next()
                .ok_or_else(|| "internal error building a fraction item".to_owned())
        }
        ('S', _) => Err("fractions of a second take SSS, SSSSSS or SSSSSSSSS".into()),
        ('X', 1 | 2) => fixed(Fixed::TimezoneOffsetZ),
        ('X', 3) => fixed(Fixed::TimezoneOffsetColonZ),
        ('x', 1 | 2) | ('Z', 1..=3) => fixed(Fixed::TimezoneOffset),
        ('x', 3) => fixed(Fixed::TimezoneOffsetColon),
        ('Z', 5) => fixed(Fixed::TimezoneOffsetColonZ),
        ('z' | 'V' | 'O' | 'v', _) => Err(format!(
            "'{c}' (time zone names) is not supported; use X, x or Z for an offset"
        )),
        ('M' | 'L' | 'D' | 'E' | 'a' | 'X' | 'x' | 'Z', _) => {
            Err(format!("'{c}' cannot repeat {count} times"))
        }
        _ => Err(format!(
            "'{c}' is not supported (supported: y u M L d D E a H h m s S X x Z)"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::{call, s, typecheck};
    use super::*;

    /// 2021-06-30T12:18:39.446Z
    const TS: i64 = 1_625_055_519_446;

    fn fmt(ms: i64, pattern: &str) -> String {
        let items = java_pattern(pattern).unwrap();
        let dt = DateTime::from_timestamp_millis(ms).unwrap();
        dt.format_with_items(items.iter()).to_string()
    }

    fn invalid(r: Result<Value, EvalError>) -> String {
        match r {
            Err(EvalError::InvalidInput(m)) => m,
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    #[test]
    fn java_patterns_convert_to_chrono_items() {
        assert_eq!(
            fmt(TS, "yyyy-MM-dd HH:mm:ss.SSS"),
            "2021-06-30 12:18:39.446"
        );
        assert_eq!(fmt(TS, "yyyy-MM-dd'T'HH:mm:ssXXX"), "2021-06-30T12:18:39Z");
        assert_eq!(fmt(TS, "yy/M/d h:mm a"), "21/6/30 12:18 PM");
        assert_eq!(fmt(TS, "EEE, d MMM yyyy"), "Wed, 30 Jun 2021");
        assert_eq!(fmt(TS, "EEEE MMMM"), "Wednesday June");
        assert_eq!(fmt(TS, "DDD"), "181");
        assert_eq!(fmt(TS, "HHmmss.SSSSSS"), "121839.446000");
        assert_eq!(fmt(TS, "''yyyy'' 'o''clock'"), "'2021' o'clock");
        assert_eq!(fmt(TS, "xx Z"), "+0000 +0000");
        assert_eq!(fmt(0, "uuuu"), "1970");
    }

    #[test]
    fn unsupported_pattern_letters_are_named() {
        let e = java_pattern("yyyy z").unwrap_err();
        assert!(e.contains("'z'"), "{e}");
        assert!(java_pattern("yyyy-MM-dd'T")
            .unwrap_err()
            .contains("unterminated"));
        assert!(java_pattern("G").unwrap_err().contains("not supported"));
        assert!(java_pattern("ddd").is_err());
        assert!(java_pattern("SS").is_err());
        assert!(java_pattern("yyyy[-MM]").is_err());
        assert!(java_pattern("").unwrap().is_empty());
    }

    #[test]
    fn zones_are_utc_or_fixed_offsets() {
        let secs = |z: &str| parse_zone(z).unwrap().local_minus_utc();
        assert_eq!(secs("UTC"), 0);
        assert_eq!(secs("z"), 0);
        assert_eq!(secs("+02:00"), 7200);
        assert_eq!(secs("-0530"), -19800);
        assert_eq!(secs("+2"), 7200);
        assert_eq!(secs("GMT+01:30"), 5400);
        assert_eq!(secs("UTC-18"), -64800);
        for bad in [
            "America/Los_Angeles",
            "PST",
            "+19",
            "+02:7",
            "+0a",
            "UTC+",
            "+123",
        ] {
            let e = parse_zone(bad).unwrap_err().to_string();
            assert!(e.contains("'UTC'"), "{bad}: {e}");
        }
    }

    #[test]
    fn format_timestamp_in_zones() {
        let f = |args: &[Value]| call("FORMAT_TIMESTAMP", args).unwrap();
        let pattern = || s("yyyy-MM-dd HH:mm:ss.SSS");
        assert_eq!(
            f(&[Value::Timestamp(TS), pattern()]),
            s("2021-06-30 12:18:39.446")
        );
        assert_eq!(
            f(&[
                Value::Timestamp(TS),
                s("yyyy-MM-dd'T'HH:mmXXX"),
                s("+02:00")
            ]),
            s("2021-06-30T14:18+02:00")
        );
        assert_eq!(f(&[Value::Null, pattern()]), Value::Null);
        assert_eq!(f(&[Value::Timestamp(TS), Value::Null]), Value::Null);
        assert_eq!(
            f(&[Value::Timestamp(TS), pattern(), Value::Null]),
            Value::Null
        );
        let e = invalid(call(
            "FORMAT_TIMESTAMP",
            &[Value::Timestamp(TS), pattern(), s("PDT")],
        ));
        assert!(e.contains("unsupported time zone \"PDT\""), "{e}");
        let e = invalid(call(
            "FORMAT_TIMESTAMP",
            &[Value::Timestamp(TS), s("yyyy z")],
        ));
        assert!(e.contains("invalid pattern"), "{e}");
        assert_eq!(
            typecheck("FORMAT_TIMESTAMP", &[DataType::Timestamp, DataType::String]).unwrap(),
            DataType::String
        );
        assert!(typecheck("FORMAT_TIMESTAMP", &[DataType::BigInt, DataType::String]).is_err());
        assert!(typecheck("FORMAT_TIMESTAMP", &[DataType::Timestamp]).is_err());
    }

    #[test]
    fn timestamptostring_takes_milliseconds() {
        assert_eq!(
            call(
                "TIMESTAMPTOSTRING",
                &[Value::BigInt(TS), s("yyyy-MM-dd HH:mm"), s("-01:00")]
            )
            .unwrap(),
            s("2021-06-30 11:18")
        );
        assert_eq!(
            call(
                "TIMESTAMPTOSTRING",
                &[Value::BigInt(-1), s("yyyy-MM-dd HH:mm:ss.SSS")]
            )
            .unwrap(),
            s("1969-12-31 23:59:59.999")
        );
        let e = invalid(call(
            "TIMESTAMPTOSTRING",
            &[Value::BigInt(i64::MAX), s("yyyy")],
        ));
        assert!(e.contains("out of range"), "{e}");
        assert_eq!(
            typecheck(
                "TIMESTAMPTOSTRING",
                &[DataType::BigInt, DataType::String, DataType::String]
            )
            .unwrap(),
            DataType::String
        );
    }

    #[test]
    fn parse_timestamp_defaults_missing_fields() {
        let p =
            |input: &str, pattern: &str| call("PARSE_TIMESTAMP", &[s(input), s(pattern)]).unwrap();
        assert_eq!(
            p("2021-06-30 12:18:39.446", "yyyy-MM-dd HH:mm:ss.SSS"),
            Value::Timestamp(TS)
        );
        assert_eq!(
            p("2021-06-30", "yyyy-MM-dd"),
            Value::Timestamp(1_625_011_200_000)
        );
        assert_eq!(p("10:30", "HH:mm"), Value::Timestamp(37_800_000));
        assert_eq!(
            p("21-01-02", "yy-MM-dd"),
            Value::Timestamp(1_609_545_600_000)
        );
        assert_eq!(p("3 PM", "h a"), Value::Timestamp(15 * 3_600_000));
        assert_eq!(
            p(
                "2021-06-30T14:18:39.446+02:00",
                "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
            ),
            Value::Timestamp(TS)
        );
        assert_eq!(
            p("2021-06-30T12:18:39.446Z", "yyyy-MM-dd'T'HH:mm:ss.SSSX"),
            Value::Timestamp(TS)
        );
    }

    #[test]
    fn parse_timestamp_zone_argument_and_offset_in_text() {
        let p = |args: &[Value]| call("PARSE_TIMESTAMP", args).unwrap();
        let pattern = || s("yyyy-MM-dd HH:mm");
        assert_eq!(
            p(&[s("1970-01-01 02:00"), pattern(), s("+02:00")]),
            Value::Timestamp(0)
        );
        // An offset in the text wins over the argument.
        assert_eq!(
            p(&[
                s("1970-01-01 02:00 +0100"),
                s("yyyy-MM-dd HH:mm Z"),
                s("+02:00")
            ]),
            Value::Timestamp(3_600_000)
        );
        assert_eq!(p(&[Value::Null, pattern()]), Value::Null);
        assert_eq!(p(&[s("x"), pattern(), Value::Null]), Value::Null);
    }

    #[test]
    fn parse_timestamp_rejects_bad_input() {
        for (input, pattern) in [
            ("2021-13-01", "yyyy-MM-dd"),
            ("2021-02-30", "yyyy-MM-dd"),
            ("not a date", "yyyy-MM-dd"),
            ("2021-06-30 extra", "yyyy-MM-dd"),
            ("2021-06-30 12:18:39.4", "yyyy-MM-dd HH:mm:ss.SSS"),
            ("Mon 2021-06-30", "EEE yyyy-MM-dd"),
        ] {
            let e = invalid(call("PARSE_TIMESTAMP", &[s(input), s(pattern)]));
            assert!(e.contains(&format!("cannot parse \"{input}\"")), "{e}");
        }
    }

    #[test]
    fn stringtotimestamp_returns_milliseconds() {
        assert_eq!(
            call(
                "STRINGTOTIMESTAMP",
                &[
                    s("2021-06-30 14:18:39.446"),
                    s("yyyy-MM-dd HH:mm:ss.SSS"),
                    s("UTC+2")
                ]
            )
            .unwrap(),
            Value::BigInt(TS)
        );
        assert_eq!(
            typecheck("STRINGTOTIMESTAMP", &[DataType::String, DataType::String]).unwrap(),
            DataType::BigInt
        );
        assert!(typecheck("STRINGTOTIMESTAMP", &[DataType::String, DataType::Int]).is_err());
    }

    #[test]
    fn from_unixtime_and_unix_timestamp() {
        assert_eq!(
            call("FROM_UNIXTIME", &[Value::BigInt(TS)]).unwrap(),
            Value::Timestamp(TS)
        );
        assert_eq!(call("FROM_UNIXTIME", &[Value::Null]).unwrap(), Value::Null);
        assert_eq!(
            call("UNIX_TIMESTAMP", &[Value::Timestamp(TS)]).unwrap(),
            Value::BigInt(TS)
        );
        assert_eq!(call("UNIX_TIMESTAMP", &[Value::Null]).unwrap(), Value::Null);
        let before = Utc::now().timestamp_millis();
        let Value::BigInt(now) = call("UNIX_TIMESTAMP", &[]).unwrap() else {
            panic!("not a BIGINT")
        };
        assert!(now >= before && now - before < 60_000);
        assert_eq!(typecheck("UNIX_TIMESTAMP", &[]).unwrap(), DataType::BigInt);
        assert!(typecheck("UNIX_TIMESTAMP", &[DataType::BigInt]).is_err());
        assert_eq!(
            typecheck("FROM_UNIXTIME", &[DataType::Int]).unwrap(),
            DataType::Timestamp
        );
    }

    #[test]
    fn dates_format_and_parse() {
        // 2021-06-30 is day 18808.
        assert_eq!(
            call("FORMAT_DATE", &[Value::Date(18_808), s("yyyy-MM-dd")]).unwrap(),
            s("2021-06-30")
        );
        assert_eq!(
            call("DATETOSTRING", &[Value::Int(-1), s("dd/MM/yyyy")]).unwrap(),
            s("31/12/1969")
        );
        assert_eq!(
            call("PARSE_DATE", &[s("30.06.2021"), s("dd.MM.yyyy")]).unwrap(),
            Value::Date(18_808)
        );
        assert_eq!(
            call("STRINGTODATE", &[s("2021-06-30"), s("yyyy-MM-dd")]).unwrap(),
            Value::Int(18_808)
        );
        assert_eq!(
            call("PARSE_DATE", &[s("2021"), s("yyyy")]).unwrap(),
            Value::Date(18_628)
        );
        assert_eq!(
            call("FORMAT_DATE", &[Value::Null, s("yyyy")]).unwrap(),
            Value::Null
        );
        assert_eq!(
            call("PARSE_DATE", &[s("2021"), Value::Null]).unwrap(),
            Value::Null
        );
        let e = invalid(call("FORMAT_DATE", &[Value::Date(0), s("yyyy HH")]));
        assert!(e.contains("fields a date does not have"), "{e}");
        let e = invalid(call("PARSE_DATE", &[s("2021-02-29"), s("yyyy-MM-dd")]));
        assert!(e.contains("cannot parse"), "{e}");
        let e = invalid(call("DATETOSTRING", &[Value::BigInt(i64::MAX), s("yyyy")]));
        assert!(e.contains("out of range"), "{e}");
        assert_eq!(
            typecheck("FORMAT_DATE", &[DataType::Date, DataType::String]).unwrap(),
            DataType::String
        );
        assert!(typecheck("FORMAT_DATE", &[DataType::Timestamp, DataType::String]).is_err());
        assert_eq!(
            typecheck("PARSE_DATE", &[DataType::String, DataType::String]).unwrap(),
            DataType::Date
        );
        assert_eq!(
            typecheck("STRINGTODATE", &[DataType::String, DataType::String]).unwrap(),
            DataType::Int
        );
    }

    #[test]
    fn unix_date_and_from_days() {
        assert_eq!(
            call("UNIX_DATE", &[Value::Date(42)]).unwrap(),
            Value::Int(42)
        );
        assert_eq!(call("UNIX_DATE", &[Value::Null]).unwrap(), Value::Null);
        let Value::Int(today) = call("UNIX_DATE", &[]).unwrap() else {
            panic!("not an INTEGER")
        };
        assert!(today > 18_808);
        assert_eq!(call("FROM_DAYS", &[Value::Int(5)]).unwrap(), Value::Date(5));
        assert_eq!(
            call("FROM_DAYS", &[Value::BigInt(i64::MAX)]),
            Err(EvalError::Overflow("date"))
        );
        assert_eq!(
            typecheck("FROM_DAYS", &[DataType::Int]).unwrap(),
            DataType::Date
        );
    }

    #[test]
    fn times_format_and_parse() {
        let t = 3_723_004; // 01:02:03.004
        assert_eq!(
            call("FORMAT_TIME", &[Value::Time(t), s("HH:mm:ss.SSS")]).unwrap(),
            s("01:02:03.004")
        );
        assert_eq!(
            call("PARSE_TIME", &[s("01:02:03.004"), s("HH:mm:ss.SSS")]).unwrap(),
            Value::Time(t)
        );
        assert_eq!(
            call("PARSE_TIME", &[s("1:02 PM"), s("h:mm a")]).unwrap(),
            Value::Time(13 * 3_600_000 + 120_000)
        );
        let e = invalid(call("FORMAT_TIME", &[Value::Time(t), s("yyyy")]));
        assert!(e.contains("fields a time does not have"), "{e}");
        let e = invalid(call("FORMAT_TIME", &[Value::Time(-1), s("HH")]));
        assert!(e.contains("within a day"), "{e}");
        let e = invalid(call("PARSE_TIME", &[s("25:00"), s("HH:mm")]));
        assert!(e.contains("cannot parse"), "{e}");
        assert_eq!(
            call("PARSE_TIME", &[Value::Null, s("HH")]).unwrap(),
            Value::Null
        );
        assert_eq!(
            typecheck("PARSE_TIME", &[DataType::String, DataType::String]).unwrap(),
            DataType::Time
        );
    }
}
