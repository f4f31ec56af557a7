//! The topic catalog: durable metadata of every topic (name, id, partition
//! count, settings), known to every shard.
//!
//! [`Catalog`] is a plain value with sans-IO operations: each change checks
//! its input, returns a typed error or applies it, and bumps
//! [`Catalog::version`]. [`CatalogStore`] persists it under
//! `<data_dir>/meta/catalog` through [`tidegate_queue::durable`] (atomic
//! replace, framed and checksummed), encoded with rkyv and validated with
//! bytecheck before a byte of it is believed.
//!
//! A caller that must not expose a change before it is durable applies it
//! to a clone, saves the clone, then replaces its copy:
//!
//! ```
//! use tidegate_core::catalog::{Catalog, TopicSettings};
//! let current = Catalog::default();
//! let mut next = current.clone();
//! let topic = next.create_topic("orders", 4, TopicSettings::default(), 1_700_000_000_000).unwrap();
//! // store.save(&next).await?; then:
//! let current = next;
//! assert_eq!(current.get("orders"), Some(&topic));
//! assert_eq!(current.version(), 1);
//! ```

mod codec;
mod error;
mod store;
mod subscriptions;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use error::CatalogError;
pub use store::CatalogStore;
pub use subscriptions::{Start, SubscriptionMeta, SUBSCRIPTIONS_MAX};

/// Longest topic name (Kafka's rule: file names of `<name>-<partition>`
/// must stay under 255 bytes).
pub const TOPIC_NAME_MAX_BYTES: usize = 249;
/// Most partitions one topic may have.
pub const PARTITIONS_MAX: u32 = 4096;
/// Most topics one catalog holds: bounds the catalog file (a few MB) and the
/// work of every shard that loads it.
pub const TOPICS_MAX: usize = 10_000;
/// Smallest per-topic segment size accepted (as `storage.segment_bytes`).
pub const TOPIC_SEGMENT_BYTES_MIN: u64 = 1 << 20;

/// One topic's durable metadata.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct TopicMeta {
    /// Unique for the life of the data directory: a topic deleted and
    /// created again under the same name gets a new id, so its partition
    /// directories never mix with the old ones.
    pub id: u64,
    /// The name, valid by [`validate_topic_name`].
    pub name: String,
    /// Number of partitions, `1..=PARTITIONS_MAX`.
    pub partitions: u32,
    /// Retention by age for this topic; `None` takes the server's.
    pub retention_ms: Option<u64>,
    /// Retention by size per partition; `None` takes the server's.
    pub retention_bytes: Option<u64>,
    /// Segment size; `None` takes the server's.
    pub segment_bytes: Option<u64>,
    /// Subscriptions do not deliver a message older than this (by its
    /// timestamp); `None` for no limit.
    pub message_ttl_ms: Option<u64>,
    /// Message-id deduplication window (docs/SEMANTICS.md §6); `None`
    /// stores every copy.
    pub dedup_window_ms: Option<u64>,
    /// When the topic was created, Unix milliseconds.
    pub created_ms: i64,
}

/// Per-topic overrides of the server's storage settings, given at creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicSettings {
    /// Retention by age, milliseconds.
    pub retention_ms: Option<u64>,
    /// Retention by size per partition, bytes.
    pub retention_bytes: Option<u64>,
    /// Segment size, bytes; at least [`TOPIC_SEGMENT_BYTES_MIN`] and at most
    /// `u32::MAX`.
    pub segment_bytes: Option<u64>,
    /// Default message TTL, milliseconds, above 0.
    pub message_ttl_ms: Option<u64>,
    /// Message-id deduplication window, milliseconds, 1 to
    /// [`DEDUP_WINDOW_MAX_MS`].
    pub dedup_window_ms: Option<u64>,
}

/// Longest message-id deduplication window a topic may have: a week.
pub const DEDUP_WINDOW_MAX_MS: u64 = 7 * 24 * 3600 * 1000;

/// Every topic, by name, with the counters that make changes traceable.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Catalog {
    version: u64,
    /// The next topic or subscription id.
    next_id: u64,
    topics: BTreeMap<String, TopicMeta>,
    subscriptions: BTreeMap<String, SubscriptionMeta>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            version: 0,
            next_id: 1,
            topics: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
        }
    }
}

impl Catalog {
    /// Bumped by every change; 0 for a catalog that never changed. Shards
    /// compare versions to know whether their copy is current.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The id the next created topic gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The topic named `name`.
    pub fn get(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    /// Every topic, ordered by name.
    pub fn list(&self) -> impl Iterator<Item = &TopicMeta> {
        self.topics.values()
    }

    /// Number of topics.
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    /// True when there are no topics.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// Creates a topic; on error the catalog is unchanged.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: u32,
        settings: TopicSettings,
        now_ms: i64,
    ) -> Result<TopicMeta, CatalogError> {
        validate_topic_name(name)?;
        validate_partitions(partitions)?;
        validate_settings(&settings)?;
        if self.topics.contains_key(name) {
            return Err(CatalogError::TopicExists { name: name.into() });
        }
        if self.topics.len() >= TOPICS_MAX {
            return Err(CatalogError::TooManyTopics { max: TOPICS_MAX });
        }
        let next_id = self
            .next_id
            .checked_add(1)
            .ok_or(CatalogError::IdsExhausted)?;
        let meta = TopicMeta {
            id: self.next_id,
            name: name.to_owned(),
            partitions,
            retention_ms: settings.retention_ms,
            retention_bytes: settings.retention_bytes,
            segment_bytes: settings.segment_bytes,
            message_ttl_ms: settings.message_ttl_ms,
            dedup_window_ms: settings.dedup_window_ms,
            created_ms: now_ms,
        };
        self.next_id = next_id;
        self.version += 1;
        self.topics.insert(meta.name.clone(), meta.clone());
        Ok(meta)
    }

