//! Binding expressions: sqlparser's `Expr` -> our typed [`Expr`].

use std::sync::Arc;

use sqlparser::ast::{
    self as sql, BinaryOperator, DuplicateTreatment, FunctionArg, FunctionArgExpr,
    FunctionArguments, UnaryOperator,
};

use super::types::resolve_type_text;
use crate::catalog::ColumnDesc;
use crate::error::{did_you_mean, BindError};
use crate::expr::agg::{self, AggregateFunction};
use crate::expr::cast::{can_cast, cast};
use crate::expr::{func, BinaryOp, Expr};
use crate::parser::normalize_ident;
use crate::types::DataType;
use crate::value::Value;

thread_local! {
    /// Parameter types found while binding a statement with `$n`
    /// parameter markers (see [`infer_param_types`]).
    static PARAM_TYPES: std::cell::RefCell<Option<Vec<Option<DataType>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `bind` (a binding of a statement with `$n` parameter markers) and returns
/// the type each parameter must have, from the context it appears in
/// (`col = $1`, a VALUES position, ...). Unconstrained ones are STRING.
pub fn infer_param_types<T>(
    bind: impl FnOnce() -> Result<T, BindError>,
) -> Result<Vec<DataType>, BindError> {
    PARAM_TYPES.with(|p| *p.borrow_mut() = Some(Vec::new()));
    let result = bind();
    let types = PARAM_TYPES
        .with(|p| p.borrow_mut().take())
        .unwrap_or_default();
    result?;
    Ok(types
        .into_iter()
        .map(|t| t.unwrap_or(DataType::String))
        .collect())
}

fn note_param(i: usize, t: &DataType) {
    PARAM_TYPES.with(|p| {
        if let Some(types) = p.borrow_mut().as_mut() {
            if types.len() <= i {
                types.resize(i + 1, None);
            }
            if types[i].is_none() {
                types[i] = Some(t.clone());
            }
        }
    });
}

/// The columns an expression can name.
pub struct Scope<'a> {
    pub columns: &'a [ColumnDesc],
    /// The relations the columns come from, in order.
    pub relations: Vec<ScopeRelation>,
}

/// A relation of a [`Scope`]: the names its columns may be qualified with
/// (its name and alias) and the columns it owns. Columns no relation owns
/// (a FULL OUTER join's ROWKEY) are named unqualified only.
pub struct ScopeRelation {
    pub names: Vec<String>,
    pub columns: std::ops::Range<usize>,
}

