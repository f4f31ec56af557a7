//! The run second by second: what was sent, acknowledged and consumed in
//! each second since sending started, the produce-to-ack percentiles of
//! the acknowledgements of that second, and the throttle hints received.
//!
//! Events are put in the second they happened in (the caller passes the
//! time on the run's clock). The timeline covers the sending period, the
//! warmup included (`[0, end)`); the answers that come after the end are in
//! the run's totals only. Counts are kept for every second; latency
//! histograms only for the last [`LIVE_SECONDS`] seconds that had
//! acknowledgements: older ones are reduced to their percentiles, so memory
//! does not grow with the length of the run beyond a few counters per
//! second.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::stats::Latency;

/// Length of a sample.
pub const SECOND_NS: u64 = 1_000_000_000;
/// Seconds whose latency histograms are kept open for late acks (an ack
/// is recorded a little after its clock reading, by another thread).
pub const LIVE_SECONDS: usize = 3;
/// The timeline's bound: seconds past it are not sampled (a day).
pub const SECONDS_MAX: usize = 86_400;

/// One second of the run, as the report gives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Start of the second, seconds since sending started (the warmup is
    /// `config.warmup` long).
    pub t_s: f64,
    /// Length of the sample: 1 s, or less for the last one.
    pub span_s: f64,
    /// Messages handed to the server (sent) in this second.
    pub produced_msgs_per_s: f64,
    /// Payload megabytes (10^6) sent in this second.
    pub produced_mb_per_s: f64,
    /// Messages acknowledged in this second.
    pub acked_msgs_per_s: f64,
    /// Distinct messages consumed in this second.
    pub consumed_msgs_per_s: f64,
    /// Produce-to-ack latency of the messages acknowledged in this second
    /// (same start as `latency_us.produce_ack`); null without any.
    pub produce_ack_p50_us: Option<f64>,
    pub produce_ack_p99_us: Option<f64>,
    /// Produce responses with a non-zero throttle hint.
    pub throttle_hints: u64,
    /// Sum of those hints as honoured (each at most 1 s), ms.
    pub throttled_ms: u64,
    /// The longest end-to-end latency of the messages consumed in this
    /// second: where the consumer fell behind; null without any.
    #[serde(default)]
    pub end_to_end_max_us: Option<f64>,
}

/// Counts of one second, and its percentiles once its histogram is closed.
#[derive(Debug, Clone, Copy, Default)]
struct Second {
    sent: u64,
    sent_bytes: u64,
    acked: u64,
    consumed: u64,
    /// Longest end-to-end latency consumed, ns (0: none known).
    consumed_latency_max_ns: u64,
    throttle_hints: u64,
    throttled_ms: u64,
    /// p50 and p99 in ns, once closed (none when it had no latencies).
    percentiles_ns: Option<(u64, u64)>,
}

/// The per-second record of a run (see the module's doc).
#[derive(Debug)]
pub struct Timeline {
    end_ns: u64,
    seconds: Vec<Second>,
    /// Open histograms, by second, ascending; at most `LIVE_SECONDS`.
    live: VecDeque<(usize, Latency)>,
    /// Histograms of closed seconds, cleared, to reuse.
    spare: Vec<Latency>,
    /// Seconds before this one are closed: their latencies are final.
    closed_before: usize,
}

impl Timeline {
    /// A timeline of `[0, end_ns)` (at most [`SECONDS_MAX`] seconds).
    pub fn new(end_ns: u64) -> Timeline {
        let count = end_ns.div_ceil(SECOND_NS).min(SECONDS_MAX as u64) as usize;
        Timeline {
            end_ns,
            seconds: vec![Second::default(); count],
            live: VecDeque::with_capacity(LIVE_SECONDS + 1),
            spare: Vec::new(),
            closed_before: 0,
        }
    }

    fn second(&mut self, at_ns: u64) -> Option<(usize, &mut Second)> {
        if at_ns >= self.end_ns {
            return None;
        }
        let index = (at_ns / SECOND_NS) as usize;
        self.seconds.get_mut(index).map(|s| (index, s))
    }

    pub fn sent(&mut self, at_ns: u64, msgs: u64, bytes: u64) {
        if let Some((_, s)) = self.second(at_ns) {
            s.sent += msgs;
            s.sent_bytes += bytes;
        }
    }

    /// `msgs` consumed at `at_ns`, the longest of them `latency_max_ns`
    /// from production to consumption (0 when not known).
    pub fn consumed(&mut self, at_ns: u64, msgs: u64, latency_max_ns: u64) {
        if let Some((_, s)) = self.second(at_ns) {
            s.consumed += msgs;
            s.consumed_latency_max_ns = s.consumed_latency_max_ns.max(latency_max_ns);
        }
    }

