//! Operator tests: table-driven cases in a tiny changelog notation, and
//! property tests that what a pipeline emits, applied to a materialized
//! view, equals recomputing the query from scratch over the same input,
//! whatever the batch boundaries and across a restart from persisted state.
//!
//! Notation: changes separated by `;`. `+ a 1 @1000` inserts the row
//! `['a', 1]` at event time 1000 (0 when `@` is left out), `- a 1`
//! retracts it. A token is `null`, an integer (BIGINT) or else a string.
//! Expected output is compared as a multiset per batch (the operators emit
//! groups in no particular order); the order within a group is checked by
//! the [`Harness`], which refuses a retraction of a row that is not live and
//! an insert over a live row.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;
use crate::binder::AggCall;
use crate::expr::{agg, BinaryOp, Expr};
use crate::parser::{WindowClause, WindowKind};
use crate::types::DataType;
use crate::value::{Row, Value};

// ---------------------------------------------------------------- notation

fn parse_value(token: &str) -> Value {
    if token == "null" {
        Value::Null
    } else if let Ok(n) = token.parse::<i64>() {
        Value::BigInt(n)
    } else {
        Value::str(token)
    }
}

fn parse_changes(text: &str) -> Vec<Change> {
    text.split(';')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let mut tokens = item.split_whitespace();
            let diff = match tokens.next() {
                Some("+") => 1,
                Some("-") => -1,
                _ => panic!("change {item:?} must start with + or -"),
            };
            let mut row = Vec::new();
            let mut time = 0;
            for t in tokens {
                match t.strip_prefix('@') {
                    Some(ms) => time = ms.parse().unwrap(),
                    None => row.push(parse_value(t)),
                }
            }
            Change::new(row, time, diff)
        })
        .collect()
}

fn fmt_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        v => v.to_string(),
    }
}

/// A change in the notation, without its time.
fn fmt_change(c: &Change) -> String {
    let mut s = String::from(if c.diff > 0 { "+" } else { "-" });
    for v in &c.row {
        s.push(' ');
        s.push_str(&fmt_value(v));
    }
    s
}

fn sorted_text(changes: &[Change]) -> Vec<String> {
    let mut text: Vec<String> = changes.iter().map(fmt_change).collect();
    text.sort();
    text
}

// ---------------------------------------------------------------- builders

fn count_star() -> AggCall {
    AggCall {
        func: agg::lookup("COUNT").unwrap(),
        args: vec![],
        arg_types: vec![],
        params: vec![],
        return_type: DataType::BigInt,
    }
}

/// `name(column)` over a BIGINT column; COUNT, SUM, MIN and MAX all return
/// a BIGINT for it.
fn call(name: &str, column: usize) -> AggCall {
    AggCall {
        func: agg::lookup(name).unwrap(),
        args: vec![Expr::Column(column)],
        arg_types: vec![DataType::BigInt],
        params: vec![],
        return_type: DataType::BigInt,
    }
}

/// COUNT(*), COUNT(c), SUM(c), MIN(c), MAX(c): what [`stats`] recomputes.
fn five_calls(column: usize) -> Vec<AggCall> {
    vec![
        count_star(),
        call("COUNT", column),
        call("SUM", column),
        call("MIN", column),
        call("MAX", column),
    ]
}

fn aggregate(
    group_by: &[usize],
    calls: Vec<AggCall>,
    window: Option<WindowClause>,
    emit_final: bool,
    insert_only: bool,
) -> Operator {
    let group_by = group_by.iter().map(|&i| Expr::Column(i)).collect();
    let op = Aggregate::try_new(group_by, calls, window.as_ref(), emit_final, insert_only).unwrap();
    Operator::Aggregate(Box::new(op))
}

fn window(kind: WindowKind, grace: Option<i64>) -> Option<WindowClause> {
    Some(WindowClause {
        kind,
        grace,
        retention: None,
    })
}

fn tumbling(size: i64, grace: Option<i64>) -> Option<WindowClause> {
    window(WindowKind::Tumbling { size }, grace)
}

fn hopping(size: i64, advance: i64, grace: Option<i64>) -> Option<WindowClause> {
    window(WindowKind::Hopping { size, advance }, grace)
}

fn session(gap: i64, grace: Option<i64>) -> Option<WindowClause> {
    window(WindowKind::Session { gap }, grace)
}

/// `WHERE/HAVING column >= n`.
fn at_least(column: usize, n: i64) -> Operator {
    Operator::Filter(Filter {
        predicate: Expr::Binary {
            op: BinaryOp::GtEq,
            left: Box::new(Expr::Column(column)),
            right: Box::new(Expr::Literal(Value::BigInt(n))),
        },
    })
}

// ---------------------------------------------------------------- harness

/// Runs a pipeline batch by batch as the runtime does: commits its dirty
/// state to a model store after every batch, and applies what it emits to a
/// materialized view keyed by the output's identifying columns.
struct Harness {
    pipeline: Pipeline,
    /// Leading output columns that identify a row: the group values, then
    /// WINDOWSTART when windowed.
    key_len: usize,
    view: BTreeMap<Vec<Value>, Row>,
    store: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Late drops counted by pipelines replaced by [`Harness::restart`].
    late_before_restart: u64,
}

impl Harness {
    fn new(operators: Vec<Operator>, key_len: usize) -> Harness {
        Harness {
            pipeline: Pipeline::new(operators),
            key_len,
            view: BTreeMap::new(),
            store: BTreeMap::new(),
            late_before_restart: 0,
        }
    }

    /// Processes one batch and commits; returns what the pipeline emitted.
    fn push(&mut self, input: Vec<Change>) -> Vec<Change> {
        let mut out = self.process(input);
        out.extend(self.commit());
        out
    }

    /// Processes one batch without committing; returns what the pipeline
    /// emitted.
    fn process(&mut self, mut input: Vec<Change>) -> Vec<Change> {
        let mut out = Vec::new();
        self.pipeline.process(0, &mut input, &mut out);
        assert!(input.is_empty(), "the pipeline must consume its input");
        for c in &out {
            self.apply(c);
        }
        out
    }

    /// Flushes and commits as the runtime does; returns what the flush
    /// emitted.
    fn commit(&mut self) -> Vec<Change> {
        let mut out = Vec::new();
        self.pipeline.flush(&mut out);
        for c in &out {
            self.apply(c);
        }
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
        out
    }

