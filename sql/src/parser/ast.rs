//! rill's statement tree: ksqlDB statements around sqlparser's expressions
//! and queries.

use sqlparser::ast::{Expr, Query};

/// Whether a relation is an append-only stream or a keyed table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RelationKind {
    Stream,
    Table,
}

impl RelationKind {
    pub fn name(self) -> &'static str {
        match self {
            RelationKind::Stream => "stream",
            RelationKind::Table => "table",
        }
    }
}

/// How a column takes part in the record key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A value column.
    None,
    /// `KEY` on a stream column.
    Key,
    /// `PRIMARY KEY` on a table column.
    PrimaryKey,
}

/// One column in `CREATE STREAM|TABLE name (...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    /// The type as written; the binder resolves it.
    pub data_type: TypeName,
    pub key: KeyKind,
}

/// A type as written: `INT`, `DECIMAL(4, 2)`, `ARRAY<STRING>`, ...
#[derive(Debug, Clone, PartialEq)]
pub enum TypeName {
    Simple { name: String, args: Vec<u64> },
    Array(Box<TypeName>),
    Map(Box<TypeName>, Box<TypeName>),
    Struct(Vec<(String, TypeName)>),
}

/// A literal in a `WITH (...)` clause or a `SET` statement.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    String(String),
    Number(String),
    Boolean(bool),
}

impl PropertyValue {
    /// The value as text, whatever its literal kind.
    pub fn as_text(&self) -> String {
        match self {
            PropertyValue::String(s) | PropertyValue::Number(s) => s.clone(),
            PropertyValue::Boolean(b) => b.to_string(),
        }
    }
}

/// `WITH (name = value, ...)`, names upper-cased, in order.
pub type Properties = Vec<(String, PropertyValue)>;

/// A duration such as `10 SECONDS`, in milliseconds.
pub type DurationMs = i64;

/// The `WINDOW` clause of a ksqlDB query.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowClause {
    pub kind: WindowKind,
    pub grace: Option<DurationMs>,
    pub retention: Option<DurationMs>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WindowKind {
    Tumbling {
        size: DurationMs,
    },
    Hopping {
        size: DurationMs,
        advance: DurationMs,
    },
    Session {
        gap: DurationMs,
    },
}

/// `EMIT CHANGES` or `EMIT FINAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Emit {
    Changes,
    Final,
}

/// The ksqlDB clauses between a JOIN's relation and its ON:
/// `WITHIN (BEFORE x, AFTER y) | WITHIN n` and `GRACE PERIOD g`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinTiming {
    /// `(before, after)`: the other side's event time may be this much
    /// before or after a record's own.
    pub within: Option<(DurationMs, DurationMs)>,
    pub grace: Option<DurationMs>,
}

/// A SELECT with the ksqlDB clauses that sqlparser does not know.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub query: Box<Query>,
    /// Per JOIN of the FROM clause, in order (the default where none was
    /// written).
    pub joins: Vec<JoinTiming>,
    /// `PARTITION BY expr`: the key of a derived stream.
    pub partition_by: Option<Expr>,
    pub window: Option<WindowClause>,
    pub emit: Option<Emit>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateSource {
    pub kind: RelationKind,
    pub name: String,
    pub or_replace: bool,
    pub if_not_exists: bool,
    /// `CREATE SOURCE STREAM|TABLE`: read-only.
    pub source: bool,
    pub columns: Vec<ColumnDef>,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateAs {
    pub kind: RelationKind,
    pub name: String,
    pub or_replace: bool,
    pub if_not_exists: bool,
    pub properties: Properties,
    pub select: Select,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InsertValues {
    pub target: String,
    /// Empty: all columns in declaration order.
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Expr>>,
}

/// What `SHOW` / `LIST` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowKind {
    Streams,
    Tables,
    Queries,
    Topics,
    /// `SHOW ALL TOPICS`: internal ones (`_...`) too.
    AllTopics,
    Properties,
    Functions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionKind {
    Begin,
    Commit,
    Rollback,
}

/// A parsed statement, plus its text for the catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    CreateSource(CreateSource),
    CreateAs(CreateAs),
    InsertValues(InsertValues),
    InsertSelect {
        target: String,
        select: Select,
    },
    Select(Select),
    Drop {
        kind: RelationKind,
        name: String,
        if_exists: bool,
        delete_topic: bool,
    },
    /// `TERMINATE id`; `None` is `TERMINATE ALL`.
    Terminate(Option<String>),
    /// `RESTART QUERY id`: starts a query again from its committed state.
    Restart(String),
    Show {
        kind: ShowKind,
        extended: bool,
    },
    Describe {
        name: String,
        extended: bool,
    },
    /// `EXPLAIN <statement>`.
    Explain(Box<Statement>),
    /// `EXPLAIN <query id>`.
    ExplainQuery(String),
    /// `SET 'prop' = 'value'` (ksqlDB) and `SET name = value` (Postgres
    /// drivers); the name is as written, without quotes.
    SetProperty {
        name: String,
        value: String,
    },
    UnsetProperty(String),
    Transaction(TransactionKind),
    /// `PRINT 'topic' [FROM BEGINNING] [LIMIT n]`: raw records.
    Print {
        topic: String,
        from_beginning: bool,
        limit: Option<u64>,
    },
}

/// One statement of a script, with its own text.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedStatement {
    pub statement: Statement,
    /// The statement's text, without the trailing semicolon.
    pub sql: String,
}
