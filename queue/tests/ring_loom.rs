//! Loom model tests of the SPSC ring: loom runs each test under every
//! interleaving (within its preemption bound) and checks, through its own
//! `UnsafeCell`, that no slot is accessed by both threads without a
//! happens-before edge.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg tidegate_loom" CARGO_TARGET_DIR=/work/target-loom \
//!     cargo test -p tidegate-queue --test ring_loom --release
//! ```
//!
//! loom is a dev-dependency only, so the library itself is always built on
//! `std`. This test compiles its own copy of the ring module instead, and in
//! that copy (`cfg(all(tidegate_loom, test))`) `ring/sync.rs` picks loom's atomics,
//! `Arc` and `UnsafeCell`.
#![cfg(tidegate_loom)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unused_imports, unreachable_pub)]
#[path = "../src/ring/mod.rs"]
mod ring;

use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::sync::Arc as StdArc;

use loom::thread;
use ring::spsc;

/// Explores the model with a preemption bound that keeps each test to
/// seconds; loom's documentation suggests 2-3 finds nearly all bugs.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// Pushes `0..count` one by one into a ring of 2, the consumer pops them one
/// by one: order and exactly-once under every interleaving.
#[test]
fn single_push_pop_in_order() {
    model(|| {
        let (mut tx, mut rx) = spsc::channel::<usize>(2).unwrap();
        let count = 3;
        let producer = thread::spawn(move || {
            for i in 0..count {
                let mut item = i;
                while let Err(back) = tx.try_push(item) {
                    item = back;
                    thread::yield_now();
                }
            }
        });
        let mut next = 0;
        while next < count {
            match rx.try_pop() {
                Some(item) => {
                    assert_eq!(item, next);
                    next += 1;
                }
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert!(rx.try_pop().is_none());
    });
}

/// Batch push and batch pop wrap around a ring of 2.
#[test]
fn batch_push_pop_in_order() {
    model(|| {
        let (mut tx, mut rx) = spsc::channel::<usize>(2).unwrap();
        let count = 4;
        let producer = thread::spawn(move || {
            let mut items = 0..count;
            while !items.is_empty() {
                if tx.push_iter(&mut items) == 0 {
                    thread::yield_now();
                }
            }
        });
        let mut got = Vec::new();
        while got.len() < count {
            if rx.pop_batch(&mut got, 2) == 0 {
                thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert_eq!(got, (0..count).collect::<Vec<_>>());
    });
}

/// A consumer that sees the producer gone sees every item it pushed.
#[test]
fn closed_flag_publishes_the_last_items() {
    model(|| {
        let (mut tx, mut rx) = spsc::channel::<usize>(4).unwrap();
        let producer = thread::spawn(move || {
            tx.try_push(1).unwrap();
            tx.push_slice(&[2, 3]);
            drop(tx);
        });
        while !rx.is_closed() {
            thread::yield_now();
        }
        let mut got = Vec::new();
        rx.pop_batch(&mut got, 10);
        assert_eq!(got, [1, 2, 3]);
        assert!(rx.try_pop().is_none());
        producer.join().unwrap();
    });
}

/// Items left in the ring are dropped exactly once, whichever end goes last.
#[test]
fn remaining_items_dropped_once() {
    struct Counted(StdArc<StdAtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, StdOrdering::Relaxed);
        }
    }

    model(|| {
        let drops = StdArc::new(StdAtomicUsize::new(0));
        let (mut tx, mut rx) = spsc::channel::<Counted>(2).unwrap();
        let producer_drops = StdArc::clone(&drops);
        let producer = thread::spawn(move || {
            let mut pushed = 0;
            for _ in 0..3 {
                if tx.try_push(Counted(StdArc::clone(&producer_drops))).is_ok() {
                    pushed += 1;
                }
            }
            pushed
        });
        let popped = usize::from(rx.try_pop().is_some());
        drop(rx);
        let pushed = producer.join().unwrap();
        // Every item made was dropped once: rejected ones by the producer,
        // popped ones by us, the rest by whichever handle went last.
        assert_eq!(drops.load(StdOrdering::Relaxed), 3);
        assert!(popped <= pushed);
    });
}