    fn apply(&mut self, c: &Change) {
        let key = c.row[..self.key_len].to_vec();
        match c.diff {
            1 => {
                if let Some(old) = self.view.insert(key, c.row.clone()) {
                    panic!(
                        "{} inserted over the live row {:?}",
                        fmt_change(c),
                        old.iter().map(fmt_value).collect::<Vec<_>>()
                    );
                }
            }
            -1 => {
                let old = self.view.remove(&key);
                assert_eq!(
                    old.as_ref(),
                    Some(&c.row),
                    "{} retracts a row that is not live",
                    fmt_change(c)
                );
            }
            d => panic!("diff {d} in {}", fmt_change(c)),
        }
    }

    /// Replaces the pipeline with `operators` (built like the first) loaded
    /// from the store: a kill and restart after the last commit.
    fn restart(&mut self, operators: Vec<Operator>) {
        let mut fresh = Pipeline::new(operators);
        for (k, v) in &self.store {
            fresh.restore(k, v).unwrap();
        }
        self.late_before_restart += self.pipeline.metrics.late_drops;
        self.pipeline = fresh;
    }

    fn late_drops(&self) -> u64 {
        self.late_before_restart + self.pipeline.metrics.late_drops
    }

    /// State entries a pipeline restored from the store holds.
    fn restored_state_size(&self, operators: Vec<Operator>) -> usize {
        let mut fresh = Pipeline::new(operators);
        for (k, v) in &self.store {
            fresh.restore(k, v).unwrap();
        }
        fresh.state_size()
    }
}

/// One table-driven case: batches in, expected changes out.
struct Case {
    name: &'static str,
    operators: fn() -> Vec<Operator>,
    key_len: usize,
    /// `(input, expected output)` per batch.
    batches: &'static [(&'static str, &'static str)],
    late_drops: u64,
    /// State entries in memory at the end, over all operators.
    state_size: usize,
}

/// Runs each case twice: straight through, and restarting from the store
/// before every batch; both must emit exactly the expected changes.
fn check(cases: &[Case]) {
    for case in cases {
        for restarts in [false, true] {
            let name = format!("{} (restarts: {restarts})", case.name);
            let mut h = Harness::new((case.operators)(), case.key_len);
            for (i, (input, expected)) in case.batches.iter().enumerate() {
                if restarts {
                    h.restart((case.operators)());
                }
                let out = h.push(parse_changes(input));
                assert_eq!(
                    sorted_text(&out),
                    sorted_text(&parse_changes(expected)),
                    "{name}: batch {i} `{input}`"
                );
            }
            assert_eq!(h.late_drops(), case.late_drops, "{name}: late drops");
            assert_eq!(
                h.pipeline.state_size(),
                case.state_size,
                "{name}: state size"
            );
            assert_eq!(
                h.restored_state_size((case.operators)()),
                case.state_size,
                "{name}: state size after a restore (deleted entries must be deleted)"
            );
        }
    }
}

// ---------------------------------------------------------------- cases

/// `GROUP BY c0` with COUNT(*), SUM(c1) over a stream.
fn count_sum(window: Option<WindowClause>, emit_final: bool) -> Vec<Operator> {
    vec![aggregate(
        &[0],
        vec![count_star(), call("SUM", 1)],
        window,
        emit_final,
        true,
    )]
}

/// `GROUP BY c0` with [`five_calls`] over c1, over a stream.
fn count_five(window: Option<WindowClause>, emit_final: bool) -> Vec<Operator> {
    vec![aggregate(&[0], five_calls(1), window, emit_final, true)]
}

#[test]
fn unwindowed_aggregates() {
    check(&[
        Case {
            name: "a group's first row inserts; a later one retracts and reinserts",
            operators: || count_sum(None, false),
            key_len: 1,
            batches: &[
                ("+ a 1; + b 2", "+ a 1 1; + b 1 2"),
                ("+ a 3", "- a 1 1; + a 2 4"),
            ],
            late_drops: 0,
            state_size: 2,
        },
        Case {
            name: "one retraction and one insert per group and batch",
            operators: || count_sum(None, false),
            key_len: 1,
            batches: &[
                ("+ a 1", "+ a 1 1"),
                ("+ a 2; + a 3; + b 1", "- a 1 1; + a 3 6; + b 1 1"),
            ],
            late_drops: 0,
            state_size: 2,
        },
        Case {
            name: "an unchanged result emits nothing",
            operators: || vec![aggregate(&[0], vec![call("MAX", 1)], None, false, true)],
            key_len: 1,
            batches: &[("+ a 5", "+ a 5"), ("+ a 3", ""), ("+ a 7", "- a 5; + a 7")],
            late_drops: 0,
            state_size: 1,
        },
        Case {
            name: "a NULL group key drops the row",
            operators: || count_sum(None, false),
            key_len: 1,
            batches: &[("+ null 5; + a 1", "+ a 1 1"), ("+ null 7", "")],
            late_drops: 0,
            state_size: 1,
        },
        Case {
            name: "GROUP BY two columns; NULL in either drops the row",
            operators: || vec![aggregate(&[0, 1], vec![count_star()], None, false, true)],
            key_len: 2,
            batches: &[
                ("+ a x; + a y; + a x", "+ a x 2; + a y 1"),
                ("+ a null; + null x", ""),
            ],
            late_drops: 0,
            state_size: 2,
        },
        Case {
            name: "NULL arguments: SUM is 0 over none, MIN/MAX NULL, COUNT(c) skips",
            operators: || vec![aggregate(&[0], five_calls(1), None, false, true)],
            key_len: 1,
            batches: &[
                ("+ a null", "+ a 1 0 0 null null"),
                ("+ a 4; + a -2", "- a 1 0 0 null null; + a 3 2 2 -2 4"),
            ],
            late_drops: 0,
            state_size: 1,
        },
    ]);
}

/// `GROUP BY c0` with COUNT(*), SUM, MIN, MAX of c1 over a changelog.
fn retractable() -> Vec<Operator> {
    vec![aggregate(
        &[0],
        vec![count_star(), call("SUM", 1), call("MIN", 1), call("MAX", 1)],
        None,
        false,
        false,
    )]
}

#[test]
fn retractions() {
    check(&[
        Case {
            name: "a retraction undoes its row; a group left empty is retracted",
            operators: retractable,
            key_len: 1,
            batches: &[
                ("+ a 1; + a 5; + b 2", "+ a 2 6 1 5; + b 1 2 2 2"),
                ("- a 1", "- a 2 6 1 5; + a 1 5 5 5"),
                ("- a 5", "- a 1 5 5 5"),
                ("+ a 3", "+ a 1 3 3 3"),
            ],
            late_drops: 0,
            state_size: 2,
        },
        Case {
            name: "retracting and re-adding a row in one batch emits nothing",
            operators: retractable,
            key_len: 1,
            batches: &[
                ("+ a 1", "+ a 1 1 1 1"),
                ("- a 1; + a 1", ""),
                ("- a 1; + b 1", "- a 1 1 1 1; + b 1 1 1 1"),
            ],
            late_drops: 0,
            state_size: 1,
        },
        Case {
            name: "a group created and emptied within one batch emits nothing",
            operators: retractable,
            key_len: 1,
            batches: &[("+ a 1; - a 1", "")],
            late_drops: 0,
            state_size: 0,
        },
    ]);
}

