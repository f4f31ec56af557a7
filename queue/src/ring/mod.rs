//! Bounded lock-free rings that shards use to hand work to each other.
//!
//! tidegate follows Seastar's layout: every ordered pair of shards `(a, b)`
//! owns its own single-producer single-consumer ring, so the data path never
//! needs a multi-producer queue and never takes a lock. Shard `a` holds the
//! [`spsc::Producer`] of ring `a -> b`, shard `b` holds the
//! [`spsc::Consumer`]; items cross in batches so that one release store
//! publishes many messages.
//!
//! The module is self-contained (it only refers to its own submodules through
//! `super::`), so the loom model test in `queue/tests/ring_loom.rs` can compile
//! it a second time against loom's atomics. See [`spsc`] for the design.

pub mod spsc;
mod sync;

pub use spsc::{channel, Consumer, Producer, RingError, MAX_CAPACITY};
