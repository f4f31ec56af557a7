//! Opening a window: started at the subscription's start position, or
//! restored from the journal (checkpoint, then the events after it), then
//! given its messages' meta back by reading the log from the floor
//! (window/recovery.rs describes the steps).

use std::collections::BTreeMap;

use tidegate_proto::{batch::BatchIter, protocol::ErrorCode};
use tidegate_queue::{
    cursors::{SubEvent, SubState},
    Ack, Log, LogError,
};

use super::{checkpoint_of, push_handled, record, record::meta_of, PartitionSub};
use crate::{
    catalog::{Start, SubscriptionMeta},
    router::now_ms,
    shard::{Failure, Shard},
    subscription::{DelayedSet, Disposition, Window, WindowConfig},
};

/// Bytes one read of the log asks for while reattaching.
const REATTACH_READ_BYTES: usize = 1 << 20;

/// The window settings of a subscription within the server's bounds
/// (`[subscriptions]`).
pub(super) fn window_config(sub: &SubscriptionMeta, bounds: &WindowConfig) -> WindowConfig {
    WindowConfig {
        ack_deadline_ms: sub.ack_deadline_ms,
        backoff_min_ms: sub.backoff_min_ms,
        backoff_max_ms: sub.backoff_max_ms,
        max_deliveries: (sub.max_deliveries > 0).then_some(sub.max_deliveries),
        ordering: sub.ordering,
        priority: sub.priority,
        ..*bounds
    }
}

pub(super) async fn open(
    shard: &Shard,
    sub: &SubscriptionMeta,
    partition: u32,
) -> Result<PartitionSub, Failure> {
    let topic = shard.topic(&sub.topic)?;
    let log = shard.log(&topic, partition)?;
    let journal = shard
        .partitions
        .journal(&shard.data_dir, &topic, partition, true)
        .await?
        .ok_or_else(|| Failure::new(ErrorCode::Internal, "cursor journal not created"))?;
    forget_orphans(shard, &journal).await;
    let filter = sub.compiled_filter().map_err(Failure::from)?;
    let config = window_config(sub, &shard.window_defaults);
    let invalid = |e: String| Failure::new(ErrorCode::Internal, e);
    let mut events = Vec::new();
    let (window, delayed) = match journal.subscription(sub.id) {
        None => {
            let start = start_offset(&log, sub).await?;
            let window =
                Window::new(partition, config, start).map_err(|e| invalid(e.to_string()))?;
            (window, DelayedSet::new(partition, config))
        }
        Some(state) => {
            let (mut window, delayed) = restore(partition, config, &state, &log, sub).await?;
            let filter = filter.as_ref();
            let ttl = topic.message_ttl_ms;
            reattach(&mut window, &delayed, &log, sub, (filter, ttl), &mut events).await?;
            (window, delayed)
        }
    };
    events.push(SubEvent::Checkpoint(checkpoint_of(&window, &delayed)));
    // The start, or the state recovery settled on, is durable before the
    // first delivery.
    record(&journal, sub.id, &events, Ack::Durable).await?;
    Ok(PartitionSub {
        sub_id: sub.id,
        window,
        delayed,
        ttl_ms: topic.message_ttl_ms,
        gate: None,
        held_by_delayed: false,
        log,
        journal,
        filter,
        read_ahead: Default::default(),
        dead_letters: BTreeMap::new(),
        publishing: false,
        changed: event_listener::Event::new(),
    })
}

/// Forgets journal state of subscriptions the catalog no longer has (they
/// were deleted while this journal was not open).
async fn forget_orphans(shard: &Shard, journal: &tidegate_queue::cursors::CursorJournal) {
    let live: std::collections::HashSet<u64> = shard
        .catalog
        .borrow()
        .subscriptions()
        .map(|s| s.id)
        .collect();
    for id in journal.subscription_ids() {
        if !live.contains(&id) {
            if let Err(e) = journal.delete_subscription(id).await {
                tracing::warn!(subscription = id, error = %e, "forgetting a deleted subscription's state");
            }
        }
    }
}

/// Where a new subscription starts in this partition.
async fn start_offset(log: &Log, sub: &SubscriptionMeta) -> Result<u64, Failure> {
    let offsets = log.offsets();
    let clamp = |o: u64| o.clamp(offsets.earliest, offsets.latest);
    Ok(match sub.start {
        Start::Earliest => offsets.earliest,
        Start::Latest => offsets.latest,
        Start::Offset(o) => clamp(o),
        Start::Timestamp(t) => log.offset_for_timestamp(t).await?.unwrap_or(offsets.latest),
    })
}

/// The window and the delayed set as the journal left them: the
/// checkpoint, then the events after it. A checkpoint this configuration
/// cannot take (the window cap shrank) restarts the window at its floor,
/// so nothing is lost; what was handled above the floor is delivered
/// again.
async fn restore(
    partition: u32,
    config: WindowConfig,
    state: &SubState,
    log: &Log,
    sub: &SubscriptionMeta,
) -> Result<(Window, DelayedSet), Failure> {
    let invalid = |e: String| Failure::new(ErrorCode::Internal, e);
    let mut window = match &state.checkpoint {
        Some(c) => match Window::restore(partition, config, c) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(subscription = %sub.name, partition, error = %e, "restarting a window at its floor");
                Window::new(partition, config, c.floor).map_err(|e| invalid(e.to_string()))?
            }
        },
        None => Window::new(partition, config, start_offset(log, sub).await?)
            .map_err(|e| invalid(e.to_string()))?,
    };
    let mut delayed = DelayedSet::new(partition, config);
    for &(offset, visible_at_ms, attempts) in state.checkpoint.iter().flat_map(|c| &c.delayed) {
        delayed.replay_defer(offset, visible_at_ms, attempts);
    }
    for event in &state.events {
        if let Err(e) = replay(&mut window, &mut delayed, event) {
            tracing::warn!(subscription = %sub.name, partition, error = %e, "skipping a journal event");
        }
    }
    Ok((window, delayed))
}

