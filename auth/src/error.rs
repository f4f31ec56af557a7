//! Why a token, a certificate or a configuration was refused.

use std::path::PathBuf;

/// Why a token did not authenticate. The text is what the client reads in
/// its `not_authenticated` error, so it names the reason but never echoes
/// the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a configured static token, and not a JWT this server verifies.
    #[error("unknown token")]
    Unknown,
    /// A JWT whose `exp` has passed.
    #[error("the token expired")]
    Expired,
    /// A JWT whose `nbf` is still ahead.
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// A JWT whose signature does not verify with any configured key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// A JWT for another audience.
    #[error("the token is for another audience")]
    WrongAudience,
    /// A JWT from another issuer.
    #[error("the token is from another issuer")]
    WrongIssuer,
    /// A JWT signed with an algorithm (or key id) no configured key has.
    #[error("no configured key verifies this token's algorithm or key id")]
    UnknownKey,
    /// A JWT without the claims this server needs (`exp`, the principal
    /// claim) or with a principal that is not a non-empty string.
    #[error("the token lacks a required claim: {0}")]
    MissingClaim(String),
    /// Not a well-formed JWT.
    #[error("malformed token: {0}")]
    Malformed(String),
}

impl TokenError {
    /// A short snake-case name, for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unknown => "unknown_token",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadSignature => "bad_signature",
            Self::WrongAudience => "wrong_audience",
            Self::WrongIssuer => "wrong_issuer",
            Self::UnknownKey => "unknown_key",
            Self::MissingClaim(_) => "missing_claim",
            Self::Malformed(_) => "malformed",
        }
    }
}

/// Why no principal could be taken from a client certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The DER does not parse as an X.509 certificate.
    #[error("the client certificate does not parse: {0}")]
    Parse(String),
    /// The certificate has no name of the configured kind.
    #[error("the client certificate has no {0}")]
    NoName(&'static str),
}

/// Why an `[auth]` configuration does not compile into a policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A static token's hash is not `sha256:` and 64 hex digits.
    #[error("auth.tokens[{index}] (principal `{principal}`): {reason}")]
    TokenHash {
        /// Position in `auth.tokens`.
        index: usize,
        /// Its principal.
        principal: String,
        /// What is wrong.
        reason: String,
    },
    /// Two static tokens with one hash.
    #[error("auth.tokens[{index}]: the same hash is listed twice")]
    DuplicateToken {
        /// Position of the second one.
        index: usize,
    },
    /// A JWT public key file could not be read or parsed.
    #[error("auth.jwt_keys[{index}] ({path}): {reason}")]
    JwtKey {
        /// Position in `auth.jwt_keys`.
        index: usize,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An ACL rule does not compile.
    #[error("auth.acl[{index}]: {reason}")]
    Rule {
        /// Position in `auth.acl`.
        index: usize,
        /// What is wrong (a bad pattern names its position).
        reason: String,
    },
    /// A setting that contradicts another.
    #[error("auth: {0}")]
    Invalid(String),
}
