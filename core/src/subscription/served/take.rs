//! Pull's work on one partition: end expired leases, read ahead from the
//! log into the window, lease what is deliverable, and journal it.

use std::time::Duration;

use futures::future::select;
use tidegate_proto::batch::{BatchIter, RecordView};
use tidegate_queue::{cursors::SubEvent, Ack, LogError};

use super::{
    checkpoint_if_due, dead_letter, push_handled, record,
    record::{deliver_after, meta_of, OwnedRecord},
    Counter, Counters, Gate, PartitionSub, Shared,
};
use crate::{
    catalog::SubscriptionMeta,
    router::{now_ms, Router},
    shard::Failure,
    subscription::{AckId, AfterLease, Delivery, Disposition, Meta, Window},
};

/// Bytes one read-ahead asks of the log.
const READ_BYTES: usize = 256 << 10;
/// Reads one pull may do to fill the window.
const READS_PER_TAKE: usize = 4;
/// Ready messages beyond which a pull reads no further ahead: a few
/// pulls' worth (smaller windows make every window operation cheaper).
const READY_AHEAD: usize = 4096;
/// Bytes one redelivery reads to find its message.
const REREAD_BYTES: usize = 64 << 10;

/// A leased message.
#[derive(Debug, Clone)]
pub(crate) struct Pulled {
    pub(crate) ack_id: AckId,
    pub(crate) attempt: u32,
    pub(crate) record: OwnedRecord,
}

/// Leases up to `max_messages` of `sub` in `partition` (about `max_bytes`;
/// at least one when any is deliverable).
pub(crate) async fn take(
    router: &Router,
    sub: &SubscriptionMeta,
    partition: u32,
    max_messages: u32,
    max_bytes: u32,
) -> Result<Vec<Pulled>, Failure> {
    let w = router
        .shard
        .subscriptions
        .get(&router.shard, sub, partition)
        .await?;
    expire(&w, now_ms());
    dead_letter::publish(router, sub, &w).await;
    let counters = &router.shard.subscriptions.counters;
    read_ahead(&w, sub, counters).await?;
    let pulled = deliver(&w, sub, max_messages as usize, max_bytes as usize, counters).await?;
    // Expired ones found by this delivery may be waiting to be dead-lettered.
    dead_letter::publish(router, sub, &w).await;
    checkpoint_if_due(&w).await?;
    Ok(pulled)
}

/// Waits, at most `wait`, until `sub` may have something to deliver in
/// `partition`: ready messages, a retry or lease coming due, or new
/// messages in the log.
pub(crate) async fn wait(
    router: &Router,
    sub: &SubscriptionMeta,
    partition: u32,
    wait: Duration,
) -> Result<(), Failure> {
    let shard = &router.shard;
    let w = shard.subscriptions.get(shard, sub, partition).await?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        let now = now_ms();
        let (log, cursor, can_read, due_in, changed) = {
            let p = w.borrow();
            let changed = p.changed.listen();
            let can_lease = p.window.outstanding() < p.window.config().outstanding_max;
            if (can_lease && p.window.ready() > 0) || p.delayed.has_due(now) {
                return Ok(());
            }
            let due = [p.window.next_due(now), p.delayed.next_due(now)];
            let due_in = due
                .into_iter()
                .flatten()
                .min()
                .map(|due| due.saturating_sub(now));
            if due_in == Some(0) {
                return Ok(());
            }
            // With a delivery delay, the message at the cursor may be
            // there and not due: then the wait is for its time.
            let due_in = match p.gate_due(now) {
                Some(at) => Some(due_in.map_or(at - now, |d| d.min(at - now))),
                None => due_in,
            };
            let can_read = p.can_read(now);
            if can_read && p.log.offsets().latest > p.window.cursor() {
                return Ok(());
            }
            (p.log.clone(), p.window.cursor(), can_read, due_in, changed)
        };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || shard.stopping.get() {
            return Ok(());
        }
        let sleep = due_in.map_or(left, |ms| left.min(Duration::from_millis(ms as u64)));
        let timer = std::pin::pin!(glommio::timer::sleep(sleep));
        let stop = std::pin::pin!(shard.stopped());
        let woken = std::pin::pin!(select(select(timer, stop), changed));
        if can_read {
            let data = std::pin::pin!(log.wait_for(cursor));
            let _ = select(data, woken).await;
        } else {
            let _ = woken.await;
        }
    }
}

