//! The sparse offset and time index of one segment.
//!
//! One entry per `index_interval_bytes` of batches: the entry says "the
//! batch at `pos` starts at offset `base + rel_offset`, and every batch
//! before `pos` has timestamps `<= ts_before`". Offsets and `ts_before` only
//! grow, so both lookups are binary searches followed by a short scan.
//!
//! The index is kept in memory and checkpointed to `{base}.index` when a
//! segment is sealed and when the log closes. A checkpoint is only a hint to
//! make opening fast: recovery verifies the data after it, and rebuilds the
//! whole index by scanning when the file is missing or damaged.

use crate::segment::HEADER_LEN as SEGMENT_HEADER_LEN;

const MAGIC: [u8; 8] = *b"TGINDEX1";
const HEADER_LEN: usize = 64;
const ENTRY_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) rel_offset: u32,
    pub(crate) pos: u32,
    pub(crate) ts_before: i64,
}

/// What a checkpoint says about the segment it indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) base_offset: u64,
    /// Position just past the last batch the checkpoint covers.
    pub(crate) end_pos: u64,
    /// Offset after that batch.
    pub(crate) next_offset: u64,
    /// Largest timestamp of the covered batches.
    pub(crate) max_timestamp_ms: i64,
    pub(crate) entries: Vec<IndexEntry>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SparseIndex {
    entries: Vec<IndexEntry>,
    /// Position of the last entry, to space entries by the interval.
    last_pos: Option<u64>,
}

impl SparseIndex {
    pub(crate) fn from_entries(entries: Vec<IndexEntry>) -> Self {
        let last_pos = entries.last().map(|e| e.pos as u64);
        SparseIndex { entries, last_pos }
    }

    pub(crate) fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Adds an entry for the batch at `pos` if it is an interval past the
    /// last one (the first batch of a segment is always indexed).
    pub(crate) fn maybe_add(&mut self, interval: u64, entry: IndexEntry) {
        let due = match self.last_pos {
            None => true,
            Some(last) => entry.pos as u64 >= last.saturating_add(interval),
        };
        if due {
            debug_assert!(self
                .entries
                .last()
                .is_none_or(|l| l.rel_offset < entry.rel_offset && l.pos < entry.pos));
            self.last_pos = Some(entry.pos as u64);
            self.entries.push(entry);
        }
    }

    /// Where to start scanning for the batch holding `rel_offset`.
    pub(crate) fn seek_offset(&self, rel_offset: u32) -> u64 {
        let i = self.entries.partition_point(|e| e.rel_offset <= rel_offset);
        match i.checked_sub(1).and_then(|i| self.entries.get(i)) {
            Some(e) => e.pos as u64,
            None => SEGMENT_HEADER_LEN as u64,
        }
    }

    /// Where to start scanning for the first batch with a timestamp
    /// `>= ts`: the last entry all of whose predecessors are older.
    pub(crate) fn seek_time(&self, ts: i64) -> u64 {
        let i = self.entries.partition_point(|e| e.ts_before < ts);
        match i.checked_sub(1).and_then(|i| self.entries.get(i)) {
            Some(e) => e.pos as u64,
            None => SEGMENT_HEADER_LEN as u64,
        }
    }
}

impl Checkpoint {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.entries.len() * ENTRY_LEN + 4);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
        out.extend_from_slice(&self.base_offset.to_le_bytes());
        out.extend_from_slice(&self.end_pos.to_le_bytes());
        out.extend_from_slice(&self.next_offset.to_le_bytes());
        out.extend_from_slice(&self.max_timestamp_ms.to_le_bytes());
        out.resize(HEADER_LEN, 0);
        for e in &self.entries {
            out.extend_from_slice(&e.rel_offset.to_le_bytes());
            out.extend_from_slice(&e.pos.to_le_bytes());
            out.extend_from_slice(&e.ts_before.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a checkpoint; `None` for anything damaged (the caller then
    /// rebuilds the index by scanning).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        let header = bytes.get(..HEADER_LEN)?;
        let reserved_zero = header[12..16].iter().chain(&header[48..]).all(|&b| b == 0);
        if header[..8] != MAGIC || !reserved_zero {
            return None;
        }
        let count = u32::from_le_bytes(header[8..12].try_into().ok()?) as usize;
        let body_len = HEADER_LEN.checked_add(count.checked_mul(ENTRY_LEN)?)?;
        let body = bytes.get(..body_len)?;
        let crc = u32::from_le_bytes(bytes.get(body_len..body_len + 4)?.try_into().ok()?);
        if crc != crc32c::crc32c(body) {
            return None;
        }
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(header.get(at..at + 8)?.try_into().ok()?))
        };
        let mut entries = Vec::with_capacity(count);
        for chunk in body[HEADER_LEN..].chunks_exact(ENTRY_LEN) {
            entries.push(IndexEntry {
                rel_offset: u32::from_le_bytes(chunk[0..4].try_into().ok()?),
                pos: u32::from_le_bytes(chunk[4..8].try_into().ok()?),
                ts_before: i64::from_le_bytes(chunk[8..16].try_into().ok()?),
            });
        }
        Some(Checkpoint {
            base_offset: u64_at(16)?,
            end_pos: u64_at(24)?,
            next_offset: u64_at(32)?,
            max_timestamp_ms: u64_at(40)? as i64,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rel_offset: u32, pos: u32, ts_before: i64) -> IndexEntry {
        IndexEntry {
            rel_offset,
            pos,
            ts_before,
        }
    }

    #[test]
    fn entries_are_spaced_by_the_interval() {
        let mut idx = SparseIndex::default();
        idx.maybe_add(100, entry(0, 64, i64::MIN));
        idx.maybe_add(100, entry(1, 120, 5));
        idx.maybe_add(100, entry(2, 170, 6));
        assert_eq!(idx.entries().len(), 2);
        assert_eq!(idx.seek_offset(0), 64);
        assert_eq!(idx.seek_offset(1), 64);
        assert_eq!(idx.seek_offset(2), 170);
        assert_eq!(idx.seek_time(6), 64);
        assert_eq!(idx.seek_time(7), 170);
    }

    #[test]
    fn checkpoint_round_trips_and_rejects_damage() {
        let cp = Checkpoint {
            base_offset: 10,
            end_pos: 4000,
            next_offset: 99,
            max_timestamp_ms: -3,
            entries: vec![entry(0, 64, i64::MIN), entry(40, 2000, 77)],
        };
        let bytes = cp.encode();
        assert_eq!(Checkpoint::decode(&bytes), Some(cp.clone()));
        let mut padded = bytes.clone();
        padded.resize(4096, 0);
        assert_eq!(Checkpoint::decode(&padded), Some(cp));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert_eq!(Checkpoint::decode(&bad), None, "byte {i}");
        }
        for len in 0..bytes.len() {
            assert_eq!(Checkpoint::decode(&bytes[..len]), None);
        }
    }
}
