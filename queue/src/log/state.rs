//! The in-memory state of a log: its segments, what is queued for writing,
//! the watermarks and who waits on them.

use std::{collections::VecDeque, path::PathBuf, rc::Rc};

use futures::channel::oneshot;
use tidegate_proto::batch::BatchView;

use super::{unit::PendingUnit, Ack, Appended};
use crate::{
    config::LogConfig,
    disk::{align_down, BufferPool, DiskFile},
    error::{IoFailure, LogError},
    index::{Checkpoint, IndexEntry, SparseIndex},
    producers::{snapshot, ProducerTable},
    segment,
};

/// The offsets of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    /// The first offset still stored (the log start offset).
    pub earliest: u64,
    /// The high watermark: one past the last readable offset.
    pub latest: u64,
    /// One past the last offset made durable by fdatasync.
    pub durable: u64,
    /// The next offset `append` will assign (ahead of `latest` while writes
    /// are queued).
    pub next: u64,
}

/// One segment file and what is known to be written in it.
pub(crate) struct Segment {
    pub(crate) base_offset: u64,
    /// The segment file.
    pub(crate) path: PathBuf,
    /// The active segment's open file. A sealed segment holds none: reads
    /// open its file through the log's budget of open files (`files.rs`).
    pub(crate) file: Option<Rc<DiskFile>>,
    /// Bytes completely written (header included): readers stop here.
    pub(crate) size: u64,
    /// One past the last offset in the segment.
    pub(crate) next_offset: u64,
    pub(crate) max_timestamp_ms: i64,
    pub(crate) index: SparseIndex,
    /// The bytes of the last, partial block: O_DIRECT writes whole blocks,
    /// so the next write starts by rewriting them.
    pub(crate) tail: Vec<u8>,
    /// No more appends go here; its index checkpoint is on disk.
    pub(crate) sealed: bool,
    /// Where the last index checkpoint on disk ends.
    pub(crate) checkpointed_pos: u64,
}

impl Segment {
    pub(crate) fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            base_offset: self.base_offset,
            end_pos: self.size,
            next_offset: self.next_offset,
            max_timestamp_ms: self.max_timestamp_ms,
            entries: self.index.entries().to_vec(),
        }
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        let dir = self.path.parent().unwrap_or(std::path::Path::new("."));
        segment::index_path(dir, self.base_offset)
    }

    /// Where a read finds this segment's file.
    pub(crate) fn source(&self) -> super::files::Source {
        match &self.file {
            Some(file) => super::files::Source::Open(file.clone()),
            None => super::files::Source::Closed {
                base: self.base_offset,
                path: self.path.clone(),
            },
        }
    }
}

/// The assigning side's view of the segment appends go to: where the next
/// batch will land, counting what is queued but not yet written.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) segment_base: u64,
    pub(crate) end_pos: u64,
    pub(crate) max_timestamp_ms: i64,
    pub(crate) last_index_pos: Option<u64>,
    /// The bytes of the partial block below `end_pos` that are no longer in
    /// a queued unit: a new unit starts with them.
    pub(crate) tail: Vec<u8>,
    /// A new segment's header, until its first unit takes it.
    pub(crate) new_segment: Option<[u8; segment::HEADER_LEN]>,
    /// The producer snapshot to write beside a new segment, likewise.
    pub(crate) producers: Option<Vec<u8>>,
}

impl Head {
    pub(crate) fn of(seg: &Segment) -> Head {
        Head {
            segment_base: seg.base_offset,
            end_pos: seg.size,
            max_timestamp_ms: seg.max_timestamp_ms,
            last_index_pos: seg.index.entries().last().map(|e| e.pos as u64),
            tail: seg.tail.clone(),
            new_segment: None,
            producers: None,
        }
    }

    /// The head of a new segment starting at `base`.
    fn new_segment(base: u64) -> Head {
        let header = segment::encode_header(base, super::writer::now_ms());
        Head {
            segment_base: base,
            end_pos: segment::HEADER_LEN as u64,
            max_timestamp_ms: i64::MIN,
            last_index_pos: None,
            tail: header.to_vec(),
            new_segment: Some(header),
            producers: None,
        }
    }
}

