//! `tidegate serve` end to end: the real binary, real QUIC on loopback,
//! with one shard and with two.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{batch_of, connect, decode, runtime, start, start_with, Client};
use tidegate_proto::protocol::{AckLevel, ErrorCode, Request, Response};

const PARTITIONS: u32 = 4;
const CONNECTIONS: usize = 4;
const BATCHES_PER_CONNECTION: usize = 250;
const RECORDS_PER_BATCH: usize = 100;

/// What the server acknowledged: per partition, base offset -> values.
type Acked = BTreeMap<u32, BTreeMap<u64, Vec<Vec<u8>>>>;

async fn produce_all(clients: &[Client], ack: AckLevel, round: &str) -> Acked {
    let work = clients.iter().enumerate().map(|(c, client)| async move {
        let mut acked: Vec<(u32, u64, Vec<Vec<u8>>)> = Vec::new();
        // Eight produce requests in flight per connection.
        for chunk in (0..BATCHES_PER_CONNECTION).collect::<Vec<_>>().chunks(8) {
            let calls = chunk.iter().map(|&b| async move {
                let partition = (b % PARTITIONS as usize) as u32;
                let values: Vec<Vec<u8>> = (0..RECORDS_PER_BATCH)
                    .map(|r| format!("{round}-c{c}-b{b}-r{r}").into_bytes())
                    .collect();
                let bytes = batch_of(&values);
                let results = client.produce("events", partition, ack, &bytes).await;
                assert_eq!(results.len(), 1);
                (partition, results[0].unwrap(), values)
            });
            acked.extend(futures::future::join_all(calls).await);
        }
        acked
    });
    let mut all = Acked::new();
    for list in futures::future::join_all(work).await {
        for (partition, base, values) in list {
            all.entry(partition).or_default().insert(base, values);
        }
    }
    all
}

/// Every acknowledged batch is in its partition at its offsets, and each
/// partition is one contiguous run from offset 0.
async fn verify(client: &Client, acked: &Acked) {
    let mut total = 0;
    for partition in 0..PARTITIONS {
        let stored = client.read_all("events", partition).await;
        for (i, (offset, _)) in stored.iter().enumerate() {
            assert_eq!(
                *offset, i as u64,
                "partition {partition} offsets are contiguous"
            );
        }
        for (base, values) in acked.get(&partition).into_iter().flatten() {
            for (i, v) in values.iter().enumerate() {
                let at = (*base as usize) + i;
                assert_eq!(
                    stored.get(at).map(|s| &s.1),
                    Some(v),
                    "partition {partition} offset {at}"
                );
            }
        }
        total += stored.len();
    }
    let acked_total: usize = acked.values().flat_map(|m| m.values()).map(Vec::len).sum();
    assert!(total >= acked_total);
}

fn merge(into: &mut Acked, more: Acked) {
    for (p, batches) in more {
        into.entry(p).or_default().extend(batches);
    }
}

fn round_trip_survives_restart_and_kill(cores: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rt = runtime();
    let server = start(&data, cores);
    let mut acked = rt.block_on(async {
        let admin = connect(&server).await;
        let created = admin.create_topic("events", PARTITIONS).await;
        assert_eq!(decode(&created), Response::CreateTopic);
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            clients.push(connect(&server).await);
        }
        let acked = produce_all(&clients, AckLevel::Written, "one").await;
        let count: usize = acked.values().flat_map(|m| m.values()).map(Vec::len).sum();
        assert_eq!(
            count,
            CONNECTIONS * BATCHES_PER_CONNECTION * RECORDS_PER_BATCH
        );
        assert_eq!(count, 100_000);
        verify(&admin, &acked).await;
        acked
    });
    // A clean stop, then everything again.
    assert!(server.stop().success());
    let server = start(&data, cores);
    rt.block_on(async {
        let client = connect(&server).await;
        verify(&client, &acked).await;
        let more = produce_all(&[client], AckLevel::Durable, "two").await;
        merge(&mut acked, more);
    });
    // A crash: every durable acknowledgement survives.
    server.kill();
    let server = start(&data, cores);
    rt.block_on(async {
        let client = connect(&server).await;
        verify(&client, &acked).await;
    });
    assert!(server.stop().success());
}

