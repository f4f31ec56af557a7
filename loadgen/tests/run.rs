//! The real `tidegate-loadgen` against a real `tidegate serve` it spawns:
//! short runs, checked through their JSON reports and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn loadgen() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tidegate-loadgen"))
}

/// The server binary beside loadgen's; built first when missing (a run of
/// only this package's tests does not build it).
fn server_bin() -> PathBuf {
    let bin = loadgen().with_file_name("tidegate");
    if !bin.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "tidegate", "--bin", "tidegate"])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .status()
            .unwrap();
        assert!(status.success());
    }
    bin
}

fn run(args: &[&str]) -> Output {
    Command::new(loadgen())
        .arg("--spawn-server")
        .arg("--server-bin")
        .arg(server_bin())
        .args(args)
        // A small server: one shard, little I/O memory.
        .env("TIDEGATE_CORES", "0")
        .env("TIDEGATE_SHARD__IO_MEMORY", "1MiB")
        .env_remove("TIDEGATE_SERVER")
        .output()
        .unwrap()
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
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
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let r = report(&json);
    let v = &r["verify"];
    assert_eq!(v["lost"], 0);
    assert_eq!(v["duplicated"], 0);
    assert_eq!(v["out_of_order"], 0);
    assert_eq!(v["acked"], v["sent"]);
    assert_eq!(v["consumed"], v["acked"]);
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
        "--warmup",
        "200ms",
        "--duration",
        "1s",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let r = report(&json);
    let v = &r["verify"];
    assert!(v["acked"].as_u64().unwrap() > 0);
    assert_eq!(v["consumed"], v["acked"]);
    assert_eq!(v["lost"], 0);
    assert_eq!(v["out_of_order"], 0);
    assert_eq!(r["host"]["spawned_server"], true);

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
