//! Aggregate functions: the registry the binder resolves calls against, and
//! the accumulators the GROUP BY operator keeps, one per (group, window,
//! aggregate call).
//!
//! An accumulator lives in memory and changes once per input row:
//! [`Accumulator::add`] for a new row, [`Accumulator::retract`] when a row
//! leaves the group (a table's changelog moves a row to another group, or
//! deletes it). Once per commit the operator persists
//! [`Accumulator::to_state`] of the accumulators that changed, and rebuilds
//! them with [`Accumulator::from_state`] on recovery. Session windows that
//! merge fold one accumulator into the other with [`Accumulator::merge`].
//!
//! This module never evaluates expressions and never sees whole rows: the
//! operator evaluates a call's column arguments and hands over their values.
//! Nothing here may panic on a value, whatever its type, and nothing here
//! allocates per row for COUNT, SUM, AVG or an insert-only MIN/MAX.
//!
//! Semantics follow ksqlDB: SUM of no values is 0 and AVG of no values is
//! 0.0; NULL arguments are skipped by every function except COLLECT_LIST,
//! COLLECT_SET and the `*_BY_OFFSET` functions called with `ignoreNulls`
//! false.

mod collections;
mod numeric;
mod signature;
mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use crate::types::DataType;
use crate::value::Value;

use collections::{ByOffset, Multiset, OrderedSet, TopK};
use numeric::Sum;

/// A built-in aggregate function, as the binder resolves a call.
///
/// # Arguments
/// A call's arguments split by position. The first [`columns`] (or fewer:
/// `COUNT(*)` is bound with no argument at all) are *column arguments*,
/// evaluated per row and passed to [`Accumulator::add`] and
/// [`Accumulator::retract`]. The rest are *literal parameters* (TOPK's `k`,
/// `LATEST_BY_OFFSET`'s `n` and `ignoreNulls`): the binder must check that
/// each is a constant, evaluate it once, and pass the values as `params` to
/// [`Accumulator::try_new`]. [`AggregateFunction::split_args`] does the
/// split; [`AggregateFunction::bind_call`] checks a whole call in one go.
///
/// [`columns`]: AggregateFunction::columns
#[derive(Debug)]
pub struct AggregateFunction {
    /// Upper-case name as users call it: `COUNT`, `LATEST_BY_OFFSET`.
    pub name: &'static str,
    /// How many leading arguments are column arguments; the rest are
    /// literal parameters. Always 1 today; `COUNT(*)` passes 0.
    pub columns: usize,
    /// The result type for the types of *all* arguments as written, column
    /// arguments first and then the literal parameters, or a message saying
    /// what the function takes. Parameters are included because they can
    /// change the result: `LATEST_BY_OFFSET(x, 3)` is an `ARRAY`, not `x`'s
    /// type. The message starts lowercase, for a bind error.
    pub return_type: fn(&[DataType]) -> Result<DataType, String>,
    /// Whether [`Accumulator::retract`] works: only these may aggregate a
    /// TABLE (a changelog with deletes). The others depend on arrival
    /// order, which a retraction cannot undo.
    pub retractable: bool,
    kind: Kind,
}

/// Which accumulator a function builds; private so the registry is the only
/// way to get one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Avg,
    CollectList,
    CollectSet,
    Count,
    CountDistinct,
    EarliestByOffset,
    Histogram,
    LatestByOffset,
    Max,
    Min,
    Sum,
    TopK,
    TopKDistinct,
}