#[test]
fn messages_round_trip_in_order_and_survive_restart_and_kill_one_shard() {
    round_trip_survives_restart_and_kill("0");
}

#[test]
fn messages_round_trip_in_order_and_survive_restart_and_kill_two_shards() {
    round_trip_survives_restart_and_kill("0-1");
}

fn error_code(bytes: &[u8]) -> ErrorCode {
    match decode(bytes) {
        Response::Error(e) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn malformed_requests_get_errors_while_another_client_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0-1");
    runtime().block_on(async {
        let good = connect(&server).await;
        assert_eq!(
            decode(&good.create_topic("t", 2).await),
            Response::CreateTopic
        );
        let bad = connect(&server).await;
        // Garbage that is not even a frame.
        let reply = bad.raw(b"\x01\x02garbage garbage").await.unwrap();
        assert_eq!(error_code(&reply), ErrorCode::MalformedFrame);
        // A header promising more body than the stream carried.
        let mut truncated = vec![0x54, 0x47, 1, 0x05, 100, 0, 0, 0];
        truncated.extend_from_slice(&[0u8; 10]);
        assert_eq!(
            error_code(&bad.raw(&truncated).await.unwrap()),
            ErrorCode::MalformedFrame
        );
        // An unknown version and an unknown kind.
        let reply = bad.raw(&[0x54, 0x47, 9, 0x05, 0, 0, 0, 0]).await.unwrap();
        assert_eq!(error_code(&reply), ErrorCode::UnsupportedVersion);
        let reply = bad.raw(&[0x54, 0x47, 1, 0x6f, 0, 0, 0, 0]).await.unwrap();
        assert_eq!(error_code(&reply), ErrorCode::UnsupportedKind);
        // A produce whose batch is corrupt: a typed error for that batch.
        let mut corrupt = batch_of(&[b"x".to_vec()]);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let results = bad.produce("t", 0, AckLevel::Written, &corrupt).await;
        assert_eq!(results, vec![Err(ErrorCode::CorruptBatch)]);
        // Unknown topic and partition; a second create of the same topic.
        let reply = bad.raw(&encode_fetch("nope", 0)).await.unwrap();
        assert_eq!(error_code(&reply), ErrorCode::UnknownTopic);
        let reply = bad.raw(&encode_fetch("t", 7)).await.unwrap();
        assert_eq!(error_code(&reply), ErrorCode::UnknownPartition);
        assert_eq!(
            error_code(&bad.create_topic("t", 2).await),
            ErrorCode::TopicExists
        );
        // The same connection and another one still work.
        for client in [&bad, &good] {
            let results = client
                .produce("t", 1, AckLevel::Durable, &batch_of(&[b"fine".to_vec()]))
                .await;
            assert!(results[0].is_ok());
        }
        let stored = good.read_all("t", 1).await;
        assert_eq!(stored.len(), 2);
        assert!(stored.iter().all(|(_, v)| v == b"fine"));
    });
    assert!(server.stop().success());
}

fn encode_fetch(topic: &str, partition: u32) -> Vec<u8> {
    let mut out = Vec::new();
    tidegate_proto::protocol::Request::Fetch(tidegate_proto::protocol::FetchRequest {
        topic,
        partition,
        offset: 0,
        max_bytes: 1024,
        max_wait_ms: 0,
    })
    .encode(&mut out);
    out
}

#[test]
fn fetch_long_polls_until_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0-1");
    runtime().block_on(async {
        let client = connect(&server).await;
        client.create_topic("lp", 2).await;
        for partition in 0..2 {
            let waiting = client.fetch("lp", partition, 0, 30_000);
            let producing = async {
                let other = connect(&server).await;
                other
                    .produce(
                        "lp",
                        partition,
                        AckLevel::Written,
                        &batch_of(&[b"hi".to_vec()]),
                    )
                    .await
            };
            let ((hw, bytes), _) = futures::join!(waiting, producing);
            assert_eq!(hw, 1);
            assert!(!bytes.is_empty(), "the waiting fetch got the batch");
        }
    });
}

