//! A partition's cursor journal: a small [`Log`] of cursor events beside the
//! partition's own log, and the state it holds (docs/SEMANTICS.md §3).
//!
//! Every change is an event appended with a durable ack before it is
//! answered, so the journal has the log's discipline (CRC, group commit,
//! fdatasync, torn-tail truncation). The state is applied in the order the
//! events enter the log: [`Log::append`] assigns offsets in call order, and
//! the state is updated in the same synchronous step that starts the
//! append. On open the journal is replayed from its first record.
//!
//! It stays small: once a segment's worth of events has been appended
//! since the last snapshot, the whole state is appended again as one
//! snapshot and the segments before it are deleted.
//!
//! Subscriptions' windows live in the shard (`core`), not here: the
//! journal keeps, per subscription, only what replay needs, namely the
//! latest checkpoint and the events after it. The owner writes a new
//! checkpoint when [`CursorJournal::checkpoint_due`] says so, which keeps
//! that tail short.

use std::{cell::RefCell, collections::BTreeMap, path::Path};

use futures::future::join_all;
use tidegate_proto::batch::{BatchBuilder, BatchIter, BatchView, Record};

use super::event::{
    check_group, Committed, Event, EventError, SubCheckpoint, SubEvent, METADATA_MAX,
};
use crate::{Ack, Log, LogConfig, LogError};

/// Bytes of one journal segment.
const SEGMENT_BYTES: u64 = 4 << 20;
/// Events per snapshot batch.
const SNAPSHOT_BATCH_EVENTS: usize = 512;
/// Bytes one replay read asks for.
const REPLAY_READ_BYTES: usize = 1 << 20;
/// Event bytes in one snapshot batch (a checkpoint larger than this goes
/// alone).
const SNAPSHOT_BATCH_BYTES: usize = 1 << 20;
/// Event bytes after a subscription's checkpoint at which the owner is
/// asked for a new one.
const SUB_CHECKPOINT_AFTER_BYTES: u64 = 256 << 10;

/// Bounds of one journal.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Consumer groups with a committed offset in the partition; a commit
    /// of a new group beyond it is refused.
    pub groups_max: usize,
    /// Subscriptions with state in the partition; events of a new one
    /// beyond it are refused.
    pub subscriptions_max: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            groups_max: 10_000,
            subscriptions_max: 10_000,
        }
    }
}

/// Why a journal operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// The journal's log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The request is not a valid event (a bad group name, metadata too
    /// long).
    #[error("invalid cursor event: {0}")]
    Invalid(#[from] EventError),
    /// The partition already holds offsets of `max` groups.
    #[error("the partition holds committed offsets of {max} groups, its limit")]
    TooManyGroups {
        /// The limit.
        max: usize,
    },
    /// The partition already holds the state of `max` subscriptions.
    #[error("the partition holds the state of {max} subscriptions, its limit")]
    TooManySubscriptions {
        /// The limit.
        max: usize,
    },
}

/// What replay needs of one subscription: its latest checkpoint and the
/// events after it, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubState {
    /// The latest checkpoint; `None` before the first.
    pub checkpoint: Option<SubCheckpoint>,
    /// Events after it.
    pub events: Vec<SubEvent>,
    /// Encoded bytes of `events`.
    events_bytes: u64,
}

/// The state: each group's committed offset, with the version of the
/// change that set it (to undo a change whose append failed).
#[derive(Debug, Default)]
struct State {
    groups: BTreeMap<String, (Committed, u64)>,
    subs: BTreeMap<u64, SubState>,
    version: u64,
    /// Event bytes appended since the last snapshot.
    since_snapshot: u64,
    snapshotting: bool,
}

/// A partition's cursor journal. Lives on one glommio executor.
pub struct CursorJournal {
    log: Log,
    state: RefCell<State>,
    config: JournalConfig,
    /// Records replay could not read (a newer version's events), skipped.
    skipped: u64,
}

