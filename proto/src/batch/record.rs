//! Record framing inside a batch: the one decoder shared by validation
//! ([`validate_records`]) and the infallible iterators over a parsed batch.

use std::iter::FusedIterator;

use super::varint::{Reader, VarintError};
use super::{BatchError, BatchHeader, MAX_HEADERS_PER_RECORD};

/// What a record is checked against: taken from its batch header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordContext {
    pub(crate) base_offset: u64,
    pub(crate) first_timestamp_ms: i64,
    pub(crate) max_timestamp_ms: i64,
}

impl From<&BatchHeader> for RecordContext {
    fn from(h: &BatchHeader) -> Self {
        Self {
            base_offset: h.base_offset,
            first_timestamp_ms: h.first_timestamp_ms,
            max_timestamp_ms: h.max_timestamp_ms,
        }
    }
}

impl From<VarintError> for &'static str {
    fn from(e: VarintError) -> Self {
        e.reason()
    }
}

/// Checks every record of a batch body (the bytes after the header) once:
/// exact lengths, sequential offset deltas, timestamps within the header's
/// range, header names UTF-8, header count bounded, no bytes left over.
pub(crate) fn validate_records(header: &BatchHeader, body: &[u8]) -> Result<(), BatchError> {
    let ctx = RecordContext::from(header);
    let mut r = Reader::new(body);
    for index in 0..header.record_count {
        let bad = |reason| BatchError::BadRecord { index, reason };
        if r.is_at_end() {
            return Err(bad("batch ends before record_count records"));
        }
        let record = read_record(&mut r, index, ctx).map_err(bad)?;
        validate_headers(record.header_bytes, record.header_count).map_err(bad)?;
    }
    if r.is_at_end() {
        Ok(())
    } else {
        Err(BatchError::TrailingBytes {
            count: r.remaining(),
        })
    }
}

/// Reads one length-prefixed record from `batch` (which moves past it), up
/// to and including its header count; the headers are left as bytes.
fn read_record<'a>(
    batch: &mut Reader<'a>,
    index: u32,
    ctx: RecordContext,
) -> Result<RecordView<'a>, &'static str> {
    const PAST_BATCH: &str = "record length runs past the end of the batch";
    let len = usize::try_from(batch.uvarint()?).map_err(|_| PAST_BATCH)?;
    let mut r = batch.sub(len).ok_or(PAST_BATCH)?;
    if r.u8().ok_or("record is empty")? != 0 {
        return Err("record attributes are not zero");
    }
    let delta = r.varint()?;
    let timestamp_ms = ctx
        .first_timestamp_ms
        .checked_add(delta)
        .filter(|ts| (ctx.first_timestamp_ms..=ctx.max_timestamp_ms).contains(ts))
        .ok_or("timestamp outside the batch's [first, max] range")?;
    if r.uvarint()? != u64::from(index) {
        return Err("offset delta is not the record's index");
    }
    let key = read_nullable(&mut r)?;
    let value = read_nullable(&mut r)?;
    let header_count = r.uvarint()?;
    if header_count > MAX_HEADERS_PER_RECORD as u64 {
        return Err("more than MAX_HEADERS_PER_RECORD headers");
    }
    Ok(RecordView {
        base_offset: ctx.base_offset,
        offset_delta: index,
        timestamp_ms,
        key,
        value,
        header_count: header_count as u32,
        header_bytes: r.rest(),
    })
}

/// A zigzag length, -1 for "absent", then that many bytes.
fn read_nullable<'a>(r: &mut Reader<'a>) -> Result<Option<&'a [u8]>, &'static str> {
    match r.varint()? {
        -1 => Ok(None),
        n if n < -1 => Err("key or value length below -1"),
        n => usize::try_from(n)
            .ok()
            .and_then(|n| r.bytes(n))
            .map(Some)
            .ok_or("key or value runs past the end of the record"),
    }
}

fn read_header<'a>(r: &mut Reader<'a>) -> Result<(&'a str, &'a [u8]), &'static str> {
    const PAST_RECORD: &str = "header runs past the end of the record";
    let name_len = usize::try_from(r.uvarint()?).map_err(|_| PAST_RECORD)?;
    let name = r.bytes(name_len).ok_or(PAST_RECORD)?;
    let name = std::str::from_utf8(name).map_err(|_| "header name is not UTF-8")?;
    let value_len = usize::try_from(r.uvarint()?).map_err(|_| PAST_RECORD)?;
    let value = r.bytes(value_len).ok_or(PAST_RECORD)?;
    Ok((name, value))
}

fn validate_headers(bytes: &[u8], count: u32) -> Result<(), &'static str> {
    let mut r = Reader::new(bytes);
    for _ in 0..count {
        read_header(&mut r)?;
    }
    if r.is_at_end() {
        Ok(())
    } else {
        Err("record length is longer than its fields")
    }
}

/// One record of a parsed batch, borrowing the batch's bytes.
///
/// Obtained from [`BatchView::records`](super::BatchView::records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    base_offset: u64,
    offset_delta: u32,
    timestamp_ms: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    header_count: u32,
    header_bytes: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// Position of the record in its batch (0-based).
    pub fn offset_delta(&self) -> u32 {
        self.offset_delta
    }

    /// Absolute offset: the batch's `base_offset + offset_delta`.
    pub fn offset(&self) -> u64 {
        // Cannot saturate: the header check bounds base_offset + record_count.
        self.base_offset
            .saturating_add(u64::from(self.offset_delta))
    }

    /// Absolute timestamp in ms since the Unix epoch.
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    /// The key, or `None` when the record has none (distinct from an empty key).
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The value, or `None` for a tombstone (distinct from an empty value).
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// The record's headers, in stored order (names may repeat).
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            r: Reader::new(self.header_bytes),
            remaining: self.header_count,
        }
    }
}

/// Iterator over the records of a parsed batch; see [`BatchView::records`](super::BatchView::records).
///
/// The batch was validated when parsed, so this yields exactly
/// `record_count` records; it still reads with checked bounds and simply
/// stops if anything is unexpected.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    r: Reader<'a>,
    ctx: RecordContext,
    next_index: u32,
    count: u32,
}

impl<'a> Records<'a> {
    pub(crate) fn new(header: &BatchHeader, body: &'a [u8]) -> Self {
        Self {
            r: Reader::new(body),
            ctx: RecordContext::from(header),
            next_index: 0,
            count: header.record_count,
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = RecordView<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next_index >= self.count {
            return None;
        }
        match read_record(&mut self.r, self.next_index, self.ctx) {
            Ok(record) => {
                self.next_index += 1;
                Some(record)
            }
            Err(_) => {
                self.next_index = self.count;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.count.saturating_sub(self.next_index) as usize))
    }
}

impl FusedIterator for Records<'_> {}

/// Iterator over a record's headers as `(name, value)`; see [`RecordView::headers`].
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    r: Reader<'a>,
    remaining: u32,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        match read_header(&mut self.r) {
            Ok(header) => {
                self.remaining -= 1;
                Some(header)
            }
            Err(_) => {
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

impl FusedIterator for Headers<'_> {}
