//! Open files (`log/files.rs`): a log keeps its active segment's file open
//! and at most `open_segments_max` sealed ones, however many segments it
//! has, while every record stays readable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};

use support::{all_records, batch, run, small_config, view};
use tidegate_queue::{
    fault::{FaultKind, FaultPlan},
    Ack, Log, LogConfig, LogError,
};

/// Batches to append: about 60 segments of 64 KiB.
const BATCHES: u64 = 3000;

fn config(open_segments_max: usize) -> LogConfig {
    LogConfig {
        open_segments_max,
        // Every read goes to the segment files.
        read_cache_bytes: 0,
        ..small_config()
    }
}

/// The process's descriptors open on files under `dir`.
fn open_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// The process's descriptors open on deleted files that were under `dir`.
fn deleted_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .filter(|target| target.to_string_lossy().ends_with(" (deleted)"))
        .count()
}

/// A new directory for a log, and its canonical path (what /proc shows).
fn new_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    (dir, path)
}

/// A log in `path` with `open_segments_max` files kept and `BATCHES`
/// batches appended.
async fn filled(path: &Path, open_segments_max: usize) -> Log {
    let log = Log::open(path, config(open_segments_max)).await.unwrap();
    for tag in 0..BATCHES {
        log.append(&view(&batch(tag, 10, 100, 0)), Ack::Written)
            .await
            .unwrap();
    }
    log
}

/// Reads the first two segments, so that their files are the ones kept.
async fn keep_first_two(log: &Log) {
    let second = log.read(0, 1 << 20).await.unwrap().next_offset;
    log.read(second, 1 << 10).await.unwrap();
}

fn check_order(records: &[(u64, u64, u32)]) {
    assert_eq!(records.len() as u64, BATCHES * 10);
    for (i, (offset, tag, index)) in records.iter().enumerate() {
        let i = i as u64;
        assert_eq!((*offset, *tag, u64::from(*index)), (i, i / 10, i % 10));
    }
}

fn bounded_with(open_segments_max: usize) {
    let (_dir, path) = new_dir();
    // The active segment's file, and at most this many sealed ones.
    let bound = 1 + open_segments_max;
    run(move || async move {
        let log = filled(&path, open_segments_max).await;
        let segments = std::fs::read_dir(&path)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("log".as_ref()))
            .count();
        assert!(segments >= 50, "only {segments} segments");
        assert!(open_under(&path) <= bound, "{} open", open_under(&path));

        check_order(&all_records(&log).await);
        assert!(open_under(&path) <= bound, "{} open", open_under(&path));
        let stats = log.stats();
        assert!(stats.segments_open <= open_segments_max as u64);
        // Each sealed segment read once from its start, in order: opened
        // once, unless it was still open from its roll.
        assert!(
            stats.segment_opens >= (segments - 1 - open_segments_max) as u64,
            "{} opens for {segments} segments",
            stats.segment_opens
        );

        // A kept file serves the next read of its segment without an open.
        if open_segments_max > 0 {
            let before = log.stats().segment_opens;
            log.read(0, 1 << 10).await.unwrap();
            log.read(0, 1 << 10).await.unwrap();
            log.read(5, 1 << 10).await.unwrap();
            assert_eq!(log.stats().segment_opens, before + 1);
            assert!(log.stats().segments_open >= 1);
        }

        // Reads that jump between segments open and close as they go.
        let latest = log.offsets().latest;
        for offset in [0, latest - 1, latest / 2, 10, latest / 3, 0] {
            let read = log.read(offset, 1 << 10).await.unwrap();
            assert!(read.first_offset <= offset && offset < read.next_offset);
        }
        assert!(open_under(&path) <= bound, "{} open", open_under(&path));
        log.close().await.unwrap();
        // Closing closes every file, rather than leaving them to the
        // executor's next I/O cycle.
        assert_eq!(open_under(&path), 0);

        // Reopened, recovery does not keep the sealed segments' files.
        let log = Log::open(&path, config(open_segments_max)).await.unwrap();
        assert_eq!(log.recovery().segments, segments);
        assert!(open_under(&path) <= 1, "{} open", open_under(&path));
        check_order(&all_records(&log).await);
        assert!(open_under(&path) <= bound, "{} open", open_under(&path));
        log.close().await.unwrap();
        assert_eq!(open_under(&path), 0);
    });
}

