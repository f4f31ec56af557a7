//! `tidegate group list|describe|reset-offsets` of the real binary against a
//! real server, with a live group member made through the SDK.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{fill_topic, runtime, sdk_client, start, Server};
use tidegate_client::{Client, GroupConfig, GroupConsumer, Start};

const TOPIC: &str = "orders";
const GROUP: &str = "billing";
const PARTITIONS: u32 = 3;
const PER_PARTITION: u64 = 10;
/// Message `i` of every partition has timestamp `BASE_MS + i * 1000`;
/// BASE_MS is 2023-11-14T22:13:20Z.
const BASE_MS: i64 = 1_700_000_000_000;

/// Runs `tidegate ARGS --server ADDR --ca CERT`.
fn run(server: &Server, args: &[&str]) -> Output {
    let cert: PathBuf = server.data_dir.join("tls/dev-cert.pem");
    Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args(args)
        .arg("--server")
        .arg(server.addr.to_string())
        .arg("--ca")
        .arg(cert)
        .env_remove("TIDEGATE_SERVER")
        .stdin(Stdio::null())
        .output()
        .unwrap()
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

/// The rows of a text table whose first column is a number, split on
/// whitespace.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|fields| fields.first().is_some_and(|f| f.parse::<u32>().is_ok()))
        .collect()
}

async fn fill(client: &Client) {
    fill_topic(
        client,
        TOPIC,
        PARTITIONS,
        PER_PARTITION as u32,
        Some(BASE_MS),
    )
    .await;
}

/// The group's committed offsets of the topic, through the SDK.
async fn committed(client: &Client) -> Vec<(u32, Option<u64>)> {
    let mut offsets = client.fetch_offsets(GROUP, TOPIC, &[]).await.unwrap();
    offsets.sort_unstable();
    offsets
}

/// A member that joined, read some messages and committed: what it
/// committed per partition it read (the next offset to consume).
async fn live_member(client: &Client) -> (GroupConsumer, BTreeMap<u32, u64>) {
    let config = GroupConfig {
        // Long: the member does not heartbeat while the CLI runs.
        session_timeout: Duration::from_secs(120),
        reset: Start::Earliest,
        auto_commit: None,
        ..GroupConfig::new(GROUP)
    };
    let mut member = GroupConsumer::join(client.clone(), TOPIC, config)
        .await
        .unwrap();
    assert_eq!(member.assignment(), (0..PARTITIONS).collect::<Vec<_>>());
    let mut read = BTreeMap::new();
    for _ in 0..12 {
        let m = tokio::time::timeout(Duration::from_secs(20), member.next())
            .await
            .expect("a message within 20 s")
            .unwrap()
            .unwrap();
        read.insert(m.partition(), m.offset() + 1);
    }
    member.commit().await.unwrap();
    (member, read)
}

/// Waits (bounded) until the group has no members.
async fn until_empty(client: &Client) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !client
        .describe_group(GROUP)
        .await
        .unwrap()
        .members
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group kept members"
        );
        tokio::task::yield_now().await;
    }
}

#[test]
fn list_and_describe_show_the_live_member_its_offsets_and_lag() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0");
    let rt = runtime();
    let client = rt.block_on(sdk_client(&server));
    rt.block_on(fill(&client));
    let (member, read) = rt.block_on(live_member(&client));
    let offsets = rt.block_on(committed(&client));
    // What the member read is what it committed; partitions it read
    // nothing of were committed at their start, 0.
    for (p, offset) in &offsets {
        assert_eq!(*offset, Some(read.get(p).copied().unwrap_or(0)), "{p}");
    }
    let member_id = member.member_id().to_owned();

    let list = ok(&run(&server, &["group", "list"]));
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [GROUP, TOPIC, "1"]),
        "{list}"
    );
    let list = json(&ok(&run(&server, &["group", "list", "--format", "json"])));
    assert_eq!(
        list,
        serde_json::json!([{"group": GROUP, "topic": TOPIC, "members": 1}])
    );

    let text = ok(&run(&server, &["group", "describe", GROUP]));
    let want: Vec<Vec<String>> = offsets
        .iter()
        .map(|(p, c)| {
            let c = c.unwrap();
            [p.to_string(), c.to_string(), PER_PARTITION.to_string()]
                .into_iter()
                .chain([(PER_PARTITION - c).to_string(), member_id.clone()])
                .collect()
        })
        .collect();
    let table = rows(&text);
    assert_eq!(table[..PARTITIONS as usize], want[..], "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [member_id.as_str(), "0,1,2"]),
        "the member and its partitions: {text}"
    );
    assert!(
        text.contains(&format!("generation {}", member.generation())),
        "{text}"
    );

    let d = json(&ok(&run(
        &server,
        &["group", "describe", GROUP, "--format", "json"],
    )));
    assert_eq!(d["topic"], TOPIC);
    assert_eq!(d["generation"], member.generation());
    assert_eq!(
        d["members"],
        serde_json::json!([{"member_id": member_id, "partitions": [0, 1, 2]}])
    );
    for (p, c) in &offsets {
        let row = &d["partitions"][*p as usize];
        assert_eq!(row["partition"], *p);
        assert_eq!(row["committed"], c.unwrap());
        assert_eq!(row["latest"], PER_PARTITION);
        assert_eq!(row["lag"], PER_PARTITION - c.unwrap());
        assert_eq!(row["member"], member_id.as_str());
    }

    // Another topic than the members' one is refused.
    let other = fails(&run(
        &server,
        &["group", "describe", GROUP, "--topic", "other"],
    ));
    assert!(other.contains("consume topic 'orders'"), "{other}");
    rt.block_on(member.close()).unwrap();
}

