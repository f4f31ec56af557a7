//! The data path, low level: produce one ready-made batch, fetch stored
//! batches and read their messages in place, look up offsets.

use std::time::Duration;

use bytes::Bytes;
use tidegate_proto::batch::dedup::is_marker;
use tidegate_proto::batch::{peek_header, BatchIter, Headers, RecordView, Records};
use tidegate_proto::protocol::{
    AckLevel, FetchRequest, ListOffsetsRequest, OffsetSpec, ProduceRequest, ProduceTarget, Request,
    Response,
};

use crate::client::{decode_response, unexpected, Client};
use crate::error::{Error, Result};

/// An idempotent producer's identity, from [`Client::init_producer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerIdentity {
    /// The producer id, for every batch header.
    pub producer_id: i64,
    /// The epoch; a newer one of the same name fences this one.
    pub epoch: i16,
}

/// Which partition a produce goes to.
///
/// # Example
///
/// ```
/// use tidegate_client::Target;
/// use tidegate_proto::partitioner::key_to_partition;
///
/// let by_key = Target::Key(b"customer-7".to_vec());
/// // The server puts it where every client computes it:
/// let partition = key_to_partition(b"customer-7", 8);
/// assert!(partition.is_some_and(|p| p < 8));
/// # let _ = (by_key, Target::Partition(3));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// This partition.
    Partition(u32),
    /// The partition the server picks by hashing this key with
    /// [`key_to_partition`](tidegate_proto::partitioner::key_to_partition)
    /// (Kafka's default partitioner), so every producer of a key agrees.
    Key(Vec<u8>),
}

/// How far a produce must get before the server answers it.
///
/// # Example
///
/// ```
/// use tidegate_client::Ack;
///
/// assert_eq!(Ack::default(), Ack::Durable);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ack {
    /// Answer once the request is read and checked, before the append
    /// (at-most-once); no offset comes back.
    None,
    /// Answer once the batch is written to the log, before fdatasync.
    Written,
    /// Answer once the batch is fdatasynced: it survives a crash. The
    /// default.
    #[default]
    Durable,
}

impl From<Ack> for AckLevel {
    fn from(ack: Ack) -> Self {
        match ack {
            Ack::None => AckLevel::None,
            Ack::Written => AckLevel::Written,
            Ack::Durable => AckLevel::Durable,
        }
    }
}

/// The server's answer to a produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Produced {
    /// The offset of the batch's first message; `None` when the server
    /// answered an [`Ack::None`] produce without it.
    pub base_offset: Option<u64>,
    /// How long the server asks this client to hold back its next produce
    /// (a flow-control hint; zero when the server is keeping up).
    pub throttle: Duration,
}

