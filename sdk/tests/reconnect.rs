//! Reconnection after the server restarts, and no reconnection after
//! `Client::close`, against the real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tidegate_client::{
    Client, ConsumedMessage, Consumer, ConsumerConfig, Error, Producer, ProducerConfig,
    ProducerRecord, Receipt, Start, CONNECT_TIMEOUT,
};

/// Generous bound on anything that should happen promptly (a restart and
/// the reconnects after it included).
const PROMPT: Duration = Duration::from_secs(60);

/// Where each acknowledged message is stored: `(partition, offset)` to
/// its value.
type Acked = BTreeMap<(u32, u64), String>;

/// Hands `count` keyed messages named `{prefix}{i}` to the producer and
/// returns their receipts (not awaited).
async fn send(producer: &Producer, prefix: &str, count: u32) -> Vec<(String, Receipt)> {
    let mut receipts = Vec::new();
    for i in 0..count {
        let value = format!("{prefix}{i}");
        let record = ProducerRecord::new(value.clone()).with_key(format!("k{}", i % 7));
        receipts.push((value, producer.send("events", record).await.unwrap()));
    }
    receipts
}

/// Waits for every receipt, each of which must succeed, into `acked`.
async fn acknowledge(receipts: Vec<(String, Receipt)>, acked: &mut Acked) {
    for (value, receipt) in receipts {
        let delivered = tokio::time::timeout(PROMPT, receipt)
            .await
            .expect("receipt resolves")
            .unwrap_or_else(|e| panic!("{value}: {e}"));
        let position = (delivered.partition, delivered.offset.unwrap());
        assert_eq!(acked.insert(position, value), None, "{position:?} twice");
    }
}

/// Reads until every acknowledged message has been seen, checking that
/// each partition is read without gaps or repeats.
async fn consume_until_all_seen(consumer: &mut Consumer, acked: &Acked, seen: &mut Acked) {
    while !acked.keys().all(|position| seen.contains_key(position)) {
        let m: ConsumedMessage = tokio::time::timeout(PROMPT, consumer.next())
            .await
            .expect("a message arrives")
            .unwrap()
            .expect("the consumer is running");
        let next_expected = seen
            .range((m.partition(), 0)..=(m.partition(), u64::MAX))
            .next_back()
            .map_or(0, |((_, offset), _)| offset + 1);
        assert_eq!(m.offset(), next_expected, "partition {}", m.partition());
        let value = String::from_utf8(m.value().unwrap().to_vec()).unwrap();
        seen.insert((m.partition(), m.offset()), value);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_and_consumer_keep_working_across_a_server_restart() {
    let mut server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("events", 2).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let config = ConsumerConfig {
        start: Start::Earliest,
        max_wait: Duration::from_millis(200),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client.clone(), "events", config)
        .await
        .unwrap();
    let (mut acked, mut seen) = (Acked::new(), Acked::new());

    let before = send(&producer, "before", 300).await;
    acknowledge(before, &mut acked).await;
    consume_until_all_seen(&mut consumer, &acked, &mut seen).await;

    // The consumer's long polls are in flight while the server stops.
    tokio::task::block_in_place(|| server.stop());
    // Sent while the server is down: the producer retries through the
    // restart.
    let during = send(&producer, "during", 100).await;
    tokio::task::block_in_place(|| server.start_again());
    let after = send(&producer, "after", 300).await;
    acknowledge(during, &mut acked).await;
    acknowledge(after, &mut acked).await;
    assert_eq!(acked.len(), 700);

    consume_until_all_seen(&mut consumer, &acked, &mut seen).await;
    // Every message read is at the position its receipt gave. (Nothing was
    // in flight at the stop, so nothing was stored twice.)
    assert_eq!(seen, acked);
    for partition in consumer.partitions().collect::<Vec<_>>() {
        let stored = acked.keys().filter(|(p, _)| *p == partition).count();
        assert_eq!(consumer.position(partition), Some(stored as u64));
    }
    // A plain call on the shared client works too.
    assert_eq!(client.list_topics().await.unwrap().len(), 1);
    producer.close().await;
    consumer.close().await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_racing_on_a_dead_connection_share_one_reconnect() {
    let mut server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("events", 1).await.unwrap();
    tokio::task::block_in_place(|| {
        server.stop();
        server.start_again();
    });
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.describe_topic("events").await })
        })
        .collect();
    for call in calls {
        let description = tokio::time::timeout(PROMPT, call)
            .await
            .expect("the call ends")
            .unwrap()
            .unwrap();
        assert_eq!(description.partitions.len(), 1);
    }
}

#[tokio::test]
async fn a_closed_client_fails_calls_without_reconnecting() {
    let server = support::start();
    let client = support::connect(&server).await;
    let clone = client.clone();
    client.list_topics().await.unwrap();
    client.close().await;

    for c in [&client, &clone] {
        let err = tokio::time::timeout(PROMPT, c.list_topics())
            .await
            .expect("fails at once")
            .unwrap_err();
        assert!(matches!(err, Error::Closed), "{err:?}");
        assert!(!err.is_retriable());
    }
    // The server is still up: only the close kept the client from
    // reconnecting.
    let other: Client = support::connect(&server).await;
    other.list_topics().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_racing_to_a_stopped_server_share_one_bounded_attempt() {
    let mut server = support::start();
    let client = support::connect(&server).await;
    client.list_topics().await.unwrap();
    tokio::task::block_in_place(|| server.stop());

    // A call in flight when the client learns of the close fails with a
    // transport error; any later one dials.
    let first = client.list_topics().await.unwrap_err();
    assert!(
        matches!(first, Error::Transport(_) | Error::Connect { .. }),
        "{first:?}"
    );
    assert!(first.is_retriable());

    let started = Instant::now();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.list_topics().await })
        })
        .collect();
    for call in calls {
        let err = tokio::time::timeout(PROMPT, call)
            .await
            .expect("the reconnect attempt is bounded")
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        assert!(err.is_retriable());
    }
    // One attempt of at most CONNECT_TIMEOUT for all of them, not one
    // each in turn.
    let elapsed = started.elapsed();
    assert!(elapsed < CONNECT_TIMEOUT * 2, "{elapsed:?}");
}
