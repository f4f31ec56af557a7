//! The hub and the rendered exposition, checked line by line against the
//! Prometheus text format (0.0.4) and our naming conventions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use tidegate_proto::protocol::{ErrorCode, Kind};

use super::*;

/// One parsed sample: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `{k="v",...}` with `\\`, `\"` and `\n` escapes; returns the labels and
/// the rest of the line.
fn parse_labels(s: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = s.strip_prefix('{') else {
        return (labels, s);
    };
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let eq = rest.find('=').expect("label has '='");
        let key = &rest[..eq];
        assert!(valid_name(key) && !key.contains(':'), "label name {key:?}");
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .expect("quoted label value");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().expect("closed label value") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("bad escape \\{c}"),
                },
                (_, c) => value.push(c),
            }
        };
        assert!(
            labels.insert(key.to_string(), value).is_none(),
            "duplicate label {key}"
        );
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_value(s: &str) -> f64 {
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().unwrap_or_else(|_| panic!("value {other:?}")),
    }
}

/// Parses an exposition, asserting the format rules and the conventions of
/// BRIEF.md; returns families (name -> type) and samples.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut helped = HashSet::new();
    let mut samples = Vec::new();
    let mut current: Option<(String, String)> = None;
    assert!(text.ends_with('\n'), "exposition ends with a newline");
    for line in text.lines() {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let name = help.split(' ').next().expect("help names a metric");
            assert!(helped.insert(name.to_string()), "HELP twice for {name}");
        } else if let Some(ty) = line.strip_prefix("# TYPE ") {
            let (name, kind) = ty.split_once(' ').expect("TYPE name kind");
            assert!(valid_name(name), "metric name {name:?}");
            assert!(
                name.starts_with("tidegate_"),
                "{name} has the tidegate_ prefix"
            );
            assert!(helped.contains(name), "{name} has HELP before TYPE");
            assert!(
                matches!(kind, "counter" | "gauge" | "histogram"),
                "type {kind}"
            );
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} ends in _total");
            } else {
                assert!(
                    !name.ends_with("_total"),
                    "{kind} {name} does not end in _total"
                );
            }
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice for {name}"
            );
            current = Some((name.to_string(), kind.to_string()));
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "line {line:?}");
            let end = line.find(['{', ' ']).expect("sample has a value");
            let name = &line[..end];
            let (labels, rest) = parse_labels(&line[end..]);
            let value = parse_value(rest.strip_prefix(' ').expect("space before value"));
            let (family, kind) = current.as_ref().expect("sample after its TYPE");
            let ok = match kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name == format!("{family}{suffix}")),
                _ => name == family,
            };
            assert!(ok, "sample {name} belongs to family {family}");
            samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
    }
    (types, samples)
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    find(samples, name, labels)
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
        .value
}

