//! Tests of protocol v1 through its public API.

mod error_codes;
mod golden;
mod malformed;
mod props;
mod reader;
mod roundtrip;

use super::*;
use crate::batch::{BatchBuilder, Record};

/// `r`'s value, or a panic naming the error (tests avoid `unwrap`).
fn must<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("unexpected error: {e}"))
}

/// A valid one-record batch, as a producer sends it (base offset 0).
fn sample_batch() -> Vec<u8> {
    let mut b = BatchBuilder::new();
    must(b.push(Record {
        timestamp_ms: 1_000,
        key: Some(b"k"),
        value: Some(b"v"),
        headers: &[],
    }));
    must(b.finish())
}

fn encode_request(request: &Request<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    request.encode(&mut out);
    out
}

fn encode_response(response: &Response<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    response.encode(&mut out);
    out
}

/// Splits a whole frame into its checked header and the rest.
fn split_frame(wire: &[u8]) -> Result<(FrameHeader, &[u8]), ProtocolError> {
    let header = decode_header(wire, MAX_FRAME_BODY_BYTES)?.ok_or(ProtocolError::Truncated {
        field: "frame header",
        needed: FRAME_HEADER_LEN,
        available: wire.len(),
    })?;
    Ok((header, wire.get(FRAME_HEADER_LEN..).unwrap_or_default()))
}

fn decode_request(wire: &[u8]) -> Result<Request<'_>, ProtocolError> {
    let (header, body) = split_frame(wire)?;
    Request::decode(header, body)
}

fn decode_response(wire: &[u8]) -> Result<Response<'_>, ProtocolError> {
    let (header, body) = split_frame(wire)?;
    Response::decode(header, body)
}

/// A frame of `kind` around `body`, with a correct length.
fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = FrameHeader::new(kind, must(u32::try_from(body.len())))
        .encode()
        .to_vec();
    out.extend_from_slice(body);
    out
}

