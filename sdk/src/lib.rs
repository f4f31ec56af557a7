//! The Rust QUIC client for tidegate (tokio + quinn).
//!
//! A [`Client`] is one QUIC connection to a server (TLS 1.3, ALPN
//! `tidegate/1`); every call runs on its own stream, so calls from many
//! tasks proceed in parallel. When the connection is lost (say the server
//! restarts), the next call reconnects, one bounded attempt shared by all
//! waiting calls; calls that were in flight fail with a retriable
//! [`Error::Transport`], which the producer and consumer retry, so a
//! produce across a reconnect is delivered *at least once*. See
//! [Reconnection](Client#reconnection). This release has:
//!
//! - [`Consumer`]: reads a topic (all or some partitions) from
//!   [`Start::Earliest`], [`Start::Latest`], an offset or a timestamp,
//!   with prefetch; [`ConsumedMessage`]s hold slices of the response, not
//!   copies;
//! - [`Producer`]: [`send`](Producer::send) one [`ProducerRecord`] at a
//!   time and get a [`Receipt`]; batching by size and linger, key and
//!   sticky partitioning, bounded retries with backoff, bounded memory,
//!   [`flush`](Producer::flush) and [`close`](Producer::close);
//! - admin: [`create_topic`](Client::create_topic),
//!   [`delete_topic`](Client::delete_topic),
//!   [`list_topics`](Client::list_topics),
//!   [`describe_topic`](Client::describe_topic);
//! - [`Subscriber`]: receives a subscription's messages queue style
//!   (leases, [`ack`](LeasedMessage::ack) / [`nack`](LeasedMessage::nack)
//!   / [`extend`](LeasedMessage::extend), leases extended while a
//!   message is held); the calls under it:
//!   [`create_subscription`](Client::create_subscription),
//!   [`delete_subscription`](Client::delete_subscription),
//!   [`list_subscriptions`](Client::list_subscriptions),
//!   [`describe_subscription`](Client::describe_subscription),
//!   [`pull`](Client::pull), [`ack`](Client::ack),
//!   [`modify_deadline`](Client::modify_deadline) and
//!   [`nack`](Client::nack); [`redrive`](Client::redrive) moves a
//!   subscription's dead letters back to its topic;
//! - produce one ready-made batch: [`produce_batch`](Client::produce_batch);
//! - read: [`fetch`](Client::fetch), whose [`Fetched::messages`] reads
//!   messages in place without copying them, and
//!   [`list_offsets`](Client::list_offsets).
//!
//! - security: a client certificate for servers that require mutual TLS
//!   ([`Tls::client_cert`]) and a bearer token, static or renewed by a
//!   callback ([`Credentials`], [`Client::connect_with`]), presented on
//!   every new connection before anything else (see
//!   [Authentication](Client#authentication)).
//!
//! Failures are one [`Error`] enum with
//! [`is_retriable`](Error::is_retriable); a refused token is
//! [`Error::NotAuthenticated`], a refused operation
//! [`Error::NotAuthorized`] (with the operation and the resource).
//! Batches are built with
//! [`tidegate_proto::batch::BatchBuilder`].
//!
//! Runnable examples are in `sdk/examples/`: `produce`, `consume`,
//! `group`, `subscriber`, `admin` and `authenticated` (`cargo run -p tidegate-client --example produce -- orders 100`
//! against a `tidegate serve`; each file says how to run it).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use tidegate_client::{Ack, Client, Target, Tls};
//! use tidegate_proto::batch::{BatchBuilder, Record};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect(
//!     "127.0.0.1:7441".parse()?,
//!     Tls::ca_file("/var/lib/tidegate/tls/dev-cert.pem"),
//! )
//! .await?;
//! client.create_topic("orders", 4).await?;
//!
//! let mut batch = BatchBuilder::new();
//! batch.push(Record { timestamp_ms: 1_700_000_000_000, key: None, value: Some(b"hello"), headers: &[] })?;
//! client.produce_batch("orders", Target::Partition(0), Ack::Durable, batch.finish()?).await?;
//!
//! let fetched = client.fetch("orders", 0, 0, 1 << 20, Duration::ZERO).await?;
//! for message in fetched.messages() {
//!     let message = message?;
//!     println!("{} {:?}", message.offset(), message.value());
//! }
//! client.close().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod admin;
mod auth;
mod client;
mod consumer;
mod data;
mod error;
mod group;
mod producer;
mod push;
mod redrive;
mod subscriber;
mod subscription;
mod tls;

pub use admin::{PartitionInfo, TopicDescription, TopicInfo, TopicSettings};
pub use auth::Credentials;
pub use client::{Client, CONNECT_TIMEOUT, MAX_RESPONSE_BYTES, SOCKET_BUFFER_BYTES};
pub use consumer::{ConsumedMessage, Consumer, ConsumerConfig, Start, PREFETCH_MAX};
pub use data::{
    Ack, Fetched, Message, Messages, PendingProduce, Produced, ProducerIdentity, Target,
};
pub use error::{BoxError, Error, Result};
pub use group::{GroupConfig, GroupConsumer, GroupInfo, GroupListing, Membership};
pub use producer::{
    Delivered, Producer, ProducerConfig, ProducerRecord, Receipt, MAX_IN_FLIGHT_PER_PARTITION,
};
pub use push::{PushCredit, PushStream};
pub use redrive::{Redriven, HEADER_DLQ_PREFIX, HEADER_REDRIVE_FOR, REDRIVE_GROUP_PREFIX};
pub use subscriber::{LeasedMessage, Subscriber, SubscriberConfig};
pub use subscription::{
    AckId, ReceivedMessage, Subscription, SubscriptionDescription, PULL_MAX_BYTES,
};
pub use tidegate_proto::batch::Headers;
pub use tidegate_proto::protocol::{
    ErrorCode, OffsetSpec, StartPosition, SubscriptionConfig, SubscriptionPartition,
    MAX_PUSH_CREDIT_BYTES, MAX_PUSH_CREDIT_MESSAGES,
};
pub use tls::{Tls, DEFAULT_SERVER_NAME};

/// The certificate and key types of [`Tls::client_cert_der`], re-exported
/// from rustls so that they match the version this crate uses.
pub use rustls::pki_types;

/// Compiles the examples of `README.md` as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
