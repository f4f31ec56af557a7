//! What one shard publishes: plain values, copied out of its counters and
//! its logs once a second. Nothing here is shared while it is written.

use std::time::Instant;

use tidegate_proto::protocol::{ErrorCode, Kind};

use super::histogram::HistogramSnapshot;

/// Upper bounds of the fdatasync latency buckets, in microseconds: the
/// log's (it counts them), powers of two from 50 µs to 1.6384 s.
pub const FDATASYNC_LATENCY_BUCKETS_US: [u64; 16] =
    tidegate_queue::LogStats::SYNC_LATENCY_BOUNDS_US;
/// A partition's fdatasync latency histogram.
pub type FdatasyncHistogram = HistogramSnapshot<{ tidegate_queue::LogStats::SYNC_LATENCY_SLOTS }>;

/// Request kinds counted: every protocol kind, then one slot for a kind
/// byte no request has (garbage, a newer client).
pub const KINDS: usize = Kind::ALL.len() + 1;
/// Error codes counted: every known code, then one slot for the others.
pub const CODES: usize = ErrorCode::ALL.len() + 1;

/// The counter slot of a request's kind byte.
pub fn kind_index(kind_byte: u8) -> usize {
    Kind::ALL
        .iter()
        .position(|k| k.request_code() == kind_byte)
        .unwrap_or(KINDS - 1)
}

/// The `kind` label of a slot from [`kind_index`].
pub fn kind_label(index: usize) -> &'static str {
    match Kind::ALL.get(index) {
        Some(Kind::CreateTopic) => "create_topic",
        Some(Kind::DeleteTopic) => "delete_topic",
        Some(Kind::ListTopics) => "list_topics",
        Some(Kind::DescribeTopic) => "describe_topic",
        Some(Kind::Produce) => "produce",
        Some(Kind::Fetch) => "fetch",
        Some(Kind::ListOffsets) => "list_offsets",
        Some(Kind::Authenticate) => "authenticate",
        Some(Kind::InitProducer) => "init_producer",
        Some(Kind::GroupHeartbeat) => "group_heartbeat",
        Some(Kind::CommitOffsets) => "commit_offsets",
        Some(Kind::FetchOffsets) => "fetch_offsets",
        Some(Kind::DescribeGroup) => "describe_group",
        Some(Kind::ListGroups) => "list_groups",
        Some(Kind::CreateSubscription) => "create_subscription",
        Some(Kind::DeleteSubscription) => "delete_subscription",
        Some(Kind::ListSubscriptions) => "list_subscriptions",
        Some(Kind::DescribeSubscription) => "describe_subscription",
        Some(Kind::Pull) => "pull",
        Some(Kind::Ack) => "ack",
        Some(Kind::ModifyDeadline) => "modify_deadline",
        Some(Kind::StreamingPull) => "streaming_pull",
        Some(Kind::PushCredit) => "push_credit",
        None => "unknown",
    }
}

/// The counter slot of an error code.
pub fn code_index(code: ErrorCode) -> usize {
    ErrorCode::ALL
        .iter()
        .position(|c| *c == code)
        .unwrap_or(CODES - 1)
}

/// The `code` label of a slot from [`code_index`]: the code's protocol
/// name (`docs/PROTOCOL.md`), or `unknown`.
pub fn code_label(index: usize) -> &'static str {
    ErrorCode::ALL.get(index).map_or("unknown", |c| c.name())
}

/// One shard's figures at one moment.
#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    /// The shard.
    pub shard: usize,
    /// When the shard published this; `None` until it first did.
    pub published: Option<Instant>,
    /// True while the shard takes requests (false before its partitions
    /// are open and from the moment it starts draining).
    pub serving: bool,
    /// Requests this shard received (whichever shard owned their partition).
    pub requests: RequestSnapshot,
    /// Latency of the Produce requests this shard received, from the
    /// complete request to its response.
    pub produce_latency: HistogramSnapshot,
    /// The shard's QUIC endpoint.
    pub quic: QuicSnapshot,
    /// Authentication failures and denied requests.
    pub auth: super::AuthSnapshot,
    /// Adaptive flow control.
    pub flow: crate::flow::FlowStats,
    /// The shard's write gate: log writes at the disk and its limit.
    pub write_gate: tidegate_queue::GateStats,
    /// Request bytes admitted, by the principals that have a fair-share
    /// weight (`flow.weights`).
    pub admitted_by_principal: Vec<(std::sync::Arc<str>, u64)>,
    /// The partitions this shard owns, ordered by topic and partition.
    pub partitions: Vec<PartitionSnapshot>,
    /// Messages the shard's subscription windows handled, by outcome
    /// ([`SUBSCRIPTION_OUTCOMES`]).
    pub subscription_messages: [u64; SUBSCRIPTION_OUTCOMES.len()],
    /// The shard's open subscription windows.
    pub subscription_windows: Vec<WindowSnapshot>,
    /// Push streams (StreamingPull) of the shard's connections open now.
    pub push_streams: u64,
    /// Their bound, `subscriptions.push_streams_max`.
    pub push_streams_max: u64,
    /// Messages pushed on them since start.
    pub pushed_messages_total: u64,
}

