//! Protocol v1: the request/response codec shared by the server and the
//! SDK, as pure functions over bytes (sans-IO: no sockets, no runtime).
//!
//! The transport is QUIC with ALPN [`ALPN`] (`tidegate/1`). Each request
//! travels on its own client-initiated bidirectional stream: the client
//! writes one request frame and finishes the stream; the server writes one
//! response frame and finishes. Many streams in flight on one connection
//! give pipelining without head-of-line blocking. The byte layout, the
//! error codes and the limits are specified in `docs/PROTOCOL.md`.
//!
//! - A frame is an 8-byte [`FrameHeader`] (magic `"TG"`, version, kind,
//!   body length) and a body. [`FrameReader`] accumulates a stream's
//!   chunks into its frame, rejecting an oversized declared length before
//!   buffering any of it; [`decode_header`] is the same check on a slice.
//! - [`Request`] and [`Response`] encode with `encode(&self, out)` and
//!   decode with `decode(header, body)`, borrowing strings, keys and batch
//!   bytes from the body.
//! - Batches inside Produce and Fetch are the [`batch`](crate::batch)
//!   format, untouched; [`FetchResponse::encode_prefix`] lets the server
//!   send stored batches after a small prefix without copying them.
//! - Failures are typed: [`ProtocolError`] for bytes that break the
//!   protocol, mapped to the [`ErrorCode`] a response carries, and
//!   [`AppErrorCode`] for QUIC connection and stream errors.
//!
//! # Example
//!
//! A producer encodes a Produce; the server reads it from the stream and
//! decodes it back.
//!
//! ```
//! use tidegate_proto::batch::{BatchBuilder, Record};
//! use tidegate_proto::protocol::{
//!     AckLevel, FrameReader, ProduceRequest, ProduceTarget, Request, MAX_FRAME_BODY_BYTES,
//! };
//!
//! let mut builder = BatchBuilder::new();
//! builder.push(Record { timestamp_ms: 1_700_000_000_000, key: Some(b"k"), value: Some(b"hi"), headers: &[] })?;
//! let batch = builder.finish()?;
//!
//! let request = Request::Produce(ProduceRequest {
//!     topic: "orders",
//!     target: ProduceTarget::Key(b"customer-7"),
//!     ack: AckLevel::Durable,
//!     batches: &batch,
//! });
//! request.validate()?;
//! let mut wire = Vec::new();
//! request.encode(&mut wire);
//!
//! // Server side: the stream's chunks, then its end.
//! let mut reader = FrameReader::new(MAX_FRAME_BODY_BYTES);
//! for chunk in wire.chunks(1200) {
//!     reader.push(chunk)?;
//! }
//! let (header, body) = reader.finish()?;
//! let decoded = Request::decode(header, body)?;
//! assert_eq!(decoded, request);
//! if let Request::Produce(produce) = decoded {
//!     for batch in produce.batches() {
//!         assert_eq!(batch?.records().count(), 1); // the server validates each batch
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod error_code;
mod frame;
mod group;
mod limits;
mod push;
mod reader;
mod request;
mod response;
mod subscription;
mod wire;

#[cfg(test)]
mod tests;

pub use error::ProtocolError;
pub use error_code::{AppErrorCode, ErrorCode};
pub use frame::{
    decode_header, FrameHeader, Kind, ALPN, FRAME_HEADER_LEN, MAGIC, RESPONSE_BIT, VERSION,
};
pub use group::{
    validate_group_name, CommitOffsetsRequest, CommittedOffset, FetchOffsetsRequest,
    GroupDescription, GroupHeartbeatRequest, GroupHeartbeatResponse, GroupSummary, MemberInfo,
    OffsetCommit, MAX_COMMIT_METADATA_BYTES, MAX_DESCRIBED_MEMBERS, MAX_GROUP_NAME_BYTES,
    MAX_LISTED_GROUPS, MAX_MEMBER_ID_BYTES, MAX_SESSION_TIMEOUT_MS, MIN_SESSION_TIMEOUT_MS,
};
pub use limits::{
    validate_topic_name, MAX_BATCHES_PER_PRODUCE, MAX_FETCH_BYTES, MAX_FETCH_WAIT_MS,
    MAX_FRAME_BODY_BYTES, MAX_LISTED_TOPICS, MAX_MESSAGE_BYTES, MAX_PARTITIONS,
    MAX_PRINCIPAL_BYTES, MAX_PRODUCER_NAME_BYTES, MAX_ROUTING_KEY_BYTES, MAX_TOKEN_BYTES,
    MAX_TOPIC_NAME_BYTES, MIN_USEFUL_BODY_BYTES,
};
pub use push::{
    PushCreditRequest, StreamingPullRequest, MAX_PUSH_CREDIT_BYTES, MAX_PUSH_CREDIT_MESSAGES,
};
pub use reader::FrameReader;
pub use request::{
    AckLevel, CreateTopicRequest, FetchRequest, ListOffsetsRequest, OffsetSpec, ProduceRequest,
    ProduceTarget, Request,
};
pub use response::{
    ErrorResponse, FetchResponse, PartitionInfo, ProduceResponse, Response, TopicDescription,
    TopicOverrides, TopicSummary,
};
pub use subscription::{
    pulled_message_len, validate_subscription_name, AckRequest, PullRequest, PulledMessage,
    StartPosition, SubscriptionConfig, SubscriptionDescription, SubscriptionPartition,
    ACK_ID_BYTES, MAX_ACK_DEADLINE_MS, MAX_ACK_IDS, MAX_DELIVERIES_LIMIT, MAX_DELIVERY_DELAY_MS,
    MAX_LISTED_SUBSCRIPTIONS, MAX_PULL_MESSAGES, MAX_PULL_WAIT_MS, MIN_ACK_DEADLINE_MS,
};

/// Checks what `Request::decode` and `Response::decode` need of a header
/// given by the caller: this version, and a body of the declared length.
fn check_frame(header: FrameHeader, body: &[u8]) -> Result<(), ProtocolError> {
    if header.version != VERSION {
        return Err(ProtocolError::UnsupportedVersion {
            version: header.version,
            kind: header.kind,
        });
    }
    if usize::try_from(header.body_len) != Ok(body.len()) {
        return Err(ProtocolError::LengthMismatch {
            declared: header.body_len,
            actual: body.len(),
        });
    }
    Ok(())
}
