use super::*;
use crate::batch::{set_base_offset, BatchError, BatchIter, MAGIC};

#[test]
fn keys_values_and_headers_round_trip() {
    let bytes = sample_batch();
    let batch = parse(&bytes);
    let records: Vec<_> = batch.records().collect();
    assert_eq!(records.len(), 2);

    let r0 = records[0];
    assert_eq!(r0.offset_delta(), 0);
    assert_eq!(r0.offset(), 0);
    assert_eq!(r0.timestamp_ms(), 1_000);
    assert_eq!(r0.key(), Some(&b"k1"[..]));
    assert_eq!(r0.value(), Some(&b"hello"[..]));
    let headers: Vec<_> = r0.headers().collect();
    assert_eq!(
        headers,
        [("content-type", &b"text/plain"[..]), ("trace", &b""[..])]
    );

    let r1 = records[1];
    assert_eq!(r1.offset_delta(), 1);
    assert_eq!(r1.timestamp_ms(), 1_007);
    assert_eq!(r1.key(), None);
    assert_eq!(r1.value(), None);
    assert_eq!(r1.headers().count(), 0);
}

#[test]
fn null_key_is_distinct_from_empty_key() {
    let mut b = BatchBuilder::new();
    push(
        &mut b,
        Record {
            timestamp_ms: 0,
            key: None,
            value: Some(b"a"),
            headers: &[],
        },
    );
    push(
        &mut b,
        Record {
            timestamp_ms: 0,
            key: Some(b""),
            value: Some(b"b"),
            headers: &[],
        },
    );
    let bytes = finish(b);
    let keys: Vec<_> = parse(&bytes).records().map(|r| r.key()).collect();
    assert_eq!(keys, [None, Some(&b""[..])]);
}

#[test]
fn tombstone_is_distinct_from_empty_value() {
    let mut b = BatchBuilder::new();
    push(
        &mut b,
        Record {
            timestamp_ms: 0,
            key: Some(b"k"),
            value: None,
            headers: &[],
        },
    );
    push(
        &mut b,
        Record {
            timestamp_ms: 0,
            key: Some(b"k"),
            value: Some(b""),
            headers: &[],
        },
    );
    let bytes = finish(b);
    let values: Vec<_> = parse(&bytes).records().map(|r| r.value()).collect();
    assert_eq!(values, [None, Some(&b""[..])]);
}

#[test]
fn repeated_header_names_are_kept_in_order() {
    let headers: &[(&str, &[u8])] = &[("a", b"1"), ("b", b"2"), ("a", b"3"), ("ünï", b"4")];
    let mut b = BatchBuilder::new();
    push(
        &mut b,
        Record {
            timestamp_ms: 0,
            key: None,
            value: None,
            headers,
        },
    );
    let bytes = finish(b);
    let record = parse(&bytes).records().next();
    let got: Vec<_> = record.map(|r| r.headers().collect()).unwrap_or_default();
    assert_eq!(got, headers);
}

#[test]
fn every_header_field_is_decoded() {
    let mut b = BatchBuilder::new().producer(0x0102_0304_0506_0708, -2, 77);
    for ts in [500, 300, 900, 400] {
        push(
            &mut b,
            Record {
                timestamp_ms: ts,
                key: None,
                value: Some(b"x"),
                headers: &[],
            },
        );
    }
    let mut bytes = finish(b);
    set_base_offset(&mut bytes, 1 << 40).unwrap_or_else(|e| panic!("{e}"));
    let batch = parse(&bytes);
    let h = *batch.header();
    assert_eq!(h.base_offset, 1 << 40);
    assert_eq!(Ok(h.crc), crc_of(&bytes));
    assert_eq!(h.length as usize, bytes.len());
    assert_eq!(h.version, VERSION);
    assert_eq!(h.attributes, 0);
    assert_eq!(h.record_count, 4);
    assert_eq!(h.first_timestamp_ms, 300, "first is the smallest timestamp");
    assert_eq!(h.max_timestamp_ms, 900);
    assert_eq!(h.producer_id, 0x0102_0304_0506_0708);
    assert_eq!(h.producer_epoch, -2);
    assert_eq!(h.base_sequence, 77);
    assert_eq!(h.last_offset(), (1 << 40) + 3);
    assert_eq!(h.next_offset(), (1 << 40) + 4);
    assert_eq!(&bytes[16..20], &MAGIC);
    assert_eq!(batch.as_bytes(), &bytes[..]);
    assert_eq!(batch.len(), bytes.len());
    let stamps: Vec<_> = batch.records().map(|r| r.timestamp_ms()).collect();
    assert_eq!(stamps, [500, 300, 900, 400], "records keep push order");
    let offsets: Vec<_> = batch.records().map(|r| r.offset()).collect();
    assert_eq!(
        offsets,
        [1 << 40, (1 << 40) + 1, (1 << 40) + 2, (1 << 40) + 3]
    );
}

#[test]
fn builder_defaults_to_no_producer_and_base_offset_zero() {
    let bytes = sample_batch_without_producer();
    let h = *parse(&bytes).header();
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (-1, -1, -1)
    );
    assert_eq!(h.base_offset, 0);
}

fn sample_batch_without_producer() -> Vec<u8> {
    let mut b = BatchBuilder::default();
    push(
        &mut b,
        Record {
            timestamp_ms: 1,
            key: None,
            value: None,
            headers: &[],
        },
    );
    finish(b)
}