    /// Deletes a topic, and the subscriptions of it, and returns what it
    /// was, so the caller can remove its partition directories. On error
    /// the catalog is unchanged.
    pub fn delete_topic(&mut self, name: &str) -> Result<TopicMeta, CatalogError> {
        let meta = self
            .topics
            .remove(name)
            .ok_or_else(|| CatalogError::UnknownTopic { name: name.into() })?;
        self.subscriptions.retain(|_, s| s.topic != name);
        self.version += 1;
        Ok(meta)
    }

    /// Checks what a decoded catalog must satisfy; a catalog built through
    /// this API always does.
    fn check_invariants(&self) -> Result<(), String> {
        let mut ids = std::collections::BTreeSet::new();
        if self.next_id == 0 {
            return Err("next_id is 0".into());
        }
        if self.topics.len() > TOPICS_MAX {
            return Err(format!(
                "{} topics, more than {TOPICS_MAX}",
                self.topics.len()
            ));
        }
        for (name, meta) in &self.topics {
            if *name != meta.name {
                return Err(format!("topic stored as {name:?} is named {:?}", meta.name));
            }
            validate_topic_name(name).map_err(|e| e.to_string())?;
            validate_partitions(meta.partitions).map_err(|e| format!("topic {name:?}: {e}"))?;
            if meta.id == 0 || meta.id >= self.next_id || !ids.insert(meta.id) {
                return Err(format!(
                    "topic {name:?} has id {} (next_id {}, ids must be unique and below it)",
                    meta.id, self.next_id
                ));
            }
        }
        self.check_subscriptions()
    }
}

/// Checks a topic name by Kafka's rule: 1 to 249 bytes of ASCII letters,
/// digits, `.`, `_` and `-`, and not `.` or `..`. Such a name is safe as a
/// path component.
pub fn validate_topic_name(name: &str) -> Result<(), CatalogError> {
    let invalid = |reason: &'static str| CatalogError::InvalidName {
        name: name.chars().take(TOPIC_NAME_MAX_BYTES + 1).collect(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("is empty"));
    }
    if name.len() > TOPIC_NAME_MAX_BYTES {
        return Err(invalid("is longer than 249 bytes"));
    }
    if name == "." || name == ".." {
        return Err(invalid("cannot be `.` or `..`"));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if !name.bytes().all(allowed) {
        return Err(invalid(
            "may only contain ASCII letters, digits, `.`, `_` and `-`",
        ));
    }
    Ok(())
}

fn validate_partitions(partitions: u32) -> Result<(), CatalogError> {
    if (1..=PARTITIONS_MAX).contains(&partitions) {
        Ok(())
    } else {
        Err(CatalogError::InvalidPartitions { partitions })
    }
}

fn validate_settings(settings: &TopicSettings) -> Result<(), CatalogError> {
    let invalid = |setting: &'static str, reason: String| {
        Err(CatalogError::InvalidSetting { setting, reason })
    };
    if let Some(bytes) = settings.segment_bytes {
        if !(TOPIC_SEGMENT_BYTES_MIN..=u64::from(u32::MAX)).contains(&bytes) {
            return invalid(
                "segment_bytes",
                format!(
                    "{bytes} is outside [{TOPIC_SEGMENT_BYTES_MIN}, {}]",
                    u32::MAX
                ),
            );
        }
    }
    if settings.retention_ms == Some(0) {
        return invalid("retention_ms", "must be above 0".into());
    }
    if settings.retention_bytes == Some(0) {
        return invalid("retention_bytes", "must be above 0".into());
    }
    if settings.message_ttl_ms == Some(0) {
        return invalid("message_ttl_ms", "must be above 0".into());
    }
    if let Some(window) = settings.dedup_window_ms {
        if !(1..=DEDUP_WINDOW_MAX_MS).contains(&window) {
            return invalid(
                "dedup_window_ms",
                format!("{window} is outside [1, {DEDUP_WINDOW_MAX_MS}] (a week)"),
            );
        }
    }
    Ok(())
}

/// The directory of one topic: `<data_dir>/topics/<name>-<id>`. The id makes
/// a re-created topic's directory distinct from the deleted one's.
pub fn topic_dir(data_dir: &Path, topic: &TopicMeta) -> PathBuf {
    data_dir
        .join("topics")
        .join(format!("{}-{}", topic.name, topic.id))
}

/// The directory of one partition log:
/// `<data_dir>/topics/<name>-<id>/<partition>`.
pub fn partition_dir(data_dir: &Path, topic: &TopicMeta, partition: u32) -> PathBuf {
    topic_dir(data_dir, topic).join(partition.to_string())
}
