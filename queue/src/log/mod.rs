//! One partition's log: the public face over its state, writer and recovery.
//!
//! Concurrency model: a `Log` lives on one glommio executor. Its state sits
//! in a `RefCell` that is never borrowed across an `.await`. Appends assign
//! offsets synchronously, in call order, and queue their bytes; one writer
//! task per log turns whatever has queued into one group-commit write (split
//! into aligned chunks written concurrently), then one fdatasync if anyone
//! asked for durability. Appends that arrive while a write or fdatasync is in
//! flight ride on the next one.

mod files;
mod producer_recovery;
mod read;
mod recovery;
mod retention;
mod roll;
mod scan;
mod spare;
mod state;
mod sync_latency;
mod syncer;
mod tail_cache;
mod unit;
mod writer;

use std::{cell::RefCell, path::Path, rc::Rc, time::Duration};

use event_listener::Event;
use futures::channel::oneshot;
use glommio::task::JoinHandle;
use tidegate_proto::batch::BatchView;

pub use read::ReadBatches;
pub use recovery::RecoveryReport;
pub use state::LogOffsets;
pub(crate) use writer::now_ms;

use crate::{
    config::LogConfig,
    disk::{BufferPool, Disk},
    error::LogError,
    gate::{GateFlow, WriteGate},
    producers::{Identity, Verdict, RECENT_BATCHES},
};
use state::State;

/// How many of the newest records per remembered id the message-id
/// rebuild reads at most: all of the table's ids come back when at least
/// one record in this many carries one.
pub const REBUILD_RECORDS_PER_ID: u64 = 4;

/// How far an append must get before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ack {
    /// As soon as the batch has an offset and is queued for writing.
    None,
    /// Once the write that holds the batch has completed.
    Written,
    /// Once an fdatasync after that write has completed.
    Durable,
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the batch's first record.
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
}

/// What `enforce_retention` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Bytes of segment files deleted.
    pub bytes_deleted: u64,
    /// The log start offset afterwards.
    pub earliest: u64,
}

/// Counters of what the log has done since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Group-commit flushes (each one or more aligned writes).
    pub flushes: u64,
    /// The syncer's fdatasync calls on the active segment (a roll's and the
    /// close's are not counted).
    pub syncs: u64,
    /// Batch bytes written (not counting rewritten tail blocks).
    pub bytes_written: u64,
    /// Batches appended.
    pub batches_appended: u64,
    /// Time spent in the syncer's fdatasyncs, in microseconds (with
    /// `syncs`, the mean fdatasync latency).
    pub sync_us_total: u64,
    /// The syncer's fdatasyncs by latency: slot `i` counts those that took
    /// more than bound `i - 1` and at most bound `i` of
    /// [`LogStats::SYNC_LATENCY_BOUNDS_US`], the last slot those above the
    /// largest bound. Not cumulative; the slots add up to `syncs`.
    pub syncs_by_latency: [u64; sync_latency::SYNC_LATENCY_SLOTS],
    /// Records returned by reads.
    pub records_read: u64,
    /// Bytes returned by reads.
    pub bytes_read: u64,
    /// Batches of idempotent producers answered as duplicates (not
    /// written again).
    pub duplicates: u64,
    /// Records stored as duplicate markers (message-id deduplication).
    pub dedup_markers: u64,
    /// Message ids forgotten before their window ended (table full).
    pub dedup_evicted: u64,
    /// Segments prepared in the background (zero-filled) before a roll
    /// (`LogConfig::prepare_segments`).
    pub segments_prepared: u64,
    /// Rolls that took a prepared segment.
    pub rolls_prepared: u64,
    /// Segment rolls that completed.
    pub rolls: u64,
    /// Time those rolls held the writer, in microseconds (with `rolls`,
    /// the mean roll): the partition's appends wait that long.
    pub roll_us_total: u64,
    /// Reads answered from the tail cache, without a disk read
    /// (`LogConfig::read_cache_bytes`).
    pub reads_cached: u64,
    /// Sealed segment files opened for reads, because they were not among
    /// the ones kept open (`LogConfig::open_segments_max`).
    pub segment_opens: u64,
    /// Sealed segment files open now (at most
    /// `LogConfig::open_segments_max`); the active segment's is not counted.
    pub segments_open: u64,
}

