//! Filter text → tokens, one at a time and each with its byte position, so
//! the parser reports the first error in text order.

use super::error::{FilterError, FilterErrorKind};
use super::number::{decimal_len, parse_decimal};
use super::MAX_FILTER_STRING_BYTES;

/// The reserved words; matched case-insensitively and never a bare name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
    And,
    Or,
    Not,
    Between,
    In,
    Exists,
    Prefix,
}

impl Keyword {
    const ALL: [Self; 7] = [
        Self::And,
        Self::Or,
        Self::Not,
        Self::Between,
        Self::In,
        Self::Exists,
        Self::Prefix,
    ];

    /// The spelling of the canonical form.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::And => "AND",
            Self::Or => "OR",
            Self::Not => "NOT",
            Self::Between => "BETWEEN",
            Self::In => "IN",
            Self::Exists => "exists",
            Self::Prefix => "prefix",
        }
    }

    fn from_word(word: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(word))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token<'a> {
    /// An unquoted name (never a keyword).
    Ident(&'a str),
    /// A quoted string, escapes resolved: a value, or a name.
    Str(String),
    /// A number literal, finite.
    Number(f64),
    Keyword(Keyword),
    LParen,
    RParen,
    Comma,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    End,
}

impl Token<'_> {
    /// How an error message names the token.
    pub(super) fn describe(&self) -> &'static str {
        match self {
            Self::Ident(_) => "a name",
            Self::Str(_) => "a string",
            Self::Number(_) => "a number",
            Self::Keyword(k) => k.as_str(),
            Self::LParen => r#""(""#,
            Self::RParen => r#"")""#,
            Self::Comma => r#"",""#,
            Self::Eq => r#""=""#,
            Self::Ne => r#""!=""#,
            Self::Lt => r#""<""#,
            Self::Le => r#""<=""#,
            Self::Gt => r#"">""#,
            Self::Ge => r#"">=""#,
            Self::End => "the end of the filter",
        }
    }

    /// True for what may follow a name in a predicate: a keyword followed
    /// by one of these was meant as a name.
    pub(super) fn follows_a_name(&self) -> bool {
        matches!(
            self,
            Self::Eq
                | Self::Ne
                | Self::Lt
                | Self::Le
                | Self::Gt
                | Self::Ge
                | Self::Keyword(Keyword::Between | Keyword::In)
        )
    }
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Lexed<'a> {
    pub(super) pos: usize,
    pub(super) token: Token<'a>,
}

#[derive(Debug, Clone)]
pub(super) struct Lexer<'a> {
    text: &'a str,
    /// Always at a char boundary: every token and whitespace byte is ASCII
    /// except inside strings, which end at an ASCII quote.
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    /// The next token; [`Token::End`] (at the text's length) once the text
    /// is used up, and again on every later call.
    pub(super) fn next_token(&mut self) -> Result<Lexed<'a>, FilterError> {
        let bytes = self.text.as_bytes();
        while bytes.get(self.pos).is_some_and(|b| is_whitespace(*b)) {
            self.pos += 1;
        }
        let start = self.pos;
        let token = match (bytes.get(start), bytes.get(start + 1)) {
            (None, _) => Token::End,
            (Some(b'('), _) => self.punct(1, Token::LParen),
            (Some(b')'), _) => self.punct(1, Token::RParen),
            (Some(b','), _) => self.punct(1, Token::Comma),
            (Some(b'='), _) => self.punct(1, Token::Eq),
            (Some(b'!'), Some(b'=')) => self.punct(2, Token::Ne),
            (Some(b'<'), Some(b'=')) => self.punct(2, Token::Le),
            (Some(b'<'), _) => self.punct(1, Token::Lt),
            (Some(b'>'), Some(b'=')) => self.punct(2, Token::Ge),
            (Some(b'>'), _) => self.punct(1, Token::Gt),
            (Some(b'"'), _) => self.string()?,
            (Some(b'-' | b'0'..=b'9'), _) => self.number()?,
            (Some(b), _) if b.is_ascii_alphabetic() || *b == b'_' => self.word(),
            (Some(_), _) => return Err(self.unexpected_char()),
        };
        Ok(Lexed { pos: start, token })
    }

    fn punct(&mut self, len: usize, token: Token<'a>) -> Token<'a> {
        self.pos += len;
        token
    }

    fn word(&mut self) -> Token<'a> {
        let start = self.pos;
        let len = self.text.as_bytes()[start..]
            .iter()
            .take_while(|b| is_ident_byte(**b))
            .count();
        self.pos += len;
        let word = &self.text[start..self.pos];
        Keyword::from_word(word).map_or(Token::Ident(word), Token::Keyword)
    }

    /// A number must end at a delimiter: `12px` or `1.2.3` is one bad
    /// number, not a number and a name.
    fn number(&mut self) -> Result<Token<'a>, FilterError> {
        let start = self.pos;
        let rest = &self.text.as_bytes()[start..];
        let bad = || FilterError::new(start, FilterErrorKind::BadNumber);
        let len = decimal_len(rest).ok_or_else(bad)?;
        if rest.get(len).is_some_and(|b| is_ident_byte(*b)) {
            return Err(bad());
        }
        let n = parse_decimal(&rest[..len]).ok_or_else(bad)?;
        self.pos += len;
        Ok(Token::Number(n))
    }

    /// A quoted string from the opening quote at `self.pos`, with `\"` and
    /// `\\` resolved.
    fn string(&mut self) -> Result<Token<'a>, FilterError> {
        let open = self.pos;
        let bytes = self.text.as_bytes();
        let error = |pos, kind| Err(FilterError::new(pos, kind));
        let mut out = String::new();
        // Unescaped text runs from `segment` to `i`; both sit next to ASCII
        // bytes, so slicing there is on char boundaries.
        let mut segment = open + 1;
        let mut i = segment;
        loop {
            if out.len() + (i - segment) > MAX_FILTER_STRING_BYTES {
                return error(open, FilterErrorKind::StringTooLong);
            }
            match (bytes.get(i), bytes.get(i + 1)) {
                (None, _) | (Some(b'\\'), None) => {
                    return error(open, FilterErrorKind::UnterminatedString)
                }
                (Some(b'"'), _) => break,
                (Some(b'\\'), Some(escaped @ (b'"' | b'\\'))) => {
                    out.push_str(&self.text[segment..i]);
                    out.push(char::from(*escaped));
                    i += 2;
                    segment = i;
                }
                (Some(b'\\'), Some(_)) => return error(i, FilterErrorKind::BadEscape),
                (Some(_), _) => i += 1,
            }
        }
        out.push_str(&self.text[segment..i]);
        self.pos = i + 1;
        Ok(Token::Str(out))
    }

    fn unexpected_char(&self) -> FilterError {
        let c = self.text[self.pos..]
            .chars()
            .next()
            .unwrap_or(char::REPLACEMENT_CHARACTER);
        FilterError::new(self.pos, FilterErrorKind::UnexpectedChar(c))
    }
}

/// True when `name` can be written without quotes.
pub(super) fn is_bare_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let starts_well = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    starts_well && bytes.all(is_ident_byte) && Keyword::from_word(name).is_none()
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/')
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n')
}
