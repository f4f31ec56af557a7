//! The bounds of the QUIC layer, filled from the server's configuration.

use std::time::Duration;

/// Limits of one shard's QUIC endpoint. Every queue and buffer the layer
/// keeps is bounded by one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicSettings {
    /// Connections this endpoint accepts; more are refused.
    pub max_connections: usize,
    /// Requests in flight per connection (concurrent bidirectional streams).
    pub max_concurrent_streams: u32,
    /// Receive window of one stream (bytes of one request in flight).
    pub stream_receive_window: u64,
    /// Receive window of a connection.
    pub connection_receive_window: u64,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// The server pings idle connections this often, so a client waiting on
    /// a long poll is not closed as idle.
    pub keep_alive: Duration,
    /// Largest request accepted; a larger one is stopped.
    pub max_request_bytes: usize,
    /// An admitted request must arrive whole within this; otherwise its
    /// stream is reset and its bytes released.
    pub request_timeout: Duration,
    /// This endpoint's shard, written into every connection ID it issues.
    pub shard: u8,
    /// How many shards serve the port; with more than one, a packet whose
    /// connection ID names another shard is handed to the forwarder.
    pub shards: u8,
    /// Request bytes the endpoint holds at once (being received or waiting
    /// for their response); above it no stream is read, so QUIC flow
    /// control holds producers back.
    pub max_inflight_bytes: usize,
    /// Bytes a connection may admit per round, times its weight, when
    /// requests wait for `max_inflight_bytes` (deficit round robin over
    /// connections). At least 1.
    pub fair_quantum: usize,
    /// Bytes above `max_inflight_bytes` that connections holding nothing
    /// of it may take, all together, instead of waiting for the round
    /// robin: a producer that sends now and then does not wait for the
    /// window to turn over. 0 makes every request wait its turn.
    pub sparse_overdraw: usize,
    /// Send with UDP GSO when the kernel has it (several datagrams per
    /// system call).
    pub gso: bool,
    /// Receive with UDP GRO when the kernel has it (several datagrams per
    /// system call).
    pub gro: bool,
    /// Bytes of UDP receive buffer asked for (the kernel caps it at
    /// `net.core.rmem_max`).
    pub socket_receive_buffer: usize,
    /// Bytes of UDP send buffer asked for (capped at `net.core.wmem_max`).
    pub socket_send_buffer: usize,
    /// Connections (handshaking or established) this endpoint holds from
    /// one source IP address, any port; more are refused.
    pub max_connections_per_address: usize,
    /// Connections accepted whose handshake has not completed; more are
    /// refused.
    pub max_handshakes: usize,
    /// A connection still handshaking this long after it was accepted is
    /// closed.
    pub handshake_timeout: Duration,
    /// New handshakes per second this endpoint takes from addresses not yet
    /// validated (a token bucket whose burst is the rate); beyond it they
    /// are answered with a stateless Retry, so only clients that receive at
    /// their source address cost state. 0: always Retry.
    pub retry_handshakes_per_s: u32,
    /// The stateless reset key ([`load_or_create_reset_key`]), the same
    /// on every shard and across restarts; `None`: a random one for this
    /// endpoint alone.
    ///
    /// [`load_or_create_reset_key`]: crate::load_or_create_reset_key
    pub reset_key: Option<[u8; crate::RESET_KEY_LEN]>,
}

impl Default for QuicSettings {
    fn default() -> Self {
        QuicSettings {
            max_connections: 10_000,
            max_concurrent_streams: 16,
            stream_receive_window: 1 << 20,
            connection_receive_window: 16 << 20,
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(5),
            max_request_bytes: 32 << 20,
            request_timeout: Duration::from_secs(10),
            max_inflight_bytes: 256 << 20,
            fair_quantum: 256 << 10,
            sparse_overdraw: 0,
            shard: 0,
            shards: 1,
            gso: true,
            gro: true,
            socket_receive_buffer: 8 << 20,
            socket_send_buffer: 8 << 20,
            max_connections_per_address: 100,
            max_handshakes: 1000,
            handshake_timeout: Duration::from_secs(10),
            retry_handshakes_per_s: 200,
            reset_key: None,
        }
    }
}
