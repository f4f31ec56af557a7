//! The window's indexes, built so that the common path (keyless first
//! deliveries, acked in about the order they were leased) costs O(1)
//! amortised per message: offsets arrive in increasing order, leases are
//! created in deadline order, and both leave mostly from the front. So the
//! indexes are deques on that path, with lazy deletion where an entry can
//! leave from the middle, and ordered sets only for what arrives out of
//! order.

use std::collections::{BTreeSet, VecDeque};

use super::{Attached, State};

/// Size of a [`Slot`], which the module documentation's memory bound uses.
pub(super) const SLOT_BYTES: usize = 24;
const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_BYTES);

/// A deque of more than this many elements gives memory back when it is
/// three quarters empty; the per-key deques use a smaller floor, as there
/// may be one per unhandled offset.
const SHRINK_ABOVE: usize = 64;
pub(super) const KEY_SHRINK_ABOVE: usize = 8;

/// The lease queue is compacted once it holds more than twice the live
/// leases plus this: compaction then drops more than half of it, each
/// dropped entry pushed once, so its cost is amortised O(1) per lease; and
/// the queue stays within `2 × leases + LEASE_SLACK` entries, with leases
/// ≤ `window_max`, so its memory is O(`window_max`).
const LEASE_SLACK: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Handled,
    Ready,
    Leased,
    Retry,
    DeadLetter,
}

/// The slot's meta is known (not awaiting `reattach`).
const META_KNOWN: u8 = 1;
/// `key_hash` is meaningful.
const KEYED: u8 = 2;
/// The offset is counted in a ready queue.
const IN_READY: u8 = 4;
/// The lease is indexed in `Leases::moved`, not in its queue.
const LEASE_MOVED: u8 = 8;

/// One offset of the window, packed in 24 bytes as there is one per offset
/// of `[floor, cursor)` (handled ones included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    key_hash: u64,
    /// The lease deadline when leased, the due time when waiting for a
    /// retry; 0 otherwise.
    at_ms: i64,
    /// Deliveries so far.
    pub(super) attempts: u32,
    phase: Phase,
    level: u8,
    flags: u8,
}

impl Slot {
    const HANDLED: Slot = Slot {
        key_hash: 0,
        at_ms: 0,
        attempts: 0,
        phase: Phase::Handled,
        level: 0,
        flags: 0,
    };

    /// A ready, unhandled offset; without meta it awaits `reattach`.
    pub(super) fn ready(attempts: u32, meta: Option<Attached>) -> Slot {
        let mut slot = Slot {
            attempts,
            phase: Phase::Ready,
            ..Slot::HANDLED
        };
        if let Some(meta) = meta {
            slot.set_meta(meta);
        }
        slot
    }

    fn is_handled(&self) -> bool {
        self.phase == Phase::Handled
    }

    /// `None` once handled.
    pub(super) fn state(&self) -> Option<State> {
        match self.phase {
            Phase::Handled => None,
            Phase::Ready => Some(State::Ready),
            Phase::Leased => Some(State::Leased {
                deadline_ms: self.at_ms,
            }),
            Phase::Retry => Some(State::Retry { due_ms: self.at_ms }),
            Phase::DeadLetter => Some(State::DeadLetter),
        }
    }

    /// Also forgets where a previous lease was indexed: a new state is
    /// indexed afresh.
    pub(super) fn set_state(&mut self, state: State) {
        (self.phase, self.at_ms) = match state {
            State::Ready => (Phase::Ready, 0),
            State::Leased { deadline_ms } => (Phase::Leased, deadline_ms),
            State::Retry { due_ms } => (Phase::Retry, due_ms),
            State::DeadLetter => (Phase::DeadLetter, 0),
        };
        self.flags &= !LEASE_MOVED;
    }

    pub(super) fn meta(&self) -> Option<Attached> {
        (self.flags & META_KNOWN != 0).then_some(Attached {
            key_hash: (self.flags & KEYED != 0).then_some(self.key_hash),
            level: self.level,
        })
    }

    pub(super) fn set_meta(&mut self, meta: Attached) {
        self.level = meta.level;
        self.key_hash = meta.key_hash.unwrap_or(0);
        self.flags |= META_KNOWN;
        if meta.key_hash.is_some() {
            self.flags |= KEYED;
        }
    }

    pub(super) fn in_ready(&self) -> bool {
        self.flags & IN_READY != 0
    }

    pub(super) fn set_in_ready(&mut self, in_ready: bool) {
        self.set_flag(IN_READY, in_ready);
    }

