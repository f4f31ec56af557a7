//! Admin calls: create, delete, list and describe topics.

use std::time::Duration;

use tidegate_proto::protocol::{CreateTopicRequest, Request, Response};

pub use tidegate_proto::protocol::PartitionInfo;

use crate::client::{decode_response, unexpected, Client};
use crate::error::Result;

/// A topic and its partition count, as [`Client::list_topics`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicInfo {
    /// The topic name.
    pub name: String,
    /// Its partition count.
    pub partitions: u32,
}

/// A topic's partitions and their offsets, as [`Client::describe_topic`]
/// returns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicDescription {
    /// The topic name.
    pub name: String,
    /// Every partition, with its earliest, latest (high watermark) and
    /// durable offsets.
    pub partitions: Vec<PartitionInfo>,
    /// The topic's own settings (`None` in each: the server's), as
    /// created; all `None` from a server that does not send them.
    pub settings: TopicSettings,
}

/// A topic's own settings for
/// [`create_topic_with`](Client::create_topic_with); `None` takes the
/// server's (`storage.*` in docs/CONFIG.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TopicSettings {
    /// Keep messages at least this long (whole segments are deleted once
    /// their newest message is older).
    pub retention: Option<Duration>,
    /// Keep at most about this many bytes per partition.
    pub retention_bytes: Option<u64>,
    /// Roll segment files at this size (1 MiB to 4 GiB).
    pub segment_bytes: Option<u64>,
    /// Subscriptions do not deliver a message older than this (by its
    /// timestamp): it expires, as with a `tg-expires-at` header.
    pub message_ttl: Option<Duration>,
    /// Message-id deduplication (docs/SEMANTICS.md §6): a message whose
    /// id ([`ProducerRecord::with_message_id`](crate::ProducerRecord::with_message_id))
    /// the partition saw this recently is stored once; the copy is a
    /// marker every reader skips. Up to a week.
    pub dedup_window: Option<Duration>,
}

impl Client {
    /// Creates a topic with `partitions` partitions and the server's default
    /// retention and segment settings.
    ///
    /// # Errors
    ///
    /// [`Error::Server`](crate::Error::Server) with
    /// [`ErrorCode::TopicExists`](crate::ErrorCode::TopicExists) if it
    /// exists; [`Error::InvalidRequest`](crate::Error::InvalidRequest)
    /// (nothing sent) for a bad name or partition count.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(client: tidegate_client::Client) -> Result<(), tidegate_client::Error> {
    /// client.create_topic("orders", 8).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        self.create_topic_with(name, partitions, &TopicSettings::default())
            .await
    }

    /// Creates a topic with its own settings; those left `None` take the
    /// server's.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(client: tidegate_client::Client) -> Result<(), tidegate_client::Error> {
    /// use std::time::Duration;
    /// use tidegate_client::TopicSettings;
    ///
    /// let settings = TopicSettings {
    ///     retention: Some(Duration::from_secs(7 * 24 * 3600)),
    ///     message_ttl: Some(Duration::from_secs(3600)),
    ///     ..TopicSettings::default()
    /// };
    /// client.create_topic_with("jobs", 4, &settings).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Server`] with [`ErrorCode::InvalidRequest`] for a setting
    /// the server refuses (a zero, a segment size out of range), and the
    /// errors of [`create_topic`](Client::create_topic).
    pub async fn create_topic_with(
        &self,
        name: &str,
        partitions: u32,
        settings: &TopicSettings,
    ) -> Result<()> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let request = Request::CreateTopic(CreateTopicRequest {
            name,
            partitions,
            retention_ms: settings.retention.map(ms),
            retention_bytes: settings.retention_bytes,
            segment_bytes: settings.segment_bytes,
            message_ttl_ms: settings.message_ttl.map(ms),
            dedup_window_ms: settings.dedup_window.map(ms),
        });
        let frame = self.call(&request).await?;
        match decode_response(&frame)? {
            Response::CreateTopic => Ok(()),
            other => Err(unexpected("CreateTopic", &other)),
        }
    }

    /// Deletes a topic and all its data.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(client: tidegate_client::Client) -> Result<(), tidegate_client::Error> {
    /// client.delete_topic("orders").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let frame = self.call(&Request::DeleteTopic { name }).await?;
        match decode_response(&frame)? {
            Response::DeleteTopic => Ok(()),
            other => Err(unexpected("DeleteTopic", &other)),
        }
    }

    /// Every topic with its partition count.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(client: tidegate_client::Client) -> Result<(), tidegate_client::Error> {
    /// for topic in client.list_topics().await? {
    ///     println!("{} ({} partitions)", topic.name, topic.partitions);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        let frame = self.call(&Request::ListTopics).await?;
        match decode_response(&frame)? {
            Response::ListTopics(topics) => Ok(topics
                .into_iter()
                .map(|t| TopicInfo {
                    name: t.name.to_owned(),
                    partitions: t.partitions,
                })
                .collect()),
            other => Err(unexpected("ListTopics", &other)),
        }
    }

    /// A topic's partitions and their offsets.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(client: tidegate_client::Client) -> Result<(), tidegate_client::Error> {
    /// let orders = client.describe_topic("orders").await?;
    /// let backlog: u64 = orders.partitions.iter().map(|p| p.latest - p.earliest).sum();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let frame = self.call(&Request::DescribeTopic { name }).await?;
        match decode_response(&frame)? {
            Response::DescribeTopic(d) => {
                let s = d.settings.unwrap_or_default();
                let duration = |ms: Option<u64>| ms.map(Duration::from_millis);
                Ok(TopicDescription {
                    name: d.name.to_owned(),
                    partitions: d.partitions,
                    settings: TopicSettings {
                        retention: duration(s.retention_ms),
                        retention_bytes: s.retention_bytes,
                        segment_bytes: s.segment_bytes,
                        message_ttl: duration(s.message_ttl_ms),
                        dedup_window: duration(s.dedup_window_ms),
                    },
                })
            }
            other => Err(unexpected("DescribeTopic", &other)),
        }
    }
}
