//! Subscriptions served (docs/SEMANTICS.md §5): the windows of the
//! (subscription, partition) pairs whose partition this shard owns, driven
//! by pulls and acks, journaled in the partition's cursor journal.
//!
//! Each window lives in a `RefCell` and is never borrowed across an
//! `.await`. A change to a window and the journal record of it happen in
//! one synchronous step (the record's first poll applies it and takes its
//! place in the journal's log), so the journal's order is the windows'.

mod ack;
mod dead_letter;
mod open;
mod read_ahead;
mod record;
mod take;

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap},
    rc::Rc,
};

use tidegate_queue::{
    cursors::{CursorJournal, SubEvent},
    Ack, Log,
};

pub(crate) use ack::ack;
pub(crate) use take::{take, wait, Pulled};

use super::{AckError, AckId, DeadlineChange, DelayedSet, Window};
use crate::{
    catalog::{Catalog, SubscriptionMeta},
    shard::{ops::cursor_failure, Failure, Op, OpResult, Shard},
};

/// Bytes of messages read ahead into a window and not delivered yet.
const READ_AHEAD_BYTES_MAX: usize = 4 << 20;

/// One (subscription, partition) window and what drives it.
pub(crate) struct PartitionSub {
    sub_id: u64,
    window: Window,
    /// Messages read before their `tg-deliver-after`, until acked.
    delayed: DelayedSet,
    /// With a subscription delivery delay: the message at the cursor and
    /// when it comes due (reading stopped there).
    gate: Option<Gate>,
    /// Reading stopped at a delayed message because the delayed set was
    /// full; it goes on once the set has room.
    held_by_delayed: bool,
    log: Rc<Log>,
    journal: Rc<CursorJournal>,
    filter: Option<tidegate_proto::filter::Filter>,
    /// The topic's message TTL.
    ttl_ms: Option<u64>,
    /// Admitted messages not delivered yet (bounded by
    /// `READ_AHEAD_BYTES_MAX`); a redelivery reads the log again.
    read_ahead: read_ahead::ReadAhead,
    /// Reported dead letters not published yet: offset → attempts.
    dead_letters: BTreeMap<u64, u32>,
    /// A task is publishing dead letters.
    publishing: bool,
    /// Notified when an ack or nack may have made something deliverable
    /// or made room in the window (pulls waiting listen).
    changed: event_listener::Event,
}

impl PartitionSub {
    /// Window state for DescribeSubscription.
    pub(crate) fn describe(&self) -> (u64, u64, u64, u32, u32) {
        let w = &self.window;
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        (
            w.floor(),
            w.cursor(),
            self.log.offsets().latest,
            clamp(w.outstanding()),
            clamp(w.unhandled()),
        )
    }
}

/// Where a subscription's delivery delay stopped the reader: `offset` is
/// due at `due_ms`. Remembered so that a message is judged once, by the
/// earlier of its timestamp and the time it was first read (a timestamp in
/// the future cannot hold it longer than the delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gate {
    offset: u64,
    due_ms: i64,
}

impl PartitionSub {
    /// The reader may take more of the log now: the window, the read-ahead
    /// budget and the delayed set have room, and no delay holds it.
    fn can_read(&self, now: i64) -> bool {
        !self.window.is_full()
            && self.read_ahead.bytes() < READ_AHEAD_BYTES_MAX
            && !(self.held_by_delayed && self.delayed.is_full())
            && self.gate_due(now).is_none()
    }

    /// When the delivery delay lets the reader go on, if it holds it now.
    fn gate_due(&self, now: i64) -> Option<i64> {
        self.gate.map(|g| g.due_ms).filter(|&due| due > now)
    }

    /// Acks a delivery of the delayed set or of the window, whichever
    /// holds its offset; the acked offset.
    fn ack_delivery(&mut self, ack_id: AckId, now: i64) -> Result<u64, AckError> {
        if self.delayed.contains(ack_id.offset) {
            return self.delayed.ack(ack_id, now);
        }
        self.window.ack(ack_id, now).map(|acked| acked.offset)
    }

    /// Ends a delivery as a dead letter (found expired), in the delayed
    /// set or the window; it waits in `dead_letters` for publishing.
    fn dead_letter_delivery(&mut self, ack_id: AckId, now: i64) -> Result<(), AckError> {
        let ended = if self.delayed.contains(ack_id.offset) {
            self.delayed.dead_letter(ack_id, now)?
        } else {
            self.window.dead_letter(ack_id, now)?
        };
        self.dead_letters.insert(ended.offset, ended.attempts);
        Ok(())
    }