    pub(super) fn lease_moved(&self) -> bool {
        self.flags & LEASE_MOVED != 0
    }

    pub(super) fn set_lease_moved(&mut self, moved: bool) {
        self.set_flag(LEASE_MOVED, moved);
    }

    fn set_flag(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

/// Every offset of `[base, base + len)` as a ring, its front unhandled, so
/// the front is the floor. Handled offsets inside stay as handled slots
/// until they reach the front.
#[derive(Clone, Debug)]
pub(super) struct Slots {
    base: u64,
    ring: VecDeque<Slot>,
    unhandled: usize,
    /// `window_max`: the ring never needs more.
    len_max: usize,
}

impl Slots {
    pub(super) fn new(base: u64, window_max: u64) -> Slots {
        Slots {
            base,
            ring: VecDeque::new(),
            unhandled: 0,
            len_max: usize::try_from(window_max).unwrap_or(usize::MAX),
        }
    }

    /// The lowest unhandled offset.
    pub(super) fn first(&self) -> Option<u64> {
        (!self.ring.is_empty()).then_some(self.base)
    }

    pub(super) fn unhandled(&self) -> usize {
        self.unhandled
    }

    fn index(&self, offset: u64) -> Option<usize> {
        usize::try_from(offset.checked_sub(self.base)?).ok()
    }

    /// The slot of an unhandled offset.
    pub(super) fn get(&self, offset: u64) -> Option<&Slot> {
        let slot = self.ring.get(self.index(offset)?)?;
        (!slot.is_handled()).then_some(slot)
    }

    pub(super) fn get_mut(&mut self, offset: u64) -> Option<&mut Slot> {
        let index = self.index(offset)?;
        let slot = self.ring.get_mut(index)?;
        (!slot.is_handled()).then_some(slot)
    }

    /// Appends an unhandled offset at or past the end of the ring; the
    /// offsets in between are handled. False, and nothing changed, for an
    /// offset below the end, or one that would stretch the ring past
    /// `window_max` (callers check the window's width first).
    pub(super) fn push(&mut self, offset: u64, slot: Slot) -> bool {
        if self.ring.is_empty() {
            self.base = offset;
        }
        let Some(gap) = self
            .index(offset)
            .and_then(|i| i.checked_sub(self.ring.len()))
        else {
            return false;
        };
        let len = self.ring.len() + gap + 1;
        if len > self.len_max {
            return false;
        }
        if self.ring.capacity() < len {
            // Doubling, but never past window_max, so that a full window
            // costs exactly `window_max` slots.
            let capacity = (self.ring.len() * 2).clamp(len, self.len_max);
            self.ring.reserve_exact(capacity - self.ring.len());
        }
        self.ring.resize(len - 1, Slot::HANDLED);
        self.ring.push_back(slot);
        self.unhandled += 1;
        true
    }

    /// Marks an unhandled offset handled and returns what it was; the
    /// handled front is dropped, so the floor moves.
    pub(super) fn take(&mut self, offset: u64) -> Option<Slot> {
        let slot = self.get_mut(offset)?;
        let taken = std::mem::replace(slot, Slot::HANDLED);
        self.unhandled -= 1;
        while self.ring.front().is_some_and(Slot::is_handled) {
            self.ring.pop_front();
            self.base += 1;
        }
        shrink_sparse(&mut self.ring, SHRINK_ABOVE);
        Some(taken)
    }

    /// Unhandled offsets with their slots, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &Slot)> + '_ {
        (self.base..)
            .zip(&self.ring)
            .filter(|(_, slot)| !slot.is_handled())
    }

    /// The unhandled offsets of `first..=last`.
    pub(super) fn unhandled_in(&self, first: u64, last: u64) -> Vec<u64> {
        let start = first.max(self.base);
        let skip = self.index(start).unwrap_or(usize::MAX);
        (start..=last)
            .zip(self.ring.iter().skip(skip))
            .filter(|(_, slot)| !slot.is_handled())
            .map(|(offset, _)| offset)
            .collect()
    }

    #[cfg(test)]
    pub(super) fn ring_len(&self) -> usize {
        self.ring.len()
    }

    #[cfg(test)]
    pub(super) fn end(&self) -> u64 {
        self.base + self.ring.len() as u64
    }
}

/// Deliverable offsets of one priority level (of every level without
/// priority), lowest first. New offsets arrive in increasing order, so
/// they queue in `fifo`; what arrives at or below its back (a retry come
/// due, a key unblocked by an ack, a re-read offset) goes to `late`. An
/// offset is in the queue while its slot says `in_ready`: `late` is kept
/// exact, `fifo` may hold stale offsets, skipped when they reach its front.
#[derive(Clone, Debug, Default)]
pub(super) struct ReadyQueue {
    /// Strictly increasing, within `[floor, cursor)`.
    fifo: VecDeque<u64>,
    late: BTreeSet<u64>,
    /// Offsets in the queue.
    len: usize,
}

impl ReadyQueue {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Adds an offset whose slot the caller just marked `in_ready`.
    pub(super) fn insert(&mut self, offset: u64) {
        self.len += 1;
        if self.fifo.back().is_none_or(|&back| back < offset) {
            self.fifo.push_back(offset);
        } else {
            self.late.insert(offset);
        }
    }

