//! tidegate wire formats, as pure functions over bytes (no runtime, no I/O).
//!
//! - [`batch`]: the record batch — the unit a producer sends, the log stores
//!   and a consumer fetches, byte for byte the same in all three places.
//!
//! The byte layout is specified in `docs/FORMAT.md`.

pub mod batch;
