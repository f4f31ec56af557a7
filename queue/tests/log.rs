//! Behaviour of one partition log on a real disk (glommio DMA files).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::rc::Rc;

use futures::future::join_all;
use support::{batch, decode, run, small_config, view};
use tidegate_queue::{
    fault::{FaultKind, FaultPlan},
    Ack, Log, LogConfig, LogError,
};

#[test]
fn appended_batches_read_back_exactly_as_stored_with_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, LogConfig::default()).await.unwrap();
        let b0 = batch(0, 3, 20, 1_000);
        let b1 = batch(1, 2, 20, 2_000);
        let a0 = log.append(&view(&b0), Ack::Written).await.unwrap();
        let a1 = log.append(&view(&b1), Ack::Durable).await.unwrap();
        assert_eq!((a0.base_offset, a0.last_offset), (0, 2));
        assert_eq!((a1.base_offset, a1.last_offset), (3, 4));
        let offsets = log.offsets();
        assert_eq!(
            (offsets.earliest, offsets.latest, offsets.durable),
            (0, 5, 5)
        );

        let read = log.read(0, 1 << 20).await.unwrap();
        assert_eq!((read.first_offset, read.next_offset), (0, 5));
        let bytes = read.as_bytes();
        assert_eq!(bytes.len(), b0.len() + b1.len());
        // Stored bytes are the producer's bytes with only the base offset set.
        assert_eq!(&bytes[8..b0.len()], &b0[8..]);
        assert_eq!(&bytes[b0.len() + 8..], &b1[8..]);
        assert_eq!(
            decode(bytes),
            vec![(0, 0, 0), (1, 0, 1), (2, 0, 2), (3, 1, 0), (4, 1, 1)]
        );
        // A read from the middle of a batch returns that batch whole.
        let mid = log.read(4, 1 << 20).await.unwrap();
        assert_eq!(mid.first_offset, 3);
        assert!(log.read(5, 1 << 20).await.unwrap().is_empty());
        assert!(matches!(
            log.read(6, 1024).await,
            Err(LogError::OffsetOutOfRange { requested: 6, .. })
        ));
        log.close().await.unwrap();
    });
}

#[test]
fn reads_respect_max_bytes_but_always_return_one_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, LogConfig::default()).await.unwrap();
        let big = batch(0, 10, 1000, 0);
        for _ in 0..3 {
            log.append(&view(&big), Ack::Written).await.unwrap();
        }
        let one = log.read(0, 10).await.unwrap();
        assert_eq!((one.first_offset, one.next_offset), (0, 10));
        assert_eq!(one.as_bytes().len(), big.len());
        let two = log.read(0, 2 * big.len() + 100).await.unwrap();
        assert_eq!(two.next_offset, 20);
        log.close().await.unwrap();
    });
}

#[test]
fn concurrent_durable_appends_share_fdatasyncs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Rc::new(Log::open(&path, LogConfig::default()).await.unwrap());
        let batches: Vec<Vec<u8>> = (0..200).map(|i| batch(i, 5, 100, 0)).collect();
        let acks = join_all(batches.iter().map(|b| {
            let log = log.clone();
            async move { log.append(&view(b), Ack::Durable).await }
        }))
        .await;
        let mut bases: Vec<u64> = acks.into_iter().map(|a| a.unwrap().base_offset).collect();
        bases.sort_unstable();
        assert_eq!(bases, (0..200).map(|i| i * 5).collect::<Vec<_>>());
        let stats = log.stats();
        assert!(
            stats.syncs < 20,
            "200 durable appends took {} syncs",
            stats.syncs
        );
        assert_eq!(log.offsets().durable, 1000);
        Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
    });
}

#[test]
fn segments_roll_at_the_size_limit_and_reads_cross_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, small_config()).await.unwrap();
        for i in 0..100 {
            log.append(&view(&batch(i, 4, 500, i as i64)), Ack::Written)
                .await
                .unwrap();
        }
        assert!(log.segment_count() > 3, "{} segments", log.segment_count());
        let mut next = 0;
        let mut seen = Vec::new();
        while next < 400 {
            let r = log.read(next, 5000).await.unwrap();
            assert_eq!(r.first_offset, next);
            seen.extend(decode(r.as_bytes()));
            next = r.next_offset;
        }
        assert_eq!(seen.len(), 400);
        for (i, (offset, tag, idx)) in seen.into_iter().enumerate() {
            assert_eq!((offset, tag, idx), (i as u64, i as u64 / 4, (i % 4) as u32));
        }
        log.close().await.unwrap();
        let names: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names
            .iter()
            .any(|n| n.to_string_lossy().ends_with(".index")));
    });
}