impl Client {
    /// Appends one batch, built with
    /// [`BatchBuilder`](tidegate_proto::batch::BatchBuilder), to a
    /// partition of `topic`; the batch's bytes are sent and stored as they
    /// are.
    ///
    /// This is the low-level call: no batching, no retry (except once after
    /// authenticating again, when a client with
    /// [`Credentials::token_fn`](crate::Credentials::token_fn) is refused as
    /// not authenticated: the server stored nothing then). A produce that
    /// fails with [`Error::Transport`] may still have been appended.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] (nothing sent) when `batch` is not exactly
    /// one batch; [`Error::Server`] when the server refuses it (unknown
    /// topic or partition, corrupt or too large batch, busy, ...).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tidegate_client::{Ack, Client, Target};
    /// use tidegate_proto::batch::{BatchBuilder, Record};
    ///
    /// # async fn run(client: Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut builder = BatchBuilder::new();
    /// builder.push(Record { timestamp_ms: 1_700_000_000_000, key: Some(b"customer-7"), value: Some(b"paid"), headers: &[] })?;
    /// let produced = client
    ///     .produce_batch("orders", Target::Key(b"customer-7".to_vec()), Ack::Durable, builder.finish()?)
    ///     .await?;
    /// println!("stored at offset {:?}", produced.base_offset);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn produce_batch(
        &self,
        topic: &str,
        target: Target,
        ack: Ack,
        batch: impl AsRef<[u8]>,
    ) -> Result<Produced> {
        let batch = batch.as_ref();
        self.with_reauthentication(|| async {
            self.start_produce(topic, target.clone(), ack, batch)
                .await?
                .response()
                .await
        })
        .await
    }

    /// Gets an idempotent producer identity for batch headers
    /// ([`BatchBuilder::producer`](tidegate_proto::batch::BatchBuilder::producer)):
    /// a fresh id with epoch 0 when `name` is `None`, or the name's id with
    /// its epoch raised by one, which fences every older instance of the
    /// name (`docs/SEMANTICS.md` §2). [`Producer`](crate::Producer) does
    /// this itself.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] (nothing sent) for a name over 255 bytes;
    /// [`Error::Server`] with
    /// [`ErrorCode::UnsupportedKind`](crate::ErrorCode::UnsupportedKind)
    /// from a server without idempotence.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(client: tidegate_client::Client) -> Result<(), tidegate_client::Error> {
    /// let first = client.init_producer(Some("orders-writer")).await?;
    /// let second = client.init_producer(Some("orders-writer")).await?;
    /// assert_eq!(second.producer_id, first.producer_id);
    /// assert_eq!(second.epoch, first.epoch + 1); // `first` is fenced now
    /// # Ok(())
    /// # }
    /// ```
    pub async fn init_producer(&self, name: Option<&str>) -> Result<ProducerIdentity> {
        let request = Request::InitProducer {
            name: name.unwrap_or_default(),
        };
        // `call` checks the request and authenticates again if it must.
        let frame = self.call(&request).await?;
        match decode_response(&frame)? {
            Response::InitProducer { producer_id, epoch } => {
                Ok(ProducerIdentity { producer_id, epoch })
            }
            other => Err(unexpected("InitProducer", &other)),
        }
    }

    /// Sends a produce of one batch and returns once the request is on its
    /// way, without waiting for the answer: await
    /// [`PendingProduce::response`] for that. One task can so keep several
    /// batches in flight on one connection.
    ///
    /// **Order:** the server takes a connection's requests as each finishes
    /// arriving, so two batches in flight **for the same partition** may be
    /// stored in either order (a lost packet delays one of them), unless
    /// they carry an idempotent producer's consecutive sequence numbers,
    /// which the server appends in sequence order (as [`Producer`] does).
    /// Otherwise keep one batch per partition in flight where order
    /// matters; batches for different partitions can be in flight together.
    ///
    /// [`Producer`]: crate::Producer
    ///
    /// # Errors
    ///
    /// As [`produce_batch`](Client::produce_batch), for what is known before
    /// the answer (an invalid batch, a connection that cannot be made).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tidegate_client::{Ack, Client, Target};
    ///
    /// # async fn run(client: Client, batches: Vec<Vec<u8>>) -> Result<(), tidegate_client::Error> {
    /// let mut pending = Vec::new();
    /// for batch in batches {
    ///     pending.push(client.start_produce("orders", Target::Partition(0), Ack::Durable, batch).await?);
    /// }
    /// for p in pending {
    ///     println!("stored at {:?}", p.response().await?.base_offset);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start_produce(
        &self,
        topic: &str,
        target: Target,
        ack: Ack,
        batch: impl AsRef<[u8]>,
    ) -> Result<PendingProduce> {
        let batch = batch.as_ref();
        check_one_batch(batch)?;
        let target = match &target {
            Target::Partition(p) => ProduceTarget::Partition(*p),
            Target::Key(key) => ProduceTarget::Key(key),
        };
        let request = Request::Produce(ProduceRequest {
            topic,
            target,
            ack: ack.into(),
            batches: batch,
        });
        let recv = self.start(&request).await?;
        Ok(PendingProduce {
            client: self.clone(),
            recv,
            ack,
        })
    }

    /// Reads stored batches of one partition from `offset`, up to about
    /// `max_bytes` (the first batch comes whole even if larger), waiting up
    /// to `max_wait` (at most 60 s) for data when there is none yet.
    ///
    /// The response is kept as one buffer; [`Fetched::messages`] reads the
    /// messages in place.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] (nothing sent) for `max_bytes` of 0 or
    /// above 32 MiB, or a wait over 60 s; [`Error::Server`] for an unknown
    /// topic or partition or an offset out of range.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn run(client: tidegate_client::Client) -> Result<(), tidegate_client::Error> {
    /// let mut offset = 0;
    /// loop {
    ///     let fetched = client.fetch("orders", 0, offset, 1 << 20, Duration::from_secs(5)).await?;
    ///     for message in fetched.messages() {
    ///         let message = message?;
    ///         println!("{}: {:?}", message.offset(), message.value());
    ///     }
    ///     offset = fetched.next_offset();
    /// }
    /// # }
    /// ```
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait: Duration,
    ) -> Result<Fetched> {
        let request = Request::Fetch(FetchRequest {
            topic,
            partition,
            offset,
            max_bytes,
            max_wait_ms: u32::try_from(max_wait.as_millis()).unwrap_or(u32::MAX),
        });
        let frame = Bytes::from(self.call(&request).await?);
        let (high_watermark, batches) = match decode_response(&frame)? {
            Response::Fetch(f) if f.partition == partition => {
                (f.high_watermark, frame.slice_ref(f.batches))
            }
            Response::Fetch(f) => {
                return Err(Error::Protocol(format!(
                    "fetch of partition {partition} answered for partition {}",
                    f.partition
                )))
            }
            other => return Err(unexpected("Fetch", &other)),
        };
        Ok(Fetched {
            partition,
            offset,
            high_watermark,
            batches,
        })
    }

    /// An offset of a partition: the earliest still stored, the latest
    /// (the offset the next message will get), or the first at or after a
    /// timestamp.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tidegate_client::OffsetSpec;
    ///
    /// # async fn run(client: tidegate_client::Client) -> Result<(), tidegate_client::Error> {
    /// let end = client.list_offsets("orders", 0, OffsetSpec::Latest).await?;
    /// let hour_ago = client.list_offsets("orders", 0, OffsetSpec::Timestamp(1_700_000_000_000)).await?;
    /// println!("{} messages in the last hour", end - hour_ago);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_offsets(&self, topic: &str, partition: u32, spec: OffsetSpec) -> Result<u64> {
        let request = Request::ListOffsets(ListOffsetsRequest {
            topic,
            partition,
            spec,
        });
        let frame = self.call(&request).await?;
        match decode_response(&frame)? {
            Response::ListOffsets { offset } => Ok(offset),
            other => Err(unexpected("ListOffsets", &other)),
        }
    }
}