/// A table `(user, region, amount)` keyed by user, `GROUP BY region` with
/// COUNT(*) and SUM(amount).
fn by_region() -> Vec<Operator> {
    vec![
        Operator::Upsert(Upsert::new(vec![0])),
        aggregate(&[1], vec![count_star(), call("SUM", 2)], None, false, false),
    ]
}

#[test]
fn upsert_feeding_an_aggregate() {
    check(&[Case {
        name: "a user moving from region A to B moves one count",
        operators: by_region,
        key_len: 1,
        batches: &[
            ("+ u1 A 10; + u2 A 5", "+ A 2 15"),
            ("+ u1 B 10", "- A 2 15; + A 1 5; + B 1 10"),
            ("+ u1 B 10", ""),
            ("+ u1 B 20", "- B 1 10; + B 1 20"),
            ("- u2 null null", "- A 1 5"),
            ("- u3 null null", ""),
            ("+ u1 null 1", "- B 1 20"),
        ],
        late_drops: 0,
        // The table still holds u1 (with a NULL region); no group is left.
        state_size: 1,
    }]);
}

#[test]
fn where_before_an_aggregate() {
    check(&[Case {
        name: "a table row updated to stop matching WHERE leaves its group",
        operators: || {
            let mut ops = by_region();
            ops.insert(1, at_least(2, 10));
            ops
        },
        key_len: 1,
        batches: &[
            ("+ u1 A 10; + u2 A 20", "+ A 2 30"),
            ("+ u1 A 5", "- A 2 30; + A 1 20"),
            ("+ u1 A 15", "- A 1 20; + A 2 35"),
            ("+ u3 B 1", ""),
        ],
        late_drops: 0,
        state_size: 4,
    }]);
}

#[test]
fn having_after_an_aggregate() {
    check(&[Case {
        name: "HAVING COUNT(*) >= 2 retracts a group that stops matching",
        operators: || {
            vec![
                Operator::Upsert(Upsert::new(vec![0])),
                aggregate(&[1], vec![count_star()], None, false, false),
                at_least(1, 2),
            ]
        },
        key_len: 1,
        batches: &[
            ("+ u1 A", ""),
            ("+ u2 A", "+ A 2"),
            ("+ u3 A", "- A 2; + A 3"),
            ("+ u1 B; + u2 B", "- A 3; + B 2"),
            ("- u3 null", ""),
            ("+ u3 B", "- B 2; + B 3"),
        ],
        late_drops: 0,
        // u1, u2, u3 and the group B.
        state_size: 4,
    }]);
}

#[test]
fn tumbling_windows() {
    check(&[
        Case {
            name: "rows land in [start, start + size); an out-of-order row updates its window",
            operators: || count_sum(tumbling(1000, None), false),
            key_len: 2,
            batches: &[
                ("+ a 1 @100; + a 2 @999", "+ a 0 1000 2 3"),
                ("+ a 4 @1000", "+ a 1000 2000 1 4"),
                ("+ a 1 @500", "- a 0 1000 2 3; + a 0 1000 3 4"),
                ("+ a 1 @-1", "+ a -1000 0 1 1"),
            ],
            late_drops: 0,
            state_size: 3,
        },
        Case {
            name: "a window closes when stream time reaches end + grace",
            operators: || count_sum(tumbling(1000, Some(500)), false),
            key_len: 2,
            batches: &[
                ("+ a 1 @100", "+ a 0 1000 1 1"),
                ("+ b 1 @1499", "+ b 1000 2000 1 1"),
                ("+ a 1 @999", "- a 0 1000 1 1; + a 0 1000 2 2"),
                ("+ b 1 @1500", "- b 1000 2000 1 1; + b 1000 2000 2 2"),
                ("+ a 1 @999", ""),
                ("+ a 1 @1000", "+ a 1000 2000 1 1"),
            ],
            late_drops: 1,
            state_size: 2,
        },
        Case {
            name: "the default grace is 24 hours",
            operators: || count_sum(tumbling(1000, None), false),
            key_len: 2,
            batches: &[
                ("+ a 1 @0", "+ a 0 1000 1 1"),
                ("+ b 1 @86400999", "+ b 86400000 86401000 1 1"),
                ("+ a 1 @999", "- a 0 1000 1 1; + a 0 1000 2 2"),
                ("+ b 1 @86401000", "+ b 86401000 86402000 1 1"),
                ("+ a 1 @999", ""),
            ],
            late_drops: 1,
            state_size: 2,
        },
        Case {
            name: "a row is late as soon as an earlier row of its batch closed its window",
            operators: || count_sum(tumbling(1000, Some(0)), false),
            key_len: 2,
            batches: &[("+ a 1 @1000; + a 1 @999; + a 1 @1001", "+ a 1000 2000 2 2")],
            late_drops: 1,
            state_size: 1,
        },
    ]);
}

#[test]
fn hopping_windows() {
    check(&[
        Case {
            name: "a row counts in every window that contains it",
            operators: || count_sum(hopping(1000, 250, None), false),
            key_len: 2,
            batches: &[(
                "+ a 1 @600",
                "+ a -250 750 1 1; + a 0 1000 1 1; + a 250 1250 1 1; + a 500 1500 1 1",
            )],
            late_drops: 0,
            state_size: 4,
        },
        Case {
            name: "a row is dropped from closed windows only; late when all are closed",
            operators: || count_sum(hopping(1000, 500, Some(0)), false),
            key_len: 2,
            batches: &[
                ("+ a 1 @700", "+ a 0 1000 1 1; + a 500 1500 1 1"),
                (
                    "+ a 1 @1100",
                    "- a 500 1500 1 1; + a 500 1500 2 2; + a 1000 2000 1 1",
                ),
                ("+ a 1 @900", "- a 500 1500 2 2; + a 500 1500 3 3"),
                ("+ a 1 @2000", "+ a 1500 2500 1 1; + a 2000 3000 1 1"),
                ("+ a 1 @1400", ""),
            ],
            late_drops: 1,
            state_size: 2,
        },
    ]);
}

