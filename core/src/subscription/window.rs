//! The delivery window of one (subscription, partition) over log offsets
//! `[floor, cursor)` (SEMANTICS.md §5, "The window").
//!
//! Every offset below `floor` is handled: acked, filtered out, expired,
//! dead-lettered or deferred to the delayed set. `cursor` is the next
//! offset the reader may admit. In between, the window keeps one slot per
//! offset from the floor up to the last unhandled one, in a ring indexed by
//! `offset - floor`; a slot is either handled or holds the offset's state.
//! So the handled set above the floor is the complement of the unhandled
//! slots (what [`Checkpoint`](recovery::Checkpoint) stores as ranges) and
//! the two can never disagree, and the floor is simply the ring's front,
//! which is always unhandled (handled slots are popped off it).
//!
//! # Cost
//!
//! The server leases and acks every message, so the per-message work is
//! what counts: admitting, leasing and acking a message are O(1) amortised
//! in the common case (first deliveries, acked in about lease order). The
//! indexes (`index.rs`) are deques there, ordered sets only for what
//! arrives out of order: retries that came due, keys unblocked by an ack,
//! re-read offsets, leases whose deadline was changed.
//!
//! # Memory bound
//!
//! Slots only exist inside `[floor, cursor)`, and `cursor - floor` never
//! exceeds `window_max` (admission and replay refuse to widen it further),
//! so the ring holds at most `window_max` slots of 24 bytes (1.5 MiB for a
//! full default window), and never reserves more. Every other index holds
//! offsets that have an unhandled slot, each live at most once, plus stale
//! entries that are bounded too: the ready queues hold at most one entry
//! per offset of `[floor, cursor)`, the lease queue fewer than
//! `2 × leases + 64` (it is compacted past that), and the deques give
//! memory back once three quarters empty. So the state is O(`window_max`)
//! whatever the interleaving of operations: 24 bytes per offset plus about
//! 20–50 per unhandled one for its ready, lease or retry entry, and for an
//! ordered message 8–32 more, or up to about 140 when its key has no other
//! message in the window (the key's map entry and its own small queue).
//! That is ≈ 2–5 MiB for a full default window of keyless messages and
//! ≈ 13 MiB at worst for one of keyed messages with distinct keys
//! (SEMANTICS.md §5 quotes these figures).

mod index;
#[cfg(test)]
mod model_tests;
pub(crate) mod recovery;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};

use thiserror::Error;

use self::index::{shrink_sparse, Leases, ReadyQueue, Slot, Slots, KEY_SHRINK_ABOVE};
use super::ack_id::AckId;
use super::config::{ConfigError, WindowConfig};
use super::lease;

/// Highest priority level; levels are `0..=PRIORITY_MAX`.
pub const PRIORITY_MAX: u8 = 9;
/// The level of a message without a `tg-priority` header.
pub const PRIORITY_DEFAULT: u8 = 4;
const PRIORITY_LEVELS: usize = PRIORITY_MAX as usize + 1;
/// With priority on, one delivery in this many takes the oldest deliverable
/// message whatever its level. A steady flow of high-priority messages
/// would otherwise hold a low one in the window for ever, and with it the
/// floor, until the window fills and the whole partition stalls.
const OLDEST_EVERY: u64 = 8;

/// What the reader decided about a message it read from the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// To be delivered.
    Deliver,
    /// Rejected by the subscription's filter: handled at once.
    Filtered,
    /// Past its expiry when read: handled at once.
    Expired,
    /// Not due yet: it went to the delayed set, so the window is done with it.
    Deferred,
}

/// What the window needs to know of a message read from the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Hash of the ordering key; `None` is not ordered.
    pub key_hash: Option<u64>,
    /// `0..=PRIORITY_MAX`; a larger value counts as `PRIORITY_MAX`.
    pub priority: u8,
    pub disposition: Disposition,
}

impl Meta {
    /// A keyless message of the default level, to be delivered.
    pub const fn deliver() -> Meta {
        Meta {
            key_hash: None,
            priority: PRIORITY_DEFAULT,
            disposition: Disposition::Deliver,
        }
    }

    pub const fn with_key(self, key_hash: u64) -> Meta {
        Meta {
            key_hash: Some(key_hash),
            ..self
        }
    }

    pub const fn with_priority(self, priority: u8) -> Meta {
        Meta { priority, ..self }
    }