/// Ends expired leases, the window's and the delayed set's; dead letters
/// wait for publishing.
fn expire(w: &Shared, now: i64) {
    let mut p = w.borrow_mut();
    let mut ended = p.window.expire(now);
    ended.extend(p.delayed.expire(now));
    for ended in ended {
        if ended.after == AfterLease::DeadLetter {
            p.dead_letters.insert(ended.offset, ended.attempts);
        }
    }
}

/// Reads from the window's cursor while the window and the read-ahead
/// budget have room and few messages are ready.
async fn read_ahead(
    w: &Shared,
    sub: &SubscriptionMeta,
    counters: &Counters,
) -> Result<(), Failure> {
    for _ in 0..READS_PER_TAKE {
        let (log, cursor) = {
            let p = w.borrow();
            if !p.can_read(now_ms()) || p.window.ready() >= READY_AHEAD {
                return Ok(());
            }
            (p.log.clone(), p.window.cursor())
        };
        let verified = log.verifies_reads();
        let read = match log.read(cursor, READ_BYTES).await {
            Ok(read) => read,
            Err(LogError::OffsetOutOfRange { .. }) => {
                skip_to_earliest(w, log.offsets().earliest).await?;
                continue;
            }
            Err(e) => return Err(Failure::from(&e)),
        };
        if read.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        // The read as one `Bytes` (at most one copy), which the read-ahead
        // records slice.
        let chunk = read.into_bytes();
        let (journal, id, events, gated) = {
            let mut p = w.borrow_mut();
            let p = &mut *p;
            let mut events = Vec::new();
            let mut admitted_records = Vec::new();
            p.held_by_delayed = false;
            // Read back from the log, whose records were validated before
            // they were stored: the CRC check is what is left to do, and
            // the log's read did it already when it verifies reads.
            let batches = if verified {
                BatchIter::verified(&chunk)
            } else {
                BatchIter::stored(&chunk)
            };
            'batches: for batch in batches {
                let batch = batch.map_err(|e| {
                    Failure::new(
                        tidegate_proto::protocol::ErrorCode::StorageFailed,
                        e.to_string(),
                    )
                })?;
                for r in batch.records() {
                    if r.offset() < p.window.cursor() {
                        continue;
                    }
                    if let Some(gate) = gate(p, sub, &r, now) {
                        p.gate = Some(gate);
                        break 'batches;
                    }
                    if p.delayed.contains(r.offset()) {
                        // Held by the delayed set already (a window that
                        // restarted at an older floor): the window is done
                        // with it, and nothing is journaled for it.
                        if let Ok(admitted) = p.window.admit(
                            r.offset(),
                            Meta::deliver().with_disposition(Disposition::Deferred),
                        ) {
                            if let Some((first, last)) = admitted.handled.filter(|&(f, l)| f < l) {
                                push_handled(&mut events, first, last - 1);
                            }
                            continue;
                        }
                        break 'batches;
                    }
                    let meta = meta_of(&r, p.filter.as_ref(), sub, p.ttl_ms, now);
                    let deferred = meta.disposition == Disposition::Deferred;
                    // A full delayed set holds the window at the next
                    // delayed message, as a full window does.
                    if deferred && p.delayed.is_full() {
                        p.held_by_delayed = true;
                        break 'batches;
                    }
                    let Ok(admitted) = p.window.admit(r.offset(), meta) else {
                        break 'batches;
                    };
                    let defer_at = deferred.then(|| deliver_after(&r, now)).flatten();
                    match (admitted.handled, defer_at) {
                        (Some((first, last)), Some(visible_at_ms)) => {
                            if first < last {
                                push_handled(&mut events, first, last - 1);
                            }
                            let _ = p.delayed.defer(last, visible_at_ms, 0);
                            events.push(SubEvent::Defer {
                                offset: last,
                                visible_at_ms,
                                attempts: 0,
                            });
                        }
                        (Some((first, last)), None) => push_handled(&mut events, first, last),
                        (None, _) => {}
                    }
                    match meta.disposition {
                        Disposition::Filtered => counters.count(&Counter::Filtered, 1),
                        Disposition::Expired => counters.count(&Counter::Expired, 1),
                        Disposition::Deliver | Disposition::Deferred => {}
                    }
                    if meta.disposition == Disposition::Deliver {
                        admitted_records.push(OwnedRecord::of(&r, &chunk));
                    }
                }
            }
            // The records keep the whole chunk alive: when they are a
            // small part of it (a selective filter), they are copied out,
            // so the memory held stays within twice what is counted.
            let bytes: usize = admitted_records.iter().map(OwnedRecord::len).sum();
            let sparse = bytes * 2 < chunk.len();
            for mut owned in admitted_records {
                if sparse {
                    owned.detach();
                }
                // Admitted in order, so always past the last one held.
                let pushed = p.read_ahead.push(owned);
                debug_assert!(pushed, "read-ahead offsets grow");
            }
            let stopped = p.gate_due(now).is_some() || p.held_by_delayed;
            (p.journal.clone(), p.sub_id, events, stopped)
        };
        // Filtered and expired offsets are journaled without waiting: were
        // they lost, replay would read and judge them again.
        record(&journal, id, &events, Ack::None).await?;
        if gated {
            return Ok(());
        }
    }
    Ok(())
}

