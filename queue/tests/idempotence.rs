//! Idempotent producers on a real log: duplicates answered with their
//! original offsets, reordering within the wait, fencing, and the table
//! rebuilt on reopen from snapshots and batch headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{rc::Rc, time::Duration};

use futures::future::join_all;
use support::{decode, run, small_config, view};
use tidegate_proto::batch::{BatchBuilder, Record};
use tidegate_queue::{Ack, Log, LogConfig, LogError};

/// A batch of producer `pid`, `epoch`, starting at `seq`, whose values tag
/// it as `tag`.
fn pbatch(pid: i64, epoch: i16, seq: i32, records: u32, tag: u64) -> Vec<u8> {
    let mut b = BatchBuilder::new().producer(pid, epoch, seq);
    for i in 0..records {
        let mut value = vec![0u8; 200];
        value[..8].copy_from_slice(&tag.to_le_bytes());
        value[8..12].copy_from_slice(&i.to_le_bytes());
        b.push(Record {
            timestamp_ms: 1_700_000_000_000,
            key: None,
            value: Some(&value),
            headers: &[],
        })
        .unwrap();
    }
    b.finish().unwrap()
}

#[test]
fn a_batch_sent_again_is_answered_with_its_offsets_and_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, LogConfig::default()).await.unwrap();
        let b0 = pbatch(7, 0, 0, 3, 0);
        let b1 = pbatch(7, 0, 3, 2, 1);
        let a0 = log.append(&view(&b0), Ack::Durable).await.unwrap();
        let a1 = log.append(&view(&b1), Ack::Written).await.unwrap();
        for ack in [Ack::None, Ack::Written, Ack::Durable] {
            let again = log.append(&view(&b0), ack).await.unwrap();
            assert_eq!(again, a0);
        }
        assert_eq!(log.append(&view(&b1), Ack::Durable).await.unwrap(), a1);
        assert_eq!(log.offsets().latest, 5, "nothing written twice");
        assert_eq!(log.stats().duplicates, 4);
        // A batch without a producer is never checked.
        let plain = support::batch(9, 1, 20, 0);
        log.append(&view(&plain), Ack::Written).await.unwrap();
        log.append(&view(&plain), Ack::Written).await.unwrap();
        assert_eq!(log.offsets().latest, 7);
        log.close().await.unwrap();
    });
}

#[test]
fn pipelined_batches_that_arrive_out_of_order_are_appended_in_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Rc::new(Log::open(&path, LogConfig::default()).await.unwrap());
        // Five batches in flight, offered last first: each waits for the
        // ones before it, so they land in sequence order.
        let batches: Vec<Vec<u8>> = (0..5).map(|i| pbatch(1, 0, i * 4, 4, i as u64)).collect();
        let appends = batches.iter().rev().map(|b| {
            let log = log.clone();
            async move { log.append(&view(b), Ack::Durable).await.unwrap() }
        });
        let mut results = join_all(appends).await;
        results.reverse();
        for (i, a) in results.iter().enumerate() {
            assert_eq!(a.base_offset, i as u64 * 4, "batch {i}");
        }
        let read = log.read(0, 1 << 20).await.unwrap();
        let tags: Vec<u64> = decode(read.as_bytes()).iter().map(|r| r.1).collect();
        assert_eq!(tags, (0..5u64).flat_map(|t| [t; 4]).collect::<Vec<_>>());
        Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
    });
}

#[test]
fn a_gap_that_does_not_fill_is_out_of_order_after_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let config = LogConfig {
            reorder_wait: Duration::from_millis(50),
            ..LogConfig::default()
        };
        let log = Log::open(&path, config).await.unwrap();
        log.append(&view(&pbatch(1, 0, 0, 2, 0)), Ack::Written)
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let gap = log
            .append(&view(&pbatch(1, 0, 5, 2, 1)), Ack::Written)
            .await;
        assert_eq!(
            gap,
            Err(LogError::OutOfOrderSequence {
                producer_id: 1,
                got: 5,
                expected: 2
            })
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
        // An old batch no longer remembered is refused at once.
        for seq in 2..12 {
            log.append(&view(&pbatch(1, 0, seq, 1, 2)), Ack::Written)
                .await
                .unwrap();
        }
        assert!(matches!(
            log.append(&view(&pbatch(1, 0, 0, 2, 0)), Ack::Written)
                .await,
            Err(LogError::OutOfOrderSequence { expected: 12, .. })
        ));
        assert_eq!(log.offsets().latest, 12);
        log.close().await.unwrap();
    });
}

