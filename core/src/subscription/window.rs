//! The delivery window of one (subscription, partition) over log offsets
//! `[floor, cursor)` (SEMANTICS.md §5, "The window").
//!
//! Every offset below `floor` is handled: acked, filtered out, expired,
//! dead-lettered or deferred to the delayed set. `cursor` is the next
//! offset the reader may admit. In between, the window keeps one entry per
//! *unhandled* offset; every other offset of the range is handled. So the
//! handled set above the floor is the complement of the entries (what
//! [`Checkpoint`](recovery::Checkpoint) stores as ranges) and the two can
//! never disagree, and the floor is simply the first entry.
//!
//! # Memory bound
//!
//! Entries only exist inside `[floor, cursor)`, and `cursor - floor` never
//! exceeds `window_max` (admission and replay refuse to widen it further),
//! so there are at most `window_max` entries. Every index (deliverable
//! offsets, leases, retries, per-key queues, offsets awaiting meta) holds
//! only offsets that have an entry, at most once each. So the state is
//! O(`window_max`) whatever the interleaving of operations: about 100 bytes
//! per unhandled offset at worst, ≈ 6.5 MiB for a full default window of
//! keyed, prioritized messages. SEMANTICS.md's ≈ 0.5 MiB counts leases
//! only; ordering and priority also need each waiting message's key and
//! level, which is what the per-entry cost pays for.

#[cfg(test)]
mod model_tests;
pub(crate) mod recovery;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use thiserror::Error;

use super::ack_id::AckId;
use super::config::{ConfigError, WindowConfig, DEADLINE_MAX_MS};

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