impl CursorJournal {
    /// The configuration of the journal's log: small segments, no
    /// preallocation, small buffers.
    pub fn log_config() -> LogConfig {
        LogConfig {
            segment_bytes_max: SEGMENT_BYTES,
            preallocate: false,
            write_chunk_bytes: 16 << 10,
            write_concurrency: 2,
            pending_bytes_max: 1 << 20,
            buffer_pool_bytes_max: 64 << 10,
            checkpoint_interval_bytes: 1 << 20,
            retention_ms: None,
            retention_bytes: None,
            producers_max: 1,
            // Read only by the replay at open, when a cache is empty.
            read_cache_bytes: 0,
            ..LogConfig::default()
        }
    }

    /// Opens (or creates) the journal in `dir` and replays it.
    pub async fn open(dir: &Path, config: JournalConfig) -> Result<CursorJournal, LogError> {
        let log = Log::open(dir, Self::log_config()).await?;
        let mut state = State::default();
        let mut skipped = 0;
        let mut offset = log.offsets().earliest;
        while offset < log.offsets().latest {
            let read = log.read(offset, REPLAY_READ_BYTES).await?;
            if read.is_empty() {
                break;
            }
            for batch in BatchIter::new(read.as_bytes()) {
                // Every stored batch was checked on the way in and by
                // recovery; a failure here is damage since.
                let batch = batch.map_err(LogError::InvalidBatch)?;
                for record in batch.records().filter(|r| r.offset() >= offset) {
                    let key = record.key().unwrap_or_default();
                    let value = record.value().unwrap_or_default();
                    match Event::decode(key, value) {
                        Ok(event) => apply(&mut state, event),
                        Err(e) => {
                            skipped += 1;
                            tracing::warn!(dir = %dir.display(), offset = record.offset(), error = %e, "skipping a cursor event this version cannot read");
                        }
                    }
                }
            }
            offset = read.next_offset;
        }
        Ok(CursorJournal {
            log,
            state: RefCell::new(state),
            config,
            skipped,
        })
    }

    /// Commits `offset` for `group`; returns once it is durable.
    pub async fn commit(
        &self,
        group: &str,
        offset: u64,
        metadata: &[u8],
        now_ms: i64,
    ) -> Result<(), CursorError> {
        check_group(group)?;
        if metadata.len() > METADATA_MAX {
            return Err(EventError::MetadataTooLong.into());
        }
        let committed = Committed {
            offset,
            committed_ms: now_ms,
            metadata: metadata.to_vec(),
        };
        let event = Event::Commit {
            group: group.to_owned(),
            committed,
        };
        self.change(group, event).await
    }

    /// Forgets `group`'s committed offset; returns once that is durable.
    pub async fn delete(&self, group: &str) -> Result<(), CursorError> {
        check_group(group)?;
        let event = Event::Delete {
            group: group.to_owned(),
        };
        self.change(group, event).await
    }

    /// `group`'s committed offset, if it has one.
    pub fn committed(&self, group: &str) -> Option<Committed> {
        self.state
            .borrow()
            .groups
            .get(group)
            .map(|(c, _)| c.clone())
    }

    /// Every group with a committed offset, and the offset (no metadata:
    /// what a metrics scrape needs, without copying it).
    pub fn group_offsets(&self) -> Vec<(String, u64)> {
        self.state
            .borrow()
            .groups
            .iter()
            .map(|(g, (c, _))| (g.clone(), c.offset))
            .collect()
    }

    /// Every group with a committed offset.
    pub fn groups(&self) -> Vec<(String, Committed)> {
        self.state
            .borrow()
            .groups
            .iter()
            .map(|(g, (c, _))| (g.clone(), c.clone()))
            .collect()
    }

    /// What replay needs of subscription `id`, if it has state here.
    pub fn subscription(&self, id: u64) -> Option<SubState> {
        self.state.borrow().subs.get(&id).cloned()
    }

    /// The subscriptions with state here.
    pub fn subscription_ids(&self) -> Vec<u64> {
        self.state.borrow().subs.keys().copied().collect()
    }

    /// True when subscription `id` has enough events after its checkpoint
    /// that its owner should record a new one.
    pub fn checkpoint_due(&self, id: u64) -> bool {
        self.state
            .borrow()
            .subs
            .get(&id)
            .is_some_and(|s| s.events_bytes >= SUB_CHECKPOINT_AFTER_BYTES)
    }