/// Exactly one whole batch: several would be appended but only one offset
/// returned. The server checks the CRC and the records.
fn check_one_batch(batch: &[u8]) -> Result<()> {
    let header = peek_header(batch).map_err(|e| Error::InvalidRequest(e.to_string()))?;
    if header.length as usize != batch.len() {
        return Err(Error::InvalidRequest(format!(
            "expected one batch of {} bytes, got {} bytes",
            header.length,
            batch.len()
        )));
    }
    Ok(())
}

/// The answer to a fetch: stored batches, kept in the response buffer.
///
/// # Example
///
/// Reading messages in place (here from a batch built locally, whose base
/// offset is 0; a fetch returns stored batches in the same format):
///
/// ```
/// use bytes::Bytes;
/// use tidegate_client::Fetched;
/// use tidegate_proto::batch::{BatchBuilder, Record};
///
/// let mut builder = BatchBuilder::new();
/// for value in [&b"a"[..], b"b", b"c"] {
///     builder.push(Record { timestamp_ms: 1_700_000_000_000, key: None, value: Some(value), headers: &[] })?;
/// }
/// let fetched = Fetched { partition: 0, offset: 1, high_watermark: 3, batches: Bytes::from(builder.finish()?) };
/// let values: Vec<&[u8]> = fetched.messages().map(|m| m.map(|m| m.value().unwrap_or_default())).collect::<Result<_, _>>()?;
/// assert_eq!(values, [&b"b"[..], b"c"]); // offset 0 is before the one asked for
/// assert_eq!(fetched.next_offset(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The partition.
    pub partition: u32,
    /// The offset asked for; messages below it are skipped.
    pub offset: u64,
    /// The offset the next message of the partition will get, when the
    /// server answered.
    pub high_watermark: u64,
    /// Zero or more whole batches, exactly as stored (a slice of the
    /// response, not a copy).
    pub batches: Bytes,
}

