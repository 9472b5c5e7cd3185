//! Binding SELECT.

use sqlparser::ast::{
    self as sql, GroupByExpr, LimitClause, OrderByKind, SelectItem, SetExpr, TableFactor,
};

use super::expr::{contains_aggregate, AggContext, ExprBinder, Scope};
use super::{BoundAggregate, BoundQuery};
use crate::catalog::{Catalog, ColumnDesc, RelationDesc};
use crate::dataflow::window;
use crate::error::{did_you_mean, BindError};
use crate::expr::Expr;
use crate::parser::{normalize_ident, Emit, RelationKind, Select, WindowKind};
use crate::types::DataType;

/// What the SELECT is for; each allows different clauses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectMode {
    /// The body of CREATE ... AS SELECT or INSERT INTO ... SELECT.
    Persistent,
    /// `SELECT ... EMIT CHANGES`: streams rows as they arrive.
    Push,
    /// A plain SELECT: reads the current state once.
    Pull,
}

fn unsupported(msg: impl Into<String>) -> BindError {
    BindError::Unsupported(msg.into())
}

/// Binds a SELECT against the catalog.
pub fn bind_select(
    select: &Select,
    catalog: &dyn Catalog,
    mode: SelectMode,
) -> Result<BoundQuery, BindError> {
    let query = &select.query;
    if query.with.is_some() {
        return Err(unsupported(
            "WITH (common table expressions) is not supported",
        ));
    }
    let SetExpr::Select(body) = query.body.as_ref() else {
        return Err(unsupported(
            "UNION, INTERSECT, EXCEPT and VALUES queries are not supported",
        ));
    };
    if body.distinct.is_some() {
        return Err(unsupported(
            "SELECT DISTINCT is not supported: use GROUP BY",
        ));
    }
    match (mode, select.emit) {
        (SelectMode::Pull, Some(_)) => {}
        (SelectMode::Push, None) => {
            return Err(BindError::Invalid("a push query needs EMIT CHANGES".into()))
        }
        (SelectMode::Push, Some(Emit::Final)) => {
            return Err(unsupported("push queries support EMIT CHANGES only"))
        }
        _ => {}
    }

    // FROM: one stream or table.
    let (source, qualifiers) = match body.from.as_slice() {
        [] => (None, Vec::new()),
        [t] => {
            if !t.joins.is_empty() {
                return Err(unsupported("JOIN is not supported yet"));
            }
            let TableFactor::Table { name, alias, .. } = &t.relation else {
                return Err(unsupported("FROM must name a stream or table"));
            };
            let rel_name = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(normalize_ident)
                .unwrap_or_default();
            let Some(rel) = catalog.relation(&rel_name) else {
                let names = catalog.relation_names();
                return Err(BindError::UnknownRelation {
                    kind: "stream or table",
                    hint: did_you_mean(&rel_name, names.iter().map(String::as_str)),
                    name: rel_name,
                });
            };
            let mut q = vec![rel_name.clone()];
            if let Some(a) = alias {
                q.push(normalize_ident(&a.name));
            }
            (Some(rel.clone()), q)
        }
        _ => {
            return Err(unsupported(
                "JOIN is not supported yet: FROM takes one stream or table",
            ))
        }
    };
    if source.is_none() && mode != SelectMode::Pull {
        return Err(BindError::Invalid("FROM is required here".into()));
    }
    let schema: Vec<ColumnDesc> = source
        .as_ref()
        .map(|s| s.query_schema())
        .unwrap_or_default();
    let scope = Scope {
        columns: &schema,
        qualifiers,
    };

    // WHERE.
    let filter = match &body.selection {
        Some(e) => {
            if contains_aggregate(e) {
                return Err(BindError::Grouping(
                    "aggregate functions are not allowed in WHERE: use HAVING".into(),
                ));
            }
            let (b, t) = ExprBinder {
                scope: &scope,
                agg: None,
            }
            .bind(e)?;
            if t != DataType::Boolean {
                return Err(BindError::TypeMismatch(format!(
                    "WHERE must be BOOLEAN, found {t}"
                )));
            }
            Some(b)
        }
        None => None,
    };

    // GROUP BY and aggregates.
    let group_exprs: &[sql::Expr] = match &body.group_by {
        GroupByExpr::Expressions(exprs, mods) if mods.is_empty() => exprs,
        _ => {
            return Err(unsupported(
                "GROUP BY ALL / ROLLUP / CUBE are not supported",
            ))
        }
    };
    let projection_has_agg = body.projection.iter().any(|item| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
            contains_aggregate(e)
        }
        _ => false,
    });
    let grouped = !group_exprs.is_empty() || projection_has_agg || body.having.is_some();
    if grouped && source.is_none() {
        return Err(unsupported("aggregates need a FROM clause"));
    }
    if select.window.is_some() && !grouped {
        return Err(BindError::Invalid(
            "WINDOW needs an aggregation with GROUP BY".into(),
        ));
    }
    if grouped && group_exprs.is_empty() {
        return Err(BindError::Grouping(
            "aggregations need GROUP BY (ksqlDB has no global aggregates)".into(),
        ));
    }
    if grouped && mode == SelectMode::Pull {
        return Err(unsupported(
            "pull queries cannot aggregate: create a table with CREATE TABLE ... AS SELECT ... GROUP BY and query it",
        ));
    }
    if select.emit == Some(Emit::Final) && select.window.is_none() {
        return Err(BindError::Invalid(
            "EMIT FINAL needs a windowed aggregation".into(),
        ));
    }
    if let Some(w) = &select.window {
        validate_window(&w.kind)?;
        let least = window::span_ms(&w.kind).saturating_add(window::grace_ms(w));
        if w.retention.is_some_and(|r| r < least) {
            return Err(BindError::Invalid(
                "RETENTION must be at least the window size plus its grace period (24 hours unless GRACE PERIOD is given)".into(),
            ));
        }
    }
    let mut agg_ctx = if grouped {
        let rel = source
            .as_ref()
            .ok_or_else(|| unsupported("aggregates need a FROM clause"))?;
        if rel.kind == RelationKind::Table && select.window.is_some() {
            return Err(unsupported(
                "windowed aggregation of a TABLE is not supported: aggregate a STREAM",
            ));
        }
        let mut group_by = Vec::new();
        for g in group_exprs {
            let (b, t) = ExprBinder {
                scope: &scope,
                agg: None,
            }
            .bind(g)
            .map_err(|e| match e {
                BindError::Grouping(_) => {
                    BindError::Grouping("aggregate functions are not allowed in GROUP BY".into())
                }
                other => other,
            })?;
            group_by.push((b, t));
        }
        Some(AggContext {
            group_by,
            windowed: select.window.is_some(),
            calls: Vec::new(),
        })
    } else {
        None
    };

    // SELECT list.
    let mut items: Vec<(String, Expr, DataType)> = Vec::new();
    let mut unnamed = 0usize;
    for item in &body.projection {
        match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                if agg_ctx.is_some() {
                    return Err(BindError::Grouping(
                        "SELECT * is not allowed with GROUP BY: name the columns".into(),
                    ));
                }
                let rel = source
                    .as_ref()
                    .ok_or_else(|| BindError::Invalid("SELECT * needs a FROM clause".into()))?;
                for (i, c) in rel.columns.iter().enumerate() {
                    items.push((c.name.clone(), Expr::Column(i), c.data_type.clone()));
                }
            }
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                let (b, t) = ExprBinder {
                    scope: &scope,
                    agg: agg_ctx.as_mut(),
                }
                .bind(e)?;
                let name = match item {
                    SelectItem::ExprWithAlias { alias, .. } => normalize_ident(alias),
                    _ => match e {
                        sql::Expr::Identifier(id) => normalize_ident(id),
                        sql::Expr::CompoundIdentifier(parts) => {
                            parts.last().map(normalize_ident).unwrap_or_default()
                        }
                        sql::Expr::BinaryOp {
                            op: sql::BinaryOperator::Arrow,
                            right,
                            ..
                        } => match right.as_ref() {
                            sql::Expr::Identifier(id) => normalize_ident(id),
                            _ => String::new(),
                        },
                        _ => String::new(),
                    },
                };
                let name = if name.is_empty() {
                    unnamed += 1;
                    format!("KSQL_COL_{}", unnamed - 1)
                } else {
                    name
                };
                items.push((name, b, t));
            }
            other => {
                return Err(unsupported(format!(
                    "SELECT item \"{other}\" is not supported"
                )))
            }
        }
    }

    let having = match &body.having {
        Some(h) => {
            let ctx = agg_ctx
                .as_mut()
                .ok_or_else(|| BindError::Grouping("HAVING needs GROUP BY".into()))?;
            let (b, t) = ExprBinder {
                scope: &scope,
                agg: Some(ctx),
            }
            .bind(h)?;
            if t != DataType::Boolean {
                return Err(BindError::TypeMismatch(format!(
                    "HAVING must be BOOLEAN, found {t}"
                )));
            }
            Some(b)
        }
        None => None,
    };

    // Output schema: key columns first, then window bounds, then values.
    let (projection, output) = shape_output(items, source.as_ref(), agg_ctx.as_ref(), mode)?;

    let aggregate = match agg_ctx {
        Some(ctx) => {
            if let Some(rel) = &source {
                if rel.kind == RelationKind::Table {
                    if let Some(c) = ctx.calls.iter().find(|c| !c.func.retractable) {
                        return Err(unsupported(format!(
                            "{} cannot aggregate a TABLE (it cannot undo a row that leaves the group): aggregate a STREAM",
                            c.func.name
                        )));
                    }
                }
            }
            Some(BoundAggregate {
                group_by: ctx.group_by.into_iter().map(|(e, _)| e).collect(),
                calls: ctx.calls,
                window: select.window.clone(),
            })
        }
        None => None,
    };

    if mode == SelectMode::Persistent {
        if let Some(rel) = &source {
            if rel.kind == RelationKind::Table && aggregate.is_none() {
                for k in rel.key_indices() {
                    if !projection.contains(&Expr::Column(k)) {
                        return Err(BindError::Invalid(format!(
                            "the primary key column \"{}\" must be in the SELECT list of a query over a table",
                            rel.columns[k].name
                        )));
                    }
                }
            }
        }
    }

    // ORDER BY / LIMIT. Sort keys read the projected row; a key that names
    // source columns outside the SELECT list is computed as an extra,
    // hidden column after the output ones (dropped after sorting).
    let mut projection = projection;
    let mut order_by = Vec::new();
    if let Some(ob) = &query.order_by {
        if mode != SelectMode::Pull {
            return Err(unsupported("ORDER BY is only supported in pull queries"));
        }
        let OrderByKind::Expressions(exprs) = &ob.kind else {
            return Err(unsupported("ORDER BY ALL is not supported"));
        };
        let out_scope = Scope {
            columns: &output,
            qualifiers: Vec::new(),
        };
        for o in exprs {
            let position =
                match &o.expr {
                    sql::Expr::Value(v) => match &v.value {
                        sql::Value::Number(n, _) => Some(n.parse::<usize>().map_err(|_| {
                            BindError::Invalid(format!("bad ORDER BY position {n}"))
                        })?),
                        _ => None,
                    },
                    _ => None,
                };
            let e = match position {
                Some(pos) => {
                    if pos == 0 || pos > output.len() {
                        return Err(BindError::Invalid(format!(
                            "ORDER BY position {pos} is not in the SELECT list (1 to {})",
                            output.len()
                        )));
                    }
                    Expr::Column(pos - 1)
                }
                None => match (ExprBinder {
                    scope: &out_scope,
                    agg: None,
                })
                .bind(&o.expr)
                {
                    Ok((e, _)) => e,
                    Err(BindError::UnknownColumn { .. }) if agg_ctx_is_none(&aggregate) => {
                        let (e, _) = ExprBinder {
                            scope: &scope,
                            agg: None,
                        }
                        .bind(&o.expr)?;
                        projection.push(e);
                        Expr::Column(projection.len() - 1)
                    }
                    Err(e) => return Err(e),
                },
            };
            order_by.push((e, !matches!(o.options.sort, Some(sql::OrderBySort::Desc))));
        }
    }
    let limit = match &query.limit_clause {
        None => None,
        Some(LimitClause::LimitOffset { limit, offset, .. }) => {
            if offset.is_some() {
                return Err(unsupported("OFFSET is not supported"));
            }
            match limit {
                None => None,
                Some(e) => {
                    let (b, _) = ExprBinder {
                        scope: &Scope {
                            columns: &[],
                            qualifiers: vec![],
                        },
                        agg: None,
                    }
                    .bind(e)?;
                    match b.eval(&[]).ok().and_then(|v| v.as_i64()) {
                        Some(n) if n >= 0 => Some(n as u64),
                        _ => {
                            return Err(BindError::Invalid(
                                "LIMIT takes a non-negative integer".into(),
                            ))
                        }
                    }
                }
            }
        }
        Some(_) => return Err(unsupported("this LIMIT form is not supported")),
    };
    if limit.is_some() && mode == SelectMode::Persistent {
        return Err(unsupported("LIMIT is not supported in persistent queries"));
    }

    Ok(BoundQuery {
        source,
        filter,
        aggregate,
        having,
        projection,
        output,
        emit: select.emit,
        order_by,
        limit,
    })
}

