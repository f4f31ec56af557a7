//! Authentication failures and denied requests, counted per shard thread
//! like the request counters (`probe.rs`): no atomic on the request path.

use std::cell::Cell;

/// Why a request or an Authenticate was refused authentication: the token
/// reasons of `tidegate_auth::TokenError::reason`, then `lapsed` (a JWT
/// expired on an open connection), `certificate` (no principal in the
/// client certificate) and `unauthenticated` (nothing presented).
pub const FAILURE_REASONS: [&str; 12] = [
    "unknown_token",
    "expired",
    "not_yet_valid",
    "bad_signature",
    "wrong_audience",
    "wrong_issuer",
    "unknown_key",
    "missing_claim",
    "malformed",
    "lapsed",
    "certificate",
    "unauthenticated",
];

/// Operations a denial is counted under.
pub const DENIED_OPERATIONS: [&str; 4] = ["produce", "consume", "admin", "describe"];

/// One shard's authentication counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthSnapshot {
    /// Authentication failures by [`FAILURE_REASONS`] slot.
    pub failures: [u64; FAILURE_REASONS.len()],
    /// Requests denied by the ACL, by [`DENIED_OPERATIONS`] slot.
    pub denied: [u64; DENIED_OPERATIONS.len()],
}

thread_local! {
    static FAILURES: [Cell<u64>; FAILURE_REASONS.len()] = const { [const { Cell::new(0) }; FAILURE_REASONS.len()] };
    static DENIED: [Cell<u64>; DENIED_OPERATIONS.len()] = const { [const { Cell::new(0) }; DENIED_OPERATIONS.len()] };
}

fn bump(cells: &[Cell<u64>], names: &[&str], name: &str) {
    // An unlisted name is counted in the last slot rather than lost.
    let slot = names
        .iter()
        .position(|n| *n == name)
        .unwrap_or(names.len() - 1);
    if let Some(cell) = cells.get(slot) {
        cell.set(cell.get().wrapping_add(1));
    }
}

/// Counts an authentication failure.
pub(crate) fn count_auth_failure(reason: &str) {
    FAILURES.with(|cells| bump(cells, &FAILURE_REASONS, reason));
}

/// Counts a request the ACL denied.
pub(crate) fn count_auth_denied(operation: &str) {
    DENIED.with(|cells| bump(cells, &DENIED_OPERATIONS, operation));
}

/// Copies this thread's counters.
pub(crate) fn snapshot() -> AuthSnapshot {
    let mut s = AuthSnapshot::default();
    FAILURES.with(|cells| {
        for (out, cell) in s.failures.iter_mut().zip(cells) {
            *out = cell.get();
        }
    });
    DENIED.with(|cells| {
        for (out, cell) in s.denied.iter_mut().zip(cells) {
            *out = cell.get();
        }
    });
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_denials_land_in_their_slots() {
        count_auth_failure("expired");
        count_auth_failure("expired");
        count_auth_failure("something new");
        count_auth_denied("consume");
        let s = snapshot();
        assert_eq!(s.failures[1], 2);
        assert_eq!(s.failures[FAILURE_REASONS.len() - 1], 1);
        assert_eq!(s.denied[1], 1);
    }
}
