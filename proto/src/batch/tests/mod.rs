//! Tests of the batch format through its public API, plus a few helpers
//! that craft malformed batches with a valid CRC to reach the record checks.

mod builder_limits;
mod corruption;
mod golden;
mod header_checks;
mod props;
mod record_checks;
mod roundtrip;

use super::header::BatchHeader;
use super::varint::{put_uvarint, put_varint};
use super::view::set_crc;
use super::{crc_of, BatchBuilder, BatchView, Record, HEADER_LEN, VERSION};

/// A batch with two records, headers, a null key and a tombstone.
fn sample_batch() -> Vec<u8> {
    let mut b = BatchBuilder::new().producer(42, 3, 1000);
    let headers: &[(&str, &[u8])] = &[("content-type", b"text/plain"), ("trace", b"")];
    push(
        &mut b,
        Record {
            timestamp_ms: 1_000,
            key: Some(b"k1"),
            value: Some(b"hello"),
            headers,
        },
    );
    push(
        &mut b,
        Record {
            timestamp_ms: 1_007,
            key: None,
            value: None,
            headers: &[],
        },
    );
    finish(b)
}

fn push(b: &mut BatchBuilder, r: Record<'_>) {
    if let Err(e) = b.push(r) {
        panic!("push failed: {e}");
    }
}

fn finish(b: BatchBuilder) -> Vec<u8> {
    b.finish().unwrap_or_else(|e| panic!("finish failed: {e}"))
}

fn parse(bytes: &[u8]) -> BatchView<'_> {
    BatchView::parse(bytes).unwrap_or_else(|e| panic!("parse failed: {e}"))
}

/// Recomputes and stores the CRC after a test tampered with the bytes.
fn refresh_crc(batch: &mut [u8]) {
    let crc = crc_of(batch).unwrap_or_else(|e| panic!("crc_of failed: {e}"));
    set_crc(batch, crc);
}

/// A header for `body` with `count` records and timestamps `[first, max]`.
fn header_for(body_len: usize, count: u32, first_ms: i64, max_ms: i64) -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        crc: 0,
        length: (HEADER_LEN + body_len) as u32,
        version: VERSION,
        attributes: 0,
        record_count: count,
        first_timestamp_ms: first_ms,
        max_timestamp_ms: max_ms,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    }
}

/// A batch with a valid header and CRC around hand-written record bytes.
fn raw_batch(count: u32, first_ms: i64, max_ms: i64, body: &[u8]) -> Vec<u8> {
    let mut out = header_for(body.len(), count, first_ms, max_ms)
        .encode()
        .to_vec();
    out.extend_from_slice(body);
    refresh_crc(&mut out);
    out
}

/// The fields of one record, written by hand so tests can break any of them.
#[derive(Clone)]
struct RawRecord {
    attributes: u8,
    timestamp_delta: i64,
    offset_delta: u64,
    key_len: i64,
    key: Vec<u8>,
    value_len: i64,
    value: Vec<u8>,
    header_count: u64,
    headers: Vec<u8>,
}

impl RawRecord {
    fn new(offset_delta: u64) -> Self {
        Self {
            attributes: 0,
            timestamp_delta: 0,
            offset_delta,
            key_len: -1,
            key: Vec::new(),
            value_len: 1,
            value: vec![b'v'],
            header_count: 0,
            headers: Vec::new(),
        }
    }

    /// The record with its length prefix.
    fn encode(&self) -> Vec<u8> {
        let mut body = vec![self.attributes];
        put_varint(&mut body, self.timestamp_delta);
        put_uvarint(&mut body, self.offset_delta);
        put_varint(&mut body, self.key_len);
        body.extend_from_slice(&self.key);
        put_varint(&mut body, self.value_len);
        body.extend_from_slice(&self.value);
        put_uvarint(&mut body, self.header_count);
        body.extend_from_slice(&self.headers);
        let mut out = Vec::new();
        put_uvarint(&mut out, body.len() as u64);
        out.extend(body);
        out
    }
}

#[test]
fn raw_record_helper_matches_the_builder() {
    let built = {
        let mut b = BatchBuilder::new();
        push(
            &mut b,
            Record {
                timestamp_ms: 5,
                key: None,
                value: Some(b"v"),
                headers: &[],
            },
        );
        finish(b)
    };
    assert_eq!(raw_batch(1, 5, 5, &RawRecord::new(0).encode()), built);
}
