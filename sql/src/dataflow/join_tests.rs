//! Join property tests: pipelines built as the planner builds them (an
//! upsert in front of each table, nothing in front of a stream), fed random
//! interleavings of both inputs in random batches, checked against joins
//! recomputed from scratch with plain loops:
//!
//! - two tables, on the primary key (every kind) and on a foreign key
//!   (INNER, LEFT), also three tables left-deep: the emitted changes,
//!   accumulated, never take a row below zero and end as the join of the
//!   final tables;
//! - two streams: among the records that are not late, every pair within
//!   the window exactly once, and for outer joins every record that met
//!   nothing exactly once, after a flush;
//! - a stream and a table: each stream record joins the table's version
//!   current at its own event time;
//! - a long stream-stream run keeps state bounded by its window.
//!
//! Every run commits after each batch to a model store (a `BTreeMap`),
//! checks that a snapshot equals what the commits wrote, and the restart
//! properties rebuild the pipeline from that store at a random batch: what
//! it emits afterwards must not change.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::Index;

use super::Join;
use crate::binder::{JoinKind, JoinShape};
use crate::dataflow::{Change, Operator, Pipeline, Upsert};
use crate::expr::Expr;
use crate::value::{Row, Value};

const KINDS: [JoinKind; 4] = [
    JoinKind::Inner,
    JoinKind::Left,
    JoinKind::Right,
    JoinKind::Full,
];

// ---------------------------------------------------------------- harness

/// A pipeline run as the runtime runs it: a commit to the model store
/// after every batch.
struct Run {
    pipeline: Pipeline,
    store: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Everything emitted, in order, across restarts.
    emitted: Vec<Change>,
    /// Per batch: its input and how many changes it emitted.
    batch_outputs: Vec<(usize, usize)>,
    /// Late drops counted by pipelines replaced by [`Run::restart`].
    late_before_restart: u64,
}

impl Run {
    fn new(pipeline: Pipeline) -> Run {
        Run {
            pipeline,
            store: BTreeMap::new(),
            emitted: Vec::new(),
            batch_outputs: Vec::new(),
            late_before_restart: 0,
        }
    }

    /// Processes one batch of input `input` and commits; returns what the
    /// pipeline emitted.
    fn push(&mut self, input: usize, batch: &[Change]) -> Vec<Change> {
        let mut changes = batch.to_vec();
        let mut out = Vec::new();
        self.pipeline.process(input, &mut changes, &mut out);
        assert!(changes.is_empty(), "the pipeline must consume its input");
        self.emitted.extend_from_slice(&out);
        self.batch_outputs.push((input, out.len()));
        self.commit();
        out
    }

    fn commit(&mut self) {
        let mut writes = Vec::new();
        self.pipeline.drain_dirty(&mut writes);
        for (k, v) in writes {
            match v {
                Some(v) => self.store.insert(k, v),
                None => self.store.remove(&k),
            };
        }
        let mut snapshot = Vec::new();
        self.pipeline.snapshot(&mut snapshot);
        snapshot.sort();
        let committed: Vec<_> = self.store.clone().into_iter().collect();
        assert_eq!(
            snapshot, committed,
            "a snapshot is the state the commits wrote"
        );
    }

    /// Replaces the pipeline with `fresh` loaded from the store: a kill and
    /// restart after the last commit.
    fn restart(&mut self, mut fresh: Pipeline) {
        for (k, v) in &self.store {
            fresh.restore(k, v).unwrap();
        }
        self.late_before_restart += self.pipeline.metrics.late_drops;
        self.pipeline = fresh;
    }

    fn late_drops(&self) -> u64 {
        self.late_before_restart + self.pipeline.metrics.late_drops
    }
}

/// Splits changes tagged with their input into batches of one input each,
/// of at most `cuts[i]` changes (cycling through `cuts`).
fn batches(changes: &[(usize, Change)], cuts: &[usize]) -> Vec<(usize, Vec<Change>)> {
    let mut out: Vec<(usize, Vec<Change>)> = Vec::new();
    let mut limit = 0;
    let mut next_cut = cuts.iter().copied().cycle();
    for (input, c) in changes {
        match out.last_mut() {
            Some((last, batch)) if last == input && batch.len() < limit => batch.push(c.clone()),
            _ => {
                limit = next_cut.next().unwrap_or(1);
                out.push((*input, vec![c.clone()]));
            }
        }
    }
    out
}

