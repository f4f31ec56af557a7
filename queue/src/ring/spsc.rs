//! A bounded single-producer single-consumer ring.
//!
//! The classic design (Lamport's ring with the index caching described by
//! Vyukov and by Erik Rigtorp's `SPSCQueue`):
//!
//! - a fixed array of `capacity` slots, `capacity` a power of two, so a slot
//!   is `index & (capacity - 1)`;
//! - two free-running indices, `head` (next slot to read, written only by the
//!   consumer) and `tail` (next slot to write, written only by the producer),
//!   each on its own cache line ([`CachePadded`]); they wrap around `usize`
//!   and the ring holds `tail - head` items (wrapping subtraction);
//! - each side keeps its own index and a cached copy of the other side's index
//!   in its handle. It reloads the other index only when the cached copy says
//!   the ring is full (producer) or empty (consumer), so in steady state the
//!   two cores do not bounce each other's cache lines on every operation.
//!
//! Ordering: a side publishes its index with a `Release` store after it has
//! written (producer) or read (consumer) the slots, and loads the other side's
//! index with `Acquire` before touching slots, so slot contents are handed
//! over with a happens-before edge. A side reads its *own* index without any
//! load at all (it keeps it in its handle). No `SeqCst` anywhere.
//!
//! Batches: [`Producer::push_iter`], [`Producer::push_slice`],
//! [`Consumer::pop_batch`] and [`Consumer::pop_with`] move many items with one
//! `Release` store of the index, which is what makes shard-to-shard hand-off
//! cheap.
//!
//! ```
//! use tidegate_queue::ring::spsc;
//!
//! let (mut tx, mut rx) = spsc::channel::<u64>(3)?; // rounded up to 4
//! assert_eq!(tx.capacity(), 4);
//! assert_eq!(tx.push_slice(&[1, 2, 3, 4, 5]), 4); // only 4 fit
//! assert_eq!(tx.try_push(5), Err(5)); // full: the item comes back
//! let mut out = Vec::new();
//! assert_eq!(rx.pop_batch(&mut out, 3), 3);
//! assert_eq!(rx.try_pop(), Some(4));
//! assert_eq!(out, [1, 2, 3]);
//! drop(tx);
//! assert!(rx.is_closed() && rx.is_empty()); // nothing more will ever come
//! # Ok::<(), spsc::RingError>(())
//! ```
//!
//! The handles cannot be cloned, which is what keeps the ring single-producer
//! single-consumer:
//!
//! ```compile_fail
//! let (tx, _rx) = tidegate_queue::ring::spsc::channel::<u64>(8).unwrap();
//! let _second_producer = tx.clone();
//! ```

use std::fmt;
use std::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use super::sync::{Arc, AtomicBool, AtomicUsize, Ordering, UnsafeCell};

/// The largest capacity [`channel`] accepts (2^24 slots).
///
/// Rings between shards are meant to be small (a few thousand slots); a
/// request above this bound is almost certainly a configuration mistake, and
/// refusing it keeps one ring's memory bounded.
pub const MAX_CAPACITY: usize = 1 << 24;

/// Why a ring could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// A ring needs at least one slot.
    #[error("ring capacity must be at least 1")]
    ZeroCapacity,
    /// The requested capacity is above [`MAX_CAPACITY`].
    #[error("ring capacity {requested} exceeds the maximum of {max} slots")]
    CapacityTooLarge {
        /// The capacity that was asked for.
        requested: usize,
        /// [`MAX_CAPACITY`].
        max: usize,
    },
}

/// Creates a ring and returns its two ends.
///
/// `capacity` is rounded up to the next power of two (so `3` gives a ring of
/// 4 slots); [`Producer::capacity`] tells the actual size. The slots are
/// allocated once, here; pushing and popping never allocate.
///
/// # Errors
///
/// [`RingError::ZeroCapacity`] if `capacity` is 0 and
/// [`RingError::CapacityTooLarge`] if it is above [`MAX_CAPACITY`].
pub fn channel<T>(capacity: usize) -> Result<(Producer<T>, Consumer<T>), RingError> {
    channel_starting_at(capacity, 0)
}

