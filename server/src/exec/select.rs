//! SELECT: pull queries (read the current state once) and push queries
//! (`EMIT CHANGES`: stream rows as they arrive).

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rill_sql::binder::{bind_select, BoundQuery, SelectMode};
use rill_sql::catalog::RelationDesc;
use rill_sql::codec;
use rill_sql::dataflow::{Change, Filter, Metrics, Operator, Pipeline, Project};
use rill_sql::expr::cast::cast;
use rill_sql::expr::{BinaryOp, Expr};
use rill_sql::parser::{RelationKind, Select};
use rill_sql::{DataType, Row, Value};
use rill_storage::Record;

use super::{blocking, Output};
use crate::engine::{read, Engine};
use crate::error::{Error, Result};
use crate::runtime::{push, wait_fresh};
use crate::session::Session;

/// How long a pull query waits for upstream queries to catch up.
const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn run(engine: &Arc<Engine>, session: &Session, select: Select) -> Result<Output> {
    let catalog = engine.catalog();
    let mode = if select.emit.is_some() {
        SelectMode::Push
    } else {
        SelectMode::Pull
    };
    let bound = bind_select(&select, &*catalog, mode)?;
    let columns = bound
        .output
        .iter()
        .map(|c| (c.name.clone(), c.data_type.clone()))
        .collect();
    if mode == SelectMode::Push {
        let rows = push::start(engine, bound, session.earliest())?;
        return Ok(Output::Stream { columns, rows });
    }
    let rows = match &bound.source {
        None => vec![bound
            .projection
            .iter()
            .map(|e| e.eval(&[]))
            .collect::<std::result::Result<Row, _>>()?],
        Some(rel) => {
            // Read-your-writes: let the queries feeding it catch up first.
            let mut cancelled = session.cancelled();
            tokio::select! {
                r = wait_fresh(engine, &rel.name, FRESHNESS_TIMEOUT) => r?,
                _ = cancelled.changed() => return Err(Error::Canceled),
            }
            if rel.kind == RelationKind::Table {
                let range = key_range(bound.filter.as_ref(), rel);
                // A lookup of one key reads at most one row: run it here,
                // where handing the worker's tasks to another thread for
                // it (`blocking`) cost more than the read.
                if range.is_one_key(rel) {
                    scan_table(engine, rel, &bound, &range)?
                } else {
                    blocking(|| scan_table(engine, rel, &bound, &range))?
                }
            } else {
                blocking(|| scan_stream(engine, rel, &bound))?
            }
        }
    };
    Ok(Output::Rows {
        columns,
        rows: order_and_limit(rows, &bound),
    })
}

fn pull_pipeline(bound: &BoundQuery) -> Pipeline {
    let mut ops = Vec::new();
    if let Some(f) = &bound.filter {
        ops.push(Operator::Filter(Filter {
            predicate: f.clone(),
        }));
    }
    ops.push(Operator::Project(Project {
        exprs: bound.projection.clone(),
    }));
    Pipeline::new(ops)
}

fn finish(mut pipeline: Pipeline, mut changes: Vec<Change>) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    pipeline.process(0, &mut changes, &mut out);
    report(&pipeline.metrics)?;
    Ok(out.into_iter().map(|c| c.row).collect())
}

/// A pull query fails on the first row its expressions fail on.
fn report(m: &Metrics) -> Result<()> {
    match &m.last_error {
        Some(e) if m.errors > 0 => Err(Error::Invalid(format!("expression failed on a row: {e}"))),
        _ => Ok(()),
    }
}

/// The part of a table's key space a pull query must read.
struct KeyRange {
    /// Values of the leading key columns pinned with `=`.
    prefix: Vec<Value>,
    /// Inclusive bounds on the next key column when it is an integer (a
    /// window start, say) and the filter bounds it.
    next: Option<(i64, i64)>,
}

impl KeyRange {
    /// Whether it pins every key column: at most one row.
    fn is_one_key(&self, rel: &RelationDesc) -> bool {
        self.prefix.len() == rel.key_indices().len()
    }
}

/// Reads the filter's conjuncts for equalities on the leading key columns
/// and integer bounds on the key column after them. The filter is still
/// applied to every row read, so this only narrows the scan.
fn key_range(filter: Option<&Expr>, rel: &RelationDesc) -> KeyRange {
    let mut conjuncts = Vec::new();
    fn split<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
        match e {
            Expr::Binary {
                op: BinaryOp::And,
                left,
                right,
            } => {
                split(left, out);
                split(right, out);
            }
            other => out.push(other),
        }
    }
    if let Some(f) = filter {
        split(f, &mut conjuncts);
    }
    // (op, column, literal) with the column on the left.
    let compare = |c: &&Expr| -> Option<(BinaryOp, usize, Value)> {
        let Expr::Binary { op, left, right } = c else {
            return None;
        };
        let flipped = match op {
            BinaryOp::Lt => BinaryOp::Gt,
            BinaryOp::LtEq => BinaryOp::GtEq,
            BinaryOp::Gt => BinaryOp::Lt,
            BinaryOp::GtEq => BinaryOp::LtEq,
            other => *other,
        };
        match (left.as_ref(), right.as_ref()) {
            (Expr::Column(i), Expr::Literal(v)) => Some((*op, *i, v.clone())),
            (Expr::Literal(v), Expr::Column(i)) => Some((flipped, *i, v.clone())),
            _ => None,
        }
    };
    let comparisons: Vec<(BinaryOp, usize, Value)> = conjuncts.iter().filter_map(compare).collect();
    let keys = rel.key_indices();
    let mut prefix = Vec::new();
    for &k in &keys {
        let found = comparisons
            .iter()
            .find(|(op, i, _)| *op == BinaryOp::Eq && *i == k)
            .and_then(|(_, _, v)| cast(v.clone(), &rel.columns[k].data_type).ok());
        match found {
            Some(v) if !v.is_null() => prefix.push(v),
            _ => break,
        }
    }
    let next = keys.get(prefix.len()).and_then(|&k| {
        if !matches!(rel.columns[k].data_type, DataType::BigInt | DataType::Int) {
            return None;
        }
        let (mut lo, mut hi) = (i64::MIN, i64::MAX);
        for (op, i, v) in &comparisons {
            let Some(v) = v.as_i64().filter(|_| *i == k) else {
                continue;
            };
            match op {
                BinaryOp::Gt => lo = lo.max(v.saturating_add(1)),
                BinaryOp::GtEq => lo = lo.max(v),
                BinaryOp::Lt => hi = hi.min(v.saturating_sub(1)),
                BinaryOp::LtEq => hi = hi.min(v),
                _ => {}
            }
        }
        (lo != i64::MIN || hi != i64::MAX).then_some((lo, hi))
    });
    KeyRange { prefix, next }
}

