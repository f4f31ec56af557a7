//! Who a connection is and what it may do: the authentication and
//! authorization model of `docs/SECURITY.md`, as pure functions over
//! configuration, tokens and certificates (no sockets, no clock: the
//! caller passes the time), so every rule is testable and fuzzable.
//!
//! - [`AuthConfig`]: the `[auth]` section of the server's configuration.
//! - [`Policy`]: that configuration compiled (token hashes, JWT keys, ACL
//!   patterns). Shards hold an immutable `Arc<Policy>` each and swap it on
//!   reload, so checking a request takes no lock.
//! - [`hash_token`] / [`generate_token`]: static tokens are configured by
//!   their SHA-256, never in clear.
//! - [`lint`]: what `tidegate auth check` reports.
//!
//! ```
//! use tidegate_auth::{AuthConfig, Operation, Policy};
//!
//! let config: AuthConfig = toml::from_str(&format!(r#"
//!     mode = "token"
//!     [[tokens]]
//!     principal = "svc-orders"
//!     hash = "{}"
//!     [[acl]]
//!     principals = ["svc-orders"]
//!     topics = ["orders.*"]
//!     operations = ["produce"]
//! "#, tidegate_auth::hash_token("s3cret")))?;
//! let policy = Policy::from_config(&config)?;
//! let who = policy.authenticate("s3cret", 0)?;
//! assert_eq!(who.principal, "svc-orders");
//! assert!(policy.authorize(&who.principal, Operation::Produce, "orders.eu").is_ok());
//! let denied = policy.authorize(&who.principal, Operation::Consume, "orders.eu").unwrap_err();
//! assert_eq!(denied.to_string(), "consume on topic orders.eu");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod acl;
mod cert;
mod config;
mod error;
mod jwt;
mod lint;
mod pattern;
mod policy;
mod token;

pub use acl::{Acl, Denied, Operation};
pub use cert::principal_from_certificate;
pub use config::{
    AclRule, AuthConfig, AuthMode, CertificatePrincipal, Effect, JwtAlgorithm, JwtKey, StaticToken,
};
pub use error::{CertError, PolicyError, TokenError};
pub use lint::{lint, Finding, Severity};
pub use pattern::{Pattern, PatternError};
pub use policy::{Identity, Policy};
pub use token::{generate_token, hash_token, TokenHash};
