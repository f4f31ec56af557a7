//! Each record-level check, reached with a valid header and CRC around
//! hand-written records, so only the record walk can catch the fault.

use super::*;
use crate::batch::{BatchError, MAX_HEADERS_PER_RECORD};

fn bad(index: u32, reason: &'static str) -> Result<BatchView<'static>, BatchError> {
    Err(BatchError::BadRecord { index, reason })
}

fn two_records(second: &RawRecord) -> Vec<u8> {
    let body = [RawRecord::new(0).encode(), second.encode()].concat();
    raw_batch(2, 100, 200, &body)
}

#[test]
fn well_formed_raw_records_parse() {
    let mut r = RawRecord::new(1);
    r.timestamp_delta = 100;
    assert!(BatchView::parse(&two_records(&r)).is_ok());
}

#[test]
fn offset_delta_not_sequential_is_rejected() {
    for delta in [0, 2, u64::MAX] {
        let b = two_records(&RawRecord {
            offset_delta: delta,
            ..RawRecord::new(1)
        });
        assert_eq!(
            BatchView::parse(&b),
            bad(1, "offset delta is not the record's index")
        );
    }
}

#[test]
fn record_attributes_must_be_zero() {
    let b = two_records(&RawRecord {
        attributes: 1,
        ..RawRecord::new(1)
    });
    assert_eq!(
        BatchView::parse(&b),
        bad(1, "record attributes are not zero")
    );
}

#[test]
fn record_timestamp_outside_header_range_is_rejected() {
    for delta in [-1, 101, i64::MAX, i64::MIN] {
        let b = two_records(&RawRecord {
            timestamp_delta: delta,
            ..RawRecord::new(1)
        });
        assert_eq!(
            BatchView::parse(&b),
            bad(1, "timestamp outside the batch's [first, max] range"),
            "{delta}"
        );
    }
}

#[test]
fn key_or_value_length_below_minus_one_is_rejected() {
    let b = two_records(&RawRecord {
        key_len: -2,
        ..RawRecord::new(1)
    });
    assert_eq!(BatchView::parse(&b), bad(1, "key or value length below -1"));
    let b = two_records(&RawRecord {
        value_len: i64::MIN,
        value: vec![],
        ..RawRecord::new(1)
    });
    assert_eq!(BatchView::parse(&b), bad(1, "key or value length below -1"));
}

#[test]
fn key_longer_than_its_record_is_rejected() {
    let b = two_records(&RawRecord {
        key_len: 50,
        key: vec![1; 3],
        ..RawRecord::new(1)
    });
    assert!(matches!(
        BatchView::parse(&b),
        Err(BatchError::BadRecord { index: 1, .. })
    ));
}

#[test]
fn header_name_must_be_utf8() {
    let headers = vec![2, 0xc3, 0x28, 0]; // name_len 2, invalid UTF-8, value_len 0
    let b = two_records(&RawRecord {
        header_count: 1,
        headers,
        ..RawRecord::new(1)
    });
    assert_eq!(BatchView::parse(&b), bad(1, "header name is not UTF-8"));
}

#[test]
fn header_count_above_limit_is_rejected() {
    let count = MAX_HEADERS_PER_RECORD as u64 + 1;
    let headers = [0u8, 0].repeat(count as usize); // empty name and value each
    let b = two_records(&RawRecord {
        header_count: count,
        headers,
        ..RawRecord::new(1)
    });
    assert_eq!(
        BatchView::parse(&b),
        bad(1, "more than MAX_HEADERS_PER_RECORD headers")
    );
}

#[test]
fn header_count_larger_than_headers_present_is_rejected() {
    let b = two_records(&RawRecord {
        header_count: 2,
        headers: vec![1, b'a', 0],
        ..RawRecord::new(1)
    });
    assert_eq!(
        BatchView::parse(&b),
        bad(1, "varint runs past the end of the record")
    );
    let b = two_records(&RawRecord {
        header_count: 1,
        headers: vec![5, b'a', 0],
        ..RawRecord::new(1)
    });
    assert_eq!(
        BatchView::parse(&b),
        bad(1, "header runs past the end of the record")
    );
}

#[test]
fn record_longer_than_its_fields_is_rejected() {
    let b = two_records(&RawRecord {
        headers: vec![0],
        ..RawRecord::new(1)
    });
    assert_eq!(
        BatchView::parse(&b),
        bad(1, "record length is longer than its fields")
    );
}

#[test]
fn record_length_past_the_batch_is_rejected() {
    let mut body = RawRecord::new(0).encode();
    body[0] += 1; // claims one byte more than the batch holds
    let b = raw_batch(1, 100, 200, &body);
    assert_eq!(
        BatchView::parse(&b),
        bad(0, "record length runs past the end of the batch")
    );
}

#[test]
fn overlong_varint_in_a_record_is_rejected() {
    // Encode offset_delta 0 as [0x80, 0x00] instead of [0x00].
    let record = RawRecord::new(0).encode();
    let mut body = vec![record[0] + 1, record[1], record[2], 0x80, 0x00];
    body.extend_from_slice(&record[4..]);
    let b = raw_batch(1, 100, 200, &body);
    assert_eq!(
        BatchView::parse(&b),
        bad(0, "varint is not minimally encoded")
    );
}

#[test]
fn fewer_records_than_record_count_is_rejected() {
    let body = RawRecord::new(0).encode();
    let b = raw_batch(2, 100, 200, &body);
    assert_eq!(
        BatchView::parse(&b),
        bad(1, "batch ends before record_count records")
    );
}

#[test]
fn trailing_bytes_after_the_last_record_are_rejected() {
    let mut body = RawRecord::new(0).encode();
    body.extend_from_slice(&[0, 0, 0]);
    let b = raw_batch(1, 100, 200, &body);
    assert_eq!(
        BatchView::parse(&b),
        Err(BatchError::TrailingBytes { count: 3 })
    );
}

#[test]
fn more_records_than_record_count_are_trailing_bytes() {
    let body = [RawRecord::new(0).encode(), RawRecord::new(1).encode()].concat();
    let b = raw_batch(1, 100, 200, &body);
    let second_len = RawRecord::new(1).encode().len();
    assert_eq!(
        BatchView::parse(&b),
        Err(BatchError::TrailingBytes { count: second_len })
    );
}