/// Runs `batches` through a straight pipeline and through one restarted
/// from the store before batch `at`; each batch must emit the same
/// changes (in any order: hash maps iterate differently after a restore).
fn run_with_restart(
    make: impl Fn() -> Pipeline,
    batches: &[(usize, Vec<Change>)],
    at: usize,
) -> (Run, Run) {
    let mut straight = Run::new(make());
    let mut restarted = Run::new(make());
    for (i, (input, batch)) in batches.iter().enumerate() {
        if i == at {
            restarted.restart(make());
        }
        let a = straight.push(*input, batch);
        let b = restarted.push(*input, batch);
        assert_eq!(
            sorted(a),
            sorted(b),
            "batch {i} (input {input}) after a restart before batch {at}"
        );
    }
    assert_eq!(
        straight.pipeline.state_size(),
        restarted.pipeline.state_size(),
        "state held after a restart"
    );
    (straight, restarted)
}

fn sorted(changes: Vec<Change>) -> Vec<(Row, i64, i32)> {
    let mut v: Vec<_> = changes
        .into_iter()
        .map(|c| (c.row, c.time, c.diff))
        .collect();
    v.sort();
    v
}

/// Applies changes in order to a multiset of rows, refusing a retraction
/// that takes a row's count below zero at any point.
fn accumulate(changes: &[Change]) -> BTreeMap<Row, i64> {
    let mut rows = BTreeMap::new();
    for (i, c) in changes.iter().enumerate() {
        assert!(
            c.diff == 1 || c.diff == -1,
            "change {i} has diff {}",
            c.diff
        );
        let n = rows.entry(c.row.clone()).or_insert(0);
        *n += i64::from(c.diff);
        assert!(
            *n >= 0,
            "change {i} retracts {:?}, which is not there",
            c.row
        );
        if *n == 0 {
            rows.remove(&c.row);
        }
    }
    rows
}

/// Applies changes that must all be inserts, keyed by row and time.
fn inserts(changes: &[Change]) -> BTreeMap<(Row, i64), usize> {
    let mut rows = BTreeMap::new();
    for c in changes {
        assert_eq!(
            c.diff, 1,
            "{:?} @{}: a stream join only inserts",
            c.row, c.time
        );
        *rows.entry((c.row.clone(), c.time)).or_insert(0) += 1;
    }
    rows
}

// ---------------------------------------------------------------- models

/// A join value: a small integer, sometimes NULL.
fn key() -> impl Strategy<Value = Value> {
    prop_oneof![1 => Just(Value::Null), 6 => (0i32..4).prop_map(Value::Int)]
}

fn batch_cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..6, 1..12)
}

/// The joined row: left (or `lw` NULLs), right (or `rw` NULLs), then the
/// join value for FULL.
fn joined(l: Option<&Row>, lw: usize, r: Option<&Row>, rw: usize, rowkey: Option<&Value>) -> Row {
    let mut row = l.cloned().unwrap_or_else(|| vec![Value::Null; lw]);
    row.extend(r.cloned().unwrap_or_else(|| vec![Value::Null; rw]));
    row.extend(rowkey.cloned());
    row
}

/// Two sides of an equi-join on `left[lk] = right[rk]`.
struct Sides<'a> {
    kind: JoinKind,
    left: &'a [Row],
    right: &'a [Row],
    lk: usize,
    rk: usize,
    lw: usize,
    rw: usize,
}

/// The join from scratch: NULL never matches, unmatched rows of an outer
/// side NULL-padded, FULL rows end with the join value.
fn join_from_scratch(s: &Sides) -> BTreeMap<Row, i64> {
    let full = s.kind == JoinKind::Full;
    let meets = |l: &Row, r: &Row| !l[s.lk].is_null() && l[s.lk] == r[s.rk];
    let mut out = BTreeMap::new();
    let mut add = |row: Row| *out.entry(row).or_insert(0) += 1;
    for l in s.left {
        let mut met = false;
        for r in s.right.iter().filter(|r| meets(l, r)) {
            met = true;
            add(joined(
                Some(l),
                s.lw,
                Some(r),
                s.rw,
                full.then_some(&l[s.lk]),
            ));
        }
        if !met && s.kind.keeps_left() {
            add(joined(Some(l), s.lw, None, s.rw, full.then_some(&l[s.lk])));
        }
    }
    for r in s.right {
        if s.kind.keeps_right() && !s.left.iter().any(|l| meets(l, r)) {
            add(joined(None, s.lw, Some(r), s.rw, full.then_some(&r[s.rk])));
        }
    }
    out
}

fn rows_of(multiset: &BTreeMap<Row, i64>) -> Vec<Row> {
    multiset
        .iter()
        .flat_map(|(row, &n)| std::iter::repeat_n(row.clone(), n as usize))
        .collect()
}

// ---------------------------------------------------------------- tables

/// Left table: `[pk, fk, val]`; right (and third) table: `[pk, val]`.
const LEFT_WIDTH: usize = 3;
const RIGHT_WIDTH: usize = 2;

