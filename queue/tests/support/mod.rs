//! Helpers shared by the log's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;

use glommio::LocalExecutorBuilder;
use tidegate_proto::batch::{BatchBuilder, BatchIter, BatchView, Record};
use tidegate_queue::LogConfig;

/// Runs `f` on a fresh glommio executor with a small I/O memory area (the
/// memlock limit is 8 MiB for non-root users and glommio charges it thrice).
pub fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(f)
        .expect("executor starts")
        .join()
        .expect("executor finishes")
}

/// A batch of `records` records whose values encode `(tag, i)`, so that a
/// reader can tell exactly which batch and record it got.
pub fn batch(tag: u64, records: u32, value_len: usize, timestamp_ms: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for i in 0..records {
        let mut value = vec![0u8; value_len.max(12)];
        value[..8].copy_from_slice(&tag.to_le_bytes());
        value[8..12].copy_from_slice(&i.to_le_bytes());
        let key = format!("k{tag}-{i}");
        b.push(Record {
            timestamp_ms: timestamp_ms + i as i64,
            key: Some(key.as_bytes()),
            value: Some(&value),
            headers: &[("h", b"v")],
        })
        .unwrap();
    }
    b.finish().unwrap()
}

pub fn view(bytes: &[u8]) -> BatchView<'_> {
    BatchView::parse(bytes).unwrap()
}

/// The `(tag, record index)` pairs and offsets of every record in `bytes`.
pub fn decode(bytes: &[u8]) -> Vec<(u64, u64, u32)> {
    let mut out = Vec::new();
    for batch in BatchIter::new(bytes) {
        let batch = batch.unwrap();
        for r in batch.records() {
            let v = r.value().unwrap();
            let tag = u64::from_le_bytes(v[..8].try_into().unwrap());
            let i = u32::from_le_bytes(v[8..12].try_into().unwrap());
            out.push((r.offset(), tag, i));
        }
    }
    out
}

/// A configuration with small segments so tests roll them.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 64 << 10,
        index_interval_bytes: 1024,
        write_chunk_bytes: 16 << 10,
        write_concurrency: 2,
        preallocate: true,
        ..LogConfig::default()
    }
}

/// Every record of the log, as `(offset, tag, index)`.
pub async fn all_records(log: &tidegate_queue::Log) -> Vec<(u64, u64, u32)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < log.offsets().latest {
        let read = log.read(at, 1 << 20).await.unwrap();
        out.extend(decode(read.as_bytes()));
        at = read.next_offset;
    }
    out
}

/// Checks that a log reopened after a crash that left five batches of ten
/// records takes the next batch at offset 50 and reads all 60 back, then
/// closes it.
pub async fn takes_appends_after_five_batches(log: tidegate_queue::Log) {
    assert_eq!(log.offsets().latest, 50);
    let a = log
        .append(&view(&batch(5, 10, 100, 0)), tidegate_queue::Ack::Durable)
        .await
        .unwrap();
    assert_eq!(a.base_offset, 50);
    assert_eq!(all_records(&log).await.len(), 60);
    log.close().await.unwrap();
}
