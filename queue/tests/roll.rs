//! Segment rolls (`log/roll.rs`): the seal, the producer snapshot and the
//! next segment's staging run at once, and the staged file is renamed into
//! place only after all three. What the files say afterwards, and what a
//! failure or a crash in the middle leaves, is checked here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use support::{all_records, batch, run, takes_appends_after_five_batches, view};
use tidegate_queue::{
    fault::{FaultKind, FaultPlan},
    Ack, Log, LogConfig, LogError, PrepareSegments,
};

const SEGMENT: u64 = 64 << 10;

fn config(prepare_segments: PrepareSegments) -> LogConfig {
    LogConfig {
        segment_bytes_max: SEGMENT,
        prepare_segments,
        ..LogConfig::default()
    }
}

fn names(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

fn rolls_leave_every_file_in_place(prepare_segments: PrepareSegments) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, config(prepare_segments)).await.unwrap();
        for tag in 0..400 {
            log.append(&view(&batch(tag, 10, 100, 0)), Ack::Durable)
                .await
                .unwrap();
        }
        log.close().await.unwrap();
    });
    let logs = names(dir.path(), ".log");
    assert!(logs.len() >= 5, "only {} segments", logs.len());
    let base = |name: &str| name.trim_end_matches(".log").to_string();
    // Every sealed segment has its final index, and every segment after
    // the first the producer snapshot taken at its base.
    let indexes = names(dir.path(), ".index");
    let snapshots = names(dir.path(), ".producers");
    for name in &logs[..logs.len() - 1] {
        assert!(indexes.contains(&format!("{}.index", base(name))), "{name}");
    }
    for name in &logs[1..] {
        assert!(
            snapshots.contains(&format!("{}.producers", base(name))),
            "{name}"
        );
    }
    // Nothing staged is left behind.
    assert_eq!(names(dir.path(), ".tmp"), Vec::<String>::new());

    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, config(prepare_segments)).await.unwrap();
        let records = all_records(&log).await;
        assert_eq!(records.len(), 4000);
        let tags: Vec<u64> = records.iter().step_by(10).map(|r| r.1).collect();
        assert_eq!(tags, (0..400).collect::<Vec<u64>>());
        log.close().await.unwrap();
    });
}

#[test]
fn rolls_leave_every_file_in_place_from_new_files() {
    rolls_leave_every_file_in_place(PrepareSegments::Off);
}

#[test]
fn rolls_leave_every_file_in_place_from_prepared_spares() {
    rolls_leave_every_file_in_place(PrepareSegments::On);
}

#[test]
fn what_a_crash_leaves_of_a_staged_segment_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, config(PrepareSegments::Off))
            .await
            .unwrap();
        for tag in 0..5 {
            log.append(&view(&batch(tag, 10, 100, 0)), Ack::Durable)
                .await
                .unwrap();
        }
        log.close().await.unwrap();
    });
    // A crash before the rename leaves the staged file: a valid header
    // followed by zeros, under its temporary name.
    let staged = dir.path().join(format!("{:020}.log.staged.tmp", 50));
    std::fs::copy(dir.path().join(format!("{:020}.log", 0)), &staged).unwrap();

    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, config(PrepareSegments::Off))
            .await
            .unwrap();
        assert!(!staged.exists());
        takes_appends_after_five_batches(log).await;
    });
}

/// Written acks, so that every fdatasync comes from a roll: its seal, its
/// index, its staged segment. Failing each of the first rolls' in turn
/// fails the log, leaves no staged file, and loses nothing acknowledged.
#[test]
fn a_failed_fdatasync_anywhere_in_a_roll_fails_the_log_cleanly() {
    for at in 0..7 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let acked = run(move || async move {
            let log = Log::open(&path, config(PrepareSegments::Off))
                .await
                .unwrap();
            log.inject_faults(FaultPlan {
                fail_sync: Some((at, FaultKind::Io)),
                ..FaultPlan::default()
            });
            let mut acked = 0u64;
            let mut failed = None;
            for tag in 0..400 {
                match log
                    .append(&view(&batch(tag, 10, 100, 0)), Ack::Written)
                    .await
                {
                    Ok(_) => acked = tag + 1,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            assert!(
                matches!(failed, Some(LogError::Failed(_))),
                "sync {at}: {failed:?}"
            );
            let _ = log.close().await;
            acked
        });
        // Neither the staged segment nor a staged index or snapshot.
        assert_eq!(names(dir.path(), ".tmp"), Vec::<String>::new(), "sync {at}");
        let path = dir.path().to_path_buf();
        run(move || async move {
            let log = Log::open(&path, config(PrepareSegments::Off))
                .await
                .unwrap();
            let tags: Vec<u64> = all_records(&log)
                .await
                .iter()
                .step_by(10)
                .map(|r| r.1)
                .collect();
            assert!(tags.len() as u64 >= acked, "sync {at}");
            assert_eq!(tags, (0..tags.len() as u64).collect::<Vec<u64>>());
            log.close().await.unwrap();
        });
    }
}
