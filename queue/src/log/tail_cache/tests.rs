use tidegate_proto::batch::{set_base_offset, BatchBuilder, BatchView, Record};

use super::*;

fn must<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("unexpected error: {e}"))
}

/// A stored batch of `count` records of `value_len` bytes at `base`.
fn batch(base: u64, count: usize, value_len: usize) -> Vec<u8> {
    let value = vec![b'v'; value_len];
    let mut b = BatchBuilder::new();
    for i in 0..count {
        must(b.push(Record {
            timestamp_ms: i as i64,
            key: None,
            value: Some(&value),
            headers: &[],
        }));
    }
    let mut bytes = must(b.finish());
    must(set_base_offset(&mut bytes, base));
    bytes
}

/// One group commit of batches of `sizes` records each, from `base`.
fn unit(base: u64, sizes: &[usize]) -> (u64, u64, Bytes) {
    let mut bytes = Vec::new();
    let mut next = base;
    for &count in sizes {
        bytes.extend_from_slice(&batch(next, count, 10));
        next += count as u64;
    }
    (base, next, Bytes::from(bytes))
}

/// A seek that names no cached commit's segment: reads walk from each
/// commit's start.
const NOWHERE: Seek = Seek {
    segment_base: u64::MAX,
    pos: 0,
};

fn push(cache: &mut TailCache, (first, next, bytes): (u64, u64, Bytes)) {
    cache.push(first, next, NOWHERE, bytes);
}

/// The base offsets of the batches in `bytes`.
fn bases(bytes: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (view, _) = must(BatchView::parse_prefix(&bytes[at..]));
        out.push(view.header().base_offset);
        at += view.header().length as usize;
    }
    out
}

#[test]
fn a_read_returns_whole_batches_from_the_one_holding_the_offset() {
    let mut cache = TailCache::new(1 << 20);
    push(&mut cache, unit(100, &[5, 5, 5]));
    let Some(hit) = cache.read(107, 1 << 20, NOWHERE) else {
        panic!("107 is held");
    };
    assert_eq!((hit.first_offset, hit.next_offset), (105, 115));
    assert_eq!(bases(&hit.bytes), [105, 110]);
    assert!(
        cache.read(99, 1 << 20, NOWHERE).is_none(),
        "below what is held"
    );
    assert!(
        cache.read(115, 1 << 20, NOWHERE).is_none(),
        "at the high watermark"
    );
}

#[test]
fn a_read_of_most_of_a_commit_shares_its_bytes_and_a_small_one_is_copied() {
    let mut cache = TailCache::new(1 << 20);
    let (first, next, bytes) = unit(0, &[3, 3, 3, 3]);
    let start = bytes.as_ptr();
    cache.push(first, next, NOWHERE, bytes);
    let Some(whole) = cache.read(0, 1 << 20, NOWHERE) else {
        panic!("0 is held");
    };
    assert_eq!(whole.bytes.as_ptr(), start, "copied instead of shared");
    let Some(half) = cache.read(6, 1 << 20, NOWHERE) else {
        panic!("6 is held");
    };
    assert_eq!(bases(&half.bytes), [6, 9]);
    assert!(std::ptr::eq(
        half.bytes.as_ptr(),
        &whole.bytes[half.bytes.len()]
    ));
    // One batch of four: a reader holding it must not keep the other
    // three alive.
    let Some(small) = cache.read(3, 1, NOWHERE) else {
        panic!("3 is held");
    };
    assert_eq!(bases(&small.bytes), [3]);
    let inside = start as usize..start as usize + whole.bytes.len();
    assert!(!inside.contains(&(small.bytes.as_ptr() as usize)), "shared");
}

