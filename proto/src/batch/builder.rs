//! Building a batch from records, as a producer does.

use super::header::BatchHeader;
use super::varint::{put_uvarint, put_varint, uvarint_len, zigzag};
use super::view::{crc_of, set_crc};
use super::{
    BatchError, HEADER_LEN, MAX_BATCH_BYTES, MAX_HEADERS_PER_RECORD, MAX_RECORDS_PER_BATCH, VERSION,
};

/// One record to add to a [`BatchBuilder`]; borrows its data, which is
/// copied by [`BatchBuilder::push`].
///
/// `key: None` (no key) differs from `Some(b"")` (an empty key), and
/// `value: None` (a tombstone, for compaction) from `Some(b"")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Record<'a> {
    /// Timestamp in ms since the Unix epoch; any `i64`, in any order.
    pub timestamp_ms: i64,
    /// The key, or `None` for no key.
    pub key: Option<&'a [u8]>,
    /// The value, or `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// Headers as `(name, value)`; names may repeat; at most
    /// [`MAX_HEADERS_PER_RECORD`].
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// What the builder keeps per record: the timestamp, which is encoded last
/// because its delta depends on the batch's smallest timestamp, and the
/// length of the rest of the record, already encoded in `tails`.
#[derive(Debug, Clone, Copy)]
struct Pending {
    timestamp_ms: i64,
    tail_len: usize,
}

/// Builds one batch: push records, then [`finish`](BatchBuilder::finish)
/// into bytes ready to send (base offset 0, CRC set).
///
/// `first_timestamp_ms` is the smallest record timestamp and
/// `max_timestamp_ms` the largest, so records may come in any time order.
/// [`encoded_len`](BatchBuilder::encoded_len) is always the exact size
/// `finish` will produce. Pushing is O(1) per record, except that a record
/// older than every record before it re-measures the batch (O(records)).
///
/// # Example
///
/// ```
/// use tidegate_proto::batch::{BatchBuilder, BatchView, Record};
///
/// let mut builder = BatchBuilder::new().producer(7, 0, 100);
/// builder.push(Record {
///     timestamp_ms: 1_700_000_000_000,
///     key: Some(b"user-1"),
///     value: Some(b"{\"n\":1}"),
///     headers: &[("content-type", b"application/json")],
/// })?;
/// builder.push(Record { timestamp_ms: 1_700_000_000_005, key: Some(b"user-1"), value: None, headers: &[] })?;
/// let bytes = builder.finish()?;
///
/// let batch = BatchView::parse(&bytes)?;
/// assert_eq!(batch.header().record_count, 2);
/// assert_eq!(batch.header().producer_id, 7);
/// let records: Vec<_> = batch.records().collect();
/// assert_eq!(records[0].key(), Some(&b"user-1"[..]));
/// assert_eq!(records[0].headers().next(), Some(("content-type", &b"application/json"[..])));
/// assert_eq!(records[1].value(), None); // a tombstone
/// assert_eq!(records[1].offset(), 1);
/// # Ok::<(), tidegate_proto::batch::BatchError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records: Vec<Pending>,
    /// Each record's bytes from `offset_delta` to its end, back to back.
    tails: Vec<u8>,
    min_timestamp_ms: i64,
    max_timestamp_ms: i64,
    /// Encoded size of all records, deltas taken from `min_timestamp_ms`.
    records_len: usize,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty builder with no producer identity (id, epoch and base
    /// sequence all -1).
    pub fn new() -> Self {
        Self {
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records: Vec::new(),
            tails: Vec::new(),
            min_timestamp_ms: 0,
            max_timestamp_ms: 0,
            records_len: 0,
        }
    }

    /// Sets the idempotent producer's id, epoch and the sequence number of
    /// the batch's first record (-1 for any of them means none).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Adds a record, copying its data. On error the builder is unchanged,
    /// so a producer can `finish` this batch and push the record to the next.
    ///
    /// # Errors
    ///
    /// - [`BatchError::RecordCount`] if the batch already holds
    ///   [`MAX_RECORDS_PER_BATCH`] records;
    /// - [`BatchError::BadRecord`] if the record has more than
    ///   [`MAX_HEADERS_PER_RECORD`] headers, or its timestamp is more than
    ///   `i64::MAX` ms away from another record's;
    /// - [`BatchError::TooLarge`] if the batch would exceed [`MAX_BATCH_BYTES`].
    pub fn push(&mut self, record: Record<'_>) -> Result<(), BatchError> {
        let index = self.record_count();
        if index >= MAX_RECORDS_PER_BATCH {
            return Err(BatchError::RecordCount {
                count: index.saturating_add(1),
            });
        }
        if record.headers.len() > MAX_HEADERS_PER_RECORD {
            return Err(BatchError::BadRecord {
                index,
                reason: "more than MAX_HEADERS_PER_RECORD headers",
            });
        }
        let ts = record.timestamp_ms;
        let (min, max) = if self.is_empty() {
            (ts, ts)
        } else {
            (self.min_timestamp_ms.min(ts), self.max_timestamp_ms.max(ts))
        };
        if max.checked_sub(min).is_none() {
            return Err(BatchError::BadRecord {
                index,
                reason: "timestamps in one batch span more than i64::MAX ms",
            });
        }
        let tail_len = tail_len(index, &record);
        let records_len = if min == self.min_timestamp_ms {
            self.records_len
        } else {
            self.records_len_from(min)
        };
        let size = HEADER_LEN
            .saturating_add(records_len)
            .saturating_add(record_len(ts, min, tail_len));
        if size > MAX_BATCH_BYTES {
            return Err(BatchError::TooLarge {
                size,
                max: MAX_BATCH_BYTES,
            });
        }
        let before = self.tails.len();
        put_tail(&mut self.tails, index, &record);
        debug_assert_eq!(self.tails.len() - before, tail_len);
        self.records.push(Pending {
            timestamp_ms: ts,
            tail_len,
        });
        self.min_timestamp_ms = min;
        self.max_timestamp_ms = max;
        self.records_len = size - HEADER_LEN;
        Ok(())
    }

    /// Encoded size of the records already pushed, were the smallest
    /// timestamp `min`.
    fn records_len_from(&self, min: i64) -> usize {
        self.records
            .iter()
            .map(|p| record_len(p.timestamp_ms, min, p.tail_len))
            .fold(0, usize::saturating_add)
    }

    /// Exact size in bytes [`finish`](BatchBuilder::finish) will return
    /// (header included).
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.records_len
    }

    /// Number of records pushed.
    pub fn record_count(&self) -> u32 {
        // Bounded by MAX_RECORDS_PER_BATCH in push.
        u32::try_from(self.records.len()).unwrap_or(u32::MAX)
    }

    /// `true` until a record is pushed.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encodes the batch: header (base offset 0), records, CRC.
    ///
    /// # Errors
    ///
    /// [`BatchError::Empty`] if no record was pushed.
    pub fn finish(self) -> Result<Vec<u8>, BatchError> {
        if self.is_empty() {
            return Err(BatchError::Empty);
        }
        let length = self.encoded_len();
        let header = BatchHeader {
            base_offset: 0,
            crc: 0,
            length: u32::try_from(length).map_err(|_| BatchError::TooLarge {
                size: length,
                max: MAX_BATCH_BYTES,
            })?,
            version: VERSION,
            attributes: 0,
            record_count: self.record_count(),
            first_timestamp_ms: self.min_timestamp_ms,
            max_timestamp_ms: self.max_timestamp_ms,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
        };
        let mut out = Vec::with_capacity(length);
        out.extend_from_slice(&header.encode());
        let mut tails = self.tails.as_slice();
        for p in &self.records {
            let (tail, rest) = tails.split_at_checked(p.tail_len).unwrap_or((tails, &[]));
            tails = rest;
            let delta = zigzag(p.timestamp_ms.wrapping_sub(self.min_timestamp_ms));
            put_uvarint(&mut out, (1 + uvarint_len(delta) + tail.len()) as u64);
            out.push(0); // record attributes
            put_uvarint(&mut out, delta);
            out.extend_from_slice(tail);
        }
        debug_assert_eq!(out.len(), length);
        let crc = crc_of(&out)?;
        set_crc(&mut out, crc);
        debug_assert_eq!(super::BatchView::parse(&out).map(|_| ()), Ok(()));
        Ok(out)
    }
}