static FUNCTIONS: &[AggregateFunction] = &[
    AggregateFunction {
        name: "AVG",
        columns: 1,
        return_type: signature::avg,
        retractable: true,
        kind: Kind::Avg,
    },
    AggregateFunction {
        name: "COLLECT_LIST",
        columns: 1,
        return_type: signature::collect_list,
        retractable: true,
        kind: Kind::CollectList,
    },
    AggregateFunction {
        name: "COLLECT_SET",
        columns: 1,
        return_type: signature::collect_set,
        retractable: true,
        kind: Kind::CollectSet,
    },
    AggregateFunction {
        name: "COUNT",
        columns: 1,
        return_type: signature::count,
        retractable: true,
        kind: Kind::Count,
    },
    AggregateFunction {
        name: "COUNT_DISTINCT",
        columns: 1,
        return_type: signature::count_distinct,
        retractable: true,
        kind: Kind::CountDistinct,
    },
    AggregateFunction {
        name: "EARLIEST_BY_OFFSET",
        columns: 1,
        return_type: signature::earliest_by_offset,
        retractable: false,
        kind: Kind::EarliestByOffset,
    },
    AggregateFunction {
        name: "HISTOGRAM",
        columns: 1,
        return_type: signature::histogram,
        retractable: true,
        kind: Kind::Histogram,
    },
    AggregateFunction {
        name: "LATEST_BY_OFFSET",
        columns: 1,
        return_type: signature::latest_by_offset,
        retractable: false,
        kind: Kind::LatestByOffset,
    },
    AggregateFunction {
        name: "MAX",
        columns: 1,
        return_type: signature::max,
        retractable: true,
        kind: Kind::Max,
    },
    AggregateFunction {
        name: "MIN",
        columns: 1,
        return_type: signature::min,
        retractable: true,
        kind: Kind::Min,
    },
    AggregateFunction {
        name: "SUM",
        columns: 1,
        return_type: signature::sum,
        retractable: true,
        kind: Kind::Sum,
    },
    AggregateFunction {
        name: "TOPK",
        columns: 1,
        return_type: signature::topk,
        retractable: true,
        kind: Kind::TopK,
    },
    AggregateFunction {
        name: "TOPKDISTINCT",
        columns: 1,
        return_type: signature::topk_distinct,
        retractable: true,
        kind: Kind::TopKDistinct,
    },
];

/// Looks an aggregate function up by name, case-insensitively, so the binder
/// can tell an aggregate call from a scalar one.
pub fn lookup(name: &str) -> Option<&'static AggregateFunction> {
    FUNCTIONS.iter().find(|f| f.name.eq_ignore_ascii_case(name))
}

/// All aggregate function names, for "did you mean" hints and
/// `SHOW FUNCTIONS`.
pub fn names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().map(|f| f.name)
}

/// Functions are registry singletons: equal when they are the same entry,
/// so bound expression trees holding `&'static AggregateFunction` can derive
/// `PartialEq`.
impl PartialEq for AggregateFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for AggregateFunction {}

impl AggregateFunction {
    /// Splits a call's arguments (or their types, or expressions) into the
    /// column arguments and the literal parameters, so the binder and the
    /// planner agree on which is which.
    pub fn split_args<'a, T>(&self, args: &'a [T]) -> (&'a [T], &'a [T]) {
        args.split_at(args.len().min(self.columns))
    }

    /// Checks a whole call at bind time, parameter values included (`TOPK(x,
    /// 0)` is refused here rather than when the query runs), and returns its
    /// result type.
    ///
    /// `arg_types` are the types of all arguments as written; `params` the
    /// evaluated literal parameters, i.e. the values of the arguments after
    /// the first [`columns`](AggregateFunction::columns).
    pub fn bind_call(&self, arg_types: &[DataType], params: &[Value]) -> Result<DataType, String> {
        let (columns, _) = self.split_args(arg_types);
        let result = (self.return_type)(arg_types)?;
        Accumulator::try_new(self, columns, params)?;
        Ok(result)
    }
}

