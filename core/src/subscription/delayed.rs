//! The delayed set of one (subscription, partition) (SEMANTICS.md §5,
//! "Delay"): messages whose `tg-deliver-after` had not come when they
//! were read, from then until they are acked or dead-lettered.
//!
//! A delayed message leaves the [`Window`](super::Window) as handled the
//! moment it is read, so a delay of days never holds the window's floor.
//! From then on this set owns it: it waits for its time, is leased like a
//! window message (same ack deadline, backoff and `max_deliveries`), and is
//! forgotten when acked. A nack or an expired lease puts it back to wait
//! for its backoff. Ordering keys and priority do not apply to delayed
//! messages: each becomes deliverable at its own time.
//!
//! # Memory bound
//!
//! At most `delayed_max` entries (the caller stops reading the log at the
//! next delayed message while the set is full, as the window does at its
//! cap), each indexed once by offset and once by its time (visibility or
//! lease deadline): about 80 bytes per entry.

use std::collections::{BTreeSet, HashMap};

use thiserror::Error;

use super::ack_id::AckId;
use super::config::WindowConfig;
use super::lease;
use super::window::{AckError, AfterLease, DeadlineChange, Delivery, LeaseEnded, NotDeadLetter};

/// The set holds `delayed_max` messages; nothing changed.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("the delayed set holds {max} messages, its limit")]
pub struct DelayedFull {
    pub max: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Deliverable from `visible_at_ms` on.
    Waiting,
    Leased {
        deadline_ms: i64,
    },
    /// Reported for the dead-letter topic; waiting for `dead_lettered`.
    DeadLetter,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Item {
    state: State,
    /// When it becomes (or became) deliverable; kept while leased, so a
    /// checkpoint can say it was due.
    visible_at_ms: i64,
    /// Deliveries so far.
    attempts: u32,
}

/// One delayed message as a checkpoint keeps it: offset, visible at
/// (Unix ms), deliveries so far.
pub type DelayedEntry = (u64, i64, u32);

/// The delayed set; see the module documentation.
#[derive(Clone, Debug)]
pub struct DelayedSet {
    partition: u32,
    config: WindowConfig,
    items: HashMap<u64, Item>,
    /// `(visible_at_ms, offset)` of every waiting item.
    waiting: BTreeSet<(i64, u64)>,
    /// `(deadline_ms, offset)` of every lease.
    leases: BTreeSet<(i64, u64)>,
}

impl DelayedSet {
    pub fn new(partition: u32, config: WindowConfig) -> DelayedSet {
        DelayedSet {
            partition,
            config,
            items: HashMap::new(),
            waiting: BTreeSet::new(),
            leases: BTreeSet::new(),
        }
    }

    /// Messages held (waiting, leased or about to be dead-lettered).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// No new message may come in.
    pub fn is_full(&self) -> bool {
        self.items.len() >= self.config.delayed_max
    }

    /// Leases outstanding.
    pub fn outstanding(&self) -> usize {
        self.leases.len()
    }

    pub fn contains(&self, offset: u64) -> bool {
        self.items.contains_key(&offset)
    }

    /// Takes `offset` to wait until `visible_at_ms`, after `attempts`
    /// deliveries. An offset held already waits again (a nack's backoff).
    pub fn defer(
        &mut self,
        offset: u64,
        visible_at_ms: i64,
        attempts: u32,
    ) -> Result<(), DelayedFull> {
        if !self.items.contains_key(&offset) && self.is_full() {
            return Err(DelayedFull {
                max: self.config.delayed_max,
            });
        }
        self.replay_defer(offset, visible_at_ms, attempts);
        Ok(())
    }

    /// [`DelayedSet::defer`] from the journal, where the cap does not
    /// apply: the journal holds nothing a set of this subscription did not
    /// take, and refusing it would lose the message (the window counts it
    /// handled). Only a `delayed_max` lowered since can overshoot, by what
    /// the old cap let in.
    pub fn replay_defer(&mut self, offset: u64, visible_at_ms: i64, attempts: u32) {
        if let Some(item) = self.items.get(&offset).copied() {
            self.unindex(offset, item);
        }
        let item = Item {
            state: State::Waiting,
            visible_at_ms,
            attempts,
        };
        self.items.insert(offset, item);
        self.waiting.insert((visible_at_ms, offset));
    }

