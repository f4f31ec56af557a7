//! The batching producer: per-partition batches sent by linger or size,
//! retries with backoff, a receipt per message, bounded memory.
//!
//! One tokio task (the worker) owns every open batch. [`Producer::send`]
//! reserves the message's bytes from the memory budget, then hands the
//! message to the worker over a bounded channel; the worker appends it to
//! its partition's open batch and sends closed batches, each in its own
//! short-lived task that also does the retries: an idempotent producer up
//! to [`ProducerConfig::max_in_flight_per_partition`] per partition, whose
//! requests go out in sequence order (see [`Turn`]), any other one batch
//! per partition at a time.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tidegate_proto::batch::dedup::MESSAGE_ID_HEADER;
use tidegate_proto::batch::{
    next_sequence, BatchBuilder, Record, MAX_BATCH_BYTES, MAX_RECORDS_PER_BATCH,
};
use tidegate_proto::partitioner::key_to_partition;
use tidegate_proto::protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::client::Client;
use crate::data::{Ack, Produced, ProducerIdentity, Target};
use crate::error::{Error, Result};

/// Messages and flushes queued between [`Producer::send`] and the worker.
const COMMAND_QUEUE_LEN: usize = 1024;
/// Commands the worker takes in one go before sending batches.
const COMMANDS_PER_TURN: usize = 256;
/// Longest server throttle hint a partition honours before its next send.
const THROTTLE_MAX: Duration = Duration::from_secs(1);
/// Bytes counted for a record besides its key, value and header bytes
/// (varints, attributes): an upper bound of the batch format's overhead.
const RECORD_OVERHEAD_BYTES: usize = 64;
/// Bytes counted per header besides its name and value.
const HEADER_OVERHEAD_BYTES: usize = 20;
/// Most batches of one idempotent producer in flight to one partition (as
/// Kafka's idempotent producer). The partition remembers a producer's last
/// 8 batches, so a retry of any batch still in flight is recognised as a
/// duplicate; waiting for predecessors is bounded by the same 8.
pub const MAX_IN_FLIGHT_PER_PARTITION: usize = 5;

/// How a [`Producer`] batches, acknowledges and retries.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tidegate_client::{Ack, ProducerConfig};
///
/// let config = ProducerConfig {
///     ack: Ack::Written,
///     linger: Duration::from_millis(20),
///     ..ProducerConfig::default()
/// };
/// assert_eq!(config.batch_max_records, 10_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// How far each batch must get before the server answers. Default
    /// [`Ack::Durable`]. With [`Ack::None`] receipts carry no offset.
    pub ack: Ack,
    /// A batch is sent once it would grow past this many bytes. Default
    /// 1 MiB; capped at the protocol's
    /// [`MAX_BATCH_BYTES`](tidegate_proto::batch::MAX_BATCH_BYTES). A
    /// single message larger than this is refused by [`Producer::send`].
    pub batch_max_bytes: usize,
    /// A batch is sent once it holds this many messages. Default 10,000.
    pub batch_max_records: u32,
    /// A batch is sent at the latest this long after its first message.
    /// Default 5 ms.
    pub linger: Duration,
    /// Produce requests in flight at once across all partitions (at least
    /// 1). Default 8.
    pub max_in_flight: usize,
    /// Produce requests in flight at once to one partition, for an
    /// idempotent producer (1 to [`MAX_IN_FLIGHT_PER_PARTITION`]). Default
    /// 5. A producer without idempotence has at most one per partition:
    /// see [`Producer`] for why.
    pub max_in_flight_per_partition: usize,
    /// Further attempts of a batch after a retriable error
    /// ([`Error::is_retriable`]). Default 5.
    pub retries: u32,
    /// Backoff before the first retry; doubled for each further one.
    /// Default 10 ms.
    pub retry_backoff_min: Duration,
    /// Longest backoff between retries. Default 1 s.
    pub retry_backoff_max: Duration,
    /// Bytes of messages the producer holds (queued, batched or in flight)
    /// before [`Producer::send`] waits for some to be acknowledged.
    /// Default 64 MiB.
    pub buffer_max_bytes: usize,
    /// Write each batch at most once, whatever is retried
    /// (`docs/SEMANTICS.md` §2): the producer gets an identity from the
    /// server ([`Client::init_producer`]) and numbers its batches, so a
    /// batch sent again is answered with its first offsets. Default true.
    /// Against a server without idempotence the producer carries on
    /// without it (and logs a warning).
    pub idempotent: bool,
    /// A stable name for this producer (at most 255 bytes): a new producer
    /// of the same name fences this one, whose sends then fail with
    /// [`ErrorCode::ProducerFenced`](crate::ErrorCode::ProducerFenced).
    /// Default none. Only with `idempotent`.
    pub name: Option<String>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            ack: Ack::Durable,
            batch_max_bytes: 1 << 20,
            batch_max_records: 10_000,
            linger: Duration::from_millis(5),
            max_in_flight: 8,
            max_in_flight_per_partition: MAX_IN_FLIGHT_PER_PARTITION,
            retries: 5,
            retry_backoff_min: Duration::from_millis(10),
            retry_backoff_max: Duration::from_secs(1),
            buffer_max_bytes: 64 << 20,
            idempotent: true,
            name: None,
        }
    }
}

impl ProducerConfig {
    /// The settings brought within the protocol's limits and made usable
    /// (no zero counts).
    fn normalized(mut self) -> Self {
        self.batch_max_bytes = self.batch_max_bytes.clamp(1, MAX_BATCH_BYTES);
        self.batch_max_records = self.batch_max_records.clamp(1, MAX_RECORDS_PER_BATCH);
        self.max_in_flight = self.max_in_flight.max(1);
        self.max_in_flight_per_partition = self
            .max_in_flight_per_partition
            .clamp(1, MAX_IN_FLIGHT_PER_PARTITION);
        self.buffer_max_bytes = self.buffer_max_bytes.clamp(1, Semaphore::MAX_PERMITS);
        self.retry_backoff_max = self.retry_backoff_max.max(self.retry_backoff_min);
        self
    }