#[test]
fn a_newer_epoch_fences_the_older_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, LogConfig::default()).await.unwrap();
        log.append(&view(&pbatch(4, 0, 0, 1, 0)), Ack::Written)
            .await
            .unwrap();
        log.append(&view(&pbatch(4, 1, 0, 1, 1)), Ack::Written)
            .await
            .unwrap();
        assert_eq!(
            log.append(&view(&pbatch(4, 0, 1, 1, 2)), Ack::Written)
                .await,
            Err(LogError::ProducerFenced {
                producer_id: 4,
                epoch: 0,
                current: 1
            })
        );
        assert_eq!(log.offsets().latest, 2);
        log.close().await.unwrap();
    });
}

#[test]
fn duplicates_are_still_recognised_after_reopening_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        // ~20 KiB batches in 64 KiB segments: a roll every few batches,
        // each with a producer snapshot.
        let batches: Vec<Vec<u8>> = (0..20)
            .map(|i| pbatch(i % 3, 0, (i / 3) as i32 * 100, 100, i as u64))
            .collect();
        let mut first = Vec::new();
        {
            let log = Log::open(&path, small_config()).await.unwrap();
            for b in &batches {
                first.push(log.append(&view(b), Ack::Durable).await.unwrap());
            }
            assert!(log.segment_count() > 3);
            log.close().await.unwrap();
        }
        let snapshots = std::fs::read_dir(&path)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".producers")
            })
            .count();
        assert!(snapshots >= 3, "{snapshots} snapshots");
        let log = Log::open(&path, small_config()).await.unwrap();
        let report = log.recovery().clone();
        assert_eq!(report.producers, 3);
        // Only the active segment was replayed, not the whole log.
        assert!(report.producer_bytes_replayed < 64 << 10);
        let end = log.offsets().latest;
        // The last batch of each producer is remembered (as are the
        // seven before it).
        for b in batches.iter().skip(12) {
            let i = batches.iter().position(|x| x == b).unwrap();
            assert_eq!(log.append(&view(b), Ack::Durable).await.unwrap(), first[i]);
        }
        assert_eq!(log.offsets().latest, end);
        // And each producer continues where it left off.
        let next = pbatch(0, 0, 700, 1, 99);
        assert_eq!(
            log.append(&view(&next), Ack::Durable)
                .await
                .unwrap()
                .base_offset,
            end
        );
        log.close().await.unwrap();
    });
}

#[test]
fn a_lost_snapshot_only_makes_recovery_replay_more() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let batches: Vec<Vec<u8>> = (0..12)
            .map(|i| pbatch(5, 0, i * 100, 100, i as u64))
            .collect();
        let mut first = Vec::new();
        {
            let log = Log::open(&path, small_config()).await.unwrap();
            for b in &batches {
                first.push(log.append(&view(b), Ack::Durable).await.unwrap());
            }
            log.close().await.unwrap();
        }
        for entry in std::fs::read_dir(&path).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "producers") {
                std::fs::write(&p, b"garbage").unwrap();
            }
        }
        let log = Log::open(&path, small_config()).await.unwrap();
        assert_eq!(log.recovery().producers, 1);
        assert!(log.recovery().producer_bytes_replayed > 64 << 10);
        let last = batches.len() - 1;
        assert_eq!(
            log.append(&view(&batches[last]), Ack::Durable)
                .await
                .unwrap(),
            first[last]
        );
        log.close().await.unwrap();
    });
}

#[test]
fn a_retry_that_asks_for_durable_after_a_written_original_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, LogConfig::default()).await.unwrap();
        let b = pbatch(11, 0, 0, 4, 0);
        let first = log.append(&view(&b), Ack::Written).await.unwrap();
        // Let the writer and the syncer run until they are idle (the syncer
        // saw no one waiting for durability): from here only the retry can
        // wake the syncer.
        for _ in 0..16 {
            glommio::executor().yield_task_queue_now().await;
        }
        let v = view(&b);
        let again = {
            let retry = std::pin::pin!(log.append(&v, Ack::Durable));
            let limit = std::pin::pin!(glommio::timer::sleep(Duration::from_secs(5)));
            match futures::future::select(retry, limit).await {
                futures::future::Either::Left((again, _)) => again.unwrap(),
                futures::future::Either::Right(_) => panic!("the durable retry was never answered"),
            }
        };
        assert_eq!(again, first);
        assert!(log.offsets().durable >= 4);
        log.close().await.unwrap();
    });
}
