//! The Postgres wire front end: the only module that sees pgwire's types.
//! It turns simple and extended protocol messages into statement
//! executions and [`Output`]s into row descriptions, data rows and command
//! tags; errors become ErrorResponses with their SQLSTATE.

mod encode;
mod params;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use futures::{FutureExt, Sink, SinkExt};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{
    send_execution_response, send_ready_for_query, ExtendedQueryHandler, SimpleQueryHandler,
};
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, Type, DEFAULT_NAME,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::data::{DataRow, RowDescription};
use pgwire::messages::extendedquery::{Bind, BindComplete};
use pgwire::messages::response::EmptyQueryResponse;
use pgwire::messages::simplequery::Query;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use rill_sql::binder::expr::infer_param_types;
use rill_sql::binder::{bind_insert_values, bind_select, SelectMode};
use rill_sql::parser::{
    parse_statement, parse_statements, ParsedStatement, Statement, TransactionKind,
};
use rill_sql::{DataType, Row};
use tracing::debug;

use crate::engine::{lock, Catalog, Engine};
use crate::error::Error;
use crate::exec::{execute, Columns, Output};
use crate::session::Session;
use encode::{pg_type, PgValue};

/// Converts our error into an ErrorResponse.
fn error_info(e: &Error) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".into(), e.sqlstate().into(), e.to_string());
    info.hint = e.hint();
    info
}

fn user_error(e: Error) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&e)))
}

/// Sessions by (pid, secret), for cancel requests.
type Registry = Mutex<HashMap<(i32, Vec<u8>), Weak<Session>>>;

/// One handler serves every connection; per-connection state lives in the
/// client's session extensions.
pub struct Handlers {
    engine: Arc<Engine>,
    sessions: Arc<Registry>,
}

impl Handlers {
    pub fn new(engine: Arc<Engine>) -> Arc<Handlers> {
        Arc::new(Handlers {
            engine,
            sessions: Arc::new(Mutex::new(HashMap::new())),
        })
    }
}

fn session_of<C: ClientInfo + ?Sized>(client: &C) -> Arc<Session> {
    client
        .session_extensions()
        .get_or_insert_with(Session::default)
}

fn fields(columns: &Columns, format: &Format) -> Arc<Vec<FieldInfo>> {
    Arc::new(
        columns
            .iter()
            .enumerate()
            .map(|(i, (name, t))| {
                FieldInfo::new(name.clone(), None, None, pg_type(t), format.format_for(i))
            })
            .collect(),
    )
}

fn encode_row(
    encoder: &mut DataRowEncoder,
    row: &Row,
    types: &[DataType],
) -> PgWireResult<DataRow> {
    for (v, t) in row.iter().zip(types) {
        encoder.encode_field(&PgValue { value: v, ty: t })?;
    }
    Ok(encoder.take_row())
}

/// Turns an execution output into a pgwire response.
fn respond(output: Output, format: &Format, session: &Session) -> Response {
    match output {
        Output::Command(tag) => {
            let (cmd, rows) = match tag.rsplit_once(' ') {
                Some((c, n)) if tag.starts_with("INSERT") => (c.to_string(), n.parse().ok()),
                _ => (tag, None),
            };
            let t = Tag::new(&cmd);
            Response::Execution(match rows {
                Some(n) => t.with_rows(n),
                None => t,
            })
        }
        Output::Transaction(kind) => match kind {
            TransactionKind::Begin => Response::TransactionStart(Tag::new("BEGIN")),
            TransactionKind::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
            TransactionKind::Rollback => Response::TransactionEnd(Tag::new("ROLLBACK")),
        },
        Output::Rows { columns, rows } => {
            let schema = fields(&columns, format);
            let types: Vec<DataType> = columns.into_iter().map(|(_, t)| t).collect();
            let mut encoder = DataRowEncoder::new(schema.clone());
            let data = stream::iter(
                rows.into_iter()
                    .map(move |r| encode_row(&mut encoder, &r, &types)),
            );
            Response::Query(QueryResponse::new(schema, data))
        }
        Output::Stream { columns, rows } => {
            let schema = fields(&columns, format);
            let types: Vec<DataType> = columns.into_iter().map(|(_, t)| t).collect();
            let mut encoder = DataRowEncoder::new(schema.clone());
            let cancelled = session.cancelled();
            // Rows until the query ends, fails, or the session is cancelled.
            let data: BoxStream<'static, PgWireResult<DataRow>> = stream::unfold(
                (rows, cancelled, false),
                |(mut rows, mut cancelled, done)| async move {
                    if done {
                        return None;
                    }
                    tokio::select! {
                        r = rows.recv() => match r {
                            Some(Ok(row)) => Some((Ok(row), (rows, cancelled, false))),
                            Some(Err(e)) => Some((Err(e), (rows, cancelled, true))),
                            None => None,
                        },
                        _ = cancelled.changed() => Some((Err("cancel".to_string()), (rows, cancelled, true))),
                    }
                },
            )
            .map(move |r| match r {
                Ok(row) => encode_row(&mut encoder, &row, &types),
                Err(e) if e == "cancel" => Err(user_error(Error::Canceled)),
                Err(e) => Err(user_error(Error::Internal(e))),
            })
            .boxed();
            Response::Query(QueryResponse::new(schema, data))
        }
    }
}

