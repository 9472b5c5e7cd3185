//! Numeric functions. Transcendental functions work on DOUBLE (integers and
//! decimals are widened) and follow Java's `Math`: out-of-domain input gives
//! NaN or an infinity, not an error, as in ksqlDB.

use rust_decimal::{Decimal, RoundingStrategy};

use super::{
    arg_f64, arg_int, common_type, is_integer, usage_error, wrong_arg, FunctionCategory,
    ScalarFunction,
};
use crate::error::EvalError;
use crate::types::DataType;
use crate::value::Value;

const CAT: FunctionCategory = FunctionCategory::Mathematical;

/// A function of one DOUBLE returning DOUBLE; most of this file.
macro_rules! unary_double {
    ($name:literal, $description:literal, $f:expr) => {
        ScalarFunction {
            name: $name,
            usage: "(DOUBLE)",
            description: $description,
            category: CAT,
            deterministic: true,
            return_type: |args| numeric_to_double($name, "(DOUBLE)", 1, args),
            eval: |args| map_f64($name, args, $f),
        }
    };
}

pub(super) static FUNCTIONS: &[ScalarFunction] = &[
    ScalarFunction {
        name: "ABS",
        usage: SAME_NUMERIC,
        description: "The absolute value of a number.",
        category: CAT,
        deterministic: true,
        return_type: |args| same_numeric("ABS", args),
        eval: eval_abs,
    },
    ScalarFunction {
        name: "ROUND",
        usage: ROUND_USAGE,
        description: "Rounds half up (towards positive infinity) to scale decimal places (0 if \
                      omitted; negative rounds left of the point). ROUND(DOUBLE) is a BIGINT.",
        category: CAT,
        deterministic: true,
        return_type: round_type,
        eval: eval_round,
    },
    ScalarFunction {
        name: "FLOOR",
        usage: SAME_NUMERIC,
        description: "The largest integer value not greater than the argument.",
        category: CAT,
        deterministic: true,
        return_type: |args| same_numeric("FLOOR", args),
        eval: |args| floor_or_ceil("FLOOR", args, f64::floor, Decimal::floor),
    },
    ScalarFunction {
        name: "CEIL",
        usage: SAME_NUMERIC,
        description: "The smallest integer value not less than the argument.",
        category: CAT,
        deterministic: true,
        return_type: |args| same_numeric("CEIL", args),
        eval: |args| floor_or_ceil("CEIL", args, f64::ceil, Decimal::ceil),
    },
    ScalarFunction {
        name: "SIGN",
        usage: "(INTEGER) or (BIGINT) or (DOUBLE)",
        description: "The sign of a number as an INTEGER: -1, 0 or 1.",
        category: CAT,
        deterministic: true,
        return_type: sign_type,
        eval: eval_sign,
    },
    unary_double!("SQRT", "The square root of a number.", f64::sqrt),
    unary_double!("CBRT", "The cube root of a number.", f64::cbrt),
    unary_double!("EXP", "e raised to the power of the argument.", f64::exp),
    unary_double!("LN", "The natural logarithm of a number.", f64::ln),
    unary_double!("SIN", "The sine of an angle in radians.", f64::sin),
    unary_double!("COS", "The cosine of an angle in radians.", f64::cos),
    unary_double!("TAN", "The tangent of an angle in radians.", f64::tan),
    unary_double!("COT", "The cotangent of an angle in radians.", |x| 1.0
        / x.tan()),
    unary_double!("ASIN", "The arc sine, in radians.", f64::asin),
    unary_double!("ACOS", "The arc cosine, in radians.", f64::acos),
    unary_double!("ATAN", "The arc tangent, in radians.", f64::atan),
    unary_double!("SINH", "The hyperbolic sine.", f64::sinh),
    unary_double!("COSH", "The hyperbolic cosine.", f64::cosh),
    unary_double!("TANH", "The hyperbolic tangent.", f64::tanh),
    unary_double!("DEGREES", "Converts radians to degrees.", f64::to_degrees),
    unary_double!("RADIANS", "Converts degrees to radians.", f64::to_radians),
    ScalarFunction {
        name: "ATAN2",
        usage: "(DOUBLE, DOUBLE)",
        description: "The angle theta of the point (x, y) given as ATAN2(y, x), in radians.",
        category: CAT,
        deterministic: true,
        return_type: |args| numeric_to_double("ATAN2", "(DOUBLE, DOUBLE)", 2, args),
        eval: |args| map_f64_2("ATAN2", args, f64::atan2),
    },
    ScalarFunction {
        name: "POWER",
        usage: "(DOUBLE, DOUBLE)",
        description: "The base raised to the exponent; Infinity when the result overflows.",
        category: CAT,
        deterministic: true,
        return_type: |args| numeric_to_double("POWER", "(DOUBLE, DOUBLE)", 2, args),
        eval: |args| map_f64_2("POWER", args, f64::powf),
    },
    ScalarFunction {
        name: "LOG",
        usage: LOG_USAGE,
        description: "LOG(value) is the base 10 logarithm; LOG(base, value) the logarithm in \
                      the given base. -Infinity for 0, NaN for a negative value or a base that \
                      is not positive or is 1.",
        category: CAT,
        deterministic: true,
        return_type: log_type,
        eval: eval_log,
    },
    ScalarFunction {
        name: "PI",
        usage: "()",
        description: "An approximate value of pi.",
        category: CAT,
        deterministic: true,
        return_type: |args| match args {
            [] => Ok(DataType::Double),
            _ => Err(usage_error("PI", "()", args)),
        },
        eval: |_| Ok(Value::Double(std::f64::consts::PI)),
    },
    ScalarFunction {
        name: "GREATEST",
        usage: EXTREME_USAGE,
        description: "The largest non-NULL argument; all arguments must have one type.",
        category: CAT,
        deterministic: true,
        return_type: |args| extreme_type("GREATEST", args),
        eval: |args| {
            Ok(args
                .iter()
                .filter(|v| !v.is_null())
                .max()
                .cloned()
                .unwrap_or_default())
        },
    },
    ScalarFunction {
        name: "LEAST",
        usage: EXTREME_USAGE,
        description: "The smallest non-NULL argument; all arguments must have one type.",
        category: CAT,
        deterministic: true,
        return_type: |args| extreme_type("LEAST", args),
        eval: |args| {
            Ok(args
                .iter()
                .filter(|v| !v.is_null())
                .min()
                .cloned()
                .unwrap_or_default())
        },
    },
];

