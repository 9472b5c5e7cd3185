//! Expressions: the bound expression tree ([`Expr`]), its evaluation over a
//! row, casts, and the registries of scalar ([`func`]) and aggregate
//! ([`agg`]) functions.
//!
//! Evaluation is pure and never panics on data: a failure is an
//! [`EvalError`] that the operator counts and reports.

pub mod agg;
pub mod cast;
pub mod func;

use std::sync::Arc;

use crate::error::EvalError;
use crate::types::DataType;
use crate::value::Value;
use func::ScalarFunction;

/// Functions are registry singletons: equal when they are the same entry.
impl PartialEq for ScalarFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// Binary operators. AND/OR use SQL's three-valued logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    /// String concatenation (`||`).
    Concat,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::Concat => "||",
        }
    }
}

/// A bound expression: names resolved to column indexes, types checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The value of column `i` of the input row.
    Column(usize),
    Literal(Value),
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Not(Box<Expr>),
    Negate(Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    /// `CASE WHEN c THEN r ... ELSE e END` (a `CASE x WHEN v` form is bound
    /// to `x = v` conditions).
    Case {
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Cast {
        expr: Box<Expr>,
        to: DataType,
    },
    Function {
        func: &'static ScalarFunction,
        args: Vec<Expr>,
    },
    /// `s->f`: field `index` of a struct.
    Field {
        expr: Box<Expr>,
        index: usize,
    },
    /// `a[i]` (1-based, negative from the end) or `m['k']`.
    Subscript {
        expr: Box<Expr>,
        index: Box<Expr>,
    },
    /// `ARRAY[...]`.
    Array(Vec<Expr>),
    /// `MAP(k := v, ...)`.
    Map(Vec<(Expr, Expr)>),
    /// `STRUCT(a := x, ...)`, values in field order.
    Struct(Vec<Expr>),
    /// `$n` (0-based here). Only seen while inferring parameter types: the
    /// server substitutes parameter values before binding for execution.
    Param(usize),
}

impl Expr {
    /// Evaluates the expression over one row.
    pub fn eval(&self, row: &[Value]) -> Result<Value, EvalError> {
        Ok(match self {
            Expr::Column(i) => row.get(*i).cloned().unwrap_or(Value::Null),
            Expr::Literal(v) => v.clone(),
            Expr::Param(_) => Value::Null,
            Expr::Binary { op, left, right } => match op {
                BinaryOp::And => {
                    let l = left.eval(row)?;
                    if l.as_bool() == Some(false) {
                        return Ok(Value::Boolean(false));
                    }
                    let r = right.eval(row)?;
                    match (l.as_bool(), r.as_bool()) {
                        (_, Some(false)) => Value::Boolean(false),
                        (Some(true), Some(true)) => Value::Boolean(true),
                        _ => Value::Null,
                    }
                }
                BinaryOp::Or => {
                    let l = left.eval(row)?;
                    if l.as_bool() == Some(true) {
                        return Ok(Value::Boolean(true));
                    }
                    let r = right.eval(row)?;
                    match (l.as_bool(), r.as_bool()) {
                        (_, Some(true)) => Value::Boolean(true),
                        (Some(false), Some(false)) => Value::Boolean(false),
                        _ => Value::Null,
                    }
                }
                _ => eval_binary(*op, &left.eval(row)?, &right.eval(row)?)?,
            },
            Expr::Not(e) => match e.eval(row)?.as_bool() {
                Some(b) => Value::Boolean(!b),
                None => Value::Null,
            },
            Expr::Negate(e) => match e.eval(row)? {
                Value::Int(v) => Value::Int(v.checked_neg().ok_or(EvalError::Overflow("integer"))?),
                Value::BigInt(v) => {
                    Value::BigInt(v.checked_neg().ok_or(EvalError::Overflow("bigint"))?)
                }
                Value::Double(v) => Value::Double(-v),
                Value::Decimal(v) => Value::Decimal(-v),
                _ => Value::Null,
            },
            Expr::IsNull { expr, negated } => Value::Boolean(expr.eval(row)?.is_null() != *negated),
            Expr::Like {
                expr,
                pattern,
                negated,
            } => match (expr.eval(row)?, pattern.eval(row)?) {
                (Value::String(s), Value::String(p)) => Value::Boolean(like(&s, &p) != *negated),
                _ => Value::Null,
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let v = expr.eval(row)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for item in list {
                    let x = item.eval(row)?;
                    if x.is_null() {
                        saw_null = true;
                    } else if x == v {
                        return Ok(Value::Boolean(!*negated));
                    }
                }
                if saw_null {
                    Value::Null
                } else {
                    Value::Boolean(*negated)
                }
            }
            Expr::Case { whens, otherwise } => {
                for (cond, result) in whens {
                    if cond.eval(row)?.as_bool() == Some(true) {
                        return result.eval(row);
                    }
                }
                match otherwise {
                    Some(e) => e.eval(row)?,
                    None => Value::Null,
                }
            }
            Expr::Cast { expr, to } => cast::cast(expr.eval(row)?, to)?,
            Expr::Function { func, args } => {
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(a.eval(row)?);
                }
                (func.eval)(&values)?
            }
            Expr::Field { expr, index } => match expr.eval(row)? {
                Value::Struct(fields) => fields.get(*index).cloned().unwrap_or(Value::Null),
                _ => Value::Null,
            },
            Expr::Subscript { expr, index } => match (expr.eval(row)?, index.eval(row)?) {
                (Value::Array(items), i) => match i.as_i64() {
                    Some(i) if i > 0 => items.get((i - 1) as usize).cloned().unwrap_or_default(),
                    Some(i) if i < 0 => {
                        let back = i.unsigned_abs() as usize;
                        if back <= items.len() {
                            items[items.len() - back].clone()
                        } else {
                            Value::Null
                        }
                    }
                    _ => Value::Null,
                },
                (Value::Map(entries), k) => entries
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
                _ => Value::Null,
            },
            Expr::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(i.eval(row)?);
                }
                Value::Array(Arc::new(out))
            }
            Expr::Map(entries) => {
                let mut out: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let (k, v) = (k.eval(row)?, v.eval(row)?);
                    match out.iter_mut().find(|(x, _)| *x == k) {
                        Some(slot) => slot.1 = v,
                        None => out.push((k, v)),
                    }
                }
                Value::Map(Arc::new(out))
            }
            Expr::Struct(fields) => {
                let mut out = Vec::with_capacity(fields.len());
                for f in fields {
                    out.push(f.eval(row)?);
                }
                Value::Struct(Arc::new(out))
            }
        })
    }

    /// Whether the expression reads no column (a constant).
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.visit(&mut |e| {
            if matches!(e, Expr::Column(_)) {
                constant = false;
            }
        });
        constant
    }

    /// Calls `f` on this expression and every sub-expression.
    pub fn visit(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Column(_) | Expr::Literal(_) | Expr::Param(_) => {}
            Expr::Binary { left, right, .. } => {
                left.visit(f);
                right.visit(f);
            }
            Expr::Not(e)
            | Expr::Negate(e)
            | Expr::IsNull { expr: e, .. }
            | Expr::Cast { expr: e, .. }
            | Expr::Field { expr: e, .. } => e.visit(f),
            Expr::Like { expr, pattern, .. } => {
                expr.visit(f);
                pattern.visit(f);
            }
            Expr::InList { expr, list, .. } => {
                expr.visit(f);
                list.iter().for_each(|e| e.visit(f));
            }
            Expr::Case { whens, otherwise } => {
                for (c, r) in whens {
                    c.visit(f);
                    r.visit(f);
                }
                if let Some(o) = otherwise {
                    o.visit(f);
                }
            }
            Expr::Function { args, .. } | Expr::Array(args) | Expr::Struct(args) => {
                args.iter().for_each(|e| e.visit(f))
            }
            Expr::Subscript { expr, index } => {
                expr.visit(f);
                index.visit(f);
            }
            Expr::Map(entries) => {
                for (k, v) in entries {
                    k.visit(f);
                    v.visit(f);
                }
            }
        }
    }

    /// Evaluates a predicate: only TRUE passes (NULL does not).
    pub fn eval_predicate(&self, row: &[Value]) -> Result<bool, EvalError> {
        Ok(self.eval(row)?.as_bool() == Some(true))
    }
}