/// One table-table join of the two tables.
#[derive(Debug, Clone, Copy)]
struct TableJoin {
    kind: JoinKind,
    /// On the left's `fk` instead of its primary key.
    foreign: bool,
}

/// Every kind on the primary key; INNER and LEFT on the foreign key (the
/// binder refuses the others).
const TABLE_JOINS: [TableJoin; 6] = [
    TableJoin::pk(JoinKind::Inner),
    TableJoin::pk(JoinKind::Left),
    TableJoin::pk(JoinKind::Right),
    TableJoin::pk(JoinKind::Full),
    TableJoin::fk(JoinKind::Inner),
    TableJoin::fk(JoinKind::Left),
];

impl TableJoin {
    const fn pk(kind: JoinKind) -> TableJoin {
        TableJoin {
            kind,
            foreign: false,
        }
    }

    const fn fk(kind: JoinKind) -> TableJoin {
        TableJoin {
            kind,
            foreign: true,
        }
    }

    fn left_key(self) -> usize {
        usize::from(self.foreign)
    }

    fn join(self, left_width: usize) -> Join {
        Join::new(
            self.kind,
            JoinShape::TableTable {
                foreign: self.foreign,
            },
            Expr::Column(self.left_key()),
            Expr::Column(0),
            left_width,
            RIGHT_WIDTH,
        )
    }

    fn pipeline(self) -> Pipeline {
        Pipeline::joined(
            vec![upsert_chain(), upsert_chain()],
            vec![self.join(LEFT_WIDTH)],
            Vec::new(),
        )
    }

    fn recomputed(self, tables: &[Vec<Row>]) -> BTreeMap<Row, i64> {
        join_from_scratch(&Sides {
            kind: self.kind,
            left: &tables[0],
            right: &tables[1],
            lk: self.left_key(),
            rk: 0,
            lw: LEFT_WIDTH,
            rw: RIGHT_WIDTH,
        })
    }
}

fn upsert_chain() -> Vec<Operator> {
    vec![Operator::Upsert(Upsert::new(vec![0]))]
}

/// Upserts (diff +1) and tombstones (diff -1, for the key in column 0)
/// on `inputs` tables; input 0 is the left table.
fn table_writes(inputs: usize) -> impl Strategy<Value = Vec<(usize, Change)>> {
    let write = (0..inputs, key(), key(), 0i32..3, prop::bool::weighted(0.25));
    prop::collection::vec(write, 0..40).prop_map(|writes| {
        writes
            .into_iter()
            .enumerate()
            .map(|(t, (input, pk, fk, val, delete))| {
                let row = if input == 0 {
                    vec![pk, fk, Value::Int(val)]
                } else {
                    vec![pk, Value::Int(val)]
                };
                let diff = if delete { -1 } else { 1 };
                (input, Change::new(row, t as i64, diff))
            })
            .collect()
    })
}

/// The tables the writes leave: the last upsert of each key not deleted
/// after it (a NULL key is a key like any other to an upsert).
fn final_tables(writes: &[(usize, Change)], inputs: usize) -> Vec<Vec<Row>> {
    let mut tables = vec![BTreeMap::new(); inputs];
    for (input, c) in writes {
        if c.diff > 0 {
            tables[*input].insert(c.row[0].clone(), c.row.clone());
        } else {
            tables[*input].remove(&c.row[0]);
        }
    }
    tables
        .into_iter()
        .map(|t| t.into_values().collect())
        .collect()
}

/// `a JOIN b ON a.pk = b.pk (first) JOIN c ON a.fk = c.pk (second)`.
fn three_tables(first: JoinKind, second: JoinKind) -> Pipeline {
    let first = TableJoin::pk(first);
    Pipeline::joined(
        vec![upsert_chain(), upsert_chain(), upsert_chain()],
        vec![
            first.join(LEFT_WIDTH),
            TableJoin::fk(second).join(ab_width(first.kind)),
        ],
        Vec::new(),
    )
}

fn ab_width(first: JoinKind) -> usize {
    LEFT_WIDTH + RIGHT_WIDTH + usize::from(first == JoinKind::Full)
}

// ---------------------------------------------------------------- streams

/// Stream rows are `[id, key]`, the id unique across both sides, so each
/// output row names the records it pairs.
const STREAM_WIDTH: usize = 2;

fn stream_join(kind: JoinKind, before: i64, after: i64, grace: i64) -> Pipeline {
    Pipeline::joined(
        vec![Vec::new(), Vec::new()],
        vec![Join::new(
            kind,
            JoinShape::StreamStream {
                before,
                after,
                grace,
            },
            Expr::Column(1),
            Expr::Column(1),
            STREAM_WIDTH,
            STREAM_WIDTH,
        )],
        Vec::new(),
    )
}

