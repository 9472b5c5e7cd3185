//! The planner: a [`BoundQuery`] -> a [`DataflowPlan`], the chain of
//! operators a continuous query runs, plus its EXPLAIN text.
//!
//! Planning is pure; it decides the operator order:
//! source -> (upsert, for tables) -> filter -> aggregate -> having -> project.

pub mod explain;

use crate::binder::BoundQuery;
use crate::dataflow::{Aggregate, Filter, Operator, Pipeline, Project, Upsert};
use crate::error::PlanError;
use crate::parser::{Emit, RelationKind};

/// What a query runs.
#[derive(Debug)]
pub struct DataflowPlan {
    pub pipeline: Pipeline,
    /// One line per operator, source first.
    pub explain: Vec<String>,
}

/// Builds the operator chain for a query with a source.
pub fn plan_query(q: &BoundQuery) -> Result<DataflowPlan, PlanError> {
    let source = q
        .source
        .as_ref()
        .ok_or_else(|| PlanError::Invalid("a continuous query needs a FROM clause".into()))?;
    let schema: Vec<String> = source.query_schema().into_iter().map(|c| c.name).collect();
    let mut ops = Vec::new();
    let mut explain = vec![format!(
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
    )];
    let from_table = source.kind == RelationKind::Table;
    if from_table {
        let keys = source.key_indices();
        explain.push(format!(
            "Upsert: table changelog keyed by {} (keeps the current row per key)",
            keys.iter()
                .map(|&i| schema[i].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        ops.push(Operator::Upsert(Upsert::new(keys)));
    }
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
        pipeline: Pipeline::new(ops),
        explain,
    })
}
