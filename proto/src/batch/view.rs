//! Zero-copy views over validated batches, and the two byte-level helpers
//! the log and the server need (CRC, base offset patch).

use std::iter::FusedIterator;

use super::header::{OFF_BASE_OFFSET, OFF_CRC, OFF_LENGTH};
use super::record::{validate_records, Records};
use super::{peek_header, BatchError, BatchHeader, CRC_START, HEADER_LEN, MAX_BATCH_BYTES};

/// One complete, validated batch, borrowing its bytes (zero-copy).
///
/// [`BatchView::parse`] and [`BatchView::parse_prefix`] (and
/// [`BatchIter::new`]) check the header, the CRC and every record once;
/// after that, reading records cannot fail. [`BatchIter::stored`] checks
/// the header and CRC of bytes whose records were checked before they were
/// stored.
///
/// # Example
///
/// ```
/// use tidegate_proto::batch::{BatchBuilder, BatchView, Record};
///
/// let mut builder = BatchBuilder::new();
/// builder.push(Record { timestamp_ms: 1_000, key: Some(b"k"), value: Some(b"v"), headers: &[] })?;
/// let bytes = builder.finish()?;
///
/// let batch = BatchView::parse(&bytes)?;
/// assert_eq!(batch.len(), bytes.len());
/// assert_eq!(batch.records().count(), 1);
/// # Ok::<(), tidegate_proto::batch::BatchError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
    header: BatchHeader,
}

impl<'a> BatchView<'a> {
    /// Parses `bytes` as exactly one batch and validates all of it.
    ///
    /// Order of checks: the header ([`peek_header`]), `bytes.len() ==
    /// length`, the CRC, then every record once.
    ///
    /// # Errors
    ///
    /// The first failed check; [`BatchError::LengthMismatch`] when `bytes`
    /// is shorter or longer than the header's `length`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BatchError> {
        let header = peek_header(bytes)?;
        if bytes.len() != header.length as usize {
            return Err(BatchError::LengthMismatch {
                header: header.length,
                actual: bytes.len(),
            });
        }
        Self::validate(bytes, header)
    }

    /// Parses the first batch of a concatenation of batches, returning it and
    /// the bytes after it.
    ///
    /// # Errors
    ///
    /// As [`BatchView::parse`], except that a buffer shorter than the
    /// header's `length` gives [`BatchError::Truncated`].
    pub fn parse_prefix(bytes: &'a [u8]) -> Result<(Self, &'a [u8]), BatchError> {
        let (header, batch, rest) = split_prefix(bytes)?;
        Ok((Self::validate(batch, header)?, rest))
    }

    /// [`BatchView::parse_prefix`] for bytes validated before they were
    /// stored: the header and CRC only (see [`BatchIter::stored`]).
    fn parse_prefix_stored(bytes: &'a [u8]) -> Result<(Self, &'a [u8]), BatchError> {
        let (header, batch, rest) = split_prefix(bytes)?;
        Ok((Self::check_crc(batch, header)?, rest))
    }

    /// [`BatchView::parse`] for one batch validated before it was stored:
    /// the header, the length and the CRC, not the records again (a
    /// stored batch's bytes are what was validated if its CRC holds).
    ///
    /// # Errors
    ///
    /// As [`BatchView::parse`], except for the records' checks.
    pub fn parse_stored(bytes: &'a [u8]) -> Result<Self, BatchError> {
        let header = peek_header(bytes)?;
        if bytes.len() != header.length as usize {
            return Err(BatchError::LengthMismatch {
                header: header.length,
                actual: bytes.len(),
            });
        }
        Self::check_crc(bytes, header)
    }

    /// `bytes` is exactly `header.length` long and `header` came from it.
    fn validate(bytes: &'a [u8], header: BatchHeader) -> Result<Self, BatchError> {
        let view = Self::check_crc(bytes, header)?;
        validate_records(&header, bytes.get(HEADER_LEN..).unwrap_or_default())?;
        Ok(view)
    }

    /// The header and CRC checks of `validate`, without the records.
    fn check_crc(bytes: &'a [u8], header: BatchHeader) -> Result<Self, BatchError> {
        let computed = crc_of(bytes)?;
        if computed != header.crc {
            return Err(BatchError::CrcMismatch {
                stored: header.crc,
                computed,
            });
        }
        Ok(Self { bytes, header })
    }

    /// The decoded header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch's bytes, exactly `header().length` of them.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Length of the batch in bytes, header included.
    #[allow(clippy::len_without_is_empty, reason = "a valid batch is never empty")]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The records, in offset order.
    pub fn records(&self) -> Records<'a> {
        Records::new(
            &self.header,
            self.bytes.get(HEADER_LEN..).unwrap_or_default(),
        )
    }
}

/// The first batch's header, its bytes, and the bytes after it.
fn split_prefix(bytes: &[u8]) -> Result<(BatchHeader, &[u8], &[u8]), BatchError> {
    let header = peek_header(bytes)?;
    let length = header.length as usize;
    let (batch, rest) = bytes
        .split_at_checked(length)
        .ok_or(BatchError::Truncated {
            needed: length,
            available: bytes.len(),
        })?;
    Ok((header, batch, rest))
}

