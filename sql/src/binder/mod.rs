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
pub use expr::{AggCall, Scope, ScopeRelation};
pub use query::{bind_select, SelectMode};
pub use types::{resolve_type, resolve_type_text};

use crate::catalog::{ColumnDesc, RelationDesc};
use crate::expr::Expr;
use crate::parser::{Emit, RelationKind, WindowClause};

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

/// `[INNER] | LEFT | RIGHT | FULL [OUTER] JOIN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

impl JoinKind {
    pub fn name(self) -> &'static str {
        match self {
            JoinKind::Inner => "INNER",
            JoinKind::Left => "LEFT OUTER",
            JoinKind::Right => "RIGHT OUTER",
            JoinKind::Full => "FULL OUTER",
        }
    }

    /// Whether a left row without a match is kept (with NULLs).
    pub fn keeps_left(self) -> bool {
        matches!(self, JoinKind::Left | JoinKind::Full)
    }

    /// Whether a right row without a match is kept (with NULLs).
    pub fn keeps_right(self) -> bool {
        matches!(self, JoinKind::Right | JoinKind::Full)
    }
}

/// What a join combines, which decides the state it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinShape {
    /// Two streams: a pair joins when the right record's event time is
    /// from `before` ms before to `after` ms after the left one's; a record
    /// is kept until stream time passes its window by `grace`.
    StreamStream { before: i64, after: i64, grace: i64 },
    /// A stream enriched with the table row current at each record's event
    /// time: the table's versions are kept while a stream record up to
    /// `grace` ms behind stream time may still need them.
    StreamTable { grace: i64 },
    /// Two tables, on the right one's primary key; `foreign` when the left
    /// side's expression is not its primary key.
    TableTable { foreign: bool },
}

/// One JOIN of a FROM clause. Joins are left-deep: the left side is the
/// row built so far (the first source's, widened by each earlier join).
#[derive(Debug, Clone, PartialEq)]
pub struct BoundJoin {
    pub kind: JoinKind,
    pub shape: JoinShape,
    /// The right side.
    pub relation: RelationDesc,
    /// Its alias, else its name.
    pub name: String,
    /// The join value over the left row and over the right relation's
    /// `query_schema()` row.
    pub left_key: Expr,
    pub right_key: Expr,
    /// Width of the left row.
    pub left_width: usize,
}

/// A bound SELECT, the input of the planner.
///
/// Row layouts: `filter` reads the source row (`source.query_schema()`,
/// widened by each join: see [`BoundJoin`]);
/// `having` reads the aggregate's output row; `projection` reads the
/// aggregate's output row if there is an aggregate, else the source row;
/// `order_by` reads the projected row.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundQuery {
    /// `None` for a SELECT without FROM (constant expressions).
    pub source: Option<RelationDesc>,
    /// The name the source is qualified by: its alias, else its name.
    pub source_name: String,
    /// The FROM clause's joins, in order.
    pub joins: Vec<BoundJoin>,
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
    /// Every relation the query reads, in FROM order.
    pub fn inputs(&self) -> impl Iterator<Item = &RelationDesc> {
        self.source
            .iter()
            .chain(self.joins.iter().map(|j| &j.relation))
    }

    /// Whether it reads tables only (joins of tables are tables; a join
    /// with a stream is a stream).
    pub fn reads_only_tables(&self) -> bool {
        self.source.is_some() && self.inputs().all(|r| r.kind == RelationKind::Table)
    }

    /// Whether the query's result is a table: an aggregate, or only tables
    /// read.
    pub fn produces_table(&self) -> bool {
        self.aggregate.is_some() || self.reads_only_tables()
    }

    /// Whether the result is a windowed table.
    pub fn window(&self) -> Option<&WindowClause> {
        self.aggregate.as_ref().and_then(|a| a.window.as_ref())
    }
}