impl LogStats {
    /// Upper bounds of the buckets of [`LogStats::syncs_by_latency`], in
    /// microseconds: powers of two from 50 µs to 1.6384 s.
    pub const SYNC_LATENCY_BOUNDS_US: [u64; 16] = sync_latency::SYNC_LATENCY_BOUNDS_US;
    /// Slots of [`LogStats::syncs_by_latency`]: one per bound, then `+Inf`.
    pub const SYNC_LATENCY_SLOTS: usize = sync_latency::SYNC_LATENCY_SLOTS;

    /// Counts one of the syncer's fdatasyncs, whether it succeeded or not
    /// (a failing disk is often a slow one first).
    pub(crate) fn record_sync(&mut self, took: Duration) {
        let took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.syncs += 1;
        self.sync_us_total = self.sync_us_total.saturating_add(took_us);
        self.syncs_by_latency[sync_latency::slot_of(took)] += 1;
    }
}

/// Everything the log and its writer task share.
pub(crate) struct Shared {
    pub(crate) state: RefCell<State>,
    /// Wakes the writer when there is work, or when closing.
    pub(crate) work: Event,
    /// Wakes the syncer when something was written.
    pub(crate) sync_work: Event,
    /// DMA buffers the writer reuses.
    pub(crate) pool: RefCell<BufferPool>,
    /// Wakes appenders waiting for pending space and readers waiting for data.
    pub(crate) progress: Event,
    /// Wakes batches of idempotent producers waiting for their predecessors.
    pub(crate) sequenced: Event,
    /// Batches waiting for their predecessors, per producer (bounded by
    /// [`RECENT_BATCHES`] each).
    pub(crate) waiting: RefCell<std::collections::HashMap<i64, usize>>,
    pub(crate) disk: Disk,
    /// This log's place at the shard's write gate.
    pub(crate) gate: GateFlow,
    pub(crate) config: LogConfig,
    pub(crate) stats: std::cell::Cell<LogStats>,
    /// The message ids seen within the window, when the log deduplicates.
    pub(crate) dedup: RefCell<Option<crate::dedup::DedupTable>>,
    /// The next segment, prepared in the background.
    pub(crate) spare: RefCell<spare::Spare>,
    /// The newest written batches, for readers at the tail.
    pub(crate) tail: RefCell<tail_cache::TailCache>,
    /// The sealed segments' files kept open for reads.
    pub(crate) open: RefCell<files::OpenSegments>,
}

impl Shared {
    pub(crate) fn count(&self, f: impl FnOnce(&mut LogStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }
}

/// The answer of a waiter on the written or durable mark.
fn answered(answer: Result<Result<(), LogError>, oneshot::Canceled>) -> Result<(), LogError> {
    match answer {
        Ok(result) => result,
        Err(oneshot::Canceled) => Err(LogError::Closed),
    }
}

/// One producer's batch waiting for its predecessors; counted while held.
struct WaitSlot<'a> {
    shared: &'a Shared,
    producer_id: i64,
}

impl<'a> WaitSlot<'a> {
    fn take(shared: &'a Shared, producer_id: i64) -> Option<Self> {
        let mut waiting = shared.waiting.borrow_mut();
        let count = waiting.entry(producer_id).or_default();
        if *count >= RECENT_BATCHES {
            return None;
        }
        *count += 1;
        Some(WaitSlot {
            shared,
            producer_id,
        })
    }
}

impl Drop for WaitSlot<'_> {
    fn drop(&mut self) {
        let mut waiting = self.shared.waiting.borrow_mut();
        if let Some(count) = waiting.get_mut(&self.producer_id) {
            *count -= 1;
            if *count == 0 {
                waiting.remove(&self.producer_id);
            }
        }
    }
}

/// A partition log. See the module documentation.
pub struct Log {
    dir: std::path::PathBuf,
    shared: Rc<Shared>,
    writer: RefCell<Option<JoinHandle<()>>>,
    syncer: RefCell<Option<JoinHandle<()>>>,
    recovery: RecoveryReport,
}

impl Log {
    /// Opens the log in `dir` (created if missing), recovering it: a torn or
    /// corrupt tail is truncated, missing indexes are rebuilt. Must run on a
    /// glommio executor; the log stays on it.
    pub async fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log, LogError> {
        Log::open_gated(dir, config, GateFlow::new(WriteGate::unlimited())).await
    }

