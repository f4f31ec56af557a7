//! Metrics: every shard counts on its own thread and publishes snapshots;
//! the admin thread gathers them and renders Prometheus text.
//!
//! The shape follows STYLE.md's one owner per shard. On the data path a
//! request touches only plain `Cell`s of its own shard thread
//! (`RequestProbe`): no atomic, no lock, nothing another core reads.
//! Once a second, and once at start and once at stop, each shard copies
//! those counters, its QUIC endpoint's counters and its partitions' log
//! figures into a [`ShardSnapshot`] and moves it into its own slot of the
//! [`MetricsHub`]. A slot is a `Mutex` with one writer (its shard, once a
//! second) and one reader (the admin thread, once a scrape), held for a
//! move or a clone: off the data path. A scrape is a map-reduce over the
//! slots (copy each, then [`render`]).
//!
//! Every metric, its type and labels: `docs/METRICS.md`.

mod auth;
mod histogram;
mod probe;
mod publish;
mod render;
mod snapshot;

use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) use auth::{count_auth_denied, count_auth_failure};
pub use auth::{AuthSnapshot, DENIED_OPERATIONS, FAILURE_REASONS};
pub use histogram::{HistogramSnapshot, LATENCY_BUCKETS_US, LATENCY_SLOTS};
pub(crate) use probe::RequestProbe;
pub(crate) use publish::Publisher;
pub use publish::PUBLISH_INTERVAL;
pub use render::{render, CONTENT_TYPE};
pub use snapshot::{
    code_index, code_label, kind_index, kind_label, FdatasyncHistogram, PartitionSnapshot,
    QuicSnapshot, RequestSnapshot, ShardSnapshot, WindowSnapshot, CODES,
    FDATASYNC_LATENCY_BUCKETS_US, KINDS, SUBSCRIPTION_OUTCOMES,
};

/// One snapshot slot per shard: written by that shard, read by the admin
/// thread.
#[derive(Debug)]
pub struct MetricsHub {
    slots: Box<[Mutex<ShardSnapshot>]>,
}

impl MetricsHub {
    /// A hub for `shards` shards, none of which has published yet.
    pub fn new(shards: usize) -> Arc<MetricsHub> {
        let slots = (0..shards)
            .map(|shard| {
                Mutex::new(ShardSnapshot {
                    shard,
                    ..ShardSnapshot::default()
                })
            })
            .collect();
        Arc::new(MetricsHub { slots })
    }

    /// Number of shard slots.
    pub fn shards(&self) -> usize {
        self.slots.len()
    }

    /// Replaces the snapshot in the slot of `snapshot.shard`.
    ///
    /// # Panics
    ///
    /// If the hub has no slot for that shard (a bug).
    pub fn publish(&self, snapshot: ShardSnapshot) {
        let slot = &self.slots[snapshot.shard];
        *lock(slot) = snapshot;
    }

    /// A copy of every shard's latest snapshot, by shard.
    pub fn gather(&self) -> Vec<ShardSnapshot> {
        self.slots.iter().map(|slot| lock(slot).clone()).collect()
    }

    /// `Ok` when every shard serves, else the shards that do not.
    pub fn all_serving(&self) -> Result<(), Vec<usize>> {
        let idle: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| !lock(slot).serving)
            .map(|(shard, _)| shard)
            .collect();
        if idle.is_empty() {
            Ok(())
        } else {
            Err(idle)
        }
    }
}

/// A slot whose writer panicked still holds a whole snapshot (it is
/// replaced by a move), so poisoning is ignored.
fn lock(slot: &Mutex<ShardSnapshot>) -> MutexGuard<'_, ShardSnapshot> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