/// Evaluates a non-logical binary operator. NULL in, NULL out; division by
/// zero gives NULL, as in ksqlDB.
pub fn eval_binary(op: BinaryOp, l: &Value, r: &Value) -> Result<Value, EvalError> {
    use Value::*;
    if l.is_null() || r.is_null() {
        return Ok(Null);
    }
    let cmp = |o: std::cmp::Ordering| -> Value {
        use std::cmp::Ordering::*;
        Boolean(match op {
            BinaryOp::Eq => o == Equal,
            BinaryOp::NotEq => o != Equal,
            BinaryOp::Lt => o == Less,
            BinaryOp::LtEq => o != Greater,
            BinaryOp::Gt => o == Greater,
            BinaryOp::GtEq => o != Less,
            _ => false,
        })
    };
    match op {
        BinaryOp::Eq
        | BinaryOp::NotEq
        | BinaryOp::Lt
        | BinaryOp::LtEq
        | BinaryOp::Gt
        | BinaryOp::GtEq => Ok(cmp(l.cmp(r))),
        BinaryOp::Concat => Ok(Value::String(Arc::from(format!("{l}{r}")))),
        BinaryOp::And | BinaryOp::Or => Ok(Null),
        _ => arithmetic(op, l, r),
    }
}

fn arithmetic(op: BinaryOp, l: &Value, r: &Value) -> Result<Value, EvalError> {
    use Value::*;
    Ok(match (l, r) {
        (Int(_) | BigInt(_), Int(_) | BigInt(_)) => {
            let (a, b) = (
                l.as_i64().unwrap_or_default(),
                r.as_i64().unwrap_or_default(),
            );
            let v = match op {
                BinaryOp::Add => a.checked_add(b),
                BinaryOp::Sub => a.checked_sub(b),
                BinaryOp::Mul => a.checked_mul(b),
                BinaryOp::Div | BinaryOp::Mod if b == 0 => return Ok(Null),
                BinaryOp::Div => a.checked_div(b),
                BinaryOp::Mod => a.checked_rem(b),
                _ => return Ok(Null),
            };
            // INT op INT stays INT, as the binder typed it.
            if matches!((l, r), (Int(_), Int(_))) {
                Int(v
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or(EvalError::Overflow("integer"))?)
            } else {
                BigInt(v.ok_or(EvalError::Overflow("bigint"))?)
            }
        }
        (Double(_), _) | (_, Double(_)) => {
            let (a, b) = (
                l.as_f64().unwrap_or(f64::NAN),
                r.as_f64().unwrap_or(f64::NAN),
            );
            Double(match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                BinaryOp::Div if b == 0.0 => return Ok(Null),
                BinaryOp::Div => a / b,
                BinaryOp::Mod if b == 0.0 => return Ok(Null),
                BinaryOp::Mod => a % b,
                _ => return Ok(Null),
            })
        }
        (Decimal(_) | Int(_) | BigInt(_), Decimal(_) | Int(_) | BigInt(_)) => {
            let (Some(a), Some(b)) = (cast::to_decimal(l), cast::to_decimal(r)) else {
                return Ok(Null);
            };
            let v = match op {
                BinaryOp::Add => a.checked_add(b),
                BinaryOp::Sub => a.checked_sub(b),
                BinaryOp::Mul => a.checked_mul(b),
                BinaryOp::Div if b.is_zero() => return Ok(Null),
                BinaryOp::Div => a.checked_div(b),
                BinaryOp::Mod if b.is_zero() => return Ok(Null),
                BinaryOp::Mod => a.checked_rem(b),
                _ => return Ok(Null),
            };
            Decimal(v.ok_or(EvalError::Overflow("decimal"))?)
        }
        // Timestamps plus/minus milliseconds.
        (Timestamp(t), Int(_) | BigInt(_)) => {
            let d = r.as_i64().unwrap_or_default();
            match op {
                BinaryOp::Add => Timestamp(t.saturating_add(d)),
                BinaryOp::Sub => Timestamp(t.saturating_sub(d)),
                _ => Null,
            }
        }
        _ => Null,
    })
}

