//! QUIC ingestion for a tidegate shard: quinn-proto's sans-IO endpoint
//! driven by the shard's own glommio executor over an io_uring UDP socket,
//! with rustls TLS 1.3 (ring) and ALPN `tidegate/1`.
//!
//! The transport model of protocol v1: every request arrives on its own
//! client-initiated bidirectional stream and ends with the stream's FIN; the
//! server answers on the same stream and finishes it. A push stream
//! (StreamingPull) is the one exception: its response stays open and is
//! written frame by frame ([`ResponseStream`]) until either side ends it. [`QuicServer`] hands
//! the application whole requests ([`RequestIn`]) and takes whole responses;
//! it never interprets the bytes, so the protocol codec stays in `proto/`.
//!
//! Layers, innermost first:
//! - `connection.rs`: per-connection stream bookkeeping over a
//!   `quinn_proto::Connection` (sans-IO: events in, requests out).
//! - `fair.rs`: deficit round robin of the shard's admission budget over
//!   the connections whose requests wait for it.
//! - `server.rs`: the driver — UDP receive task, endpoint, timers, transmits.
//! - `door.rs`: which new connections get in (per-address and handshake
//!   bounds, stateless Retry beyond a handshake rate).
//! - `peer.rs`: who is on the other end of a connection.
//! - `tls.rs`: certificates (configured, or a generated development one),
//!   client certificates (mTLS).

mod cid;
mod connection;
mod door;
mod error;
mod fair;
mod peer;
mod reset_key;
mod server;
mod settings;
mod tls;
mod udp;

pub use cid::{shard_of_datagram, CID_LEN};
pub use error::NetError;
pub use peer::{Authenticated, Peer};
pub use server::{
    ConnId, Forwarder, Injector, QuicServer, RequestIn, Responder, ResponseStream, ServerStats,
};

/// The TLS side of an endpoint, as `server_crypto` builds it.
pub type ServerCrypto = std::sync::Arc<quinn_proto::crypto::rustls::QuicServerConfig>;
pub use reset_key::{load_or_create_reset_key, RESET_KEY_LEN};
pub use settings::QuicSettings;
pub use tls::{load_client_roots, load_or_generate, server_crypto, ClientAuth, TlsMaterial, ALPN};

/// The QUIC application error codes this layer uses, from protocol v1's
/// [`AppErrorCode`](tidegate_proto::protocol::AppErrorCode).
pub mod codes {
    use tidegate_proto::protocol::AppErrorCode;

    /// A request whose declared or actual size is over `max_request_bytes`
    /// (or longer than its header declared): its stream is stopped and reset.
    pub const REQUEST_TOO_LARGE: u32 = AppErrorCode::FrameTooLarge.as_u64() as u32;
    /// The server is shutting down: connections are closed with it.
    pub const SHUTTING_DOWN: u32 = AppErrorCode::ShuttingDown.as_u64() as u32;
    /// A request admitted but not received whole within the request
    /// timeout: its stream is stopped and reset.
    pub const CANCELLED: u32 = AppErrorCode::Cancelled.as_u64() as u32;
}
