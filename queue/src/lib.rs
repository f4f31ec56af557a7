//! tidegate's embedded queue: the durable partition log and the rings that
//! carry work between shards.
//!
//! A [`Log`] is one partition: a directory of segment files written with
//! O_DIRECT through io_uring (glommio DMA files), with group commit, sparse
//! indexes, crash recovery and retention. It lives on one glommio executor
//! and takes no locks; other shards reach it through the [`ring`]s.

mod config;
mod disk;
mod error;
pub mod fault;
mod index;
mod log;
mod notify;
pub mod ring;
mod segment;

pub use config::LogConfig;
pub use error::{IoFailure, LogError};
pub use log::{
    Ack, Appended, Log, LogOffsets, LogStats, ReadBatches, RecoveryReport, RetentionReport,
};
