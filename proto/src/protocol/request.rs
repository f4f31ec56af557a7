//! Requests: what a client sends, one per stream.

use super::frame::{begin_frame, end_frame, set_body_len, FrameHeader, Kind, FRAME_HEADER_LEN};
use super::group::{
    validate_group_name, CommitOffsetsRequest, FetchOffsetsRequest, GroupHeartbeatRequest,
    MAX_GROUP_NAME_BYTES,
};
use super::limits::{check_partition, check_partition_count, check_range, validate_topic_name};
use super::push::{PushCreditRequest, StreamingPullRequest};
use super::subscription::{
    validate_subscription_name, AckRequest, PullRequest, SubscriptionConfig, MAX_ACK_DEADLINE_MS,
};
use super::wire::{len_u32, put_bytes16, put_i64, put_opt_u64, put_u32, put_u64, put_u8, Reader};
use super::{
    check_frame, ProtocolError, MAX_FETCH_BYTES, MAX_FETCH_WAIT_MS, MAX_FRAME_BODY_BYTES,
    MAX_PRODUCER_NAME_BYTES, MAX_ROUTING_KEY_BYTES, MAX_TOKEN_BYTES,
};
use crate::batch::BatchIter;

/// How far a Produce must get before the server answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AckLevel {
    /// Answer once the request is read and checked, before the append
    /// (at-most-once). The answer carries no results; the client need not
    /// wait for it.
    None = 0,
    /// Answer once the batches are written to the log (page cache or
    /// device queue), before fdatasync.
    Written = 1,
    /// Answer once the batches are fdatasynced: they survive a crash.
    Durable = 2,
}

impl AckLevel {
    /// The level for a wire tag, if any.
    pub const fn from_u8(tag: u8) -> Option<Self> {
        match tag {
            0 => Some(Self::None),
            1 => Some(Self::Written),
            2 => Some(Self::Durable),
            _ => None,
        }
    }
}

/// Which partition of the topic a Produce goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProduceTarget<'a> {
    /// This partition, in `0..MAX_PARTITIONS`.
    Partition(u32),
    /// The partition the server's key hash picks for this key (at most
    /// [`MAX_ROUTING_KEY_BYTES`]), so every producer of a key agrees.
    Key(&'a [u8]),
}

/// Which offset a ListOffsets asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OffsetSpec {
    /// The first offset still in the log.
    Earliest,
    /// The offset the next record will get (the high watermark).
    Latest,
    /// The first offset whose record timestamp is at or after this one (ms
    /// since the Unix epoch).
    Timestamp(i64),
}

/// CreateTopic: a topic with its settings; `None` settings take the
/// server's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CreateTopicRequest<'a> {
    /// The topic name ([`validate_topic_name`]).
    pub name: &'a str,
    /// Number of partitions, `1..=MAX_PARTITIONS`.
    pub partitions: u32,
    /// Keep records at least this long.
    pub retention_ms: Option<u64>,
    /// Keep at most about this many bytes per partition.
    pub retention_bytes: Option<u64>,
    /// Roll segment files at this size.
    pub segment_bytes: Option<u64>,
    /// Subscriptions do not deliver a message older than this, by its
    /// timestamp. At the end of the body, present only when set: a request
    /// without it (from an older client too) has none.
    pub message_ttl_ms: Option<u64>,
    /// Message-id deduplication window: a message whose `tg-msg-id` the
    /// partition saw this recently is stored as a duplicate marker. After
    /// `message_ttl_ms`, present only when set; `message_ttl_ms` is then
    /// written as 0 when it is not set.
    pub dedup_window_ms: Option<u64>,
}

/// Produce: one or more batches appended, in order, to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProduceRequest<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition, or a key that picks it.
    pub target: ProduceTarget<'a>,
    /// When the server answers.
    pub ack: AckLevel,
    /// One or more batches in the `batch` format, back to back, exactly as
    /// the producer built them. The codec only frames this field (it must
    /// not be empty); the server validates each batch.
    pub batches: &'a [u8],
}

/// Fetch: batches of a partition from an offset, exactly as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FetchRequest<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition, `0..MAX_PARTITIONS`.
    pub partition: u32,
    /// The first offset wanted.
    pub offset: u64,
    /// Soft limit on the batch bytes returned, `1..=MAX_FETCH_BYTES`; the
    /// first batch is returned whole even when larger.
    pub max_bytes: u32,
    /// How long the server may wait for data at `offset`, up to
    /// [`MAX_FETCH_WAIT_MS`]; 0 answers at once.
    pub max_wait_ms: u32,
}

