//! The one error type of the filter language.

use super::{MAX_FILTER_BYTES, MAX_FILTER_DEPTH, MAX_FILTER_PREDICATES, MAX_FILTER_STRING_BYTES};

/// Why a text is not a valid filter: what went wrong, and where.
///
/// Parsing never panics: every malformed input maps to one of these.
///
/// # Example
///
/// ```
/// use tidegate_proto::filter::{Filter, FilterErrorKind};
///
/// let e = Filter::parse("a == 1").unwrap_err();
/// assert_eq!(e.position, 3);
/// assert!(matches!(e.kind, FilterErrorKind::UnexpectedToken { .. }));
/// assert_eq!(e.to_string(), r#"at byte 3: expected a value after "=", found "=""#);
/// ```
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("at byte {position}: {kind}")]
pub struct FilterError {
    /// Byte offset into the filter text where the problem starts (the
    /// text's length when it ends too early).
    pub position: usize,
    /// What the problem is.
    pub kind: FilterErrorKind,
}

impl FilterError {
    pub(crate) fn new(position: usize, kind: FilterErrorKind) -> Self {
        Self { position, kind }
    }
}

/// What is wrong with a filter; see [`FilterError`] for where.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterErrorKind {
    /// The text is empty or only whitespace. "No filter" is `None`, not an
    /// empty filter.
    #[error("empty filter")]
    Empty,
    /// The text is over [`MAX_FILTER_BYTES`]; reported at that offset.
    #[error("filter of {len} bytes is over the limit of {MAX_FILTER_BYTES} bytes")]
    TooLong {
        /// The text's length in bytes.
        len: usize,
    },
    /// Parentheses and NOTs nest deeper than [`MAX_FILTER_DEPTH`];
    /// reported at the `(` or `NOT` that goes over.
    #[error("parentheses and NOTs nest deeper than {MAX_FILTER_DEPTH}")]
    TooDeep,
    /// More than [`MAX_FILTER_PREDICATES`] predicates, each value of an IN
    /// list counting as one; reported at the one that goes over.
    #[error("more than {MAX_FILTER_PREDICATES} predicates (each IN value counts as one)")]
    TooManyPredicates,
    /// A string is longer than [`MAX_FILTER_STRING_BYTES`] once its escapes
    /// are resolved; reported at its opening quote.
    #[error("string longer than {MAX_FILTER_STRING_BYTES} bytes")]
    StringTooLong,
    /// A string has no closing quote; reported at its opening quote.
    #[error("string has no closing quote")]
    UnterminatedString,
    /// A backslash in a string is not followed by `"` or `\`; reported at
    /// the backslash.
    #[error(r#"bad escape: only \" and \\ are allowed in a string"#)]
    BadEscape,
    /// A number is not `[-]digits[.digits]` ending at a delimiter, or is
    /// too large for an `f64`; reported at its first byte.
    #[error("malformed number: expected [-]digits[.digits], finite")]
    BadNumber,
    /// A character that starts no token.
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    /// A token that does not fit here.
    #[error("expected {expected}, found {found}")]
    UnexpectedToken {
        /// What would have fitted.
        expected: &'static str,
        /// What was there.
        found: &'static str,
    },
    /// The text ends too early; reported at its length.
    #[error("expected {expected}, found the end of the filter")]
    UnexpectedEnd {
        /// What would have fitted.
        expected: &'static str,
    },
    /// A complete filter is followed by more tokens (often a missing AND
    /// or OR, or an unmatched `)`).
    #[error("expected AND, OR or the end of the filter, found {found}")]
    TrailingInput {
        /// The first token after the filter.
        found: &'static str,
    },
    /// A keyword stands where a header name is expected; names that are
    /// keywords must be quoted.
    #[error(r#"{keyword} is a keyword: quote it ("{keyword}") to use it as a header name"#)]
    KeywordAsName {
        /// The keyword, as the canonical form spells it.
        keyword: &'static str,
    },
}
