//! Running sums for SUM and AVG. Integers and decimals are summed exactly in
//! an `i128` with wrapping arithmetic, so a retraction undoes an addition
//! bit for bit whatever happened in between; doubles keep their infinities
//! and NaNs apart so retracting one does not poison the sum.

use rust_decimal::Decimal;

use crate::types::DataType;
use crate::value::Value;

/// The largest scale a [`Decimal`] can carry.
const MAX_SCALE: u32 = 28;

/// A sum of non-NULL numeric values and how many there are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Sum {
    /// INT or BIGINT arguments. An `i128` does not overflow before 2^64
    /// additions of `i64`s; `wide` says the SUM is a BIGINT rather than an
    /// INT (either wraps around like ksqlDB's when it does not fit).
    Int {
        total: i128,
        count: u64,
        wide: bool,
    },
    /// DECIMAL arguments, in units of 10^-scale (the argument type's scale).
    Decimal {
        units: i128,
        count: u64,
        scale: u32,
    },
    Double(DoubleSum),
}

impl Sum {
    /// An empty sum for arguments of type `t`, if `t` is numeric.
    pub(super) fn for_type(t: &DataType) -> Option<Sum> {
        Some(match t {
            DataType::Int | DataType::BigInt => Sum::Int {
                total: 0,
                count: 0,
                wide: *t == DataType::BigInt,
            },
            DataType::Decimal { scale, .. } => Sum::Decimal {
                units: 0,
                count: 0,
                scale: u32::from(*scale).min(MAX_SCALE),
            },
            DataType::Double => Sum::Double(DoubleSum::default()),
            _ => return None,
        })
    }

    /// Adds `v`; NULL and values of another type are skipped.
    pub(super) fn add(&mut self, v: &Value) {
        match self {
            Sum::Int { total, count, .. } => {
                if let Some(x) = v.as_i64() {
                    *total = total.wrapping_add(i128::from(x));
                    *count += 1;
                }
            }
            Sum::Decimal {
                units,
                count,
                scale,
            } => {
                if let Some(x) = decimal_units(v, *scale) {
                    *units = units.wrapping_add(x);
                    *count += 1;
                }
            }
            Sum::Double(d) => {
                if let Some(x) = double(v) {
                    d.add(x);
                }
            }
        }
    }

    /// Takes back an earlier `add(v)`.
    pub(super) fn retract(&mut self, v: &Value) {
        match self {
            Sum::Int { total, count, .. } => {
                if let Some(x) = v.as_i64() {
                    *total = total.wrapping_sub(i128::from(x));
                    *count = count.saturating_sub(1);
                }
            }
            Sum::Decimal {
                units,
                count,
                scale,
            } => {
                if let Some(x) = decimal_units(v, *scale) {
                    *units = units.wrapping_sub(x);
                    *count = count.saturating_sub(1);
                }
            }
            Sum::Double(d) => {
                if let Some(x) = double(v) {
                    d.retract(x);
                }
            }
        }
    }

    pub(super) fn merge(&mut self, other: &Sum) {
        match (self, other) {
            (
                Sum::Int { total, count, .. },
                Sum::Int {
                    total: t, count: c, ..
                },
            ) => {
                *total = total.wrapping_add(*t);
                *count += c;
            }
            (
                Sum::Decimal { units, count, .. },
                Sum::Decimal {
                    units: u, count: c, ..
                },
            ) => {
                *units = units.wrapping_add(*u);
                *count += c;
            }
            (Sum::Double(a), Sum::Double(b)) => a.merge(b),
            _ => super::misuse("merge of sums of different types"),
        }
    }

    /// SUM's result: 0 when there are no values, as in ksqlDB. A DECIMAL sum
    /// beyond DECIMAL(28, scale) is NULL: it cannot be represented.
    pub(super) fn total(&self) -> Value {
        match *self {
            Sum::Int { total, wide, .. } => {
                // Truncation is the wrap-around of ksqlDB's Java arithmetic.
                if wide {
                    Value::BigInt(total as i64)
                } else {
                    Value::Int(total as i32)
                }
            }
            Sum::Decimal { units, scale, .. } => {
                if units.unsigned_abs() >= 10u128.pow(MAX_SCALE) {
                    Value::Null
                } else {
                    Decimal::try_from_i128_with_scale(units, scale)
                        .map(Value::Decimal)
                        .unwrap_or(Value::Null)
                }
            }
            Sum::Double(d) => Value::Double(d.value()),
        }
    }

