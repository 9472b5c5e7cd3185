//! EXPLAIN text for bound expressions and operators.

use crate::binder::BoundAggregate;
use crate::expr::{BinaryOp, Expr};
use crate::parser::{Emit, WindowKind};

/// Renders an expression with column names.
pub fn fmt_expr(e: &Expr, names: &[String]) -> String {
    let f = |e: &Expr| fmt_expr(e, names);
    match e {
        Expr::Column(i) => names.get(*i).cloned().unwrap_or_else(|| format!("#{i}")),
        Expr::Literal(v) => match v {
            crate::value::Value::String(s) => format!("'{}'", s.replace('\'', "''")),
            other => other.to_string(),
        },
        Expr::Param(i) => format!("${}", i + 1),
        Expr::Binary { op, left, right } => match op {
            BinaryOp::And | BinaryOp::Or => format!("({} {} {})", f(left), op.symbol(), f(right)),
            _ => format!("({} {} {})", f(left), op.symbol(), f(right)),
        },
        Expr::Not(x) => format!("NOT {}", f(x)),
        Expr::Negate(x) => format!("-{}", f(x)),
        Expr::IsNull { expr, negated } => {
            format!("{} IS {}NULL", f(expr), if *negated { "NOT " } else { "" })
        }
        Expr::Like {
            expr,
            pattern,
            negated,
        } => {
            format!(
                "{} {}LIKE {}",
                f(expr),
                if *negated { "NOT " } else { "" },
                f(pattern)
            )
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => format!(
            "{} {}IN ({})",
            f(expr),
            if *negated { "NOT " } else { "" },
            list.iter().map(f).collect::<Vec<_>>().join(", ")
        ),
        Expr::Case { whens, otherwise } => {
            let mut s = "CASE".to_string();
            for (c, r) in whens {
                s.push_str(&format!(" WHEN {} THEN {}", f(c), f(r)));
            }
            if let Some(o) = otherwise {
                s.push_str(&format!(" ELSE {}", f(o)));
            }
            s + " END"
        }
        Expr::Cast { expr, to } => format!("CAST({} AS {to})", f(expr)),
        Expr::Function { func, args } => format!(
            "{}({})",
            func.name,
            args.iter().map(f).collect::<Vec<_>>().join(", ")
        ),
        Expr::Field { expr, index } => format!("{}->#{index}", f(expr)),
        Expr::Subscript { expr, index } => format!("{}[{}]", f(expr), f(index)),
        Expr::Array(items) => format!(
            "ARRAY[{}]",
            items.iter().map(f).collect::<Vec<_>>().join(", ")
        ),
        Expr::Map(entries) => format!(
            "MAP({})",
            entries
                .iter()
                .map(|(k, v)| format!("{} := {}", f(k), f(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Expr::Struct(items) => format!(
            "STRUCT({})",
            items.iter().map(f).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// A duration the way a statement would write it: `90 SECONDS`, `1 DAYS`.
pub fn fmt_ms(ms: i64) -> String {
    for (unit, n) in [
        ("DAYS", 86_400_000),
        ("HOURS", 3_600_000),
        ("MINUTES", 60_000),
        ("SECONDS", 1000),
    ] {
        if ms != 0 && ms % n == 0 {
            return format!("{} {unit}", ms / n);
        }
    }
    format!("{ms} MILLISECONDS")
}

/// One line describing an aggregate operator and the state it keeps.
pub fn fmt_aggregate(a: &BoundAggregate, input: &[String], emit: Option<Emit>) -> String {
    let keys: Vec<String> = a.group_by.iter().map(|e| fmt_expr(e, input)).collect();
    let calls: Vec<String> = a
        .calls
        .iter()
        .map(|c| {
            let mut args: Vec<String> = c.args.iter().map(|e| fmt_expr(e, input)).collect();
            args.extend(c.params.iter().map(|p| p.to_string()));
            if args.is_empty() {
                args.push("*".into());
            }
            format!("{}({})", c.func.name, args.join(", "))
        })
        .collect();
    let window = match &a.window {
        None => "state: one entry per group".to_string(),
        Some(w) => {
            let kind = match w.kind {
                WindowKind::Tumbling { size } => format!("TUMBLING (SIZE {})", fmt_ms(size)),
                WindowKind::Hopping { size, advance } => {
                    format!(
                        "HOPPING (SIZE {}, ADVANCE BY {})",
                        fmt_ms(size),
                        fmt_ms(advance)
                    )
                }
                WindowKind::Session { gap } => format!("SESSION ({})", fmt_ms(gap)),
            };
            let grace = w.grace.unwrap_or(crate::dataflow::window::DEFAULT_GRACE_MS);
            format!(
                "window {kind}, grace {}; state: one entry per group and open window, dropped when the window closes",
                fmt_ms(grace)
            )
        }
    };
    format!(
        "Aggregate: GROUP BY {} computing {}; {window}; EMIT {}",
        keys.join(", "),
        calls.join(", "),
        match emit {
            Some(Emit::Final) => "FINAL",
            _ => "CHANGES",
        }
    )
}

/// Column names of an aggregate's output row.
pub fn aggregate_names(a: &BoundAggregate, input: &[String]) -> Vec<String> {
    let mut names: Vec<String> = a.group_by.iter().map(|e| fmt_expr(e, input)).collect();
    if a.window.is_some() {
        names.push("WINDOWSTART".into());
        names.push("WINDOWEND".into());
    }
    for c in &a.calls {
        let mut args: Vec<String> = c.args.iter().map(|e| fmt_expr(e, input)).collect();
        if args.is_empty() {
            args.push("*".into());
        }
        names.push(format!("{}({})", c.func.name, args.join(", ")));
    }
    names
}