fn agg_ctx_is_none(a: &Option<BoundAggregate>) -> bool {
    a.is_none()
}

fn validate_window(w: &WindowKind) -> Result<(), BindError> {
    let ok = match *w {
        WindowKind::Tumbling { size } => size > 0,
        WindowKind::Hopping { size, advance } => size > 0 && advance > 0 && advance <= size,
        WindowKind::Session { gap } => gap > 0,
    };
    if ok {
        Ok(())
    } else {
        Err(BindError::Invalid(
            "window sizes must be positive and ADVANCE BY at most the window SIZE".into(),
        ))
    }
}

/// Orders the SELECT list into the output schema and decides its key.
fn shape_output(
    items: Vec<(String, Expr, DataType)>,
    source: Option<&RelationDesc>,
    agg: Option<&AggContext>,
    mode: SelectMode,
) -> Result<(Vec<Expr>, Vec<ColumnDesc>), BindError> {
    if mode != SelectMode::Persistent {
        // Transient results have no key: keep the SELECT order.
        let mut output: Vec<ColumnDesc> = Vec::new();
        let mut projection = Vec::new();
        for (name, e, t) in items {
            if output.iter().any(|c| c.name == name) {
                return Err(BindError::Duplicate {
                    kind: "column",
                    name,
                });
            }
            projection.push(e);
            output.push(ColumnDesc::new(name, t, false));
        }
        return Ok((projection, output));
    }
    let mut keys = Vec::new();
    let mut values = Vec::new();
    match agg {
        Some(ctx) => {
            let n = ctx.group_by.len();
            let mut seen = vec![false; n];
            for (name, e, t) in items {
                if let Expr::Column(i) = e {
                    if i < n && !seen[i] {
                        seen[i] = true;
                        keys.push((name, e, t, true));
                        continue;
                    }
                    if ctx.windowed
                        && (i == n || i == n + 1)
                        && (name == "WINDOWSTART" || name == "WINDOWEND")
                    {
                        continue; // always part of a windowed table's key
                    }
                }
                values.push((name, e, t, false));
            }
            if let Some(missing) = seen.iter().position(|s| !s) {
                return Err(BindError::Invalid(format!(
                    "GROUP BY expression {} must be in the SELECT list: it becomes the key of the table",
                    missing + 1
                )));
            }
            if ctx.windowed {
                keys.push((
                    "WINDOWSTART".into(),
                    Expr::Column(n),
                    DataType::BigInt,
                    true,
                ));
                keys.push((
                    "WINDOWEND".into(),
                    Expr::Column(n + 1),
                    DataType::BigInt,
                    true,
                ));
            }
        }
        None => {
            let source_keys = source.map(|s| s.key_indices()).unwrap_or_default();
            for (name, e, t) in items {
                let is_key = matches!(e, Expr::Column(i) if source_keys.contains(&i))
                    && !keys
                        .iter()
                        .any(|k: &(String, Expr, DataType, bool)| k.1 == e);
                if is_key {
                    keys.push((name, e, t, true));
                } else {
                    values.push((name, e, t, false));
                }
            }
        }
    }
    let mut projection = Vec::new();
    let mut output: Vec<ColumnDesc> = Vec::new();
    for (name, e, t, key) in keys.into_iter().chain(values) {
        if output.iter().any(|c| c.name == name) {
            return Err(BindError::Duplicate {
                kind: "column",
                name,
            });
        }
        projection.push(e);
        output.push(ColumnDesc::new(name, t, key));
    }
    Ok((projection, output))
}