    /// The wait before retry number `attempt` (0 for the first retry):
    /// `retry_backoff_min * 2^attempt`, capped at `retry_backoff_max`, then
    /// jittered into its upper half by `random` so that producers that
    /// failed together do not retry together.
    fn backoff(&self, attempt: u32, random: u64) -> Duration {
        let exp = self
            .retry_backoff_min
            .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX));
        let full = exp.min(self.retry_backoff_max);
        let half = full / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = random.checked_rem(nanos.saturating_add(1)).unwrap_or(0);
        half + Duration::from_nanos(jitter)
    }
}

/// One message for [`Producer::send`].
///
/// (The messages a fetch returns are [`Message`](crate::Message)s; this
/// one owns its bytes, which are copied into a batch when it is sent.)
///
/// # Example
///
/// ```
/// use tidegate_client::ProducerRecord;
///
/// let record = ProducerRecord::new("paid")
///     .with_key("customer-7")
///     .with_header("trace-id", "abc");
/// assert_eq!(record.partition, None); // chosen from the key
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerRecord {
    /// The key; it picks the partition unless `partition` is set.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers, `(name, value)`, kept in this order.
    pub headers: Vec<(String, Bytes)>,
    /// Milliseconds since the Unix epoch; `None` means the time of
    /// [`Producer::send`].
    pub timestamp_ms: Option<i64>,
    /// An explicit partition, which wins over the key.
    pub partition: Option<u32>,
}

impl ProducerRecord {
    /// A message with this value and nothing else set.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Self {
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Names the message for deduplication (header `tg-msg-id`): on a
    /// topic with a dedup window, a second message with the same id within
    /// the window is stored as a marker that readers skip, so a retry
    /// after a lost answer is not delivered twice (docs/SEMANTICS.md §6).
    /// Without a key or partition, the id picks the partition, so every
    /// copy lands where the first did.
    pub fn with_message_id(self, id: impl Into<Bytes>) -> Self {
        self.with_header(MESSAGE_ID_HEADER, id)
    }

    /// The message id, if [`with_message_id`](Self::with_message_id) set one.
    pub fn message_id(&self) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|(name, _)| name == MESSAGE_ID_HEADER)
            .map(|(_, v)| v)
    }

    /// Sets the partition explicitly.
    pub fn with_partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp, in ms since the Unix epoch.
    pub fn with_timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Bytes this message is counted for, in a batch and in the memory
    /// budget: an upper bound of its encoded size.
    fn budget_bytes(&self) -> usize {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + HEADER_OVERHEAD_BYTES)
            .sum();
        RECORD_OVERHEAD_BYTES + len(&self.key) + len(&self.value) + headers
    }
}

/// Where a message was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Delivered {
    /// The partition.
    pub partition: u32,
    /// Its offset in the partition; `None` with [`Ack::None`].
    pub offset: Option<u64>,
}

/// The outcome of one [`Producer::send`]: a future that resolves once the
/// message's batch is acknowledged, or has failed for good.
///
/// Dropping it is fine: the message is sent all the same.
///
/// # Example
///
/// ```no_run
/// # async fn run(producer: tidegate_client::Producer) -> Result<(), tidegate_client::Error> {
/// let receipt = producer.send("orders", tidegate_client::ProducerRecord::new("paid")).await?;
/// let delivered = receipt.await?;
/// println!("partition {} offset {:?}", delivered.partition, delivered.offset);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a receipt tells whether the message was stored"]
pub struct Receipt {
    rx: oneshot::Receiver<Result<Delivered>>,
}

impl Future for Receipt {
    type Output = Result<Delivered>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

/// A batching producer on top of a [`Client`].
///
/// [`send`](Producer::send) appends a message to its partition's open
/// batch and returns a [`Receipt`] at once (it waits only when
/// [`buffer_max_bytes`](ProducerConfig::buffer_max_bytes) are held). A
/// batch is sent when it is full or [`linger`](ProducerConfig::linger)
/// after its first message.
///
/// **Partitions.** An explicit partition wins; else a key is hashed with
/// [`key_to_partition`] (as the server and Kafka do), the partition count
/// coming from [`Client::describe_topic`] once per topic and then cached
/// for the producer's life; else keyless messages stick to one partition
/// until that partition's batch is closed, then move to the next one
/// round-robin (Kafka's sticky partitioner: full batches, even spread).
///
/// **Order.** Messages of one partition are stored in the order `send` was
/// called. An idempotent producer (the default) keeps up to
/// [`max_in_flight_per_partition`](ProducerConfig::max_in_flight_per_partition)
/// batches in flight to each partition: they carry consecutive sequence
/// numbers, go out in that order, and the server appends them in that
/// order whatever order they arrive in, retries included
/// (`docs/SEMANTICS.md` §2). When one fails for good, the ones after it
/// land only if it did (else they fail with `out_of_order_sequence`). Without
/// idempotence a partition has one batch in flight: with two, a first
/// batch that fails and is retried would land after the second, and a
/// retry after a [`Transport`](Error::Transport) error may store a batch
/// twice (at-least-once). Parallelism also comes from many partitions in
/// flight at once (up to [`max_in_flight`](ProducerConfig::max_in_flight))
/// and from large batches.
///
/// **Reconnects.** When the server restarts or the connection drops, the
/// batches in flight fail with a retriable [`Transport`](Error::Transport)
/// error and are retried, and the [`Client`] reconnects before the retry
/// is sent (see [Reconnection](Client#reconnection)); so messages keep
/// flowing once the server is back, within the
/// [`retries`](ProducerConfig::retries) budget. Delivery across a
/// reconnect is *at least once*: a batch the server stored just before the
/// connection dropped is stored again by its retry, and its receipts give
/// the offsets of that second copy.
///
/// **Shutdown.** [`close`](Producer::close) sends what is left and waits
/// for it. Dropping the producer instead stops it at once: receipts not yet
/// resolved resolve to [`Error::Closed`] (their messages may or may not be
/// stored).
///
/// Share one producer between tasks with an `Arc`; it needs a tokio runtime.
///
/// # Example
///
/// ```no_run
/// use tidegate_client::{Client, Producer, ProducerConfig, ProducerRecord, Tls};
///
/// # async fn run() -> Result<(), tidegate_client::Error> {
/// let client = Client::connect("127.0.0.1:7441".parse().unwrap(), Tls::system_roots()).await?;
/// let producer = Producer::new(client, ProducerConfig::default());
/// let mut receipts = Vec::new();
/// for i in 0..1000 {
///     let record = ProducerRecord::new(format!("event {i}")).with_key(format!("user-{}", i % 10));
///     receipts.push(producer.send("events", record).await?);
/// }
/// for receipt in receipts {
///     receipt.await?;
/// }
/// producer.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Producer {
    tx: mpsc::Sender<Command>,
    memory: Arc<Semaphore>,
    /// Largest message accepted, in budget bytes.
    message_max_bytes: usize,
    worker: Option<JoinHandle<()>>,
    throttle: Arc<ThrottleCounts>,
}

