//! The shard runtime: executors, request routing between shards, topics,
//! subscriptions, flow control and admin HTTP. Filled in by the gateway issue.

/// Where a development run of `tidegate serve` keeps its data.
pub const DEFAULT_DATA_DIR: &str = "./tidegate-data";

mod access;
pub mod admin;
pub mod catalog;
pub mod config;
pub mod flow;
mod groups;
mod handler;
mod mesh;
pub mod metrics;
pub mod producers;
mod router;
pub mod server;
pub mod subscription;

pub use access::{Reload, SecurityError};
mod shard;
