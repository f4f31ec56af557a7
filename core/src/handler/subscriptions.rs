//! Subscription requests. Definitions change on shard 0 (the catalog);
//! pulls and acks go to each partition's shard, which owns the window.

use std::time::Duration;

use bytes::Bytes;
use futures::future::{join_all, select_all};
use tidegate_auth::Operation;
use tidegate_net::Peer;
use tidegate_proto::protocol::{
    AckRequest, ErrorCode, PullRequest, PulledMessage, Response, SubscriptionConfig,
    SubscriptionDescription, ACK_ID_BYTES,
};

use super::{encode, expect_done, failure_of};
use crate::{
    access::Allowed,
    catalog::{SubscriptionMeta, TopicMeta},
    router::{Router, CATALOG_SHARD},
    shard::{Failure, Op, OpResult},
    subscription::{
        served::{unknown, Pulled},
        AckId,
    },
};

/// The subscription named `name`, after checking that the principal may
/// do `operation` on its topic.
pub(super) fn subscription(
    router: &Router,
    peer: &Peer,
    allowed: &Allowed,
    name: &str,
    operation: Operation,
) -> Result<SubscriptionMeta, Failure> {
    let sub = router
        .shard
        .catalog
        .borrow()
        .subscription(name)
        .cloned()
        .ok_or_else(|| unknown(name))?;
    router
        .access
        .authorize(peer, allowed, operation, &sub.topic)?;
    Ok(sub)
}

/// Creates the subscription, then opens its window in every partition,
/// which fixes its start durably there. Should a partition fail to open,
/// the subscription exists and that partition starts at its first use.
pub(super) async fn create(
    router: &Router,
    config: SubscriptionConfig<'_>,
) -> Result<Vec<Bytes>, Failure> {
    let op = Op::CreateSubscription(Box::new(SubscriptionMeta::new(&config, 0, 0)));
    expect_done(router.call(CATALOG_SHARD, op).await)?;
    let topic = router.shard.topic(config.topic)?;
    let opens = (0..topic.partitions).map(|partition| {
        let op = Op::SubOpen {
            sub: config.name.to_owned(),
            partition,
        };
        router.call(router.shard.owner(&topic.name, partition), op)
    });
    for result in join_all(opens).await {
        expect_done(result)?;
    }
    Ok(encode(&Response::CreateSubscription))
}

pub(super) async fn delete(
    router: &Router,
    peer: &Peer,
    allowed: &Allowed,
    name: &str,
) -> Result<Vec<Bytes>, Failure> {
    subscription(router, peer, allowed, name, Operation::Admin)?;
    let op = Op::DeleteSubscription {
        name: name.to_owned(),
    };
    expect_done(router.call(CATALOG_SHARD, op).await)?;
    Ok(encode(&Response::DeleteSubscription))
}

/// The subscriptions of `topic` (all when empty) whose topic the principal
/// sees.
pub(super) fn list(
    router: &Router,
    topic: &str,
    sees: impl Fn(&str) -> bool,
) -> Result<Vec<Bytes>, Failure> {
    let catalog = router.shard.catalog.borrow().clone();
    let subs: Vec<SubscriptionConfig<'_>> = catalog
        .subscriptions()
        .filter(|s| (topic.is_empty() || s.topic == topic) && sees(&s.topic))
        .map(SubscriptionMeta::to_config)
        .collect();
    Ok(encode(&Response::ListSubscriptions(subs)))
}

pub(super) async fn describe(
    router: &Router,
    peer: &Peer,
    allowed: &Allowed,
    name: &str,
) -> Result<Vec<Bytes>, Failure> {
    let sub = subscription(router, peer, allowed, name, Operation::Consume)?;
    let topic = router.shard.topic(&sub.topic)?;
    let calls = (0..topic.partitions).map(|partition| {
        let op = Op::SubDescribe {
            sub: sub.name.clone(),
            partition,
        };
        router.call(router.shard.owner(&topic.name, partition), op)
    });
    let mut partitions = Vec::with_capacity(topic.partitions as usize);
    for result in join_all(calls).await {
        match result {
            OpResult::SubPartition(p) => partitions.push(p),
            other => return Err(failure_of(other)),
        }
    }
    let description = SubscriptionDescription {
        config: sub.to_config(),
        partitions,
    };
    Ok(encode(&Response::DescribeSubscription(description)))
}

/// Takes from the topic's partitions in turn, starting one further on
/// each pull; with nothing to take, waits (up to `max_wait_ms`) for the
/// first partition that may have something, then takes again.
pub(super) async fn pull(
    router: &Router,
    peer: &Peer,
    allowed: &Allowed,
    request: PullRequest<'_>,
) -> Result<Vec<Bytes>, Failure> {
    let sub = subscription(
        router,
        peer,
        allowed,
        request.subscription,
        Operation::Consume,
    )?;
    let topic = router.shard.topic(&sub.topic)?;
    let deadline = std::time::Instant::now() + Duration::from_millis(request.max_wait_ms.into());
    let mut pulled = Taken::default();
    loop {
        take_round(
            router,
            &sub.name,
            &topic,
            request.max_messages as usize,
            request.max_bytes as usize,
            &mut pulled,
        )
        .await?;
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if !pulled.messages.is_empty() || left.is_zero() || router.shard.stopping.get() {
            break;
        }
        let wait_ms = u32::try_from(left.as_millis()).unwrap_or(u32::MAX);
        wait_any(router, &sub.name, &topic, wait_ms).await?;
    }
    Ok(encode(&Response::Pull(pulled.to_wire())))
}