    pub const fn with_disposition(self, disposition: Disposition) -> Meta {
        Meta {
            disposition,
            ..self
        }
    }
}

/// An offset taken into the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// Inclusive range that became handled: offsets skipped over (not in
    /// the log) and the offset itself unless it is to be delivered. The
    /// caller journals it as an `Ack`, so that recovery can replay it.
    pub handled: Option<(u64, u64)>,
    pub floor: u64,
}

/// A message leased to a subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub offset: u64,
    /// 1 for the first delivery.
    pub attempt: u32,
    pub ack_id: AckId,
    pub deadline_ms: i64,
}

/// A successful ack: the offset is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    pub offset: u64,
    /// The floor after the ack, for the caller to journal.
    pub floor: u64,
}

/// A lease ended without an ack: nacked, deadline set to 0, or expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseEnded {
    pub offset: u64,
    /// Deliveries so far.
    pub attempts: u32,
    pub after: AfterLease,
}

/// What becomes of a message whose lease ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterLease {
    /// Deliverable again from `due_ms`.
    RetryAt { due_ms: i64 },
    /// It reached `max_deliveries`: the caller publishes it to the
    /// dead-letter topic, then calls [`Window::dead_lettered`]. Until then
    /// it stays unhandled (and holds the floor), so a crash in between
    /// loses nothing.
    DeadLetter,
}

/// The outcome of [`Window::modify_deadline`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadlineChange {
    Extended {
        deadline_ms: i64,
    },
    /// An extension of 0 is a nack.
    Ended(LeaseEnded),
}

/// An offset the window cannot take now; nothing changed.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum AdmitError {
    #[error("offset {offset} does not fit the window: floor {floor}, window_max {window_max}")]
    Full {
        offset: u64,
        floor: u64,
        window_max: u64,
    },
    #[error("offset {offset} is below the cursor {cursor}: offsets are admitted in order")]
    OutOfOrder { offset: u64, cursor: u64 },
    #[error("offset u64::MAX cannot be admitted: the cursor would overflow")]
    OffsetMax,
}

/// Why an ack, nack or deadline change was refused; nothing changed.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum AckError {
    /// The lease is over (deadline passed, nacked, or ended by a restart)
    /// or the message was delivered again since: it will be (or was)
    /// delivered again.
    #[error("the lease of offset {offset} has expired")]
    LeaseExpired { offset: u64 },
    /// No such delivery: the offset is handled, outside the window, or was
    /// never delivered with that attempt.
    #[error("offset {offset} has no such delivery")]
    Unknown { offset: u64 },
    #[error("ack id of partition {got} sent to partition {expected}")]
    WrongPartition { expected: u32, got: u32 },
}

/// [`Window::dead_lettered`] for an offset that was not reported as a dead
/// letter; nothing changed.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("offset {offset} is not waiting to be dead-lettered")]
pub struct NotDeadLetter {
    pub offset: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Never delivered, or due again.
    Ready,
    Leased {
        deadline_ms: i64,
    },
    /// Waiting for its backoff.
    Retry {
        due_ms: i64,
    },
    /// Reported for the dead-letter topic; waiting for `dead_lettered`.
    DeadLetter,
}

/// What ordering and priority need to know of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Attached {
    key_hash: Option<u64>,
    level: u8,
}

impl From<Meta> for Attached {
    fn from(meta: Meta) -> Attached {
        Attached {
            key_hash: meta.key_hash,
            level: meta.priority.min(PRIORITY_MAX),
        }
    }
}

/// A live lease, as an ack id named it.
#[derive(Clone, Copy, Debug)]
struct Lease {
    offset: u64,
    deadline_ms: i64,
    attempts: u32,
}

/// The delivery window of one (subscription, partition); see the module
/// documentation.
#[derive(Clone, Debug)]
pub struct Window {
    partition: u32,
    config: WindowConfig,
    /// The next offset to admit.
    cursor: u64,
    /// Every offset from the floor on, up to the last unhandled one; the
    /// rest of `[floor, cursor)` is handled.
    slots: Slots,
    /// Offsets deliverable now: `Ready`, meta known, and with ordering,
    /// first of their key. One queue per priority level with priority on,
    /// all in the first queue without.
    ready: [ReadyQueue; PRIORITY_LEVELS],
    /// Offsets in `ready`, for `ready()` per pull.
    ready_len: usize,
    leases: Leases,
    /// `(due_ms, offset)` of every message waiting for its backoff: rare,
    /// so an ordered set is plenty.
    retries: BTreeSet<(i64, u64)>,
    /// With ordering: the unhandled offsets of each key, ascending. Only
    /// the first can be delivered, so a key has at most one lease and keeps
    /// its order, and it leaves from the front.
    keys: HashMap<u64, VecDeque<u64>>,
    /// Restored offsets whose meta is not known yet (see `reattach`).
    awaiting_meta: usize,
    /// Deliveries so far, for the one-in-eight rule.
    deliveries: u64,
}