    /// Opens the log as [`Log::open`] does, its writes going to the disk
    /// through `gate`'s write gate as part of that flow (which other logs
    /// may share).
    pub async fn open_gated(
        dir: impl AsRef<Path>,
        config: LogConfig,
        gate: GateFlow,
    ) -> Result<Log, LogError> {
        config.validate()?;
        let disk = Disk::new();
        let (state, recovery) = recovery::recover(dir.as_ref(), &config, &disk).await?;
        let tail = tail_cache::TailCache::new(config.read_cache_bytes);
        let open = files::OpenSegments::new(config.open_segments_max);
        let shared = Rc::new(Shared {
            state: RefCell::new(state),
            work: Event::new(),
            sync_work: Event::new(),
            progress: Event::new(),
            sequenced: Event::new(),
            waiting: RefCell::new(std::collections::HashMap::new()),
            pool: RefCell::new(BufferPool::new(
                config.write_chunk_bytes,
                config.buffer_pool_bytes_max,
            )),
            disk,
            gate,
            config,
            stats: Default::default(),
            dedup: RefCell::new(None),
            spare: RefCell::default(),
            tail: RefCell::new(tail),
            open: RefCell::new(open),
        });
        let writer = glommio::spawn_local(writer::run(shared.clone())).detach();
        let syncer = glommio::spawn_local(syncer::run(shared.clone())).detach();
        let log = Log {
            dir: dir.as_ref().to_path_buf(),
            shared,
            writer: RefCell::new(Some(writer)),
            syncer: RefCell::new(Some(syncer)),
            recovery,
        };
        log.rebuild_dedup().await?;
        Ok(log)
    }

    /// Rebuilds the message ids of the window from the log itself (the
    /// records whose timestamp is within it): no state of its own to lose
    /// in a crash. Reads, once at open, the window's records but at most
    /// the newest [`REBUILD_RECORDS_PER_ID`] × `dedup_ids_max` of them: the
    /// table holds that many ids at most, and a window of days at high
    /// rates would otherwise make the open read it all.
    async fn rebuild_dedup(&self) -> Result<(), LogError> {
        let Some(window) = self.shared.config.dedup_window_ms else {
            return Ok(());
        };
        let now = writer::now_ms();
        let from = now.saturating_sub(i64::try_from(window).unwrap_or(i64::MAX));
        let mut table = crate::dedup::DedupTable::new(window, self.shared.config.dedup_ids_max);
        // A read that fails (a damaged segment) ends the rebuild with the
        // ids found so far: reads of that range fail anyway, and the log
        // must still open. Copies of the ids it missed are stored again.
        if let Err(e) = self.replay_ids(from, now, &mut table).await {
            tracing::warn!(dir = %self.dir.display(), error = %e, "rebuilding message ids stopped early");
        }
        *self.shared.dedup.borrow_mut() = Some(table);
        Ok(())
    }

    /// Remembers the message ids of the records with a timestamp from
    /// `from` on, seen at their timestamp (at most `now`: a producer's
    /// clock ahead must not stretch the window).
    async fn replay_ids(
        &self,
        from: i64,
        now: i64,
        table: &mut crate::dedup::DedupTable,
    ) -> Result<(), LogError> {
        let ids_max = u64::try_from(self.shared.config.dedup_ids_max).unwrap_or(u64::MAX);
        let floor = self
            .offsets()
            .latest
            .saturating_sub(ids_max.saturating_mul(REBUILD_RECORDS_PER_ID));
        let mut offset = self.offset_for_timestamp(from).await?.map(|o| o.max(floor));
        while let Some(at) = offset {
            let read = self.read(at, 1 << 20).await?;
            if read.is_empty() {
                break;
            }
            for batch in tidegate_proto::batch::BatchIter::stored(read.as_bytes()) {
                for record in batch?.records() {
                    let ts = record.timestamp_ms();
                    let id = crate::dedup::message_id(&record).filter(|id| !id.is_empty());
                    if let Some(id) = id.filter(|_| ts >= from) {
                        let hash = crate::dedup::id_hash(id);
                        table.insert(hash, record.offset(), ts.min(now), now);
                    }
                }
            }
            offset = (read.next_offset > at).then_some(read.next_offset);
        }
        Ok(())
    }

