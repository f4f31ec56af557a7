//! The compiled `[auth]` configuration a shard checks requests against.

use std::collections::HashMap;

use crate::acl::{Acl, Denied, Operation};
use crate::jwt::JwtVerifier;
use crate::token::TokenHash;
use crate::{AuthConfig, AuthMode, CertError, CertificatePrincipal, PolicyError, TokenError};

/// Who a connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The principal's name.
    pub principal: String,
    /// When the identity lapses (a JWT's `exp`, ms since the Unix epoch).
    pub expires_at_ms: Option<u64>,
}

/// A compiled, immutable `[auth]`: cheap to share as an `Arc` between
/// shards and to swap whole on reload.
#[derive(Debug)]
pub struct Policy {
    mode: AuthMode,
    certificate_principal: CertificatePrincipal,
    tokens: HashMap<TokenHash, String>,
    jwt: Option<JwtVerifier>,
    acl: Acl,
    admin_token: Option<TokenHash>,
}

impl Default for Policy {
    /// `mode = "none"`: everything is allowed.
    fn default() -> Self {
        Policy {
            mode: AuthMode::None,
            certificate_principal: CertificatePrincipal::San,
            tokens: HashMap::new(),
            jwt: None,
            acl: Acl::default(),
            admin_token: None,
        }
    }
}

impl Policy {
    /// Compiles `config`, reading the JWT public key files it names.
    ///
    /// # Errors
    ///
    /// [`PolicyError`] naming the setting: a bad token hash, an unreadable
    /// key, a rule that does not compile, or a mode that lacks what it
    /// needs (`token` without tokens or JWT keys, `mtls` without
    /// `client_ca`).
    pub fn from_config(config: &AuthConfig) -> Result<Policy, PolicyError> {
        let mut tokens = HashMap::with_capacity(config.tokens.len());
        for (index, t) in config.tokens.iter().enumerate() {
            let hash = TokenHash::parse(&t.hash).map_err(|reason| PolicyError::TokenHash {
                index,
                principal: t.principal.clone(),
                reason,
            })?;
            if t.principal.is_empty() {
                return Err(PolicyError::TokenHash {
                    index,
                    principal: String::new(),
                    reason: "the principal is empty".into(),
                });
            }
            if tokens.insert(hash, t.principal.clone()).is_some() {
                return Err(PolicyError::DuplicateToken { index });
            }
        }
        let jwt = JwtVerifier::from_config(config)?;
        if config.mode.uses_tokens() && tokens.is_empty() && jwt.is_none() {
            return Err(PolicyError::Invalid(format!(
                "mode {:?} takes tokens, but neither auth.tokens nor auth.jwt_keys is set",
                config.mode
            )));
        }
        if config.mode.uses_certificates() && config.client_ca.is_none() {
            return Err(PolicyError::Invalid(format!(
                "mode {:?} needs auth.client_ca, the CA client certificates chain to",
                config.mode
            )));
        }
        let acl = Acl::compile(&config.acl, &config.groups)?;
        let admin_token =
            match &config.admin_token_hash {
                Some(text) => Some(TokenHash::parse(text).map_err(|reason| {
                    PolicyError::Invalid(format!("admin_token_hash: {reason}"))
                })?),
                None => None,
            };
        Ok(Policy {
            mode: config.mode,
            certificate_principal: config.certificate_principal,
            tokens,
            jwt,
            acl,
            admin_token,
        })
    }

    /// The authentication mode.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// True when requests are checked at all (`mode` is not `none`).
    pub fn enforced(&self) -> bool {
        self.mode != AuthMode::None
    }

    /// Authenticates a bearer token at `now_ms`: a static token by its
    /// hash, else a JWT.
    ///
    /// # Errors
    ///
    /// [`TokenError`] saying why (never echoing the token).
    pub fn authenticate(&self, token: &str, now_ms: u64) -> Result<Identity, TokenError> {
        if !self.mode.uses_tokens() {
            return Err(TokenError::Unknown);
        }
        if let Some(principal) = self.tokens.get(&TokenHash::of(token)) {
            return Ok(Identity {
                principal: principal.clone(),
                expires_at_ms: None,
            });
        }
        match &self.jwt {
            Some(jwt) if token.bytes().filter(|&b| b == b'.').count() == 2 => {
                jwt.verify(token, now_ms)
            }
            _ => Err(TokenError::Unknown),
        }
    }

    /// The identity a verified client certificate (DER, leaf) gives.
    ///
    /// # Errors
    ///
    /// [`CertError`] when it names no principal of the configured kind.
    pub fn certificate_identity(&self, leaf: &[u8]) -> Result<Identity, CertError> {
        let principal = crate::principal_from_certificate(leaf, self.certificate_principal)?;
        Ok(Identity {
            principal,
            expires_at_ms: None,
        })
    }

    /// Whether `principal` may do `operation` on `topic` (always, when not
    /// enforced).
    ///
    /// # Errors
    ///
    /// [`Denied`], whose text is the `not_authorized` message.
    pub fn authorize(
        &self,
        principal: &str,
        operation: Operation,
        topic: &str,
    ) -> Result<(), Denied> {
        if !self.enforced() {
            return Ok(());
        }
        self.acl.check(principal, operation, topic)
    }

    /// True when the admin HTTP listener asks for a bearer token.
    pub fn admin_protected(&self) -> bool {
        self.admin_token.is_some()
    }

    /// Whether `presented` (the bearer token of an admin HTTP request) is
    /// the configured admin token; always true without one.
    pub fn admin_token_ok(&self, presented: Option<&str>) -> bool {
        match (&self.admin_token, presented) {
            (None, _) => true,
            (Some(want), Some(token)) => TokenHash::of(token) == *want,
            (Some(_), None) => false,
        }
    }

    /// Whether `principal` may see `topic` at all (describe, list).
    pub fn sees(&self, principal: &str, topic: &str) -> bool {
        !self.enforced() || self.acl.sees(principal, topic)
    }
}
