//! SHOW, DESCRIBE and EXPLAIN: the catalog and the running queries as rows.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rill_sql::binder::{bind_select, SelectMode};
use rill_sql::catalog::Catalog as _;
use rill_sql::error::did_you_mean;
use rill_sql::expr::{agg, func};
use rill_sql::parser::{parse_statement, RelationKind, ShowKind, Statement};
use rill_sql::plan::plan_query;
use rill_sql::{BindError, DataType, Row, Value};

use super::{Columns, Output};
use crate::engine::{lock, Engine, QueryDesc, QueryKind};
use crate::error::{Error, Result};
use crate::runtime::QueryState;
use crate::session::Session;

fn text_columns(names: &[&str]) -> Columns {
    names
        .iter()
        .map(|n| (n.to_string(), DataType::String))
        .collect()
}

fn s(v: impl ToString) -> Value {
    Value::str(&v.to_string())
}

fn int(v: u64) -> Value {
    Value::BigInt(v as i64)
}

pub(super) fn show(
    engine: &Arc<Engine>,
    session: &Session,
    kind: ShowKind,
    extended: bool,
) -> Result<Output> {
    let catalog = engine.catalog();
    Ok(match kind {
        ShowKind::Streams | ShowKind::Tables => {
            let want = if kind == ShowKind::Streams {
                RelationKind::Stream
            } else {
                RelationKind::Table
            };
            let first = if want == RelationKind::Stream {
                "stream_name"
            } else {
                "table_name"
            };
            let mut columns = text_columns(&[
                first,
                "kafka_topic",
                "key_format",
                "value_format",
                "is_windowed",
            ]);
            if extended {
                columns.push(("written_by".into(), DataType::String));
            }
            let rows = catalog
                .relations
                .values()
                .map(|(_, r)| r)
                .filter(|r| r.kind == want)
                .map(|r| {
                    let mut row = vec![
                        s(&r.name),
                        s(&r.topic),
                        s(&r.format.key_format),
                        s(&r.format.value_format),
                        Value::Boolean(r.window.is_some()),
                    ];
                    if extended {
                        row.push(r.written_by.as_deref().map(s).unwrap_or(Value::Null));
                    }
                    row
                })
                .collect();
            columns[4].1 = DataType::Boolean;
            Output::Rows { columns, rows }
        }
        ShowKind::Queries => {
            let mut columns = text_columns(&["query_id", "status", "query_type", "source", "sink"]);
            for c in ["rows_in", "rows_out", "late_drops", "errors"] {
                columns.push((c.into(), DataType::BigInt));
            }
            columns.push(("last_error".into(), DataType::String));
            columns.push(("sql".into(), DataType::String));
            let rows = catalog
                .queries
                .values()
                .map(|(_, q)| query_row(engine, q))
                .collect();
            Output::Rows { columns, rows }
        }
        ShowKind::Topics | ShowKind::AllTopics => {
            let mut columns = text_columns(&["topic"]);
            columns.push(("partitions".into(), DataType::Int));
            if extended {
                columns.push(("records".into(), DataType::BigInt));
            }
            let mut rows = Vec::new();
            // Internal topics (`_rill_commands`, `__consumer_offsets`, ...)
            // only with SHOW ALL TOPICS, as in ksqlDB.
            let all = kind == ShowKind::AllTopics;
            for (t, p) in engine.log.topics() {
                if !all && t.starts_with('_') {
                    continue;
                }
                let mut row = vec![s(&t), Value::Int(p as i32)];
                if extended {
                    let mut n = 0;
                    for i in 0..p {
                        n += engine.log.end_offset(&t, i)? - engine.log.start_offset(&t, i)?;
                    }
                    row.push(int(n));
                }
                rows.push(row);
            }
            Output::Rows { columns, rows }
        }
        ShowKind::Properties => {
            let columns = text_columns(&["property", "scope", "value"]);
            let mut rows: Vec<Row> = vec![
                vec![s("listen"), s("server"), s(engine.config.listen)],
                vec![
                    s("data.dir"),
                    s("server"),
                    s(engine.config.data_dir.display()),
                ],
                vec![
                    s("commit.interval.ms"),
                    s("server"),
                    s(engine.config.commit_interval_ms),
                ],
                vec![s("log.backend"), s("server"), s(engine.log.name())],
                vec![
                    s("auto.offset.reset"),
                    s("session"),
                    s(if session.earliest() {
                        "earliest"
                    } else {
                        "latest"
                    }),
                ],
            ];
            for (k, v) in session.props() {
                if k != "auto.offset.reset" {
                    rows.push(vec![s(k), s("session"), s(v)]);
                }
            }
            Output::Rows { columns, rows }
        }
        ShowKind::Functions => {
            let columns = text_columns(&["function_name", "type", "category"]);
            let mut rows: Vec<Row> = func::all()
                .map(|f| {
                    vec![
                        s(f.name),
                        s("SCALAR"),
                        s(format!("{:?}", f.category).to_uppercase()),
                    ]
                })
                .collect();
            rows.extend(agg::names().map(|n| vec![s(n), s("AGGREGATE"), s("AGGREGATE")]));
            rows.sort_by(|a, b| a[0].cmp(&b[0]));
            Output::Rows { columns, rows }
        }
    })
}

