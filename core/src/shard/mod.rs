//! One shard: the partitions it owns, its view of the topic catalog, and
//! the operations on them. A shard's state is touched only by its own
//! executor; other shards reach it through the mesh (`mesh.rs`).
//!
//! Shard 0 owns the catalog: admin operations run there, and every change
//! is pushed to every shard, which opens or closes the partitions it owns,
//! before the admin request is answered.

pub(crate) mod ops;
mod partitions;

use std::{cell::RefCell, num::NonZeroUsize, path::PathBuf, rc::Rc};

use tidegate_proto::protocol::ErrorCode;
use tidegate_queue::{Log, LogConfig, LogError, WriteGate};

use crate::catalog::{Catalog, CatalogError, CatalogStore, TopicMeta};

pub(crate) use ops::{Op, OpResult};
pub(crate) use partitions::Partitions;

/// A typed failure of one request, as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<&LogError> for Failure {
    fn from(e: &LogError) -> Self {
        let code = match e {
            LogError::NoSpace(_) => ErrorCode::NoSpace,
            // Out of descriptors passes: the log keeps serving (docs/STORAGE.md).
            LogError::Io(f) if f.is_out_of_files() => ErrorCode::Busy,
            LogError::Failed(_) | LogError::Io(_) | LogError::Corrupt { .. } => {
                ErrorCode::StorageFailed
            }
            LogError::InvalidBatch(_) => ErrorCode::CorruptBatch,
            LogError::BatchTooLarge { .. } => ErrorCode::BatchTooLarge,
            LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            LogError::Closed => ErrorCode::ShuttingDown,
            LogError::ProducerFenced { .. } => ErrorCode::ProducerFenced,
            LogError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequence,
            _ => ErrorCode::Internal,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<LogError> for Failure {
    fn from(e: LogError) -> Self {
        Failure::from(&e)
    }
}

impl From<CatalogError> for Failure {
    fn from(e: CatalogError) -> Self {
        let code = match &e {
            CatalogError::TopicExists { .. } => ErrorCode::TopicExists,
            CatalogError::UnknownTopic { .. } => ErrorCode::UnknownTopic,
            CatalogError::InvalidName { .. } => ErrorCode::InvalidTopicName,
            CatalogError::SubscriptionExists { .. } => ErrorCode::SubscriptionExists,
            CatalogError::UnknownSubscription { .. } => ErrorCode::UnknownSubscription,
            CatalogError::InvalidFilter { .. } => ErrorCode::InvalidFilter,
            CatalogError::InvalidPartitions { .. }
            | CatalogError::InvalidSetting { .. }
            | CatalogError::InvalidSubscription { .. }
            | CatalogError::TooManySubscriptions { .. }
            | CatalogError::TooManyTopics { .. } => ErrorCode::InvalidRequest,
            _ => ErrorCode::StorageFailed,
        };
        Failure::new(code, e.to_string())
    }
}

/// One shard's state.
pub(crate) struct Shard {
    pub(crate) id: usize,
    pub(crate) shards: NonZeroUsize,
    pub(crate) data_dir: PathBuf,
    pub(crate) log_config: LogConfig,
    /// Where every log of the shard queues its writes for the disk.
    pub(crate) write_gate: Rc<WriteGate>,
    /// The bounds of subscription windows (`[subscriptions]`).
    pub(crate) window_defaults: crate::subscription::WindowConfig,
    /// This shard's copy of the catalog (shard 0's is the source).
    pub(crate) catalog: RefCell<Rc<Catalog>>,
    /// Where shard 0 stores the catalog.
    pub(crate) store: CatalogStore,
    /// Serialises catalog changes on shard 0 (the admin path, never the
    /// data path).
    pub(crate) admin: futures::lock::Mutex<()>,
    /// Producer identities (used on shard 0 only).
    pub(crate) producers: crate::producers::Producers,
    /// The consumer groups this shard coordinates.
    pub(crate) groups: crate::groups::Groups,
    pub(crate) partitions: Partitions,
    /// The subscription windows of the partitions this shard owns.
    pub(crate) subscriptions: crate::subscription::served::Served,
    /// Set when the shard stops taking requests: long polls end at once.
    pub(crate) stopping: std::cell::Cell<bool>,
    pub(crate) stopping_event: event_listener::Event,
}

impl Shard {
    pub(crate) fn new(
        id: usize,
        shards: NonZeroUsize,
        data_dir: PathBuf,
        log_config: LogConfig,
        write_gate: Rc<WriteGate>,
        window_defaults: crate::subscription::WindowConfig,
        catalog: Rc<Catalog>,
    ) -> Shard {
        Shard {
            id,
            shards,
            store: CatalogStore::new(&data_dir),
            producers: crate::producers::Producers::new(&data_dir),
            groups: crate::groups::Groups::new(id, crate::router::now_ms()),
            data_dir,
            log_config,
            write_gate,
            window_defaults,
            catalog: RefCell::new(catalog),
            admin: futures::lock::Mutex::new(()),
            partitions: Partitions::default(),
            subscriptions: Default::default(),
            stopping: std::cell::Cell::new(false),
            stopping_event: event_listener::Event::new(),
        }
    }

    /// The shard that owns `partition` of `topic`.
    pub(crate) fn owner(&self, topic: &str, partition: u32) -> usize {
        tidegate_affinity::placement::shard_for(topic, partition, self.shards)
    }

    /// The shard that coordinates consumer group `group`.
    pub(crate) fn coordinator(&self, group: &str) -> usize {
        tidegate_affinity::placement::shard_for(group, 0, self.shards)
    }

    /// The topic, if this shard's catalog has it.
    pub(crate) fn topic(&self, name: &str) -> Result<TopicMeta, Failure> {
        self.catalog
            .borrow()
            .get(name)
            .cloned()
            .ok_or_else(|| Failure::new(ErrorCode::UnknownTopic, format!("no topic {name:?}")))
    }

    /// The log of a partition this shard owns.
    pub(crate) fn log(&self, topic: &TopicMeta, partition: u32) -> Result<Rc<Log>, Failure> {
        if partition >= topic.partitions {
            return Err(Failure::new(
                ErrorCode::UnknownPartition,
                format!(
                    "topic {:?} has {} partitions, no partition {partition}",
                    topic.name, topic.partitions
                ),
            ));
        }
        self.partitions.get(topic.id, partition).ok_or_else(|| {
            Failure::new(
                ErrorCode::Internal,
                format!(
                    "partition {}/{partition} is not open on shard {}",
                    topic.name, self.id
                ),
            )
        })
    }

    /// Ends every long poll now (shutdown: they answer with what they have).
    pub(crate) fn stop_waits(&self) {
        self.stopping.set(true);
        self.stopping_event.notify(usize::MAX);
    }

    /// Resolves once `stop_waits` was called.
    pub(crate) async fn stopped(&self) {
        loop {
            let listener = self.stopping_event.listen();
            if self.stopping.get() {
                return;
            }
            listener.await;
        }
    }

    /// Brings the partitions this shard owns in line with `catalog`: opens
    /// new topics' partitions, closes deleted ones (removing their data).
    pub(crate) async fn apply_catalog(&self, catalog: Rc<Catalog>) -> Result<(), Failure> {
        let wanted: Vec<(TopicMeta, u32)> = catalog
            .list()
            .flat_map(|t| (0..t.partitions).map(move |p| (t.clone(), p)))
            .filter(|(t, p)| self.owner(&t.name, *p) == self.id)
            .collect();
        *self.catalog.borrow_mut() = catalog.clone();
        self.subscriptions.forget_deleted(&catalog).await;
        self.partitions
            .reconcile(&self.data_dir, &self.log_config, &self.write_gate, &wanted)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(errno: i32) -> LogError {
        LogError::Io(tidegate_queue::IoFailure {
            op: "open",
            path: "x".into(),
            errno: Some(errno),
            message: String::new(),
        })
    }

    /// A log out of descriptors keeps serving, so its refusal is one to
    /// retry; any other I/O error needs an operator.
    #[test]
    fn out_of_descriptors_is_busy_and_other_io_errors_are_storage_failures() {
        assert_eq!(Failure::from(io(libc::EMFILE)).code, ErrorCode::Busy);
        assert_eq!(Failure::from(io(libc::ENFILE)).code, ErrorCode::Busy);
        assert_eq!(Failure::from(io(libc::EIO)).code, ErrorCode::StorageFailed);
        assert!(ErrorCode::Busy.is_retriable());
    }
}
