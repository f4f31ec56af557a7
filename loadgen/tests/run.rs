//! The real `tidegate-loadgen` against a real `tidegate serve` it spawns:
//! short runs, checked through their JSON reports and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{loadgen, server_bin};

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    run_with_env(args, &[])
}

fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(loadgen())
        .arg("--spawn-server")
        .arg("--server-bin")
        .arg(server_bin())
        .args(args)
        // A small server: one shard, little I/O memory.
        .env("TIDEGATE_CORES", "0")
        .env("TIDEGATE_SHARD__IO_MEMORY", "1MiB")
        .env_remove("TIDEGATE_SERVER")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A run's `verify` block says every acknowledged message was consumed
/// once and in order, and that some were.
fn assert_verified_in_order(v: &serde_json::Value) {
    assert!(v["acked"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["consumed"], v["acked"], "{v}");
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["duplicated"], 0, "{v}");
    assert_eq!(v["out_of_order"], 0, "{v}");
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn open_loop_run_is_verified_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("open.json");
    let svg = dir.path().join("open.svg");
    let timeline_svg = dir.path().join("timeline.svg");
    let output = run(&[
        "--rate",
        "20000",
        "--batch",
        "100",
        "--linger",
        "2ms",
        "--ack",
        "written",
        "--warmup",
        "300ms",
        "--duration",
        "1s",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
        "--plot-timeline",
        timeline_svg.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let r = report(&json);
    let v = &r["verify"];
    assert_verified_in_order(v);
    assert_eq!(v["acked"], v["sent"]);
    // 20,000 msg/s for 1.3 s, give or take the schedule's edges.
    let sent = v["sent"].as_u64().unwrap();
    assert!((24_000..=28_000).contains(&sent), "{sent}");
    let produced = r["throughput"]["produce_msgs_per_s"].as_f64().unwrap();
    assert!(produced > 10_000.0, "{produced}");
    for latency in ["produce_ack", "end_to_end"] {
        let l = &r["latency_us"][latency];
        for p in ["p50", "p90", "p99", "p999", "p9999", "max"] {
            assert!(l[p].as_f64().unwrap() > 0.0, "{latency}.{p}: {l}");
        }
        assert!(l["p50"].as_f64() <= l["max"].as_f64());
    }
    assert_eq!(r["config"]["ack"], "written");
    assert_eq!(r["config"]["rate"], 20000.0);
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg"), "{plot:.100}");
    let plot = std::fs::read_to_string(&timeline_svg).unwrap();
    assert!(plot.starts_with("<svg"), "{plot:.100}");
    assert!(plot.contains("produce → ack p99"), "{plot:.100}");

    // Every CPU loadgen may run on was watched for hiccups over the 1 s
    // window (1 ms sleeps: at most about 1,000 each) and is in the table.
    let hiccups = r["hiccups"].as_array().unwrap();
    let cpus = tidegate_affinity::allowed_cpus().unwrap().len();
    assert_eq!(hiccups.len(), cpus, "{hiccups:?}");
    for h in hiccups {
        let samples = h["samples"].as_u64().unwrap();
        assert!((1..=1_001).contains(&samples), "{h}");
        assert!(h["p50_us"].as_f64() <= h["max_us"].as_f64(), "{h}");
        let cpu = h["cpu"].as_u64().unwrap();
        assert!(text(&output).contains(&format!("hiccups  CPU {cpu:<3} late")));
    }

    // Every CPU of the host, busy for some share of the window.
    let busy = r["cpu_busy"].as_array().unwrap();
    assert!(!busy.is_empty(), "{r}");
    for c in busy {
        let pct = c["busy_pct"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&pct), "{c}");
    }
    assert!(text(&output).contains("cpus     CPU "), "{}", text(&output));

    // Hints depend on the server's latency here (see the throttle test):
    // only that they are reported.
    let hints = r["flow"]["throttle_hints"].as_u64().unwrap();
    assert!(r["flow"]["throttled_ms_total"].as_u64().unwrap() >= hints);
    assert!(
        text(&output).contains(&format!("throttle hints {hints}")),
        "{}",
        text(&output)
    );

    // 1.3 s of sending: a full second, then 0.3 s.
    let timeline = r["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    let spans: Vec<f64> = timeline
        .iter()
        .map(|s| s["span_s"].as_f64().unwrap())
        .collect();
    assert_eq!(spans[0], 1.0);
    assert!((spans[1] - 0.3).abs() < 1e-6, "{spans:?}");
    let mut sent_in_timeline = 0.0;
    for (i, sample) in timeline.iter().enumerate() {
        assert_eq!(sample["t_s"].as_f64().unwrap(), i as f64);
        let rate = |field: &str| sample[field].as_f64().unwrap();
        sent_in_timeline += rate("produced_msgs_per_s") * spans[i];
        // Open loop at 20,000 msg/s: each second sends about that much.
        for field in [
            "produced_msgs_per_s",
            "acked_msgs_per_s",
            "consumed_msgs_per_s",
        ] {
            assert!(
                (10_000.0..=30_000.0).contains(&rate(field)),
                "second {i} {field}: {sample}"
            );
        }
        assert!(rate("produced_mb_per_s") > 0.0, "{sample}");
        let (p50, p99) = (rate("produce_ack_p50_us"), rate("produce_ack_p99_us"));
        assert!(p50 > 0.0 && p50 <= p99, "second {i}: {sample}");
        assert!(p99 < 10_000_000.0, "second {i}: {sample}");
        // Every second consumed something, so it has a longest wait.
        let longest = rate("end_to_end_max_us");
        assert!(
            longest > 0.0 && longest < 10_000_000.0,
            "second {i}: {sample}"
        );
        assert!(sample["throttle_hints"].as_u64().unwrap() <= hints);
    }
    // Everything sent before the end is in the timeline.
    let sent = sent as f64;
    assert!(
        (sent_in_timeline - sent).abs() <= sent * 0.01,
        "{sent_in_timeline} of {sent}"
    );

    let producers = r["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 1);
    assert_eq!(producers[0]["id"], 0);
    let p99 = producers[0]["produce_ack_p99_us"].as_f64().unwrap();
    assert_eq!(p99, r["latency_us"]["produce_ack"]["p99"].as_f64().unwrap());
}

#[test]
fn closed_loop_with_several_producers_partitions_and_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("closed.json");
    let output = run(&[
        "--producers",
        "2",
        "--partitions",
        "3",
        "--consumers",
        "2",
        "--batch",
        "200",
        "--in-flight",
        "3",
        "--idempotent",
        "--hiccups",
        "none",
        "--warmup",
        "200ms",
        "--duration",
        "1s",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let r = report(&json);
    assert_eq!(r["hiccups"], serde_json::json!([]), "nothing watched");
    assert!(!text(&output).contains("hiccups  CPU"));
    // Idempotent producers: every batch checked by the server, none
    // refused, none stored twice.
    assert!(
        r["config"]["idempotent"].as_bool().unwrap(),
        "{}",
        r["config"]
    );
    let v = &r["verify"];
    assert_verified_in_order(v);
    assert_eq!(r["host"]["spawned_server"], true);

    // One entry per producer, each on its own connection, each with a
    // share of the acknowledged messages: enough to judge fairness.
    let producers = r["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 2, "{producers:?}");
    let mut acked_measured = 0;
    for (id, p) in producers.iter().enumerate() {
        assert_eq!(p["id"], id);
        assert_eq!(p["connection"], id);
        let acked = p["acked"].as_u64().unwrap();
        assert!(acked > 0, "{p}");
        acked_measured += acked;
        let rate = p["acked_msgs_per_s"].as_f64().unwrap();
        let measured_s = r["measured_s"].as_f64().unwrap();
        assert!((rate - acked as f64 / measured_s).abs() < 1.0, "{p}");
        assert!(p["produce_ack_p99_us"].as_f64().unwrap() > 0.0, "{p}");
    }
    assert!(acked_measured <= v["acked"].as_u64().unwrap());
    let total_rate = r["throughput"]["produce_msgs_per_s"].as_f64().unwrap();
    let sum_rate: f64 = producers
        .iter()
        .map(|p| p["acked_msgs_per_s"].as_f64().unwrap())
        .sum();
    assert!(
        (sum_rate - total_rate).abs() <= total_rate * 0.1,
        "{sum_rate} vs {total_rate}"
    );
    assert!(text(&output).contains("producer 1"), "{}", text(&output));
    // Closed loop, 1.2 s of sending: two samples, and the run's acks are
    // in them (the last one's answer may come after the end).
    let timeline = r["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    for sample in timeline {
        assert!(
            sample["acked_msgs_per_s"].as_f64().unwrap() > 0.0,
            "{sample}"
        );
        assert!(
            sample["produce_ack_p99_us"].as_f64().unwrap() > 0.0,
            "{sample}"
        );
    }

    // compare: the report against itself is 1.00 everywhere it is measured.
    let compared = Command::new(loadgen())
        .args(["compare"])
        .arg(&json)
        .arg(&json)
        .output()
        .unwrap();
    assert!(compared.status.success(), "{}", text(&compared));
    let table = String::from_utf8(compared.stdout).unwrap();
    assert!(table.contains("1.00"), "{table}");
}

/// An idempotent producer pipelines batches to one partition (several in
/// flight, as the SDK's Producer); the server stores them in sequence
/// order, so the consumer sees every message once and in order.
#[test]
fn an_idempotent_producer_pipelines_one_partition_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("pipelined.json");
    let output = run(&[
        "--partitions",
        "1",
        "--batch",
        "100",
        "--in-flight",
        "4",
        "--idempotent",
        "--warmup",
        "200ms",
        "--duration",
        "1s",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let v = &report(&json)["verify"];
    assert_verified_in_order(v);
    assert_eq!(v["failed"], 0, "{v}");
}

/// A latency target no request can meet (docs/FLOW_CONTROL.md) makes the
/// server send a throttle hint with its answers to connections over their
/// share of the admission round: loadgen honours them,
/// counts them in every view, and still verifies every message.
#[test]
fn throttle_hints_from_the_server_are_counted_and_the_run_verified() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("throttled.json");
    let output = run_with_env(
        &[
            "--producers",
            "2",
            "--partitions",
            "2",
            "--rate",
            "10000",
            "--batch",
            "100",
            // Full batches (10 KB), not what 1 ms of the rate makes.
            "--linger",
            "50ms",
            "--ack",
            "written",
            "--warmup",
            "300ms",
            "--duration",
            "1s",
            "--json",
            json.to_str().unwrap(),
        ],
        // A target no request meets, and a window and quantum smaller than
        // what the producers keep in flight (2 × 2 requests of about 10
        // KB): requests wait for admission beyond their connection's
        // quantum, which is what gets a connection hinted.
        &[
            ("TIDEGATE_FLOW__LATENCY_TARGET", "1us"),
            ("TIDEGATE_FLOW__MIN_WINDOW", "8KiB"),
            ("TIDEGATE_FLOW__QUANTUM", "4KiB"),
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let r = report(&json);
    assert_eq!(r["verify"]["lost"], 0);
    assert_eq!(r["verify"]["acked"], r["verify"]["sent"]);
    let hints = r["flow"]["throttle_hints"].as_u64().unwrap();
    let throttled_ms = r["flow"]["throttled_ms_total"].as_u64().unwrap();
    assert!(hints > 0, "{}", r["flow"]);
    // Each hint is at least a millisecond (the wire's unit), at most 1 s.
    assert!(
        (hints..=hints * 1_000).contains(&throttled_ms),
        "{}",
        r["flow"]
    );
    let producers = r["producers"].as_array().unwrap();
    let of = |field: &str| -> u64 { producers.iter().map(|p| p[field].as_u64().unwrap()).sum() };
    assert_eq!(of("throttle_hints"), hints);
    assert_eq!(of("throttled_ms_total"), throttled_ms);
    // The timeline has the hints of the sending period (not those of
    // answers after the end).
    let in_timeline: u64 = r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["throttle_hints"].as_u64().unwrap())
        .sum();
    assert!(
        in_timeline > 0 && in_timeline <= hints,
        "{in_timeline} of {hints}"
    );
    assert!(
        text(&output).contains(&format!("throttle hints {hints}")),
        "{}",
        text(&output)
    );
}

#[test]
fn bad_arguments_exit_2_and_an_unreadable_ca_exits_1() {
    let output = Command::new(loadgen())
        .args(["--msg-size", "10"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("--msg-size"));

    // An error before any measuring (here the CA cannot be read; an
    // unreachable server would only time out after 10 s) exits 1 and names
    // its cause.
    let output = Command::new(loadgen())
        .args(["--server", "127.0.0.1:9", "--ca", "/nonexistent/ca.pem"])
        .args(["--duration", "1s"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("/nonexistent/ca.pem"),
        "{}",
        text(&output)
    );
}

/// Both ways of reading a subscription, pulled and pushed, each with two
/// subscribers sharing it and a stream consumer beside them: every
/// acknowledged message consumed once by the subscribers and once by the
/// stream consumer, each checked on its own.
#[test]
fn subscription_and_push_modes_verify_every_message() {
    for mode in ["subscription", "push"] {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("sub.json");
        let output = run(&[
            "--mode",
            mode,
            "--partitions",
            "2",
            "--consumers",
            "2",
            "--batch",
            "100",
            "--warmup",
            "200ms",
            "--duration",
            "1s",
            "--with-stream",
            "--json",
            json.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{mode}: {}", text(&output));
        let r = report(&json);
        assert_eq!(r["config"]["mode"], mode, "{}", r["config"]);
        let v = &r["verify"];
        assert!(v["acked"].as_u64().unwrap() > 0, "{mode}: {v}");
        assert_eq!(v["consumed"], v["acked"], "{mode}: {v}");
        assert_eq!(v["lost"], 0, "{mode}: {v}");
        assert_eq!(v["duplicated"], 0, "{mode}: {v}");
        let beside = &r["stream_beside"];
        let b = &beside["verify"];
        assert_eq!(b["consumed"], v["acked"], "{mode}: {beside}");
        assert_eq!(
            (&b["lost"], &b["duplicated"]),
            (&0.into(), &0.into()),
            "{mode}: {beside}"
        );
        assert!(
            beside["consume_msgs_per_s"].as_f64().unwrap() > 0.0,
            "{mode}: {beside}"
        );
        assert!(text(&output).contains("stream beside"), "{}", text(&output));
    }
}
