//! Subscription requests and responses: create, delete, list and describe
//! a subscription; pull leased messages; ack them or change their
//! deadlines (docs/PROTOCOL.md, docs/SEMANTICS.md §5).

use super::error_code::ErrorCode;
use super::limits::{check_partition, check_range, validate_topic_name, MAX_FRAME_BODY_BYTES};
use super::wire::{len_u32, put_bytes16, put_i64, put_u16, put_u32, put_u64, put_u8, Reader};
use super::ProtocolError;
use crate::batch::MAX_HEADERS_PER_RECORD;
use crate::filter::MAX_FILTER_BYTES;

/// Length of an ack id: opaque to clients, sent back as received.
pub const ACK_ID_BYTES: usize = 16;
/// Shortest ack deadline (lease) a subscription may have.
pub const MIN_ACK_DEADLINE_MS: u32 = 1_000;
/// Longest ack deadline, and longest extension of one lease.
pub const MAX_ACK_DEADLINE_MS: u32 = 12 * 60 * 60 * 1000;
/// Most messages one Pull returns.
pub const MAX_PULL_MESSAGES: u32 = 10_000;
/// Longest a Pull waits for a message.
pub const MAX_PULL_WAIT_MS: u32 = 60_000;
/// Most ack ids one Ack or ModifyDeadline carries.
pub const MAX_ACK_IDS: u32 = 10_000;
/// Most deliveries a subscription may set before dead-lettering.
pub const MAX_DELIVERIES_LIMIT: u32 = 1_000;
/// Longest delivery delay a subscription may set (7 days), as for a
/// message's own `tg-deliver-after`.
pub const MAX_DELIVERY_DELAY_MS: u32 = 7 * 24 * 60 * 60 * 1000;
/// Most subscriptions a ListSubscriptions answer carries.
pub const MAX_LISTED_SUBSCRIPTIONS: u32 = 65_536;

/// Where a new subscription starts reading, in every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartPosition {
    /// The first offset still in the log.
    Earliest,
    /// The offset the next message gets: only messages published after
    /// the creation (the default, as in Pub/Sub).
    Latest,
    /// This offset, clamped to the log.
    Offset(u64),
    /// The first message with a timestamp at or after this (Unix ms).
    Timestamp(i64),
}

/// A subscription's definition: CreateSubscription's request, and what
/// ListSubscriptions and DescribeSubscription return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionConfig<'a> {
    /// The subscription's name (the topic naming rule).
    pub name: &'a str,
    /// The topic it receives.
    pub topic: &'a str,
    /// A filter on headers (docs/FILTERS.md); empty delivers everything.
    pub filter: &'a str,
    /// The lease of a delivery,
    /// `MIN_ACK_DEADLINE_MS..=MAX_ACK_DEADLINE_MS`.
    pub ack_deadline_ms: u32,
    /// Deliveries after which a message goes to `dead_letter_topic`; 0
    /// retries for ever. Set exactly when `dead_letter_topic` is.
    pub max_deliveries: u32,
    /// Where dead letters go; empty for none.
    pub dead_letter_topic: &'a str,
    /// Messages with the same key are delivered in order, one at a time.
    pub ordering: bool,
    /// Higher `tg-priority` first.
    pub priority: bool,
    /// Backoff after the first failed delivery; doubles with each attempt.
    pub backoff_min_ms: u32,
    /// Cap of the backoff, at most `MAX_ACK_DEADLINE_MS`.
    pub backoff_max_ms: u32,
    /// Every message becomes deliverable this long after its publish time
    /// (its timestamp), or at its `tg-deliver-after` when that is later;
    /// `0..=MAX_DELIVERY_DELAY_MS`, 0 for none.
    pub delivery_delay_ms: u32,
    /// A message found expired (past its `tg-expires-at`) goes to the
    /// dead-letter topic instead of being dropped; needs one.
    pub dead_letter_expired: bool,
    /// Where it starts.
    pub start: StartPosition,
}

/// One partition of a subscription, as DescribeSubscription shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionPartition {
    /// The partition.
    pub partition: u32,
    /// Every offset below it is handled.
    pub floor: u64,
    /// The next offset read into the window.
    pub cursor: u64,
    /// The partition's latest offset (its backlog is `latest - floor`
    /// minus what is handled above the floor).
    pub latest: u64,
    /// Messages leased to subscribers now.
    pub outstanding: u32,
    /// Offsets of the window not handled yet.
    pub unhandled: u32,
}

/// DescribeSubscription's answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionDescription<'a> {
    /// The definition.
    pub config: SubscriptionConfig<'a>,
    /// Every partition of its topic.
    pub partitions: Vec<SubscriptionPartition>,
}

