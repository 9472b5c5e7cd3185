//! The server's error: every stage's error plus execution errors, each with
//! its SQLSTATE and an optional hint. The pgwire module turns it into an
//! ErrorResponse.

use rill_sql::codec::CodecError;
use rill_sql::{BindError, EvalError, ParseError, PlanError};
use rill_storage::StorageError;
use thiserror::Error;

use crate::format::FormatError;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("corrupt state: {0}")]
    Codec(#[from] CodecError),
    /// A statement that is valid but cannot run now (e.g. DROP of a stream a
    /// query reads).
    #[error("{message}")]
    InUse {
        message: String,
        hint: Option<String>,
    },
    #[error("query \"{0}\" does not exist")]
    UnknownQuery(String),
    #[error("canceling statement due to user request")]
    Canceled,
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::Parse(e) => e.sqlstate(),
            Error::Bind(e) => e.sqlstate(),
            Error::Plan(e) => e.sqlstate(),
            Error::Eval(e) => e.sqlstate(),
            Error::Storage(e) => e.sqlstate(),
            Error::Format(e) => e.sqlstate(),
            Error::Codec(e) => e.sqlstate(),
            Error::InUse { .. } => "2BP01",
            Error::UnknownQuery(_) => "42704",
            Error::Canceled => "57014",
            Error::Unsupported(_) => "0A000",
            Error::Invalid(_) => "42601",
            Error::Internal(_) => "XX000",
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Bind(e) => e.hint().map(str::to_string),
            Error::InUse { hint, .. } => hint.clone(),
            Error::Parse(_)
            | Error::Plan(_)
            | Error::Eval(_)
            | Error::Storage(_)
            | Error::Format(_)
            | Error::Codec(_)
            | Error::UnknownQuery(_)
            | Error::Canceled
            | Error::Unsupported(_)
            | Error::Invalid(_)
            | Error::Internal(_) => None,
        }
    }

    /// The statement position for syntax errors: (line, column).
    pub fn position(&self) -> Option<(u64, u64)> {
        match self {
            Error::Parse(ParseError::Syntax { position, .. }) => {
                Some((position.line, position.column))
            }
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
