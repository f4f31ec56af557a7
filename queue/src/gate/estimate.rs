//! How much the disk may hold: the write gate's limit, from what the
//! disk's writes took.
//!
//! A write granted with `depth` bytes in flight (its own included) that
//! completes after `latency` tells how fast the disk drains its queue: on a
//! disk that serves its queue in order, `depth / latency` is its throughput.
//! On one that serves many writes at once (NVMe), latency hardly grows with
//! depth and the figure grows with it, which only says the gate is far
//! from limiting. Little's law then gives the bytes that make a queue of
//! `target`: `throughput × target`.

use std::time::{Duration, Instant};

/// The limit's law; see the module documentation.
#[derive(Debug)]
pub(crate) struct Estimator {
    target: Duration,
    interval: Duration,
    started: Instant,
    depth_bytes: u128,
    latency_ns: u128,
}

impl Estimator {
    pub(crate) fn new(target: Duration, interval: Duration, now: Instant) -> Self {
        Estimator {
            target,
            interval,
            started: now,
            depth_bytes: 0,
            latency_ns: 0,
        }
    }

    /// Adds one completed write. Returns the new limit, in bytes, once an
    /// interval has passed with at least one write in it.
    pub(crate) fn sample(&mut self, depth: u64, latency: Duration, now: Instant) -> Option<u64> {
        self.depth_bytes += u128::from(depth);
        // A write cannot take no time; the floor keeps the ratio finite.
        self.latency_ns += latency.as_nanos().max(1);
        if now.saturating_duration_since(self.started) < self.interval {
            return None;
        }
        // The weighted mean of the interval's depth / latency: a few long
        // writes count for as long as they took.
        let limit = self.depth_bytes * self.target.as_nanos() / self.latency_ns;
        self.started = now;
        self.depth_bytes = 0;
        self.latency_ns = 0;
        Some(u64::try_from(limit).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_disk_that_serves_in_order_gets_its_throughput_times_the_target() {
        let t0 = Instant::now();
        let mut e = Estimator::new(2 * MS, 100 * MS, t0);
        // 50 MB/s: 500 KB ahead takes 10 ms.
        assert_eq!(e.sample(500_000, 10 * MS, t0 + 50 * MS), None);
        let limit = e.sample(250_000, 5 * MS, t0 + 100 * MS);
        assert_eq!(limit, Some(100_000));
    }

    #[test]
    fn each_interval_starts_afresh() {
        let t0 = Instant::now();
        let mut e = Estimator::new(2 * MS, 100 * MS, t0);
        assert_eq!(e.sample(500_000, 10 * MS, t0 + 100 * MS), Some(100_000));
        // The disk got ten times faster.
        assert_eq!(e.sample(500_000, MS, t0 + 150 * MS), None);
        assert_eq!(e.sample(500_000, MS, t0 + 200 * MS), Some(1_000_000));
    }

    #[test]
    fn a_write_that_took_no_time_does_not_divide_by_zero() {
        let t0 = Instant::now();
        let mut e = Estimator::new(2 * MS, 100 * MS, t0);
        let limit = e.sample(u64::MAX, Duration::ZERO, t0 + 100 * MS);
        assert_eq!(limit, Some(u64::MAX));
    }
}