impl Window {
    /// An empty window whose first offset to admit is `cursor`.
    pub fn new(partition: u32, config: WindowConfig, cursor: u64) -> Result<Window, ConfigError> {
        config.validate()?;
        Ok(Window::empty(partition, config, cursor))
    }

    fn empty(partition: u32, config: WindowConfig, cursor: u64) -> Window {
        Window {
            partition,
            config,
            cursor,
            slots: Slots::new(cursor, config.window_max),
            ready: Default::default(),
            ready_len: 0,
            leases: Leases::default(),
            retries: BTreeSet::new(),
            keys: HashMap::new(),
            awaiting_meta: 0,
            deliveries: 0,
        }
    }

    pub fn partition(&self) -> u32 {
        self.partition
    }

    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    /// Every offset below is handled.
    pub fn floor(&self) -> u64 {
        self.slots.first().unwrap_or(self.cursor)
    }

    /// The next offset to admit.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Leases outstanding.
    pub fn outstanding(&self) -> usize {
        self.leases.len()
    }

    /// Offsets in the window not handled yet.
    pub fn unhandled(&self) -> usize {
        self.slots.unhandled()
    }

    /// Messages deliverable now, not counting retries that came due since
    /// the last [`Window::next`] (see [`Window::next_due`] for those).
    pub fn ready(&self) -> usize {
        self.ready_len
    }

    /// True when `offset` is handled: below the cursor and not waiting
    /// for anything.
    pub fn is_handled(&self, offset: u64) -> bool {
        offset < self.cursor && self.slots.get(offset).is_none()
    }

    /// Restored offsets still waiting for [`Window::reattach`].
    pub fn awaiting_meta(&self) -> usize {
        self.awaiting_meta
    }

    /// The cursor cannot move: the floor is held `window_max` behind it.
    pub fn is_full(&self) -> bool {
        self.cursor - self.floor() >= self.config.window_max
    }

    /// Takes the next message read from the log. Offsets come in order;
    /// any offset between the cursor and `offset` is not in the log and
    /// counts as handled. Refused while `offset` is `window_max` or more
    /// above the floor.
    pub fn admit(&mut self, offset: u64, meta: Meta) -> Result<Admitted, AdmitError> {
        if offset < self.cursor {
            let cursor = self.cursor;
            return Err(AdmitError::OutOfOrder { offset, cursor });
        }
        let floor = self.floor();
        let window_max = self.config.window_max;
        if offset - floor >= window_max {
            return Err(AdmitError::Full {
                offset,
                floor,
                window_max,
            });
        }
        let next_cursor = offset.checked_add(1).ok_or(AdmitError::OffsetMax)?;
        let skipped_from = self.cursor;
        self.cursor = next_cursor;
        let handled_end = if meta.disposition == Disposition::Deliver {
            self.insert_entry(offset, 0, Some(Attached::from(meta)));
            offset
        } else {
            next_cursor
        };
        Ok(Admitted {
            handled: (skipped_from < handled_end).then(|| (skipped_from, handled_end - 1)),
            floor: self.floor(),
        })
    }

    /// Leases the next deliverable message, if any and if fewer than
    /// `outstanding_max` leases are out. Deliverable: ready or due for a
    /// retry; with ordering, also the first unhandled message of its key.
    /// Lowest offset first; with priority, highest level first except one
    /// delivery in eight (see `OLDEST_EVERY`). Nothing is delivered while
    /// restored offsets await their meta, as their keys are unknown.
    pub fn next(&mut self, now_ms: i64) -> Option<Delivery> {
        self.promote_due(now_ms);
        if self.awaiting_meta > 0 || self.leases.len() >= self.config.outstanding_max {
            return None;
        }
        let offset = self.pick()?;
        self.lease(offset, now_ms)
    }

