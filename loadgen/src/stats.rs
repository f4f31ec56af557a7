//! Latency histograms (nanoseconds, HdrHistogram) and the counters the
//! progress line reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;

use crate::timeline::Timeline;

/// Highest latency recorded exactly: one hour. Larger values are clamped
/// to it (a run that long has failed anyway) rather than dropped.
const HIGHEST_NS: u64 = 3_600_000_000_000;

/// A latency histogram in nanoseconds with three significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    pub fn new() -> Latency {
        // 1 ns ..= 1 h at 3 digits is a few hundred KiB: fine per task.
        let histogram = match Histogram::new_with_bounds(1, HIGHEST_NS, 3) {
            Ok(h) => h,
            // The bounds above are constants that HdrHistogram accepts.
            Err(_) => unreachable!("valid histogram bounds"),
        };
        Latency { histogram }
    }

    pub fn record(&mut self, ns: u64) {
        self.record_n(ns, 1);
    }

    /// Records `count` samples of `ns` (clamped into range).
    pub fn record_n(&mut self, ns: u64, count: u64) {
        // Saturating: in-range values never fail.
        let _ = self
            .histogram
            .record_n(ns.clamp(1, HIGHEST_NS), count.max(1));
    }

    pub fn add(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn clear(&mut self) {
        self.histogram.reset();
    }
}

/// What the tasks of a run share: counters (lock-free) and histograms that
/// tasks merge their local ones into once per batch or fetch, so the lock
/// is taken thousands of times per second, not millions.
#[derive(Debug)]
pub struct Shared {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub acked_bytes: AtomicU64,
    pub consumed: AtomicU64,
    pub consumed_bytes: AtomicU64,
    pub end_to_end: Mutex<Latency>,
    /// One per producer, by id.
    pub producers: Vec<ProducerStats>,
    /// The run second by second.
    pub timeline: Mutex<Timeline>,
}

/// What one producer measured: the run's produce-to-ack histogram is the
/// sum of these (each ack is recorded once).
#[derive(Debug, Default)]
pub struct ProducerStats {
    /// Messages acknowledged within the measured window.
    pub acked_measured: AtomicU64,
    /// Produce-to-ack latency of messages due (or made) in the measured
    /// window.
    pub produce_ack: Mutex<Latency>,
    /// Produce responses with a non-zero throttle hint (whole run).
    pub throttle_hints: AtomicU64,
    /// Their hints as honoured (each at most 1 s), ms.
    pub throttled_ms: AtomicU64,
}

impl Shared {
    /// Counters for `producers` producers and a timeline of `[0, end_ns)`.
    pub fn new(producers: u32, end_ns: u64) -> Shared {
        Shared {
            sent: AtomicU64::default(),
            acked: AtomicU64::default(),
            acked_bytes: AtomicU64::default(),
            consumed: AtomicU64::default(),
            consumed_bytes: AtomicU64::default(),
            end_to_end: Mutex::default(),
            producers: (0..producers).map(|_| ProducerStats::default()).collect(),
            timeline: Mutex::new(Timeline::new(end_ns)),
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Merges `local` into `into` and clears it.
    pub fn merge(into: &Mutex<Latency>, local: &mut Latency) {
        if local.count() == 0 {
            return;
        }
        if let Ok(mut h) = into.lock() {
            h.add(local);
        }
        local.clear();
    }

    /// A copy of a shared histogram (for the progress line and the report).
    pub fn snapshot(of: &Mutex<Latency>) -> Latency {
        of.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// The produce-to-ack histogram of all producers.
    pub fn produce_ack(&self) -> Latency {
        let mut all = Latency::new();
        for p in &self.producers {
            if let Ok(h) = p.produce_ack.lock() {
                all.add(&h);
            }
        }
        all
    }

    /// Throttle hints received and their honoured total (ms), all
    /// producers.
    pub fn throttled(&self) -> (u64, u64) {
        self.producers.iter().fold((0, 0), |(hints, ms), p| {
            (
                hints + Shared::get(&p.throttle_hints),
                ms + Shared::get(&p.throttled_ms),
            )
        })
    }

    /// Counts `msgs` consumed at `at_ns`, the longest of them
    /// `latency_max_ns` end to end (0: not known), in the totals and the
    /// timeline.
    pub fn consumed(&self, at_ns: u64, msgs: u64, bytes: u64, latency_max_ns: u64) {
        if msgs == 0 {
            return;
        }
        Shared::add(&self.consumed, msgs);
        Shared::add(&self.consumed_bytes, bytes);
        if let Ok(mut t) = self.timeline.lock() {
            t.consumed(at_ns, msgs, latency_max_ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_clamps() {
        let mut l = Latency::new();
        l.record(0);
        l.record_n(5_000, 3);
        l.record(u64::MAX);
        assert_eq!(l.count(), 5);
        assert_eq!(l.histogram().min(), 1);
        assert!(l.histogram().max() >= HIGHEST_NS);
        let p50 = l.histogram().value_at_quantile(0.5);
        assert!((4_990..=5_010).contains(&p50), "{p50}");
    }

    #[test]
    fn merge_moves_samples() {
        let shared = Shared::new(2, 0);
        let mut local = Latency::new();
        local.record(1_000);
        Shared::merge(&shared.producers[1].produce_ack, &mut local);
        assert_eq!(local.count(), 0);
        assert_eq!(
            Shared::snapshot(&shared.producers[1].produce_ack).count(),
            1
        );
        assert_eq!(shared.produce_ack().count(), 1);
    }

    #[test]
    fn throttle_totals_add_up_over_producers() {
        let shared = Shared::new(3, 0);
        assert_eq!(shared.throttled(), (0, 0));
        Shared::add(&shared.producers[0].throttle_hints, 2);
        Shared::add(&shared.producers[0].throttled_ms, 30);
        Shared::add(&shared.producers[2].throttle_hints, 1);
        Shared::add(&shared.producers[2].throttled_ms, 1_000);
        assert_eq!(shared.throttled(), (3, 1_030));
    }
}
