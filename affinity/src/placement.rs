//! The partition → shard map: which shard owns partition `p` of a topic.
//!
//! ```text
//! topic_hash(topic) = fmix64(fnv1a64(utf8 bytes of topic))
//! base              = jump_consistent_hash(topic_hash(topic), shards)
//! shard_for         = (base + partition mod shards) mod shards
//! ```
//!
//! - **Deterministic and stable across restarts, builds and Rust
//!   versions**: no `RandomState`/`DefaultHasher`, only fixed integer
//!   arithmetic written out here (FNV-1a 64, MurmurHash3's `fmix64`
//!   finalizer, Lamping & Veach's jump consistent hash). Test vectors pin
//!   the outputs.
//! - **One topic's partitions are spread evenly**: consecutive partitions
//!   go to consecutive shards from a per-topic base, so `P` partitions on
//!   `n` shards give every shard `⌊P/n⌋` or `⌈P/n⌉` of them, for every `P`.
//! - **Topics are spread across shards** by the hashed base.
//!
//! The trade-off: when the shard count changes from `n` to `n + 1`, the
//! base of only about `1/(n+1)` of the topics moves (jump hash), so
//! single-partition topics move minimally, but the rotation `mod n`
//! becomes `mod (n+1)`, so most partitions of multi-partition topics move
//! (two rotations agree on only `1/(n+1)` of partitions). Per-partition
//! jump hashing would move only `1/(n+1)` but leaves one topic's partitions
//! unevenly spread. Even spread was chosen because it bounds the load of a
//! hot topic on any one shard at all times, while a shard-count change is a
//! rare, operator-driven restart; `docs/PLACEMENT.md` says what the server
//! must do then.

use std::num::NonZeroUsize;

/// FNV-1a 64 offset basis.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// The linear congruential multiplier of jump consistent hash.
const JUMP_LCG_MULTIPLIER: u64 = 2_862_933_555_777_941_757;

/// The shard that owns `partition` of `topic` when the server runs
/// `shards` shards. Stable across restarts, builds and platforms for the
/// same arguments; see the module docs for what a change of `shards` moves.
///
/// ```
/// use std::num::NonZeroUsize;
/// use tidegate_affinity::shard_for;
/// let shards = NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN);
/// let owners: Vec<usize> = (0..4).map(|p| shard_for("orders", p, shards)).collect();
/// assert_eq!(owners.iter().filter(|&&s| s == 0).count(), 2);
/// ```
pub fn shard_for(topic: &str, partition: u32, shards: NonZeroUsize) -> usize {
    let n = shards.get() as u64;
    let base = jump(topic_hash(topic), n);
    // base < n, so neither sum nor remainder overflows.
    let shard = (base + u64::from(partition) % n) % n;
    // shard < n, which came from a usize.
    shard as usize
}

/// The 64-bit hash of a topic name: MurmurHash3's `fmix64` finalizer over
/// FNV-1a 64 of its UTF-8 bytes. FNV-1a is tiny and fixed forever; the
/// finalizer spreads its weakly mixed high bits, which jump hash consumes
/// first.
pub fn topic_hash(topic: &str) -> u64 {
    fmix64(fnv1a64(topic.as_bytes()))
}