#[test]
fn extreme_timestamps_round_trip() {
    for ts in [i64::MIN, -1, 0, i64::MAX] {
        let mut b = BatchBuilder::new();
        push(
            &mut b,
            Record {
                timestamp_ms: ts,
                key: None,
                value: None,
                headers: &[],
            },
        );
        let bytes = finish(b);
        assert_eq!(
            parse(&bytes).records().next().map(|r| r.timestamp_ms()),
            Some(ts)
        );
    }
    let mut b = BatchBuilder::new();
    push(
        &mut b,
        Record {
            timestamp_ms: -1,
            ..Record::default()
        },
    );
    push(
        &mut b,
        Record {
            timestamp_ms: i64::MAX - 1,
            ..Record::default()
        },
    );
    let bytes = finish(b);
    let stamps: Vec<_> = parse(&bytes).records().map(|r| r.timestamp_ms()).collect();
    assert_eq!(stamps, [-1, i64::MAX - 1]);
}

#[test]
fn encoded_len_is_the_exact_finished_size() {
    let mut b = BatchBuilder::new();
    assert_eq!(b.encoded_len(), HEADER_LEN);
    assert!(b.is_empty());
    // Decreasing timestamps force re-measuring every earlier record.
    for (i, ts) in [10_000_000i64, 5, 1_000, -70_000_000_000, 3]
        .into_iter()
        .enumerate()
    {
        push(
            &mut b,
            Record {
                timestamp_ms: ts,
                key: Some(b"key"),
                value: Some(&[7; 200]),
                headers: &[],
            },
        );
        assert_eq!(b.record_count() as usize, i + 1);
        assert_eq!(b.clone().finish().map(|v| v.len()), Ok(b.encoded_len()));
    }
    assert!(!b.is_empty());
}

#[test]
fn finish_on_empty_builder_is_an_error() {
    assert_eq!(BatchBuilder::new().finish(), Err(BatchError::Empty));
}

#[test]
fn set_base_offset_keeps_crc_valid() {
    let mut bytes = sample_batch();
    let crc_before = crc_of(&bytes);
    for base in [1, 12345, u64::MAX - 2] {
        set_base_offset(&mut bytes, base).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(crc_of(&bytes), crc_before);
        let batch = parse(&bytes);
        assert_eq!(batch.header().base_offset, base);
        assert_eq!(batch.header().last_offset(), base + 1);
    }
}

#[test]
fn set_base_offset_on_a_short_buffer_is_an_error_and_writes_nothing() {
    let mut short = [9u8; 7];
    assert_eq!(
        set_base_offset(&mut short, 1),
        Err(BatchError::Truncated {
            needed: 8,
            available: 7
        })
    );
    assert_eq!(short, [9; 7]);
    let mut exact = [0u8; 8];
    assert_eq!(set_base_offset(&mut exact, 0x0807_0605_0403_0201), Ok(()));
    assert_eq!(exact, [1, 2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn parse_prefix_returns_the_first_batch_and_the_rest() {
    let first = sample_batch();
    let mut bytes = first.clone();
    bytes.extend_from_slice(b"rest");
    let (batch, rest) = BatchView::parse_prefix(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(batch.as_bytes(), &first[..]);
    assert_eq!(rest, b"rest");
}

#[test]
fn parse_rejects_a_buffer_longer_than_the_batch() {
    let mut bytes = sample_batch();
    let len = bytes.len();
    bytes.push(0);
    assert_eq!(
        BatchView::parse(&bytes),
        Err(BatchError::LengthMismatch {
            header: len as u32,
            actual: len + 1
        })
    );
}

#[test]
fn batch_iter_walks_a_concatenation() {
    let mut log = Vec::new();
    for base in [0u64, 2, 4] {
        let mut one = sample_batch();
        set_base_offset(&mut one, base).unwrap_or_else(|e| panic!("{e}"));
        log.extend(one);
    }
    let bases: Vec<_> = BatchIter::new(&log)
        .map(|b| b.map(|b| b.header().base_offset))
        .collect();
    assert_eq!(bases, [Ok(0), Ok(2), Ok(4)]);
    assert_eq!(BatchIter::new(&[]).count(), 0);
}

#[test]
fn batch_iter_stops_after_the_first_error() {
    let one = sample_batch();
    let mut bad = one.clone();
    bad[HEADER_LEN + 5] ^= 0xff;
    let log = [one.clone(), bad, one].concat();
    let mut it = BatchIter::new(&log);
    assert!(matches!(it.next(), Some(Ok(_))));
    assert!(matches!(
        it.next(),
        Some(Err(BatchError::CrcMismatch { .. }))
    ));
    assert_eq!(
        it.next(),
        None,
        "a valid batch after the error is not reached"
    );
    assert_eq!(it.next(), None);
}

#[test]
fn batch_iter_reports_a_truncated_tail() {
    let one = sample_batch();
    let mut log = one.clone();
    log.extend_from_slice(&one[..30]);
    let results: Vec<_> = BatchIter::new(&log).collect();
    assert_eq!(results.len(), 2);
    assert_eq!(
        results[1],
        Err(BatchError::Truncated {
            needed: HEADER_LEN,
            available: 30
        })
    );
}
