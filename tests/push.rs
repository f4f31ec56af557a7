//! Streaming push (StreamingPull, PushCredit) against the real server over
//! real QUIC (docs/SEMANTICS.md §5): pushes stay within the credits, two
//! push streams share a subscription's messages, refusals are typed
//! errors, a deleted subscription ends its streams, and after kill -9 what
//! was acked is never pushed again while the rest is; each on one shard
//! and on two.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use support::{admin_addr, metrics_until, runtime, sdk_client, send_durably, start, Server};
use tidegate_client::{
    AckId, Client, Error, ErrorCode, ProducerRecord, PushStream, ReceivedMessage, StartPosition,
    Subscriber, SubscriberConfig, SubscriptionConfig,
};
use tidegate_proto::protocol::MAX_PULL_MESSAGES;
use tokio::time::timeout;

/// A generous bound on anything that should happen "promptly".
const PROMPTLY: Duration = Duration::from_secs(20);
const MIB: u32 = 1 << 20;

fn on_shards(test: impl Fn(&Path, &str)) {
    for cores in ["0", "0,1"] {
        let dir = tempfile::tempdir().unwrap();
        test(&dir.path().join("data"), cores);
    }
}

/// Produces `n` messages `m00`.. round robin over `partitions`, durably.
async fn produce(client: &Client, topic: &str, n: usize, partitions: u32) {
    let records = (0..n)
        .map(|i| ProducerRecord::new(format!("m{i:02}")).with_partition(i as u32 % partitions));
    send_durably(client, topic, records, Duration::ZERO).await;
}

async fn topic_and_sub(client: &Client, topic: &str, partitions: u32, sub: &str) {
    client.create_topic(topic, partitions).await.unwrap();
    client
        .create_subscription(&SubscriptionConfig {
            start: StartPosition::Earliest,
            ..SubscriptionConfig::new(sub, topic)
        })
        .await
        .unwrap();
}

/// Reads frames until `n` messages came (failing if a frame brings more).
async fn read_n(stream: &mut PushStream, n: usize) -> Vec<ReceivedMessage> {
    let mut got = Vec::new();
    while got.len() < n {
        let frame = timeout(PROMPTLY, stream.next_frame())
            .await
            .expect("a frame within 20 s")
            .unwrap()
            .expect("the stream ended");
        assert!(!frame.is_empty(), "an empty frame");
        got.extend(frame);
    }
    assert_eq!(got.len(), n, "pushed beyond the credits");
    got
}

fn values(messages: &[ReceivedMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| String::from_utf8(m.value.clone().unwrap().to_vec()).unwrap())
        .collect()
}

async fn ack_all(client: &Client, sub: &str, messages: &[ReceivedMessage]) {
    let ids: Vec<AckId> = messages.iter().map(|m| m.ack_id).collect();
    let results = client.ack(sub, &ids).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

async fn outstanding(client: &Client, sub: &str) -> u32 {
    let d = client.describe_subscription(sub).await.unwrap();
    d.partitions.iter().map(|p| p.outstanding).sum()
}

#[test]
fn push_streams_share_a_subscription_within_their_credits_and_acks_survive_kill_9() {
    on_shards(|data, cores| {
        let server = start(data, cores);
        let admin = admin_addr(&server);
        let (acked, leased) = runtime().block_on(async {
            let client = sdk_client(&server).await;
            topic_and_sub(&client, "orders", 2, "billing").await;
            produce(&client, "orders", 50, 2).await;
            let mut a = client.streaming_pull("billing", 5, MIB).await.unwrap();
            let mut b = client.streaming_pull("billing", 5, MIB).await.unwrap();
            let (got_a, got_b) = (read_n(&mut a, 5).await, read_n(&mut b, 5).await);
            // Both streams' credits are spent: exactly their 10 are leased.
            assert_eq!(outstanding(&client, "billing").await, 10);
            let both: BTreeSet<String> = values(&got_a).into_iter().chain(values(&got_b)).collect();
            assert_eq!(both.len(), 10, "a message was pushed twice");
            // More credit, more messages: on the stream that got it.
            a.credit().grant(3, 0).await.unwrap();
            let more_a = read_n(&mut a, 3).await;
            assert_eq!(outstanding(&client, "billing").await, 13);
            let mut acked = got_a.clone();
            acked.extend(more_a);
            ack_all(&client, "billing", &acked).await;
            // The shard counts its streams and what they pushed.
            metrics_until(admin, "two push streams", |m| {
                let streams: f64 = metric_sum(m, "tidegate_subscription_push_streams{");
                let pushed = metric_sum(m, "tidegate_subscription_pushed_messages_total{");
                streams == 2.0 && pushed >= 13.0
            });
            drop(b);
            // Off the runtime, which has to send b's STOP_SENDING.
            tokio::task::spawn_blocking(move || {
                metrics_until(admin, "b's stream closed", |m| {
                    metric_sum(m, "tidegate_subscription_push_streams{") == 1.0
                })
            })
            .await
            .unwrap();
            (values(&acked), values(&got_b))
        });
        server.kill();

        let server = start(data, cores);
        runtime().block_on(async {
            let client = sdk_client(&server).await;
            // Everything not acked comes again, once; nothing acked does.
            let mut stream = client.streaming_pull("billing", 100, MIB).await.unwrap();
            let again = values(&read_n(&mut stream, 50 - acked.len()).await);
            let again_set: BTreeSet<&String> = again.iter().collect();
            assert_eq!(again_set.len(), again.len(), "pushed twice: {again:?}");
            assert!(acked.iter().all(|v| !again_set.contains(v)), "{again:?}");
            assert!(leased.iter().all(|v| again_set.contains(v)), "{again:?}");
        });
        server.stop();
    });
}

#[test]
fn a_stream_holding_more_credits_than_one_pull_answer_gets_frames_of_at_most_one() {
    on_shards(|data, cores| {
        let server = start(data, cores);
        runtime().block_on(async {
            let client = sdk_client(&server).await;
            topic_and_sub(&client, "bulk", 3, "all").await;
            produce(&client, "bulk", 24_000, 3).await;
            let mut stream = client.streaming_pull("all", 24_000, 8 * MIB).await.unwrap();
            let mut got = BTreeSet::new();
            while got.len() < 24_000 {
                let frame = timeout(PROMPTLY, stream.next_frame())
                    .await
                    .expect("a frame within 20 s")
                    .unwrap()
                    .expect("the stream ended");
                assert!(
                    (1..=MAX_PULL_MESSAGES as usize).contains(&frame.len()),
                    "a frame of {} messages",
                    frame.len()
                );
                got.extend(values(&frame));
            }
            assert_eq!(got.len(), 24_000, "a message was pushed twice");
        });
        server.stop();
    });
}

fn metric_sum(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn refusals_and_a_deleted_subscription_end_push_streams_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0,1");
    runtime().block_on(async {
        let client = sdk_client(&server).await;
        let mut unknown = client.streaming_pull("nobody", 5, MIB).await.unwrap();
        let err = unknown.next_frame().await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::UnknownSubscription), "{err}");
        // Credits for a stream that ended (this one never opened).
        let err = unknown.credit().grant(1, 1).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidRequest), "{err}");
        let err = client.streaming_pull("billing", 0, MIB).await.unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)), "{err}");

        topic_and_sub(&client, "orders", 2, "billing").await;
        let mut open = client.streaming_pull("billing", 5, MIB).await.unwrap();
        // More than one grant may carry is sent capped, not refused.
        open.credit().grant(u32::MAX, u32::MAX).await.unwrap();
        produce(&client, "orders", 1, 2).await;
        assert_eq!(values(&read_n(&mut open, 1).await), ["m00"]);
        client.delete_subscription("billing").await.unwrap();
        let end = timeout(PROMPTLY, open.next_frame())
            .await
            .expect("the stream ended within 20 s");
        let err = end.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::UnknownSubscription), "{err}");
    });
    server.stop();
}

