//! Two-thread stress tests of the SPSC ring: one thread pushes with a random
//! mix of single and batch operations, the other pops with a random mix too
//! and checks that every item arrives exactly once and in order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tidegate_queue::ring::spsc::{self, Consumer, Producer};

/// Items per run: fewer in debug builds so the suite stays quick.
const ITEMS: usize = if cfg!(debug_assertions) {
    300_000
} else {
    3_000_000
};

/// Largest random batch, on either side.
const MAX_BATCH: usize = 100;

/// Waits a little when the ring is full or empty. Both threads share the
/// machine's cores with other work, so yield instead of spinning for long.
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        thread::yield_now();
    }
}

/// Pushes `make(0..count)` with a random mix of `try_push`, `push_iter` and
/// `push_slice`. Stops early (and returns how many it pushed) if the consumer
/// goes away.
fn produce<T: Clone>(
    tx: &mut Producer<T>,
    count: usize,
    seed: u64,
    make: impl Fn(usize) -> T,
) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next = 0;
    let mut spins = 0;
    let mut slice = Vec::with_capacity(MAX_BATCH);
    while next < count {
        if tx.is_closed() {
            return next;
        }
        let pushed = match rng.random_range(0..3) {
            0 => match tx.try_push(make(next)) {
                Ok(()) => 1,
                Err(_) => 0,
            },
            1 => {
                let end = count.min(next + rng.random_range(1..=MAX_BATCH));
                let mut items = (next..end).map(&make);
                let pushed = tx.push_iter(&mut items);
                // What did not fit stays in the iterator.
                assert_eq!(items.len(), end - next - pushed);
                pushed
            }
            _ => {
                let end = count.min(next + rng.random_range(1..=MAX_BATCH));
                slice.clear();
                slice.extend((next..end).map(&make));
                tx.push_slice(&slice)
            }
        };
        if pushed == 0 {
            backoff(&mut spins);
        } else {
            spins = 0;
            next += pushed;
        }
    }
    next
}

/// Pops with a random mix of `try_pop`, `pop_batch` and `pop_with` until the
/// producer is gone and the ring is drained, or until `stop_after` items.
/// Calls `check(expected_sequence_number, item)` on each item.
fn consume<T>(
    rx: &mut Consumer<T>,
    seed: u64,
    stop_after: usize,
    mut check: impl FnMut(usize, T),
) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next = 0;
    let mut spins = 0;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while next < stop_after {
        // Read the flag before popping: if it was set, every item is already
        // visible, so an empty pop afterwards means the stream has ended.
        let closed = rx.is_closed();
        let max = rng.random_range(1..=MAX_BATCH).min(stop_after - next);
        let popped = match rng.random_range(0..3) {
            0 => match rx.try_pop() {
                Some(item) => {
                    check(next, item);
                    1
                }
                None => 0,
            },
            1 => {
                batch.clear();
                let popped = rx.pop_batch(&mut batch, max);
                assert_eq!(popped, batch.len());
                assert!(popped <= max);
                for (i, item) in batch.drain(..).enumerate() {
                    check(next + i, item);
                }
                popped
            }
            _ => {
                let mut seq = next;
                let popped = rx.pop_with(max, |item| {
                    check(seq, item);
                    seq += 1;
                });
                assert_eq!(seq, next + popped);
                popped
            }
        };
        if popped == 0 {
            if closed {
                break;
            }
            backoff(&mut spins);
        } else {
            spins = 0;
            next += popped;
        }
    }
    next
}

fn run_sequence(capacity: usize, seed: u64) {
    let (mut tx, mut rx) = spsc::channel::<u64>(capacity).unwrap();
    let producer = thread::spawn(move || produce(&mut tx, ITEMS, seed, |i| i as u64));
    let received = consume(&mut rx, seed ^ 0xdead_beef, usize::MAX, |expected, item| {
        assert_eq!(item, expected as u64, "capacity {capacity}");
    });
    assert_eq!(producer.join().unwrap(), ITEMS);
    assert_eq!(received, ITEMS);
    assert!(rx.is_closed() && rx.is_empty());
}

#[test]
fn sequence_numbers_arrive_once_in_order_small_ring() {
    run_sequence(16, 1);
}

#[test]
fn sequence_numbers_arrive_once_in_order_large_ring() {
    run_sequence(4096, 2);
}

#[test]
fn sequence_numbers_arrive_once_in_order_capacity_one() {
    let (mut tx, mut rx) = spsc::channel::<u64>(1).unwrap();
    let count = ITEMS / 10;
    let producer = thread::spawn(move || produce(&mut tx, count, 3, |i| i as u64));
    let received = consume(&mut rx, 4, usize::MAX, |expected, item| {
        assert_eq!(item, expected as u64);
    });
    assert_eq!(producer.join().unwrap(), count);
    assert_eq!(received, count);
}

/// A heap-owning item that counts how many times it was created (cloned) and
/// dropped, to catch double drops and leaks.
#[derive(Debug)]
struct Tracked {
    seq: usize,
    text: String,
    boxed: Box<usize>,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    created: AtomicUsize,
    dropped: AtomicUsize,
}

impl Tracked {
    fn new(seq: usize, counts: &Arc<Counts>) -> Self {
        counts.created.fetch_add(1, Ordering::Relaxed);
        Self {
            seq,
            text: format!("item-{seq}"),
            boxed: Box::new(seq),
            counts: Arc::clone(counts),
        }
    }

    fn check(&self, expected: usize) {
        assert_eq!(self.seq, expected);
        assert_eq!(*self.boxed, expected);
        assert_eq!(self.text, format!("item-{expected}"));
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        Self::new(self.seq, &self.counts)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.counts.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn heap_items_are_dropped_exactly_once() {
    let counts = Arc::new(Counts::default());
    let count = ITEMS / 4;
    let (mut tx, mut rx) = spsc::channel::<Tracked>(64).unwrap();
    let producer_counts = Arc::clone(&counts);
    let producer =
        thread::spawn(move || produce(&mut tx, count, 5, |i| Tracked::new(i, &producer_counts)));
    let received = consume(&mut rx, 6, usize::MAX, |expected, item| {
        item.check(expected)
    });
    assert_eq!(producer.join().unwrap(), count);
    assert_eq!(received, count);
    drop(rx);
    let created = counts.created.load(Ordering::Relaxed);
    assert!(created >= count);
    assert_eq!(counts.dropped.load(Ordering::Relaxed), created);
}

#[test]
fn consumer_leaving_early_drops_the_rest_exactly_once() {
    let counts = Arc::new(Counts::default());
    let count = ITEMS / 4;
    let stop_after = count / 3;
    let (mut tx, mut rx) = spsc::channel::<Tracked>(256).unwrap();
    let producer_counts = Arc::clone(&counts);
    let producer = thread::spawn(move || {
        let pushed = produce(&mut tx, count, 7, |i| Tracked::new(i, &producer_counts));
        // The producer notices the consumer has gone and stops.
        assert!(tx.is_closed());
        pushed
    });
    let received = consume(&mut rx, 8, stop_after, |expected, item| {
        item.check(expected)
    });
    assert_eq!(received, stop_after);
    // Leave items in the ring: dropping the consumer must not drop them; the
    // last handle to go does.
    drop(rx);
    let pushed = producer.join().unwrap();
    assert!(pushed >= stop_after && pushed < count, "pushed {pushed}");
    let created = counts.created.load(Ordering::Relaxed);
    assert_eq!(counts.dropped.load(Ordering::Relaxed), created);
}