fn query_row(engine: &Engine, q: &QueryDesc) -> Row {
    let kind = match q.kind {
        QueryKind::CreateStreamAs => "CREATE STREAM AS",
        QueryKind::CreateTableAs => "CREATE TABLE AS",
        QueryKind::InsertInto => "INSERT INTO",
        QueryKind::SourceTable => "SOURCE TABLE",
    };
    let (status, rows_in, rows_out, late, errors, last_error) = match engine.runtime.status(&q.id) {
        Some(st) => {
            let m = lock(&st.metrics).clone();
            let bad = st.bad_records.load(Ordering::Relaxed);
            let last = lock(&st.last_bad_record).clone().or(m.last_error.clone());
            let status = match st.state() {
                QueryState::Running => "RUNNING".to_string(),
                QueryState::Error(e) => format!("ERROR: {e}"),
            };
            (
                status,
                st.rows_in.load(Ordering::Relaxed),
                st.rows_out.load(Ordering::Relaxed),
                m.late_drops,
                m.errors + bad,
                last,
            )
        }
        None => ("NOT RUNNING".into(), 0, 0, 0, 0, None),
    };
    vec![
        s(&q.id),
        s(status),
        s(kind),
        s(q.sources().collect::<Vec<_>>().join(", ")),
        s(&q.sink),
        int(rows_in),
        int(rows_out),
        int(late),
        int(errors),
        last_error.map(s).unwrap_or(Value::Null),
        s(&q.sql),
    ]
}

pub(super) fn describe(engine: &Arc<Engine>, name: &str, extended: bool) -> Result<Output> {
    let catalog = engine.catalog();
    let Some(rel) = catalog.relation(name) else {
        let names = catalog.relation_names();
        return Err(BindError::UnknownRelation {
            kind: "stream or table",
            hint: did_you_mean(name, names.iter().map(String::as_str)),
            name: name.to_string(),
        }
        .into());
    };
    let key_label = |c: &rill_sql::catalog::ColumnDesc| match (c.key, rel.kind, c.name.as_str()) {
        (false, _, _) => Value::Null,
        (true, _, "WINDOWSTART" | "WINDOWEND") if rel.window.is_some() => s("WINDOW KEY"),
        (true, RelationKind::Table, _) => s("PRIMARY KEY"),
        (true, RelationKind::Stream, _) => s("KEY"),
    };
    if !extended {
        let columns = text_columns(&["field", "type", "key"]);
        let rows = rel
            .columns
            .iter()
            .map(|c| vec![s(&c.name), s(&c.data_type), key_label(c)])
            .collect();
        return Ok(Output::Rows { columns, rows });
    }
    let columns = text_columns(&["section", "name", "value"]);
    let mut rows: Vec<Row> = rel
        .columns
        .iter()
        .map(|c| {
            let ty = match key_label(c) {
                Value::Null => c.data_type.to_string(),
                k => format!("{} ({k})", c.data_type),
            };
            vec![s("column"), s(&c.name), s(ty)]
        })
        .collect();
    let mut prop = |n: &str, v: String| rows.push(vec![s("property"), s(n), s(v)]);
    prop("type", rel.kind.name().to_uppercase());
    prop("kafka_topic", rel.topic.clone());
    prop("partitions", rel.partitions.to_string());
    prop("key_format", rel.format.key_format.clone());
    prop("value_format", rel.format.value_format.clone());
    prop(
        "timestamp",
        rel.timestamp_column
            .clone()
            .unwrap_or_else(|| "ROWTIME".into()),
    );
    if let Some(w) = &rel.window {
        prop("window", format!("{w:?}"));
        // Tables created before retention had a default show "forever".
        prop(
            "retention",
            rel.retention_ms
                .map_or_else(|| "forever".into(), rill_sql::plan::explain::fmt_ms),
        );
    }
    for q in catalog.writers_of(name) {
        prop("written_by", q.id.clone());
    }
    for q in catalog.readers_of(name) {
        prop("read_by", q.id.clone());
    }
    for q in catalog.writers_of(name) {
        if let Some(st) = engine.runtime.status(&q.id) {
            let m = lock(&st.metrics).clone();
            let mut stat = |n: &str, v: String| {
                rows.push(vec![s("statistics"), s(format!("{}.{n}", q.id)), s(v)])
            };
            stat("status", format!("{:?}", st.state()));
            stat("rows_in", st.rows_in.load(Ordering::Relaxed).to_string());
            stat("rows_out", st.rows_out.load(Ordering::Relaxed).to_string());
            stat("late_drops", m.late_drops.to_string());
            stat(
                "errors",
                (m.errors + st.bad_records.load(Ordering::Relaxed)).to_string(),
            );
            stat(
                "state_entries",
                st.state_entries.load(Ordering::Relaxed).to_string(),
            );
            // Join i joins the sources before it with source i + 1.
            for (right, (l, r)) in q.sources().skip(1).zip(lock(&st.join_state).iter()) {
                stat(
                    &format!("join_state.{right}"),
                    format!("left {l} entries, right {r} entries"),
                );
            }
            stat("committed_offsets", format!("{:?}", *st.committed.borrow()));
            if let Some(e) = lock(&st.last_bad_record).clone().or(m.last_error) {
                stat("last_error", e);
            }
        }
    }
    Ok(Output::Rows { columns, rows })
}