    /// Leases the waiting message that came due first, if any has and
    /// fewer than `outstanding_max` leases are out.
    pub fn next(&mut self, now_ms: i64) -> Option<Delivery> {
        if self.leases.len() >= self.config.outstanding_max {
            return None;
        }
        let &(visible_at_ms, offset) = self.waiting.first()?;
        if visible_at_ms > now_ms {
            return None;
        }
        self.waiting.pop_first();
        let deadline_ms = self.config.lease_deadline_ms(now_ms);
        let item = self.items.get_mut(&offset)?;
        item.attempts = item.attempts.saturating_add(1);
        item.state = State::Leased { deadline_ms };
        self.leases.insert((deadline_ms, offset));
        let attempt = item.attempts;
        Some(Delivery {
            offset,
            attempt,
            ack_id: AckId {
                partition: self.partition,
                offset,
                attempt,
            },
            deadline_ms,
        })
    }

    /// Forgets the delivered message, if its lease is live and current.
    pub fn ack(&mut self, ack_id: AckId, now_ms: i64) -> Result<u64, AckError> {
        let (offset, item) = self.live_lease(ack_id, now_ms)?;
        self.unindex(offset, item);
        self.items.remove(&offset);
        Ok(offset)
    }

    /// Ends a live lease: due again after the backoff, or at
    /// `max_deliveries` reported as a dead letter.
    pub fn nack(&mut self, ack_id: AckId, now_ms: i64) -> Result<LeaseEnded, AckError> {
        let (offset, item) = self.live_lease(ack_id, now_ms)?;
        Ok(self.end_lease(offset, item, now_ms, false))
    }

    /// Ends a live lease as a dead letter whatever its attempts.
    pub fn dead_letter(&mut self, ack_id: AckId, now_ms: i64) -> Result<LeaseEnded, AckError> {
        let (offset, item) = self.live_lease(ack_id, now_ms)?;
        Ok(self.end_lease(offset, item, now_ms, true))
    }

    /// Sets a live lease's deadline to `now_ms + extend_ms` (at most
    /// `DEADLINE_MAX_MS` ahead); 0 is a nack.
    pub fn modify_deadline(
        &mut self,
        ack_id: AckId,
        extend_ms: u32,
        now_ms: i64,
    ) -> Result<DeadlineChange, AckError> {
        let (offset, item) = self.live_lease(ack_id, now_ms)?;
        if extend_ms == 0 {
            return Ok(DeadlineChange::Ended(
                self.end_lease(offset, item, now_ms, false),
            ));
        }
        let deadline_ms = lease::extended_deadline_ms(now_ms, extend_ms);
        self.unindex(offset, item);
        self.leases.insert((deadline_ms, offset));
        if let Some(item) = self.items.get_mut(&offset) {
            item.state = State::Leased { deadline_ms };
        }
        Ok(DeadlineChange::Extended { deadline_ms })
    }

    /// Ends every lease whose deadline is at or before `now_ms`, as a nack.
    pub fn expire(&mut self, now_ms: i64) -> Vec<LeaseEnded> {
        let mut ended = Vec::new();
        while let Some(&(deadline_ms, offset)) = self.leases.first() {
            if deadline_ms > now_ms {
                break;
            }
            match self.items.get(&offset).copied() {
                Some(item) => ended.push(self.end_lease(offset, item, now_ms, false)),
                None => {
                    self.leases.pop_first();
                }
            }
        }
        ended
    }

    /// The caller published a reported dead letter: it is forgotten.
    pub fn dead_lettered(&mut self, offset: u64) -> Result<(), NotDeadLetter> {
        match self.items.get(&offset) {
            Some(item) if item.state == State::DeadLetter => {
                self.items.remove(&offset);
                Ok(())
            }
            _ => Err(NotDeadLetter { offset }),
        }
    }

    /// When `next` or `expire` next has work: the earliest visibility or
    /// lease deadline, and `now_ms` if that has passed already. While
    /// `outstanding_max` leases are out, only a lease deadline: a message
    /// that is due cannot be leased until one ends.
    pub fn next_due(&self, now_ms: i64) -> Option<i64> {
        let can_lease = self.leases.len() < self.config.outstanding_max;
        let visible = self
            .waiting
            .first()
            .map(|&(at, _)| at)
            .filter(|_| can_lease);
        let lease = self.leases.first().map(|&(at, _)| at);
        visible
            .into_iter()
            .chain(lease)
            .min()
            .map(|at| at.max(now_ms))
    }