/// Encoded size of a whole record (length prefix included).
fn record_len(timestamp_ms: i64, min_timestamp_ms: i64, tail_len: usize) -> usize {
    // push checked that the span of timestamps fits, so this does not wrap.
    let delta = zigzag(timestamp_ms.wrapping_sub(min_timestamp_ms));
    let body = (1 + uvarint_len(delta)).saturating_add(tail_len);
    uvarint_len(body as u64).saturating_add(body)
}

fn nullable_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => uvarint_len(zigzag(-1)),
        Some(b) => uvarint_len(zigzag(b.len() as i64)).saturating_add(b.len()),
    }
}

fn bytes_len(bytes: &[u8]) -> usize {
    uvarint_len(bytes.len() as u64).saturating_add(bytes.len())
}

/// Encoded size of what [`put_tail`] writes.
fn tail_len(index: u32, record: &Record<'_>) -> usize {
    let fixed = uvarint_len(u64::from(index))
        .saturating_add(nullable_len(record.key))
        .saturating_add(nullable_len(record.value))
        .saturating_add(uvarint_len(record.headers.len() as u64));
    record
        .headers
        .iter()
        .map(|(name, value)| bytes_len(name.as_bytes()).saturating_add(bytes_len(value)))
        .fold(fixed, usize::saturating_add)
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uvarint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A record from `offset_delta` to its end: everything but the length
/// prefix, attributes and timestamp delta.
fn put_tail(out: &mut Vec<u8>, index: u32, record: &Record<'_>) {
    put_uvarint(out, u64::from(index));
    put_nullable(out, record.key);
    put_nullable(out, record.value);
    put_uvarint(out, record.headers.len() as u64);
    for (name, value) in record.headers {
        put_bytes(out, name.as_bytes());
        put_bytes(out, value);
    }
}
