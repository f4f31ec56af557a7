//! Subscription filters: boolean expressions over a record's headers, in
//! the spirit of SNS filter policies and Pub/Sub filters.
//!
//! A filter is text given when a subscription is created. [`Filter::parse`]
//! checks it once — syntax and every limit below — and a bad filter is
//! rejected with the byte offset of the problem ([`FilterError`]). The
//! parsed filter is compiled to a flat list of checks that
//! [`Filter::matches`] runs without allocating, so it can be asked millions
//! of times a second. "No filter" is `None`, not an empty string.
//!
//! ```text
//! type = "order" AND (region IN ("eu", "us") OR priority >= 5)
//! NOT exists(test) AND prefix(source, "sensors/")
//! ```
//!
//! The grammar, the meaning of each predicate and the limits are specified
//! in `docs/FILTERS.md`. In short: `=`, `!=`, `<`, `<=`, `>`, `>=`,
//! `BETWEEN`, `IN`, `exists(..)`, `prefix(..)`, combined with NOT, AND, OR
//! (binding in that order) and parentheses. A predicate holds when *any*
//! header of that name passes; `a != v` is exactly `NOT a = v`, so it holds
//! when `a` is absent.
//!
//! # Example
//!
//! ```
//! use tidegate_proto::filter::Filter;
//!
//! let filter = Filter::parse(r#"type = "order" AND amount > 100"#)?;
//! let headers: &[(&str, &[u8])] = &[("type", b"order"), ("amount", b"250.5")];
//! assert!(filter.matches(headers.iter().copied()));
//! assert!(!filter.matches([("type", &b"order"[..]), ("amount", &b"99"[..])]));
//! # Ok::<(), tidegate_proto::filter::FilterError>(())
//! ```

mod ast;
mod error;
mod lexer;
mod number;
mod parser;
mod program;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

pub use error::{FilterError, FilterErrorKind};

use crate::batch::RecordView;
use ast::Expr;
use program::Program;

/// Longest filter text, in bytes (4 KiB).
pub const MAX_FILTER_BYTES: usize = 4096;

/// Deepest nesting of parentheses and NOTs (32): `NOT (a = 1)` is 2 deep.
///
/// The parser recurses once per `(`, so this bounds its stack whatever the
/// input.
pub const MAX_FILTER_DEPTH: usize = 32;

/// Most predicates in one filter (64), each value of an IN list counting
/// as one. Bounds the work of one evaluation.
pub const MAX_FILTER_PREDICATES: usize = 64;

/// Longest string literal or quoted name, in bytes once escapes are
/// resolved (1 KiB).
pub const MAX_FILTER_STRING_BYTES: usize = 1024;

/// A parsed, checked and compiled subscription filter.
///
/// Two filters are equal when they were parsed from the same text.
/// [`as_str`](Self::as_str) gives that text back; `Display` prints the
/// canonical form instead — normalised spacing and keyword case, only the
/// parentheses precedence needs — which parses to a filter that matches
/// exactly the same headers (unless normalised spacing takes a terse
/// source over [`MAX_FILTER_BYTES`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    text: String,
    expr: Expr,
    program: Program,
}

impl Filter {
    /// Parses `text`, checking the grammar and every limit.
    ///
    /// # Errors
    ///
    /// A [`FilterError`] with the byte offset of the first problem.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let expr = parser::parse(text)?;
        let program = Program::compile(&expr);
        Ok(Self {
            text: text.to_owned(),
            expr,
            program,
        })
    }

    /// The text the filter was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the headers — `(name, value)` pairs, names may repeat —
    /// pass the filter.
    ///
    /// The iterator is cloned to walk the headers once per predicate
    /// evaluated, so it should be cheap to clone: `slice.iter().copied()`,
    /// an array, or [`RecordView::headers`]. Nothing is allocated.
    pub fn matches<'h, I>(&self, headers: I) -> bool
    where
        I: IntoIterator<Item = (&'h str, &'h [u8])>,
        I::IntoIter: Clone,
    {
        self.program.matches(headers.into_iter())
    }

    /// True when the record's headers pass the filter.
    pub fn matches_record(&self, record: &RecordView<'_>) -> bool {
        self.matches(record.headers())
    }
}

/// The canonical form; see [`Filter`].
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}
