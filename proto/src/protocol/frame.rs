//! The 8-byte frame header, frame kinds, and the incremental reader that
//! turns stream chunks into one frame with a hard bound on memory.

use super::wire::len_u32;
use super::{ProtocolError, MAX_FRAME_BODY_BYTES};

/// The QUIC ALPN protocol id of protocol v1.
pub const ALPN: &[u8] = b"tidegate/1";

/// The first two bytes of every frame: `0x4754`, little-endian on the wire
/// (`54 47`, ASCII `"TG"`).
pub const MAGIC: u16 = 0x4754;

/// The protocol version this crate reads and writes.
pub const VERSION: u8 = 1;

/// Size of the frame header in bytes.
pub const FRAME_HEADER_LEN: usize = 8;

/// Set in the kind byte of every response: a response's kind is its
/// request's kind with this bit set.
pub const RESPONSE_BIT: u8 = 0x80;

/// What a frame asks for (a request) or answers (a response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Create a topic.
    CreateTopic = 0x01,
    /// Delete a topic.
    DeleteTopic = 0x02,
    /// List topics.
    ListTopics = 0x03,
    /// Describe a topic's partitions.
    DescribeTopic = 0x04,
    /// Append batches to a partition.
    Produce = 0x05,
    /// Read batches from a partition.
    Fetch = 0x06,
    /// Look up an offset.
    ListOffsets = 0x07,
    /// Present credentials (a bearer token) for the connection.
    Authenticate = 0x08,
    /// Get an idempotent producer identity (id and epoch).
    InitProducer = 0x09,
    /// Join, stay in or leave a consumer group; learn the assignment.
    GroupHeartbeat = 0x0A,
    /// Commit a group's offsets.
    CommitOffsets = 0x0B,
    /// Read a group's committed offsets.
    FetchOffsets = 0x0C,
    /// A group's members and what they hold.
    DescribeGroup = 0x0D,
    /// The groups that have members.
    ListGroups = 0x0E,
    /// Create a subscription.
    CreateSubscription = 0x0F,
    /// Delete a subscription and its acknowledgement state.
    DeleteSubscription = 0x10,
    /// List subscriptions.
    ListSubscriptions = 0x11,
    /// A subscription and its partitions' windows.
    DescribeSubscription = 0x12,
    /// Leased messages of a subscription.
    Pull = 0x13,
    /// Acknowledge deliveries.
    Ack = 0x14,
    /// Extend, shorten or end (nack) leases.
    ModifyDeadline = 0x15,
    /// Open a push stream of a subscription's leased messages: answered
    /// with one frame per pushed batch, within the stream's credits,
    /// until either side ends the stream.
    StreamingPull = 0x16,
    /// Grant a push stream of the same connection more credits.
    PushCredit = 0x17,
}

impl Kind {
    /// Every kind, in wire order.
    pub const ALL: [Kind; 23] = [
        Kind::CreateTopic,
        Kind::DeleteTopic,
        Kind::ListTopics,
        Kind::DescribeTopic,
        Kind::Produce,
        Kind::Fetch,
        Kind::ListOffsets,
        Kind::Authenticate,
        Kind::InitProducer,
        Kind::GroupHeartbeat,
        Kind::CommitOffsets,
        Kind::FetchOffsets,
        Kind::DescribeGroup,
        Kind::ListGroups,
        Kind::CreateSubscription,
        Kind::DeleteSubscription,
        Kind::ListSubscriptions,
        Kind::DescribeSubscription,
        Kind::Pull,
        Kind::Ack,
        Kind::ModifyDeadline,
        Kind::StreamingPull,
        Kind::PushCredit,
    ];

    /// The kind byte of this request.
    pub const fn request_code(self) -> u8 {
        self as u8
    }

    /// The kind byte of its response.
    pub const fn response_code(self) -> u8 {
        self as u8 | RESPONSE_BIT
    }

    /// The kind for a request kind byte (response bit clear), if any.
    pub const fn from_request_code(code: u8) -> Option<Self> {
        match code {
            0x01 => Some(Self::CreateTopic),
            0x02 => Some(Self::DeleteTopic),
            0x03 => Some(Self::ListTopics),
            0x04 => Some(Self::DescribeTopic),
            0x05 => Some(Self::Produce),
            0x06 => Some(Self::Fetch),
            0x07 => Some(Self::ListOffsets),
            0x08 => Some(Self::Authenticate),
            0x09 => Some(Self::InitProducer),
            0x0A => Some(Self::GroupHeartbeat),
            0x0B => Some(Self::CommitOffsets),
            0x0C => Some(Self::FetchOffsets),
            0x0D => Some(Self::DescribeGroup),
            0x0E => Some(Self::ListGroups),
            0x0F => Some(Self::CreateSubscription),
            0x10 => Some(Self::DeleteSubscription),
            0x11 => Some(Self::ListSubscriptions),
            0x12 => Some(Self::DescribeSubscription),
            0x13 => Some(Self::Pull),
            0x14 => Some(Self::Ack),
            0x15 => Some(Self::ModifyDeadline),
            0x16 => Some(Self::StreamingPull),
            0x17 => Some(Self::PushCredit),
            _ => None,
        }
    }
}