/// Records on both streams: a clock that moves forward by small steps,
/// and a third of the records behind it by up to 40 ms (out of order, and
/// late for a short grace).
fn stream_records() -> impl Strategy<Value = Vec<(usize, Change)>> {
    let jitter = prop_oneof![2 => Just(0i64), 1 => -40i64..=5];
    prop::collection::vec((0..2usize, key(), 0i64..10, jitter), 0..30).prop_map(|records| {
        let mut clock = 0;
        records
            .into_iter()
            .enumerate()
            .map(|(id, (input, key, step, jitter))| {
                clock += step;
                let row = vec![Value::Int(id as i32), key];
                (input, Change::insert(row, clock + jitter))
            })
            .collect()
    })
}

/// What a stream-stream join must emit, record by record in arrival
/// order: (row, time) -> count, and how many records are late.
fn stream_stream_model(
    kind: JoinKind,
    records: &[(usize, Change)],
    before: i64,
    after: i64,
    grace: i64,
) -> (BTreeMap<(Row, i64), usize>, u64) {
    let mut stream_time = i64::MIN;
    let mut late = 0;
    let mut kept: [Vec<&Change>; 2] = [Vec::new(), Vec::new()];
    for (input, c) in records {
        if c.time < stream_time.saturating_sub(grace) {
            late += 1;
            continue;
        }
        stream_time = stream_time.max(c.time);
        kept[*input].push(c);
    }
    let full = kind == JoinKind::Full;
    let meets = |l: &Change, r: &Change| {
        !l.row[1].is_null()
            && l.row[1] == r.row[1]
            && l.time - before <= r.time
            && r.time <= l.time + after
    };
    let mut out = BTreeMap::new();
    let mut add = |row: Row, time: i64| *out.entry((row, time)).or_insert(0) += 1;
    let w = STREAM_WIDTH;
    for l in &kept[0] {
        let mut met = false;
        for r in kept[1].iter().filter(|r| meets(l, r)) {
            met = true;
            let row = joined(Some(&l.row), w, Some(&r.row), w, full.then_some(&l.row[1]));
            add(row, l.time.max(r.time));
        }
        if !met && kind.keeps_left() {
            add(
                joined(Some(&l.row), w, None, w, full.then_some(&l.row[1])),
                l.time,
            );
        }
    }
    for r in &kept[1] {
        if kind.keeps_right() && !kept[0].iter().any(|l| meets(l, r)) {
            add(
                joined(None, w, Some(&r.row), w, full.then_some(&r.row[1])),
                r.time,
            );
        }
    }
    (out, late)
}

/// One record on each side, far enough ahead that every earlier record's
/// window closes, with keys nobody else uses.
fn flush(records: &[(usize, Change)], before: i64, after: i64, grace: i64) -> Vec<(usize, Change)> {
    let max = records.iter().map(|(_, c)| c.time).max().unwrap_or(0);
    let time = max + before + after + grace + 1;
    let id = records.len() as i32;
    (0..2)
        .map(|input| {
            let row = vec![
                Value::Int(id + input as i32),
                Value::Int(1_000 + input as i32),
            ];
            (input, Change::insert(row, time))
        })
        .collect()
}

/// The record ids in an output row: (left, right), `None` for a NULL side.
fn ids_of(row: &Row) -> (Option<Value>, Option<Value>) {
    let id = |v: &Value| (!v.is_null()).then(|| v.clone());
    (id(&row[0]), id(&row[STREAM_WIDTH]))
}

/// No record is both in a pair and in a NULL-padded row.
fn assert_no_spurious_outer_rows(emitted: &[Change], kind: JoinKind) {
    let mut paired = BTreeSet::new();
    for c in emitted {
        if let (Some(l), Some(r)) = ids_of(&c.row) {
            paired.insert(l);
            paired.insert(r);
        }
    }
    for c in emitted {
        if let (Some(id), None) | (None, Some(id)) = ids_of(&c.row) {
            assert!(
                !paired.contains(&id),
                "{kind:?}: record {id} is paired and also emitted with NULLs as {:?} @{}",
                c.row,
                c.time
            );
        }
    }
}

// ---------------------------------------------------------- stream x table

/// Stream `[id, key]` joined with table `[pk, val]` (input 1) on its pk;
/// the table's writes go to the join as written (as the planner does).
fn stream_table(kind: JoinKind, grace: i64) -> Pipeline {
    Pipeline::joined(
        vec![Vec::new(), Vec::new()],
        vec![Join::new(
            kind,
            JoinShape::StreamTable { grace },
            Expr::Column(1),
            Expr::Column(0),
            STREAM_WIDTH,
            RIGHT_WIDTH,
        )],
        Vec::new(),
    )
}