    /// Takes out an offset whose slot the caller just unmarked. A copy
    /// left in `fifo` is stale from now on.
    pub(super) fn remove(&mut self, offset: u64) {
        self.len -= 1;
        if self.fifo.front() == Some(&offset) {
            self.fifo.pop_front();
            shrink_sparse(&mut self.fifo, SHRINK_ABOVE);
        }
        if !self.late.is_empty() {
            self.late.remove(&offset);
        }
    }

    /// The lowest offset in the queue; drops stale ones from the front.
    pub(super) fn first(&mut self, slots: &Slots) -> Option<u64> {
        while let Some(&front) = self.fifo.front() {
            if slots.get(front).is_some_and(Slot::in_ready) {
                break;
            }
            self.fifo.pop_front();
        }
        let fifo = self.fifo.front().copied();
        let late = self.late.first().copied();
        match (fifo, late) {
            (Some(fifo), Some(late)) => Some(fifo.min(late)),
            (fifo, late) => fifo.or(late),
        }
    }

    /// Drops offsets below the floor, all handled: so the queues together
    /// hold at most one entry per offset of `[floor, cursor)`.
    pub(super) fn drop_below(&mut self, floor: u64) {
        while self.fifo.front().is_some_and(|&front| front < floor) {
            self.fifo.pop_front();
        }
    }

    #[cfg(test)]
    pub(super) fn assert_invariants(&self, slots: &Slots, floor: u64, cursor: u64) {
        assert!(self
            .fifo
            .iter()
            .zip(self.fifo.iter().skip(1))
            .all(|(a, b)| a < b));
        assert!(self.fifo.iter().all(|o| (floor..cursor).contains(o)));
        for &offset in &self.late {
            assert!(
                slots.get(offset).is_some_and(Slot::in_ready),
                "late {offset}"
            );
        }
    }

    #[cfg(test)]
    pub(super) fn contains(&self, offset: u64) -> bool {
        self.late.contains(&offset) || self.fifo.binary_search(&offset).is_ok()
    }
}

/// Every live lease, by deadline. Leases are created with one deadline
/// per subscription, so in deadline order: they queue in `fifo` as
/// `(deadline_ms, offset, attempt)`, with lazy deletion (an entry is live
/// while its slot is leased with that deadline and attempt and not moved).
/// A lease whose deadline changed, or that came out of order (the clock
/// went back), is kept exactly in `moved`.
#[derive(Clone, Debug, Default)]
pub(super) struct Leases {
    /// Deadlines never decrease; the front is live.
    fifo: VecDeque<(i64, u64, u32)>,
    moved: BTreeSet<(i64, u64)>,
    /// Live leases.
    len: usize,
}

impl Leases {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Indexes the lease the caller just put in the slot of `offset`.
    /// True when it went to `moved`: the caller marks the slot so.
    pub(super) fn insert(
        &mut self,
        slots: &Slots,
        deadline_ms: i64,
        offset: u64,
        attempt: u32,
    ) -> bool {
        self.len += 1;
        // A saturated attempt count could repeat an entry still queued.
        let in_order = self.fifo.back().is_none_or(|back| back.0 <= deadline_ms);
        if !in_order || attempt == u32::MAX {
            self.moved.insert((deadline_ms, offset));
            return true;
        }
        self.fifo.push_back((deadline_ms, offset, attempt));
        self.compact_if_sparse(slots);
        false
    }

    /// The lease at `(deadline_ms, offset)` ended; the caller already
    /// changed its slot. `moved` tells where it was indexed.
    pub(super) fn remove(&mut self, slots: &Slots, deadline_ms: i64, offset: u64, moved: bool) {
        self.len -= 1;
        if moved {
            self.moved.remove(&(deadline_ms, offset));
        }
        self.drop_stale(slots);
    }

