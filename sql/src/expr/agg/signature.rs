//! What each aggregate function accepts: result types for argument types,
//! and the literal parameters' values. Messages start lowercase and say what
//! to write instead, for bind errors.

use super::{AggregateFunction, Kind};
use crate::types::DataType;
use crate::value::Value;

/// The largest `k` or `n` a call may ask for: they size arrays.
const MAX_K: i64 = i32::MAX as i64;

/// What the literal parameters of one call configure.
#[derive(Debug, Clone, Copy)]
pub(super) struct Params {
    /// TOPK's and TOPKDISTINCT's k.
    pub k: usize,
    /// `*_BY_OFFSET`'s n, when the call returns an array.
    pub n: Option<usize>,
    /// `*_BY_OFFSET`'s ignoreNulls (default true, as in ksqlDB).
    pub ignore_nulls: bool,
}

/// Checks the values of a call's literal parameters; `return_type` has
/// already checked their types.
pub(super) fn parse_params(func: &AggregateFunction, params: &[Value]) -> Result<Params, String> {
    let mut p = Params {
        k: 1,
        n: None,
        ignore_nulls: true,
    };
    let positive = |what: &str, v: &Value| match v.as_i64() {
        Some(k @ 1..=MAX_K) => usize::try_from(k).map_err(|_| format!("{what} is too large")),
        _ => Err(format!(
            "{what} of {} must be an integer between 1 and {MAX_K}, not {v}",
            func.name
        )),
    };
    match (func.kind, params) {
        (Kind::TopK | Kind::TopKDistinct, [k]) => p.k = positive("k", k)?,
        (Kind::EarliestByOffset | Kind::LatestByOffset, rest) => {
            let rest = match rest {
                [n, more @ ..] if !matches!(n, Value::Boolean(_)) => {
                    p.n = Some(positive("n", n)?);
                    more
                }
                _ => rest,
            };
            match rest {
                [] => {}
                [flag] => {
                    p.ignore_nulls = flag.as_bool().ok_or_else(|| {
                        format!("ignoreNulls of {} must be true or false", func.name)
                    })?
                }
                _ => return Err(format!("{} takes at most 2 literal parameters", func.name)),
            }
        }
        (_, []) => {}
        (_, _) => {
            return Err(format!(
                "{} takes no literal parameters, got {}",
                func.name,
                params.len()
            ))
        }
    }
    Ok(p)
}

/// The type of a literal parameter's value, to check a call with
/// `return_type` before its values are used.
pub(super) fn param_type(func: &str, v: &Value) -> Result<DataType, String> {
    Ok(match v {
        Value::Boolean(_) => DataType::Boolean,
        Value::Int(_) => DataType::Int,
        Value::BigInt(_) => DataType::BigInt,
        Value::Double(_) => DataType::Double,
        Value::Decimal(d) => DataType::Decimal {
            precision: 28,
            scale: u8::try_from(d.scale()).unwrap_or(28),
        },
        Value::String(_) => DataType::String,
        _ => return Err(format!("the literal parameters of {func} must not be NULL")),
    })
}

fn is_integer(t: &DataType) -> bool {
    matches!(t, DataType::Int | DataType::BigInt)
}

/// Types MIN, MAX and TOPK order by. BOOLEAN and the nested types have an
/// order in [`Value`] but not one users expect from these functions.
fn is_comparable(t: &DataType) -> bool {
    !matches!(
        t,
        DataType::Boolean | DataType::Array(_) | DataType::Map(..) | DataType::Struct(_)
    )
}

fn one_column(func: &str, args: &[DataType]) -> Result<DataType, String> {
    match args {
        [t] => Ok(t.clone()),
        _ => Err(format!(
            "{func} takes exactly one argument, as in {func}(col)"
        )),
    }
}

fn numeric(func: &str, args: &[DataType]) -> Result<DataType, String> {
    let t = one_column(func, args)?;
    if t.is_numeric() {
        Ok(t)
    } else {
        Err(format!(
            "argument of {func} must be INT, BIGINT, DOUBLE or DECIMAL, not {t}"
        ))
    }
}