const SAME_NUMERIC: &str = "(INTEGER) or (BIGINT) or (DOUBLE) or (DECIMAL)";
const ROUND_USAGE: &str = "(INTEGER | BIGINT | DOUBLE | DECIMAL [, INTEGER])";
const LOG_USAGE: &str = "([base DOUBLE,] value DOUBLE)";
const EXTREME_USAGE: &str = "(T, T, ...) where T is INTEGER, BIGINT, DOUBLE, DECIMAL or STRING";

fn same_numeric(name: &str, args: &[DataType]) -> Result<DataType, String> {
    match args {
        [t] if t.is_numeric() => Ok(t.clone()),
        _ => Err(usage_error(name, SAME_NUMERIC, args)),
    }
}

fn numeric_to_double(
    name: &str,
    usage: &str,
    arity: usize,
    args: &[DataType],
) -> Result<DataType, String> {
    if args.len() == arity && args.iter().all(DataType::is_numeric) {
        Ok(DataType::Double)
    } else {
        Err(usage_error(name, usage, args))
    }
}

fn map_f64(name: &str, args: &[Value], f: impl Fn(f64) -> f64) -> Result<Value, EvalError> {
    Ok(match arg_f64(name, args, 0)? {
        Some(x) => Value::Double(f(x)),
        None => Value::Null,
    })
}