    /// The lease of `offset` now ends at `deadline_ms`: it goes to `moved`,
    /// and the caller marks the slot so.
    pub(super) fn reschedule(
        &mut self,
        slots: &Slots,
        was: (i64, bool),
        deadline_ms: i64,
        offset: u64,
    ) {
        let (was_deadline_ms, was_moved) = was;
        if was_moved {
            self.moved.remove(&(was_deadline_ms, offset));
        }
        self.moved.insert((deadline_ms, offset));
        self.drop_stale(slots);
    }

    /// The earliest deadline.
    pub(super) fn first_deadline(&self) -> Option<i64> {
        let fifo = self.fifo.front().map(|entry| entry.0);
        let moved = self.moved.first().map(|entry| entry.0);
        fifo.into_iter().chain(moved).min()
    }

    /// `(deadline_ms, offset)` of every lease due at `now_ms`, in order.
    pub(super) fn due(&self, slots: &Slots, now_ms: i64) -> Vec<(i64, u64)> {
        let mut due: Vec<(i64, u64)> = self
            .fifo
            .iter()
            .take_while(|entry| entry.0 <= now_ms)
            .filter(|&&entry| is_live(slots, entry))
            .map(|&(deadline_ms, offset, _)| (deadline_ms, offset))
            .collect();
        due.extend(self.moved.range(..=(now_ms, u64::MAX)).copied());
        due.sort_unstable();
        due
    }

    fn drop_stale(&mut self, slots: &Slots) {
        while self
            .fifo
            .front()
            .is_some_and(|&entry| !is_live(slots, entry))
        {
            self.fifo.pop_front();
        }
        self.compact_if_sparse(slots);
    }

    /// Entries behind a long lease only leave once it does: past
    /// `2 × leases + LEASE_SLACK` entries, the stale ones are dropped.
    fn compact_if_sparse(&mut self, slots: &Slots) {
        if self.fifo.len() > 2 * self.len + LEASE_SLACK {
            self.fifo.retain(|&entry| is_live(slots, entry));
        }
        shrink_sparse(&mut self.fifo, SHRINK_ABOVE);
    }

    #[cfg(test)]
    pub(super) fn assert_invariants(&self, slots: &Slots) {
        let fifo = &self.fifo;
        assert!(fifo
            .iter()
            .zip(fifo.iter().skip(1))
            .all(|(a, b)| a.0 <= b.0));
        assert!(fifo.front().is_none_or(|&entry| is_live(slots, entry)));
        assert!(
            fifo.len() <= 2 * self.len + LEASE_SLACK,
            "lease queue bound"
        );
        let live = fifo.iter().filter(|&&entry| is_live(slots, entry)).count();
        assert_eq!(live + self.moved.len(), self.len);
        for &(deadline_ms, offset) in &self.moved {
            let slot = slots.get(offset);
            assert!(slot.is_some_and(Slot::lease_moved));
            assert_eq!(
                slot.and_then(Slot::state),
                Some(State::Leased { deadline_ms })
            );
        }
    }

    /// True when the live lease of `offset` is indexed.
    #[cfg(test)]
    pub(super) fn contains(&self, slots: &Slots, offset: u64) -> bool {
        let Some(slot) = slots.get(offset) else {
            return false;
        };
        let Some(State::Leased { deadline_ms }) = slot.state() else {
            return false;
        };
        if slot.lease_moved() {
            return self.moved.contains(&(deadline_ms, offset));
        }
        let entry = (deadline_ms, offset, slot.attempts);
        self.fifo.iter().filter(|&&e| e == entry).count() == 1
    }
}

fn is_live(slots: &Slots, (deadline_ms, offset, attempt): (i64, u64, u32)) -> bool {
    slots.get(offset).is_some_and(|slot| {
        slot.state() == Some(State::Leased { deadline_ms })
            && slot.attempts == attempt
            && !slot.lease_moved()
    })
}

/// Gives memory back once a deque is three quarters empty, so a burst does
/// not pin its peak capacity for ever; halving at a quarter keeps the
/// copying amortised O(1) per element.
pub(super) fn shrink_sparse<T>(deque: &mut VecDeque<T>, above: usize) {
    if deque.capacity() > above && deque.len() < deque.capacity() / 4 {
        deque.shrink_to(deque.len() * 2);
    }
}