pub(crate) type Waiter = (u64, oneshot::Sender<Result<(), LogError>>);

/// Tickets that admit appends in call order.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    next: u64,
    serving: u64,
    /// Tickets given up before their turn (cancelled appends), skipped when
    /// the line reaches them. Bounded by the appends waiting.
    abandoned: std::collections::BTreeSet<u64>,
}

impl Admission {
    pub(crate) fn take(&mut self) -> u64 {
        self.next += 1;
        self.next - 1
    }

    pub(crate) fn is_serving(&self, ticket: u64) -> bool {
        ticket == self.serving
    }

    /// The holder of `ticket` is done (admitted, failed or cancelled).
    pub(crate) fn done(&mut self, ticket: u64) {
        if ticket == self.serving {
            self.serving += 1;
            while self.abandoned.remove(&self.serving) {
                self.serving += 1;
            }
        } else if ticket > self.serving {
            self.abandoned.insert(ticket);
        }
    }
}

pub(crate) struct State {
    pub(crate) dir: PathBuf,
    /// Sorted by base offset; the last one is active.
    pub(crate) segments: Vec<Segment>,
    pub(crate) head: Head,
    pub(crate) next_offset: u64,
    pub(crate) written_offset: u64,
    pub(crate) durable_offset: u64,
    pub(crate) pending: VecDeque<PendingUnit>,
    /// Bytes appended and not yet written (queued or in flight).
    pub(crate) pending_bytes: usize,
    pub(crate) written_waiters: VecDeque<Waiter>,
    pub(crate) durable_waiters: VecDeque<Waiter>,
    pub(crate) failed: Option<IoFailure>,
    pub(crate) admission: Admission,
    pub(crate) closing: bool,
    pub(crate) close_error: Option<LogError>,
    /// Idempotent producers: checked and updated as offsets are assigned.
    pub(crate) producers: ProducerTable,
}

impl State {
    pub(crate) fn new(
        dir: PathBuf,
        segments: Vec<Segment>,
        producers: ProducerTable,
    ) -> Result<State, LogError> {
        let active = segments.last().ok_or(LogError::Closed)?;
        let next = active.next_offset;
        Ok(State {
            dir,
            head: Head::of(active),
            segments,
            next_offset: next,
            written_offset: next,
            durable_offset: next,
            pending: VecDeque::new(),
            pending_bytes: 0,
            written_waiters: VecDeque::new(),
            durable_waiters: VecDeque::new(),
            failed: None,
            admission: Admission::default(),
            closing: false,
            close_error: None,
            producers,
        })
    }

    pub(crate) fn check_writable(&self) -> Result<(), LogError> {
        if let Some(f) = &self.failed {
            return Err(LogError::Failed(f.clone()));
        }
        if self.closing {
            return Err(LogError::Closed);
        }
        Ok(())
    }

