//! Message-id deduplication against the real server over real QUIC
//! (docs/SEMANTICS.md §6): on a topic with a dedup window, a message sent
//! again with the same `tg-msg-id` (a later batch, the same batch, after
//! kill -9 and restart) is stored once; readers of the stream and
//! subscriptions see it once; a topic without a window stores every copy.
//! On one shard and on two.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use support::{runtime, sdk_client, send_durably, start};
use tidegate_client::{Client, ProducerRecord, StartPosition, SubscriptionConfig, TopicSettings};

fn on_shards(test: impl Fn(&Path, &str)) {
    for cores in ["0", "0,1"] {
        let dir = tempfile::tempdir().unwrap();
        test(&dir.path().join("data"), cores);
    }
}

/// Sends `(id, value)` messages with message ids, durably; the ids pick
/// the partitions. With `batched`, a batch waits 200 ms to fill, so copies
/// sent together land in one.
async fn send(client: &Client, topic: &str, messages: &[(&str, &str)], batched: bool) {
    let records = messages
        .iter()
        .map(|(id, value)| ProducerRecord::new(value.to_string()).with_message_id(id.to_string()));
    let linger = if batched {
        Duration::from_millis(200)
    } else {
        Duration::ZERO
    };
    send_durably(client, topic, records, linger).await;
}

/// Every message of the topic as a stream reader sees it: value by
/// (partition, offset), reading each partition to its latest offset.
async fn stream(client: &Client, topic: &str) -> BTreeMap<(u32, u64), String> {
    let described = client.describe_topic(topic).await.unwrap();
    let mut out = BTreeMap::new();
    for p in described.partitions {
        let mut offset = p.earliest;
        while offset < p.latest {
            let fetched = client
                .fetch(topic, p.partition, offset, 1 << 20, Duration::ZERO)
                .await
                .unwrap();
            for m in fetched.messages() {
                let m = m.unwrap();
                let value = String::from_utf8(m.value().unwrap().to_vec()).unwrap();
                out.insert((m.partition(), m.offset()), value);
            }
            offset = fetched.next_offset();
        }
    }
    out
}

fn values(stored: &BTreeMap<(u32, u64), String>) -> Vec<String> {
    let mut v: Vec<String> = stored.values().cloned().collect();
    v.sort();
    v
}

#[test]
fn a_repeated_message_id_is_stored_once_in_later_and_same_batches_and_after_kill_9() {
    on_shards(|data, cores| {
        let server = start(data, cores);
        runtime().block_on(async {
            let client = sdk_client(&server).await;
            let window = TopicSettings {
                dedup_window: Some(Duration::from_secs(600)),
                ..TopicSettings::default()
            };
            client.create_topic_with("pay", 2, &window).await.unwrap();
            client.create_topic("plain", 2).await.unwrap();
            client
                .create_subscription(&SubscriptionConfig {
                    start: StartPosition::Earliest,
                    ..SubscriptionConfig::new("ledger", "pay")
                })
                .await
                .unwrap();
            let first: Vec<(&str, &str)> = vec![("a", "a1"), ("b", "b1"), ("c", "c1"), ("d", "d1")];
            // Retries as separate requests, then copies inside one batch.
            let retries = vec![("a", "a2"), ("c", "c2")];
            let in_batch = vec![("e", "e1"), ("e", "e2"), ("b", "b3")];
            for topic in ["pay", "plain"] {
                send(&client, topic, &first, false).await;
                send(&client, topic, &retries, false).await;
                send(&client, topic, &in_batch, true).await;
            }
            let once = ["a1", "b1", "c1", "d1", "e1"].map(String::from).to_vec();
            assert_eq!(values(&stream(&client, "pay").await), once);
            // The markers hold their offsets: 9 offsets, 5 messages.
            let described = client.describe_topic("pay").await.unwrap();
            let offsets: u64 = described.partitions.iter().map(|p| p.latest).sum();
            assert_eq!(offsets, 9);
            let mut all: Vec<String> = first
                .iter()
                .chain(&retries)
                .chain(&in_batch)
                .map(|(_, v)| v.to_string())
                .collect();
            all.sort();
            assert_eq!(values(&stream(&client, "plain").await), all);
            // The subscription delivers each message once; the markers are
            // handled without a delivery.
            let pulled = client
                .pull("ledger", 100, Duration::from_secs(2))
                .await
                .unwrap();
            let mut got: Vec<String> = pulled
                .iter()
                .map(|m| String::from_utf8(m.value.clone().unwrap().to_vec()).unwrap())
                .collect();
            got.sort();
            assert_eq!(got, once);
            let ids: Vec<_> = pulled.iter().map(|m| m.ack_id).collect();
            assert!(client
                .ack("ledger", &ids)
                .await
                .unwrap()
                .iter()
                .all(Result::is_ok));
            let d = client.describe_subscription("ledger").await.unwrap();
            assert_eq!(d.total_backlog(), 0, "markers count as handled: {d:?}");
        });
        server.kill();

        // After kill -9 the ids come back from the log.
        let server = start(data, cores);
        runtime().block_on(async {
            let client = sdk_client(&server).await;
            send(
                &client,
                "pay",
                &[("a", "a3"), ("d", "d2"), ("f", "f1")],
                false,
            )
            .await;
            let stored = values(&stream(&client, "pay").await);
            assert_eq!(
                stored,
                ["a1", "b1", "c1", "d1", "e1", "f1"].map(String::from)
            );
            let pulled = client
                .pull("ledger", 100, Duration::from_secs(2))
                .await
                .unwrap();
            let got: Vec<String> = pulled
                .iter()
                .map(|m| String::from_utf8(m.value.clone().unwrap().to_vec()).unwrap())
                .collect();
            assert_eq!(got, ["f1"]);
        });
        server.stop();
    });
}