fn map_f64_2(name: &str, args: &[Value], f: impl Fn(f64, f64) -> f64) -> Result<Value, EvalError> {
    Ok(match (arg_f64(name, args, 0)?, arg_f64(name, args, 1)?) {
        (Some(a), Some(b)) => Value::Double(f(a, b)),
        _ => Value::Null,
    })
}

fn eval_abs(args: &[Value]) -> Result<Value, EvalError> {
    Ok(match args.first() {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Int(v)) => Value::Int(v.checked_abs().ok_or(EvalError::Overflow("integer"))?),
        Some(Value::BigInt(v)) => {
            Value::BigInt(v.checked_abs().ok_or(EvalError::Overflow("bigint"))?)
        }
        Some(Value::Double(v)) => Value::Double(v.abs()),
        Some(Value::Decimal(d)) => Value::Decimal(d.abs()),
        Some(v) => return Err(wrong_arg("ABS", 0, "a number", v)),
    })
}

fn floor_or_ceil(
    name: &str,
    args: &[Value],
    on_double: fn(f64) -> f64,
    on_decimal: fn(&Decimal) -> Decimal,
) -> Result<Value, EvalError> {
    Ok(match args.first() {
        None | Some(Value::Null) => Value::Null,
        Some(v @ (Value::Int(_) | Value::BigInt(_))) => v.clone(),
        Some(Value::Double(v)) => Value::Double(on_double(*v)),
        Some(Value::Decimal(d)) => {
            // Keep the scale so the value still fits its DECIMAL(p, s) type.
            let mut r = on_decimal(d);
            r.rescale(d.scale());
            Value::Decimal(r)
        }
        Some(v) => return Err(wrong_arg(name, 0, "a number", v)),
    })
}

fn sign_type(args: &[DataType]) -> Result<DataType, String> {
    match args {
        [t] if t.is_numeric() => Ok(DataType::Int),
        _ => Err(usage_error(
            "SIGN",
            "(INTEGER) or (BIGINT) or (DOUBLE)",
            args,
        )),
    }
}

fn eval_sign(args: &[Value]) -> Result<Value, EvalError> {
    let sign = match args.first() {
        None | Some(Value::Null) => return Ok(Value::Null),
        Some(Value::Decimal(d)) if d.is_zero() => 0,
        Some(Value::Decimal(d)) if d.is_sign_negative() => -1,
        Some(Value::Decimal(_)) => 1,
        Some(v) => match arg_f64("SIGN", args, 0)? {
            Some(x) if x > 0.0 => 1,
            Some(x) if x < 0.0 => -1,
            Some(_) => 0, // zero and NaN, as Java's (int) Math.signum
            None => return Err(wrong_arg("SIGN", 0, "a number", v)),
        },
    };
    Ok(Value::Int(sign))
}

fn log_type(args: &[DataType]) -> Result<DataType, String> {
    if (1..=2).contains(&args.len()) && args.iter().all(DataType::is_numeric) {
        Ok(DataType::Double)
    } else {
        Err(usage_error("LOG", LOG_USAGE, args))
    }
}

fn eval_log(args: &[Value]) -> Result<Value, EvalError> {
    let (base, value) = if args.len() >= 2 {
        (arg_f64("LOG", args, 0)?, arg_f64("LOG", args, 1)?)
    } else {
        (Some(10.0), arg_f64("LOG", args, 0)?)
    };
    let (Some(base), Some(value)) = (base, value) else {
        return Ok(Value::Null);
    };
    Ok(Value::Double(if value == 0.0 {
        f64::NEG_INFINITY
    } else if value < 0.0 || base <= 0.0 || base == 1.0 {
        f64::NAN
    } else if base == 10.0 {
        value.log10()
    } else {
        value.ln() / base.ln()
    }))
}

