//! A cursor over one statement's tokens that parses ksqlDB's statements and
//! hands standard SQL pieces to sqlparser.

use sqlparser::ast::Expr;
use sqlparser::parser::ParserError;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan};

use super::ast::*;
use super::{convert_error, sql_parser, types, word_name};
use crate::error::{ParseError, Position};

pub(crate) struct Cursor {
    tokens: Vec<TokenWithSpan>,
    pos: usize,
}

impl Cursor {
    pub(crate) fn new(tokens: Vec<TokenWithSpan>) -> Cursor {
        Cursor { tokens, pos: 0 }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|t| &t.token)
    }

    fn peek_nth(&self, n: usize) -> Option<&Token> {
        self.tokens.get(self.pos + n).map(|t| &t.token)
    }

    fn location(&self) -> Location {
        self.tokens
            .get(self.pos)
            .or(self.tokens.last())
            .map(|t| t.span.start)
            .unwrap_or(Location { line: 1, column: 1 })
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        let loc = self.location();
        ParseError::Syntax {
            message: message.into(),
            position: Position {
                line: loc.line,
                column: loc.column,
            },
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(t) => format!("\"{t}\""),
            None => "end of statement".into(),
        }
    }

    fn expected(&self, what: &str) -> ParseError {
        self.error(format!("expected {what}, found {}", self.found()))
    }

    /// Whether the next token is the (unquoted) word `w`.
    fn is_word(&self, w: &str) -> bool {
        is_word(self.peek(), w)
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_words(&mut self, ws: &[&str]) -> bool {
        if ws
            .iter()
            .enumerate()
            .all(|(i, w)| is_word(self.peek_nth(i), w))
        {
            self.pos += ws.len();
            true
        } else {
            false
        }
    }

    fn expect_word(&mut self, w: &str) -> Result<(), ParseError> {
        if self.eat_word(w) {
            Ok(())
        } else {
            Err(self.expected(w))
        }
    }

    fn eat(&mut self, t: &Token) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &Token) -> Result<(), ParseError> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(self.expected(&format!("\"{t}\"")))
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn expect_end(&self) -> Result<(), ParseError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.error(format!(
                "unexpected {} at the end of the statement",
                self.found()
            )))
        }
    }

    /// An identifier (normalized), e.g. a stream name.
    fn ident(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let name = word_name(w);
                self.pos += 1;
                Ok(name)
            }
            _ => Err(self.expected("a name")),
        }
    }

    /// A name given as an identifier or a string ('prop' in SET).
    fn ident_or_string(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(Token::SingleQuotedString(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            Some(Token::Word(w)) => {
                let mut name = w.value.clone();
                self.pos += 1;
                // Dotted names such as `auto.offset.reset` unquoted.
                while self.peek() == Some(&Token::Period) {
                    if let Some(Token::Word(next)) = self.peek_nth(1) {
                        name.push('.');
                        name.push_str(&next.value);
                        self.pos += 2;
                    } else {
                        break;
                    }
                }
                Ok(name)
            }
            _ => Err(self.expected("a name")),
        }
    }

    fn literal(&mut self) -> Result<PropertyValue, ParseError> {
        let negative = self.eat(&Token::Minus);
        let v = match self.peek() {
            Some(Token::SingleQuotedString(s)) if !negative => PropertyValue::String(s.clone()),
            Some(Token::Number(n, _)) => {
                PropertyValue::Number(if negative { format!("-{n}") } else { n.clone() })
            }
            Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("true") => {
                PropertyValue::Boolean(true)
            }
            Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("false") => {
                PropertyValue::Boolean(false)
            }
            Some(Token::Word(w)) if w.quote_style.is_none() => {
                PropertyValue::String(w.value.clone())
            }
            _ => return Err(self.expected("a literal value")),
        };
        self.pos += 1;
        Ok(v)
    }

    /// The tokens from here to the end, for sqlparser.
    fn rest(&self) -> Vec<TokenWithSpan> {
        self.tokens[self.pos..].to_vec()
    }

    pub(crate) fn parse_statement(&mut self) -> Result<Statement, ParseError> {
        let stmt = if self.eat_word("CREATE") {
            self.parse_create()?
        } else if self.is_word("SELECT") || self.peek() == Some(&Token::LParen) {
            Statement::Select(self.parse_select()?)
        } else if self.eat_word("INSERT") {
            self.parse_insert()?
        } else if self.eat_word("DROP") {
            self.parse_drop()?
        } else if self.eat_word("TERMINATE") {
            if self.eat_word("ALL") {
                Statement::Terminate(None)
            } else {
                Statement::Terminate(Some(self.query_id()?))
            }
        } else if self.eat_word("RESTART") {
            self.expect_word("QUERY")?;
            Statement::Restart(self.query_id()?)
        } else if self.eat_word("SHOW") || self.eat_word("LIST") {
            self.parse_show()?
        } else if self.eat_word("DESCRIBE") {
            let name = self.ident()?;
            let extended = self.eat_word("EXTENDED");
            Statement::Describe { name, extended }
        } else if self.eat_word("EXPLAIN") {
            if self.is_word("SELECT")
                || self.is_word("CREATE")
                || self.is_word("INSERT")
                || self.peek() == Some(&Token::LParen)
            {
                Statement::Explain(Box::new(self.parse_statement()?))
            } else {
                Statement::ExplainQuery(self.query_id()?)
            }
        } else if self.eat_word("SET") {
            self.parse_set()?
        } else if self.eat_word("PRINT") {
            self.parse_print()?
        } else if self.eat_word("UNSET") {
            Statement::UnsetProperty(self.ident_or_string()?)
        } else if self.eat_word("BEGIN") || self.eat_words(&["START", "TRANSACTION"]) {
            let _ = self.eat_word("TRANSACTION") || self.eat_word("WORK");
            Statement::Transaction(TransactionKind::Begin)
        } else if self.eat_word("COMMIT") || self.eat_word("END") {
            let _ = self.eat_word("TRANSACTION") || self.eat_word("WORK");
            Statement::Transaction(TransactionKind::Commit)
        } else if self.eat_word("ROLLBACK") || self.eat_word("ABORT") {
            let _ = self.eat_word("TRANSACTION") || self.eat_word("WORK");
            Statement::Transaction(TransactionKind::Rollback)
        } else if [
            "DELETE", "UPDATE", "ALTER", "TRUNCATE", "GRANT", "REVOKE", "COPY", "MERGE",
        ]
        .iter()
        .any(|w| self.is_word(w))
        {
            return Err(ParseError::Unsupported(format!(
                "{} is not supported: streams are append-only and tables change through their topic \
                 (INSERT a new row for the key)",
                self.found().trim_matches('"').to_uppercase()
            )));
        } else {
            return Err(self.error(format!(
                "unknown statement starting with {}: expected CREATE, INSERT, SELECT, DROP, \
                 TERMINATE, SHOW, LIST, DESCRIBE, EXPLAIN, PRINT, SET or UNSET",
                self.found()
            )));
        };
        self.expect_end()?;
        Ok(stmt)
    }

    fn query_id(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let id = w.value.to_uppercase();
                self.pos += 1;
                Ok(id)
            }
            Some(Token::SingleQuotedString(s)) => {
                let id = s.to_uppercase();
                self.pos += 1;
                Ok(id)
            }
            _ => Err(self.expected("a query id")),
        }
    }

    fn parse_create(&mut self) -> Result<Statement, ParseError> {
        let or_replace = self.eat_words(&["OR", "REPLACE"]);
        let source = self.eat_word("SOURCE");
        let kind = if self.eat_word("STREAM") {
            RelationKind::Stream
        } else if self.eat_word("TABLE") {
            RelationKind::Table
        } else {
            return Err(self.expected("STREAM or TABLE"));
        };
        let if_not_exists = self.eat_words(&["IF", "NOT", "EXISTS"]);
        let name = self.ident()?;
        if self.peek() == Some(&Token::LParen) {
            let columns = self.parse_columns()?;
            let properties = if self.eat_word("WITH") {
                self.parse_properties()?
            } else {
                Vec::new()
            };
            if self.is_word("AS") {
                return Err(self.error(
                    "CREATE ... AS SELECT takes no column list: the columns come from the query",
                ));
            }
            return Ok(Statement::CreateSource(CreateSource {
                kind,
                name,
                or_replace,
                if_not_exists,
                source,
                columns,
                properties,
            }));
        }
        let properties = if self.eat_word("WITH") {
            self.parse_properties()?
        } else {
            Vec::new()
        };
        if self.eat_word("AS") {
            if source {
                return Err(self.error("CREATE SOURCE cannot have AS SELECT"));
            }
            let select = self.parse_select()?;
            return Ok(Statement::CreateAs(CreateAs {
                kind,
                name,
                or_replace,
                if_not_exists,
                properties,
                select,
            }));
        }
        // No columns: a schema registry supplies them (VALUE_FORMAT='AVRO').
        if !properties.is_empty() && self.at_end() {
            return Ok(Statement::CreateSource(CreateSource {
                kind,
                name,
                or_replace,
                if_not_exists,
                source,
                columns: Vec::new(),
                properties,
            }));
        }
        Err(self.expected("a column list \"(...)\" or AS SELECT"))
    }

    fn parse_columns(&mut self) -> Result<Vec<ColumnDef>, ParseError> {
        self.expect(&Token::LParen)?;
        let mut columns = Vec::new();
        loop {
            let name = self.ident()?;
            let data_type = self.parse_type()?;
            let key = if self.eat_words(&["PRIMARY", "KEY"]) {
                KeyKind::PrimaryKey
            } else if self.eat_word("KEY") {
                KeyKind::Key
            } else {
                KeyKind::None
            };
            columns.push(ColumnDef {
                name,
                data_type,
                key,
            });
            if self.eat(&Token::Comma) {
                continue;
            }
            self.expect(&Token::RParen)?;
            return Ok(columns);
        }
    }

    fn parse_type(&mut self) -> Result<TypeName, ParseError> {
        let start = self.pos;
        let (ty, used) =
            types::parse_type_tokens(&self.tokens[self.pos..]).map_err(|(msg, at)| {
                let mut c = Cursor::new(self.tokens.clone());
                c.pos = start + at;
                c.error(msg)
            })?;
        self.pos += used;
        Ok(ty)
    }

    fn parse_properties(&mut self) -> Result<Properties, ParseError> {
        self.expect(&Token::LParen)?;
        let mut props = Vec::new();
        loop {
            let name = self.ident_or_string()?.to_uppercase();
            self.expect(&Token::Eq)?;
            let value = self.literal()?;
            props.push((name, value));
            if self.eat(&Token::Comma) {
                continue;
            }
            self.expect(&Token::RParen)?;
            return Ok(props);
        }
    }

    /// A SELECT with its ksqlDB clauses (WINDOW, EMIT, each JOIN's WITHIN
    /// and GRACE PERIOD, PARTITION BY), to the end of the statement.
    fn parse_select(&mut self) -> Result<Select, ParseError> {
        let mut tokens = self.rest();
        self.pos = self.tokens.len();
        let window = self.extract_window(&mut tokens)?;
        let emit = extract_emit(&mut tokens);
        let joins = self.extract_join_timing(&mut tokens)?;
        let partition_by = extract_partition_by(&mut tokens)?;
        let fallback = tokens
            .first()
            .map(|t| t.span.start)
            .unwrap_or(self.location());
        let query = parse_all(tokens, fallback, "the query", |p| p.parse_query())?;
        Ok(Select {
            query,
            joins,
            partition_by,
            window,
            emit,
        })
    }

    /// Cuts each JOIN's `WITHIN ...` and `GRACE PERIOD ...` (everything
    /// between the joined relation and ON that starts with either) out of
    /// a query's tokens, one entry per JOIN of the outer query.
    fn extract_join_timing(
        &self,
        tokens: &mut Vec<TokenWithSpan>,
    ) -> Result<Vec<JoinTiming>, ParseError> {
        let mut joins = Vec::new();
        let mut depth = 0i32;
        let mut i = 0;
        while i < tokens.len() {
            match tokens[i].token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                _ => {}
            }
            let word = |t: Option<&TokenWithSpan>, w| is_word(t.map(|t| &t.token), w);
            if depth == 0 && word(tokens.get(i), "JOIN") {
                joins.push(JoinTiming::default());
            }
            let starts = word(tokens.get(i), "WITHIN")
                || (word(tokens.get(i), "GRACE") && word(tokens.get(i + 1), "PERIOD"));
            if depth == 0 && starts && !joins.is_empty() {
                let end = (i..tokens.len())
                    .find(|&j| word(tokens.get(j), "ON"))
                    .unwrap_or(tokens.len());
                let mut c = Cursor::new(tokens.drain(i..end).collect());
                let timing = c.parse_join_timing()?;
                if let Some(last) = joins.last_mut() {
                    *last = timing;
                }
                continue;
            }
            i += 1;
        }
        Ok(joins)
    }

    fn parse_join_timing(&mut self) -> Result<JoinTiming, ParseError> {
        let mut timing = JoinTiming::default();
        if self.eat_word("WITHIN") {
            timing.within = Some(if self.eat(&Token::LParen) {
                self.expect_word("BEFORE")?;
                let before = self.duration()?;
                self.expect(&Token::Comma)?;
                self.expect_word("AFTER")?;
                let after = self.duration()?;
                self.expect(&Token::RParen)?;
                (before, after)
            } else {
                let n = self.duration()?;
                (n, n)
            });
        }
        if self.eat_words(&["GRACE", "PERIOD"]) {
            timing.grace = Some(self.duration()?);
        }
        if !self.at_end() {
            return Err(self.expected("ON after the join's WITHIN and GRACE PERIOD"));
        }
        Ok(timing)
    }

    /// Cuts `WINDOW TUMBLING|HOPPING|SESSION (...)` out of a query's tokens.
    fn extract_window(
        &self,
        tokens: &mut Vec<TokenWithSpan>,
    ) -> Result<Option<WindowClause>, ParseError> {
        let word = |i: usize, w| is_word(tokens.get(i).map(|t| &t.token), w);
        let Some(i) = find_top_level(tokens, |i| {
            word(i, "WINDOW")
                && ["TUMBLING", "HOPPING", "SESSION"]
                    .iter()
                    .any(|k| word(i + 1, k))
        }) else {
            return Ok(None);
        };
        // The closing bracket of the window spec.
        let rest = tokens.get(i + 2..).unwrap_or_default();
        let Some(end) = find_top_level(rest, |j| rest[j].token == Token::RParen) else {
            let mut c = Cursor::new(tokens.clone());
            c.pos = i + 2;
            return Err(c.expected("\"(\" ... \")\" after the window kind"));
        };
        let spec: Vec<TokenWithSpan> = tokens.drain(i..=i + 2 + end).collect();
        let mut c = Cursor::new(spec);
        c.pos = 1;
        c.parse_window().map(Some)
    }

    fn parse_window(&mut self) -> Result<WindowClause, ParseError> {
        let kind_word = self.ident()?;
        self.expect(&Token::LParen)?;
        let kind = match kind_word.as_str() {
            "TUMBLING" => {
                self.expect_word("SIZE")?;
                WindowKind::Tumbling {
                    size: self.duration()?,
                }
            }
            "HOPPING" => {
                self.expect_word("SIZE")?;
                let size = self.duration()?;
                self.expect(&Token::Comma)?;
                self.expect_word("ADVANCE")?;
                self.expect_word("BY")?;
                let advance = self.duration()?;
                WindowKind::Hopping { size, advance }
            }
            _ => WindowKind::Session {
                gap: self.duration()?,
            },
        };
        let mut clause = WindowClause {
            kind,
            grace: None,
            retention: None,
        };
        while self.eat(&Token::Comma) {
            if self.eat_words(&["GRACE", "PERIOD"]) {
                clause.grace = Some(self.duration()?);
            } else if self.eat_word("RETENTION") {
                clause.retention = Some(self.duration()?);
            } else {
                return Err(self.expected("GRACE PERIOD or RETENTION"));
            }
        }
        self.expect(&Token::RParen)?;
        self.expect_end()?;
        Ok(clause)
    }

    /// `10 SECONDS` -> 10_000.
    fn duration(&mut self) -> Result<DurationMs, ParseError> {
        let n: i64 = match self.peek() {
            Some(Token::Number(n, _)) => n
                .parse()
                .map_err(|_| self.error(format!("\"{n}\" is not a whole number")))?,
            _ => return Err(self.expected("a duration such as 10 SECONDS")),
        };
        self.pos += 1;
        let unit = match self.peek() {
            Some(Token::Word(w)) => w.value.to_uppercase(),
            _ => {
                return Err(
                    self.expected("a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS, DAYS)")
                )
            }
        };
        let ms = match unit.trim_end_matches('S') {
            "MILLISECOND" => 1,
            "SECOND" => 1000,
            "MINUTE" => 60_000,
            "HOUR" => 3_600_000,
            "DAY" => 86_400_000,
            _ => {
                return Err(
                    self.expected("a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS, DAYS)")
                )
            }
        };
        self.pos += 1;
        n.checked_mul(ms)
            .ok_or_else(|| self.error("duration is too long"))
    }

    fn parse_insert(&mut self) -> Result<Statement, ParseError> {
        self.expect_word("INTO")?;
        let target = self.ident()?;
        let mut columns = Vec::new();
        if self.peek() == Some(&Token::LParen) && !is_word(self.peek_nth(1), "SELECT") {
            self.pos += 1;
            loop {
                columns.push(self.ident()?);
                if self.eat(&Token::Comma) {
                    continue;
                }
                self.expect(&Token::RParen)?;
                break;
            }
        }
        if self.eat_word("VALUES") {
            // One sqlparser over every row: rows are many in bulk loads.
            let start = self.pos;
            let fallback = self.location();
            let mut parser = sql_parser(self.rest());
            let rows = parser
                .parse_comma_separated(|p| {
                    p.expect_token(&Token::LParen)?;
                    let row = p.parse_comma_separated(|p| p.parse_expr())?;
                    p.expect_token(&Token::RParen)?;
                    Ok(row)
                })
                .map_err(|e| convert_error(e, fallback))?;
            self.pos = start + parser.index();
            return Ok(Statement::InsertValues(InsertValues {
                target,
                columns,
                rows,
            }));
        }
        if !columns.is_empty() {
            return Err(self.expected("VALUES"));
        }
        if self.is_word("SELECT") || self.peek() == Some(&Token::LParen) {
            let select = self.parse_select()?;
            return Ok(Statement::InsertSelect { target, select });
        }
        Err(self.expected("VALUES or SELECT"))
    }

    fn parse_drop(&mut self) -> Result<Statement, ParseError> {
        let kind = if self.eat_word("STREAM") {
            RelationKind::Stream
        } else if self.eat_word("TABLE") {
            RelationKind::Table
        } else {
            return Err(self.expected("STREAM or TABLE"));
        };
        let if_exists = self.eat_words(&["IF", "EXISTS"]);
        let name = self.ident()?;
        let delete_topic = self.eat_words(&["DELETE", "TOPIC"]);
        Ok(Statement::Drop {
            kind,
            name,
            if_exists,
            delete_topic,
        })
    }

    fn parse_show(&mut self) -> Result<Statement, ParseError> {
        let kind = match self.ident()?.as_str() {
            "STREAMS" => ShowKind::Streams,
            "TABLES" => ShowKind::Tables,
            "QUERIES" => ShowKind::Queries,
            "TOPICS" => ShowKind::Topics,
            "ALL" => {
                self.expect_word("TOPICS")?;
                ShowKind::AllTopics
            }
            "PROPERTIES" => ShowKind::Properties,
            "FUNCTIONS" => ShowKind::Functions,
            other => {
                self.pos -= 1;
                return Err(self.error(format!(
                    "cannot show \"{other}\": expected STREAMS, TABLES, QUERIES, [ALL] TOPICS, \
                     PROPERTIES or FUNCTIONS"
                )));
            }
        };
        let extended = self.eat_word("EXTENDED");
        Ok(Statement::Show { kind, extended })
    }

    fn parse_print(&mut self) -> Result<Statement, ParseError> {
        // The topic name as written: quoted keeps its case, a bare word too
        // (topic names are case-sensitive in Kafka).
        let topic = match self.peek() {
            Some(Token::SingleQuotedString(s)) => s.clone(),
            Some(Token::Word(w)) => w.value.clone(),
            _ => return Err(self.expected("a topic name")),
        };
        self.pos += 1;
        let from_beginning = self.eat_words(&["FROM", "BEGINNING"]);
        let mut limit = None;
        if self.eat_word("LIMIT") {
            match self.peek() {
                Some(Token::Number(n, _)) => {
                    limit = Some(
                        n.parse()
                            .map_err(|_| self.error("LIMIT takes a whole number"))?,
                    );
                    self.pos += 1;
                }
                _ => return Err(self.expected("a number after LIMIT")),
            }
        }
        Ok(Statement::Print {
            topic,
            from_beginning,
            limit,
        })
    }

    fn parse_set(&mut self) -> Result<Statement, ParseError> {
        // Postgres drivers: SET [SESSION|LOCAL] name {=|TO} value.
        let _ = self.eat_word("SESSION") || self.eat_word("LOCAL");
        let name = self.ident_or_string()?;
        if !self.eat(&Token::Eq) {
            self.expect_word("TO")?;
        }
        let mut parts = Vec::new();
        while !self.at_end() {
            parts.push(self.literal()?.as_text());
            self.eat(&Token::Comma);
        }
        if parts.is_empty() {
            return Err(self.expected("a value"));
        }
        Ok(Statement::SetProperty {
            name,
            value: parts.join(", "),
        })
    }
}