/// Pull: leased messages of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PullRequest<'a> {
    /// The subscription.
    pub subscription: &'a str,
    /// At most this many, `1..=MAX_PULL_MESSAGES`.
    pub max_messages: u32,
    /// Soft limit on the bytes of values, keys and headers; the first
    /// message is returned whatever its size. `1..=MAX_FRAME_BODY_BYTES/2`.
    pub max_bytes: u32,
    /// How long the server may wait for a first message, up to
    /// [`MAX_PULL_WAIT_MS`]; 0 answers at once.
    pub max_wait_ms: u32,
}

/// A leased message, as Pull returns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PulledMessage<'a> {
    /// Names this delivery in Ack and ModifyDeadline.
    pub ack_id: [u8; ACK_ID_BYTES],
    /// 1 for the first delivery.
    pub attempt: u32,
    /// Where it is stored.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// Its publish time (the record's timestamp, Unix ms).
    pub timestamp_ms: i64,
    /// Its key.
    pub key: Option<&'a [u8]>,
    /// Its value.
    pub value: Option<&'a [u8]>,
    /// Its headers, in order.
    pub headers: Vec<(&'a str, &'a [u8])>,
}

/// Ack (`deadline_ms: None`) or ModifyDeadline (`Some`; 0 is a nack).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AckRequest<'a> {
    /// The subscription.
    pub subscription: &'a str,
    /// The deliveries, `1..=MAX_ACK_IDS`.
    pub ack_ids: Vec<[u8; ACK_ID_BYTES]>,
}

/// Checks a subscription name by the topic naming rule.
pub fn validate_subscription_name(name: &str) -> Result<(), ProtocolError> {
    validate_topic_name(name)
}

