//! Renders gathered snapshots in the Prometheus text exposition format
//! (version 0.0.4).
//!
//! The encoding is prometheus-client's: its `Collector` hook encodes values
//! we hand it at scrape time (`ConstCounter`, `ConstGauge`, a histogram from
//! its bucket counts), which is exactly a snapshot model; it writes the
//! `# HELP`/`# TYPE` lines, the `_total` suffix of counters, label escaping
//! and float formatting the way Prometheus parses them. Its own live metric
//! types (atomics) are not used: shards count in plain cells.

use std::{fmt, time::Instant};

use prometheus_client::{
    collector::Collector,
    encoding::{prometheus_text, DescriptorEncoder, EncodeGaugeValue, EncodeMetric, NoLabelSet},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};

use super::{
    histogram::{HistogramSnapshot, LATENCY_BUCKETS_US},
    snapshot::{code_label, kind_label, CODES, FDATASYNC_LATENCY_BUCKETS_US, KINDS},
    PartitionSnapshot, ShardSnapshot, WindowSnapshot, DENIED_OPERATIONS, FAILURE_REASONS,
    SUBSCRIPTION_OUTCOMES,
};

/// The `Content-Type` of what [`render`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Renders the snapshots of every shard, with ages measured from `now`.
///
/// # Errors
///
/// Only if the encoder rejects a value (a bug).
pub fn render(shards: Vec<ShardSnapshot>, now: Instant) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape { shards, now }));
    let mut out = String::new();
    prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct Scrape {
    shards: Vec<ShardSnapshot>,
    now: Instant,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        self.shard_families(&mut encoder)?;
        self.request_families(&mut encoder)?;
        self.quic_families(&mut encoder)?;
        self.flow_families(&mut encoder)?;
        self.partition_families(&mut encoder)?;
        self.subscription_families(&mut encoder)
    }
}

type Labels = Vec<(&'static str, String)>;
/// A partition metric: name, help, and how to read it from a snapshot.
type PartitionFamily = (&'static str, &'static str, fn(&PartitionSnapshot) -> u64);
/// A subscription window metric, likewise.
type WindowFamily = (&'static str, &'static str, fn(&WindowSnapshot) -> u64);

fn shard(s: &ShardSnapshot) -> Labels {
    vec![("shard", s.shard.to_string())]
}

fn partition(s: &ShardSnapshot, p: &PartitionSnapshot) -> Labels {
    let labels = with(shard(s), "topic", p.topic.clone());
    with(labels, "partition", p.partition.to_string())
}

fn with(mut labels: Labels, key: &'static str, value: impl Into<String>) -> Labels {
    labels.push((key, value.into()));
    labels
}

fn counters<N: prometheus_client::encoding::EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, N)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A histogram family from per-bucket (not cumulative) counts and their
/// upper bounds in microseconds; the encoder cumulates the counts, adds the
/// `+Inf` bucket's `le`, `_sum` (seconds) and `_count`.
fn histograms<'a, const BOUNDS: usize, const SLOTS: usize>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    bounds_us: &[u64; BOUNDS],
    rows: impl IntoIterator<Item = (Labels, &'a HistogramSnapshot<SLOTS>)>,
) -> fmt::Result {
    // A bound set that does not match the counts would shift every bucket
    // (zip stops at the shorter): refuse to compile that.
    const { assert!(BOUNDS + 1 == SLOTS, "one count per bound, plus +Inf") };
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in rows {
        let buckets: Vec<(f64, u64)> = bounds_us
            .iter()
            .map(|us| *us as f64 / 1e6)
            .chain([f64::INFINITY])
            .zip(h.counts)
            .collect();
        let sum = h.sum_ns as f64 / 1e9;
        family
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(sum, h.count(), &buckets, None)?;
    }
    Ok(())
}

