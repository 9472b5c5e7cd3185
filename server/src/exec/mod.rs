//! Statement execution: one file per statement kind. Each takes a parsed
//! statement and the session, changes the engine, and returns an
//! [`Output`] that the pgwire module sends to the client.

pub mod commands;
mod ddl;
mod insert;
mod query;
mod schemas;
mod select;
mod show;

use std::sync::Arc;

use rill_sql::parser::{ParsedStatement, Statement, TransactionKind};
use rill_sql::{DataType, Row};

use crate::engine::Engine;
use crate::error::Result;
use crate::runtime::push::PushRows;
use crate::session::Session;

/// Result columns: names and types.
pub type Columns = Vec<(String, DataType)>;

/// What a statement returns.
pub enum Output {
    /// A command tag such as `CREATE STREAM` or `INSERT 0 3`.
    Command(String),
    Rows {
        columns: Columns,
        rows: Vec<Row>,
    },
    /// A push query's rows as they arrive.
    Stream {
        columns: Columns,
        rows: PushRows,
    },
    Transaction(TransactionKind),
}

/// Runs one statement; in Kafka mode one that changed the catalog also
/// goes to the command topic.
pub async fn execute(
    engine: &Arc<Engine>,
    session: &Session,
    stmt: ParsedStatement,
) -> Result<Output> {
    let changes_catalog = matches!(
        stmt.statement,
        Statement::CreateSource(_)
            | Statement::CreateAs(_)
            | Statement::InsertSelect { .. }
            | Statement::Drop { .. }
            | Statement::Terminate(_)
    );
    let sql = stmt.sql.clone();
    let output = run(engine, session, stmt).await?;
    if changes_catalog {
        blocking(|| commands::record(engine, session, &sql))?;
    }
    Ok(output)
}

async fn run(engine: &Arc<Engine>, session: &Session, stmt: ParsedStatement) -> Result<Output> {
    let sql = stmt.sql;
    match stmt.statement {
        Statement::CreateSource(c) => blocking(|| ddl::create_source(engine, session, c, &sql)),
        Statement::CreateAs(c) => blocking(|| query::create_as(engine, session, c, &sql)),
        Statement::InsertSelect { target, select } => {
            blocking(|| query::insert_select(engine, session, target, select, &sql))
        }
        Statement::InsertValues(i) => blocking(|| insert::insert_values(engine, i)),
        Statement::Select(s) => select::run(engine, session, s).await,
        Statement::Drop {
            kind,
            name,
            if_exists,
            delete_topic,
        } => blocking(|| ddl::drop(engine, kind, &name, if_exists, delete_topic)),
        Statement::Terminate(id) => blocking(|| query::terminate(engine, id.as_deref())),
        Statement::Restart(id) => blocking(|| query::restart(engine, &id)),
        Statement::Show { kind, extended } => show::show(engine, session, kind, extended),
        Statement::Describe { name, extended } => show::describe(engine, &name, extended),
        Statement::Explain(inner) => show::explain(engine, *inner),
        Statement::ExplainQuery(id) => show::explain_query(engine, &id),
        Statement::SetProperty { name, value } => {
            session.set(&name, &value);
            Ok(Output::Command("SET".into()))
        }
        Statement::UnsetProperty(name) => {
            session.unset(&name);
            Ok(Output::Command("UNSET".into()))
        }
        Statement::Transaction(kind) => Ok(Output::Transaction(kind)),
        Statement::Print {
            topic,
            from_beginning,
            limit,
        } => Ok(Output::Stream {
            columns: crate::runtime::push::PRINT_COLUMNS
                .iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
            rows: blocking(|| crate::runtime::push::print(engine, &topic, from_beginning, limit))?,
        }),
    }
}

/// Runs blocking work (fsyncs, store commits, joining threads) without
/// stalling the other tasks of this runtime worker.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
