//! The front door of an endpoint: which new connections get in. A plain
//! state machine (the driver calls it with the clock), so floods are
//! tested without sockets.
//!
//! A connection whose source address is not validated may come from a
//! spoofed address, so it is never refused for a quota and never charged
//! to its address: when anything is tight (handshakes arriving faster than
//! `retry_handshakes_per_s`, half of `max_handshakes` in flight, or its IP
//! at `max_connections_per_address`), it gets a stateless Retry instead. A
//! spoofed flood then costs one small packet per Initial and no state, and
//! cannot use up a victim's quota by spoofing the victim's address; a real
//! client comes back with the Retry token, validated.
//!
//! A validated connection (it returned a Retry token) is refused when the
//! endpoint is full, when its IP holds `max_connections_per_address`, or
//! when `max_handshakes` handshakes are in flight. An address holds a
//! connection once it is proven: validated at accept, or when the
//! handshake of an unvalidated one completes.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

/// What to do with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Accept,
    Retry,
    Refuse(Refusal),
}

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_connections`, or shutting down.
    Full,
    /// `max_connections_per_address`.
    PerAddress,
    /// `max_handshakes`.
    Handshakes,
}

pub(crate) struct FrontDoor {
    /// Connections held per source IP: those whose address is proven
    /// (validated, or handshake completed), until they close.
    per_address: HashMap<IpAddr, usize>,
    /// Connections accepted whose handshake has not ended.
    handshakes: usize,
    max_per_address: usize,
    max_handshakes: usize,
    bucket: TokenBucket,
}

impl FrontDoor {
    pub(crate) fn new(
        max_per_address: usize,
        max_handshakes: usize,
        handshakes_per_s: u32,
        now: Instant,
    ) -> Self {
        FrontDoor {
            per_address: HashMap::new(),
            handshakes: 0,
            max_per_address: max_per_address.max(1),
            max_handshakes: max_handshakes.max(1),
            bucket: TokenBucket::new(handshakes_per_s, now),
        }
    }

    /// Decides on a new connection from `ip`; `full` when the endpoint
    /// takes no connection at all. Nothing is held until `accepted`.
    pub(crate) fn admit(
        &mut self,
        now: Instant,
        ip: IpAddr,
        validated: bool,
        full: bool,
    ) -> Admission {
        if full {
            return Admission::Refuse(Refusal::Full);
        }
        if !validated {
            let crowded = self.handshakes >= self.max_handshakes / 2
                || self.held_by(ip) >= self.max_per_address;
            if crowded || !self.bucket.take(now) {
                return Admission::Retry;
            }
            return Admission::Accept;
        }
        if self.held_by(ip) >= self.max_per_address {
            return Admission::Refuse(Refusal::PerAddress);
        }
        if self.handshakes >= self.max_handshakes {
            return Admission::Refuse(Refusal::Handshakes);
        }
        // Validated handshakes count against the rate too, but are never
        // sent back: they already proved their address.
        self.bucket.take(now);
        Admission::Accept
    }

    /// A connection from `ip` was accepted: it holds a handshake, and a
    /// slot of its address when the address is `validated`. Returns
    /// whether it holds that slot.
    pub(crate) fn accepted(&mut self, ip: IpAddr, validated: bool) -> bool {
        self.handshakes += 1;
        if validated {
            self.hold(ip);
        }
        validated
    }

    /// A handshake ended (completed, failed or timed out).
    pub(crate) fn handshake_ended(&mut self) {
        debug_assert!(self.handshakes > 0, "a handshake ended that never began");
        self.handshakes = self.handshakes.saturating_sub(1);
    }

    /// The address `ip` is proven (a handshake from it completed): it now
    /// holds a slot for the connection.
    pub(crate) fn hold(&mut self, ip: IpAddr) {
        *self.per_address.entry(canonical(ip)).or_insert(0) += 1;
    }

    /// A connection from `ip` that held a slot is gone.
    pub(crate) fn closed(&mut self, ip: IpAddr) {
        let ip = canonical(ip);
        let Some(held) = self.per_address.get_mut(&ip) else {
            debug_assert!(false, "closed a connection of an address holding none");
            return;
        };
        *held -= 1;
        if *held == 0 {
            self.per_address.remove(&ip);
        }
    }

    pub(crate) fn handshakes(&self) -> usize {
        self.handshakes
    }

    fn held_by(&self, ip: IpAddr) -> usize {
        self.per_address.get(&canonical(ip)).copied().unwrap_or(0)
    }
}

/// An IPv4 client on a dual-stack socket counts as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Handshakes allowed without Retry: `rate` a second, up to `rate` at once.
/// Counted in millionths of a token, so no floating point.
struct TokenBucket {
    rate_per_s: u64,
    micro_tokens: u64,
    refilled_at: Instant,
}

const MICRO: u64 = 1_000_000;

impl TokenBucket {
    fn new(rate_per_s: u32, now: Instant) -> Self {
        let rate_per_s = u64::from(rate_per_s);
        TokenBucket {
            rate_per_s,
            micro_tokens: rate_per_s * MICRO,
            refilled_at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        if self.rate_per_s == 0 {
            return false;
        }
        let burst = self.rate_per_s * MICRO;
        let elapsed = now.saturating_duration_since(self.refilled_at);
        // Past a full refill, the exact elapsed time no longer matters (and
        // the product below stays far from overflow).
        let elapsed_us = elapsed.min(Duration::from_secs(1)).as_micros() as u64;
        self.micro_tokens = burst.min(self.micro_tokens + elapsed_us * self.rate_per_s);
        self.refilled_at = now;
        if self.micro_tokens >= MICRO {
            self.micro_tokens -= MICRO;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn unvalidated_handshakes_beyond_the_rate_are_retried_and_validated_ones_pass() {
        let t0 = Instant::now();
        let mut door = FrontDoor::new(1000, 1000, 10, t0);
        for _ in 0..10 {
            assert_eq!(door.admit(t0, A, false, false), Admission::Accept);
        }
        assert_eq!(door.admit(t0, A, false, false), Admission::Retry);
        assert_eq!(door.admit(t0, A, true, false), Admission::Accept);
        // 100ms refill one token at 10/s.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(door.admit(t1, A, false, false), Admission::Accept);
        assert_eq!(door.admit(t1, A, false, false), Admission::Retry);
        // A long pause refills the burst, not more.
        let t2 = t1 + Duration::from_secs(3600);
        let accepted = (0..20)
            .filter(|_| door.admit(t2, A, false, false) == Admission::Accept)
            .count();
        assert_eq!(accepted, 10);
    }

    #[test]
    fn zero_rate_always_retries_unvalidated_handshakes() {
        let t0 = Instant::now();
        let mut door = FrontDoor::new(1000, 1000, 0, t0);
        assert_eq!(door.admit(t0, A, false, false), Admission::Retry);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(door.admit(later, A, false, false), Admission::Retry);
        assert_eq!(door.admit(later, A, true, false), Admission::Accept);
    }

    #[test]
    fn connections_per_address_are_bounded_and_freed_on_close() {
        let t0 = Instant::now();
        let mut door = FrontDoor::new(2, 1000, 1000, t0);
        for _ in 0..2 {
            assert_eq!(door.admit(t0, A, true, false), Admission::Accept);
            assert!(door.accepted(A, true));
            door.handshake_ended();
        }
        let refused = Admission::Refuse(Refusal::PerAddress);
        assert_eq!(door.admit(t0, A, true, false), refused);
        assert_eq!(door.admit(t0, B, true, false), Admission::Accept);
        door.closed(A);
        assert_eq!(door.admit(t0, A, true, false), Admission::Accept);
        // An IPv4-mapped IPv6 address is the same client.
        door.accepted(A, true);
        let mapped = match A {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(_) => unreachable!(),
        };
        assert_eq!(door.admit(t0, mapped, true, false), refused);
    }

    #[test]
    fn handshakes_in_flight_are_bounded() {
        let t0 = Instant::now();
        let mut door = FrontDoor::new(1000, 4, 1000, t0);
        // Unvalidated handshakes take at most half.
        for _ in 0..2 {
            assert_eq!(door.admit(t0, A, false, false), Admission::Accept);
            assert!(!door.accepted(A, false));
        }
        assert_eq!(door.admit(t0, A, false, false), Admission::Retry);
        // The other half is for validated clients, then they are refused.
        for _ in 0..2 {
            assert_eq!(door.admit(t0, B, true, false), Admission::Accept);
            door.accepted(B, true);
        }
        let refused = Admission::Refuse(Refusal::Handshakes);
        assert_eq!(door.admit(t0, B, true, false), refused);
        door.handshake_ended();
        assert_eq!(door.handshakes(), 3);
        assert_eq!(door.admit(t0, B, true, false), Admission::Accept);
    }

    #[test]
    fn a_flood_spoofing_a_victims_address_cannot_take_the_victims_quota() {
        let t0 = Instant::now();
        let mut door = FrontDoor::new(2, 1000, 1000, t0);
        // Spoofed Initials "from" A: accepted while there is room, but they
        // never complete their handshake, so A holds nothing.
        for _ in 0..100 {
            if door.admit(t0, A, false, false) == Admission::Accept {
                door.accepted(A, false);
            }
        }
        assert_eq!(door.held_by(A), 0);
        // The real A comes back validated and gets in.
        assert_eq!(door.admit(t0, A, true, false), Admission::Accept);
        door.accepted(A, true);
        door.accepted(A, true);
        // At its quota, an unvalidated Initial from A is retried, never
        // refused (it may not be A); a validated one is refused.
        assert_eq!(door.admit(t0, A, false, false), Admission::Retry);
        let refused = Admission::Refuse(Refusal::PerAddress);
        assert_eq!(door.admit(t0, A, true, false), refused);
    }

    #[test]
    fn a_full_endpoint_refuses_before_anything_else() {
        let t0 = Instant::now();
        let mut door = FrontDoor::new(1000, 1000, 0, t0);
        let refused = Admission::Refuse(Refusal::Full);
        assert_eq!(door.admit(t0, A, false, true), refused);
    }
}