/// Table changes with event times; `in_order` makes the times
/// non-decreasing in arrival order.
fn table_versions(in_order: bool) -> impl Strategy<Value = Vec<Change>> {
    let change = (
        key(),
        prop::option::weighted(0.75, 0i32..3),
        0i64..6,
        0i64..60,
    );
    prop::collection::vec(change, 0..20).prop_map(move |changes| {
        let mut clock = 0;
        changes
            .into_iter()
            .map(|(pk, val, step, random_time)| {
                clock += step;
                let time = if in_order { clock } else { random_time };
                match val {
                    Some(v) => Change::insert(vec![pk, Value::Int(v)], time),
                    None => Change::retract(vec![pk, Value::Null], time),
                }
            })
            .collect()
    })
}

/// The table row of `key` at `time`: the change with the greatest time at
/// or before it (the last to arrive among equal times); `None` for a
/// deletion, no change, or a NULL key.
fn version_at(table: &[Change], key: &Value, time: i64) -> Option<Row> {
    if key.is_null() {
        return None;
    }
    let mut best: Option<&Change> = None;
    for c in table.iter().filter(|c| &c.row[0] == key && c.time <= time) {
        if best.is_none_or(|b| c.time >= b.time) {
            best = Some(c);
        }
    }
    best.filter(|c| c.diff > 0).map(|c| c.row.clone())
}

/// Stream `[id, key]` records at times in `0..70`, ids from 0.
fn stream_lookups() -> impl Strategy<Value = Vec<Change>> {
    prop::collection::vec((key(), 0i64..70), 0..25).prop_map(|records| {
        records
            .into_iter()
            .enumerate()
            .map(|(id, (key, time))| Change::insert(vec![Value::Int(id as i32), key], time))
            .collect()
    })
}

/// What a stream-table join emits for the stream records that are not
/// late (behind the stream's max time so far by more than `grace`), after
/// the whole table; and the ids of the late ones.
fn stream_table_model(
    kind: JoinKind,
    table: &[Change],
    stream: &[Change],
    grace: i64,
) -> (BTreeMap<(Row, i64), usize>, BTreeSet<Value>) {
    let mut out = BTreeMap::new();
    let mut late = BTreeSet::new();
    let mut stream_time = i64::MIN;
    for c in stream {
        if c.time < stream_time.saturating_sub(grace) {
            late.insert(c.row[0].clone());
            continue;
        }
        stream_time = stream_time.max(c.time);
        let row = match version_at(table, &c.row[1], c.time) {
            Some(r) => joined(Some(&c.row), STREAM_WIDTH, Some(&r), RIGHT_WIDTH, None),
            None if kind == JoinKind::Left => {
                joined(Some(&c.row), STREAM_WIDTH, None, RIGHT_WIDTH, None)
            }
            None => continue,
        };
        *out.entry((row, c.time)).or_insert(0) += 1;
    }
    (out, late)
}