impl<'a> Scope<'a> {
    /// Columns named unqualified only.
    pub fn unqualified(columns: &'a [ColumnDesc]) -> Scope<'a> {
        Scope {
            columns,
            relations: Vec::new(),
        }
    }

    /// The columns of one relation, qualified by `names`.
    pub fn single(columns: &'a [ColumnDesc], names: Vec<String>) -> Scope<'a> {
        Scope {
            columns,
            relations: vec![ScopeRelation {
                names,
                columns: 0..columns.len(),
            }],
        }
    }

    fn relation(&self, qualifier: &str) -> Option<&ScopeRelation> {
        self.relations
            .iter()
            .find(|r| r.names.iter().any(|n| n == qualifier))
    }

    /// An unqualified name: ambiguous when several relations have it (of
    /// unowned columns the last one counts).
    fn resolve(&self, name: &str) -> Result<(usize, DataType), BindError> {
        let owned = |i: usize| self.relations.iter().any(|r| r.columns.contains(&i));
        let mut found: Option<usize> = None;
        for (i, c) in self.columns.iter().enumerate() {
            if c.name != name {
                continue;
            }
            if let Some(prev) = found {
                if owned(prev) || owned(i) {
                    return Err(BindError::AmbiguousColumn(name.to_string()));
                }
            }
            found = Some(i);
        }
        match found {
            Some(i) => Ok((i, self.columns[i].data_type.clone())),
            None => Err(BindError::UnknownColumn {
                name: name.to_string(),
                hint: did_you_mean(name, self.columns.iter().map(|c| c.name.as_str())),
            }),
        }
    }

    fn resolve_in(&self, rel: &ScopeRelation, name: &str) -> Result<(usize, DataType), BindError> {
        match rel.columns.clone().find(|&i| self.columns[i].name == name) {
            Some(i) => Ok((i, self.columns[i].data_type.clone())),
            None => Err(BindError::UnknownColumn {
                name: format!(
                    "{}.{name}",
                    rel.names.last().map(String::as_str).unwrap_or("")
                ),
                hint: did_you_mean(
                    name,
                    self.columns[rel.columns.clone()]
                        .iter()
                        .map(|c| c.name.as_str()),
                ),
            }),
        }
    }
}

/// An aggregate call found while binding a grouped query.
#[derive(Debug, Clone, PartialEq)]
pub struct AggCall {
    pub func: &'static AggregateFunction,
    /// Column arguments, bound against the input row.
    pub args: Vec<Expr>,
    pub arg_types: Vec<DataType>,
    /// Literal trailing parameters (TOPK's k).
    pub params: Vec<Value>,
    pub return_type: DataType,
}

/// State for binding the SELECT/HAVING of a grouped query: expressions are
/// rewritten to read the aggregate's output row
/// `[group values.., (WINDOWSTART, WINDOWEND)?, aggregate results..]`.
pub struct AggContext {
    pub group_by: Vec<(Expr, DataType)>,
    pub windowed: bool,
    pub calls: Vec<AggCall>,
}

impl AggContext {
    fn window_offset(&self) -> usize {
        self.group_by.len()
    }

    fn calls_offset(&self) -> usize {
        self.group_by.len() + if self.windowed { 2 } else { 0 }
    }
}

/// Binds expressions against a scope; with an [`AggContext`], in grouped
/// mode.
pub struct ExprBinder<'a, 'b> {
    pub scope: &'a Scope<'a>,
    pub agg: Option<&'b mut AggContext>,
}

fn type_error(msg: impl Into<String>) -> BindError {
    BindError::TypeMismatch(msg.into())
}

impl ExprBinder<'_, '_> {
    /// Binds `e`, returning it and its type.
    pub fn bind(&mut self, e: &sql::Expr) -> Result<(Expr, DataType), BindError> {
        if self.agg.is_some() {
            return self.bind_grouped(e);
        }
        self.bind_node(e)
    }

    /// Grouped mode: a sub-expression equal to a GROUP BY expression reads
    /// the group value; aggregate calls read their result; any other column
    /// reference is an error.
    fn bind_grouped(&mut self, e: &sql::Expr) -> Result<(Expr, DataType), BindError> {
        if !contains_aggregate(e) {
            let mut plain = ExprBinder {
                scope: self.scope,
                agg: None,
            };
            if let Ok((bound, ty)) = plain.bind_node(e) {
                let ctx = self
                    .agg
                    .as_deref()
                    .ok_or_else(|| BindError::Invalid("internal: no aggregate context".into()))?;
                if let Some(i) = ctx.group_by.iter().position(|(g, _)| *g == bound) {
                    return Ok((Expr::Column(i), ty));
                }
                if bound.is_constant() {
                    return Ok((bound, ty));
                }
            }
        }
        if let sql::Expr::Identifier(id) = e {
            let name = normalize_ident(id);
            if let Some(ctx) = self.agg.as_deref() {
                if ctx.windowed && (name == "WINDOWSTART" || name == "WINDOWEND") {
                    let off = ctx.window_offset() + usize::from(name == "WINDOWEND");
                    return Ok((Expr::Column(off), DataType::BigInt));
                }
            }
            self.scope.resolve(&name)?;
            return Err(BindError::Grouping(format!(
                "column \"{name}\" must appear in the GROUP BY clause or be used in an aggregate function"
            )));
        }
        if let sql::Expr::CompoundIdentifier(parts) = e {
            let name = parts.last().map(normalize_ident).unwrap_or_default();
            return Err(BindError::Grouping(format!(
                "column \"{name}\" must appear in the GROUP BY clause or be used in an aggregate function"
            )));
        }
        if let sql::Expr::Function(f) = e {
            let name = f.name.to_string().to_uppercase();
            if let Some(af) = agg::lookup(&name) {
                return self.bind_aggregate(af, f);
            }
        }
        self.bind_node(e)
    }

    fn bind_aggregate(
        &mut self,
        af: &'static AggregateFunction,
        f: &sql::Function,
    ) -> Result<(Expr, DataType), BindError> {
        let args = function_args(f)?;
        let distinct = matches!(&f.args, FunctionArguments::List(l) if l.duplicate_treatment == Some(DuplicateTreatment::Distinct));
        if distinct {
            return Err(BindError::Unsupported(format!(
                "{}(DISTINCT ...) is not supported: use COUNT_DISTINCT",
                af.name
            )));
        }
        let mut plain = ExprBinder {
            scope: self.scope,
            agg: None,
        };
        let star = args.len() == 1 && matches!(args[0], FnArg::Star);
        let mut bound_args = Vec::new();
        let mut arg_types = Vec::new();
        let mut params = Vec::new();
        let mut all_types = Vec::new();
        if !star {
            let columns = af.columns;
            for (i, a) in args.iter().enumerate() {
                let FnArg::Expr(a) = a else {
                    return Err(type_error(format!("{}(*) is not allowed here", af.name)));
                };
                if contains_aggregate(a) {
                    return Err(BindError::Grouping(format!(
                        "aggregate function calls cannot be nested in {}",
                        af.name
                    )));
                }
                let (b, t) = plain.bind_node(a)?;
                all_types.push(t.clone());
                if i < columns {
                    bound_args.push(b);
                    arg_types.push(t);
                } else {
                    if !b.is_constant() {
                        return Err(type_error(format!(
                            "argument {} of {} must be a literal",
                            i + 1,
                            af.name
                        )));
                    }
                    params.push(b.eval(&[]).map_err(|e| BindError::Data(e.to_string()))?);
                }
            }
        } else if af.name != "COUNT" {
            return Err(type_error(format!(
                "{}(*) is not allowed: name a column",
                af.name
            )));
        }
        let return_type = af.bind_call(&all_types, &params).map_err(type_error)?;
        let call = AggCall {
            func: af,
            args: bound_args,
            arg_types,
            params,
            return_type: return_type.clone(),
        };
        let ctx = self.agg.as_deref_mut().ok_or_else(|| {
            BindError::Grouping(format!("aggregate {} is not allowed here", af.name))
        })?;
        let idx = match ctx.calls.iter().position(|c| *c == call) {
            Some(i) => i,
            None => {
                ctx.calls.push(call);
                ctx.calls.len() - 1
            }
        };
        Ok((Expr::Column(ctx.calls_offset() + idx), return_type))
    }

    fn child(&mut self, e: &sql::Expr) -> Result<(Expr, DataType), BindError> {
        self.bind(e)
    }

    fn bind_node(&mut self, e: &sql::Expr) -> Result<(Expr, DataType), BindError> {
        use sql::Expr as E;
        Ok(match e {
            E::Identifier(id) => {
                let name = normalize_ident(id);
                let (i, t) = self.scope.resolve(&name)?;
                (Expr::Column(i), t)
            }
            E::CompoundIdentifier(parts) => self.bind_compound(parts)?,
            E::Value(v) => match &v.value {
                sql::Value::Placeholder(p) => {
                    let n: usize = p.trim_start_matches('$').parse().map_err(|_| {
                        BindError::Invalid(format!("bad parameter \"{p}\": use $1, $2, ..."))
                    })?;
                    if n == 0 {
                        return Err(BindError::Invalid("parameters are numbered from $1".into()));
                    }
                    (Expr::Param(n - 1), DataType::String)
                }
                other => bind_literal(other)?,
            },
            E::TypedString(ts) => {
                let ty = super::types::resolve_sql_type(&ts.data_type)?;
                let text = match &ts.value.value {
                    sql::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                let v = cast(Value::str(&text), &ty).map_err(|e| BindError::Data(e.to_string()))?;
                (Expr::Literal(v), ty)
            }
            E::Nested(inner) => self.child(inner)?,
            E::UnaryOp { op, expr } => {
                let (b, t) = self.child(expr)?;
                match op {
                    UnaryOperator::Not => {
                        expect_bool(&t, "NOT")?;
                        (Expr::Not(Box::new(b)), DataType::Boolean)
                    }
                    UnaryOperator::Minus => {
                        if !t.is_numeric() {
                            return Err(type_error(format!("cannot negate {t}")));
                        }
                        match b {
                            Expr::Literal(v) => (
                                Expr::Literal(
                                    crate::expr::eval_binary(BinaryOp::Sub, &zero_like(&v), &v)
                                        .map_err(|e| BindError::Data(e.to_string()))?,
                                ),
                                t,
                            ),
                            b => (Expr::Negate(Box::new(b)), t),
                        }
                    }
                    UnaryOperator::Plus => (b, t),
                    other => {
                        return Err(BindError::Unsupported(format!(
                            "operator {other} is not supported"
                        )))
                    }
                }
            }
            E::BinaryOp { left, op, right } => self.bind_binary(left, op, right)?,
            E::IsNull(x) | E::IsNotNull(x) => {
                let (b, _) = self.child(x)?;
                (
                    Expr::IsNull {
                        expr: Box::new(b),
                        negated: matches!(e, E::IsNotNull(_)),
                    },
                    DataType::Boolean,
                )
            }
            E::IsTrue(x) | E::IsFalse(x) | E::IsNotTrue(x) | E::IsNotFalse(x) => {
                let (b, t) = self.child(x)?;
                expect_bool(&t, "IS TRUE")?;
                let cond = if matches!(e, E::IsTrue(_) | E::IsNotTrue(_)) {
                    b
                } else {
                    Expr::Not(Box::new(b))
                };
                // Never NULL: CASE WHEN cond THEN TRUE ELSE FALSE END.
                let is = Expr::Case {
                    whens: vec![(cond, Expr::Literal(Value::Boolean(true)))],
                    otherwise: Some(Box::new(Expr::Literal(Value::Boolean(false)))),
                };
                if matches!(e, E::IsTrue(_) | E::IsFalse(_)) {
                    (is, DataType::Boolean)
                } else {
                    (Expr::Not(Box::new(is)), DataType::Boolean)
                }
            }
            E::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (x, xt) = self.child(expr)?;
                let (lo, lt) = self.child(low)?;
                let (hi, ht) = self.child(high)?;
                let (x1, lo) = coerce_pair(x.clone(), &xt, lo, &lt, "BETWEEN")?;
                let (x2, hi) = coerce_pair(x, &xt, hi, &ht, "BETWEEN")?;
                let both = Expr::Binary {
                    op: BinaryOp::And,
                    left: Box::new(Expr::Binary {
                        op: BinaryOp::GtEq,
                        left: Box::new(x1),
                        right: Box::new(lo),
                    }),
                    right: Box::new(Expr::Binary {
                        op: BinaryOp::LtEq,
                        left: Box::new(x2),
                        right: Box::new(hi),
                    }),
                };
                let b = if *negated {
                    Expr::Not(Box::new(both))
                } else {
                    both
                };
                (b, DataType::Boolean)
            }
            E::InList {
                expr,
                list,
                negated,
            } => {
                let (x, xt) = self.child(expr)?;
                let mut items = Vec::new();
                let mut x_out = x.clone();
                for item in list {
                    let (b, t) = self.child(item)?;
                    let (xc, bc) = coerce_pair(x.clone(), &xt, b, &t, "IN")?;
                    x_out = xc;
                    items.push(bc);
                }
                (
                    Expr::InList {
                        expr: Box::new(x_out),
                        list: items,
                        negated: *negated,
                    },
                    DataType::Boolean,
                )
            }
            E::Like {
                negated,
                expr,
                pattern,
                escape_char,
                any,
            } => {
                if escape_char.is_some() || *any {
                    return Err(BindError::Unsupported(
                        "LIKE ... ESCAPE / ANY is not supported".into(),
                    ));
                }
                let (x, xt) = self.child(expr)?;
                let (p, pt) = self.child(pattern)?;
                if xt != DataType::String || pt != DataType::String {
                    return Err(type_error(format!(
                        "LIKE needs STRING operands, found {xt} and {pt}"
                    )));
                }
                (
                    Expr::Like {
                        expr: Box::new(x),
                        pattern: Box::new(p),
                        negated: *negated,
                    },
                    DataType::Boolean,
                )
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.bind_case(operand.as_deref(), conditions, else_result.as_deref())?,
            E::Cast {
                expr, data_type, ..
            } => {
                let to = match data_type {
                    sql::DataType::Custom(name, _) => resolve_type_text(&name.to_string())?,
                    other => super::types::resolve_sql_type(other)?,
                };
                let (b, t) = self.child(expr)?;
                if !can_cast(&t, &to) {
                    return Err(type_error(format!("cannot cast {t} to {to}")));
                }
                if let Expr::Literal(v) = &b {
                    let v = cast(v.clone(), &to).map_err(|e| BindError::Data(e.to_string()))?;
                    (Expr::Literal(v), to)
                } else {
                    (
                        Expr::Cast {
                            expr: Box::new(b),
                            to: to.clone(),
                        },
                        to,
                    )
                }
            }
            E::Function(f) => self.bind_function(f)?,
            E::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args: Vec<&sql::Expr> = vec![expr];
                args.extend(substring_from.as_deref());
                args.extend(substring_for.as_deref());
                self.call_scalar("SUBSTRING", &args)?
            }
            E::Trim {
                expr,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                if trim_where.is_some() || trim_what.is_some() || trim_characters.is_some() {
                    return Err(BindError::Unsupported(
                        "TRIM takes one argument: TRIM(s) removes leading and trailing whitespace"
                            .into(),
                    ));
                }
                self.call_scalar("TRIM", &[expr])?
            }
            E::Ceil { expr, field } | E::Floor { expr, field } => {
                let name = if matches!(e, E::Ceil { .. }) {
                    "CEIL"
                } else {
                    "FLOOR"
                };
                if !matches!(
                    field,
                    sql::CeilFloorKind::DateTimeField(sql::DateTimeField::NoDateTime)
                ) {
                    return Err(BindError::Unsupported(format!("{name} takes one argument")));
                }
                self.call_scalar(name, &[expr])?
            }
            E::CompoundFieldAccess { root, access_chain } => {
                let (mut b, mut t) = self.child(root)?;
                for access in access_chain {
                    match access {
                        sql::AccessExpr::Subscript(sql::Subscript::Index { index }) => {
                            let (i, it) = self.child(index)?;
                            (b, t) = subscript(b, t, i, it)?;
                        }
                        sql::AccessExpr::Dot(field) => {
                            let name = match field {
                                E::Identifier(id) => normalize_ident(id),
                                other => {
                                    return Err(type_error(format!(
                                        "expected a field name, found {other}"
                                    )))
                                }
                            };
                            (b, t) = field_access(b, t, &name)?;
                        }
                        other => {
                            return Err(BindError::Unsupported(format!("{other} is not supported")))
                        }
                    }
                }
                (b, t)
            }
            E::Array(arr) => {
                let mut items = Vec::new();
                let mut elem: Option<DataType> = None;
                for x in &arr.elem {
                    let (b, t) = self.child(x)?;
                    items.push((b, t.clone()));
                    elem = Some(match elem {
                        None => t,
                        Some(prev) => unify(&prev, &t, "ARRAY elements")?,
                    });
                }
                let elem = elem.unwrap_or(DataType::String);
                let items = items
                    .into_iter()
                    .map(|(b, t)| coerce_to(b, &t, &elem))
                    .collect::<Result<Vec<_>, _>>()?;
                (Expr::Array(items), DataType::Array(Box::new(elem)))
            }
            other => {
                return Err(BindError::Unsupported(format!(
                    "expression \"{other}\" is not supported"
                )))
            }
        })
    }

    fn bind_compound(&mut self, parts: &[sql::Ident]) -> Result<(Expr, DataType), BindError> {
        let names: Vec<String> = parts.iter().map(normalize_ident).collect();
        // `source.column[.field...]`, or `column.field` on a struct.
        let qualified = match names.as_slice() {
            [q, _, ..] => self.scope.relation(q),
            _ => None,
        };
        let ((i, mut t), fields) = match qualified {
            Some(rel) => (self.scope.resolve_in(rel, &names[1])?, &names[2..]),
            None => (self.scope.resolve(&names[0])?, &names[1..]),
        };
        let mut b = Expr::Column(i);
        for f in fields {
            (b, t) = field_access(b, t, f)?;
        }
        Ok((b, t))
    }

    fn bind_binary(
        &mut self,
        left: &sql::Expr,
        op: &BinaryOperator,
        right: &sql::Expr,
    ) -> Result<(Expr, DataType), BindError> {
        if matches!(op, BinaryOperator::Arrow) {
            let (b, t) = self.child(left)?;
            let name = match right {
                sql::Expr::Identifier(id) => normalize_ident(id),
                other => {
                    return Err(type_error(format!(
                        "expected a field name after ->, found {other}"
                    )))
                }
            };
            return field_access(b, t, &name);
        }
        let op = match op {
            BinaryOperator::Plus => BinaryOp::Add,
            BinaryOperator::Minus => BinaryOp::Sub,
            BinaryOperator::Multiply => BinaryOp::Mul,
            BinaryOperator::Divide => BinaryOp::Div,
            BinaryOperator::Modulo => BinaryOp::Mod,
            BinaryOperator::Eq => BinaryOp::Eq,
            BinaryOperator::NotEq => BinaryOp::NotEq,
            BinaryOperator::Lt => BinaryOp::Lt,
            BinaryOperator::LtEq => BinaryOp::LtEq,
            BinaryOperator::Gt => BinaryOp::Gt,
            BinaryOperator::GtEq => BinaryOp::GtEq,
            BinaryOperator::And => BinaryOp::And,
            BinaryOperator::Or => BinaryOp::Or,
            BinaryOperator::StringConcat => BinaryOp::Concat,
            other => {
                return Err(BindError::Unsupported(format!(
                    "operator {other} is not supported"
                )))
            }
        };
        let (l, lt) = self.child(left)?;
        let (r, rt) = self.child(right)?;
        let result = |l: Expr, r: Expr, t: DataType| -> Result<(Expr, DataType), BindError> {
            let e = Expr::Binary {
                op,
                left: Box::new(l),
                right: Box::new(r),
            };
            // Fold constants so literals are checked once, at bind time.
            if e.is_constant() {
                let v = e
                    .eval(&[])
                    .map_err(|err| BindError::Data(err.to_string()))?;
                return Ok((Expr::Literal(v), t));
            }
            Ok((e, t))
        };
        match op {
            BinaryOp::And | BinaryOp::Or => {
                expect_bool(&lt, op.symbol())?;
                expect_bool(&rt, op.symbol())?;
                result(l, r, DataType::Boolean)
            }
            BinaryOp::Eq
            | BinaryOp::NotEq
            | BinaryOp::Lt
            | BinaryOp::LtEq
            | BinaryOp::Gt
            | BinaryOp::GtEq => {
                let (l, r) = coerce_pair(l, &lt, r, &rt, op.symbol())?;
                result(l, r, DataType::Boolean)
            }
            BinaryOp::Concat => result(l, r, DataType::String),
            _ => {
                if lt == DataType::Timestamp
                    && matches!(rt, DataType::Int | DataType::BigInt)
                    && matches!(op, BinaryOp::Add | BinaryOp::Sub)
                {
                    return result(l, r, DataType::Timestamp);
                }
                if op == BinaryOp::Add && lt == DataType::String && rt == DataType::String {
                    return Err(type_error("use CONCAT or || to join strings, not +"));
                }
                match DataType::common_numeric(&lt, &rt) {
                    Some(t) => result(l, r, t),
                    None => Err(type_error(format!(
                        "operator {} cannot be applied to {lt} and {rt}",
                        op.symbol()
                    ))),
                }
            }
        }
    }

    fn bind_case(
        &mut self,
        operand: Option<&sql::Expr>,
        conditions: &[sql::CaseWhen],
        else_result: Option<&sql::Expr>,
    ) -> Result<(Expr, DataType), BindError> {
        let operand = match operand {
            Some(o) => Some(self.child(o)?),
            None => None,
        };
        let mut whens = Vec::new();
        let mut result_type: Option<DataType> = None;
        let mut results = Vec::new();
        for w in conditions {
            let (c, ct) = self.child(&w.condition)?;
            let cond = match &operand {
                Some((o, ot)) => {
                    let (o, c) = coerce_pair(o.clone(), ot, c, &ct, "CASE")?;
                    Expr::Binary {
                        op: BinaryOp::Eq,
                        left: Box::new(o),
                        right: Box::new(c),
                    }
                }
                None => {
                    expect_bool(&ct, "CASE WHEN")?;
                    c
                }
            };
            let (r, rt) = self.child(&w.result)?;
            result_type = Some(match result_type {
                None => rt.clone(),
                Some(prev) => unify(&prev, &rt, "CASE results")?,
            });
            whens.push(cond);
            results.push((r, rt));
        }
        let otherwise = match else_result {
            Some(e) => {
                let (b, t) = self.child(e)?;
                result_type = Some(match result_type {
                    None => t.clone(),
                    Some(prev) => unify(&prev, &t, "CASE results")?,
                });
                Some((b, t))
            }
            None => None,
        };
        let ty = result_type.unwrap_or(DataType::String);
        let whens = whens
            .into_iter()
            .zip(results)
            .map(|(c, (r, rt))| Ok((c, coerce_to(r, &rt, &ty)?)))
            .collect::<Result<Vec<_>, BindError>>()?;
        let otherwise = match otherwise {
            Some((b, t)) => Some(Box::new(coerce_to(b, &t, &ty)?)),
            None => None,
        };
        Ok((Expr::Case { whens, otherwise }, ty))
    }

    fn bind_function(&mut self, f: &sql::Function) -> Result<(Expr, DataType), BindError> {
        let name = f.name.to_string().to_uppercase();
        if agg::lookup(&name).is_some() {
            return Err(BindError::Grouping(format!(
                "aggregate function {name} is only allowed in the SELECT or HAVING of a query with GROUP BY"
            )));
        }
        let args = function_args(f)?;
        match name.as_str() {
            "MAP" => return self.bind_map(&args),
            "STRUCT" => return self.bind_struct(&args),
            "ARRAY" => {
                let exprs: Vec<sql::Expr> = args
                    .iter()
                    .map(|a| match a {
                        FnArg::Expr(e) => Ok(e.clone()),
                        _ => Err(type_error("ARRAY takes values")),
                    })
                    .collect::<Result<_, _>>()?;
                return self.bind_node(&sql::Expr::Array(sql::Array {
                    elem: exprs,
                    named: true,
                }));
            }
            _ => {}
        }
        let Some(scalar) = func::lookup(&name) else {
            return Err(BindError::UnknownFunction {
                hint: did_you_mean(&name, func::names().chain(agg::names())),
                name,
            });
        };
        let mut bound = Vec::new();
        let mut types = Vec::new();
        for a in &args {
            match a {
                FnArg::Expr(e) => {
                    let (b, t) = self.child(e)?;
                    bound.push(b);
                    types.push(t);
                }
                FnArg::Star => return Err(type_error(format!("{name}(*) is not allowed"))),
                FnArg::Named(n, _) => {
                    return Err(type_error(format!(
                        "{name} does not take named argument {n}"
                    )))
                }
            }
        }
        let ret = (scalar.return_type)(&types).map_err(type_error)?;
        Ok((
            Expr::Function {
                func: scalar,
                args: bound,
            },
            ret,
        ))
    }

    /// Binds a call of the scalar function `name` (special syntax such as
    /// `TRIM(x)` and `SUBSTRING(x FROM 2)` arrives here).
    fn call_scalar(
        &mut self,
        name: &str,
        args: &[&sql::Expr],
    ) -> Result<(Expr, DataType), BindError> {
        let scalar = func::lookup(name).ok_or_else(|| BindError::UnknownFunction {
            name: name.to_string(),
            hint: None,
        })?;
        let mut bound = Vec::new();
        let mut types = Vec::new();
        for a in args {
            let (b, t) = self.child(a)?;
            bound.push(b);
            types.push(t);
        }
        let ret = (scalar.return_type)(&types).map_err(type_error)?;
        Ok((
            Expr::Function {
                func: scalar,
                args: bound,
            },
            ret,
        ))
    }

    fn bind_map(&mut self, args: &[FnArg]) -> Result<(Expr, DataType), BindError> {
        let mut entries = Vec::new();
        let (mut kt, mut vt): (Option<DataType>, Option<DataType>) = (None, None);
        for a in args {
            let (k, v) = match a {
                FnArg::Named(name, v) => (
                    sql::Expr::Value(sql::Value::SingleQuotedString(name.clone()).into()),
                    v.clone(),
                ),
                FnArg::Expr(sql::Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Assignment,
                    right,
                }) => ((**left).clone(), (**right).clone()),
                _ => {
                    return Err(type_error(
                        "MAP takes key := value pairs, e.g. MAP('a' := 1)",
                    ))
                }
            };
            let (kb, k_t) = self.child(&k)?;
            let (vb, v_t) = self.child(&v)?;
            kt = Some(match kt {
                None => k_t.clone(),
                Some(p) => unify(&p, &k_t, "MAP keys")?,
            });
            vt = Some(match vt {
                None => v_t.clone(),
                Some(p) => unify(&p, &v_t, "MAP values")?,
            });
            entries.push(((kb, k_t), (vb, v_t)));
        }
        let kt = kt.unwrap_or(DataType::String);
        let vt = vt.unwrap_or(DataType::String);
        let entries = entries
            .into_iter()
            .map(|((k, k_t), (v, v_t))| Ok((coerce_to(k, &k_t, &kt)?, coerce_to(v, &v_t, &vt)?)))
            .collect::<Result<Vec<_>, BindError>>()?;
        Ok((
            Expr::Map(entries),
            DataType::Map(Box::new(kt), Box::new(vt)),
        ))
    }

    fn bind_struct(&mut self, args: &[FnArg]) -> Result<(Expr, DataType), BindError> {
        let mut fields = Vec::new();
        let mut values = Vec::new();
        for a in args {
            let (name, e) = match a {
                FnArg::Named(n, e) => (n.to_uppercase(), e.clone()),
                FnArg::Expr(sql::Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Assignment,
                    right,
                }) => match &**left {
                    sql::Expr::Identifier(id) => (normalize_ident(id), (**right).clone()),
                    _ => return Err(type_error("STRUCT takes name := value pairs")),
                },
                _ => {
                    return Err(type_error(
                        "STRUCT takes name := value pairs, e.g. STRUCT(A := 1)",
                    ))
                }
            };
            let (b, t) = self.child(&e)?;
            fields.push((name, t));
            values.push(b);
        }
        Ok((Expr::Struct(values), DataType::Struct(fields)))
    }
}