/// A client that abandons requests (it stops reading their streams) gets
/// its stream slots back: the server answers STOP_SENDING with a reset, so
/// the streams close and QUIC grants new ones. Without that, a consumer
/// that drops its long polls (a rebalance, a timeout) runs out of streams
/// after `quic.max_concurrent_streams` of them and hangs.
#[test]
fn abandoned_requests_give_their_streams_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0");
    runtime().block_on(async {
        let client = connect(&server).await;
        client.create_topic("ab", 1).await;
        let mut poll = Vec::new();
        tidegate_proto::protocol::Request::Fetch(tidegate_proto::protocol::FetchRequest {
            topic: "ab",
            partition: 0,
            offset: 0,
            max_bytes: 1024,
            max_wait_ms: 200,
        })
        .encode(&mut poll);
        // Four times the stream limit (16): each long poll is abandoned
        // while the server still holds it.
        for i in 0..64 {
            let open = tokio::time::timeout(Duration::from_secs(10), client.conn.open_bi());
            let (mut send, recv) = open
                .await
                .unwrap_or_else(|_| panic!("no stream for request {i} within 10 s"))
                .unwrap();
            send.write_all(&poll).await.unwrap();
            send.finish().unwrap();
            drop(recv); // STOP_SENDING
        }
        let answer =
            tokio::time::timeout(Duration::from_secs(10), client.call(&Request::ListTopics));
        assert!(matches!(
            decode(&answer.await.expect("answered within 10 s")),
            Response::ListTopics(_)
        ));
    });
}

/// Responses that together exceed what the server may have unacknowledged
/// on a connection (quinn's send window, 10 MB) are all delivered: a
/// response written only in part goes on when the window frees, however
/// the write was cut. (A partial write once left the rest unsent for good,
/// and a consumer fetching 16 partitions of 1 MiB stalled silently.)
#[test]
fn large_responses_beyond_the_send_window_all_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::start_env(
        &dir.path().join("data"),
        "0",
        &[("TIDEGATE_STORAGE__SEGMENT_BYTES", "16MiB")],
    );
    runtime().block_on(async {
        let client = connect(&server).await;
        client.create_topic("big", 16).await;
        // 16 partitions of 2 batches of 1 MiB: each fetch below answers
        // with one whole batch, 16 MiB at once in all.
        let values: Vec<Vec<u8>> = (0..8).map(|i| vec![b'a' + i; 128 << 10]).collect();
        let batch = batch_of(&values);
        for partition in 0..16 {
            for _ in 0..2 {
                let acked = client
                    .produce("big", partition, AckLevel::Written, &batch)
                    .await;
                assert!(acked[0].is_ok());
            }
        }
        for round in 0..3 {
            let fetches = (0..16).map(|p| client.fetch("big", p, 0, 0));
            let all = futures::future::join_all(fetches);
            let answers = tokio::time::timeout(Duration::from_secs(20), all)
                .await
                .unwrap_or_else(|_| panic!("round {round}: not every response arrived in 20 s"));
            for (hw, bytes) in answers {
                assert_eq!(hw, 16);
                assert!(bytes.len() >= 1 << 20, "{} bytes", bytes.len());
            }
        }
    });
}

