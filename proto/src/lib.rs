//! tidegate wire formats, as pure functions over bytes (no runtime, no I/O).
//!
//! - [`batch`]: the record batch — the unit a producer sends, the log stores
//!   and a consumer fetches, byte for byte the same in all three places.
//! - [`protocol`]: protocol v1, the request/response codec carried on QUIC
//!   streams, shared by the server and the SDK.
//! - [`partitioner`]: key → partition, Kafka's default partitioner, which
//!   the server and every client must agree on.
//! - [`filter`]: subscription filter expressions over record headers —
//!   parsed and checked once, then evaluated without allocating; the
//!   language is specified in `docs/FILTERS.md`.
//!
//! The byte layouts are specified in `docs/FORMAT.md` (batches) and
//! `docs/PROTOCOL.md` (the protocol).

pub mod batch;
pub mod filter;
pub mod partitioner;
pub mod protocol;
