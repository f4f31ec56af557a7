//! The consumer: one prefetching fetch loop per partition, messages handed
//! out in offset order per partition, round-robin across partitions.
//!
//! Each partition's background task holds a semaphore of `prefetch`
//! permits; it takes one before each fetch and sends the response, with
//! the permit, into one bounded channel. The [`Consumer`] releases a
//! permit when it has handed out the last message of that response, so at
//! most `prefetch` responses per partition are ever buffered, and the next
//! fetch is already under way while earlier ones are being read.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::data::Fetched;
use crate::error::{Error, Result};
use crate::{ErrorCode, OffsetSpec};

/// How often a partition's fetch loop retries a retriable error before it
/// gives up and reports the error through [`Consumer::next`]. Sized to
/// ride out a server restart: the backoffs add up to about 4 s, and a
/// retry that finds the connection lost also waits for one reconnect
/// attempt (up to [`CONNECT_TIMEOUT`](crate::CONNECT_TIMEOUT)), so a
/// restart of several seconds is survived, while a server that stays away
/// is reported after 11 attempts (under two minutes even when every
/// attempt waits out the connect timeout).
const FETCH_RETRIES: u32 = 10;
/// First wait between fetch retries; doubles on each retry.
const FETCH_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest wait between fetch retries.
const FETCH_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Upper bound on [`ConsumerConfig::prefetch`].
pub const PREFETCH_MAX: usize = 64;

/// Where a [`Consumer`] starts reading each of its partitions.
///
/// # Example
///
/// ```
/// use tidegate_client::Start;
///
/// assert_eq!(Start::default(), Start::Latest);
/// # let _ = (Start::Earliest, Start::Offset(42), Start::Timestamp(1_700_000_000_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Start {
    /// The first offset still stored.
    Earliest,
    /// The high watermark when the consumer is created: only messages
    /// produced after [`Consumer::new`] returns. The default.
    #[default]
    Latest,
    /// This offset, in every partition consumed.
    Offset(u64),
    /// The first message with a timestamp at or after this one (ms since
    /// the Unix epoch), looked up per partition.
    Timestamp(i64),
}

/// How a [`Consumer`] reads.
///
/// # Example
///
/// ```
/// use tidegate_client::{ConsumerConfig, Start};
///
/// let config = ConsumerConfig { start: Start::Earliest, partitions: Some(vec![0, 2]), ..ConsumerConfig::default() };
/// assert_eq!(config.max_bytes, 1 << 20);
/// assert_eq!(config.prefetch, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Where to start in each partition (default [`Start::Latest`]).
    pub start: Start,
    /// The partitions to read; `None` (the default) reads every partition
    /// of the topic.
    pub partitions: Option<Vec<u32>>,
    /// About how many bytes one fetch returns (default 1 MiB; the protocol
    /// allows 1 byte to 32 MiB).
    pub max_bytes: u32,
    /// How long one fetch waits at the end of a partition for new data
    /// (default 500 ms, at most 60 s).
    pub max_wait: Duration,
    /// How many fetch responses are buffered ahead per partition (default
    /// 2; brought within 1..=[`PREFETCH_MAX`]).
    pub prefetch: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            start: Start::Latest,
            partitions: None,
            max_bytes: 1 << 20,
            max_wait: Duration::from_millis(500),
            prefetch: 2,
        }
    }
}

/// One consumed message. Its key, value and header values are slices of
/// the fetch response's buffer ([`Bytes`]), not copies; holding a message
/// keeps that response's buffer alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedMessage {
    partition: u32,
    offset: u64,
    timestamp_ms: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(Bytes, Bytes)>,
}

impl ConsumedMessage {
    /// The partition it is stored in.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Its offset in the partition.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Its timestamp, in ms since the Unix epoch, as the producer set it.
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    /// Its key, if it has one (cheap to clone: a slice of the response).
    pub fn key(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// Its value, if it has one (`None` is a tombstone, not an empty
    /// value); cheap to clone: a slice of the response.
    pub fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }

    /// Its headers, `(name, value)`, in the order the producer added them.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &Bytes)> + '_ {
        // Names were checked to be UTF-8 when the record was decoded.
        self.headers
            .iter()
            .map(|(name, value)| (std::str::from_utf8(name).unwrap_or_default(), value))
    }
}