/// An unhandled offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    state: State,
    /// Deliveries so far.
    attempts: u32,
    /// `None` after a restore, until the caller re-reads the message.
    meta: Option<Attached>,
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
    /// Every unhandled offset of `[floor, cursor)`; the rest of the range
    /// is handled.
    unhandled: BTreeMap<u64, Entry>,
    /// Offsets deliverable now, by priority level: `Ready`, meta known, and
    /// with ordering, first of their key.
    ready: [BTreeSet<u64>; PRIORITY_LEVELS],
    /// `(deadline_ms, offset)` of every lease.
    leases: BTreeSet<(i64, u64)>,
    /// `(due_ms, offset)` of every message waiting for its backoff.
    retries: BTreeSet<(i64, u64)>,
    /// With ordering: the unhandled offsets of each key. Only the first can
    /// be delivered, so a key has at most one lease and keeps its order.
    keys: HashMap<u64, BTreeSet<u64>>,
    /// Restored offsets whose meta is not known yet (see `reattach`).
    awaiting_meta: BTreeSet<u64>,
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
            unhandled: BTreeMap::new(),
            ready: Default::default(),
            leases: BTreeSet::new(),
            retries: BTreeSet::new(),
            keys: HashMap::new(),
            awaiting_meta: BTreeSet::new(),
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
        self.unhandled
            .first_key_value()
            .map_or(self.cursor, |(&offset, _)| offset)
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
        self.unhandled.len()
    }

    /// Messages deliverable now, not counting retries that came due since
    /// the last [`Window::next`] (see [`Window::next_due`] for those).
    pub fn ready(&self) -> usize {
        self.ready.iter().map(BTreeSet::len).sum()
    }

    /// True when `offset` is handled: below the cursor and not waiting
    /// for anything.
    pub fn is_handled(&self, offset: u64) -> bool {
        offset < self.cursor && !self.unhandled.contains_key(&offset)
    }

    /// Restored offsets still waiting for [`Window::reattach`].
    pub fn awaiting_meta(&self) -> usize {
        self.awaiting_meta.len()
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
        if !self.awaiting_meta.is_empty() || self.leases.len() >= self.config.outstanding_max {
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
        Ok(self.end_lease(lease, now_ms))
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
            return Ok(DeadlineChange::Ended(self.end_lease(lease, now_ms)));
        }
        let deadline_ms = now_ms.saturating_add(i64::from(extend_ms.min(DEADLINE_MAX_MS)));
        self.leases.remove(&(lease.deadline_ms, lease.offset));
        self.leases.insert((deadline_ms, lease.offset));
        if let Some(entry) = self.unhandled.get_mut(&lease.offset) {
            entry.state = State::Leased { deadline_ms };
        }
        Ok(DeadlineChange::Extended { deadline_ms })
    }

    /// Ends every lease whose deadline is at or before `now_ms`, as a nack.
    /// At most `outstanding_max` results.
    pub fn expire(&mut self, now_ms: i64) -> Vec<LeaseEnded> {
        let mut ended = Vec::new();
        while let Some(&(deadline_ms, offset)) = self.leases.first() {
            if deadline_ms > now_ms {
                break;
            }
            let attempts = self
                .unhandled
                .get(&offset)
                .map_or(0, |entry| entry.attempts);
            let lease = Lease {
                offset,
                deadline_ms,
                attempts,
            };
            ended.push(self.end_lease(lease, now_ms));
        }
        ended
    }

    /// The caller published a reported dead letter to the dead-letter
    /// topic: the offset is handled.
    pub fn dead_lettered(&mut self, offset: u64) -> Result<Acked, NotDeadLetter> {
        match self.unhandled.get(&offset) {
            Some(entry) if entry.state == State::DeadLetter => {
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
        let lease = self.leases.first().map(|&(deadline_ms, _)| deadline_ms);
        let retry = self.retries.first().map(|&(due_ms, _)| due_ms);
        lease
            .into_iter()
            .chain(retry)
            .min()
            .map(|due| due.max(now_ms))
    }

    fn pick(&self) -> Option<u64> {
        let oldest = self.ready.iter().filter_map(|level| level.first()).min();
        let oldest_turn = self.deliveries % OLDEST_EVERY == OLDEST_EVERY - 1;
        if !self.config.priority || oldest_turn {
            return oldest.copied();
        }
        self.ready
            .iter()
            .rev()
            .find_map(|level| level.first())
            .copied()
    }

    fn lease(&mut self, offset: u64, now_ms: i64) -> Option<Delivery> {
        let deadline_ms = now_ms.saturating_add(i64::from(self.config.ack_deadline_ms));
        let entry = self.unhandled.get_mut(&offset)?;
        entry.attempts = entry.attempts.saturating_add(1);
        entry.state = State::Leased { deadline_ms };
        let attempt = entry.attempts;
        let level = entry.meta.map_or(PRIORITY_DEFAULT, |meta| meta.level);
        self.ready[usize::from(level)].remove(&offset);
        self.leases.insert((deadline_ms, offset));
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

    /// Retries whose backoff is over become ready.
    fn promote_due(&mut self, now_ms: i64) {
        while let Some(&(due_ms, offset)) = self.retries.first() {
            if due_ms > now_ms {
                break;
            }
            self.retries.pop_first();
            if let Some(entry) = self.unhandled.get_mut(&offset) {
                entry.state = State::Ready;
            }
            self.sync_ready(offset);
        }
    }

    /// The lease an ack id names, if it is live: the attempt is the latest
    /// and the deadline has not passed.
    fn live_lease(&self, ack_id: AckId, now_ms: i64) -> Result<Lease, AckError> {
        if ack_id.partition != self.partition {
            return Err(AckError::WrongPartition {
                expected: self.partition,
                got: ack_id.partition,
            });
        }
        let offset = ack_id.offset;
        let entry = self
            .unhandled
            .get(&offset)
            .ok_or(AckError::Unknown { offset })?;
        if ack_id.attempt == 0 || ack_id.attempt > entry.attempts {
            return Err(AckError::Unknown { offset });
        }
        match entry.state {
            State::Leased { deadline_ms }
                if ack_id.attempt == entry.attempts && now_ms < deadline_ms =>
            {
                Ok(Lease {
                    offset,
                    deadline_ms,
                    attempts: entry.attempts,
                })
            }
            _ => Err(AckError::LeaseExpired { offset }),
        }
    }

    fn end_lease(&mut self, lease: Lease, now_ms: i64) -> LeaseEnded {
        self.leases.remove(&(lease.deadline_ms, lease.offset));
        let dead = self
            .config
            .max_deliveries
            .is_some_and(|max| lease.attempts >= max);
        let (state, after) = if dead {
            (State::DeadLetter, AfterLease::DeadLetter)
        } else {
            let due_ms = now_ms.saturating_add(self.backoff_ms(lease.attempts));
            self.retries.insert((due_ms, lease.offset));
            (State::Retry { due_ms }, AfterLease::RetryAt { due_ms })
        };
        if let Some(entry) = self.unhandled.get_mut(&lease.offset) {
            entry.state = state;
        }
        LeaseEnded {
            offset: lease.offset,
            attempts: lease.attempts,
            after,
        }
    }

    /// `min(backoff_max, backoff_min × 2^(attempts-1))`.
    fn backoff_ms(&self, attempts: u32) -> i64 {
        // Below 2^32 shifted by at most 32: fits in a u64, and from 32
        // doublings on any non-zero minimum is above the u32 maximum.
        let doublings = attempts.saturating_sub(1).min(32);
        let doubled = u64::from(self.config.backoff_min_ms) << doublings;
        let max = self.config.backoff_max_ms;
        i64::from(u32::try_from(doubled).map_or(max, |doubled| doubled.min(max)))
    }

    /// Adds an unhandled offset in `[floor, cursor)`, ready; without meta
    /// it waits for `reattach`.
    fn insert_entry(&mut self, offset: u64, attempts: u32, meta: Option<Attached>) {
        let entry = Entry {
            state: State::Ready,
            attempts,
            meta: None,
        };
        self.unhandled.insert(offset, entry);
        match meta {
            Some(meta) => self.attach(offset, meta),
            None => {
                self.awaiting_meta.insert(offset);
            }
        }
    }

    fn attach(&mut self, offset: u64, meta: Attached) {
        let Some(entry) = self.unhandled.get_mut(&offset) else {
            return;
        };
        entry.meta = Some(meta);
        if !self.awaiting_meta.is_empty() {
            self.awaiting_meta.remove(&offset);
        }
        match self.ordered_key(meta) {
            Some(key) => self.key_insert(key, offset),
            None => self.sync_ready(offset),
        }
    }

    /// Forgets an unhandled offset, whatever its state: it is handled.
    fn mark_handled(&mut self, offset: u64) {
        let Some(entry) = self.unhandled.remove(&offset) else {
            return;
        };
        match entry.state {
            State::Leased { deadline_ms } => {
                self.leases.remove(&(deadline_ms, offset));
            }
            State::Retry { due_ms } => {
                self.retries.remove(&(due_ms, offset));
            }
            State::Ready | State::DeadLetter => {}
        }
        let Some(meta) = entry.meta else {
            self.awaiting_meta.remove(&offset);
            return;
        };
        self.ready[usize::from(meta.level)].remove(&offset);
        if let Some(key) = self.ordered_key(meta) {
            self.key_remove(key, offset);
        }
    }

    /// The key a message is ordered by, if ordering is on.
    fn ordered_key(&self, meta: Attached) -> Option<u64> {
        meta.key_hash.filter(|_| self.config.ordering)
    }

    fn key_insert(&mut self, key: u64, offset: u64) {
        let offsets = self.keys.entry(key).or_default();
        let old_first = offsets.first().copied();
        offsets.insert(offset);
        self.sync_ready(offset);
        // Re-read offsets may come back out of order: an earlier one holds
        // back the key's former first.
        if let Some(old_first) = old_first.filter(|&old_first| old_first > offset) {
            self.sync_ready(old_first);
        }
    }

    fn key_remove(&mut self, key: u64, offset: u64) {
        let Some(offsets) = self.keys.get_mut(&key) else {
            return;
        };
        offsets.remove(&offset);
        match offsets.first().copied() {
            Some(first) => self.sync_ready(first),
            None => {
                self.keys.remove(&key);
            }
        }
    }

    /// Puts an offset in `ready` if it is deliverable now, takes it out if not.
    fn sync_ready(&mut self, offset: u64) {
        let Some(entry) = self.unhandled.get(&offset) else {
            return;
        };
        let Some(meta) = entry.meta else {
            return;
        };
        let deliverable = entry.state == State::Ready && self.first_of_key(offset, meta);
        let level = &mut self.ready[usize::from(meta.level)];
        if deliverable {
            level.insert(offset);
        } else {
            level.remove(&offset);
        }
    }

    fn first_of_key(&self, offset: u64, meta: Attached) -> bool {
        match self.ordered_key(meta) {
            Some(key) => {
                let first = self.keys.get(&key).and_then(|offsets| offsets.first());
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
        assert!(self.unhandled.len() <= window_max, "memory bound");
        assert!(self.leases.len() <= self.config.outstanding_max);
        for (&offset, entry) in &self.unhandled {
            assert!((floor..self.cursor).contains(&offset));
            self.assert_entry_indexed(offset, entry);
        }
        let count = |wanted: fn(&State) -> bool| {
            self.unhandled.values().filter(|e| wanted(&e.state)).count()
        };
        assert_eq!(
            self.leases.len(),
            count(|s| matches!(s, State::Leased { .. }))
        );
        assert_eq!(
            self.retries.len(),
            count(|s| matches!(s, State::Retry { .. }))
        );
        let awaiting = self.unhandled.values().filter(|e| e.meta.is_none()).count();
        assert_eq!(self.awaiting_meta.len(), awaiting);
        let ready: usize = self.ready.iter().map(BTreeSet::len).sum();
        let deliverable = self
            .unhandled
            .iter()
            .filter(|(&offset, e)| {
                e.state == State::Ready && e.meta.is_some_and(|m| self.first_of_key(offset, m))
            })
            .count();
        assert_eq!(ready, deliverable);
        self.assert_keys();
    }

    fn assert_entry_indexed(&self, offset: u64, entry: &Entry) {
        match entry.state {
            State::Leased { deadline_ms } => assert!(self.leases.contains(&(deadline_ms, offset))),
            State::Retry { due_ms } => assert!(self.retries.contains(&(due_ms, offset))),
            State::Ready | State::DeadLetter => {}
        }
        let Some(meta) = entry.meta else {
            assert!(self.awaiting_meta.contains(&offset));
            return;
        };
        let in_ready = self.ready[usize::from(meta.level)].contains(&offset);
        let deliverable = entry.state == State::Ready && self.first_of_key(offset, meta);
        assert_eq!(in_ready, deliverable, "offset {offset}");
        if let Some(key) = self.ordered_key(meta) {
            assert!(self.keys.get(&key).is_some_and(|o| o.contains(&offset)));
        }
    }

    fn assert_keys(&self) {
        if !self.config.ordering {
            assert!(self.keys.is_empty());
        }
        let mut leased_keys = BTreeSet::new();
        for (key, offsets) in &self.keys {
            assert!(!offsets.is_empty());
            for offset in offsets {
                let entry = self.unhandled.get(offset);
                let meta = entry.and_then(|e| e.meta);
                assert_eq!(meta.and_then(|m| m.key_hash), Some(*key));
                if entry.is_some_and(|e| matches!(e.state, State::Leased { .. })) {
                    assert!(leased_keys.insert(*key), "two leases of one key");
                }
            }
        }
    }
}