/// Messages taken from a subscription's partitions.
#[derive(Default)]
pub(super) struct Taken {
    /// Each with its partition.
    pub(super) messages: Vec<(u32, Pulled)>,
    /// Their keys', values' and headers' bytes.
    pub(super) bytes: usize,
}

impl Taken {
    /// As Pull and StreamingPull answer them.
    pub(super) fn to_wire(&self) -> Vec<PulledMessage<'_>> {
        self.messages
            .iter()
            .map(|(partition, m)| PulledMessage {
                ack_id: m.ack_id.to_bytes(),
                attempt: m.attempt,
                partition: *partition,
                offset: m.record.offset,
                timestamp_ms: m.record.timestamp_ms,
                key: m.record.key.as_deref(),
                value: m.record.value.as_deref(),
                headers: m
                    .record
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_ref()))
                    .collect(),
            })
            .collect()
    }
}

/// One turn over `topic`'s partitions, starting one further than the last
/// turn of this shard: leases into `taken` until it holds `max_messages`
/// or about `max_bytes`.
pub(super) async fn take_round(
    router: &Router,
    sub: &str,
    topic: &TopicMeta,
    max_messages: usize,
    max_bytes: usize,
    taken: &mut Taken,
) -> Result<(), Failure> {
    let partitions = topic.partitions;
    let rotor = &router.shard.subscriptions.rotor;
    let first = rotor.get() % partitions.max(1);
    rotor.set(first.wrapping_add(1));
    for i in 0..partitions {
        let left = max_messages.saturating_sub(taken.messages.len());
        let bytes_left = max_bytes.saturating_sub(taken.bytes);
        if left == 0 || bytes_left == 0 {
            break;
        }
        let partition = (first + i) % partitions;
        let op = Op::SubTake {
            sub: sub.to_owned(),
            partition,
            max_messages: u32::try_from(left).unwrap_or(u32::MAX),
            max_bytes: u32::try_from(bytes_left).unwrap_or(u32::MAX),
        };
        match router
            .call(router.shard.owner(&topic.name, partition), op)
            .await
        {
            OpResult::Pulled(messages) => {
                taken.bytes += messages.iter().map(|m| m.record.len()).sum::<usize>();
                taken
                    .messages
                    .extend(messages.into_iter().map(|m| (partition, m)));
            }
            other => return Err(failure_of(other)),
        }
    }
    Ok(())
}

/// Waits (up to `wait_ms`) until some partition of `topic` may have a
/// message for `sub`.
pub(super) async fn wait_any(
    router: &Router,
    sub: &str,
    topic: &TopicMeta,
    wait_ms: u32,
) -> Result<(), Failure> {
    let waits = (0..topic.partitions).map(|partition| {
        let op = Op::SubWait {
            sub: sub.to_owned(),
            partition,
            wait_ms,
        };
        Box::pin(router.call(router.shard.owner(&topic.name, partition), op))
    });
    let (result, _, _) = select_all(waits).await;
    match result {
        OpResult::Failed(f) => Err(f),
        _ => Ok(()),
    }
}

/// Ack (`deadline_ms` `None`) or ModifyDeadline: the ids go to their
/// partitions' shards; the answer has one code per id, in order.
pub(super) async fn ack(
    router: &Router,
    peer: &Peer,
    allowed: &Allowed,
    request: AckRequest<'_>,
    deadline_ms: Option<u32>,
) -> Result<Vec<Bytes>, Failure> {
    let sub = subscription(
        router,
        peer,
        allowed,
        request.subscription,
        Operation::Consume,
    )?;
    let topic = router.shard.topic(&sub.topic)?;
    let mut results = vec![ErrorCode::InvalidRequest; request.ack_ids.len()];
    // Per partition: the ids and their places in the request.
    let mut by_partition: std::collections::BTreeMap<u32, (Vec<AckId>, Vec<usize>)> =
        std::collections::BTreeMap::new();
    for (i, bytes) in request.ack_ids.iter().enumerate() {
        let Ok(id) = AckId::from_bytes(bytes.as_slice()) else {
            continue;
        };
        if id.partition >= topic.partitions {
            continue;
        }
        let entry = by_partition.entry(id.partition).or_default();
        entry.0.push(id);
        entry.1.push(i);
    }
    let calls = by_partition.into_iter().map(|(partition, (ids, places))| {
        let op = Op::SubAck {
            sub: sub.name.clone(),
            partition,
            ids,
            deadline_ms,
        };
        let call = router.call(router.shard.owner(&topic.name, partition), op);
        async move { (call.await, places) }
    });
    for (result, places) in join_all(calls).await {
        match result {
            OpResult::AckResults(codes) => {
                for (place, code) in places.into_iter().zip(codes) {
                    results[place] = code;
                }
            }
            other => {
                let code = failure_of(other).code;
                for place in places {
                    results[place] = code;
                }
            }
        }
    }
    let response = match deadline_ms {
        None => Response::Ack(results),
        Some(_) => Response::ModifyDeadline(results),
    };
    debug_assert_eq!(ACK_ID_BYTES, crate::subscription::ACK_ID_LEN);
    Ok(encode(&response))
}