#[test]
fn reopening_recovers_every_batch_and_continues_the_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, small_config()).await.unwrap();
        for i in 0..50 {
            log.append(&view(&batch(i, 3, 300, 0)), Ack::Written)
                .await
                .unwrap();
        }
        log.close().await.unwrap();

        let log = Log::open(&path, small_config()).await.unwrap();
        assert_eq!(log.offsets().latest, 150);
        assert_eq!(log.recovery().truncated_bytes, 0);
        let a = log
            .append(&view(&batch(50, 3, 300, 0)), Ack::Durable)
            .await
            .unwrap();
        assert_eq!(a.base_offset, 150);
        let r = log.read(140, 1 << 20).await.unwrap();
        assert_eq!(r.first_offset, 138);
        drop(log); // no close: like a crash after a durable ack

        let log = Log::open(&path, small_config()).await.unwrap();
        assert_eq!(log.offsets().latest, 153);
        let mut all = Vec::new();
        let mut next = 0;
        while next < 153 {
            let r = log.read(next, 1 << 20).await.unwrap();
            all.extend(decode(r.as_bytes()));
            next = r.next_offset;
        }
        assert_eq!(all.len(), 153);
        log.close().await.unwrap();
    });
}

#[test]
fn fresh_data_directory_reads_work_on_a_new_executor() {
    // glommio's polled-I/O probe reads the first DMA file a thread opens; an
    // empty first file used to make every later read fail with EOPNOTSUPP.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh");
    run(move || async move {
        let log = Log::open(&path, LogConfig::default()).await.unwrap();
        log.append(&view(&batch(7, 1, 10, 0)), Ack::Written)
            .await
            .unwrap();
        assert_eq!(
            decode(log.read(0, 4096).await.unwrap().as_bytes()),
            vec![(0, 7, 0)]
        );
        log.close().await.unwrap();
    });
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, small_config()).await.unwrap();
        // batch i holds records with timestamps 1000*i + 0..4
        for i in 0..60 {
            log.append(&view(&batch(i, 4, 400, 1000 * i as i64)), Ack::Written)
                .await
                .unwrap();
        }
        assert_eq!(log.offset_for_timestamp(i64::MIN).await.unwrap(), Some(0));
        assert_eq!(log.offset_for_timestamp(0).await.unwrap(), Some(0));
        assert_eq!(log.offset_for_timestamp(2).await.unwrap(), Some(2));
        assert_eq!(
            log.offset_for_timestamp(1000 * 37 + 3).await.unwrap(),
            Some(37 * 4 + 3)
        );
        assert_eq!(
            log.offset_for_timestamp(1000 * 37 + 4).await.unwrap(),
            Some(38 * 4)
        );
        assert_eq!(log.offset_for_timestamp(1000 * 60).await.unwrap(), None);
        log.close().await.unwrap();
    });
}

#[test]
fn retention_deletes_whole_old_segments_by_size_and_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let config = LogConfig {
            retention_bytes: Some(200 << 10),
            ..small_config()
        };
        let log = Log::open(&path, config).await.unwrap();
        for i in 0..400 {
            log.append(&view(&batch(i, 2, 500, 1_000 + i as i64)), Ack::Written)
                .await
                .unwrap();
        }
        let before = log.segment_count();
        let report = log.enforce_retention(10_000).await.unwrap();
        assert!(report.segments_deleted > 0);
        assert_eq!(log.segment_count(), before - report.segments_deleted);
        assert!(log.size_bytes() <= 200 << 10);
        let earliest = log.offsets().earliest;
        assert_eq!(report.earliest, earliest);
        assert!(earliest > 0);
        assert!(matches!(
            log.read(0, 100).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(
            log.read(earliest, 100).await.unwrap().first_offset,
            earliest
        );
        log.close().await.unwrap();

        // By age: everything older than the retention is gone, except the
        // active segment.
        let config = LogConfig {
            retention_ms: Some(1),
            ..small_config()
        };
        let log = Log::open(&path, config).await.unwrap();
        assert_eq!(log.offsets().earliest, earliest);
        let report = log.enforce_retention(i64::MAX / 2).await.unwrap();
        assert!(report.segments_deleted > 0);
        assert_eq!(log.segment_count(), 1);
        log.close().await.unwrap();
        let log = Log::open(&path, small_config()).await.unwrap();
        assert_eq!(log.offsets().latest, 800);
        log.close().await.unwrap();
    });
}

