//! The record batch: the unit a producer sends, the log stores and a
//! consumer fetches — the same bytes in all three places, validated once.
//!
//! A batch is a fixed 64-byte little-endian [`BatchHeader`] followed by
//! varint-framed records; the full layout is in `docs/FORMAT.md`.
//!
//! - Producers build one with [`BatchBuilder`].
//! - The server parses it with [`BatchView::parse`] (header, CRC and every
//!   record checked once), then assigns offsets with [`set_base_offset`],
//!   which does not disturb the CRC.
//! - The log's recovery scanner calls [`peek_header`] on a possibly torn
//!   tail, and walks stored data with [`BatchIter`].
//! - Consumers iterate [`BatchView::records`] without copying.
//!
//! # Example
//!
//! ```
//! use tidegate_proto::batch::{set_base_offset, BatchBuilder, BatchView, Record};
//!
//! let mut builder = BatchBuilder::new();
//! builder.push(Record { timestamp_ms: 10, key: Some(b"a"), value: Some(b"1"), headers: &[("h", b"x")] })?;
//! builder.push(Record { timestamp_ms: 12, key: None, value: Some(b"2"), headers: &[] })?;
//! let mut bytes = builder.finish()?;
//! set_base_offset(&mut bytes, 1000)?; // what the server does on append
//!
//! let batch = BatchView::parse(&bytes)?;
//! for record in batch.records() {
//!     println!("{} @{} {:?}", record.offset(), record.timestamp_ms(), record.value());
//! }
//! assert_eq!(batch.header().last_offset(), 1001);
//! # Ok::<(), tidegate_proto::batch::BatchError>(())
//! ```

mod builder;
pub mod dedup;
mod error;
mod header;
mod record;
mod varint;
mod view;

#[cfg(test)]
mod tests;

pub use builder::{BatchBuilder, Record};
pub use error::BatchError;
pub use header::{next_sequence, peek_header, BatchHeader, SEQUENCE_MODULUS};
pub use record::{Headers, RecordView, Records};
pub use view::{crc_of, set_base_offset, BatchIter, BatchView};

/// Size of the fixed batch header in bytes.
pub const HEADER_LEN: usize = 64;

/// The four bytes at offset 16 of every batch.
pub const MAGIC: [u8; 4] = *b"TGB1";

/// The format version this crate reads and writes.
pub const VERSION: u8 = 1;

/// The CRC covers bytes `[CRC_START, length)`: everything after the CRC
/// field except `base_offset`, which the server writes after the producer
/// computed the CRC.
pub const CRC_START: usize = 12;

/// Hard ceiling on a batch's total size (16 MiB), header included.
///
/// Bounds the memory a single batch can pin on the server and the size of
/// a single log write; producers are expected to use far less (batches of
/// tens to hundreds of KiB amortise the per-batch costs already).
pub const MAX_BATCH_BYTES: usize = 16 << 20;

/// Most records one batch may hold (2^20).
///
/// The smallest record is 7 bytes, so [`MAX_BATCH_BYTES`] alone would
/// allow about 2.4 million; this bound keeps per-batch work and any
/// per-record index a consumer builds predictable, and keeps `offset_delta`
/// within a 3-byte varint.
pub const MAX_RECORDS_PER_BATCH: u32 = 1 << 20;

/// Most headers one record may carry (256).
///
/// Headers hold attributes for filtering, content type and schema version;
/// a handful is normal. The bound caps the work of server-side filtering
/// per record.
pub const MAX_HEADERS_PER_RECORD: usize = 256;
