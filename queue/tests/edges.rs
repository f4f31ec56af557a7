//! Edge cases found in review: each test names the behaviour it pins.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{fs::OpenOptions, os::unix::fs::FileExt, rc::Rc};

use support::{batch, decode, run, small_config, view};
use tidegate_queue::{
    durable,
    fault::{FaultKind, FaultPlan},
    Ack, Log, LogConfig, LogError,
};

fn log_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn half_created_segment_after_a_sealed_one_is_removed_and_appends_keep_acknowledged_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let p = path.clone();
    let next = run(move || async move {
        let log = Log::open(&p, small_config()).await.unwrap();
        for i in 0..7 {
            log.append(&view(&batch(i, 3, 700, 0)), Ack::Durable)
                .await
                .unwrap();
        }
        let next = log.offsets().next;
        log.close().await.unwrap();
        next
    });
    // A crash while creating the next segment: its file exists, all zeros.
    std::fs::write(path.join(format!("{next:020}.log")), vec![0u8; 4096]).unwrap();
    let p = path.clone();
    run(move || async move {
        let log = Log::open(&p, small_config()).await.unwrap();
        assert_eq!(log.offsets().latest, next);
        for i in 7..12 {
            log.append(&view(&batch(i, 3, 700, 0)), Ack::Durable)
                .await
                .unwrap();
        }
        drop(log);
        let log = Log::open(&p, small_config()).await.unwrap();
        let got = decode(log.read(0, 1 << 20).await.unwrap().as_bytes());
        let want: Vec<_> = (0..36u64).map(|o| (o, o / 3, (o % 3) as u32)).collect();
        assert_eq!(got, want);
        log.close().await.unwrap();
    });
}

/// Writes `n` durable batches, then drops the log without closing it.
fn crash_after(path: &std::path::Path, config: LogConfig, n: u64) {
    let p = path.to_path_buf();
    run(move || async move {
        let log = Log::open(&p, config).await.unwrap();
        for i in 0..n {
            log.append(&view(&batch(i, 1, 900, 0)), Ack::Durable)
                .await
                .unwrap();
        }
        drop(log);
    });
}

/// Flips a byte inside batch `k` (all batches have the same length).
fn damage_batch(path: &std::path::Path, k: u64) {
    let file = log_files(path).pop().unwrap();
    let len = batch(0, 1, 900, 0).len() as u64;
    let at = 64 + k * len + len / 2;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
}

#[test]
fn damage_past_the_last_checkpoint_is_cut_and_reported_with_the_bytes_cut() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes_max: 1 << 20,
        ..LogConfig::default()
    };
    crash_after(dir.path(), config.clone(), 50);
    damage_batch(dir.path(), 5);
    let p = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&p, config).await.unwrap();
        assert_eq!(log.offsets().latest, 5);
        let report = log.recovery();
        let batch_len = batch(0, 1, 900, 0).len() as u64;
        // What was cut is the 45 damaged-or-after batches, not the
        // preallocated zeros behind them.
        assert!(report.truncated_bytes >= 45 * batch_len, "{report:?}");
        assert!(report.truncated_bytes < 46 * batch_len + 4096, "{report:?}");
        assert!(report.truncation_reason.is_some());
        log.close().await.unwrap();
    });
}

#[test]
fn damage_before_the_last_checkpoint_is_reported_as_corruption_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes_max: 1 << 20,
        checkpoint_interval_bytes: 4096,
        ..LogConfig::default()
    };
    crash_after(dir.path(), config.clone(), 50);
    damage_batch(dir.path(), 5);
    let p = dir.path().to_path_buf();
    run(move || async move {
        // Checkpointed data is trusted at open (like a sealed segment) and
        // nothing is cut; reading the damaged batch reports it.
        let log = Log::open(&p, config).await.unwrap();
        assert_eq!(log.recovery().truncated_bytes, 0);
        assert_eq!(log.offsets().latest, 50);
        assert!(matches!(
            log.read(5, 1 << 20).await,
            Err(LogError::Corrupt { .. })
        ));
        assert_eq!(log.read(0, 10).await.unwrap().first_offset, 0);
        log.close().await.unwrap();
    });
}