/// [`channel`] with both indices starting at `start` instead of 0, so tests
/// can check the wrap-around of the free-running indices at `usize::MAX`.
fn channel_starting_at<T>(
    capacity: usize,
    start: usize,
) -> Result<(Producer<T>, Consumer<T>), RingError> {
    if capacity == 0 {
        return Err(RingError::ZeroCapacity);
    }
    if capacity > MAX_CAPACITY {
        return Err(RingError::CapacityTooLarge {
            requested: capacity,
            max: MAX_CAPACITY,
        });
    }
    // Cannot overflow: capacity <= MAX_CAPACITY, itself a power of two.
    let capacity = capacity.next_power_of_two();
    let slots = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect::<Box<[_]>>();
    assert_eq!(slots.len(), capacity);
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(start)),
        tail: CachePadded::new(AtomicUsize::new(start)),
        producer_gone: AtomicBool::new(false),
        consumer_gone: AtomicBool::new(false),
        mask: capacity - 1,
        slots,
    });
    let producer = Producer {
        shared: Arc::clone(&shared),
        tail: start,
        cached_head: start,
    };
    let consumer = Consumer {
        shared,
        head: start,
        cached_tail: start,
    };
    Ok((producer, consumer))
}

/// The state both ends share.
///
/// Invariant: `tail - head <= capacity` (wrapping), the slots at indices
/// `head..tail` hold initialised values owned by the ring, and every other
/// slot is uninitialised. Only the producer writes `tail` and initialises
/// slots; only the consumer writes `head` and moves values out of slots.
struct Shared<T> {
    /// Index of the next slot to read. Written only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// Index of the next slot to write. Written only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// Set (`Release`) when the [`Producer`] is dropped, after its last
    /// `tail` store.
    producer_gone: AtomicBool,
    /// Set (`Release`) when the [`Consumer`] is dropped.
    consumer_gone: AtomicBool,
    /// `capacity - 1`; `capacity` is a power of two.
    mask: usize,
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
}

// SAFETY: `Shared` is reached from two threads at most, one through the
// `Producer` and one through the `Consumer`. The atomics are `Sync` by
// themselves. A slot is only ever accessed by one side at a time: the producer
// writes only slots outside `head..tail` (free), the consumer reads only slots
// inside `head..tail` (full), and a slot changes hands only through a
// `Release` store of `tail`/`head` that the other side `Acquire`-loads before
// touching it. Values of `T` move from one thread to the other, hence
// `T: Send`; no `&T` is ever shared between threads, so `T: Sync` is not needed.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Moves `value` into slot `index`.
    ///
    /// # Safety
    ///
    /// The caller is the producer and slot `index` is free: `index` is in
    /// `tail..head + capacity` for a `head` value the producer has
    /// `Acquire`-loaded, so the consumer has finished with the slot and will
    /// not touch it before `tail` is published past `index`.
    #[inline]
    unsafe fn write(&self, index: usize, value: T) {
        self.slots[index & self.mask].with_mut(|slot| {
            // SAFETY: by the caller's contract, this thread has exclusive
            // access to the slot, and the slot holds no value (it is free),
            // so overwriting it neither races nor leaks.
            unsafe { slot.write(MaybeUninit::new(value)) }
        });
    }

    /// Moves the value out of slot `index`, leaving it logically uninitialised.
    ///
    /// # Safety
    ///
    /// The caller is the consumer, slot `index` is full (`index` is in
    /// `head..tail` for a `tail` value the consumer has `Acquire`-loaded), and
    /// the caller advances `head` past `index` before reading it again, so the
    /// value is moved out exactly once.
    #[inline]
    unsafe fn read(&self, index: usize) -> T {
        self.slots[index & self.mask].with(|slot| {
            // SAFETY: by the caller's contract the slot is initialised (the
            // producer's write happened-before our `Acquire` load of `tail`),
            // the producer will not touch it until `head` moves past it, and
            // it is read only once.
            unsafe { slot.read().assume_init() }
        })
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Both handles are gone, and dropping the last `Arc` synchronised with
        // their drops, so these loads see the final indices; `Relaxed` is
        // enough (the `Arc`'s own fence gives the ordering).
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        assert!(tail.wrapping_sub(head) <= self.capacity());
        let mut index = head;
        while index != tail {
            self.slots[index & self.mask].with_mut(|slot| {
                // SAFETY: `index` is in `head..tail`, so the slot holds a
                // value the consumer never took; we own the ring exclusively
                // now and drop each remaining value exactly once.
                unsafe { slot.cast::<T>().drop_in_place() }
            });
            index = index.wrapping_add(1);
        }
    }
}