#[test]
fn out_of_space_fails_the_append_and_the_log_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, small_config()).await.unwrap();
        for i in 0..2 {
            log.append(&view(&batch(i, 2, 100, 0)), Ack::Written)
                .await
                .unwrap();
        }
        log.inject_faults(FaultPlan {
            fail_write: Some((0, FaultKind::NoSpace)),
            sticky: true,
            ..FaultPlan::default()
        });
        let err = log
            .append(&view(&batch(2, 2, 100, 0)), Ack::Durable)
            .await
            .unwrap_err();
        assert!(matches!(err, LogError::NoSpace(_)), "{err}");
        assert!(matches!(
            log.append(&view(&batch(3, 2, 100, 0)), Ack::Written).await,
            Err(LogError::NoSpace(_))
        ));
        assert!(!log.is_failed());
        assert_eq!(log.offsets().latest, 4);
        log.heal_injected_faults();
        let a = log
            .append(&view(&batch(4, 2, 100, 0)), Ack::Durable)
            .await
            .unwrap();
        assert_eq!(a.base_offset, 4);
        let tags: Vec<u64> = decode(log.read(0, 1 << 20).await.unwrap().as_bytes())
            .into_iter()
            .map(|(_, t, _)| t)
            .collect();
        assert_eq!(tags, vec![0, 0, 1, 1, 4, 4]);
        log.close().await.unwrap();
        let log = Log::open(&path, small_config()).await.unwrap();
        assert_eq!(log.offsets().latest, 6);
        log.close().await.unwrap();
    });
}

#[test]
fn failed_fdatasync_makes_the_log_read_only_and_is_never_retried() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, small_config()).await.unwrap();
        log.append(&view(&batch(0, 2, 100, 0)), Ack::Written)
            .await
            .unwrap();
        log.inject_faults(FaultPlan {
            fail_sync: Some((0, FaultKind::Io)),
            ..FaultPlan::default()
        });
        let err = log
            .append(&view(&batch(1, 2, 100, 0)), Ack::Durable)
            .await
            .unwrap_err();
        assert!(matches!(err, LogError::Failed(_)), "{err}");
        assert!(log.is_failed());
        assert!(matches!(
            log.append(&view(&batch(2, 2, 100, 0)), Ack::Written).await,
            Err(LogError::Failed(_))
        ));
        assert_eq!(log.offsets().durable, 0);
        // Reads keep working.
        assert_eq!(
            decode(log.read(0, 1 << 20).await.unwrap().as_bytes()).len(),
            4
        );
        assert!(log.close().await.is_err());
        // Reopening runs recovery and the log serves again.
        let log = Log::open(&path, small_config()).await.unwrap();
        let a = log
            .append(&view(&batch(3, 1, 10, 0)), Ack::Durable)
            .await
            .unwrap();
        assert_eq!(a.base_offset, 4);
        log.close().await.unwrap();
    });
}

#[test]
fn torn_write_is_truncated_on_reopen_and_acknowledged_data_stays() {
    for blocks in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        run(move || async move {
            let log = Log::open(&path, small_config()).await.unwrap();
            for i in 0..2 {
                log.append(&view(&batch(i, 3, 3000, 0)), Ack::Durable)
                    .await
                    .unwrap();
            }
            log.inject_faults(FaultPlan {
                torn_write: Some((0, blocks)),
                ..FaultPlan::default()
            });
            let err = log
                .append(&view(&batch(2, 3, 3000, 0)), Ack::Durable)
                .await
                .unwrap_err();
            assert!(matches!(err, LogError::Failed(_)), "{err}");
            drop(log);
            let log = Log::open(&path, small_config()).await.unwrap();
            // The unacknowledged batch is either cut off whole or, when the
            // torn prefix happened to hold all of it, present whole.
            let latest = log.offsets().latest;
            assert!(
                latest == 6 || latest == 9,
                "blocks {blocks}: latest {latest}"
            );
            let got = decode(log.read(0, 1 << 20).await.unwrap().as_bytes());
            let expected: Vec<_> = (0..latest).map(|o| (o, o / 3, (o % 3) as u32)).collect();
            assert_eq!(got, expected);
            let a = log
                .append(&view(&batch(9, 1, 10, 0)), Ack::Durable)
                .await
                .unwrap();
            assert_eq!(a.base_offset, latest);
            log.close().await.unwrap();
        });
    }
}

