//! The binder: parsed statements + a catalog snapshot -> typed, resolved
//! statements. Names become column indexes, types are checked, aggregates
//! are found and the output schema (with its key) is decided.
//!
//! Binding is pure: it reads the catalog through [`Catalog`] and never
//! changes it; every error is a [`BindError`] with its SQLSTATE.

mod ddl;
pub mod expr;
mod query;
mod types;

pub use ddl::{
    bind_create_source, bind_insert_values, bind_source_format, bind_topic_properties,
    sink_properties, BoundInsert, Limit, SinkProperties, TopicProperties,
};
pub use expr::{AggCall, Scope};
pub use query::{bind_select, SelectMode};
pub use types::{resolve_type, resolve_type_text};

use crate::catalog::{ColumnDesc, RelationDesc};
use crate::expr::Expr;
use crate::parser::{Emit, WindowClause};

/// A grouped (and maybe windowed) aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundAggregate {
    /// Group key expressions over the input row.
    pub group_by: Vec<Expr>,
    pub calls: Vec<AggCall>,
    pub window: Option<WindowClause>,
}

impl BoundAggregate {
    /// Width of the aggregate's output row: group values, window bounds,
    /// results.
    pub fn output_width(&self) -> usize {
        self.group_by.len() + if self.window.is_some() { 2 } else { 0 } + self.calls.len()
    }
}

/// A bound SELECT, the input of the planner.
///
/// Row layouts: `filter` reads the source row (`source.query_schema()`);
/// `having` reads the aggregate's output row; `projection` reads the
/// aggregate's output row if there is an aggregate, else the source row;
/// `order_by` reads the projected row.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundQuery {
    /// `None` for a SELECT without FROM (constant expressions).
    pub source: Option<RelationDesc>,
    pub filter: Option<Expr>,
    pub aggregate: Option<BoundAggregate>,
    pub having: Option<Expr>,
    /// In output column order (keys first). Pull queries may have extra
    /// trailing expressions beyond `output`: hidden sort keys, dropped
    /// after ORDER BY.
    pub projection: Vec<Expr>,
    pub output: Vec<ColumnDesc>,
    pub emit: Option<Emit>,
    /// Sort keys over the projected row, ascending when true.
    pub order_by: Vec<(Expr, bool)>,
    pub limit: Option<u64>,
}

impl BoundQuery {
    /// Whether the result is a windowed table.
    pub fn window(&self) -> Option<&WindowClause> {
        self.aggregate.as_ref().and_then(|a| a.window.as_ref())
    }
}