    /// Records `events` of subscription `id`, as one batch, answering at
    /// `ack`'s level. The state changes in the same step that starts the
    /// append. A failed append is not undone: the caller reports the
    /// failure, and what replay sees after a restart is what reached the
    /// disk (an ack that failed is delivered again then).
    pub async fn record(&self, id: u64, events: &[SubEvent], ack: Ack) -> Result<(), CursorError> {
        if events.is_empty() {
            return Ok(());
        }
        let batch = {
            let mut state = self.state.borrow_mut();
            if !state.subs.contains_key(&id) && state.subs.len() >= self.config.subscriptions_max {
                return Err(CursorError::TooManySubscriptions {
                    max: self.config.subscriptions_max,
                });
            }
            let events: Vec<Event> = events
                .iter()
                .map(|event| Event::Sub {
                    id,
                    event: event.clone(),
                })
                .collect();
            let batch = encode(&events)?;
            state.since_snapshot += batch.len() as u64;
            for event in events {
                apply(&mut state, event);
            }
            batch
        };
        let view = BatchView::parse(&batch).map_err(LogError::InvalidBatch)?;
        self.log.append(&view, ack).await?;
        self.snapshot_if_due().await;
        Ok(())
    }

    /// Forgets subscription `id`; returns once that is durable.
    pub async fn delete_subscription(&self, id: u64) -> Result<(), CursorError> {
        let batch = {
            let mut state = self.state.borrow_mut();
            if !state.subs.contains_key(&id) {
                return Ok(());
            }
            let event = Event::SubDelete { id };
            let batch = encode(std::slice::from_ref(&event))?;
            state.since_snapshot += batch.len() as u64;
            apply(&mut state, event);
            batch
        };
        self.append(&batch).await?;
        Ok(())
    }

    /// The journal's log (its offsets and statistics).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Records replay skipped since the journal was opened.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Closes the journal's log.
    pub async fn shutdown(&self) -> Result<(), LogError> {
        self.log.shutdown().await
    }

    /// Applies `event` to the state and appends it, in one synchronous step
    /// (so state order is log order); undoes it if the append fails.
    async fn change(&self, group: &str, event: Event) -> Result<(), CursorError> {
        let (batch, undo) = {
            let mut state = self.state.borrow_mut();
            let is_new = !state.groups.contains_key(group);
            if is_new
                && matches!(event, Event::Commit { .. })
                && state.groups.len() >= self.config.groups_max
            {
                return Err(CursorError::TooManyGroups {
                    max: self.config.groups_max,
                });
            }
            let batch = encode(std::slice::from_ref(&event))?;
            let before = state.groups.get(group).cloned();
            apply(&mut state, event);
            let version = state.groups.get(group).map(|(_, v)| *v);
            state.since_snapshot += batch.len() as u64;
            (batch, (before, version))
        };
        let appended = self.append(&batch).await;
        if let Err(e) = appended {
            // Undo, unless a later change of the group took over already.
            let mut state = self.state.borrow_mut();
            let current = state.groups.get(group).map(|(_, v)| *v);
            if current == undo.1 {
                match undo.0 {
                    Some(before) => state.groups.insert(group.to_owned(), before),
                    None => state.groups.remove(group),
                };
            }
            return Err(e.into());
        }
        self.snapshot_if_due().await;
        Ok(())
    }

    async fn append(&self, batch: &[u8]) -> Result<(), LogError> {
        let view = BatchView::parse(batch)?;
        self.log.append(&view, Ack::Durable).await.map(|_| ())
    }

