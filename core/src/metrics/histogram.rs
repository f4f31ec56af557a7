//! A latency histogram with fixed buckets, counted in plain `Cell`s by the
//! one thread that owns it.

use std::{cell::Cell, time::Duration};

/// Upper bounds of the latency buckets, in microseconds (100 µs to 10 s):
/// fixed so that series of every shard and every release add up. A last,
/// open bucket (`+Inf`) takes the rest. From 1 ms to 100 ms, where produce
/// latency and `flow.latency_target` live, the steps are 1-1.5-2-3-5-7.5
/// per decade, so a p99 read off them tells 20 ms from 25 ms; outside
/// that band 1-2.5-5.
pub const LATENCY_BUCKETS_US: [u64; 22] = [
    100, 250, 500, 1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000,
    50_000, 75_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];
/// Buckets counted: the bounded ones and the open one.
pub const LATENCY_SLOTS: usize = LATENCY_BUCKETS_US.len() + 1;

/// A histogram's values at one moment. `SLOTS` is its number of bounds
/// plus one (the open bucket); the bounds themselves are the renderer's to
/// know: [`LATENCY_BUCKETS_US`] by default, the log's own for fdatasync
/// latency (`tidegate_queue::LogStats::SYNC_LATENCY_BOUNDS_US`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramSnapshot<const SLOTS: usize = LATENCY_SLOTS> {
    /// Observations per bucket (not cumulative); slot `i` holds those above
    /// bound `i - 1` and at most bound `i`, the last slot those above the
    /// largest bound.
    pub counts: [u64; SLOTS],
    /// Sum of all observations, in nanoseconds.
    pub sum_ns: u64,
}

impl<const SLOTS: usize> Default for HistogramSnapshot<SLOTS> {
    fn default() -> Self {
        HistogramSnapshot {
            counts: [0; SLOTS],
            sum_ns: 0,
        }
    }
}

impl<const SLOTS: usize> HistogramSnapshot<SLOTS> {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The histogram its owning thread counts into.
pub(crate) struct LocalHistogram {
    counts: [Cell<u64>; LATENCY_SLOTS],
    sum_ns: Cell<u64>,
}

impl LocalHistogram {
    pub(crate) const fn new() -> Self {
        LocalHistogram {
            counts: [const { Cell::new(0) }; LATENCY_SLOTS],
            sum_ns: Cell::new(0),
        }
    }

    pub(crate) fn observe(&self, elapsed: Duration) {
        let slot = slot_of(elapsed);
        let cell = &self.counts[slot];
        cell.set(cell.get().wrapping_add(1));
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.set(self.sum_ns.get().saturating_add(ns));
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: std::array::from_fn(|i| self.counts[i].get()),
            sum_ns: self.sum_ns.get(),
        }
    }
}

/// The bucket of an observation: the first bound it does not exceed
/// (Prometheus `le`), or the open bucket.
fn slot_of(elapsed: Duration) -> usize {
    let us = elapsed.as_micros();
    // Sub-microsecond parts count as the next microsecond, so a value
    // just above a bound never lands in that bound's bucket.
    let us = if elapsed.subsec_nanos() % 1_000 == 0 {
        us
    } else {
        us + 1
    };
    LATENCY_BUCKETS_US.partition_point(|&bound| u128::from(bound) < us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        let h = LocalHistogram::new();
        h.observe(Duration::from_micros(100)); // le 0.0001
        h.observe(Duration::from_nanos(100_001)); // just above: le 0.00025
        h.observe(Duration::from_micros(7_000)); // le 0.0075
        h.observe(Duration::from_secs(60)); // +Inf
        let s = h.snapshot();
        assert_eq!(s.counts[0], 1);
        assert_eq!(s.counts[1], 1);
        assert_eq!(s.counts[8], 1);
        assert_eq!(s.counts[LATENCY_SLOTS - 1], 1);
        assert_eq!(s.count(), 4);
        assert_eq!(s.sum_ns, 100_000 + 100_001 + 7_000_000 + 60_000_000_000);
    }

    #[test]
    fn bucket_bounds_increase() {
        assert!(LATENCY_BUCKETS_US.windows(2).all(|w| w[0] < w[1]));
    }
}