fn is_word(t: Option<&Token>, w: &str) -> bool {
    matches!(t, Some(Token::Word(word)) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case(w))
}

/// Cuts `EMIT CHANGES|FINAL` out of a query's tokens.
fn extract_emit(tokens: &mut Vec<TokenWithSpan>) -> Option<Emit> {
    let word = |i: usize, w| is_word(tokens.get(i).map(|t| &t.token), w);
    let i = find_top_level(tokens, |i| {
        word(i, "EMIT") && (word(i + 1, "CHANGES") || word(i + 1, "FINAL"))
    })?;
    let emit = if word(i + 1, "CHANGES") {
        Emit::Changes
    } else {
        Emit::Final
    };
    tokens.drain(i..=i + 1);
    Some(emit)
}

/// The index of the first token outside brackets for which `found` holds.
fn find_top_level(tokens: &[TokenWithSpan], mut found: impl FnMut(usize) -> bool) -> Option<usize> {
    let mut depth = 0i32;
    for (i, t) in tokens.iter().enumerate() {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => {}
        }
        if depth == 0 && found(i) {
            return Some(i);
        }
    }
    None
}

/// Runs `parse` on sqlparser over all of `tokens`; a token left over is
/// an error saying what it follows.
fn parse_all<T>(
    tokens: Vec<TokenWithSpan>,
    fallback: Location,
    after: &str,
    parse: impl FnOnce(&mut sqlparser::parser::Parser<'static>) -> Result<T, ParserError>,
) -> Result<T, ParseError> {
    let mut parser = sql_parser(tokens);
    let parsed = parse(&mut parser).map_err(|e| convert_error(e, fallback))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(ParseError::Syntax {
            message: format!("unexpected \"{}\" after {after}", next.token),
            position: Position {
                line: next.span.start.line,
                column: next.span.start.column,
            },
        });
    }
    Ok(parsed)
}

