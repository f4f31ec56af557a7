//! Admin calls: create, delete, list and describe topics.

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
        let request = Request::CreateTopic(CreateTopicRequest {
            name,
            partitions,
            retention_ms: None,
            retention_bytes: None,
            segment_bytes: None,
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
            Response::DescribeTopic(d) => Ok(TopicDescription {
                name: d.name.to_owned(),
                partitions: d.partitions,
            }),
            other => Err(unexpected("DescribeTopic", &other)),
        }
    }
}