    /// Handles the delivered message, if its lease is live and current.
    pub fn ack(&mut self, ack_id: AckId, now_ms: i64) -> Result<Acked, AckError> {
        let lease = self.live_lease(ack_id, now_ms)?;
        self.mark_handled(lease.offset);
        Ok(Acked {
            offset: lease.offset,
            floor: self.floor(),
        })
    }

    /// Ends a live lease: the message is due again after the backoff, or
    /// at `max_deliveries` it is reported as a dead letter.
    pub fn nack(&mut self, ack_id: AckId, now_ms: i64) -> Result<LeaseEnded, AckError> {
        let lease = self.live_lease(ack_id, now_ms)?;
        Ok(self.end_lease(lease, now_ms, false))
    }

    /// Ends a live lease as a dead letter whatever its attempts (the
    /// driver found the message expired, and the subscription
    /// dead-letters those).
    pub fn dead_letter(&mut self, ack_id: AckId, now_ms: i64) -> Result<LeaseEnded, AckError> {
        let lease = self.live_lease(ack_id, now_ms)?;
        Ok(self.end_lease(lease, now_ms, true))
    }

    /// Sets a live lease's deadline to `now_ms + extend_ms`, at most
    /// `DEADLINE_MAX_MS` ahead; 0 is a nack.
    pub fn modify_deadline(
        &mut self,
        ack_id: AckId,
        extend_ms: u32,
        now_ms: i64,
    ) -> Result<DeadlineChange, AckError> {
        let lease = self.live_lease(ack_id, now_ms)?;
        if extend_ms == 0 {
            return Ok(DeadlineChange::Ended(self.end_lease(lease, now_ms, false)));
        }
        let deadline_ms = lease::extended_deadline_ms(now_ms, extend_ms);
        if deadline_ms != lease.deadline_ms {
            self.reschedule(lease.offset, deadline_ms);
        }
        Ok(DeadlineChange::Extended { deadline_ms })
    }

    /// Ends every lease whose deadline is at or before `now_ms`, as a nack.
    /// At most `outstanding_max` results.
    pub fn expire(&mut self, now_ms: i64) -> Vec<LeaseEnded> {
        let due = self.leases.due(&self.slots, now_ms);
        let mut ended = Vec::with_capacity(due.len());
        for (deadline_ms, offset) in due {
            let attempts = self.slots.get(offset).map_or(0, |slot| slot.attempts);
            let lease = Lease {
                offset,
                deadline_ms,
                attempts,
            };
            ended.push(self.end_lease(lease, now_ms, false));
        }
        ended
    }

    /// The caller published a reported dead letter to the dead-letter
    /// topic: the offset is handled.
    pub fn dead_lettered(&mut self, offset: u64) -> Result<Acked, NotDeadLetter> {
        match self.slots.get(offset).and_then(Slot::state) {
            Some(State::DeadLetter) => {
                self.mark_handled(offset);
                Ok(Acked {
                    offset,
                    floor: self.floor(),
                })
            }
            _ => Err(NotDeadLetter { offset }),
        }
    }

    /// When `expire` or `next` next has work: the earliest lease deadline
    /// or retry due time, and `now_ms` if that has passed already.
    pub fn next_due(&self, now_ms: i64) -> Option<i64> {
        let lease = self.leases.first_deadline();
        let retry = self.retries.first().map(|&(due_ms, _)| due_ms);
        lease
            .into_iter()
            .chain(retry)
            .min()
            .map(|due| due.max(now_ms))
    }

    /// The ready queue of a level.
    fn queue_of(&self, level: u8) -> usize {
        if self.config.priority {
            // Levels are clamped when a message is read; this keeps a
            // slip from indexing past the queues.
            usize::from(level).min(PRIORITY_LEVELS - 1)
        } else {
            0
        }
    }

    fn pick(&mut self) -> Option<u64> {
        let slots = &self.slots;
        if !self.config.priority {
            return self.ready[0].first(slots);
        }
        if self.deliveries % OLDEST_EVERY == OLDEST_EVERY - 1 {
            return self.ready.iter_mut().filter_map(|q| q.first(slots)).min();
        }
        let top = self.ready.iter_mut().rev().find(|q| q.len() > 0)?;
        top.first(slots)
    }

