//! The scalar function registry. Every built-in function is one
//! [`ScalarFunction`] entry; adding a function is adding an entry.

use crate::error::EvalError;
use crate::types::DataType;
use crate::value::Value;

/// A built-in scalar function.
#[derive(Debug)]
pub struct ScalarFunction {
    /// Upper-case name as users call it.
    pub name: &'static str,
    /// The result type for these argument types, or a message saying what
    /// arguments the function takes.
    pub return_type: fn(&[DataType]) -> Result<DataType, String>,
    /// Evaluates one call. Arguments arrive already of the types that
    /// `return_type` accepted (or NULL).
    pub eval: fn(&[Value]) -> Result<Value, EvalError>,
}

static FUNCTIONS: &[ScalarFunction] = &[];

/// Looks a function up by name, case-insensitively.
pub fn lookup(name: &str) -> Option<&'static ScalarFunction> {
    FUNCTIONS.iter().find(|f| f.name.eq_ignore_ascii_case(name))
}

/// All function names, for "did you mean" hints.
pub fn names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().map(|f| f.name)
}
