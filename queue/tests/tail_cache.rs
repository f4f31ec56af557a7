//! The tail cache (`LogConfig::read_cache_bytes`): reads of the newest
//! batches are answered from memory with exactly the bytes the disk holds,
//! across segment rolls, and a read below what it holds goes to disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{batch, decode, run, small_config, view};
use tidegate_queue::{Ack, Log, LogConfig};

fn cached(read_cache_bytes: usize) -> LogConfig {
    LogConfig {
        read_cache_bytes,
        ..small_config()
    }
}

/// Every read from `from` to the high watermark: `(offset read at,
/// first, next, bytes, from memory)`, reading `max_bytes` at a time.
async fn read_all(log: &Log, from: u64, max_bytes: usize) -> Vec<(u64, u64, u64, Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < log.offsets().latest {
        let read = log.read(at, max_bytes).await.unwrap();
        assert!(!read.is_empty(), "nothing read at {at}");
        out.push((
            at,
            read.first_offset,
            read.next_offset,
            read.as_bytes().to_vec(),
            read.from_memory(),
        ));
        at = read.next_offset;
    }
    out
}

#[test]
fn tail_reads_come_from_memory_with_the_bytes_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        // Large enough for everything: every read is a hit, including
        // those that span group commits and segment rolls (64 KiB).
        let log = Log::open(&path, cached(16 << 20)).await.unwrap();
        // Appended ten at a time without waiting between them, so that
        // group commits hold several batches over several write chunks
        // (16 KiB).
        let bytes: Vec<Vec<u8>> = (0..120u64).map(|tag| batch(tag, 7, 300, 0)).collect();
        for group in bytes.chunks(10) {
            let views: Vec<_> = group.iter().map(|b| view(b)).collect();
            let appends = views.iter().map(|v| log.append(v, Ack::Written));
            for appended in futures::future::join_all(appends).await {
                appended.unwrap();
            }
        }
        assert!(log.stats().flushes < 120, "every batch had its own commit");
        for tag in [1u64, 2, 3] {
            let read = log.read(tag * 7 + 2, 1).await.unwrap();
            assert!(read.from_memory());
            assert_eq!(read.next_offset - read.first_offset, 7, "one whole batch");
        }
        // Reads of 5 KiB, 40 KiB (commits and segments spanned) and at
        // offsets inside batches.
        let mut memory = Vec::new();
        for (from, max_bytes) in [(0, 40 << 10), (3, 5 << 10), (400, 40 << 10)] {
            for (at, first, next, bytes, cached) in read_all(&log, from, max_bytes).await {
                assert!(cached, "read of {first}..{next} went to disk");
                memory.push((at, max_bytes, first, next, bytes));
            }
        }
        assert!(log.segment_count() > 2, "the reads did not span rolls");
        log.close().await.unwrap();

        // Reopened, the cache is empty: the same reads come from disk.
        // A disk read stops at its segment's end, so its bytes must be
        // the start of the memory read's, from the same first batch.
        let log = Log::open(&path, cached(16 << 20)).await.unwrap();
        for (at, max_bytes, first, next, bytes) in &memory {
            let disk = log.read(*at, *max_bytes).await.unwrap();
            assert!(!disk.from_memory());
            assert_eq!(disk.first_offset, *first, "read at {at}");
            assert!(disk.next_offset <= *next);
            assert_eq!(disk.as_bytes(), &bytes[..disk.as_bytes().len()]);
        }
        log.close().await.unwrap();
    });
}

#[test]
fn a_read_below_what_the_cache_holds_goes_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, cached(8 << 10)).await.unwrap();
        for tag in 0..40u64 {
            let bytes = batch(tag, 5, 200, 0);
            log.append(&view(&bytes), Ack::Written).await.unwrap();
        }
        assert!(log.read_cache_bytes() <= 8 << 10);
        let old = log.read(0, 1 << 20).await.unwrap();
        assert!(!old.from_memory());
        assert_eq!(decode(old.as_bytes())[0], (0, 0, 0));
        let newest = log.read(log.offsets().latest - 1, 1 << 20).await.unwrap();
        assert!(newest.from_memory());
        assert_eq!(decode(newest.as_bytes()).last(), Some(&(199, 39, 4)));
        log.close().await.unwrap();
    });
}

#[test]
fn a_zero_cache_reads_everything_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, cached(0)).await.unwrap();
        let bytes = batch(1, 5, 200, 0);
        log.append(&view(&bytes), Ack::Written).await.unwrap();
        let read = log.read(0, 1 << 20).await.unwrap();
        assert!(!read.from_memory());
        assert_eq!(decode(read.as_bytes()).len(), 5);
        assert_eq!((log.read_cache_bytes(), log.stats().reads_cached), (0, 0));
        log.close().await.unwrap();
    });
}