/// The `outcome` labels of `tidegate_subscription_messages_total`.
pub const SUBSCRIPTION_OUTCOMES: [&str; 6] = [
    "delivered",
    "redelivered",
    "acked",
    "filtered",
    "expired",
    "dead_lettered",
];

/// One (subscription, partition) window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowSnapshot {
    pub subscription: String,
    pub partition: u32,
    /// Messages not handled yet: unread ones and the window's unhandled.
    pub backlog: u64,
    /// Leases out.
    pub outstanding: u64,
    /// 1 when the window is full (its floor is held by an unacked message).
    pub full: bool,
    /// Messages in the delayed set (read before their time, not acked).
    pub delayed: u64,
}

/// Request counters of one shard, by kind slot ([`kind_index`]) and code
/// slot ([`code_index`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSnapshot {
    /// Requests answered (or dropped unanswered), by kind.
    pub total: [u64; KINDS],
    /// Request bytes received, by kind.
    pub bytes_in: [u64; KINDS],
    /// Response bytes sent, by kind.
    pub bytes_out: [u64; KINDS],
    /// Requests answered with an error response, by kind and code.
    pub errors: [[u64; CODES]; KINDS],
    /// Batches of Produce requests that were not appended, by code (the
    /// request itself succeeded: its response carries one result per batch).
    pub produce_batch_errors: [u64; CODES],
}

impl Default for RequestSnapshot {
    fn default() -> Self {
        RequestSnapshot {
            total: [0; KINDS],
            bytes_in: [0; KINDS],
            bytes_out: [0; KINDS],
            errors: [[0; CODES]; KINDS],
            produce_batch_errors: [0; CODES],
        }
    }
}

/// The shard's QUIC endpoint counters (`tidegate_net::ServerStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuicSnapshot {
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted since start.
    pub accepted_total: u64,
    /// Connections refused since start (all reasons).
    pub refused_total: u64,
    /// Of those, refused because their source IP held
    /// `quic.max_connections_per_address`.
    pub refused_per_address_total: u64,
    /// Of those, refused because `quic.max_handshakes` were in flight.
    pub refused_handshakes_total: u64,
    /// Stateless Retry packets sent (handshakes beyond
    /// `quic.retry_handshakes_per_s` from unvalidated addresses).
    pub retries_sent_total: u64,
    /// Handshakes in flight now.
    pub handshakes: u64,
    /// Connections closed because their handshake outlived
    /// `quic.handshake_timeout`.
    pub handshake_timeouts_total: u64,
    /// UDP datagrams received.
    pub datagrams_in_total: u64,
    /// UDP datagrams sent.
    pub datagrams_out_total: u64,
    /// Request bytes held now (being received or awaiting their response).
    pub inflight_bytes: u64,
    /// Times a stream was left unread because the shard held its in-flight
    /// bytes bound (producers slowed through QUIC credit).
    pub credit_stalls_total: u64,
    /// Datagrams for another shard's connection, forwarded over the mesh.
    pub datagrams_forwarded_total: u64,
    /// Datagrams another shard forwarded here.
    pub datagrams_injected_total: u64,
    /// Forwarded datagrams dropped for a full injection queue.
    pub datagrams_dropped_total: u64,
    /// Bytes of requests admitted into the window.
    pub admitted_bytes_total: u64,
    /// Requests admitted into the window.
    pub admitted_requests_total: u64,
    /// Of those, sparse connections' requests admitted above the window.
    pub admitted_sparse_requests_total: u64,
    /// Admitted requests reset for not arriving whole in time.
    pub request_timeouts_total: u64,
}