fn extreme_type(name: &str, args: &[DataType]) -> Result<DataType, String> {
    let t = common_type(name, args)?;
    if t.is_numeric() || t == DataType::String {
        Ok(t)
    } else {
        Err(usage_error(name, EXTREME_USAGE, args))
    }
}

fn round_type(args: &[DataType]) -> Result<DataType, String> {
    match args {
        [DataType::Int | DataType::BigInt | DataType::Double] => Ok(DataType::BigInt),
        [DataType::Decimal { precision, scale }] => Ok(DataType::Decimal {
            // One more integer digit than the input: rounding 9.5 gives 10.
            precision: (precision - scale).saturating_add(1).clamp(1, 28),
            scale: 0,
        }),
        [DataType::Int | DataType::BigInt | DataType::Double, places] if is_integer(places) => {
            Ok(DataType::Double)
        }
        [d @ DataType::Decimal { .. }, places] if is_integer(places) => Ok(d.clone()),
        _ => Err(usage_error("ROUND", ROUND_USAGE, args)),
    }
}

fn eval_round(args: &[Value]) -> Result<Value, EvalError> {
    let places = if args.len() > 1 {
        match arg_int("ROUND", args, 1)? {
            Some(p) => Some(p),
            None => return Ok(Value::Null),
        }
    } else {
        None
    };
    let Some(v) = args.first() else {
        return Ok(Value::Null);
    };
    Ok(match (v, places) {
        (Value::Null, _) => Value::Null,
        (Value::Int(i), None) => Value::BigInt(i64::from(*i)),
        (Value::BigInt(i), None) => Value::BigInt(*i),
        (Value::Double(x), None) => Value::BigInt(java_round(*x)),
        (Value::Decimal(d), None) => {
            let r = round_decimal(*d, 0).ok_or(EvalError::Overflow("numeric"))?;
            Value::Decimal(r)
        }
        (Value::Decimal(d), Some(places)) => {
            let mut r = round_decimal(*d, places).ok_or(EvalError::Overflow("numeric"))?;
            r.rescale(d.scale());
            Value::Decimal(r)
        }
        (v, Some(places)) => match v.as_f64() {
            Some(x) => Value::Double(round_f64(x, places)),
            None => return Err(wrong_arg("ROUND", 0, "a number", v)),
        },
        (v, None) => return Err(wrong_arg("ROUND", 0, "a number", v)),
    })
}

/// Java's `Math.round`: half up towards positive infinity, NaN to 0, and
/// saturating at the BIGINT range.
fn java_round(x: f64) -> i64 {
    let f = x.floor();
    // `x - f` is exact, so this avoids the `floor(x + 0.5)` rounding trap.
    let r = if x - f >= 0.5 { f + 1.0 } else { f };
    r as i64
}

/// Rounds half towards positive infinity (ksqlDB: HALF_UP for positive
/// values, HALF_DOWN for negative ones) to `places` decimal places.
/// `None` if the result does not fit a DECIMAL.
fn round_decimal(d: Decimal, places: i64) -> Option<Decimal> {
    let strategy = if d.is_sign_negative() {
        RoundingStrategy::MidpointTowardZero
    } else {
        RoundingStrategy::MidpointAwayFromZero
    };
    if places >= 0 {
        let places = u32::try_from(places.min(28)).ok()?;
        return Some(d.round_dp_with_strategy(places, strategy));
    }
    let k = u32::try_from(places.unsigned_abs()).ok()?;
    if k > 28 {
        return Some(Decimal::ZERO);
    }
    let factor = Decimal::from_i128_with_scale(10i128.pow(k), 0);
    d.checked_div(factor)?
        .round_dp_with_strategy(0, strategy)
        .checked_mul(factor)
}

