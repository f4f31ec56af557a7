//! The typed errors of the catalog.

use std::path::PathBuf;

use tidegate_queue::LogError;

/// Why a catalog operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// A topic of that name exists.
    #[error("topic {name:?} already exists")]
    TopicExists {
        /// The name.
        name: String,
    },
    /// No topic of that name.
    #[error("unknown topic {name:?}")]
    UnknownTopic {
        /// The name.
        name: String,
    },
    /// The name breaks the naming rule.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidName {
        /// The name (cut to 250 characters).
        name: String,
        /// Which part of the rule.
        reason: &'static str,
    },
    /// The partition count is outside `1..=4096`.
    #[error("invalid partition count {partitions}: must be 1 to 4096")]
    InvalidPartitions {
        /// The count asked for.
        partitions: u32,
    },
    /// A per-topic setting is out of range.
    #[error("invalid topic setting {setting}: {reason}")]
    InvalidSetting {
        /// The setting.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The catalog holds its maximum number of topics.
    #[error("the catalog holds its maximum of {max} topics")]
    TooManyTopics {
        /// The bound.
        max: usize,
    },
    /// A subscription of that name exists.
    #[error("subscription {name:?} already exists")]
    SubscriptionExists {
        /// The name.
        name: String,
    },
    /// No subscription of that name.
    #[error("unknown subscription {name:?}")]
    UnknownSubscription {
        /// The name.
        name: String,
    },
    /// The catalog holds its maximum number of subscriptions.
    #[error("the catalog holds its maximum of {max} subscriptions")]
    TooManySubscriptions {
        /// The bound.
        max: usize,
    },
    /// A subscription's filter does not parse.
    #[error("invalid filter: {reason}")]
    InvalidFilter {
        /// The parser's error, with its byte position.
        reason: String,
    },
    /// A subscription setting breaks its rule.
    #[error("invalid subscription setting {setting}: {reason}")]
    InvalidSubscription {
        /// The setting.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Topic ids ran out (after 2^64 creations: a damaged `next_id`).
    #[error("topic ids are exhausted")]
    IdsExhausted,
    /// Bytes handed to [`super::Catalog::from_bytes`] are not a catalog.
    #[error("undecodable catalog: {reason}")]
    Decode {
        /// What was wrong.
        reason: String,
    },
    /// The catalog could not be encoded.
    #[error("cannot encode the catalog: {reason}")]
    Encode {
        /// What the encoder said.
        reason: String,
    },
    /// The catalog file is damaged: bad framing, checksum, or content.
    /// The server must not start on it; nothing is guessed.
    #[error("corrupt catalog file {}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Reading or writing the catalog file failed.
    #[error("catalog storage: {0}")]
    Storage(LogError),
}