/// ListOffsets: an offset of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListOffsetsRequest<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition, `0..MAX_PARTITIONS`.
    pub partition: u32,
    /// Which offset.
    pub spec: OffsetSpec,
}

/// A request, borrowing its strings, keys and batches from the frame body.
///
/// # Example
///
/// ```
/// use tidegate_proto::protocol::{decode_header, Request, MAX_FRAME_BODY_BYTES};
///
/// let request = Request::Fetch(tidegate_proto::protocol::FetchRequest {
///     topic: "orders",
///     partition: 3,
///     offset: 1000,
///     max_bytes: 1 << 20,
///     max_wait_ms: 500,
/// });
/// let mut wire = Vec::new();
/// request.encode(&mut wire);
///
/// let header = decode_header(&wire, MAX_FRAME_BODY_BYTES)?.expect("a whole header");
/// let decoded = Request::decode(header, &wire[8..])?;
/// assert_eq!(decoded, request);
/// # Ok::<(), tidegate_proto::protocol::ProtocolError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Request<'a> {
    /// Create a topic.
    CreateTopic(CreateTopicRequest<'a>),
    /// Delete a topic and its data.
    DeleteTopic {
        /// The topic.
        name: &'a str,
    },
    /// List every topic with its partition count.
    ListTopics,
    /// A topic's partitions and their offsets.
    DescribeTopic {
        /// The topic.
        name: &'a str,
    },
    /// Append batches.
    Produce(ProduceRequest<'a>),
    /// Read batches.
    Fetch(FetchRequest<'a>),
    /// Look up an offset.
    ListOffsets(ListOffsetsRequest<'a>),
    /// Present a bearer token (a static token or a JWT) for the
    /// connection: the first request of a connection when the server
    /// requires tokens, and again with a fresh token before the last one
    /// expires.
    Authenticate {
        /// The token, at most [`MAX_TOKEN_BYTES`] of UTF-8.
        token: &'a str,
    },
    /// Get an idempotent producer identity: a fresh id with epoch 0, or,
    /// for a named producer, the name's id with its epoch raised by one
    /// (which fences every older instance of the name).
    InitProducer {
        /// The producer's name, at most [`MAX_PRODUCER_NAME_BYTES`] of
        /// UTF-8; empty for an unnamed producer.
        name: &'a str,
    },
    /// Join, stay in or leave a consumer group.
    GroupHeartbeat(GroupHeartbeatRequest<'a>),
    /// Commit a group's offsets.
    CommitOffsets(CommitOffsetsRequest<'a>),
    /// Read a group's committed offsets.
    FetchOffsets(FetchOffsetsRequest<'a>),
    /// A group's members and what they hold.
    DescribeGroup {
        /// The group.
        group: &'a str,
    },
    /// The groups that have members.
    ListGroups,
    /// Create a subscription.
    CreateSubscription(SubscriptionConfig<'a>),
    /// Delete a subscription and its acknowledgement state.
    DeleteSubscription {
        /// The subscription.
        name: &'a str,
    },
    /// Subscriptions, of one topic or (an empty topic) of all.
    ListSubscriptions {
        /// The topic; empty for every topic.
        topic: &'a str,
    },
    /// A subscription's definition and its partitions' windows.
    DescribeSubscription {
        /// The subscription.
        name: &'a str,
    },
    /// Leased messages.
    Pull(PullRequest<'a>),
    /// Acknowledge deliveries: they are never delivered again.
    Ack(AckRequest<'a>),
    /// Set the deliveries' deadlines to now + `deadline_ms` (at most
    /// `MAX_ACK_DEADLINE_MS`); 0 ends the leases now (a nack: they are
    /// delivered again after the subscription's backoff).
    ModifyDeadline {
        /// The deliveries.
        ack: AckRequest<'a>,
        /// The new lease from now.
        deadline_ms: u32,
    },
    /// Open a push stream of leased messages (answered frame by frame).
    StreamingPull(StreamingPullRequest<'a>),
    /// More credits for a push stream of this connection.
    PushCredit(PushCreditRequest),
}

impl<'a> Request<'a> {
    /// The request's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Self::CreateTopic(_) => Kind::CreateTopic,
            Self::DeleteTopic { .. } => Kind::DeleteTopic,
            Self::ListTopics => Kind::ListTopics,
            Self::DescribeTopic { .. } => Kind::DescribeTopic,
            Self::Produce(_) => Kind::Produce,
            Self::Fetch(_) => Kind::Fetch,
            Self::ListOffsets(_) => Kind::ListOffsets,
            Self::Authenticate { .. } => Kind::Authenticate,
            Self::InitProducer { .. } => Kind::InitProducer,
            Self::GroupHeartbeat(_) => Kind::GroupHeartbeat,
            Self::CommitOffsets(_) => Kind::CommitOffsets,
            Self::FetchOffsets(_) => Kind::FetchOffsets,
            Self::DescribeGroup { .. } => Kind::DescribeGroup,
            Self::ListGroups => Kind::ListGroups,
            Self::CreateSubscription(_) => Kind::CreateSubscription,
            Self::DeleteSubscription { .. } => Kind::DeleteSubscription,
            Self::ListSubscriptions { .. } => Kind::ListSubscriptions,
            Self::DescribeSubscription { .. } => Kind::DescribeSubscription,
            Self::Pull(_) => Kind::Pull,
            Self::Ack(_) => Kind::Ack,
            Self::ModifyDeadline { .. } => Kind::ModifyDeadline,
            Self::StreamingPull(_) => Kind::StreamingPull,
            Self::PushCredit(_) => Kind::PushCredit,
        }
    }

    /// Appends the frame (header and body) to `out`.
    ///
    /// Values are written as given, so a server answers a value that
    /// breaks a rule with a typed error; call [`validate`](Self::validate)
    /// first to catch it locally. A string or key longer than its `u16`
    /// length field is cut to fit, which keeps the framing sound.
    ///
    /// # Panics
    ///
    /// If the body would be 4 GiB or more (a caller bug; no receiver
    /// accepts more than [`MAX_FRAME_BODY_BYTES`]).
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Self::Produce(produce) = self {
            return produce.encode(out);
        }
        let start = begin_frame(out, self.kind().request_code());
        match self {
            Self::CreateTopic(create) => create.write(out),
            Self::DeleteTopic { name } | Self::DescribeTopic { name } => {
                put_bytes16(out, name.as_bytes());
            }
            Self::ListTopics | Self::Produce(_) => {}
            Self::Fetch(fetch) => fetch.write(out),
            Self::ListOffsets(list) => list.write(out),
            Self::Authenticate { token } => put_bytes16(out, token.as_bytes()),
            Self::InitProducer { name } => put_bytes16(out, name.as_bytes()),
            Self::GroupHeartbeat(h) => h.write(out),
            Self::CommitOffsets(c) => c.write(out),
            Self::FetchOffsets(f) => f.write(out),
            Self::DescribeGroup { group } => put_bytes16(out, group.as_bytes()),
            Self::ListGroups => {}
            Self::CreateSubscription(c) => c.write(out),
            Self::DeleteSubscription { name } | Self::DescribeSubscription { name } => {
                put_bytes16(out, name.as_bytes());
            }
            Self::ListSubscriptions { topic } => put_bytes16(out, topic.as_bytes()),
            Self::Pull(p) => p.write(out),
            Self::Ack(a) => a.write(out),
            Self::ModifyDeadline { ack, deadline_ms } => {
                ack.write(out);
                put_u32(out, *deadline_ms);
            }
            Self::StreamingPull(p) => p.write(out),
            Self::PushCredit(c) => c.write(out),
        }
        end_frame(out, start);
    }

    /// Decodes a request from its header and body; strings, keys and
    /// batches borrow from `body`.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::UnsupportedVersion`], [`ProtocolError::LengthMismatch`]
    /// (`body` is not `header.body_len` long),
    /// [`ProtocolError::UnsupportedKind`] (not a request kind), and any
    /// error of a field; every rule of [`validate`](Self::validate) is
    /// checked.
    pub fn decode(header: FrameHeader, body: &'a [u8]) -> Result<Self, ProtocolError> {
        check_frame(header, body)?;
        let kind = Kind::from_request_code(header.kind)
            .ok_or(ProtocolError::UnsupportedKind { kind: header.kind })?;
        let mut r = Reader::new(body);
        let request = match kind {
            Kind::CreateTopic => Self::CreateTopic(CreateTopicRequest::read(&mut r)?),
            Kind::DeleteTopic => Self::DeleteTopic {
                name: r.topic("topic name")?,
            },
            Kind::ListTopics => Self::ListTopics,
            Kind::DescribeTopic => Self::DescribeTopic {
                name: r.topic("topic name")?,
            },
            Kind::Produce => Self::Produce(ProduceRequest::read(&mut r)?),
            Kind::Fetch => Self::Fetch(FetchRequest::read(&mut r)?),
            Kind::ListOffsets => Self::ListOffsets(ListOffsetsRequest::read(&mut r)?),
            Kind::Authenticate => Self::Authenticate {
                token: r.str16("token", MAX_TOKEN_BYTES)?,
            },
            Kind::InitProducer => Self::InitProducer {
                name: r.str16("producer name", MAX_PRODUCER_NAME_BYTES)?,
            },
            Kind::GroupHeartbeat => Self::GroupHeartbeat(GroupHeartbeatRequest::read(&mut r)?),
            Kind::CommitOffsets => Self::CommitOffsets(CommitOffsetsRequest::read(&mut r)?),
            Kind::FetchOffsets => Self::FetchOffsets(FetchOffsetsRequest::read(&mut r)?),
            Kind::DescribeGroup => {
                let group = r.str16("group name", MAX_GROUP_NAME_BYTES)?;
                validate_group_name(group)?;
                Self::DescribeGroup { group }
            }
            Kind::ListGroups => Self::ListGroups,
            Kind::CreateSubscription => Self::CreateSubscription(SubscriptionConfig::read(&mut r)?),
            Kind::DeleteSubscription => Self::DeleteSubscription {
                name: r.topic("subscription name")?,
            },
            Kind::ListSubscriptions => {
                let topic = r.str16("topic name", super::limits::MAX_TOPIC_NAME_BYTES)?;
                if !topic.is_empty() {
                    validate_topic_name(topic)?;
                }
                Self::ListSubscriptions { topic }
            }
            Kind::DescribeSubscription => Self::DescribeSubscription {
                name: r.topic("subscription name")?,
            },
            Kind::Pull => Self::Pull(PullRequest::read(&mut r)?),
            Kind::Ack => Self::Ack(AckRequest::read(&mut r)?),
            Kind::ModifyDeadline => {
                let ack = AckRequest::read(&mut r)?;
                let deadline_ms = r.u32("deadline_ms")?;
                check_range(
                    "deadline_ms",
                    deadline_ms.into(),
                    0,
                    MAX_ACK_DEADLINE_MS.into(),
                )?;
                Self::ModifyDeadline { ack, deadline_ms }
            }
            Kind::StreamingPull => Self::StreamingPull(StreamingPullRequest::read(&mut r)?),
            Kind::PushCredit => Self::PushCredit(PushCreditRequest::read(&mut r)?),
        };
        r.finish()?;
        Ok(request)
    }

    /// Checks every rule the decoder checks on the fields (topic names,
    /// partition numbers and counts, key length, fetch bounds, non-empty
    /// batches), so a client can fail before sending. The frame size is
    /// the receiver's limit and is not checked here.
    ///
    /// # Errors
    ///
    /// The first rule that fails, as the decoder would report it.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        match self {
            Self::CreateTopic(create) => create.validate(),
            Self::DeleteTopic { name } | Self::DescribeTopic { name } => validate_topic_name(name),
            Self::ListTopics => Ok(()),
            Self::Produce(produce) => produce.validate(),
            Self::Fetch(fetch) => fetch.validate(),
            Self::ListOffsets(list) => list.validate(),
            Self::Authenticate { token } => {
                check_range("token", token.len() as u64, 0, MAX_TOKEN_BYTES as u64)
            }
            Self::InitProducer { name } => check_range(
                "producer name",
                name.len() as u64,
                0,
                MAX_PRODUCER_NAME_BYTES as u64,
            ),
            Self::GroupHeartbeat(h) => h.validate(),
            Self::CommitOffsets(c) => c.validate(),
            Self::FetchOffsets(f) => f.validate(),
            Self::DescribeGroup { group } => validate_group_name(group),
            Self::ListGroups => Ok(()),
            Self::CreateSubscription(c) => c.validate(),
            Self::DeleteSubscription { name } | Self::DescribeSubscription { name } => {
                validate_subscription_name(name)
            }
            Self::ListSubscriptions { topic: "" } => Ok(()),
            Self::ListSubscriptions { topic } => validate_topic_name(topic),
            Self::Pull(p) => p.validate(),
            Self::Ack(a) => a.validate(),
            Self::ModifyDeadline { ack, deadline_ms } => {
                ack.validate()?;
                check_range(
                    "deadline_ms",
                    (*deadline_ms).into(),
                    0,
                    MAX_ACK_DEADLINE_MS.into(),
                )
            }
            Self::StreamingPull(p) => p.validate(),
            Self::PushCredit(c) => c.validate(),
        }
    }
}

impl<'a> CreateTopicRequest<'a> {
    fn write(&self, out: &mut Vec<u8>) {
        put_bytes16(out, self.name.as_bytes());
        put_u32(out, self.partitions);
        put_opt_u64(out, self.retention_ms);
        put_opt_u64(out, self.retention_bytes);
        put_opt_u64(out, self.segment_bytes);
        // Present only when set, so a body without them (an older
        // client's) is the same request; a TTL of 0 stands for none when
        // a dedup window follows (0 is no valid TTL).
        match (self.message_ttl_ms, self.dedup_window_ms) {
            (None, None) => {}
            (Some(ttl), None) => put_u64(out, ttl),
            (ttl, Some(window)) => {
                put_u64(out, ttl.unwrap_or(0));
                put_u64(out, window);
            }
        }
    }

    fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let name = r.topic("topic name")?;
        let partitions = r.u32("partitions")?;
        check_partition_count(partitions)?;
        Ok(Self {
            name,
            partitions,
            retention_ms: r.opt_u64("retention_ms")?,
            retention_bytes: r.opt_u64("retention_bytes")?,
            segment_bytes: r.opt_u64("segment_bytes")?,
            message_ttl_ms: None,
            dedup_window_ms: None,
        })
        .and_then(|mut request| {
            if r.remaining() > 0 {
                request.message_ttl_ms = Some(r.u64("message_ttl_ms")?);
            }
            // Fewer than 8 bytes left are trailing bytes (`finish`).
            if r.remaining() >= 8 {
                request.dedup_window_ms = Some(r.u64("dedup_window_ms")?);
                request.message_ttl_ms = request.message_ttl_ms.filter(|ttl| *ttl != 0);
            }
            Ok(request)
        })
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        validate_topic_name(self.name)?;
        check_partition_count(self.partitions)
    }
}

impl<'a> ProduceRequest<'a> {
    /// Iterates the batches, validating each one (header, CRC, records),
    /// as the server does before appending.
    ///
    /// # Example
    ///
    /// ```
    /// use tidegate_proto::batch::{BatchBuilder, Record};
    /// use tidegate_proto::protocol::{AckLevel, ProduceRequest, ProduceTarget};
    ///
    /// let mut b = BatchBuilder::new();
    /// b.push(Record { timestamp_ms: 1, key: None, value: Some(b"v"), headers: &[] })?;
    /// let batch = b.finish()?;
    /// let produce = ProduceRequest {
    ///     topic: "t",
    ///     target: ProduceTarget::Partition(0),
    ///     ack: AckLevel::Written,
    ///     batches: &batch,
    /// };
    /// assert_eq!(produce.batches().count(), 1);
    /// # Ok::<(), tidegate_proto::batch::BatchError>(())
    /// ```
    pub fn batches(&self) -> BatchIter<'a> {
        BatchIter::new(self.batches)
    }

    /// Appends the frame header and every field up to and including the
    /// batches' length, for a body whose batches (`batches_len` bytes) the
    /// caller sends next from its own buffers; `self.batches` is ignored.
    /// `encode_prefix` then the batches is byte for byte
    /// [`Request::encode`].
    ///
    /// # Panics
    ///
    /// If the body would be 4 GiB or more.
    pub fn encode_prefix(&self, batches_len: usize, out: &mut Vec<u8>) {
        let start = begin_frame(out, Kind::Produce.request_code());
        put_bytes16(out, self.topic.as_bytes());
        match self.target {
            ProduceTarget::Partition(partition) => {
                put_u8(out, 0);
                put_u32(out, partition);
            }
            ProduceTarget::Key(key) => {
                put_u8(out, 1);
                put_bytes16(out, key);
            }
        }
        put_u8(out, self.ack as u8);
        put_u32(out, len_u32(batches_len));
        let fields_len = out.len() - start - FRAME_HEADER_LEN;
        set_body_len(out, start, fields_len.saturating_add(batches_len));
    }

    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_prefix(self.batches.len(), out);
        out.extend_from_slice(self.batches);
    }

    fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let topic = r.topic("topic")?;
        let target = match r.u8("target")? {
            0 => {
                let partition = r.u32("partition")?;
                check_partition(partition)?;
                ProduceTarget::Partition(partition)
            }
            1 => ProduceTarget::Key(r.bytes16("key")?),
            tag => {
                return Err(ProtocolError::InvalidTag {
                    field: "target",
                    tag,
                })
            }
        };
        let tag = r.u8("ack")?;
        let ack = AckLevel::from_u8(tag).ok_or(ProtocolError::InvalidTag { field: "ack", tag })?;
        let batches = r.bytes32("batches", MAX_FRAME_BODY_BYTES)?;
        check_batches(batches)?;
        Ok(Self {
            topic,
            target,
            ack,
            batches,
        })
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        validate_topic_name(self.topic)?;
        match self.target {
            ProduceTarget::Partition(partition) => check_partition(partition)?,
            ProduceTarget::Key(key) => {
                check_range("key", key.len() as u64, 0, MAX_ROUTING_KEY_BYTES as u64)?
            }
        }
        check_range(
            "batches",
            self.batches.len() as u64,
            0,
            MAX_FRAME_BODY_BYTES as u64,
        )?;
        check_batches(self.batches)
    }
}

fn check_batches(batches: &[u8]) -> Result<(), ProtocolError> {
    if batches.is_empty() {
        return Err(ProtocolError::InvalidValue {
            field: "batches",
            reason: "a produce carries at least one batch",
        });
    }
    Ok(())
}

impl<'a> FetchRequest<'a> {
    fn write(&self, out: &mut Vec<u8>) {
        put_bytes16(out, self.topic.as_bytes());
        put_u32(out, self.partition);
        put_u64(out, self.offset);
        put_u32(out, self.max_bytes);
        put_u32(out, self.max_wait_ms);
    }

    fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let fetch = Self {
            topic: r.topic("topic")?,
            partition: r.u32("partition")?,
            offset: r.u64("offset")?,
            max_bytes: r.u32("max_bytes")?,
            max_wait_ms: r.u32("max_wait_ms")?,
        };
        fetch.check_numbers()?;
        Ok(fetch)
    }

    fn check_numbers(&self) -> Result<(), ProtocolError> {
        check_partition(self.partition)?;
        check_range(
            "max_bytes",
            self.max_bytes.into(),
            1,
            MAX_FETCH_BYTES.into(),
        )?;
        check_range(
            "max_wait_ms",
            self.max_wait_ms.into(),
            0,
            MAX_FETCH_WAIT_MS.into(),
        )
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        validate_topic_name(self.topic)?;
        self.check_numbers()
    }
}

impl<'a> ListOffsetsRequest<'a> {
    fn write(&self, out: &mut Vec<u8>) {
        put_bytes16(out, self.topic.as_bytes());
        put_u32(out, self.partition);
        match self.spec {
            OffsetSpec::Earliest => put_u8(out, 0),
            OffsetSpec::Latest => put_u8(out, 1),
            OffsetSpec::Timestamp(ts) => {
                put_u8(out, 2);
                put_i64(out, ts);
            }
        }
    }

    fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let topic = r.topic("topic")?;
        let partition = r.u32("partition")?;
        check_partition(partition)?;
        let spec = match r.u8("spec")? {
            0 => OffsetSpec::Earliest,
            1 => OffsetSpec::Latest,
            2 => OffsetSpec::Timestamp(r.i64("timestamp")?),
            tag => return Err(ProtocolError::InvalidTag { field: "spec", tag }),
        };
        Ok(Self {
            topic,
            partition,
            spec,
        })
    }

    fn validate(&self) -> Result<(), ProtocolError> {
        validate_topic_name(self.topic)?;
        check_partition(self.partition)
    }
}