/// A decoded frame header. `magic` is not kept: it is a constant once
/// checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// Protocol version ([`VERSION`] after a successful decode).
    pub version: u8,
    /// Kind byte: a request kind, or a request kind | [`RESPONSE_BIT`].
    pub kind: u8,
    /// Length of the body that follows, in bytes.
    pub body_len: u32,
}

impl FrameHeader {
    /// A version-[`VERSION`] header.
    pub const fn new(kind: u8, body_len: u32) -> Self {
        Self {
            version: VERSION,
            kind,
            body_len,
        }
    }

    /// The 8 header bytes.
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let [m0, m1] = MAGIC.to_le_bytes();
        let [l0, l1, l2, l3] = self.body_len.to_le_bytes();
        [m0, m1, self.version, self.kind, l0, l1, l2, l3]
    }

    /// True when the response bit of the kind is set.
    pub const fn is_response(&self) -> bool {
        self.kind & RESPONSE_BIT != 0
    }
}

/// Decodes the frame header at the start of `bytes`.
///
/// Returns `Ok(None)` while fewer than [`FRAME_HEADER_LEN`] bytes are
/// given (bytes after the header are ignored). Checks, in order: the magic
/// (as soon as two bytes are there, so a stranger fails fast), the version,
/// and the declared body length against `max_body` (capped at
/// [`MAX_FRAME_BODY_BYTES`]) — before any of the body is buffered. The kind
/// is checked by [`Request::decode`](super::Request::decode) and
/// [`Response::decode`](super::Response::decode).
///
/// # Errors
///
/// [`ProtocolError::BadMagic`], [`ProtocolError::UnsupportedVersion`],
/// [`ProtocolError::FrameTooLarge`].
///
/// # Example
///
/// ```
/// use tidegate_proto::protocol::{decode_header, ProtocolError, MAX_FRAME_BODY_BYTES};
///
/// let bytes = [0x54, 0x47, 1, 0x03, 0, 0, 0, 0];
/// let header = decode_header(&bytes, MAX_FRAME_BODY_BYTES)?.expect("8 bytes");
/// assert_eq!((header.kind, header.body_len), (0x03, 0));
/// assert_eq!(decode_header(&bytes[..5], MAX_FRAME_BODY_BYTES)?, None);
/// assert!(decode_header(b"GET / HTTP/1.1", MAX_FRAME_BODY_BYTES).is_err());
/// # Ok::<(), ProtocolError>(())
/// ```
pub fn decode_header(bytes: &[u8], max_body: usize) -> Result<Option<FrameHeader>, ProtocolError> {
    if let Some(&[m0, m1]) = bytes.get(..2) {
        let found = u16::from_le_bytes([m0, m1]);
        if found != MAGIC {
            return Err(ProtocolError::BadMagic { found });
        }
    }
    let Some(&[_, _, version, kind, l0, l1, l2, l3]) = bytes.get(..FRAME_HEADER_LEN) else {
        return Ok(None);
    };
    if version != VERSION {
        return Err(ProtocolError::UnsupportedVersion { version, kind });
    }
    let body_len = u32::from_le_bytes([l0, l1, l2, l3]);
    let max = max_body.min(MAX_FRAME_BODY_BYTES);
    if usize::try_from(body_len).map_or(true, |len| len > max) {
        return Err(ProtocolError::FrameTooLarge {
            kind,
            body_len,
            max,
        });
    }
    Ok(Some(FrameHeader {
        version,
        kind,
        body_len,
    }))
}

/// Appends a header with a placeholder length; returns where the frame
/// starts, for [`end_frame`].
pub(crate) fn begin_frame(out: &mut Vec<u8>, kind: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&FrameHeader::new(kind, 0).encode());
    start
}

/// Writes the body length of the frame begun at `start`.
///
/// # Panics
///
/// If the body is 4 GiB or more (a caller bug: the limit is 32 MiB).
pub(crate) fn end_frame(out: &mut [u8], start: usize) {
    let body_len = out.len().saturating_sub(start + FRAME_HEADER_LEN);
    set_body_len(out, start, body_len);
}

/// Writes `body_len` into the header at `start`.
pub(crate) fn set_body_len(out: &mut [u8], start: usize, body_len: usize) {
    let len = len_u32(body_len).to_le_bytes();
    if let Some(dst) = out.get_mut(start + 4..start + FRAME_HEADER_LEN) {
        dst.copy_from_slice(&len);
    }
}