/// One running aggregate: the state of one aggregate call for one group and
/// window.
///
/// A struct around a private enum: dispatch is one `match` per row, with no
/// trait object or boxing, and the representation can change without
/// touching the operator.
///
/// # Invariants
/// - The operator passes each row's column-argument values (evaluated, of
///   the types the binder checked, or NULL) to `add`, and exactly the same
///   values to `retract` when that row leaves the group.
/// - `retract` is only called on accumulators of
///   [retractable](AggregateFunction::retractable) functions built by
///   [`Accumulator::try_new`] (not `try_new_insert_only`), and only for a row
///   that was added and not yet retracted. When several live rows carry equal
///   values, a retraction removes the most recently added of them; that only
///   shows in the order of COLLECT_LIST and COLLECT_SET.
/// - Rows arrive in offset order, which is what the `*_BY_OFFSET` functions
///   report.
#[derive(Debug, Clone, PartialEq)]
pub struct Accumulator {
    /// Rows added minus rows retracted, NULL arguments included: what
    /// [`Accumulator::is_empty`] answers from.
    rows: u64,
    state: State,
}

/// The per-function state. There is one per group, window and call, so its
/// size matters: 64 bytes, set by [`Sum`]; the one larger variant is boxed.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// `COUNT(*)`: the answer is `rows`.
    CountRows,
    /// `COUNT(col)`: rows whose argument is not NULL.
    CountNonNull(u64),
    Sum(Sum),
    Avg(Sum),
    /// MIN or MAX over an input that never retracts: only the best value so
    /// far.
    Extreme {
        max: bool,
        best: Option<Value>,
    },
    /// MIN or MAX that can retract: every live value with its multiplicity.
    ExtremeSet {
        max: bool,
        values: Multiset,
    },
    TopK(TopK),
    CountDistinct(HashMap<Value, u64>),
    ByOffset(ByOffset),
    CollectList(Vec<Value>),
    CollectSet(Box<OrderedSet>),
    Histogram(Multiset),
}

/// The value a missing argument stands for; a binder bug, never a panic.
static NULL: Value = Value::Null;

fn first(args: &[Value]) -> &Value {
    args.first().unwrap_or(&NULL)
}

/// A call on an accumulator that its function or mode does not support: an
/// operator or planner bug, not bad data. Debug builds stop on it; release
/// builds leave the accumulator as it is.
fn misuse(what: &str) {
    debug_assert!(false, "aggregate accumulator misuse: {what}");
}

impl Accumulator {
    /// A fresh accumulator for `func`, whose column arguments have types
    /// `arg_types` and whose literal parameters evaluated to `params`.
    ///
    /// It supports [`retract`](Accumulator::retract) if the function does;
    /// for a stream, which never retracts, prefer
    /// [`try_new_insert_only`](Accumulator::try_new_insert_only).
    ///
    /// This checks the call again, which costs more than a copy: build one
    /// accumulator per call when the query starts and `clone()` it for each
    /// new group or window (a fresh one allocates nothing but COLLECT_SET's
    /// box).
    pub fn try_new(
        func: &AggregateFunction,
        arg_types: &[DataType],
        params: &[Value],
    ) -> Result<Accumulator, String> {
        Self::build(func, arg_types, params, false)
    }

    /// Like [`try_new`](Accumulator::try_new), for an input that never
    /// retracts (a stream). MIN and MAX then keep only the best value and
    /// TOPK/TOPKDISTINCT only the k best, instead of every value seen, so
    /// memory and the persisted state stay bounded however long the window.
    /// Other functions are the same in both modes.
    pub fn try_new_insert_only(
        func: &AggregateFunction,
        arg_types: &[DataType],
        params: &[Value],
    ) -> Result<Accumulator, String> {
        Self::build(func, arg_types, params, true)
    }