/// The sending end of a ring. `Send` when `T: Send`; not `Clone`.
///
/// All operations are wait-free: they never block and never spin. When the
/// ring is full they push nothing and let the caller decide (retry later,
/// yield, apply back-pressure).
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// This end's copy of `shared.tail` (only the producer writes it).
    tail: usize,
    /// The last `shared.head` this end loaded. It lags the real head, so the
    /// free space computed from it is a lower bound.
    cached_head: usize,
}

impl<T> Producer<T> {
    /// The number of slots (a power of two).
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// The number of items in the ring. The consumer may be taking items at
    /// the same time, so this is an upper bound by the time it returns.
    pub fn len(&self) -> usize {
        self.tail
            .wrapping_sub(self.shared.head.load(Ordering::Acquire))
    }

    /// Whether the ring holds no item (the consumer has taken everything).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the [`Consumer`] has been dropped. Items pushed after that are
    /// never read; they are dropped with the ring.
    pub fn is_closed(&self) -> bool {
        self.shared.consumer_gone.load(Ordering::Acquire)
    }

    /// The number of free slots, reloading the consumer's index only if the
    /// cached value shows fewer than `wanted`.
    #[inline]
    fn free_slots(&mut self, wanted: usize) -> usize {
        let capacity = self.capacity();
        let free = capacity - self.tail.wrapping_sub(self.cached_head);
        if free >= wanted {
            return free;
        }
        self.cached_head = self.shared.head.load(Ordering::Acquire);
        let used = self.tail.wrapping_sub(self.cached_head);
        assert!(used <= capacity, "ring indices corrupted");
        capacity - used
    }

    /// Pushes one item, or gives it back in `Err` if the ring is full.
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), T> {
        if self.free_slots(1) == 0 {
            return Err(value);
        }
        // SAFETY: `free_slots` found at least one free slot from a `head` it
        // `Acquire`-loaded (now or earlier; `head` only grows), so slot `tail`
        // is free and the consumer will not read it before we publish it.
        unsafe { self.shared.write(self.tail, value) };
        self.tail = self.tail.wrapping_add(1);
        self.shared.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Pushes items taken from `items` until the ring is full or `items` runs
    /// out, then publishes them all with one store. Returns how many it
    /// pushed.
    ///
    /// It takes an item from the iterator only when it has a slot for it, so
    /// whatever did not fit is still in `items` (pass `&mut iter` and resume
    /// later). The ring's free space is checked once, at the start: it pushes
    /// at most `capacity` items per call. If `items` panics, the items already
    /// taken are published before the panic goes on.
    pub fn push_iter<I: Iterator<Item = T>>(&mut self, items: &mut I) -> usize {
        let wanted = items.size_hint().0.max(1);
        let free = self.free_slots(wanted);
        let mut batch = PushBatch {
            producer: self,
            pushed: 0,
        };
        while batch.pushed < free {
            let Some(value) = items.next() else { break };
            let index = batch.producer.tail.wrapping_add(batch.pushed);
            // SAFETY: `index` is in `tail..tail + free`, and `free_slots`
            // computed `free` from an `Acquire`-loaded `head`, so the slot is
            // free and stays unread until the `Release` store in `PushBatch`.
            unsafe { batch.producer.shared.write(index, value) };
            batch.pushed += 1;
        }
        batch.pushed
    }

    /// Pushes a prefix of `items` (clones of them) that fits, with one store.
    /// Returns how many it pushed; `items[n..]` did not fit.
    pub fn push_slice(&mut self, items: &[T]) -> usize
    where
        T: Clone,
    {
        self.push_iter(&mut items.iter().cloned())
    }
}