/// ROUND(DOUBLE, places): like ksqlDB, rounds the double's shortest decimal
/// text (so ROUND(2.675, 2) is 2.68, not 2.67 as binary rounding gives).
fn round_f64(x: f64, places: i64) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    if !x.is_finite() {
        return x;
    }
    if let Some(r) = Decimal::from_str_exact(&x.to_string())
        .ok()
        .and_then(|d| round_decimal(d, places))
        .and_then(|r| r.to_f64())
    {
        return r;
    }
    // Too large or too small for a DECIMAL: round in binary.
    let places = i32::try_from(places.clamp(-400, 400)).unwrap_or(0);
    let m = 10f64.powi(places);
    let scaled = x * m;
    if !scaled.is_finite() || scaled.abs() >= 4_503_599_627_370_496.0 {
        return x; // already integral at this scale
    }
    let f = scaled.floor();
    let r = if scaled - f >= 0.5 { f + 1.0 } else { f };
    r / m
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::{call, s, typecheck};
    use super::*;
    use std::str::FromStr;

    fn dec(v: &str) -> Value {
        Value::Decimal(Decimal::from_str(v).unwrap())
    }

    fn dec_t(precision: u8, scale: u8) -> DataType {
        DataType::Decimal { precision, scale }
    }

    /// Exact comparison (scale and all), unlike `Value`'s numeric equality.
    fn same(a: &Value, b: &Value) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn abs_keeps_the_type() {
        assert!(same(
            &call("ABS", &[Value::Int(-3)]).unwrap(),
            &Value::Int(3)
        ));
        assert!(same(
            &call("ABS", &[Value::BigInt(-3)]).unwrap(),
            &Value::BigInt(3)
        ));
        assert!(same(
            &call("ABS", &[Value::Double(-2.5)]).unwrap(),
            &Value::Double(2.5)
        ));
        assert!(same(&call("ABS", &[dec("-1.50")]).unwrap(), &dec("1.50")));
        assert_eq!(call("ABS", &[Value::Null]).unwrap(), Value::Null);
        assert_eq!(
            call("ABS", &[Value::Int(i32::MIN)]),
            Err(EvalError::Overflow("integer"))
        );
        assert_eq!(typecheck("ABS", &[dec_t(5, 2)]).unwrap(), dec_t(5, 2));
        assert!(typecheck("ABS", &[DataType::String]).is_err());
    }

    #[test]
    fn round_without_places_follows_java_math_round() {
        let r = |x: f64| call("ROUND", &[Value::Double(x)]).unwrap();
        assert!(same(&r(1.5), &Value::BigInt(2)));
        assert!(same(&r(-1.5), &Value::BigInt(-1)));
        assert!(same(&r(-1.51), &Value::BigInt(-2)));
        assert!(same(&r(0.49999999999999994), &Value::BigInt(0)));
        assert!(same(&r(f64::NAN), &Value::BigInt(0)));
        assert!(same(&r(1e300), &Value::BigInt(i64::MAX)));
        assert!(same(
            &call("ROUND", &[Value::Int(7)]).unwrap(),
            &Value::BigInt(7)
        ));
        assert_eq!(
            typecheck("ROUND", &[DataType::Double]).unwrap(),
            DataType::BigInt
        );
        assert_eq!(
            typecheck("ROUND", &[DataType::Int]).unwrap(),
            DataType::BigInt
        );
    }

    #[test]
    fn round_with_places_rounds_the_decimal_text() {
        let r = |x: f64, p: i32| call("ROUND", &[Value::Double(x), Value::Int(p)]).unwrap();
        assert!(same(&r(2.675, 2), &Value::Double(2.68)));
        assert!(same(&r(-2.675, 2), &Value::Double(-2.67)));
        assert!(same(&r(1234.5, -2), &Value::Double(1200.0)));
        assert!(same(&r(1250.0, -2), &Value::Double(1300.0)));
        assert!(same(&r(1.0, 5), &Value::Double(1.0)));
        assert!(same(&r(1e300, 2), &Value::Double(1e300)));
        assert!(same(&r(1e-300, 2), &Value::Double(0.0)));
        assert!(same(&r(f64::INFINITY, 2), &Value::Double(f64::INFINITY)));
        assert_eq!(
            call("ROUND", &[Value::Double(1.0), Value::Null]).unwrap(),
            Value::Null
        );
        assert_eq!(
            call("ROUND", &[Value::Null, Value::Int(1)]).unwrap(),
            Value::Null
        );
        assert_eq!(
            typecheck("ROUND", &[DataType::Double, DataType::Int]).unwrap(),
            DataType::Double
        );
        assert!(typecheck("ROUND", &[DataType::Double, DataType::Double]).is_err());
        assert!(typecheck("ROUND", &[DataType::String]).is_err());
    }

    #[test]
    fn round_decimal_keeps_decimal() {
        let r0 = |d: &str| call("ROUND", &[dec(d)]).unwrap();
        assert!(same(&r0("2.50"), &dec("3")));
        assert!(same(&r0("-2.50"), &dec("-2")));
        assert!(same(&r0("9.5"), &dec("10")));
        assert_eq!(typecheck("ROUND", &[dec_t(5, 2)]).unwrap(), dec_t(4, 0));
        let r = |d: &str, p: i32| call("ROUND", &[dec(d), Value::Int(p)]).unwrap();
        assert!(same(&r("1.2345", 2), &dec("1.2300")));
        assert!(same(&r("1.2350", 2), &dec("1.2400")));
        assert!(same(&r("-1.2350", 2), &dec("-1.2300")));
        assert!(same(&r("155.5", -1), &dec("160.0")));
        assert!(same(&r("1.5", 3), &dec("1.5")));
        assert_eq!(
            typecheck("ROUND", &[dec_t(5, 2), DataType::BigInt]).unwrap(),
            dec_t(5, 2)
        );
    }

    #[test]
    fn floor_and_ceil() {
        assert!(same(
            &call("FLOOR", &[Value::Double(-1.5)]).unwrap(),
            &Value::Double(-2.0)
        ));
        assert!(same(
            &call("CEIL", &[Value::Double(-1.5)]).unwrap(),
            &Value::Double(-1.0)
        ));
        assert!(same(
            &call("FLOOR", &[Value::Int(4)]).unwrap(),
            &Value::Int(4)
        ));
        assert!(same(
            &call("CEIL", &[Value::BigInt(4)]).unwrap(),
            &Value::BigInt(4)
        ));
        assert!(same(&call("FLOOR", &[dec("1.75")]).unwrap(), &dec("1.00")));
        assert!(same(&call("CEIL", &[dec("-1.75")]).unwrap(), &dec("-1.00")));
        assert_eq!(call("CEIL", &[Value::Null]).unwrap(), Value::Null);
        assert_eq!(typecheck("FLOOR", &[DataType::Int]).unwrap(), DataType::Int);
        assert!(typecheck("CEIL", &[DataType::Boolean]).is_err());
    }

    #[test]
    fn sign_of_numbers() {
        assert_eq!(call("SIGN", &[Value::Int(-4)]).unwrap(), Value::Int(-1));
        assert_eq!(call("SIGN", &[Value::BigInt(0)]).unwrap(), Value::Int(0));
        assert_eq!(call("SIGN", &[Value::Double(0.0)]).unwrap(), Value::Int(0));
        assert_eq!(call("SIGN", &[Value::Double(2.5)]).unwrap(), Value::Int(1));
        assert_eq!(
            call("SIGN", &[Value::Double(f64::NAN)]).unwrap(),
            Value::Int(0)
        );
        assert_eq!(call("SIGN", &[dec("-0.1")]).unwrap(), Value::Int(-1));
        assert_eq!(call("SIGN", &[Value::Null]).unwrap(), Value::Null);
        assert_eq!(
            typecheck("SIGN", &[DataType::Double]).unwrap(),
            DataType::Int
        );
    }

    #[test]
    fn transcendental_functions_follow_java_math() {
        let f = |name: &str, x: Value| match call(name, &[x]).unwrap() {
            Value::Double(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(f("SQRT", Value::Int(16)), 4.0);
        assert!(f("SQRT", Value::Double(-1.0)).is_nan());
        assert_eq!(f("EXP", Value::Int(0)), 1.0);
        assert_eq!(f("LN", Value::Double(1.0)), 0.0);
        assert_eq!(f("LN", Value::Double(0.0)), f64::NEG_INFINITY);
        assert_eq!(f("CBRT", Value::BigInt(27)), 3.0);
        assert_eq!(f("DEGREES", Value::Double(std::f64::consts::PI)), 180.0);
        assert!((f("COT", Value::Double(1.0)) - 0.642_092_615_934_330_7).abs() < 1e-12);
        assert_eq!(f("SQRT", dec("2.25")), 1.5);
        assert_eq!(call("SQRT", &[Value::Null]).unwrap(), Value::Null);
        assert_eq!(
            typecheck("SQRT", &[DataType::Int]).unwrap(),
            DataType::Double
        );
        assert!(typecheck("SQRT", &[DataType::String]).is_err());
        assert!(typecheck("SQRT", &[DataType::Int, DataType::Int]).is_err());
    }

    #[test]
    fn power_atan2_log_and_pi() {
        let call2 =
            |name: &str, a: f64, b: f64| call(name, &[Value::Double(a), Value::Double(b)]).unwrap();
        assert_eq!(call2("POWER", 2.0, 10.0), Value::Double(1024.0));
        assert_eq!(call2("POWER", 10.0, 400.0), Value::Double(f64::INFINITY));
        assert_eq!(call2("ATAN2", 0.0, 1.0), Value::Double(0.0));
        assert_eq!(call2("LOG", 2.0, 8.0), Value::Double(3.0));
        assert_eq!(
            call("LOG", &[Value::Int(1000)]).unwrap(),
            Value::Double(3.0)
        );
        assert_eq!(call2("LOG", 5.0, 0.0), Value::Double(f64::NEG_INFINITY));
        assert_eq!(call2("LOG", 1.0, 5.0), Value::Double(f64::NAN));
        assert_eq!(call2("LOG", 2.0, -5.0), Value::Double(f64::NAN));
        assert_eq!(
            call("POWER", &[Value::Null, Value::Int(1)]).unwrap(),
            Value::Null
        );
        assert_eq!(
            call("PI", &[]).unwrap(),
            Value::Double(std::f64::consts::PI)
        );
        assert!(typecheck("PI", &[DataType::Int]).is_err());
        assert!(typecheck("POWER", &[DataType::Int]).is_err());
        assert_eq!(
            typecheck("LOG", &[DataType::Int, DataType::Double]).unwrap(),
            DataType::Double
        );
    }

    #[test]
    fn greatest_and_least_skip_nulls() {
        let args = [Value::Int(3), Value::Null, Value::Int(7), Value::Int(-1)];
        assert_eq!(call("GREATEST", &args).unwrap(), Value::Int(7));
        assert_eq!(call("LEAST", &args).unwrap(), Value::Int(-1));
        assert_eq!(
            call("GREATEST", &[Value::Null, Value::Null]).unwrap(),
            Value::Null
        );
        assert_eq!(call("LEAST", &[s("b"), s("a")]).unwrap(), s("a"));
        assert_eq!(
            call("GREATEST", &[Value::Double(1.0), Value::Double(f64::NAN)]).unwrap(),
            Value::Double(f64::NAN)
        );
        assert_eq!(
            typecheck("GREATEST", &[dec_t(4, 1), dec_t(6, 3)]).unwrap(),
            dec_t(6, 3)
        );
        let e = typecheck("LEAST", &[DataType::Int, DataType::Double]).unwrap_err();
        assert!(e.contains("same type"), "{e}");
        assert!(typecheck("LEAST", &[DataType::Boolean, DataType::Boolean]).is_err());
        assert!(typecheck("LEAST", &[]).is_err());
    }
}
