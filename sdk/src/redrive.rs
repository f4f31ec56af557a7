//! Redrive: a subscription's dead letters back to its topic
//! (docs/SEMANTICS.md §5, "Dead letters").
//!
//! It runs in the client, over calls the server has anyway: it reads the
//! dead-letter topic, republishes the subscription's own dead letters to
//! the partition they came from with a `tg-redrive-for` header (every other
//! subscription of the topic treats such a message as filtered out, so a
//! redrive does not fan out again), and keeps its progress as the committed
//! offsets of the group `__redrive.<subscription>` on the dead-letter
//! topic. A message is republished durably before the offset past it is
//! committed, so a redrive cut short and run again may republish a message
//! twice (at least once) and never skips one.

use std::{collections::BTreeMap, time::Duration};

use tidegate_proto::{
    batch::{BatchBuilder, Record},
    partitioner,
};

use crate::{Ack, Client, Error, Result, Target};

/// The header naming the one subscription a redriven message is for.
pub const HEADER_REDRIVE_FOR: &str = "tg-redrive-for";
/// Dead-letter headers (`tg-dlq-topic`, `tg-dlq-partition`, ...) start so.
pub const HEADER_DLQ_PREFIX: &str = "tg-dlq-";
/// The group whose committed offsets on the dead-letter topic are a
/// redrive's progress is this prefix and the subscription's name.
pub const REDRIVE_GROUP_PREFIX: &str = "__redrive.";

/// Bytes asked of the dead-letter topic per fetch.
const FETCH_BYTES: u32 = 1 << 20;
/// Messages, and bytes of them, gathered before they are republished (as
/// one batch per source partition).
const BATCH_MESSAGES_MAX: usize = 1_000;
const BATCH_BYTES_MAX: usize = 1 << 20;

/// What [`Client::redrive`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redriven {
    /// Dead letters of the subscription republished to its topic.
    pub moved: u64,
    /// Messages of the dead-letter topic passed over: other
    /// subscriptions' dead letters, or messages without dead-letter
    /// headers.
    pub skipped: u64,
}

impl Client {
    /// Moves the dead letters of `subscription` back to its topic, so that
    /// the subscription delivers them again (with a fresh attempt count).
    ///
    /// It takes the messages of the dead-letter topic that are there when
    /// it starts and were not redriven before, up to `max_messages` of the
    /// subscription's own (`None`: all). Each goes to the partition it was
    /// dead-lettered from, with its key, value and headers, the
    /// `tg-dlq-*` headers replaced by `tg-redrive-for: <subscription>`,
    /// and is acknowledged durably before the redrive's progress (the
    /// group `__redrive.<subscription>`) moves past it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] when the subscription has no dead-letter
    /// topic; the errors of the calls it makes otherwise
    /// ([`describe_subscription`](Client::describe_subscription),
    /// [`fetch`](Client::fetch), [`produce_batch`](Client::produce_batch),
    /// [`commit_offsets`](Client::commit_offsets)). What was moved before
    /// an error stays moved and committed.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(client: tidegate_client::Client) -> Result<(), tidegate_client::Error> {
    /// let done = client.redrive("billing", None).await?;
    /// println!("{} dead letters back on their topic", done.moved);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn redrive(&self, subscription: &str, max_messages: Option<u64>) -> Result<Redriven> {
        let described = self.describe_subscription(subscription).await?;
        let source = described.subscription;
        let dlq = source.dead_letter_topic.clone().ok_or_else(|| {
            Error::InvalidRequest(format!(
                "subscription '{subscription}' has no dead-letter topic"
            ))
        })?;
        let plan = Plan {
            subscription,
            source: &source.topic,
            source_partitions: u32::try_from(described.partitions.len()).unwrap_or(u32::MAX),
            dlq: &dlq,
            group: format!("{REDRIVE_GROUP_PREFIX}{subscription}"),
        };
        let committed: BTreeMap<u32, Option<u64>> = self
            .fetch_offsets(&plan.group, &dlq, &[])
            .await?
            .into_iter()
            .collect();
        let mut done = Redriven::default();
        let mut budget = max_messages.unwrap_or(u64::MAX);
        for partition in self.describe_topic(&dlq).await?.partitions {
            if budget == 0 {
                break;
            }
            let from = committed
                .get(&partition.partition)
                .copied()
                .flatten()
                .unwrap_or(0)
                .clamp(partition.earliest, partition.latest);
            let range = from..partition.latest;
            let moved = self
                .redrive_partition(&plan, partition.partition, range, &mut budget)
                .await?;
            done.moved += moved.moved;
            done.skipped += moved.skipped;
        }
        Ok(done)
    }

    /// Redrives `offsets` of one dead-letter partition, a fetch at a time:
    /// republish, then commit past what was read.
    async fn redrive_partition(
        &self,
        plan: &Plan<'_>,
        partition: u32,
        offsets: std::ops::Range<u64>,
        budget: &mut u64,
    ) -> Result<Redriven> {
        let mut done = Redriven::default();
        let mut next = offsets.start;
        while next < offsets.end && *budget > 0 {
            let fetched = self
                .fetch(plan.dlq, partition, next, FETCH_BYTES, Duration::ZERO)
                .await?;
            if fetched.is_empty() {
                // Below the high watermark it started from, only a topic
                // deleted and made again has nothing: stop there.
                break;
            }
            let mut batches = Batches::default();
            // Past every batch read, unless the end or the budget cuts it.
            let mut read_to = fetched.next_offset().min(offsets.end);
            for message in fetched.messages() {
                let message = message?;
                if message.offset() >= offsets.end || *budget == 0 {
                    read_to = message.offset().min(offsets.end);
                    break;
                }
                match plan.republished(&message) {
                    Some((target, record)) => {
                        batches.push(target, record);
                        done.moved += 1;
                        *budget -= 1;
                    }
                    None => done.skipped += 1,
                }
                if batches.full() {
                    batches.send(self, plan.source).await?;
                }
            }
            batches.send(self, plan.source).await?;
            next = read_to.max(next);
            self.commit_redrive(plan, partition, next).await?;
        }
        Ok(done)
    }

    async fn commit_redrive(&self, plan: &Plan<'_>, partition: u32, next: u64) -> Result<()> {
        let results = self
            .commit_offsets(&plan.group, "", plan.dlq, &[(partition, next)])
            .await?;
        match results.into_iter().find(|&(p, _)| p == partition) {
            Some((_, code)) if code.is_ok() => Ok(()),
            Some((_, code)) => Err(Error::Server {
                code,
                message: format!("committing redrive progress of '{}'", plan.group),
            }),
            None => Err(Error::Protocol(format!(
                "CommitOffsets answered no result for partition {partition}"
            ))),
        }
    }

    /// The offset a redrive of `subscription` has reached in each
    /// partition of its dead-letter topic (`None` where it never ran).
    pub async fn redrive_progress(
        &self,
        subscription: &str,
        dead_letter_topic: &str,
    ) -> Result<Vec<(u32, Option<u64>)>> {
        let group = format!("{REDRIVE_GROUP_PREFIX}{subscription}");
        self.fetch_offsets(&group, dead_letter_topic, &[]).await
    }
}