#[test]
fn missing_index_files_are_rebuilt_by_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, small_config()).await.unwrap();
        for i in 0..80 {
            log.append(&view(&batch(i, 2, 700, i as i64 * 10)), Ack::Written)
                .await
                .unwrap();
        }
        log.close().await.unwrap();
        for e in std::fs::read_dir(&path).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "index") {
                std::fs::remove_file(p).unwrap();
            }
        }
        let log = Log::open(&path, small_config()).await.unwrap();
        assert_eq!(log.recovery().indexes_rebuilt, log.segment_count());
        assert_eq!(log.offsets().latest, 160);
        assert_eq!(log.read(101, 10).await.unwrap().first_offset, 100);
        assert_eq!(log.offset_for_timestamp(555).await.unwrap(), Some(112));
        log.close().await.unwrap();
    });
}

#[test]
fn pending_bytes_are_bounded_by_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let config = LogConfig {
            pending_bytes_max: 64 << 10,
            ..LogConfig::default()
        };
        let log = Rc::new(Log::open(&path, config).await.unwrap());
        let b = batch(0, 10, 1000, 0);
        let peak = Rc::new(std::cell::Cell::new(0u64));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (log, b, peak) = (log.clone(), b.clone(), peak.clone());
                glommio::spawn_local(async move {
                    log.append(&view(&b), Ack::None).await.unwrap();
                    let o = log.offsets();
                    let queued = (o.next - o.latest) / 10 * b.len() as u64;
                    peak.set(peak.get().max(queued));
                })
            })
            .collect();
        join_all(tasks).await;
        assert!(
            peak.get() <= (64 << 10) + b.len() as u64,
            "peak {}",
            peak.get()
        );
        log.wait_for(999).await.unwrap();
        Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
    });
}

#[test]
fn sync_failure_with_writes_in_flight_fails_every_waiter_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Rc::new(Log::open(&path, small_config()).await.unwrap());
        log.inject_faults(FaultPlan {
            fail_sync: Some((0, FaultKind::Io)),
            ..FaultPlan::default()
        });
        let batches: Vec<Vec<u8>> = (0..64).map(|i| batch(i, 3, 2000, 0)).collect();
        let results = join_all(batches.iter().enumerate().map(|(i, b)| {
            let log = log.clone();
            let ack = if i % 2 == 0 {
                Ack::Durable
            } else {
                Ack::Written
            };
            async move { log.append(&view(b), ack).await }
        }))
        .await;
        // No durable append can succeed: the one sync failed and is never retried.
        for (i, r) in results.iter().enumerate() {
            if i % 2 == 0 {
                assert!(matches!(r, Err(LogError::Failed(_))), "{i}: {r:?}");
            }
        }
        assert!(log.is_failed());
        assert_eq!(log.offsets().durable, 0);
        let log = Rc::try_unwrap(log).ok().unwrap();
        assert!(log.close().await.is_err());
        // Whatever was written before the failure is intact after reopening.
        let log = Log::open(&path, small_config()).await.unwrap();
        let latest = log.offsets().latest;
        let mut next = 0;
        while next < latest {
            let r = log.read(next, 1 << 20).await.unwrap();
            assert!(!decode(r.as_bytes()).is_empty());
            next = r.next_offset;
        }
        log.close().await.unwrap();
    });
}

#[test]
fn durable_small_files_round_trip_and_detect_damage() {
    use tidegate_queue::durable;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.bin");
    let p = path.clone();
    run(move || async move {
        assert_eq!(durable::read(&p).await.unwrap(), None);
        durable::write(&p, b"first").await.unwrap();
        durable::write(&p, b"second version").await.unwrap();
        assert_eq!(
            durable::read(&p).await.unwrap().as_deref(),
            Some(&b"second version"[..])
        );
        durable::write(&p, b"").await.unwrap();
        assert_eq!(durable::read(&p).await.unwrap().as_deref(), Some(&b""[..]));
        durable::write(&p, b"payload").await.unwrap();
    });
    let mut bytes = std::fs::read(&path).unwrap();
    let flip_at = [0usize, 9, 17, 22, 25];
    for at in flip_at {
        let mut bad = bytes.clone();
        bad[at] ^= 0x04;
        std::fs::write(&path, &bad).unwrap();
        let p = path.clone();
        let r = run(move || async move { durable::read(&p).await });
        assert!(
            matches!(r, Err(LogError::Corrupt { .. })),
            "flip at {at}: {r:?}"
        );
    }
    bytes.truncate(20);
    std::fs::write(&path, &bytes).unwrap();
    let p = path.clone();
    let r = run(move || async move { durable::read(&p).await });
    assert!(matches!(r, Err(LogError::Corrupt { .. })));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary files left: {names:?}");
}