    /// Assigns the batch its offsets and copies its bytes, with the base
    /// offset set, into the DMA buffers of the unit they will be written
    /// from.
    pub(crate) fn enqueue(
        &mut self,
        view: &BatchView<'_>,
        config: &LogConfig,
        pool: &mut BufferPool,
        waiter: Option<(Ack, oneshot::Sender<Result<(), LogError>>)>,
    ) -> Result<Appended, LogError> {
        self.check_writable()?;
        let bytes = view.as_bytes();
        let header = view.header();
        let count = u64::from(header.record_count);
        let base = self.next_offset;
        let len = bytes.len() as u64;
        let rel_end = (base + count).saturating_sub(self.head.segment_base);
        let full =
            self.head.end_pos + len > config.segment_bytes_max || rel_end > u64::from(u32::MAX);
        if full && self.head.end_pos > segment::HEADER_LEN as u64 {
            self.head = Head::new_segment(base);
            // The producers as of the new segment's base, written beside
            // it, so recovery replays one segment, not the whole log.
            self.producers
                .expire(super::writer::now_ms(), config.producer_expiry_ms);
            self.head.producers = Some(snapshot::encode(&self.producers, base));
        }
        let pos = self.head.end_pos;
        let due = self
            .head
            .last_index_pos
            .is_none_or(|last| pos >= last.saturating_add(config.index_interval_bytes));
        let entry = due.then(|| IndexEntry {
            rel_offset: (base - self.head.segment_base) as u32,
            pos: pos as u32,
            ts_before: self.head.max_timestamp_ms,
        });
        if due {
            self.head.last_index_pos = Some(pos);
        }
        let unit = self.unit_for(pos, config.write_chunk_bytes);
        // The base offset is the one field the log sets; it is outside the
        // CRC, so the producer's checksum stays valid.
        let rest = bytes.get(8..).ok_or(LogError::InvalidBatch(
            tidegate_proto::batch::BatchError::Truncated {
                needed: 8,
                available: bytes.len(),
            },
        ))?;
        unit.push_batch(&[&base.to_le_bytes(), rest], pool);
        unit.index.extend(entry);
        let max_ts = header.max_timestamp_ms;
        unit.end_offset = base + count;
        unit.max_timestamp_ms = unit.max_timestamp_ms.max(max_ts);
        self.head.max_timestamp_ms = self.head.max_timestamp_ms.max(max_ts);
        self.head.end_pos += len;
        self.next_offset = base + count;
        self.pending_bytes += bytes.len();
        match waiter {
            Some((Ack::Durable, tx)) => self.durable_waiters.push_back((base + count, tx)),
            Some((_, tx)) => self.written_waiters.push_back((base + count, tx)),
            None => {}
        }
        Ok(Appended {
            base_offset: base,
            last_offset: base + count - 1,
        })
    }

    /// The unit that takes a batch at `pos` of the head segment.
    fn unit_for(&mut self, pos: u64, chunk_bytes: usize) -> &mut PendingUnit {
        let segment_base = self.head.segment_base;
        let reuse = self
            .pending
            .back()
            .is_some_and(|u| u.segment_base == segment_base);
        if !reuse {
            let unit = PendingUnit::new(
                segment_base,
                pos,
                &self.head.tail,
                self.head.new_segment.take(),
                self.next_offset,
                chunk_bytes,
            );
            let mut unit = unit;
            unit.producers = self.head.producers.take();
            self.pending.push_back(unit);
        }
        let last = self.pending.len() - 1;
        &mut self.pending[last]
    }

    /// Hands everything queued to the writer. The head keeps the tail of
    /// the last unit, which the next unit must start with.
    pub(crate) fn take_pending(&mut self) -> Vec<PendingUnit> {
        if let Some(last) = self.pending.back() {
            if last.segment_base == self.head.segment_base {
                self.head.tail = tail_of(&last.slices(), last.end_pos());
            }
        }
        self.pending.drain(..).collect()
    }

