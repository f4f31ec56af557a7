//! Throughput of the rings between shards: one producer thread, one consumer
//! thread, `u64` items, the same capacity for every variant.
//!
//! - `array_queue`: `crossbeam_queue::ArrayQueue` (bounded MPMC), the baseline;
//! - `spsc_single`: our SPSC ring, one `try_push` / `try_pop` per item;
//! - `spsc_batch64`: our SPSC ring, `push_iter` / `pop_with` of up to 64 items,
//!   one index store per batch.
//!
//! Each iteration moves `ITEMS` items and is timed from the producer's first
//! push to the consumer's last pop (spawning the consumer is included; it is
//! tens of microseconds against milliseconds). Run with
//! `cargo bench -p tidegate-benches --bench ring`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use tidegate_queue::ring::spsc;

/// Items moved per iteration.
const ITEMS: u64 = 1_000_000;
/// Slots in every ring.
const CAPACITY: usize = 4096;
/// Largest batch of the batch variant.
const BATCH: usize = 64;

/// The sum of `0..ITEMS`, which every consumer checks it received.
const EXPECTED_SUM: u64 = ITEMS * (ITEMS - 1) / 2;

/// Waits a little when the ring is full or empty: spins briefly, then yields
/// the core. The machine has 2 cores shared with other work, and a thread
/// spinning through its whole time slice while its peer is descheduled would
/// measure the scheduler, not the queue.
#[inline]
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        *spins = 0;
        thread::yield_now();
    }
}

/// Runs `iters` iterations of `run` (which moves `ITEMS` items between two
/// threads) and returns the total time.
fn timed(iters: u64, run: fn()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        run();
        total += start.elapsed();
    }
    total
}

fn array_queue() {
    let queue = ArrayQueue::<u64>::new(CAPACITY);
    thread::scope(|s| {
        let consumer = s.spawn(|| {
            let (mut sum, mut received, mut spins) = (0u64, 0u64, 0u32);
            while received < ITEMS {
                match queue.pop() {
                    Some(v) => {
                        sum = sum.wrapping_add(v);
                        received += 1;
                    }
                    None => backoff(&mut spins),
                }
            }
            sum
        });
        let mut spins = 0u32;
        for i in 0..ITEMS {
            let mut item = i;
            while let Err(back) = queue.push(item) {
                item = back;
                backoff(&mut spins);
            }
        }
        assert_eq!(consumer.join().unwrap(), EXPECTED_SUM);
    });
}

fn spsc_single() {
    let (mut tx, mut rx) = spsc::channel::<u64>(CAPACITY).unwrap();
    thread::scope(|s| {
        let consumer = s.spawn(move || {
            let (mut sum, mut received, mut spins) = (0u64, 0u64, 0u32);
            while received < ITEMS {
                match rx.try_pop() {
                    Some(v) => {
                        sum = sum.wrapping_add(v);
                        received += 1;
                    }
                    None => backoff(&mut spins),
                }
            }
            sum
        });
        let mut spins = 0u32;
        for i in 0..ITEMS {
            let mut item = i;
            while let Err(back) = tx.try_push(item) {
                item = back;
                backoff(&mut spins);
            }
        }
        assert_eq!(consumer.join().unwrap(), EXPECTED_SUM);
    });
}

fn spsc_batch() {
    let (mut tx, mut rx) = spsc::channel::<u64>(CAPACITY).unwrap();
    thread::scope(|s| {
        let consumer = s.spawn(move || {
            let (mut sum, mut received, mut spins) = (0u64, 0u64, 0u32);
            while received < ITEMS {
                let n = rx.pop_with(BATCH, |v| sum = sum.wrapping_add(v));
                if n == 0 {
                    backoff(&mut spins);
                }
                received += n as u64;
            }
            sum
        });
        let (mut items, mut spins) = (0..ITEMS, 0u32);
        while !items.is_empty() {
            if tx.push_iter(&mut items.by_ref().take(BATCH)) == 0 {
                backoff(&mut spins);
            }
        }
        assert_eq!(consumer.join().unwrap(), EXPECTED_SUM);
    });
}

fn ring(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring");
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(20);
    group.bench_function("array_queue", |b| {
        b.iter_custom(|iters| timed(iters, array_queue))
    });
    group.bench_function("spsc_single", |b| {
        b.iter_custom(|iters| timed(iters, spsc_single))
    });
    group.bench_function("spsc_batch64", |b| {
        b.iter_custom(|iters| timed(iters, spsc_batch))
    });
    group.finish();
}

criterion_group!(benches, ring);
criterion_main!(benches);