    fn lease(&mut self, offset: u64, now_ms: i64) -> Option<Delivery> {
        let deadline_ms = self.config.lease_deadline_ms(now_ms);
        let slot = self.slots.get_mut(offset)?;
        slot.attempts = slot.attempts.saturating_add(1);
        slot.set_state(State::Leased { deadline_ms });
        let attempt = slot.attempts;
        if slot.in_ready() {
            slot.set_in_ready(false);
            let level = slot.meta().map_or(PRIORITY_DEFAULT, |meta| meta.level);
            self.ready[self.queue_of(level)].remove(offset);
            self.ready_len -= 1;
        }
        if self
            .leases
            .insert(&self.slots, deadline_ms, offset, attempt)
        {
            self.set_lease_moved(offset);
        }
        self.deliveries = self.deliveries.wrapping_add(1);
        let partition = self.partition;
        Some(Delivery {
            offset,
            attempt,
            ack_id: AckId {
                partition,
                offset,
                attempt,
            },
            deadline_ms,
        })
    }

    /// A live lease gets a new deadline, or (replay) a new attempt count:
    /// either way its queue entry no longer matches, so it is indexed in
    /// the ordered set.
    fn reschedule(&mut self, offset: u64, deadline_ms: i64) {
        let Some(slot) = self.slots.get_mut(offset) else {
            return;
        };
        let Some(State::Leased {
            deadline_ms: was_deadline_ms,
        }) = slot.state()
        else {
            return;
        };
        let was = (was_deadline_ms, slot.lease_moved());
        slot.set_state(State::Leased { deadline_ms });
        slot.set_lease_moved(true);
        self.leases
            .reschedule(&self.slots, was, deadline_ms, offset);
    }

    fn set_lease_moved(&mut self, offset: u64) {
        if let Some(slot) = self.slots.get_mut(offset) {
            slot.set_lease_moved(true);
        }
    }

    /// Retries whose backoff is over become ready.
    fn promote_due(&mut self, now_ms: i64) {
        while let Some(&(due_ms, offset)) = self.retries.first() {
            if due_ms > now_ms {
                break;
            }
            self.retries.pop_first();
            if let Some(slot) = self.slots.get_mut(offset) {
                slot.set_state(State::Ready);
            }
            self.sync_ready(offset);
        }
    }

    /// The lease an ack id names, if it is live: the attempt is the latest
    /// and the deadline has not passed.
    fn live_lease(&self, ack_id: AckId, now_ms: i64) -> Result<Lease, AckError> {
        lease::check_partition(ack_id, self.partition)?;
        let offset = ack_id.offset;
        let slot = self.slots.get(offset).ok_or(AckError::Unknown { offset })?;
        let leased_until = match slot.state() {
            Some(State::Leased { deadline_ms }) => Some(deadline_ms),
            _ => None,
        };
        let deadline_ms = lease::live_deadline(ack_id, slot.attempts, leased_until, now_ms)?;
        Ok(Lease {
            offset,
            deadline_ms,
            attempts: slot.attempts,
        })
    }

    fn end_lease(&mut self, lease: Lease, now_ms: i64, dead: bool) -> LeaseEnded {
        let dead = dead || self.config.dead_after(lease.attempts);
        let (state, after) = if dead {
            (State::DeadLetter, AfterLease::DeadLetter)
        } else {
            let due_ms = now_ms.saturating_add(self.config.backoff_ms(lease.attempts));
            self.retries.insert((due_ms, lease.offset));
            (State::Retry { due_ms }, AfterLease::RetryAt { due_ms })
        };
        let mut moved = false;
        if let Some(slot) = self.slots.get_mut(lease.offset) {
            moved = slot.lease_moved();
            slot.set_state(state);
        }
        self.leases
            .remove(&self.slots, lease.deadline_ms, lease.offset, moved);
        LeaseEnded {
            offset: lease.offset,
            attempts: lease.attempts,
            after,
        }
    }

    /// Adds an unhandled offset at or past the end of `slots` and below
    /// the cursor, ready; without meta it waits for `reattach`.
    fn insert_entry(&mut self, offset: u64, attempts: u32, meta: Option<Attached>) {
        let pushed = self.slots.push(offset, Slot::ready(attempts, meta));
        // Callers append above every slot and within window_max of the
        // floor (admission and replay check it first), so a refusal is a
        // bug here: better a crash, which recovery replays, than an offset
        // silently counted as handled.
        assert!(pushed, "offset {offset} does not fit the window's slots");
        match meta {
            Some(meta) => self.place(offset, meta),
            None => self.awaiting_meta += 1,
        }
    }