#[test]
fn reads_skip_batches_larger_than_the_read_window() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_path_buf();
    run(move || async move {
        let config = LogConfig {
            index_interval_bytes: 1 << 20,
            ..LogConfig::default()
        };
        let log = Log::open(&p, config).await.unwrap();
        for i in 0..3 {
            log.append(&view(&batch(i, 1, 100_000, 0)), Ack::Written)
                .await
                .unwrap();
        }
        let r = log.read(1, 0).await.unwrap();
        assert_eq!((r.first_offset, r.next_offset), (1, 2));
        let r = log.read(2, 0).await.unwrap();
        assert_eq!(decode(r.as_bytes()), vec![(2, 2, 0)]);
        log.close().await.unwrap();
    });
}

#[test]
fn retention_of_u64_max_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_path_buf();
    run(move || async move {
        let config = LogConfig {
            retention_ms: Some(u64::MAX),
            ..small_config()
        };
        let log = Log::open(&p, config).await.unwrap();
        for i in 0..100 {
            log.append(&view(&batch(i, 2, 700, 1_000)), Ack::Written)
                .await
                .unwrap();
        }
        let report = log.enforce_retention(i64::MAX).await.unwrap();
        assert_eq!(report.segments_deleted, 0);
        assert_eq!(log.offsets().earliest, 0);
        log.close().await.unwrap();
    });
}

#[test]
fn long_poll_returns_when_the_log_fails() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_path_buf();
    run(move || async move {
        let log = Rc::new(Log::open(&p, small_config()).await.unwrap());
        let waiter = {
            let log = log.clone();
            glommio::spawn_local(async move { log.wait_for(0).await })
        };
        log.inject_faults(FaultPlan {
            fail_write: Some((0, FaultKind::Io)),
            ..FaultPlan::default()
        });
        let err = log
            .append(&view(&batch(0, 1, 10, 0)), Ack::Written)
            .await
            .unwrap_err();
        assert!(matches!(err, LogError::Failed(_)), "{err}");
        assert!(matches!(waiter.await, Err(LogError::Failed(_))));
    });
}

#[test]
fn concurrent_durable_writes_of_two_files_keep_their_own_content() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("x.meta"), dir.path().join("x.offsets"));
    let (a2, b2) = (a.clone(), b.clone());
    run(move || async move {
        let (ra, rb) = futures::join!(
            durable::write(&a2, b"meta"),
            durable::write(&b2, b"offsets")
        );
        ra.unwrap();
        rb.unwrap();
        assert_eq!(
            durable::read(&a2).await.unwrap().as_deref(),
            Some(&b"meta"[..])
        );
        assert_eq!(
            durable::read(&b2).await.unwrap().as_deref(),
            Some(&b"offsets"[..])
        );
    });
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn appends_are_admitted_in_call_order_when_waiting_for_room() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_path_buf();
    run(move || async move {
        let config = LogConfig {
            pending_bytes_max: 16 << 10,
            ..LogConfig::default()
        };
        let log = Rc::new(Log::open(&p, config).await.unwrap());
        // Big and small batches alternate; the small ones would fit where
        // the big ones must wait.
        let batches: Vec<Vec<u8>> = (0..40)
            .map(|i| batch(i, 1, if i % 2 == 0 { 12_000 } else { 100 }, 0))
            .collect();
        let results = futures::future::join_all(batches.iter().map(|b| {
            let log = log.clone();
            async move {
                log.append(&view(b), Ack::Written)
                    .await
                    .unwrap()
                    .base_offset
            }
        }))
        .await;
        assert_eq!(results, (0..40).collect::<Vec<u64>>());
    });
}
