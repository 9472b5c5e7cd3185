//! Binding SELECT.

use sqlparser::ast::{
    self as sql, GroupByExpr, LimitClause, OrderByKind, SelectItem, SetExpr, TableFactor,
};

use super::expr::{contains_aggregate, AggContext, ExprBinder, Scope, ScopeRelation};
use super::{BoundAggregate, BoundJoin, BoundQuery, JoinKind, JoinShape};
use crate::catalog::{Catalog, ColumnDesc, RelationDesc};
use crate::dataflow::window;
use crate::error::{did_you_mean, BindError};
use crate::expr::Expr;
use crate::parser::{normalize_ident, Emit, JoinTiming, RelationKind, Select, WindowKind};
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

    let from = match body.from.as_slice() {
        [] => None,
        [t] => Some(bind_from(t, &select.joins, catalog)?),
        _ => {
            return Err(unsupported(
                "FROM takes one stream or table, or JOINs of them (not a comma list)",
            ))
        }
    };
    if from.is_none() && mode != SelectMode::Pull {
        return Err(BindError::Invalid("FROM is required here".into()));
    }
    if mode == SelectMode::Pull && from.as_ref().is_some_and(|f| !f.joins.is_empty()) {
        return Err(unsupported(
            "pull queries cannot join: create a table with CREATE TABLE ... AS SELECT ... JOIN and query it, or add EMIT CHANGES",
        ));
    }
    let schema: Vec<ColumnDesc> = from.as_ref().map(|f| f.schema.clone()).unwrap_or_default();
    let scope = Scope {
        columns: &schema,
        relations: from.as_ref().map(|f| f.scope()).unwrap_or_default(),
    };
    let source = from.as_ref().map(|f| f.source.clone());
    let from_table = from.as_ref().is_some_and(|f| f.is_table);

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
        if from_table && select.window.is_some() {
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
                let from = from
                    .as_ref()
                    .ok_or_else(|| BindError::Invalid("SELECT * needs a FROM clause".into()))?;
                for (name, i) in &from.star {
                    items.push((name.clone(), Expr::Column(*i), schema[*i].data_type.clone()));
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
    let keys = from.as_ref().map(|f| f.keys.clone()).unwrap_or_default();
    let mut key_exprs: Vec<Expr> = keys.iter().map(|&k| Expr::Column(k)).collect();
    if let Some(p) = &select.partition_by {
        if mode != SelectMode::Persistent {
            return Err(unsupported(
                "PARTITION BY is for CREATE STREAM ... AS SELECT and INSERT INTO ... SELECT",
            ));
        }
        if agg_ctx.is_some() || from_table {
            return Err(BindError::Invalid(
                "PARTITION BY re-keys a stream: a table is keyed by its PRIMARY KEY or GROUP BY"
                    .into(),
            ));
        }
        let (e, t) = ExprBinder {
            scope: &scope,
            agg: None,
        }
        .bind(p)?;
        // The new key is a column of the result: selected, or added first.
        if !items.iter().any(|(_, i, _)| *i == e) {
            let name = match p {
                sql::Expr::Identifier(id) => normalize_ident(id),
                sql::Expr::CompoundIdentifier(parts) => {
                    parts.last().map(normalize_ident).unwrap_or_default()
                }
                _ => format!("KSQL_COL_{unnamed}"),
            };
            items.insert(0, (name, e.clone(), t));
        }
        key_exprs = vec![e];
    }
    let (projection, output) = shape_output(items, &key_exprs, agg_ctx.as_ref(), mode)?;

    let aggregate = match agg_ctx {
        Some(ctx) => {
            if from_table {
                if let Some(c) = ctx.calls.iter().find(|c| !c.func.retractable) {
                    return Err(unsupported(format!(
                        "{} cannot aggregate a TABLE (it cannot undo a row that leaves the group): aggregate a STREAM",
                        c.func.name
                    )));
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

    if mode == SelectMode::Persistent && from_table && aggregate.is_none() {
        for k in keys {
            if !projection.contains(&Expr::Column(k)) {
                let what = if from.as_ref().is_some_and(|f| f.joins.is_empty()) {
                    "the primary key column"
                } else {
                    "the join's key column"
                };
                return Err(BindError::Invalid(format!(
                    "{what} \"{}\" must be in the SELECT list of a query over a table: it becomes the key of the result",
                    schema[k].name
                )));
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
        let out_scope = Scope::unqualified(&output);
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
                        scope: &Scope::unqualified(&[]),
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
        source_name: from
            .as_ref()
            .and_then(|f| f.relations[0].0.last().cloned())
            .unwrap_or_default(),
        joins: from.map(|f| f.joins).unwrap_or_default(),
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
    source_keys: &[Expr],
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
            for (name, e, t) in items {
                let is_key = source_keys.contains(&e)
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

/// A FROM clause, bound: the relations, the row they make and its key.
struct BoundFrom {
    source: RelationDesc,
    joins: Vec<BoundJoin>,
    /// The row: each relation's `query_schema()` in order, and after a
    /// FULL OUTER join its ROWKEY.
    schema: Vec<ColumnDesc>,
    /// Per relation: the names it may be qualified with, and its columns.
    relations: Vec<(Vec<String>, std::ops::Range<usize>)>,
    /// What `SELECT *` expands to.
    star: Vec<(String, usize)>,
    /// The key columns of the row: the result's key unless it aggregates.
    keys: Vec<usize>,
    /// Whether the row is a table's (else a stream's).
    is_table: bool,
}

impl BoundFrom {
    fn scope(&self) -> Vec<ScopeRelation> {
        self.relations
            .iter()
            .map(|(names, columns)| ScopeRelation {
                names: names.clone(),
                columns: columns.clone(),
            })
            .collect()
    }
}

/// The relation a FROM item names, and the names it may be qualified with
/// (its name, then its alias if any).
fn named_relation(
    factor: &TableFactor,
    catalog: &dyn Catalog,
) -> Result<(RelationDesc, Vec<String>), BindError> {
    let TableFactor::Table { name, alias, .. } = factor else {
        return Err(unsupported("FROM and JOIN must name a stream or table"));
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
    let mut names = vec![rel_name];
    if let Some(a) = alias {
        names.push(normalize_ident(&a.name));
    }
    Ok((rel.clone(), names))
}

/// Binds `a [JOIN b ...]`: each join's kind, key and window, checked
/// against what ksqlDB allows.
fn bind_from(
    t: &sql::TableWithJoins,
    timing: &[JoinTiming],
    catalog: &dyn Catalog,
) -> Result<BoundFrom, BindError> {
    let (source, names) = named_relation(&t.relation, catalog)?;
    let mut schema = source.query_schema();
    let prefix = |names: &[String]| names.last().cloned().unwrap_or_default();
    let mut from = BoundFrom {
        star: source
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect(),
        keys: source.key_indices(),
        is_table: source.kind == RelationKind::Table,
        relations: vec![(names, 0..schema.len())],
        joins: Vec::new(),
        schema: Vec::new(),
        source,
    };
    if !t.joins.is_empty() {
        // Joined columns are named by their relation in SELECT *.
        let p = prefix(&from.relations[0].0);
        for (name, _) in &mut from.star {
            *name = format!("{p}_{name}");
        }
    }
    for (n, join) in t.joins.iter().enumerate() {
        let (rel, names) = named_relation(&join.relation, catalog)?;
        if let Some((other, _)) = from
            .relations
            .iter()
            .find(|(other, _)| other[0] == names[0])
        {
            return Err(unsupported(format!(
                "cannot join \"{}\" to itself: self-joins are not supported",
                other[0]
            )));
        }
        let topic_taken = std::iter::once(&from.source)
            .chain(from.joins.iter().map(|j| &j.relation))
            .any(|r| r.topic == rel.topic);
        if topic_taken {
            return Err(unsupported(format!(
                "cannot join \"{}\": another joined relation reads the same topic '{}'",
                names[0], rel.topic
            )));
        }
        let (kind, constraint) = match &join.join_operator {
            sql::JoinOperator::Join(c) | sql::JoinOperator::Inner(c) => (JoinKind::Inner, c),
            sql::JoinOperator::Left(c) | sql::JoinOperator::LeftOuter(c) => (JoinKind::Left, c),
            sql::JoinOperator::Right(c) | sql::JoinOperator::RightOuter(c) => (JoinKind::Right, c),
            sql::JoinOperator::FullOuter(c) => (JoinKind::Full, c),
            _ => {
                return Err(unsupported(
                    "only INNER, LEFT, RIGHT and FULL OUTER joins are supported",
                ))
            }
        };
        let sql::JoinConstraint::On(on) = constraint else {
            return Err(unsupported(
                "a JOIN needs ON left_expression = right_expression",
            ));
        };
        let right_schema = rel.query_schema();
        let left_width = schema.len();
        let mut both_columns = schema.clone();
        both_columns.extend(right_schema.iter().cloned());
        let mut both = Scope {
            columns: &both_columns,
            relations: from.scope(),
        };
        both.relations.push(ScopeRelation {
            names: names.clone(),
            columns: left_width..both_columns.len(),
        });
        let right_scope = Scope::single(&right_schema, names.clone());
        let (left_key, right_key, key_type) =
            bind_on(on, &both, left_width, &right_scope, &names[0])?;
        let timing = timing.get(n).copied().unwrap_or_default();
        let left_on_key = matches!(left_key, Expr::Column(i) if from.keys == [i]);
        let shape = join_shape(kind, from.is_table, left_on_key, &rel, &right_key, timing)?;
        if timing.grace.is_some_and(|g| g < 0) {
            return Err(BindError::Invalid(
                "GRACE PERIOD must not be negative".into(),
            ));
        }
        let left_key_column = match left_key {
            Expr::Column(i) => Some(i),
            _ => None,
        };
        let right_key_column = match right_key {
            Expr::Column(i) => Some(left_width + i),
            _ => None,
        };
        // The key of the row after this join.
        from.keys = match (shape, kind) {
            (_, JoinKind::Full) => vec![left_width + right_schema.len()],
            (_, JoinKind::Right) => right_key_column.into_iter().collect(),
            (JoinShape::TableTable { .. }, _) => from.keys.clone(),
            _ => left_key_column.map_or_else(|| from.keys.clone(), |i| vec![i]),
        };
        let p = prefix(&names);
        from.star.extend(
            rel.columns
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("{p}_{}", c.name), left_width + i)),
        );
        schema.extend(right_schema.iter().cloned());
        from.relations
            .push((names.clone(), left_width..schema.len()));
        if kind == JoinKind::Full {
            // COALESCE of the two sides' join values.
            from.star.insert(0, ("ROWKEY".into(), schema.len()));
            schema.push(ColumnDesc::new("ROWKEY", key_type, false));
        }
        from.is_table = from.is_table && rel.kind == RelationKind::Table;
        from.joins.push(BoundJoin {
            kind,
            shape,
            relation: rel,
            name: p,
            left_key,
            right_key,
            left_width,
        });
    }
    from.schema = schema;
    Ok(from)
}

/// What a join combines, checked against what ksqlDB allows: the kind of
/// each side, the right side's key, and the WITHIN and GRACE PERIOD given.
fn join_shape(
    kind: JoinKind,
    left_table: bool,
    left_on_key: bool,
    rel: &RelationDesc,
    right_key: &Expr,
    timing: JoinTiming,
) -> Result<JoinShape, BindError> {
    let right_schema = rel.query_schema();
    let right_pk = rel.key_indices();
    let on_right_pk =
        rel.kind == RelationKind::Table && matches!(right_key, Expr::Column(i) if right_pk == [*i]);
    Ok(match (left_table, rel.kind) {
        (true, RelationKind::Stream) => {
            return Err(unsupported(format!(
                "a table cannot be joined to a stream (\"{}\"): put the stream first, as in FROM stream JOIN table",
                rel.name
            )))
        }
        (false, RelationKind::Stream) => {
            let Some((before, after)) = timing.within else {
                return Err(BindError::Invalid(format!(
                    "a join of two streams needs a window: add WITHIN n SECONDS (or WITHIN (BEFORE x, AFTER y)) before ON, joining \"{}\"",
                    rel.name
                )));
            };
            if before < 0 || after < 0 {
                return Err(BindError::Invalid("WITHIN bounds must not be negative".into()));
            }
            JoinShape::StreamStream {
                before,
                after,
                grace: timing.grace.unwrap_or(window::DEFAULT_GRACE_MS),
            }
        }
        (left_table, RelationKind::Table) => {
            if timing.within.is_some() {
                return Err(BindError::Invalid(format!(
                    "WITHIN is only for joins of two streams; \"{}\" is a table",
                    rel.name
                )));
            }
            if !on_right_pk {
                let pk = right_pk
                    .iter()
                    .map(|&i| right_schema[i].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(BindError::Invalid(format!(
                    "a join with table \"{}\" must be ON its PRIMARY KEY ({pk})",
                    rel.name
                )));
            }
            if left_table {
                let foreign = !left_on_key;
                if timing.grace.is_some() {
                    return Err(BindError::Invalid(
                        "GRACE PERIOD is not for joins of two tables".into(),
                    ));
                }
                if foreign && matches!(kind, JoinKind::Right | JoinKind::Full) {
                    return Err(unsupported(format!(
                        "a foreign-key join (left side not ON its PRIMARY KEY) supports INNER and LEFT joins only, not {}",
                        kind.name()
                    )));
                }
                JoinShape::TableTable { foreign }
            } else {
                if matches!(kind, JoinKind::Right | JoinKind::Full) {
                    return Err(unsupported(format!(
                        "a stream-table join supports INNER and LEFT joins only, not {}",
                        kind.name()
                    )));
                }
                JoinShape::StreamTable {
                    grace: timing.grace.unwrap_or(0),
                }
            }
        }
    })
}

/// `ON l = r`: one expression of the left side equal to one of the right
/// (either order), of the same type. Names resolve against both sides
/// (`both`), so a name both have must be qualified.
fn bind_on(
    on: &sql::Expr,
    both: &Scope,
    left_width: usize,
    right: &Scope,
    right_name: &str,
) -> Result<(Expr, Expr, DataType), BindError> {
    let mut e = on;
    while let sql::Expr::Nested(inner) = e {
        e = inner;
    }
    let not_equality = || {
        unsupported(format!(
            "JOIN ... ON must be one equality of a left-side expression and a \"{right_name}\" expression, not {on}"
        ))
    };
    let sql::Expr::BinaryOp {
        left: a,
        op: sql::BinaryOperator::Eq,
        right: b,
    } = e
    else {
        return Err(not_equality());
    };
    if contains_aggregate(a) || contains_aggregate(b) {
        return Err(BindError::Grouping(
            "aggregate functions are not allowed in JOIN ... ON".into(),
        ));
    }
    let bind = |scope: &Scope, e: &sql::Expr| ExprBinder { scope, agg: None }.bind(e);
    // Which side an operand reads: Some(true) left only, Some(false)
    // right only, None both or neither.
    let side = |e: &Expr| {
        let (mut left, mut right) = (false, false);
        e.visit(&mut |e| {
            if let Expr::Column(i) = e {
                if *i < left_width {
                    left = true;
                } else {
                    right = true;
                }
            }
        });
        (left != right).then_some(left)
    };
    let (ea, ta) = bind(both, a)?;
    let (eb, tb) = bind(both, b)?;
    let (left_key, right_expr) = match (side(&ea), side(&eb)) {
        (Some(true), Some(false)) => (ea, b),
        (Some(false), Some(true)) => (eb, a),
        _ => return Err(not_equality()),
    };
    if ta != tb {
        return Err(BindError::TypeMismatch(format!(
            "JOIN ... ON {on} compares {ta} with {tb}: CAST one side"
        )));
    }
    let (right_key, _) = bind(right, right_expr)?;
    Ok((left_key, right_key, ta))
}