    fn build(
        func: &AggregateFunction,
        arg_types: &[DataType],
        params: &[Value],
        insert_only: bool,
    ) -> Result<Accumulator, String> {
        let columns_ok = match func.kind {
            Kind::Count => arg_types.len() <= func.columns,
            _ => arg_types.len() == func.columns,
        };
        if !columns_ok {
            return Err(format!(
                "{} takes {} column argument(s), got {}",
                func.name,
                func.columns,
                arg_types.len()
            ));
        }
        if params.is_empty() {
            (func.return_type)(arg_types)?;
        } else {
            let mut all = arg_types.to_vec();
            for p in params {
                all.push(signature::param_type(func.name, p)?);
            }
            (func.return_type)(&all)?;
        }
        let p = signature::parse_params(func, params)?;
        let arg = arg_types.first().unwrap_or(&DataType::BigInt);
        let sum = || {
            Sum::for_type(arg)
                .ok_or_else(|| format!("argument of {} must be numeric, not {arg}", func.name))
        };
        let state = match func.kind {
            Kind::Count if arg_types.is_empty() => State::CountRows,
            Kind::Count => State::CountNonNull(0),
            Kind::Sum => State::Sum(sum()?),
            Kind::Avg => State::Avg(sum()?),
            Kind::Min | Kind::Max if insert_only => State::Extreme {
                max: func.kind == Kind::Max,
                best: None,
            },
            Kind::Min | Kind::Max => State::ExtremeSet {
                max: func.kind == Kind::Max,
                values: Multiset::default(),
            },
            Kind::TopK | Kind::TopKDistinct => {
                State::TopK(TopK::new(p.k, func.kind == Kind::TopKDistinct, insert_only))
            }
            Kind::CountDistinct => State::CountDistinct(HashMap::new()),
            Kind::EarliestByOffset | Kind::LatestByOffset => State::ByOffset(ByOffset::new(
                func.kind == Kind::LatestByOffset,
                p.n,
                p.ignore_nulls,
            )),
            Kind::CollectList => State::CollectList(Vec::new()),
            Kind::CollectSet => State::CollectSet(Box::default()),
            Kind::Histogram => State::Histogram(Multiset::default()),
        };
        Ok(Accumulator { rows: 0, state })
    }

    /// Folds one row in. `args` are the row's column-argument values (none
    /// for `COUNT(*)`).
    pub fn add(&mut self, args: &[Value]) {
        self.rows += 1;
        let v = first(args);
        match &mut self.state {
            State::CountRows => {}
            State::CountNonNull(n) => *n += u64::from(!v.is_null()),
            State::Sum(s) | State::Avg(s) => s.add(v),
            State::Extreme { max, best } => {
                if !v.is_null() && improves(*max, v, best.as_ref()) {
                    *best = Some(v.clone());
                }
            }
            State::ExtremeSet { values, .. } | State::Histogram(values) => {
                if !v.is_null() {
                    values.insert(v, 1);
                }
            }
            State::TopK(t) => {
                if !v.is_null() {
                    t.add(v, 1);
                }
            }
            State::CountDistinct(m) => match m.get_mut(v) {
                _ if v.is_null() => {}
                Some(c) => *c += 1,
                None => {
                    m.insert(v.clone(), 1);
                }
            },
            State::ByOffset(b) => b.add(v),
            State::CollectList(l) => l.push(v.clone()),
            State::CollectSet(s) => s.insert(v, 1),
        }
    }

    /// Undoes one earlier [`add`](Accumulator::add) of the same `args`: a row
    /// of a table left the group. Only for retractable functions, in the
    /// mode [`try_new`](Accumulator::try_new) builds; see the invariants on
    /// [`Accumulator`].
    pub fn retract(&mut self, args: &[Value]) {
        self.rows = self.rows.saturating_sub(1);
        let v = first(args);
        match &mut self.state {
            State::CountRows => {}
            State::CountNonNull(n) => *n = n.saturating_sub(u64::from(!v.is_null())),
            State::Sum(s) | State::Avg(s) => s.retract(v),
            State::Extreme { .. } => misuse("retract on an insert-only MIN/MAX"),
            State::ExtremeSet { values, .. } | State::Histogram(values) => {
                values.remove(v, 1);
            }
            State::TopK(t) => t.retract(v),
            State::CountDistinct(m) => {
                if let Some(c) = m.get_mut(v) {
                    *c -= 1;
                    if *c == 0 {
                        m.remove(v);
                    }
                }
            }
            State::ByOffset(_) => misuse("retract on a *_BY_OFFSET aggregate"),
            State::CollectList(l) => {
                if let Some(i) = l.iter().rposition(|x| x == v) {
                    l.remove(i);
                }
            }
            State::CollectSet(s) => s.remove(v, 1),
        }
    }

