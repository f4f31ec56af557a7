//! Ack and ModifyDeadline on one partition: the window decides, the acks
//! are journaled durably before the answer.

use tidegate_proto::protocol::ErrorCode;
use tidegate_queue::Ack;

use super::{checkpoint_if_due, dead_letter, push_handled, record, Counter};
use crate::{
    catalog::SubscriptionMeta,
    router::{now_ms, Router},
    shard::Failure,
    subscription::{AckError, AfterLease, DeadlineChange, LeaseEnded},
};

/// Acks (`deadline_ms` `None`) or changes the deadlines of `ids`, all of
/// `partition`; answers per id, in order.
pub(crate) async fn ack(
    router: &Router,
    sub: &SubscriptionMeta,
    partition: u32,
    ids: &[crate::subscription::AckId],
    deadline_ms: Option<u32>,
) -> Result<Vec<ErrorCode>, Failure> {
    let w = router
        .shard
        .subscriptions
        .get(&router.shard, sub, partition)
        .await?;
    let now = now_ms();
    let (journal, id, events, mut results) = {
        let mut p = w.borrow_mut();
        let p = &mut *p;
        let mut offsets = Vec::new();
        let mut results = Vec::with_capacity(ids.len());
        for &ack_id in ids {
            let outcome = match deadline_ms {
                None => p.ack_delivery(ack_id, now).map(|offset| {
                    offsets.push(offset);
                }),
                Some(ms) => p.modify_delivery(ack_id, ms, now).map(|change| {
                    if let DeadlineChange::Ended(LeaseEnded {
                        offset,
                        attempts,
                        after: AfterLease::DeadLetter,
                    }) = change
                    {
                        p.dead_letters.insert(offset, attempts);
                    }
                }),
            };
            results.push(match outcome {
                Ok(()) => ErrorCode::Ok,
                // Acking a message that is handled already changes nothing
                // and is no error (a client may send an ack again after a
                // lost answer).
                Err(AckError::Unknown { offset })
                    if p.window.is_handled(offset) && !p.delayed.contains(offset) =>
                {
                    ErrorCode::Ok
                }
                Err(AckError::LeaseExpired { .. } | AckError::Unknown { .. }) => {
                    ErrorCode::LeaseExpired
                }
                Err(AckError::WrongPartition { .. }) => ErrorCode::InvalidRequest,
            });
        }
        offsets.sort_unstable();
        let mut events = Vec::new();
        for offset in offsets {
            push_handled(&mut events, offset, offset);
        }
        p.changed.notify(usize::MAX);
        (p.journal.clone(), p.sub_id, events, results)
    };
    // An ack is answered only once it is durable.
    let acked = results.iter().filter(|c| c.is_ok()).count() as u64;
    if let Err(f) = record(&journal, id, &events, Ack::Durable).await {
        for (result, _) in results.iter_mut().zip(ids) {
            if *result == ErrorCode::Ok && deadline_ms.is_none() {
                *result = f.code;
            }
        }
        tracing::warn!(subscription = %sub.name, partition, error = %f.message, "journaling acks failed");
    } else if deadline_ms.is_none() {
        router
            .shard
            .subscriptions
            .counters
            .count(&Counter::Acked, acked);
    }
    dead_letter::publish(router, sub, &w).await;
    checkpoint_if_due(&w).await?;
    Ok(results)
}
