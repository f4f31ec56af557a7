//! Feeds arbitrary text to the `[auth]` configuration and its ACL rule
//! parser: the TOML, the rule compiler (topic patterns, operations,
//! principals) and the lint must never panic, and a policy that compiles
//! must answer every check. Key files are not read (the input cannot name
//! files to open).
//!
//! Run: `cargo fuzz run auth_config` (nightly, or `RUSTC_BOOTSTRAP=1`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tidegate_auth::{lint, AuthConfig, Operation, Pattern, Policy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line alone as a topic pattern, then the whole as a config.
    let first = text.lines().next().unwrap_or_default();
    if let Ok(pattern) = Pattern::parse(first) {
        let _ = pattern.matches(first);
        let _ = pattern.matches("orders.eu");
    }
    let Ok(mut config) = toml::from_str::<AuthConfig>(text) else {
        return;
    };
    config.jwt_keys.clear();
    config.client_ca = None;
    let _ = lint(&config);
    if let Ok(policy) = Policy::from_config(&config) {
        for principal in ["alice", "", "*", "group:ops"] {
            for op in Operation::ALL {
                let _ = policy.authorize(principal, op, first);
            }
            let _ = policy.sees(principal, first);
        }
        let _ = policy.authenticate(first, 0);
    }
});
