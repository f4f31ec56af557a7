//! Append throughput of one partition log on the real disk, and the cost of
//! validating the batch every append is handed.
//!
//! - `log_append/{written,durable}_k{1,16}`: one iteration appends one batch
//!   of `RECORDS` records with `VALUE_BYTES`-byte values (built once, reused)
//!   and waits for `Ack::Written` or `Ack::Durable`; `k` appends are in flight
//!   at once, so with k = 16 the log's group commit puts many batches into
//!   one write and one fdatasync. Throughput is in records.
//! - `batch_parse/parse_1000x100B`: `BatchView::parse` of that batch (header,
//!   CRC32C, every record), in bytes.
//!
//! Every benchmark function gets its own glommio executor thread, which stays
//! up for all of criterion's calls and is fed iteration counts over a
//! channel. A call runs in rounds of at most `ROUND_BYTES_MAX` bytes: each
//! round opens a fresh log in a new directory, times only the appends, then
//! closes the log and deletes the directory, so the disk never holds more
//! than one round. Data goes under `target/bench-log/` (same filesystem as
//! the repository, not a possibly-tmpfs /tmp), or under `$TIDEGATE_BENCH_DIR`.
//! The log's counters (flushes, fdatasyncs) are printed after each function.
//!
//! Run with
//! `cargo bench -p tidegate-benches --bench log_append -- --warm-up-time 1 --measurement-time 5`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::future::join_all;
use tidegate_benches::{batch_bytes, Shard};
use tidegate_proto::batch::BatchView;
use tidegate_queue::{Ack, Log, LogConfig, LogStats};

/// Records per batch.
const RECORDS: u32 = 1000;
/// Bytes of each record's value (no key, no headers).
const VALUE_BYTES: usize = 100;
/// Largest segment: big enough that a round never rolls.
const SEGMENT_BYTES_MAX: u64 = 1 << 30;
/// Most batch bytes one round writes before its directory is deleted.
const ROUND_BYTES_MAX: usize = 256 << 20;
/// The log's defaults, but for the segment size; `TIDEGATE_BENCH_WRITE_CHUNK`
/// and `TIDEGATE_BENCH_WRITE_CONCURRENCY` override the write shape so that
/// settings can be compared in one session.
fn log_config() -> LogConfig {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let defaults = LogConfig::default();
    LogConfig {
        segment_bytes_max: SEGMENT_BYTES_MAX,
        write_chunk_bytes: env("TIDEGATE_BENCH_WRITE_CHUNK").unwrap_or(defaults.write_chunk_bytes),
        write_concurrency: env("TIDEGATE_BENCH_WRITE_CONCURRENCY")
            .unwrap_or(defaults.write_concurrency),
        ..defaults
    }
}

/// What one benchmark function appends with.
#[derive(Debug, Clone, Copy)]
struct Case {
    ack: Ack,
    in_flight: usize,
}

/// The log's counters summed over rounds, and the time the appends took.
#[derive(Debug, Default)]
struct Totals {
    stats: LogStats,
    rounds: u64,
    timed: Duration,
}

impl Totals {
    fn add(&mut self, s: LogStats, timed: Duration) {
        self.stats.flushes += s.flushes;
        self.stats.syncs += s.syncs;
        self.stats.bytes_written += s.bytes_written;
        self.stats.batches_appended += s.batches_appended;
        self.rounds += 1;
        self.timed += timed;
    }

    /// Prints the counters; nothing when criterion's filter skipped the function.
    fn report(&self, name: &str) {
        if self.rounds == 0 {
            return;
        }
        let s = &self.stats;
        let secs = self.timed.as_secs_f64().max(f64::MIN_POSITIVE);
        let per = |n: u64, d: u64| n as f64 / d.max(1) as f64;
        eprintln!(
            "{name}: {} batches in {} rounds; {:.0} flushes/s of {:.0} KiB avg; \
             {:.0} fdatasyncs/s, {:.1} batches per fdatasync (close() syncs excluded)",
            s.batches_appended,
            self.rounds,
            s.flushes as f64 / secs,
            per(s.bytes_written, s.flushes) / 1024.0,
            s.syncs as f64 / secs,
            per(s.batches_appended, s.syncs),
        );
    }
}

/// Appends `batches` batches to a fresh log in `dir` and returns the time
/// the appends took (opening and closing the log are not timed).
async fn timed_round(dir: &Path, bytes: &[u8], case: Case, batches: u64) -> (Duration, LogStats) {
    let log = Log::open(dir, log_config()).await.unwrap();
    let view = BatchView::parse(bytes).unwrap();
    let appended = Cell::new(0u64);
    let worker = || async {
        while appended.get() < batches {
            appended.set(appended.get() + 1);
            log.append(&view, case.ack).await.unwrap();
        }
    };
    let start = Instant::now();
    join_all((0..case.in_flight).map(|_| worker())).await;
    let elapsed = start.elapsed();
    let stats = log.stats();
    assert_eq!(stats.batches_appended, batches);
    log.close().await.unwrap();
    (elapsed, stats)
}

/// Serves criterion's `iter_custom` calls on this executor until the
/// request channel closes.
async fn serve(
    root: PathBuf,
    case: Case,
    requests: mpsc::Receiver<u64>,
    replies: mpsc::Sender<Duration>,
) -> Totals {
    let bytes = batch_bytes(RECORDS, VALUE_BYTES);
    let round_batches = (ROUND_BYTES_MAX / bytes.len()).max(1) as u64;
    let mut totals = Totals::default();
    // Blocking here is fine: the executor has nothing else to run between calls.
    while let Ok(iters) = requests.recv() {
        let mut left = iters;
        let mut elapsed = Duration::ZERO;
        while left > 0 {
            let batches = left.min(round_batches);
            let dir = tempfile::Builder::new()
                .prefix("round-")
                .tempdir_in(&root)
                .unwrap();
            let (took, stats) = timed_round(dir.path(), &bytes, case, batches).await;
            totals.add(stats, took);
            elapsed += took;
            left -= batches;
        }
        replies.send(elapsed).unwrap();
    }
    totals
}

fn bench_append(c: &mut Criterion, group_name: &str, name: &str, case: Case) {
    let shard = Shard::spawn(name, move |dir, requests, replies| {
        serve(dir, case, requests, replies)
    });
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(u64::from(RECORDS)));
    // A durable k=1 append costs milliseconds; 20 samples keep the run short.
    group.sample_size(20);
    group.bench_function(name, |b| b.iter_custom(|iters| shard.time(iters)));
    group.finish();
    shard.finish().report(&format!("{group_name}/{name}"));
}

fn log_append(c: &mut Criterion) {
    let len = batch_bytes(RECORDS, VALUE_BYTES).len();
    eprintln!("log_append: batch of {RECORDS} records x {VALUE_BYTES} B values = {len} bytes");
    for (ack, ack_name) in [(Ack::Written, "written"), (Ack::Durable, "durable")] {
        for in_flight in [1, 16, 64] {
            let name = format!("{ack_name}_k{in_flight}");
            bench_append(c, "log_append", &name, Case { ack, in_flight });
        }
    }
}

fn batch_parse(c: &mut Criterion) {
    let bytes = batch_bytes(RECORDS, VALUE_BYTES);
    let mut group = c.benchmark_group("batch_parse");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("parse_1000x100B", |b| {
        b.iter(|| BatchView::parse(std::hint::black_box(&bytes)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, batch_parse, log_append);
criterion_main!(benches);
