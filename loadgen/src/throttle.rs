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

/// The partitions (by slot) free to take a batch, and from when each may
/// send. A slot may have up to `depth` batches in flight: 1, or more for an
/// idempotent producer, whose batches the server puts back in sequence
/// order (as the SDK's `Producer` pipelines them).
#[derive(Debug, Clone)]
pub struct Gate {
    /// Free places, by slot, in the order they were freed. At most `depth`
    /// per slot, so bounded by the partitions times the depth.
    free: Vec<usize>,
    /// Per slot, the nanosecond (on the run's clock) before which it may
    /// not send: a hint pauses the whole partition, whichever of its
    /// batches carried it, as the SDK does.
    paused_until: Vec<u64>,
    depth: usize,
}

impl Gate {
    /// `slots` partitions with `depth` places each, all free now.
    pub fn new(slots: usize, depth: usize) -> Gate {
        let depth = depth.max(1);
        Gate {
            // Slot by slot, round after round: a fresh producer spreads its
            // first batches over its partitions before it doubles up.
            free: (0..depth).flat_map(|_| 0..slots).collect(),
            paused_until: vec![0; slots],
            depth,
        }
    }

    /// A batch of `slot` has its answer: the slot may send again, not
    /// before `not_before_ns`.
    pub fn release(&mut self, slot: usize, not_before_ns: u64) {
        debug_assert!(
            self.free.iter().filter(|&&s| s == slot).count() < self.depth,
            "slot {slot} released more often than taken"
        );
        if let Some(until) = self.paused_until.get_mut(slot) {
            *until = (*until).max(not_before_ns);
        }
        self.free.push(slot);
    }

    fn until(&self, slot: usize) -> u64 {
        self.paused_until.get(slot).copied().unwrap_or(0)
    }

    /// Takes the free place that was freed first among the slots that may
    /// send at `now_ns` (so one throttled partition does not hold up the
    /// others).
    pub fn take_ready(&mut self, now_ns: u64) -> Option<usize> {
        let i = self.free.iter().position(|&s| self.until(s) <= now_ns)?;
        Some(self.free.remove(i))
    }

    /// When the next free place may send, if any is free.
    pub fn next_ready_ns(&self) -> Option<u64> {
        self.free.iter().map(|&s| self.until(s)).min()
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
        let mut gate = Gate::new(1, 1);
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
        let mut gate = Gate::new(3, 1);
        for slot in 0..3 {
            assert_eq!(gate.take_ready(0), Some(slot));
        }
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
        let mut gate = Gate::new(3, 1);
        assert_eq!(gate.take_ready(0), Some(0));
        assert_eq!(gate.take_ready(0), Some(1));
        gate.release(1, 0);
        gate.release(0, 0);
        assert_eq!(gate.take_ready(0), Some(2));
        assert_eq!(gate.take_ready(0), Some(1));
        assert_eq!(gate.take_ready(0), Some(0));
    }

    #[test]
    fn an_idempotent_producer_keeps_up_to_depth_batches_of_a_partition_in_flight() {
        let mut gate = Gate::new(2, 3);
        // Spread first, then doubled up: 0, 1, 0, 1, 0, 1.
        let taken: Vec<_> = std::iter::from_fn(|| gate.take_ready(0)).collect();
        assert_eq!(taken, [0, 1, 0, 1, 0, 1]);
        gate.release(1, 0);
        assert_eq!(gate.take_ready(0), Some(1));
        assert_eq!(gate.take_ready(0), None, "three of each in flight");
    }

    #[test]
    fn a_hint_on_one_batch_pauses_every_place_of_its_partition() {
        let mut gate = Gate::new(2, 2);
        while gate.take_ready(0).is_some() {}
        gate.release(0, 0);
        gate.release(0, 40 * MS); // a hint on the second batch
        gate.release(1, 0);
        // Slot 0's place freed before the hint waits too, and a later
        // answer without a hint does not lift the pause.
        assert_eq!(gate.take_ready(10 * MS), Some(1));
        assert_eq!(gate.take_ready(10 * MS), None);
        assert_eq!(gate.next_ready_ns(), Some(40 * MS));
        assert_eq!(gate.take_ready(40 * MS), Some(0));
        assert_eq!(gate.take_ready(40 * MS), Some(0));
    }
}