/// Publishes the items a batch push has written, when the push ends or
/// unwinds, so that a panicking iterator neither leaks nor loses them.
struct PushBatch<'a, T> {
    producer: &'a mut Producer<T>,
    pushed: usize,
}

impl<T> Drop for PushBatch<'_, T> {
    fn drop(&mut self) {
        if self.pushed > 0 {
            let producer = &mut *self.producer;
            producer.tail = producer.tail.wrapping_add(self.pushed);
            producer.shared.tail.store(producer.tail, Ordering::Release);
        }
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        // `Release`: a consumer that sees the flag also sees our last `tail`.
        self.shared.producer_gone.store(true, Ordering::Release);
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The receiving end of a ring. `Send` when `T: Send`; not `Clone`.
///
/// All operations are wait-free: when the ring is empty they return nothing
/// at once.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// This end's copy of `shared.head` (only the consumer writes it).
    head: usize,
    /// The last `shared.tail` this end loaded. It lags the real tail, so the
    /// item count computed from it is a lower bound.
    cached_tail: usize,
}

impl<T> Consumer<T> {
    /// The number of slots (a power of two).
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// The number of items in the ring. The producer may be adding items at
    /// the same time, so this is a lower bound by the time it returns.
    pub fn len(&self) -> usize {
        self.shared
            .tail
            .load(Ordering::Acquire)
            .wrapping_sub(self.head)
    }

    /// Whether the ring holds no item right now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the [`Producer`] has been dropped.
    ///
    /// Once this returns `true`, every item the producer pushed is visible to
    /// this end: if the ring is then empty, nothing will ever arrive again.
    pub fn is_closed(&self) -> bool {
        self.shared.producer_gone.load(Ordering::Acquire)
    }

    /// The number of readable items, reloading the producer's index only if
    /// the cached value shows fewer than `wanted`.
    #[inline]
    fn available(&mut self, wanted: usize) -> usize {
        let ready = self.cached_tail.wrapping_sub(self.head);
        if ready >= wanted {
            return ready;
        }
        self.cached_tail = self.shared.tail.load(Ordering::Acquire);
        let ready = self.cached_tail.wrapping_sub(self.head);
        assert!(ready <= self.capacity(), "ring indices corrupted");
        ready
    }

    /// Takes the oldest item, or returns `None` if the ring is empty.
    #[inline]
    pub fn try_pop(&mut self) -> Option<T> {
        if self.available(1) == 0 {
            return None;
        }
        // SAFETY: `available` found slot `head` full from a `tail` it
        // `Acquire`-loaded, and we advance `head` right after, so the value is
        // moved out once.
        let value = unsafe { self.shared.read(self.head) };
        self.head = self.head.wrapping_add(1);
        self.shared.head.store(self.head, Ordering::Release);
        Some(value)
    }

    /// Takes up to `max` items, oldest first, and hands each to `f`, then
    /// frees all their slots with one store. Returns how many it took.
    ///
    /// If `f` panics, the items taken so far (including the one `f` was
    /// given) are consumed and their slots freed before the panic goes on.
    pub fn pop_with(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        let count = self.available(max).min(max);
        let mut batch = PopBatch {
            consumer: self,
            popped: 0,
        };
        while batch.popped < count {
            let index = batch.consumer.head.wrapping_add(batch.popped);
            // SAFETY: `index` is in `head..head + count`, all full per the
            // `tail` `available` loaded with `Acquire`; `popped` is bumped
            // before `f` runs, so `PopBatch` frees this slot even if `f`
            // panics, and the value is moved out exactly once.
            let value = unsafe { batch.consumer.shared.read(index) };
            batch.popped += 1;
            f(value);
        }
        count
    }

