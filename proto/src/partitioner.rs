//! Key → partition: the hash the server and every client SDK share.
//!
//! It lives in `proto/` because the server and the SDK must agree on it
//! byte for byte, and the SDK depends on nothing of ours but `proto/`.
//!
//! The hash is **Kafka's default partitioner**, byte for byte: MurmurHash2
//! (32-bit) with Kafka's seed, sign bit cleared, modulo the partition
//! count. Keys therefore land on the same partition whether produced by a
//! tidegate SDK or a Kafka client through the Kafka listener, and any
//! language with a Kafka client already has a matching implementation.
//!
//! Algorithm (all arithmetic on unsigned 32-bit integers, wrapping):
//!
//! ```text
//! m = 0x5bd1e995, r = 24
//! h = 0x9747b28c ^ len(key)            // len as u32
//! for each whole 4-byte chunk c (little-endian u32), in order:
//!     k = c * m;  k ^= k >> r;  k *= m
//!     h *= m;     h ^= k
//! tail = the last len % 4 bytes t[0], t[1], t[2]:
//!     if 3 bytes: h ^= t[2] << 16
//!     if ≥2 bytes: h ^= t[1] << 8
//!     if ≥1 byte:  h ^= t[0];  h *= m
//! h ^= h >> 13;  h *= m;  h ^= h >> 15
//! partition = (h & 0x7fffffff) % partitions
//! ```
//!
//! `docs/PLACEMENT.md` lists test vectors.

/// MurmurHash2, 32-bit, with Kafka's seed `0x9747b28c`: Kafka's
/// `Utils.murmur2`. Java returns the same bits as a signed `int`
/// (`murmur2(data) as i32`).
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java uses the int length; keys of 4 GiB or more do not exist there.
    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() == 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition of a message key: `(murmur2(key) & 0x7fffffff) %
/// partitions`, as Kafka's default partitioner does for keyed records.
/// `None` when `partitions` is 0. The empty key is an ordinary key.
///
/// ```
/// use tidegate_proto::partitioner::key_to_partition;
/// assert_eq!(key_to_partition(b"foobar", 10), Some(6));
/// assert_eq!(key_to_partition(b"foobar", 0), None);
/// ```
pub fn key_to_partition(key: &[u8], partitions: u32) -> Option<u32> {
    (murmur2(key) & 0x7fff_ffff).checked_rem(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2` vectors, as Java's signed ints.
    const KAFKA_MURMUR2: &[(&[u8], i32)] = &[
        (b"21", -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        (b"abc", 479_470_107),
    ];

    #[test]
    fn murmur2_matches_kafka_utils_test_vectors() {
        for &(key, expected) in KAFKA_MURMUR2 {
            assert_eq!(
                murmur2(key) as i32,
                expected,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn murmur2_covers_every_tail_length() {
        // Fixed outputs for 0..=4 trailing bytes: a change to the tail
        // handling breaks one of them.
        assert_eq!(murmur2(b""), 275_646_681);
        assert_eq!(murmur2(b"a"), EXPECTED_A);
        assert_eq!(murmur2(b"ab"), EXPECTED_AB);
        assert_eq!(murmur2(b"abc") as i32, 479_470_107);
        assert_eq!(murmur2(b"abcd"), EXPECTED_ABCD);
    }

    const EXPECTED_A: u32 = 0xa2d0_b27c;
    const EXPECTED_AB: u32 = 0x12d8_262a;
    const EXPECTED_ABCD: u32 = 0xb11a_b5f4;

    #[test]
    fn key_to_partition_matches_kafka_default_partitioner() {
        // (-790332482 & 0x7fffffff) = 1357151166.
        assert_eq!(key_to_partition(b"foobar", 10), Some(6));
        assert_eq!(key_to_partition(b"foobar", 50), Some(16));
        for &(key, partitions, expected) in PARTITION_VECTORS {
            assert_eq!(
                key_to_partition(key, partitions),
                Some(expected),
                "{} over {partitions}",
                String::from_utf8_lossy(key)
            );
        }
    }

    /// Also in `docs/PLACEMENT.md`, for other-language SDKs.
    const PARTITION_VECTORS: &[(&[u8], u32, u32)] = &[
        (b"", 3, 0),
        (b"a", 3, 1),
        (b"user-42", 12, 4),
        (b"order:1001", 16, 14),
        (&[0x00, 0x01, 0x02, 0x03, 0x04], 7, 4),
        ("\u{e9}".as_bytes(), 5, 1),
        (b"tidegate", 1000, 276),
    ];

    #[test]
    fn zero_partitions_has_no_partition() {
        assert_eq!(key_to_partition(b"k", 0), None);
        assert_eq!(key_to_partition(b"", 0), None);
    }

    #[test]
    fn one_partition_takes_every_key() {
        for key in [&b""[..], b"a", b"foobar", &[0xff; 100]] {
            assert_eq!(key_to_partition(key, 1), Some(0));
        }
    }
}
