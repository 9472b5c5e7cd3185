//! The scalar function registry. Every built-in function is one
//! [`ScalarFunction`] entry; adding a function is adding an entry to the
//! table of its family (`string`, `math`, `nulls`, `time`, `json`).
//!
//! Functions follow ksqlDB's semantics: NULL in gives NULL out unless the
//! function says otherwise, and a value the function cannot work with (an
//! unparsable date, a malformed JSON path) is an [`EvalError::InvalidInput`]
//! for that row, never a panic. Type checking happens once, at bind time,
//! through [`ScalarFunction::return_type`]; `eval` may assume the argument
//! types it accepted but still refuses anything else with an error.

mod json;
mod math;
mod nulls;
mod string;
mod time;

use std::fmt;

use crate::error::EvalError;
use crate::types::DataType;
use crate::value::Value;

/// A built-in scalar function.
#[derive(Debug)]
pub struct ScalarFunction {
    /// Upper-case name as users call it.
    pub name: &'static str,
    /// The accepted argument lists as users read them, e.g.
    /// `(STRING, INTEGER [, INTEGER])`; shown by DESCRIBE FUNCTION and in
    /// the error `return_type` gives for a call that does not fit.
    pub usage: &'static str,
    /// One sentence for SHOW FUNCTIONS / DESCRIBE FUNCTION.
    pub description: &'static str,
    /// The group SHOW FUNCTIONS lists the function under.
    pub category: FunctionCategory,
    /// False when some call of the function depends on something other than
    /// its arguments (the clock), so the planner must not fold it into a
    /// constant or assume re-evaluation gives the same result.
    pub deterministic: bool,
    /// The result type for these argument types, or a message saying what
    /// arguments the function takes.
    pub return_type: fn(&[DataType]) -> Result<DataType, String>,
    /// Evaluates one call. Arguments arrive already of the types that
    /// `return_type` accepted (or NULL).
    pub eval: fn(&[Value]) -> Result<Value, EvalError>,
}

/// The group a function belongs to, named as ksqlDB's SHOW FUNCTIONS does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FunctionCategory {
    /// Text and BYTES manipulation.
    String,
    /// Arithmetic, rounding and transcendental functions.
    Mathematical,
    /// NULL handling: COALESCE, IFNULL, NULLIF.
    Conditional,
    /// Dates, times, timestamps and their text forms.
    DateTime,
    /// JSON held in STRING columns.
    Json,
}

impl FunctionCategory {
    /// The label ksqlDB prints for this category.
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionCategory::String => "STRING",
            FunctionCategory::Mathematical => "MATHEMATICAL",
            FunctionCategory::Conditional => "CONDITIONAL",
            FunctionCategory::DateTime => "DATE / TIME",
            FunctionCategory::Json => "JSON",
        }
    }
}

impl fmt::Display for FunctionCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One table per family; kept separate so each family's file owns its list.
static FAMILIES: &[&[ScalarFunction]] = &[
    string::FUNCTIONS,
    math::FUNCTIONS,
    nulls::FUNCTIONS,
    time::FUNCTIONS,
    json::FUNCTIONS,
];

/// Looks a function up by name, case-insensitively.
pub fn lookup(name: &str) -> Option<&'static ScalarFunction> {
    all().find(|f| f.name.eq_ignore_ascii_case(name))
}

/// All function names, for "did you mean" hints.
pub fn names() -> impl Iterator<Item = &'static str> {
    all().map(|f| f.name)
}

/// Every registered function, for SHOW FUNCTIONS.
pub fn all() -> impl Iterator<Item = &'static ScalarFunction> {
    FAMILIES.iter().flat_map(|family| family.iter())
}

// ---------------------------------------------------------------------------
// Helpers shared by the family files (private items of this module are
// visible to its children).

/// The `return_type` error for a call whose arguments fit no overload.
fn usage_error(name: &str, usage: &str, args: &[DataType]) -> String {
    let got: Vec<String> = args.iter().map(ToString::to_string).collect();
    format!("{name} takes {usage}, not ({})", got.join(", "))
}

/// INT or BIGINT: integer arguments may arrive as either width.
fn is_integer(t: &DataType) -> bool {
    matches!(t, DataType::Int | DataType::BigInt)
}

/// The one type that arguments which must agree (COALESCE, GREATEST, ...)
/// share. DECIMALs of different precision or scale widen to one that holds
/// them all; any other difference is refused, as ksqlDB does ("CAST them to
/// one type").
fn common_type(name: &str, args: &[DataType]) -> Result<DataType, String> {
    let first = args
        .first()
        .ok_or_else(|| format!("{name} takes at least one argument"))?;
    let mut out = first.clone();
    for t in &args[1..] {
        out = match (&out, t) {
            (a, b) if a == b => out,
            (
                DataType::Decimal {
                    precision: p1,
                    scale: s1,
                },
                DataType::Decimal {
                    precision: p2,
                    scale: s2,
                },
            ) => {
                let scale = (*s1).max(*s2);
                let int_digits = (p1 - s1).max(p2 - s2);
                DataType::Decimal {
                    precision: int_digits.saturating_add(scale).min(28),
                    scale,
                }
            }
            _ => {
                let got: Vec<String> = args.iter().map(ToString::to_string).collect();
                return Err(format!(
                    "{name} arguments must all have the same type, not ({}); CAST them to one type",
                    got.join(", ")
                ));
            }
        };
    }
    Ok(out)
}

