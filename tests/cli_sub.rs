//! `tidegate sub create|list|describe|delete|pull` and `tidegate produce`'s
//! delivery flags (--ttl, --priority, --delay, --message-id), the real
//! binary against a real server (docs/SEMANTICS.md §5).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{runtime, sdk_client, start, Server};

/// `tidegate ARGS --server ADDR --ca CERT`, with `stdin` as its input.
fn run_with(server: &Server, args: &[&str], stdin: &str) -> Output {
    let cert: PathBuf = server.data_dir.join("tls/dev-cert.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args(args)
        .arg("--server")
        .arg(server.addr.to_string())
        .arg("--ca")
        .arg(cert)
        .env_remove("TIDEGATE_SERVER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn run(server: &Server, args: &[&str]) -> Output {
    run_with(server, args, "")
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

/// Exit code 1 and the stderr.
fn fails(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    stderr
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn create_topics(server: &Server, topics: &[(&str, u32)]) {
    runtime().block_on(async {
        let client = sdk_client(server).await;
        for (topic, partitions) in topics {
            client.create_topic(topic, *partitions).await.unwrap();
        }
    });
}

/// `tidegate produce TOPIC FLAGS` of `lines`.
fn produce(server: &Server, topic: &str, flags: &[&str], lines: &[&str]) {
    let mut args = vec!["produce", topic];
    args.extend_from_slice(flags);
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    ok(&run_with(server, &args, &input));
}

/// One `sub pull NAME --format json EXTRA`: one object per message.
fn pull(server: &Server, name: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["sub", "pull", name, "--format", "json"];
    args.extend_from_slice(extra);
    ok(&run(server, &args)).lines().map(json).collect()
}

/// Pulls (`EXTRA`, waiting up to 5 s each) until `n` messages came.
fn pull_n(server: &Server, name: &str, n: usize, extra: &[&str]) -> Vec<Value> {
    let mut all = Vec::new();
    while all.len() < n {
        let mut args = vec!["--max", "100", "--wait", "5s"];
        args.extend_from_slice(extra);
        let got = pull(server, name, &args);
        assert!(!got.is_empty(), "{} of {n} messages: {all:?}", all.len());
        all.extend(got);
    }
    assert_eq!(all.len(), n, "{all:?}");
    all
}

fn values(messages: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = messages
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// The message's headers as a map (the first of each name).
fn headers(m: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for h in m["headers"].as_array().unwrap() {
        out.entry(h["name"].as_str().unwrap().to_owned())
            .or_insert_with(|| h["value"].as_str().unwrap().to_owned());
    }
    out
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn sub_create_list_describe_and_delete_show_what_was_set() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0,1");
    create_topics(&server, &[("orders", 2), ("orders.dlq", 1)]);
    produce(&server, "orders", &["-p", "0"], &["before"]);

    let created = run(
        &server,
        &[
            "sub",
            "create",
            "orders",
            "eu",
            "--filter",
            r#"region = "eu""#,
            "--from",
            "earliest",
        ],
    );
    ok(&created);
    assert!(String::from_utf8_lossy(&created.stderr)
        .contains("created subscription 'eu' on topic 'orders'"));
    ok(&run(
        &server,
        &[
            "sub",
            "create",
            "orders",
            "workers",
            "--ack-deadline",
            "1m",
            "--max-deliveries",
            "3",
            "--dead-letter",
            "orders.dlq",
            "--dead-letter-expired",
            "--delay",
            "90s",
        ],
    ));

    // A filter that does not parse: the server's position, and a caret
    // under it.
    let bad = fails(&run(
        &server,
        &["sub", "create", "orders", "bad", "--filter", "region = "],
    ));
    assert!(
        bad.contains("invalid_filter") && bad.contains("byte 9"),
        "{bad}"
    );
    assert!(
        bad.contains(&format!("\n  region = \n  {}^", " ".repeat(9))),
        "{bad}"
    );
    let exists = fails(&run(&server, &["sub", "create", "orders", "eu"]));
    assert!(exists.contains("subscription_exists"), "{exists}");
    let unknown = fails(&run(&server, &["sub", "create", "nope", "s"]));
    assert!(unknown.contains("unknown_topic"), "{unknown}");
    // Dead letters need both flags: a usage error.
    let half = run(
        &server,
        &["sub", "create", "orders", "x", "--max-deliveries", "3"],
    );
    assert_eq!(half.status.code(), Some(2));

    let list = ok(&run(&server, &["sub", "list"]));
    let lines: Vec<Vec<&str>> = list
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert_eq!(lines[0][0], "NAME", "{list}");
    assert_eq!(
        lines[1],
        ["eu", "orders", "30s", "-", "region", "=", "\"eu\""],
        "{list}"
    );
    assert_eq!(
        lines[2],
        ["workers", "orders", "1m", "3x", "->", "orders.dlq", "-"],
        "{list}"
    );
    let listed = json(&ok(&run(
        &server,
        &["sub", "list", "--topic", "orders", "--format", "json"],
    )));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["name"], "eu");
    assert_eq!(listed[0]["filter"], r#"region = "eu""#);
    assert_eq!(listed[0]["start"], "earliest");
    assert_eq!(listed[0]["dead_letter_topic"], Value::Null);
    assert_eq!(listed[1]["name"], "workers");
    assert_eq!(listed[1]["ack_deadline_ms"], 60_000);
    assert_eq!(listed[1]["max_deliveries"], 3);
    assert_eq!(listed[1]["dead_letter_topic"], "orders.dlq");
    assert_eq!(listed[1]["start"], "latest");
    assert_eq!(listed[1]["filter"], Value::Null);
    assert_eq!(listed[1]["delivery_delay_ms"], 90_000);
    assert_eq!(listed[1]["dead_letter_expired"], true);
    assert_eq!(listed[0]["delivery_delay_ms"], 0);
    assert_eq!(listed[0]["dead_letter_expired"], false);

    // `workers` started at the latest offset: nothing to do; `eu` from
    // the earliest, with one message not read yet.
    let text = ok(&run(&server, &["sub", "describe", "workers"]));
    assert!(
        text.starts_with("subscription workers  topic orders  backlog 0\n"),
        "{text}"
    );
    assert!(
        text.contains("ack deadline 1m")
            && text.contains("from latest")
            && text.contains("dead letters to orders.dlq after 3 deliveries")
            && text.contains("expired ones too")
            && text.contains("delivery delay 1m 30s"),
        "{text}"
    );
    let text = ok(&run(&server, &["sub", "describe", "eu"]));
    assert!(text.contains("from earliest"), "{text}");
    assert!(text.contains(r#"filter region = "eu""#), "{text}");
    let d = json(&ok(&run(
        &server,
        &["sub", "describe", "eu", "--format", "json"],
    )));
    assert_eq!(d["subscription"]["name"], "eu");
    assert_eq!(d["subscription"]["topic"], "orders");
    assert_eq!(d["subscription"]["filter"], r#"region = "eu""#);
    let partitions = d["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2, "{d}");
    assert_eq!(partitions[0]["partition"], 0);
    assert_eq!(partitions[0]["latest"], 1);
    assert_eq!(partitions[1]["latest"], 0);
    assert_eq!(d["backlog"], 1, "{d}");

    let deleted = run(&server, &["sub", "delete", "eu"]);
    ok(&deleted);
    assert!(String::from_utf8_lossy(&deleted.stderr).contains("deleted subscription 'eu'"));
    let gone = fails(&run(&server, &["sub", "describe", "eu"]));
    assert!(
        gone.contains("unknown_subscription") && gone.contains("no subscription is named 'eu'"),
        "{gone}"
    );
    let again = fails(&run(&server, &["sub", "delete", "eu"]));
    assert!(again.contains("unknown_subscription"), "{again}");
    let list = ok(&run(&server, &["sub", "list"]));
    assert!(!list.contains("eu "), "{list}");
    server.stop();
}

#[test]
fn sub_pull_prints_leased_messages_and_acks_them_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0,1");
    create_topics(&server, &[("jobs", 2)]);
    ok(&run(
        &server,
        &[
            "sub",
            "create",
            "jobs",
            "eu",
            "--filter",
            r#"region = "eu""#,
            "--from",
            "earliest",
            "--ack-deadline",
            "1s",
            "--backoff",
            "0s..0s",
        ],
    ));
    produce(
        &server,
        "jobs",
        &["-H", "region=eu"],
        &["e1", "e2", "e3", "e4"],
    );
    produce(&server, "jobs", &["-H", "region=us"], &["u1", "u2"]);
    let eu = ["e1", "e2", "e3", "e4"];

    // Left leased: they come back once the 1 s deadline has passed.
    let first = pull_n(&server, "eu", 4, &["--no-ack"]);
    assert_eq!(values(&first), eu);
    for m in &first {
        assert_eq!(m["subscription"], "eu");
        assert_eq!(m["attempt"], 1, "{m}");
        let ack_id = m["ack_id"].as_str().unwrap();
        assert!(
            ack_id.len() == 32 && ack_id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{m}"
        );
        assert_eq!(headers(m)["region"], "eu");
        assert!(m["partition"].as_u64().unwrap() < 2 && m["offset"].is_u64());
    }
    let second = pull_n(&server, "eu", 4, &["--nack"]);
    assert_eq!(values(&second), eu);
    assert!(second.iter().all(|m| m["attempt"] == 2), "{second:?}");
    for m in &second {
        let before = first.iter().find(|f| f["value"] == m["value"]).unwrap();
        assert_eq!(
            (&m["partition"], &m["offset"]),
            (&before["partition"], &before["offset"])
        );
        assert_ne!(m["ack_id"], before["ack_id"], "a new delivery, a new id");
    }
    // Nacked with no backoff: at once, with the next attempt; acked by
    // default.
    let third = pull_n(&server, "eu", 4, &[]);
    assert_eq!(values(&third), eu);
    assert!(third.iter().all(|m| m["attempt"] == 3), "{third:?}");
    // Acked: not even after twice the deadline.
    let out = run(&server, &["sub", "pull", "eu", "--wait", "2500ms"]);
    assert_eq!(ok(&out), "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no messages in subscription 'eu'"));
    let d = json(&ok(&run(
        &server,
        &["sub", "describe", "eu", "--format", "json"],
    )));
    assert_eq!(d["backlog"], 0, "{d}");

    // Text: PARTITION@OFFSET attempt=N ack_id=HEX<TAB>VALUE, and --max.
    produce(
        &server,
        "jobs",
        &["-H", "region=eu", "-p", "1"],
        &["t1", "t2"],
    );
    let text = ok(&run(&server, &["sub", "pull", "eu", "--max", "1"]));
    let (head, value) = text.trim_end().split_once('\t').unwrap();
    assert_eq!(value, "t1", "{text}");
    let fields: Vec<&str> = head.split(' ').collect();
    assert!(
        fields[0].starts_with("1@") && fields[1] == "attempt=1",
        "{text}"
    );
    assert!(fields[2].starts_with("ack_id=") && fields[2].len() == 7 + 32);
    assert_eq!(values(&pull_n(&server, "eu", 1, &[])), ["t2"]);

    let unknown = fails(&run(&server, &["sub", "pull", "nope"]));
    assert!(unknown.contains("unknown_subscription"), "{unknown}");
    server.stop();
}

#[test]
fn produce_ttl_expires_messages_and_priority_reaches_subscribers_as_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0");
    create_topics(&server, &[("tasks", 1)]);
    ok(&run(
        &server,
        &["sub", "create", "tasks", "all", "--from", "earliest"],
    ));
    produce(&server, "tasks", &[], &["plain-1"]);
    produce(
        &server,
        "tasks",
        &["--ttl", "1ms"],
        &["expired-1", "expired-2"],
    );
    produce(&server, "tasks", &["--priority", "7"], &["urgent"]);
    produce(&server, "tasks", &["--ttl", "1h"], &["fresh"]);
    produce(&server, "tasks", &[], &["plain-2"]);

    let got = pull_n(&server, "all", 4, &[]);
    assert_eq!(values(&got), ["fresh", "plain-1", "plain-2", "urgent"]);
    let urgent = got.iter().find(|m| m["value"] == "urgent").unwrap();
    assert_eq!(headers(urgent)["tg-priority"], "7");
    let plain = got.iter().find(|m| m["value"] == "plain-1").unwrap();
    assert!(!headers(plain).contains_key("tg-priority"), "{plain}");
    let fresh = got.iter().find(|m| m["value"] == "fresh").unwrap();
    let expires: i64 = headers(fresh)["tg-expires-at"].parse().unwrap();
    let hour_ms = 3_600_000;
    assert!(
        (unix_ms() + hour_ms - 60_000..=unix_ms() + hour_ms).contains(&expires),
        "{fresh}"
    );
    // The expired ones are handled, not pending.
    let out = run(&server, &["sub", "pull", "all", "--wait", "1s"]);
    assert_eq!(ok(&out), "");
    let d = json(&ok(&run(
        &server,
        &["sub", "describe", "all", "--format", "json"],
    )));
    assert_eq!(d["backlog"], 0, "{d}");
    assert_eq!(d["partitions"][0]["latest"], 6, "{d}");
    server.stop();
}

#[test]
fn produce_delay_and_message_id_set_their_headers_from_the_send_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0");
    create_topics(&server, &[("later", 1)]);
    let before = unix_ms();
    produce(
        &server,
        "later",
        &["--delay", "10m", "--message-id", "order-7"],
        &["one"],
    );
    let after = unix_ms();
    let out = ok(&run(
        &server,
        &["consume", "later", "--from", "earliest", "--format", "json"],
    ));
    let records: Vec<Value> = out.lines().map(json).collect();
    assert_eq!(records.len(), 1, "{out}");
    let h = headers(&records[0]);
    assert_eq!(h["tg-msg-id"], "order-7");
    let at: i64 = h["tg-deliver-after"].parse().unwrap();
    let delay_ms = Duration::from_secs(600).as_millis() as i64;
    assert!(
        (before + delay_ms..=after + delay_ms).contains(&at),
        "{at} not in {before}+10m..{after}+10m"
    );
    server.stop();
}

#[test]
fn produce_and_sub_usage_errors_exit_2() {
    // Clap refuses these before any connection, so no server is needed.
    for args in [
        &["produce", "t", "--priority", "10"][..],
        &["produce", "t", "--priority", "-1"][..],
        &["produce", "t", "--delay", "8d"][..],
        &["produce", "t", "--delay", "10"][..],
        &["produce", "t", "--ttl", "0s"][..],
        &["produce", "t", "--message-id", ""][..],
        &["produce", "t", "--priority", "1", "-H", "tg-priority=2"][..],
        &["sub", "create", "t", "s", "--dead-letter", "dlq"][..],
        &["sub", "create", "t", "s", "--backoff", "5s..1s"][..],
        &["sub", "create", "t", "s", "--dead-letter-expired"][..],
        &["sub", "pull", "s", "--ack", "--no-ack"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tidegate"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("error:"), "{args:?}: {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args(["produce", "t", "--delay", "8d"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 7d"));
}

/// `sub describe NAME`'s backlog.
fn backlog(server: &Server, name: &str) -> u64 {
    let d = json(&ok(&run(
        server,
        &["sub", "describe", name, "--format", "json"],
    )));
    d["backlog"].as_u64().unwrap()
}

/// `sub redrive NAME --format json`: (moved, skipped).
fn redrive(server: &Server, name: &str, extra: &[&str]) -> (u64, u64) {
    let mut args = vec!["sub", "redrive", name, "--format", "json"];
    args.extend_from_slice(extra);
    let summary = json(&ok(&run(server, &args)));
    assert_eq!(summary["subscription"], name, "{summary}");
    (
        summary["moved"].as_u64().unwrap(),
        summary["skipped"].as_u64().unwrap(),
    )
}

#[test]
fn sub_redrive_moves_only_its_dead_letters_back_once_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data, "0,1");
    create_topics(&server, &[("jobs", 2), ("jobs.dlq", 1), ("logs", 1)]);
    for (name, extra) in [
        (
            "work",
            &["--max-deliveries", "2", "--dead-letter", "jobs.dlq"][..],
        ),
        ("audit", &[][..]),
    ] {
        let mut args = vec!["sub", "create", "jobs", name, "--from", "earliest"];
        args.extend_from_slice(&["--backoff", "0s..0s"]);
        args.extend_from_slice(extra);
        ok(&run(&server, &args));
    }
    // Another subscription's dead letters share the dead-letter topic.
    ok(&run(
        &server,
        &[
            "sub",
            "create",
            "logs",
            "other",
            "--from",
            "earliest",
            "--backoff",
            "0s..0s",
            "--max-deliveries",
            "1",
            "--dead-letter",
            "jobs.dlq",
        ],
    ));
    let jobs = ["j1", "j2", "j3", "j4", "j5", "j6"];
    produce(&server, "jobs", &["-H", "region=eu"], &jobs);
    produce(&server, "logs", &[], &["l1"]);

    // Nacked at attempts 1 and 2: dead-lettered, handled on the source.
    let first = pull_n(&server, "work", 6, &["--nack"]);
    let second = pull_n(&server, "work", 6, &["--nack"]);
    assert!(second.iter().all(|m| m["attempt"] == 2), "{second:?}");
    pull_n(&server, "other", 1, &["--nack"]);
    while backlog(&server, "work") + backlog(&server, "other") > 0 {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(values(&pull_n(&server, "audit", 6, &[])), jobs);

    // Two at a time, then the rest; the other subscription's is passed over.
    assert_eq!(redrive(&server, "work", &["--max", "2"]).0, 2);
    let (moved, skipped) = redrive(&server, "work", &[]);
    assert_eq!((moved, skipped), (4, 1));
    let again = pull_n(&server, "work", 6, &["--no-ack"]);
    assert_eq!(values(&again), jobs);
    for m in &again {
        assert_eq!(m["attempt"], 1, "a fresh attempt count: {m}");
        let h = headers(m);
        assert_eq!(h["tg-redrive-for"], "work", "{m}");
        assert_eq!(h["region"], "eu", "{m}");
        assert!(!h.keys().any(|k| k.starts_with("tg-dlq-")), "{m}");
        let original = first.iter().find(|f| f["value"] == m["value"]).unwrap();
        assert_eq!(
            m["partition"], original["partition"],
            "back where it came from"
        );
        assert!(m["offset"].as_u64() > original["offset"].as_u64());
    }
    // The topic's other subscription passes over the redriven copies.
    assert_eq!(
        ok(&run(&server, &["sub", "pull", "audit", "--wait", "500ms"])),
        ""
    );
    assert_eq!(backlog(&server, "audit"), 0);
    server.kill();

    // Progress survived the crash: nothing is redriven twice.
    let server = start(&data, "0,1");
    assert_eq!(redrive(&server, "work", &[]), (0, 0));
    assert_eq!(values(&pull_n(&server, "work", 6, &[])), jobs);
    assert_eq!(redrive(&server, "other", &[]), (1, 6));
    let failed = fails(&run(&server, &["sub", "redrive", "audit"]));
    assert!(failed.contains("no dead-letter topic"), "{failed}");
    server.stop();
}
