//! Filter text → [`Expr`], by recursive descent with one token of
//! lookahead.
//!
//! Only a `(` recurses (through `or_expr`), and each one is counted against
//! [`MAX_FILTER_DEPTH`] before it does, so the stack stays bounded whatever
//! the input. NOT chains are a loop, counted against the same limit.

use super::ast::{Comparison, Expr, Predicate, Test, Value};
use super::error::{FilterError, FilterErrorKind};
use super::lexer::{Keyword, Lexed, Lexer, Token};
use super::{MAX_FILTER_BYTES, MAX_FILTER_DEPTH, MAX_FILTER_PREDICATES};

/// Parses a whole filter, checking every limit.
pub(super) fn parse(text: &str) -> Result<Expr, FilterError> {
    if text.len() > MAX_FILTER_BYTES {
        let kind = FilterErrorKind::TooLong { len: text.len() };
        return Err(FilterError::new(MAX_FILTER_BYTES, kind));
    }
    let mut parser = Parser {
        lexer: Lexer::new(text),
        peeked: None,
        depth: 0,
        predicates: 0,
    };
    if parser.peek()?.token == Token::End {
        return Err(FilterError::new(0, FilterErrorKind::Empty));
    }
    let expr = parser.or_expr()?;
    let next = parser.bump()?;
    match next.token {
        Token::End => Ok(expr),
        found => {
            let kind = FilterErrorKind::TrailingInput {
                found: found.describe(),
            };
            Err(FilterError::new(next.pos, kind))
        }
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Lexed<'a>>,
    /// Open `(` and NOTs around the current point.
    depth: usize,
    /// Predicates so far, each IN value counted.
    predicates: usize,
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<&Lexed<'a>, FilterError> {
        let lexed = match self.peeked.take() {
            Some(lexed) => lexed,
            None => self.lexer.next_token()?,
        };
        Ok(self.peeked.insert(lexed))
    }

    fn bump(&mut self) -> Result<Lexed<'a>, FilterError> {
        match self.peeked.take() {
            Some(lexed) => Ok(lexed),
            None => self.lexer.next_token(),
        }
    }

    /// Consumes the next token if it is `token`.
    fn eat(&mut self, token: &Token<'_>) -> Result<bool, FilterError> {
        let found = self.peek()?.token == *token;
        if found {
            self.bump()?;
        }
        Ok(found)
    }

    fn expect(&mut self, token: Token<'_>, expected: &'static str) -> Result<(), FilterError> {
        let lexed = self.bump()?;
        if lexed.token == token {
            Ok(())
        } else {
            Err(unexpected(&lexed, expected))
        }
    }

    /// Goes one level deeper for the `(` or NOT at `pos`.
    fn enter(&mut self, pos: usize) -> Result<(), FilterError> {
        if self.depth >= MAX_FILTER_DEPTH {
            return Err(FilterError::new(pos, FilterErrorKind::TooDeep));
        }
        self.depth += 1;
        Ok(())
    }

    /// Counts one predicate (or one IN value) starting at `pos`.
    fn count_predicate(&mut self, pos: usize) -> Result<(), FilterError> {
        if self.predicates >= MAX_FILTER_PREDICATES {
            return Err(FilterError::new(pos, FilterErrorKind::TooManyPredicates));
        }
        self.predicates += 1;
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Expr, FilterError> {
        let mut operands = vec![self.and_expr()?];
        while self.eat(&Token::Keyword(Keyword::Or))? {
            operands.push(self.and_expr()?);
        }
        Ok(Expr::any(operands))
    }

    fn and_expr(&mut self) -> Result<Expr, FilterError> {
        let mut operands = vec![self.not_expr()?];
        while self.eat(&Token::Keyword(Keyword::And))? {
            operands.push(self.not_expr()?);
        }
        Ok(Expr::all(operands))
    }

    fn not_expr(&mut self) -> Result<Expr, FilterError> {
        let outer_depth = self.depth;
        let mut nots = 0;
        loop {
            let lexed = self.peek()?;
            if lexed.token != Token::Keyword(Keyword::Not) {
                break;
            }
            let pos = lexed.pos;
            self.bump()?;
            if self.peek()?.token.follows_a_name() {
                return Err(keyword_as_name(pos, Keyword::Not));
            }
            self.enter(pos)?;
            nots += 1;
        }
        let mut expr = self.primary()?;
        for _ in 0..nots {
            expr = Expr::Not(Box::new(expr));
        }
        self.depth = outer_depth;
        Ok(expr)
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        let lexed = self.bump()?;
        match lexed.token {
            Token::LParen => {
                self.enter(lexed.pos)?;
                let expr = self.or_expr()?;
                self.expect(Token::RParen, r#"AND, OR or ")""#)?;
                self.depth -= 1;
                Ok(expr)
            }
            Token::Ident(name) => self.predicate(lexed.pos, name.to_owned()),
            Token::Str(name) => self.predicate(lexed.pos, name),
            Token::Keyword(k @ (Keyword::Exists | Keyword::Prefix)) => self.function(lexed.pos, k),
            Token::Keyword(k) if self.peek()?.token.follows_a_name() => {
                Err(keyword_as_name(lexed.pos, k))
            }
            _ => Err(unexpected(&lexed, r#"a predicate, "(" or NOT"#)),
        }
    }

    /// The rest of a predicate after its name, which starts at `pos`.
    fn predicate(&mut self, pos: usize, name: String) -> Result<Expr, FilterError> {
        self.count_predicate(pos)?;
        let op = self.bump()?;
        let test = match op.token {
            Token::Eq => Test::Eq(self.value(r#"a value after "=""#)?),
            Token::Ne => Test::Ne(self.value(r#"a value after "!=""#)?),
            Token::Lt => self.compare(Comparison::Lt, r#"a number after "<""#)?,
            Token::Le => self.compare(Comparison::Le, r#"a number after "<=""#)?,
            Token::Gt => self.compare(Comparison::Gt, r#"a number after ">""#)?,
            Token::Ge => self.compare(Comparison::Ge, r#"a number after ">=""#)?,
            Token::Keyword(Keyword::Between) => {
                let low = self.number("a number after BETWEEN")?;
                self.expect(
                    Token::Keyword(Keyword::And),
                    "AND after BETWEEN's lower bound",
                )?;
                Test::Between(low, self.number("a number after BETWEEN ... AND")?)
            }
            Token::Keyword(Keyword::In) => Test::In(self.in_list()?),
            _ => {
                return Err(unexpected(
                    &op,
                    "=, !=, <, <=, >, >=, BETWEEN or IN after a name",
                ))
            }
        };
        Ok(Expr::Predicate(Predicate { name, test }))
    }

    fn compare(&mut self, op: Comparison, expected: &'static str) -> Result<Test, FilterError> {
        Ok(Test::Compare(op, self.number(expected)?))
    }

    /// `( value *( "," value ) )`, each value after the first counted as
    /// one more predicate.
    fn in_list(&mut self) -> Result<Vec<Value>, FilterError> {
        const VALUE: &str = "a value in the IN list";
        self.expect(Token::LParen, r#""(" after IN"#)?;
        let mut values = vec![self.value(VALUE)?];
        loop {
            let next = self.bump()?;
            match next.token {
                Token::RParen => return Ok(values),
                Token::Comma => {
                    let pos = self.peek()?.pos;
                    self.count_predicate(pos)?;
                    values.push(self.value(VALUE)?);
                }
                _ => return Err(unexpected(&next, r#""," or ")" in the IN list"#)),
            }
        }
    }

    /// `exists(name)` or `prefix(name, "p")`, from the keyword at `pos`.
    fn function(&mut self, pos: usize, keyword: Keyword) -> Result<Expr, FilterError> {
        if self.peek()?.token.follows_a_name() {
            return Err(keyword_as_name(pos, keyword));
        }
        self.count_predicate(pos)?;
        let open = match keyword {
            Keyword::Exists => r#""(" after exists"#,
            _ => r#""(" after prefix"#,
        };
        self.expect(Token::LParen, open)?;
        let name = self.name()?;
        let test = match keyword {
            Keyword::Exists => Test::Exists,
            _ => {
                self.expect(Token::Comma, r#""," after the header name"#)?;
                Test::Prefix(self.string("a string (the prefix)")?)
            }
        };
        self.expect(Token::RParen, r#"")""#)?;
        Ok(Expr::Predicate(Predicate { name, test }))
    }

    fn name(&mut self) -> Result<String, FilterError> {
        let lexed = self.bump()?;
        match lexed.token {
            Token::Ident(name) => Ok(name.to_owned()),
            Token::Str(name) => Ok(name),
            Token::Keyword(k) => Err(keyword_as_name(lexed.pos, k)),
            _ => Err(unexpected(&lexed, "a header name")),
        }
    }

    fn value(&mut self, expected: &'static str) -> Result<Value, FilterError> {
        let lexed = self.bump()?;
        match lexed.token {
            Token::Str(s) => Ok(Value::Str(s)),
            Token::Number(n) => Ok(Value::Number(n)),
            _ => Err(unexpected(&lexed, expected)),
        }
    }

    fn number(&mut self, expected: &'static str) -> Result<f64, FilterError> {
        let lexed = self.bump()?;
        match lexed.token {
            Token::Number(n) => Ok(n),
            _ => Err(unexpected(&lexed, expected)),
        }
    }

    fn string(&mut self, expected: &'static str) -> Result<String, FilterError> {
        let lexed = self.bump()?;
        match lexed.token {
            Token::Str(s) => Ok(s),
            _ => Err(unexpected(&lexed, expected)),
        }
    }
}

fn unexpected(lexed: &Lexed<'_>, expected: &'static str) -> FilterError {
    let kind = match lexed.token {
        Token::End => FilterErrorKind::UnexpectedEnd { expected },
        ref found => FilterErrorKind::UnexpectedToken {
            expected,
            found: found.describe(),
        },
    };
    FilterError::new(lexed.pos, kind)
}

fn keyword_as_name(pos: usize, keyword: Keyword) -> FilterError {
    let kind = FilterErrorKind::KeywordAsName {
        keyword: keyword.as_str(),
    };
    FilterError::new(pos, kind)
}
