//! The `[auth]` section of `tidegate serve`'s configuration, as written.
//! [`Policy::from_config`](crate::Policy::from_config) compiles it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[auth]`: who may connect and what each principal may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// What a connection must present. Default `none`.
    pub mode: AuthMode,
    /// With `mode = "none"`, the server refuses to listen on an address
    /// other than loopback unless this is true (and then warns).
    pub allow_anonymous_remote: bool,
    /// CA certificates (PEM) client certificates must chain to; required
    /// by `mtls` and `mtls_or_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// Which name of a client certificate is its principal.
    pub certificate_principal: CertificatePrincipal,
    /// Static bearer tokens, by hash.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<StaticToken>,
    /// The `aud` a JWT must carry. Default `tidegate`.
    pub jwt_audience: String,
    /// The `iss` a JWT must carry, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_issuer: Option<String>,
    /// The JWT claim that names the principal. Default `sub`.
    pub jwt_principal_claim: String,
    /// Clock skew allowed on a JWT's `exp` and `nbf`, in seconds. Default 30.
    pub jwt_leeway_secs: u64,
    /// The public keys JWTs are verified with (`[[auth.jwt_keys]]`);
    /// without any, JWTs are not taken.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jwt_keys: Vec<JwtKey>,
    /// The SHA-256 (`tidegate auth hash-token`) of the bearer token the
    /// admin HTTP listener requires for everything but `/healthz` and
    /// `/readyz`; without it the listener is open (keep it on loopback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_hash: Option<String>,
    /// Principals that authenticate by certificate or JWT, declared so
    /// `tidegate auth check` can tell a typo from a real name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Named groups of principals, for ACL rules (`group:<name>`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
    /// The access rules, checked on every request once `mode` is not
    /// `none`. Nothing is allowed that no rule allows; a matching `deny`
    /// wins over any `allow`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acl: Vec<AclRule>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::None,
            allow_anonymous_remote: false,
            client_ca: None,
            certificate_principal: CertificatePrincipal::San,
            tokens: Vec::new(),
            jwt_audience: "tidegate".into(),
            jwt_issuer: None,
            jwt_principal_claim: "sub".into(),
            jwt_leeway_secs: 30,
            jwt_keys: Vec::new(),
            admin_token_hash: None,
            principals: Vec::new(),
            groups: BTreeMap::new(),
            acl: Vec::new(),
        }
    }
}

/// What a connection must present to be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Nothing: every connection may do everything (loopback only unless
    /// `allow_anonymous_remote`).
    #[default]
    None,
    /// A client certificate chained to `client_ca`, checked in the TLS
    /// handshake.
    Mtls,
    /// A bearer token (static or JWT) in an Authenticate request.
    Token,
    /// Either of the two.
    MtlsOrToken,
}

impl AuthMode {
    /// True when client certificates are asked for in the handshake.
    pub fn uses_certificates(self) -> bool {
        matches!(self, Self::Mtls | Self::MtlsOrToken)
    }

    /// True when Authenticate requests are taken.
    pub fn uses_tokens(self) -> bool {
        matches!(self, Self::Token | Self::MtlsOrToken)
    }
}

/// Which name of a client certificate is the connection's principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificatePrincipal {
    /// The first subject alternative name: a DNS name, else a URI, else an
    /// e-mail address.
    #[default]
    San,
    /// The subject's common name (CN).
    SubjectCn,
}

/// One static token: its principal and its hash (`tidegate auth
/// hash-token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticToken {
    /// Who the token authenticates.
    pub principal: String,
    /// `sha256:` and 64 hex digits.
    pub hash: String,
}

/// One JWT verification key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKey {
    /// The signature algorithm this key verifies.
    pub algorithm: JwtAlgorithm,
    /// The public key, PEM (`PUBLIC KEY` for EdDSA, `PUBLIC KEY` or
    /// `RSA PUBLIC KEY` for RS256).
    pub public_key: PathBuf,
    /// The `kid` a token's header must name to use this key, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// JWT signature algorithms the server verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// Ed25519.
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
}

/// One access rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// Whom it is about: principal names, `group:<name>`, or `*` (any
    /// authenticated principal).
    pub principals: Vec<String>,
    /// Which topics: an exact name (`orders`), a prefix (`orders.*`) or a
    /// glob (`*.eu`, `logs-??`); `*` is every topic.
    pub topics: Vec<String>,
    /// What: `produce`, `consume`, `admin`, or `all`.
    pub operations: Vec<String>,
    /// `allow` (the default) or `deny`.
    #[serde(default)]
    pub effect: Effect,
}

/// Whether a rule allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Allows what it matches (unless a deny rule matches too).
    #[default]
    Allow,
    /// Denies what it matches, whatever allows it.
    Deny,
}
