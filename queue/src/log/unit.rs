//! A pending unit: batches queued for one segment, already laid out in the
//! DMA buffers they will be written from.
//!
//! `append` copies a producer's batch once, straight into aligned buffers of
//! `write_chunk_bytes` (the only copy between the caller's bytes and the
//! disk). The first buffer starts at the block boundary below the unit's
//! first byte, with the bytes of that partial block already on disk (the
//! segment's tail) in front, because O_DIRECT rewrites whole blocks.

use glommio::io::DmaBuffer;

use crate::{
    disk::{align_down, align_up, pieces, BufferPool, BLOCK},
    index::IndexEntry,
    segment,
};

pub(crate) struct PendingUnit {
    pub(crate) segment_base: u64,
    /// Position in the segment of the unit's first batch byte.
    pub(crate) start_pos: u64,
    /// When the unit starts a new segment: that segment's header, which is
    /// also the start of the first buffer.
    pub(crate) new_segment: Option<[u8; segment::HEADER_LEN]>,
    /// With `new_segment`: the producer snapshot to write beside it.
    pub(crate) producers: Option<Vec<u8>>,
    chunks: Vec<DmaBuffer>,
    chunk_bytes: usize,
    /// Bytes used in the last chunk.
    fill: usize,
    /// Batch bytes in the unit (without the tail prefix).
    pub(crate) batch_bytes: usize,
    pub(crate) end_offset: u64,
    pub(crate) max_timestamp_ms: i64,
    pub(crate) index: Vec<IndexEntry>,
}

impl PendingUnit {
    /// A unit whose first batch lands at `start_pos`, after `prefix` (the
    /// bytes of the partial block below `start_pos`).
    pub(crate) fn new(
        segment_base: u64,
        start_pos: u64,
        prefix: &[u8],
        new_segment: Option<[u8; segment::HEADER_LEN]>,
        next_offset: u64,
        chunk_bytes: usize,
    ) -> Self {
        // The prefix is what makes rewriting the block below `start_pos`
        // safe; a wrong one would overwrite acknowledged bytes.
        assert_eq!(prefix.len() as u64, start_pos - align_down(start_pos));
        let mut unit = PendingUnit {
            segment_base,
            start_pos,
            new_segment,
            producers: None,
            chunks: Vec::new(),
            chunk_bytes,
            fill: chunk_bytes,
            batch_bytes: 0,
            end_offset: next_offset,
            max_timestamp_ms: i64::MIN,
            index: Vec::new(),
        };
        unit.copy_in(&[prefix], None);
        unit
    }

    /// Copies `parts` (one batch, in pieces) to the end of the unit.
    pub(crate) fn push_batch(&mut self, parts: &[&[u8]], pool: &mut BufferPool) {
        self.batch_bytes += self.copy_in(parts, Some(pool));
    }

    fn copy_in(&mut self, parts: &[&[u8]], mut pool: Option<&mut BufferPool>) -> usize {
        let mut copied = 0;
        for part in parts {
            let mut src = *part;
            while !src.is_empty() {
                if self.fill == self.chunk_bytes {
                    let buf = match pool.as_deref_mut() {
                        Some(pool) => pool.take(self.chunk_bytes),
                        None => glommio::allocate_dma_buffer(self.chunk_bytes),
                    };
                    self.chunks.push(buf);
                    self.fill = 0;
                }
                let Some(chunk) = self.chunks.last_mut() else {
                    break;
                };
                let room = self.chunk_bytes - self.fill;
                let n = room.min(src.len());
                chunk.as_bytes_mut()[self.fill..self.fill + n].copy_from_slice(&src[..n]);
                self.fill += n;
                copied += n;
                src = &src[n..];
            }
        }
        copied
    }

    /// Position just past the unit's last byte.
    pub(crate) fn end_pos(&self) -> u64 {
        self.start_pos + self.batch_bytes as u64
    }

    /// The unit's bytes, from its first aligned block on.
    pub(crate) fn slices(&self) -> Vec<&[u8]> {
        let last = self.chunks.len().saturating_sub(1);
        self.chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let len = if i == last {
                    self.fill
                } else {
                    self.chunk_bytes
                };
                &c.as_bytes()[..len]
            })
            .collect()
    }

    /// A copy of the unit's batches alone (without the prefix), for the
    /// tail cache.
    pub(crate) fn copy_batches(&self) -> bytes::Bytes {
        let mut skip = (self.start_pos - align_down(self.start_pos)) as usize;
        let mut out = bytes::BytesMut::with_capacity(self.batch_bytes);
        for slice in self.slices() {
            let from = skip.min(slice.len());
            out.extend_from_slice(&slice[from..]);
            skip -= from;
        }
        out.freeze()
    }

    /// The buffers to write, each with its position: whole chunks as they
    /// are; the last, partial one zero-padded to a block and split into
    /// power-of-two pieces (so pooled buffers are never trimmed).
    pub(crate) fn into_writes(mut self, pool: &mut BufferPool) -> Vec<(DmaBuffer, u64)> {
        let mut pos = align_down(self.start_pos);
        let mut writes = Vec::with_capacity(self.chunks.len() + 4);
        let last = self.chunks.pop();
        for chunk in self.chunks.drain(..) {
            writes.push((chunk, pos));
            pos += self.chunk_bytes as u64;
        }
        let Some(mut last) = last else { return writes };
        let padded = align_up(self.fill as u64) as usize;
        last.as_bytes_mut()[self.fill..padded].fill(0);
        if padded == self.chunk_bytes {
            writes.push((last, pos));
            return writes;
        }
        let mut at = 0;
        for len in pieces(padded, self.chunk_bytes) {
            let mut piece = pool.take(len);
            piece
                .as_bytes_mut()
                .copy_from_slice(&last.as_bytes()[at..at + len]);
            writes.push((piece, pos + at as u64));
            at += len;
        }
        pool.give(last);
        debug_assert!(writes
            .iter()
            .all(|(b, p)| b.len() % BLOCK == 0 && p % BLOCK as u64 == 0));
        writes
    }
}
