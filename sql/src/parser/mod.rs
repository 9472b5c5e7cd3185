//! The parser: statement text -> [`Statement`]s.
//!
//! ksqlDB's statements (`CREATE STREAM`, `WINDOW TUMBLING`, `EMIT CHANGES`,
//! `TERMINATE`, ...) are parsed here on sqlparser's tokens; standard queries
//! and expressions are handed to sqlparser with [`KsqlDialect`]. Tokens keep
//! their line and column, so every syntax error carries a position.
//!
//! The parser never looks at the catalog: names are only normalized
//! (unquoted identifiers upper-cased, as ksqlDB does).

pub mod ast;
mod cursor;
pub mod dialect;
pub mod types;

pub use cursor::parse_expr;

use sqlparser::ast::Ident;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

pub use ast::*;
use cursor::Cursor;
pub use dialect::KsqlDialect;

use crate::error::{ParseError, Position};

/// Parses a script of `;`-separated statements.
pub fn parse_statements(sql: &str) -> Result<Vec<ParsedStatement>, ParseError> {
    let tokens = Tokenizer::new(&KsqlDialect, sql)
        .tokenize_with_location()
        .map_err(|e| ParseError::Syntax {
            message: e.message.clone(),
            position: Position {
                line: e.location.line,
                column: e.location.column,
            },
        })?;
    let tokens: Vec<TokenWithSpan> = tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let lines = LineIndex::new(sql);
    let mut out = Vec::new();
    for group in split_statements(tokens) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let text = lines
            .slice(sql, first.span.start, last.span.end)
            .trim()
            .to_string();
        let statement = Cursor::new(group).parse_statement()?;
        out.push(ParsedStatement {
            statement,
            sql: text,
        });
    }
    Ok(out)
}

/// Parses exactly one statement.
pub fn parse_statement(sql: &str) -> Result<ParsedStatement, ParseError> {
    let mut all = parse_statements(sql)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(ParseError::Syntax {
            message: "empty statement".into(),
            position: Position::default(),
        }),
        n => Err(ParseError::Unsupported(format!(
            "expected one statement, found {n}"
        ))),
    }
}

/// The name an identifier stands for: unquoted names are upper-cased, quoted
/// names are kept as written (ksqlDB's rule).
pub fn normalize_ident(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_uppercase()
    }
}

/// The name a word token stands for (see [`normalize_ident`]).
pub(crate) fn word_name(w: &sqlparser::tokenizer::Word) -> String {
    if w.quote_style.is_some() {
        w.value.clone()
    } else {
        w.value.to_uppercase()
    }
}

/// Splits tokens at semicolons outside brackets; drops empty statements.
fn split_statements(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut groups = vec![Vec::new()];
    let mut depth = 0i32;
    for t in tokens {
        match t.token {
            Token::LParen | Token::LBracket => depth += 1,
            Token::RParen | Token::RBracket => depth -= 1,
            Token::SemiColon if depth <= 0 => {
                groups.push(Vec::new());
                continue;
            }
            Token::EOF => continue,
            _ => {}
        }
        if let Some(g) = groups.last_mut() {
            g.push(t);
        }
    }
    groups.retain(|g| !g.is_empty());
    groups
}

/// Converts sqlparser's error (which embeds "Line: l, Column: c") into ours.
pub(crate) fn convert_error(e: ParserError, fallback: Location) -> ParseError {
    let message = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => "statement is nested too deeply".into(),
    };
    let (message, position) = match message.rsplit_once(" at Line: ") {
        Some((m, at)) => {
            let mut nums = at
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.parse::<u64>().ok());
            let line = nums.next().unwrap_or(fallback.line);
            let column = nums.next().unwrap_or(fallback.column);
            (m.to_string(), Position { line, column })
        }
        None => (
            message,
            Position {
                line: fallback.line,
                column: fallback.column,
            },
        ),
    };
    let message = message
        .replace("sql parser error: ", "")
        .replace("Expected: ", "expected ")
        .replace(", found: ", ", found ");
    ParseError::Syntax { message, position }
}

/// Maps line/column locations back to byte offsets of the source.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(sql: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn offset(&self, sql: &str, loc: Location) -> usize {
        let Some(&line_start) = self.starts.get((loc.line as usize).saturating_sub(1)) else {
            return sql.len();
        };
        let col = (loc.column as usize).saturating_sub(1);
        sql[line_start..]
            .char_indices()
            .nth(col)
            .map(|(i, _)| line_start + i)
            .unwrap_or(sql.len())
    }

    fn slice<'a>(&self, sql: &'a str, start: Location, end: Location) -> &'a str {
        let (a, b) = (self.offset(sql, start), self.offset(sql, end));
        sql.get(a..b.max(a)).unwrap_or("")
    }
}

/// Helper for the cursor: a fresh sqlparser over some tokens.
pub(crate) fn sql_parser(tokens: Vec<TokenWithSpan>) -> Parser<'static> {
    static DIALECT: KsqlDialect = KsqlDialect;
    Parser::new(&DIALECT).with_tokens_with_locations(tokens)
}

#[cfg(test)]
mod tests;
