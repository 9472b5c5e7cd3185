//! Dataflow operators: pure, synchronous transformations of batches of
//! changes. The runtime (in the server) feeds them decoded source records,
//! persists their dirty state at commit, and writes what they emit.
//!
//! Operators never do I/O, never block and never panic on data: a row whose
//! expression fails is counted in [`Metrics`] and skipped.

mod aggregate;
mod filter;
mod join;
mod project;
mod upsert;
pub mod window;

pub use aggregate::Aggregate;
pub use filter::Filter;
pub use join::{Join, Side};
pub use project::Project;
pub use upsert::Upsert;

use crate::codec::CodecError;
use crate::error::EvalError;
use crate::value::Row;

/// One change to a collection: `diff` +1 inserts `row`, -1 retracts it. A
/// stream carries only inserts; an update is a retraction and an insert.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub row: Row,
    /// Event time in ms.
    pub time: i64,
    pub diff: i32,
    /// The encoded value of the record this change was read from, kept
    /// only where the query's output records are its input's unchanged
    /// (the source reader decides, see `passes_rows_through`). Operators
    /// that make a new row drop it; filters and a projection of the
    /// leading columns keep it.
    pub raw: Option<Vec<u8>>,
}

impl Change {
    pub fn new(row: Row, time: i64, diff: i32) -> Change {
        Change {
            row,
            time,
            diff,
            raw: None,
        }
    }

    pub fn insert(row: Row, time: i64) -> Change {
        Change::new(row, time, 1)
    }

    pub fn retract(row: Row, time: i64) -> Change {
        Change::new(row, time, -1)
    }
}

/// Counters an operator keeps for SHOW QUERIES / DESCRIBE EXTENDED.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Records dropped because their window had closed.
    pub late_drops: u64,
    /// Records skipped because an expression failed on them.
    pub errors: u64,
    pub last_error: Option<String>,
}

impl Metrics {
    fn error(&mut self, e: EvalError) {
        self.errors += 1;
        self.last_error = Some(e.to_string());
    }

    /// Adds another operator's counters.
    pub fn add(&mut self, other: &Metrics) {
        self.late_drops += other.late_drops;
        self.errors += other.errors;
        if other.last_error.is_some() {
            self.last_error.clone_from(&other.last_error);
        }
    }
}

/// A state entry to write at commit: `None` deletes the key.
pub type StateWrite = (Vec<u8>, Option<Vec<u8>>);

/// One operator of a pipeline.
#[derive(Debug)]
pub enum Operator {
    Upsert(Upsert),
    Filter(Filter),
    Project(Project),
    Aggregate(Box<Aggregate>),
}

impl Operator {
    /// Transforms `input` into `out` (appending), counting bad rows.
    pub fn process(
        &mut self,
        input: &mut Vec<Change>,
        out: &mut Vec<Change>,
        metrics: &mut Metrics,
    ) {
        match self {
            Operator::Upsert(op) => op.process(input, out),
            Operator::Filter(op) => op.process(input, out, metrics),
            Operator::Project(op) => op.process(input, out, metrics),
            Operator::Aggregate(op) => op.process(input, out, metrics),
        }
    }

    /// State changed since the last call, keys relative to the operator.
    pub fn drain_dirty(&mut self, out: &mut Vec<StateWrite>) {
        match self {
            Operator::Upsert(op) => op.drain_dirty(out),
            Operator::Aggregate(op) => op.drain_dirty(out),
            Operator::Filter(_) | Operator::Project(_) => {}
        }
    }

    /// Every live state entry, keys relative to the operator.
    pub fn snapshot(&self, out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        match self {
            Operator::Upsert(op) => op.snapshot(out),
            Operator::Aggregate(op) => op.snapshot(out),
            Operator::Filter(_) | Operator::Project(_) => {}
        }
    }

    /// Loads one persisted state entry (at startup).
    pub fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), CodecError> {
        match self {
            Operator::Upsert(op) => op.restore(key, value),
            Operator::Aggregate(op) => op.restore(key, value),
            Operator::Filter(_) | Operator::Project(_) => Ok(()),
        }
    }

    /// Whether the operator keeps state.
    pub fn is_stateful(&self) -> bool {
        matches!(self, Operator::Upsert(_) | Operator::Aggregate(_))
    }

    /// Number of entries held in memory, for DESCRIBE EXTENDED.
    pub fn state_size(&self) -> usize {
        match self {
            Operator::Upsert(op) => op.len(),
            Operator::Aggregate(op) => op.len(),
            Operator::Filter(_) | Operator::Project(_) => 0,
        }
    }
}

