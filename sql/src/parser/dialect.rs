//! The sqlparser dialect for ksqlDB expressions.

use sqlparser::ast::{DataType, Expr, Ident, ObjectName};
use sqlparser::dialect::Dialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// Generic SQL plus what ksqlDB expressions need: `:=` named arguments
/// (`STRUCT(A := 1)`, `MAP('k' := v)`) and ksqlDB types in `CAST`
/// (`CAST(x AS MAP<STRING, INT>)`), which reach the binder as a custom type
/// holding the type's text.
#[derive(Debug, Default)]
pub struct KsqlDialect;

impl Dialect for KsqlDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_' || ch == '@'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_' || ch == '@' || ch == '$'
    }

    fn supports_named_fn_args_with_assignment_operator(&self) -> bool {
        true
    }

    fn supports_named_fn_args_with_expr_name(&self) -> bool {
        true
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let is_cast = matches!(&parser.peek_token().token, Token::Word(w) if w.keyword == Keyword::CAST)
            && parser.peek_nth_token(1).token == Token::LParen;
        if !is_cast {
            return None;
        }
        Some(parse_cast(parser))
    }
}

fn parse_cast(parser: &mut Parser) -> Result<Expr, ParserError> {
    parser.next_token(); // CAST
    parser.expect_token(&Token::LParen)?;
    let expr = parser.parse_expr()?;
    if !parser.parse_keyword(Keyword::AS) {
        return parser.expected("AS", parser.peek_token());
    }
    let mut depth = 0usize;
    let mut text = String::new();
    loop {
        let tok = parser.next_token();
        match &tok.token {
            Token::EOF => return parser.expected(")", tok),
            Token::RParen if depth == 0 => break,
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => {}
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&tok.token.to_string());
    }
    if text.is_empty() {
        return parser.expected("a type", parser.peek_token());
    }
    Ok(Expr::Cast {
        kind: sqlparser::ast::CastKind::Cast,
        expr: Box::new(expr),
        data_type: DataType::Custom(ObjectName::from(vec![Ident::new(text)]), vec![]),
        format: None,
    })
}