fn gauges<N: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, N)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Scrape {
    fn subscription_families(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let outcomes = self.shards.iter().flat_map(|s| {
            SUBSCRIPTION_OUTCOMES
                .iter()
                .zip(s.subscription_messages)
                .map(move |(outcome, v)| (with(shard(s), "outcome", *outcome), v))
        });
        let help = "Messages the shard's subscription windows handled, by outcome (filtered and \
                    expired ones are never delivered; redelivered counts deliveries after the first).";
        counters(e, "tidegate_subscription_messages", help, outcomes)?;
        let windows = || {
            self.shards.iter().flat_map(|s| {
                s.subscription_windows.iter().map(move |w| {
                    let labels = with(shard(s), "subscription", w.subscription.clone());
                    (with(labels, "partition", w.partition.to_string()), w)
                })
            })
        };
        let families: [WindowFamily; 4] = [
            (
                "tidegate_subscription_backlog_messages",
                "Messages of the partition the subscription has not handled yet (unread, or read and not acked).",
                |w| w.backlog,
            ),
            (
                "tidegate_subscription_outstanding_messages",
                "Messages leased to subscribers now.",
                |w| w.outstanding,
            ),
            (
                "tidegate_subscription_window_full",
                "1 while the window is full: an unacked message holds its floor, and no new message of the partition enters.",
                |w| u64::from(w.full),
            ),
            (
                "tidegate_subscription_delayed_messages",
                "Messages read before their tg-deliver-after and not acked yet (waiting, or leased once due).",
                |w| w.delayed,
            ),
        ];
        for (name, help, value) in families {
            gauges(e, name, help, windows().map(|(l, w)| (l, value(w))))?;
        }
        gauges(
            e,
            "tidegate_subscription_push_streams",
            "Push streams (StreamingPull) of the shard's connections open now.",
            self.per_shard(|s| s.push_streams),
        )?;
        gauges(
            e,
            "tidegate_subscription_push_streams_max",
            "Push streams a shard serves at once (subscriptions.push_streams_max).",
            self.per_shard(|s| s.push_streams_max),
        )?;
        counters(
            e,
            "tidegate_subscription_pushed_messages",
            "Messages pushed on push streams (each is also counted delivered or redelivered).",
            self.per_shard(|s| s.pushed_messages_total),
        )
    }

    fn per_shard<N>(&self, value: impl Fn(&ShardSnapshot) -> N) -> Vec<(Labels, N)> {
        self.shards.iter().map(|s| (shard(s), value(s))).collect()
    }

    fn shard_families(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        gauges(
            e,
            "tidegate_shard_serving",
            "1 while the shard takes requests, 0 before it serves and while it drains.",
            self.per_shard(|s| u64::from(s.serving)),
        )?;
        let published = self.shards.iter().filter_map(|s| {
            let at = s.published?;
            let age = self.now.saturating_duration_since(at).as_secs_f64();
            Some((shard(s), age))
        });
        gauges(
            e,
            "tidegate_shard_snapshot_age_seconds",
            "Time since the shard last published its metrics (about 1 s; more means the shard is stuck).",
            published,
        )
    }

    /// Every known kind is always shown (zeros included); the `unknown`
    /// slot and error series only once they count something.
    fn by_kind(&self, value: impl Fn(&ShardSnapshot, usize) -> u64) -> Vec<(Labels, u64)> {
        let mut rows = Vec::new();
        for s in &self.shards {
            for kind in 0..KINDS {
                let v = value(s, kind);
                if kind + 1 < KINDS || v > 0 {
                    rows.push((with(shard(s), "kind", kind_label(kind)), v));
                }
            }
        }
        rows
    }

    fn request_families(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let help = "Requests received by the shard (whichever shard owns the partition), by kind.";
        counters(
            e,
            "tidegate_requests",
            help,
            self.by_kind(|s, k| s.requests.total[k]),
        )?;
        let mut errors = Vec::new();
        let mut batch_errors = Vec::new();
        for s in &self.shards {
            for kind in 0..KINDS {
                for code in 0..CODES {
                    let v = s.requests.errors[kind][code];
                    if v > 0 {
                        let labels = with(shard(s), "kind", kind_label(kind));
                        errors.push((with(labels, "code", code_label(code)), v));
                    }
                }
            }
            for code in 0..CODES {
                let v = s.requests.produce_batch_errors[code];
                if v > 0 {
                    batch_errors.push((with(shard(s), "code", code_label(code)), v));
                }
            }
        }
        let help = "Requests answered with an error response, by kind and protocol error code.";
        counters(e, "tidegate_request_errors", help, errors)?;
        let help = "Batches of successful Produce requests that were not appended, by error code.";
        counters(e, "tidegate_produce_batch_errors", help, batch_errors)?;
        let mut failures = Vec::new();
        let mut denied = Vec::new();
        for s in &self.shards {
            for (reason, v) in FAILURE_REASONS.iter().zip(s.auth.failures) {
                if v > 0 {
                    failures.push((with(shard(s), "reason", *reason), v));
                }
            }
            for (operation, v) in DENIED_OPERATIONS.iter().zip(s.auth.denied) {
                if v > 0 {
                    denied.push((with(shard(s), "operation", *operation), v));
                }
            }
        }
        let help = "Authentication failures (refused tokens, lapsed JWTs, requests without authentication), by reason.";
        counters(e, "tidegate_auth_failures", help, failures)?;
        let help = "Requests the access rules denied, by operation.";
        counters(e, "tidegate_auth_denied", help, denied)?;
        let help = "Request bytes received, by kind.";
        counters(
            e,
            "tidegate_request_bytes",
            help,
            self.by_kind(|s, k| s.requests.bytes_in[k]),
        )?;
        let help = "Response bytes sent, by kind (Fetch: the batches served).";
        counters(
            e,
            "tidegate_response_bytes",
            help,
            self.by_kind(|s, k| s.requests.bytes_out[k]),
        )?;
        self.produce_latency(e)
    }

    fn produce_latency(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let help = "Produce requests from complete request to response, as received by the shard \
                    (acknowledgement level included: durable waits for fdatasync).";
        histograms(
            e,
            "tidegate_produce_latency_seconds",
            help,
            &LATENCY_BUCKETS_US,
            self.shards.iter().map(|s| (shard(s), &s.produce_latency)),
        )
    }

    fn flow_families(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let f = |get: fn(&crate::flow::FlowStats) -> u64| self.per_shard(move |s| get(&s.flow));
        let help = "Bytes of produce requests the shard admits at once: its flow-control \
                    window (limits.shard_inflight_bytes_max when flow.enabled is false).";
        gauges(e, "tidegate_flow_window_bytes", help, f(|f| f.window_bytes))?;
        let help = "p90 produce latency at the shard in the last control interval that had \
                    one, the quantity the window is steered by.";
        gauges(
            e,
            "tidegate_flow_latency_seconds",
            help,
            self.per_shard(|s| s.flow.latency_us as f64 / 1e6),
        )?;
        let help = "The produce latency the window is sized for (flow.latency_target).";
        gauges(
            e,
            "tidegate_flow_latency_target_seconds",
            help,
            self.per_shard(|s| s.flow.target_us as f64 / 1e6),
        )?;
        let help = "The throttle hint produce responses carry now.";
        gauges(
            e,
            "tidegate_flow_throttle_seconds",
            help,
            self.per_shard(|s| s.flow.throttle_ms as f64 / 1e3),
        )?;
        let help = "Produce responses that carried a throttle hint.";
        counters(
            e,
            "tidegate_flow_throttle_hints",
            help,
            f(|f| f.throttle_hints_total),
        )?;
        let help = "Control intervals in which the window held a request back.";
        counters(
            e,
            "tidegate_flow_limited_intervals",
            help,
            f(|f| f.limited_intervals_total),
        )?;
        let help = "Control intervals run.";
        counters(e, "tidegate_flow_intervals", help, f(|f| f.intervals_total))?;
        let g = |get: fn(&tidegate_queue::GateStats) -> u64| {
            self.per_shard(move |s| get(&s.write_gate))
        };
        let help = "Bytes of log writes the shard lets the disk hold at once \
                    (flow.disk_queue_target of its measured throughput); +Inf before the \
                    disk was measured or with the gate off.";
        gauges(
            e,
            "tidegate_flow_disk_limit_bytes",
            help,
            self.per_shard(|s| match s.write_gate.limit_bytes {
                u64::MAX => f64::INFINITY,
                limit => limit as f64,
            }),
        )?;
        let help = "Bytes of log writes at the disk now.";
        gauges(
            e,
            "tidegate_flow_disk_inflight_bytes",
            help,
            g(|g| g.in_flight_bytes),
        )?;
        let help = "Log writes the shard let through to the disk.";
        counters(e, "tidegate_flow_disk_writes", help, g(|g| g.writes_total))?;
        let help = "Log writes that waited in the shard for the disk's queue to shorten \
                    (or for a barrier).";
        counters(
            e,
            "tidegate_flow_disk_writes_waited",
            help,
            g(|g| g.writes_waited_total),
        )?;
        let help = "fdatasyncs of the shard's logs at the disk now (flow.disk_syncs_max at most).";
        gauges(
            e,
            "tidegate_flow_disk_syncs_inflight",
            help,
            g(|g| g.syncs_in_flight),
        )?;
        let help = "fdatasyncs the shard let through to the disk.";
        counters(e, "tidegate_flow_disk_syncs", help, g(|g| g.syncs_total))?;
        let help = "fdatasyncs that waited in the shard for another to finish (or for a barrier).";
        counters(
            e,
            "tidegate_flow_disk_syncs_waited",
            help,
            g(|g| g.syncs_waited_total),
        )?;
        let help = "Writes of sparse flows that held the other flows' writes back until their \
                    fdatasync could start.";
        counters(
            e,
            "tidegate_flow_disk_sync_barriers",
            help,
            g(|g| g.sync_barriers_total),
        )?;
        let help = "Bytes of requests admitted into the window.";
        let q = |get: fn(&super::QuicSnapshot) -> u64| self.per_shard(move |s| get(&s.quic));
        counters(
            e,
            "tidegate_flow_admitted_bytes",
            help,
            q(|q| q.admitted_bytes_total),
        )?;
        let help = "Requests admitted into the window.";
        counters(
            e,
            "tidegate_flow_admitted_requests",
            help,
            q(|q| q.admitted_requests_total),
        )?;
        let help = "Of those, requests of connections that held nothing of the window, \
                    admitted above it (by up to flow.quantum in all) instead of waiting \
                    for the round.";
        counters(
            e,
            "tidegate_flow_admitted_sparse_requests",
            help,
            q(|q| q.admitted_sparse_requests_total),
        )?;
        let help = "Bytes of requests admitted into the window, by the principals that have \
                    a fair-share weight (flow.weights).";
        let by_principal = self.shards.iter().flat_map(|s| {
            s.admitted_by_principal
                .iter()
                .map(move |(p, v)| (with(shard(s), "principal", p.to_string()), *v))
        });
        counters(
            e,
            "tidegate_flow_principal_admitted_bytes",
            help,
            by_principal,
        )
    }

    fn quic_families(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let q = |f: fn(&super::QuicSnapshot) -> u64| self.per_shard(move |s| f(&s.quic));
        gauges(
            e,
            "tidegate_quic_connections",
            "QUIC connections open.",
            q(|q| q.connections),
        )?;
        let help = "QUIC connections accepted.";
        counters(
            e,
            "tidegate_quic_connections_accepted",
            help,
            q(|q| q.accepted_total),
        )?;
        let help = "QUIC connections refused, all reasons (over quic.max_connections or \
                    shutting down, per address, handshakes in flight).";
        counters(
            e,
            "tidegate_quic_connections_refused",
            help,
            q(|q| q.refused_total),
        )?;
        let help = "QUIC connections refused because their source IP held \
                    quic.max_connections_per_address.";
        counters(
            e,
            "tidegate_quic_connections_refused_per_address",
            help,
            q(|q| q.refused_per_address_total),
        )?;
        let help = "QUIC connections refused because quic.max_handshakes were in flight.";
        counters(
            e,
            "tidegate_quic_connections_refused_handshakes",
            help,
            q(|q| q.refused_handshakes_total),
        )?;
        let help = "Stateless QUIC Retry packets sent: handshakes from unvalidated addresses \
                    beyond quic.retry_handshakes_per_s.";
        counters(
            e,
            "tidegate_quic_retries_sent",
            help,
            q(|q| q.retries_sent_total),
        )?;
        let help = "Admitted requests whose streams were reset because they did not arrive \
                    whole within quic.request_timeout.";
        counters(
            e,
            "tidegate_quic_request_timeouts",
            help,
            q(|q| q.request_timeouts_total),
        )?;
        let help = "QUIC connections accepted whose handshake has not ended.";
        gauges(e, "tidegate_quic_handshakes", help, q(|q| q.handshakes))?;
        let help = "QUIC connections closed because their handshake outlived \
                    quic.handshake_timeout.";
        counters(
            e,
            "tidegate_quic_handshake_timeouts",
            help,
            q(|q| q.handshake_timeouts_total),
        )?;
        let help = "UDP datagrams received by the shard's QUIC endpoint.";
        counters(
            e,
            "tidegate_quic_datagrams_in",
            help,
            q(|q| q.datagrams_in_total),
        )?;
        let help = "UDP datagrams sent by the shard's QUIC endpoint.";
        counters(
            e,
            "tidegate_quic_datagrams_out",
            help,
            q(|q| q.datagrams_out_total),
        )?;
        let help = "Request bytes held (being received or awaiting their response).";
        gauges(
            e,
            "tidegate_quic_inflight_bytes",
            help,
            q(|q| q.inflight_bytes),
        )?;
        let help = "Times a stream was left unread because the shard held its in-flight byte \
                    bound: producers slowed through QUIC credit.";
        counters(
            e,
            "tidegate_quic_credit_stalls",
            help,
            q(|q| q.credit_stalls_total),
        )?;
        let help = "Datagrams of another shard's connection (a client whose address changed), \
                    forwarded to that shard.";
        counters(
            e,
            "tidegate_quic_datagrams_forwarded",
            help,
            q(|q| q.datagrams_forwarded_total),
        )?;
        let help = "Datagrams another shard forwarded to this shard's connections.";
        counters(
            e,
            "tidegate_quic_datagrams_injected",
            help,
            q(|q| q.datagrams_injected_total),
        )?;
        let help = "Datagrams another shard forwarded here but dropped because this \
                    shard's injection queue was full (QUIC recovers them).";
        counters(
            e,
            "tidegate_quic_datagrams_dropped",
            help,
            q(|q| q.datagrams_dropped_total),
        )
    }

    fn per_partition<N>(&self, value: fn(&PartitionSnapshot) -> N) -> Vec<(Labels, N)> {
        let mut rows = Vec::new();
        for s in &self.shards {
            for p in &s.partitions {
                rows.push((partition(s, p), value(p)));
            }
        }
        rows
    }

    fn partition_families(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let gauge_families: [PartitionFamily; 11] = [
            ("tidegate_partition_high_watermark", "One past the last readable offset.", |p| p.high_watermark),
            ("tidegate_partition_durable_watermark", "One past the last offset made durable by fdatasync.", |p| p.durable_watermark),
            ("tidegate_partition_log_start_offset", "The first offset still stored (retention moves it).", |p| p.log_start_offset),
            ("tidegate_partition_write_queue_messages", "Messages accepted by the log and not yet written (next offset minus high watermark).", |p| p.write_queue_messages()),
            ("tidegate_partition_size_bytes", "Bytes of all the partition's segments.", |p| p.size_bytes),
            ("tidegate_partition_segments", "Segment files of the partition.", |p| p.segments),
            ("tidegate_partition_segments_open", "Sealed segment files the partition keeps open for reads (at most storage.open_segments_max); the active segment's is not counted.", |p| p.segments_open),
            ("tidegate_partition_read_cache_bytes", "Bytes of the newest batches held in the partition's tail cache (at most storage.read_cache_bytes).", |p| p.read_cache_bytes),
            ("tidegate_partition_failed", "1 once a write or fdatasync failed: the log is read-only until restart.", |p| u64::from(p.failed)),
            ("tidegate_partition_next_offset", "The offset the next appended message gets.", |p| p.next_offset),
            ("tidegate_partition_producers", "Idempotent producers the partition remembers.", |p| p.producers),
        ];
        for (name, help, value) in gauge_families {
            gauges(e, name, help, self.per_partition(value))?;
        }
        let counter_families: [PartitionFamily; 15] = [
            (
                "tidegate_partition_segment_opens",
                "Sealed segment files opened for a read because they were not among those kept open (storage.open_segments_max).",
                |p| p.segment_opens_total,
            ),
            (
                "tidegate_partition_rolls",
                "Segment rolls: the active segment sealed and the next one created.",
                |p| p.rolls_total,
            ),
            (
                "tidegate_partition_reads_cached",
                "Reads answered from the partition's tail cache, without a disk read (storage.read_cache_bytes).",
                |p| p.reads_cached_total,
            ),
            (
                "tidegate_partition_segments_prepared",
                "Segment rolls that took a segment zero-filled in the background (storage.prepare_segments).",
                |p| p.segments_prepared_total,
            ),
            (
                "tidegate_partition_dedup_markers",
                "Messages stored as duplicate markers: their tg-msg-id was seen within the topic's dedup window.",
                |p| p.dedup_markers_total,
            ),
            (
                "tidegate_partition_dedup_evicted",
                "Message ids forgotten before their dedup window ended, because the partition held the most it keeps (100,000).",
                |p| p.dedup_evicted_total,
            ),
            (
                "tidegate_partition_duplicate_batches",
                "Batches of idempotent producers answered as duplicates of an earlier one (not written again).",
                |p| p.duplicate_batches_total,
            ),
            (
                "tidegate_partition_producers_evicted",
                "Idempotent producers the partition forgot (at producers.max_per_partition, or idle past producers.expiry).",
                |p| p.producers_evicted_total,
            ),
            (
                "tidegate_partition_read_messages",
                "Messages returned to fetches since the log was opened.",
                |p| p.read_messages_total,
            ),
            (
                "tidegate_partition_read_bytes",
                "Batch bytes returned to fetches since the log was opened.",
                |p| p.read_bytes_total,
            ),
            (
                "tidegate_partition_written_messages",
                "Messages written (made readable) since the log was opened.",
                |p| p.messages_written_total,
            ),
            (
                "tidegate_partition_written_bytes",
                "Batch bytes written since the log was opened.",
                |p| p.bytes_written_total,
            ),
            (
                "tidegate_partition_appended_batches",
                "Batches appended since the log was opened.",
                |p| p.batches_appended_total,
            ),
            (
                "tidegate_partition_flushes",
                "Group-commit flushes (each one or more aligned writes).",
                |p| p.flushes_total,
            ),
            (
                "tidegate_partition_fdatasyncs",
                "fdatasync calls on the partition's segments.",
                |p| p.fdatasyncs_total,
            ),
        ];
        for (name, help, value) in counter_families {
            counters(e, name, help, self.per_partition(value))?;
        }
        counters(
            e,
            "tidegate_partition_fdatasync_seconds",
            "Seconds spent in the partition's fdatasyncs; divided by the fdatasync count, \
             the mean fdatasync latency.",
            self.per_partition(|p| p.fdatasync_seconds_total),
        )?;
        counters(
            e,
            "tidegate_partition_roll_seconds",
            "Seconds the partition's segment rolls held its writer; divided by the roll count, \
             the mean roll.",
            self.per_partition(|p| p.roll_seconds_total),
        )?;
        self.fdatasync_latency(e)?;
        let lags = self.shards.iter().flat_map(|s| {
            s.partitions.iter().flat_map(move |p| {
                p.group_lag
                    .iter()
                    .map(move |(group, lag)| (with(partition(s, p), "group", group.clone()), *lag))
            })
        });
        gauges(
            e,
            "tidegate_group_lag_messages",
            "Messages of the partition past the consumer group's committed offset \
             (high watermark minus committed offset).",
            lags,
        )
    }

    fn fdatasync_latency(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let rows = self.shards.iter().flat_map(|s| {
            s.partitions
                .iter()
                .map(move |p| (partition(s, p), &p.fdatasync_latency))
        });
        histograms(
            e,
            "tidegate_partition_fdatasync_latency_seconds",
            "Latency of the syncer's fdatasyncs on the partition's active segment, failed \
             ones included (a roll's and the close's are not timed).",
            &FDATASYNC_LATENCY_BUCKETS_US,
            rows,
        )
    }
}
