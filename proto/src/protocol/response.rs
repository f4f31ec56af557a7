//! Responses: what the server answers, one per stream.

use super::frame::{
    begin_frame, end_frame, set_body_len, FrameHeader, Kind, FRAME_HEADER_LEN, RESPONSE_BIT,
};
use super::group::{
    read_commit_results, read_committed, read_group_list, write_commit_results, write_committed,
    write_group_list, CommittedOffset, GroupDescription, GroupHeartbeatResponse, GroupSummary,
};
use super::limits::check_partition;
use super::subscription::{
    read_ack_results, read_pulled, read_subscription_list, write_ack_results, write_pulled,
    write_subscription_list, PulledMessage, SubscriptionConfig, SubscriptionDescription,
};
use super::wire::{
    len_u32, put_bytes16, put_i64, put_message, put_opt_u64, put_u16, put_u32, put_u64,
    truncate_str, Reader,
};
use super::{
    check_frame, ErrorCode, ProtocolError, MAX_BATCHES_PER_PRODUCE, MAX_FRAME_BODY_BYTES,
    MAX_LISTED_TOPICS, MAX_PARTITIONS, MAX_PRINCIPAL_BYTES,
};
use crate::batch::BatchIter;

/// One entry of a ListTopics response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopicSummary<'a> {
    /// The topic.
    pub name: &'a str,
    /// Its partition count.
    pub partitions: u32,
}

/// The offsets of one partition, in a DescribeTopic response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartitionInfo {
    /// The partition number.
    pub partition: u32,
    /// The first offset still in the log.
    pub earliest: u64,
    /// The offset the next record will get (the high watermark).
    pub latest: u64,
    /// Every offset below this one is fdatasynced.
    pub durable: u64,
}

/// A DescribeTopic response.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicDescription<'a> {
    /// The topic.
    pub name: &'a str,
    /// Its partitions, at most [`MAX_PARTITIONS`].
    pub partitions: Vec<PartitionInfo>,
    /// Its own settings, as CreateTopic set them. At the end of the body;
    /// `None` when the server did not send them (an older server).
    pub settings: Option<TopicOverrides>,
}

/// A topic's own settings: each `None` takes the server's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TopicOverrides {
    /// Retention by age, ms.
    pub retention_ms: Option<u64>,
    /// Retention by size per partition, bytes.
    pub retention_bytes: Option<u64>,
    /// Segment size, bytes.
    pub segment_bytes: Option<u64>,
    /// Message TTL for subscriptions, ms.
    pub message_ttl_ms: Option<u64>,
    /// Message-id deduplication window, ms.
    pub dedup_window_ms: Option<u64>,
}

/// A Produce response.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProduceResponse {
    /// How long the client should hold back its next produce to this
    /// server (a flow-control hint; 0 for now).
    pub throttle_ms: u32,
    /// Per batch of the request, in order: its base offset, or why it was
    /// not appended. Empty for [`AckLevel::None`](super::AckLevel::None);
    /// at most [`MAX_BATCHES_PER_PRODUCE`]. An `Err` is never
    /// [`ErrorCode::Ok`] (encoded as [`ErrorCode::Internal`] if it is).
    pub results: Vec<Result<u64, ErrorCode>>,
}

/// A Fetch response; `batches` are the stored bytes, untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FetchResponse<'a> {
    /// The partition.
    pub partition: u32,
    /// The offset the next record will get, when the response was made.
    pub high_watermark: u64,
    /// Zero or more whole batches in the `batch` format, back to back,
    /// exactly as stored (base offsets set by the server).
    pub batches: &'a [u8],
}

/// A failed request: the answer to any kind of request that did not
/// succeed, including one whose kind or version the server does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorResponse<'a> {
    /// The kind byte of the request answered (response bit clear), or 0 if
    /// the server could not read it.
    pub request_kind: u8,
    /// Why; never [`ErrorCode::Ok`] (encoded as [`ErrorCode::Internal`]
    /// if it is).
    pub code: ErrorCode,
    /// For humans; at most [`MAX_MESSAGE_BYTES`](super::MAX_MESSAGE_BYTES)
    /// (the encoder cuts a longer one).
    pub message: &'a str,
}