fn example(shard: usize) -> ShardSnapshot {
    let mut requests = RequestSnapshot::default();
    let produce = kind_index(Kind::Produce.request_code());
    requests.total[produce] = 7;
    requests.bytes_in[produce] = 7_000;
    requests.errors[produce][code_index(ErrorCode::UnknownTopic)] = 2;
    requests.produce_batch_errors[code_index(ErrorCode::CorruptBatch)] = 1;
    let mut produce_latency = HistogramSnapshot::default();
    produce_latency.counts[0] = 3; // <= 100 µs
    produce_latency.counts[3] = 4; // <= 1 ms
    produce_latency.sum_ns = 2_500_000;
    ShardSnapshot {
        shard,
        published: Some(Instant::now()),
        serving: true,
        requests,
        produce_latency,
        quic: QuicSnapshot {
            connections: 2,
            accepted_total: 5,
            datagrams_dropped_total: 7,
            refused_total: 9,
            refused_per_address_total: 3,
            refused_handshakes_total: 4,
            retries_sent_total: 11,
            handshakes: 6,
            handshake_timeouts_total: 8,
            ..QuicSnapshot::default()
        },
        auth: AuthSnapshot {
            failures: [0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            denied: [0, 3, 0, 0],
        },
        flow: crate::flow::FlowStats {
            enabled: true,
            window_bytes: 300_000,
            target_us: 5_000,
            latency_us: 4_200,
            throttle_hints_total: 12,
            ..crate::flow::FlowStats::default()
        },
        write_gate: tidegate_queue::GateStats {
            enabled: true,
            limit_bytes: 100_000,
            in_flight_bytes: 65_536,
            writes_total: 40,
            writes_waited_total: 9,
            syncs_in_flight: 1,
            syncs_total: 30,
            syncs_waited_total: 12,
            sync_barriers_total: 3,
        },
        admitted_by_principal: vec![("svc-orders".into(), 4_096)],
        partitions: vec![PartitionSnapshot {
            topic: "events".into(),
            partition: 2,
            high_watermark: 42,
            durable_watermark: 40,
            next_offset: 45,
            messages_written_total: 42,
            bytes_written_total: 4096,
            fdatasyncs_total: 3,
            fdatasync_latency: fdatasync_example(),
            group_lag: vec![("billing".into(), 5)],
            dedup_markers_total: 3,
            segments_prepared_total: 2,
            rolls_total: 4,
            roll_seconds_total: 0.5,
            reads_cached_total: 7,
            segments_open: 3,
            segment_opens_total: 9,
            ..PartitionSnapshot::default()
        }],
        subscription_messages: [10, 2, 9, 5, 1, 1],
        subscription_windows: vec![WindowSnapshot {
            subscription: "billing".into(),
            partition: 2,
            backlog: 17,
            outstanding: 3,
            full: true,
            delayed: 6,
        }],
        push_streams: 2,
        push_streams_max: 256,
        pushed_messages_total: 40,
    }
}

/// Three fdatasyncs: one of 50 µs, one of 300 µs, one of 5 s.
fn fdatasync_example() -> FdatasyncHistogram {
    let mut h = FdatasyncHistogram::default();
    h.counts[0] = 1; // <= 50 µs
    h.counts[3] = 1; // <= 400 µs
    h.counts[FDATASYNC_LATENCY_BUCKETS_US.len()] = 1; // +Inf
    h.sum_ns = 5_000_350_000;
    h
}

#[test]
fn rendered_metrics_follow_the_text_format_and_naming_conventions() {
    let text = render(vec![example(0), example(1)], Instant::now()).expect("renders");
    let (types, samples) = parse(&text);
    assert_eq!(
        types.get("tidegate_requests_total").map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        types.get("tidegate_quic_connections").map(String::as_str),
        Some("gauge")
    );
    let histogram = types.get("tidegate_produce_latency_seconds");
    assert_eq!(histogram.map(String::as_str), Some("histogram"));
    for name in types.keys() {
        let unit_ok =
            !name.contains("bytes") || name.ends_with("_bytes") || name.ends_with("_bytes_total");
        assert!(unit_ok, "{name}: the unit comes last (before _total)");
    }
    for s in &samples {
        assert!(
            s.labels.contains_key("shard"),
            "{} has a shard label",
            s.name
        );
    }
    assert!(samples.len() > 40);
}

#[test]
fn rendered_values_are_the_snapshot_values() {
    let text = render(vec![example(0), example(1)], Instant::now()).expect("renders");
    let (_, samples) = parse(&text);
    for shard in ["0", "1"] {
        let p = [("shard", shard), ("topic", "events"), ("partition", "2")];
        assert_eq!(
            value(&samples, "tidegate_partition_high_watermark", &p),
            42.0
        );
        assert_eq!(
            value(&samples, "tidegate_partition_durable_watermark", &p),
            40.0
        );
        assert_eq!(
            value(&samples, "tidegate_partition_write_queue_messages", &p),
            3.0
        );
        assert_eq!(
            value(&samples, "tidegate_partition_written_bytes_total", &p),
            4096.0
        );
        assert_eq!(
            value(&samples, "tidegate_partition_fdatasyncs_total", &p),
            3.0
        );
        assert_eq!(
            value(&samples, "tidegate_partition_dedup_markers_total", &p),
            3.0
        );
        assert_eq!(
            value(&samples, "tidegate_partition_segments_prepared_total", &p),
            2.0
        );
        assert_eq!(value(&samples, "tidegate_partition_rolls_total", &p), 4.0);
        assert_eq!(
            value(&samples, "tidegate_partition_roll_seconds_total", &p),
            0.5
        );
        assert_eq!(
            value(&samples, "tidegate_partition_reads_cached_total", &p),
            7.0
        );
        assert_eq!(value(&samples, "tidegate_partition_segments_open", &p), 3.0);
        assert_eq!(
            value(&samples, "tidegate_partition_segment_opens_total", &p),
            9.0
        );
        let sub = [
            ("shard", shard),
            ("subscription", "billing"),
            ("partition", "2"),
        ];
        let sub_gauges = [
            ("tidegate_subscription_backlog_messages", 17.0),
            ("tidegate_subscription_outstanding_messages", 3.0),
            ("tidegate_subscription_window_full", 1.0),
            ("tidegate_subscription_delayed_messages", 6.0),
        ];
        for (name, expected) in sub_gauges {
            assert_eq!(value(&samples, name, &sub), expected, "{name}");
        }
        let push = [
            ("tidegate_subscription_push_streams", 2.0),
            ("tidegate_subscription_push_streams_max", 256.0),
            ("tidegate_subscription_pushed_messages_total", 40.0),
        ];
        for (name, expected) in push {
            assert_eq!(
                value(&samples, name, &[("shard", shard)]),
                expected,
                "{name}"
            );
        }
        let lag = [
            ("shard", shard),
            ("topic", "events"),
            ("partition", "2"),
            ("group", "billing"),
        ];
        assert_eq!(value(&samples, "tidegate_group_lag_messages", &lag), 5.0);
        let acked = [("shard", shard), ("outcome", "acked")];
        assert_eq!(
            value(&samples, "tidegate_subscription_messages_total", &acked),
            9.0
        );
        let produce = [("shard", shard), ("kind", "produce")];
        assert_eq!(value(&samples, "tidegate_requests_total", &produce), 7.0);
        assert_eq!(
            value(&samples, "tidegate_request_bytes_total", &produce),
            7000.0
        );
        let fetch = [("shard", shard), ("kind", "fetch")];
        assert_eq!(
            value(&samples, "tidegate_requests_total", &fetch),
            0.0,
            "known kinds show zeros"
        );
        let unknown_topic = [
            ("shard", shard),
            ("kind", "produce"),
            ("code", "unknown_topic"),
        ];
        assert_eq!(
            value(&samples, "tidegate_request_errors_total", &unknown_topic),
            2.0
        );
        let corrupt = [("shard", shard), ("code", "corrupt_batch")];
        assert_eq!(
            value(&samples, "tidegate_produce_batch_errors_total", &corrupt),
            1.0
        );
        let s = [("shard", shard)];
        assert_eq!(value(&samples, "tidegate_quic_connections", &s), 2.0);
        assert_eq!(
            value(&samples, "tidegate_quic_datagrams_dropped_total", &s),
            7.0
        );
        assert_eq!(
            value(&samples, "tidegate_quic_connections_accepted_total", &s),
            5.0
        );
        let front_door = [
            ("tidegate_quic_connections_refused_total", 9.0),
            ("tidegate_quic_connections_refused_per_address_total", 3.0),
            ("tidegate_quic_connections_refused_handshakes_total", 4.0),
            ("tidegate_quic_retries_sent_total", 11.0),
            ("tidegate_quic_handshakes", 6.0),
            ("tidegate_quic_handshake_timeouts_total", 8.0),
        ];
        for (name, want) in front_door {
            assert_eq!(value(&samples, name, &s), want, "{name}");
        }
        assert_eq!(value(&samples, "tidegate_flow_window_bytes", &s), 300_000.0);
        assert_eq!(value(&samples, "tidegate_flow_latency_seconds", &s), 0.0042);
        let disk = [
            ("tidegate_flow_disk_limit_bytes", 100_000.0),
            ("tidegate_flow_disk_inflight_bytes", 65_536.0),
            ("tidegate_flow_disk_writes_total", 40.0),
            ("tidegate_flow_disk_writes_waited_total", 9.0),
            ("tidegate_flow_disk_syncs_inflight", 1.0),
            ("tidegate_flow_disk_syncs_total", 30.0),
            ("tidegate_flow_disk_syncs_waited_total", 12.0),
            ("tidegate_flow_disk_sync_barriers_total", 3.0),
        ];
        for (name, want) in disk {
            assert_eq!(value(&samples, name, &s), want, "{name}");
        }
        assert_eq!(
            value(&samples, "tidegate_flow_throttle_hints_total", &s),
            12.0
        );
        let svc = [("shard", shard), ("principal", "svc-orders")];
        assert_eq!(
            value(
                &samples,
                "tidegate_flow_principal_admitted_bytes_total",
                &svc
            ),
            4096.0
        );
        let expired = [("shard", shard), ("reason", "expired")];
        assert_eq!(
            value(&samples, "tidegate_auth_failures_total", &expired),
            2.0
        );
        let consume = [("shard", shard), ("operation", "consume")];
        assert_eq!(value(&samples, "tidegate_auth_denied_total", &consume), 3.0);
        assert_eq!(value(&samples, "tidegate_shard_serving", &s), 1.0);
        assert!(value(&samples, "tidegate_shard_snapshot_age_seconds", &s) < 60.0);
    }
    let unknown = [("kind", "unknown")];
    assert!(
        find(&samples, "tidegate_requests_total", &unknown).is_none(),
        "no series for an unused unknown slot"
    );
}

#[test]
fn the_latency_histogram_is_cumulative_with_fixed_buckets() {
    let text = render(vec![example(0)], Instant::now()).expect("renders");
    let (_, samples) = parse(&text);
    let buckets: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "tidegate_produce_latency_seconds_bucket")
        .collect();
    assert_eq!(buckets.len(), LATENCY_SLOTS);
    let bounds: Vec<f64> = buckets
        .iter()
        .map(|b| parse_value(&b.labels["le"]))
        .collect();
    let expected: Vec<f64> = LATENCY_BUCKETS_US
        .iter()
        .map(|us| *us as f64 / 1e6)
        .chain([f64::INFINITY])
        .collect();
    assert_eq!(bounds, expected);
    assert!(
        buckets.windows(2).all(|w| w[0].value <= w[1].value),
        "cumulative"
    );
    assert_eq!(
        value(
            &samples,
            "tidegate_produce_latency_seconds_bucket",
            &[("le", "0.0001")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &samples,
            "tidegate_produce_latency_seconds_bucket",
            &[("le", "0.001")]
        ),
        7.0
    );
    assert_eq!(
        value(
            &samples,
            "tidegate_produce_latency_seconds_bucket",
            &[("le", "+Inf")]
        ),
        7.0
    );
    assert_eq!(
        value(&samples, "tidegate_produce_latency_seconds_count", &[]),
        7.0
    );
    assert!((value(&samples, "tidegate_produce_latency_seconds_sum", &[]) - 0.0025).abs() < 1e-12);
}

#[test]
fn label_values_are_escaped() {
    let mut snapshot = example(0);
    snapshot.partitions[0].topic = "a\"b\\c\nd".into();
    let text = render(vec![snapshot], Instant::now()).expect("renders");
    let (_, samples) = parse(&text);
    let p = [("topic", "a\"b\\c\nd")];
    assert_eq!(
        value(&samples, "tidegate_partition_high_watermark", &p),
        42.0
    );
}

#[test]
fn the_hub_is_ready_once_every_shard_published_serving() {
    let hub = MetricsHub::new(2);
    assert_eq!(hub.all_serving(), Err(vec![0, 1]));
    hub.publish(example(1));
    assert_eq!(hub.all_serving(), Err(vec![0]));
    hub.publish(example(0));
    assert_eq!(hub.all_serving(), Ok(()));
    let mut draining = example(0);
    draining.serving = false;
    hub.publish(draining);
    assert_eq!(hub.all_serving(), Err(vec![0]));
    let gathered = hub.gather();
    assert_eq!(
        gathered.iter().map(|s| s.shard).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(gathered[1].partitions[0].high_watermark, 42);
}

#[test]
fn a_shard_that_never_published_shows_no_snapshot_age() {
    let hub = MetricsHub::new(1);
    let text = render(hub.gather(), Instant::now() + Duration::from_secs(5)).expect("renders");
    let (_, samples) = parse(&text);
    assert!(find(&samples, "tidegate_shard_snapshot_age_seconds", &[]).is_none());
    assert_eq!(
        value(&samples, "tidegate_shard_serving", &[("shard", "0")]),
        0.0
    );
}

#[test]
fn the_fdatasync_histogram_is_cumulative_per_partition_with_the_logs_buckets() {
    let text = render(vec![example(0), example(1)], Instant::now()).expect("renders");
    let (types, samples) = parse(&text);
    let family = "tidegate_partition_fdatasync_latency_seconds";
    assert_eq!(types.get(family).map(String::as_str), Some("histogram"));
    let bucket = format!("{family}_bucket");
    for shard in ["0", "1"] {
        let p = [("shard", shard), ("topic", "events"), ("partition", "2")];
        let buckets: Vec<&Sample> = samples
            .iter()
            .filter(|s| {
                s.name == bucket
                    && p.iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert_eq!(buckets.len(), FDATASYNC_LATENCY_BUCKETS_US.len() + 1);
        let bounds: Vec<f64> = buckets
            .iter()
            .map(|b| parse_value(&b.labels["le"]))
            .collect();
        let expected: Vec<f64> = FDATASYNC_LATENCY_BUCKETS_US
            .iter()
            .map(|us| *us as f64 / 1e6)
            .chain([f64::INFINITY])
            .collect();
        assert_eq!(bounds, expected, "le in seconds, ascending, ending in +Inf");
        let cumulative: Vec<f64> = buckets.iter().map(|b| b.value).collect();
        let mut want = vec![1.0; 3];
        want.extend([2.0; 12]);
        want.extend([2.0, 3.0]);
        assert_eq!(cumulative, want, "cumulative: 50 µs, 400 µs, +Inf");
        let count = value(&samples, &format!("{family}_count"), &p);
        assert_eq!(count, 3.0, "_count is the +Inf bucket");
        let sum = value(&samples, &format!("{family}_sum"), &p);
        assert!((sum - 5.00035).abs() < 1e-9, "_sum in seconds: {sum}");
    }
}