/// One request of every kind, with every variant of every enum field
/// among them.
fn all_requests(batch: &[u8]) -> Vec<Request<'_>> {
    vec![
        Request::CreateTopic(CreateTopicRequest {
            name: "orders",
            partitions: 8,
            retention_ms: Some(86_400_000),
            retention_bytes: None,
            segment_bytes: Some(1 << 30),
            message_ttl_ms: Some(60_000),
            dedup_window_ms: None,
        }),
        Request::CreateTopic(CreateTopicRequest {
            name: "orders",
            partitions: 1,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: None,
            message_ttl_ms: None,
            dedup_window_ms: Some(120_000),
        }),
        Request::CreateTopic(CreateTopicRequest {
            name: "orders",
            partitions: 1,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: None,
            message_ttl_ms: Some(1),
            dedup_window_ms: Some(u64::MAX),
        }),
        Request::DeleteTopic { name: "old.topic" },
        Request::ListTopics,
        Request::DescribeTopic { name: "orders" },
        Request::Produce(ProduceRequest {
            topic: "orders",
            target: ProduceTarget::Partition(3),
            ack: AckLevel::Durable,
            batches: batch,
        }),
        Request::Produce(ProduceRequest {
            topic: "orders",
            target: ProduceTarget::Key(b"customer-7"),
            ack: AckLevel::None,
            batches: batch,
        }),
        Request::Produce(ProduceRequest {
            topic: "o",
            target: ProduceTarget::Key(b""),
            ack: AckLevel::Written,
            batches: batch,
        }),
        Request::Fetch(FetchRequest {
            topic: "orders",
            partition: 4095,
            offset: u64::MAX,
            max_bytes: 1,
            max_wait_ms: MAX_FETCH_WAIT_MS,
        }),
        Request::ListOffsets(ListOffsetsRequest {
            topic: "orders",
            partition: 0,
            spec: OffsetSpec::Earliest,
        }),
        Request::ListOffsets(ListOffsetsRequest {
            topic: "orders",
            partition: 1,
            spec: OffsetSpec::Latest,
        }),
        Request::ListOffsets(ListOffsetsRequest {
            topic: "orders",
            partition: 2,
            spec: OffsetSpec::Timestamp(-5),
        }),
        Request::Authenticate { token: "" },
        Request::Authenticate {
            token: "eyJhbGciOiJFZERTQSJ9.e30.c2ln",
        },
        Request::InitProducer { name: "" },
        Request::InitProducer {
            name: "orders-writer",
        },
        Request::GroupHeartbeat(GroupHeartbeatRequest {
            group: "billing",
            topic: "orders",
            member_id: "",
            owned: vec![],
            session_timeout_ms: 10_000,
            leave: false,
        }),
        Request::GroupHeartbeat(GroupHeartbeatRequest {
            group: "g",
            topic: "orders",
            member_id: "m-1",
            owned: vec![0, 3, 4095],
            session_timeout_ms: MAX_SESSION_TIMEOUT_MS,
            leave: true,
        }),
        Request::CommitOffsets(CommitOffsetsRequest {
            group: "billing",
            member_id: "m-1",
            topic: "orders",
            offsets: vec![
                OffsetCommit {
                    partition: 0,
                    offset: 10,
                    metadata: b"",
                },
                OffsetCommit {
                    partition: 7,
                    offset: u64::MAX,
                    metadata: b"host-a",
                },
            ],
        }),
        Request::FetchOffsets(FetchOffsetsRequest {
            group: "billing",
            topic: "orders",
            partitions: vec![],
        }),
        Request::FetchOffsets(FetchOffsetsRequest {
            group: "billing",
            topic: "orders",
            partitions: vec![2, 1],
        }),
        Request::DescribeGroup { group: "billing" },
        Request::ListGroups,
        Request::CreateSubscription(SubscriptionConfig::new("orders.audit", "orders")),
        Request::CreateSubscription(SubscriptionConfig {
            filter: "region = \"eu\" AND amount > 100",
            ack_deadline_ms: MAX_ACK_DEADLINE_MS,
            max_deliveries: 5,
            dead_letter_topic: "orders.dlq",
            ordering: true,
            priority: true,
            backoff_min_ms: 0,
            backoff_max_ms: 0,
            delivery_delay_ms: MAX_DELIVERY_DELAY_MS,
            dead_letter_expired: true,
            start: StartPosition::Timestamp(-1),
            ..SubscriptionConfig::new("s", "orders")
        }),
        Request::CreateSubscription(SubscriptionConfig {
            start: StartPosition::Offset(u64::MAX),
            ..SubscriptionConfig::new("s", "orders")
        }),
        Request::CreateSubscription(SubscriptionConfig {
            start: StartPosition::Earliest,
            ..SubscriptionConfig::new("s", "orders")
        }),
        Request::DeleteSubscription { name: "s" },
        Request::ListSubscriptions { topic: "" },
        Request::ListSubscriptions { topic: "orders" },
        Request::DescribeSubscription { name: "s" },
        Request::Pull(PullRequest {
            subscription: "s",
            max_messages: MAX_PULL_MESSAGES,
            max_bytes: 1,
            max_wait_ms: MAX_PULL_WAIT_MS,
        }),
        Request::Ack(AckRequest {
            subscription: "s",
            ack_ids: vec![[7; ACK_ID_BYTES], [0; ACK_ID_BYTES]],
        }),
        Request::ModifyDeadline {
            ack: AckRequest {
                subscription: "s",
                ack_ids: vec![[1; ACK_ID_BYTES]],
            },
            deadline_ms: 0,
        },
        Request::StreamingPull(StreamingPullRequest {
            subscription: "s",
            max_messages: MAX_PUSH_CREDIT_MESSAGES,
            max_bytes: 1,
        }),
        Request::PushCredit(PushCreditRequest {
            stream: (1 << 62) - 1,
            messages: 0,
            bytes: MAX_PUSH_CREDIT_BYTES,
        }),
    ]
}

