//! The one error type of the batch format.

use super::{HEADER_LEN, MAX_BATCH_BYTES, MAX_RECORDS_PER_BATCH};

/// Why bytes are not a valid batch, or why a batch cannot be built.
///
/// Every variant is cheap to build and carries the numbers a log line needs.
/// Decoding never panics: every malformed input maps to one of these.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than the format needs at this point (a torn tail, or a
    /// buffer that ends mid-batch).
    #[error("truncated batch: needed {needed} bytes, {available} available")]
    Truncated {
        /// Bytes required to go on.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// Bytes 16..20 are not [`MAGIC`](super::MAGIC) (`b"TGB1"`).
    #[error("bad batch magic {found:02x?}, expected \"TGB1\"")]
    BadMagic {
        /// The four bytes found at offset 16.
        found: [u8; 4],
    },
    /// The version byte is not [`VERSION`](super::VERSION).
    #[error("unsupported batch version {0}")]
    UnsupportedVersion(u8),
    /// A reserved header field is not zero.
    #[error("reserved header field at byte {offset} is not zero")]
    ReservedNotZero {
        /// Byte offset of the reserved field in the header.
        offset: usize,
    },
    /// The attributes ask for compression or flags this version does not know.
    #[error("unsupported batch attributes {0:#06x}")]
    UnsupportedAttributes(u16),
    /// The `length` field is not in `(HEADER_LEN, MAX_BATCH_BYTES]`.
    #[error("batch length {length} outside {HEADER_LEN} < length <= {MAX_BATCH_BYTES}")]
    LengthOutOfRange {
        /// The length field as stored.
        length: u32,
    },
    /// The buffer given as exactly one batch is not `length` bytes long.
    #[error("batch header says {header} bytes, buffer holds {actual}")]
    LengthMismatch {
        /// The length field as stored.
        header: u32,
        /// The buffer's length.
        actual: usize,
    },
    /// `record_count` is not in `1..=MAX_RECORDS_PER_BATCH`.
    #[error("record count {count} outside 1..={MAX_RECORDS_PER_BATCH}")]
    RecordCount {
        /// The record count, stored or attempted.
        count: u32,
    },
    /// `max_timestamp_ms < first_timestamp_ms`.
    #[error("max timestamp {max_ms} is before first timestamp {first_ms}")]
    TimestampsOutOfOrder {
        /// `first_timestamp_ms` as stored.
        first_ms: i64,
        /// `max_timestamp_ms` as stored.
        max_ms: i64,
    },
    /// `base_offset + record_count` does not fit in a `u64`.
    #[error("base offset {base_offset} + {record_count} records overflows u64")]
    OffsetOverflow {
        /// `base_offset` as stored.
        base_offset: u64,
        /// `record_count` as stored.
        record_count: u32,
    },
    /// The CRC32C over bytes `[12, length)` does not match the stored one.
    #[error("batch crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// The `crc` field as stored.
        stored: u32,
        /// The CRC of the bytes as they are.
        computed: u32,
    },
    /// Record `index` (0-based) is malformed, or cannot be built.
    #[error("record {index}: {reason}")]
    BadRecord {
        /// 0-based index of the record in the batch.
        index: u32,
        /// What is wrong, for humans.
        reason: &'static str,
    },
    /// Bytes follow the last record inside the batch's `length`.
    #[error("{count} bytes after the last record")]
    TrailingBytes {
        /// How many bytes are left over.
        count: usize,
    },
    /// Building: adding the record would make the batch exceed the limit.
    #[error("batch would be {size} bytes, limit is {max}")]
    TooLarge {
        /// The size the batch would have.
        size: usize,
        /// The limit ([`MAX_BATCH_BYTES`]).
        max: usize,
    },
    /// Building: `finish` on a builder with no records.
    #[error("batch has no records")]
    Empty,
}
