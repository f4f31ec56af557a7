//! Fixed buckets for the syncer's fdatasync latency, counted inside
//! [`LogStats`](super::LogStats).
//!
//! The queue crate cannot use core's metrics types (core depends on it), so
//! the log keeps only the per-bucket counts; core renders them as a
//! Prometheus histogram. The counts are a plain array: recording a sync
//! allocates nothing and the memory is bounded whatever the run length.

use std::time::Duration;

/// Upper bounds of the fdatasync latency buckets, in microseconds: powers of
/// two from 50 µs to about 1.6 s. Doubling keeps the relative error of an
/// estimated quantile the same at every scale, from a NVMe with power-loss
/// protection (tens of µs) to a stalled SD card (hundreds of ms). Fixed, so
/// series of every partition, shard and release add up.
pub(crate) const SYNC_LATENCY_BOUNDS_US: [u64; 16] = {
    let mut bounds = [0; 16];
    let mut i = 0;
    while i < bounds.len() {
        bounds[i] = 50 << i;
        i += 1;
    }
    bounds
};

/// Buckets counted: the bounded ones and the open one (`+Inf`).
pub(crate) const SYNC_LATENCY_SLOTS: usize = SYNC_LATENCY_BOUNDS_US.len() + 1;

/// The bucket of a sync that took `took`: the first bound it does not exceed
/// (Prometheus `le`), or the open bucket.
pub(crate) fn slot_of(took: Duration) -> usize {
    // Compared in nanoseconds, so a sync just above a bound never lands in
    // that bound's bucket (whole microseconds would truncate it down).
    let ns = took.as_nanos();
    SYNC_LATENCY_BOUNDS_US.partition_point(|&bound_us| u128::from(bound_us) * 1_000 < ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogStats;

    #[test]
    fn bounds_double_from_50_us_to_about_a_second_and_a_half() {
        assert_eq!(SYNC_LATENCY_BOUNDS_US[0], 50);
        assert!(SYNC_LATENCY_BOUNDS_US.windows(2).all(|w| w[1] == 2 * w[0]));
        assert_eq!(SYNC_LATENCY_BOUNDS_US[15], 1_638_400);
        assert_eq!(LogStats::SYNC_LATENCY_BOUNDS_US, SYNC_LATENCY_BOUNDS_US);
        assert_eq!(LogStats::SYNC_LATENCY_SLOTS, 17);
    }

    #[test]
    fn a_sync_at_a_bound_lands_in_that_bounds_bucket_and_just_above_in_the_next() {
        assert_eq!(slot_of(Duration::ZERO), 0);
        assert_eq!(slot_of(Duration::from_micros(50)), 0);
        assert_eq!(slot_of(Duration::from_nanos(50_001)), 1);
        assert_eq!(slot_of(Duration::from_micros(100)), 1);
        assert_eq!(slot_of(Duration::from_micros(101)), 2);
        assert_eq!(slot_of(Duration::from_micros(1_638_400)), 15);
    }

    #[test]
    fn syncs_above_the_largest_bound_land_in_the_open_bucket() {
        let open = SYNC_LATENCY_SLOTS - 1;
        assert_eq!(slot_of(Duration::from_nanos(1_638_400_001)), open);
        assert_eq!(slot_of(Duration::from_secs(3_600)), open);
        assert_eq!(slot_of(Duration::MAX), open);
    }

    #[test]
    fn recording_a_sync_counts_it_in_its_bucket_the_count_and_the_sum() {
        let mut stats = LogStats::default();
        for took in [
            Duration::from_micros(50),
            Duration::from_micros(50),
            Duration::from_micros(300),
            Duration::from_secs(60),
        ] {
            stats.record_sync(took);
        }
        let mut expected = [0; SYNC_LATENCY_SLOTS];
        expected[0] = 2;
        expected[3] = 1; // 300 µs: above 200, at most 400
        expected[SYNC_LATENCY_SLOTS - 1] = 1;
        assert_eq!(stats.syncs_by_latency, expected);
        assert_eq!(stats.syncs, 4);
        assert_eq!(stats.syncs_by_latency.iter().sum::<u64>(), stats.syncs);
        assert_eq!(stats.sync_us_total, 50 + 50 + 300 + 60_000_000);
    }
}
