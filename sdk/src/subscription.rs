//! Subscriptions, queue style (docs/SEMANTICS.md §5): create, delete,
//! list and describe them; pull leased messages; ack them, nack them or
//! change their deadlines. [`Subscriber`](crate::Subscriber) builds on
//! these calls.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use tidegate_proto::protocol::{
    AckRequest, PullRequest, PulledMessage, Request, Response, StartPosition, SubscriptionConfig,
    SubscriptionPartition, ACK_ID_BYTES, MAX_ACK_IDS,
};

use crate::client::{decode_response, unexpected, Client};
use crate::error::{Error, Result};
use crate::ErrorCode;

/// Soft limit on the bytes (keys, values, headers) one
/// [`pull`](Client::pull) asks for; the first message comes whole
/// whatever its size.
pub const PULL_MAX_BYTES: u32 = 4 << 20;

/// Names one delivery of a message in [`ack`](Client::ack) and
/// [`modify_deadline`](Client::modify_deadline): opaque, sent back as
/// received. Displays as 32 lowercase hex digits.
///
/// # Example
///
/// ```
/// use tidegate_client::AckId;
///
/// let id = AckId::from([0xab; 16]);
/// assert_eq!(id.to_string(), "ab".repeat(16));
/// assert_eq!(id.to_string().parse::<AckId>(), Ok(id));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AckId([u8; ACK_ID_BYTES]);

impl AckId {
    /// The bytes, as on the wire.
    pub const fn as_bytes(&self) -> &[u8; ACK_ID_BYTES] {
        &self.0
    }
}

impl From<[u8; ACK_ID_BYTES]> for AckId {
    fn from(bytes: [u8; ACK_ID_BYTES]) -> Self {
        AckId(bytes)
    }
}

impl fmt::Display for AckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for AckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AckId({self})")
    }
}

impl std::str::FromStr for AckId {
    type Err = String;

    /// Parses the 32 hex digits of [`Display`](fmt::Display).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!(
                "'{s}': expected an ack id of {} hex digits",
                2 * ACK_ID_BYTES
            )
        };
        if s.len() != 2 * ACK_ID_BYTES || !s.is_ascii() {
            return Err(bad());
        }
        let mut bytes = [0u8; ACK_ID_BYTES];
        for (byte, pair) in bytes.iter_mut().zip(s.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(AckId(bytes))
    }
}

/// A subscription's definition, owned: what
/// [`list_subscriptions`](Client::list_subscriptions) and
/// [`describe_subscription`](Client::describe_subscription) return.
/// [`as_config`](Subscription::as_config) gives it back in the form
/// [`create_subscription`](Client::create_subscription) takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// The subscription's name.
    pub name: String,
    /// The topic it receives.
    pub topic: String,
    /// Its filter on headers (docs/FILTERS.md); `None` delivers everything.
    pub filter: Option<String>,
    /// The lease of a delivery.
    pub ack_deadline: Duration,
    /// Deliveries after which a message goes to `dead_letter_topic`; 0
    /// retries for ever.
    pub max_deliveries: u32,
    /// Where dead letters go.
    pub dead_letter_topic: Option<String>,
    /// Messages with the same key are delivered in order, one at a time.
    pub ordering: bool,
    /// Higher `tg-priority` first.
    pub priority: bool,
    /// Backoff after the first failed delivery; doubles with each attempt.
    pub backoff_min: Duration,
    /// Cap of the backoff.
    pub backoff_max: Duration,
    /// Every message becomes deliverable this long after its publish time
    /// (zero for none).
    pub delivery_delay: Duration,
    /// Expired messages go to the dead-letter topic instead of being
    /// dropped.
    pub dead_letter_expired: bool,
    /// Where it started.
    pub start: StartPosition,
}