/// The server's throttle hints a producer received and honoured.
#[derive(Debug, Default)]
struct ThrottleCounts {
    hints: AtomicU64,
    /// Each hint as honoured (at most [`THROTTLE_MAX`]), ms.
    throttled_ms: AtomicU64,
}

impl ThrottleCounts {
    /// Counts the hint of one produce answer; a zero hint is none.
    fn count(&self, throttle: Duration) {
        if throttle.is_zero() {
            return;
        }
        let ms = u64::try_from(throttle.min(THROTTLE_MAX).as_millis()).unwrap_or(u64::MAX);
        self.hints.fetch_add(1, Ordering::Relaxed);
        self.throttled_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Producer {
    /// Starts a producer sending through `client` (the connection is shared
    /// with the client's other users). Settings out of range are brought
    /// into range (see [`ProducerConfig`]).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tidegate_client::{Client, Producer, ProducerConfig};
    ///
    /// # fn run(client: Client) {
    /// let producer = Producer::new(client, ProducerConfig::default());
    /// # }
    /// ```
    pub fn new(client: Client, config: ProducerConfig) -> Producer {
        let config = config.normalized();
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE_LEN);
        let memory = Arc::new(Semaphore::new(config.buffer_max_bytes));
        let message_max_bytes = config.batch_max_bytes.min(config.buffer_max_bytes);
        let throttle = Arc::new(ThrottleCounts::default());
        let worker = Worker::new(client, config, rx, memory.clone(), throttle.clone());
        Producer {
            tx,
            memory,
            message_max_bytes,
            worker: Some(tokio::spawn(worker.run())),
            throttle,
        }
    }

    /// How many produce answers so far carried a throttle hint
    /// ([`Produced::throttle`]): the server asked this producer to slow
    /// down, and the hint's partition waited before its next batch. Counts
    /// are complete for the messages whose receipts have resolved (e.g.
    /// after [`flush`](Producer::flush)).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(producer: tidegate_client::Producer) {
    /// producer.flush().await;
    /// if producer.throttle_hints() > 0 {
    ///     eprintln!(
    ///         "throttled {} times, {:?} in all",
    ///         producer.throttle_hints(),
    ///         producer.throttled()
    ///     );
    /// }
    /// # }
    /// ```
    pub fn throttle_hints(&self) -> u64 {
        self.throttle.hints.load(Ordering::Relaxed)
    }

    /// The sum of the throttle hints counted by
    /// [`throttle_hints`](Producer::throttle_hints), each as honoured (at
    /// most 1 s): how long partitions were held back, added over
    /// partitions.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # fn run(producer: &tidegate_client::Producer) {
    /// println!("held back {:?} by the server", producer.throttled());
    /// # }
    /// ```
    pub fn throttled(&self) -> Duration {
        Duration::from_millis(self.throttle.throttled_ms.load(Ordering::Relaxed))
    }

    /// Queues `record` for `topic` and returns its [`Receipt`]. Waits only
    /// while the producer holds
    /// [`buffer_max_bytes`](ProducerConfig::buffer_max_bytes) of messages.
    ///
    /// Errors about the topic (unknown topic or partition) come through the
    /// receipt, as do failed sends.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] when the message is larger than
    /// [`batch_max_bytes`](ProducerConfig::batch_max_bytes) or
    /// `buffer_max_bytes`; [`Error::Closed`] if the producer has stopped.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tidegate_client::ProducerRecord;
    ///
    /// # async fn run(producer: tidegate_client::Producer) -> Result<(), tidegate_client::Error> {
    /// let receipt = producer.send("orders", ProducerRecord::new("paid").with_partition(2)).await?;
    /// assert_eq!(receipt.await?.partition, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&self, topic: &str, mut record: ProducerRecord) -> Result<Receipt> {
        let bytes = record.budget_bytes();
        if bytes > self.message_max_bytes {
            return Err(Error::InvalidRequest(format!(
                "message of about {bytes} bytes exceeds the producer's limit of {} bytes",
                self.message_max_bytes
            )));
        }
        // At most `batch_max_bytes`, itself at most MAX_BATCH_BYTES.
        let permits = u32::try_from(bytes)
            .map_err(|_| Error::InvalidRequest(format!("message of {bytes} bytes")))?;
        self.memory
            .acquire_many(permits)
            .await
            .map_err(|_| Error::Closed)?
            .forget();
        record.timestamp_ms.get_or_insert_with(now_ms);
        let (tx, rx) = oneshot::channel();
        let command = Command::Send {
            topic: topic.to_owned(),
            record,
            entry: Entry { tx, gen: 0, bytes },
        };
        self.tx.send(command).await.map_err(|_| Error::Closed)?;
        Ok(Receipt { rx })
    }

