//! Errors of the SQL stages. Each has `sqlstate()` as an exhaustive match so a
//! new variant cannot ship without a code.

use thiserror::Error;

/// A 1-based line and column in the statement text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

/// A statement that does not parse.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum ParseError {
    #[error("syntax error at line {}, column {}: {message}", .position.line, .position.column)]
    Syntax { message: String, position: Position },
    #[error("{0}")]
    Unsupported(String),
}

impl ParseError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ParseError::Syntax { .. } => "42601",
            ParseError::Unsupported(_) => "0A000",
        }
    }
}

/// A statement that parses but does not make sense against the catalog.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum BindError {
    #[error("{kind} \"{name}\" does not exist")]
    UnknownRelation {
        kind: &'static str,
        name: String,
        hint: Option<String>,
    },
    #[error("column \"{name}\" does not exist")]
    UnknownColumn { name: String, hint: Option<String> },
    #[error("column reference \"{0}\" is ambiguous: qualify it with its relation's name or alias")]
    AmbiguousColumn(String),
    #[error("function \"{name}\" does not exist")]
    UnknownFunction { name: String, hint: Option<String> },
    #[error("{kind} \"{name}\" already exists")]
    Duplicate { kind: &'static str, name: String },
    #[error("{0}")]
    TypeMismatch(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    Grouping(String),
    #[error("{0}")]
    Data(String),
}

impl BindError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            BindError::UnknownRelation { .. } => "42P01",
            BindError::UnknownColumn { .. } => "42703",
            BindError::AmbiguousColumn(_) => "42702",
            BindError::UnknownFunction { .. } => "42883",
            BindError::Duplicate { .. } => "42P07",
            BindError::TypeMismatch(_) => "42804",
            BindError::Unsupported(_) => "0A000",
            BindError::Invalid(_) => "42601",
            BindError::InUse(_) => "2BP01",
            BindError::Grouping(_) => "42803",
            BindError::Data(_) => "22023",
        }
    }

    /// The "did you mean" hint, if any.
    pub fn hint(&self) -> Option<&str> {
        match self {
            BindError::UnknownRelation { hint, .. }
            | BindError::UnknownColumn { hint, .. }
            | BindError::UnknownFunction { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }
}

/// A bound query that cannot be turned into a dataflow.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum PlanError {
    #[error("{0}")]
    Invalid(String),
}

impl PlanError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            PlanError::Invalid(_) => "42601",
        }
    }
}

/// An expression that fails on a particular row.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum EvalError {
    #[error("division by zero")]
    DivisionByZero,
    #[error("{0} out of range")]
    Overflow(&'static str),
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl EvalError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            EvalError::DivisionByZero => "22012",
            EvalError::Overflow(_) => "22003",
            EvalError::InvalidInput(_) => "22P02",
        }
    }
}

/// The closest candidate to `name` by edit distance, for "did you mean" hints.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let name = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&name, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean \"{c}\"?"))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_the_nearest_name() {
        assert_eq!(
            did_you_mean("pgae", ["page", "user_id"]).as_deref(),
            Some("did you mean \"page\"?")
        );
        assert_eq!(did_you_mean("zzzz", ["page"]), None);
    }
}