/// Cuts `PARTITION BY expr` (the end of a query, before EMIT) out of a
/// query's tokens.
fn extract_partition_by(tokens: &mut Vec<TokenWithSpan>) -> Result<Option<Expr>, ParseError> {
    let word = |i: usize, w| is_word(tokens.get(i).map(|t| &t.token), w);
    let Some(i) = find_top_level(tokens, |i| word(i, "PARTITION") && word(i + 1, "BY")) else {
        return Ok(None);
    };
    let fallback = tokens[i].span.start;
    let expr: Vec<TokenWithSpan> = tokens.drain(i..).skip(2).collect();
    parse_all(
        expr,
        fallback,
        "PARTITION BY's expression (it ends the query, before EMIT)",
        |p| p.parse_expr(),
    )
    .map(Some)
}

/// Parses a standalone expression (used by tests and the binder for
/// defaults).
pub fn parse_expr(sql: &str) -> Result<Expr, ParseError> {
    let tokens = sqlparser::tokenizer::Tokenizer::new(&super::KsqlDialect, sql)
        .tokenize_with_location()
        .map_err(|e| ParseError::Syntax {
            message: e.message,
            position: Position {
                line: e.location.line,
                column: e.location.column,
            },
        })?;
    let mut parser = sql_parser(tokens);
    parser
        .parse_expr()
        .map_err(|e| convert_error(e, Location { line: 1, column: 1 }))
}