#[test]
fn a_log_of_many_segments_keeps_few_files_open() {
    bounded_with(2);
}

#[test]
fn a_bound_of_zero_opens_a_sealed_segment_for_each_read() {
    bounded_with(0);
}

/// Retention deletes segments whose files are closed, and segments whose
/// file a read kept open: the kept ones are closed, not left open on
/// deleted files. Reads below the new start are refused as out of range,
/// and the rest still read.
#[test]
fn retention_deletes_kept_and_closed_segments_alike() {
    let (_dir, path) = new_dir();
    run(move || async move {
        let log = filled(&path, 2).await;
        keep_first_two(&log).await;
        assert_eq!(log.stats().segments_open, 2);
        let latest = log.offsets().latest;
        let report = log.delete_before(latest / 2).await.unwrap();
        assert!(report.segments_deleted >= 20, "{report:?}");
        assert_eq!(log.stats().segments_open, 0);
        assert_eq!(deleted_under(&path), 0);
        let earliest = log.offsets().earliest;
        assert!(matches!(
            log.read(0, 1 << 10).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        let read = log.read(earliest, 1 << 10).await.unwrap();
        assert_eq!(read.first_offset, earliest);
        assert_eq!(log.stats().segments_open, 1);
        log.close().await.unwrap();
        assert_eq!(open_under(&path), 0);
    });
}

/// Reads of one segment whose file is not open, at once, and retention
/// deleting it at the same time: every read gets its batches or, once the
/// segment is gone, an out-of-range answer; no file stays open on a deleted
/// segment and the bound holds.
#[test]
fn concurrent_reads_of_a_closed_segment_and_retention() {
    let (_dir, path) = new_dir();
    run(move || async move {
        let log = filled(&path, 2).await;
        let latest = log.offsets().latest;
        // Two reads of the first segment (cold), one of the second, and
        // retention of both, interleaved at their awaits.
        let later = 10 * 60;
        let (a, b, c, deleted) = futures::join!(
            log.read(0, 1 << 10),
            log.read(3, 1 << 10),
            log.read(later, 1 << 10),
            log.delete_before(latest / 2),
        );
        assert!(deleted.unwrap().segments_deleted >= 20);
        for (read, offset) in [(a, 0), (b, 3), (c, later)] {
            match read {
                Ok(read) => assert!(read.first_offset <= offset && offset < read.next_offset),
                Err(LogError::OffsetOutOfRange { requested, .. }) => assert_eq!(requested, offset),
                Err(e) => panic!("read of {offset}: {e}"),
            }
        }
        assert_eq!(deleted_under(&path), 0);
        assert!(open_under(&path) <= 3, "{} open", open_under(&path));
        // The timestamp search finds the first segment still held.
        let earliest = log.offsets().earliest;
        assert_eq!(log.offset_for_timestamp(0).await.unwrap(), Some(earliest));
        log.close().await.unwrap();
        assert_eq!(open_under(&path), 0);
    });
}

/// Out of descriptors while opening a sealed segment's file, a read closes
/// the files its log keeps and tries once more; with none kept, it gets a
/// typed I/O error naming EMFILE, and the next read works.
#[test]
fn out_of_descriptors_a_read_gives_back_the_kept_files() {
    let (_dir, path) = new_dir();
    run(move || async move {
        let log = filled(&path, 2).await;
        keep_first_two(&log).await;
        assert_eq!(log.stats().segments_open, 2);
        let cold = log.offsets().latest / 2;
        log.inject_faults(FaultPlan {
            fail_open: Some((0, FaultKind::TooManyFiles)),
            ..FaultPlan::default()
        });
        let read = log.read(cold, 1 << 10).await.unwrap();
        assert!(read.first_offset <= cold && cold < read.next_offset);
        // The two kept files were closed for it; it is the one kept now.
        assert_eq!(log.stats().segments_open, 1);
        assert!(open_under(&path) <= 2, "{} open", open_under(&path));
        log.close().await.unwrap();

        let log = Log::open(&path, config(0)).await.unwrap();
        log.inject_faults(FaultPlan {
            fail_open: Some((0, FaultKind::TooManyFiles)),
            ..FaultPlan::default()
        });
        match log.read(0, 1 << 10).await {
            Err(LogError::Io(failure)) => assert_eq!(failure.errno, Some(libc::EMFILE)),
            other => panic!("expected EMFILE, got {:?}", other.map(|r| r.next_offset)),
        }
        assert_eq!(log.read(0, 1 << 10).await.unwrap().first_offset, 0);
        log.close().await.unwrap();
    });
}

/// Out of descriptors when a roll opens its files: the append that needed
/// the new segment is refused with a typed I/O error naming EMFILE, but the
/// log is not failed: the next appends roll and succeed, every acknowledged
/// record reads back in order, and the log reopens to the same records.
#[test]
fn out_of_descriptors_at_a_roll_refuses_the_append_and_keeps_the_log() {
    let (_dir, path) = new_dir();
    run(move || async move {
        let log = Log::open(&path, config(2)).await.unwrap();
        log.inject_faults(FaultPlan {
            fail_open: Some((0, FaultKind::TooManyFiles)),
            ..FaultPlan::default()
        });
        let (mut acked, mut refused) = (Vec::new(), 0);
        for tag in 0..200u64 {
            match log
                .append(&view(&batch(tag, 10, 100, 0)), Ack::Durable)
                .await
            {
                Ok(a) => acked.push((a.base_offset, tag)),
                Err(LogError::Io(failure)) => {
                    assert_eq!(failure.errno, Some(libc::EMFILE));
                    refused += 1;
                }
                Err(e) => panic!("append {tag}: {e}"),
            }
        }
        assert_eq!(refused, 1);
        assert!(!log.is_failed());
        assert!(log.segment_count() >= 3, "{} segments", log.segment_count());
        let expect: Vec<(u64, u64)> = acked
            .iter()
            .flat_map(|&(base, tag)| (0..10).map(move |i| (base + i, tag)))
            .collect();
        let records = |all: Vec<(u64, u64, u32)>| -> Vec<(u64, u64)> {
            all.into_iter()
                .map(|(offset, tag, _)| (offset, tag))
                .collect()
        };
        assert_eq!(records(all_records(&log).await), expect);
        log.close().await.unwrap();
        let log = Log::open(&path, config(2)).await.unwrap();
        assert_eq!(records(all_records(&log).await), expect);
        log.close().await.unwrap();
    });
}

/// A real failure from the disk layer keeps its errno (glommio's own
/// conversion drops it, and ENOSPC and EMFILE are told apart by it): a
/// sealed segment's file removed behind the log's back reads as a typed
/// I/O error naming ENOENT.
#[test]
fn a_missing_segment_file_reads_as_an_error_with_its_errno() {
    let (_dir, path) = new_dir();
    run(move || async move {
        let log = filled(&path, 0).await;
        let first = path.join(format!("{:020}.log", 0));
        std::fs::remove_file(&first).unwrap();
        match log.read(0, 1 << 10).await {
            Err(LogError::Io(failure)) => assert_eq!(failure.errno, Some(libc::ENOENT)),
            other => panic!("expected ENOENT, got {:?}", other.map(|r| r.next_offset)),
        }
        drop(log);
    });
}