/// FNV-1a, 64-bit: for each byte, `h ^= byte; h *= 0x100000001b3`, from
/// `h = 0xcbf29ce484222325`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// MurmurHash3's 64-bit finalizer: a bijection that makes every input bit
/// affect every output bit.
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Jump consistent hash (Lamping & Veach, 2014, "A Fast, Minimal Memory,
/// Consistent Hash Algorithm"): maps `key` to a bucket in `0..buckets` so
/// that going from `n` to `n + 1` buckets moves only the keys that land in
/// the new bucket, about `1/(n+1)` of them. Matches the paper's C++ and
/// its published test vectors.
pub fn jump_consistent_hash(key: u64, buckets: NonZeroUsize) -> usize {
    // The result is below `buckets`, which came from a usize.
    jump(key, buckets.get() as u64) as usize
}

/// The paper's loop over `u64`. `j` grows by at least one per step (the
/// divisor is at most 2^31), so it ends within `buckets` steps; it takes
/// about `ln(buckets)` on average. IEEE-754 double division and
/// multiplication are exactly rounded, so the result is the same on every
/// platform Rust supports with SSE2-class floating point.
fn jump(mut key: u64, buckets: u64) -> u64 {
    let mut b: u64 = 0;
    let mut j: u64 = 0;
    while j < buckets {
        b = j;
        key = key.wrapping_mul(JUMP_LCG_MULTIPLIER).wrapping_add(1);
        let step = (1u64 << 31) as f64 / ((key >> 33) + 1) as f64;
        // `as` saturates, so a huge product cannot wrap around.
        j = ((b + 1) as f64 * step) as u64;
    }
    b
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;

    fn nz(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    #[test]
    fn fnv1a64_matches_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn jump_hash_matches_published_vectors() {
        let vectors: &[(u64, usize, usize)] = &[
            (0, 1, 0),
            (3, 1, 0),
            (0, 2, 0),
            (4, 2, 1),
            (7, 2, 0),
            (1, 1, 0),
            (42, 57, 43),
            (1, 128, 55),
            (129, 128, 120),
            (256, 1024, 520),
            (0xDEAD_10CC, 1, 0),
            (0xDEAD_10CC, 666, 361),
            (128, 100_000_000, 38_172_097),
            (128, 2_147_483_648, 1_644_467_860),
            (u64::MAX, 128, 92),
        ];
        for &(key, buckets, expected) in vectors {
            assert_eq!(
                jump_consistent_hash(key, nz(buckets)),
                expected,
                "key {key} buckets {buckets}"
            );
        }
    }

    #[test]
    fn topic_hash_is_pinned() {
        assert_eq!(topic_hash(""), TOPIC_HASH_EMPTY);
        assert_eq!(topic_hash("orders"), TOPIC_HASH_ORDERS);
    }

    const TOPIC_HASH_EMPTY: u64 = 0xefd0_1f60_ba99_2926;
    const TOPIC_HASH_ORDERS: u64 = 0x3252_0fbd_b4da_d5b9;

    /// (topic, partition, shards, shard). Changing the hash, the jump loop
    /// or the rotation breaks these: that would move partitions between
    /// shards on upgrade, so it must be a deliberate, documented change.
    /// Also in `docs/PLACEMENT.md`; computed independently of this code.
    const PLACEMENT_VECTORS: &[(&str, u32, usize, usize)] = &[
        ("orders", 0, 1, 0),
        ("orders", 0, 4, 0),
        ("orders", 1, 4, 1),
        ("orders", 2, 4, 2),
        ("orders", 3, 4, 3),
        ("orders", 7, 5, 2),
        ("payments.eu", 0, 8, 4),
        ("payments.eu", 5, 8, 1),
        ("", 0, 3, 1),
        ("\u{e9}-topic", 2, 16, 11),
        ("sensors/temp", u32::MAX, 7, 5),
        ("tenant-3/events.42", 11, 64, 48),
    ];

    #[test]
    fn placement_is_pinned_by_test_vectors() {
        for &(topic, partition, shards, expected) in PLACEMENT_VECTORS {
            assert_eq!(
                shard_for(topic, partition, nz(shards)),
                expected,
                "{topic}/{partition} over {shards} shards"
            );
        }
    }

    #[test]
    fn one_shard_owns_everything() {
        for p in 0..100 {
            assert_eq!(shard_for("t", p, nz(1)), 0);
        }
    }

    #[test]
    fn one_topics_partitions_are_spread_evenly() {
        for t in 0..50 {
            let topic = format!("topic-{t}");
            for shards in 1..=16 {
                for partitions in 1..=40u32 {
                    let mut counts = vec![0u32; shards];
                    for p in 0..partitions {
                        counts[shard_for(&topic, p, nz(shards))] += 1;
                    }
                    let max = counts.iter().max().unwrap();
                    let min = counts.iter().min().unwrap();
                    assert!(
                        max - min <= 1,
                        "{topic} P={partitions} n={shards}: {counts:?}"
                    );
                }
            }
        }
    }

    fn load(topics: usize, partitions: u32, shards: usize) -> Vec<u32> {
        let mut counts = vec![0u32; shards];
        for t in 0..topics {
            let topic = format!("tenant-{}/events.{t}", t % 7);
            for p in 0..partitions {
                counts[shard_for(&topic, p, nz(shards))] += 1;
            }
        }
        counts
    }

    fn assert_within(counts: &[u32], tolerance: f64) {
        let mean = f64::from(counts.iter().sum::<u32>()) / counts.len() as f64;
        for &c in counts {
            let off = (f64::from(c) - mean).abs() / mean;
            assert!(off <= tolerance, "{counts:?} off by {off:.3} from {mean}");
        }
    }

    #[test]
    fn thousand_topics_of_eight_partitions_balance_over_four_shards() {
        assert_within(&load(1000, 8, 4), 0.15);
    }

    #[test]
    fn thousand_topics_balance_when_partitions_do_not_divide_shards() {
        assert_within(&load(1000, 8, 3), 0.15);
        assert_within(&load(1000, 3, 8), 0.15);
    }

    #[test]
    fn single_partition_topics_balance_over_shards() {
        assert_within(&load(1000, 1, 4), 0.15);
    }

    #[test]
    fn jump_hash_moves_about_one_fifth_of_keys_from_four_to_five_buckets() {
        let keys = 10_000u64;
        let mut moved = 0;
        for i in 0..keys {
            let key = fmix64(i);
            let before = jump_consistent_hash(key, nz(4));
            let after = jump_consistent_hash(key, nz(5));
            if before != after {
                assert_eq!(after, 4, "a moved key must go to the new bucket");
                moved += 1;
            }
        }
        let fraction = f64::from(moved) / keys as f64;
        assert!((0.17..=0.23).contains(&fraction), "moved {fraction}");
    }

    #[test]
    fn single_partition_topics_move_minimally_when_shards_grow() {
        let topics = 10_000;
        let mut moved = 0;
        for t in 0..topics {
            let topic = format!("t{t}");
            let before = shard_for(&topic, 0, nz(4));
            let after = shard_for(&topic, 0, nz(5));
            if before != after {
                assert_eq!(after, 4, "a moved partition must go to the new shard");
                moved += 1;
            }
        }
        let fraction = f64::from(moved) / f64::from(topics);
        assert!((0.17..=0.23).contains(&fraction), "moved {fraction}");
    }

    #[test]
    fn shard_count_change_moves_most_partitions_of_wide_topics() {
        // The documented price of even spreading (docs/PLACEMENT.md): if
        // this starts failing, the scheme changed and the docs must too.
        let mut moved = 0u32;
        let mut total = 0u32;
        for t in 0..1000 {
            let topic = format!("t{t}");
            for p in 0..8 {
                total += 1;
                if shard_for(&topic, p, nz(4)) != shard_for(&topic, p, nz(5)) {
                    moved += 1;
                }
            }
        }
        assert!(f64::from(moved) / f64::from(total) > 0.5, "{moved}/{total}");
    }

    proptest! {
        #[test]
        fn shard_is_always_in_range(
            topic in ".{0,40}",
            partition in any::<u32>(),
            shards in 1usize..5000,
        ) {
            prop_assert!(shard_for(&topic, partition, nz(shards)) < shards);
        }

        #[test]
        fn jump_hash_only_moves_keys_to_the_new_bucket(
            key in any::<u64>(),
            buckets in 1usize..2000,
        ) {
            let before = jump_consistent_hash(key, nz(buckets));
            let after = jump_consistent_hash(key, nz(buckets + 1));
            prop_assert!(after == before || after == buckets);
        }
    }
}
