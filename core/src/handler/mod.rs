//! One request, from its bytes to its response: decode (protocol v1),
//! route to the owning shard, encode. Every failure becomes a typed error
//! response on the request's stream; nothing a client sends can panic it.

mod groups;
pub(crate) mod push;
mod subscriptions;

use bytes::Bytes;
use tidegate_proto::{
    partitioner,
    protocol::{
        decode_header, ErrorCode, ErrorResponse, FetchResponse, ProduceResponse, ProduceTarget,
        Request, Response, TopicDescription, TopicOverrides, TopicSummary, FRAME_HEADER_LEN,
    },
};

use tidegate_net::Peer;

use crate::{
    access::Allowed,
    catalog::TopicSettings,
    router::{now_ms, Router, CATALOG_SHARD},
    shard::{Failure, Op, OpResult},
};

/// Answers one request of `peer`.
pub(crate) async fn handle(
    router: &Router,
    peer: &Peer,
    data: &[u8],
    max_body: usize,
) -> Vec<Bytes> {
    let probe = crate::metrics::RequestProbe::start(data, max_body);
    let kind = data.get(3).copied().unwrap_or(0);
    let request = match decode(data, max_body) {
        Ok(r) => r,
        Err(parts) => return parts,
    };
    let now = u64::try_from(now_ms()).unwrap_or(0);
    if let Request::Authenticate { token } = request {
        return probe.finish(match router.access.authenticate(peer, token, now) {
            Ok(who) => encode(&Response::Authenticate {
                principal: &who.principal,
                expires_at_ms: who.expires_at_ms,
            }),
            Err(f) => error(kind, f.code, &f.message),
        });
    }
    let allowed = match router.access.check(peer, &request, now) {
        Ok(allowed) => allowed,
        Err(f) => return probe.finish(error(kind, f.code, &f.message)),
    };
    let is_produce = matches!(request, Request::Produce(_));
    let parts = match serve(router, peer, request, &allowed).await {
        Ok(parts) => parts,
        Err(f) => error(kind, f.code, &f.message),
    };
    if is_produce {
        // What the shard's flow control steers: the time from the whole
        // request to its answer, here.
        router.flow.record_produce(probe.elapsed());
    }
    probe.finish(parts)
}

/// The request in `data`, or the error frame that answers it.
fn decode(data: &[u8], max_body: usize) -> Result<Request<'_>, Vec<Bytes>> {
    let kind = data.get(3).copied().unwrap_or(0);
    let header = match decode_header(data, max_body) {
        Ok(Some(h)) => h,
        Ok(None) => {
            return Err(error(
                kind,
                ErrorCode::MalformedFrame,
                "truncated frame header",
            ))
        }
        Err(e) => return Err(error(kind, e.error_code(), &e.to_string())),
    };
    let body = data.get(FRAME_HEADER_LEN..).unwrap_or_default();
    if body.len() != header.body_len as usize {
        let message = format!(
            "frame declares {} body bytes, the stream carried {}",
            header.body_len,
            body.len()
        );
        return Err(error(kind, ErrorCode::MalformedFrame, &message));
    }
    Request::decode(header, body).map_err(|e| error(kind, e.error_code(), &e.to_string()))
}