#[test]
fn session_windows() {
    check(&[
        Case {
            name: "a row within the gap extends a session; a bridging row merges two",
            operators: || count_sum(session(1000, None), false),
            key_len: 2,
            batches: &[
                ("+ a 1 @0", "+ a 0 0 1 1"),
                ("+ a 2 @2000", "+ a 2000 2000 1 2"),
                (
                    "+ a 3 @1000",
                    "- a 0 0 1 1; - a 2000 2000 1 2; + a 0 2000 3 6",
                ),
                // Exactly `gap` after the end still joins.
                ("+ a 1 @3000", "- a 0 2000 3 6; + a 0 3000 4 7"),
                ("+ a 1 @-1000", "- a 0 3000 4 7; + a -1000 3000 5 8"),
                ("+ b 1 @500", "+ b 500 500 1 1"),
                ("+ a 1 @4001", "+ a 4001 4001 1 1"),
            ],
            late_drops: 0,
            state_size: 3,
        },
        Case {
            name: "rows of one batch merge into one session in any order",
            operators: || count_sum(session(1000, None), false),
            key_len: 2,
            batches: &[("+ a 1 @2000; + a 1 @0; + a 1 @1000", "+ a 0 2000 3 3")],
            late_drops: 0,
            state_size: 1,
        },
        Case {
            name: "a row older than stream time - grace is late unless an open session reaches it",
            operators: || count_sum(session(1000, Some(500)), false),
            key_len: 2,
            batches: &[
                ("+ a 1 @0", "+ a 0 0 1 1"),
                ("+ a 1 @1000", "- a 0 0 1 1; + a 0 1000 2 2"),
                ("+ b 1 @2000", "+ b 2000 2000 1 1"),
                // Ends at 1600 >= 2000 - 500: accepted.
                ("+ a 1 @1600", "- a 0 1000 2 2; + a 0 1600 3 3"),
                // Inside a session that ends late enough: accepted.
                ("+ a 1 @1400", "- a 0 1600 3 3; + a 0 1600 4 4"),
                // A new session ending at 1200 < 1500: late.
                ("+ c 1 @1200", ""),
                // Stream time 3101 > 1600 + 1000 + 500 closes a's session.
                ("+ b 1 @3101", "+ b 3101 3101 1 1"),
                // Would have joined the closed session; 2600 < 3101 - 500.
                ("+ a 1 @2600", ""),
                ("+ a 1 @2601", "+ a 2601 2601 1 1"),
            ],
            late_drops: 2,
            state_size: 3,
        },
        Case {
            name: "an old row cannot move a session's start onto a closed session",
            operators: || count_sum(session(1000, Some(0)), false),
            key_len: 2,
            batches: &[
                ("+ a 1 @0", "+ a 0 0 1 1"),
                // Stream time 1001 closes [0, 0].
                ("+ a 1 @1001", "+ a 1001 1001 1 1"),
                ("+ a 1 @1100", "- a 1001 1001 1 1; + a 1001 1100 2 2"),
                // Within the gap before 1001, but older than 1100 - 0:
                // accepting it would let the next row restart a session at 0.
                ("+ a 1 @1", ""),
                ("+ a 1 @0", ""),
                // Inside the open session: accepted although old.
                ("+ a 1 @1050", "- a 1001 1100 2 2; + a 1001 1100 3 3"),
            ],
            late_drops: 2,
            state_size: 1,
        },
    ]);
}

#[test]
fn emit_final() {
    check(&[
        Case {
            name: "tumbling: one row per window when it closes, none while open",
            operators: || count_sum(tumbling(1000, Some(0)), true),
            key_len: 2,
            batches: &[
                ("+ a 1 @100; + b 2 @200", ""),
                ("+ a 3 @900", ""),
                ("+ c 1 @1000", "+ a 0 1000 2 4; + b 0 1000 1 2"),
                ("+ a 1 @500", ""),
                ("+ c 1 @2500", "+ c 1000 2000 1 1"),
            ],
            late_drops: 1,
            state_size: 1,
        },
        Case {
            name: "tumbling: grace keeps a window open until end + grace",
            operators: || count_sum(tumbling(1000, Some(500)), true),
            key_len: 2,
            batches: &[
                ("+ a 1 @100", ""),
                ("+ a 1 @1499", ""),
                ("+ a 1 @999", ""),
                ("+ a 1 @1500", "+ a 0 1000 2 2"),
            ],
            late_drops: 0,
            state_size: 1,
        },
        Case {
            name: "hopping: each window emits once as it closes",
            operators: || count_sum(hopping(1000, 500, Some(0)), true),
            key_len: 2,
            batches: &[
                ("+ a 1 @700", ""),
                ("+ a 1 @1200", "+ a 0 1000 1 1"),
                ("+ a 1 @2000", "+ a 500 1500 2 2; + a 1000 2000 1 1"),
            ],
            late_drops: 0,
            state_size: 2,
        },
        Case {
            name: "session: emits when stream time passes end + gap + grace",
            operators: || count_sum(session(1000, Some(0)), true),
            key_len: 2,
            batches: &[
                ("+ a 1 @0", ""),
                ("+ a 1 @1000; + a 1 @2000", ""),
                ("+ a 1 @3000", ""),
                ("+ b 1 @4000", ""),
                ("+ b 1 @4001", "+ a 0 3000 4 4"),
            ],
            late_drops: 0,
            state_size: 1,
        },
        Case {
            name: "session: sessions merged before closing emit once",
            operators: || count_sum(session(1000, Some(5000)), true),
            key_len: 2,
            batches: &[
                ("+ a 1 @0; + a 1 @2000", ""),
                ("+ a 1 @1000", ""),
                ("+ z 1 @10000", "+ a 0 2000 3 3"),
            ],
            late_drops: 0,
            state_size: 1,
        },
    ]);
}

#[test]
fn a_row_whose_expression_fails_is_counted_and_skipped() {
    // SUM(-c1): negating the smallest BIGINT overflows.
    let negated = AggCall {
        args: vec![Expr::Negate(Box::new(Expr::Column(1)))],
        ..call("SUM", 1)
    };
    let mut h = Harness::new(
        vec![aggregate(
            &[0],
            vec![count_star(), negated],
            None,
            false,
            true,
        )],
        1,
    );
    let out = h.push(parse_changes("+ a 1; + a -9223372036854775808; + b 2"));
    assert_eq!(sorted_text(&out), ["+ a 1 -1", "+ b 1 -2"]);
    assert_eq!(h.pipeline.metrics.errors, 1);
    assert!(h.pipeline.metrics.last_error.is_some());
}

