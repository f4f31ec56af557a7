//! Topic patterns of ACL rules: exact names, prefixes and globs.

use tidegate_proto::protocol::MAX_TOPIC_NAME_BYTES;
use wildmatch::WildMatch;

/// A compiled topic pattern.
///
/// ```
/// use tidegate_auth::Pattern;
///
/// assert!(Pattern::parse("orders")?.matches("orders"));
/// assert!(Pattern::parse("orders.*")?.matches("orders.eu"));
/// assert!(!Pattern::parse("orders.*")?.matches("orders"));
/// assert!(Pattern::parse("*.eu")?.matches("payments.eu"));
/// assert!(Pattern::parse("logs-??")?.matches("logs-07"));
/// let bad = Pattern::parse("orders/eu").unwrap_err();
/// assert_eq!(bad.position, 6);
/// # Ok::<(), tidegate_auth::PatternError>(())
/// ```
#[derive(Debug, Clone)]
pub enum Pattern {
    /// One topic.
    Exact(String),
    /// Every topic that starts with this (written with one trailing `*`).
    Prefix(String),
    /// `*` any run of characters, `?` one character.
    Glob(WildMatch),
}

/// A pattern that does not compile: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic pattern `{pattern}` at byte {position}: {reason}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// Byte offset of the first bad character (0 for an empty pattern).
    pub position: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl Pattern {
    /// Compiles a pattern: topic-name characters (`a-z A-Z 0-9 . _ -`)
    /// and the wildcards `*` and `?`.
    ///
    /// # Errors
    ///
    /// [`PatternError`] naming the first bad byte.
    pub fn parse(pattern: &str) -> Result<Pattern, PatternError> {
        let error = |position, reason| PatternError {
            pattern: pattern.to_owned(),
            position,
            reason,
        };
        if pattern.is_empty() {
            return Err(error(0, "empty"));
        }
        if let Some((position, _)) = pattern.char_indices().find(|&(_, c)| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*' | '?'))
        }) {
            return Err(error(
                position,
                "only a-z, A-Z, 0-9, '.', '_', '-' and the wildcards '*' and '?' are allowed",
            ));
        }
        let wildcards = pattern.bytes().filter(|b| matches!(b, b'*' | b'?')).count();
        if wildcards == 0 {
            if pattern.len() > MAX_TOPIC_NAME_BYTES {
                return Err(error(
                    MAX_TOPIC_NAME_BYTES,
                    "longer than a topic name can be",
                ));
            }
            return Ok(Pattern::Exact(pattern.to_owned()));
        }
        match pattern.strip_suffix('*') {
            Some(prefix) if wildcards == 1 => Ok(Pattern::Prefix(prefix.to_owned())),
            _ => Ok(Pattern::Glob(WildMatch::new(pattern))),
        }
    }

    /// True when `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Pattern::Exact(name) => name == topic,
            Pattern::Prefix(prefix) => {
                topic.len() > prefix.len() && topic.starts_with(prefix.as_str())
            }
            Pattern::Glob(glob) => glob.matches(topic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_recognised() -> Result<(), PatternError> {
        assert!(matches!(Pattern::parse("a")?, Pattern::Exact(_)));
        assert!(matches!(Pattern::parse("a.*")?, Pattern::Prefix(_)));
        assert!(matches!(Pattern::parse("*")?, Pattern::Prefix(p) if p.is_empty()));
        assert!(matches!(Pattern::parse("*.a")?, Pattern::Glob(_)));
        assert!(matches!(Pattern::parse("a*b*")?, Pattern::Glob(_)));
        Ok(())
    }

    #[test]
    fn star_matches_every_topic_and_prefix_needs_more() -> Result<(), PatternError> {
        let all = Pattern::parse("*")?;
        assert!(all.matches("x") && all.matches("orders.eu"));
        let p = Pattern::parse("orders*")?;
        assert!(p.matches("orders2") && !p.matches("orders") && !p.matches("order"));
        Ok(())
    }

    #[test]
    fn bad_patterns_name_their_position() {
        let position = |p: &str| Pattern::parse(p).err().map(|e| e.position);
        assert_eq!(position(""), Some(0));
        assert_eq!(position("ab c"), Some(2));
        assert_eq!(position("é"), Some(0));
        assert!(Pattern::parse(&"a".repeat(250)).is_err());
    }
}
