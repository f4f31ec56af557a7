//! JWT verification: signature (EdDSA or RS256, by configured public
//! keys), audience, issuer, and `exp` / `nbf` against the caller's clock
//! (so the rules are testable without waiting for time to pass).

use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::{AuthConfig, Identity, JwtAlgorithm, PolicyError, TokenError};

struct Key {
    algorithm: Algorithm,
    kid: Option<String>,
    key: DecodingKey,
}

/// Compiled `[auth.jwt]`.
pub(crate) struct JwtVerifier {
    keys: Vec<Key>,
    audience: String,
    issuer: Option<String>,
    principal_claim: String,
    leeway_secs: u64,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Reads the configured keys; `None` without any.
    pub(crate) fn from_config(config: &AuthConfig) -> Result<Option<JwtVerifier>, PolicyError> {
        if config.jwt_keys.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::with_capacity(config.jwt_keys.len());
        for (index, k) in config.jwt_keys.iter().enumerate() {
            let bad = |reason: String| PolicyError::JwtKey {
                index,
                path: k.public_key.clone(),
                reason,
            };
            let pem = std::fs::read(&k.public_key).map_err(|e| bad(e.to_string()))?;
            let (algorithm, key) = match k.algorithm {
                JwtAlgorithm::EdDSA => (Algorithm::EdDSA, DecodingKey::from_ed_pem(&pem)),
                JwtAlgorithm::RS256 => (Algorithm::RS256, DecodingKey::from_rsa_pem(&pem)),
            };
            keys.push(Key {
                algorithm,
                kid: k.kid.clone(),
                key: key
                    .map_err(|e| bad(format!("not a {:?} public key (PEM): {e}", k.algorithm)))?,
            });
        }
        if config.jwt_principal_claim.is_empty() {
            return Err(PolicyError::Invalid(
                "auth.jwt_principal_claim is empty".into(),
            ));
        }
        Ok(Some(JwtVerifier {
            keys,
            audience: config.jwt_audience.clone(),
            issuer: config.jwt_issuer.clone(),
            principal_claim: config.jwt_principal_claim.clone(),
            leeway_secs: config.jwt_leeway_secs,
        }))
    }

    /// Verifies `token` at `now_ms` (ms since the Unix epoch).
    pub(crate) fn verify(&self, token: &str, now_ms: u64) -> Result<Identity, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        let candidates = self.keys.iter().filter(|k| {
            k.algorithm == header.alg
                && match (&k.kid, &header.kid) {
                    (Some(want), Some(got)) => want == got,
                    (Some(_), None) => false,
                    (None, _) => true,
                }
        });
        let mut outcome = Err(TokenError::UnknownKey);
        for key in candidates {
            outcome = self.verify_with(token, key);
            if !matches!(outcome, Err(TokenError::BadSignature)) {
                break;
            }
        }
        let claims = outcome?;
        self.check_claims(&claims, now_ms)
    }

    fn verify_with(&self, token: &str, key: &Key) -> Result<Map<String, Value>, TokenError> {
        let mut validation = Validation::new(key.algorithm);
        // Time is checked in `check_claims`, against the caller's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.set_audience(&[self.audience.as_str()]);
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer.as_str()]);
        }
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim.clone()),
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidAlgorithm => TokenError::UnknownKey,
                _ => TokenError::Malformed(e.to_string()),
            }),
        }
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now_ms: u64,
    ) -> Result<Identity, TokenError> {
        let now = now_ms / 1000;
        let seconds = |name: &str| claims.get(name).and_then(Value::as_u64);
        let exp = seconds("exp").ok_or_else(|| TokenError::MissingClaim("exp".into()))?;
        if exp.saturating_add(self.leeway_secs) <= now {
            return Err(TokenError::Expired);
        }
        if claims.contains_key("nbf") {
            let nbf = seconds("nbf")
                .ok_or_else(|| TokenError::Malformed("nbf is not a number".into()))?;
            if nbf > now.saturating_add(self.leeway_secs) {
                return Err(TokenError::NotYetValid);
            }
        }
        let principal = claims
            .get(&self.principal_claim)
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| TokenError::MissingClaim(self.principal_claim.clone()))?;
        Ok(Identity {
            principal: principal.to_owned(),
            expires_at_ms: Some(exp.saturating_mul(1000)),
        })
    }
}