fn zero_like(v: &Value) -> Value {
    match v {
        Value::Int(_) => Value::Int(0),
        Value::BigInt(_) => Value::BigInt(0),
        Value::Decimal(_) => Value::Decimal(rust_decimal::Decimal::ZERO),
        _ => Value::Double(0.0),
    }
}

/// A function argument as written.
pub(crate) enum FnArg {
    Star,
    Expr(sql::Expr),
    Named(String, sql::Expr),
}

pub(crate) fn function_args(f: &sql::Function) -> Result<Vec<FnArg>, BindError> {
    let list = match &f.args {
        FunctionArguments::None => return Ok(Vec::new()),
        FunctionArguments::List(l) => l,
        FunctionArguments::Subquery(_) => {
            return Err(BindError::Unsupported(
                "subqueries are not supported".into(),
            ))
        }
    };
    if f.over.is_some() || f.filter.is_some() {
        return Err(BindError::Unsupported(format!(
            "{} with OVER or FILTER is not supported",
            f.name
        )));
    }
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => Ok(FnArg::Star),
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(FnArg::Expr(e.clone())),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } => Ok(FnArg::Named(name.value.clone(), e.clone())),
            FunctionArg::ExprNamed {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } => match name {
                sql::Expr::Identifier(id) => Ok(FnArg::Named(normalize_ident(id), e.clone())),
                sql::Expr::Value(v) => match &v.value {
                    sql::Value::SingleQuotedString(s) => Ok(FnArg::Named(s.clone(), e.clone())),
                    _ => Ok(FnArg::Expr(sql::Expr::BinaryOp {
                        left: Box::new(name.clone()),
                        op: BinaryOperator::Assignment,
                        right: Box::new(e.clone()),
                    })),
                },
                other => Ok(FnArg::Expr(sql::Expr::BinaryOp {
                    left: Box::new(other.clone()),
                    op: BinaryOperator::Assignment,
                    right: Box::new(e.clone()),
                })),
            },
            other => Err(BindError::Unsupported(format!(
                "function argument {other} is not supported"
            ))),
        })
        .collect()
}