impl Fetched {
    /// The messages at or after the requested offset, in offset order,
    /// borrowing keys, values and headers from [`batches`](Self::batches).
    /// Each batch is validated (CRC and records) before its messages are
    /// read; a bad one ends the iteration with [`Error::Protocol`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(client: tidegate_client::Client) -> Result<(), tidegate_client::Error> {
    /// let fetched = client.fetch("orders", 0, 0, 1 << 20, std::time::Duration::ZERO).await?;
    /// for message in fetched.messages() {
    ///     let message = message?;
    ///     for (name, value) in message.headers() {
    ///         println!("{name} = {value:?}");
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn messages(&self) -> Messages<'_> {
        Messages {
            partition: self.partition,
            min_offset: self.offset,
            batches: BatchIter::new(&self.batches),
            records: None,
        }
    }

    /// Where the next fetch should start: after the last whole batch
    /// returned, or the requested offset if none was.
    ///
    /// Read off the batches' headers only: [`messages`](Self::messages)
    /// checks each batch's CRC and records where they are read, and fails
    /// on a bad one. Checking them here too walked every record of a
    /// response two more times in the consumer, which called this twice
    /// per response (batch validation was 10% of a busy consumer's core,
    /// docs/BENCHMARKS.md).
    pub fn next_offset(&self) -> u64 {
        BatchIter::verified(&self.batches)
            .map_while(Result::ok)
            .last()
            .map_or(self.offset, |b| b.header().next_offset().max(self.offset))
    }

    /// True when no batch came back.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

/// Iterator over the messages of a [`Fetched`]; see [`Fetched::messages`].
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    partition: u32,
    min_offset: u64,
    batches: BatchIter<'a>,
    records: Option<Records<'a>>,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.records.as_mut().and_then(Iterator::next) {
                // A duplicate marker stands for a message stored once
                // already (message-id deduplication): not a message.
                if record.offset() < self.min_offset || is_marker(&record) {
                    continue;
                }
                return Some(Ok(Message {
                    partition: self.partition,
                    record,
                }));
            }
            match self.batches.next()? {
                Ok(batch) => self.records = Some(batch.records()),
                Err(e) => return Some(Err(Error::Protocol(format!("fetched batch: {e}")))),
            }
        }
    }
}

impl std::iter::FusedIterator for Messages<'_> {}

/// One message, read in place from a fetch response: its key, value and
/// headers borrow from [`Fetched::batches`]. See [`Fetched`] for an
/// example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    partition: u32,
    record: RecordView<'a>,
}

impl<'a> Message<'a> {
    /// The partition it is stored in.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Its offset in the partition.
    pub fn offset(&self) -> u64 {
        self.record.offset()
    }

    /// Its timestamp, in ms since the Unix epoch, as the producer set it.
    pub fn timestamp_ms(&self) -> i64 {
        self.record.timestamp_ms()
    }