#[test]
fn a_read_spans_commits_up_to_the_limit_and_takes_at_least_one_batch() {
    let mut cache = TailCache::new(1 << 20);
    push(&mut cache, unit(0, &[4, 4]));
    push(&mut cache, unit(8, &[4, 4]));
    let one = batch(0, 4, 10).len();
    let Some(all) = cache.read(2, 1 << 20, NOWHERE) else {
        panic!("2 is held");
    };
    assert_eq!(bases(&all.bytes), [0, 4, 8, 12]);
    assert_eq!((all.first_offset, all.next_offset), (0, 16));
    let Some(three) = cache.read(0, 3 * one + 1, NOWHERE) else {
        panic!("0 is held");
    };
    assert_eq!(bases(&three.bytes), [0, 4, 8]);
    assert_eq!(three.next_offset, 12);
    let Some(first) = cache.read(5, 1, NOWHERE) else {
        panic!("5 is held");
    };
    assert_eq!(bases(&first.bytes), [4], "at least one batch");
}

#[test]
fn the_oldest_commits_go_first_at_the_bound() {
    let size = unit(0, &[4]).2.len();
    let mut cache = TailCache::new(2 * size);
    for i in 0..5u64 {
        push(&mut cache, unit(i * 4, &[4]));
        assert!(cache.len_bytes() <= 2 * size);
    }
    assert!(cache.read(11, usize::MAX, NOWHERE).is_none(), "evicted");
    let Some(hit) = cache.read(12, usize::MAX, NOWHERE) else {
        panic!("12 is held");
    };
    assert_eq!(bases(&hit.bytes), [12, 16]);
}

#[test]
fn a_gap_or_an_oversized_commit_starts_over() {
    let mut cache = TailCache::new(1 << 20);
    push(&mut cache, unit(0, &[4]));
    push(&mut cache, unit(10, &[4]));
    assert!(
        cache.read(0, usize::MAX, NOWHERE).is_none(),
        "kept across a gap"
    );
    assert!(cache.read(10, usize::MAX, NOWHERE).is_some());

    let mut small = TailCache::new(100);
    push(&mut small, unit(0, &[1]));
    assert!(
        small.read(0, usize::MAX, NOWHERE).is_some(),
        "a small commit is kept"
    );
    push(&mut small, unit(1, &[50]));
    assert_eq!(small.len_bytes(), 0);
    assert!(small.read(0, usize::MAX, NOWHERE).is_none());
}

#[test]
fn garbage_in_the_cache_reads_as_a_miss_not_a_panic() {
    let mut cache = TailCache::new(1 << 20);
    cache.push(0, 5, NOWHERE, Bytes::from_static(&[0xff; 64]));
    assert!(cache.read(0, usize::MAX, NOWHERE).is_none());
    let (_, _, whole) = unit(0, &[5]);
    cache.clear();
    cache.push(0, 5, NOWHERE, whole.slice(..whole.len() - 3));
    assert!(
        cache.read(0, usize::MAX, NOWHERE).is_none(),
        "a truncated batch"
    );
}

#[test]
fn a_zero_bound_keeps_nothing() {
    let mut cache = TailCache::new(0);
    assert!(!cache.fits(1));
    push(&mut cache, unit(0, &[1]));
    assert!(cache.read(0, usize::MAX, NOWHERE).is_none());
}

#[test]
fn a_seek_into_a_commit_starts_the_walk_at_its_batch() {
    let mut cache = TailCache::new(1 << 20);
    let (first, next, bytes) = unit(1000, &[3; 200]);
    // The commit starts at position 4096 of segment 7.
    let at = Seek {
        segment_base: 7,
        pos: 4096,
    };
    let len = batch(0, 3, 10).len() as u64;
    cache.push(first, next, at, bytes);
    for offset in 1000..1600 {
        let index = (offset - 1000) / 3;
        let base = 1000 + index * 3;
        // At the wanted batch, at the commit's start, and from another
        // segment: the same answer.
        for seek_batch in [index, index / 2, 0] {
            let seek = Seek {
                segment_base: 7,
                pos: 4096 + seek_batch * len,
            };
            for seek in [seek, NOWHERE] {
                let Some(hit) = cache.read(offset, 1, seek) else {
                    panic!("{offset} is held");
                };
                assert_eq!((hit.first_offset, hit.next_offset), (base, base + 3));
            }
        }
    }
    // A seek past the wanted batch (never from the index) is a miss, not
    // a wrong answer: the disk answers instead.
    let past = Seek {
        segment_base: 7,
        pos: 4096 + 10 * len,
    };
    assert!(cache.read(1003, 1, past).is_none());
}