    /// Gives a restored offset its meta.
    fn attach(&mut self, offset: u64, meta: Attached) {
        let Some(slot) = self.slots.get_mut(offset) else {
            return;
        };
        if slot.meta().is_some() {
            return;
        }
        slot.set_meta(meta);
        self.awaiting_meta -= 1;
        self.place(offset, meta);
    }

    /// Indexes an offset whose meta just became known.
    fn place(&mut self, offset: u64, meta: Attached) {
        match self.ordered_key(meta) {
            Some(key) => self.key_insert(key, offset),
            None => self.set_ready(offset, true),
        }
    }

    /// Forgets an unhandled offset, whatever its state: it is handled.
    fn mark_handled(&mut self, offset: u64) {
        let Some(slot) = self.slots.take(offset) else {
            return;
        };
        match slot.state() {
            Some(State::Leased { deadline_ms }) => {
                let moved = slot.lease_moved();
                self.leases.remove(&self.slots, deadline_ms, offset, moved);
            }
            Some(State::Retry { due_ms }) => {
                self.retries.remove(&(due_ms, offset));
            }
            _ => {}
        }
        match slot.meta() {
            None => self.awaiting_meta -= 1,
            Some(meta) => {
                if slot.in_ready() {
                    self.ready[self.queue_of(meta.level)].remove(offset);
                    self.ready_len -= 1;
                }
                if let Some(key) = self.ordered_key(meta) {
                    self.key_remove(key, offset);
                }
            }
        }
        let floor = self.floor();
        let queues = if self.config.priority {
            PRIORITY_LEVELS
        } else {
            1
        };
        for queue in &mut self.ready[..queues] {
            queue.drop_below(floor);
        }
    }

    /// The key a message is ordered by, if ordering is on.
    fn ordered_key(&self, meta: Attached) -> Option<u64> {
        meta.key_hash.filter(|_| self.config.ordering)
    }

    fn key_insert(&mut self, key: u64, offset: u64) {
        let offsets = self.keys.entry(key).or_default();
        let old_first = offsets.front().copied();
        match offsets.back() {
            // Re-read offsets may come back out of order.
            Some(&back) if back >= offset => {
                if let Err(index) = offsets.binary_search(&offset) {
                    offsets.insert(index, offset);
                }
            }
            _ => offsets.push_back(offset),
        }
        let is_first = offsets.front() == Some(&offset);
        self.set_ready(offset, is_first);
        // An earlier offset holds back the key's former first.
        if let Some(old_first) = old_first.filter(|&old_first| old_first > offset) {
            self.set_ready(old_first, false);
        }
    }

    fn key_remove(&mut self, key: u64, offset: u64) {
        let Some(offsets) = self.keys.get_mut(&key) else {
            return;
        };
        // Only a key's first is leased, so an ack takes the front; replay
        // may handle any.
        if offsets.front() == Some(&offset) {
            offsets.pop_front();
        } else if let Ok(index) = offsets.binary_search(&offset) {
            offsets.remove(index);
        }
        shrink_sparse(offsets, KEY_SHRINK_ABOVE);
        match offsets.front().copied() {
            Some(first) => self.set_ready(first, true),
            None => {
                self.keys.remove(&key);
            }
        }
    }

    /// Puts an offset in `ready` if it is deliverable now, takes it out if not.
    fn sync_ready(&mut self, offset: u64) {
        let meta = self.slots.get(offset).and_then(Slot::meta);
        let first_of_key = meta.is_some_and(|meta| self.first_of_key(offset, meta));
        self.set_ready(offset, first_of_key);
    }

    /// `sync_ready` when the caller knows whether the offset is the first
    /// of its key (always, without ordering): it saves a key lookup per
    /// message.
    fn set_ready(&mut self, offset: u64, first_of_key: bool) {
        let Some(slot) = self.slots.get(offset) else {
            return;
        };
        let Some(meta) = slot.meta() else {
            return;
        };
        let deliverable = slot.state() == Some(State::Ready) && first_of_key;
        if deliverable == slot.in_ready() {
            return;
        }
        let queue = self.queue_of(meta.level);
        if let Some(slot) = self.slots.get_mut(offset) {
            slot.set_in_ready(deliverable);
        }
        if deliverable {
            self.ready[queue].insert(offset);
            self.ready_len += 1;
        } else {
            self.ready[queue].remove(offset);
            self.ready_len -= 1;
        }
    }