async fn serve(
    router: &Router,
    peer: &Peer,
    request: Request<'_>,
    allowed: &Allowed,
) -> Result<Vec<Bytes>, Failure> {
    let shard = &router.shard;
    let response = match request {
        Request::CreateTopic(c) => {
            let op = Op::CreateTopic {
                name: c.name.to_owned(),
                partitions: c.partitions,
                settings: TopicSettings {
                    retention_ms: c.retention_ms,
                    retention_bytes: c.retention_bytes,
                    segment_bytes: c.segment_bytes,
                    message_ttl_ms: c.message_ttl_ms,
                    dedup_window_ms: c.dedup_window_ms,
                },
            };
            expect_done(router.call(CATALOG_SHARD, op).await)?;
            Response::CreateTopic
        }
        Request::DeleteTopic { name } => {
            let op = Op::DeleteTopic {
                name: name.to_owned(),
            };
            expect_done(router.call(CATALOG_SHARD, op).await)?;
            Response::DeleteTopic
        }
        Request::ListTopics => {
            let catalog = shard.catalog.borrow().clone();
            // A principal sees the topics it may do something with.
            let visible = |name: &str| {
                allowed
                    .principal
                    .as_deref()
                    .is_none_or(|who| allowed.policy.sees(who, name))
            };
            let topics: Vec<TopicSummary<'_>> = catalog
                .list()
                .filter(|t| visible(&t.name))
                .map(|t| TopicSummary {
                    name: &t.name,
                    partitions: t.partitions,
                })
                .collect();
            return Ok(encode(&Response::ListTopics(topics)));
        }
        Request::DescribeTopic { name } => {
            let meta = shard.topic(name)?;
            let calls = (0..meta.partitions).map(|p| {
                let op = Op::Describe {
                    topic: meta.name.clone(),
                    partition: p,
                };
                router.call(shard.owner(&meta.name, p), op)
            });
            let mut partitions = Vec::with_capacity(meta.partitions as usize);
            for result in futures::future::join_all(calls).await {
                match result {
                    OpResult::Described(info) => partitions.push(info),
                    other => return Err(failure_of(other)),
                }
            }
            let description = TopicDescription {
                name: &meta.name,
                partitions,
                settings: Some(TopicOverrides {
                    retention_ms: meta.retention_ms,
                    retention_bytes: meta.retention_bytes,
                    segment_bytes: meta.segment_bytes,
                    message_ttl_ms: meta.message_ttl_ms,
                    dedup_window_ms: meta.dedup_window_ms,
                }),
            };
            return Ok(encode(&Response::DescribeTopic(description)));
        }
        Request::Produce(p) => {
            let meta = shard.topic(p.topic)?;
            let partition = match p.target {
                ProduceTarget::Partition(n) => n,
                ProduceTarget::Key(key) => partitioner::key_to_partition(key, meta.partitions)
                    .ok_or_else(|| Failure::new(ErrorCode::Internal, "topic has no partitions"))?,
            };
            let owner = shard.owner(&meta.name, partition);
            let results = if owner == shard.id {
                shard.produce(p.topic, partition, p.ack, p.batches).await?
            } else {
                let op = Op::Produce {
                    topic: meta.name.clone(),
                    partition,
                    ack: p.ack,
                    batches: p.batches.to_vec(),
                };
                match router.call(owner, op).await {
                    OpResult::Produced(r) => r,
                    other => return Err(failure_of(other)),
                }
            };
            Response::Produce(ProduceResponse {
                // Only a connection that keeps more than its share of
                // requests waiting for admission is told to back off: a
                // sparse one is not the one filling the queue
                // (docs/FLOW_CONTROL.md).
                throttle_ms: if peer.over_share.get() {
                    router.flow.throttle_ms()
                } else {
                    0
                },
                results,
            })
        }
        Request::Fetch(f) => {
            let meta = shard.topic(f.topic)?;
            let owner = shard.owner(&meta.name, f.partition);
            let (high_watermark, batches) = if owner == shard.id {
                let fetched = shard
                    .fetch(f.topic, f.partition, f.offset, f.max_bytes, f.max_wait_ms)
                    .await?;
                // quinn-proto needs `Bytes`: shared from the tail cache, or
                // copied once from a disk read.
                (fetched.high_watermark, fetched.batches.into_bytes())
            } else {
                let op = Op::Fetch {
                    topic: meta.name.clone(),
                    partition: f.partition,
                    offset: f.offset,
                    max_bytes: f.max_bytes,
                    max_wait_ms: f.max_wait_ms,
                };
                match router.call(owner, op).await {
                    OpResult::Fetched {
                        high_watermark,
                        batches,
                    } => (high_watermark, batches),
                    other => return Err(failure_of(other)),
                }
            };
            let response = FetchResponse {
                partition: f.partition,
                high_watermark,
                batches: &[],
            };
            let mut prefix = Vec::new();
            response.encode_prefix(batches.len(), &mut prefix);
            return Ok(vec![Bytes::from(prefix), batches]);
        }
        Request::ListOffsets(l) => {
            let meta = shard.topic(l.topic)?;
            let owner = shard.owner(&meta.name, l.partition);
            let op = Op::ListOffsets {
                topic: meta.name.clone(),
                partition: l.partition,
                spec: l.spec,
            };
            match router.call(owner, op).await {
                OpResult::Offset(offset) => Response::ListOffsets { offset },
                other => return Err(failure_of(other)),
            }
        }
        Request::InitProducer { name } => {
            let op = Op::InitProducer {
                name: name.to_owned(),
            };
            match router.call(CATALOG_SHARD, op).await {
                OpResult::Producer { producer_id, epoch } => {
                    Response::InitProducer { producer_id, epoch }
                }
                other => return Err(failure_of(other)),
            }
        }
        Request::GroupHeartbeat(h) => return groups::heartbeat(router, h).await,
        Request::CommitOffsets(c) => return groups::commit(router, c).await,
        Request::FetchOffsets(f) => return groups::fetch(router, f).await,
        Request::DescribeGroup { group } => return groups::describe(router, group).await,
        Request::ListGroups => {
            let sees = |topic: &str| {
                allowed
                    .principal
                    .as_deref()
                    .is_none_or(|who| allowed.policy.sees(who, topic))
            };
            return groups::list(router, sees).await;
        }
        Request::CreateSubscription(c) => return subscriptions::create(router, c).await,
        Request::DeleteSubscription { name } => {
            return subscriptions::delete(router, peer, allowed, name).await
        }
        Request::ListSubscriptions { topic } => {
            let sees = |topic: &str| {
                allowed
                    .principal
                    .as_deref()
                    .is_none_or(|who| allowed.policy.sees(who, topic))
            };
            return subscriptions::list(router, topic, sees);
        }
        Request::DescribeSubscription { name } => {
            return subscriptions::describe(router, peer, allowed, name).await
        }
        Request::Pull(p) => return subscriptions::pull(router, peer, allowed, p).await,
        Request::PushCredit(c) => return push::credit(router, peer, c),
        // Served by `push::stream`, which keeps the stream open.
        Request::StreamingPull(_) => {
            return Err(Failure::new(
                ErrorCode::Internal,
                "streaming pull reached the request router",
            ))
        }
        Request::Ack(a) => return subscriptions::ack(router, peer, allowed, a, None).await,
        Request::ModifyDeadline { ack, deadline_ms } => {
            return subscriptions::ack(router, peer, allowed, ack, Some(deadline_ms)).await
        }
        // Answered in `handle`, before the access check.
        Request::Authenticate { .. } => {
            return Err(Failure::new(
                ErrorCode::Internal,
                "authenticate reached the request router",
            ))
        }
    };
    Ok(encode(&response))
}

fn expect_done(result: OpResult) -> Result<(), Failure> {
    match result {
        OpResult::Done => Ok(()),
        other => Err(failure_of(other)),
    }
}

fn failure_of(result: OpResult) -> Failure {
    match result {
        OpResult::Failed(f) => f,
        other => Failure::new(
            ErrorCode::Internal,
            format!("unexpected result from a shard: {other:?}"),
        ),
    }
}

fn encode(response: &Response<'_>) -> Vec<Bytes> {
    let mut out = Vec::new();
    response.encode(&mut out);
    vec![Bytes::from(out)]
}

fn error(kind: u8, code: ErrorCode, message: &str) -> Vec<Bytes> {
    encode(&Response::Error(ErrorResponse {
        request_kind: kind,
        code,
        message,
    }))
}
