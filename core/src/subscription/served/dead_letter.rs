//! Dead letters: a message that reached `max_deliveries` is published to
//! the subscription's dead-letter topic (durably), then handled on the
//! source. A crash between the two publishes it again; it is never lost.

use tidegate_proto::{
    batch::{BatchBuilder, Record},
    partitioner,
    protocol::AckLevel,
};
use tidegate_queue::{cursors::SubEvent, Ack};

use super::{record, record::OwnedRecord, take::find, Counter, Shared};
use crate::{
    catalog::SubscriptionMeta,
    router::Router,
    shard::{Failure, Op, OpResult},
};

/// Dead letters one call publishes (the rest wait for the next pull).
const PER_CALL: usize = 256;

/// Publishes the window's pending dead letters, unless another task is at
/// it. Failures are logged and retried by a later call: the message stays
/// unhandled meanwhile, holding the window's floor.
pub(super) async fn publish(router: &Router, sub: &SubscriptionMeta, w: &Shared) {
    let pending: Vec<(u64, u32)> = {
        let mut p = w.borrow_mut();
        if p.publishing || p.dead_letters.is_empty() {
            return;
        }
        p.publishing = true;
        p.dead_letters
            .iter()
            .take(PER_CALL)
            .map(|(&o, &a)| (o, a))
            .collect()
    };
    let _publishing = Publishing(w);
    for (offset, attempts) in pending {
        match publish_one(router, sub, w, offset, attempts).await {
            Ok(()) => router
                .shard
                .subscriptions
                .counters
                .count(&Counter::DeadLettered, 1),
            Err(f) => {
                tracing::warn!(subscription = %sub.name, offset, error = %f.message, "dead-lettering failed; will retry");
                return;
            }
        }
    }
}

async fn publish_one(
    router: &Router,
    sub: &SubscriptionMeta,
    w: &Shared,
    offset: u64,
    attempts: u32,
) -> Result<(), Failure> {
    let (log, partition) = {
        let p = w.borrow();
        (p.log.clone(), p.window.partition())
    };
    // A message retention removed since is simply handled.
    if let Some(message) = find(&log, offset).await? {
        let batch = dead_letter_batch(sub, partition, attempts, &message)?;
        let dlq = router.shard.topic(&sub.dead_letter_topic)?;
        let target = message
            .key
            .as_deref()
            .and_then(|k| partitioner::key_to_partition(k, dlq.partitions))
            .unwrap_or((offset % u64::from(dlq.partitions)) as u32);
        let op = Op::Produce {
            topic: dlq.name.clone(),
            partition: target,
            ack: AckLevel::Durable,
            batches: batch,
        };
        match router.call(router.shard.owner(&dlq.name, target), op).await {
            OpResult::Produced(results) => {
                if let Some(Err(code)) = results.into_iter().next() {
                    return Err(Failure::new(code, "publishing to the dead-letter topic"));
                }
            }
            OpResult::Failed(f) => return Err(f),
            other => {
                return Err(Failure::new(
                    tidegate_proto::protocol::ErrorCode::Internal,
                    format!("unexpected answer to a produce: {other:?}"),
                ))
            }
        }
    }
    let (journal, id) = {
        let mut p = w.borrow_mut();
        p.dead_letters.remove(&offset);
        let marked = if p.delayed.contains(offset) {
            p.delayed.dead_lettered(offset).is_ok()
        } else {
            p.window.dead_lettered(offset).is_ok()
        };
        if !marked {
            // The window moved on (restarted after retention): nothing to
            // mark.
            return Ok(());
        }
        p.changed.notify(usize::MAX);
        (p.journal.clone(), p.sub_id)
    };
    let event = SubEvent::Ack {
        first: offset,
        last: offset,
    };
    record(&journal, id, &[event], Ack::Durable).await
}

/// The message again, with headers saying where it came from.
fn dead_letter_batch(
    sub: &SubscriptionMeta,
    partition: u32,
    attempts: u32,
    message: &OwnedRecord,
) -> Result<Vec<u8>, Failure> {
    let (partition, offset, attempts) = (
        partition.to_string(),
        message.offset.to_string(),
        attempts.to_string(),
    );
    let mut headers: Vec<(&str, &[u8])> = message
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_ref()))
        .collect();
    headers.extend([
        ("tg-dlq-topic", sub.topic.as_bytes()),
        ("tg-dlq-partition", partition.as_bytes()),
        ("tg-dlq-offset", offset.as_bytes()),
        ("tg-dlq-subscription", sub.name.as_bytes()),
        ("tg-dlq-attempts", attempts.as_bytes()),
    ]);
    let corrupt = |e: tidegate_proto::batch::BatchError| {
        Failure::new(
            tidegate_proto::protocol::ErrorCode::Internal,
            format!("building a dead letter: {e}"),
        )
    };
    let mut builder = BatchBuilder::new();
    builder
        .push(Record {
            timestamp_ms: message.timestamp_ms,
            key: message.key.as_deref(),
            value: message.value.as_deref(),
            headers: &headers,
        })
        .map_err(corrupt)?;
    builder.finish().map_err(corrupt)
}

/// Marks dead-letter publishing under way; clears the mark when dropped,
/// a dropped future included.
struct Publishing<'a>(&'a Shared);

impl Drop for Publishing<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().publishing = false;
    }
}