impl Subscription {
    fn from_config(c: &SubscriptionConfig<'_>) -> Subscription {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Subscription {
            name: c.name.to_owned(),
            topic: c.topic.to_owned(),
            filter: some(c.filter),
            ack_deadline: Duration::from_millis(c.ack_deadline_ms.into()),
            max_deliveries: c.max_deliveries,
            dead_letter_topic: some(c.dead_letter_topic),
            ordering: c.ordering,
            priority: c.priority,
            backoff_min: Duration::from_millis(c.backoff_min_ms.into()),
            backoff_max: Duration::from_millis(c.backoff_max_ms.into()),
            delivery_delay: Duration::from_millis(c.delivery_delay_ms.into()),
            dead_letter_expired: c.dead_letter_expired,
            start: c.start,
        }
    }

    /// The definition as [`create_subscription`](Client::create_subscription)
    /// takes it (durations in whole milliseconds, saturating).
    ///
    /// # Example
    ///
    /// ```
    /// use tidegate_client::{Subscription, SubscriptionConfig};
    ///
    /// # fn copy(existing: Subscription) {
    /// let config = SubscriptionConfig { name: "billing-copy", ..existing.as_config() };
    /// # let _ = config;
    /// # }
    /// ```
    pub fn as_config(&self) -> SubscriptionConfig<'_> {
        SubscriptionConfig {
            name: &self.name,
            topic: &self.topic,
            filter: self.filter.as_deref().unwrap_or_default(),
            ack_deadline_ms: duration_ms(self.ack_deadline),
            max_deliveries: self.max_deliveries,
            dead_letter_topic: self.dead_letter_topic.as_deref().unwrap_or_default(),
            ordering: self.ordering,
            priority: self.priority,
            backoff_min_ms: duration_ms(self.backoff_min),
            backoff_max_ms: duration_ms(self.backoff_max),
            delivery_delay_ms: duration_ms(self.delivery_delay),
            dead_letter_expired: self.dead_letter_expired,
            start: self.start,
        }
    }
}

/// A subscription and where each partition of its topic stands, from
/// [`Client::describe_subscription`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionDescription {
    /// The definition.
    pub subscription: Subscription,
    /// Every partition of its topic: its window, leases and latest offset.
    pub partitions: Vec<SubscriptionPartition>,
}

impl SubscriptionDescription {
    /// The messages of a partition not handled yet: those past the
    /// window's cursor, and those in the window neither acked nor
    /// otherwise handled (leased ones included).
    ///
    /// # Example
    ///
    /// ```
    /// use tidegate_client::{SubscriptionDescription, SubscriptionPartition};
    ///
    /// let p = SubscriptionPartition { partition: 0, floor: 100, cursor: 150, latest: 200, outstanding: 5, unhandled: 8 };
    /// assert_eq!(SubscriptionDescription::backlog(&p), 58); // 50 not read yet, 8 in the window
    /// ```
    pub fn backlog(p: &SubscriptionPartition) -> u64 {
        p.latest.saturating_sub(p.cursor.max(p.floor)) + u64::from(p.unhandled)
    }

    /// The sum of every partition's [`backlog`](Self::backlog).
    pub fn total_backlog(&self) -> u64 {
        self.partitions.iter().map(Self::backlog).sum()
    }
}

/// A leased message, from [`Client::pull`]. Its key, value and header
/// values are slices of the response's buffer ([`Bytes`]), not copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Names this delivery in [`ack`](Client::ack) and
    /// [`modify_deadline`](Client::modify_deadline).
    pub ack_id: AckId,
    /// 1 for the first delivery, then one more for each redelivery.
    pub attempt: u32,
    /// The partition it is stored in.
    pub partition: u32,
    /// Its offset in the partition.
    pub offset: u64,
    /// Its timestamp, in ms since the Unix epoch, as the producer set it.
    pub timestamp_ms: i64,
    /// Its key, if it has one.
    pub key: Option<Bytes>,
    /// Its value, if it has one (`None` is a tombstone, not an empty
    /// value).
    pub value: Option<Bytes>,
    /// Its headers, `(name, value)`, in the order the producer added them.
    pub headers: Vec<(String, Bytes)>,
}

impl ReceivedMessage {
    /// Its size as the server counts it against a pull's `max_bytes` and
    /// a push stream's byte credits: the bytes of its key, value, header
    /// names and header values.
    pub fn size(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
    }

    /// The message, its bytes sliced from `frame`, which `m` borrows from.
    pub(crate) fn from_pulled(frame: &Bytes, m: &PulledMessage<'_>) -> ReceivedMessage {
        ReceivedMessage {
            ack_id: AckId(m.ack_id),
            attempt: m.attempt,
            partition: m.partition,
            offset: m.offset,
            timestamp_ms: m.timestamp_ms,
            key: m.key.map(|k| frame.slice_ref(k)),
            value: m.value.map(|v| frame.slice_ref(v)),
            headers: m
                .headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), frame.slice_ref(value)))
                .collect(),
        }
    }
}

/// Whole milliseconds of `d`, saturating at `u32::MAX`.
fn duration_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// A lease length in whole milliseconds, rounded up: a deadline under a
/// millisecond must not become 0, which is a nack.
pub(crate) fn deadline_ms(d: Duration) -> u32 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u32::try_from(ms).unwrap_or(u32::MAX)
}