    /// True when reads check each batch's CRC (`verify_reads`): a reader
    /// need not check it again. (Reads from the tail cache return bytes
    /// checked when they were appended, which never were on disk.)
    pub fn verifies_reads(&self) -> bool {
        self.shared.config.verify_reads
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's flow at its write gate.
    pub fn gate_flow(&self) -> &GateFlow {
        &self.shared.gate
    }

    /// What recovery found and did when the log was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Appends one validated batch and waits for `ack`. The batch's base
    /// offset is assigned here, in call order; its bytes are stored exactly
    /// as given apart from that field.
    ///
    /// A batch of an idempotent producer (docs/SEMANTICS.md §2) is checked
    /// against the producer's previous batches as its offsets are assigned:
    /// a batch sent again is answered with its first offsets and not
    /// written ([`LogError::ProducerFenced`] and
    /// [`LogError::OutOfOrderSequence`] refuse the others), and one that
    /// overtook its predecessors waits up to `reorder_wait` for them.
    pub async fn append(&self, batch: &BatchView<'_>, ack: Ack) -> Result<Appended, LogError> {
        let len = batch.as_bytes().len();
        let max = self.shared.config.batch_bytes_max();
        if len > max {
            return Err(LogError::BatchTooLarge { len, max });
        }
        let identity = Identity::of(batch.header());
        let mut could_wait = true;
        if let Some(id) = &identity {
            could_wait = self.wait_for_predecessors(id).await;
        }
        let admitted = self.wait_for_room(len).await?;
        let want = match ack {
            Ack::None => None,
            level => Some(level),
        };
        let (appended, rx, written) = {
            let mut state = self.shared.state.borrow_mut();
            let verdict = match state.producers.check(identity.as_ref()) {
                // Unknown without a wait (too many of its batches waited
                // already) is refused like a gap.
                Verdict::Unknown if !could_wait => Verdict::OutOfOrder { expected: 0 },
                verdict => verdict,
            };
            match verdict {
                // Unknown after waiting for a start that did not come: this
                // batch starts the producer (new, or evicted earlier).
                Verdict::Unchecked | Verdict::Append | Verdict::Unknown => {
                    let (tx, rx) = match want {
                        Some(_) => {
                            let (tx, rx) = oneshot::channel();
                            (Some(tx), Some(rx))
                        }
                        None => (None, None),
                    };
                    let mut pool = self.shared.pool.borrow_mut();
                    let mut dedup = self.shared.dedup.borrow_mut();
                    let now = writer::now_ms();
                    let plan = match dedup.as_ref() {
                        Some(table) => crate::dedup::plan(batch, state.next_offset, table, now)?,
                        None => crate::dedup::Plan::default(),
                    };
                    let rewritten = match &plan.rewritten {
                        Some(bytes) if bytes.len() > max => {
                            return Err(LogError::BatchTooLarge {
                                len: bytes.len(),
                                max,
                            })
                        }
                        Some(bytes) => Some(BatchView::parse(bytes)?),
                        None => None,
                    };
                    let stored = rewritten.as_ref().unwrap_or(batch);
                    let appended =
                        state.enqueue(stored, &self.shared.config, &mut pool, want.zip(tx))?;
                    if let Some(table) = dedup.as_mut() {
                        let before = table.evicted();
                        for (id, offset) in &plan.new_ids {
                            table.insert(*id, *offset, now, now);
                        }
                        let evicted = table.evicted() - before;
                        let markers = u64::from(plan.duplicates);
                        self.shared.count(|s| {
                            s.dedup_markers += markers;
                            s.dedup_evicted += evicted;
                        });
                    }
                    if let Some(id) = &identity {
                        state
                            .producers
                            .record(id, appended.base_offset, writer::now_ms());
                    }
                    (appended, rx, true)
                }
                // Sent before: answered with the first offsets once they
                // reach the level asked for; nothing is written.
                Verdict::Duplicate {
                    base_offset,
                    last_offset,
                } => {
                    let rx = state.wait_for_level(ack, last_offset + 1);
                    let appended = Appended {
                        base_offset,
                        last_offset,
                    };
                    (appended, rx, false)
                }
                Verdict::Fenced { current } => {
                    let id = identity.as_ref();
                    return Err(LogError::ProducerFenced {
                        producer_id: id.map_or(-1, |i| i.producer_id),
                        epoch: id.map_or(-1, |i| i.epoch),
                        current,
                    });
                }
                Verdict::Ahead { expected } | Verdict::OutOfOrder { expected } => {
                    let id = identity.as_ref();
                    return Err(LogError::OutOfOrderSequence {
                        producer_id: id.map_or(-1, |i| i.producer_id),
                        got: id.map_or(-1, |i| i.base_sequence),
                        expected,
                    });
                }
            }
        };
        // Enqueued (or known): the next append in line may go.
        drop(admitted);
        if written {
            if identity.is_some() {
                self.shared.sequenced.notify(usize::MAX);
            }
            self.shared.count(|s| s.batches_appended += 1);
            self.shared.work.notify(usize::MAX);
        } else {
            self.shared.count(|s| s.duplicates += 1);
            // The original may have asked for less (written) than this
            // retry (durable): wake the syncer, which otherwise waits for
            // the next write, and the writer for what is still queued.
            if rx.is_some() {
                self.shared.work.notify(usize::MAX);
                self.shared.sync_work.notify(usize::MAX);
            }
        }
        if let Some(rx) = rx {
            answered(rx.await)?;
        }
        Ok(appended)
    }

    /// Waits while `id`'s batch is ahead of its producer's next sequence,
    /// for at most `reorder_wait` and with at most [`RECENT_BATCHES`]
    /// batches of one producer waiting; the check at enqueue decides.
    /// False when it had to wait and could not (no slot left).
    async fn wait_for_predecessors(&self, id: &Identity) -> bool {
        let ahead = |shared: &Shared| {
            matches!(
                shared.state.borrow().producers.check(Some(id)),
                Verdict::Ahead { .. } | Verdict::Unknown
            )
        };
        if !ahead(&self.shared) {
            return true;
        }
        let Some(_slot) = WaitSlot::take(&self.shared, id.producer_id) else {
            return false;
        };
        let deadline = std::time::Instant::now() + self.shared.config.reorder_wait;
        loop {
            let sequenced = self.shared.sequenced.listen();
            if !ahead(&self.shared) {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return true;
            }
            let timer = std::pin::pin!(glommio::timer::sleep(left));
            futures::future::select(sequenced, timer).await;
        }
    }

    /// Waits until `len` more bytes fit under `pending_bytes_max` (one batch
    /// always fits into an empty queue, however large). Appends are admitted
    /// strictly in call order: a small batch never overtakes a large one
    /// waiting for room, so one producer's batches keep their order.
    async fn wait_for_room(&self, len: usize) -> Result<Admitted<'_>, LogError> {
        let turn = Turn::take(&self.shared);
        loop {
            let progressed = self.shared.progress.listen();
            {
                let state = self.shared.state.borrow();
                state.check_writable()?;
                let pending = state.pending_bytes;
                let room = pending == 0 || pending + len <= self.shared.config.pending_bytes_max;
                if room && state.admission.is_serving(turn.ticket) {
                    return Ok(Admitted(turn));
                }
            }
            progressed.await;
        }
    }