    /// A response at `at_ns` carried a hint honoured for `honoured_ms`.
    pub fn throttled(&mut self, at_ns: u64, honoured_ms: u64) {
        if let Some((_, s)) = self.second(at_ns) {
            s.throttle_hints += 1;
            s.throttled_ms += honoured_ms;
        }
    }

    /// Counts `msgs` acknowledged at `at_ns` and gives the histogram their
    /// latencies go into: `None` outside the timeline, or for a second
    /// already closed (an ack that was recorded very late).
    pub fn acked(&mut self, at_ns: u64, msgs: u64) -> Option<&mut Latency> {
        let (index, second) = self.second(at_ns)?;
        second.acked += msgs;
        if index < self.closed_before {
            return None;
        }
        let position = match self.live.iter().position(|(i, _)| *i >= index) {
            Some(p) if self.live[p].0 == index => p,
            found => {
                let p = found.unwrap_or(self.live.len());
                let histogram = self.spare.pop().unwrap_or_default();
                self.live.insert(p, (index, histogram));
                p
            }
        };
        if self.live.len() <= LIVE_SECONDS {
            return self.live.get_mut(position).map(|(_, h)| h);
        }
        // One too many: close the oldest, which may be the one just opened.
        self.close_oldest();
        match position {
            0 => None,
            p => self.live.get_mut(p - 1).map(|(_, h)| h),
        }
    }

    fn close_oldest(&mut self) {
        let Some((index, mut histogram)) = self.live.pop_front() else {
            return;
        };
        self.seconds[index].percentiles_ns = percentiles_ns(&histogram);
        self.closed_before = index + 1;
        histogram.clear();
        self.spare.push(histogram);
    }

    /// The samples, one per second from the start.
    pub fn samples(&self) -> Vec<Sample> {
        let mut samples = Vec::with_capacity(self.seconds.len());
        for (index, s) in self.seconds.iter().enumerate() {
            let start_ns = index as u64 * SECOND_NS;
            let span_ns = (self.end_ns - start_ns).min(SECOND_NS);
            let span_s = span_ns as f64 / 1e9;
            let per_s = |n: u64| n as f64 / span_s;
            let percentiles = match self.live.iter().find(|(i, _)| *i == index) {
                Some((_, histogram)) => percentiles_ns(histogram),
                None => s.percentiles_ns,
            };
            let us = |ns: u64| ns as f64 / 1000.0;
            samples.push(Sample {
                t_s: start_ns as f64 / 1e9,
                span_s,
                produced_msgs_per_s: per_s(s.sent),
                produced_mb_per_s: per_s(s.sent_bytes) / 1e6,
                acked_msgs_per_s: per_s(s.acked),
                consumed_msgs_per_s: per_s(s.consumed),
                produce_ack_p50_us: percentiles.map(|(p50, _)| us(p50)),
                produce_ack_p99_us: percentiles.map(|(_, p99)| us(p99)),
                throttle_hints: s.throttle_hints,
                throttled_ms: s.throttled_ms,
                end_to_end_max_us: (s.consumed_latency_max_ns > 0)
                    .then(|| us(s.consumed_latency_max_ns)),
            });
        }
        samples
    }
}