    /// Folds `other`, an accumulator of the same call, into this one, as if
    /// its rows had been added here after this one's own (session windows
    /// merging: the earlier session is `self`).
    pub fn merge(&mut self, other: &Accumulator) {
        self.rows += other.rows;
        match (&mut self.state, &other.state) {
            (State::CountRows, State::CountRows) => {}
            (State::CountNonNull(a), State::CountNonNull(b)) => *a += b,
            (State::Sum(a), State::Sum(b)) | (State::Avg(a), State::Avg(b)) => a.merge(b),
            (State::Extreme { max, best }, State::Extreme { best: theirs, .. }) => {
                if let Some(t) = theirs {
                    if improves(*max, t, best.as_ref()) {
                        *best = Some(t.clone());
                    }
                }
            }
            (State::ExtremeSet { values: a, .. }, State::ExtremeSet { values: b, .. })
            | (State::Histogram(a), State::Histogram(b)) => a.merge(b),
            (State::TopK(a), State::TopK(b)) => a.merge(b),
            (State::CountDistinct(a), State::CountDistinct(b)) => {
                for (v, c) in b.iter() {
                    *a.entry(v.clone()).or_insert(0) += c;
                }
            }
            (State::ByOffset(a), State::ByOffset(b)) => a.merge(b),
            (State::CollectList(a), State::CollectList(b)) => a.extend(b.iter().cloned()),
            (State::CollectSet(a), State::CollectSet(b)) => a.merge(b),
            _ => misuse("merge of accumulators of different calls"),
        }
    }

    /// The aggregate's current value, of the type `return_type` gave.
    pub fn result(&self) -> Value {
        match &self.state {
            State::CountRows => count_value(self.rows),
            State::CountNonNull(n) => count_value(*n),
            State::Sum(s) => s.total(),
            State::Avg(s) => s.mean(),
            State::Extreme { best, .. } => best.clone().unwrap_or(Value::Null),
            State::ExtremeSet { max, values } => {
                let best = if *max { values.last() } else { values.first() };
                best.cloned().unwrap_or(Value::Null)
            }
            State::TopK(t) => t.result(),
            State::CountDistinct(m) => count_value(m.len() as u64),
            State::ByOffset(b) => b.result(),
            State::CollectList(l) => Value::Array(Arc::new(l.clone())),
            State::CollectSet(s) => s.result(),
            State::Histogram(h) => Value::Map(Arc::new(
                h.iter().map(|(v, c)| (v.clone(), count_value(c))).collect(),
            )),
        }
    }

    /// Whether every row added has been retracted again, so the operator
    /// can drop the group (and delete its stored state). Counts rows whose
    /// argument was NULL too, for every function.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

/// Whether `v` beats the best MIN (`max` false) or MAX so far.
fn improves(max: bool, v: &Value, best: Option<&Value>) -> bool {
    match best.map(|b| v.cmp(b)) {
        None => true,
        Some(std::cmp::Ordering::Greater) => max,
        Some(std::cmp::Ordering::Less) => !max,
        Some(std::cmp::Ordering::Equal) => false,
    }
}

/// A count as the BIGINT users see; counts never reach `i64::MAX`.
fn count_value(n: u64) -> Value {
    Value::BigInt(i64::try_from(n).unwrap_or(i64::MAX))
}