/// What a continuous query runs: per input, a chain of operators (an
/// upsert for a table); the inputs joined left-deep (`joins[i]` joins the
/// result so far with input `i + 1`); then a chain over the joined rows.
/// Without joins there is one input.
#[derive(Debug, Default)]
pub struct Pipeline {
    pub inputs: Vec<Vec<Operator>>,
    pub joins: Vec<Join>,
    pub operators: Vec<Operator>,
    pub metrics: Metrics,
    scratch: Vec<Change>,
}

/// A part of a pipeline that may keep state.
enum Part<'a> {
    Operator(&'a mut Operator),
    Join(&'a mut Join),
}

impl Pipeline {
    /// One input, one chain.
    pub fn new(operators: Vec<Operator>) -> Pipeline {
        Pipeline::joined(vec![Vec::new()], Vec::new(), operators)
    }

    pub fn joined(
        inputs: Vec<Vec<Operator>>,
        joins: Vec<Join>,
        operators: Vec<Operator>,
    ) -> Pipeline {
        Pipeline {
            inputs,
            joins,
            operators,
            metrics: Metrics::default(),
            scratch: Vec::new(),
        }
    }

    /// Pushes a batch of input `input`'s changes through the pipeline; the
    /// result is appended to `out`. `changes` is consumed (left empty).
    pub fn process(&mut self, input: usize, changes: &mut Vec<Change>, out: &mut Vec<Change>) {
        let mut cur = std::mem::take(changes);
        let (metrics, scratch) = (&mut self.metrics, &mut self.scratch);
        for op in self.inputs.get_mut(input).into_iter().flatten() {
            step(&mut cur, scratch, |i, o| op.process(i, o, metrics));
        }
        // Input 0 enters the first join on the left, input i > 0 the i-th
        // on the right; each join's result enters the next on the left.
        let first = input.saturating_sub(1);
        for (j, join) in self.joins.iter_mut().enumerate().skip(first) {
            let side = if j == first && input > 0 {
                Side::Right
            } else {
                Side::Left
            };
            step(&mut cur, scratch, |i, o| join.process(side, i, o, metrics));
        }
        for op in &mut self.operators {
            step(&mut cur, scratch, |i, o| op.process(i, o, metrics));
        }
        out.append(&mut cur);
        // Keep the allocations for the next batch.
        *changes = std::mem::take(&mut self.scratch);
        changes.clear();
    }

    /// From now on, aggregates hold their EMIT CHANGES output back until
    /// [`Pipeline::flush`]: a group changed by many batches between two
    /// flushes emits once. A persistent query flushes before each commit.
    pub fn coalesce_changes(&mut self) {
        // Aggregates follow the joins: see `plan_query`.
        for op in &mut self.operators {
            if let Operator::Aggregate(a) = op {
                a.coalesce_changes();
            }
        }
    }

    /// Emits what the aggregates held back (see
    /// [`Pipeline::coalesce_changes`]) through the operators after them;
    /// the result is appended to `out`. Call it before
    /// [`Pipeline::drain_dirty`], so that committed state matches what was
    /// emitted.
    pub fn flush(&mut self, out: &mut Vec<Change>) {
        let mut cur = Vec::new();
        let (metrics, scratch) = (&mut self.metrics, &mut self.scratch);
        for op in &mut self.operators {
            step(&mut cur, scratch, |i, o| {
                op.process(i, o, metrics);
                if let Operator::Aggregate(a) = op {
                    a.flush(o);
                }
            });
        }
        out.append(&mut cur);
    }

    /// Every stateful part in a fixed order (inputs, joins, then the rest):
    /// a part's index prefixes its state keys.
    fn parts(&mut self) -> impl Iterator<Item = Part<'_>> {
        self.inputs
            .iter_mut()
            .flatten()
            .map(Part::Operator)
            .chain(self.joins.iter_mut().map(Part::Join))
            .chain(self.operators.iter_mut().map(Part::Operator))
    }

    fn operators_all(&self) -> impl Iterator<Item = &Operator> {
        self.inputs.iter().flatten().chain(&self.operators)
    }

    /// Dirty state of every part, keys prefixed with the part's index (one
    /// byte, below 0xff, which the store's state log keeps for itself) so
    /// parts never collide.
    pub fn drain_dirty(&mut self, out: &mut Vec<StateWrite>) {
        let mut buf = Vec::new();
        for (i, part) in self.parts().enumerate() {
            match part {
                Part::Operator(op) => op.drain_dirty(&mut buf),
                Part::Join(j) => j.drain_dirty(&mut buf),
            }
            out.extend(buf.drain(..).map(|(k, v)| (operator_key(i, &k), v)));
        }
    }

    /// Every live state entry, keyed as [`Pipeline::drain_dirty`] keys
    /// them: restoring these gives the pipeline's state.
    pub fn snapshot(&mut self, out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        let mut buf = Vec::new();
        for (i, part) in self.parts().enumerate() {
            match part {
                Part::Operator(op) => op.snapshot(&mut buf),
                Part::Join(j) => j.snapshot(&mut buf),
            }
            out.extend(buf.drain(..).map(|(k, v)| (operator_key(i, &k), v)));
        }
    }

    /// Loads one persisted entry written by [`Pipeline::drain_dirty`].
    pub fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), CodecError> {
        let Some((&i, rest)) = key.split_first() else {
            return Ok(());
        };
        match self.parts().nth(usize::from(i)) {
            Some(Part::Operator(op)) => op.restore(rest, value),
            Some(Part::Join(j)) => j.restore(rest, value),
            None => Ok(()),
        }
    }

    /// Whether every output row is an input row unchanged but cut to
    /// `width` columns (or dropped): one input, and only filters and a
    /// projection of the leading `width` columns. Such a query's output
    /// records may be its input's records as they were read ([`Change::raw`]).
    pub fn passes_rows_through(&self, width: usize) -> bool {
        self.joins.is_empty()
            && self.inputs.len() == 1
            && self
                .inputs
                .iter()
                .flatten()
                .chain(&self.operators)
                .all(|op| match op {
                    Operator::Filter(_) => true,
                    Operator::Project(p) => p.exprs.len() == width && p.is_leading_columns(),
                    Operator::Upsert(_) | Operator::Aggregate(_) => false,
                })
    }

    /// Which columns (of `width`) of input `input` the pipeline reads;
    /// `None` when it may pass any of them on (an upsert, or no projection
    /// or aggregate to end the chain). Columns it does not read need not be
    /// decoded.
    pub fn columns_read(&self, input: usize, width: usize) -> Option<Vec<bool>> {
        let chain = self.inputs.get(input)?;
        if !self.joins.is_empty() && !chain.is_empty() {
            return None; // an upsert before a join
        }
        // The input's columns in the rows after the joins: each join's row
        // is its left row, then its right input's.
        let offset = match input {
            0 => 0,
            i => self.joins.get(i - 1)?.left_width(),
        };
        let mut read = vec![false; width];
        let mut mark = |row_offset: usize, e: &crate::expr::Expr| {
            e.visit(&mut |e| {
                if let crate::expr::Expr::Column(c) = e {
                    if let Some(r) = (row_offset + c)
                        .checked_sub(offset)
                        .and_then(|i| read.get_mut(i))
                    {
                        *r = true;
                    }
                }
            })
        };
        for (j, join) in self.joins.iter().enumerate() {
            mark(0, &join.left_key);
            if j + 1 == input {
                mark(offset, &join.right_key);
            }
        }
        for op in chain.iter().chain(&self.operators) {
            match op {
                Operator::Upsert(_) => return None,
                // Passes rows on unchanged: what comes later reads them too.
                Operator::Filter(f) => mark(0, &f.predicate),
                Operator::Project(p) => {
                    p.exprs.iter().for_each(|e| mark(0, e));
                    return Some(read);
                }
                Operator::Aggregate(a) => {
                    a.inputs().for_each(|e| mark(0, e));
                    return Some(read);
                }
            }
        }
        None
    }

    /// Each join's state entries: (left side's, right side's).
    pub fn join_sizes(&self) -> Vec<(usize, usize)> {
        self.joins.iter().map(Join::sizes).collect()
    }

    /// In-memory state entries across parts.
    pub fn state_size(&self) -> usize {
        self.operators_all()
            .map(Operator::state_size)
            .sum::<usize>()
            + self.joins.iter().map(Join::len).sum::<usize>()
    }
}

/// Runs one operator: `cur` in, its output back in `cur` (`scratch` keeps
/// the other buffer).
fn step(
    cur: &mut Vec<Change>,
    scratch: &mut Vec<Change>,
    f: impl FnOnce(&mut Vec<Change>, &mut Vec<Change>),
) {
    scratch.clear();
    f(cur, scratch);
    std::mem::swap(cur, scratch);
}

/// An operator's state key within its pipeline. Plans have a handful of
/// operators, far below the 255 a byte can tell apart.
fn operator_key(index: usize, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(index as u8);
    out.extend_from_slice(key);
    out
}

#[cfg(test)]
mod tests;
