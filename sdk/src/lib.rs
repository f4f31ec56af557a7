//! The Rust QUIC client for tidegate (tokio + quinn). Filled in by the SDK
//! issue; it shares the wire formats of `tidegate-proto`.
