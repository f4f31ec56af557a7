//! Every bound of protocol v1, and the validation rules shared by the
//! decoders, [`Request::validate`](super::Request::validate) and the server.

use super::ProtocolError;
use crate::batch::MAX_BATCH_BYTES;

/// Hard ceiling on a frame's body (32 MiB), for requests and responses.
///
/// A Produce request carries one or more batches of up to
/// [`MAX_BATCH_BYTES`] (16 MiB) each, and a Fetch response at least one
/// whole stored batch, so the ceiling is two maximum batches: a maximum
/// batch always fits with room for its fields. Each side may configure a
/// lower limit (the `max_body` of [`FrameReader::new`](super::FrameReader::new)
/// and [`decode_header`](super::decode_header)); a limit below
/// [`MIN_USEFUL_BODY_BYTES`] cannot carry every valid batch.
pub const MAX_FRAME_BODY_BYTES: usize = 32 << 20;

/// The smallest body limit that still admits a request or response
/// carrying one batch of [`MAX_BATCH_BYTES`]: 16 MiB plus 1 KiB for the
/// other fields (topic name, tags, lengths, status).
pub const MIN_USEFUL_BODY_BYTES: usize = MAX_BATCH_BYTES + 1024;

/// Longest topic name in bytes (Kafka's rule: 249).
pub const MAX_TOPIC_NAME_BYTES: usize = 249;

/// Most partitions a topic may have (4096); partition numbers are
/// `0..MAX_PARTITIONS`.
pub const MAX_PARTITIONS: u32 = 4096;

/// Longest error message in a response, in bytes (1 KiB). Encoders cut a
/// longer message at a character boundary; decoders reject one.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Longest routing key of a Produce request (64 KiB − 1: its length is a
/// `u16`).
pub const MAX_ROUTING_KEY_BYTES: usize = u16::MAX as usize;

/// Most entries in a ListTopics response (65 536).
pub const MAX_LISTED_TOPICS: u32 = 65_536;

/// Most batches one Produce request may carry, hence most results in a
/// Produce response (4096).
///
/// Checked by the server when it walks the batches (the codec only frames
/// the field) and by the Produce response decoder.
pub const MAX_BATCHES_PER_PRODUCE: u32 = 4096;

/// Longest long-poll of a Fetch request (60 s). Clients keep the QUIC idle
/// timeout above it, or send keep-alives.
pub const MAX_FETCH_WAIT_MS: u32 = 60_000;

/// Largest `max_bytes` a Fetch request may ask for (the frame ceiling).
/// The server answers with less when its own limit is lower, and with at
/// least one whole batch when the first batch is larger than `max_bytes`.
pub const MAX_FETCH_BYTES: u32 = MAX_FRAME_BODY_BYTES as u32;

/// Largest bearer token an Authenticate carries (a JWT with a few claims
/// is well under 2 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 << 10;

/// Largest principal name an Authenticate response carries.
pub const MAX_PRINCIPAL_BYTES: usize = 256;

/// Checks a topic name: 1 to [`MAX_TOPIC_NAME_BYTES`] bytes of
/// `[a-zA-Z0-9._-]`, and neither `"."` nor `".."` (Kafka's rule, so names
/// are safe as directory names and bridge to Kafka unchanged).
///
/// # Errors
///
/// [`ProtocolError::InvalidTopicName`] with the rule that failed.
///
/// # Example
///
/// ```
/// use tidegate_proto::protocol::validate_topic_name;
///
/// assert!(validate_topic_name("orders.eu-west_1").is_ok());
/// assert!(validate_topic_name("").is_err());
/// assert!(validate_topic_name("..").is_err());
/// assert!(validate_topic_name("a/b").is_err());
/// ```
pub fn validate_topic_name(name: &str) -> Result<(), ProtocolError> {
    validate_topic_name_bytes(name.as_bytes())
}

/// [`validate_topic_name`] over raw bytes; a name that passes is ASCII,
/// hence valid UTF-8.
pub(crate) fn validate_topic_name_bytes(name: &[u8]) -> Result<(), ProtocolError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_TOPIC_NAME_BYTES {
        "longer than 249 bytes"
    } else if name == b"." || name == b".." {
        "\".\" and \"..\" are reserved"
    } else if !name.iter().all(|&b| is_topic_byte(b)) {
        "only a-z, A-Z, 0-9, '.', '_' and '-' are allowed"
    } else {
        return Ok(());
    };
    Err(ProtocolError::InvalidTopicName { reason })
}

fn is_topic_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Checks a partition count for CreateTopic: `1..=MAX_PARTITIONS`.
pub(crate) fn check_partition_count(partitions: u32) -> Result<(), ProtocolError> {
    check_range("partitions", partitions.into(), 1, MAX_PARTITIONS.into())
}

/// Checks a partition number: `0..MAX_PARTITIONS`.
pub(crate) fn check_partition(partition: u32) -> Result<(), ProtocolError> {
    check_range(
        "partition",
        partition.into(),
        0,
        u64::from(MAX_PARTITIONS) - 1,
    )
}

/// `min <= value <= max`, or [`ProtocolError::OutOfRange`] naming `field`.
pub(crate) fn check_range(
    field: &'static str,
    value: u64,
    min: u64,
    max: u64,
) -> Result<(), ProtocolError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ProtocolError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

/// Longest producer name an InitProducer carries.
pub const MAX_PRODUCER_NAME_BYTES: usize = 255;
