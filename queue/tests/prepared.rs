//! Segments prepared in the background (`LogConfig::prepare_segments`):
//! a roll takes the zero-filled spare, nothing is lost or reordered, and
//! what a crash can leave of a spare (the temporary file, or the renamed
//! file before its header) is removed at open.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::{all_records, batch, run, takes_appends_after_five_batches, view};
use tidegate_queue::{
    fault::{FaultKind, FaultPlan},
    Ack, GateConfig, GateFlow, Log, LogConfig, LogError, PrepareSegments, WriteGate,
};

const SEGMENT: u64 = 1 << 20;
const SPARE: &str = "next-segment.spare.tmp";

fn prepared() -> LogConfig {
    LogConfig {
        segment_bytes_max: SEGMENT,
        prepare_segments: PrepareSegments::On,
        ..LogConfig::default()
    }
}

fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

/// Appends durable batches of 10 records, tagged from `*tag` on, until
/// the log has written `bytes`.
async fn append_until(log: &Log, tag: &mut u64, bytes: u64) {
    while log.stats().bytes_written < bytes {
        log.append(&view(&batch(*tag, 10, 1000, 0)), Ack::Durable)
            .await
            .unwrap();
        *tag += 1;
    }
}

/// Waits for the log's spare to be made (it needs no further append).
async fn spare_made(log: &Log) {
    while log.stats().segments_prepared == 0 {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn a_roll_takes_the_prepared_segment_and_every_batch_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let expected = run(move || async move {
        let log = Log::open(&path, prepared()).await.unwrap();
        let mut tag = 0;
        // Half a segment: the spare is prepared from here on.
        append_until(&log, &mut tag, SEGMENT / 2).await;
        spare_made(&log).await;
        assert!(path.join(SPARE).exists());
        // On past the roll, and past the next one's half.
        append_until(&log, &mut tag, SEGMENT * 2).await;
        let stats = log.stats();
        assert!(stats.rolls_prepared >= 1, "{stats:?}");
        assert_eq!(segments(&path).len(), 3, "{:?}", segments(&path));
        let records = all_records(&log).await;
        assert_eq!(records.len() as u64, tag * 10);
        for (i, &(offset, t, n)) in records.iter().enumerate() {
            assert_eq!(
                (offset, t, u64::from(n)),
                (i as u64, i as u64 / 10, i as u64 % 10)
            );
        }
        log.close().await.unwrap();
        assert!(!path.join(SPARE).exists(), "a spare outlived its log");
        records
    });

    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, prepared()).await.unwrap();
        assert_eq!(log.recovery().truncated_bytes, 0, "{:?}", log.recovery());
        assert_eq!(all_records(&log).await, expected);
        log.close().await.unwrap();
    });
}

#[test]
fn what_a_crash_leaves_of_a_spare_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, prepared()).await.unwrap();
        for tag in 0..5 {
            log.append(&view(&batch(tag, 10, 100, 0)), Ack::Durable)
                .await
                .unwrap();
        }
        log.close().await.unwrap();
    });
    // A crash while preparing leaves the temporary file; a crash between
    // a roll's rename and its header leaves a segment of zeros after the
    // last one.
    let zeros = vec![0u8; SEGMENT as usize];
    std::fs::write(dir.path().join(SPARE), &zeros).unwrap();
    let renamed = dir.path().join(format!("{:020}.log", 50));
    std::fs::write(&renamed, &zeros).unwrap();

    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, prepared()).await.unwrap();
        assert!(!path.join(SPARE).exists());
        assert!(!renamed.exists());
        // The last real segment takes appends again.
        takes_appends_after_five_batches(log).await;
    });
}

#[test]
fn auto_prepares_as_on_does_while_the_gate_holds_no_append_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let config = LogConfig {
            prepare_segments: PrepareSegments::Auto,
            ..prepared()
        };
        // A gate whose target (a second of writes) a lone log never
        // reaches: the disk always has time to spare.
        let gate = WriteGate::new(GateConfig {
            target: Some(Duration::from_secs(1)),
            interval: Duration::from_millis(10),
            syncs: 4,
            sync_barriers: false,
        });
        let log = Log::open_gated(&path, config, GateFlow::new(gate))
            .await
            .unwrap();
        let mut tag = 0;
        append_until(&log, &mut tag, SEGMENT / 2).await;
        // The spare is made without any further append.
        spare_made(&log).await;
        append_until(&log, &mut tag, SEGMENT * 2).await;
        let stats = log.stats();
        assert!(stats.rolls_prepared >= 1, "{stats:?}");
        assert_eq!(all_records(&log).await.len() as u64, tag * 10);
        log.close().await.unwrap();
    });
}

#[test]
fn auto_behind_a_gate_without_a_target_makes_no_spare() {
    without_spares(PrepareSegments::Auto);
}

#[test]
fn without_the_setting_no_spare_is_made() {
    without_spares(PrepareSegments::Off);
}

/// `Log::open`'s gate has no target: it cannot tell the disk's spare time.
fn without_spares(prepare_segments: PrepareSegments) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let config = LogConfig {
            prepare_segments,
            ..prepared()
        };
        let log = Log::open(&path, config).await.unwrap();
        let mut tag = 0;
        while log.stats().bytes_written < SEGMENT * 2 {
            log.append(&view(&batch(tag, 10, 1000, 0)), Ack::Durable)
                .await
                .unwrap();
            assert!(!path.join(SPARE).exists());
            tag += 1;
        }
        let stats = log.stats();
        assert_eq!((stats.segments_prepared, stats.rolls_prepared), (0, 0));
        log.close().await.unwrap();
    });
}

#[test]
fn a_full_disk_gives_back_the_prepared_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, prepared()).await.unwrap();
        let mut tag = 0;
        while log.stats().segments_prepared == 0 {
            log.append(&view(&batch(tag, 10, 1000, 0)), Ack::Durable)
                .await
                .unwrap();
            tag += 1;
        }
        assert!(path.join(SPARE).exists());
        log.inject_faults(FaultPlan {
            fail_write: Some((0, FaultKind::NoSpace)),
            ..FaultPlan::default()
        });
        let err = log
            .append(&view(&batch(tag, 10, 1000, 0)), Ack::Durable)
            .await
            .unwrap_err();
        assert!(matches!(err, LogError::NoSpace(_)), "{err:?}");
        assert!(
            !path.join(SPARE).exists(),
            "the spare still holds its space"
        );
        // The log goes on, and rolls without a spare until the next one.
        log.heal_injected_faults();
        while log.stats().bytes_written < SEGMENT * 2 {
            log.append(&view(&batch(tag, 10, 1000, 0)), Ack::Durable)
                .await
                .unwrap();
            tag += 1;
        }
        assert_eq!(all_records(&log).await.len() as u64, tag * 10);
        log.close().await.unwrap();
    });
}