impl<'a> SubscriptionConfig<'a> {
    /// A subscription of `topic` with the defaults: no filter, 30 s ack
    /// deadline, no dead letters, no ordering or priority, backoff
    /// 1 s..60 s, starting at the latest offset.
    pub fn new(name: &'a str, topic: &'a str) -> Self {
        SubscriptionConfig {
            name,
            topic,
            filter: "",
            ack_deadline_ms: 30_000,
            max_deliveries: 0,
            dead_letter_topic: "",
            ordering: false,
            priority: false,
            backoff_min_ms: 1_000,
            backoff_max_ms: 60_000,
            delivery_delay_ms: 0,
            dead_letter_expired: false,
            start: StartPosition::Latest,
        }
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_bytes16(out, self.name.as_bytes());
        put_bytes16(out, self.topic.as_bytes());
        put_bytes16(out, self.filter.as_bytes());
        put_u32(out, self.ack_deadline_ms);
        put_u32(out, self.max_deliveries);
        put_bytes16(out, self.dead_letter_topic.as_bytes());
        put_u8(
            out,
            u8::from(self.ordering)
                | (u8::from(self.priority) << 1)
                | (u8::from(self.dead_letter_expired) << 2),
        );
        put_u32(out, self.backoff_min_ms);
        put_u32(out, self.backoff_max_ms);
        put_u32(out, self.delivery_delay_ms);
        match self.start {
            StartPosition::Earliest => put_u8(out, 0),
            StartPosition::Latest => put_u8(out, 1),
            StartPosition::Offset(o) => {
                put_u8(out, 2);
                put_u64(out, o);
            }
            StartPosition::Timestamp(t) => {
                put_u8(out, 3);
                put_i64(out, t);
            }
        }
    }

    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let name = r.topic("subscription name")?;
        let topic = r.topic("topic name")?;
        let filter = r.str16("filter", MAX_FILTER_BYTES)?;
        let ack_deadline_ms = r.u32("ack_deadline_ms")?;
        let max_deliveries = r.u32("max_deliveries")?;
        let dead_letter_topic = r.str16("dead letter topic", super::MAX_TOPIC_NAME_BYTES)?;
        let flags = r.u8("flags")?;
        if flags > 7 {
            return Err(ProtocolError::InvalidTag {
                field: "flags",
                tag: flags,
            });
        }
        let backoff_min_ms = r.u32("backoff_min_ms")?;
        let backoff_max_ms = r.u32("backoff_max_ms")?;
        let delivery_delay_ms = r.u32("delivery_delay_ms")?;
        let start = match r.u8("start")? {
            0 => StartPosition::Earliest,
            1 => StartPosition::Latest,
            2 => StartPosition::Offset(r.u64("start offset")?),
            3 => StartPosition::Timestamp(r.i64("start time")?),
            tag => {
                return Err(ProtocolError::InvalidTag {
                    field: "start",
                    tag,
                })
            }
        };
        let config = SubscriptionConfig {
            name,
            topic,
            filter,
            ack_deadline_ms,
            max_deliveries,
            dead_letter_topic,
            ordering: flags & 1 != 0,
            priority: flags & 2 != 0,
            backoff_min_ms,
            backoff_max_ms,
            delivery_delay_ms,
            dead_letter_expired: flags & 4 != 0,
            start,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every field but the filter's grammar (the server parses it,
    /// and answers `invalid_filter` with the position of the error).
    pub fn validate(&self) -> Result<(), ProtocolError> {
        validate_subscription_name(self.name)?;
        validate_topic_name(self.topic)?;
        check_range(
            "filter",
            self.filter.len() as u64,
            0,
            MAX_FILTER_BYTES as u64,
        )?;
        check_range(
            "ack_deadline_ms",
            self.ack_deadline_ms.into(),
            MIN_ACK_DEADLINE_MS.into(),
            MAX_ACK_DEADLINE_MS.into(),
        )?;
        check_range(
            "max_deliveries",
            self.max_deliveries.into(),
            0,
            MAX_DELIVERIES_LIMIT.into(),
        )?;
        if !self.dead_letter_topic.is_empty() {
            validate_topic_name(self.dead_letter_topic)?;
            if self.dead_letter_topic == self.topic {
                return Err(ProtocolError::InvalidValue {
                    field: "dead letter topic",
                    reason: "is the subscription's own topic",
                });
            }
        }
        if self.dead_letter_topic.is_empty() != (self.max_deliveries == 0) {
            return Err(ProtocolError::InvalidValue {
                field: "max_deliveries",
                reason: "max_deliveries and a dead letter topic go together",
            });
        }
        if self.dead_letter_expired && self.dead_letter_topic.is_empty() {
            return Err(ProtocolError::InvalidValue {
                field: "dead_letter_expired",
                reason: "needs a dead letter topic",
            });
        }
        check_range(
            "delivery_delay_ms",
            self.delivery_delay_ms.into(),
            0,
            MAX_DELIVERY_DELAY_MS.into(),
        )?;
        check_range(
            "backoff_max_ms",
            self.backoff_max_ms.into(),
            0,
            MAX_ACK_DEADLINE_MS.into(),
        )?;
        check_range(
            "backoff_min_ms",
            self.backoff_min_ms.into(),
            0,
            self.backoff_max_ms.into(),
        )
    }
}

impl SubscriptionPartition {
    fn write(&self, out: &mut Vec<u8>) {
        put_u32(out, self.partition);
        put_u64(out, self.floor);
        put_u64(out, self.cursor);
        put_u64(out, self.latest);
        put_u32(out, self.outstanding);
        put_u32(out, self.unhandled);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        let partition = r.u32("partition")?;
        check_partition(partition)?;
        Ok(SubscriptionPartition {
            partition,
            floor: r.u64("floor")?,
            cursor: r.u64("cursor")?,
            latest: r.u64("latest")?,
            outstanding: r.u32("outstanding")?,
            unhandled: r.u32("unhandled")?,
        })
    }
}

impl<'a> SubscriptionDescription<'a> {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        self.config.write(out);
        put_u32(out, len_u32(self.partitions.len()));
        for p in &self.partitions {
            p.write(out);
        }
    }

    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let config = SubscriptionConfig::read(r)?;
        let n = r.count("partitions", super::MAX_PARTITIONS, 36)?;
        let partitions = (0..n)
            .map(|_| SubscriptionPartition::read(r))
            .collect::<Result<_, _>>()?;
        Ok(SubscriptionDescription { config, partitions })
    }
}

pub(crate) fn write_subscription_list(out: &mut Vec<u8>, subs: &[SubscriptionConfig<'_>]) {
    put_u32(out, len_u32(subs.len()));
    for s in subs {
        s.write(out);
    }
}

pub(crate) fn read_subscription_list<'a>(
    r: &mut Reader<'a>,
) -> Result<Vec<SubscriptionConfig<'a>>, ProtocolError> {
    let n = r.count("subscriptions", MAX_LISTED_SUBSCRIPTIONS, 28)?;
    (0..n).map(|_| SubscriptionConfig::read(r)).collect()
}

impl<'a> PullRequest<'a> {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_bytes16(out, self.subscription.as_bytes());
        put_u32(out, self.max_messages);
        put_u32(out, self.max_bytes);
        put_u32(out, self.max_wait_ms);
    }

    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let request = PullRequest {
            subscription: r.topic("subscription name")?,
            max_messages: r.u32("max_messages")?,
            max_bytes: r.u32("max_bytes")?,
            max_wait_ms: r.u32("max_wait_ms")?,
        };
        request.validate()?;
        Ok(request)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        validate_subscription_name(self.subscription)?;
        check_range(
            "max_messages",
            self.max_messages.into(),
            1,
            MAX_PULL_MESSAGES.into(),
        )?;
        check_range(
            "max_bytes",
            self.max_bytes.into(),
            1,
            (MAX_FRAME_BODY_BYTES / 2) as u64,
        )?;
        check_range(
            "max_wait_ms",
            self.max_wait_ms.into(),
            0,
            MAX_PULL_WAIT_MS.into(),
        )
    }
}

