//! NULL handling. These are the functions whose whole point is to see
//! NULLs, so none of them passes NULL through blindly.

use super::{common_type, usage_error, FunctionCategory, ScalarFunction};
use crate::error::EvalError;
use crate::types::DataType;
use crate::value::Value;

const CAT: FunctionCategory = FunctionCategory::Conditional;

pub(super) static FUNCTIONS: &[ScalarFunction] = &[
    ScalarFunction {
        name: "COALESCE",
        usage: "(T, T, ...)",
        description: "The first argument that is not NULL; all arguments must have one type.",
        category: CAT,
        deterministic: true,
        return_type: |args| common_type("COALESCE", args),
        eval: |args| {
            Ok(args
                .iter()
                .find(|v| !v.is_null())
                .cloned()
                .unwrap_or_default())
        },
    },
    ScalarFunction {
        name: "IFNULL",
        usage: "(T, T)",
        description: "The first argument, or the second if the first is NULL.",
        category: CAT,
        deterministic: true,
        return_type: |args| pair_type("IFNULL", args),
        eval: eval_ifnull,
    },
    ScalarFunction {
        name: "NULLIF",
        usage: "(T, T)",
        description: "NULL if both arguments are equal, else the first argument.",
        category: CAT,
        deterministic: true,
        return_type: |args| pair_type("NULLIF", args),
        eval: eval_nullif,
    },
];

fn pair_type(name: &str, args: &[DataType]) -> Result<DataType, String> {
    match args {
        [_, _] => common_type(name, args),
        _ => Err(usage_error(name, "(T, T)", args)),
    }
}

fn eval_ifnull(args: &[Value]) -> Result<Value, EvalError> {
    Ok(match args {
        [Value::Null, alt] => alt.clone(),
        [v, _] => v.clone(),
        _ => return Err(arity("IFNULL", args)),
    })
}

fn eval_nullif(args: &[Value]) -> Result<Value, EvalError> {
    Ok(match args {
        // NULL = anything is not true, so a NULL first argument stays NULL
        // and a NULL second argument never matches.
        [a, b] if !b.is_null() && a == b => Value::Null,
        [a, _] => a.clone(),
        _ => return Err(arity("NULLIF", args)),
    })
}

fn arity(name: &str, args: &[Value]) -> EvalError {
    EvalError::InvalidInput(format!("{name} takes 2 arguments, got {}", args.len()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::super::tests::{call, s, typecheck};
    use super::*;

    #[test]
    fn coalesce_picks_the_first_non_null() {
        assert_eq!(
            call("COALESCE", &[Value::Null, s("a"), s("b")]).unwrap(),
            s("a")
        );
        assert_eq!(
            call("COALESCE", &[Value::Null, Value::Null]).unwrap(),
            Value::Null
        );
        let arr = Value::Array(Arc::new(vec![Value::Null]));
        assert_eq!(call("COALESCE", &[arr.clone(), Value::Null]).unwrap(), arr);
        assert_eq!(
            typecheck("COALESCE", &[DataType::Int, DataType::Int, DataType::Int]).unwrap(),
            DataType::Int
        );
        let e = typecheck("COALESCE", &[DataType::Int, DataType::String]).unwrap_err();
        assert_eq!(
            e,
            "COALESCE arguments must all have the same type, not (INTEGER, STRING); \
             CAST them to one type"
        );
        assert!(typecheck("COALESCE", &[]).is_err());
    }

    #[test]
    fn ifnull_replaces_null() {
        assert_eq!(
            call("IFNULL", &[Value::Null, Value::Int(2)]).unwrap(),
            Value::Int(2)
        );
        assert_eq!(
            call("IFNULL", &[Value::Int(1), Value::Int(2)]).unwrap(),
            Value::Int(1)
        );
        assert_eq!(
            call("IFNULL", &[Value::Null, Value::Null]).unwrap(),
            Value::Null
        );
        assert!(call("IFNULL", &[Value::Null]).is_err());
        assert_eq!(
            typecheck("IFNULL", &[DataType::String, DataType::String]).unwrap(),
            DataType::String
        );
        assert!(typecheck("IFNULL", &[DataType::String]).is_err());
        assert!(typecheck("IFNULL", &[DataType::String, DataType::Int]).is_err());
    }

    #[test]
    fn nullif_blanks_equal_values() {
        assert_eq!(call("NULLIF", &[s("a"), s("a")]).unwrap(), Value::Null);
        assert_eq!(call("NULLIF", &[s("a"), s("b")]).unwrap(), s("a"));
        assert_eq!(call("NULLIF", &[s("a"), Value::Null]).unwrap(), s("a"));
        assert_eq!(
            call("NULLIF", &[Value::Null, Value::Null]).unwrap(),
            Value::Null
        );
        assert_eq!(
            typecheck("NULLIF", &[DataType::BigInt, DataType::BigInt]).unwrap(),
            DataType::BigInt
        );
        assert!(typecheck("NULLIF", &[DataType::BigInt, DataType::Int, DataType::Int]).is_err());
    }
}