/// One response of every kind, including failures.
fn all_responses(batch: &[u8]) -> Vec<Response<'_>> {
    vec![
        Response::CreateTopic,
        Response::DeleteTopic,
        Response::ListTopics(vec![]),
        Response::ListTopics(vec![
            TopicSummary {
                name: "a",
                partitions: 1,
            },
            TopicSummary {
                name: "orders",
                partitions: 4096,
            },
        ]),
        Response::DescribeTopic(TopicDescription {
            name: "orders",
            partitions: vec![
                PartitionInfo {
                    partition: 0,
                    earliest: 0,
                    latest: 10,
                    durable: 9,
                },
                PartitionInfo {
                    partition: 1,
                    earliest: 5,
                    latest: 5,
                    durable: 5,
                },
            ],
            settings: None,
        }),
        Response::DescribeTopic(TopicDescription {
            name: "pay",
            partitions: vec![],
            settings: Some(TopicOverrides {
                retention_ms: Some(1),
                dedup_window_ms: Some(120_000),
                ..TopicOverrides::default()
            }),
        }),
        Response::Produce(ProduceResponse {
            throttle_ms: 0,
            results: vec![Ok(0), Err(ErrorCode::CorruptBatch), Ok(u64::MAX)],
        }),
        Response::Produce(ProduceResponse {
            throttle_ms: 250,
            results: vec![],
        }),
        Response::Fetch(FetchResponse {
            partition: 7,
            high_watermark: 1234,
            batches: batch,
        }),
        Response::Fetch(FetchResponse {
            partition: 0,
            high_watermark: 0,
            batches: &[],
        }),
        Response::ListOffsets { offset: 99 },
        Response::Authenticate {
            principal: "svc-orders",
            expires_at_ms: None,
        },
        Response::Authenticate {
            principal: "alice@example.com",
            expires_at_ms: Some(1_800_000_000_000),
        },
        Response::InitProducer {
            producer_id: 0,
            epoch: 0,
        },
        Response::InitProducer {
            producer_id: i64::MAX,
            epoch: i16::MAX,
        },
        Response::GroupHeartbeat(GroupHeartbeatResponse {
            member_id: "m-1",
            generation: 3,
            assigned: vec![1, 2],
            heartbeat_interval_ms: 3_000,
        }),
        Response::CommitOffsets(vec![(0, ErrorCode::Ok), (1, ErrorCode::NotAssigned)]),
        Response::DescribeGroup(GroupDescription {
            topic: "",
            generation: 0,
            members: vec![],
        }),
        Response::DescribeGroup(GroupDescription {
            topic: "orders",
            generation: 7,
            members: vec![
                MemberInfo {
                    member_id: "0-1-2",
                    partitions: vec![0, 2],
                },
                MemberInfo {
                    member_id: "1-1-3",
                    partitions: vec![],
                },
            ],
        }),
        Response::ListGroups(vec![GroupSummary {
            group: "billing",
            topic: "orders",
            members: 2,
        }]),
        Response::FetchOffsets(vec![
            CommittedOffset {
                partition: 0,
                offset: Some(5),
                metadata: b"m",
            },
            CommittedOffset {
                partition: 1,
                offset: None,
                metadata: b"",
            },
        ]),
        Response::CreateSubscription,
        Response::DeleteSubscription,
        Response::ListSubscriptions(vec![]),
        Response::ListSubscriptions(vec![SubscriptionConfig::new("s", "orders")]),
        // The shortest encodings: one-byte names, no key, value or headers.
        Response::ListSubscriptions(vec![
            SubscriptionConfig::new("s", "t"),
            SubscriptionConfig::new("u", "v"),
        ]),
        Response::Pull(vec![PulledMessage {
            ack_id: [1; ACK_ID_BYTES],
            attempt: 1,
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            key: None,
            value: None,
            headers: vec![],
        }]),
        Response::DescribeSubscription(SubscriptionDescription {
            config: SubscriptionConfig::new("s", "orders"),
            partitions: vec![SubscriptionPartition {
                partition: 3,
                floor: 10,
                cursor: 20,
                latest: 30,
                outstanding: 4,
                unhandled: 5,
            }],
        }),
        Response::Pull(vec![]),
        Response::Pull(vec![
            PulledMessage {
                ack_id: [9; ACK_ID_BYTES],
                attempt: 2,
                partition: 1,
                offset: 77,
                timestamp_ms: -3,
                key: Some(b"k"),
                value: None,
                headers: vec![("region", b"eu"), ("", b"")],
            },
            PulledMessage {
                ack_id: [0; ACK_ID_BYTES],
                attempt: 1,
                partition: 4095,
                offset: 0,
                timestamp_ms: 0,
                key: None,
                value: Some(b""),
                headers: vec![],
            },
        ]),
        Response::Ack(vec![ErrorCode::Ok, ErrorCode::LeaseExpired]),
        Response::ModifyDeadline(vec![ErrorCode::Ok]),
        Response::StreamingPull(vec![PulledMessage {
            ack_id: [3; ACK_ID_BYTES],
            attempt: 1,
            partition: 0,
            offset: 9,
            timestamp_ms: 1,
            key: None,
            value: Some(b"v"),
            headers: vec![],
        }]),
        Response::PushCredit,
        Response::Error(ErrorResponse {
            request_kind: Kind::Produce.request_code(),
            code: ErrorCode::UnknownTopic,
            message: "no topic \"x\"",
        }),
        Response::Error(ErrorResponse {
            request_kind: 0x42,
            code: ErrorCode::UnsupportedKind,
            message: "",
        }),
        Response::Error(ErrorResponse {
            request_kind: 0,
            code: ErrorCode::Unknown(9999),
            message: "ünïcödé",
        }),
    ]
}
