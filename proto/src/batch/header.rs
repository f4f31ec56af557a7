//! The fixed 64-byte batch header: layout, decoding and the structural
//! checks a recovery scanner can run without the rest of the batch.

use super::{BatchError, HEADER_LEN, MAGIC, MAX_BATCH_BYTES, MAX_RECORDS_PER_BATCH, VERSION};

// Byte offsets of the header fields (see docs/FORMAT.md).
pub(crate) const OFF_BASE_OFFSET: usize = 0;
pub(crate) const OFF_CRC: usize = 8;
pub(crate) const OFF_LENGTH: usize = 12;
pub(crate) const OFF_MAGIC: usize = 16;
pub(crate) const OFF_VERSION: usize = 20;
pub(crate) const OFF_RESERVED_1: usize = 21;
pub(crate) const OFF_ATTRIBUTES: usize = 22;
pub(crate) const OFF_RECORD_COUNT: usize = 24;
pub(crate) const OFF_RESERVED_2: usize = 28;
pub(crate) const OFF_FIRST_TIMESTAMP: usize = 32;
pub(crate) const OFF_MAX_TIMESTAMP: usize = 40;
pub(crate) const OFF_PRODUCER_ID: usize = 48;
pub(crate) const OFF_PRODUCER_EPOCH: usize = 56;
pub(crate) const OFF_RESERVED_3: usize = 58;
pub(crate) const OFF_BASE_SEQUENCE: usize = 60;

/// Attribute bits 0-2: the compression codec.
const ATTR_COMPRESSION_MASK: u16 = 0b111;
/// The only codec so far: records stored as they are.
const COMPRESSION_NONE: u16 = 0;

/// The decoded fixed header of a batch.
///
/// Obtained from [`peek_header`] or [`BatchView::header`](super::BatchView::header);
/// a value returned by either has passed the structural checks listed on
/// [`peek_header`]. Magic and reserved fields are not kept: they are
/// constants once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record, assigned by the server on append
    /// (0 as built by a producer). Not covered by the CRC.
    pub base_offset: u64,
    /// CRC32C of bytes `[CRC_START, length)` as stored.
    pub crc: u32,
    /// Total batch length in bytes, header included.
    pub length: u32,
    /// Format version ([`VERSION`]).
    pub version: u8,
    /// Attribute bits; bits 0-2 are the compression codec (0 = none).
    pub attributes: u16,
    /// Number of records, in `1..=MAX_RECORDS_PER_BATCH`.
    pub record_count: u32,
    /// Smallest record timestamp in the batch, in ms since the Unix epoch;
    /// record timestamps are stored as deltas from it.
    pub first_timestamp_ms: i64,
    /// Largest record timestamp in the batch (`>= first_timestamp_ms`).
    pub max_timestamp_ms: i64,
    /// Idempotent producer id, or -1 for none.
    pub producer_id: i64,
    /// Producer epoch, or -1 for none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1 for none.
    pub base_sequence: i32,
}

impl BatchHeader {
    /// Offset of the last record: `base_offset + record_count - 1`.
    ///
    /// Saturating, so it cannot panic even on a hand-built header; on a
    /// header that passed [`peek_header`] it is exact.
    pub fn last_offset(&self) -> u64 {
        self.next_offset().saturating_sub(1)
    }

    /// Offset the batch after this one starts at: `base_offset + record_count`.
    ///
    /// Saturating, so it cannot panic even on a hand-built header; on a
    /// header that passed [`peek_header`] it is exact.
    pub fn next_offset(&self) -> u64 {
        self.base_offset
            .saturating_add(u64::from(self.record_count))
    }

    /// The 64 header bytes for this header, magic and zero reserved fields
    /// included.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        put(&mut h, OFF_BASE_OFFSET, &self.base_offset.to_le_bytes());
        put(&mut h, OFF_CRC, &self.crc.to_le_bytes());
        put(&mut h, OFF_LENGTH, &self.length.to_le_bytes());
        put(&mut h, OFF_MAGIC, &MAGIC);
        put(&mut h, OFF_VERSION, &[self.version]);
        put(&mut h, OFF_ATTRIBUTES, &self.attributes.to_le_bytes());
        put(&mut h, OFF_RECORD_COUNT, &self.record_count.to_le_bytes());
        put(
            &mut h,
            OFF_FIRST_TIMESTAMP,
            &self.first_timestamp_ms.to_le_bytes(),
        );
        put(
            &mut h,
            OFF_MAX_TIMESTAMP,
            &self.max_timestamp_ms.to_le_bytes(),
        );
        put(&mut h, OFF_PRODUCER_ID, &self.producer_id.to_le_bytes());
        put(
            &mut h,
            OFF_PRODUCER_EPOCH,
            &self.producer_epoch.to_le_bytes(),
        );
        put(&mut h, OFF_BASE_SEQUENCE, &self.base_sequence.to_le_bytes());
        h
    }
}

fn put(h: &mut [u8; HEADER_LEN], off: usize, src: &[u8]) {
    if let Some(dst) = h.get_mut(off..off + src.len()) {
        dst.copy_from_slice(src);
    }
}

/// `N` bytes of the header at `off`; offsets are constants, so the fallback
/// zero is unreachable, but it keeps this free of panicking paths.
fn get<const N: usize>(h: &[u8; HEADER_LEN], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = h.get(off..off + N) {
        out.copy_from_slice(src);
    }
    out
}