/// An argument of the wrong runtime type: the binder let through a call
/// `return_type` would have refused. Reported, not panicked on.
fn wrong_arg(name: &str, index: usize, expected: &str, got: &Value) -> EvalError {
    EvalError::InvalidInput(format!(
        "{name} expects {expected} as argument {}, got {got:?}",
        index + 1
    ))
}

/// Argument `i` as a string; `None` when it is NULL or absent.
fn arg_str<'a>(name: &str, args: &'a [Value], i: usize) -> Result<Option<&'a str>, EvalError> {
    match args.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(wrong_arg(name, i, "a STRING", v)),
    }
}

/// Argument `i` as an integer of either width; `None` when NULL or absent.
fn arg_int(name: &str, args: &[Value], i: usize) -> Result<Option<i64>, EvalError> {
    match args.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| wrong_arg(name, i, "an INTEGER", v)),
    }
}

/// Argument `i` widened to a double; `None` when NULL or absent.
fn arg_f64(name: &str, args: &[Value], i: usize) -> Result<Option<f64>, EvalError> {
    match args.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| wrong_arg(name, i, "a number", v)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// Calls a registered function by name: checks the argument types the
    /// way the binder would, then evaluates.
    pub(crate) fn call(name: &str, args: &[Value]) -> Result<Value, EvalError> {
        let f = lookup(name).unwrap_or_else(|| panic!("no function {name}"));
        (f.eval)(args)
    }

    /// The bind-time result of a call with these argument types.
    pub(crate) fn typecheck(name: &str, args: &[DataType]) -> Result<DataType, String> {
        let f = lookup(name).unwrap_or_else(|| panic!("no function {name}"));
        (f.return_type)(args)
    }

    pub(crate) fn s(v: &str) -> Value {
        Value::str(v)
    }

    #[test]
    fn names_are_unique_upper_case_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for f in all() {
            assert!(seen.insert(f.name), "{} registered twice", f.name);
            assert_eq!(f.name, f.name.to_ascii_uppercase());
            assert!(!f.description.is_empty(), "{} has no description", f.name);
            assert!(f.usage.starts_with('('), "{} usage {:?}", f.name, f.usage);
        }
        assert!(seen.len() > 40);
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(lookup("ucase").map(|f| f.name), Some("UCASE"));
        assert_eq!(
            lookup("Extractjsonfield").map(|f| f.name),
            Some("EXTRACTJSONFIELD")
        );
        assert!(lookup("no_such_function").is_none());
        assert!(names().any(|n| n == "COALESCE"));
    }

    #[test]
    fn only_clock_functions_are_nondeterministic() {
        let nondet: Vec<&str> = all().filter(|f| !f.deterministic).map(|f| f.name).collect();
        assert_eq!(nondet, ["UNIX_TIMESTAMP", "UNIX_DATE"]);
    }

    #[test]
    fn usage_errors_name_the_function_and_the_arguments() {
        let e = typecheck("SUBSTRING", &[DataType::String, DataType::Double]).unwrap_err();
        assert_eq!(
            e,
            "SUBSTRING takes (STRING, INTEGER [, INTEGER]) or (BYTES, INTEGER [, INTEGER]), \
             not (STRING, DOUBLE)"
        );
    }

    #[test]
    fn common_type_widens_decimals_only() {
        let d = |precision, scale| DataType::Decimal { precision, scale };
        assert_eq!(common_type("F", &[d(5, 2), d(4, 3)]).unwrap(), d(6, 3));
        assert_eq!(
            common_type("F", &[DataType::Int, DataType::Int]).unwrap(),
            DataType::Int
        );
        let e = common_type("F", &[DataType::Int, DataType::BigInt]).unwrap_err();
        assert!(e.contains("CAST"), "{e}");
    }

    #[test]
    fn wrong_runtime_types_are_errors_not_panics() {
        for f in all() {
            // Whatever the binder lets through, eval must not panic.
            let _ = (f.eval)(&[Value::Boolean(true), Value::Double(f64::NAN)]);
            let _ = (f.eval)(&[]);
            let _ = (f.eval)(&vec![Value::Null; 5]);
        }
        assert!(matches!(
            call("UCASE", &[Value::Int(1)]),
            Err(EvalError::InvalidInput(_))
        ));
    }
}