/// Feeds the whole table (input 1), then the stream (input 0), each in
/// batches, restarting before batch `at`; returns both runs.
fn run_stream_table(
    kind: JoinKind,
    grace: i64,
    table: &[Change],
    stream: &[Change],
    cuts: &[usize],
    at: Index,
) -> (Run, Run) {
    let tagged: Vec<(usize, Change)> = table
        .iter()
        .map(|c| (1, c.clone()))
        .chain(stream.iter().map(|c| (0, c.clone())))
        .collect();
    let batches = batches(&tagged, cuts);
    let at = at.index(batches.len() + 1);
    let (straight, restarted) = run_with_restart(|| stream_table(kind, grace), &batches, at);
    for run in [&straight, &restarted] {
        for &(input, n) in &run.batch_outputs {
            assert!(
                input == 0 || n == 0,
                "{kind:?}: a table change emitted {n} rows"
            );
        }
    }
    (straight, restarted)
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// (1) Two tables, every join kind on the primary key and INNER/LEFT on
    /// a foreign key: the changes, accumulated in order, never retract a
    /// row that is not there and end as the join of the final tables.
    #[test]
    fn table_joins_match_the_join_of_the_final_tables(
        writes in table_writes(2),
        cuts in batch_cuts(),
    ) {
        let tables = final_tables(&writes, 2);
        for join in TABLE_JOINS {
            let mut run = Run::new(join.pipeline());
            for (input, batch) in batches(&writes, &cuts) {
                run.push(input, &batch);
            }
            let view = accumulate(&run.emitted);
            prop_assert_eq!(&view, &join.recomputed(&tables), "{:?}", join);
            prop_assert!(view.values().all(|&n| n == 1), "{:?}: a row twice", join);
            // The upserts hold every live row; the join those whose join
            // value is not NULL.
            let keyed = |rows: &[Row], k: usize| rows.iter().filter(|r| !r[k].is_null()).count();
            prop_assert_eq!(
                run.pipeline.joins[0].sizes(),
                (keyed(&tables[0], join.left_key()), keyed(&tables[1], 0)),
                "{:?}", join
            );
            prop_assert_eq!(
                run.pipeline.state_size(),
                tables[0].len() + tables[1].len() + run.pipeline.joins[0].len(),
                "{:?}", join
            );
        }
    }

    /// (2) The same joins, restarted from the committed state before a
    /// random batch: each batch emits what it emits without the restart,
    /// and the end is the join of the final tables.
    #[test]
    fn table_joins_restart_from_committed_state(
        writes in table_writes(2),
        cuts in batch_cuts(),
        at in any::<Index>(),
    ) {
        let tables = final_tables(&writes, 2);
        let batches = batches(&writes, &cuts);
        let at = at.index(batches.len() + 1);
        for join in TABLE_JOINS {
            let (_, restarted) = run_with_restart(|| join.pipeline(), &batches, at);
            prop_assert_eq!(
                &accumulate(&restarted.emitted),
                &join.recomputed(&tables),
                "{:?}, restarted before batch {}", join, at
            );
        }
    }

    /// Three tables left-deep, `a JOIN b ON a.pk = b.pk JOIN c ON a.fk =
    /// c.pk`: the second join's left input is the first's changes (outer
    /// rows retracted and re-emitted, NULL keys from a missing `a`); the
    /// end is the join of the joins of the final tables, with a restart.
    #[test]
    fn three_table_joins_match_the_final_tables(
        writes in table_writes(3),
        cuts in batch_cuts(),
        at in any::<Index>(),
    ) {
        let tables = final_tables(&writes, 3);
        let batches = batches(&writes, &cuts);
        let at = at.index(batches.len() + 1);
        for first in KINDS {
            for second in [JoinKind::Inner, JoinKind::Left] {
                let (straight, restarted) =
                    run_with_restart(|| three_tables(first, second), &batches, at);
                let ab = rows_of(&TableJoin::pk(first).recomputed(&tables));
                let expected = join_from_scratch(&Sides {
                    kind: second,
                    left: &ab,
                    right: &tables[2],
                    lk: 1,
                    rk: 0,
                    lw: ab_width(first),
                    rw: RIGHT_WIDTH,
                });
                for run in [&straight, &restarted] {
                    prop_assert_eq!(
                        &accumulate(&run.emitted),
                        &expected,
                        "{:?} then {:?}", first, second
                    );
                }
            }
        }
    }

    /// (3) Two streams, every kind: among the records that are not late,
    /// every pair within the window exactly once at the later of the two
    /// times; after a flush, every record of an outer side that met nothing
    /// exactly once with NULLs (a NULL key at once), and none that did.
    /// Late counts match, only the flush records stay in memory, and a
    /// restart from committed state changes nothing.
    #[test]
    fn stream_joins_emit_each_pair_and_each_unmatched_record_once(
        records in stream_records(),
        cuts in batch_cuts(),
        before in 0i64..20,
        after in 0i64..20,
        grace in 0i64..30,
        at in any::<Index>(),
    ) {
        let mut input = records.clone();
        input.extend(flush(&records, before, after, grace));
        let batches = batches(&input, &cuts);
        let at = at.index(batches.len() + 1);
        for kind in KINDS {
            let (expected, late) = stream_stream_model(kind, &records, before, after, grace);
            let (straight, restarted) =
                run_with_restart(|| stream_join(kind, before, after, grace), &batches, at);
            for run in [&straight, &restarted] {
                assert_no_spurious_outer_rows(&run.emitted, kind);
                prop_assert_eq!(&inserts(&run.emitted), &expected, "{:?}", kind);
                prop_assert_eq!(run.late_drops(), late, "{:?}: late drops", kind);
                prop_assert_eq!(run.pipeline.joins[0].sizes(), (1, 1), "{:?}: held", kind);
            }
        }
    }

    /// (4) A stream and a table, INNER and LEFT, the whole table (times in
    /// or out of order) first: each stream record joins the table's version with the
    /// greatest time at or before its own (none for a deletion or before
    /// the first version), in time order or out of it within the grace
    /// period; table changes emit nothing; a restart changes nothing.
    #[test]
    fn stream_table_joins_read_the_version_at_each_record_time(
        table in any::<bool>().prop_flat_map(table_versions),
        mut stream in stream_lookups(),
        in_order in any::<bool>(),
        grace in 0i64..40,
        cuts in batch_cuts(),
        at in any::<Index>(),
    ) {
        if in_order {
            stream.sort_by_key(|c| c.time);
        }
        for kind in [JoinKind::Inner, JoinKind::Left] {
            let (expected, late) = stream_table_model(kind, &table, &stream, grace);
            if in_order {
                prop_assert!(late.is_empty());
            }
            let (straight, restarted) =
                run_stream_table(kind, grace, &table, &stream, &cuts, at);
            for run in [&straight, &restarted] {
                let on_time: Vec<Change> = run
                    .emitted
                    .iter()
                    .filter(|c| !late.contains(&c.row[0]))
                    .cloned()
                    .collect();
                prop_assert_eq!(&inserts(&on_time), &expected, "{:?}", kind);
            }
        }
    }
}

