//! Streaming push of a subscription's messages (docs/PROTOCOL.md,
//! docs/SEMANTICS.md §5): StreamingPull opens a stream that the server
//! answers frame by frame, within credits the client grants with
//! PushCredit on streams of their own.

use super::limits::{check_range, MAX_FRAME_BODY_BYTES};
use super::subscription::validate_subscription_name;
use super::wire::{put_bytes16, put_u32, put_u64, Reader};
use super::ProtocolError;

/// Most messages a push stream may hold as credit at once: grants beyond
/// it are capped there.
pub const MAX_PUSH_CREDIT_MESSAGES: u32 = 100_000;
/// Most bytes (keys, values, headers) a push stream may hold as credit at
/// once: what one stream can make the server buffer for it.
pub const MAX_PUSH_CREDIT_BYTES: u32 = 8 << 20;
/// Largest QUIC stream id (a variable-length integer, RFC 9000 §16).
const MAX_STREAM_ID: u64 = (1 << 62) - 1;

/// StreamingPull: push me this subscription's messages, starting with
/// these credits. Each pushed message takes one message credit and its
/// bytes; a frame may overdraw the bytes by its last message, as a Pull
/// returns its first message whatever its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamingPullRequest<'a> {
    /// The subscription.
    pub subscription: &'a str,
    /// Message credits, `1..=MAX_PUSH_CREDIT_MESSAGES`.
    pub max_messages: u32,
    /// Byte credits, `1..=MAX_PUSH_CREDIT_BYTES`.
    pub max_bytes: u32,
}

/// PushCredit: more credits for the push stream `stream` of this
/// connection (the QUIC stream id its StreamingPull was sent on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PushCreditRequest {
    /// The push stream's QUIC stream id.
    pub stream: u64,
    /// Message credits to add, `0..=MAX_PUSH_CREDIT_MESSAGES`.
    pub messages: u32,
    /// Byte credits to add, `0..=MAX_PUSH_CREDIT_BYTES`.
    pub bytes: u32,
}

impl<'a> StreamingPullRequest<'a> {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_bytes16(out, self.subscription.as_bytes());
        put_u32(out, self.max_messages);
        put_u32(out, self.max_bytes);
    }

    pub(crate) fn read(r: &mut Reader<'a>) -> Result<Self, ProtocolError> {
        let request = StreamingPullRequest {
            subscription: r.topic("subscription name")?,
            max_messages: r.u32("max_messages")?,
            max_bytes: r.u32("max_bytes")?,
        };
        request.validate()?;
        Ok(request)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        validate_subscription_name(self.subscription)?;
        check_range(
            "max_messages",
            self.max_messages.into(),
            1,
            MAX_PUSH_CREDIT_MESSAGES.into(),
        )?;
        check_range(
            "max_bytes",
            self.max_bytes.into(),
            1,
            MAX_PUSH_CREDIT_BYTES.into(),
        )
    }
}

impl PushCreditRequest {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_u64(out, self.stream);
        put_u32(out, self.messages);
        put_u32(out, self.bytes);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        let request = PushCreditRequest {
            stream: r.u64("stream")?,
            messages: r.u32("messages")?,
            bytes: r.u32("bytes")?,
        };
        request.validate()?;
        Ok(request)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        check_range("stream", self.stream, 0, MAX_STREAM_ID)?;
        check_range(
            "messages",
            self.messages.into(),
            0,
            MAX_PUSH_CREDIT_MESSAGES.into(),
        )?;
        check_range("bytes", self.bytes.into(), 0, MAX_PUSH_CREDIT_BYTES.into())
    }
}

// The credit bound is what a frame may carry, with room to spare.
const _: () = assert!(MAX_PUSH_CREDIT_BYTES as usize <= MAX_FRAME_BODY_BYTES / 2);
