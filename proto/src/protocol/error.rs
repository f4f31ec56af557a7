//! The one error type of the protocol codec.

use super::{AppErrorCode, ErrorCode, VERSION};

/// Why bytes are not a valid protocol v1 frame, or why a value breaks a
/// protocol limit.
///
/// Decoding never panics: every malformed input maps to one of these.
/// [`error_code`](ProtocolError::error_code) gives the code to answer
/// with; [`closes_connection`](ProtocolError::closes_connection) says
/// whether the peer is not speaking tidegate at all.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first two bytes are not [`MAGIC`](super::MAGIC) (`"TG"`): the
    /// peer is not speaking this protocol.
    #[error("not a tidegate frame: magic {found:#06x}, expected 0x4754 (\"TG\")")]
    BadMagic {
        /// The first two bytes, little-endian.
        found: u16,
    },
    /// The frame's version is not one this side speaks.
    #[error("unsupported protocol version {version}; this side speaks version {VERSION}")]
    UnsupportedVersion {
        /// The version byte received.
        version: u8,
        /// The frame's kind byte, so the answer can name the request.
        kind: u8,
    },
    /// The declared body length is above the receiver's limit; rejected
    /// before any of the body is buffered.
    #[error("frame body of {body_len} bytes is over the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's kind byte.
        kind: u8,
        /// The declared body length.
        body_len: u32,
        /// The receiver's limit.
        max: usize,
    },
    /// The kind byte names no request (or no response, when a response was
    /// expected).
    #[error("unsupported frame kind {kind:#04x}")]
    UnsupportedKind {
        /// The kind byte received.
        kind: u8,
    },
    /// The bytes end inside `field`.
    #[error("truncated {field}: needed {needed} bytes, {available} available")]
    Truncated {
        /// What was being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// Bytes follow the last field of a body.
    #[error("{count} bytes after the last field of the body")]
    TrailingBytes {
        /// How many bytes are left over.
        count: usize,
    },
    /// Bytes follow the one frame a stream may carry.
    #[error("{count} bytes after the end of the frame; a stream carries one frame")]
    BytesAfterFrame {
        /// How many bytes were offered past the frame.
        count: usize,
    },
    /// The body's length is not the header's `body_len`.
    #[error("frame header declares a body of {declared} bytes, got {actual}")]
    LengthMismatch {
        /// `body_len` from the header.
        declared: u32,
        /// The body's length.
        actual: usize,
    },
    /// A string field is not UTF-8.
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// A tag byte (an enum or an option marker) has no meaning.
    #[error("invalid {field} tag {tag}")]
    InvalidTag {
        /// The field.
        field: &'static str,
        /// The byte received.
        tag: u8,
    },
    /// A topic name breaks the naming rule.
    #[error("invalid topic name: {reason}")]
    InvalidTopicName {
        /// The rule that failed.
        reason: &'static str,
    },
    /// A number or a length is outside its bounds.
    #[error("{field} {value} is outside {min}..={max}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value received.
        value: u64,
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// A field breaks a rule other than a range.
    #[error("invalid {field}: {reason}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The rule that failed.
        reason: &'static str,
    },
}

impl ProtocolError {
    /// The error code to answer with on the request's stream.
    ///
    /// # Example
    ///
    /// ```
    /// use tidegate_proto::protocol::{ErrorCode, ProtocolError};
    ///
    /// let e = ProtocolError::InvalidTopicName { reason: "empty" };
    /// assert_eq!(e.error_code(), ErrorCode::InvalidTopicName);
    /// ```
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            Self::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::UnsupportedKind { .. } => ErrorCode::UnsupportedKind,
            Self::InvalidTopicName { .. } => ErrorCode::InvalidTopicName,
            Self::OutOfRange { .. } | Self::InvalidValue { .. } => ErrorCode::InvalidRequest,
            Self::BadMagic { .. }
            | Self::Truncated { .. }
            | Self::TrailingBytes { .. }
            | Self::BytesAfterFrame { .. }
            | Self::LengthMismatch { .. }
            | Self::InvalidUtf8 { .. }
            | Self::InvalidTag { .. } => ErrorCode::MalformedFrame,
        }
    }

    /// True when the bytes are not a tidegate frame at all (bad magic):
    /// the receiver closes the connection with
    /// [`AppErrorCode::ProtocolViolation`] instead of answering. Every
    /// other error is answered on its stream and the connection stays.
    pub fn closes_connection(&self) -> bool {
        matches!(self, Self::BadMagic { .. })
    }

    /// The QUIC application error code for this error, used to close the
    /// connection (see [`closes_connection`](Self::closes_connection)) or,
    /// after answering, to stop the peer sending the rest of a stream
    /// (`STOP_SENDING`).
    pub fn app_error_code(&self) -> AppErrorCode {
        match self {
            Self::FrameTooLarge { .. } => AppErrorCode::FrameTooLarge,
            _ => AppErrorCode::ProtocolViolation,
        }
    }
}

impl From<&ProtocolError> for ErrorCode {
    fn from(e: &ProtocolError) -> Self {
        e.error_code()
    }
}

impl From<ProtocolError> for ErrorCode {
    fn from(e: ProtocolError) -> Self {
        e.error_code()
    }
}
