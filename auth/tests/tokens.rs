//! Static tokens and JWTs through `Policy::authenticate`: good ones
//! authenticate; wrong, expired, not-yet-valid, wrongly signed and
//! wrong-audience ones get their typed error.

use std::path::{Path, PathBuf};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use tidegate_auth::{
    hash_token, AuthConfig, AuthMode, JwtAlgorithm, JwtKey, Policy, StaticToken, TokenError,
};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const NOW_MS: u64 = 1_800_000_000_000;
const NOW: u64 = NOW_MS / 1000;

struct Keys {
    _dir: tempfile::TempDir,
    ed_private: Vec<u8>,
    ed_public: PathBuf,
    other_ed_private: Vec<u8>,
    rsa_private: Vec<u8>,
    rsa_public: PathBuf,
}

fn keys() -> Result<Keys> {
    let dir = tempfile::tempdir()?;
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let ed_public = dir.path().join("ed.pem");
    std::fs::write(&ed_public, ed.public_key_pem())?;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    Ok(Keys {
        ed_private: ed.serialize_pem().into_bytes(),
        other_ed_private: other.serialize_pem().into_bytes(),
        ed_public,
        rsa_private: std::fs::read(fixtures.join("rs256-test-private.pem"))?,
        rsa_public: fixtures.join("rs256-test-public.pem"),
        _dir: dir,
    })
}

fn config(keys: &Keys) -> AuthConfig {
    let mut config = AuthConfig {
        mode: AuthMode::Token,
        tokens: vec![StaticToken {
            principal: "svc-orders".into(),
            hash: hash_token("static-secret"),
        }],
        ..AuthConfig::default()
    };
    config.jwt_keys = vec![
        JwtKey {
            algorithm: JwtAlgorithm::EdDSA,
            public_key: keys.ed_public.clone(),
            kid: None,
        },
        JwtKey {
            algorithm: JwtAlgorithm::RS256,
            public_key: keys.rsa_public.clone(),
            kid: Some("rsa-1".into()),
        },
    ];
    config
}

fn ed_token(private: &[u8], claims: serde_json::Value) -> Result<String> {
    let key = EncodingKey::from_ed_pem(private)?;
    Ok(encode(&Header::new(Algorithm::EdDSA), &claims, &key)?)
}

#[test]
fn static_token_authenticates_and_a_wrong_one_is_unknown() -> Result {
    let keys = keys()?;
    let policy = Policy::from_config(&config(&keys))?;
    let who = policy.authenticate("static-secret", NOW_MS)?;
    assert_eq!(
        (who.principal.as_str(), who.expires_at_ms),
        ("svc-orders", None)
    );
    assert_eq!(
        policy.authenticate("static-secreT", NOW_MS),
        Err(TokenError::Unknown)
    );
    assert_eq!(policy.authenticate("", NOW_MS), Err(TokenError::Unknown));
    Ok(())
}

#[test]
fn good_jwts_authenticate_with_their_expiry() -> Result {
    let keys = keys()?;
    let policy = Policy::from_config(&config(&keys))?;
    let claims = json!({"sub": "alice", "aud": "tidegate", "exp": NOW + 600, "nbf": NOW - 5});
    let who = policy.authenticate(&ed_token(&keys.ed_private, claims.clone())?, NOW_MS)?;
    assert_eq!(who.principal, "alice");
    assert_eq!(who.expires_at_ms, Some((NOW + 600) * 1000));

    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let rsa = encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(&keys.rsa_private)?,
    )?;
    assert_eq!(policy.authenticate(&rsa, NOW_MS)?.principal, "alice");
    // The RS256 key is only for tokens naming its kid.
    let no_kid = encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(&keys.rsa_private)?,
    )?;
    assert_eq!(
        policy.authenticate(&no_kid, NOW_MS),
        Err(TokenError::UnknownKey)
    );
    Ok(())
}

#[test]
fn bad_jwts_get_their_typed_error() -> Result {
    let keys = keys()?;
    let policy = Policy::from_config(&config(&keys))?;
    let sign = |claims| ed_token(&keys.ed_private, claims);
    let cases = [
        (
            sign(json!({"sub": "a", "aud": "tidegate", "exp": NOW - 3600}))?,
            TokenError::Expired,
        ),
        (
            sign(json!({"sub": "a", "aud": "tidegate", "exp": NOW + 7200, "nbf": NOW + 3600}))?,
            TokenError::NotYetValid,
        ),
        (
            ed_token(
                &keys.other_ed_private,
                json!({"sub": "a", "aud": "tidegate", "exp": NOW + 60}),
            )?,
            TokenError::BadSignature,
        ),
        (
            sign(json!({"sub": "a", "aud": "elsewhere", "exp": NOW + 60}))?,
            TokenError::WrongAudience,
        ),
        (
            sign(json!({"aud": "tidegate", "exp": NOW + 60}))?,
            TokenError::MissingClaim("sub".into()),
        ),
        (
            sign(json!({"sub": "a", "aud": "tidegate"}))?,
            TokenError::MissingClaim("exp".into()),
        ),
    ];
    for (token, want) in cases {
        assert_eq!(policy.authenticate(&token, NOW_MS), Err(want));
    }
    // Within the leeway (30 s by default) an expiry is still accepted.
    let just = sign(json!({"sub": "a", "aud": "tidegate", "exp": NOW - 10}))?;
    assert!(policy.authenticate(&just, NOW_MS).is_ok());
    // A tampered payload fails its signature.
    let good = sign(json!({"sub": "a", "aud": "tidegate", "exp": NOW + 60}))?;
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "root", "aud": "tidegate", "exp": NOW + 60}),
        &EncodingKey::from_secret(b"k"),
    )?;
    let forged_payload = forged.split('.').nth(1).unwrap_or_default().to_owned();
    parts[1] = &forged_payload;
    assert_eq!(
        policy.authenticate(&parts.join("."), NOW_MS),
        Err(TokenError::BadSignature)
    );
    // An algorithm no key has (HS256 — the classic confusion attack).
    assert_eq!(
        policy.authenticate(&forged, NOW_MS),
        Err(TokenError::UnknownKey)
    );
    for garbage in ["a.b.c", "..", "x.y.z.", "eyJ.eyJ.sig"] {
        assert!(matches!(
            policy.authenticate(garbage, NOW_MS),
            Err(TokenError::Malformed(_) | TokenError::Unknown)
        ));
    }
    Ok(())
}

#[test]
fn modes_need_what_they_use() -> Result {
    let keys = keys()?;
    let mut no_tokens = AuthConfig {
        mode: AuthMode::Token,
        ..AuthConfig::default()
    };
    assert!(Policy::from_config(&no_tokens).is_err());
    no_tokens.mode = AuthMode::Mtls;
    assert!(Policy::from_config(&no_tokens).is_err());
    let mut missing_key = config(&keys);
    missing_key.jwt_keys[0].public_key = PathBuf::from("/nonexistent/key.pem");
    assert!(Policy::from_config(&missing_key).is_err());
    let mut bad_hash = config(&keys);
    bad_hash.tokens[0].hash = "sha256:beef".into();
    assert!(Policy::from_config(&bad_hash).is_err());
    Ok(())
}
