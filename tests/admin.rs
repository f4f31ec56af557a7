//! The admin HTTP server of the real binary: health, readiness, Prometheus
//! metrics after real QUIC traffic, and a clear failure when its port is
//! taken.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use support::{
    admin_addr, batch_of, connect, decode, http_get, metrics_until, runtime, start, Client,
};
use tidegate_proto::protocol::{AckLevel, Response};

/// The value of the first sample of `name` carrying every label of `labels`.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        let (series, value) = rest.rsplit_once(' ')?;
        let all = labels
            .iter()
            .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")));
        all.then(|| value.parse().ok()).flatten()
    })
}

fn ready_within(admin: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = http_get(admin, "/readyz");
        if status == 200 {
            assert_eq!(body.trim(), "ready");
            return;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "never ready: {body}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn create(client: &Client, topic: &str, partitions: u32) {
    let response = client.create_topic(topic, partitions).await;
    assert!(matches!(decode(&response), Response::CreateTopic));
}

/// Produces `batches` batches of `records` records to `partition`.
async fn produce(client: &Client, topic: &str, partition: u32, batches: usize, records: usize) {
    for b in 0..batches {
        let values: Vec<Vec<u8>> = (0..records)
            .map(|r| format!("{topic}-{partition}-{b}-{r}").into_bytes())
            .collect();
        let results = client
            .produce(topic, partition, AckLevel::Durable, &batch_of(&values))
            .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
}

#[test]
fn healthz_and_readyz_answer_and_unknown_paths_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0");
    let admin = admin_addr(&server);
    assert_eq!(http_get(admin, "/healthz"), (200, "ok\n".to_string()));
    ready_within(admin);
    assert_eq!(http_get(admin, "/no-such-page").0, 404);
    assert!(server.stop().success());
}

#[test]
fn metrics_show_partition_and_shard_series_after_producing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0");
    let admin = admin_addr(&server);
    let rt = runtime();
    let client = rt.block_on(connect(&server));
    rt.block_on(create(&client, "events", 2));
    rt.block_on(produce(&client, "events", 0, 5, 10));
    rt.block_on(produce(&client, "events", 1, 2, 10));

    let p0 = [("shard", "0"), ("topic", "events"), ("partition", "0")];
    let hw = "tidegate_partition_high_watermark";
    let first = metrics_until(admin, "high watermark 50", |m| {
        sample(m, hw, &p0) == Some(50.0)
    });
    let p1 = [("topic", "events"), ("partition", "1")];
    assert_eq!(sample(&first, hw, &p1), Some(20.0));
    assert_eq!(
        sample(&first, "tidegate_partition_durable_watermark", &p0),
        Some(50.0)
    );
    assert_eq!(
        sample(&first, "tidegate_partition_written_messages_total", &p0),
        Some(50.0)
    );
    assert_eq!(
        sample(&first, "tidegate_partition_appended_batches_total", &p0),
        Some(5.0)
    );
    assert_eq!(
        sample(&first, "tidegate_partition_write_queue_messages", &p0),
        Some(0.0)
    );
    assert!(sample(&first, "tidegate_partition_fdatasyncs_total", &p0).unwrap() >= 1.0);
    assert!(sample(&first, "tidegate_partition_fdatasync_seconds_total", &p0).unwrap() > 0.0);
    // The latency histogram counts every one of those fdatasyncs.
    let syncs = sample(&first, "tidegate_partition_fdatasyncs_total", &p0);
    let fdatasync = "tidegate_partition_fdatasync_latency_seconds";
    assert_eq!(sample(&first, &format!("{fdatasync}_count"), &p0), syncs);
    let inf = [p0[0], p0[1], p0[2], ("le", "+Inf")];
    assert_eq!(sample(&first, &format!("{fdatasync}_bucket"), &inf), syncs);
    assert!(sample(&first, "tidegate_partition_read_messages_total", &p0).is_some());
    // Just written, so the tail cache holds it: the fetch reads no disk.
    let cached = "tidegate_partition_read_cache_bytes";
    assert!(sample(&first, cached, &p0).unwrap() > 0.0);
    let (_, fetched) = rt.block_on(client.fetch("events", 0, 0, 0));
    assert!(!fetched.is_empty());
    let reads_cached = "tidegate_partition_reads_cached_total";
    metrics_until(admin, "a read answered from the tail cache", |m| {
        sample(m, reads_cached, &p0).is_some_and(|n| n >= 1.0)
    });
    let bytes = "tidegate_partition_written_bytes_total";
    let bytes_before = sample(&first, bytes, &p0).unwrap();
    assert!(bytes_before > 0.0);
    let produce_kind = [("shard", "0"), ("kind", "produce")];
    assert_eq!(
        sample(&first, "tidegate_requests_total", &produce_kind),
        Some(7.0)
    );
    let latency = "tidegate_produce_latency_seconds_count";
    assert_eq!(sample(&first, latency, &[("shard", "0")]), Some(7.0));
    let conns = sample(&first, "tidegate_quic_connections", &[("shard", "0")]);
    assert_eq!(conns, Some(1.0));
    assert!(
        sample(
            &first,
            "tidegate_quic_datagrams_in_total",
            &[("shard", "0")]
        )
        .unwrap()
            > 0.0
    );
    let accepted = "tidegate_quic_connections_accepted_total";
    assert_eq!(sample(&first, accepted, &[("shard", "0")]), Some(1.0));

    // More messages: the counters and the watermark move on.
    rt.block_on(produce(&client, "events", 0, 3, 10));
    let second = metrics_until(admin, "high watermark 80", |m| {
        sample(m, hw, &p0) == Some(80.0)
    });
    assert_eq!(
        sample(&second, "tidegate_partition_written_messages_total", &p0),
        Some(80.0)
    );
    assert!(sample(&second, bytes, &p0).unwrap() > bytes_before);
    assert_eq!(
        sample(&second, "tidegate_requests_total", &produce_kind),
        Some(10.0)
    );
    drop(client);
    assert!(server.stop().success());
}