// ---------------------------------------------------------------- state bound

/// (5) A long stream-stream run, one record per ms alternating sides, keys
/// cycling through 100 values, WITHIN 50 ms, GRACE 0: the records held in
/// memory and in the store stay about one window's worth (51 here: the
/// last 50 ms), never growing with the input; and every pair, and for a
/// LEFT join every left record that met nothing, still comes out.
fn long_stream_join_holds_one_window(kind: JoinKind) {
    const RECORDS: i64 = 200_000;
    const WITHIN: i64 = 50;
    const GRACE: i64 = 0;
    // One record per ms, each held until the watermark passes the end of
    // its window: twice the window's records is a bound with room to spare.
    const BOUND: usize = 2 * (WITHIN + GRACE + 1) as usize;
    let mut pipeline = stream_join(kind, WITHIN, WITHIN, GRACE);
    let mut store = BTreeMap::new();
    let mut commit = |p: &mut Pipeline| {
        let mut writes = Vec::new();
        p.drain_dirty(&mut writes);
        for (k, v) in writes {
            match v {
                Some(v) => store.insert(k, v),
                None => store.remove(&k),
            };
        }
        store.len()
    };
    let (mut held, mut stored) = (0, 0);
    let (mut pairs, mut unmatched) = (0, 0);
    let mut count = |out: &mut Vec<Change>| {
        for c in out.drain(..) {
            match ids_of(&c.row) {
                (Some(_), Some(_)) => pairs += 1,
                _ => unmatched += 1,
            }
        }
    };
    let (mut batch, mut out) = (Vec::new(), Vec::new());
    for i in 0..RECORDS {
        // Record i is the left (even) or right (odd) record of pair j, at
        // i ms; every fourth pair's right record has another key, whose
        // left records are 100 ms away, so its left record meets nothing.
        let j = i / 2;
        let key = if i % 2 == 1 && j % 4 == 3 {
            (j + 50) % 100
        } else {
            j % 100
        };
        batch.push(Change::insert(
            vec![Value::BigInt(i), Value::BigInt(key)],
            i,
        ));
        pipeline.process((i % 2) as usize, &mut batch, &mut out);
        count(&mut out);
        if i % 1_000 == 999 {
            let len = pipeline.joins[0].len();
            assert_eq!(pipeline.state_size(), len);
            held = held.max(len);
            stored = stored.max(commit(&mut pipeline));
        }
    }
    assert!(
        held <= BOUND,
        "{kind:?}: {held} records held (bound {BOUND})"
    );
    // The records and the join's stream time.
    assert!(stored <= BOUND + 1, "{kind:?}: {stored} entries stored");
    assert!(held > 0, "{kind:?}: the window holds its records");
    let far = RECORDS + 2 * WITHIN + GRACE + 1;
    for (input, key) in [(0, 1_000), (1, 1_001)] {
        batch.push(Change::insert(
            vec![Value::BigInt(-1), Value::BigInt(key)],
            far,
        ));
        pipeline.process(input, &mut batch, &mut out);
        count(&mut out);
    }
    let pair_count = RECORDS / 2;
    assert_eq!(pairs, pair_count - pair_count / 4, "{kind:?}: pairs");
    let expected_unmatched = if kind == JoinKind::Left {
        pair_count / 4
    } else {
        0
    };
    assert_eq!(
        unmatched, expected_unmatched,
        "{kind:?}: left records with NULLs"
    );
    assert_eq!(
        pipeline.joins[0].sizes(),
        (1, 1),
        "{kind:?}: only the flush held"
    );
    assert_eq!(
        commit(&mut pipeline),
        3,
        "{kind:?}: the flush records and the stream time stored"
    );
}

#[test]
fn long_inner_stream_join_holds_one_window() {
    long_stream_join_holds_one_window(JoinKind::Inner);
}

#[test]
fn long_left_stream_join_holds_one_window() {
    long_stream_join_holds_one_window(JoinKind::Left);
}

// ------------------------------------------------- cases found by the properties