/// The messages of a Pull answer: decodes `frame` and slices each
/// message's bytes from it.
fn pulled_messages(frame: Bytes) -> Result<Vec<ReceivedMessage>> {
    match decode_response(&frame)? {
        Response::Pull(messages) => Ok(messages
            .iter()
            .map(|m| ReceivedMessage::from_pulled(&frame, m))
            .collect()),
        other => Err(unexpected("Pull", &other)),
    }
}

/// Per-id results of an Ack or ModifyDeadline answer, checked to be one
/// per id sent.
fn per_id(results: Vec<ErrorCode>, sent: usize) -> Result<Vec<Result<(), ErrorCode>>> {
    if results.len() != sent {
        return Err(Error::Protocol(format!(
            "{} results for {sent} ack ids",
            results.len()
        )));
    }
    Ok(results
        .into_iter()
        .map(|code| if code.is_ok() { Ok(()) } else { Err(code) })
        .collect())
}

impl Client {
    /// Creates a subscription: a durable cursor over `config.topic` with
    /// its own acknowledgement state. Start from
    /// [`SubscriptionConfig::new`] (30 s ack deadline, backoff 1 s..60 s,
    /// new messages only) and change what you need.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] with [`ErrorCode::SubscriptionExists`] if the
    /// name is taken, [`ErrorCode::UnknownTopic`], or
    /// [`ErrorCode::InvalidFilter`] for a filter that does not parse (the
    /// message gives the byte position); [`Error::InvalidRequest`]
    /// (nothing sent) for a field out of range.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tidegate_client::{StartPosition, SubscriptionConfig};
    ///
    /// # async fn run(client: tidegate_client::Client) -> Result<(), tidegate_client::Error> {
    /// let config = SubscriptionConfig {
    ///     filter: "region = \"eu\"",
    ///     ack_deadline_ms: 60_000,
    ///     start: StartPosition::Earliest,
    ///     ..SubscriptionConfig::new("billing", "orders")
    /// };
    /// client.create_subscription(&config).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_subscription(&self, config: &SubscriptionConfig<'_>) -> Result<()> {
        // `call` checks the request and authenticates again if it must.
        let frame = self.call(&Request::CreateSubscription(*config)).await?;
        match decode_response(&frame)? {
            Response::CreateSubscription => Ok(()),
            other => Err(unexpected("CreateSubscription", &other)),
        }
    }

    /// Deletes a subscription and its acknowledgement state; the topic's
    /// messages stay.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] with [`ErrorCode::UnknownSubscription`].
    pub async fn delete_subscription(&self, name: &str) -> Result<()> {
        let frame = self.call(&Request::DeleteSubscription { name }).await?;
        match decode_response(&frame)? {
            Response::DeleteSubscription => Ok(()),
            other => Err(unexpected("DeleteSubscription", &other)),
        }
    }

    /// The subscriptions of `topic`, or of every topic for `None`.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(client: tidegate_client::Client) -> Result<(), tidegate_client::Error> {
    /// for sub in client.list_subscriptions(Some("orders")).await? {
    ///     println!("{} (deadline {:?})", sub.name, sub.ack_deadline);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_subscriptions(&self, topic: Option<&str>) -> Result<Vec<Subscription>> {
        let topic = topic.unwrap_or_default();
        let frame = self.call(&Request::ListSubscriptions { topic }).await?;
        match decode_response(&frame)? {
            Response::ListSubscriptions(subs) => {
                Ok(subs.iter().map(Subscription::from_config).collect())
            }
            other => Err(unexpected("ListSubscriptions", &other)),
        }
    }

    /// A subscription's definition and, per partition of its topic, its
    /// window, leases and backlog.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] with [`ErrorCode::UnknownSubscription`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(client: tidegate_client::Client) -> Result<(), tidegate_client::Error> {
    /// let billing = client.describe_subscription("billing").await?;
    /// println!("{} messages to go", billing.total_backlog());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_subscription(&self, name: &str) -> Result<SubscriptionDescription> {
        let frame = self.call(&Request::DescribeSubscription { name }).await?;
        match decode_response(&frame)? {
            Response::DescribeSubscription(d) => Ok(SubscriptionDescription {
                subscription: Subscription::from_config(&d.config),
                partitions: d.partitions,
            }),
            other => Err(unexpected("DescribeSubscription", &other)),
        }
    }

    /// Up to `max_messages` leased messages, waiting up to `max_wait` (at
    /// most 60 s) for the first one; about [`PULL_MAX_BYTES`] at most.
    /// Each is leased to this client for the subscription's ack deadline:
    /// [`ack`](Client::ack) it, or it is delivered again.
    /// [`Subscriber`](crate::Subscriber) does this and keeps the leases
    /// alive.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] (nothing sent) for `max_messages` outside
    /// `1..=10_000` or a wait over 60 s; [`Error::Server`] with
    /// [`ErrorCode::UnknownSubscription`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn run(client: tidegate_client::Client) -> Result<(), tidegate_client::Error> {
    /// let messages = client.pull("billing", 100, Duration::from_secs(5)).await?;
    /// let ids: Vec<_> = messages.iter().map(|m| m.ack_id).collect();
    /// client.ack("billing", &ids).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn pull(
        &self,
        subscription: &str,
        max_messages: u32,
        max_wait: Duration,
    ) -> Result<Vec<ReceivedMessage>> {
        let request = Request::Pull(PullRequest {
            subscription,
            max_messages,
            max_bytes: PULL_MAX_BYTES,
            max_wait_ms: duration_ms(max_wait),
        });
        pulled_messages(Bytes::from(self.call(&request).await?))
    }

    /// Acknowledges deliveries: they are never delivered again (the server
    /// answers once the acks are durable). Returns, per id in order, `Ok`
    /// or why it was refused: [`ErrorCode::LeaseExpired`] (the lease was
    /// over or the message was delivered again since: it will come back),
    /// [`ErrorCode::InvalidRequest`] (an id this server never gave). Over
    /// 10 000 ids go in several requests.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] with [`ErrorCode::UnknownSubscription`]; the
    /// request's errors.
    pub async fn ack(
        &self,
        subscription: &str,
        ack_ids: &[AckId],
    ) -> Result<Vec<Result<(), ErrorCode>>> {
        self.settle(subscription, ack_ids, None).await
    }

    /// Sets the leases of deliveries to end `deadline` from now (at most
    /// 12 h; rounded up to whole milliseconds); [`Duration::ZERO`] is a
    /// [`nack`](Client::nack). Results per id as for [`ack`](Client::ack).
    ///
    /// # Errors
    ///
    /// As [`ack`](Client::ack); [`Error::InvalidRequest`] for a deadline
    /// over 12 h.
    pub async fn modify_deadline(
        &self,
        subscription: &str,
        ack_ids: &[AckId],
        deadline: Duration,
    ) -> Result<Vec<Result<(), ErrorCode>>> {
        self.settle(subscription, ack_ids, Some(deadline_ms(deadline)))
            .await
    }

    /// Ends the leases now: the messages are delivered again after the
    /// subscription's backoff (or dead-lettered after `max_deliveries`).
    /// Results per id as for [`ack`](Client::ack).
    ///
    /// # Errors
    ///
    /// As [`ack`](Client::ack).
    pub async fn nack(
        &self,
        subscription: &str,
        ack_ids: &[AckId],
    ) -> Result<Vec<Result<(), ErrorCode>>> {
        self.settle(subscription, ack_ids, Some(0)).await
    }

    /// Ack (`deadline_ms` `None`) or ModifyDeadline, in requests of at
    /// most [`MAX_ACK_IDS`] ids.
    async fn settle(
        &self,
        subscription: &str,
        ack_ids: &[AckId],
        deadline_ms: Option<u32>,
    ) -> Result<Vec<Result<(), ErrorCode>>> {
        let mut out = Vec::with_capacity(ack_ids.len());
        for chunk in ack_ids.chunks(MAX_ACK_IDS as usize) {
            let ack = AckRequest {
                subscription,
                ack_ids: chunk.iter().map(|id| id.0).collect(),
            };
            let request = match deadline_ms {
                None => Request::Ack(ack),
                Some(deadline_ms) => Request::ModifyDeadline { ack, deadline_ms },
            };
            let frame = self.call(&request).await?;
            let results = match decode_response(&frame)? {
                Response::Ack(results) if deadline_ms.is_none() => results,
                Response::ModifyDeadline(results) if deadline_ms.is_some() => results,
                other => return Err(unexpected(request_name(deadline_ms), &other)),
            };
            out.extend(per_id(results, chunk.len())?);
        }
        Ok(out)
    }
}