fn plan_lines(engine: &Engine, stmt: &Statement) -> Result<Vec<String>> {
    let catalog = engine.catalog();
    let (select, mode, sink) = match stmt {
        Statement::Select(s) => (
            s,
            if s.emit.is_some() {
                SelectMode::Push
            } else {
                SelectMode::Pull
            },
            None,
        ),
        Statement::CreateAs(c) => (
            &c.select,
            SelectMode::Persistent,
            Some(format!("{} {}", c.kind.name().to_uppercase(), c.name)),
        ),
        Statement::InsertSelect { target, select } => (
            select,
            SelectMode::Persistent,
            Some(format!("STREAM {target}")),
        ),
        _ => return Err(Error::Unsupported(
            "EXPLAIN takes a SELECT, CREATE ... AS SELECT, INSERT INTO ... SELECT or a query id"
                .into(),
        )),
    };
    let bound = bind_select(select, &*catalog, mode)?;
    if bound.source.is_none() {
        return Ok(vec!["Constant: one row".into()]);
    }
    let mut lines = plan_query(&bound)?.explain;
    match (mode, sink) {
        (SelectMode::Pull, _) => lines.push(
            "Serve: pull query (reads the current state, waits for upstream queries to catch up)"
                .into(),
        ),
        (SelectMode::Push, _) => {
            lines.push("Serve: push query (streams changes to this client)".into())
        }
        (_, Some(sink)) => lines.push(format!(
            "Sink: {sink} (state, rows and offsets committed together)"
        )),
        (_, None) => {}
    }
    // Each operator below the one before it; every source starts a line
    // of its own, and a join takes the sources before it in.
    let mut depth = 0;
    Ok(lines
        .into_iter()
        .map(|l| {
            depth = if l.starts_with("Source:") {
                0
            } else if l.starts_with("Join:") {
                1
            } else {
                depth + 1
            };
            match depth {
                0 => l,
                d => format!("{}-> {l}", "  ".repeat(d - 1)),
            }
        })
        .collect())
}

pub(super) fn explain(engine: &Arc<Engine>, stmt: Statement) -> Result<Output> {
    let lines = plan_lines(engine, &stmt)?;
    Ok(Output::Rows {
        columns: text_columns(&["plan"]),
        rows: lines.into_iter().map(|l| vec![s(l)]).collect(),
    })
}

pub(super) fn explain_query(engine: &Arc<Engine>, id: &str) -> Result<Output> {
    let Some(q) = engine.catalog().query(id).cloned() else {
        return Err(Error::UnknownQuery(id.to_string()));
    };
    let mut lines = match q.kind {
        QueryKind::SourceTable => vec![
            format!(
                "Source: TABLE {} (topic records, upserts and tombstones by key)",
                q.source
            ),
            format!("-> Sink: TABLE {} rows in the store", q.sink),
        ],
        _ => plan_lines(engine, &parse_statement(&q.sql)?.statement)?,
    };
    let mut row = query_row(engine, &q);
    lines.insert(0, format!("Query {id}: {}", row.remove(1)));
    Ok(Output::Rows {
        columns: text_columns(&["plan"]),
        rows: lines.into_iter().map(|l| vec![s(l)]).collect(),
    })
}