    /// A receiver answered once every offset below `end` has reached
    /// `ack`'s level; `None` when it already has (or for [`Ack::None`]).
    pub(crate) fn wait_for_level(
        &mut self,
        ack: Ack,
        end: u64,
    ) -> Option<oneshot::Receiver<Result<(), LogError>>> {
        let (mark, waiters) = match ack {
            Ack::None => return None,
            Ack::Written => (self.written_offset, &mut self.written_waiters),
            Ack::Durable => (self.durable_offset, &mut self.durable_waiters),
        };
        if end <= mark {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        // Kept in offset order: completion pops from the front.
        let at = waiters.partition_point(|(e, _)| *e <= end);
        waiters.insert(at, (end, tx));
        Some(rx)
    }

    /// Answers the waiters whose data is now written (or durable).
    pub(crate) fn complete_written(&mut self) {
        let w = self.written_offset;
        while self
            .written_waiters
            .front()
            .is_some_and(|(end, _)| *end <= w)
        {
            if let Some((_, tx)) = self.written_waiters.pop_front() {
                let _ = tx.send(Ok(()));
            }
        }
    }

    pub(crate) fn complete_durable(&mut self) {
        let d = self.durable_offset;
        while self
            .durable_waiters
            .front()
            .is_some_and(|(end, _)| *end <= d)
        {
            if let Some((_, tx)) = self.durable_waiters.pop_front() {
                let _ = tx.send(Ok(()));
            }
        }
    }

    /// Fails every waiter not yet answered.
    pub(crate) fn fail_waiters(&mut self, err: &LogError) {
        for (_, tx) in self
            .written_waiters
            .drain(..)
            .chain(self.durable_waiters.drain(..))
        {
            let _ = tx.send(Err(err.clone()));
        }
    }

    /// After a failed write: forget everything not written, so the next
    /// append gets the offset after the last written one again.
    pub(crate) fn rewind_to_written(&mut self, err: &LogError) {
        let w = self.written_offset;
        for (_, tx) in self.written_waiters.drain(..) {
            let _ = tx.send(Err(err.clone()));
        }
        // Durable waiters at or below the written mark still wait for a sync.
        let mut keep = VecDeque::new();
        for (end, tx) in self.durable_waiters.drain(..) {
            if end <= w {
                keep.push_back((end, tx));
            } else {
                let _ = tx.send(Err(err.clone()));
            }
        }
        self.durable_waiters = keep;
        self.pending.clear();
        self.pending_bytes = 0;
        self.next_offset = w;
        self.producers.rewind(w);
        if let Some(active) = self.segments.last() {
            self.head = Head::of(active);
        }
    }

    pub(crate) fn offsets(&self) -> LogOffsets {
        LogOffsets {
            earliest: self.segments.first().map_or(0, |s| s.base_offset),
            latest: self.written_offset,
            durable: self.durable_offset,
            next: self.next_offset,
        }
    }

    pub(crate) fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// The segment holding `offset`, if it is stored and written.
    pub(crate) fn segment_for(&self, offset: u64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.base_offset <= offset);
        let seg = self.segments.get(i.checked_sub(1)?)?;
        (offset < seg.next_offset).then_some(seg)
    }
}

/// The bytes of the last partial block of `parts` (one concatenation
/// ending at `end_pos`).
pub(crate) fn tail_of(parts: &[&[u8]], end_pos: u64) -> Vec<u8> {
    let keep = (end_pos - align_down(end_pos)) as usize;
    let mut tail = Vec::with_capacity(keep);
    let mut need = keep;
    for part in parts.iter().rev() {
        let take = need.min(part.len());
        tail.splice(0..0, part[part.len() - take..].iter().copied());
        need -= take;
        if need == 0 {
            break;
        }
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::tail_of;

    #[test]
    fn admission_serves_tickets_in_order_and_skips_abandoned_ones() {
        let mut a = super::Admission::default();
        let (t0, t1, t2, t3) = (a.take(), a.take(), a.take(), a.take());
        assert!(a.is_serving(t0) && !a.is_serving(t1));
        a.done(t2); // cancelled before its turn
        a.done(t0);
        assert!(a.is_serving(t1));
        a.done(t1);
        assert!(a.is_serving(t3), "the abandoned ticket is skipped");
        a.done(t3);
        let t4 = a.take();
        assert!(a.is_serving(t4));
    }

    #[test]
    fn tail_spans_parts_and_stops_at_the_block_boundary() {
        let a = vec![1u8; 10];
        let b = vec![2u8; 5];
        // end at 4096 + 12: the last 12 bytes, 7 of a and 5 of b
        let t = tail_of(&[&a, &b], 4096 + 12);
        assert_eq!(t, [vec![1u8; 7], vec![2u8; 5]].concat());
        assert!(tail_of(&[&a, &b], 8192).is_empty());
        assert_eq!(tail_of(&[&a, &b], 4096 + 3), vec![2u8; 3]);
    }
}