    /// Its key, if it has one.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.record.key()
    }

    /// Its value, if it has one (`None` is a tombstone, not an empty
    /// value).
    pub fn value(&self) -> Option<&'a [u8]> {
        self.record.value()
    }

    /// Its headers, `(name, value)`, in the order the producer added them.
    pub fn headers(&self) -> Headers<'a> {
        self.record.headers()
    }
}

/// A produce sent with [`Client::start_produce`], its answer to come.
#[derive(Debug)]
#[must_use = "the answer says whether the batch was stored"]
pub struct PendingProduce {
    client: Client,
    recv: quinn::RecvStream,
    ack: Ack,
}

impl PendingProduce {
    /// Waits for the server's answer.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] for a refused batch (unknown topic or partition, a
    /// full disk, ...); [`Error::Transport`] (retriable) when the
    /// connection was lost first: the batch may or may not be stored.
    pub async fn response(self) -> Result<Produced> {
        let ack = self.ack;
        let frame = self.client.response(self.recv).await?;
        let produce = match decode_response(&frame)? {
            Response::Produce(p) => p,
            other => return Err(unexpected("Produce", &other)),
        };
        let throttle = Duration::from_millis(produce.throttle_ms.into());
        // The protocol lets an `Ack::None` answer carry no result; a
        // server that answers after the append anyway may include it.
        let base_offset = match (ack, produce.results.as_slice()) {
            (Ack::None, []) => None,
            (_, [Ok(base_offset)]) => Some(*base_offset),
            (_, [Err(code)]) => return Err(Error::server(*code, format!("batch refused: {code}"))),
            (_, results) => {
                return Err(Error::Protocol(format!(
                    "{} results for one batch with ack {ack:?}",
                    results.len()
                )))
            }
        };
        Ok(Produced {
            base_offset,
            throttle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidegate_proto::batch::{set_base_offset, BatchBuilder, Record};

    /// Two batches of `n` one-byte values each, at offsets 10.. .
    fn two_batches(n: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for base in [10, 10 + n as u64] {
            let mut builder = BatchBuilder::new();
            for _ in 0..n {
                let record = Record {
                    timestamp_ms: 1,
                    key: None,
                    value: Some(b"v"),
                    headers: &[],
                };
                builder.push(record).unwrap_or_else(|e| panic!("{e}"));
            }
            let mut batch = builder.finish().unwrap_or_else(|e| panic!("{e}"));
            set_base_offset(&mut batch, base).unwrap_or_else(|e| panic!("{e}"));
            bytes.extend_from_slice(&batch);
        }
        bytes
    }

    fn fetched(batches: Vec<u8>) -> Fetched {
        Fetched {
            partition: 0,
            offset: 10,
            high_watermark: 20,
            batches: Bytes::from(batches),
        }
    }

    #[test]
    fn next_offset_follows_the_headers_and_messages_refuse_a_bad_batch() {
        let good = fetched(two_batches(3));
        assert_eq!(good.next_offset(), 16);
        assert_eq!(good.messages().filter(Result::is_ok).count(), 6);

        // The second batch's last byte changed: its CRC no longer holds.
        let mut bytes = two_batches(3);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let bad = fetched(bytes);
        assert_eq!(bad.next_offset(), 16, "read off the headers");
        let read: Vec<_> = bad.messages().collect();
        assert_eq!(read.iter().filter(|m| m.is_ok()).count(), 3);
        assert!(matches!(read.last(), Some(Err(Error::Protocol(_)))));
    }

    #[test]
    fn next_offset_stops_before_a_cut_batch_and_at_the_offset_asked_for() {
        let mut bytes = two_batches(3);
        bytes.truncate(bytes.len() - 1);
        assert_eq!(fetched(bytes).next_offset(), 13);
        assert_eq!(fetched(Vec::new()).next_offset(), 10);
        assert_eq!(fetched(vec![0xff; 7]).next_offset(), 10, "garbage");
    }
}