/// Reads a topic, or some of its partitions, with prefetch.
///
/// Each partition is read by its own background task, which keeps up to
/// [`prefetch`](ConsumerConfig::prefetch) fetch responses ahead and
/// long-polls at the end of the partition. [`next`](Consumer::next)
/// returns messages in offset order per partition, taking turns between
/// the partitions that have data. Dropping the consumer (or
/// [`close`](Consumer::close)) stops the tasks.
///
/// A fetch that fails with a retriable error (the connection was lost, the
/// server is restarting or busy) is retried from the same offset, with
/// backoff, while the [`Client`] reconnects; so after a server restart of
/// a few seconds the consumer goes on from its position, without gaps or
/// repeats.
///
/// # Example
///
/// ```no_run
/// use tidegate_client::{Client, Consumer, ConsumerConfig, Start};
///
/// # async fn run(client: Client) -> Result<(), tidegate_client::Error> {
/// let config = ConsumerConfig { start: Start::Earliest, ..ConsumerConfig::default() };
/// let mut consumer = Consumer::new(client, "orders", config).await?;
/// while let Some(message) = consumer.next().await? {
///     println!("{}@{}: {:?}", message.partition(), message.offset(), message.value());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Consumer {
    parts: Vec<Part>,
    rx: mpsc::Receiver<Delivery>,
    tasks: Vec<JoinHandle<()>>,
    /// The partition index whose turn it is.
    cursor: usize,
    /// Emptied message queues kept for the next responses: a response of
    /// 1 MiB decodes into about 1 MiB of messages, and allocating (and
    /// faulting in) that anew for every response cost more than decoding.
    spare: Vec<VecDeque<ConsumedMessage>>,
}

/// The consumer's side of one partition.
#[derive(Debug)]
struct Part {
    partition: u32,
    /// The offset of the next message `next` returns from it.
    position: u64,
    /// Decoded responses not yet handed out, oldest first.
    chunks: VecDeque<Chunk>,
}

/// The messages of one fetch response and its prefetch permit.
#[derive(Debug)]
struct Chunk {
    messages: VecDeque<ConsumedMessage>,
    /// One past the last offset the response covered: the position once
    /// the chunk is done, past any duplicate markers at its end (which
    /// are not messages, so would otherwise hold the position back).
    next_offset: u64,
    _permit: OwnedSemaphorePermit,
}

/// What a fetch loop sends: a response or the error it gave up on.
#[derive(Debug)]
struct Delivery {
    index: usize,
    fetched: Result<Fetched>,
    permit: OwnedSemaphorePermit,
}