    /// Reads whole batches starting with the one that holds `offset`, up to
    /// `max_bytes` (at least one batch, whatever its size). Empty at the high
    /// watermark.
    pub async fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadBatches, LogError> {
        read::read(&self.shared, offset, max_bytes).await
    }

    /// The first offset whose record has a timestamp `>= timestamp_ms`, or
    /// `None` when every record is older.
    pub async fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>, LogError> {
        read::offset_for_timestamp(&self.shared, timestamp_ms).await
    }

    /// Waits until a record at `offset` is readable (the high watermark
    /// passes it) or the log fails.
    pub async fn wait_for(&self, offset: u64) -> Result<(), LogError> {
        loop {
            let progressed = self.shared.progress.listen();
            {
                let state = self.shared.state.borrow();
                if state.written_offset > offset {
                    return Ok(());
                }
                if let Some(failure) = &state.failed {
                    return Err(LogError::Failed(failure.clone()));
                }
                if state.closing {
                    return Err(LogError::Closed);
                }
            }
            progressed.await;
        }
    }

    /// Earliest, high watermark, durable watermark and next offset.
    pub fn offsets(&self) -> LogOffsets {
        self.shared.state.borrow().offsets()
    }

    /// Total bytes of all segments (written data only).
    pub fn size_bytes(&self) -> u64 {
        self.shared.state.borrow().size_bytes()
    }

    /// Bytes held in the tail cache (at most `LogConfig::read_cache_bytes`).
    pub fn read_cache_bytes(&self) -> usize {
        self.shared.tail.borrow().len_bytes()
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.shared.state.borrow().segments.len()
    }