#[test]
fn sigterm_drains_and_exits_zero_with_systemd_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(&dir.path().join("data"), "0", true);
    assert!(server.next_notification().contains("READY=1"));
    runtime().block_on(async {
        let client = connect(&server).await;
        client.create_topic("s", 1).await;
        client
            .produce(
                "s",
                0,
                AckLevel::Durable,
                &batch_of(&[b"before stop".to_vec()]),
            )
            .await;
    });
    let notify = server.notify.as_ref().unwrap().try_clone().unwrap();
    let status = server.stop();
    assert!(status.success(), "exit status {status:?}");
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
}

#[test]
fn a_long_poll_in_flight_at_sigterm_gets_its_answer_before_the_connection_closes() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0-1");
    let pid = server.child.id();
    let admin = support::admin_addr(&server);
    let answered = runtime().block_on(async {
        let client = std::rc::Rc::new(connect(&server).await);
        client.create_topic("quiet", 2).await;
        let mut polls = Vec::new();
        for partition in 0..2 {
            let mut bytes = Vec::new();
            tidegate_proto::protocol::Request::Fetch(tidegate_proto::protocol::FetchRequest {
                topic: "quiet",
                partition,
                offset: 0,
                max_bytes: 1024,
                max_wait_ms: 60_000,
            })
            .encode(&mut bytes);
            polls.push(bytes);
        }
        let held: u64 = polls.iter().map(|p| p.len() as u64).sum();
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let waits: Vec<_> = polls
                    .into_iter()
                    .map(|bytes| {
                        let client = client.clone();
                        tokio::task::spawn_local(async move { client.raw(&bytes).await })
                    })
                    .collect();
                // Readiness, not a sleep: the server reports the polls' request
                // bytes as held (published once a second) before the signal.
                loop {
                    let page =
                        tokio::task::spawn_blocking(move || support::http_get(admin, "/metrics").1)
                            .await
                            .unwrap();
                    let inflight: u64 = page
                        .lines()
                        .filter(|l| l.starts_with("tidegate_quic_inflight_bytes{"))
                        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                        .sum::<f64>() as u64;
                    if inflight >= held {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .unwrap();
                let mut results = Vec::new();
                for w in waits {
                    results.push(w.await.unwrap());
                }
                results
            })
            .await
    });
    for reply in answered {
        let reply = reply.expect("the long poll is answered, not cut off");
        match decode(&reply) {
            Response::Fetch(f) => assert!(f.batches.is_empty()),
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut server = server;
    assert!(server.child.wait().unwrap().success());
}

#[test]
fn the_quick_start_default_data_directory_works() {
    // `tidegate serve` with no --data-dir keeps its data in ./tidegate-data:
    // a relative path, which glommio cannot open as it is.
    let cwd = tempfile::tempdir().unwrap();
    let server = support::start_default_in(cwd.path(), "0-1");
    runtime().block_on(async {
        let client = connect(&server).await;
        assert_eq!(
            decode(&client.create_topic("qs", 2).await),
            Response::CreateTopic
        );
        let results = client
            .produce("qs", 1, AckLevel::Durable, &batch_of(&[b"hello".to_vec()]))
            .await;
        assert_eq!(results, vec![Ok(0)]);
        assert_eq!(client.read_all("qs", 1).await, vec![(0, b"hello".to_vec())]);
    });
    assert!(server.stop().success());
    assert!(cwd.path().join("tidegate-data/meta/catalog").exists());
}

/// The open-files soft limit the server starts with is raised to the hard
/// one: every partition keeps files open, and a shell's or a container's
/// soft limit (often 1024) would run out first.
#[test]
fn a_low_open_files_soft_limit_is_raised_at_start() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let low = 256.min(hard);
    if low == hard {
        eprintln!("skipped: the hard open-files limit ({hard}) leaves nothing to raise");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The child inherits the lowered limit; this process gets its own back
    // at once.
    setrlimit(Resource::RLIMIT_NOFILE, low, hard).unwrap();
    let server = std::panic::catch_unwind(|| start(&dir.path().join("data"), "0"));
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    let server = server.unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], hard.to_string(), "{line}");
    server.wait_for_log("raised the open-files soft limit", 1);
    server.stop();
}
