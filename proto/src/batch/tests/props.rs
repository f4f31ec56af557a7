//! Property tests: arbitrary records round-trip; arbitrary bytes never panic.

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::batch::{peek_header, BatchIter};

#[derive(Debug, Clone)]
struct OwnedRecord {
    timestamp_ms: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        -5i64..5,
        1_600_000_000_000i64..1_600_000_100_000,
        -(1i64 << 62)..(1i64 << 62),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn record() -> impl Strategy<Value = OwnedRecord> {
    (
        timestamp(),
        proptest::option::of(bytes(20)),
        proptest::option::of(bytes(300)),
        vec((".{0,8}", bytes(10)), 0..4),
    )
        .prop_map(|(timestamp_ms, key, value, headers)| OwnedRecord {
            timestamp_ms,
            key,
            value,
            headers,
        })
}

fn build(records: &[OwnedRecord], producer: (i64, i16, i32)) -> (Vec<u8>, usize) {
    let mut b = BatchBuilder::new().producer(producer.0, producer.1, producer.2);
    for r in records {
        let headers: Vec<(&str, &[u8])> = r
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        push(
            &mut b,
            Record {
                timestamp_ms: r.timestamp_ms,
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                headers: &headers,
            },
        );
    }
    let len = b.encoded_len();
    (finish(b), len)
}

/// Everything a parsed batch exposes, read to the end.
fn read_all(batch: &BatchView<'_>) -> usize {
    let mut n = 0;
    for r in batch.records() {
        n += 1;
        let _ = (r.offset(), r.timestamp_ms(), r.key(), r.value());
        let count = r.headers().count();
        assert!(count <= crate::batch::MAX_HEADERS_PER_RECORD);
    }
    n
}

proptest! {
    #[test]
    fn arbitrary_records_round_trip(
        records in vec(record(), 1..20),
        producer in (any::<i64>(), any::<i16>(), any::<i32>()),
        base in 0u64..u64::MAX / 2,
    ) {
        let (mut bytes, encoded_len) = build(&records, producer);
        prop_assert_eq!(bytes.len(), encoded_len);
        crate::batch::set_base_offset(&mut bytes, base).unwrap_or_else(|e| panic!("{e}"));
        let batch = BatchView::parse(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let h = batch.header();
        prop_assert_eq!(h.record_count as usize, records.len());
        prop_assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), producer);
        prop_assert_eq!(h.first_timestamp_ms, records.iter().map(|r| r.timestamp_ms).min().unwrap_or(0));
        prop_assert_eq!(h.max_timestamp_ms, records.iter().map(|r| r.timestamp_ms).max().unwrap_or(0));
        let got: Vec<_> = batch.records().collect();
        prop_assert_eq!(got.len(), records.len());
        for (i, (view, want)) in got.iter().zip(&records).enumerate() {
            prop_assert_eq!(view.offset(), base + i as u64);
            prop_assert_eq!(view.timestamp_ms(), want.timestamp_ms);
            prop_assert_eq!(view.key(), want.key.as_deref());
            prop_assert_eq!(view.value(), want.value.as_deref());
            let headers: Vec<_> = view.headers().map(|(n, v)| (n.to_owned(), v.to_vec())).collect();
            prop_assert_eq!(&headers, &want.headers);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in bytes(600)) {
        let _ = peek_header(&bytes);
        if let Ok(batch) = BatchView::parse(&bytes) {
            read_all(&batch);
        }
        if let Ok((batch, _)) = BatchView::parse_prefix(&bytes) {
            read_all(&batch);
        }
        for batch in BatchIter::new(&bytes).flatten() {
            read_all(&batch);
        }
        for batch in BatchIter::stored(&bytes).flatten() {
            read_all(&batch);
        }
    }

    /// Random bytes behind a valid header with a matching CRC, so the record
    /// walk itself is exercised, not just the CRC check.
    #[test]
    fn arbitrary_body_with_valid_crc_never_panics(
        body in vec(any::<u8>(), 1..200),
        count in 1u32..5,
        first in -3i64..3,
        span in 0i64..4,
    ) {
        let batch = raw_batch(count, first, first + span, &body);
        if let Ok(view) = BatchView::parse(&batch) {
            prop_assert_eq!(read_all(&view), count as usize);
        }
        // Without the record walk: the CRC holds, so it is accepted, and
        // its records end early instead of panicking.
        let stored: Vec<_> = BatchIter::stored(&batch).collect();
        prop_assert_eq!(stored.len(), 1);
        if let Some(Ok(view)) = stored.first() {
            prop_assert!(read_all(view) <= count as usize);
        }
        // Framing only: the same, and one batch parsed alone agrees.
        let verified: Vec<_> = BatchIter::verified(&batch).collect();
        prop_assert_eq!(verified.len(), 1);
        if let Some(Ok(view)) = verified.first() {
            prop_assert!(read_all(view) <= count as usize);
        }
        prop_assert_eq!(BatchView::parse_stored(&batch).is_ok(), matches!(stored.first(), Some(Ok(_))));
    }

    /// For valid batches the two iterations agree.
    #[test]
    fn stored_iteration_yields_what_full_validation_does(records in vec(record(), 1..5)) {
        let (bytes, _) = build(&records, (-1, -1, -1));
        let mut twice = bytes.clone();
        twice.extend_from_slice(&bytes);
        let full: Vec<_> = BatchIter::new(&twice).collect();
        let stored: Vec<_> = BatchIter::stored(&twice).collect();
        let verified: Vec<_> = BatchIter::verified(&twice).collect();
        prop_assert_eq!(&full, &stored);
        prop_assert_eq!(full, verified);
    }

    /// Valid batches with a few bytes changed and the CRC recomputed: parse
    /// may accept or reject, but whatever it accepts iterates completely.
    #[test]
    fn mutated_batch_with_valid_crc_parses_consistently(
        records in vec(record(), 1..5),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let (mut bytes, _) = build(&records, (-1, -1, -1));
        for (at, byte) in edits {
            let i = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
            bytes[i] = byte;
        }
        refresh_crc(&mut bytes);
        if let Ok(view) = BatchView::parse(&bytes) {
            prop_assert_eq!(read_all(&view), view.header().record_count as usize);
        }
    }
}