fn put_opt_bytes32(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_u8(out, 0),
        Some(b) => {
            put_u8(out, 1);
            put_u32(out, len_u32(b.len()));
            out.extend_from_slice(b);
        }
    }
}

fn read_opt_bytes32<'a>(
    r: &mut Reader<'a>,
    field: &'static str,
) -> Result<Option<&'a [u8]>, ProtocolError> {
    match r.u8(field)? {
        0 => Ok(None),
        1 => Ok(Some(r.bytes32(field, MAX_FRAME_BODY_BYTES)?)),
        tag => Err(ProtocolError::InvalidTag { field, tag }),
    }
}

/// The bytes a pulled message adds to a Pull answer.
pub fn pulled_message_len(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, &[u8])],
) -> usize {
    let fixed = ACK_ID_BYTES + 4 + 4 + 8 + 8 + 1 + 1 + 2;
    let opt = |b: Option<&[u8]>| b.map_or(0, |b| 4 + b.len());
    let headers: usize = headers.iter().map(|(n, v)| 4 + n.len() + v.len()).sum();
    fixed + opt(key) + opt(value) + headers
}

impl<'a> PulledMessage<'a> {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ack_id);
        put_u32(out, self.attempt);
        put_u32(out, self.partition);
        put_u64(out, self.offset);
        put_i64(out, self.timestamp_ms);
        put_opt_bytes32(out, self.key);
        put_opt_bytes32(out, self.value);
        // A record holds at most MAX_HEADERS_PER_RECORD headers, whose
        // names and values fit u16 lengths (the batch format's limits).
        put_u16(out, u16::try_from(self.headers.len()).unwrap_or(u16::MAX));
        for (name, value) in self.headers.iter().take(u16::MAX.into()) {
            put_bytes16(out, name.as_bytes());
            put_bytes16(out, value);
        }
    }

    fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let ack_id = r.array::<ACK_ID_BYTES>("ack id")?;
        let attempt = r.u32("attempt")?;
        let partition = r.u32("partition")?;
        check_partition(partition)?;
        let offset = r.u64("offset")?;
        let timestamp_ms = r.i64("timestamp")?;
        let key = read_opt_bytes32(r, "key")?;
        let value = read_opt_bytes32(r, "value")?;
        let n = r.u16("headers")?;
        check_range("headers", n.into(), 0, MAX_HEADERS_PER_RECORD as u64)?;
        let mut headers = Vec::with_capacity(usize::from(n).min(r.remaining() / 4));
        for _ in 0..n {
            let name = r.str16("header name", u16::MAX.into())?;
            headers.push((name, r.bytes16("header value")?));
        }
        Ok(PulledMessage {
            ack_id,
            attempt,
            partition,
            offset,
            timestamp_ms,
            key,
            value,
            headers,
        })
    }
}

pub(crate) fn write_pulled(out: &mut Vec<u8>, messages: &[PulledMessage<'_>]) {
    put_u32(out, len_u32(messages.len()));
    for m in messages {
        m.write(out);
    }
}

pub(crate) fn read_pulled<'a>(r: &mut Reader<'a>) -> Result<Vec<PulledMessage<'a>>, ProtocolError> {
    let n = r.count("messages", MAX_PULL_MESSAGES, 44)?;
    (0..n).map(|_| PulledMessage::read(r)).collect()
}

impl<'a> AckRequest<'a> {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_bytes16(out, self.subscription.as_bytes());
        put_u32(out, len_u32(self.ack_ids.len()));
        for id in &self.ack_ids {
            out.extend_from_slice(id);
        }
    }

    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let subscription = r.topic("subscription name")?;
        let n = r.count("ack ids", MAX_ACK_IDS, ACK_ID_BYTES)?;
        let ack_ids = (0..n)
            .map(|_| r.array::<ACK_ID_BYTES>("ack id"))
            .collect::<Result<_, _>>()?;
        let request = AckRequest {
            subscription,
            ack_ids,
        };
        request.validate()?;
        Ok(request)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        validate_subscription_name(self.subscription)?;
        check_range("ack ids", self.ack_ids.len() as u64, 1, MAX_ACK_IDS.into())
    }
}

/// Writes per-ack-id results.
pub(crate) fn write_ack_results(out: &mut Vec<u8>, results: &[ErrorCode]) {
    put_u32(out, len_u32(results.len()));
    for code in results {
        put_u16(out, code.as_u16());
    }
}

pub(crate) fn read_ack_results(r: &mut Reader<'_>) -> Result<Vec<ErrorCode>, ProtocolError> {
    let n = r.count("results", MAX_ACK_IDS, 2)?;
    (0..n)
        .map(|_| Ok(ErrorCode::from_u16(r.u16("error code")?)))
        .collect()
}