impl Handlers {
    async fn run(&self, session: &Session, stmt: ParsedStatement, format: &Format) -> Response {
        debug!(sql = %stmt.sql, "execute");
        match execute(&self.engine, session, stmt).await {
            Ok(out) => respond(out, format, session),
            Err(e) => Response::Error(Box::new(error_info(&e))),
        }
    }
}

/// Sends a result set, flushing whenever the next row is not ready yet, so
/// a push query's rows reach the client as they arrive while a pull
/// query's rows still go out in large writes.
async fn send_rows<C>(client: &mut C, mut response: QueryResponse) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let description = RowDescription::new(response.row_schema().iter().map(Into::into).collect());
    client
        .feed(PgWireBackendMessage::RowDescription(description))
        .await?;
    let mut rows = 0;
    let data = response.data_rows();
    loop {
        let next = match data.next().now_or_never() {
            Some(next) => next,
            None => {
                client.flush().await?;
                data.next().await
            }
        };
        match next {
            Some(row) => {
                client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                rows += 1;
            }
            None => break,
        }
    }
    let tag = Tag::new(response.command_tag()).with_rows(rows);
    client
        .feed(PgWireBackendMessage::CommandComplete(tag.into()))
        .await?;
    Ok(())
}

#[async_trait]
impl SimpleQueryHandler for Handlers {
    /// Like pgwire's default, but streams row sets with [`send_rows`] and
    /// stops a script at its first error, as Postgres does.
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let mut status = client.transaction_status();
        client.set_state(PgWireConnectionState::QueryInProgress);
        let responses = SimpleQueryHandler::do_query(self, client, &query.query).await?;
        for r in responses {
            let sent = match r {
                Response::EmptyQuery => client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await
                    .map_err(Into::into),
                Response::Query(rows) => send_rows(client, rows).await,
                Response::Execution(tag) => send_execution_response(client, tag).await,
                Response::TransactionStart(tag) => {
                    status = status.to_in_transaction_state();
                    send_execution_response(client, tag).await
                }
                Response::TransactionEnd(tag) => {
                    status = status.to_idle_state();
                    send_execution_response(client, tag).await
                }
                Response::Error(e) => Err(PgWireError::UserError(e)),
                _ => Err(user_error(Error::Unsupported(
                    "COPY is not supported".into(),
                ))),
            };
            match sent {
                Ok(()) => {}
                Err(PgWireError::UserError(info)) => {
                    client
                        .feed(PgWireBackendMessage::ErrorResponse((*info).into()))
                        .await?;
                    status = status.to_error_state();
                    break;
                }
                Err(other) => return Err(other),
            }
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        send_ready_for_query(client, status).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client);
        let statements = match parse_statements(query) {
            Ok(s) => s,
            Err(e) => return Ok(vec![Response::Error(Box::new(error_info(&e.into())))]),
        };
        let mut responses = Vec::new();
        for stmt in statements {
            let r = self.run(&session, stmt, &Format::UnifiedText).await;
            let failed = matches!(r, Response::Error(_));
            responses.push(r);
            if failed {
                break; // Postgres stops a script at its first error.
            }
        }
        if responses.is_empty() {
            responses.push(Response::EmptyQuery);
        }
        Ok(responses)
    }
}

/// A statement prepared with the extended protocol: its text (parameters
/// are substituted into it at execution) and parsed form.
#[derive(Debug, Clone)]
pub struct Prepared {
    sql: String,
    statement: Statement,
    /// The parameter types inferred against a catalog, kept while that
    /// catalog is current so executions do not bind the statement twice.
    param_types: Arc<Mutex<Option<TypesIn>>>,
}

/// Parameter types and the catalog they were inferred in.
type TypesIn = (Arc<Catalog>, Vec<Type>);

/// Parses prepared statements and describes their parameters and results
/// by binding them against the current catalog.
pub struct Parser {
    engine: Arc<Engine>,
}

impl Parser {
    /// The parameter types of `stmt` under the current catalog.
    fn param_types(&self, stmt: &Prepared) -> Result<Vec<Type>, Error> {
        let catalog = self.engine.catalog();
        let mut cached = lock(&stmt.param_types);
        if let Some((c, types)) = cached.as_ref() {
            if Arc::ptr_eq(c, &catalog) {
                return Ok(types.clone());
            }
        }
        let (types, _) = self.describe(stmt, &catalog)?;
        *cached = Some((catalog, types.clone()));
        Ok(types)
    }

