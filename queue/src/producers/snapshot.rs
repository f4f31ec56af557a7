//! The producer snapshot file, `<base>.producers`: the table as it stood
//! before offset `base`, written beside each new segment.
//!
//! ```text
//! 0   8  magic "TGPRODS1" (the last byte is the format version)
//! 8   8  base offset
//! 16  4  producer count n
//! 20  4  reserved, 0
//! 24     n producers, in id order, each:
//!          8 producer id (i64, >= 0)   2 epoch (i16, >= 0)
//!          1 batch count c (0..=8)     5 reserved, 0
//!          8 last seen, Unix ms (i64)
//!          c batches, oldest first, 24 bytes each:
//!            4 first sequence   4 last sequence   8 base offset   8 last offset
//! ```
//!
//! All little-endian. The file is written and read with
//! [`crate::durable`], whose framing carries the checksum and makes the
//! write atomic. Decoding checks every bound before it allocates, so any
//! bytes give a table or a [`SnapshotError`], never a panic.

use std::collections::VecDeque;

use super::table::{ProducerTable, Sequenced, RECENT_BATCHES};
use super::SEQUENCE_MODULUS;

const MAGIC: [u8; 8] = *b"TGPRODS1";
const HEADER_LEN: usize = 24;
const PRODUCER_LEN: usize = 24;
const BATCH_LEN: usize = 24;

/// Why a snapshot could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Fewer bytes than the layout needs.
    #[error("producer snapshot truncated")]
    Truncated,
    /// Not a producer snapshot, or another version.
    #[error("not a producer snapshot (bad magic)")]
    BadMagic,
    /// A field breaks a rule.
    #[error("invalid producer snapshot: {0}")]
    Invalid(&'static str),
}

/// Encodes `table` as the snapshot taken before offset `base_offset`.
pub fn encode(table: &ProducerTable, base_offset: u64) -> Vec<u8> {
    let entries = table.entries();
    let mut out = Vec::with_capacity(HEADER_LEN + entries.len() * (PRODUCER_LEN + BATCH_LEN));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&base_offset.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    for (id, p) in entries {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&p.epoch.to_le_bytes());
        out.push(p.recent.len() as u8);
        out.extend_from_slice(&[0; 5]);
        out.extend_from_slice(&p.last_seen_ms.to_le_bytes());
        for b in &p.recent {
            out.extend_from_slice(&b.first_sequence.to_le_bytes());
            out.extend_from_slice(&b.last_sequence.to_le_bytes());
            out.extend_from_slice(&b.base_offset.to_le_bytes());
            out.extend_from_slice(&b.last_offset.to_le_bytes());
        }
    }
    out
}