/// Decodes and checks the fixed header from the first [`HEADER_LEN`] bytes.
///
/// Only the header is read: `bytes` may be longer (a whole segment tail) or
/// exactly 64 bytes. This is what a recovery scanner calls on a possibly
/// torn or zeroed tail, so it never panics; all-zero bytes give
/// [`BatchError::BadMagic`].
///
/// Checks, in this order: at least 64 bytes, magic, version, reserved
/// fields zero, attributes known, `HEADER_LEN < length <= MAX_BATCH_BYTES`,
/// `record_count` in `1..=MAX_RECORDS_PER_BATCH`, `first_timestamp_ms <=
/// max_timestamp_ms`, `base_offset + record_count` fits in `u64`.
///
/// It does **not** check the CRC or the records: use [`BatchView::parse`](super::BatchView::parse).
///
/// # Errors
///
/// The first failed check, as listed above.
///
/// # Example
///
/// ```
/// use tidegate_proto::batch::{peek_header, BatchError};
///
/// // A zeroed tail, as left by a crash after preallocation.
/// let zeros = [0u8; 4096];
/// assert!(matches!(peek_header(&zeros), Err(BatchError::BadMagic { .. })));
/// ```
pub fn peek_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let h: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(BatchError::Truncated {
            needed: HEADER_LEN,
            available: bytes.len(),
        })?;
    let magic: [u8; 4] = get(h, OFF_MAGIC);
    if magic != MAGIC {
        return Err(BatchError::BadMagic { found: magic });
    }
    let [version] = get(h, OFF_VERSION);
    if version != VERSION {
        return Err(BatchError::UnsupportedVersion(version));
    }
    check_reserved(h)?;
    let header = decode_fields(h, version);
    check_fields(&header)?;
    Ok(header)
}

fn check_reserved(h: &[u8; HEADER_LEN]) -> Result<(), BatchError> {
    let reserved = [
        (
            OFF_RESERVED_1,
            u32::from(u8::from_le_bytes(get(h, OFF_RESERVED_1))),
        ),
        (OFF_RESERVED_2, u32::from_le_bytes(get(h, OFF_RESERVED_2))),
        (
            OFF_RESERVED_3,
            u32::from(u16::from_le_bytes(get(h, OFF_RESERVED_3))),
        ),
    ];
    match reserved.iter().find(|(_, v)| *v != 0) {
        Some(&(offset, _)) => Err(BatchError::ReservedNotZero { offset }),
        None => Ok(()),
    }
}

fn decode_fields(h: &[u8; HEADER_LEN], version: u8) -> BatchHeader {
    BatchHeader {
        base_offset: u64::from_le_bytes(get(h, OFF_BASE_OFFSET)),
        crc: u32::from_le_bytes(get(h, OFF_CRC)),
        length: u32::from_le_bytes(get(h, OFF_LENGTH)),
        version,
        attributes: u16::from_le_bytes(get(h, OFF_ATTRIBUTES)),
        record_count: u32::from_le_bytes(get(h, OFF_RECORD_COUNT)),
        first_timestamp_ms: i64::from_le_bytes(get(h, OFF_FIRST_TIMESTAMP)),
        max_timestamp_ms: i64::from_le_bytes(get(h, OFF_MAX_TIMESTAMP)),
        producer_id: i64::from_le_bytes(get(h, OFF_PRODUCER_ID)),
        producer_epoch: i16::from_le_bytes(get(h, OFF_PRODUCER_EPOCH)),
        base_sequence: i32::from_le_bytes(get(h, OFF_BASE_SEQUENCE)),
    }
}

fn check_fields(h: &BatchHeader) -> Result<(), BatchError> {
    // No codec but "none" exists yet, and no other bit has a meaning: both
    // are rejected so an older reader never misreads a newer batch.
    let unknown_bits = h.attributes & !ATTR_COMPRESSION_MASK;
    if unknown_bits != 0 || h.attributes & ATTR_COMPRESSION_MASK != COMPRESSION_NONE {
        return Err(BatchError::UnsupportedAttributes(h.attributes));
    }
    let length = h.length as usize;
    if length <= HEADER_LEN || length > MAX_BATCH_BYTES {
        return Err(BatchError::LengthOutOfRange { length: h.length });
    }
    if h.record_count == 0 || h.record_count > MAX_RECORDS_PER_BATCH {
        return Err(BatchError::RecordCount {
            count: h.record_count,
        });
    }
    if h.max_timestamp_ms < h.first_timestamp_ms {
        return Err(BatchError::TimestampsOutOfOrder {
            first_ms: h.first_timestamp_ms,
            max_ms: h.max_timestamp_ms,
        });
    }
    if h.base_offset
        .checked_add(u64::from(h.record_count))
        .is_none()
    {
        return Err(BatchError::OffsetOverflow {
            base_offset: h.base_offset,
            record_count: h.record_count,
        });
    }
    Ok(())
}

/// Producer sequence numbers run over `0..SEQUENCE_MODULUS` (the
/// non-negative `i32`s) and wrap from `i32::MAX` to 0.
pub const SEQUENCE_MODULUS: i64 = 1 << 31;

/// The sequence `by` records after `sequence`, wrapping: the next batch of
/// a producer that sent `records` records from `sequence` starts at
/// `next_sequence(sequence, records)`.
pub fn next_sequence(sequence: i32, by: i64) -> i32 {
    // In 0..SEQUENCE_MODULUS, which fits an i32.
    (i64::from(sequence) + by).rem_euclid(SEQUENCE_MODULUS) as i32
}

#[cfg(test)]
mod sequence_tests {
    use super::next_sequence;

    #[test]
    fn sequences_wrap_from_the_largest_to_zero() {
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(next_sequence(5, 0), 5);
        assert_eq!(next_sequence(0, -1), i32::MAX);
    }
}