    fn first_of_key(&self, offset: u64, meta: Attached) -> bool {
        match self.ordered_key(meta) {
            Some(key) => {
                let first = self.keys.get(&key).and_then(|offsets| offsets.front());
                first == Some(&offset)
            }
            None => true,
        }
    }
}

#[cfg(test)]
impl Window {
    /// Checks every invariant the indexes rely on; tests call it after
    /// each step.
    pub(crate) fn assert_invariants(&self) {
        let floor = self.floor();
        assert!(floor <= self.cursor);
        assert!(self.cursor - floor <= self.config.window_max);
        let window_max = usize::try_from(self.config.window_max).unwrap_or(usize::MAX);
        assert!(self.slots.ring_len() <= window_max, "memory bound");
        assert!(self.slots.end() <= self.cursor);
        assert!(self.slots.first().is_none_or(|first| first == floor));
        assert!(self.leases.len() <= self.config.outstanding_max);
        let entries: Vec<(u64, Slot)> = self.slots.iter().map(|(o, s)| (o, *s)).collect();
        assert_eq!(entries.len(), self.slots.unhandled());
        for &(offset, slot) in &entries {
            assert!((floor..self.cursor).contains(&offset));
            assert!(!self.is_handled(offset));
            self.assert_entry_indexed(offset, &slot);
        }
        let count = |wanted: fn(&Slot) -> bool| entries.iter().filter(|(_, s)| wanted(s)).count();
        let leased = count(|s| matches!(s.state(), Some(State::Leased { .. })));
        assert_eq!(self.leases.len(), leased);
        self.leases.assert_invariants(&self.slots);
        let retrying = count(|s| matches!(s.state(), Some(State::Retry { .. })));
        assert_eq!(self.retries.len(), retrying);
        assert_eq!(self.awaiting_meta, count(|s| s.meta().is_none()));
        self.assert_ready(&entries);
        self.assert_keys();
    }

    fn assert_entry_indexed(&self, offset: u64, slot: &Slot) {
        match slot.state() {
            Some(State::Leased { .. }) => assert!(self.leases.contains(&self.slots, offset)),
            Some(State::Retry { due_ms }) => assert!(self.retries.contains(&(due_ms, offset))),
            _ => assert!(!slot.lease_moved()),
        }
        let Some(meta) = slot.meta() else {
            assert!(!slot.in_ready());
            return;
        };
        let deliverable = slot.state() == Some(State::Ready) && self.first_of_key(offset, meta);
        assert_eq!(slot.in_ready(), deliverable, "offset {offset}");
        let queue = &self.ready[self.queue_of(meta.level)];
        if deliverable {
            assert!(queue.contains(offset), "offset {offset} not queued");
        }
        if let Some(key) = self.ordered_key(meta) {
            assert!(self.keys.get(&key).is_some_and(|o| o.contains(&offset)));
        }
    }

    fn assert_ready(&self, entries: &[(u64, Slot)]) {
        let ready = entries.iter().filter(|(_, s)| s.in_ready()).count();
        assert_eq!(self.ready_len, ready);
        let lens: usize = self.ready.iter().map(ReadyQueue::len).sum();
        assert_eq!(lens, ready);
        for (index, queue) in self.ready.iter().enumerate() {
            let in_queue = entries.iter().filter(|(_, s)| {
                s.in_ready() && s.meta().is_some_and(|m| self.queue_of(m.level) == index)
            });
            assert_eq!(queue.len(), in_queue.count());
            queue.assert_invariants(&self.slots, self.floor(), self.cursor);
        }
    }

    fn assert_keys(&self) {
        if !self.config.ordering {
            assert!(self.keys.is_empty());
        }
        let mut leased_keys = BTreeSet::new();
        for (key, offsets) in &self.keys {
            assert!(!offsets.is_empty());
            assert!(offsets
                .iter()
                .zip(offsets.iter().skip(1))
                .all(|(a, b)| a < b));
            for &offset in offsets {
                let slot = self.slots.get(offset);
                let meta = slot.and_then(Slot::meta);
                assert_eq!(meta.and_then(|m| m.key_hash), Some(*key));
                if slot.is_some_and(|s| matches!(s.state(), Some(State::Leased { .. }))) {
                    assert!(leased_keys.insert(*key), "two leases of one key");
                }
            }
        }
    }
}
