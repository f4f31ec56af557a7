//! QUIC ingestion on glommio: the quinn-proto endpoint driver of each shard,
//! UDP I/O and TLS setup. Filled in by the gateway issue.