/// The gate a subscription's delivery delay puts before `record`, read at
/// `now`, if it is not due yet: due the delay after the earlier of its
/// timestamp and the first time the reader came to it.
fn gate(
    p: &PartitionSub,
    sub: &SubscriptionMeta,
    record: &RecordView<'_>,
    now: i64,
) -> Option<Gate> {
    if sub.delivery_delay_ms == 0 {
        return None;
    }
    let offset = record.offset();
    let due_ms = match p.gate {
        Some(g) if g.offset == offset => g.due_ms,
        _ => record
            .timestamp_ms()
            .min(now)
            .saturating_add(i64::from(sub.delivery_delay_ms)),
    };
    (due_ms > now).then_some(Gate { offset, due_ms })
}

/// The log dropped offsets at the window's cursor (retention): whatever
/// the window held below `earliest` is gone, so it starts again there.
async fn skip_to_earliest(w: &Shared, earliest: u64) -> Result<(), Failure> {
    let (journal, id, checkpoint) = {
        let mut p = w.borrow_mut();
        if p.window.cursor() >= earliest {
            return Ok(());
        }
        let fresh =
            Window::new(p.window.partition(), *p.window.config(), earliest).map_err(|e| {
                Failure::new(tidegate_proto::protocol::ErrorCode::Internal, e.to_string())
            })?;
        p.window = fresh;
        p.read_ahead.clear();
        let p = &mut *p;
        let delayed = &p.delayed;
        p.dead_letters.retain(|offset, _| delayed.contains(*offset));
        (p.journal.clone(), p.sub_id, p.checkpoint())
    };
    record(&journal, id, &[SubEvent::Checkpoint(checkpoint)], Ack::None).await
}

/// Leases deliverable messages, with their records from the read-ahead or,
/// for redeliveries and due delayed messages, read from the log again,
/// until `max_messages` or `max_bytes` (at least one message) is reached:
/// a message is leased only once the ones before it are read, so their
/// real size counts.
async fn deliver(
    w: &Shared,
    sub: &SubscriptionMeta,
    max_messages: usize,
    max_bytes: usize,
    counters: &Counters,
) -> Result<Vec<Pulled>, Failure> {
    let dead_letter_expired = sub.dead_letter_expired;
    let ttl_ms = w.borrow().ttl_ms;
    let now = now_ms();
    let mut pulled = Vec::new();
    let mut bytes = 0;
    let mut attempts = Vec::new();
    let mut rereader = Rereader::default();
    let (journal, id) = {
        let p = w.borrow();
        (p.journal.clone(), p.sub_id)
    };
    while pulled.len() < max_messages && bytes < max_bytes {
        let miss = {
            let mut p = w.borrow_mut();
            lease_until_miss(
                &mut p,
                &mut pulled,
                &mut bytes,
                &mut attempts,
                now,
                max_messages,
                max_bytes,
            )
        };
        let Some(d) = miss else { break };
        let log = w.borrow().log.clone();
        match rereader.find(&log, d.offset).await? {
            Some(record) => {
                bytes += record.len();
                pulled.push(Pulled {
                    ack_id: d.ack_id,
                    attempt: d.attempt,
                    record,
                });
            }
            None => handle_now(w, d.ack_id, now).await?,
        }
    }
    // Attempts are not waited for (SEMANTICS.md §5: a crash may lose the
    // last group commit's attempts, never an ack).
    record(&journal, id, &attempts, Ack::None).await?;
    // A message whose expiry passed while it waited is not delivered: it
    // is handled, or dead-lettered if the subscription asks for that.
    let mut delivered = Vec::with_capacity(pulled.len());
    for p in pulled {
        if !p.record.expired(now, ttl_ms) {
            delivered.push(p);
            continue;
        }
        counters.count(&Counter::Expired, 1);
        if dead_letter_expired {
            let _ = w.borrow_mut().dead_letter_delivery(p.ack_id, now);
        } else {
            handle_now(w, p.ack_id, now).await?;
        }
    }
    let redelivered = delivered.iter().filter(|p| p.attempt > 1).count() as u64;
    counters.count(&Counter::Delivered, delivered.len() as u64 - redelivered);
    counters.count(&Counter::Redelivered, redelivered);
    Ok(delivered)
}