    /// What the log has done since it was opened.
    pub fn stats(&self) -> LogStats {
        LogStats {
            segments_open: self.shared.open.borrow().len() as u64,
            ..self.shared.stats.get()
        }
    }

    /// Idempotent producers the partition knows, and how many it has
    /// forgotten (at its cap or by expiry) since it was opened.
    pub fn producers(&self) -> (usize, u64) {
        let state = self.shared.state.borrow();
        (state.producers.len(), state.producers.evicted())
    }

    /// True once a write or fdatasync failed; the log is then read-only.
    pub fn is_failed(&self) -> bool {
        self.shared.state.borrow().failed.is_some()
    }

    /// Deletes whole sealed segments that are past the retention limits of
    /// the configuration, as of `now_ms`.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<RetentionReport, LogError> {
        retention::enforce_retention(&self.shared, now_ms, None).await
    }

    /// Deletes whole sealed segments whose every record is below `offset`
    /// (a log that keeps its own snapshots, like a cursor journal, drops
    /// what a newer snapshot replaces), besides the retention limits.
    pub async fn delete_before(&self, offset: u64) -> Result<RetentionReport, LogError> {
        retention::enforce_retention(&self.shared, i64::MIN, Some(offset)).await
    }

    /// Puts a new fault plan under the log, counting from now (tests).
    #[doc(hidden)]
    pub fn inject_faults(&self, plan: crate::fault::FaultPlan) {
        self.shared.disk.inject(plan);
    }

    /// Lets injected write faults stop (tests: the disk got space back).
    #[doc(hidden)]
    pub fn heal_injected_faults(&self) {
        self.shared.disk.heal();
    }

    /// Writes everything queued, fdatasyncs it, checkpoints the index and
    /// closes the files.
    pub async fn close(self) -> Result<(), LogError> {
        let result = self.shutdown().await;
        // Nothing reads any more: close the active segment's file now
        // rather than when the log is dropped, which leaves it to the
        // executor's next I/O cycle (none if the executor is ending).
        let active = self
            .shared
            .state
            .borrow_mut()
            .segments
            .last_mut()
            .and_then(|s| s.file.take());
        if let Some(file) = active {
            crate::disk::DiskFile::close_shared(file).await;
        }
        result
    }

    /// Like [`Log::close`], for a log others still hold (a long poll, say):
    /// it stops taking appends, writes and syncs what is queued, and ends
    /// every wait; reads of what was written keep working. Calling it again
    /// only reports how the first call ended.
    pub async fn shutdown(&self) -> Result<(), LogError> {
        self.shared.state.borrow_mut().closing = true;
        self.shared.work.notify(usize::MAX);
        self.shared.sync_work.notify(usize::MAX);
        self.shared.progress.notify(usize::MAX);
        let syncer = self.syncer.borrow_mut().take();
        if let Some(syncer) = syncer {
            let _ = syncer.await;
        }
        let writer = self.writer.borrow_mut().take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        let state = self.shared.state.borrow();
        match &state.failed {
            Some(f) => Err(LogError::Failed(f.clone())),
            None => state.close_error.clone().map_or(Ok(()), Err),
        }
    }
}

/// An append's place in line for admission (see `wait_for_room`). Dropping
/// it, whether the append went through, failed or was cancelled, lets the
/// next one go.
struct Turn<'a> {
    shared: &'a Shared,
    ticket: u64,
}

impl<'a> Turn<'a> {
    fn take(shared: &'a Shared) -> Self {
        let ticket = shared.state.borrow_mut().admission.take();
        Turn { shared, ticket }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.try_borrow_mut() {
            state.admission.done(self.ticket);
        }
        self.shared.progress.notify(usize::MAX);
    }
}

/// Proof that an append was admitted; its turn ends when this is dropped.
struct Admitted<'a>(#[allow(dead_code)] Turn<'a>);

impl Drop for Log {
    fn drop(&mut self) {
        // Dropped without `close`: stop the writer where it is, like a crash
        // of this log. Acknowledged data is safe; the rest is for recovery.
        for task in [self.writer.get_mut().take(), self.syncer.get_mut().take()]
            .into_iter()
            .flatten()
        {
            task.cancel();
        }
        if let Ok(mut state) = self.shared.state.try_borrow_mut() {
            state.closing = true;
            state.fail_waiters(&LogError::Closed);
        }
        self.shared.progress.notify(usize::MAX);
    }
}
