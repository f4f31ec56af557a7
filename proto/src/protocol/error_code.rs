//! The status code every response carries, and the QUIC application error
//! codes used to close a connection or stop a stream.

use std::fmt;

/// Defines [`ErrorCode`] from one table, so the wire value, the name and
/// the retry rule of a code cannot drift apart.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $name:literal, $retriable:literal;)*) => {
        /// The status of a response (a `u16` on the wire), or of one batch in
        /// a Produce response.
        ///
        /// Codes are grouped by tens: framing and request shape (1-9),
        /// topics (10-19), data (20-29), server state (30-39), security
        /// (40-49). A code this side does not know decodes as
        /// [`ErrorCode::Unknown`], so a newer server's codes never fail a
        /// response; treat them as not retriable.
        ///
        /// # Example
        ///
        /// ```
        /// use tidegate_proto::protocol::ErrorCode;
        ///
        /// assert_eq!(ErrorCode::from_u16(30), ErrorCode::Busy);
        /// assert!(ErrorCode::Busy.is_retriable());
        /// assert_eq!(ErrorCode::from_u16(999), ErrorCode::Unknown(999));
        /// assert_eq!(ErrorCode::UnknownTopic.to_string(), "unknown_topic");
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code this version does not know, kept as received.
            Unknown(u16),
        }

        impl ErrorCode {
            /// Every known code, in wire order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code's value on the wire.
            pub const fn as_u16(self) -> u16 {
                match self {
                    $(Self::$variant => $code,)*
                    Self::Unknown(code) => code,
                }
            }

            /// The code for a wire value; unknown values give
            /// [`ErrorCode::Unknown`] (never a panic).
            pub const fn from_u16(code: u16) -> Self {
                match code {
                    $($code => Self::$variant,)*
                    other => Self::Unknown(other),
                }
            }

            /// The code's name in snake case, as in logs and `docs/PROTOCOL.md`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                    Self::Unknown(_) => "unknown",
                }
            }

            /// True when the same request may succeed if sent again later
            /// (after a backoff, or on a new connection for
            /// [`ShuttingDown`](Self::ShuttingDown)).
            pub const fn is_retriable(self) -> bool {
                match self {
                    $(Self::$variant => $retriable,)*
                    Self::Unknown(_) => false,
                }
            }
        }
    };
}

error_codes! {
    /// Success.
    Ok = 0, "ok", false;
    /// The frame could not be parsed (truncated, trailing bytes, bad tag,
    /// bad UTF-8).
    MalformedFrame = 1, "malformed_frame", false;
    /// The frame's version is not spoken by the server; the response frame's
    /// version byte is the server's.
    UnsupportedVersion = 2, "unsupported_version", false;
    /// The frame's kind names no request.
    UnsupportedKind = 3, "unsupported_kind", false;
    /// The frame's declared body is above the receiver's limit.
    FrameTooLarge = 4, "frame_too_large", false;
    /// A field is out of its bounds or breaks a rule (partition count,
    /// fetch wait, no batches ...).
    InvalidRequest = 5, "invalid_request", false;
    /// No topic has this name.
    UnknownTopic = 10, "unknown_topic", false;
    /// The topic has no such partition.
    UnknownPartition = 11, "unknown_partition", false;
    /// CreateTopic: a topic with this name exists.
    TopicExists = 12, "topic_exists", false;
    /// The topic name breaks the naming rule.
    InvalidTopicName = 13, "invalid_topic_name", false;
    /// A batch is larger than the server accepts.
    BatchTooLarge = 20, "batch_too_large", false;
    /// A batch fails its CRC or its format checks.
    CorruptBatch = 21, "corrupt_batch", false;
    /// Fetch: the offset is before the earliest or after the latest offset.
    OffsetOutOfRange = 22, "offset_out_of_range", false;
    /// Produce: an idempotent producer's batch does not follow its
    /// previous one in this partition (a gap that did not fill in time, or
    /// an old sequence no longer remembered); the message names the
    /// expected sequence. Nothing was written.
    OutOfOrderSequence = 23, "out_of_order_sequence", false;
    /// Produce: the batch's producer epoch is older than one this
    /// partition has seen: another instance of the named producer took
    /// over. Nothing was written.
    ProducerFenced = 24, "producer_fenced", false;
    /// The server is over one of its bounds (memory, queue depth); retry
    /// after a backoff.
    Busy = 30, "busy", true;
    /// The server could not finish in its time bound (e.g. a durable ack);
    /// the outcome of a Produce is unknown.
    Timeout = 31, "timeout", true;
    /// The server is draining; retry on a new connection.
    ShuttingDown = 32, "shutting_down", true;
    /// The disk is full; retry once space returns.
    NoSpace = 33, "no_space", true;
    /// The partition's storage failed (I/O error); needs an operator.
    StorageFailed = 34, "storage_failed", false;
    /// A bug in the server.
    Internal = 35, "internal", false;
    /// The connection has no valid authentication: it never
    /// authenticated, its token was refused (the message says why: unknown,
    /// expired, not yet valid, bad signature, wrong audience), or its
    /// authentication lapsed. Authenticate (again) on the same connection.
    NotAuthenticated = 40, "not_authenticated", false;
    /// The principal may not do this. The message is
    /// `<operation> on <resource>` (`produce on topic orders.eu`), then
    /// optionally `: ` and more; the connection stays usable.
    NotAuthorized = 41, "not_authorized", false;
    /// GroupHeartbeat, CommitOffsets: the group has no member with this id
    /// (its session timed out, it left, or the server restarted); join
    /// again with an empty member id.
    UnknownMember = 50, "unknown_member", false;
    /// CommitOffsets: the member does not hold this partition (it was
    /// given to another member); the commit is refused so that a member
    /// that lost a partition cannot move the group's position.
    NotAssigned = 51, "not_assigned", false;
    /// Ack, ModifyDeadline: the delivery's lease is over (its deadline
    /// passed, it was nacked, the server restarted) or the message was
    /// delivered again since; it will be delivered again.
    LeaseExpired = 52, "lease_expired", false;
    /// No subscription has this name.
    UnknownSubscription = 53, "unknown_subscription", false;
    /// CreateSubscription: a subscription with this name exists.
    SubscriptionExists = 54, "subscription_exists", false;
    /// CreateSubscription: the filter does not parse; the message gives
    /// the byte position of the error.
    InvalidFilter = 55, "invalid_filter", false;
}