/// A response, borrowing its strings and batches from the frame body.
///
/// On the wire every body starts with a status (an [`ErrorCode`] and a
/// message); only an `Ok` status is followed by the kind's fields, and a
/// failed request of any kind decodes as [`Response::Error`].
///
/// # Example
///
/// ```
/// use tidegate_proto::protocol::{decode_header, ErrorCode, ErrorResponse, Kind, Response, MAX_FRAME_BODY_BYTES};
///
/// let failed = Response::Error(ErrorResponse {
///     request_kind: Kind::Fetch.request_code(),
///     code: ErrorCode::UnknownTopic,
///     message: "no topic \"orders\"",
/// });
/// let mut wire = Vec::new();
/// failed.encode(&mut wire);
/// let header = decode_header(&wire, MAX_FRAME_BODY_BYTES)?.expect("a whole header");
/// assert_eq!(Response::decode(header, &wire[8..])?, failed);
/// # Ok::<(), tidegate_proto::protocol::ProtocolError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Response<'a> {
    /// The topic was created.
    CreateTopic,
    /// The topic was deleted.
    DeleteTopic,
    /// Every topic, at most [`MAX_LISTED_TOPICS`].
    ListTopics(Vec<TopicSummary<'a>>),
    /// The topic's partitions.
    DescribeTopic(TopicDescription<'a>),
    /// Per-batch results.
    Produce(ProduceResponse),
    /// Batches as stored.
    Fetch(FetchResponse<'a>),
    /// The offset asked for.
    ListOffsets {
        /// The offset.
        offset: u64,
    },
    /// The connection is authenticated as this principal.
    Authenticate {
        /// The principal the token names, at most [`MAX_PRINCIPAL_BYTES`].
        principal: &'a str,
        /// When the authentication lapses (ms since the Unix epoch; a
        /// JWT's `exp`), or `None` for a token that does not expire. After
        /// it, requests fail `not_authenticated` until the client
        /// authenticates again.
        expires_at_ms: Option<u64>,
    },
    /// The producer's identity, for the header of every batch it sends.
    InitProducer {
        /// The producer id, `0..=i64::MAX`.
        producer_id: i64,
        /// The epoch, `0..=i16::MAX`.
        epoch: i16,
    },
    /// The member's place in its group.
    GroupHeartbeat(GroupHeartbeatResponse<'a>),
    /// Per offset of the request: `(partition, Ok or why not)`.
    CommitOffsets(Vec<(u32, ErrorCode)>),
    /// The committed offsets asked for.
    FetchOffsets(Vec<CommittedOffset<'a>>),
    /// The group's members.
    DescribeGroup(GroupDescription<'a>),
    /// The groups that have members, at most [`MAX_LISTED_GROUPS`](super::MAX_LISTED_GROUPS).
    ListGroups(Vec<GroupSummary<'a>>),
    /// The subscription was created.
    CreateSubscription,
    /// The subscription was deleted.
    DeleteSubscription,
    /// Subscriptions, at most [`MAX_LISTED_SUBSCRIPTIONS`](super::MAX_LISTED_SUBSCRIPTIONS).
    ListSubscriptions(Vec<SubscriptionConfig<'a>>),
    /// A subscription and its partitions.
    DescribeSubscription(SubscriptionDescription<'a>),
    /// Leased messages (none when `max_wait_ms` passed without any).
    Pull(Vec<PulledMessage<'a>>),
    /// Per ack id of the request, in order: Ok, or why not
    /// (`lease_expired`, `invalid_request` for an id the server never gave).
    Ack(Vec<ErrorCode>),
    /// Per ack id, as for Ack.
    ModifyDeadline(Vec<ErrorCode>),
    /// One frame of a push stream: leased messages, never none.
    StreamingPull(Vec<PulledMessage<'a>>),
    /// The credits were added.
    PushCredit,
    /// The request failed.
    Error(ErrorResponse<'a>),
}

impl<'a> Response<'a> {
    /// The frame's kind byte: the request's kind with [`RESPONSE_BIT`] set.
    pub fn kind_code(&self) -> u8 {
        let kind = match self {
            Self::CreateTopic => Kind::CreateTopic,
            Self::DeleteTopic => Kind::DeleteTopic,
            Self::ListTopics(_) => Kind::ListTopics,
            Self::DescribeTopic(_) => Kind::DescribeTopic,
            Self::Produce(_) => Kind::Produce,
            Self::Fetch(_) => Kind::Fetch,
            Self::ListOffsets { .. } => Kind::ListOffsets,
            Self::Authenticate { .. } => Kind::Authenticate,
            Self::InitProducer { .. } => Kind::InitProducer,
            Self::GroupHeartbeat(_) => Kind::GroupHeartbeat,
            Self::CommitOffsets(_) => Kind::CommitOffsets,
            Self::FetchOffsets(_) => Kind::FetchOffsets,
            Self::DescribeGroup(_) => Kind::DescribeGroup,
            Self::ListGroups(_) => Kind::ListGroups,
            Self::CreateSubscription => Kind::CreateSubscription,
            Self::DeleteSubscription => Kind::DeleteSubscription,
            Self::ListSubscriptions(_) => Kind::ListSubscriptions,
            Self::DescribeSubscription(_) => Kind::DescribeSubscription,
            Self::Pull(_) => Kind::Pull,
            Self::Ack(_) => Kind::Ack,
            Self::ModifyDeadline(_) => Kind::ModifyDeadline,
            Self::StreamingPull(_) => Kind::StreamingPull,
            Self::PushCredit => Kind::PushCredit,
            Self::Error(e) => return e.request_kind | RESPONSE_BIT,
        };
        kind.response_code()
    }

    /// Appends the frame (header and body) to `out`.
    ///
    /// # Panics
    ///
    /// If the body would be 4 GiB or more (a server bug; the limit is
    /// [`MAX_FRAME_BODY_BYTES`]).
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Self::Fetch(fetch) = self {
            return fetch.encode(out);
        }
        let start = begin_frame(out, self.kind_code());
        match self {
            Self::Error(e) => {
                put_u16(out, error_slot(e.code).as_u16());
                put_message(out, e.message);
            }
            ok => {
                put_ok_status(out);
                ok.write_payload(out);
            }
        }
        end_frame(out, start);
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        match self {
            Self::CreateTopic
            | Self::DeleteTopic
            | Self::CreateSubscription
            | Self::DeleteSubscription
            | Self::PushCredit
            | Self::Fetch(_)
            | Self::Error(_) => {}
            Self::ListTopics(topics) => {
                put_u32(out, len_u32(topics.len()));
                for topic in topics {
                    put_bytes16(out, topic.name.as_bytes());
                    put_u32(out, topic.partitions);
                }
            }
            Self::DescribeTopic(description) => description.write(out),
            Self::Produce(produce) => produce.write(out),
            Self::ListOffsets { offset } => put_u64(out, *offset),
            Self::Authenticate {
                principal,
                expires_at_ms,
            } => {
                put_bytes16(out, truncate_str(principal, MAX_PRINCIPAL_BYTES).as_bytes());
                put_opt_u64(out, *expires_at_ms);
            }
            Self::InitProducer { producer_id, epoch } => {
                put_i64(out, *producer_id);
                put_u16(out, u16::from_le_bytes(epoch.to_le_bytes()));
            }
            Self::GroupHeartbeat(h) => h.write(out),
            Self::CommitOffsets(results) => write_commit_results(out, results),
            Self::FetchOffsets(offsets) => write_committed(out, offsets),
            Self::DescribeGroup(d) => d.write(out),
            Self::ListGroups(groups) => write_group_list(out, groups),
            Self::ListSubscriptions(subs) => write_subscription_list(out, subs),
            Self::DescribeSubscription(d) => d.write(out),
            Self::Pull(messages) | Self::StreamingPull(messages) => write_pulled(out, messages),
            Self::Ack(results) | Self::ModifyDeadline(results) => write_ack_results(out, results),
        }
    }

    /// Decodes a response from its header and body.
    ///
    /// A non-`Ok` status decodes as [`Response::Error`] whatever the kind,
    /// so a client can read the server's answer to a kind it does not
    /// know; an `Ok` status needs a known kind and its fields.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::UnsupportedVersion`], [`ProtocolError::LengthMismatch`],
    /// [`ProtocolError::UnsupportedKind`] (a request kind, or an `Ok` status
    /// for an unknown kind), and any error of a field.
    pub fn decode(header: FrameHeader, body: &'a [u8]) -> Result<Self, ProtocolError> {
        check_frame(header, body)?;
        if !header.is_response() {
            return Err(ProtocolError::UnsupportedKind { kind: header.kind });
        }
        let mut r = Reader::new(body);
        let code = ErrorCode::from_u16(r.u16("error code")?);
        let message = r.message()?;
        if !code.is_ok() {
            r.finish()?;
            return Ok(Self::Error(ErrorResponse {
                request_kind: header.kind & !RESPONSE_BIT,
                code,
                message,
            }));
        }
        if !message.is_empty() {
            return Err(ProtocolError::InvalidValue {
                field: "message",
                reason: "must be empty when the status is ok",
            });
        }
        let kind = Kind::from_request_code(header.kind & !RESPONSE_BIT)
            .ok_or(ProtocolError::UnsupportedKind { kind: header.kind })?;
        let response = Self::read_payload(kind, &mut r)?;
        r.finish()?;
        Ok(response)
    }

    fn read_payload(kind: Kind, r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        Ok(match kind {
            Kind::CreateTopic => Self::CreateTopic,
            Kind::DeleteTopic => Self::DeleteTopic,
            Kind::ListTopics => Self::ListTopics(read_topic_list(r)?),
            Kind::DescribeTopic => Self::DescribeTopic(TopicDescription::read(r)?),
            Kind::Produce => Self::Produce(ProduceResponse::read(r)?),
            Kind::Fetch => Self::Fetch(FetchResponse::read(r)?),
            Kind::ListOffsets => Self::ListOffsets {
                offset: r.u64("offset")?,
            },
            Kind::Authenticate => Self::Authenticate {
                principal: r.str16("principal", MAX_PRINCIPAL_BYTES)?,
                expires_at_ms: r.opt_u64("expires_at_ms")?,
            },
            Kind::InitProducer => {
                let producer_id = r.i64("producer_id")?;
                let epoch = i16::from_le_bytes(r.u16("epoch")?.to_le_bytes());
                if producer_id < 0 || epoch < 0 {
                    return Err(ProtocolError::InvalidValue {
                        field: "producer_id",
                        reason: "producer id and epoch must not be negative",
                    });
                }
                Self::InitProducer { producer_id, epoch }
            }
            Kind::GroupHeartbeat => Self::GroupHeartbeat(GroupHeartbeatResponse::read(r)?),
            Kind::CommitOffsets => Self::CommitOffsets(read_commit_results(r)?),
            Kind::FetchOffsets => Self::FetchOffsets(read_committed(r)?),
            Kind::DescribeGroup => Self::DescribeGroup(GroupDescription::read(r)?),
            Kind::ListGroups => Self::ListGroups(read_group_list(r)?),
            Kind::CreateSubscription => Self::CreateSubscription,
            Kind::DeleteSubscription => Self::DeleteSubscription,
            Kind::ListSubscriptions => Self::ListSubscriptions(read_subscription_list(r)?),
            Kind::DescribeSubscription => {
                Self::DescribeSubscription(SubscriptionDescription::read(r)?)
            }
            Kind::Pull => Self::Pull(read_pulled(r)?),
            Kind::Ack => Self::Ack(read_ack_results(r)?),
            Kind::ModifyDeadline => Self::ModifyDeadline(read_ack_results(r)?),
            Kind::StreamingPull => Self::StreamingPull(read_pulled(r)?),
            Kind::PushCredit => Self::PushCredit,
        })
    }
}

/// The `Ok` status: code 0, empty message.
fn put_ok_status(out: &mut Vec<u8>) {
    put_u16(out, ErrorCode::Ok.as_u16());
    put_u16(out, 0);
}

/// A code in a slot that means failure: `Ok` there is a caller bug, sent
/// as `Internal` so the peer still sees a failure rather than a frame it
/// cannot parse.
fn error_slot(code: ErrorCode) -> ErrorCode {
    if code.is_ok() {
        ErrorCode::Internal
    } else {
        code
    }
}

/// Smallest ListTopics entry: a 1-byte name with its length, partitions.
const MIN_TOPIC_ENTRY_BYTES: usize = 2 + 1 + 4;
/// A DescribeTopic entry: partition, earliest, latest, durable.
const PARTITION_ENTRY_BYTES: usize = 4 + 8 + 8 + 8;
/// A Produce result: code, base offset.
const RESULT_ENTRY_BYTES: usize = 2 + 8;

fn read_topic_list<'a>(r: &mut Reader<'a>) -> Result<Vec<TopicSummary<'a>>, ProtocolError> {
    let count = r.count("topic count", MAX_LISTED_TOPICS, MIN_TOPIC_ENTRY_BYTES)?;
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        topics.push(TopicSummary {
            name: r.topic("topic name")?,
            partitions: r.u32("partitions")?,
        });
    }
    Ok(topics)
}

impl<'a> TopicDescription<'a> {
    fn write(&self, out: &mut Vec<u8>) {
        put_bytes16(out, self.name.as_bytes());
        put_u32(out, len_u32(self.partitions.len()));
        for p in &self.partitions {
            put_u32(out, p.partition);
            put_u64(out, p.earliest);
            put_u64(out, p.latest);
            put_u64(out, p.durable);
        }
        if let Some(s) = &self.settings {
            put_opt_u64(out, s.retention_ms);
            put_opt_u64(out, s.retention_bytes);
            put_opt_u64(out, s.segment_bytes);
            put_opt_u64(out, s.message_ttl_ms);
            put_opt_u64(out, s.dedup_window_ms);
        }
    }

    fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let name = r.topic("topic name")?;
        let count = r.count("partition count", MAX_PARTITIONS, PARTITION_ENTRY_BYTES)?;
        let mut partitions = Vec::with_capacity(count);
        for _ in 0..count {
            let partition = r.u32("partition")?;
            check_partition(partition)?;
            partitions.push(PartitionInfo {
                partition,
                earliest: r.u64("earliest")?,
                latest: r.u64("latest")?,
                durable: r.u64("durable")?,
            });
        }
        // Five option tags at least; fewer bytes are trailing bytes.
        let settings = if r.remaining() < 5 {
            None
        } else {
            Some(TopicOverrides {
                retention_ms: r.opt_u64("retention_ms")?,
                retention_bytes: r.opt_u64("retention_bytes")?,
                segment_bytes: r.opt_u64("segment_bytes")?,
                message_ttl_ms: r.opt_u64("message_ttl_ms")?,
                dedup_window_ms: r.opt_u64("dedup_window_ms")?,
            })
        };
        Ok(Self {
            name,
            partitions,
            settings,
        })
    }
}

impl ProduceResponse {
    fn write(&self, out: &mut Vec<u8>) {
        put_u32(out, self.throttle_ms);
        put_u32(out, len_u32(self.results.len()));
        for result in &self.results {
            match result {
                Ok(base_offset) => {
                    put_u16(out, ErrorCode::Ok.as_u16());
                    put_u64(out, *base_offset);
                }
                Err(code) => {
                    put_u16(out, error_slot(*code).as_u16());
                    put_u64(out, 0);
                }
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        let throttle_ms = r.u32("throttle_ms")?;
        let count = r.count("result count", MAX_BATCHES_PER_PRODUCE, RESULT_ENTRY_BYTES)?;
        let mut results = Vec::with_capacity(count);
        for _ in 0..count {
            let code = ErrorCode::from_u16(r.u16("result code")?);
            let base_offset = r.u64("base offset")?;
            results.push(if code.is_ok() {
                Ok(base_offset)
            } else if base_offset == 0 {
                Err(code)
            } else {
                return Err(ProtocolError::InvalidValue {
                    field: "base offset",
                    reason: "must be 0 for a failed batch",
                });
            });
        }
        Ok(Self {
            throttle_ms,
            results,
        })
    }
}

impl<'a> FetchResponse<'a> {
    /// Bytes [`encode_prefix`](Self::encode_prefix) writes: frame header,
    /// `Ok` status, partition, high watermark, batches length.
    pub const PREFIX_LEN: usize = FRAME_HEADER_LEN + 4 + 4 + 8 + 4;

    /// Appends the frame header and every field up to and including the
    /// batches' length, for a response whose `batches_len` bytes of stored
    /// batches the server sends next, straight from its buffers;
    /// `self.batches` is ignored. `encode_prefix` then the batches is byte
    /// for byte [`Response::encode`]. Always [`PREFIX_LEN`](Self::PREFIX_LEN)
    /// bytes.
    ///
    /// # Panics
    ///
    /// If the body would be 4 GiB or more.
    ///
    /// # Example
    ///
    /// ```
    /// use tidegate_proto::protocol::{FetchResponse, Response};
    ///
    /// let stored: &[u8] = b"...batches as stored...";
    /// let head = FetchResponse { partition: 0, high_watermark: 42, batches: &[] };
    /// let mut prefix = Vec::new();
    /// head.encode_prefix(stored.len(), &mut prefix); // send `prefix`, then `stored`
    /// assert_eq!(prefix.len(), FetchResponse::PREFIX_LEN);
    ///
    /// let mut whole = Vec::new();
    /// Response::Fetch(FetchResponse { batches: stored, ..head }).encode(&mut whole);
    /// assert_eq!(whole, [prefix.as_slice(), stored].concat());
    /// ```
    pub fn encode_prefix(&self, batches_len: usize, out: &mut Vec<u8>) {
        let start = begin_frame(out, Kind::Fetch.response_code());
        put_ok_status(out);
        put_u32(out, self.partition);
        put_u64(out, self.high_watermark);
        put_u32(out, len_u32(batches_len));
        let fields_len = out.len() - start - FRAME_HEADER_LEN;
        set_body_len(out, start, fields_len.saturating_add(batches_len));
    }

    /// Iterates the batches, validating each one.
    pub fn batches(&self) -> BatchIter<'a> {
        BatchIter::new(self.batches)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_prefix(self.batches.len(), out);
        out.extend_from_slice(self.batches);
    }

    fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let partition = r.u32("partition")?;
        check_partition(partition)?;
        Ok(Self {
            partition,
            high_watermark: r.u64("high_watermark")?,
            batches: r.bytes32("batches", MAX_FRAME_BODY_BYTES)?,
        })
    }
}
