//! Message-id deduplication on a real log (docs/SEMANTICS.md §6): a
//! message whose id was seen within the window is stored as a marker at
//! its own offset, in a later batch, in the same batch, and after the log
//! is reopened (the ids are rebuilt from the records); a log without a
//! window stores every copy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{run, view};
use tidegate_proto::batch::{BatchBuilder, BatchIter, Record};
use tidegate_queue::{
    dedup::{is_marker, DUPLICATE_OF_HEADER, MESSAGE_ID_HEADER},
    Ack, Log, LogConfig, REBUILD_RECORDS_PER_ID,
};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A batch of messages with these ids (`None`: no id), values `v<i>`.
fn with_ids(ids: &[Option<&str>]) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for (i, id) in ids.iter().enumerate() {
        let headers: Vec<(&str, &[u8])> = id
            .iter()
            .map(|id| (MESSAGE_ID_HEADER, id.as_bytes()))
            .collect();
        let value = format!("v{i}");
        b.push(Record {
            timestamp_ms: now_ms(),
            key: None,
            value: Some(value.as_bytes()),
            headers: &headers,
        })
        .unwrap();
    }
    b.finish().unwrap()
}

/// Every record of the log: (offset, value, duplicate-of).
async fn records(log: &Log) -> Vec<(u64, Option<String>, Option<u64>)> {
    let read = log.read(0, 1 << 20).await.unwrap();
    let mut out = Vec::new();
    for batch in BatchIter::stored(read.as_bytes()) {
        for r in batch.unwrap().records() {
            let value = r.value().map(|v| String::from_utf8(v.to_vec()).unwrap());
            let dup = r
                .headers()
                .find(|(n, _)| *n == DUPLICATE_OF_HEADER)
                .map(|(_, v)| std::str::from_utf8(v).unwrap().parse().unwrap());
            assert_eq!(is_marker(&r), dup.is_some());
            out.push((r.offset(), value, dup));
        }
    }
    out
}

fn dedup_config() -> LogConfig {
    LogConfig {
        dedup_window_ms: Some(3_600_000),
        ..LogConfig::default()
    }
}

#[test]
fn repeated_message_ids_are_stored_once_across_batches_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, dedup_config()).await.unwrap();
        let first = with_ids(&[Some("a"), None, Some("b")]);
        assert_eq!(
            log.append(&view(&first), Ack::Durable)
                .await
                .unwrap()
                .base_offset,
            0
        );
        let again = with_ids(&[Some("b"), Some("c"), Some("c"), None]);
        let appended = log.append(&view(&again), Ack::Durable).await.unwrap();
        assert_eq!((appended.base_offset, appended.last_offset), (3, 6));
        assert_eq!(
            records(&log).await,
            [
                (0, Some("v0".into()), None),
                (1, Some("v1".into()), None),
                (2, Some("v2".into()), None),
                (3, None, Some(2)),
                (4, Some("v1".into()), None),
                (5, None, Some(4)),
                (6, Some("v3".into()), None),
            ]
        );
        assert_eq!(log.stats().dedup_markers, 2);
        log.close().await.unwrap();

        // Reopened: the ids come back from the records.
        let log = Log::open(&path, dedup_config()).await.unwrap();
        let later = with_ids(&[Some("a"), Some("c"), Some("d")]);
        log.append(&view(&later), Ack::Durable).await.unwrap();
        let tail: Vec<_> = records(&log).await.into_iter().skip(7).collect();
        assert_eq!(
            tail,
            [
                (7, None, Some(0)),
                (8, None, Some(4)),
                (9, Some("v2".into()), None)
            ]
        );
        log.close().await.unwrap();
    });
}

#[test]
fn without_a_window_every_copy_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let log = Log::open(&path, LogConfig::default()).await.unwrap();
        let b = with_ids(&[Some("a"), Some("a")]);
        log.append(&view(&b), Ack::Durable).await.unwrap();
        log.append(&view(&b), Ack::Durable).await.unwrap();
        let all = records(&log).await;
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(|(_, v, dup)| v.is_some() && dup.is_none()));
        log.close().await.unwrap();
    });
}

#[test]
fn the_rebuild_reads_only_the_newest_records_the_table_can_hold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let config = || LogConfig {
        dedup_ids_max: 10,
        ..dedup_config()
    };
    run(move || async move {
        let log = Log::open(&path, config()).await.unwrap();
        // 100 batches of 10 records, every record with its own id.
        for b in 0..100 {
            let ids: Vec<String> = (0..10).map(|i| format!("id-{b}-{i}")).collect();
            let ids: Vec<Option<&str>> = ids.iter().map(|s| Some(s.as_str())).collect();
            log.append(&view(&with_ids(&ids)), Ack::Durable)
                .await
                .unwrap();
        }
        log.close().await.unwrap();

        let log = Log::open(&path, config()).await.unwrap();
        // At most the newest 4 x 10 records, plus the batch the first of
        // them is in.
        let bound = REBUILD_RECORDS_PER_ID * 10 + 10;
        let read = log.stats().records_read;
        assert!((1..=bound).contains(&read), "read {read} records");
        // The newest ids are remembered: their copies become markers.
        let again = with_ids(&[Some("id-99-9"), Some("id-99-0"), Some("new")]);
        log.append(&view(&again), Ack::Durable).await.unwrap();
        assert_eq!(log.stats().dedup_markers, 2);
        log.close().await.unwrap();
    });
}