impl ErrorCode {
    /// True for [`ErrorCode::Ok`].
    pub const fn is_ok(self) -> bool {
        self.as_u16() == 0
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(code) => write!(f, "unknown error code {code}"),
            known => f.write_str(known.name()),
        }
    }
}

/// QUIC application error codes of `tidegate/1`, carried by
/// `CONNECTION_CLOSE`, `RESET_STREAM` and `STOP_SENDING`.
///
/// Errors inside a well-framed request are answered with an [`ErrorCode`]
/// on the request's stream; these codes are for what cannot be answered
/// that way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AppErrorCode {
    /// Graceful close: the client is done, or the server drained.
    NoError,
    /// Bytes that are not a tidegate frame (bad magic), bytes after the one
    /// frame of a stream, or a stream of a type the protocol does not use.
    ProtocolViolation,
    /// `STOP_SENDING` after answering a frame whose declared body is over
    /// the limit, so the peer stops sending it.
    FrameTooLarge,
    /// The sender hit a bug and gives up on the connection.
    Internal,
    /// The server is shutting down and closes the connection before the
    /// peer is done.
    ShuttingDown,
    /// The sender abandons a request or a response (a client timeout, a
    /// dropped request): `RESET_STREAM` / `STOP_SENDING`.
    Cancelled,
}

impl AppErrorCode {
    /// Every code, in wire order.
    pub const ALL: [AppErrorCode; 6] = [
        Self::NoError,
        Self::ProtocolViolation,
        Self::FrameTooLarge,
        Self::Internal,
        Self::ShuttingDown,
        Self::Cancelled,
    ];

    /// The QUIC variable-length integer value.
    pub const fn as_u64(self) -> u64 {
        match self {
            Self::NoError => 0x0,
            Self::ProtocolViolation => 0x1,
            Self::FrameTooLarge => 0x2,
            Self::Internal => 0x3,
            Self::ShuttingDown => 0x4,
            Self::Cancelled => 0x5,
        }
    }

    /// The code for a received value, or `None` for a value this version
    /// does not know.
    pub const fn from_u64(code: u64) -> Option<Self> {
        match code {
            0x0 => Some(Self::NoError),
            0x1 => Some(Self::ProtocolViolation),
            0x2 => Some(Self::FrameTooLarge),
            0x3 => Some(Self::Internal),
            0x4 => Some(Self::ShuttingDown),
            0x5 => Some(Self::Cancelled),
            _ => None,
        }
    }

    /// The code's name in snake case.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NoError => "no_error",
            Self::ProtocolViolation => "protocol_violation",
            Self::FrameTooLarge => "frame_too_large",
            Self::Internal => "internal",
            Self::ShuttingDown => "shutting_down",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for AppErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