    /// Changes a delivery's deadline, in the delayed set or the window.
    fn modify_delivery(
        &mut self,
        ack_id: AckId,
        extend_ms: u32,
        now: i64,
    ) -> Result<DeadlineChange, AckError> {
        if self.delayed.contains(ack_id.offset) {
            return self.delayed.modify_deadline(ack_id, extend_ms, now);
        }
        self.window.modify_deadline(ack_id, extend_ms, now)
    }

    fn checkpoint(&self) -> super::Checkpoint {
        checkpoint_of(&self.window, &self.delayed)
    }
}

/// The window's checkpoint with the delayed set in it.
fn checkpoint_of(window: &Window, delayed: &DelayedSet) -> super::Checkpoint {
    super::Checkpoint {
        delayed: delayed.entries(),
        ..window.checkpoint()
    }
}

type Shared = Rc<RefCell<PartitionSub>>;

/// What the shard's subscriptions did, for metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Delivered,
    Redelivered,
    Acked,
    Filtered,
    Expired,
    DeadLettered,
}

/// Totals per [`Counter`] since the start.
#[derive(Default)]
pub(crate) struct Counters([std::cell::Cell<u64>; 6]);

impl Counters {
    pub(crate) fn count(&self, counter: &Counter, n: u64) {
        let cell = &self.0[*counter as usize];
        cell.set(cell.get().saturating_add(n));
    }

    /// Every total, in [`Counter`] order (the metrics' outcome order).
    pub(crate) fn snapshot(&self) -> [u64; 6] {
        std::array::from_fn(|i| self.0[i].get())
    }
}

/// The windows this shard serves.
#[derive(Default)]
pub(crate) struct Served {
    pub(crate) counters: Counters,
    /// Where the next pull starts among a topic's partitions, so that
    /// pulls take from every partition in turn.
    pub(crate) rotor: std::cell::Cell<u32>,
    windows: RefCell<HashMap<(u64, u32), Shared>>,
    /// One window opening at a time, so two first uses open it once.
    opening: futures::lock::Mutex<()>,
}

impl Served {
    /// The window of `sub` in `partition` (owned by this shard), opened
    /// (restored from the journal, or started) on first use.
    pub(crate) async fn get(
        &self,
        shard: &Shard,
        sub: &SubscriptionMeta,
        partition: u32,
    ) -> Result<Shared, Failure> {
        let key = (sub.id, partition);
        if let Some(w) = self.windows.borrow().get(&key) {
            return Ok(w.clone());
        }
        let _one = self.opening.lock().await;
        if let Some(w) = self.windows.borrow().get(&key) {
            return Ok(w.clone());
        }
        let opened = Rc::new(RefCell::new(open::open(shard, sub, partition).await?));
        if shard.catalog.borrow().subscription(&sub.name).map(|s| s.id) != Some(sub.id) {
            return Err(unknown(&sub.name));
        }
        self.windows.borrow_mut().insert(key, opened.clone());
        Ok(opened)
    }

    /// After a catalog change: drops the windows of subscriptions that
    /// are gone and forgets their journal state.
    pub(crate) async fn forget_deleted(&self, catalog: &Catalog) {
        let live: std::collections::HashSet<u64> = catalog.subscriptions().map(|s| s.id).collect();
        let gone: Vec<Shared> = {
            let mut windows = self.windows.borrow_mut();
            let keys: Vec<(u64, u32)> = windows
                .keys()
                .filter(|(id, _)| !live.contains(id))
                .copied()
                .collect();
            keys.iter().filter_map(|k| windows.remove(k)).collect()
        };
        for w in gone {
            let (journal, id) = {
                let w = w.borrow();
                (w.journal.clone(), w.sub_id)
            };
            if let Err(e) = journal.delete_subscription(id).await {
                tracing::warn!(subscription = id, error = %e, "forgetting a deleted subscription's state");
            }
        }
    }