    /// True when `next` would lease something now.
    pub fn has_due(&self, now_ms: i64) -> bool {
        self.leases.len() < self.config.outstanding_max
            && self.waiting.first().is_some_and(|&(at, _)| at <= now_ms)
    }

    /// Every message held, ascending by offset, for a checkpoint. A leased
    /// or dead-letter message is kept with its past visibility: after a
    /// restart it is due at once.
    pub fn entries(&self) -> Vec<DelayedEntry> {
        let mut entries: Vec<DelayedEntry> = self
            .items
            .iter()
            .map(|(&offset, item)| (offset, item.visible_at_ms, item.attempts))
            .collect();
        entries.sort_unstable();
        entries
    }

    /// Replays a journaled delivery count of a held offset.
    pub fn apply_attempt(&mut self, offset: u64, attempts: u32) {
        if let Some(item) = self.items.get_mut(&offset) {
            item.attempts = item.attempts.max(attempts);
        }
    }

    /// Replays a journaled ack of `first..=last`: held offsets in it are
    /// forgotten. Returns how many were.
    pub fn apply_ack_range(&mut self, first: u64, last: u64) -> usize {
        let held: Vec<u64> = if last - first < self.items.len() as u64 {
            (first..=last)
                .filter(|o| self.items.contains_key(o))
                .collect()
        } else {
            let range = first..=last;
            self.items
                .keys()
                .copied()
                .filter(|o| range.contains(o))
                .collect()
        };
        for offset in &held {
            if let Some(item) = self.items.remove(offset) {
                self.unindex(*offset, item);
            }
        }
        held.len()
    }

    fn live_lease(&self, ack_id: AckId, now_ms: i64) -> Result<(u64, Item), AckError> {
        lease::check_partition(ack_id, self.partition)?;
        let offset = ack_id.offset;
        let item = *self
            .items
            .get(&offset)
            .ok_or(AckError::Unknown { offset })?;
        let leased_until = match item.state {
            State::Leased { deadline_ms } => Some(deadline_ms),
            _ => None,
        };
        lease::live_deadline(ack_id, item.attempts, leased_until, now_ms)?;
        Ok((offset, item))
    }

    fn end_lease(&mut self, offset: u64, item: Item, now_ms: i64, dead: bool) -> LeaseEnded {
        self.unindex(offset, item);
        let dead = dead || self.config.dead_after(item.attempts);
        let (state, visible_at_ms, after) = if dead {
            (
                State::DeadLetter,
                item.visible_at_ms,
                AfterLease::DeadLetter,
            )
        } else {
            let due_ms = now_ms.saturating_add(self.config.backoff_ms(item.attempts));
            self.waiting.insert((due_ms, offset));
            (State::Waiting, due_ms, AfterLease::RetryAt { due_ms })
        };
        if let Some(item) = self.items.get_mut(&offset) {
            item.state = state;
            item.visible_at_ms = visible_at_ms;
        }
        LeaseEnded {
            offset,
            attempts: item.attempts,
            after,
        }
    }

    /// Takes `offset` out of the time index its state puts it in.
    fn unindex(&mut self, offset: u64, item: Item) {
        match item.state {
            State::Waiting => {
                self.waiting.remove(&(item.visible_at_ms, offset));
            }
            State::Leased { deadline_ms } => {
                self.leases.remove(&(deadline_ms, offset));
            }
            State::DeadLetter => {}
        }
    }
}

#[cfg(test)]
impl DelayedSet {
    /// Every item is in exactly the index its state names.
    pub(crate) fn assert_invariants(&self) {
        let waiting = self
            .items
            .iter()
            .filter(|(&o, i)| {
                i.state == State::Waiting && self.waiting.contains(&(i.visible_at_ms, o))
            })
            .count();
        assert_eq!(waiting, self.waiting.len());
        let leased = self
            .items
            .iter()
            .filter(|(&o, i)| match i.state {
                State::Leased { deadline_ms } => self.leases.contains(&(deadline_ms, o)),
                _ => false,
            })
            .count();
        assert_eq!(leased, self.leases.len());
        assert!(self.leases.len() <= self.config.outstanding_max);
    }
}

#[cfg(test)]
mod tests;
