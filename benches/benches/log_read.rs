//! A read at the tail of a partition log, as a fetch of a consumer that
//! keeps up makes it: from the tail cache against from the disk
//! (`LogConfig::read_cache_bytes` 4 MiB against 0), in one run.
//!
//! - `log_read/{cache,disk}`: one iteration reads the newest batch (1000
//!   records of 100 B) with a 1 MiB limit and turns it into the `Bytes` a
//!   response is sent from (`ReadBatches::into_bytes`: shared from the
//!   cache, one copy from a disk read). Throughput is in records.
//! - `log_read/catch_up_{all_open,kept,reopened}`: a consumer catching up,
//!   one batch per read from the start of a log of 1 MiB segments (about ten
//!   batches each, seven segments), round and round, from disk.
//!   `all_open`: `open_segments_max` above the segment count, so every file
//!   stays open (what a log did before the bound); `kept`: the default
//!   (4 files kept, so the walk opens a segment's file once as it enters
//!   it); `reopened`: 0, a sealed segment's file opened and closed for every
//!   read. The differences are what the opens cost.
//!
//! The log is written once per function, then only read; it lives under
//! `target/bench-log/` (the repository's filesystem), or under
//! `$TIDEGATE_BENCH_DIR`.
//!
//! Run with
//! `cargo bench -p tidegate-benches --bench log_read -- --warm-up-time 1 --measurement-time 5`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidegate_benches::{batch_bytes, Shard};
use tidegate_proto::batch::BatchView;
use tidegate_queue::{Ack, Log, LogConfig};

const RECORDS: u32 = 1000;
const VALUE_BYTES: usize = 100;
/// Batches written before reading: more than the cache holds.
const BATCHES: u32 = 64;

/// A log in `dir` holding `BATCHES` copies of one batch, and that batch.
async fn written(dir: &std::path::Path, config: LogConfig) -> (Log, Vec<u8>) {
    let log = Log::open(dir, config).await.unwrap();
    let bytes = batch_bytes(RECORDS, VALUE_BYTES);
    let view = BatchView::parse(&bytes).unwrap();
    for _ in 0..BATCHES {
        log.append(&view, Ack::Durable).await.unwrap();
    }
    (log, bytes)
}

/// Writes the log, then times `iters` tail reads per request until the
/// request channel closes. Returns how many reads came from memory.
async fn serve(
    dir: PathBuf,
    read_cache_bytes: usize,
    requests: mpsc::Receiver<u64>,
    replies: mpsc::Sender<Duration>,
) -> (u64, u64) {
    let config = LogConfig {
        read_cache_bytes,
        ..LogConfig::default()
    };
    let (log, bytes) = written(&dir, config).await;
    let newest = log.offsets().latest - u64::from(RECORDS);
    let (mut reads, mut from_memory) = (0, 0);
    while let Ok(iters) = requests.recv() {
        let start = Instant::now();
        for _ in 0..iters {
            let read = log.read(newest, 1 << 20).await.unwrap();
            from_memory += u64::from(read.from_memory());
            let out = read.into_bytes();
            assert_eq!(out.len(), bytes.len());
            std::hint::black_box(out);
        }
        reads += iters;
        replies.send(start.elapsed()).unwrap();
    }
    log.close().await.unwrap();
    (reads, from_memory)
}

/// Runs `serve` on its own executor as benchmark `log_read/{name}`, one
/// record batch an iteration; returns what `serve` counted.
fn bench<S, F>(c: &mut Criterion, name: &str, serve: S) -> (u64, u64)
where
    S: FnOnce(PathBuf, mpsc::Receiver<u64>, mpsc::Sender<Duration>) -> F + Send + 'static,
    F: std::future::Future<Output = (u64, u64)> + 'static,
{
    let shard = Shard::spawn(name, serve);
    let mut group = c.benchmark_group("log_read");
    group.throughput(Throughput::Elements(u64::from(RECORDS)));
    group.bench_function(name, |b| b.iter_custom(|iters| shard.time(iters)));
    group.finish();
    shard.finish()
}

fn bench_read(c: &mut Criterion, name: &str, read_cache_bytes: usize) {
    let (reads, from_memory) = bench(c, name, move |dir, requests, replies| {
        serve(dir, read_cache_bytes, requests, replies)
    });
    if reads > 0 {
        eprintln!("log_read/{name}: {from_memory} of {reads} reads from memory");
    }
}

/// Segment size of the catch-up log: about ten batches.
const CATCH_UP_SEGMENT: u64 = 1 << 20;

/// Writes a log of many small segments, then times `iters` reads per
/// request, each the batch after the last, from the start again at the
/// end. Returns the reads and the sealed segment files they opened.
async fn serve_catch_up(
    dir: PathBuf,
    open_segments_max: usize,
    requests: mpsc::Receiver<u64>,
    replies: mpsc::Sender<Duration>,
) -> (u64, u64) {
    let config = LogConfig {
        segment_bytes_max: CATCH_UP_SEGMENT,
        read_cache_bytes: 0,
        open_segments_max,
        ..LogConfig::default()
    };
    let (log, bytes) = written(&dir, config).await;
    let (latest, opened_before) = (log.offsets().latest, log.stats().segment_opens);
    let (mut reads, mut at) = (0, 0);
    while let Ok(iters) = requests.recv() {
        let start = Instant::now();
        for _ in 0..iters {
            let read = log.read(at, 64 << 10).await.unwrap();
            assert_eq!(read.as_bytes().len(), bytes.len());
            at = if read.next_offset == latest {
                0
            } else {
                read.next_offset
            };
            std::hint::black_box(read);
        }
        reads += iters;
        replies.send(start.elapsed()).unwrap();
    }
    let opened = log.stats().segment_opens - opened_before;
    log.close().await.unwrap();
    (reads, opened)
}

fn bench_catch_up(c: &mut Criterion, name: &str, open_segments_max: usize) {
    let (reads, opened) = bench(c, name, move |dir, requests, replies| {
        serve_catch_up(dir, open_segments_max, requests, replies)
    });
    if reads > 0 {
        eprintln!("log_read/{name}: {opened} segment files opened for {reads} reads");
    }
}

fn log_read(c: &mut Criterion) {
    bench_read(c, "cache", 4 << 20);
    bench_read(c, "disk", 0);
    bench_catch_up(c, "catch_up_all_open", 64);
    bench_catch_up(c, "catch_up_kept", LogConfig::default().open_segments_max);
    bench_catch_up(c, "catch_up_reopened", 0);
}

criterion_group!(benches, log_read);
criterion_main!(benches);
