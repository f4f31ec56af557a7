//! Idempotent producers: which batches of which producer a partition has
//! appended, so that a batch sent again is answered with its first offsets
//! instead of being written twice (docs/SEMANTICS.md §2).
//!
//! The table is pure state: the log consults it when it assigns offsets
//! ([`ProducerTable::check`], [`ProducerTable::record`]), snapshots it at
//! each segment roll ([`snapshot`]) and rebuilds it on open from the latest
//! snapshot plus the batch headers after it. Nothing here does I/O.

mod sequence;
pub mod snapshot;
mod table;

pub use sequence::{Identity, SEQUENCE_MODULUS};
pub use table::{ProducerTable, Verdict, RECENT_BATCHES};