/// Whether an expression contains an aggregate call.
pub fn contains_aggregate(e: &sql::Expr) -> bool {
    use sql::Expr as E;
    let any = |xs: &[&sql::Expr]| xs.iter().any(|x| contains_aggregate(x));
    match e {
        E::Function(f) => {
            if agg::lookup(&f.name.to_string()).is_some() {
                return true;
            }
            match &f.args {
                FunctionArguments::List(l) => l.args.iter().any(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(x))
                    | FunctionArg::Named {
                        arg: FunctionArgExpr::Expr(x),
                        ..
                    }
                    | FunctionArg::ExprNamed {
                        arg: FunctionArgExpr::Expr(x),
                        ..
                    } => contains_aggregate(x),
                    _ => false,
                }),
                _ => false,
            }
        }
        E::BinaryOp { left, right, .. } => any(&[left, right]),
        E::UnaryOp { expr, .. }
        | E::Nested(expr)
        | E::IsNull(expr)
        | E::IsNotNull(expr)
        | E::IsTrue(expr)
        | E::IsFalse(expr)
        | E::IsNotTrue(expr)
        | E::IsNotFalse(expr)
        | E::Cast { expr, .. } => contains_aggregate(expr),
        E::Between {
            expr, low, high, ..
        } => any(&[expr, low, high]),
        E::InList { expr, list, .. } => {
            contains_aggregate(expr) || list.iter().any(contains_aggregate)
        }
        E::Like { expr, pattern, .. } => any(&[expr, pattern]),
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref().is_some_and(contains_aggregate)
                || conditions
                    .iter()
                    .any(|w| contains_aggregate(&w.condition) || contains_aggregate(&w.result))
                || else_result.as_deref().is_some_and(contains_aggregate)
        }
        E::CompoundFieldAccess { root, .. } => contains_aggregate(root),
        E::Array(a) => a.elem.iter().any(contains_aggregate),
        _ => false,
    }
}