/// Decodes a snapshot into a table of at most `max_producers`; returns it
/// with the base offset it was taken before.
pub fn decode(bytes: &[u8], max_producers: usize) -> Result<(ProducerTable, u64), SnapshotError> {
    let mut r = Reader(bytes);
    if r.take::<8>()? != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let base_offset = u64::from_le_bytes(r.take()?);
    let count = u32::from_le_bytes(r.take()?) as usize;
    if r.take::<4>()? != [0; 4] {
        return Err(SnapshotError::Invalid("reserved bytes are not zero"));
    }
    if count > max_producers {
        return Err(SnapshotError::Invalid(
            "more producers than the table holds",
        ));
    }
    let mut table = ProducerTable::new(max_producers);
    let mut last_id = -1i64;
    for _ in 0..count {
        let id = i64::from_le_bytes(r.take()?);
        let epoch = i16::from_le_bytes(r.take()?);
        let [batches] = r.take::<1>()?;
        if r.take::<5>()? != [0; 5] {
            return Err(SnapshotError::Invalid("reserved bytes are not zero"));
        }
        let last_seen_ms = i64::from_le_bytes(r.take()?);
        if id <= last_id || epoch < 0 {
            return Err(SnapshotError::Invalid(
                "producer ids must be ascending, ids and epochs not negative",
            ));
        }
        last_id = id;
        let batches = usize::from(batches);
        // 0 is a producer whose batches a failed write took back: its
        // epoch still fences older ones.
        if batches > RECENT_BATCHES {
            return Err(SnapshotError::Invalid("batch count over 8"));
        }
        let mut recent = VecDeque::with_capacity(batches);
        for _ in 0..batches {
            let first_sequence = i32::from_le_bytes(r.take()?);
            let last_sequence = i32::from_le_bytes(r.take()?);
            let base_offset = u64::from_le_bytes(r.take()?);
            let last_offset = u64::from_le_bytes(r.take()?);
            let in_space = |s: i32| (0..SEQUENCE_MODULUS).contains(&i64::from(s));
            if !in_space(first_sequence) || !in_space(last_sequence) || last_offset < base_offset {
                return Err(SnapshotError::Invalid(
                    "batch sequence or offsets out of range",
                ));
            }
            recent.push_back(Sequenced {
                first_sequence,
                last_sequence,
                base_offset,
                last_offset,
            });
        }
        if !table.restore(id, epoch, recent, last_seen_ms) {
            return Err(SnapshotError::Invalid("duplicate producer"));
        }
    }
    if !r.0.is_empty() {
        return Err(SnapshotError::Invalid("bytes after the last producer"));
    }
    Ok((table, base_offset))
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(SnapshotError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producers::Identity;

    fn table() -> ProducerTable {
        let mut t = ProducerTable::new(100);
        let mut next = 0u64;
        for p in 0..5i64 {
            for b in 0..(p as i32 + 1) * 3 {
                let id = Identity {
                    producer_id: p * 1000,
                    epoch: p as i16,
                    base_sequence: b * 2,
                    record_count: 2,
                };
                t.record(&id, next, 1_700_000_000_000 + p);
                next += 2;
            }
        }
        t
    }

    #[test]
    fn a_snapshot_decodes_to_the_table_it_was_made_from() {
        let t = table();
        let bytes = encode(&t, 4242);
        let (back, base) = decode(&bytes, 100).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(base, 4242);
        assert_eq!(back, t);
        assert_eq!(encode(&back, 4242), bytes);
        let (empty, _) =
            decode(&encode(&ProducerTable::new(3), 0), 3).unwrap_or_else(|e| panic!("{e}"));
        assert!(empty.is_empty());
    }

    #[test]
    fn a_producer_whose_batches_were_rewound_survives_the_snapshot() {
        let mut t = table();
        t.rewind(0);
        let (back, _) = decode(&encode(&t, 9), 100).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, t);
        // Its epoch still fences: producer 4000 was at epoch 4.
        let old = Identity {
            producer_id: 4000,
            epoch: 3,
            base_sequence: 0,
            record_count: 1,
        };
        assert!(matches!(
            back.check(Some(&old)),
            crate::producers::Verdict::Fenced { current: 4 }
        ));
    }

    #[test]
    fn truncated_corrupt_and_oversized_snapshots_are_typed_errors() {
        let bytes = encode(&table(), 1);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], 100).is_err(), "truncated at {len}");
        }
        // Damage is the durable framing's to catch (its CRC); what the
        // layout itself rules out is refused here.
        for i in (0..8).chain(20..24) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad, 100).is_err(), "flipped byte {i}");
        }
        assert_eq!(
            decode(&bytes, 4).map(|_| ()),
            Err(SnapshotError::Invalid(
                "more producers than the table holds"
            ))
        );
        assert_eq!(
            decode(&[0u8; 64], 10).map(|_| ()),
            Err(SnapshotError::BadMagic)
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode(&longer, 100).map(|_| ()),
            Err(SnapshotError::Invalid("bytes after the last producer"))
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode(&bytes, 16);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            if let Ok((table, base)) = decode(&framed, 16) {
                // What decodes, encodes back to the same bytes.
                proptest::prop_assert_eq!(encode(&table, base), framed);
            }
        }
    }
}
