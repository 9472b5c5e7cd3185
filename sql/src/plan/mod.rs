//! The planner: a [`BoundQuery`] -> a [`DataflowPlan`], the chain of
//! operators a continuous query runs, plus its EXPLAIN text.
//!
//! Planning is pure; it decides the operator order: per source, (an upsert
//! for a table); the joins, left-deep; then filter -> aggregate -> having
//! -> project.

pub mod explain;

use crate::binder::{BoundJoin, BoundQuery, JoinKind, JoinShape};
use crate::catalog::RelationDesc;
use crate::dataflow::{Aggregate, Filter, Join, Operator, Pipeline, Project, Upsert};
use crate::error::PlanError;
use crate::parser::{Emit, RelationKind};

/// What a query runs.
#[derive(Debug)]
pub struct DataflowPlan {
    pub pipeline: Pipeline,
    /// One line per operator, source first.
    pub explain: Vec<String>,
}

/// The EXPLAIN line of a source.
fn source_line(source: &RelationDesc) -> String {
    format!(
        "Source: {} {} (topic '{}', {} partition{}, key {}, value {}{})",
        source.kind.name().to_uppercase(),
        source.name,
        source.topic,
        source.partitions,
        if source.partitions == 1 { "" } else { "s" },
        source.format.key_format,
        source.format.value_format,
        match &source.timestamp_column {
            Some(c) => format!(", event time from {c}"),
            None => ", event time ROWTIME".into(),
        }
    )
}

/// A table input's changelog -> changes (with its EXPLAIN line).
fn upsert(source: &RelationDesc, explain: &mut Vec<String>) -> Operator {
    let keys = source.key_indices();
    explain.push(format!(
        "Upsert: table changelog of {} keyed by {} (keeps the current row per key)",
        source.name,
        keys.iter()
            .map(|&i| source.columns[i].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Operator::Upsert(Upsert::new(keys))
}

/// What a join keeps, for EXPLAIN.
fn join_line(j: &BoundJoin, left_names: &[String], left_name: &str) -> String {
    let right_names: Vec<String> = j
        .relation
        .query_schema()
        .into_iter()
        .map(|c| format!("{}.{}", j.name, c.name))
        .collect();
    let on = format!(
        "{} = {}",
        explain::fmt_expr(&j.left_key, left_names),
        explain::fmt_expr(&j.right_key, &right_names)
    );
    let (what, state) = match j.shape {
        JoinShape::StreamStream {
            before,
            after,
            grace,
        } => (
            format!(
                "stream-stream, WITHIN (BEFORE {}, AFTER {}), GRACE PERIOD {}",
                explain::fmt_ms(before),
                explain::fmt_ms(after),
                explain::fmt_ms(grace)
            ),
            format!(
                "keeps each side's records until stream time passes the end of their window by {}{}",
                explain::fmt_ms(grace),
                match j.kind {
                    JoinKind::Inner => "",
                    _ => "; unmatched outer records are emitted then",
                }
            ),
        ),
        JoinShape::StreamTable { grace } => (
            format!("stream-table, GRACE PERIOD {}", explain::fmt_ms(grace)),
            format!(
                "keeps {}'s rows by event time, versions up to {} behind the stream; the stream side keeps nothing",
                j.name,
                explain::fmt_ms(grace)
            ),
        ),
        JoinShape::TableTable { foreign } => (
            if foreign {
                "table-table on a foreign key".to_string()
            } else {
                "table-table on the primary key".to_string()
            },
            "keeps both sides' current rows by join value".to_string(),
        ),
    };
    format!(
        "Join: {} JOIN of {left_name} with {} ON {on} ({what}; {state})",
        j.kind.name(),
        j.name
    )
}

/// Builds the dataflow for a query with a source.
pub fn plan_query(q: &BoundQuery) -> Result<DataflowPlan, PlanError> {
    let source = q
        .source
        .as_ref()
        .ok_or_else(|| PlanError::Invalid("a continuous query needs a FROM clause".into()))?;
    let mut explain = Vec::new();
    let mut inputs = Vec::new();
    for (i, rel) in q.inputs().enumerate() {
        explain.push(source_line(rel));
        // A stream-table join versions the table's writes by event time
        // itself; every other table input becomes changes by key first.
        let versioned = i > 0 && matches!(q.joins[i - 1].shape, JoinShape::StreamTable { .. });
        let mut chain = Vec::new();
        if rel.kind == RelationKind::Table && !versioned {
            chain.push(upsert(rel, &mut explain));
        }
        inputs.push(chain);
    }
    // Joined rows name their columns by relation.
    let mut schema: Vec<String> = if q.joins.is_empty() {
        source.query_schema().into_iter().map(|c| c.name).collect()
    } else {
        source
            .query_schema()
            .into_iter()
            .map(|c| format!("{}.{}", q.source_name, c.name))
            .collect()
    };
    let mut joins = Vec::new();
    let mut left_name = q.source_name.clone();
    for j in &q.joins {
        explain.push(join_line(j, &schema, &left_name));
        let right = j.relation.query_schema();
        joins.push(Join::new(
            j.kind,
            j.shape,
            j.left_key.clone(),
            j.right_key.clone(),
            j.left_width,
            right.len(),
        ));
        schema.extend(right.into_iter().map(|c| format!("{}.{}", j.name, c.name)));
        if j.kind == JoinKind::Full {
            schema.push("ROWKEY".into());
        }
        left_name = format!("({left_name} JOIN {})", j.name);
    }
    let from_table = q.reads_only_tables();
    let mut ops = Vec::new();
    if let Some(f) = &q.filter {
        explain.push(format!("Filter: {}", explain::fmt_expr(f, &schema)));
        ops.push(Operator::Filter(Filter {
            predicate: f.clone(),
        }));
    }
    let mut names = schema.clone();
    if let Some(a) = &q.aggregate {
        let emit_final = q.emit == Some(Emit::Final);
        let agg = Aggregate::try_new(
            a.group_by.clone(),
            a.calls.clone(),
            a.window.as_ref(),
            emit_final,
            !from_table,
        )
        .map_err(PlanError::Invalid)?;
        explain.push(explain::fmt_aggregate(a, &schema, q.emit));
        ops.push(Operator::Aggregate(Box::new(agg)));
        names = explain::aggregate_names(a, &schema);
        if let Some(h) = &q.having {
            explain.push(format!("Filter (HAVING): {}", explain::fmt_expr(h, &names)));
            ops.push(Operator::Filter(Filter {
                predicate: h.clone(),
            }));
        }
    }
    explain.push(format!(
        "Project: {}",
        q.projection
            .iter()
            .zip(&q.output)
            .map(|(e, c)| {
                let text = explain::fmt_expr(e, &names);
                if text == c.name {
                    text
                } else {
                    format!("{text} AS {}", c.name)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    ));
    ops.push(Operator::Project(Project {
        exprs: q.projection.clone(),
    }));
    Ok(DataflowPlan {
        pipeline: Pipeline::joined(inputs, joins, ops),
        explain,
    })
}