/// Applies one journal event. An event about an offset of the delayed set
/// goes to the set; a `Defer` also marks its offset handled in the window,
/// as reading it did.
fn replay(
    window: &mut Window,
    delayed: &mut DelayedSet,
    event: &SubEvent,
) -> Result<(), crate::subscription::ReplayError> {
    match *event {
        SubEvent::Ack { first, last } => {
            // Idempotent in the window: a delayed offset is handled there.
            delayed.apply_ack_range(first, last);
            window.apply_ack_range(first, last).map(|_| ())
        }
        SubEvent::Attempt {
            first,
            last,
            attempts,
        } => apply_attempts(window, delayed, first, last, attempts),
        SubEvent::Defer {
            offset,
            visible_at_ms,
            attempts,
        } => {
            delayed.replay_defer(offset, visible_at_ms, attempts);
            window.apply_ack_range(offset, offset).map(|_| ())
        }
        SubEvent::Checkpoint(_) => Ok(()),
    }
}

/// Replays an attempt range, each offset to the delayed set when it holds
/// it (a pull's ranges may run from a delayed message into the window's);
/// one wider than the window is not one this server wrote.
fn apply_attempts(
    window: &mut Window,
    delayed: &mut DelayedSet,
    first: u64,
    last: u64,
    attempts: u32,
) -> Result<(), crate::subscription::ReplayError> {
    let window_max = window.config().window_max;
    if last - first >= window_max {
        return Err(crate::subscription::ReplayError::BeyondWindow {
            offset: last,
            floor: window.floor(),
            window_max,
        });
    }
    (first..=last).try_for_each(|offset| {
        if delayed.contains(offset) {
            delayed.apply_attempt(offset, attempts);
            return Ok(());
        }
        window.apply_attempt(offset, attempts)
    })
}

/// Reads the log from the window's floor to its cursor and gives each
/// restored offset its meta back; offsets the log no longer holds are
/// handled. Their handled ranges go to `events`.
async fn reattach(
    window: &mut Window,
    delayed: &DelayedSet,
    log: &Log,
    sub: &SubscriptionMeta,
    (filter, ttl_ms): (Option<&tidegate_proto::filter::Filter>, Option<u64>),
    events: &mut Vec<SubEvent>,
) -> Result<(), Failure> {
    let now = now_ms();
    let cursor = window.cursor();
    let earliest = log.offsets().earliest;
    if cursor <= earliest && window.floor() < cursor {
        // Retention removed the whole window: start again at the earliest.
        *window = Window::new(window.partition(), *window.config(), earliest)
            .map_err(|e| Failure::new(ErrorCode::Internal, e.to_string()))?;
        return Ok(());
    }
    let mut next = window.floor();
    if next < earliest {
        handle_missing(window, next, earliest - 1, events);
        next = earliest;
    }
    while next < cursor {
        let read = match log.read(next, REATTACH_READ_BYTES).await {
            Ok(read) => read,
            Err(LogError::OffsetOutOfRange { .. }) => break,
            Err(e) => return Err(Failure::from(&e)),
        };
        if read.is_empty() {
            break;
        }
        for batch in BatchIter::stored(read.as_bytes()) {
            let batch = batch.map_err(|e| Failure::new(ErrorCode::StorageFailed, e.to_string()))?;
            for record in batch.records() {
                let offset = record.offset();
                if offset < next {
                    continue;
                }
                if offset >= cursor {
                    next = cursor;
                    break;
                }
                if offset > next {
                    handle_missing(window, next, offset - 1, events);
                }
                if delayed.contains(offset) {
                    // The delayed set has it (the window restarted at an
                    // older floor): the window is done with it.
                    let _ = window.apply_ack_range(offset, offset);
                    next = offset + 1;
                    continue;
                }
                // It was admitted to be delivered: a delay that seems to
                // lie ahead now (the clock went back) does not take it out.
                let meta = match meta_of(&record, filter, sub, ttl_ms, now) {
                    m if m.disposition == Disposition::Deferred => {
                        m.with_disposition(Disposition::Deliver)
                    }
                    m => m,
                };
                if let Ok(admitted) = window.reattach(offset, meta) {
                    if let Some((first, last)) = admitted.handled {
                        push_handled(events, first, last);
                    }
                }
                next = offset + 1;
            }
        }
        next = next.max(read.next_offset.min(cursor));
    }
    if next < cursor {
        handle_missing(window, next, cursor - 1, events);
    }
    Ok(())
}

fn handle_missing(window: &mut Window, first: u64, last: u64, events: &mut Vec<SubEvent>) {
    if window.apply_ack_range(first, last).is_ok() {
        push_handled(events, first, last);
    }
}