    /// Sends every open batch now and waits until every message sent
    /// before this call is acknowledged or has failed (see each receipt).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(producer: tidegate_client::Producer) -> Result<(), tidegate_client::Error> {
    /// let _receipt = producer.send("orders", tidegate_client::ProducerRecord::new("paid")).await?;
    /// producer.flush().await; // the receipt above is resolved now
    /// # Ok(())
    /// # }
    /// ```
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Flush(tx)).await.is_ok() {
            // An error means the worker stopped, and with it every send.
            let _ = rx.await;
        }
    }

    /// Sends what is left, waits for every receipt to resolve, and stops
    /// the producer. The client stays open.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(producer: tidegate_client::Producer) {
    /// producer.close().await;
    /// # }
    /// ```
    pub async fn close(mut self) {
        let worker = self.worker.take();
        // Dropping the sender tells the worker to finish.
        let (closed_tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, closed_tx));
        if let Some(worker) = worker {
            if let Err(e) = worker.await {
                tracing::error!("producer task failed: {e}");
            }
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.abort();
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A random number for backoff jitter (std's per-instance random keys).
fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

#[derive(Debug)]
enum Command {
    Send {
        topic: String,
        record: ProducerRecord,
        entry: Entry,
    },
    Flush(oneshot::Sender<()>),
}

/// One message's receipt, inside the worker.
#[derive(Debug)]
struct Entry {
    tx: oneshot::Sender<Result<Delivered>>,
    /// The flush generation it arrived in.
    gen: u64,
    /// Its share of the memory budget.
    bytes: usize,
}

/// A message waiting for its topic's partition count.
type Waiting = (ProducerRecord, Entry);

enum TopicMeta {
    Known {
        partitions: u32,
        sticky: Option<u32>,
        next: u32,
    },
    Loading(Vec<Waiting>),
}

struct OpenBatch {
    builder: BatchBuilder,
    entries: Vec<Entry>,
    bytes: usize,
    deadline: Instant,
}

/// A closed batch: finished when it is sent, once its producer sequence
/// is known.
struct ReadyBatch {
    builder: BatchBuilder,
    entries: Vec<Entry>,
}

/// Where the producer's idempotence identity stands.
#[derive(Debug)]
enum Identity {
    /// Not idempotent: batches carry no identity.
    Off,
    /// Needed before the next batch is sent.
    Needed,
    /// Being fetched.
    Fetching,
    /// In use, with the next sequence per partition.
    Ready(ProducerIdentity, HashMap<PartitionKey, i32>),
    /// Another producer of the same name took over: every send fails.
    Fenced(Error),
}

#[derive(Default)]
struct PartitionQueue {
    open: Option<OpenBatch>,
    ready: VecDeque<ReadyBatch>,
    in_flight: usize,
    /// The identity the batches in flight carry. Batches of a newer one
    /// wait until those are done: an older batch still being retried
    /// could otherwise land after them.
    sending: Option<ProducerIdentity>,
    /// Whose turn it is to send (by ticket), and the next ticket.
    order: Arc<SendOrder>,
    tickets: u64,
    /// No batch of the partition is sent before this: the server's
    /// throttle hint (Kafka's throttle_time_ms), honoured by the whole
    /// partition, not by one of its batches in flight.
    paused_until: Option<Instant>,
}

impl PartitionQueue {
    /// Pauses the partition for `throttle` (at most [`THROTTLE_MAX`]) from
    /// `now`, or longer if it is paused longer already.
    fn pause(&mut self, throttle: Duration, now: Instant) {
        if throttle.is_zero() {
            return;
        }
        let until = now + throttle.min(THROTTLE_MAX);
        self.paused_until = Some(self.paused_until.map_or(until, |t| t.max(until)));
    }

    /// Whether the partition may send at `now`; a pause that is over is
    /// forgotten.
    fn may_send(&mut self, now: Instant) -> bool {
        match self.paused_until {
            Some(until) if until > now => false,
            _ => {
                self.paused_until = None;
                true
            }
        }
    }
}

/// The order a partition's batches go out in: the ticket whose request
/// may be sent now. Batches are handed tickets as they are dispatched, in
/// sequence order, and each task sends only in its turn, so the server
/// sees a producer's streams for one partition opened in sequence order
/// (it waits for a gap to fill, but a batch waiting holds its share of the
/// shard's admission window: the wait is for the network's reordering,
/// not for a client's).
struct SendOrder(tokio::sync::watch::Sender<u64>);

impl Default for SendOrder {
    fn default() -> Self {
        SendOrder(tokio::sync::watch::Sender::new(0))
    }
}

/// One batch's place in its partition's [`SendOrder`]. Dropping it (once
/// the request is on its way, or on any failure before) hands the turn on.
struct Turn {
    order: Arc<SendOrder>,
    ticket: u64,
}

impl Turn {
    /// Waits until the batches before this one were sent.
    async fn wait(&self) {
        let mut rx = self.order.0.subscribe();
        // The sender lives in `self.order`: the wait cannot fail.
        let _ = rx.wait_for(|&now| now >= self.ticket).await;
    }
}

impl Drop for Turn {
    /// Hands the turn on if it was this batch's: a batch dropped before
    /// its turn came (its producer was dropped) must not let the ones
    /// after it go ahead of those before it.
    fn drop(&mut self) {
        self.order.0.send_if_modified(|now| {
            let mine = *now == self.ticket;
            if mine {
                *now = self.ticket + 1;
            }
            mine
        });
    }
}

type PartitionKey = (String, u32);

/// What a finished background task reports.
enum Done {
    Produced {
        key: PartitionKey,
        entries: Vec<Entry>,
        result: Result<Produced>,
        /// The identity the batch carried (idempotent producers).
        identity: Option<ProducerIdentity>,
    },
    Described {
        topic: String,
        result: Result<u32>,
    },
    Identified(Result<ProducerIdentity>),
}

/// The producer's task: owns every batch and every receipt.
struct Worker {
    client: Client,
    config: Arc<ProducerConfig>,
    rx: mpsc::Receiver<Command>,
    memory: Arc<Semaphore>,
    topics: HashMap<String, TopicMeta>,
    partitions: HashMap<PartitionKey, PartitionQueue>,
    tasks: JoinSet<Done>,
    produces_in_flight: usize,
    /// The current flush generation.
    gen: u64,
    /// Unresolved messages per flush generation (no zero counts).
    unresolved: BTreeMap<u64, usize>,
    flush_waiters: Vec<(u64, oneshot::Sender<()>)>,
    closing: bool,
    throttle: Arc<ThrottleCounts>,
    identity: Identity,
}

impl Worker {
    fn new(
        client: Client,
        config: ProducerConfig,
        rx: mpsc::Receiver<Command>,
        memory: Arc<Semaphore>,
        throttle: Arc<ThrottleCounts>,
    ) -> Self {
        let idempotent = config.idempotent;
        Self {
            client,
            config: Arc::new(config),
            rx,
            memory,
            topics: HashMap::new(),
            partitions: HashMap::new(),
            tasks: JoinSet::new(),
            produces_in_flight: 0,
            gen: 0,
            unresolved: BTreeMap::new(),
            flush_waiters: Vec::new(),
            identity: if idempotent {
                Identity::Needed
            } else {
                Identity::Off
            },
            closing: false,
            throttle,
        }
    }

    async fn run(mut self) {
        while !(self.closing && self.unresolved.is_empty()) {
            let deadline = self.next_deadline();
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                command = self.rx.recv(), if !self.closing => match command {
                    Some(command) => self.take_commands(command),
                    None => {
                        self.closing = true;
                        self.close_all_open();
                    }
                },
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => match done {
                    Ok(done) => self.complete(done),
                    Err(e) => {
                        // Only a bug (a panic) gets here; the receipts of
                        // that task are gone, so stop: the rest resolve to
                        // `Error::Closed`.
                        tracing::error!("producer request task failed: {e}");
                        return;
                    }
                },
                () = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                    self.close_expired(Instant::now());
                }
                else => {
                    // Closing with messages unresolved and nothing under
                    // way to resolve them: a bug; their receipts get
                    // `Error::Closed`.
                    tracing::error!("producer stopped with messages unresolved");
                    return;
                }
            }
            self.dispatch();
        }
    }

    /// Handles `first` and whatever else is queued, up to a bound.
    fn take_commands(&mut self, first: Command) {
        self.handle(first);
        for _ in 1..COMMANDS_PER_TURN {
            match self.rx.try_recv() {
                Ok(command) => self.handle(command),
                Err(_) => break,
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Send {
                topic,
                record,
                mut entry,
            } => {
                entry.gen = self.gen;
                *self.unresolved.entry(self.gen).or_default() += 1;
                self.route(topic, record, entry);
            }
            Command::Flush(tx) => {
                self.flush_waiters.push((self.gen, tx));
                self.gen += 1;
                self.close_all_open();
                self.wake_flushers();
            }
        }
    }

    /// Puts a message into its partition's batch, or waits for the
    /// topic's partition count when it is needed and not known yet.
    fn route(&mut self, topic: String, record: ProducerRecord, entry: Entry) {
        // While the topic is being looked up, its messages with an explicit
        // partition wait too, so none overtakes an earlier keyed one.
        let loading = matches!(self.topics.get(&topic), Some(TopicMeta::Loading(_)));
        if let (Some(partition), false) = (record.partition, loading) {
            self.append((topic, partition), record, entry);
            return;
        }
        let meta = match self.topics.get_mut(&topic) {
            Some(meta) => meta,
            None => {
                self.describe(topic.clone());
                self.topics
                    .entry(topic.clone())
                    .or_insert(TopicMeta::Loading(Vec::new()))
            }
        };
        let partition = match meta {
            TopicMeta::Loading(waiting) => {
                waiting.push((record, entry));
                return;
            }
            TopicMeta::Known {
                partitions,
                sticky,
                next,
            } => match record.key.as_ref().or(record.message_id()) {
                Some(key) => key_to_partition(key, *partitions).unwrap_or(0),
                None => *sticky.get_or_insert_with(|| {
                    let p = *next % (*partitions).max(1);
                    *next = next.wrapping_add(1);
                    p
                }),
            },
        };
        self.append((topic, partition), record, entry);
    }

    /// Looks up a topic's partition count in the background, with retries.
    fn describe(&mut self, topic: String) {
        let client = self.client.clone();
        let config = self.config.clone();
        self.tasks.spawn(async move {
            let result = with_retries(&config, || async {
                let description = client.describe_topic(&topic).await?;
                u32::try_from(description.partitions.len())
                    .map_err(|_| Error::Protocol("too many partitions".into()))
            })
            .await;
            Done::Described { topic, result }
        });
    }

    fn append(&mut self, key: PartitionKey, record: ProducerRecord, entry: Entry) {
        let config = self.config.clone();
        let queue = self.partitions.entry(key.clone()).or_default();
        let fits = queue.open.as_ref().is_none_or(|open| {
            open.bytes + entry.bytes <= config.batch_max_bytes
                && open.builder.record_count() < config.batch_max_records
        });
        if !fits {
            self.close_open(&key);
        }
        let queue = self.partitions.entry(key.clone()).or_default();
        let open = queue.open.get_or_insert_with(|| OpenBatch {
            builder: BatchBuilder::new(),
            entries: Vec::new(),
            bytes: 0,
            deadline: Instant::now() + config.linger,
        });
        let headers: Vec<(&str, &[u8])> = record
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_ref()))
            .collect();
        let pushed = open.builder.push(Record {
            timestamp_ms: record.timestamp_ms.unwrap_or_else(now_ms),
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &headers,
        });
        match pushed {
            Ok(()) => {
                open.bytes += entry.bytes;
                open.entries.push(entry);
                let full = open.bytes >= config.batch_max_bytes
                    || open.builder.record_count() >= config.batch_max_records;
                if full || self.closing {
                    self.close_open(&key);
                }
            }
            Err(e) => {
                let error = Error::InvalidRequest(format!("message refused: {e}"));
                self.resolve(vec![entry], Err(error), key.1);
            }
        }
    }

    /// The next linger deadline, or the end of a pause that holds ready
    /// batches back.
    fn next_deadline(&self) -> Option<Instant> {
        let lingers = self
            .partitions
            .values()
            .filter_map(|q| q.open.as_ref().map(|o| o.deadline));
        let pauses = self
            .partitions
            .values()
            .filter(|q| !q.ready.is_empty())
            .filter_map(|q| q.paused_until);
        lingers.chain(pauses).min()
    }

    fn close_expired(&mut self, now: Instant) {
        let expired: Vec<PartitionKey> = self
            .partitions
            .iter()
            .filter(|(_, q)| q.open.as_ref().is_some_and(|o| o.deadline <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.close_open(&key);
        }
    }

    fn close_all_open(&mut self) {
        let open: Vec<PartitionKey> = self
            .partitions
            .iter()
            .filter(|(_, q)| q.open.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for key in open {
            self.close_open(&key);
        }
    }

    /// Moves a partition's open batch to its ready queue; keyless messages
    /// of the topic move on to another partition.
    fn close_open(&mut self, key: &PartitionKey) {
        let Some(open) = self.partitions.get_mut(key).and_then(|q| q.open.take()) else {
            return;
        };
        if let Some(TopicMeta::Known { sticky, .. }) = self.topics.get_mut(&key.0) {
            if *sticky == Some(key.1) {
                *sticky = None;
            }
        }
        if let Some(queue) = self.partitions.get_mut(key) {
            queue.ready.push_back(ReadyBatch {
                builder: open.builder,
                entries: open.entries,
            });
        }
    }

    /// The identity batches are sent with now: `Some(None)` for none,
    /// `None` while there is none to send with yet (it is fetched, or
    /// every ready batch fails because the producer is fenced).
    fn sending_identity(&mut self) -> Option<Option<ProducerIdentity>> {
        match &mut self.identity {
            Identity::Off => Some(None),
            Identity::Ready(id, _) => Some(Some(*id)),
            Identity::Fetching => None,
            Identity::Needed => {
                if self.partitions.values().any(|q| !q.ready.is_empty()) {
                    self.identity = Identity::Fetching;
                    let (client, config) = (self.client.clone(), self.config.clone());
                    self.tasks.spawn(async move {
                        let result =
                            with_retries(&config, || client.init_producer(config.name.as_deref()))
                                .await;
                        Done::Identified(result)
                    });
                }
                None
            }
            Identity::Fenced(error) => {
                let mut error = error.share();
                let failed: Vec<(u32, Vec<Entry>)> = self
                    .partitions
                    .iter_mut()
                    .flat_map(|(key, q)| q.ready.drain(..).map(|r| (key.1, r.entries)))
                    .collect();
                for (partition, entries) in failed {
                    self.resolve(entries, Err(error.share()), partition);
                }
                None
            }
        }
    }

    /// What a batch's outcome means for the identity it carried (a batch
    /// of an identity already replaced changes nothing): fenced stops the
    /// producer; a batch that failed for good may or may not be in the
    /// log, so the sequence cannot go on from it. An unnamed producer then
    /// takes a fresh identity. A named one stops: taking its name again
    /// would fence a newer instance if this one was already replaced
    /// without knowing it.
    fn after_produce(&mut self, result: &mut Result<Produced>, sent: Option<ProducerIdentity>) {
        let Err(error) = result else { return };
        let current = match &self.identity {
            Identity::Ready(id, _) => *id,
            _ => return,
        };
        if sent != Some(current) {
            return;
        }
        self.identity = match (error.code(), &self.config.name) {
            (Some(ErrorCode::ProducerFenced), _) => Identity::Fenced(error.share()),
            (_, None) => Identity::Needed,
            (_, Some(name)) => Identity::Fenced(Error::Server {
                code: ErrorCode::OutOfOrderSequence,
                message: format!(
                    "a batch of producer {name:?} failed for good ({error}); its sequence \
                     cannot go on: create a new Producer, which takes the name over"
                ),
            }),
        };
    }

    /// Starts sending ready batches: up to `max_in_flight_per_partition`
    /// per partition (one without idempotence), `max_in_flight` in all.
    fn dispatch(&mut self) {
        let Some(identity) = self.sending_identity() else {
            return;
        };
        let Self {
            partitions,
            tasks,
            produces_in_flight,
            client,
            config,
            identity: state,
            ..
        } = self;
        let per_partition = match identity {
            Some(_) => config.max_in_flight_per_partition,
            None => 1,
        };
        let pipelined = per_partition > 1;
        let now = Instant::now();
        let mut refused = Vec::new();
        // One batch per partition per pass, so that a few busy partitions
        // do not take every slot of `max_in_flight` from the others.
        let mut progressed = true;
        while progressed && *produces_in_flight < config.max_in_flight {
            progressed = false;
            for (key, queue) in partitions.iter_mut() {
                if *produces_in_flight >= config.max_in_flight {
                    break;
                }
                let older_in_flight = queue.in_flight > 0 && queue.sending != identity;
                if queue.in_flight >= per_partition || older_in_flight || !queue.may_send(now) {
                    continue;
                }
                let Some(ready) = queue.ready.pop_front() else {
                    continue;
                };
                progressed = true;
                let (builder, next) = match (identity, &mut *state) {
                    (Some(id), Identity::Ready(_, sequences)) => {
                        let first = sequences.get(key).copied().unwrap_or(0);
                        let next = next_sequence(first, i64::from(ready.builder.record_count()));
                        let builder = ready.builder.producer(id.producer_id, id.epoch, first);
                        (builder, Some((sequences, next)))
                    }
                    _ => (ready.builder, None),
                };
                let batch = match builder.finish() {
                    Ok(batch) => batch,
                    Err(e) => {
                        // Its sequence numbers stay unused: a gap would
                        // hold up every later batch of the partition.
                        refused.push((key.1, ready.entries, e));
                        continue;
                    }
                };
                if let Some((sequences, next)) = next {
                    sequences.insert(key.clone(), next);
                }
                queue.in_flight += 1;
                queue.sending = identity;
                *produces_in_flight += 1;
                let turn = Turn {
                    order: queue.order.clone(),
                    ticket: queue.tickets,
                };
                queue.tickets += 1;
                let (client, config, key) = (client.clone(), config.clone(), key.clone());
                tasks.spawn(async move {
                    let result =
                        produce_with_retries(&client, &config, &key, batch, turn, pipelined).await;
                    Done::Produced {
                        key,
                        entries: ready.entries,
                        result,
                        identity,
                    }
                });
            }
        }
        for (partition, entries, e) in refused {
            let error = Error::InvalidRequest(format!("batch refused: {e}"));
            self.resolve(entries, Err(error), partition);
        }
    }

    fn complete(&mut self, done: Done) {
        match done {
            Done::Produced {
                key,
                entries,
                result,
                identity,
            } => {
                self.produces_in_flight -= 1;
                if let Some(queue) = self.partitions.get_mut(&key) {
                    queue.in_flight = queue.in_flight.saturating_sub(1);
                    if let Ok(produced) = &result {
                        queue.pause(produced.throttle, Instant::now());
                    }
                }
                // Before the receipts: whoever awaited them sees the count.
                if let Ok(produced) = &result {
                    self.throttle.count(produced.throttle);
                }
                let mut result = result;
                self.after_produce(&mut result, identity);
                self.resolve(entries, result.map(|p| p.base_offset), key.1);
            }
            Done::Identified(result) => {
                self.identity = match result {
                    Ok(id) => Identity::Ready(id, HashMap::new()),
                    Err(e) if e.code() == Some(ErrorCode::UnsupportedKind) => {
                        tracing::warn!(
                            "the server does not support idempotent producers; sending without"
                        );
                        Identity::Off
                    }
                    Err(mut e) => {
                        // Nothing can be sent without an identity: the
                        // ready batches fail, and the next ones ask again.
                        let failed: Vec<(u32, Vec<Entry>)> = self
                            .partitions
                            .iter_mut()
                            .flat_map(|(key, q)| q.ready.drain(..).map(|r| (key.1, r.entries)))
                            .collect();
                        for (partition, entries) in failed {
                            self.resolve(entries, Err(e.share()), partition);
                        }
                        Identity::Needed
                    }
                };
            }
            Done::Described { topic, result } => {
                let Some(TopicMeta::Loading(waiting)) = self.topics.remove(&topic) else {
                    return;
                };
                match result {
                    Ok(partitions) => {
                        self.topics.insert(
                            topic.clone(),
                            TopicMeta::Known {
                                partitions,
                                sticky: None,
                                next: 0,
                            },
                        );
                        for (record, entry) in waiting {
                            self.route(topic.clone(), record, entry);
                        }
                        if !self.flush_waiters.is_empty() {
                            // A flush is waiting for these: no linger.
                            self.close_all_open();
                        }
                    }
                    // Not cached: the next message asks again.
                    Err(error) => {
                        let entries = waiting.into_iter().map(|(_, e)| e).collect();
                        self.resolve(entries, Err(error), 0);
                    }
                }
            }
        }
        self.wake_flushers();
    }

    /// Resolves the receipts of `entries` (in batch order) and gives their
    /// memory back.
    fn resolve(&mut self, entries: Vec<Entry>, result: Result<Option<u64>>, partition: u32) {
        let mut result = result;
        let mut bytes = 0;
        for (index, entry) in (0u64..).zip(entries) {
            bytes += entry.bytes;
            if let Some(count) = self.unresolved.get_mut(&entry.gen) {
                *count -= 1;
                if *count == 0 {
                    self.unresolved.remove(&entry.gen);
                }
            }
            let outcome = match &mut result {
                Ok(base) => Ok(Delivered {
                    partition,
                    offset: base.map(|b| b + index),
                }),
                Err(e) => Err(e.share()),
            };
            // A dropped receipt is fine.
            let _ = entry.tx.send(outcome);
        }
        self.memory.add_permits(bytes);
    }

    /// Answers every flush whose messages are all resolved.
    fn wake_flushers(&mut self) {
        for (gen, tx) in std::mem::take(&mut self.flush_waiters) {
            if self.unresolved.range(..=gen).next().is_some() {
                self.flush_waiters.push((gen, tx));
            } else {
                let _ = tx.send(());
            }
        }
    }
}

/// Runs `attempt` until it succeeds, fails with an error that is not
/// retriable, or has been retried `config.retries` times.
async fn with_retries<T, F, Fut>(config: &ProducerConfig, attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    with_retries_if(config, Error::is_retriable, attempt).await
}

/// [`with_retries`], with `retriable` deciding which errors are.
async fn with_retries_if<T, F, Fut>(
    config: &ProducerConfig,
    retriable: impl Fn(&Error) -> bool,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut retry = 0;
    loop {
        match attempt().await {
            Err(e) if retriable(&e) && retry < config.retries => {
                let wait = config.backoff(retry, random_u64());
                tracing::debug!("retrying in {wait:?} after: {e}");
                tokio::time::sleep(wait).await;
                retry += 1;
            }
            other => return other,
        }
    }
}

/// Sends one batch with retries, its first attempt in its `turn`. (The
/// worker honours the answer's throttle hint: see
/// [`PartitionQueue::pause`].)
///
/// `pipelined`: other batches of the partition may be in flight. Their
/// retries run on their own schedules, so a predecessor's may come more
/// than the server's reorder wait after this batch, which is then refused
/// as out of order; it is retried like a lost answer (if the predecessor
/// failed for good, this one fails too once its retries run out).
async fn produce_with_retries(
    client: &Client,
    config: &ProducerConfig,
    key: &PartitionKey,
    batch: Vec<u8>,
    turn: Turn,
    pipelined: bool,
) -> Result<Produced> {
    let retriable = |e: &Error| {
        e.is_retriable() || (pipelined && e.code() == Some(ErrorCode::OutOfOrderSequence))
    };
    let mut turn = Some(turn);
    with_retries_if(config, retriable, || {
        let mut first = turn.take();
        let batch = &batch;
        client.with_reauthentication(move || attempt(client, config, key, batch, first.take()))
    })
    .await
}

/// One attempt at a batch. With a turn, the request is sent only once the
/// partition's earlier batches were, and the turn is handed on as soon as
/// it is on its way; the answer is awaited after.
async fn attempt(
    client: &Client,
    config: &ProducerConfig,
    key: &PartitionKey,
    batch: &[u8],
    turn: Option<Turn>,
) -> Result<Produced> {
    if let Some(turn) = &turn {
        turn.wait().await;
    }
    let target = Target::Partition(key.1);
    let pending = client
        .start_produce(&key.0, target, config.ack, batch)
        .await;
    drop(turn);
    pending?.response().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_minimum_up_to_the_cap_with_jitter_in_the_upper_half() {
        let config = ProducerConfig::default();
        for attempt in 0..40 {
            let full = Duration::from_millis(10)
                .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
                .min(Duration::from_secs(1));
            for random in [0, 1, 12_345, u64::MAX / 3, u64::MAX] {
                let wait = config.backoff(attempt, random);
                assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
            }
        }
        assert_eq!(config.backoff(0, 0), Duration::from_millis(5));
        assert_eq!(config.backoff(3, 0), Duration::from_millis(40));
        assert_eq!(config.backoff(20, 0), Duration::from_millis(500));
        assert_ne!(config.backoff(20, 1), config.backoff(20, 7));
    }

    #[test]
    fn throttle_hints_are_counted_when_non_zero_and_capped_at_a_second() {
        let counts = ThrottleCounts::default();
        for ms in [0, 5, 0, 3_000, 20] {
            counts.count(Duration::from_millis(ms));
        }
        assert_eq!(counts.hints.load(Ordering::Relaxed), 3);
        assert_eq!(counts.throttled_ms.load(Ordering::Relaxed), 5 + 1_000 + 20);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_take_their_turns_in_ticket_order_whatever_order_they_start_in() {
        let order = Arc::new(SendOrder::default());
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = JoinSet::new();
        for ticket in (0..8u64).rev() {
            let turn = Turn {
                order: order.clone(),
                ticket,
            };
            let sent = sent.clone();
            tasks.spawn(async move {
                turn.wait().await;
                sent.lock().unwrap_or_else(|e| panic!("{e}")).push(ticket);
            });
        }
        let all = async { while tasks.join_next().await.is_some() {} };
        tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .unwrap_or_else(|_| panic!("a turn never came"));
        let sent = sent.lock().unwrap_or_else(|e| panic!("{e}")).clone();
        assert_eq!(sent, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn a_turn_hands_on_only_when_it_was_its_own() {
        let order = Arc::new(SendOrder::default());
        let turn = |ticket| Turn {
            order: order.clone(),
            ticket,
        };
        // Dropped before its turn came (its producer went away): the ones
        // after it must not go ahead of ticket 0.
        drop(turn(1));
        assert_eq!(*order.0.borrow(), 0);
        drop(turn(0));
        assert_eq!(*order.0.borrow(), 1);
        drop(turn(1));
        assert_eq!(*order.0.borrow(), 2);
    }

    #[test]
    fn a_throttle_hint_pauses_the_whole_partition_for_the_longest_hint_up_to_a_second() {
        let mut queue = PartitionQueue::default();
        let now = Instant::now();
        assert!(queue.may_send(now));
        queue.pause(Duration::ZERO, now);
        assert!(queue.may_send(now), "no hint, no pause");
        queue.pause(Duration::from_millis(50), now);
        // A shorter hint answered meanwhile does not shorten the pause.
        queue.pause(Duration::from_millis(10), now);
        assert!(!queue.may_send(now + Duration::from_millis(49)));
        assert!(queue.may_send(now + Duration::from_millis(50)));
        assert_eq!(queue.paused_until, None, "an ended pause is forgotten");
        queue.pause(Duration::from_secs(30), now);
        assert!(!queue.may_send(now + Duration::from_millis(999)));
        assert!(queue.may_send(now + THROTTLE_MAX));
    }

    #[test]
    fn config_is_brought_within_the_protocol_limits() {
        let config = ProducerConfig {
            batch_max_bytes: usize::MAX,
            batch_max_records: 0,
            max_in_flight: 0,
            max_in_flight_per_partition: 100,
            ..ProducerConfig::default()
        }
        .normalized();
        assert_eq!(config.batch_max_bytes, MAX_BATCH_BYTES);
        assert_eq!(config.batch_max_records, 1);
        assert_eq!(config.max_in_flight, 1);
        assert_eq!(
            config.max_in_flight_per_partition,
            MAX_IN_FLIGHT_PER_PARTITION
        );
    }

    #[test]
    fn budget_bytes_bound_the_encoded_size() {
        let record = ProducerRecord::new(vec![7u8; 1000])
            .with_key("key")
            .with_header("h", "v")
            .with_timestamp_ms(1_700_000_000_000);
        let mut builder = BatchBuilder::new();
        builder
            .push(Record {
                timestamp_ms: 1_700_000_000_000,
                key: Some(b"key"),
                value: Some(&[7u8; 1000]),
                headers: &[("h", b"v")],
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let record_len = builder.encoded_len() - tidegate_proto::batch::HEADER_LEN;
        assert!(record.budget_bytes() >= record_len);
    }
}
