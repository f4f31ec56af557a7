//! Checks of values on their own and together, after all layers merged.
//! Each check names the key an operator should change.

use super::{ServeConfig, Size};

/// Largest value of a QUIC variable-length integer (RFC 9000, 16): the
/// bound of flow-control windows.
const QUIC_VARINT_MAX: u64 = (1 << 62) - 1;
/// O_DIRECT block size of the log's writes.
const BLOCK_BYTES: u64 = 4096;
/// glommio allocates at least this much I/O memory whatever it is asked.
const IO_MEMORY_MIN: Size = Size::kib(64);
/// Smallest segment worth having: below it a segment holds few batches and
/// the log spends its time rolling files.
const SEGMENT_MIN: Size = Size::mib(1);

/// A failed check: the dotted key and what is wrong with it.
pub(crate) type Failure = (String, String);

fn fail(key: &str, message: impl Into<String>) -> Result<(), Failure> {
    Err((key.to_owned(), message.into()))
}

/// Runs every check; the first failure is returned.
pub(crate) fn check(c: &ServeConfig) -> Result<(), Failure> {
    check_top(c)?;
    check_storage(c)?;
    check_quic(c)?;
    check_limits(c)?;
    check_flow(c)?;
    check_producers(c)?;
    check_subscriptions(c)?;
    if c.groups.offsets_retention.get() < std::time::Duration::from_secs(1) {
        return fail("groups.offsets_retention", "must be at least 1s");
    }
    c.log_config()
        .validate()
        .map_err(|e| ("storage".to_owned(), e.to_string()))
}

fn check_top(c: &ServeConfig) -> Result<(), Failure> {
    if c.data_dir.as_os_str().is_empty() {
        return fail("data_dir", "must not be empty");
    }
    if c.shard.io_memory < IO_MEMORY_MIN {
        return fail(
            "shard.io_memory",
            format!(
                "{} is below glommio's minimum of {IO_MEMORY_MIN}",
                c.shard.io_memory
            ),
        );
    }
    match (&c.tls.cert, &c.tls.key) {
        (Some(_), None) => fail("tls.cert", "is set but tls.key is not; set both or neither"),
        (None, Some(_)) => fail("tls.key", "is set but tls.cert is not; set both or neither"),
        _ => Ok(()),
    }
}

fn check_storage(c: &ServeConfig) -> Result<(), Failure> {
    let s = &c.storage;
    if s.segment_bytes < SEGMENT_MIN || s.segment_bytes.bytes() > u64::from(u32::MAX) {
        return fail(
            "storage.segment_bytes",
            format!(
                "{} is outside [{SEGMENT_MIN}, 4GiB): segment positions are 32-bit",
                s.segment_bytes
            ),
        );
    }
    if s.index_interval_bytes.bytes() == 0 {
        return fail("storage.index_interval_bytes", "must be above 0B");
    }
    let chunk = s.write_chunk_bytes.bytes();
    if chunk == 0 || chunk % BLOCK_BYTES != 0 || !(chunk / BLOCK_BYTES).is_power_of_two() {
        return fail(
            "storage.write_chunk_bytes",
            format!(
                "{} must be a power-of-two multiple of 4KiB (O_DIRECT), e.g. 128KiB, 256KiB, 1MiB",
                s.write_chunk_bytes
            ),
        );
    }
    if s.write_concurrency == 0 {
        return fail("storage.write_concurrency", "must be at least 1");
    }
    if s.pending_bytes_max.bytes() == 0 {
        return fail("storage.pending_bytes_max", "must be above 0B");
    }
    if s.retention.is_some_and(|r| r.get().is_zero()) {
        return fail(
            "storage.retention",
            "must be above 0s; leave it out to keep data forever",
        );
    }
    if s.retention_bytes.is_some_and(|r| r.bytes() == 0) {
        return fail(
            "storage.retention_bytes",
            "must be above 0B; leave it out for no size limit",
        );
    }
    if s.retention_check_interval.get().is_zero() {
        return fail("storage.retention_check_interval", "must be above 0s");
    }
    Ok(())
}

fn check_quic(c: &ServeConfig) -> Result<(), Failure> {
    let q = &c.quic;
    if q.max_connections == 0 {
        return fail("quic.max_connections", "must be at least 1");
    }
    if q.max_concurrent_streams == 0 {
        return fail("quic.max_concurrent_streams", "must be at least 1");
    }
    if q.max_connections_per_address == 0 {
        return fail("quic.max_connections_per_address", "must be at least 1");
    }
    if q.max_handshakes == 0 {
        return fail("quic.max_handshakes", "must be at least 1");
    }
    if q.handshake_timeout.get().is_zero() {
        return fail("quic.handshake_timeout", "must be above 0s");
    }
    for (key, window) in [
        ("quic.stream_receive_window", q.stream_receive_window),
        (
            "quic.connection_receive_window",
            q.connection_receive_window,
        ),
    ] {
        if window.bytes() == 0 || window.bytes() > QUIC_VARINT_MAX {
            return fail(key, format!("{window} is outside (0B, 2^62 bytes)"));
        }
    }
    if q.stream_receive_window > q.connection_receive_window {
        return fail(
            "quic.stream_receive_window",
            format!(
                "{} exceeds quic.connection_receive_window ({}), which bounds all streams together",
                q.stream_receive_window, q.connection_receive_window
            ),
        );
    }
    // Every stream must be able to fill its own window without waiting for
    // connection credit: a shard admits a connection's waiting requests in
    // its own order, and a request it admitted must be able to arrive even
    // when every other stream of the connection holds a full window of
    // data the shard has not read (docs/FLOW_CONTROL.md).
    let all_streams = q
        .stream_receive_window
        .bytes()
        .saturating_mul(u64::from(q.max_concurrent_streams));
    if all_streams > q.connection_receive_window.bytes() {
        return fail(
            "quic.max_concurrent_streams",
            format!(
                "{} streams of quic.stream_receive_window ({}) exceed quic.connection_receive_window ({}): an admitted request could wait forever for connection credit held by requests not yet admitted",
                q.max_concurrent_streams, q.stream_receive_window, q.connection_receive_window
            ),
        );
    }
    if q.request_timeout.get().is_zero() {
        return fail("quic.request_timeout", "must be above 0s");
    }
    if q.idle_timeout.get().is_zero() {
        return fail("quic.idle_timeout", "must be above 0s");
    }
    if q.keep_alive.get().is_zero() || q.keep_alive >= q.idle_timeout {
        return fail(
            "quic.keep_alive",
            format!(
                "{} must be above 0s and below quic.idle_timeout ({}), or idle connections close",
                q.keep_alive, q.idle_timeout
            ),
        );
    }
    Ok(())
}

