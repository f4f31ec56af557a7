//! Torn, flipped, zeroed and random bytes: always a typed error, never a panic.

use super::*;
use crate::batch::{peek_header, BatchError, BatchIter};

#[test]
fn truncated_batch_is_an_error_at_every_length() {
    let batch = sample_batch();
    for n in 0..batch.len() {
        let torn = &batch[..n];
        assert!(BatchView::parse(torn).is_err(), "parse accepted {n} bytes");
        assert!(
            BatchView::parse_prefix(torn).is_err(),
            "parse_prefix accepted {n} bytes"
        );
        let results: Vec<_> = BatchIter::new(torn).collect();
        assert!(
            results.iter().all(Result::is_err),
            "iter accepted {n} bytes"
        );
        assert!(
            BatchIter::stored(torn).all(|r| r.is_err()),
            "stored iter accepted {n} bytes"
        );
        assert!(
            BatchIter::verified(torn).all(|r| r.is_err()),
            "verified iter accepted {n} bytes"
        );
        assert!(
            BatchView::parse_stored(torn).is_err(),
            "parse_stored accepted {n} bytes"
        );
        assert_eq!(
            peek_header(torn).is_ok(),
            n >= HEADER_LEN,
            "peek_header at {n} bytes"
        );
        if n < HEADER_LEN {
            assert_eq!(
                peek_header(torn),
                Err(BatchError::Truncated {
                    needed: HEADER_LEN,
                    available: n
                })
            );
        }
    }
}

#[test]
fn flipped_byte_is_detected_by_crc() {
    let batch = sample_batch();
    for pos in 8..batch.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = batch.clone();
            bad[pos] ^= mask;
            assert!(
                BatchView::parse(&bad).is_err(),
                "flip {mask:#x} at byte {pos} not detected"
            );
            assert!(
                BatchIter::new(&bad).all(|r| r.is_err()),
                "iter: flip {mask:#x} at {pos}"
            );
            assert!(
                BatchIter::stored(&bad).all(|r| r.is_err()),
                "stored iter: flip {mask:#x} at {pos}"
            );
            assert!(
                BatchView::parse_stored(&bad).is_err(),
                "parse_stored: flip {mask:#x} at {pos}"
            );
        }
    }
}

#[test]
fn flipped_record_byte_is_reported_as_crc_mismatch() {
    let batch = sample_batch();
    for pos in HEADER_LEN..batch.len() {
        let mut bad = batch.clone();
        bad[pos] ^= 0x01;
        assert!(
            matches!(BatchView::parse(&bad), Err(BatchError::CrcMismatch { .. })),
            "byte {pos}"
        );
    }
}

#[test]
fn base_offset_bytes_are_not_covered_by_crc() {
    let batch = sample_batch();
    for pos in 0..8 {
        let mut patched = batch.clone();
        patched[pos] ^= 0xff;
        let view = parse(&patched);
        assert_eq!(view.header().base_offset, 0xffu64 << (8 * pos));
        assert_eq!(crc_of(&patched), crc_of(&batch));
    }
}

#[test]
fn all_zero_bytes_are_an_error() {
    for len in [HEADER_LEN, 4096] {
        let zeros = vec![0u8; len];
        let expected = BatchError::BadMagic { found: [0; 4] };
        assert_eq!(peek_header(&zeros), Err(expected.clone()));
        assert_eq!(BatchView::parse(&zeros), Err(expected.clone()));
        assert_eq!(BatchView::parse_prefix(&zeros), Err(expected.clone()));
        assert_eq!(BatchIter::new(&zeros).collect::<Vec<_>>(), [Err(expected)]);
    }
}

#[test]
fn garbage_is_rejected() {
    let garbage: Vec<u8> = (0..1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(peek_header(&garbage).is_err());
    assert!(BatchView::parse(&garbage).is_err());
    assert!(BatchIter::new(&garbage).all(|r| r.is_err()));
    assert!(BatchView::parse(&[0xff; 100]).is_err());
}

#[test]
fn valid_header_with_garbage_body_is_rejected_by_crc() {
    let mut batch = sample_batch();
    for b in &mut batch[HEADER_LEN..] {
        *b = 0xa5;
    }
    assert!(matches!(
        BatchView::parse(&batch),
        Err(BatchError::CrcMismatch { .. })
    ));
}

#[test]
fn crc_of_needs_the_whole_batch() {
    let batch = sample_batch();
    assert_eq!(
        crc_of(&batch[..15]),
        Err(BatchError::Truncated {
            needed: 16,
            available: 15
        })
    );
    assert_eq!(
        crc_of(&batch[..batch.len() - 1]),
        Err(BatchError::Truncated {
            needed: batch.len(),
            available: batch.len() - 1
        })
    );
    assert_eq!(
        crc_of(&[0u8; 64]),
        Err(BatchError::LengthOutOfRange { length: 0 })
    );
    assert_eq!(crc_of(&batch), Ok(crc32c::crc32c(&batch[12..])));
}