    /// AVG's result: a DOUBLE, 0.0 when there are no values, as in ksqlDB.
    pub(super) fn mean(&self) -> Value {
        let (total, count) = match *self {
            Sum::Int { total, count, .. } => (total as f64, count),
            Sum::Decimal {
                units,
                count,
                scale,
            } => (units as f64 / 10f64.powi(scale as i32), count),
            Sum::Double(d) => (d.value(), d.count()),
        };
        if count == 0 {
            Value::Double(0.0)
        } else {
            Value::Double(total / count as f64)
        }
    }

    /// The parts of the sum, for the persisted state: every field as an
    /// `i64` or `f64`, in a fixed order per variant.
    pub(super) fn parts(&self) -> Vec<Value> {
        match *self {
            Sum::Int { total, count, .. } => {
                let (hi, lo) = split(total);
                vec![hi, lo, super::count_value(count)]
            }
            Sum::Decimal { units, count, .. } => {
                let (hi, lo) = split(units);
                vec![hi, lo, super::count_value(count)]
            }
            Sum::Double(d) => vec![
                Value::Double(d.finite),
                super::count_value(d.finite_count),
                super::count_value(d.nan),
                super::count_value(d.pos_inf),
                super::count_value(d.neg_inf),
            ],
        }
    }
}

/// A double sum that survives retracting infinities and NaNs: they are
/// counted apart from the finite values, whose sum resets to exactly 0 when
/// the last of them leaves (so rounding errors do not outlive the values).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct DoubleSum {
    pub(super) finite: f64,
    pub(super) finite_count: u64,
    pub(super) nan: u64,
    pub(super) pos_inf: u64,
    pub(super) neg_inf: u64,
}

impl DoubleSum {
    fn add(&mut self, x: f64) {
        if x.is_nan() {
            self.nan += 1;
        } else if x == f64::INFINITY {
            self.pos_inf += 1;
        } else if x == f64::NEG_INFINITY {
            self.neg_inf += 1;
        } else {
            self.finite += x;
            self.finite_count += 1;
        }
    }

    fn retract(&mut self, x: f64) {
        if x.is_nan() {
            self.nan = self.nan.saturating_sub(1);
        } else if x == f64::INFINITY {
            self.pos_inf = self.pos_inf.saturating_sub(1);
        } else if x == f64::NEG_INFINITY {
            self.neg_inf = self.neg_inf.saturating_sub(1);
        } else {
            self.finite -= x;
            self.finite_count = self.finite_count.saturating_sub(1);
            if self.finite_count == 0 {
                self.finite = 0.0;
            }
        }
    }

    fn merge(&mut self, other: &DoubleSum) {
        self.finite += other.finite;
        self.finite_count += other.finite_count;
        self.nan += other.nan;
        self.pos_inf += other.pos_inf;
        self.neg_inf += other.neg_inf;
    }

    fn value(&self) -> f64 {
        if self.nan > 0 || (self.pos_inf > 0 && self.neg_inf > 0) {
            f64::NAN
        } else if self.pos_inf > 0 {
            f64::INFINITY
        } else if self.neg_inf > 0 {
            f64::NEG_INFINITY
        } else {
            self.finite
        }
    }

    fn count(&self) -> u64 {
        self.finite_count + self.nan + self.pos_inf + self.neg_inf
    }
}

/// Splits an `i128` into two `i64` halves for the persisted state.
pub(super) fn split(x: i128) -> (Value, Value) {
    (Value::BigInt((x >> 64) as i64), Value::BigInt(x as i64))
}

/// Joins the halves [`split`] made.
pub(super) fn join(hi: i64, lo: i64) -> i128 {
    (i128::from(hi) << 64) | i128::from(lo as u64)
}

fn double(v: &Value) -> Option<f64> {
    match v {
        Value::Null => None,
        v => v.as_f64(),
    }
}

/// `v` in units of 10^-scale, rounded half away from zero if it has more
/// digits; integers are accepted too. Deterministic, so retracting a value
/// subtracts exactly what adding it added.
fn decimal_units(v: &Value, scale: u32) -> Option<i128> {
    let (mantissa, from) = match v {
        Value::Decimal(d) => (d.mantissa(), d.scale()),
        v => (i128::from(v.as_i64()?), 0),
    };
    Some(if from <= scale {
        mantissa.wrapping_mul(pow10(scale - from))
    } else {
        let p = pow10(from - scale);
        let (q, r) = (mantissa / p, mantissa % p);
        if r.unsigned_abs() * 2 >= p.unsigned_abs() {
            q + mantissa.signum()
        } else {
            q
        }
    })
}

fn pow10(n: u32) -> i128 {
    10i128.checked_pow(n).unwrap_or(i128::MAX)
}