    fn describe(&self, stmt: &Prepared, catalog: &Catalog) -> Result<(Vec<Type>, Columns), Error> {
        let mut columns = Columns::new();
        let params = match &stmt.statement {
            Statement::Select(s) => {
                let mode = if s.emit.is_some() {
                    SelectMode::Push
                } else {
                    SelectMode::Pull
                };
                infer_param_types(|| {
                    let b = bind_select(s, catalog, mode)?;
                    columns = b
                        .output
                        .iter()
                        .map(|c| (c.name.clone(), c.data_type.clone()))
                        .collect();
                    Ok(())
                })?
            }
            Statement::InsertValues(i) => match catalog.relation(&i.target) {
                Some(rel) => infer_param_types(|| bind_insert_values(i, rel).map(|_| ()))?,
                None => Vec::new(),
            },
            // No parameters; the columns of SHOW, DESCRIBE and EXPLAIN are
            // only known by running them.
            _ => Vec::new(),
        };
        Ok((params.iter().map(pg_type).collect(), columns))
    }
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let statement = parse_statement(sql)
            .map_err(|e| user_error(e.into()))?
            .statement;
        params::check_takes_none(&statement).map_err(user_error)?;
        Ok(Some(Prepared {
            sql: sql.to_string(),
            statement,
            param_types: Arc::default(),
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        self.param_types(stmt).map_err(user_error)
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let (_, columns) = self
            .describe(stmt, &self.engine.catalog())
            .map_err(user_error)?;
        let format = format.cloned().unwrap_or(Format::UnifiedText);
        Ok(fields(&columns, &format).as_ref().clone())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handlers {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        Arc::new(Parser {
            engine: self.engine.clone(),
        })
    }

    /// pgwire's own `on_bind`, except that BindComplete is queued rather
    /// than flushed: it leaves with the rows at the Sync, so a prepared
    /// pull is one socket write instead of two (a third of the server's
    /// time per pull was `sendto`).
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        match client.portal_store().get_statement(statement) {
            Some(Entry::Value(stored)) => {
                let portal = Portal::try_new(&message, stored)?;
                client.portal_store().put_portal(Arc::new(portal));
            }
            Some(Entry::Empty) if message.parameters.is_empty() => {
                let portal = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
                client.portal_store().put_empty_portal(portal);
            }
            Some(Entry::Empty) => {
                return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "ERROR".into(),
                    "08P01".into(),
                    format!(
                        "bind message supplies {} parameters, but the empty statement takes none",
                        message.parameters.len()
                    ),
                ))))
            }
            None => return Err(PgWireError::StatementNotFound(statement.to_owned())),
        }
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client);
        let prepared = &portal.statement.statement;
        let declared = &portal.statement.parameter_types;
        let inferred = if portal.parameter_len() > 0 {
            self.query_parser()
                .param_types(prepared)
                .map_err(user_error)?
        } else {
            Vec::new()
        };
        let mut values = Vec::with_capacity(portal.parameter_len());
        for i in 0..portal.parameter_len() {
            let t = declared
                .get(i)
                .cloned()
                .flatten()
                .filter(|t| *t != Type::UNKNOWN)
                .or_else(|| inferred.get(i).cloned())
                .unwrap_or(Type::VARCHAR);
            let v = params::decode(
                i,
                &t,
                portal.parameters.get(i).and_then(|p| p.as_ref()),
                portal.parameter_format.is_binary(i),
            )
            .map_err(user_error)?;
            values.push(v);
        }
        let mut statement = prepared.statement.clone();
        if !values.is_empty() {
            params::substitute(&mut statement, &values).map_err(user_error)?;
        }
        let stmt = ParsedStatement {
            statement,
            sql: prepared.sql.clone(),
        };
        match self.run(&session, stmt, &portal.result_column_format).await {
            Response::Error(e) => Err(PgWireError::UserError(e)),
            r => Ok(r),
        }
    }
}

#[async_trait]
impl NoopStartupHandler for Handlers {
    async fn post_startup<C>(
        &self,
        client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client);
        let (pid, secret) = client.pid_and_secret_key();
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.strong_count() > 0);
        sessions.insert((pid, secret.to_bytes().to_vec()), Arc::downgrade(&session));
        Ok(())
    }
}

/// Cancel requests arrive on their own connection: find the session.
pub struct Canceller {
    sessions: Arc<Registry>,
}

#[async_trait]
impl CancelHandler for Canceller {
    async fn on_cancel_request(&self, req: CancelRequest) {
        let session = lock(&self.sessions)
            .get(&(req.pid, req.secret_key.to_bytes().to_vec()))
            .and_then(Weak::upgrade);
        if let Some(s) = session {
            s.cancel();
        }
    }
}

/// What pgwire asks for per connection.
pub struct Factory {
    handlers: Arc<Handlers>,
    canceller: Arc<Canceller>,
}

impl Factory {
    pub fn new(engine: Arc<Engine>) -> Factory {
        let handlers = Handlers::new(engine);
        let canceller = Arc::new(Canceller {
            sessions: handlers.sessions.clone(),
        });
        Factory {
            handlers,
            canceller,
        }
    }
}

impl PgWireServerHandlers for Factory {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handlers.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.handlers.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.handlers.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.canceller.clone()
    }
}
