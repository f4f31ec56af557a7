//! The client commands of the real binary (`topic`, `produce`, `consume`)
//! against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    path::PathBuf,
    process::{Command, Output, Stdio},
};

use serde_json::Value;
use support::{start, Server};

/// Runs `tidegate ARGS --server ADDR --ca CERT`, with `stdin` as input.
fn run(server: &Server, args: &[&str], stdin: &[u8]) -> Output {
    let cert: PathBuf = server.data_dir.join("tls/dev-cert.pem");
    let mut full: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    full.extend([
        "--server".into(),
        server.addr.to_string(),
        "--ca".into(),
        cert.display().to_string(),
    ]);
    run_raw(&full, stdin)
}

fn run_raw(args: &[String], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args(args)
        .env_remove("TIDEGATE_SERVER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}, stderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn topics_produce_consume_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0");

    // topic create / list / describe
    ok(&run(
        &server,
        &["topic", "create", "lines", "--partitions", "2"],
        b"",
    ));
    let list = ok(&run(&server, &["topic", "list"], b""));
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["lines", "2"]),
        "{list}"
    );
    let list: Value = serde_json::from_str(&ok(&run(
        &server,
        &["topic", "list", "--format", "json"],
        b"",
    )))
    .unwrap();
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "lines" && t["partitions"] == 2));
    let describe: Value = serde_json::from_str(&ok(&run(
        &server,
        &["topic", "describe", "lines", "--format", "json"],
        b"",
    )))
    .unwrap();
    assert_eq!(describe["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(describe["partitions"][1]["latest"], 0);
    let text = ok(&run(&server, &["topic", "describe", "lines"], b""));
    assert!(
        text.contains("EARLIEST") && text.contains("DURABLE"),
        "{text}"
    );
    // A topic's own settings reach the server: good ones are taken, and
    // the server names the one it refuses.
    let settings = [
        "--retention",
        "7d",
        "--retention-bytes",
        "1GiB",
        "--segment-bytes",
        "8MiB",
        "--message-ttl",
        "1h",
        "--dedup-window",
        "2m",
    ];
    let mut create = vec!["topic", "create", "tuned", "-p", "1"];
    create.extend_from_slice(&settings);
    ok(&run(&server, &create, b""));
    // ... and describe shows them back.
    let text = ok(&run(&server, &["topic", "describe", "tuned"], b""));
    assert!(
        text.contains(
            "settings: retention 7days, retention-bytes 1GiB, segment-bytes 8MiB, \
             message-ttl 1h, dedup-window 2m"
        ),
        "{text}"
    );
    let tuned: Value = serde_json::from_str(&ok(&run(
        &server,
        &["topic", "describe", "tuned", "--format", "json"],
        b"",
    )))
    .unwrap();
    assert_eq!(tuned["settings"]["dedup_window_ms"], 120_000, "{tuned}");
    assert_eq!(tuned["settings"]["segment_bytes"], 8 << 20, "{tuned}");
    assert_eq!(
        describe["settings"]["retention_ms"],
        Value::Null,
        "{describe}"
    );
    for (flag, value, named) in [
        ("--segment-bytes", "1KiB", "segment_bytes"),
        ("--message-ttl", "0s", "message_ttl_ms"),
        ("--dedup-window", "8d", "dedup_window_ms"),
    ] {
        let refused = run(
            &server,
            &["topic", "create", "bad", "-p", "1", flag, value],
            b"",
        );
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(named), "{stderr}");
    }

    // produce 1,000 lines without keys: spread over both partitions
    let lines: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
    let input = lines.join("\n") + "\n";
    let produced = run(
        &server,
        &["produce", "lines", "--format", "json"],
        input.as_bytes(),
    );
    ok(&produced);
    let summary: Value = serde_json::from_slice(&produced.stderr).unwrap();
    assert_eq!(summary["messages"], 1000, "{summary}");
    assert_eq!(summary["failed"], 0);

    // consume them back as text: the same set of lines
    let text = ok(&run(
        &server,
        &["consume", "lines", "--from", "earliest", "--count", "1000"],
        b"",
    ));
    let got: BTreeSet<&str> = text.lines().collect();
    let want: BTreeSet<&str> = lines.iter().map(String::as_str).collect();
    assert_eq!(text.lines().count(), 1000);
    assert_eq!(got, want);

    // and as JSON: per partition, offsets dense and increasing, and each
    // partition's lines in the order they were produced
    let json = ok(&run(
        &server,
        &["consume", "lines", "--format", "json"],
        b"",
    ));
    let mut per_partition: BTreeMap<u64, Vec<(u64, usize)>> = BTreeMap::new();
    for line in json.lines() {
        let m: Value = serde_json::from_str(line).unwrap();
        assert_eq!(m["topic"], "lines");
        assert!(m["key"].is_null());
        assert!(m["timestamp_ms"].as_i64().unwrap() > 0);
        let value = m["value"].as_str().unwrap();
        let index: usize = value.strip_prefix("line ").unwrap().parse().unwrap();
        per_partition
            .entry(m["partition"].as_u64().unwrap())
            .or_default()
            .push((m["offset"].as_u64().unwrap(), index));
    }
    assert_eq!(per_partition.values().map(Vec::len).sum::<usize>(), 1000);
    for records in per_partition.values() {
        for (i, pair) in records.windows(2).enumerate() {
            assert_eq!(pair[1].0, pair[0].0 + 1, "offsets at {i}");
            assert!(pair[1].1 > pair[0].1, "order at {i}: {pair:?}");
        }
    }
    // Headers ride along, in order, and come back out of consume.
    let produced = run(
        &server,
        &[
            "produce",
            "lines",
            "--partition",
            "0",
            "--header",
            "ct=json",
            "-H",
            "v=a=b",
        ],
        b"with headers\n",
    );
    ok(&produced);
    let json = ok(&run(
        &server,
        &["consume", "lines", "--partition", "0", "--format", "json"],
        b"",
    ));
    let last: Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    assert_eq!(last["value"], "with headers");
    assert_eq!(
        last["headers"],
        serde_json::json!([{"name": "ct", "value": "json"}, {"name": "v", "value": "a=b"}])
    );
    let bad = run(&server, &["produce", "lines", "--header", "=x"], b"");
    assert_eq!(bad.status.code(), Some(2));

    let partitions: Vec<u64> = summary["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["partition"].as_u64().unwrap())
        .collect();
    assert_eq!(
        partitions,
        per_partition.keys().copied().collect::<Vec<_>>()
    );

    // one partition, from an offset, with a count
    let one = ok(&run(
        &server,
        &[
            "consume",
            "lines",
            "--partition",
            "0",
            "--from",
            "1",
            "-n",
            "2",
            "--format",
            "json",
        ],
        b"",
    ));
    let offsets: Vec<u64> = one
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["offset"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(offsets, [1, 2]);

    // a key and an explicit partition; --insecure instead of --ca
    let insecure = run_raw(
        &[
            "produce".into(),
            "lines".into(),
            "--partition".into(),
            "1".into(),
            "--key".into(),
            "k".into(),
            "--server".into(),
            server.addr.to_string(),
            "--insecure".into(),
        ],
        b"keyed\n",
    );
    ok(&insecure);
    let last = ok(&run_raw(
        &[
            "consume".into(),
            "lines".into(),
            "-p".into(),
            "1".into(),
            "--format".into(),
            "json".into(),
            "--server".into(),
            server.addr.to_string(),
            "--insecure".into(),
        ],
        b"",
    ));
    let last: Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(last["key"], "k");
    assert_eq!(last["value"], "keyed");

    // produce to an unknown topic: exit 1, naming the error code
    let unknown = run(&server, &["produce", "nope"], b"x\n");
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("unknown_topic"), "{stderr}");
    assert!(stderr.contains("topic list"), "{stderr}");

    // usage errors: exit 2
    let bad = run(&server, &["consume", "lines", "--no-such-flag"], b"");
    assert_eq!(bad.status.code(), Some(2));
    let both = run(&server, &["topic", "list", "--insecure"], b"");
    assert_eq!(both.status.code(), Some(2), "--ca with --insecure");

    // topic delete
    ok(&run(&server, &["topic", "delete", "lines"], b""));
    let gone = run(&server, &["topic", "describe", "lines"], b"");
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("unknown_topic"));
}

#[test]
fn follow_prints_new_messages_until_interrupted() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0");
    ok(&run(&server, &["topic", "create", "live", "-p", "3"], b""));
    let cert = server.data_dir.join("tls/dev-cert.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args(["consume", "live", "--from", "latest", "--follow"])
        .arg("--ca")
        .arg(&cert)
        .env("TIDEGATE_SERVER", server.addr.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Produce until the consumer sees the messages (it may start after
    // the first produce, and then only sees the later ones).
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    for round in 0..50 {
        ok(&run(
            &server,
            &["produce", "live", "--key", "k"],
            format!("round {round}\n").as_bytes(),
        ));
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            seen.push(line);
            break;
        }
    }
    assert_eq!(seen.len(), 1, "the follower printed nothing");
    assert!(seen[0].starts_with("round "), "{seen:?}");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unreachable_server_exits_1() {
    // Nothing listens on this UDP port: the handshake times out.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let out = run_raw(
        &[
            "topic".into(),
            "list".into(),
            "--server".into(),
            addr,
            "--insecure".into(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
}