    /// Once a segment's worth of events followed the last snapshot: writes
    /// the whole state again and drops the segments it replaces. A failure
    /// is logged; the old events still replay to the same state.
    async fn snapshot_if_due(&self) {
        let batches = {
            let mut state = self.state.borrow_mut();
            if state.snapshotting || state.since_snapshot < SEGMENT_BYTES {
                return;
            }
            state.snapshotting = true;
            state.since_snapshot = 0;
            let mut events: Vec<Event> = state
                .groups
                .iter()
                .map(|(group, (committed, _))| Event::Commit {
                    group: group.clone(),
                    committed: committed.clone(),
                })
                .collect();
            for (&id, sub) in &state.subs {
                let checkpoint = sub.checkpoint.iter().cloned().map(SubEvent::Checkpoint);
                events.extend(
                    checkpoint
                        .chain(sub.events.iter().cloned())
                        .map(|event| Event::Sub { id, event }),
                );
            }
            encode_chunks(&events)
        };
        // Cleared however this ends, a dropped future included, so the
        // journal is never left unable to compact.
        let _snapshotting = Snapshotting(&self.state);
        let result = match batches {
            Ok(batches) => self.write_snapshot(&batches).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(dir = %self.log.dir().display(), error = %e, "cursor journal snapshot failed");
        }
    }

    async fn write_snapshot(&self, batches: &[Vec<u8>]) -> Result<(), CursorError> {
        let start = self.log.offsets().next;
        let views = batches
            .iter()
            .map(|b| BatchView::parse(b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(LogError::InvalidBatch)?;
        // Polled together, the appends take their places in the log in
        // this order before any other change can come between them.
        let appends = views.iter().map(|v| self.log.append(v, Ack::Durable));
        for appended in join_all(appends).await {
            appended?;
        }
        self.log.delete_before(start).await?;
        Ok(())
    }
}

/// Marks a snapshot under way; clears the mark when dropped.
struct Snapshotting<'a>(&'a RefCell<State>);

impl Drop for Snapshotting<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().snapshotting = false;
    }
}

/// `events` in batches of at most `SNAPSHOT_BATCH_EVENTS` events and about
/// `SNAPSHOT_BATCH_BYTES` bytes.
fn encode_chunks(events: &[Event]) -> Result<Vec<Vec<u8>>, CursorError> {
    let mut batches = Vec::new();
    let mut chunk: Vec<Event> = Vec::new();
    let mut chunk_bytes = 0;
    for event in events {
        let (key, value) = event.encode();
        let len = key.len() + value.len();
        if !chunk.is_empty()
            && (chunk.len() >= SNAPSHOT_BATCH_EVENTS || chunk_bytes + len > SNAPSHOT_BATCH_BYTES)
        {
            batches.push(encode(&chunk)?);
            chunk.clear();
            chunk_bytes = 0;
        }
        chunk.push(event.clone());
        chunk_bytes += len;
    }
    if !chunk.is_empty() {
        batches.push(encode(&chunk)?);
    }
    Ok(batches)
}

/// The batch of `events`, one record each.
fn encode(events: &[Event]) -> Result<Vec<u8>, CursorError> {
    let mut builder = BatchBuilder::new();
    let now = crate::log::now_ms();
    for event in events {
        let (key, value) = event.encode();
        builder
            .push(Record {
                timestamp_ms: now,
                key: Some(&key),
                value: Some(&value),
                headers: &[],
            })
            .map_err(LogError::InvalidBatch)?;
    }
    Ok(builder.finish().map_err(LogError::InvalidBatch)?)
}

fn apply(state: &mut State, event: Event) {
    state.version += 1;
    let version = state.version;
    match event {
        Event::Commit { group, committed } => {
            state.groups.insert(group, (committed, version));
        }
        Event::Delete { group } => {
            state.groups.remove(&group);
        }
        Event::Sub { id, event } => {
            let sub = state.subs.entry(id).or_default();
            match event {
                SubEvent::Checkpoint(checkpoint) => {
                    sub.checkpoint = Some(checkpoint);
                    sub.events.clear();
                    sub.events_bytes = 0;
                }
                event => {
                    // Key, kind and fields: what the event adds to a
                    // snapshot.
                    sub.events_bytes += match event {
                        SubEvent::Ack { .. } => 27,
                        _ => 31,
                    };
                    sub.events.push(event);
                }
            }
        }
        Event::SubDelete { id } => {
            state.subs.remove(&id);
        }
    }
}