/// SQL LIKE with `%` and `_` (no escape character).
pub fn like(s: &str, pattern: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Iterative wildcard matching with backtracking to the last '%'.
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if j < p.len() && (p[j] == '_' || p[j] == s[i]) {
            i += 1;
            j += 1;
        } else if j < p.len() && p[j] == '%' {
            star = Some((j, i));
            j += 1;
        } else if let Some((sj, si)) = star {
            j = sj + 1;
            i = si + 1;
            star = Some((sj, si + 1));
        } else {
            return false;
        }
    }
    while j < p.len() && p[j] == '%' {
        j += 1;
    }
    j == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(v: Value) -> Box<Expr> {
        Box::new(Expr::Literal(v))
    }

    #[test]
    fn three_valued_logic() {
        let t = Value::Boolean(true);
        let f = Value::Boolean(false);
        let n = Value::Null;
        let and = |a: &Value, b: &Value| {
            Expr::Binary {
                op: BinaryOp::And,
                left: lit(a.clone()),
                right: lit(b.clone()),
            }
            .eval(&[])
            .expect("eval")
        };
        let or = |a: &Value, b: &Value| {
            Expr::Binary {
                op: BinaryOp::Or,
                left: lit(a.clone()),
                right: lit(b.clone()),
            }
            .eval(&[])
            .expect("eval")
        };
        assert_eq!(and(&n, &f), f);
        assert_eq!(and(&n, &t), n);
        assert_eq!(or(&n, &t), t);
        assert_eq!(or(&n, &f), n);
        assert_eq!(Expr::Not(lit(n.clone())).eval(&[]).expect("eval"), n);
    }

    #[test]
    fn arithmetic_widens_and_division_by_zero_is_null() {
        assert_eq!(
            eval_binary(BinaryOp::Div, &Value::Int(7), &Value::Int(2)),
            Ok(Value::Int(3))
        );
        assert_eq!(
            eval_binary(BinaryOp::Add, &Value::Int(1), &Value::BigInt(2)),
            Ok(Value::BigInt(3))
        );
        assert_eq!(
            eval_binary(BinaryOp::Mul, &Value::Int(2), &Value::Double(1.5)),
            Ok(Value::Double(3.0))
        );
        assert_eq!(
            eval_binary(BinaryOp::Div, &Value::Int(1), &Value::Int(0)),
            Ok(Value::Null)
        );
        assert!(eval_binary(BinaryOp::Add, &Value::Int(i32::MAX), &Value::Int(1)).is_err());
    }

    #[test]
    fn like_patterns() {
        assert!(like("/home/x", "/home%"));
        assert!(like("abc", "a_c"));
        assert!(like("abc", "%"));
        assert!(!like("abc", "a_"));
        assert!(like("aXbXc", "a%b%c"));
        assert!(!like("ab", "a%c"));
    }

    #[test]
    fn in_list_with_null() {
        let e = Expr::InList {
            expr: lit(Value::Int(3)),
            list: vec![Expr::Literal(Value::Int(1)), Expr::Literal(Value::Null)],
            negated: false,
        };
        assert_eq!(e.eval(&[]).expect("eval"), Value::Null);
    }
}