fn request_name(deadline_ms: Option<u32>) -> &'static str {
    match deadline_ms {
        None => "Ack",
        Some(_) => "ModifyDeadline",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_under_a_millisecond_is_not_a_nack() {
        assert_eq!(deadline_ms(Duration::ZERO), 0);
        assert_eq!(deadline_ms(Duration::from_micros(1)), 1);
        assert_eq!(deadline_ms(Duration::from_micros(1_500)), 2);
        assert_eq!(deadline_ms(Duration::from_secs(30)), 30_000);
        assert_eq!(deadline_ms(Duration::MAX), u32::MAX);
    }

    #[test]
    fn ack_ids_print_and_parse_as_hex() {
        let id = AckId::from(std::array::from_fn(|i| i as u8 * 17));
        let text = id.to_string();
        assert_eq!(text, "00112233445566778899aabbccddeeff");
        assert_eq!(text.parse::<AckId>(), Ok(id));
        assert_eq!(text.to_uppercase().parse::<AckId>(), Ok(id));
        for bad in [
            "",
            "00",
            &text[1..],
            &format!("{text}0"),
            &"zz".repeat(16),
            &"é".repeat(16),
        ] {
            assert!(bad.parse::<AckId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pulled_messages_are_sliced_from_the_response_not_copied() {
        let headers = vec![("region", &b"eu"[..])];
        let pulled = PulledMessage {
            ack_id: [7; ACK_ID_BYTES],
            attempt: 2,
            partition: 3,
            offset: 41,
            timestamp_ms: 1_700_000_000_000,
            key: Some(b"customer-7"),
            value: Some(b"paid"),
            headers,
        };
        let mut frame = Vec::new();
        Response::Pull(vec![pulled]).encode(&mut frame);
        let frame = Bytes::from(frame);
        let messages = pulled_messages(frame.clone()).unwrap_or_else(|e| panic!("{e}"));
        let [m] = messages.as_slice() else {
            panic!("{messages:?}")
        };
        assert_eq!((m.ack_id, m.attempt), (AckId([7; ACK_ID_BYTES]), 2));
        assert_eq!((m.partition, m.offset), (3, 41));
        assert_eq!(m.timestamp_ms, 1_700_000_000_000);
        assert_eq!(m.key.as_deref(), Some(&b"customer-7"[..]));
        assert_eq!(m.value.as_deref(), Some(&b"paid"[..]));
        assert_eq!(
            m.headers,
            [("region".to_owned(), Bytes::from_static(b"eu"))]
        );
        let inside = |b: &Bytes| frame.as_ptr_range().contains(&b.as_ptr());
        assert!(
            m.key.as_ref().is_some_and(inside),
            "key is a slice of the frame"
        );
        assert!(
            m.value.as_ref().is_some_and(inside),
            "value is a slice of the frame"
        );
        assert!(
            inside(&m.headers[0].1),
            "header value is a slice of the frame"
        );
    }

    #[test]
    fn per_id_results_must_match_the_ids_sent() {
        let results = per_id(vec![ErrorCode::Ok, ErrorCode::LeaseExpired], 2)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(results, [Ok(()), Err(ErrorCode::LeaseExpired)]);
        assert!(matches!(
            per_id(vec![ErrorCode::Ok], 2),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn backlog_counts_unread_and_unhandled_offsets() {
        let p = |floor, cursor, latest, unhandled| SubscriptionPartition {
            partition: 0,
            floor,
            cursor,
            latest,
            outstanding: 0,
            unhandled,
        };
        assert_eq!(SubscriptionDescription::backlog(&p(0, 0, 0, 0)), 0);
        assert_eq!(SubscriptionDescription::backlog(&p(10, 10, 25, 0)), 15);
        assert_eq!(SubscriptionDescription::backlog(&p(10, 20, 25, 3)), 8);
        // A latest below the cursor (a truncated tail) is no negative.
        assert_eq!(SubscriptionDescription::backlog(&p(10, 20, 15, 2)), 2);
    }

    #[test]
    fn a_listed_definition_gives_back_the_config_it_came_from() {
        let config = SubscriptionConfig {
            filter: "region = \"eu\"",
            max_deliveries: 5,
            dead_letter_topic: "orders.dlq",
            ordering: true,
            start: StartPosition::Timestamp(1_700_000_000_000),
            ..SubscriptionConfig::new("billing", "orders")
        };
        let owned = Subscription::from_config(&config);
        assert_eq!(owned.filter.as_deref(), Some("region = \"eu\""));
        assert_eq!(owned.ack_deadline, Duration::from_secs(30));
        assert_eq!(owned.as_config(), config);
        let plain = Subscription::from_config(&SubscriptionConfig::new("b", "orders"));
        assert_eq!((plain.filter, plain.dead_letter_topic), (None, None));
    }
}