    /// Appends up to `max` items, oldest first, to `out`, with one store.
    /// Returns how many it appended.
    pub fn pop_batch(&mut self, out: &mut Vec<T>, max: usize) -> usize {
        let count = self.available(max).min(max);
        out.reserve(count);
        self.pop_with(count, |value| out.push(value))
    }
}

/// Frees the slots a batch pop has read, when the pop ends or unwinds.
struct PopBatch<'a, T> {
    consumer: &'a mut Consumer<T>,
    popped: usize,
}

impl<T> Drop for PopBatch<'_, T> {
    fn drop(&mut self) {
        if self.popped > 0 {
            let consumer = &mut *self.consumer;
            consumer.head = consumer.head.wrapping_add(self.popped);
            consumer.shared.head.store(consumer.head, Ordering::Release);
        }
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        self.shared.consumer_gone.store(true, Ordering::Release);
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

#[cfg(all(test, not(tidegate_loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;
    use std::sync::Arc as StdArc;

    /// Counts its drops in a shared counter.
    #[derive(Debug)]
    struct Counted {
        value: usize,
        drops: StdArc<StdAtomicUsize>,
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counted(value: usize, drops: &StdArc<StdAtomicUsize>) -> Counted {
        Counted {
            value,
            drops: StdArc::clone(drops),
        }
    }

    #[test]
    fn rejects_zero_and_oversized_capacity() {
        assert_eq!(channel::<u8>(0).err(), Some(RingError::ZeroCapacity));
        assert_eq!(
            channel::<u8>(MAX_CAPACITY + 1).err(),
            Some(RingError::CapacityTooLarge {
                requested: MAX_CAPACITY + 1,
                max: MAX_CAPACITY
            })
        );
        assert_eq!(
            channel::<u8>(usize::MAX).err().map(|e| e.to_string()),
            Some(format!(
                "ring capacity {} exceeds the maximum of {MAX_CAPACITY} slots",
                usize::MAX
            ))
        );
    }

    #[test]
    fn rounds_capacity_up_to_power_of_two() {
        for (asked, got) in [(1, 1), (2, 2), (3, 4), (5, 8), (4096, 4096), (4097, 8192)] {
            let (tx, rx) = channel::<u64>(asked).unwrap();
            assert_eq!((tx.capacity(), rx.capacity()), (got, got), "asked {asked}");
        }
        let (tx, _rx) = channel::<()>(MAX_CAPACITY).unwrap();
        assert_eq!(tx.capacity(), MAX_CAPACITY);
    }

    #[test]
    fn fill_then_empty() {
        let (mut tx, mut rx) = channel::<u32>(4).unwrap();
        assert!(tx.is_empty() && rx.is_empty());
        assert_eq!(rx.try_pop(), None);
        for i in 0..4 {
            tx.try_push(i).unwrap();
            assert_eq!((tx.len(), rx.len()), (i as usize + 1, i as usize + 1));
        }
        assert_eq!(tx.try_push(99), Err(99));
        for i in 0..4 {
            assert_eq!(rx.try_pop(), Some(i));
        }
        assert_eq!(rx.try_pop(), None);
        assert!(tx.is_empty() && rx.is_empty());
    }

    #[test]
    fn capacity_one_alternates() {
        let (mut tx, mut rx) = channel::<u32>(1).unwrap();
        for i in 0..10 {
            tx.try_push(i).unwrap();
            assert_eq!(tx.try_push(i), Err(i));
            assert_eq!(rx.try_pop(), Some(i));
            assert_eq!(rx.try_pop(), None);
        }
    }

    #[test]
    fn fifo_across_many_laps() {
        let (mut tx, mut rx) = channel::<usize>(8).unwrap();
        let (mut next_in, mut next_out) = (0, 0);
        // Vary the fill level so every slot is used at every offset.
        for round in 0..1000 {
            for _ in 0..(round % 9) {
                if tx.try_push(next_in).is_ok() {
                    next_in += 1;
                }
            }
            for _ in 0..(round % 7) {
                if let Some(v) = rx.try_pop() {
                    assert_eq!(v, next_out);
                    next_out += 1;
                }
            }
            assert_eq!(rx.len(), next_in - next_out);
        }
        while let Some(v) = rx.try_pop() {
            assert_eq!(v, next_out);
            next_out += 1;
        }
        assert_eq!(next_in, next_out);
        assert!(next_in > 1000);
    }

    #[test]
    fn indices_wrap_around_usize_max() {
        let (mut tx, mut rx) = channel_starting_at::<usize>(4, usize::MAX - 5).unwrap();
        let mut out = Vec::new();
        for lap in 0..5 {
            assert_eq!(tx.push_slice(&[lap, lap + 1, lap + 2]), 3);
            assert_eq!(tx.len(), 3);
            assert_eq!(rx.try_pop(), Some(lap));
            out.clear();
            assert_eq!(rx.pop_batch(&mut out, 10), 2);
            assert_eq!(out, [lap + 1, lap + 2]);
            assert!(rx.is_empty());
        }
    }

    #[test]
    fn push_iter_leaves_what_does_not_fit_in_the_iterator() {
        let (mut tx, mut rx) = channel::<u32>(4).unwrap();
        let mut items = 0..10;
        assert_eq!(tx.push_iter(&mut items), 4);
        assert_eq!(items.next(), Some(4));
        assert_eq!(tx.push_iter(&mut items), 0);
        assert_eq!(rx.try_pop(), Some(0));
        assert_eq!(tx.push_iter(&mut items), 1);
        assert_eq!(items.next(), Some(6));
        let mut empty = std::iter::empty();
        assert_eq!(tx.push_iter(&mut empty), 0);
        let mut out = Vec::new();
        assert_eq!(rx.pop_batch(&mut out, usize::MAX), 4);
        assert_eq!(out, [1, 2, 3, 5]);
    }

    #[test]
    fn push_slice_pushes_the_prefix_that_fits() {
        let (mut tx, mut rx) = channel::<u8>(8).unwrap();
        assert_eq!(tx.push_slice(&[1, 2, 3]), 3);
        assert_eq!(tx.push_slice(&[4, 5, 6, 7, 8, 9, 10]), 5);
        assert_eq!(tx.push_slice(&[11]), 0);
        assert_eq!(tx.push_slice(&[]), 0);
        let mut out = Vec::new();
        assert_eq!(rx.pop_batch(&mut out, 8), 8);
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn pop_batch_respects_max_and_appends() {
        let (mut tx, mut rx) = channel::<u32>(16).unwrap();
        tx.push_iter(&mut (0..10));
        let mut out = vec![100];
        assert_eq!(rx.pop_batch(&mut out, 0), 0);
        assert_eq!(rx.pop_batch(&mut out, 3), 3);
        assert_eq!(rx.pop_batch(&mut out, 100), 7);
        assert_eq!(rx.pop_batch(&mut out, 100), 0);
        assert_eq!(out, [100, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn pop_with_drains_in_order() {
        let (mut tx, mut rx) = channel::<u32>(8).unwrap();
        tx.push_iter(&mut (0..8));
        let mut seen = Vec::new();
        assert_eq!(rx.pop_with(5, |v| seen.push(v)), 5);
        assert_eq!(tx.push_iter(&mut (8..20)), 5);
        assert_eq!(rx.pop_with(usize::MAX, |v| seen.push(v)), 8);
        assert_eq!(seen, (0..13).collect::<Vec<_>>());
    }

    #[test]
    fn dropping_the_ring_drops_remaining_items_once() {
        // Drop the producer first, then the consumer, and the other way round.
        for producer_first in [true, false] {
            let drops = StdArc::new(StdAtomicUsize::new(0));
            let (mut tx, mut rx) = channel_starting_at::<Counted>(8, usize::MAX - 2).unwrap();
            for i in 0..8 {
                tx.try_push(counted(i, &drops)).unwrap();
            }
            // A rejected item comes back to the caller, who drops it.
            drop(tx.try_push(counted(99, &drops)).unwrap_err());
            assert_eq!(drops.load(Ordering::Relaxed), 1);
            assert_eq!(rx.try_pop().unwrap().value, 0);
            let mut out = Vec::new();
            rx.pop_batch(&mut out, 2);
            drop(out);
            assert_eq!(drops.load(Ordering::Relaxed), 4);
            if producer_first {
                drop(tx);
                assert_eq!(drops.load(Ordering::Relaxed), 4);
                drop(rx);
            } else {
                drop(rx);
                assert_eq!(drops.load(Ordering::Relaxed), 4);
                drop(tx);
            }
            assert_eq!(drops.load(Ordering::Relaxed), 9);
        }
    }

    #[test]
    fn panicking_pop_closure_consumes_items_once() {
        let drops = StdArc::new(StdAtomicUsize::new(0));
        let (mut tx, mut rx) = channel::<Counted>(8).unwrap();
        for i in 0..6 {
            tx.try_push(counted(i, &drops)).unwrap();
        }
        let result = catch_unwind(AssertUnwindSafe(|| {
            rx.pop_with(10, |item| {
                assert!(item.value < 2, "boom");
            })
        }));
        assert!(result.is_err());
        // Items 0, 1 and 2 (the one the closure panicked on) are consumed.
        assert_eq!(drops.load(Ordering::Relaxed), 3);
        assert_eq!(rx.len(), 3);
        assert_eq!(rx.try_pop().unwrap().value, 3);
        drop((tx, rx));
        assert_eq!(drops.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn panicking_iterator_publishes_pushed_items() {
        let drops = StdArc::new(StdAtomicUsize::new(0));
        let (mut tx, mut rx) = channel::<Counted>(8).unwrap();
        let mut items = (0..5).map(|i| {
            assert!(i < 3, "boom");
            counted(i, &drops)
        });
        assert!(catch_unwind(AssertUnwindSafe(|| tx.push_iter(&mut items))).is_err());
        assert_eq!(rx.len(), 3);
        assert_eq!(rx.try_pop().unwrap().value, 0);
        drop((tx, rx));
        assert_eq!(drops.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn is_closed_reports_the_peer_dropping() {
        let (mut tx, rx) = channel::<u8>(2).unwrap();
        assert!(!tx.is_closed() && !rx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        // Pushing to a closed ring is allowed; the item is dropped with it.
        assert_eq!(tx.try_push(1), Ok(()));

        let (mut tx, mut rx) = channel::<u8>(2).unwrap();
        tx.try_push(7).unwrap();
        drop(tx);
        assert!(rx.is_closed());
        assert_eq!(rx.try_pop(), Some(7));
        assert_eq!(rx.try_pop(), None);
    }

    #[test]
    fn zero_sized_items() {
        let (mut tx, mut rx) = channel::<()>(4).unwrap();
        assert_eq!(tx.push_iter(&mut std::iter::repeat(())), 4);
        assert_eq!(rx.pop_with(10, |()| {}), 4);
    }

    #[test]
    fn handles_are_send_and_debug() {
        fn assert_send<T: Send>() {}
        assert_send::<Producer<String>>();
        assert_send::<Consumer<String>>();
        let (tx, rx) = channel::<u8>(2).unwrap();
        assert_eq!(
            format!("{tx:?}"),
            "Producer { capacity: 2, len: 0, closed: false }"
        );
        assert_eq!(
            format!("{rx:?}"),
            "Consumer { capacity: 2, len: 0, closed: false }"
        );
    }
}
