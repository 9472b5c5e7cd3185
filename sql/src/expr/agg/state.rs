//! Accumulators as [`Value`]s, for the state store, and back.
//!
//! A state is an `ARRAY`: the live row count as a BIGINT, then fields that
//! depend on the function. The configuration (types, k, n, ignoreNulls) is
//! not stored: it comes from the query's plan on recovery. Collections are
//! stored flat (`[v1, count1, v2, count2, ...]`) so the codec sees only
//! arrays of scalars, never maps with arbitrary keys.

use std::sync::Arc;

use super::collections::Multiset;
use super::numeric::{join, DoubleSum, Sum};
use super::{count_value, Accumulator, AggregateFunction, Kind, State};
use crate::types::DataType;
use crate::value::Value;

impl Accumulator {
    /// The accumulator as a value the state store can persist; rebuilt by
    /// [`from_state`](Accumulator::from_state) with the same call. Its size
    /// is that of what the function remembers: a few numbers for COUNT, SUM,
    /// AVG and insert-only MIN/MAX, every distinct live value for the rest.
    pub fn to_state(&self) -> Value {
        let mut out = vec![count_value(self.rows)];
        match &self.state {
            State::CountRows => {}
            State::CountNonNull(n) => out.push(count_value(*n)),
            State::Sum(s) | State::Avg(s) => out.extend(s.parts()),
            State::Extreme { best, .. } => {
                out.push(Value::Boolean(true));
                out.push(best.clone().unwrap_or(Value::Null));
            }
            State::ExtremeSet { values, .. } => {
                out.push(Value::Boolean(false));
                out.push(flat(values.iter()));
            }
            State::TopK(t) => {
                out.push(Value::Boolean(t.is_bounded()));
                out.push(flat(t.values().iter()));
            }
            State::CountDistinct(m) => out.push(flat(m.iter().map(|(v, c)| (v, *c)))),
            State::ByOffset(b) => {
                out.push(Value::Array(Arc::new(b.values().iter().cloned().collect())))
            }
            State::CollectList(l) => out.push(Value::Array(Arc::new(l.clone()))),
            State::CollectSet(s) => out.push(flat(s.iter())),
            State::Histogram(h) => out.push(flat(h.iter())),
        }
        Value::Array(Arc::new(out))
    }

    /// Rebuilds an accumulator persisted by
    /// [`to_state`](Accumulator::to_state), for the same call (`func`,
    /// `arg_types` and `params` as given to `try_new`). Refuses, rather than
    /// guesses, a state that does not fit the call.
    pub fn from_state(
        func: &AggregateFunction,
        arg_types: &[DataType],
        params: &[Value],
        state: &Value,
    ) -> Result<Accumulator, String> {
        let Value::Array(items) = state else {
            return Err(corrupt(func.name, "not an array"));
        };
        let insert_only = matches!(
            func.kind,
            Kind::Min | Kind::Max | Kind::TopK | Kind::TopKDistinct
        ) && matches!(items.get(1), Some(Value::Boolean(true)));
        let mut acc = Accumulator::build(func, arg_types, params, insert_only)?;
        let mut r = Reader {
            items: items.iter(),
            func: func.name,
        };
        acc.rows = r.count()?;
        match &mut acc.state {
            State::CountRows => {}
            State::CountNonNull(n) => *n = r.count()?,
            State::Sum(s) | State::Avg(s) => match s {
                Sum::Int { total, count, .. } => {
                    *total = join(r.int()?, r.int()?);
                    *count = r.count()?;
                }
                Sum::Decimal { units, count, .. } => {
                    *units = join(r.int()?, r.int()?);
                    *count = r.count()?;
                }
                Sum::Double(d) => {
                    *d = DoubleSum {
                        finite: r.double()?,
                        finite_count: r.count()?,
                        nan: r.count()?,
                        pos_inf: r.count()?,
                        neg_inf: r.count()?,
                    }
                }
            },
            State::Extreme { best, .. } => {
                r.flag()?;
                *best = Some(r.next()?.clone()).filter(|v| !v.is_null());
            }
            State::ExtremeSet { values, .. } => {
                r.flag()?;
                load(values, r.pairs()?);
            }
            State::TopK(t) => {
                r.flag()?;
                load(t.values_mut(), r.pairs()?);
            }
            State::CountDistinct(m) => {
                for (v, c) in r.pairs()? {
                    *m.entry(v.clone()).or_insert(0) += c;
                }
            }
            State::ByOffset(b) => b.set_values(r.array()?.iter().cloned()),
            State::CollectList(l) => *l = r.array()?.to_vec(),
            State::CollectSet(s) => {
                for (v, c) in r.pairs()? {
                    s.insert(v, c);
                }
            }
            State::Histogram(h) => load(h, r.pairs()?),
        }
        r.finish()?;
        Ok(acc)
    }
}

fn load(set: &mut Multiset, pairs: Vec<(&Value, u64)>) {
    for (v, c) in pairs {
        set.insert(v, c);
    }
}

/// `[v1, count1, v2, count2, ...]`.
fn flat<'a>(entries: impl Iterator<Item = (&'a Value, u64)>) -> Value {
    let mut out = Vec::new();
    for (v, c) in entries {
        out.push(v.clone());
        out.push(count_value(c));
    }
    Value::Array(Arc::new(out))
}

fn corrupt(func: &str, what: &str) -> String {
    format!("stored state of {func} is corrupt: {what}")
}

/// Reads a state's fields in order, saying which one is wrong.
struct Reader<'a> {
    items: std::slice::Iter<'a, Value>,
    func: &'static str,
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<&'a Value, String> {
        self.items
            .next()
            .ok_or_else(|| corrupt(self.func, "a field is missing"))
    }

    fn int(&mut self) -> Result<i64, String> {
        match self.next()? {
            Value::BigInt(n) => Ok(*n),
            v => Err(corrupt(self.func, &format!("expected a BIGINT, found {v}"))),
        }
    }

    fn count(&mut self) -> Result<u64, String> {
        let n = self.int()?;
        u64::try_from(n).map_err(|_| corrupt(self.func, &format!("negative count {n}")))
    }

    fn double(&mut self) -> Result<f64, String> {
        match self.next()? {
            Value::Double(x) => Ok(*x),
            v => Err(corrupt(self.func, &format!("expected a DOUBLE, found {v}"))),
        }
    }

    fn flag(&mut self) -> Result<bool, String> {
        match self.next()? {
            Value::Boolean(b) => Ok(*b),
            v => Err(corrupt(
                self.func,
                &format!("expected a BOOLEAN, found {v}"),
            )),
        }
    }

    fn array(&mut self) -> Result<&'a [Value], String> {
        match self.next()? {
            Value::Array(a) => Ok(a),
            v => Err(corrupt(self.func, &format!("expected an ARRAY, found {v}"))),
        }
    }

    /// A flat `[value, count, ...]` array; counts must be positive.
    fn pairs(&mut self) -> Result<Vec<(&'a Value, u64)>, String> {
        let items = self.array()?;
        if items.len() % 2 != 0 {
            return Err(corrupt(self.func, "a value without its count"));
        }
        items
            .chunks_exact(2)
            .map(|pair| match pair {
                [v, Value::BigInt(c @ 1..)] => Ok((v, c.unsigned_abs())),
                _ => Err(corrupt(self.func, "a count is not a positive BIGINT")),
            })
            .collect()
    }

    fn finish(mut self) -> Result<(), String> {
        match self.items.next() {
            None => Ok(()),
            Some(_) => Err(corrupt(self.func, "unexpected extra fields")),
        }
    }
}