#[test]
fn reset_offsets_refuses_a_live_group_then_moves_its_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0");
    let rt = runtime();
    let client = rt.block_on(sdk_client(&server));
    rt.block_on(fill(&client));
    let (member, _) = rt.block_on(live_member(&client));
    let before = rt.block_on(committed(&client));

    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["group", "reset-offsets", GROUP, "--topic", TOPIC];
        args.extend(["--to", "earliest"]);
        args.extend(extra);
        let refused = fails(&run(&server, &args));
        assert!(
            refused.contains("1 live member") && refused.contains("stop the group's consumers"),
            "{refused}"
        );
    }
    assert_eq!(rt.block_on(committed(&client)), before);

    rt.block_on(member.close()).unwrap();
    rt.block_on(until_empty(&client));
    let reset = |to: &str, extra: &[&str]| {
        let mut args = vec![
            "group",
            "reset-offsets",
            GROUP,
            "--topic",
            TOPIC,
            "--to",
            to,
        ];
        args.extend(extra);
        run(&server, &args)
    };
    let all = |offset: u64| {
        (0..PARTITIONS)
            .map(|p| (p, Some(offset)))
            .collect::<Vec<_>>()
    };

    // The memberless group: not listed; describe needs --topic.
    let list = ok(&run(&server, &["group", "list"]));
    assert!(!list.contains(GROUP), "{list}");
    let no_topic = fails(&run(&server, &["group", "describe", GROUP]));
    assert!(no_topic.contains("no members") && no_topic.contains("--topic"));
    let d = json(&ok(&run(
        &server,
        &[
            "group", "describe", GROUP, "--topic", TOPIC, "--format", "json",
        ],
    )));
    assert_eq!(d["generation"], 0);
    assert_eq!(d["members"], Value::Array(vec![]));
    assert_eq!(d["partitions"][0]["committed"], before[0].1.unwrap());
    assert!(d["partitions"][0]["member"].is_null());

    // --dry-run prints the plan and commits nothing.
    let dry = reset("earliest", &["--dry-run"]);
    let plan = rows(&ok(&dry));
    assert_eq!(plan.len(), PARTITIONS as usize);
    for (row, (p, old)) in plan.iter().zip(&before) {
        assert_eq!(
            row[..],
            [p.to_string(), old.unwrap().to_string(), "0".into()]
        );
    }
    assert!(String::from_utf8_lossy(&dry.stderr).contains("dry run"));
    let dry = json(&ok(&reset("latest", &["--dry-run", "--format", "json"])));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["partitions"][2]["new"], PER_PARTITION);
    assert_eq!(rt.block_on(committed(&client)), before);

    ok(&reset("earliest", &[]));
    assert_eq!(rt.block_on(committed(&client)), all(0));

    // An offset past the end is clamped to latest, and the plan says so.
    let clamped = ok(&reset("5000", &[]));
    let plan = rows(&clamped);
    assert!(
        plan.iter()
            .all(|r| r[2] == "10" && r[3..] == ["clamped", "from", "5000", "to", "latest"]),
        "{clamped}"
    );
    assert_eq!(rt.block_on(committed(&client)), all(PER_PARTITION));

    // One partition.
    let one = ok(&reset("4", &["--partition", "1"]));
    assert_eq!(rows(&one).len(), 1, "{one}");
    let mut want = all(PER_PARTITION);
    want[1].1 = Some(4);
    assert_eq!(rt.block_on(committed(&client)), want);

    // By time: ms since the epoch, and RFC 3339 (BASE_MS + 7 s) on two
    // partitions given as a list.
    ok(&reset(&format!("@{}", BASE_MS + 3000), &[]));
    assert_eq!(rt.block_on(committed(&client)), all(3));
    ok(&reset("@2023-11-14T22:13:27Z", &["-p", "0,2"]));
    assert_eq!(
        rt.block_on(committed(&client)),
        [(0, Some(7)), (1, Some(3)), (2, Some(7))]
    );

    // Operating errors: exit 1 with the reason.
    let missing = fails(&reset("4", &["--partition", "9"]));
    assert!(missing.contains("no partition 9"), "{missing}");
    let unknown = fails(&run(
        &server,
        &[
            "group",
            "reset-offsets",
            GROUP,
            "--topic",
            "nope",
            "--to",
            "0",
        ],
    ));
    assert!(unknown.contains("unknown_topic"), "{unknown}");
    assert_eq!(
        rt.block_on(committed(&client)),
        [(0, Some(7)), (1, Some(3)), (2, Some(7))]
    );
}

#[test]
fn usage_errors_exit_2() {
    // Clap refuses these before any connection, so no server is needed.
    for args in [
        &["group"][..],
        &["group", "reset-offsets", GROUP, "--topic", TOPIC][..],
        &["group", "reset-offsets", GROUP, "--to", "earliest"][..],
        &[
            "group",
            "reset-offsets",
            GROUP,
            "--topic",
            TOPIC,
            "--to",
            "soon",
        ][..],
        &[
            "group",
            "reset-offsets",
            GROUP,
            "--topic",
            TOPIC,
            "--to",
            "@2023-02-29T00:00:00Z",
        ][..],
        &["group", "describe"][..],
        &["group", "list", "--format", "yaml"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tidegate"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}