/// One redrive's names.
struct Plan<'a> {
    subscription: &'a str,
    source: &'a str,
    source_partitions: u32,
    dlq: &'a str,
    group: String,
}

/// A dead letter made ready to republish.
struct Republished {
    timestamp_ms: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

impl Republished {
    fn len(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len) + headers
    }
}

impl Plan<'_> {
    /// Where and what to republish of `message`, if it is a dead letter
    /// of this plan's subscription.
    fn republished(&self, message: &crate::data::Message<'_>) -> Option<(u32, Republished)> {
        let header = |name: &str| {
            message
                .headers()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_vec())
        };
        if header("tg-dlq-subscription")? != self.subscription.as_bytes() {
            return None;
        }
        let from_partition = header("tg-dlq-partition")
            .and_then(|p| std::str::from_utf8(&p).ok()?.parse::<u32>().ok())
            .filter(|&p| p < self.source_partitions);
        let target = from_partition
            .or_else(|| partitioner::key_to_partition(message.key()?, self.source_partitions))
            .unwrap_or(0);
        let mut headers: Vec<(String, Vec<u8>)> = message
            .headers()
            .filter(|(n, _)| !n.starts_with(HEADER_DLQ_PREFIX) && *n != HEADER_REDRIVE_FOR)
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect();
        headers.push((HEADER_REDRIVE_FOR.to_owned(), self.subscription.into()));
        let record = Republished {
            timestamp_ms: message.timestamp_ms(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.value().map(<[u8]>::to_vec),
            headers,
        };
        Some((target, record))
    }
}

/// Republished messages waiting to be sent, by source partition.
#[derive(Default)]
struct Batches {
    by_partition: BTreeMap<u32, Vec<Republished>>,
    len: usize,
    bytes: usize,
}

impl Batches {
    fn push(&mut self, partition: u32, record: Republished) {
        self.bytes += record.len();
        self.by_partition.entry(partition).or_default().push(record);
        self.len += 1;
    }

    fn full(&self) -> bool {
        self.len >= BATCH_MESSAGES_MAX || self.bytes >= BATCH_BYTES_MAX
    }

    /// Sends every partition's batch with a durable ack, and empties.
    async fn send(&mut self, client: &Client, topic: &str) -> Result<()> {
        for (partition, records) in std::mem::take(&mut self.by_partition) {
            let mut builder = BatchBuilder::new();
            for r in &records {
                let headers: Vec<(&str, &[u8])> = r
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_slice()))
                    .collect();
                builder
                    .push(Record {
                        timestamp_ms: r.timestamp_ms,
                        key: r.key.as_deref(),
                        value: r.value.as_deref(),
                        headers: &headers,
                    })
                    .map_err(|e| Error::InvalidRequest(format!("republishing: {e}")))?;
            }
            let batch = builder
                .finish()
                .map_err(|e| Error::InvalidRequest(format!("republishing: {e}")))?;
            client
                .produce_batch(topic, Target::Partition(partition), Ack::Durable, batch)
                .await?;
        }
        self.len = 0;
        self.bytes = 0;
        Ok(())
    }
}