impl Consumer {
    /// Looks up the topic's partitions and start offsets, then starts one
    /// fetch loop per partition.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] with [`ErrorCode::UnknownTopic`] for a topic that
    /// does not exist, [`ErrorCode::UnknownPartition`] for a listed
    /// partition it does not have; [`Error::InvalidRequest`] for an empty
    /// partition list or a `max_bytes`/`max_wait` the protocol refuses
    /// (checked by the first fetch, so reported through
    /// [`next`](Consumer::next)); any error of the lookups.
    pub async fn new(client: Client, topic: &str, config: ConsumerConfig) -> Result<Consumer> {
        let description = client.describe_topic(topic).await?;
        let partitions = match &config.partitions {
            None => description.partitions.iter().map(|p| p.partition).collect(),
            Some(list) if list.is_empty() => {
                return Err(Error::InvalidRequest("no partitions to consume".into()))
            }
            Some(list) => {
                let mut list = list.clone();
                list.sort_unstable();
                list.dedup();
                list
            }
        };
        let mut parts = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let info = description
                .partitions
                .iter()
                .find(|p| p.partition == partition)
                .ok_or_else(|| Error::Server {
                    code: ErrorCode::UnknownPartition,
                    message: format!("topic {topic:?} has no partition {partition}"),
                })?;
            let position = match config.start {
                Start::Earliest => info.earliest,
                Start::Latest => info.latest,
                Start::Offset(offset) => offset,
                Start::Timestamp(ts) => {
                    client
                        .list_offsets(topic, partition, OffsetSpec::Timestamp(ts))
                        .await?
                }
            };
            parts.push((partition, position));
        }
        Ok(Self::at_positions(client, topic, &parts, &config))
    }

    /// Starts one fetch loop per `(partition, position)`, with no lookups
    /// (a group consumer knows its positions from the committed offsets).
    pub(crate) fn at_positions(
        client: Client,
        topic: &str,
        positions: &[(u32, u64)],
        config: &ConsumerConfig,
    ) -> Consumer {
        let parts: Vec<Part> = positions
            .iter()
            .map(|&(partition, position)| Part {
                partition,
                position,
                chunks: VecDeque::new(),
            })
            .collect();
        let prefetch = config.prefetch.clamp(1, PREFETCH_MAX);
        let (tx, rx) = mpsc::channel((prefetch * parts.len()).max(1));
        let topic: Arc<str> = Arc::from(topic);
        let tasks = parts
            .iter()
            .enumerate()
            .map(|(index, part)| {
                let fetch_loop = FetchLoop {
                    client: client.clone(),
                    topic: topic.clone(),
                    partition: part.partition,
                    index,
                    max_bytes: config.max_bytes,
                    max_wait: config.max_wait,
                };
                let permits = Arc::new(Semaphore::new(prefetch));
                tokio::spawn(fetch_loop.run(part.position, permits, tx.clone()))
            })
            .collect();
        Consumer {
            parts,
            rx,
            tasks,
            cursor: 0,
            spare: Vec::new(),
        }
    }

    /// The next message: in offset order within a partition, taking turns
    /// between partitions that have messages buffered. Waits while none
    /// has.
    ///
    /// # Errors
    ///
    /// The error a partition's fetch loop gave up on (a retriable one
    /// after 10 retries with backoff, any other at once), or
    /// [`Error::Protocol`] for a response that does not decode. Either way
    /// that partition is no longer read; the others go on. `Ok(None)` once
    /// every partition has stopped.
    pub async fn next(&mut self) -> Result<Option<ConsumedMessage>> {
        loop {
            while let Ok(delivery) = self.rx.try_recv() {
                self.absorb(delivery)?;
            }
            if let Some(message) = self.pop() {
                return Ok(Some(message));
            }
            match self.rx.recv().await {
                Some(delivery) => self.absorb(delivery)?,
                None => return Ok(None),
            }
        }
    }

    /// The offset of the next message [`next`](Consumer::next) returns
    /// from `partition` (the start offset until one is returned); `None`
    /// for a partition this consumer does not read.
    pub fn position(&self, partition: u32) -> Option<u64> {
        self.parts
            .iter()
            .find(|p| p.partition == partition)
            .map(|p| p.position)
    }

    /// The partitions this consumer reads, in ascending order.
    pub fn partitions(&self) -> impl Iterator<Item = u32> + '_ {
        self.parts.iter().map(|p| p.partition)
    }

    /// Stops the fetch loops and waits for them to end. Messages buffered
    /// but not returned are dropped.
    pub async fn close(mut self) {
        for task in std::mem::take(&mut self.tasks) {
            task.abort();
            let _ = task.await;
        }
    }

    /// Decodes a response into its partition's buffer.
    fn absorb(&mut self, delivery: Delivery) -> Result<()> {
        let fetched = delivery.fetched?;
        let mut messages = self.spare.pop().unwrap_or_default();
        decode_into(&fetched, &mut messages).inspect_err(|_| {
            // Reading past a bad response would skip messages silently.
            if let Some(task) = self.tasks.get(delivery.index) {
                task.abort();
            }
        })?;
        // A response with nothing at or after the offset asked for (a batch
        // wholly before it) is not queued: an empty chunk would end that
        // partition's turn in `pop` while later chunks wait behind it. Its
        // permit is released here, so the fetch loop goes on.
        let next_offset = fetched.next_offset();
        let Some(part) = self.parts.get_mut(delivery.index) else {
            return Ok(());
        };
        if messages.is_empty() {
            // Nothing queued before it: its end is the position now (past
            // markers). Otherwise the position moves when the queue gets
            // here, not before what is queued ahead of it.
            if part.chunks.is_empty() {
                part.position = part.position.max(next_offset);
            } else {
                part.chunks.push_back(Chunk {
                    messages: VecDeque::new(),
                    next_offset,
                    _permit: delivery.permit,
                });
                return Ok(());
            }
            if self.spare.len() < SPARE_QUEUES_MAX {
                self.spare.push(messages);
            }
            return Ok(());
        }
        part.chunks.push_back(Chunk {
            messages,
            next_offset,
            _permit: delivery.permit,
        });
        Ok(())
    }

    /// The next message of the first partition with data, starting at the
    /// cursor; the cursor then moves past that partition.
    fn pop(&mut self) -> Option<ConsumedMessage> {
        let n = self.parts.len();
        for step in 0..n {
            let index = (self.cursor + step) % n;
            let part = &mut self.parts[index];
            // A chunk of markers only holds no message: past it, the
            // partition's next chunk may.
            while let Some(chunk) = part.chunks.front_mut() {
                let message = chunk.messages.pop_front();
                if let Some(message) = &message {
                    part.position = message.offset + 1;
                }
                if chunk.messages.is_empty() {
                    // Releases the permit: the fetch loop may fetch again.
                    if let Some(done) = part.chunks.pop_front() {
                        part.position = part.position.max(done.next_offset);
                        if self.spare.len() < SPARE_QUEUES_MAX {
                            self.spare.push(done.messages);
                        }
                    }
                }
                if let Some(message) = message {
                    self.cursor = (index + 1) % n;
                    return Some(message);
                }
            }
        }
        None
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Emptied message queues a consumer keeps for reuse.
const SPARE_QUEUES_MAX: usize = 4;

/// The messages of a response, at or after the offset asked for, as
/// slices of its buffer, into `out` (emptied first).
fn decode_into(fetched: &Fetched, out: &mut VecDeque<ConsumedMessage>) -> Result<()> {
    out.clear();
    let buf = &fetched.batches;
    let slice = |s: &[u8]| buf.slice_ref(s);
    for message in fetched.messages() {
        let message = message?;
        out.push_back(ConsumedMessage {
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp_ms(),
            key: message.key().map(slice),
            value: message.value().map(slice),
            headers: message
                .headers()
                .map(|(name, value)| (slice(name.as_bytes()), slice(value)))
                .collect(),
        });
    }
    Ok(())
}

/// One partition's background fetch loop.
struct FetchLoop {
    client: Client,
    topic: Arc<str>,
    partition: u32,
    index: usize,
    max_bytes: u32,
    max_wait: Duration,
}

impl FetchLoop {
    /// Fetches from `offset` on, one response per permit, until the
    /// consumer goes away or a fetch fails for good (that error is sent).
    async fn run(self, mut offset: u64, permits: Arc<Semaphore>, tx: mpsc::Sender<Delivery>) {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let fetched = self.fetch_with_retries(offset).await;
            let failed = fetched.is_err();
            if let Ok(f) = &fetched {
                if f.is_empty() {
                    // A long poll that ended without data: ask again.
                    continue;
                }
                offset = f.next_offset();
            }
            let delivery = Delivery {
                index: self.index,
                fetched,
                permit,
            };
            if tx.send(delivery).await.is_err() || failed {
                return;
            }
        }
    }

    async fn fetch_with_retries(&self, offset: u64) -> Result<Fetched> {
        let mut retry = 0;
        loop {
            let result = self
                .client
                .fetch(
                    &self.topic,
                    self.partition,
                    offset,
                    self.max_bytes,
                    self.max_wait,
                )
                .await;
            match result {
                Err(e) if e.is_retriable() && retry < FETCH_RETRIES => {
                    let wait = backoff(retry);
                    tracing::debug!(
                        "fetch of {}/{} failed, retrying in {wait:?}: {e}",
                        self.topic,
                        self.partition
                    );
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                other => return other,
            }
        }
    }
}

/// The wait before retry number `retry` (from 0): doubling, capped.
fn backoff(retry: u32) -> Duration {
    FETCH_BACKOFF_MIN
        .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
        .min(FETCH_BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidegate_proto::batch::{BatchBuilder, Record};

    #[test]
    fn decoded_messages_are_slices_of_the_response_from_the_offset_asked_for() {
        let mut builder = BatchBuilder::new();
        for value in [&b"a"[..], b"b", b"c"] {
            builder
                .push(Record {
                    timestamp_ms: 7,
                    key: Some(b"k"),
                    value: Some(value),
                    headers: &[("h", b"v")],
                })
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let batches = Bytes::from(builder.finish().unwrap_or_else(|e| panic!("{e}")));
        let fetched = Fetched {
            partition: 3,
            offset: 1,
            high_watermark: 3,
            batches: batches.clone(),
        };
        let mut messages = VecDeque::new();
        decode_into(&fetched, &mut messages).unwrap_or_else(|e| panic!("{e}"));
        let offsets: Vec<_> = messages.iter().map(ConsumedMessage::offset).collect();
        assert_eq!(offsets, [1, 2]);
        let m = &messages[0];
        assert_eq!((m.partition(), m.timestamp_ms()), (3, 7));
        assert_eq!(m.value().map(|v| &v[..]), Some(&b"b"[..]));
        let headers: Vec<_> = m.headers().map(|(n, v)| (n, &v[..])).collect();
        assert_eq!(headers, [("h", &b"v"[..])]);
        let range = batches.as_ptr_range();
        for m in &messages {
            assert!(m.value().is_some_and(|v| range.contains(&v.as_ptr())));
            assert!(m.key().is_some_and(|k| range.contains(&k.as_ptr())));
        }
    }

    /// A chunk of `offsets` for the partition at `index`, with a permit.
    fn chunk(partition: u32, offsets: &[u64]) -> Chunk {
        let messages = offsets
            .iter()
            .map(|&offset| ConsumedMessage {
                partition,
                offset,
                timestamp_ms: 0,
                key: None,
                value: None,
                headers: Vec::new(),
            })
            .collect();
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned();
        Chunk {
            messages,
            next_offset: offsets.last().map_or(0, |o| o + 1),
            _permit: permit.unwrap_or_else(|e| panic!("{e}")),
        }
    }

    #[test]
    fn pop_takes_turns_between_partitions_with_data_in_offset_order() {
        let (_tx, rx) = mpsc::channel(1);
        let part = |partition, chunks: Vec<Chunk>| Part {
            partition,
            position: 0,
            chunks: chunks.into(),
        };
        let mut consumer = Consumer {
            parts: vec![
                part(0, vec![chunk(0, &[0, 1]), chunk(0, &[2])]),
                part(1, vec![]),
                part(2, vec![chunk(2, &[5])]),
            ],
            rx,
            tasks: Vec::new(),
            cursor: 0,
            spare: Vec::new(),
        };
        let order: Vec<_> = std::iter::from_fn(|| consumer.pop())
            .map(|m| (m.partition(), m.offset()))
            .collect();
        assert_eq!(order, [(0, 0), (2, 5), (0, 1), (0, 2)]);
        assert_eq!(consumer.position(0), Some(3));
        assert_eq!(consumer.position(1), Some(0));
        assert_eq!(consumer.position(2), Some(6));
    }

    /// Duplicate markers are not messages: a response that ends with them
    /// (or holds only them) moves the position past them once everything
    /// before them is taken, so a group's committed offset and lag do not
    /// stop short of the end.
    #[test]
    fn the_position_moves_past_markers_at_the_end_of_a_response() {
        let (_tx, rx) = mpsc::channel(1);
        let mut ends_in_markers = chunk(0, &[0, 1]);
        ends_in_markers.next_offset = 4;
        let mut only_markers = chunk(0, &[]);
        only_markers.next_offset = 6;
        let mut consumer = Consumer {
            parts: vec![Part {
                partition: 0,
                position: 0,
                chunks: vec![ends_in_markers, only_markers, chunk(0, &[6])].into(),
            }],
            rx,
            tasks: Vec::new(),
            cursor: 0,
            spare: Vec::new(),
        };
        assert_eq!(consumer.pop().map(|m| m.offset()), Some(0));
        assert_eq!(consumer.position(0), Some(1), "not past what is unread");
        assert_eq!(consumer.pop().map(|m| m.offset()), Some(1));
        assert_eq!(consumer.position(0), Some(4), "past the markers");
        assert_eq!(consumer.pop().map(|m| m.offset()), Some(6));
        assert_eq!(consumer.position(0), Some(7));
    }

    /// A response whose records all lie before the offset asked for must
    /// not block the responses after it.
    #[test]
    fn a_response_with_nothing_from_the_offset_does_not_hide_the_next() {
        let batch = |values: &[&[u8]]| {
            let mut builder = BatchBuilder::new();
            for value in values {
                builder
                    .push(Record {
                        timestamp_ms: 0,
                        key: None,
                        value: Some(value),
                        headers: &[],
                    })
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            Bytes::from(builder.finish().unwrap_or_else(|e| panic!("{e}")))
        };
        let delivery = |offset, batches| {
            let permits = Arc::new(Semaphore::new(1));
            Delivery {
                index: 0,
                fetched: Ok(Fetched {
                    partition: 0,
                    offset,
                    high_watermark: 10,
                    batches,
                }),
                permit: permits
                    .try_acquire_owned()
                    .unwrap_or_else(|e| panic!("{e}")),
            }
        };
        let (_tx, rx) = mpsc::channel(1);
        let mut consumer = Consumer {
            parts: vec![Part {
                partition: 0,
                position: 0,
                chunks: VecDeque::new(),
            }],
            rx,
            tasks: Vec::new(),
            cursor: 0,
            spare: Vec::new(),
        };
        // Offsets 0..2 asked from 5: nothing to hand out.
        consumer
            .absorb(delivery(5, batch(&[b"x", b"y"])))
            .unwrap_or_else(|e| panic!("{e}"));
        consumer
            .absorb(delivery(0, batch(&[b"a"])))
            .unwrap_or_else(|e| panic!("{e}"));
        let first = consumer.pop().map(|m| m.value().map(|v| v.to_vec()));
        assert_eq!(first, Some(Some(b"a".to_vec())));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(0), FETCH_BACKOFF_MIN);
        assert_eq!(backoff(3), FETCH_BACKOFF_MIN * 8);
        assert_eq!(backoff(40), FETCH_BACKOFF_MAX);
    }
}