fn check_flow(c: &ServeConfig) -> Result<(), Failure> {
    let f = &c.flow;
    if f.control_interval.get() < std::time::Duration::from_millis(10) {
        return fail("flow.control_interval", "must be at least 10ms");
    }
    if f.latency_target.get().is_zero() || f.latency_target >= f.control_interval {
        return fail(
            "flow.latency_target",
            format!(
                "{} must be above 0s and below flow.control_interval ({}): the controller must see the effect of one step before the next",
                f.latency_target, f.control_interval
            ),
        );
    }
    if f.disk_queue_target >= f.control_interval {
        return fail(
            "flow.disk_queue_target",
            format!(
                "{} must be below flow.control_interval ({}): the disk is measured once an interval",
                f.disk_queue_target, f.control_interval
            ),
        );
    }
    if f.min_window.bytes() == 0 || f.min_window > c.limits.shard_inflight_bytes_max {
        return fail(
            "flow.min_window",
            format!(
                "{} must be above 0B and at most limits.shard_inflight_bytes_max ({})",
                f.min_window, c.limits.shard_inflight_bytes_max
            ),
        );
    }
    if f.quantum.bytes() == 0 {
        return fail("flow.quantum", "must be above 0B");
    }
    if f.disk_syncs_max == 0 {
        return fail("flow.disk_syncs_max", "must be at least 1");
    }
    if f.max_fetches == 0 {
        return fail("flow.max_fetches", "must be at least 1");
    }
    if let Some((principal, _)) = f.weights.iter().find(|(_, w)| **w == 0) {
        return fail(
            "flow.weights",
            format!("`{principal}` has weight 0; weights are at least 1"),
        );
    }
    Ok(())
}

fn check_producers(c: &ServeConfig) -> Result<(), Failure> {
    let p = &c.producers;
    // A full table's snapshot (~216 bytes a producer) must stay well
    // inside a durable file's 64 MiB.
    if !(1..=100_000).contains(&p.max_per_partition) {
        return fail("producers.max_per_partition", "must be in 1..=100000");
    }
    if p.expiry.get() < std::time::Duration::from_secs(60) {
        return fail(
            "producers.expiry",
            "must be at least 1m: a producer's retries must find it",
        );
    }
    if p.reorder_wait.get() > std::time::Duration::from_secs(60) {
        return fail("producers.reorder_wait", "must be at most 60s");
    }
    Ok(())
}

fn check_subscriptions(c: &ServeConfig) -> Result<(), Failure> {
    let s = &c.subscriptions;
    // A checkpoint of a full window and a full delayed set (at worst 16
    // bytes per two offsets, 12 per lease, 20 per delayed message: about
    // 3 MB at these maxima) must fit one journal record of 4 MiB.
    if !(1..=65_536).contains(&s.window_max) {
        return fail("subscriptions.window_max", "must be in 1..=65536");
    }
    if !(1..=s.window_max).contains(&s.outstanding_max) {
        return fail(
            "subscriptions.outstanding_max",
            "must be in 1..=subscriptions.window_max: leases are of messages in the window",
        );
    }
    if !(1..=100_000).contains(&s.delayed_max) {
        return fail("subscriptions.delayed_max", "must be in 1..=100000");
    }
    if !(1..=65_536).contains(&s.push_streams_max) {
        return fail("subscriptions.push_streams_max", "must be in 1..=65536");
    }
    Ok(())
}

fn check_limits(c: &ServeConfig) -> Result<(), Failure> {
    let l = &c.limits;
    if l.max_request_bytes.bytes() == 0 {
        return fail("limits.max_request_bytes", "must be above 0B");
    }
    if l.max_request_bytes > l.shard_inflight_bytes_max {
        return fail(
            "limits.max_request_bytes",
            format!(
                "{} exceeds limits.shard_inflight_bytes_max ({}), so a largest request could never be admitted",
                l.max_request_bytes, l.shard_inflight_bytes_max
            ),
        );
    }
    if l.shard_inflight_requests_max == 0 {
        return fail("limits.shard_inflight_requests_max", "must be at least 1");
    }
    Ok(())
}