fn scan_table(
    engine: &Engine,
    rel: &RelationDesc,
    bound: &BoundQuery,
    range: &KeyRange,
) -> Result<Vec<Row>> {
    let mut start = Vec::new();
    codec::encode_key(&range.prefix, &mut start);
    // Every key continues the prefix with a type tag below 0xff.
    let mut end = start.clone();
    end.push(0xff);
    if let Some((lo, hi)) = range.next {
        let next_type = &rel.columns[rel.key_indices()[range.prefix.len()]].data_type;
        let bound_key = |v: i64| -> Vec<u8> {
            let mut k = start.clone();
            let v = if *next_type == DataType::Int {
                Value::Int(v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
            } else {
                Value::BigInt(v)
            };
            codec::encode_key(&[v], &mut k);
            k
        };
        // Exclusive end: the first key past every key starting with `hi`.
        if let Some(h) = hi.checked_add(1) {
            end = bound_key(h);
        }
        start = bound_key(lo);
    }
    // Copied out, so the query writing the table waits for the copy only,
    // not for the decoding.
    let values: Vec<Vec<u8>> = {
        let rows = engine.table_rows(&rel.name)?;
        let rows = read(&rows);
        if range.is_one_key(rel) {
            rows.get(&start).cloned().into_iter().collect()
        } else if start < end {
            rows.range(start..end).map(|(_, v)| v.clone()).collect()
        } else {
            Vec::new()
        }
    };
    let mut changes = Vec::new();
    for v in values {
        let mut row = codec::decode_row(&v)?;
        // Stored rows are the columns plus ROWTIME.
        let time = row.last().and_then(Value::as_i64).unwrap_or_default();
        row.push(Value::Null); // ROWPARTITION
        row.push(Value::Null); // ROWOFFSET
        changes.push(Change::insert(row, time));
    }
    finish(pull_pipeline(bound), changes)
}

/// A pull query over a stream reads its topic up to the current end.
fn scan_stream(engine: &Engine, rel: &RelationDesc, bound: &BoundQuery) -> Result<Vec<Row>> {
    let mut codec = engine.codec(rel)?;
    let partitions = engine.log.topic_partitions(&rel.topic).unwrap_or(0);
    let mut pipeline = pull_pipeline(bound);
    let mut rows = Vec::new();
    let mut records: Vec<Record> = Vec::new();
    for p in 0..partitions {
        let end = engine.log.end_offset(&rel.topic, p)?;
        let mut next = engine.log.start_offset(&rel.topic, p)?;
        while next < end {
            records.clear();
            engine.log.read(&rel.topic, p, next, 4096, &mut records)?;
            if records.is_empty() {
                break;
            }
            let mut changes = Vec::new();
            for rec in records.iter().take_while(|r| r.offset < end) {
                next = rec.offset + 1;
                if let Ok(Some(c)) = codec.decode(p, rec) {
                    changes.push(c);
                }
            }
            if records.last().is_some_and(|r| r.offset >= end) {
                next = end;
            }
            let mut out = Vec::new();
            pipeline.process(0, &mut changes, &mut out);
            rows.extend(out.into_iter().map(|c| c.row));
        }
    }
    report(&pipeline.metrics)?;
    Ok(rows)
}

fn order_and_limit(mut rows: Vec<Row>, bound: &BoundQuery) -> Vec<Row> {
    if !bound.order_by.is_empty() {
        let keyed: Vec<(Vec<Value>, Row)> = rows
            .into_iter()
            .map(|r| {
                (
                    bound
                        .order_by
                        .iter()
                        .map(|(e, _)| e.eval(&r).unwrap_or_default())
                        .collect(),
                    r,
                )
            })
            .collect();
        let mut keyed = keyed;
        keyed.sort_by(|(a, _), (b, _)| {
            for ((x, y), (_, asc)) in a.iter().zip(b).zip(&bound.order_by) {
                // NULLs sort last ascending, first descending (Postgres).
                let o = match (x.is_null(), y.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    _ => x.cmp(y),
                };
                let o = if *asc { o } else { o.reverse() };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
        rows = keyed.into_iter().map(|(_, r)| r).collect();
    }
    if let Some(l) = bound.limit {
        rows.truncate(l as usize);
    }
    // Drop hidden sort-key columns.
    let width = bound.output.len();
    for r in &mut rows {
        r.truncate(width);
    }
    rows
}