#[test]
fn the_subscriber_pushes_and_pulls_every_message_once() {
    on_shards(|data, cores| {
        let server = start(data, cores);
        runtime().block_on(async {
            let client = sdk_client(&server).await;
            topic_and_sub(&client, "orders", 3, "push").await;
            client
                .create_subscription(&SubscriptionConfig {
                    start: StartPosition::Earliest,
                    ..SubscriptionConfig::new("pull", "orders")
                })
                .await
                .unwrap();
            produce(&client, "orders", 60, 3).await;
            for (sub, streaming) in [("push", true), ("pull", false)] {
                let config = SubscriberConfig {
                    streaming,
                    max_messages: 7,
                    ..SubscriberConfig::default()
                };
                let mut subscriber = Subscriber::new(client.clone(), sub, config).await.unwrap();
                let mut seen = BTreeSet::new();
                while seen.len() < 60 {
                    let m = timeout(PROMPTLY, subscriber.next()).await.unwrap().unwrap();
                    let v = String::from_utf8(m.value.clone().unwrap().to_vec()).unwrap();
                    assert!(seen.insert(v), "{sub}: delivered twice");
                    m.ack().await.unwrap();
                }
                subscriber.close().await.unwrap();
                assert_eq!(outstanding(&client, sub).await, 0, "{sub}");
                let d = client.describe_subscription(sub).await.unwrap();
                assert_eq!(d.total_backlog(), 0, "{sub}: {d:?}");
            }
        });
        let _ = Server::stop(server);
    });
}

#[test]
fn a_streaming_subscriber_holds_at_most_max_messages_unsettled() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"), "0,1");
    runtime().block_on(async {
        let client = sdk_client(&server).await;
        topic_and_sub(&client, "orders", 2, "billing").await;
        produce(&client, "orders", 20, 2).await;
        let config = SubscriberConfig {
            max_messages: 3,
            ..SubscriberConfig::default()
        };
        let mut subscriber = Subscriber::new(client.clone(), "billing", config)
            .await
            .unwrap();
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(timeout(PROMPTLY, subscriber.next()).await.unwrap().unwrap());
        }
        // Three out, none settled: no credit is left, so nothing more is
        // pushed, however long it waits (a bounded wait for an absence).
        assert!(
            timeout(Duration::from_millis(500), subscriber.next())
                .await
                .is_err(),
            "a fourth message came with three unsettled"
        );
        assert_eq!(outstanding(&client, "billing").await, 3);
        // Settling gives credit back: the rest flows, three at a time.
        let mut done = 0;
        for m in held.drain(..) {
            m.ack().await.unwrap();
            done += 1;
        }
        while done < 20 {
            let m = timeout(PROMPTLY, subscriber.next()).await.unwrap().unwrap();
            assert!(outstanding(&client, "billing").await <= 3);
            m.ack().await.unwrap();
            done += 1;
        }
        subscriber.close().await.unwrap();
    });
    server.stop();
}