/// What an INNER stream-table join emits for `stream` (input 0) after the
/// whole `table` (input 1), GRACE 0.
fn inner_lookups(table: &[Change], stream: &[Change]) -> Vec<Change> {
    let mut p = stream_table(JoinKind::Inner, 0);
    let mut out = Vec::new();
    p.process(1, &mut table.to_vec(), &mut out);
    assert!(out.is_empty(), "table changes emit nothing");
    p.process(0, &mut stream.to_vec(), &mut out);
    out
}

/// A tombstone for key 3 at 6 ms arrives before the upsert of key 3 at
/// 0 ms: at 6 ms the row is deleted, so a stream record at 6 ms meets
/// nothing. (An upsert before the join, going by arrival order, dropped
/// the tombstone: found by the stream-table property, this is its shrunk
/// case.)
#[test]
fn a_tombstone_arriving_before_an_older_upsert_deletes_at_its_own_time() {
    let out = inner_lookups(
        &[
            Change::retract(vec![Value::Int(3), Value::Null], 6),
            Change::insert(vec![Value::Int(3), Value::Int(0)], 0),
        ],
        &[Change::insert(vec![Value::Int(0), Value::Int(3)], 6)],
    );
    assert_eq!(out, Vec::new(), "the row was deleted at 6 ms");
}

/// The row (3, 0) is upserted at 6 ms, then the same row at 0 ms: from
/// 0 ms on it is in the table, so a stream record at 3 ms joins it. (An
/// upsert before the join dropped the second write as unchanged.)
#[test]
fn an_unchanged_upsert_at_an_earlier_time_is_a_version_from_that_time() {
    let out = inner_lookups(
        &[
            Change::insert(vec![Value::Int(3), Value::Int(0)], 6),
            Change::insert(vec![Value::Int(3), Value::Int(0)], 0),
        ],
        &[Change::insert(vec![Value::Int(0), Value::Int(3)], 3)],
    );
    assert_eq!(
        out,
        vec![Change::insert(
            vec![Value::Int(0), Value::Int(3), Value::Int(3), Value::Int(0)],
            3
        )],
        "the row is there from 0 ms"
    );
}

/// Before its first stream record, a stream-table join's snapshot is what
/// its commits wrote: no stream-time entry yet (it once held one that
/// `drain_dirty` had not written).
#[test]
fn a_stream_table_snapshot_before_any_stream_record_is_the_committed_state() {
    let mut p = stream_table(JoinKind::Inner, 0);
    let mut out = Vec::new();
    p.process(
        1,
        &mut vec![Change::insert(vec![Value::Int(1), Value::Int(0)], 0)],
        &mut out,
    );
    let mut writes = Vec::new();
    p.drain_dirty(&mut writes);
    let mut committed: Vec<_> = writes
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    committed.sort();
    let mut snapshot = Vec::new();
    p.snapshot(&mut snapshot);
    snapshot.sort();
    assert_eq!(snapshot, committed);
}

/// A stream record older than its key's first version meets nothing, also
/// when it is behind stream time by more than the grace period (found by
/// the Nexmark join: bids arriving out of order met auctions created after
/// them, the oldest version kept standing in for a history forgotten).
#[test]
fn a_late_record_older_than_every_version_meets_nothing() {
    let out = inner_lookups(
        &[Change::insert(vec![Value::Int(3), Value::Int(0)], 5)],
        &[
            // Moves stream time to 100: the next record is late.
            Change::insert(vec![Value::Int(0), Value::Int(9)], 100),
            Change::insert(vec![Value::Int(1), Value::Int(3)], 2),
            Change::insert(vec![Value::Int(2), Value::Int(3)], 50),
        ],
    );
    assert_eq!(
        out,
        vec![Change::insert(
            vec![Value::Int(2), Value::Int(3), Value::Int(3), Value::Int(0)],
            50
        )],
        "only the record after the version meets it"
    );
}

/// A join's inputs decode only the columns the join keys and the operators
/// after it read, each at its place in the joined row; an upsert before a
/// join passes every column on.
#[test]
fn join_inputs_decode_only_the_columns_read() {
    let pipeline = |left_chain: Vec<Operator>| {
        Pipeline::joined(
            vec![left_chain, Vec::new()],
            vec![Join::new(
                JoinKind::Left,
                JoinShape::StreamTable { grace: 0 },
                Expr::Column(1),
                Expr::Column(0),
                3,
                3,
            )],
            vec![Operator::Project(crate::dataflow::Project {
                exprs: vec![Expr::Column(0), Expr::Column(5)],
            })],
        )
    };
    let p = pipeline(Vec::new());
    assert_eq!(p.columns_read(0, 3), Some(vec![true, true, false]));
    assert_eq!(p.columns_read(1, 3), Some(vec![true, false, true]));
    let p = pipeline(upsert_chain());
    assert_eq!(p.columns_read(0, 3), None);
    assert_eq!(p.columns_read(1, 3), Some(vec![true, false, true]));
}