fn comparable(func: &str, args: &[DataType]) -> Result<DataType, String> {
    let t = one_column(func, args)?;
    if is_comparable(&t) {
        Ok(t)
    } else {
        Err(format!(
            "argument of {func} must be a number, string, bytes, date, time or timestamp, not {t}"
        ))
    }
}

/// `COUNT(*)` (no argument) or `COUNT(col)`, of any type: BIGINT.
pub(super) fn count(args: &[DataType]) -> Result<DataType, String> {
    match args {
        [] | [_] => Ok(DataType::BigInt),
        _ => Err("COUNT takes one argument or *, as in COUNT(*) or COUNT(col)".into()),
    }
}

/// The argument's type; DECIMAL widens to the largest precision so a sum of
/// many values still fits.
pub(super) fn sum(args: &[DataType]) -> Result<DataType, String> {
    Ok(match numeric("SUM", args)? {
        DataType::Decimal { scale, .. } => DataType::Decimal {
            precision: 28,
            scale,
        },
        t => t,
    })
}

pub(super) fn avg(args: &[DataType]) -> Result<DataType, String> {
    numeric("AVG", args).map(|_| DataType::Double)
}

pub(super) fn min(args: &[DataType]) -> Result<DataType, String> {
    comparable("MIN", args)
}

pub(super) fn max(args: &[DataType]) -> Result<DataType, String> {
    comparable("MAX", args)
}

pub(super) fn count_distinct(args: &[DataType]) -> Result<DataType, String> {
    one_column("COUNT_DISTINCT", args).map(|_| DataType::BigInt)
}

pub(super) fn collect_list(args: &[DataType]) -> Result<DataType, String> {
    one_column("COLLECT_LIST", args).map(|t| DataType::Array(Box::new(t)))
}

pub(super) fn collect_set(args: &[DataType]) -> Result<DataType, String> {
    one_column("COLLECT_SET", args).map(|t| DataType::Array(Box::new(t)))
}

pub(super) fn histogram(args: &[DataType]) -> Result<DataType, String> {
    match one_column("HISTOGRAM", args)? {
        DataType::String => Ok(DataType::Map(
            Box::new(DataType::String),
            Box::new(DataType::BigInt),
        )),
        t => Err(format!("argument of HISTOGRAM must be STRING, not {t}")),
    }
}

fn top(func: &str, args: &[DataType]) -> Result<DataType, String> {
    match args {
        [t, k] if is_integer(k) => {
            comparable(func, std::slice::from_ref(t)).map(|t| DataType::Array(Box::new(t)))
        }
        _ => Err(format!(
            "{func} takes a column and an integer literal k, as in {func}(col, 5)"
        )),
    }
}

pub(super) fn topk(args: &[DataType]) -> Result<DataType, String> {
    top("TOPK", args)
}

pub(super) fn topk_distinct(args: &[DataType]) -> Result<DataType, String> {
    top("TOPKDISTINCT", args)
}

/// `(col)` and `(col, ignoreNulls)` give col's type; `(col, n)` and
/// `(col, n, ignoreNulls)` an array of the n earliest or latest values.
fn by_offset(func: &str, args: &[DataType]) -> Result<DataType, String> {
    match args {
        [t] | [t, DataType::Boolean] => Ok(t.clone()),
        [t, n] | [t, n, DataType::Boolean] if is_integer(n) => {
            Ok(DataType::Array(Box::new(t.clone())))
        }
        _ => Err(format!(
            "{func} takes a column, then optionally an integer literal n and a boolean literal \
             ignoreNulls, as in {func}(col), {func}(col, 3) or {func}(col, 3, false)"
        )),
    }
}

pub(super) fn earliest_by_offset(args: &[DataType]) -> Result<DataType, String> {
    by_offset("EARLIEST_BY_OFFSET", args)
}

pub(super) fn latest_by_offset(args: &[DataType]) -> Result<DataType, String> {
    by_offset("LATEST_BY_OFFSET", args)
}
