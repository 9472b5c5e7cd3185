//! Type names as ksqlDB writes them: `INT`, `DECIMAL(4, 2)`, `ARRAY<T>`,
//! `MAP<K, V>`, `STRUCT<name T, ...>`.

use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::ast::TypeName;
use super::word_name;

/// Parses a type at the start of `tokens`. Returns the type and how many
/// tokens it used, or a message and the index of the offending token.
pub(crate) fn parse_type_tokens(
    tokens: &[TokenWithSpan],
) -> Result<(TypeName, usize), (String, usize)> {
    // `>>` closes two nested types: split it so each `>` is its own token.
    let mut simple: Vec<(Token, usize)> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        match t.token {
            Token::ShiftRight => {
                simple.push((Token::Gt, i));
                simple.push((Token::Gt, i));
            }
            _ => simple.push((t.token.clone(), i)),
        }
    }
    let mut p = TypeParser {
        tokens: &simple,
        pos: 0,
    };
    let ty = p.parse()?;
    let used = match simple.get(p.pos) {
        Some((_, orig)) => *orig,
        None => tokens.len(),
    };
    Ok((ty, used))
}

/// Parses the whole text as one type (the text of a `CAST(x AS <type>)`).
pub fn parse_type_text(text: &str) -> Result<TypeName, String> {
    let tokens: Vec<TokenWithSpan> = Tokenizer::new(&super::KsqlDialect, text)
        .tokenize_with_location()
        .map_err(|e| e.message)?
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let (ty, used) = parse_type_tokens(&tokens).map_err(|(m, _)| m)?;
    if used != tokens.len() {
        return Err(format!("unexpected text after type in \"{text}\""));
    }
    Ok(ty)
}

struct TypeParser<'a> {
    tokens: &'a [(Token, usize)],
    pos: usize,
}

impl TypeParser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, (String, usize)> {
        let at = self
            .tokens
            .get(self.pos)
            .map(|(_, i)| *i)
            .unwrap_or(usize::MAX);
        let found = self
            .peek()
            .map(|t| format!("\"{t}\""))
            .unwrap_or_else(|| "end of statement".into());
        Err((
            format!("{}, found {found}", msg.into()),
            at.min(self.tokens.len()),
        ))
    }

    fn expect(&mut self, t: Token) -> Result<(), (String, usize)> {
        if self.peek() == Some(&t) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(format!("expected \"{t}\""))
        }
    }

    fn word(&mut self) -> Result<String, (String, usize)> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let name = word_name(w);
                self.pos += 1;
                Ok(name)
            }
            _ => self.err("expected a type"),
        }
    }

    fn parse(&mut self) -> Result<TypeName, (String, usize)> {
        let name = self.word()?;
        match name.as_str() {
            "ARRAY" => {
                self.expect(Token::Lt)?;
                let inner = self.parse()?;
                self.expect(Token::Gt)?;
                Ok(TypeName::Array(Box::new(inner)))
            }
            "MAP" => {
                self.expect(Token::Lt)?;
                let k = self.parse()?;
                self.expect(Token::Comma)?;
                let v = self.parse()?;
                self.expect(Token::Gt)?;
                Ok(TypeName::Map(Box::new(k), Box::new(v)))
            }
            "STRUCT" => {
                self.expect(Token::Lt)?;
                let mut fields = Vec::new();
                if self.peek() != Some(&Token::Gt) {
                    loop {
                        let field = self.word()?;
                        let ty = self.parse()?;
                        fields.push((field, ty));
                        if self.peek() == Some(&Token::Comma) {
                            self.pos += 1;
                            continue;
                        }
                        break;
                    }
                }
                self.expect(Token::Gt)?;
                Ok(TypeName::Struct(fields))
            }
            _ => {
                let mut args = Vec::new();
                if self.peek() == Some(&Token::LParen) {
                    self.pos += 1;
                    loop {
                        match self.peek() {
                            Some(Token::Number(n, _)) => {
                                let v = n.parse::<u64>();
                                match v {
                                    Ok(v) => args.push(v),
                                    Err(_) => return self.err("expected a whole number"),
                                }
                                self.pos += 1;
                            }
                            _ => return self.err("expected a number"),
                        }
                        if self.peek() == Some(&Token::Comma) {
                            self.pos += 1;
                            continue;
                        }
                        break;
                    }
                    self.expect(Token::RParen)?;
                }
                // Multi-word types: DOUBLE PRECISION.
                if name == "DOUBLE"
                    && matches!(self.peek(), Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("PRECISION"))
                {
                    self.pos += 1;
                }
                Ok(TypeName::Simple { name, args })
            }
        }
    }
}