impl From<tidegate_net::ServerStats> for QuicSnapshot {
    fn from(s: tidegate_net::ServerStats) -> Self {
        QuicSnapshot {
            connections: s.connections as u64,
            accepted_total: s.accepted_total,
            refused_total: s.refused_total,
            refused_per_address_total: s.refused_per_address_total,
            refused_handshakes_total: s.refused_handshakes_total,
            retries_sent_total: s.retries_sent_total,
            handshakes: s.handshakes as u64,
            handshake_timeouts_total: s.handshake_timeouts_total,
            datagrams_in_total: s.datagrams_in_total,
            datagrams_out_total: s.datagrams_out_total,
            inflight_bytes: s.inflight_bytes as u64,
            credit_stalls_total: s.credit_stalls_total,
            datagrams_forwarded_total: s.datagrams_forwarded_total,
            datagrams_injected_total: s.datagrams_injected_total,
            datagrams_dropped_total: s.datagrams_dropped_total,
            admitted_bytes_total: s.admitted_bytes_total,
            admitted_requests_total: s.admitted_requests_total,
            admitted_sparse_requests_total: s.admitted_sparse_requests_total,
            request_timeouts_total: s.request_timeouts_total,
        }
    }
}

/// One partition log's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionSnapshot {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
    /// The first offset still stored.
    pub log_start_offset: u64,
    /// One past the last readable offset.
    pub high_watermark: u64,
    /// One past the last offset made durable by fdatasync.
    pub durable_watermark: u64,
    /// The next offset an append gets (ahead of the high watermark while
    /// appends wait to be written).
    pub next_offset: u64,
    /// Messages written (readable) since the log was opened.
    pub messages_written_total: u64,
    /// Batch bytes written since the log was opened.
    pub bytes_written_total: u64,
    /// Batches appended since the log was opened.
    pub batches_appended_total: u64,
    /// Group-commit flushes since the log was opened.
    pub flushes_total: u64,
    /// fdatasync calls since the log was opened.
    pub fdatasyncs_total: u64,
    /// Seconds spent in those fdatasyncs (with the count: mean latency).
    pub fdatasync_seconds_total: f64,
    /// Latency of the syncer's fdatasyncs, in the buckets of
    /// [`FDATASYNC_LATENCY_BUCKETS_US`].
    pub fdatasync_latency: FdatasyncHistogram,
    /// Messages returned to fetches.
    pub read_messages_total: u64,
    /// Bytes returned to fetches.
    pub read_bytes_total: u64,
    /// Bytes of all segments.
    pub size_bytes: u64,
    /// Bytes held in the tail cache.
    pub read_cache_bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// True once a write or fdatasync failed (the log is read-only).
    pub failed: bool,
    /// Idempotent producers the partition remembers.
    pub producers: u64,
    /// Producers forgotten (at the cap, or idle past the expiry) since the
    /// log was opened.
    pub producers_evicted_total: u64,
    /// Batches answered as duplicates of an earlier one (not written).
    pub duplicate_batches_total: u64,
    /// Messages stored as duplicate markers (message-id deduplication).
    pub dedup_markers_total: u64,
    /// Message ids forgotten before their window ended (table full).
    pub dedup_evicted_total: u64,
    /// Rolls that took a segment prepared in the background.
    pub segments_prepared_total: u64,
    /// Segment rolls since the log was opened.
    pub rolls_total: u64,
    /// Seconds those rolls held the partition's writer (with the count:
    /// the mean roll).
    pub roll_seconds_total: f64,
    /// Reads answered from the tail cache, without a disk read.
    pub reads_cached_total: u64,
    /// Sealed segment files kept open for reads.
    pub segments_open: u64,
    /// Sealed segment files opened for reads (not among those kept open).
    pub segment_opens_total: u64,
    /// Consumer groups with a committed offset here: (group, high
    /// watermark minus committed offset).
    pub group_lag: Vec<(String, u64)>,
}

impl PartitionSnapshot {
    /// Messages accepted by the log and not yet written.
    pub fn write_queue_messages(&self) -> u64 {
        self.next_offset.saturating_sub(self.high_watermark)
    }
}
