//! The server's throttle hints (`throttle_ms` of a produce response,
//! docs/FLOW_CONTROL.md), honoured as the SDK's `Producer` does: after a
//! response with a hint, that partition's next send waits that long, at
//! most [`THROTTLE_MAX`].
//!
//! The pacer thread owns a [`Gate`]: the partitions that have no batch in
//! flight, each with the moment from which it may send again. No clock is
//! read here; the caller passes the time in, so the rules are tested
//! without a server that sends hints.
//!
//! In open loop the wait is not hidden: a message's latency counts from
//! the time it was due, so a message delayed by a hint carries the delay.
//! In closed loop a batch is made when it can go, after the wait, and its
//! latency is the service time as before; the wait shows as lower
//! throughput and in the hint counts.

use std::time::Duration;

/// Longest hint honoured (the server caps its hints at the same bound).
pub const THROTTLE_MAX: Duration = Duration::from_secs(1);

/// How long a hint makes the partition wait.
pub fn honoured(hint: Duration) -> Duration {
    hint.min(THROTTLE_MAX)
}

/// When a partition whose response came at `ack_ns` with `hint` may send
/// its next batch.
pub fn not_before_ns(ack_ns: u64, hint: Duration) -> u64 {
    // At most THROTTLE_MAX, so it fits in u64 nanoseconds.
    ack_ns.saturating_add(honoured(hint).as_nanos() as u64)
}

/// What one produce response's hint means for its partition and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// The partition's next send is not before this.
    pub not_before_ns: u64,
    /// The wait, as counted in the report (whole ms: the wire's unit).
    pub honoured_ms: u64,
}

/// The hint of a response that came at `ack_ns`; `None` when there is
/// none (zero), which is neither waited for nor counted.
pub fn hint(ack_ns: u64, throttle: Duration) -> Option<Hint> {
    (!throttle.is_zero()).then(|| Hint {
        not_before_ns: not_before_ns(ack_ns, throttle),
        honoured_ms: honoured(throttle).as_millis() as u64,
    })
}

/// The partitions (by slot) free to take a batch, each from a moment on.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Free slots in the order they were freed, with the nanosecond (on the
    /// run's clock) before which each may not send. At most one entry per
    /// slot, so bounded by the producer's partition count.
    free: Vec<(usize, u64)>,
}

impl Gate {
    /// `slots` partitions, all free now.
    pub fn new(slots: usize) -> Gate {
        Gate {
            free: (0..slots).map(|slot| (slot, 0)).collect(),
        }
    }

    /// `slot` has its answer: it may send again from `not_before_ns`.
    pub fn release(&mut self, slot: usize, not_before_ns: u64) {
        debug_assert!(
            self.free.iter().all(|&(s, _)| s != slot),
            "slot {slot} released twice"
        );
        self.free.push((slot, not_before_ns));
    }

    /// Takes the free slot that was freed first among those that may send
    /// at `now_ns` (so one throttled partition does not hold up the
    /// others).
    pub fn take_ready(&mut self, now_ns: u64) -> Option<usize> {
        let i = self.free.iter().position(|&(_, at)| at <= now_ns)?;
        Some(self.free.remove(i).0)
    }

    /// When the next free slot may send, if any slot is free.
    pub fn next_ready_ns(&self) -> Option<u64> {
        self.free.iter().map(|&(_, at)| at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_hint_delays_the_partitions_next_send_by_its_length() {
        assert_eq!(not_before_ns(5 * MS, Duration::ZERO), 5 * MS);
        assert_eq!(not_before_ns(5 * MS, Duration::from_millis(30)), 35 * MS);
    }

    #[test]
    fn a_hint_is_honoured_for_at_most_one_second() {
        assert_eq!(honoured(Duration::from_secs(7)), THROTTLE_MAX);
        assert_eq!(not_before_ns(0, Duration::from_secs(60)), 1_000 * MS);
        assert_eq!(not_before_ns(u64::MAX - 1, THROTTLE_MAX), u64::MAX);
    }

    #[test]
    fn only_non_zero_hints_are_counted_and_each_at_most_one_second() {
        assert_eq!(hint(5 * MS, Duration::ZERO), None);
        assert_eq!(
            hint(5 * MS, Duration::from_millis(12)),
            Some(Hint {
                not_before_ns: 17 * MS,
                honoured_ms: 12
            })
        );
        assert_eq!(
            hint(0, Duration::from_secs(30)),
            Some(Hint {
                not_before_ns: 1_000 * MS,
                honoured_ms: 1_000
            })
        );
        let total: u64 = [0, 3, 0, 2_000, 7]
            .into_iter()
            .filter_map(|ms| hint(0, Duration::from_millis(ms)))
            .map(|h| h.honoured_ms)
            .sum();
        assert_eq!(total, 3 + 1_000 + 7);
    }

    #[test]
    fn a_throttled_partition_does_not_send_before_its_time() {
        let mut gate = Gate::new(1);
        assert_eq!(gate.take_ready(0), Some(0));
        assert_eq!(gate.take_ready(0), None, "in flight");
        gate.release(0, not_before_ns(10 * MS, Duration::from_millis(20)));
        assert_eq!(gate.next_ready_ns(), Some(30 * MS));
        assert_eq!(gate.take_ready(29 * MS), None);
        assert_eq!(gate.take_ready(30 * MS), Some(0));
        assert_eq!(gate.next_ready_ns(), None);
    }

    #[test]
    fn other_partitions_go_while_one_is_throttled() {
        let mut gate = Gate::new(0);
        gate.release(2, 50 * MS); // throttled, freed first
        gate.release(0, 10 * MS); // answered without a hint
        gate.release(1, 10 * MS);
        assert_eq!(gate.take_ready(10 * MS), Some(0));
        assert_eq!(gate.take_ready(10 * MS), Some(1));
        assert_eq!(gate.take_ready(10 * MS), None);
        assert_eq!(gate.next_ready_ns(), Some(50 * MS));
        assert_eq!(gate.take_ready(50 * MS), Some(2));
    }

    #[test]
    fn unthrottled_slots_go_in_the_order_they_were_freed() {
        let mut gate = Gate::new(3);
        assert_eq!(gate.take_ready(0), Some(0));
        assert_eq!(gate.take_ready(0), Some(1));
        gate.release(1, 0);
        gate.release(0, 0);
        assert_eq!(gate.take_ready(0), Some(2));
        assert_eq!(gate.take_ready(0), Some(1));
        assert_eq!(gate.take_ready(0), Some(0));
    }
}