#[test]
fn request_errors_are_counted_by_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0");
    let admin = admin_addr(&server);
    let rt = runtime();
    let client = rt.block_on(connect(&server));
    let response = rt.block_on(client.create_topic("bad name!", 1));
    assert!(matches!(decode(&response), Response::Error(_)));
    let labels = [
        ("shard", "0"),
        ("kind", "create_topic"),
        ("code", "invalid_topic_name"),
    ];
    metrics_until(admin, "one invalid_topic_name error", |m| {
        sample(m, "tidegate_request_errors_total", &labels) == Some(1.0)
    });
    assert!(server.stop().success());
}

#[test]
fn two_shards_each_publish_their_series() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0-1");
    let admin = admin_addr(&server);
    ready_within(admin);
    let rt = runtime();
    let client = rt.block_on(connect(&server));
    rt.block_on(create(&client, "spread", 8));
    for partition in 0..8 {
        rt.block_on(produce(&client, "spread", partition, 1, 4));
    }
    let hw = "tidegate_partition_high_watermark";
    let metrics = metrics_until(admin, "all 8 partitions at 4", |m| {
        (0..8).all(|p| {
            let p = p.to_string();
            sample(m, hw, &[("topic", "spread"), ("partition", p.as_str())]) == Some(4.0)
        })
    });
    for shard in ["0", "1"] {
        let s = [("shard", shard)];
        assert_eq!(sample(&metrics, "tidegate_shard_serving", &s), Some(1.0));
        assert!(sample(&metrics, "tidegate_quic_connections", &s).is_some());
        let requests = [("shard", shard), ("kind", "produce")];
        assert!(sample(&metrics, "tidegate_requests_total", &requests).is_some());
        assert!(sample(&metrics, "tidegate_produce_latency_seconds_count", &s).is_some());
    }
    // Each partition is reported once, by the shard that owns it; with
    // 8 partitions placement gives each shard some.
    let owned = |shard: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with(hw) && l.contains(&format!("shard=\"{shard}\"")))
            .count()
    };
    assert_eq!(owned("0") + owned("1"), 8);
    assert!(owned("0") > 0 && owned("1") > 0, "{metrics}");
    drop(client);
    assert!(server.stop().success());
}

#[test]
fn a_taken_admin_port_fails_startup_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", &addr])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("TIDEGATE_CORES", "0")
        .env("TIDEGATE_SHARD__IO_MEMORY", "1MiB")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tidegate serve kept running with its admin port taken");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("admin HTTP cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on quic://"), "{stderr}");
    drop(taken);
}
