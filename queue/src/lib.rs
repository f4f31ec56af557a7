//! tidegate's embedded queue: the durable partition log and the rings that
//! carry work between shards.
//!
//! A [`Log`] is one partition: a directory of segment files written with
//! O_DIRECT through io_uring (glommio DMA files), with group commit, sparse
//! indexes, crash recovery and retention. It lives on one glommio executor
//! and shares nothing with other threads (its state is in `RefCell`s, its
//! wake-ups are local); other shards reach it through the [`ring`]s.

mod config;
pub mod cursors;
pub mod dedup;
mod disk;
pub mod durable;
mod error;
pub mod fault;
mod gate;
mod index;
mod log;
pub mod producers;
pub mod ring;
mod segment;

pub use config::{LogConfig, PrepareSegments};
pub use error::{IoFailure, LogError};
pub use gate::{GateConfig, GateFlow, GateStats, WriteGate};
pub use log::{
    Ack, Appended, Log, LogOffsets, LogStats, ReadBatches, RecoveryReport, RetentionReport,
    REBUILD_RECORDS_PER_ID,
};

/// Entry points for the cargo-fuzz targets in `fuzz/`: the decoders of the
/// log's own on-disk metadata. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes a durable small file's framing; must never panic.
    pub fn durable_file(bytes: &[u8]) -> Option<usize> {
        crate::durable::decode(bytes).ok().map(<[u8]>::len)
    }

    /// Decodes a segment header; must never panic.
    pub fn segment_header(bytes: &[u8]) -> Option<u64> {
        crate::segment::decode_header(bytes).ok()
    }

    /// Decodes an index checkpoint and, when valid, re-encodes it: the
    /// encoding must reproduce the decoded bytes.
    pub fn index_checkpoint(bytes: &[u8]) {
        if let Some(cp) = crate::index::Checkpoint::decode(bytes) {
            let again = cp.encode();
            assert_eq!(bytes.get(..again.len()), Some(&again[..]));
        }
    }

    /// Decodes a cursor journal event (key, then value) and, when valid,
    /// re-encodes it: the encoding must reproduce the input exactly.
    pub fn cursor_event(bytes: &[u8]) {
        let split = bytes
            .first()
            .map_or(0, |&b| usize::from(b))
            .min(bytes.len());
        let (key, value) = bytes
            .get(1..)
            .unwrap_or_default()
            .split_at(split.saturating_sub(1));
        if let Ok(event) = crate::cursors::Event::decode(key, value) {
            assert_eq!(event.encode(), (key.to_vec(), value.to_vec()));
        }
    }

    /// Decodes a producer snapshot and, when valid, re-encodes it: the
    /// encoding must reproduce the input exactly.
    pub fn producer_snapshot(bytes: &[u8]) {
        if let Ok((table, base)) = crate::producers::snapshot::decode(bytes, 64) {
            assert_eq!(crate::producers::snapshot::encode(&table, base), bytes);
        }
    }

    /// Plans message-id deduplication of a batch: `bytes` themselves when
    /// they parse as one, else a batch built from them (random bytes
    /// rarely carry a valid CRC, so the rewrite would never be reached),
    /// against a table that already holds a few ids: a rewritten batch
    /// must parse, keep the record count, the producer identity and every
    /// offset, and hold at least the planned markers.
    pub fn dedup_plan(bytes: &[u8]) {
        use tidegate_proto::batch::BatchView;
        let built;
        let batch = match BatchView::parse(bytes) {
            Ok(batch) => batch,
            Err(_) => {
                built = batch_of(bytes);
                match built.as_deref().map(BatchView::parse) {
                    Some(Ok(batch)) => batch,
                    _ => return,
                }
            }
        };
        let mut table = crate::dedup::DedupTable::new(60_000, 4);
        for id in [&b"a"[..], b"b", b""] {
            table.insert(crate::dedup::id_hash(id), 7, 0, 0);
        }
        let plan = match crate::dedup::plan(&batch, 100, &table, 1) {
            Ok(plan) => plan,
            // Only a batch near the size limit may grow past it.
            Err(e) => {
                let room = 32 * batch.header().record_count as usize;
                assert!(
                    bytes.len() + room > tidegate_proto::batch::MAX_BATCH_BYTES,
                    "plan failed on a {}-byte batch: {e}",
                    bytes.len()
                );
                return;
            }
        };
        let Some(rewritten) = plan.rewritten else {
            assert_eq!(plan.duplicates, 0);
            return;
        };
        let out = BatchView::parse(&rewritten).unwrap_or_else(|e| panic!("rewritten batch: {e}"));
        let (h, old) = (out.header(), batch.header());
        assert_eq!(
            (
                h.record_count,
                h.producer_id,
                h.producer_epoch,
                h.base_sequence
            ),
            (
                old.record_count,
                old.producer_id,
                old.producer_epoch,
                old.base_sequence
            )
        );
        let markers = out.records().filter(crate::dedup::is_marker).count();
        assert!(markers >= plan.duplicates as usize);
    }

    /// A batch whose records come from `bytes`: each record takes a
    /// control byte (bit 0: a key; bits 1-2: no id, or id "a", "b" or
    /// "z"; bit 3: a tombstone) and a value of the next `byte % 8` bytes.
    fn batch_of(bytes: &[u8]) -> Option<Vec<u8>> {
        use tidegate_proto::batch::{dedup::MESSAGE_ID_HEADER, BatchBuilder, Record};
        let mut builder = BatchBuilder::new().producer(3, 0, 0);
        let mut rest = bytes;
        let mut ts = 0;
        while let Some((&control, tail)) = rest.split_first() {
            let len = usize::from(control % 8).min(tail.len());
            let (value, tail) = tail.split_at(len);
            rest = tail;
            let id: &[u8] = match (control >> 1) & 3 {
                0 => b"",
                1 => b"a",
                2 => b"b",
                _ => b"z",
            };
            let headers: Vec<(&str, &[u8])> = if id.is_empty() {
                Vec::new()
            } else {
                vec![(MESSAGE_ID_HEADER, id)]
            };
            ts += i64::from(control >> 6);
            let record = Record {
                timestamp_ms: ts,
                key: (control & 1 == 1).then_some(&b"k"[..]),
                value: (control & 8 == 0).then_some(value),
                headers: &headers,
            };
            if builder.push(record).is_err() {
                break;
            }
        }
        builder.finish().ok()
    }
}
