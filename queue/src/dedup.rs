//! Message-id deduplication for one partition (docs/SEMANTICS.md §6): the
//! ids seen within the topic's window, and the plan that turns a batch's
//! repeated messages into duplicate markers.
//!
//! A record's offset is its batch's base offset plus its index, and an
//! idempotent producer's sequence range counts the records it sent, so a
//! duplicate cannot simply be left out of the batch. It is replaced, in
//! place, by a **marker**: a record with the same timestamp, no key, no
//! value, and one header `tg-dup-of` whose value is the original's offset
//! in decimal. Readers skip markers (the SDK's consumers, subscriptions),
//! as Kafka's consumers skip control records: the message is stored once.
//!
//! Everything here is pure (bytes and a table in, a plan out), so it is
//! tested and fuzzed without a log.

use std::collections::{HashMap, VecDeque};

use tidegate_proto::batch::{BatchBuilder, BatchError, BatchView, Record};

pub use tidegate_proto::batch::dedup::{
    is_marker, message_id, DUPLICATE_OF_HEADER, MESSAGE_ID_HEADER,
};

/// The key a message id is remembered by: its 128-bit xxh3, so the table's
/// memory does not depend on how long ids are.
pub type IdHash = u128;

/// The hash of a message id.
pub fn id_hash(id: &[u8]) -> IdHash {
    xxhash_rust::xxh3::xxh3_128(id)
}

/// The ids a partition has seen within its window, oldest first, at most
/// `max` of them.
#[derive(Debug)]
pub struct DedupTable {
    window_ms: u64,
    max: usize,
    /// Each id's first offset and when it was seen (Unix ms).
    ids: HashMap<IdHash, (u64, i64)>,
    /// Ids in the order they were seen, for expiry and eviction; an entry
    /// whose time no longer matches `ids` is stale and skipped.
    order: VecDeque<(IdHash, i64)>,
    evicted: u64,
}

impl DedupTable {
    /// An empty table remembering ids for `window_ms`, at most `max` (at
    /// least 1).
    pub fn new(window_ms: u64, max: usize) -> Self {
        DedupTable {
            window_ms,
            max: max.max(1),
            ids: HashMap::new(),
            order: VecDeque::new(),
            evicted: 0,
        }
    }

    /// The original offset of `id`, if it was seen within the window.
    pub fn lookup(&self, id: IdHash, now_ms: i64) -> Option<u64> {
        let (offset, seen) = self.ids.get(&id)?;
        (now_ms.saturating_sub(*seen) < self.window_ms as i64).then_some(*offset)
    }

    /// Remembers `id` at `offset`, seen at `seen_ms`; forgets the ids that
    /// left the window, and the oldest when the table is full.
    pub fn insert(&mut self, id: IdHash, offset: u64, seen_ms: i64, now_ms: i64) {
        self.expire(now_ms);
        while self.ids.len() >= self.max {
            match self.order.pop_front() {
                Some((old, at)) => {
                    if self.ids.get(&old).is_some_and(|(_, seen)| *seen == at) {
                        self.ids.remove(&old);
                        self.evicted += 1;
                    }
                }
                None => break,
            }
        }
        self.ids.insert(id, (offset, seen_ms));
        self.order.push_back((id, seen_ms));
    }

    /// Forgets the ids seen more than the window before `now_ms`.
    fn expire(&mut self, now_ms: i64) {
        let cutoff = now_ms.saturating_sub(self.window_ms as i64);
        while let Some(&(id, at)) = self.order.front() {
            if at >= cutoff {
                break;
            }
            self.order.pop_front();
            if self.ids.get(&id).is_some_and(|(_, seen)| *seen == at) {
                self.ids.remove(&id);
            }
        }
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Ids forgotten before their window ended because the table was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// What to do with one batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The batch with its duplicates replaced by markers; `None` when it
    /// has none (it is stored as it came).
    pub rewritten: Option<Vec<u8>>,
    /// The new ids and their offsets, to remember once the batch is
    /// enqueued (not before: a batch that fails must leave no trace).
    pub new_ids: Vec<(IdHash, u64)>,
    /// Records replaced by markers.
    pub duplicates: u32,
}

/// Plans `batch`, to be stored at `base_offset`, against `table`: a record
/// whose id the table holds, or that an earlier record of the batch
/// carries, becomes a marker.
///
/// # Errors
///
/// A [`BatchError`] if the rewritten batch cannot be built: a marker
/// (up to 20 digits of offset) can be a few bytes longer than a small
/// message with a short id, so a batch at the size limit made almost
/// entirely of such copies can grow past it.
pub fn plan(
    batch: &BatchView<'_>,
    base_offset: u64,
    table: &DedupTable,
    now_ms: i64,
) -> Result<Plan, BatchError> {
    let mut plan = Plan::default();
    // Per record: the original's offset when it is a duplicate.
    let mut originals: Vec<Option<u64>> = Vec::new();
    let mut in_batch: HashMap<IdHash, u64> = HashMap::new();
    for (i, record) in batch.records().enumerate() {
        let offset = base_offset + i as u64;
        // An empty id names nothing: such messages are all kept.
        let original = message_id(&record)
            .filter(|id| !id.is_empty())
            .and_then(|id| {
                let hash = id_hash(id);
                if let Some(first) = table
                    .lookup(hash, now_ms)
                    .or_else(|| in_batch.get(&hash).copied())
                {
                    return Some(first);
                }
                in_batch.insert(hash, offset);
                plan.new_ids.push((hash, offset));
                None
            });
        originals.push(original);
    }
    plan.duplicates = originals.iter().flatten().count() as u32;
    if plan.duplicates == 0 {
        return Ok(plan);
    }
    let h = batch.header();
    let mut builder =
        BatchBuilder::new().producer(h.producer_id, h.producer_epoch, h.base_sequence);
    for (record, original) in batch.records().zip(&originals) {
        match original {
            Some(offset) => {
                let offset = offset.to_string();
                builder.push(Record {
                    timestamp_ms: record.timestamp_ms(),
                    key: None,
                    value: None,
                    headers: &[(DUPLICATE_OF_HEADER, offset.as_bytes())],
                })?;
            }
            None => {
                let headers: Vec<(&str, &[u8])> = record.headers().collect();
                builder.push(Record {
                    timestamp_ms: record.timestamp_ms(),
                    key: record.key(),
                    value: record.value(),
                    headers: &headers,
                })?;
            }
        }
    }
    plan.rewritten = Some(builder.finish()?);
    Ok(plan)
}

#[cfg(test)]
mod tests;
