//! The newest written batches, kept in memory so that consumers reading at
//! the tail are answered without a disk read.
//!
//! Reads go to the device with O_DIRECT, so there is no page cache behind
//! them: without this, every fetch of what was just written is a read I/O
//! that queues beside the appends and their fdatasyncs (Kafka leans on the
//! page cache for this, Redpanda keeps a batch cache). The cache holds each
//! written group commit's batch bytes, exactly as they went to disk, in
//! offset order and without gaps, up to a byte bound per partition; the
//! oldest go first. Only what was written is added, after its write
//! completed, so the cache never serves a byte the disk does not hold.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use tidegate_proto::batch;

/// One group commit's batches, and where they are in their segment.
struct Cached {
    first_offset: u64,
    next_offset: u64,
    segment_base: u64,
    start_pos: u64,
    bytes: Bytes,
}

/// Where a read may start walking batches: a batch's position in the
/// segment holding the offset, at or before the batch holding it (what
/// the segment's sparse index gives a disk read).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seek {
    pub(crate) segment_base: u64,
    pub(crate) pos: u64,
}

/// Whole batches served from memory.
pub(crate) struct Hit {
    pub(crate) bytes: Bytes,
    pub(crate) first_offset: u64,
    pub(crate) next_offset: u64,
}

pub(crate) struct TailCache {
    units: VecDeque<Cached>,
    bytes: usize,
    max_bytes: usize,
}

impl TailCache {
    pub(crate) fn new(max_bytes: usize) -> Self {
        TailCache {
            units: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Whether a group commit of `len` bytes can be kept (a zero bound
    /// keeps nothing).
    pub(crate) fn fits(&self, len: usize) -> bool {
        len > 0 && len <= self.max_bytes
    }

    /// Bytes held.
    pub(crate) fn len_bytes(&self) -> usize {
        self.bytes
    }

    /// Adds the batches `[first_offset, next_offset)` just written at
    /// `at` in their segment. Offsets must follow what is held; anything
    /// else (which the writer never does) starts the cache over rather
    /// than leave a gap in it.
    pub(crate) fn push(&mut self, first_offset: u64, next_offset: u64, at: Seek, bytes: Bytes) {
        if first_offset >= next_offset || !self.fits(bytes.len()) {
            // Larger than the whole cache: keeping it would evict everything
            // and still exceed the bound. What follows it starts afresh.
            self.clear();
            return;
        }
        if self
            .units
            .back()
            .is_some_and(|last| last.next_offset != first_offset)
        {
            self.clear();
        }
        self.bytes += bytes.len();
        self.units.push_back(Cached {
            first_offset,
            next_offset,
            segment_base: at.segment_base,
            start_pos: at.pos,
            bytes,
        });
        while self.bytes > self.max_bytes {
            let Some(old) = self.units.pop_front() else {
                break;
            };
            self.bytes -= old.bytes.len();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.units.clear();
        self.bytes = 0;
    }

    /// Whole batches from the one holding `offset` on, up to `max_bytes`
    /// (at least one), or `None` when `offset` is not held. The walk to
    /// the batch holding `offset` starts at `seek` when that is in the
    /// same commit. A read of at
    /// least half of one group commit shares its bytes; a smaller one is
    /// copied, so that what a reader holds (a response waiting in a slow
    /// client's stream) never keeps alive much more than it counts. A
    /// read that spans commits is copied once into one buffer.
    pub(crate) fn read(&self, offset: u64, max_bytes: usize, seek: Seek) -> Option<Hit> {
        let front = self.units.front()?;
        let back = self.units.back()?;
        if offset < front.first_offset || offset >= back.next_offset {
            return None;
        }
        let at = self.units.partition_point(|u| u.next_offset <= offset);
        let mut pieces: Vec<Bytes> = Vec::new();
        let (mut taken, mut first, mut next) = (0usize, None, offset);
        for unit in self.units.range(at..) {
            let budget = max_bytes.saturating_sub(taken);
            // Later commits start with the batch wanted: no walk.
            let from = match first {
                None => unit.walk_from(seek),
                Some(_) => 0,
            };
            let (piece, piece_first, piece_next) =
                whole_batches(unit, from, next, budget, first.is_none())?;
            if piece.is_empty() {
                break;
            }
            first.get_or_insert(piece_first);
            taken += piece.len();
            next = piece_next;
            let ended_inside = piece_next < unit.next_offset;
            pieces.push(piece);
            if ended_inside || taken >= max_bytes {
                break;
            }
        }
        let first_offset = first?;
        let bytes = match pieces.len() {
            1 => {
                let piece = pieces.pop()?;
                let commit = self.units.get(at).map_or(0, |u| u.bytes.len());
                if piece.len() * 2 >= commit {
                    piece
                } else {
                    Bytes::copy_from_slice(&piece)
                }
            }
            _ => {
                let mut joined = BytesMut::with_capacity(taken);
                for piece in &pieces {
                    joined.extend_from_slice(piece);
                }
                joined.freeze()
            }
        };
        Some(Hit {
            bytes,
            first_offset,
            next_offset: next,
        })
    }
}

impl Cached {
    /// Where in this commit a walk for a batch may start: at `seek` when it
    /// lies in it (a batch's start, at or before the one wanted), else at
    /// the commit's first batch.
    fn walk_from(&self, seek: Seek) -> usize {
        let inside = seek.segment_base == self.segment_base && seek.pos >= self.start_pos;
        let from = if inside { seek.pos - self.start_pos } else { 0 };
        usize::try_from(from).map_or(0, |f| if f < self.bytes.len() { f } else { 0 })
    }
}

/// The batches of `unit` from the one holding `offset`, walking from
/// position `at` (a batch's start), up to `budget` bytes (at least one
/// batch when `at_least_one`), with the first batch's base offset and the
/// offset after the last (empty when none fits). `None` if the unit's
/// bytes do not parse: they were checked at append, so that would be a
/// bug, and the caller reads the disk instead.
fn whole_batches(
    unit: &Cached,
    mut at: usize,
    offset: u64,
    budget: usize,
    at_least_one: bool,
) -> Option<(Bytes, u64, u64)> {
    let buf = &unit.bytes;
    // (start, end) of the batches taken so far, and their offsets.
    let mut taken: Option<(usize, usize)> = None;
    let (mut first, mut next) = (offset, offset);
    while at < buf.len() {
        let header = batch::peek_header(buf.get(at..)?).ok()?;
        let len = header.length as usize;
        let end = at.checked_add(len).filter(|&e| e <= buf.len() && len > 0)?;
        if header.next_offset() > offset {
            let start = taken.map_or(at, |(s, _)| s);
            let alone = taken.is_none() && at_least_one;
            if end - start > budget && !alone {
                break;
            }
            if taken.is_none() {
                if header.base_offset > offset {
                    // The walk began past the batch holding `offset`.
                    return None;
                }
                first = header.base_offset;
            }
            taken = Some((start, end));
            next = header.next_offset();
        }
        at = end;
    }
    Some(match taken {
        Some((start, end)) => (buf.slice(start..end), first, next),
        None => (Bytes::new(), offset, offset),
    })
}

#[cfg(test)]
mod tests;