#[test]
fn output_rowtime_is_the_latest_contributing_event_time() {
    let mut h = Harness::new(count_sum(tumbling(1000, Some(0)), false), 2);
    let out = h.push(parse_changes("+ a 1 @300; + a 1 @700; + a 1 @500"));
    assert_eq!(
        out,
        [Change::insert(
            parse_changes("+ a 0 1000 3 3")[0].row.clone(),
            700
        )]
    );

    let mut h = Harness::new(count_sum(tumbling(1000, Some(0)), true), 2);
    h.push(parse_changes("+ a 1 @300; + a 1 @700; + a 1 @500"));
    let out = h.push(parse_changes("+ b 1 @1000"));
    assert_eq!(
        out,
        [Change::insert(
            parse_changes("+ a 0 1000 3 3")[0].row.clone(),
            700
        )]
    );
}

#[test]
fn pipeline_prefixes_state_keys_with_the_operator_index() {
    let input = parse_changes("+ u1 A 10; + u2 A 5; + u1 B 1; - u2 null null");

    // The same operators run on their own.
    let mut ops = by_region();
    let (mut mid, mut out) = (Vec::new(), Vec::new());
    let mut metrics = Metrics::default();
    ops[0].process(&mut input.clone(), &mut mid, &mut metrics);
    ops[1].process(&mut mid, &mut out, &mut metrics);
    let mut expected = Vec::new();
    for (i, op) in ops.iter_mut().enumerate() {
        let mut writes = Vec::new();
        op.drain_dirty(&mut writes);
        assert!(!writes.is_empty(), "operator {i} wrote no state");
        for (k, v) in writes {
            expected.push(([vec![i as u8], k].concat(), v));
        }
    }

    let mut pipeline = Pipeline::new(by_region());
    pipeline.process(0, &mut input.clone(), &mut Vec::new());
    let mut writes = Vec::new();
    pipeline.drain_dirty(&mut writes);
    writes.sort();
    expected.sort();
    assert_eq!(writes, expected);

    // Nothing changed since: nothing to write.
    let mut again = Vec::new();
    pipeline.drain_dirty(&mut again);
    assert!(again.is_empty(), "unchanged state written again: {again:?}");

    // Restoring routes each entry back to its operator.
    let mut restored = Pipeline::new(by_region());
    for (k, v) in &writes {
        if let Some(v) = v {
            restored.restore(k, v).unwrap();
        }
    }
    assert_eq!(restored.state_size(), pipeline.state_size());
    let mut got = Vec::new();
    restored.process(0, &mut parse_changes("+ u1 A 1"), &mut got);
    assert_eq!(sorted_text(&got), ["+ A 1 1", "- B 1 1"]);
}

#[test]
fn project_computes_columns_and_counts_failures() {
    let mut pipeline = Pipeline::new(vec![Operator::Project(Project {
        exprs: vec![Expr::Negate(Box::new(Expr::Column(1))), Expr::Column(0)],
    })]);
    let mut out = Vec::new();
    pipeline.process(
        0,
        &mut parse_changes("+ a 1 @5; - b 2 @6; + c -9223372036854775808"),
        &mut out,
    );
    assert_eq!(out, parse_changes("+ -1 a @5; - -2 b @6"));
    assert_eq!(pipeline.metrics.errors, 1);
}

#[test]
fn an_emptied_group_is_retracted_at_the_time_of_the_change_that_emptied_it() {
    // Its time becomes the tombstone's ROWTIME in the sink topic.
    let mut h = Harness::new(by_region(), 1);
    h.push(parse_changes("+ u1 A 10 @1000"));
    let out = h.push(parse_changes("- u1 null null @2000"));
    let row = parse_changes("- A 1 10").remove(0).row;
    assert_eq!(out, [Change::retract(row, 2000)]);
}

/// Runs `input` one record per batch and as a single batch; returns both
/// final views and late-drop counts.
fn per_record_and_single_batch(
    operators: impl Fn() -> Vec<Operator>,
    key_len: usize,
    input: &str,
) -> [(BTreeMap<Vec<Value>, Row>, u64); 2] {
    let changes = parse_changes(input);
    let mut one_by_one = Harness::new(operators(), key_len);
    for c in &changes {
        one_by_one.push(vec![c.clone()]);
    }
    let mut single = Harness::new(operators(), key_len);
    single.push(changes);
    [
        (one_by_one.view.clone(), one_by_one.late_drops()),
        (single.view.clone(), single.late_drops()),
    ]
}

#[test]
fn a_session_closed_mid_batch_is_not_merged_into() {
    // gap 1000, grace 0. After @1500, stream time 1500 > 0 + 1000 + 0 closes
    // the session [0, 0]. @800 is within the gap of both [0, 0] and
    // [1500, 1500]; it must join only the open one, as it does when the
    // session was closed by an earlier batch.
    for emit_final in [false, true] {
        let [per_record, single] = per_record_and_single_batch(
            || count_sum(session(1000, Some(0)), emit_final),
            2,
            "+ a 1 @0; + a 1 @1500; + a 1 @800",
        );
        assert_eq!(single, per_record, "emit final: {emit_final}");
    }
}

// ---------------------------------------------------------------- models

/// COUNT(*), COUNT(v), SUM(v), MIN(v), MAX(v) of `values`, as
/// [`five_calls`] computes them.
fn stats(values: &[Option<i64>]) -> Vec<Value> {
    let present: Vec<i64> = values.iter().flatten().copied().collect();
    let opt = |v: Option<&i64>| v.map_or(Value::Null, |&x| Value::BigInt(x));
    vec![
        Value::BigInt(values.len() as i64),
        Value::BigInt(present.len() as i64),
        Value::BigInt(present.iter().sum()),
        opt(present.iter().min()),
        opt(present.iter().max()),
    ]
}

fn big_or_null(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::BigInt)
}

fn key_value(k: Option<u8>) -> Value {
    k.map_or(Value::Null, |k| Value::str(&format!("k{k}")))
}

/// A stream record `[key, value]` at `time`.
fn stream_change(key: Option<u8>, value: Option<i64>, time: i64) -> Change {
    Change::insert(vec![key_value(key), big_or_null(value)], time)
}

fn value_of(c: &Change, i: usize) -> Option<i64> {
    c.row[i].as_i64()
}

/// The input cut at the given points (an empty batch where two coincide is
/// fine: the runtime can hand one over).
fn split(changes: &[Change], cuts: &[Index]) -> Vec<Vec<Change>> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(changes.len() + 1)).collect();
    at.push(0);
    at.push(changes.len());
    at.sort_unstable();
    at.windows(2)
        .map(|w| changes[w[0]..w[1]].to_vec())
        .collect()
}

/// Every `[start, start + size)` with `start` a multiple of `advance` that
/// contains `t`, by brute force.
fn windows_of(t: i64, size: i64, advance: i64) -> Vec<(i64, i64)> {
    let lo = (t - size).div_euclid(advance) - 1;
    let hi = t.div_euclid(advance) + 1;
    (lo..=hi)
        .map(|k| k * advance)
        .filter(|&s| s <= t && t < s + size)
        .map(|s| (s, s + size))
        .collect()
}

