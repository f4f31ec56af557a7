//! Each structural header check, reached with an otherwise valid batch
//! whose CRC is refreshed, so the header check (not the CRC) must catch it.

use super::*;
use crate::batch::header::*;
use crate::batch::{peek_header, BatchError, MAX_BATCH_BYTES, MAX_RECORDS_PER_BATCH};

fn with(offset: usize, bytes: &[u8]) -> Vec<u8> {
    let mut batch = sample_batch();
    batch[offset..offset + bytes.len()].copy_from_slice(bytes);
    // Only refreshable while the length field still makes sense.
    let _ = crc_of(&batch).map(|crc| set_crc(&mut batch, crc));
    batch
}

fn both_reject(batch: &[u8], expected: BatchError) {
    assert_eq!(peek_header(batch), Err(expected.clone()), "peek_header");
    assert_eq!(BatchView::parse(batch), Err(expected), "parse");
}

#[test]
fn wrong_magic_is_rejected() {
    both_reject(
        &with(OFF_MAGIC, b"TGB2"),
        BatchError::BadMagic { found: *b"TGB2" },
    );
}

#[test]
fn unknown_version_is_rejected() {
    both_reject(&with(OFF_VERSION, &[2]), BatchError::UnsupportedVersion(2));
    both_reject(&with(OFF_VERSION, &[0]), BatchError::UnsupportedVersion(0));
}

#[test]
fn nonzero_reserved_fields_are_rejected() {
    for (offset, len) in [
        (OFF_RESERVED_1, 1),
        (OFF_RESERVED_2, 4),
        (OFF_RESERVED_3, 2),
    ] {
        for i in 0..len {
            both_reject(
                &with(offset + i, &[0x10]),
                BatchError::ReservedNotZero { offset },
            );
        }
    }
}

#[test]
fn compression_and_unknown_attribute_bits_are_rejected() {
    for attrs in [1u16, 0b100, 0b1000, 0x8000] {
        both_reject(
            &with(OFF_ATTRIBUTES, &attrs.to_le_bytes()),
            BatchError::UnsupportedAttributes(attrs),
        );
    }
}

#[test]
fn length_outside_header_len_and_max_batch_bytes_is_rejected() {
    let too_big = [MAX_BATCH_BYTES as u32 + 1, u32::MAX];
    let too_small = [0u32, 1, 12, HEADER_LEN as u32];
    for length in too_big.into_iter().chain(too_small) {
        both_reject(
            &with(OFF_LENGTH, &length.to_le_bytes()),
            BatchError::LengthOutOfRange { length },
        );
    }
}

#[test]
fn header_alone_accepts_max_batch_bytes() {
    let batch = with(OFF_LENGTH, &(MAX_BATCH_BYTES as u32).to_le_bytes());
    assert!(peek_header(&batch).is_ok());
    assert_eq!(
        BatchView::parse_prefix(&batch),
        Err(BatchError::Truncated {
            needed: MAX_BATCH_BYTES,
            available: batch.len()
        })
    );
}

#[test]
fn record_count_outside_bounds_is_rejected() {
    for count in [0, MAX_RECORDS_PER_BATCH + 1, u32::MAX] {
        both_reject(
            &with(OFF_RECORD_COUNT, &count.to_le_bytes()),
            BatchError::RecordCount { count },
        );
    }
}

#[test]
fn max_timestamp_before_first_is_rejected() {
    let batch = with(OFF_MAX_TIMESTAMP, &999i64.to_le_bytes());
    both_reject(
        &batch,
        BatchError::TimestampsOutOfOrder {
            first_ms: 1_000,
            max_ms: 999,
        },
    );
}

#[test]
fn base_offset_plus_record_count_overflow_is_rejected() {
    let base = u64::MAX - 1; // two records: next offset would be u64::MAX + 1
    both_reject(
        &with(OFF_BASE_OFFSET, &base.to_le_bytes()),
        BatchError::OffsetOverflow {
            base_offset: base,
            record_count: 2,
        },
    );
    let fits = with(OFF_BASE_OFFSET, &(u64::MAX - 2).to_le_bytes());
    assert_eq!(parse(&fits).header().next_offset(), u64::MAX);
}

#[test]
fn peek_header_needs_only_the_header() {
    let batch = sample_batch();
    assert_eq!(
        peek_header(&batch[..HEADER_LEN]),
        Ok(*parse(&batch).header())
    );
}