fn percentiles_ns(latency: &Latency) -> Option<(u64, u64)> {
    let h = latency.histogram();
    (!h.is_empty()).then(|| (h.value_at_quantile(0.5), h.value_at_quantile(0.99)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ack(t: &mut Timeline, at_ns: u64, latency_ns: u64, msgs: u64) -> bool {
        match t.acked(at_ns, msgs) {
            Some(h) => {
                h.record_n(latency_ns, msgs);
                true
            }
            None => false,
        }
    }

    #[test]
    fn events_fall_in_the_second_they_happened_in() {
        let mut t = Timeline::new(2_500 * MS);
        t.sent(0, 100, 10_000);
        t.sent(999 * MS, 100, 10_000);
        t.sent(1_000 * MS, 50, 5_000);
        t.consumed(1_999 * MS, 70, 3 * MS);
        t.consumed(1_500 * MS, 10, 40 * MS);
        t.consumed(1_600 * MS, 10, 0);
        t.throttled(2_100 * MS, 40);
        t.throttled(2_200 * MS, 1_000);
        let s = t.samples();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].t_s, 0.0);
        assert_eq!(s[0].produced_msgs_per_s, 200.0);
        assert_eq!(s[0].produced_mb_per_s, 0.02);
        assert_eq!(s[1].t_s, 1.0);
        assert_eq!(s[1].produced_msgs_per_s, 50.0);
        assert_eq!(s[1].consumed_msgs_per_s, 90.0);
        assert_eq!(s[1].end_to_end_max_us, Some(40_000.0), "the longest");
        assert_eq!(s[0].end_to_end_max_us, None, "nothing consumed");
        assert_eq!(s[2].throttle_hints, 2);
        assert_eq!(s[2].throttled_ms, 1_040);
        assert_eq!(s[0].throttle_hints, 0);
    }

    #[test]
    fn the_last_partial_second_is_a_rate_over_its_own_length() {
        let mut t = Timeline::new(2_500 * MS);
        t.sent(2_100 * MS, 100, 0);
        let last = t.samples().pop().unwrap_or_default();
        assert_eq!(last.span_s, 0.5);
        assert_eq!(last.produced_msgs_per_s, 200.0);
    }

    #[test]
    fn events_past_the_end_are_not_sampled() {
        let mut t = Timeline::new(1_000 * MS);
        t.sent(1_000 * MS, 5, 5);
        assert!(!ack(&mut t, 5_000 * MS, 1_000, 5));
        let s = t.samples();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].produced_msgs_per_s, 0.0);
        assert_eq!(s[0].acked_msgs_per_s, 0.0);
        assert_eq!(s[0].produce_ack_p99_us, None);
        assert!(Timeline::new(0).samples().is_empty());
    }

    #[test]
    fn ack_percentiles_are_of_that_seconds_acks_only() {
        let mut t = Timeline::new(3_000 * MS);
        assert!(ack(&mut t, 100 * MS, 1_000_000, 99)); // 1 ms
        assert!(ack(&mut t, 200 * MS, 50_000_000, 1)); // 50 ms
        assert!(ack(&mut t, 1_500 * MS, 2_000_000, 10)); // 2 ms
        let s = t.samples();
        assert_eq!(s[0].acked_msgs_per_s, 100.0);
        let p50 = s[0].produce_ack_p50_us.unwrap_or_default();
        let p99 = s[0].produce_ack_p99_us.unwrap_or_default();
        assert!((999.0..=1_001.0).contains(&p50), "{p50}");
        assert!((999.0..=1_001.0).contains(&p99), "{p99}");
        let p50 = s[1].produce_ack_p50_us.unwrap_or_default();
        assert!((1_998.0..=2_002.0).contains(&p50), "{p50}");
        assert_eq!(s[2].produce_ack_p50_us, None);
    }

    #[test]
    fn old_seconds_close_and_keep_their_percentiles() {
        let mut t = Timeline::new(10_000 * MS);
        for second in 0..10u64 {
            assert!(ack(&mut t, second * SECOND_NS, (second + 1) * MS, 1));
        }
        assert_eq!(t.live.len(), LIVE_SECONDS);
        assert_eq!(t.closed_before, 10 - LIVE_SECONDS);
        // Histograms are reused, not allocated per second.
        assert!(t.spare.len() <= 1);
        let s = t.samples();
        for (second, sample) in s.iter().enumerate() {
            let p99 = sample.produce_ack_p99_us.unwrap_or_default();
            let want = (second as f64 + 1.0) * 1_000.0;
            assert!((p99 - want).abs() <= want / 500.0, "{second}: {p99}");
        }
        // An ack for a closed second is counted, its latency is not.
        assert!(!ack(&mut t, 0, 99 * MS, 1));
        assert_eq!(t.samples()[0].acked_msgs_per_s, 2.0);
        assert_eq!(t.samples()[0].produce_ack_p99_us, s[0].produce_ack_p99_us);
    }

    #[test]
    fn a_late_ack_for_a_second_still_open_is_kept() {
        let mut t = Timeline::new(10_000 * MS);
        assert!(ack(&mut t, 4_000 * MS, MS, 1));
        assert!(ack(&mut t, 2_000 * MS, 5 * MS, 1)); // out of order, in time
        assert!(ack(&mut t, 3_000 * MS, 5 * MS, 1));
        assert!(ack(&mut t, 5_000 * MS, MS, 1)); // closes second 2
        assert!(!ack(&mut t, 1_000 * MS, MS, 1)); // older than every open one
        let s = t.samples();
        assert!(s[2].produce_ack_p99_us.is_some());
        assert_eq!(s[1].acked_msgs_per_s, 1.0);
        assert_eq!(s[1].produce_ack_p99_us, None);
    }

    #[test]
    fn the_timeline_is_bounded() {
        let t = Timeline::new(u64::MAX);
        assert_eq!(t.seconds.len(), SECONDS_MAX);
    }
}