fn size_advance(kind: WindowKind) -> (i64, i64) {
    match kind {
        WindowKind::Tumbling { size } => (size, size),
        WindowKind::Hopping { size, advance } => (size, advance),
        WindowKind::Session { .. } => unreachable!("not a fixed window"),
    }
}

type View = BTreeMap<Vec<Value>, Row>;

/// The contract for tumbling and hopping windows, record by record: stream
/// time first, then the record goes to each of its windows not yet closed
/// (`stream_time >= end + grace`), and is late if all were. Returns what
/// EMIT CHANGES leaves in the view (every window that got a row), what EMIT
/// FINAL emits (the windows closed at the end), and the late count.
fn model_fixed(changes: &[Change], kind: WindowKind, grace: i64) -> (View, View, u64) {
    let (size, advance) = size_advance(kind);
    let mut windows: BTreeMap<(Value, i64), Vec<Option<i64>>> = BTreeMap::new();
    let mut stream_time = i64::MIN;
    let mut late = 0;
    for c in changes {
        stream_time = stream_time.max(c.time);
        let mut accepted = false;
        for (start, end) in windows_of(c.time, size, advance) {
            if stream_time >= end + grace {
                continue;
            }
            accepted = true;
            windows
                .entry((c.row[0].clone(), start))
                .or_default()
                .push(value_of(c, 1));
        }
        if !accepted {
            late += 1;
        }
    }
    let mut changes_view = View::new();
    let mut final_view = View::new();
    for ((key, start), values) in windows {
        let end = start + size;
        let mut row = vec![key.clone(), Value::BigInt(start), Value::BigInt(end)];
        row.extend(stats(&values));
        if end + grace <= stream_time {
            final_view.insert(row[..2].to_vec(), row.clone());
        }
        changes_view.insert(row[..2].to_vec(), row);
    }
    (changes_view, final_view, late)
}

/// Sessions per key from scratch: sort by time, split where consecutive
/// events are more than `gap` apart. Rows `[key, start, end, stats..]`.
fn sessionize(changes: &[Change], gap: i64) -> Vec<Row> {
    let mut by_key: BTreeMap<Value, Vec<(i64, Option<i64>)>> = BTreeMap::new();
    for c in changes {
        by_key
            .entry(c.row[0].clone())
            .or_default()
            .push((c.time, value_of(c, 1)));
    }
    let mut rows = Vec::new();
    for (key, mut events) in by_key {
        events.sort_by_key(|e| e.0);
        let mut session: Vec<(i64, Option<i64>)> = Vec::new();
        let mut flush = |session: &mut Vec<(i64, Option<i64>)>| {
            if let (Some(first), Some(last)) = (session.first(), session.last()) {
                let mut row = vec![key.clone(), Value::BigInt(first.0), Value::BigInt(last.0)];
                let values: Vec<Option<i64>> = session.iter().map(|e| e.1).collect();
                row.extend(stats(&values));
                rows.push(row);
            }
            session.clear();
        };
        for e in events {
            if session.last().is_some_and(|last| e.0 - last.0 > gap) {
                flush(&mut session);
            }
            session.push(e);
        }
        flush(&mut session);
    }
    rows
}

fn view_of(rows: Vec<Row>, key_len: usize) -> View {
    rows.into_iter()
        .map(|r| (r[..key_len].to_vec(), r))
        .collect()
}

// ---------------------------------------------------------------- strategies

/// `(key, value, time)` with keys `k0..` (some NULL with
/// `with_null_keys`), some NULL values, times in any order.
fn records(
    with_null_keys: bool,
    keys: u8,
    times: std::ops::Range<i64>,
) -> impl Strategy<Value = Vec<Change>> {
    let key = if with_null_keys {
        prop::option::weighted(0.9, 0..keys).boxed()
    } else {
        (0..keys).prop_map(Some).boxed()
    };
    prop::collection::vec((key, prop::option::weighted(0.9, -50i64..50), times), 0..60).prop_map(
        |records| {
            records
                .into_iter()
                .map(|(k, v, t)| stream_change(k, v, t))
                .collect()
        },
    )
}

/// Four keys over 25 seconds, negative times too.
fn stream_records(with_null_keys: bool) -> impl Strategy<Value = Vec<Change>> {
    records(with_null_keys, 4, -5_000..20_000)
}

fn batch_cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..8)
}

fn fixed_window() -> impl Strategy<Value = WindowKind> {
    prop_oneof![
        (200i64..3_000).prop_map(|size| WindowKind::Tumbling { size }),
        (200i64..3_000)
            .prop_flat_map(|size| (Just(size), 100..=size))
            .prop_map(|(size, advance)| WindowKind::Hopping { size, advance }),
    ]
}

/// One write to the table `(user, region, amount)` keyed by user: `None` is
/// a tombstone, a `None` region a row with a NULL region.
type TableWrite = (u8, Option<(Option<u8>, i64)>);

fn table_writes() -> impl Strategy<Value = Vec<TableWrite>> {
    prop::collection::vec(
        (
            0u8..6,
            prop::option::weighted(0.85, (prop::option::weighted(0.9, 0u8..3), 0i64..100)),
        ),
        0..60,
    )
}

fn table_change(&(user, ref write): &TableWrite, time: i64) -> Change {
    let user = Value::str(&format!("u{user}"));
    match write {
        Some((region, amount)) => Change::insert(
            vec![
                user,
                region.map_or(Value::Null, |r| Value::str(&format!("r{r}"))),
                Value::BigInt(*amount),
            ],
            time,
        ),
        None => Change::retract(vec![user, Value::Null, Value::Null], time),
    }
}

/// What a query over the table's final contents gives: `GROUP BY region`
/// with [`five_calls`] over amount, groups with fewer than `min_count` rows
/// left out (HAVING).
fn table_model(writes: &[TableWrite], min_count: i64) -> View {
    let mut table: BTreeMap<u8, (Option<u8>, i64)> = BTreeMap::new();
    for &(user, write) in writes {
        match write {
            Some(row) => table.insert(user, row),
            None => table.remove(&user),
        };
    }
    let mut groups: BTreeMap<u8, Vec<Option<i64>>> = BTreeMap::new();
    for (region, amount) in table.into_values() {
        if let Some(r) = region {
            groups.entry(r).or_default().push(Some(amount));
        }
    }
    groups
        .into_iter()
        .filter(|(_, amounts)| amounts.len() as i64 >= min_count)
        .map(|(r, amounts)| {
            let key = Value::str(&format!("r{r}"));
            let mut row = vec![key.clone()];
            row.extend(stats(&amounts));
            (vec![key], row)
        })
        .collect()
}

