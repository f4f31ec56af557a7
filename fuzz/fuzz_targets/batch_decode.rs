//! Feeds arbitrary bytes to every batch decoder. The decoders must never
//! panic, and whatever `parse` accepts must iterate completely and agree
//! with its header; what `BatchIter::stored` accepts must iterate without
//! panicking.
//!
//! Run: `cargo fuzz run batch_decode` (nightly, or `RUSTC_BOOTSTRAP=1`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tidegate_proto::batch::{crc_of, peek_header, BatchIter, BatchView, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let _ = peek_header(data);
    let _ = crc_of(data);
    if let Ok(batch) = BatchView::parse(data) {
        check(&batch);
    }
    for batch in BatchIter::new(data).flatten() {
        check(&batch);
    }
    // Random bytes rarely carry a valid CRC; fix it up so the record
    // walk behind it is fuzzed too.
    if let Some(fixed) = with_valid_crc(data) {
        if let Ok(batch) = BatchView::parse(&fixed) {
            check(&batch);
        }
        // Without the record walk (`BatchIter::stored`): records behind a
        // valid CRC may end early, never panic, and agree with a full
        // parse when it accepts them.
        for batch in BatchIter::stored(&fixed).flatten() {
            let stored = read_records(&batch);
            if let Ok(full) = BatchView::parse(batch.as_bytes()) {
                assert_eq!(stored, u64::from(full.header().record_count));
            }
        }
    }
});

/// Reads every record of a batch that may not have been walked; how many.
fn read_records(batch: &BatchView<'_>) -> u64 {
    let mut count = 0;
    for record in batch.records() {
        let _ = (record.key(), record.value(), record.timestamp_ms());
        for (name, value) in record.headers() {
            let _ = (name.len(), value.len());
        }
        count += 1;
    }
    count
}

fn check(batch: &BatchView<'_>) {
    let header = batch.header();
    assert_eq!(batch.len(), header.length as usize);
    let mut count = 0u64;
    for record in batch.records() {
        assert_eq!(record.offset(), header.base_offset + count);
        let ts = record.timestamp_ms();
        assert!(header.first_timestamp_ms <= ts && ts <= header.max_timestamp_ms);
        let _ = (record.key(), record.value());
        for (name, value) in record.headers() {
            let _ = (name.len(), value.len());
        }
        count += 1;
    }
    assert_eq!(count, u64::from(header.record_count));
}

/// `data` with its length field set to its size and its CRC recomputed.
fn with_valid_crc(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() <= HEADER_LEN {
        return None;
    }
    let mut fixed = data.to_vec();
    let length = u32::try_from(fixed.len()).ok()?;
    fixed
        .get_mut(12..16)?
        .copy_from_slice(&length.to_le_bytes());
    let crc = crc_of(&fixed).ok()?;
    fixed.get_mut(8..12)?.copy_from_slice(&crc.to_le_bytes());
    Some(fixed)
}