/// Iterates a concatenation of batches (a fetch response, a chunk of the
/// log), validating each one, and stops after the first error.
///
/// The bytes before an error are sound: the sum of the lengths of the `Ok`
/// batches is where a recovery scanner would cut a torn tail.
///
/// # Example
///
/// ```
/// use tidegate_proto::batch::{BatchBuilder, BatchIter, Record};
///
/// let mut log = Vec::new();
/// for ts in [1, 2] {
///     let mut b = BatchBuilder::new();
///     b.push(Record { timestamp_ms: ts, key: None, value: Some(b"x"), headers: &[] })?;
///     log.extend(b.finish()?);
/// }
/// log.extend([0u8; 10]); // a torn tail
///
/// let mut it = BatchIter::new(&log);
/// assert!(it.next().unwrap().is_ok());
/// assert!(it.next().unwrap().is_ok());
/// assert!(it.next().unwrap().is_err());
/// assert!(it.next().is_none());
/// # Ok::<(), tidegate_proto::batch::BatchError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    rest: &'a [u8],
    failed: bool,
    /// How much is checked of each batch.
    check: Check,
}

/// What a [`BatchIter`] checks of each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Header, CRC and every record: bytes from outside.
    All,
    /// Header and CRC: records validated before the bytes were stored.
    Crc,
    /// Header only: bytes whose CRC the caller has just checked.
    Framing,
}

impl<'a> BatchIter<'a> {
    /// Iterates the batches in `bytes`; an empty slice yields nothing.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            failed: false,
            check: Check::All,
        }
    }

    /// Iterates batches that were validated in full before they were
    /// stored, such as a partition log's reads: each header and CRC is
    /// checked (so any change since is caught), the records are not
    /// walked again. The views' records are then what was validated; were
    /// a batch ever stored without that, its records would end early at
    /// the first malformed one, never panic.
    ///
    /// # Example
    ///
    /// ```
    /// use tidegate_proto::batch::{BatchBuilder, BatchIter, Record};
    ///
    /// let mut b = BatchBuilder::new();
    /// b.push(Record { timestamp_ms: 1, key: None, value: Some(b"x"), headers: &[] })?;
    /// let mut stored = b.finish()?;
    /// assert_eq!(BatchIter::stored(&stored).count(), 1);
    /// let last = stored.len() - 1;
    /// stored[last] ^= 1; // the disk changed a bit
    /// assert!(BatchIter::stored(&stored).next().unwrap().is_err());
    /// # Ok::<(), tidegate_proto::batch::BatchError>(())
    /// ```
    pub fn stored(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            failed: false,
            check: Check::Crc,
        }
    }

    /// Iterates batches whose CRC the caller has just checked (a log read
    /// with `verify_reads`): the framing of each batch only, so the CRC
    /// is not computed twice. Records of bytes that are not whole batches
    /// still fail to iterate cleanly; nothing here can panic.
    pub fn verified(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            failed: false,
            check: Check::Framing,
        }
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<BatchView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let parsed = match self.check {
            Check::All => BatchView::parse_prefix(self.rest),
            Check::Crc => BatchView::parse_prefix_stored(self.rest),
            Check::Framing => split_prefix(self.rest)
                .map(|(header, bytes, rest)| (BatchView { bytes, header }, rest)),
        };
        match parsed {
            Ok((batch, rest)) => {
                self.rest = rest;
                Some(Ok(batch))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl FusedIterator for BatchIter<'_> {}

/// Writes `base_offset` into bytes 0..8 of a batch.
///
/// The CRC does not cover these bytes, so the server assigns offsets
/// without recomputing it. Nothing else is read or checked.
///
/// # Errors
///
/// [`BatchError::Truncated`] if `batch` is shorter than 8 bytes (and then
/// nothing is written).
///
/// # Example
///
/// ```
/// use tidegate_proto::batch::{set_base_offset, BatchBuilder, BatchView, Record};
///
/// let mut b = BatchBuilder::new();
/// b.push(Record { timestamp_ms: 0, key: None, value: Some(b"v"), headers: &[] })?;
/// let mut bytes = b.finish()?;
/// set_base_offset(&mut bytes, 42)?;
/// let batch = BatchView::parse(&bytes)?; // CRC still valid
/// assert_eq!(batch.records().next().map(|r| r.offset()), Some(42));
/// # Ok::<(), tidegate_proto::batch::BatchError>(())
/// ```
pub fn set_base_offset(batch: &mut [u8], base_offset: u64) -> Result<(), BatchError> {
    let available = batch.len();
    let dst = batch
        .get_mut(OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8)
        .ok_or(BatchError::Truncated {
            needed: 8,
            available,
        })?;
    dst.copy_from_slice(&base_offset.to_le_bytes());
    Ok(())
}

/// Computes the CRC32C (Castagnoli) of bytes `[CRC_START, length)`, where
/// `length` is read from the batch's own header field.
///
/// Only the length field is checked, not the rest of the header, so a
/// builder or a test can use this on a batch whose CRC field is not set yet.
///
/// # Errors
///
/// [`BatchError::Truncated`] if fewer than `length` (or 16) bytes are
/// given; [`BatchError::LengthOutOfRange`] if `length` is not in
/// `(HEADER_LEN, MAX_BATCH_BYTES]`.
pub fn crc_of(batch: &[u8]) -> Result<u32, BatchError> {
    let available = batch.len();
    let length_bytes: [u8; 4] = batch
        .get(OFF_LENGTH..OFF_LENGTH + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or(BatchError::Truncated {
            needed: OFF_LENGTH + 4,
            available,
        })?;
    let length = u32::from_le_bytes(length_bytes);
    let len = length as usize;
    if len <= HEADER_LEN || len > MAX_BATCH_BYTES {
        return Err(BatchError::LengthOutOfRange { length });
    }
    let covered = batch.get(CRC_START..len).ok_or(BatchError::Truncated {
        needed: len,
        available,
    })?;
    Ok(crc32c::crc32c(covered))
}

/// Writes `crc` into the batch's CRC field (bytes 8..12).
pub(crate) fn set_crc(batch: &mut [u8], crc: u32) {
    if let Some(dst) = batch.get_mut(OFF_CRC..OFF_CRC + 4) {
        dst.copy_from_slice(&crc.to_le_bytes());
    }
}