    /// Each open window's figures, for metrics, by subscription name.
    pub(crate) fn snapshot(&self, catalog: &Catalog) -> Vec<crate::metrics::WindowSnapshot> {
        let names: HashMap<u64, &str> = catalog
            .subscriptions()
            .map(|s| (s.id, s.name.as_str()))
            .collect();
        let mut out: Vec<crate::metrics::WindowSnapshot> = self
            .windows
            .borrow()
            .iter()
            .filter_map(|(&(id, partition), w)| {
                let w = w.try_borrow().ok()?;
                let window = &w.window;
                let latest = w.log.offsets().latest;
                Some(crate::metrics::WindowSnapshot {
                    subscription: (*names.get(&id)?).to_owned(),
                    partition,
                    backlog: latest.saturating_sub(window.cursor()) + window.unhandled() as u64,
                    outstanding: (window.outstanding() + w.delayed.outstanding()) as u64,
                    full: window.is_full(),
                    delayed: w.delayed.len() as u64,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.subscription, a.partition).cmp(&(&b.subscription, b.partition)));
        out
    }

    /// Drops every window (shutdown; the journals close with the
    /// partitions).
    pub(crate) fn clear(&self) {
        self.windows.borrow_mut().clear();
    }
}

/// Runs a subscription `Op` on the partition's owner (this shard).
pub(crate) async fn execute(router: &crate::router::Router, op: Op) -> Result<OpResult, Failure> {
    let shard = &router.shard;
    let lookup = |name: &str| {
        shard
            .catalog
            .borrow()
            .subscription(name)
            .cloned()
            .ok_or_else(|| unknown(name))
    };
    Ok(match op {
        Op::SubOpen { sub, partition } => {
            shard
                .subscriptions
                .get(shard, &lookup(&sub)?, partition)
                .await?;
            OpResult::Done
        }
        Op::SubTake {
            sub,
            partition,
            max_messages,
            max_bytes,
        } => OpResult::Pulled(
            take(router, &lookup(&sub)?, partition, max_messages, max_bytes).await?,
        ),
        Op::SubWait {
            sub,
            partition,
            wait_ms,
        } => {
            let wait_for = std::time::Duration::from_millis(wait_ms.into());
            wait(router, &lookup(&sub)?, partition, wait_for).await?;
            OpResult::Done
        }
        Op::SubAck {
            sub,
            partition,
            ids,
            deadline_ms,
        } => OpResult::AckResults(ack(router, &lookup(&sub)?, partition, &ids, deadline_ms).await?),
        Op::SubDescribe { sub, partition } => {
            let w = shard
                .subscriptions
                .get(shard, &lookup(&sub)?, partition)
                .await?;
            let (floor, cursor, latest, outstanding, unhandled) = w.borrow().describe();
            OpResult::SubPartition(tidegate_proto::protocol::SubscriptionPartition {
                partition,
                floor,
                cursor,
                latest,
                outstanding,
                unhandled,
            })
        }
        other => {
            return Err(Failure::new(
                tidegate_proto::protocol::ErrorCode::Internal,
                format!("not a subscription op: {other:?}"),
            ))
        }
    })
}

/// The failure for a subscription this server does not have.
pub(crate) fn unknown(name: &str) -> Failure {
    Failure::new(
        tidegate_proto::protocol::ErrorCode::UnknownSubscription,
        format!("no subscription {name:?}"),
    )
}

/// Journals `events` of `sub` at `ack`'s level.
async fn record(
    journal: &CursorJournal,
    sub_id: u64,
    events: &[SubEvent],
    ack: Ack,
) -> Result<(), Failure> {
    journal
        .record(sub_id, events, ack)
        .await
        .map_err(|e| cursor_failure(&e))
}

/// Appends `offset` to `events` as a handled range, merged with the last
/// range when adjacent.
fn push_handled(events: &mut Vec<SubEvent>, first: u64, last: u64) {
    if let Some(SubEvent::Ack { last: prev, .. }) = events.last_mut() {
        if prev.checked_add(1) == Some(first) {
            *prev = last;
            return;
        }
    }
    events.push(SubEvent::Ack { first, last });
}

/// Writes a checkpoint of the window when the journal asks for one.
async fn checkpoint_if_due(w: &Shared) -> Result<(), Failure> {
    let (journal, id, checkpoint) = {
        let p = w.borrow();
        if !p.journal.checkpoint_due(p.sub_id) {
            return Ok(());
        }
        (p.journal.clone(), p.sub_id, p.checkpoint())
    };
    record(&journal, id, &[SubEvent::Checkpoint(checkpoint)], Ack::None).await
}
