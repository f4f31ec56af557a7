//! CPU topology discovery, shard core choice, thread pinning and the
//! partition-to-shard map. Filled in by the gateway issue.