/// Leases deliverable messages while their records are in the read-ahead
/// (due delayed messages first); returns the first one that must be read
/// from the log, leased, for the caller to read.
fn lease_until_miss(
    p: &mut PartitionSub,
    pulled: &mut Vec<Pulled>,
    bytes: &mut usize,
    attempts: &mut Vec<SubEvent>,
    now: i64,
    max_messages: usize,
    max_bytes: usize,
) -> Option<Delivery> {
    if let Some(d) = p.delayed.next(now) {
        // Its own event: a range must not run from a delayed offset into
        // the window's.
        attempts.push(SubEvent::Attempt {
            first: d.offset,
            last: d.offset,
            attempts: d.attempt,
        });
        return Some(d);
    }
    while pulled.len() < max_messages && *bytes < max_bytes {
        let d = p.window.next(now)?;
        push_attempt(attempts, d.offset, d.attempt);
        let Some(record) = p.read_ahead.take(d.offset) else {
            return Some(d);
        };
        *bytes += record.len();
        pulled.push(Pulled {
            ack_id: d.ack_id,
            attempt: d.attempt,
            record,
        });
    }
    None
}

/// Reads messages from the log again, keeping the last read: redeliveries
/// of neighbouring offsets (a nacked pull) come from one read.
#[derive(Default)]
struct Rereader {
    /// The last read, and the offsets `[first, next)` it holds.
    chunk: bytes::Bytes,
    first: u64,
    next: u64,
}

impl Rereader {
    /// The record at `offset`; `None` when the log no longer has it.
    async fn find(
        &mut self,
        log: &tidegate_queue::Log,
        offset: u64,
    ) -> Result<Option<OwnedRecord>, Failure> {
        if !(self.first..self.next).contains(&offset) {
            let read = match log.read(offset, REREAD_BYTES).await {
                Ok(read) => read,
                Err(LogError::OffsetOutOfRange { .. }) => return Ok(None),
                Err(e) => return Err(Failure::from(&e)),
            };
            (self.first, self.next) = (read.first_offset, read.next_offset);
            self.chunk = read.into_bytes();
        }
        for batch in BatchIter::stored(&self.chunk).flatten() {
            if let Some(r) = batch.records().find(|r| r.offset() == offset) {
                return Ok(Some(OwnedRecord::of(&r, &self.chunk)));
            }
        }
        Ok(None)
    }
}

/// Appends a delivery to `events`, merged into the last attempt range
/// when it follows it with the same count (first deliveries come in
/// offset order, so a pull's are mostly one range).
fn push_attempt(events: &mut Vec<SubEvent>, offset: u64, count: u32) {
    if let Some(SubEvent::Attempt { last, attempts, .. }) = events.last_mut() {
        if *attempts == count && last.checked_add(1) == Some(offset) {
            *last = offset;
            return;
        }
    }
    events.push(SubEvent::Attempt {
        first: offset,
        last: offset,
        attempts: count,
    });
}

/// Handles a message just leased that is not to be delivered (gone from
/// the log, or expired).
async fn handle_now(w: &Shared, ack_id: AckId, now: i64) -> Result<(), Failure> {
    let (journal, id, offset) = {
        let mut p = w.borrow_mut();
        let Ok(offset) = p.ack_delivery(ack_id, now) else {
            return Ok(());
        };
        (p.journal.clone(), p.sub_id, offset)
    };
    let event = SubEvent::Ack {
        first: offset,
        last: offset,
    };
    record(&journal, id, &[event], Ack::None).await
}

/// The record at `offset`, read from the log.
pub(super) async fn find(
    log: &tidegate_queue::Log,
    offset: u64,
) -> Result<Option<OwnedRecord>, Failure> {
    Rereader::default().find(log, offset).await
}