fn bind_literal(v: &sql::Value) -> Result<(Expr, DataType), BindError> {
    Ok(match v {
        sql::Value::Number(n, _) => {
            if let Ok(i) = n.parse::<i32>() {
                (Expr::Literal(Value::Int(i)), DataType::Int)
            } else if let Ok(i) = n.parse::<i64>() {
                (Expr::Literal(Value::BigInt(i)), DataType::BigInt)
            } else {
                let d: f64 = n
                    .parse()
                    .map_err(|_| BindError::Data(format!("invalid number \"{n}\"")))?;
                (Expr::Literal(Value::Double(d)), DataType::Double)
            }
        }
        sql::Value::SingleQuotedString(s) | sql::Value::DoubleQuotedString(s) => (
            Expr::Literal(Value::String(Arc::from(s.as_str()))),
            DataType::String,
        ),
        sql::Value::Boolean(b) => (Expr::Literal(Value::Boolean(*b)), DataType::Boolean),
        sql::Value::Null => (Expr::Literal(Value::Null), DataType::String),
        sql::Value::HexStringLiteral(h) => {
            let bytes = (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(h.get(i..i + 2).unwrap_or(""), 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| BindError::Data(format!("invalid hex literal \"{h}\"")))?;
            (
                Expr::Literal(Value::Bytes(Arc::from(bytes))),
                DataType::Bytes,
            )
        }
        other => {
            return Err(BindError::Unsupported(format!(
                "literal {other} is not supported"
            )))
        }
    })
}

fn expect_bool(t: &DataType, what: &str) -> Result<(), BindError> {
    if *t == DataType::Boolean {
        Ok(())
    } else {
        Err(type_error(format!(
            "{what} needs BOOLEAN operands, found {t}"
        )))
    }
}

/// Whether `e` is a NULL literal (typed as STRING by default).
fn is_null_literal(e: &Expr) -> bool {
    matches!(e, Expr::Literal(Value::Null))
}

/// The type two branches/elements share.
fn unify(a: &DataType, b: &DataType, what: &str) -> Result<DataType, BindError> {
    if a == b {
        return Ok(a.clone());
    }
    DataType::common_numeric(a, b)
        .ok_or_else(|| type_error(format!("{what} must have one type, found {a} and {b}")))
}

/// Makes an expression of type `from` produce type `to` (numeric widening,
/// literal coercion).
pub(crate) fn coerce_to(e: Expr, from: &DataType, to: &DataType) -> Result<Expr, BindError> {
    if let Expr::Param(i) = e {
        note_param(i, to);
        return Ok(e);
    }
    if from == to {
        return Ok(e);
    }
    if let Expr::Literal(v) = &e {
        let assignable = v.is_null()
            || (from.is_numeric() && to.is_numeric())
            || *from == DataType::String
            || (matches!(from, DataType::Int | DataType::BigInt) && *to == DataType::Timestamp)
            || *to == DataType::String && !matches!(from, DataType::Boolean | DataType::Bytes);
        if !assignable {
            return Err(type_error(format!("expected {to}, found {from} value {v}")));
        }
        return cast(v.clone(), to)
            .map(Expr::Literal)
            .map_err(|err| BindError::Data(err.to_string()));
    }
    if from.is_numeric() && to.is_numeric() {
        return Ok(Expr::Cast {
            expr: Box::new(e),
            to: to.clone(),
        });
    }
    // Constructors coerce element by element: ARRAY[1, 2] fills an
    // ARRAY<BIGINT>, STRUCT(A := 1) a STRUCT<A DOUBLE>.
    match (e, from, to) {
        (Expr::Array(items), DataType::Array(f), DataType::Array(t)) => items
            .into_iter()
            .map(|x| coerce_to(x, f, t))
            .collect::<Result<_, _>>()
            .map(Expr::Array),
        (Expr::Map(entries), DataType::Map(fk, fv), DataType::Map(tk, tv)) => entries
            .into_iter()
            .map(|(k, v)| Ok((coerce_to(k, fk, tk)?, coerce_to(v, fv, tv)?)))
            .collect::<Result<_, BindError>>()
            .map(Expr::Map),
        (Expr::Struct(fields), DataType::Struct(ff), DataType::Struct(tf))
            if ff.len() == tf.len() && ff.iter().zip(tf).all(|(a, b)| a.0 == b.0) =>
        {
            fields
                .into_iter()
                .zip(ff.iter().zip(tf))
                .map(|(x, ((_, f), (_, t)))| coerce_to(x, f, t))
                .collect::<Result<_, _>>()
                .map(Expr::Struct)
        }
        _ => Err(type_error(format!("expected {to}, found {from}"))),
    }
}

/// Makes two operands comparable: numbers widen, a string literal compared
/// with a temporal column becomes that type, NULL literals fit anything.
pub(crate) fn coerce_pair(
    l: Expr,
    lt: &DataType,
    r: Expr,
    rt: &DataType,
    what: &str,
) -> Result<(Expr, Expr), BindError> {
    if let Expr::Param(i) = l {
        note_param(i, rt);
        return Ok((l, r));
    }
    if let Expr::Param(i) = r {
        note_param(i, lt);
        return Ok((l, r));
    }
    if lt == rt || is_null_literal(&l) || is_null_literal(&r) {
        return Ok((l, r));
    }
    if lt.is_numeric() && rt.is_numeric() {
        return Ok((l, r));
    }
    let temporal =
        |t: &DataType| matches!(t, DataType::Timestamp | DataType::Date | DataType::Time);
    if temporal(lt) && *rt == DataType::String {
        if let Expr::Literal(_) = r {
            return Ok((l, coerce_to(r, rt, lt)?));
        }
    }
    if temporal(rt) && *lt == DataType::String {
        if let Expr::Literal(_) = l {
            return Ok((coerce_to(l, lt, rt)?, r));
        }
    }
    if *lt == DataType::Timestamp && matches!(rt, DataType::Int | DataType::BigInt) {
        return Ok((
            l,
            Expr::Cast {
                expr: Box::new(r),
                to: DataType::Timestamp,
            },
        ));
    }
    if *rt == DataType::Timestamp && matches!(lt, DataType::Int | DataType::BigInt) {
        return Ok((
            Expr::Cast {
                expr: Box::new(l),
                to: DataType::Timestamp,
            },
            r,
        ));
    }
    Err(type_error(format!(
        "cannot compare {lt} with {rt} in {what}"
    )))
}

fn field_access(b: Expr, t: DataType, name: &str) -> Result<(Expr, DataType), BindError> {
    match t {
        DataType::Struct(fields) => {
            let Some(index) = fields
                .iter()
                .position(|(n, _)| n.eq_ignore_ascii_case(name))
            else {
                return Err(BindError::UnknownColumn {
                    name: name.to_string(),
                    hint: did_you_mean(name, fields.iter().map(|(n, _)| n.as_str())),
                });
            };
            Ok((
                Expr::Field {
                    expr: Box::new(b),
                    index,
                },
                fields[index].1.clone(),
            ))
        }
        other => Err(type_error(format!(
            "cannot access field \"{name}\" of {other}: not a STRUCT"
        ))),
    }
}

fn subscript(b: Expr, t: DataType, i: Expr, it: DataType) -> Result<(Expr, DataType), BindError> {
    match t {
        DataType::Array(elem) => {
            if !matches!(it, DataType::Int | DataType::BigInt) {
                return Err(type_error(format!(
                    "array index must be an integer, found {it}"
                )));
            }
            Ok((
                Expr::Subscript {
                    expr: Box::new(b),
                    index: Box::new(i),
                },
                *elem,
            ))
        }
        DataType::Map(k, v) => {
            let i = coerce_to(i, &it, &k)?;
            Ok((
                Expr::Subscript {
                    expr: Box::new(b),
                    index: Box::new(i),
                },
                *v,
            ))
        }
        other => Err(type_error(format!(
            "cannot subscript {other}: not an ARRAY or MAP"
        ))),
    }
}
