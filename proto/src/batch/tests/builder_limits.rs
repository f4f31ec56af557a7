use super::*;
use crate::batch::{BatchError, MAX_BATCH_BYTES, MAX_HEADERS_PER_RECORD, MAX_RECORDS_PER_BATCH};

#[test]
fn push_beyond_max_batch_bytes_is_rejected_and_leaves_builder_unchanged() {
    let big = vec![0u8; MAX_BATCH_BYTES / 2];
    let mut b = BatchBuilder::new();
    push(
        &mut b,
        Record {
            timestamp_ms: 0,
            key: None,
            value: Some(&big),
            headers: &[],
        },
    );
    let len_before = b.encoded_len();
    let result = b.push(Record {
        timestamp_ms: 0,
        key: None,
        value: Some(&big),
        headers: &[],
    });
    assert!(
        matches!(result, Err(BatchError::TooLarge { max: MAX_BATCH_BYTES, size }) if size > MAX_BATCH_BYTES)
    );
    assert_eq!(b.encoded_len(), len_before);
    assert_eq!(b.record_count(), 1);
    // Still usable: a small record fits, and the result parses.
    push(
        &mut b,
        Record {
            timestamp_ms: 0,
            key: None,
            value: Some(b"small"),
            headers: &[],
        },
    );
    let bytes = finish(b);
    assert_eq!(parse(&bytes).records().count(), 2);
}

#[test]
fn batch_of_exactly_max_batch_bytes_is_accepted() {
    let mut b = BatchBuilder::new();
    push(
        &mut b,
        Record {
            timestamp_ms: 0,
            key: None,
            value: Some(b""),
            headers: &[],
        },
    );
    // One record: header 64, prefix 4 bytes (length >= 2^21), attributes,
    // timestamp delta, offset delta, key len, value len (zigzag, 4 bytes),
    // header count; fill the rest with value bytes.
    let value_len = MAX_BATCH_BYTES - HEADER_LEN - 4 - 1 - 1 - 1 - 1 - 4 - 1;
    let value = vec![1u8; value_len];
    let mut b = BatchBuilder::new();
    push(
        &mut b,
        Record {
            timestamp_ms: 0,
            key: None,
            value: Some(&value),
            headers: &[],
        },
    );
    assert_eq!(b.encoded_len(), MAX_BATCH_BYTES);
    let bytes = finish(b);
    assert_eq!(parse(&bytes).len(), MAX_BATCH_BYTES);
    let one_more = vec![1u8; value_len + 1];
    let mut b = BatchBuilder::new();
    assert!(matches!(
        b.push(Record { timestamp_ms: 0, key: None, value: Some(&one_more), headers: &[] }),
        Err(BatchError::TooLarge { size, .. }) if size == MAX_BATCH_BYTES + 1
    ));
}

#[test]
fn push_with_too_many_headers_is_rejected() {
    let headers = vec![("h", &b""[..]); MAX_HEADERS_PER_RECORD + 1];
    let mut b = BatchBuilder::new();
    assert_eq!(
        b.push(Record {
            timestamp_ms: 0,
            key: None,
            value: None,
            headers: &headers
        }),
        Err(BatchError::BadRecord {
            index: 0,
            reason: "more than MAX_HEADERS_PER_RECORD headers"
        })
    );
    assert!(b.is_empty());
    push(
        &mut b,
        Record {
            timestamp_ms: 0,
            key: None,
            value: None,
            headers: &headers[1..],
        },
    );
    let bytes = finish(b);
    assert_eq!(
        parse(&bytes).records().next().map(|r| r.headers().count()),
        Some(MAX_HEADERS_PER_RECORD)
    );
}

#[test]
fn timestamps_spanning_more_than_i64_are_rejected() {
    let mut b = BatchBuilder::new();
    push(
        &mut b,
        Record {
            timestamp_ms: i64::MIN,
            ..Record::default()
        },
    );
    assert_eq!(
        b.push(Record {
            timestamp_ms: i64::MAX,
            ..Record::default()
        }),
        Err(BatchError::BadRecord {
            index: 1,
            reason: "timestamps in one batch span more than i64::MAX ms"
        })
    );
    push(
        &mut b,
        Record {
            timestamp_ms: -1,
            ..Record::default()
        },
    );
    let bytes = finish(b);
    assert_eq!(parse(&bytes).header().max_timestamp_ms, -1);
}

#[test]
fn push_beyond_max_records_per_batch_is_rejected() {
    let mut b = BatchBuilder::new();
    for _ in 0..MAX_RECORDS_PER_BATCH {
        push(&mut b, Record::default());
    }
    assert_eq!(
        b.push(Record::default()),
        Err(BatchError::RecordCount {
            count: MAX_RECORDS_PER_BATCH + 1
        })
    );
    let bytes = finish(b);
    let batch = parse(&bytes);
    assert_eq!(batch.header().record_count, MAX_RECORDS_PER_BATCH);
    assert_eq!(
        batch.records().last().map(|r| r.offset()),
        Some(u64::from(MAX_RECORDS_PER_BATCH) - 1)
    );
}