/// The shape of a query for the restart property.
#[derive(Debug, Clone, Copy)]
struct Query {
    window: Option<WindowKind>,
    grace: i64,
    emit_final: bool,
    /// A table source: Upsert in front, retractions.
    table: bool,
}

impl Query {
    /// Input rows are `(user, region, amount)`; the query groups by region
    /// with [`five_calls`] over amount.
    fn operators(&self) -> Vec<Operator> {
        let clause = self.window.and_then(|kind| window(kind, Some(self.grace)));
        let agg = aggregate(&[1], five_calls(2), clause, self.emit_final, !self.table);
        if self.table {
            vec![Operator::Upsert(Upsert::new(vec![0])), agg]
        } else {
            vec![agg]
        }
    }

    fn key_len(&self) -> usize {
        1 + usize::from(self.window.is_some())
    }

    /// The query's input: `writes` at `times`.
    fn input(&self, writes: &[TableWrite], times: &[i64]) -> Vec<Change> {
        writes
            .iter()
            .zip(times)
            .map(|(w, &t)| {
                let mut c = table_change(w, t);
                if !self.table {
                    // A stream has no tombstones: insert the key alone.
                    c.diff = 1;
                }
                c
            })
            .collect()
    }
}

fn query() -> impl Strategy<Value = Query> {
    let window = prop_oneof![
        Just(None),
        fixed_window().prop_map(Some),
        (100i64..2_000).prop_map(|gap| Some(WindowKind::Session { gap })),
    ];
    (window, 0i64..3_000, any::<bool>(), any::<bool>()).prop_map(
        |(window, grace, emit_final, table)| Query {
            window,
            grace,
            // EMIT FINAL needs a window; tables are not windowed.
            emit_final: emit_final && window.is_some(),
            table: table && window.is_none(),
        },
    )
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// (a) Unwindowed COUNT/SUM/MIN/MAX: the view equals recomputing over
    /// all inputs, whatever the batch boundaries.
    #[test]
    fn unwindowed_matches_recomputation(
        input in stream_records(true),
        cuts in batch_cuts(),
        insert_only in any::<bool>(),
    ) {
        let mut h = Harness::new(
            vec![aggregate(&[0], five_calls(1), None, false, insert_only)],
            1,
        );
        for batch in split(&input, &cuts) {
            h.push(batch);
        }
        let mut groups: BTreeMap<Value, Vec<Option<i64>>> = BTreeMap::new();
        for c in input.iter().filter(|c| !c.row[0].is_null()) {
            groups.entry(c.row[0].clone()).or_default().push(value_of(c, 1));
        }
        let expected = view_of(
            groups
                .into_iter()
                .map(|(k, values)| [vec![k], stats(&values)].concat())
                .collect(),
            1,
        );
        prop_assert_eq!(&h.view, &expected);
        prop_assert_eq!(h.pipeline.state_size(), expected.len());
        prop_assert_eq!(h.pipeline.metrics.errors, 0);
    }

    /// (b) Tumbling and hopping windows with the default 24h grace (no
    /// record is late): the view equals recomputing by window.
    #[test]
    fn fixed_windows_match_recomputation(
        input in stream_records(false),
        cuts in batch_cuts(),
        kind in fixed_window(),
    ) {
        let mut h = Harness::new(count_five(window(kind, None), false), 2);
        for batch in split(&input, &cuts) {
            h.push(batch);
        }
        let (size, advance) = size_advance(kind);
        let mut windows: BTreeMap<(Value, i64), Vec<Option<i64>>> = BTreeMap::new();
        for c in &input {
            for (start, _) in windows_of(c.time, size, advance) {
                windows.entry((c.row[0].clone(), start)).or_default().push(value_of(c, 1));
            }
        }
        let expected = view_of(
            windows
                .into_iter()
                .map(|((k, start), values)| {
                    [vec![k, Value::BigInt(start), Value::BigInt(start + size)], stats(&values)]
                        .concat()
                })
                .collect(),
            2,
        );
        prop_assert_eq!(&h.view, &expected);
        prop_assert_eq!(h.late_drops(), 0);
    }

    /// Tumbling and hopping windows with a short grace, out-of-order input:
    /// the view (EMIT CHANGES) or the emitted rows (EMIT FINAL) and the late
    /// count equal the record-by-record contract, whatever the batches; and
    /// closed windows leave memory.
    #[test]
    fn fixed_windows_with_lateness_match_the_contract(
        input in stream_records(false),
        cuts in batch_cuts(),
        kind in fixed_window(),
        grace in 0i64..3_000,
        emit_final in any::<bool>(),
    ) {
        let mut h = Harness::new(count_five(window(kind, Some(grace)), emit_final), 2);
        for batch in split(&input, &cuts) {
            h.push(batch);
        }
        let (changes_view, final_view, late) = model_fixed(&input, kind, grace);
        let expected = if emit_final { &final_view } else { &changes_view };
        prop_assert_eq!(&h.view, expected);
        prop_assert_eq!(h.late_drops(), late);
        prop_assert_eq!(
            h.pipeline.state_size(),
            changes_view.len() - final_view.len(),
            "only open windows stay in memory"
        );
    }

    /// (c) A table through Upsert, GROUP BY region, optionally with HAVING
    /// COUNT(*) >= 2: the view equals the query over the final table.
    #[test]
    fn table_aggregate_matches_the_final_table(
        writes in table_writes(),
        cuts in batch_cuts(),
        having in any::<bool>(),
    ) {
        let mut operators = vec![
            Operator::Upsert(Upsert::new(vec![0])),
            aggregate(&[1], five_calls(2), None, false, false),
        ];
        if having {
            operators.push(at_least(1, 2));
        }
        let mut h = Harness::new(operators, 1);
        let input: Vec<Change> = writes
            .iter()
            .enumerate()
            .map(|(i, w)| table_change(w, i as i64))
            .collect();
        for batch in split(&input, &cuts) {
            h.push(batch);
        }
        prop_assert_eq!(&h.view, &table_model(&writes, if having { 2 } else { 0 }));
        // Only live groups stay in memory.
        let groups = table_model(&writes, 0).len();
        let users = {
            let mut live = BTreeMap::new();
            for &(user, write) in &writes {
                match write {
                    Some(_) => live.insert(user, ()),
                    None => live.remove(&user),
                };
            }
            live.len()
        };
        prop_assert_eq!(h.pipeline.state_size(), users + groups);
    }

    /// (d) Session windows, no lateness (default grace): the view equals
    /// sessionizing from scratch, whatever the batches.
    #[test]
    fn sessions_match_sessionization(
        input in stream_records(false),
        cuts in batch_cuts(),
        gap in prop_oneof![Just(300i64), Just(1_000), Just(2_500)],
    ) {
        let mut h = Harness::new(count_five(session(gap, None), false), 2);
        for batch in split(&input, &cuts) {
            h.push(batch);
        }
        let expected = view_of(sessionize(&input, gap), 2);
        prop_assert_eq!(&h.view, &expected);
        prop_assert_eq!(h.pipeline.state_size(), expected.len());
        prop_assert_eq!(h.late_drops(), 0);
    }

    /// Sessions over input in time order with a short grace: nothing is
    /// late; EMIT CHANGES shows every session, EMIT FINAL emits each one
    /// once, when stream time passes its end + gap + grace.
    #[test]
    fn in_order_sessions_close_after_gap_and_grace(
        mut input in stream_records(false),
        cuts in batch_cuts(),
        gap in 100i64..2_000,
        grace in 0i64..1_000,
        emit_final in any::<bool>(),
    ) {
        input.sort_by_key(|c| c.time);
        let mut h = Harness::new(count_five(session(gap, Some(grace)), emit_final), 2);
        for batch in split(&input, &cuts) {
            h.push(batch);
        }
        let stream_time = input.last().map_or(i64::MIN, |c| c.time);
        let sessions = sessionize(&input, gap);
        let closed = |r: &Row| r[2].as_i64().unwrap() + gap + grace < stream_time;
        let expected = if emit_final {
            view_of(sessions.iter().filter(|r| closed(r)).cloned().collect(), 2)
        } else {
            view_of(sessions.clone(), 2)
        };
        prop_assert_eq!(&h.view, &expected);
        prop_assert_eq!(h.late_drops(), 0);
        prop_assert_eq!(
            h.pipeline.state_size(),
            sessions.iter().filter(|r| !closed(r)).count()
        );
    }

    /// (e) Kill and restart: draining the state after every batch and
    /// restoring it into fresh operators before batch `at` changes nothing
    /// the query emits afterwards, nor its late count or state.
    #[test]
    fn restart_from_persisted_state_is_invisible(
        q in query(),
        writes in table_writes(),
        times in prop::collection::vec(-2_000i64..8_000, 60),
        cuts in batch_cuts(),
        at in any::<Index>(),
    ) {
        let input = q.input(&writes, &times);
        let batches = split(&input, &cuts);
        let at = at.index(batches.len() + 1);
        let mut straight = Harness::new(q.operators(), q.key_len());
        let mut restarted = Harness::new(q.operators(), q.key_len());
        for (i, batch) in batches.into_iter().enumerate() {
            if i == at {
                restarted.restart(q.operators());
            }
            let a = straight.push(batch.clone());
            let b = restarted.push(batch);
            prop_assert_eq!(sorted_text(&a), sorted_text(&b), "batch {}", i);
        }
        prop_assert_eq!(&straight.view, &restarted.view);
        prop_assert_eq!(straight.late_drops(), restarted.late_drops());
        prop_assert_eq!(straight.pipeline.state_size(), restarted.pipeline.state_size());
        prop_assert_eq!(
            restarted.restored_state_size(q.operators()),
            straight.pipeline.state_size()
        );
    }

    /// A pipeline that holds EMIT CHANGES output back until a flush (as a
    /// persistent query does, flushing before each commit) ends every
    /// commit with the view, state and late count of one that emits after
    /// every batch, and emits no more changes.
    #[test]
    fn coalesced_changes_end_each_commit_where_batch_changes_do(
        q in query(),
        writes in table_writes(),
        times in prop::collection::vec(-2_000i64..8_000, 60),
        cuts in batch_cuts(),
        commit_after in prop::collection::vec(any::<bool>(), 60),
    ) {
        let input = q.input(&writes, &times);
        let batches = split(&input, &cuts);
        let last = batches.len().saturating_sub(1);
        let mut each = Harness::new(q.operators(), q.key_len());
        let mut coalesced = Harness::new(q.operators(), q.key_len());
        coalesced.pipeline.coalesce_changes();
        let (mut each_out, mut coalesced_out) = (0, 0);
        for (i, batch) in batches.into_iter().enumerate() {
            each_out += each.push(batch.clone()).len();
            coalesced_out += coalesced.process(batch).len();
            if commit_after.get(i).copied().unwrap_or(true) || i == last {
                coalesced_out += coalesced.commit().len();
                prop_assert_eq!(&each.view, &coalesced.view, "after batch {}", i);
                prop_assert_eq!(each.late_drops(), coalesced.late_drops());
                prop_assert_eq!(each.pipeline.state_size(), coalesced.pipeline.state_size());
                prop_assert_eq!(&each.store, &coalesced.store);
            }
        }
        prop_assert!(coalesced_out <= each_out);
    }

    /// Session results, with lateness, do not depend on the batch
    /// boundaries: any batching ends as record-by-record processing does.
    #[test]
    fn session_results_do_not_depend_on_batches(
        input in records(false, 2, 0..8_000),
        cuts in batch_cuts(),
        gap in 100i64..2_000,
        grace in 0i64..1_000,
        emit_final in any::<bool>(),
    ) {
        let operators = || count_five(session(gap, Some(grace)), emit_final);
        let mut one_by_one = Harness::new(operators(), 2);
        for c in &input {
            one_by_one.push(vec![c.clone()]);
        }
        let mut batched = Harness::new(operators(), 2);
        for batch in split(&input, &cuts) {
            batched.push(batch);
        }
        prop_assert_eq!(&batched.view, &one_by_one.view);
        prop_assert_eq!(batched.late_drops(), one_by_one.late_drops());
    }
}

#[test]
fn columns_read_stop_at_the_first_projection_or_aggregate() {
    let col = Expr::Column;
    let filter = |i| {
        Operator::Filter(Filter {
            predicate: Expr::Binary {
                op: BinaryOp::Gt,
                left: Box::new(col(i)),
                right: Box::new(Expr::Literal(Value::Int(0))),
            },
        })
    };
    let project = |cols: &[usize]| {
        Operator::Project(Project {
            exprs: cols.iter().map(|&i| col(i)).collect(),
        })
    };
    let read = |ops: Vec<Operator>| Pipeline::new(ops).columns_read(0, 5);
    assert_eq!(
        read(vec![filter(4), project(&[1]), project(&[0])]),
        Some(vec![false, true, false, false, true])
    );
    assert_eq!(
        read(vec![aggregate(
            &[2],
            vec![call("SUM", 3)],
            None,
            false,
            true
        )]),
        Some(vec![false, false, true, true, false])
    );
    // Rows passed on whole: every column may be needed downstream.
    assert_eq!(read(vec![filter(4)]), None);
    assert_eq!(read(Vec::new()), None);
}
