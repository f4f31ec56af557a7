//! The open-loop schedule: when each message is meant to be sent.
//!
//! Gil Tene's rule against coordinated omission: a load generator that
//! waits for the server before sending the next message measures only the
//! messages the server let it send. Here message `i` of a producer is due
//! at `start + i / rate`, fixed before the run; its latency counts from
//! that time, so a stall of the server (or of loadgen) shows up in full in
//! every message it delayed.

use std::time::Duration;

/// A producer's share of the load: messages due at a constant rate.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Nanoseconds since the run's epoch when message 0 is due.
    start_ns: u64,
    /// Nanoseconds between messages, as a float so rates that do not
    /// divide a second stay exact over the run.
    interval_ns: f64,
}

impl Schedule {
    /// `rate` messages per second (positive and finite), starting at
    /// `start_ns`.
    pub fn new(start_ns: u64, rate: f64) -> Schedule {
        Schedule {
            start_ns,
            interval_ns: 1e9 / rate,
        }
    }

    /// When message `seq` is due.
    pub fn due_ns(&self, seq: u64) -> u64 {
        self.start_ns + (seq as f64 * self.interval_ns) as u64
    }

    /// How many messages are due by `now_ns` (messages `0..n`).
    pub fn due_by(&self, now_ns: u64) -> u64 {
        if now_ns < self.start_ns {
            return 0;
        }
        ((now_ns - self.start_ns) as f64 / self.interval_ns) as u64 + 1
    }

    /// When the next batch starting at `seq` should go: when `batch`
    /// messages are due, or `linger` after its first one, whichever is
    /// first.
    pub fn send_at_ns(&self, seq: u64, batch: u32, linger: Duration) -> u64 {
        let full = self.due_ns(seq + u64::from(batch.max(1)) - 1);
        let lingered = self.due_ns(seq).saturating_add(linger.as_nanos() as u64);
        full.min(lingered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_follow_the_rate() {
        let s = Schedule::new(1_000, 1_000.0); // one per millisecond
        assert_eq!(s.due_ns(0), 1_000);
        assert_eq!(s.due_ns(3), 3_001_000);
        assert_eq!(s.due_by(0), 0);
        assert_eq!(s.due_by(1_000), 1);
        assert_eq!(s.due_by(3_000_999), 3);
        assert_eq!(s.due_by(3_001_000), 4);
    }

    #[test]
    fn odd_rates_do_not_drift() {
        let s = Schedule::new(0, 3.0);
        // 3 per second: message 3,000,000 is due at 1,000,000 s.
        let due = s.due_ns(3_000_000);
        assert!(
            (due as i128 - 1_000_000_000_000_000).abs() < 1_000_000,
            "{due}"
        );
    }

    #[test]
    fn batches_go_when_full_or_lingered() {
        let s = Schedule::new(0, 1_000_000.0); // one per microsecond
                                               // 100 messages fill in 99 µs, before a 1 ms linger.
        assert_eq!(s.send_at_ns(0, 100, Duration::from_millis(1)), 99_000);
        // A 10 µs linger sends first.
        assert_eq!(s.send_at_ns(0, 100, Duration::from_micros(10)), 10_000);
    }
}
