//! Feeds arbitrary bytes as the body of an Authenticate request, and the
//! token it carries to a policy that takes static tokens and JWTs (an
//! Ed25519 key written once to a temporary file): decoding and
//! verification must never panic, and garbage must never authenticate.
//!
//! Run: `cargo fuzz run auth_request` (nightly, or `RUSTC_BOOTSTRAP=1`).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tidegate_auth::{hash_token, AuthConfig, AuthMode, JwtAlgorithm, JwtKey, Policy, StaticToken};
use tidegate_proto::protocol::{FrameHeader, Kind, Request};

/// An Ed25519 public key (RFC 8410 test vector), in PEM.
const ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=
-----END PUBLIC KEY-----
";

fn policy() -> Option<&'static Policy> {
    static POLICY: OnceLock<Option<Policy>> = OnceLock::new();
    POLICY
        .get_or_init(|| {
            let path = std::env::temp_dir().join(format!("tidegate-fuzz-{}.pem", std::process::id()));
            std::fs::write(&path, ED25519_PUBLIC).ok()?;
            let mut config = AuthConfig {
                mode: AuthMode::Token,
                tokens: vec![StaticToken {
                    principal: "svc".into(),
                    hash: hash_token("the-one-token"),
                }],
                ..AuthConfig::default()
            };
            config.jwt_keys = vec![JwtKey {
                algorithm: JwtAlgorithm::EdDSA,
                public_key: path,
                kid: None,
            }];
            Policy::from_config(&config).ok()
        })
        .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Ok(len) = u32::try_from(data.len()) else {
        return;
    };
    let header = FrameHeader::new(Kind::Authenticate.request_code(), len);
    if let Ok(Request::Authenticate { token }) = Request::decode(header, data) {
        if let Some(policy) = policy() {
            let outcome = policy.authenticate(token, 1_800_000_000_000);
            assert!(outcome.is_err() || token == "the-one-token");
        }
    }
});
